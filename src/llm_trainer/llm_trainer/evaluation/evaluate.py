"""``llm-trainer evaluate``: success per task on test seeds, one row per planner (BLAZER's Table I).

Each planner runs the same slots (tasks x ``--episodes`` on the test split, so never a seed any
training run used) with the in-process runner, which gives the graph's verdicts without DDS
(``llm-trainer generate --runner``), into ``<out>/<label>/``: a complete generation run with its
``episodes.jsonl``, so every cell of the table can be traced to its episode records, and an
interrupted evaluation continues where it stopped. ``results.md`` (the table), ``results.json``
and ``success.png`` (a bar chart) are written at the end.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_trainer.evaluation.planners import PlannerSpec
from llm_trainer.evaluation.report import write_report


@dataclass
class EvaluateOptions:
    planners: list[PlannerSpec]
    tasks: list[str]
    episodes: int = 10  # per task
    out: Path = Path("runs/eval")
    split: str = "test"
    seed: int = 0
    common: dict[str, Any] = field(default_factory=dict)  # settings for every LLM planner (--set)
    record: bool = False  # keep a bag per episode (slower; the records are kept either way)
    cameras: bool = False
    concurrency: int = 1
    force: bool = False
    progress: bool = False
    state: str = "ground_truth"  # ground_truth (the simulator's) | perception (the cameras through perception)

    def validate(self) -> None:
        if not self.planners:
            raise ValueError("give at least one --planner")
        labels = [p.label for p in self.planners]
        if len(set(labels)) != len(labels):
            raise ValueError(f"planner labels must differ (they name folders): {labels}")
        if self.state not in ("ground_truth", "perception"):
            raise ValueError(f"--state must be ground_truth or perception, got {self.state!r}")


def _settings(spec: PlannerSpec, common: dict[str, Any]) -> PlannerSpec:
    if spec.backend == "oracle" or not common:
        return spec
    return PlannerSpec(spec.label, spec.backend, {**common, **spec.settings})


def _run_one(spec: PlannerSpec, options: EvaluateOptions, log) -> dict[str, Any]:
    from llm_trainer.datagen.generate import GenerateOptions, generate

    out = Path(options.out) / spec.label
    overrides = spec.overrides()
    gen = GenerateOptions(
        tasks=list(options.tasks),
        episodes=options.episodes,
        planner=spec.planner_backend,
        out=out,
        seed=options.seed,
        split=options.split,
        runner="inprocess",
        render_cameras=options.cameras,
        record=options.record,
        concurrency=options.concurrency if spec.backend in ("openai", "llama_cpp", "oracle") else 1,
        force=options.force,
        progress=options.progress,
        planner_overrides=overrides,
        state=options.state,
    )
    if gen.state == "perception":
        gen.concurrency = 1
    if spec.backend != "llama_cpp":
        return generate(gen, log=log)
    from llm_trainer.planning.serve import ServeOptions, ServerProcess, free_port

    server = spec.server_settings()
    serve = ServeOptions(
        model=str(server.get("model", "smollm2")),
        port=free_port(),
        server="llama.cpp",
        alias="student",
        adapter=str(server.get("adapter", "")),
        threads=int(server.get("threads", 0)),
        context=int(server.get("context", 4096)),
    )
    out.mkdir(parents=True, exist_ok=True)
    log(f"{spec.label}: serving {serve.model}" + (f" + {serve.adapter}" if serve.adapter else "") + " with llama.cpp")
    with ServerProcess(serve, out / "server.log") as process:
        gen.planner_overrides = {"openai.model": serve.alias, "openai.timeout": 600.0, **overrides}
        gen.planner_base_url = process.base_url  # a new port each time: not part of the run's identity
        return generate(gen, log=log)


def evaluate(options: EvaluateOptions, log=print) -> dict[str, Any]:
    options.validate()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in options.planners:
        spec = _settings(spec, options.common)
        t0 = time.perf_counter()
        summary = _run_one(spec, options, log)
        records = [
            json.loads(line)
            for line in (Path(options.out) / spec.label / "episodes.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        # From the records, so a resumed evaluation reports its episodes' speed, not the resume's.
        episode_wall = sum(float(r.get("timing", {}).get("wall", 0.0)) for r in records)
        rows.append(
            {
                "label": spec.label,
                "spec": spec.to_dict(),
                "run": str(Path(options.out) / spec.label),
                "tasks": summary["tasks"],
                "episodes": summary["episodes"],
                "successes": summary["successes"],
                "wall_time_s": round(time.perf_counter() - t0, 1),
                "episodes_per_minute": round(60 * len(records) / episode_wall, 2) if episode_wall > 0 else 0.0,
                "failure_kinds": summary["failure_kinds"],
            }
        )
    results = {
        "schema": "llm_trainer.evaluation/1",
        "split": options.split,
        "seed": options.seed,
        "episodes_per_task": options.episodes,
        "state": options.state,
        "tasks": list(options.tasks),
        "planners": rows,
    }
    results.update(write_report(results, out))
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results
