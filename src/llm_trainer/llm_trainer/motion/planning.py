"""Collision-aware motion planning for one ``move_gripper``: the straight line when it is free, else RRT-Connect.

Why our own small planner and not OMPL / mplib: the collision model must be the simulator's own
geometry (``llm_trainer.motion.collision`` builds it from the same Panda description), with the
contacts a pick-and-place plan needs allowed per motion; a MuJoCo check costs ~10 us here, so a
bidirectional RRT in numpy plans around a box in tens of milliseconds, and nothing needs
installing (mplib wants numpy<2; pin + ompl would need the same geometry described a second time).

Order of attempts for a move from ``q_start`` to a top-down TCP pose:
1. the straight TCP line (IK every cm, ``plan_straight_line``), checked densely for collisions:
   used whenever it is collision-free, because straight descents and lifts are what the plans mean;
2. otherwise a collision-free goal configuration (IK from several starts) and RRT-Connect in joint
   space between the two (joint limits, TCP inside the safety box, optional tool-tilt limit),
   shortened by random shortcuts and timed with a rest-to-rest quintic per segment.
The result says which ran, how long planning took and, on failure, whether the target was
unreachable or every way to it collided (and with what).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from llm_trainer.motion.collision import CollisionChecker, PathCollision
from llm_trainer.motion.kinematics import PandaKinematics, top_down_rotation
from llm_trainer.motion.trajectory import JointTrajectory, TimingLimits, plan_straight_line, time_joint_path
from llm_trainer.sim import panda_description as panda


@dataclass
class PlannerSettings:
    """How hard to look for a collision-free path (``collision`` section of ``config/executor.yaml``)."""

    enabled: bool = True  # false: straight lines only, no collision checks (not for hardware)
    margin: float = 0.005  # [m] clearance every robot part keeps from what it may not touch
    self_collision: bool = True  # forearm/hand against base/upper arm
    resolution: float = 0.02  # [rad] largest joint step between two collision checks along a path
    rrt_max_time: float = 2.0  # [s] per motion
    rrt_step: float = 0.3  # [rad] longest tree extension
    shortcut_iterations: int = 80
    goal_attempts: int = 10  # IK starts tried for a collision-free goal configuration
    max_tool_tilt_deg: float = 45.0  # planned (non-straight) paths keep the tool within this of pointing down
    seed: int = 0  # random seed of each motion's planner: the same request gives the same path

    def validate(self) -> None:
        if not 0.0 <= self.margin <= 0.05:
            raise ValueError("collision.margin must be within [0, 0.05] m")
        if not 0.001 <= self.resolution <= 0.1:
            raise ValueError("collision.resolution must be within [0.001, 0.1] rad")
        if self.rrt_max_time <= 0 or self.rrt_step <= 0:
            raise ValueError("collision.rrt_max_time and collision.rrt_step must be positive")
        if self.shortcut_iterations < 0 or self.goal_attempts < 1:
            raise ValueError("collision.shortcut_iterations must be >= 0 and collision.goal_attempts >= 1")
        if not 0 < self.max_tool_tilt_deg <= 180:
            raise ValueError("collision.max_tool_tilt_deg must be within (0, 180]")


@dataclass
class MotionPlan:
    success: bool
    trajectory: JointTrajectory
    method: str = ""  # "straight" | "rrt_connect"
    error: str = ""  # "" | "unreachable" | "collision"
    message: str = ""
    planning_time: float = 0.0  # [s]
    straight_length: float = 0.0  # [m] TCP distance start -> target
    path_length: float = 0.0  # [m] TCP path length of the planned motion
    straight_collision: str = ""  # why the straight line was not used, when it collided
    stats: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- RRT
class _Tree:
    def __init__(self, root: np.ndarray):
        self.nodes = np.zeros((256, len(root)))
        self.nodes[0] = root
        self.parent = [-1]
        self.n = 1

    def add(self, q: np.ndarray, parent: int) -> int:
        if self.n == len(self.nodes):
            self.nodes = np.vstack([self.nodes, np.zeros_like(self.nodes)])
        self.nodes[self.n] = q
        self.parent.append(parent)
        self.n += 1
        return self.n - 1

    def nearest(self, q: np.ndarray) -> int:
        return int(np.argmin(np.sum((self.nodes[: self.n] - q) ** 2, axis=1)))

    def path_to_root(self, i: int) -> list[np.ndarray]:
        out = []
        while i >= 0:
            out.append(self.nodes[i].copy())
            i = self.parent[i]
        return out


_TRAPPED, _ADVANCED, _REACHED = 0, 1, 2


def rrt_connect(
    checker: CollisionChecker,
    q_start: np.ndarray,
    q_goal: np.ndarray,
    rng: np.random.Generator,
    *,
    step: float = 0.3,
    resolution: float = 0.02,
    max_time: float = 2.0,
    lower: np.ndarray = panda.JOINT_LOWER,
    upper: np.ndarray = panda.JOINT_UPPER,
) -> tuple[list[np.ndarray] | None, dict[str, float]]:
    """Bidirectional RRT (Kuffner & LaValle 2000) between two free configurations; None when out of time."""
    q_start, q_goal = np.asarray(q_start, float), np.asarray(q_goal, float)
    stats = {"iterations": 0.0, "nodes": 2.0}
    if checker.segment_free(q_start, q_goal, resolution):
        return [q_start, q_goal], stats
    start_tree = _Tree(q_start)
    trees = [start_tree, _Tree(q_goal)]
    lo, hi = lower + 0.02, upper - 0.02
    deadline = time.perf_counter() + max_time

    def extend(tree: _Tree, target: np.ndarray) -> tuple[int, int]:
        near = tree.nearest(target)
        q_near = tree.nodes[near]
        delta = target - q_near
        dist = float(np.linalg.norm(delta))
        reached = dist <= step
        q_new = target if reached else q_near + delta * (step / dist)
        if not checker.segment_free(q_near, q_new, resolution):
            return _TRAPPED, -1
        return (_REACHED if reached else _ADVANCED), tree.add(q_new.copy(), near)

    while time.perf_counter() < deadline:
        stats["iterations"] += 1
        a, b = trees
        q_rand = rng.uniform(lo, hi)
        state, new = extend(a, q_rand)
        if state != _TRAPPED:
            target = a.nodes[new]
            while True:
                state_b, new_b = extend(b, target)
                if state_b != _ADVANCED:
                    break
            if state_b == _REACHED:
                path = a.path_to_root(new)[::-1] + b.path_to_root(new_b)[1:]
                if a is not start_tree:
                    path = path[::-1]
                stats["nodes"] = float(a.n + b.n)
                return path, stats
        trees.reverse()
    stats["nodes"] = float(trees[0].n + trees[1].n)
    return None, stats


def shortcut(
    checker: CollisionChecker,
    path: list[np.ndarray],
    rng: np.random.Generator,
    iterations: int,
    resolution: float = 0.02,
) -> list[np.ndarray]:
    """Random shortcutting: replace the stretch between two points of the path by a straight segment when free."""
    path = [np.asarray(q, float) for q in path]
    for _ in range(iterations):
        if len(path) <= 2:
            break
        i, j = sorted(rng.choice(len(path), size=2, replace=False))
        if j - i < 2:
            continue
        if checker.segment_free(path[i], path[j], resolution):
            path = path[: i + 1] + path[j:]
    return path


# ---------------------------------------------------------------------------------------------- planner
class MotionPlanner:
    """Plans one ``move_gripper`` for a given collision context (see the module docstring)."""

    def __init__(self, kin: PandaKinematics, checker: CollisionChecker | None, settings: PlannerSettings | None = None):
        self.kin = kin
        self.checker = checker
        self.settings = settings or PlannerSettings()

    def plan(
        self,
        q_start: np.ndarray,
        target_position: np.ndarray,
        target_yaw: float,
        limits: TimingLimits,
        *,
        seed: int | None = None,
    ) -> MotionPlan:
        t0 = time.perf_counter()
        s = self.settings
        q_start = np.asarray(q_start, float)
        target_position = np.asarray(target_position, float)
        straight = plan_straight_line(self.kin, q_start, target_position, target_yaw, limits)
        start_pos = self.kin.forward(q_start)[0]
        straight_length = float(np.linalg.norm(target_position - start_pos))

        def done(plan: MotionPlan) -> MotionPlan:
            plan.planning_time = time.perf_counter() - t0
            plan.straight_length = straight_length
            return plan

        checker = self.checker
        if checker is None or not s.enabled:
            if straight.success:
                return done(MotionPlan(True, straight.trajectory, "straight", path_length=straight.tcp_path_length))
            return done(MotionPlan(False, JointTrajectory(), error="unreachable", message=straight.message))

        hit: PathCollision | None = None
        if straight.success:
            hit = checker.first_collision(straight.trajectory.positions, s.resolution)
            if hit is None:
                return done(MotionPlan(True, straight.trajectory, "straight", path_length=straight.tcp_path_length))
        straight_why = f"the straight line: {hit.describe()}" if hit else f"the straight line: {straight.message}"

        # A collision-free goal configuration: the straight line's own end first, then IK from other starts.
        rng = np.random.default_rng(s.seed if seed is None else seed)
        goal, goal_problem = self._free_goal(q_start, target_position, target_yaw, straight, rng)
        if goal is None:
            if goal_problem is None:  # no IK solution at all
                return done(MotionPlan(False, JointTrajectory(), error="unreachable", message=straight.message))
            return done(
                MotionPlan(
                    False,
                    JointTrajectory(),
                    error="collision",
                    message=f"the target pose collides: {goal_problem}",
                    straight_collision=straight_why,
                )
            )
        start_hit = checker.collision_at(q_start, 0.0)
        if start_hit is not None:
            return done(
                MotionPlan(
                    False,
                    JointTrajectory(),
                    error="collision",
                    message=f"the arm starts in collision: {start_hit.describe()}",
                    straight_collision=straight_why,
                )
            )
        # Planned paths keep the tool pointing roughly down (held objects stay in the hand).
        # (Not when the arm already starts more tilted than that: it could never leave.)
        saved_tilt = checker.context.max_tool_tilt
        tilt = math.radians(s.max_tool_tilt_deg)
        start_tilt = math.acos(float(np.clip(-self.kin.forward(q_start)[1][2, 2], -1.0, 1.0)))
        checker.context.max_tool_tilt = tilt if s.max_tool_tilt_deg < 180 and start_tilt <= tilt else None
        try:
            path, stats = rrt_connect(
                checker, q_start, goal, rng, step=s.rrt_step, resolution=s.resolution, max_time=s.rrt_max_time
            )
            if path is not None:
                t_rrt = time.perf_counter() - t0
                path = shortcut(checker, path, rng, s.shortcut_iterations, s.resolution)
                stats["rrt_time"] = t_rrt
                stats["vertices"] = float(len(path))
        finally:
            checker.context.max_tool_tilt = saved_tilt
        if path is None:
            return done(
                MotionPlan(
                    False,
                    JointTrajectory(),
                    error="collision",
                    message=f"no collision-free path found in {s.rrt_max_time:.1f} s ({straight_why})",
                    straight_collision=straight_why,
                    stats=stats,
                )
            )
        trajectory, length = time_joint_path(self.kin, np.array(path), limits)
        return done(
            MotionPlan(
                True,
                trajectory,
                "rrt_connect",
                message=f"planned around an obstacle ({straight_why})",
                path_length=length,
                straight_collision=straight_why,
                stats=stats,
            )
        )

    def _free_goal(
        self, q_start: np.ndarray, position: np.ndarray, yaw: float, straight, rng: np.random.Generator
    ) -> tuple[np.ndarray | None, str | None]:
        """A collision-free IK solution for the target; (None, why) when every one found collides,
        (None, None) when IK finds none. Tried in order: the straight line's end, IK from the start,
        from home, from random configurations."""
        checker = self.checker
        assert checker is not None
        rotation = top_down_rotation(yaw)
        problem: str | None = None
        starts = [q_start, panda.HOME_Q] + [
            rng.uniform(panda.JOINT_LOWER + 0.1, panda.JOINT_UPPER - 0.1) for _ in range(self.settings.goal_attempts)
        ]
        candidates = ([straight.trajectory.positions[-1]] if straight.success else []) + starts
        for i, q0 in enumerate(candidates):
            if i == 0 and straight.success:
                q = q0
            else:
                result = self.kin.solve(position, rotation, q0, max_iterations=300)
                if not result.success:
                    continue
                q = result.q
            hit = checker.collision_at(q, 1.0)
            if hit is None:
                return q, None
            if problem is None:
                problem = hit.describe().replace(" at 100% of the path", "")
        return None, problem
