"""Episode records -> SFT JSONL for the planner (prompt, completion, chat messages), and preference pairs.

One line per verified plan:

    {"prompt": "...", "completion": "...", "messages": [system, user, assistant],
     "episode_id": ..., "task": ..., "seed": ..., "instruction": ..., "prompt_version": ...,
     "completion_source": "model" | "canonical", "backend": ..., "success": true, "provenance": {...}}

``prompt`` is exactly what the planner sent (its flat text; ``messages`` the chat form). For the
oracle, which sends no prompt, it is what the same prompt builder makes for that scene and version,
and ``completion`` is the canonical rendering of the plan (``completion_source: canonical``);
for a model it is the model's answer, unchanged. Failures go to a separate file on request, and
preference pairs (a success and a failure on the same task, seed and scene) to another.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llm_trainer.episodes import EpisodeRecord


def sft_sample(record: EpisodeRecord) -> dict[str, Any] | None:
    """The SFT line of one episode record (None when it has no plan to learn from)."""
    from llm_trainer.planning.parser import plan_to_code
    from llm_trainer.planning.prompt import PROMPT_VERSION, PromptConfig, build_prompt
    from llm_trainer.primitives import plan_from_dicts
    from llm_trainer.scene import SceneState

    planning = record.planning
    if planning is None:
        return None
    if planning.prompt:
        prompt, messages, version = planning.prompt, list(planning.prompt_messages), planning.prompt_version
    else:
        cfg = PromptConfig(**planning.prompt_config) if planning.prompt_config else PromptConfig()
        built = build_prompt(record.instruction, SceneState.from_dict(record.scene), cfg)
        prompt, messages, version = built.text, built.messages, PROMPT_VERSION
    if planning.raw_answer:
        completion, source = planning.raw_answer, "model"
    elif planning.plan:
        completion, source = "```python\n" + plan_to_code(plan_from_dicts(planning.plan)) + "\n```", "canonical"
    else:
        return None
    return {
        "prompt": prompt,
        "completion": completion,
        "messages": [*messages, {"role": "assistant", "content": completion}],
        "episode_id": record.episode_id,
        "task": record.task,
        "seed": record.seed,
        "instruction": record.instruction,
        "prompt_version": version,
        "completion_source": source,
        "backend": planning.backend,
        "success": record.success,
        "outcome": record.outcome.to_dict(),
        "provenance": {**record.provenance, "bag": record.bag},
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(partial, path)


def _scene_key(record: EpisodeRecord) -> str:
    return json.dumps([record.task, record.seed, record.scene.get("objects")], sort_keys=True)


def preference_pairs(groups: Iterable[dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """DPO pairs: within each scene group (``{"ok": [...], "bad": [...]}`` SFT samples of the same task,
    seed and objects), a verified plan beside a failed one, both answering the very same prompt."""
    return [
        {
            "prompt": ok["prompt"],
            "prompt_messages": ok["messages"][:-1],
            "chosen": ok["completion"],
            "rejected": bad["completion"],
            "chosen_episode_id": ok["episode_id"],
            "rejected_episode_id": bad["episode_id"],
            "rejected_outcome": bad["outcome"],
            "task": ok["task"],
            "seed": ok["seed"],
        }
        for group in groups
        for ok, bad in zip(group["ok"], group["bad"])
        if ok["prompt"] == bad["prompt"]
    ]


def group_by_scene(records: Iterable[EpisodeRecord]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """SFT samples of ``records`` grouped by scene (task, seed, objects), successes and failures apart."""
    by_scene: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        sample = sft_sample(record)
        if sample is not None:
            by_scene.setdefault(_scene_key(record), {"ok": [], "bad": []})["ok" if record.success else "bad"].append(
                sample
            )
    return by_scene


def write_sft_jsonl(records: Iterable[EpisodeRecord], out: Path | str, *, include_failures: bool = False) -> dict:
    """Write verified plans to ``out``; with failures, also ``<out>.failures.jsonl`` and ``<out>.pairs.jsonl``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    by_scene = group_by_scene(records)
    successes = [sample for group in by_scene.values() for sample in group["ok"]]
    failures = [sample for group in by_scene.values() for sample in group["bad"]]
    _write_jsonl(out, successes)
    summary: dict[str, Any] = {"format": "sft-jsonl", "out": str(out), "samples": len(successes)}
    if include_failures:
        pairs = preference_pairs(by_scene.values())
        failures_path = out.with_name(out.stem + ".failures.jsonl")
        pairs_path = out.with_name(out.stem + ".pairs.jsonl")
        _write_jsonl(failures_path, failures)
        _write_jsonl(pairs_path, pairs)
        summary.update(
            failures=len(failures), failures_out=str(failures_path), pairs=len(pairs), pairs_out=str(pairs_path)
        )
    return summary
