#!/usr/bin/env python3
"""Benchmark data generation: in process vs through the DDS node graph, with and without cameras.

    .venv/bin/python scripts/benchmark_generation.py [--episodes 6] [--task stack_blocks] [--no-peer]

Everything runs in one go on this machine; the table reports episodes per minute, the physics
real-time factor (simulated seconds per second of mj_step) and the end-to-end real-time factor
(simulated seconds per wall second), with ratios against the in-process, camera-less baseline
measured in the same run. Absolute numbers hold for the machine printed in the header only.

A peer row, robosuite 1.5.2's scripted two-cube Stack (MimicGen's simulator), is added when its side
venv exists (``bash scripts/peer_venvs.sh robosuite``; ROBOSUITE_PYTHON overrides the interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from llm_trainer.machine import describe_machine

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

REPO = Path(__file__).resolve().parent.parent


def machine() -> str:
    return describe_machine()


def in_process(task: str, episodes: int, cameras: bool, camera_rate: float) -> dict:
    from llm_trainer.datagen.episode import make_in_process_runner, run_episode_in_process
    from llm_trainer.datagen.run_store import seed_for
    from llm_trainer.planning.oracle import OraclePlanner
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig

    sim = MujocoSimulation(SimConfig(render_cameras=cameras, camera_rate_hz=camera_rate))
    planner = OraclePlanner()
    executor = make_in_process_runner(sim, planner)
    frames = {"n": 0, "next": 0.0}

    def render_cameras(s) -> None:
        # The same work the simulator node does per camera tick, minus DDS.
        if s.time >= frames["next"]:
            frames["next"] = s.time + 1.0 / camera_rate
            for cam in s.config.cameras:
                s.render(cam.name)
                frames["n"] += 1

    if cameras:
        executor.backend.on_step = render_cameras
    successes, sim_time, planning = 0, 0.0, 0.0
    t0 = time.perf_counter()
    for i in range(episodes):
        frames["next"] = 0.0
        outcome = run_episode_in_process(sim, planner, executor, task, seed_for("train", 0, i, task))
        successes += outcome.success
        sim_time += sim.time
        statuses = outcome.execution.statuses if outcome.execution else []
        planning += sum(s["planning_time"] for s in statuses)
    wall = time.perf_counter() - t0
    result = {
        "episodes": episodes,
        "successes": successes,
        "wall_s": wall,
        "sim_s": sim_time,
        "physics_rtf": sim.physics_steps * sim.model.opt.timestep / sim.physics_wall_time,
        "frames": frames["n"],
        # the floor: MuJoCo's steps plus the executor's IK and motion planning, nothing else
        "floor_s": sim.physics_wall_time + planning,
    }
    sim.close()
    return result


def through_graph(
    task: str, episodes: int, cameras: bool, camera_rate: float, record: bool, runner: str = "graph"
) -> dict:
    from llm_trainer.datagen.generate import GenerateOptions, generate
    from llm_trainer.episodes import EpisodeRecord

    with tempfile.TemporaryDirectory(prefix="llmt-bench-") as out:
        options = GenerateOptions(
            task=task,
            episodes=episodes,
            out=Path(out),
            render_cameras=cameras,
            camera_rate_hz=camera_rate,
            record=record,
            runner=runner,
        )
        summary = generate(options, log=lambda _line: None)
        lines = (Path(out) / "episodes.jsonl").read_text().splitlines()
        sim_time = sum(EpisodeRecord.from_json(line).timing["sim_time"] for line in lines)
    if summary["errors"]:
        raise RuntimeError("; ".join(summary["errors"]))
    # Graph start-up (process launch + discovery) is reported apart from the per-episode rate.
    return {
        "episodes": summary["episodes"],
        "successes": summary["successes"],
        "wall_s": summary["wall_time_s"] - summary["startup_time_s"],
        "startup_s": summary["startup_time_s"],
        "sim_s": sim_time,
    }


def robosuite_peer(episodes: int) -> tuple[str, dict] | None:
    """robosuite's Stack driven by a scripted policy, in its own venv; None (with a note) if absent or failed."""
    python = os.environ.get("ROBOSUITE_PYTHON") or str(REPO / ".venv-peers" / "robosuite" / "bin" / "python")
    if not Path(python).exists():
        print(f"robosuite peer skipped: no {python} (build it with: bash scripts/peer_venvs.sh robosuite)")
        return None
    script = REPO / "scripts" / "peer_robosuite_stack.py"
    try:
        proc = subprocess.run(
            [python, str(script), "--episodes", str(episodes)],
            capture_output=True,
            text=True,
            timeout=120 + 60 * episodes,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        print("robosuite peer skipped: timed out")
        return None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"robosuite peer failed (exit {proc.returncode}): {tail[0]}")
        return None
    peer = json.loads(lines[-1])
    # Same keys as the other rows; environment build + numba warm-up stay out of the rate, like graph start-up.
    row = {
        "episodes": peer["episodes"],
        "successes": peer["successes"],
        "wall_s": peer["seconds_per_episode"] * peer["episodes"],
        "sim_s": peer["sim_seconds_per_episode"] * peer["episodes"],
        "build_s": peer["env_build_s"] + peer.get("warmup_s", 0.0),
    }
    return f"robosuite {peer['robosuite']} scripted Stack (peer, no cameras)", row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="stack_blocks")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--camera-rate", type=float, default=5.0)
    parser.add_argument("--no-peer", action="store_true", help="skip the robosuite peer row")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(
        f"task {args.task}, {args.episodes} episodes per configuration, oracle planner, cameras 3 x 320x240 "
        f"at {args.camera_rate} Hz simulated\n"
    )
    baseline = in_process(args.task, args.episodes, False, args.camera_rate)
    floor = {**baseline, "wall_s": baseline["floor_s"]}
    floor.pop("physics_rtf")
    rows = [
        ("floor: physics (mj_step) + IK/motion planning", floor),
        ("in-process, no cameras (baseline)", baseline),
        ("in-process, cameras", in_process(args.task, args.episodes, True, args.camera_rate)),
        (
            "DDS graph, no cameras, no recording",
            through_graph(args.task, args.episodes, False, args.camera_rate, False),
        ),
        (
            "DDS graph, no cameras, recording (MCAP + HDF5)",
            through_graph(args.task, args.episodes, False, args.camera_rate, True),
        ),  # fmt: skip
        ("DDS graph, cameras, no recording", through_graph(args.task, args.episodes, True, args.camera_rate, False)),
        (
            "DDS graph, cameras, recording (MCAP + HDF5)",
            through_graph(args.task, args.episodes, True, args.camera_rate, True),
        ),
        (
            "generate --runner inprocess, no cameras, no recording",
            through_graph(args.task, args.episodes, False, args.camera_rate, False, runner="inprocess"),
        ),
        (
            "generate --runner inprocess, no cameras, recording",
            through_graph(args.task, args.episodes, False, args.camera_rate, True, runner="inprocess"),
        ),
        (
            "generate --runner inprocess, cameras, recording",
            through_graph(args.task, args.episodes, True, args.camera_rate, True, runner="inprocess"),
        ),
    ]
    peer = None if args.no_peer else robosuite_peer(args.episodes)
    if peer is not None:
        rows.append(peer)
    base_epm = 60 * rows[1][1]["episodes"] / rows[1][1]["wall_s"]
    header = f"{'configuration':<52}{'ok':>6}{'ep/min':>9}{'x base':>8}{'e2e RTF':>9}{'physics RTF':>13}"
    print(header)
    print("-" * len(header))
    for name, r in rows:
        epm = 60 * r["episodes"] / r["wall_s"]
        physics = f"{r['physics_rtf']:.0f}" if "physics_rtf" in r else "-"
        print(
            f"{name:<52}{r['successes']:>3}/{r['episodes']:<2}{epm:>9.1f}{epm / base_epm:>8.2f}"
            f"{r['sim_s'] / r['wall_s']:>9.1f}{physics:>13}"
        )
    startups = [r["startup_s"] for _, r in rows if "startup_s" in r]
    print(
        f"\ngraph start-up (processes + DDS discovery), not in the rates above: "
        f"{min(startups):.1f}-{max(startups):.1f} s"
    )
    if peer is not None:
        print(
            f"robosuite peer: its own Stack task (two cubes, Panda, OSC at 20 Hz, scripted policy) in its side venv; "
            f"env build + numba warm-up {peer[1]['build_s']:.1f} s, not in the rate"
        )
    print("e2e RTF: simulated seconds per wall second over whole episodes (reset, plan, execute, check).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
