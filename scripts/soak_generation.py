"""Soak: a long generation run through the node graph, with each node's memory sampled over time.

Runs ``generate`` (the graph runner) in this process and samples the resident memory (RSS, from
/proc) of every node process of the run every ``--every`` seconds, then prints a table per node:
RSS after the first tenth of the episodes, at the end, and the slope per 100 episodes (a leak shows
as a steady slope; allocator warm-up as an early rise that flattens).

    .venv/bin/python scripts/soak_generation.py --task put_block --episodes 1000 [--cameras]

``--tracemalloc DIR``: the nodes of ``--trace-nodes`` (default the executor) trace their Python
allocations (``llm_trainer.ros.node_runner``; a traced node runs several times slower) and write a
snapshot after a tenth of the episodes and near the end; the script prints, per node, the source
lines whose allocations grew most in between (a leak in Python code names itself; a flat
list with a rising RSS points below Python: the middleware, the allocator).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from llm_trainer.machine import describe_machine

NODES = ("sim_node", "planner_node", "executor_node", "recorder_node")


def node_processes(domain: int) -> dict[str, int]:
    """PIDs of this run's node processes (by module name and ROS domain)."""
    out: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"ROS_DOMAIN_ID={domain}".encode() not in environ:
            continue
        for node in NODES:
            if f"llm_trainer.nodes.{node}".encode() in cmdline:
                out[node] = int(entry.name)
    return out


def node_rss(domain: int) -> dict[str, float]:
    """RSS [MB] of this run's node processes."""
    out: dict[str, float] = {}
    for node, pid in node_processes(domain).items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        out[node] = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
    return out


def snapshot_nodes(domain: int, traced: str) -> None:
    """Ask the traced nodes for a tracemalloc snapshot (SIGUSR1). Only those: SIGUSR1 ends a process
    that has no handler for it (an untraced simulator died of it in the first try of this script)."""
    for node, pid in node_processes(domain).items():
        if traced and node not in traced.split(","):
            continue
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass


def allocation_growth(directory: Path, top: int = 8) -> dict[str, list[str]]:
    """Per node: the source lines whose live allocations grew most between the first and the last
    snapshot of one process (``<node>-<pid>-<n>``): after a graph restart, snapshots of two processes
    compare different amounts of work, not growth. The last process with two snapshots is used."""
    import tracemalloc

    out: dict[str, list[str]] = {}
    for node in NODES:
        by_pid: dict[str, list[Path]] = {}
        for path in sorted(directory.glob(f"{node}-*.tracemalloc")):
            by_pid.setdefault(path.name.split("-")[-2], []).append(path)
        snaps = next((s for s in reversed(list(by_pid.values())) if len(s) >= 2), None)
        if snaps is None:
            continue
        first, last = (tracemalloc.Snapshot.load(str(p)) for p in (snaps[0], snaps[-1]))
        stats = last.compare_to(first, "lineno")
        out[node] = [f"{s.size_diff / 1024:+.0f} KiB ({s.count_diff:+d} blocks) {s.traceback[0]}" for s in stats[:top]]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="put_block")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--cameras", action="store_true")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument("--domain-id", type=int, default=91)
    parser.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--tracemalloc", default=None, metavar="DIR", help="trace the nodes' Python allocations")
    parser.add_argument("--trace-nodes", default="executor_node", help="comma-separated nodes to trace ('' = all)")
    args = parser.parse_args(argv)
    if args.tracemalloc:
        from llm_trainer.ros.node_runner import TRACEMALLOC_ENV, TRACEMALLOC_NODES_ENV

        os.environ[TRACEMALLOC_ENV] = str(Path(args.tracemalloc).resolve())  # the nodes inherit it
        os.environ[TRACEMALLOC_NODES_ENV] = args.trace_nodes

    from llm_trainer.datagen.generate import GenerateOptions, generate

    print(f"# {describe_machine()}", flush=True)
    samples: list[tuple[float, int, dict[str, float]]] = []
    done = {"n": 0}
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(args.every):
            samples.append((time.monotonic(), done["n"], node_rss(args.domain_id)))

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="llmt-soak-")) / "run"
    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    t0 = time.monotonic()

    def log(line: str) -> None:
        if line.startswith("["):
            done["n"] += 1
            if args.tracemalloc and done["n"] in (max(1, args.episodes // 10), max(2, args.episodes * 19 // 20)):
                snapshot_nodes(args.domain_id, args.trace_nodes)
            if done["n"] % 50 == 0:
                print(f"{done['n']} episodes, {time.monotonic() - t0:.0f} s", flush=True)

    options = GenerateOptions(task=args.task, episodes=args.episodes, out=out, render_cameras=args.cameras,
                              base_domain_id=args.domain_id)  # fmt: skip
    summary = generate(options, log=log)
    stop.set()
    thread.join()
    rows = {}
    for node in NODES:
        series = [(n, rss[node]) for _, n, rss in samples if node in rss]
        if len(series) < 3:
            continue
        early = [r for n, r in series if n >= args.episodes // 10] or [series[0][1]]
        first, last = early[0], series[-1][1]
        (n0, r0), (n1, r1) = (series[len(series) // 2], series[-1])
        slope = 100 * (r1 - r0) / max(n1 - n0, 1)
        rows[node] = {"rss_mb_after_10pct": round(first, 1), "rss_mb_end": round(last, 1),
                      "slope_mb_per_100_episodes_second_half": round(slope, 2)}  # fmt: skip
    print(f"\n{summary['episodes']} episodes ({summary['successes']} verified) in {summary['wall_time_s']:.0f} s")
    print("| node | RSS after 10 % of episodes [MB] | RSS at the end [MB] | slope, 2nd half [MB / 100 episodes] |")
    print("|---|---|---|---|")
    for node, r in rows.items():
        print(
            f"| {node} | {r['rss_mb_after_10pct']} | {r['rss_mb_end']} | {r['slope_mb_per_100_episodes_second_half']} |"
        )
    if args.tracemalloc:
        for node, lines in allocation_growth(Path(args.tracemalloc)).items():
            print(f"\n{node}: Python allocations that grew most, {args.episodes // 10} -> "
                  f"{args.episodes * 19 // 20} episodes")  # fmt: skip
            for line in lines:
                print("  " + line)
    print(json.dumps({"episodes": summary["episodes"], "successes": summary["successes"], "nodes": rows,
                      "graph_failures": len(summary["graph_failures"]), "out": str(out)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    sys.exit(main())
