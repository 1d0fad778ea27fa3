"""``llm-trainer augment``: one demonstration to many verified ones (LLM Trainer's online loop).

Each attempt takes a new scene of the task (train-split seeds, never the demo's own), picks an
annotation by Thompson sampling, retargets and warps the demo with it, and runs it through the same
in-process episode loop as ``generate`` (validation, the executor's safety layer, the task's success
check, a bag per episode). Annotations start with the hand-engineered default; another variant is
added when the value-of-information rule says it is worth its cost. The run stops at
``--target-successes`` (or ``--max-attempts``), resumes like ``generate`` (the same command on the
same ``--out`` continues, posteriors rebuilt from the records), and ends with ``summary.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_trainer.augment.annotation import VARIANTS, Annotation, hand_engineered
from llm_trainer.augment.demo import SourceDemo
from llm_trainer.augment.planner import WarpedDemoPlanner
from llm_trainer.augment.thompson import ThompsonSampler


@dataclass
class AugmentOptions:
    demo: Path  # the source episode's bag directory
    task: str
    target_successes: int
    out: Path
    max_attempts: int = 0  # 0: 4 x target
    seed: int = 0
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    annotations: list[Path] = field(default_factory=list)  # extra annotation JSON files (e.g. from an LLM)
    record: bool = True
    cameras: bool = False
    stride: int = 10
    force: bool = False
    annotation_cost: float = 5.0

    def validate(self) -> None:
        if self.target_successes < 1:
            raise ValueError("--target-successes must be at least 1")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown annotation variant(s) {unknown} (known: {', '.join(VARIANTS)})")
        if not Path(self.demo).is_dir():
            raise FileNotFoundError(f"no demo episode directory {self.demo}")

    @property
    def attempts_cap(self) -> int:
        return self.max_attempts or 4 * self.target_successes


def _candidates(options: AugmentOptions, demo: SourceDemo) -> list[Annotation]:
    from llm_trainer.augment.annotation import validate_annotation

    out = [hand_engineered(demo, v) for v in options.variants]
    for path in options.annotations:
        out.append(validate_annotation(Path(path).read_text(encoding="utf-8"), demo, name=Path(path).stem))
    return out


def augment(options: AugmentOptions, log=print) -> dict[str, Any]:
    from llm_trainer.datagen.episode import run_episode_in_process
    from llm_trainer.datagen.inprocess import InProcessRecorder
    from llm_trainer.datagen.run_store import SEED_SCHEME, RunStore, seed_for
    from llm_trainer.execution.backend import DirectSimBackend
    from llm_trainer.execution.executor import PlanExecutor
    from llm_trainer.execution.executor_config import load_executor_config
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import load_sim_config

    options.validate()
    demo = SourceDemo.from_bag(options.demo)
    if demo.task != options.task:
        raise ValueError(f"the demo is of task {demo.task!r}, not {options.task!r}")
    out = Path(options.out)
    candidates = _candidates(options, demo)
    config = {
        "tasks": [options.task], "episodes": options.attempts_cap, "seed": options.seed, "seeds": SEED_SCHEME,
        "split": "train", "planner": "warped_demo", "graph": "inprocess", "render_cameras": options.cameras,
        "camera_rate_hz": 5.0, "record": options.record,
        "augment": {"demo": str(Path(options.demo).resolve()), "target": options.target_successes,
                    "annotations": [a.to_dict() for a in candidates], "stride": options.stride},
    }  # fmt: skip
    store = RunStore(out, config)
    done = store.open(force=options.force)
    (out / "annotations.json").write_text(json.dumps([a.to_dict() for a in candidates], indent=2) + "\n")
    sampler = ThompsonSampler(seed=options.seed, annotation_cost=options.annotation_cost)
    by_name = {a.name: a for a in candidates}
    records = sorted(done.values(), key=lambda r: r.index)
    active = []
    for r in records:  # rebuild the posteriors (and the arms in use) from what was done
        name = r.provenance.get("annotation")
        if name in by_name and name not in active:
            sampler.add(name)
            active.append(name)
        if name in by_name:
            sampler.update(name, r.success)
    if not active:
        sampler.add(candidates[0].name)
        active.append(candidates[0].name)
    sim_config = load_sim_config()
    sim_config.render_cameras = options.cameras
    sim_config.validate()
    sim = MujocoSimulation(sim_config)
    recorder = InProcessRecorder(sim, out / "bags") if options.record else None
    executor = PlanExecutor(DirectSimBackend(sim, recorder.on_step if recorder else None), load_executor_config())
    planners = {a.name: WarpedDemoPlanner(demo, a, options.stride) for a in candidates}
    successes = sum(r.success for r in records)
    i = max((r.index for r in records), default=-1) + 1
    t0 = time.perf_counter()
    try:
        while successes < options.target_successes and i < options.attempts_cap:
            left = options.target_successes - successes
            unused = [a.name for a in candidates if a.name not in active]
            if unused and sampler.should_request_annotation(int(left / max(0.05, _best_mean(sampler)))):
                best = _best_name(sampler)
                sampler.add(unused[0])
                active.append(unused[0])
                log(f"annotation {unused[0]} added: a new one is expected to beat exploiting {best}")
            seed = seed_for("train", options.seed, i, options.task)
            if seed == demo.seed:
                seed += 1_000  # never the demo's own scene
            arm = sampler.select()
            if recorder:
                recorder.before_reset()
            record = run_episode_in_process(
                sim, planners[arm.name], executor, options.task, seed,
                episode_id=f"{options.task}_aug_{i:06d}", index=i, recorder=recorder,
            )  # fmt: skip
            record.split = "train"
            record.provenance["annotation"] = arm.name
            record.provenance["source_demo"] = demo.episode_id
            if record.bag and Path(record.bag).is_relative_to(out.resolve()):
                record.bag = str(Path(record.bag).relative_to(out.resolve()))
            store.append(record)
            sampler.update(arm.name, record.success)
            records.append(record)
            successes += record.success
            posterior = ", ".join(f"{a.name} {a.mean:.2f} ({a.pulls})" for a in sampler.arms)
            status = "ok  " if record.success else "FAIL"
            why = "" if record.success else f" -- {record.outcome.kind.value}: {record.outcome.reason[:120]}"
            log(f"[{i + 1}] {status} seed {seed} {arm.name}: {successes}/{options.target_successes} | {posterior}{why}")
            i += 1
    finally:
        sim.close()
    per = {}
    for a in candidates:
        mine = [r for r in records if r.provenance.get("annotation") == a.name]
        per[a.name] = {"attempts": len(mine), "successes": sum(r.success for r in mine),
                       "rate": round(sum(r.success for r in mine) / len(mine), 4) if mine else None,
                       "posterior_mean": round(sampler.arm(a.name).mean, 4) if a.name in active else None}  # fmt: skip
    summary = {
        "task": options.task,
        "demo": demo.episode_id,
        "successes": successes,
        "attempts": len(records),
        "generation_success": round(successes / len(records), 4) if records else 0.0,
        "annotations": per,
        "target_successes": options.target_successes,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "out": str(out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _best_mean(sampler: ThompsonSampler) -> float:
    return max((a.mean for a in sampler.arms), default=0.5)


def _best_name(sampler: ThompsonSampler) -> str:
    return max(sampler.arms, key=lambda a: a.mean).name if sampler.arms else "-"
