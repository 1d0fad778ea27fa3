"""LLM-iTeach against behaviour cloning, several tasks in one run (the README's table and curves).

    .venv/bin/python scripts/benchmark_iteach.py --tasks put_block,stack_blocks --episodes 60 --out runs/iteach

Per task: ``llm-trainer iteach`` with the same configuration (config/iteach.yaml plus the overrides
below); train seeds 0..episodes-1, test seeds 1000000..1000000+eval_episodes-1. Writes
``<out>/<task>/`` per task and ``<out>/table.md`` + ``<out>/curves.png`` over all of them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from llm_trainer.iteach.train import iteach, load_iteach_config, markdown_table, plot_curves

MAX_STEPS = {"stack_blocks": 500}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="put_block,stack_blocks")
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=15)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--updates", type=int, default=300, help="gradient steps per episode")
    parser.add_argument("--warm-start", type=int, default=0)
    parser.add_argument("--out", default="runs/iteach")
    args = parser.parse_args()
    out = Path(args.out)
    summaries = []
    t0 = time.perf_counter()
    for task in [t for t in args.tasks.split(",") if t]:
        config = load_iteach_config()
        config.task, config.episodes, config.eval_every = task, args.episodes, args.eval_every
        config.eval_episodes, config.updates_per_episode = args.eval_episodes, args.updates
        config.warm_start_demos = args.warm_start
        config.max_steps = MAX_STEPS.get(task, config.max_steps)
        summaries.append(iteach(config, out / task, log=lambda line, task=task: print(f"[{task}] {line}", flush=True)))
    (out / "table.md").write_text(markdown_table(summaries))
    plot_curves(summaries, out / "curves.png")
    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}"
    print(markdown_table(summaries), end="")
    print(json.dumps({"tasks": [s["task"] for s in summaries], "wall_time_s": round(time.perf_counter() - t0, 1),
                      "machine": machine}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
