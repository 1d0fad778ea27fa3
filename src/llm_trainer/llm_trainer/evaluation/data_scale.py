"""The data-scale ablation (BLAZER Fig. 7 left): fine-tune on N verified plans per task for a few N,
evaluate each adapter on the same test seeds, one table row per N.

    llm-trainer data-scale --data RUN_DIR --base smollm2 --sizes 4,8,16 --tasks put_block,close_jar \\
        --episodes 10 --out runs/scale

Subsets are nested (the N lowest-seed samples of each task), so a larger N only adds data. Each
fine-tune goes to ``<out>/n<N>/`` and the evaluation to ``<out>/eval/`` (both resumable); GGUF bases
are served by llama.cpp with the converted adapter, Hugging Face folders run in process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llm_trainer.finetune.config import FinetuneConfig


@dataclass
class DataScaleOptions:
    data: list[str]
    base: str
    sizes: list[int]
    tasks: list[str]
    episodes: int = 10
    out: Path = Path("runs/data-scale")
    config: FinetuneConfig = field(default_factory=FinetuneConfig)
    settings: dict[str, Any] = field(default_factory=dict)  # planner settings for every student (and the data)
    include_base: bool = True  # a row for N = 0: the untrained base

    def validate(self) -> None:
        if not self.sizes or any(n < 1 for n in self.sizes) or len(set(self.sizes)) != len(self.sizes):
            raise ValueError(f"--sizes must be distinct positive sample counts per task, got {self.sizes}")


def subset_rows(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The ``n`` lowest-seed rows of each task (nested: the subset for a larger n contains it)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_task.setdefault(str(row.get("task")), []).append(row)
    out = []
    for task_rows in by_task.values():
        out += sorted(task_rows, key=lambda r: r.get("seed") or 0)[:n]
    return out


def data_scale(options: DataScaleOptions, log=print) -> dict[str, Any]:
    from llm_trainer.evaluation.evaluate import EvaluateOptions, evaluate
    from llm_trainer.evaluation.planners import PlannerSpec
    from llm_trainer.finetune.base_model import gguf_of
    from llm_trainer.finetune.data import load_rows
    from llm_trainer.finetune.train import FinetuneOptions, finetune

    options.validate()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = load_rows(options.data, "sft")
    per_task = {}
    for row in rows:
        per_task[row.get("task")] = per_task.get(row.get("task"), 0) + 1
    short = {t: n for t, n in per_task.items() if n < max(options.sizes)}
    if short:
        log(f"note: fewer samples than the largest size for {short}: those tasks train on all they have")
    served = gguf_of(options.base) is not None
    backend = "llama_cpp" if served else "transformers"
    planners = []
    if options.include_base:
        planners.append(PlannerSpec("n0", backend, {"model": options.base, **options.settings}))
    trained = {}
    for n in sorted(options.sizes):
        subset = subset_rows(rows, n)
        data_file = out / f"n{n}" / "sft.jsonl"
        data_file.parent.mkdir(parents=True, exist_ok=True)
        with open(data_file, "w", encoding="utf-8") as f:
            for r in subset:
                f.write(
                    json.dumps({"messages": r["prompt"] + r["completion"], "task": r["task"], "seed": r["seed"]}) + "\n"
                )
        log(f"== n={n}: {len(subset)} samples")
        adapter = out / f"n{n}" / "adapter"
        trained[n] = finetune(
            FinetuneOptions([str(data_file)], options.base, adapter, replace(options.config), progress=False), log=log
        )
        settings = {"model": options.base, "adapter": str(adapter), **options.settings}
        planners.append(PlannerSpec(f"n{n}", backend, settings))
    results = evaluate(
        EvaluateOptions(planners=planners, tasks=options.tasks, episodes=options.episodes, out=out / "eval"), log=log
    )
    summary = {
        "sizes": sorted(options.sizes),
        "samples": {n: trained[n]["data"]["train"] for n in trained},
        "finetune_wall_time_s": {n: trained[n]["wall_time_s"] for n in trained},
        "table": results["table"],
        "chart": results["chart"],
    }
    (out / "data_scale.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
