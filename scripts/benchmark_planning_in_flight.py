#!/usr/bin/env python3
"""Planning throughput with 1, 2 and 4 requests in flight against ``serve-llm`` (llama.cpp, SmolLM2).

    .venv/bin/python scripts/benchmark_planning_in_flight.py [--episodes 8] [--in-flight 1,2,4]

One server for the whole run; for each K, ``generate --runner inprocess --concurrency K`` runs the
same seeds (plans are requested ahead while earlier episodes execute). Reported per K: episodes
per minute, its ratio to K = 1 measured in the same run, and the verdicts (which must not depend on
K). llama-cpp-python's server answers one request at a time (no parallel slots), so on it K > 1
can only hide the execution time behind planning; a batching server (vLLM, llama.cpp's own
``llama-server --parallel N``) also overlaps the generations. Absolute numbers hold for the machine
in the header only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from llm_trainer.machine import describe_machine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="put_block")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--in-flight", default="1,2,4")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--constraint", default="grammar", help="none | grammar")
    args = ap.parse_args(argv)

    from llm_trainer.datagen.generate import GenerateOptions, generate
    from llm_trainer.planning.serve import ServeOptions, ServerProcess, free_port

    work = Path(tempfile.mkdtemp(prefix="llm_trainer_inflight_"))
    serve = ServeOptions(model="smollm2", port=free_port(), server="llama.cpp", threads=args.threads)
    overrides = {"llm.constraint": args.constraint, "llm.prompt.example": False, "llm.prompt.reasoning": False}
    rows = []
    print(f"# {describe_machine()}", flush=True)
    with ServerProcess(serve, work / "server.log") as server:
        for k in [int(x) for x in args.in_flight.split(",")]:
            summary = generate(
                GenerateOptions(
                    task=args.task,
                    episodes=args.episodes,
                    planner="openai",
                    out=work / f"k{k}",
                    split="test",
                    runner="inprocess",
                    render_cameras=False,
                    record=False,
                    concurrency=k,
                    planner_overrides=overrides,
                    planner_base_url=server.base_url,
                ),  # fmt: skip
                log=lambda _line: None,
            )
            verdicts = [
                json.loads(line)["outcome"]["kind"]
                for line in (work / f"k{k}" / "episodes.jsonl").read_text().splitlines()
            ]
            rows.append({"in_flight": k, "episodes_per_minute": summary["episodes_per_minute"], "verdicts": verdicts})
    base = rows[0]["episodes_per_minute"]
    print("| requests in flight | episodes/min | vs 1 in flight | verdicts as with 1 |")
    print("|---:|---:|---:|---|")
    for row in rows:
        same = "yes" if row["verdicts"] == rows[0]["verdicts"] else "NO"
        rate = row["episodes_per_minute"]
        print(f"| {row['in_flight']} | {rate:.1f} | {rate / base:.2f}x | {same} |")
    print(json.dumps({"task": args.task, "episodes": args.episodes, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
