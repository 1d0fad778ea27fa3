"""``augment-language``: more varied instructions and dialogues for the planner's SFT data, never corrupted.

Input: an SFT JSONL (``llm-trainer export --format sft-jsonl``) or a generation run directory (its
verified episodes become SFT samples as the exporter makes them). For each sample the writer
(template or LLM) proposes rewordings of its instruction and dialogues that imply it; the attribute
filter keeps only those that ask for exactly the same thing. A kept one becomes a new sample whose
prompt carries the rewording in place of the instruction and whose completion is the original's
verified plan, unchanged, with its provenance: the source (file and line, or run and episode, and
the source line's SHA-256), the method, its parameters and the seed.

Writes ``OUT`` (the sources first when ``include_originals``, then the augmented samples),
``OUT.rejected.jsonl`` (every refused candidate with the filter's reason) and ``OUT.summary.json``.
Sources are only read: ``OUT`` may not be one of them, and an existing ``OUT`` needs ``force``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_trainer.asmr.attributes import check_dialogue, check_paraphrase
from llm_trainer.asmr.config import AsmrConfig, LanguageConfig
from llm_trainer.asmr.paraphrase import Candidate, LLMParaphraser, TemplateParaphraser, stable_seed

DIALOGUE_TASK_LINE = "Task: do what the user asks in this conversation."


@dataclass
class SourceSample:
    sample: dict[str, Any]
    ref: dict[str, Any]  # where it came from: {"file", "line"} or {"run", "episode_id"}, plus sha256


def _sha(row: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()


def load_sources(data: Path) -> list[SourceSample]:
    """The verified SFT samples of an SFT JSONL or a run directory."""
    data = Path(data)
    if data.is_dir():
        from llm_trainer.datasets.export import run_records
        from llm_trainer.datasets.exporters.sft_jsonl import sft_sample

        if not (data / "episodes.jsonl").exists() and not (data / "bags").is_dir():
            raise ValueError(f"{data}: not a generation run (no episodes.jsonl, no bags/) and not an SFT JSONL")
        out = []
        for record in run_records(data):
            if not record.success:
                continue
            sample = sft_sample(record)
            if sample is not None:
                out.append(
                    SourceSample(sample, {"run": str(data), "episode_id": record.episode_id, "sha256": _sha(sample)})
                )
        return out
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no such file or directory")
    out = []
    for n, line in enumerate(data.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{data}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{data}:{n}: an SFT line must be a JSON object")
        for key in ("instruction", "prompt", "completion", "messages"):
            if key not in row:
                raise ValueError(
                    f"{data}:{n}: not an SFT sample of `llm-trainer export --format sft-jsonl` (no {key!r})"
                )
        if row.get("success") is False:
            continue
        out.append(
            SourceSample(row, {"file": str(data), "line": n, "sha256": hashlib.sha256(line.encode()).hexdigest()})
        )
    return out


def _task_line(instruction: str) -> str:
    return f"Task: {instruction.strip()}"


def rewrite_sample(sample: dict[str, Any], task_text: str) -> dict[str, Any]:
    """A copy of an SFT sample whose prompt's ``Task: ...`` line is ``task_text`` (one or more lines);
    the completion (the verified plan) is left exactly as it is."""
    old = _task_line(sample["instruction"])
    messages = copy.deepcopy(sample["messages"])
    users = [m for m in messages if m.get("role") == "user"]
    if len(users) != 1:
        raise ValueError(f"sample {sample.get('episode_id')}: expected one user message, found {len(users)}")
    user = users[0]
    if user["content"].count(old) != 1:
        raise ValueError(f"sample {sample.get('episode_id')}: the prompt does not hold {old!r} exactly once")
    user["content"] = user["content"].replace(old, task_text)
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    prompt = sample["prompt"]
    flat_user = next(m["content"] for m in sample["messages"] if m.get("role") == "user")
    if system and prompt == f"{system}\n\n{flat_user}":
        prompt = f"{system}\n\n{user['content']}"
    elif prompt.count(old) == 1:
        prompt = prompt.replace(old, task_text)
    else:
        raise ValueError(f"sample {sample.get('episode_id')}: cannot place the rewording in the flat prompt")
    out = copy.deepcopy(sample)
    out["prompt"] = prompt
    out["messages"] = messages
    return out


def paraphrased_sample(sample: dict[str, Any], text: str) -> dict[str, Any]:
    out = rewrite_sample(sample, _task_line(text))
    out["instruction"] = text
    return out


def dialogue_sample(sample: dict[str, Any], candidate: Candidate) -> dict[str, Any]:
    out = rewrite_sample(sample, f"{DIALOGUE_TASK_LINE}\n{candidate.text}")
    out["instruction"] = candidate.text
    out["dialogue"] = candidate.turns
    return out


@dataclass
class AugmentLanguageOptions:
    data: Path
    out: Path
    config: AsmrConfig
    backend: str = ""  # the LLM writer's backend (transformers | openai | replay); "" with the template writer
    planner_overrides: dict[str, Any] | None = None
    force: bool = False


def make_writer(language: LanguageConfig, backend: str = "", overrides: dict[str, Any] | None = None, generator=None):
    if language.writer == "template":
        return TemplateParaphraser()
    if generator is None:
        if not backend:
            raise ValueError("the llm writer needs a language-model backend (--backend transformers|openai|replay)")
        from llm_trainer.config import with_overrides
        from llm_trainer.planning.registry import load_planner_config, make_generator

        config = with_overrides(load_planner_config(), overrides or {}, "planner")
        generator = make_generator(backend, config)
    return LLMParaphraser(generator, language.temperature, language.max_new_tokens)


def _check_out(options: AugmentLanguageOptions) -> list[Path]:
    out = options.out.resolve()
    data = Path(options.data).resolve()
    if out == data or (data.is_dir() and data in out.parents and out.name in ("episodes.jsonl", "run.json")):
        raise ValueError(f"--out {options.out} would overwrite the source; sources are never written to")
    written = [out, out.with_name(out.name + ".rejected.jsonl"), out.with_name(out.name + ".summary.json")]
    if data in written:
        raise ValueError(f"--out {options.out} would overwrite the source {options.data}")
    existing = [p for p in written if p.exists()]
    if existing and not options.force:
        raise FileExistsError(f"{existing[0]} exists; pass --force to replace it")
    return written


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(partial, path)


def augment_language(
    options: AugmentLanguageOptions, *, generator=None, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the job; returns (and writes) its summary."""
    from llm_trainer.config import to_dict

    language = options.config.language
    out_path, rejected_path, summary_path = _check_out(options)
    sources = load_sources(Path(options.data))
    if not sources:
        raise ValueError(f"{options.data}: no verified samples to augment")
    writer = make_writer(language, options.backend, options.planner_overrides, generator)
    n_para = int(round(language.per_episode * language.candidates_factor)) if language.per_episode else 0
    n_dia = (
        int(round(language.dialogues_per_episode * language.candidates_factor)) if language.dialogues_per_episode else 0
    )
    augmented: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    stats: Counter = Counter()
    reasons: Counter = Counter()
    t0 = time.perf_counter()
    try:
        for index, src in enumerate(sources):
            sample = src.sample
            instruction, task = sample["instruction"], sample.get("task", "")
            seed = stable_seed(options.config.seed, src.ref.get("sha256"), task, instruction)
            kinds = (
                ("paraphrase", n_para, language.per_episode, writer.candidates),
                ("dialogue", n_dia, language.dialogues_per_episode, writer.dialogues),
            )
            for kind, asked, wanted, write in kinds:
                if not wanted:
                    continue
                kept = 0
                for candidate in write(task, instruction, asked, seed):
                    stats[f"{kind}_candidates"] += 1
                    if candidate.turns:
                        verdict = check_dialogue(instruction, candidate.turns)
                    else:
                        verdict = check_paraphrase(instruction, candidate.text)
                    if not verdict.kept:
                        reasons[verdict.attribute] += 1
                        rejected.append(
                            {
                                "source": src.ref,
                                "instruction": instruction,
                                "candidate": candidate.text,
                                "method": candidate.method,
                                "reason": str(verdict),
                            }
                        )
                        continue
                    if kept >= wanted:
                        stats[f"{kind}_surplus"] += 1
                        continue
                    new = paraphrased_sample(sample, candidate.text) if kind == "paraphrase" else None
                    if new is None:
                        new = dialogue_sample(sample, candidate)
                    new["augmentation"] = {
                        "kind": kind,
                        "method": candidate.method,
                        "parameters": candidate.parameters,
                        "seed": seed,
                        "source": {**src.ref, "episode_id": sample.get("episode_id")},
                        "original_instruction": instruction,
                        "filter": str(verdict),
                    }
                    augmented.append(new)
                    kept += 1
                    stats[f"{kind}_kept"] += 1
                if kept < wanted:
                    stats[f"{kind}_short"] += 1
            if log and (index + 1) % 25 == 0:
                log(f"{index + 1}/{len(sources)} samples, {len(augmented)} augmented")
    finally:
        close = getattr(getattr(writer, "generator", None), "close", None)
        if close and generator is None:
            close()
    rows = [s.sample for s in sources] if language.include_originals else []
    _write_jsonl(out_path, rows + augmented)
    _write_jsonl(rejected_path, rejected)
    candidates = stats["paraphrase_candidates"] + stats["dialogue_candidates"]
    kept_all = (
        stats["paraphrase_kept"] + stats["dialogue_kept"] + stats["paraphrase_surplus"] + stats["dialogue_surplus"]
    )
    summary = {
        "out": str(out_path),
        "rejected_out": str(rejected_path),
        "sources": len(sources),
        "originals_written": len(rows),
        "augmented": len(augmented),
        "writer": language.writer if language.writer == "template" else f"llm:{options.backend or 'given'}",
        "candidates": candidates,
        "passed_filter": kept_all,
        "preservation_rate": round(kept_all / candidates, 4) if candidates else None,
        "rejected_by_attribute": dict(sorted(reasons.items())),
        "stats": dict(sorted(stats.items())),
        "writer_failures": len(getattr(writer, "failures", [])),
        "seconds": round(time.perf_counter() - t0, 2),
        "config": to_dict(options.config),
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
