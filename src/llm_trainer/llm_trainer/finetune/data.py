"""Training data for the planner: verified plans (SFT) and success/failure pairs (DPO).

Sources, any number of them, each one of:

* an SFT JSONL file from ``llm-trainer export --format sft-jsonl`` (``prompt``, ``completion``,
  ``messages``), or any JSONL with ``messages`` (chat) or ``prompt`` + ``completion`` (text);
* a pairs JSONL (``<out>.pairs.jsonl`` of the same export, or rows with ``prompt`` / ``chosen`` /
  ``rejected``);
* a generation run directory: its episode records are read (bags, else ``episodes.jsonl``) and
  turned into samples here, successes for SFT, same-scene success/failure pairs for DPO. Pairs
  may come from several runs, e.g. the oracle's verified plans and the student's failures.

Rows come out in trl's *conversational* formats (``prompt`` is the chat the planner sends,
``completion`` / ``chosen`` / ``rejected`` one assistant turn), so training sees the prompt through
the same chat template the planner backends apply when they ask the model.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """The training data is missing, empty or malformed; the message names the source."""


@dataclass
class TrainingData:
    method: str  # sft | dpo
    train: list[dict[str, Any]]
    valid: list[dict[str, Any]]
    sources: list[str] = field(default_factory=list)

    def per_task(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for split, rows in (("train", self.train), ("valid", self.valid)):
            for task, n in Counter(r.get("task") or "?" for r in rows).items():
                out.setdefault(task, {"train": 0, "valid": 0})[split] = n
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "train": len(self.train),
            "valid": len(self.valid),
            "per_task": self.per_task(),
            "sources": self.sources,
        }


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _sft_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    meta = {"task": row.get("task"), "seed": row.get("seed")}
    messages = row.get("messages")
    if isinstance(messages, list) and messages and messages[-1].get("role") == "assistant":
        return {"prompt": messages[:-1], "completion": [messages[-1]], **meta}
    if isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
        return {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "completion": _assistant(row["completion"]),
            **meta,
        }
    raise DataError(f"{where}: an SFT row needs messages (ending with the assistant turn) or prompt + completion")


def _pair_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    if not all(isinstance(row.get(k), str) for k in ("chosen", "rejected")):
        raise DataError(f"{where}: a preference row needs chosen and rejected answers")
    prompt = row.get("prompt_messages")
    if not isinstance(prompt, list):
        if not isinstance(row.get("prompt"), str):
            raise DataError(f"{where}: a preference row needs prompt_messages or prompt")
        prompt = [{"role": "user", "content": row["prompt"]}]
    return {
        "prompt": prompt,
        "chosen": _assistant(row["chosen"]),
        "rejected": _assistant(row["rejected"]),
        "task": row.get("task"),
        "seed": row.get("seed"),
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: not JSON ({exc.msg})") from None
    return rows


def load_rows(sources: list[str | Path], method: str) -> list[dict[str, Any]]:
    """Every training row of ``sources`` for ``method`` (``sft`` or ``dpo``)."""
    from llm_trainer.datasets.export import run_records
    from llm_trainer.datasets.exporters.sft_jsonl import group_by_scene, preference_pairs

    if not sources:
        raise DataError("no training data given (--data SFT.jsonl|PAIRS.jsonl|RUN_DIR, one or more)")
    rows: list[dict[str, Any]] = []
    records = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            if not (path / "episodes.jsonl").exists() and not (path / "bags").is_dir():
                raise DataError(f"{path}: not a generation run (no episodes.jsonl, no bags/)")
            records.extend(run_records(path))
        elif path.is_file():
            for n, row in enumerate(_read_jsonl(path), 1):
                where = f"{path}:{n}"
                is_pair = "chosen" in row or "rejected" in row
                if method == "dpo" and is_pair:
                    rows.append(_pair_row(row, where))
                elif method == "sft" and not is_pair:
                    rows.append(_sft_row(row, where))
                else:
                    want = "preference pairs (prompt, chosen, rejected)" if method == "dpo" else "SFT samples"
                    raise DataError(f"{where}: --method {method} trains on {want}; this row is not one")
        else:
            raise DataError(f"{path}: no such file or run directory")
    if records:
        groups = group_by_scene(records)
        if method == "sft":
            rows += [_sft_row(s, s["episode_id"]) for g in groups.values() for s in g["ok"]]
        else:
            rows += [_pair_row(p, p["chosen_episode_id"]) for p in preference_pairs(groups.values())]
    if not rows:
        what = "verified plans" if method == "sft" else "success/failure pairs on the same scene"
        raise DataError(f"no {what} in {', '.join(map(str, sources))}")
    return rows


def split_rows(rows: list[dict[str, Any]], valid_fraction: float) -> tuple[list[dict], list[dict]]:
    """Hold out the highest seeds of each task (``floor(n * fraction)`` of its n rows) for validation,
    so the split does not depend on the order of the sources and never mixes a scene into both."""
    by_task: dict[str, list[dict]] = {}
    for row in rows:
        by_task.setdefault(str(row.get("task")), []).append(row)
    train: list[dict] = []
    valid: list[dict] = []
    for task_rows in by_task.values():
        task_rows.sort(key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
        seeds = sorted({r.get("seed") for r in task_rows}, key=lambda s: (s is None, s or 0))
        n_valid = int(len(seeds) * valid_fraction)
        held = set(seeds[len(seeds) - n_valid :]) if n_valid else set()
        for row in task_rows:
            (valid if row.get("seed") in held else train).append(row)
    return train, valid


def load_training_data(sources: list[str | Path], method: str, valid_fraction: float) -> TrainingData:
    rows = load_rows(sources, method)
    train, valid = split_rows(rows, valid_fraction)
    if not train:
        raise DataError(f"all {len(rows)} rows went to validation: lower --valid-fraction")
    return TrainingData(method, train, valid, [str(s) for s in sources])
