#!/usr/bin/env python3
"""Benchmark of the executor's motion layer: IK, planning around an obstacle, executed path length.

For N random trials (default 100): a reachable top-down start pose and target pose at least 0.25 m
apart (horizontally), and a box standing on the table halfway between them, tall enough that the
straight TCP line runs through it. Per trial it measures

- the IK solve time for the target (damped least squares from the home posture),
- the planning time of ``MotionPlanner.plan`` (straight line tried and rejected, RRT-Connect,
  shortcutting, timing) and whether it found a path,
- the path executed by the simulated arm (MuJoCo physics, position servos): TCP path length against
  the straight-line distance, the final position error, and any contact between the arm and the box.

Medians (and 90th percentiles) are printed as a table and as one JSON line at the end.

    .venv/bin/python scripts/benchmark_executor.py [--trials 100] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time

import numpy as np

from llm_trainer.execution.executor_config import ExecutorConfig
from llm_trainer.motion.collision import Box, CollisionChecker, CollisionContext
from llm_trainer.motion.kinematics import PandaKinematics
from llm_trainer.motion.planning import MotionPlanner
from llm_trainer.motion.trajectory import plan_straight_line
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.mujoco_sim import MujocoSimulation
from llm_trainer.tasks.base import ObjectSpec, SuccessReport, Task, TaskInstance

OBSTACLE_FOOTPRINT = (0.06, 0.06)  # [m]
REGION = (0.35, 0.65, -0.3, 0.3, 0.05, 0.3)  # x, y, z ranges of start and target TCP positions


class _Obstacle(Task):
    name = "benchmark_obstacle"
    instruction_template = "none"

    def __init__(self, spec: ObjectSpec):
        self.spec = spec

    def sample(self, rng, seed):
        return TaskInstance(self.name, seed, "none", {}, [self.spec])

    def check_success(self, scene, goal):
        return SuccessReport(True)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _sample_pose(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    x0, x1, y0, y1, z0, z1 = REGION
    return np.array([rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(z0, z1)]), float(rng.uniform(-1.5, 1.5))


def make_trial(rng: np.random.Generator, kin: PandaKinematics, config: ExecutorConfig):
    """A start configuration, a target pose and an obstacle the straight line runs through."""
    margin = config.collision.margin
    while True:
        (p0, yaw0), (p1, yaw1) = _sample_pose(rng), _sample_pose(rng)
        if np.linalg.norm(p1[:2] - p0[:2]) < 0.25:
            continue
        start = kin.solve_top_down(p0, yaw0, panda.HOME_Q)
        if not start.success:
            continue
        mid = (p0 + p1) / 2
        height = float(max(p0[2], p1[2]) + 0.03)  # taller than both ends: the line must go through it
        size = (*OBSTACLE_FOOTPRINT, height)
        box = Box("obstacle", (float(mid[0]), float(mid[1]), height / 2), float(rng.uniform(-0.8, 0.8)), size)
        checker = CollisionChecker([("obstacle", size)], margin=margin)
        ws = config.safety.workspace
        checker.set_context(
            CollisionContext(
                obstacles=(box,), workspace=(ws[0], ws[1], ws[2], ws[3], ws[4] + config.safety.table_clearance, ws[5])
            )
        )
        if not checker.is_free(start.q):
            continue
        t0 = time.perf_counter()
        goal_ik = kin.solve_top_down(p1, yaw1, panda.HOME_Q)
        ik_time = time.perf_counter() - t0
        if not goal_ik.success or not checker.is_free(goal_ik.q):
            continue
        straight = plan_straight_line(kin, start.q, p1, yaw1, config.timing)
        if not straight.success or checker.first_collision(straight.trajectory.positions) is None:
            continue
        return start.q, p1, yaw1, box, checker, ik_time, goal_ik.iterations


def execute_in_sim(sim: MujocoSimulation, spec: ObjectSpec, q0: np.ndarray, plan, target: np.ndarray, seed: int):
    """Run a planned motion on the simulated arm beside the obstacle; what the TCP did and what it touched."""
    sim.reset(_Obstacle(spec), seed)
    sim.set_arm_configuration(q0)
    obstacle = sim.model.geom("obstacle_geom").id
    trace, contacts = [sim.tcp_pose()[0]], []

    def on_step(s: MujocoSimulation) -> None:
        trace.append(s.tcp_pose()[0])
        for c in range(s.data.ncon):
            con = s.data.contact[c]
            if obstacle in (con.geom1, con.geom2):
                contacts.append(c)

    traj = plan.trajectory
    outcome = sim.follow_trajectory(traj.times, traj.positions, on_step=on_step)
    executed = float(np.linalg.norm(np.diff(np.array(trace), axis=0), axis=1).sum())
    return {
        "executed_m": executed,
        "planned_path_m": plan.path_length,
        "length_ratio": executed / plan.straight_length,
        "final_error_mm": float(np.linalg.norm(sim.tcp_pose()[0] - target)) * 1e3,
        "contacts": len(contacts),
        "controller_ok": outcome.error_code == 0,
        "duration_s": traj.duration,
        "vertices": plan.stats.get("vertices", 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="", help="also write the summary and every trial to this file")
    args = parser.parse_args(argv)
    config = ExecutorConfig()
    kin = PandaKinematics()
    rng = np.random.default_rng(args.seed)
    sim = MujocoSimulation()
    trials = []
    t_start = time.perf_counter()
    for k in range(args.trials):
        q0, target, yaw, box, checker, ik_time, ik_iters = make_trial(rng, kin, config)
        plan = MotionPlanner(kin, checker, config.collision).plan(q0, target, yaw, config.timing, seed=k)
        row = {
            "trial": k,
            "ik_time_ms": ik_time * 1e3,
            "ik_iterations": ik_iters,
            "planned": plan.success,
            "method": plan.method,
            "planning_time_ms": plan.planning_time * 1e3,
            "straight_m": plan.straight_length,
        }
        if plan.success:
            spec = ObjectSpec("obstacle", "obstacle", box.size, box.position, box.yaw, movable=False)
            row.update(execute_in_sim(sim, spec, q0, plan, target, k))
        trials.append(row)
    wall = time.perf_counter() - t_start
    sim.close()

    def stat(key: str, rows) -> tuple[float, float]:
        values = np.array([r[key] for r in rows if key in r], float)
        return (float(np.median(values)), float(np.percentile(values, 90))) if len(values) else (math.nan, math.nan)

    ok = [r for r in trials if r["planned"]]
    summary = {
        "trials": len(trials),
        "planned": len(ok),
        "executed_without_contact": sum(1 for r in ok if r["contacts"] == 0 and r["controller_ok"]),
        "median_ik_time_ms": stat("ik_time_ms", trials)[0],
        "median_ik_iterations": stat("ik_iterations", trials)[0],
        "median_planning_time_ms": stat("planning_time_ms", ok)[0],
        "p90_planning_time_ms": stat("planning_time_ms", ok)[1],
        "median_straight_m": stat("straight_m", ok)[0],
        "median_executed_m": stat("executed_m", ok)[0],
        "median_length_ratio": stat("length_ratio", ok)[0],
        "p90_length_ratio": stat("length_ratio", ok)[1],
        "median_final_error_mm": stat("final_error_mm", ok)[0],
        "median_motion_duration_s": stat("duration_s", ok)[0],
        "wall_time_s": wall,
        "cpu": _cpu(),
        "python": sys.version.split()[0],
        "seed": args.seed,
    }
    print(f"executor benchmark: {len(trials)} random targets behind an obstacle, seed {args.seed}, {summary['cpu']}")
    print(
        f"  IK solve (from home)          median {summary['median_ik_time_ms']:.2f} ms "
        f"({summary['median_ik_iterations']:.0f} iterations)"
    )
    print(
        f"  planning around the obstacle  median {summary['median_planning_time_ms']:.0f} ms, "
        f"p90 {summary['p90_planning_time_ms']:.0f} ms; found {len(ok)}/{len(trials)}"
    )
    print(
        f"  executed TCP path             median {summary['median_executed_m']:.3f} m vs straight "
        f"{summary['median_straight_m']:.3f} m: ratio median {summary['median_length_ratio']:.2f}, "
        f"p90 {summary['p90_length_ratio']:.2f}"
    )
    print(
        f"  executed without touching it  {summary['executed_without_contact']}/{len(ok)}; final error median "
        f"{summary['median_final_error_mm']:.1f} mm; motion median {summary['median_motion_duration_s']:.1f} s"
    )
    print(f"  wall time {wall:.1f} s")
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()}))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"summary": summary, "trials": trials}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
