#!/usr/bin/env python3
"""Benchmark LLM Trainer-style augmentation, in one run: generation success of each annotation used
alone (the hand-engineered baseline first) against Thompson sampling over all of them, per task.

    .venv/bin/python scripts/benchmark_augment.py [--tasks stack_blocks,put_block,close_jar] [--attempts 30]

For each task, one source demo is recorded (the oracle's plan for seed 0, executed in process);
each arm then gets the same ``--attempts`` new scenes (train seeds 1..N), and Thompson sampling runs
until it has as many attempts. Absolute numbers hold for the machine in the header only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from llm_trainer.machine import describe_machine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="stack_blocks,put_block,close_jar")
    ap.add_argument("--attempts", type=int, default=30)
    args = ap.parse_args(argv)

    from llm_trainer.augment.annotation import VARIANTS
    from llm_trainer.augment.run import AugmentOptions, augment
    from llm_trainer.datagen.generate import GenerateOptions, generate

    work = Path(tempfile.mkdtemp(prefix="llm_trainer_bench_augment_"))
    rows = {}
    for task in args.tasks.split(","):
        generate(GenerateOptions(task=task, episodes=1, out=work / task / "demo", runner="inprocess",
                                 render_cameras=False), log=lambda _l: None)  # fmt: skip
        (bag,) = sorted((work / task / "demo" / "bags").iterdir())
        row = {}
        for variant in VARIANTS:
            s = augment(AugmentOptions(bag, task, args.attempts, work / task / variant, max_attempts=args.attempts,
                                       variants=[variant], record=False), log=lambda _l: None)  # fmt: skip
            row[f"hand:{variant}"] = (s["successes"], s["attempts"])
        s = augment(AugmentOptions(bag, task, args.attempts, work / task / "thompson", max_attempts=args.attempts,
                                   record=False), log=lambda _l: None)  # fmt: skip
        row["thompson"] = (s["successes"], s["attempts"])
        row["thompson_arms"] = {k: (v["successes"], v["attempts"]) for k, v in s["annotations"].items()}
        rows[task] = row
    print(f"# {describe_machine()}; {args.attempts} new scenes per arm and task")
    names = [f"hand:{v}" for v in VARIANTS] + ["thompson"]
    print("| task | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for task, row in rows.items():
        print(
            f"| {task} | "
            + " | ".join(f"{100 * row[n][0] / max(1, row[n][1]):.0f}% ({row[n][0]}/{row[n][1]})" for n in names)
            + " |"
        )  # noqa: E501
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
