#!/usr/bin/env python3
"""Oracle success per task, in process (the same episode loop the node graph runs, without DDS).

    .venv/bin/python scripts/measure_oracle_success.py --episodes 50 --tasks all [--seed 0] [--workers 1]

Episode i of a task uses seed S + i, like ``llm-trainer generate``. Prints a markdown table (task,
which BLAZER set it comes from, oracle-solvable, successes/N, rate, the most common failure) and,
with ``--json``, writes every episode's outcome. Tasks the oracle cannot solve are listed, not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def _failure_reason(record) -> str:
    """The typed outcome, plus the predicate's failed conditions when the task was not achieved."""
    reason = f"{record.outcome.kind.value}: {record.outcome.reason[:90]}"
    if record.outcome.kind.value == "task_not_achieved":
        failed = [k for k, v in record.success_report.get("conditions", {}).items() if not v]
        reason = "task_not_achieved: " + ", ".join(failed)
    return reason


def run_task(task: str, episodes: int, seed: int) -> dict:
    from llm_trainer.datagen.episode import make_in_process_runner, run_episode_in_process
    from llm_trainer.planning.oracle import OraclePlanner
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    if not get_task(task).oracle_solvable:
        return {"task": task, "oracle_solvable": False, "episodes": []}
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    planner = OraclePlanner()
    executor = make_in_process_runner(sim, planner)
    rows = []
    t0 = time.perf_counter()
    for s in range(seed, seed + episodes):
        try:
            outcome = run_episode_in_process(sim, planner, executor, task, s)
            rows.append(
                {
                    "seed": s,
                    "success": outcome.success,
                    "reason": "" if outcome.success else _failure_reason(outcome),
                    "instruction": outcome.instruction,
                }
            )
        except Exception as exc:  # a crash is a failed episode with its reason, not a lost table
            rows.append({"seed": s, "success": False, "reason": f"error: {type(exc).__name__}: {exc}"[:120]})
    sim.close()
    return {"task": task, "oracle_solvable": True, "episodes": rows, "wall_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", default="all", help="comma-separated task names, or 'all'")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--workers", type=int, default=1, help="processes (one task each at a time)")
    parser.add_argument("--json", default=None, help="write every episode's outcome here")
    args = parser.parse_args(argv)

    from llm_trainer.machine import describe_machine
    from llm_trainer.tasks.registry import BLAZER_TRAINING_TASKS, task_names

    names = task_names() if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(names) - set(task_names()))
    if unknown:
        parser.error(f"unknown task(s): {', '.join(unknown)}")
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(run_task, names, [args.episodes] * len(names), [args.seed] * len(names)))
    else:
        results = []
        for name in names:
            results.append(run_task(name, args.episodes, args.seed))
            r = results[-1]
            ok = sum(e["success"] for e in r["episodes"])
            print(f"{name}: {ok}/{len(r['episodes'])} ({r.get('wall_s', 0):.0f} s)", file=sys.stderr, flush=True)

    last = args.seed + args.episodes - 1
    command = " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])
    host = describe_machine()
    print(f"Oracle success, in process, {args.episodes} episodes per task (seeds {args.seed}..{last})")
    print(f"`{command}` on {host}, {time.perf_counter() - t0:.0f} s\n")
    print("| task | BLAZER set | oracle-solvable | successes | rate | most common failure |")
    print("|---|---|---|---|---|---|")
    for r in results:
        group = "training (Table II)" if r["task"] in BLAZER_TRAINING_TASKS else "real world (Fig. 5)"
        if not r["oracle_solvable"]:
            print(f"| {r['task']} | {group} | no (LLM plans only) | - | - | - |")
            continue
        eps = r["episodes"]
        ok = sum(e["success"] for e in eps)
        reasons = Counter(e["reason"] for e in eps if not e["success"])
        common = f"{reasons.most_common(1)[0][0]} ({reasons.most_common(1)[0][1]}x)" if reasons else "-"
        print(f"| {r['task']} | {group} | yes | {ok}/{len(eps)} | {100 * ok / max(len(eps), 1):.0f}% | {common} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
