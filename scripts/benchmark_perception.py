#!/usr/bin/env python3
"""Benchmark perception, in one run: accuracy and latency per three-view frame set against a
single-view baseline, per stage, and planner success on perceived vs ground-truth state.

    .venv/bin/python scripts/benchmark_perception.py [--tasks put_block,stack_blocks,...] [--seeds 0,1]

Scenes are recorded by the project (``record-bag``: compressed colour, lossless depth, intrinsics,
extrinsics, ground truth) and read back frame set by frame set, so the JPEG round trip is included.
Latency is the pipeline's own (no DDS; ``perception-eval`` measures the node over DDS). The success
rows run the oracle planner on the same test seeds with the simulator's scene and with the perceived
one (BLAZER Fig. 4 in simulation). Absolute numbers hold for the machine in the header only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from llm_trainer.machine import describe_machine

DEFAULT_TASKS = "put_block,stack_blocks,close_jar,cup_on_object,block_in_basket,meat_off_grill"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=DEFAULT_TASKS)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--success-tasks", default="put_block,stack_blocks,close_jar")
    ap.add_argument("--success-episodes", type=int, default=10)
    args = ap.parse_args(argv)

    from llm_trainer.evaluation.evaluate import EvaluateOptions, evaluate
    from llm_trainer.evaluation.planners import parse_planner_spec
    from llm_trainer.perception.evaluation import score, summary
    from llm_trainer.perception.pipeline import Perception
    from llm_trainer.perception.scene_bag import record_scene_bag, scene_frames, scene_queries
    from llm_trainer.recording.bag_reader import read_episode_metadata
    from llm_trainer.scene import SceneState

    work = Path(tempfile.mkdtemp(prefix="llm_trainer_bench_perception_"))
    perception = Perception()
    rows: dict[str, dict] = {"three views": {"errors": [], "ms": []}, "one view (front)": {"errors": [], "ms": []}}
    stages: dict[str, list[float]] = {}
    for task in args.tasks.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            bag = record_scene_bag(task, seed, work / f"{task}_{seed}", seconds=0.6)
            meta = read_episode_metadata(bag)["perception"]
            truth = SceneState.from_dict(meta["ground_truth"]).objects
            queries = scene_queries({"perception": meta})
            for label, cams in (("three views", None), ("one view (front)", {"front"})):
                for views in scene_frames(bag, cams):
                    result = perception.perceive(views, queries)
                    rows[label]["ms"].append(1000 * sum(result.seconds.values()))
                    if label == "three views":
                        for k, v in result.seconds.items():
                            stages.setdefault(k, []).append(1000 * v)
                last = perception.perceive(scene_frames(bag, cams)[-1], queries)
                rows[label]["errors"] += score(last.objects, truth, yaw_defined=set(meta["yaw_defined"]),
                                               alike=meta["alike"])  # fmt: skip
    print(f"# {describe_machine()}")
    print(f"# {len(args.tasks.split(','))} tasks x seeds {args.seeds}; classical (colour) backends")
    print("| views | detection | centre err [mm] | size err [mm] | yaw err [deg] | ms per frame set | vs one view |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = float(np.median(rows["one view (front)"]["ms"]))
    out = {}
    for label, r in rows.items():
        s = summary(r["errors"])
        ms = float(np.median(r["ms"]))
        out[label] = {**s, "ms_per_frame_set": round(ms, 1)}
        errs = f"{s['median_center_error_mm']} | {s['median_size_error_mm']} | {s['median_yaw_error_deg']}"
        print(f"| {label} | {100 * s['detection_rate']:.0f}% | {errs} | {ms:.1f} | {ms / base:.2f}x |")
    print("stage medians [ms] (three views): " + ", ".join(f"{k} {np.median(v):.1f}" for k, v in stages.items()))
    tasks = args.success_tasks.split(",")
    success = {}
    for state in ("ground_truth", "perception"):
        r = evaluate(EvaluateOptions(planners=[parse_planner_spec("oracle")], tasks=tasks,
                                     episodes=args.success_episodes, out=work / f"eval_{state}", state=state),
                     log=lambda _line: None)  # fmt: skip
        success[state] = {
            t: r["planners"][0]["tasks"][t]["verified"] / r["planners"][0]["tasks"][t]["attempts"] for t in tasks
        }
    print("| oracle planner on | " + " | ".join(tasks) + " |")
    print("|---|" + "---:|" * len(tasks))
    for state, rates in success.items():
        print(f"| {state} state | " + " | ".join(f"{100 * rates[t]:.0f}%" for t in tasks) + " |")
    print(json.dumps({"accuracy": out, "stages_ms": {k: round(float(np.median(v)), 1) for k, v in stages.items()},
                      "success": success}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
