"""The plan executor: validate the whole plan, plan every motion, then move, one primitive at a time.

Conservative by construction:

- before the first motion, the complete plan is checked against the safety limits and every
  ``move_gripper`` is planned from the configuration the previous one ends in: the straight TCP line
  when it is collision-free, otherwise a collision-aware joint path (``llm_trainer.motion.planning``)
  through the scene as predicted along the plan (``llm_trainer.execution.world``); every trajectory
  then passes the safety layer (``llm_trainer.execution.safety``). Anything unreachable, colliding
  or over a limit rejects the plan with nothing moved;
- right before each motion, the planned trajectory is checked again against the live scene (when
  the backend or a scene source has one) and replanned from where the arm really is if needed;
- during execution, feedback is reported per primitive, each primitive has a time limit, cancel
  stops the arm where it is, and the result names the primitive that failed and why.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from llm_trainer.execution.backend import CANCELED, TIMED_OUT, MotionBackend
from llm_trainer.execution.errors import ErrorCode, Status
from llm_trainer.execution.executor_config import ExecutorConfig
from llm_trainer.execution.safety import check_target, check_trajectory, joint_limits
from llm_trainer.execution.world import GripperEvent, WorldModel, next_gripper_events
from llm_trainer.motion.collision import CollisionChecker, CollisionContext
from llm_trainer.motion.kinematics import PandaKinematics, equivalent_grasp_yaw
from llm_trainer.motion.planning import MotionPlan, MotionPlanner
from llm_trainer.motion.trajectory import JointTrajectory, fit_to_limits
from llm_trainer.primitives import Primitive, PrimitiveKind
from llm_trainer.scene import SceneState

__all__ = ["ErrorCode", "ExecutionResult", "PlanExecutor", "PrimitiveStatus", "Status"]


@dataclass
class PrimitiveStatus:
    index: int
    kind: PrimitiveKind
    status: Status = Status.PENDING
    planning_time: float = 0.0
    execution_time: float = 0.0
    tracking_error: float = 0.0
    message: str = ""


@dataclass
class ExecutionResult:
    success: bool
    error_code: ErrorCode
    failed_index: int = -1
    message: str = ""
    statuses: list[PrimitiveStatus] = field(default_factory=list)


FeedbackCallback = Callable[[PrimitiveStatus, int], None]
SceneSource = Callable[[], "SceneState | None"]

_PLAN_ERRORS = {"unreachable": ErrorCode.UNREACHABLE, "collision": ErrorCode.COLLISION}


@dataclass
class _PlannedStep:
    primitive: Primitive
    trajectory: JointTrajectory | None = None
    yaw: float = 0.0
    planning_time: float = 0.0
    context: CollisionContext | None = None
    method: str = ""
    note: str = ""


class PlanExecutor:
    """Runs validated primitives on a ``MotionBackend``.

    ``scene_source`` gives the current scene (objects as obstacles); by default the backend's own
    (the simulator's ground truth), and ``execute(scene=...)`` overrides it for one plan.
    """

    def __init__(
        self,
        backend: MotionBackend,
        config: ExecutorConfig | None = None,
        *,
        scene_source: SceneSource | None = None,
    ):
        self.backend = backend
        self.config = config or ExecutorConfig()
        self.kinematics = PandaKinematics()
        self.kinematics.lower, self.kinematics.upper = joint_limits(self.config)
        self.scene_source = scene_source or backend.current_scene
        self._lock = threading.Lock()
        self._checkers: dict[tuple, CollisionChecker] = {}
        self._world: WorldModel | None = None

    # ------------------------------------------------------------ collision model
    def _checker(self, world: WorldModel) -> CollisionChecker | None:
        cfg = self.config.collision
        if not cfg.enabled:
            return None
        key = (tuple((n, tuple(round(v, 6) for v in s)) for n, s in world.object_sizes()), world.table_height)
        checker = self._checkers.get(key)
        if checker is None:
            if len(self._checkers) > 8:
                self._checkers.clear()
            checker = CollisionChecker(
                world.object_sizes(),
                table_height=world.table_height,
                margin=cfg.margin,
                self_collision=cfg.self_collision,
            )
            self._checkers[key] = checker
        return checker

    def _plan_motion(
        self,
        checker: CollisionChecker | None,
        context: CollisionContext | None,
        q: np.ndarray,
        prim: Primitive,
        yaw: float,
    ) -> MotionPlan:
        native = getattr(self.backend, "native_planner", None)
        if native is not None:
            return native.plan(q, np.asarray(prim.position, float), yaw, self.config.timing, context)
        if checker is not None and context is not None:
            checker.set_context(context)
        planner = MotionPlanner(self.kinematics, checker, self.config.collision)
        return planner.plan(q, np.asarray(prim.position, float), yaw, self.config.timing)

    # ------------------------------------------------------------ checks before motion
    def prepare(
        self, plan: list[Primitive], q_start: np.ndarray, scene: SceneState | None = None
    ) -> tuple[list[_PlannedStep], ExecutionResult | None]:
        """Check every primitive and plan every motion from ``q_start``; nothing moves."""
        steps: list[_PlannedStep] = []
        q = np.asarray(q_start, float)
        pos, rot = self.kinematics.forward(q)
        yaw = math.atan2(rot[1, 0], rot[0, 0])
        statuses = [PrimitiveStatus(i, p.kind) for i, p in enumerate(plan)]
        world = WorldModel(scene, open_width=self.config.open_width)
        # An object already in the hand rides with it (dynamic replanning: one primitive per plan).
        held_at_start = world.held_at_start(pos, yaw)
        checker = self._checker(world)
        if checker is not None:
            # Objects already between the fingers (a previous plan released them) may be touched on the way out.
            checker.set_context(
                CollisionContext(obstacles=world.obstacles(), attached=world.held, finger_width=world.finger_width)
            )
            touching = {c.other for c in checker.contacts(q) if c.robot_part.startswith(("finger", "pad"))}
            world.just_released = frozenset(touching & set(world.boxes))
        next_events = next_gripper_events(plan)

        def fail(i: int, code: ErrorCode, message: str) -> tuple[list[_PlannedStep], ExecutionResult]:
            statuses[i].status, statuses[i].message = Status.FAILED, message
            return steps, ExecutionResult(False, code, i, message, statuses)

        # Objects already between the fingers at the start count as just released (the first move leaves them).
        # An object held at the start was just grasped as far as the next move knows (it may leave its support).
        first_after_grasp, first_after_release = held_at_start is not None, bool(world.just_released)
        for i, prim in enumerate(plan):
            if prim.kind != PrimitiveKind.MOVE_GRIPPER:
                if prim.kind == PrimitiveKind.CLOSE_GRIPPER:
                    world.close(prim.object_name, pos, yaw)
                    first_after_grasp, first_after_release = True, False
                else:
                    world.open(pos, yaw)
                    first_after_grasp, first_after_release = False, True
                steps.append(_PlannedStep(prim))
                continue
            problem = check_target(i, prim, pos, self.config)
            if problem:
                return fail(i, *problem)
            target_yaw = equivalent_grasp_yaw(prim.yaw, yaw)
            place_at = None
            if i + 1 < len(plan) and plan[i + 1].kind == PrimitiveKind.OPEN_GRIPPER:  # lowering onto a surface
                place_at = (np.asarray(prim.position, float), target_yaw)
            context = world.context_for_move(
                approach_target=self._approach_target(plan, i, world, next_events[i]),
                first_after_grasp=first_after_grasp,
                first_after_release=first_after_release,
                place_at=place_at,
                workspace=self._planning_box(pos),
            )
            first_after_grasp = first_after_release = False
            t0 = time.perf_counter()
            motion = self._plan_motion(checker, context, q, prim, target_yaw)
            dt = time.perf_counter() - t0
            statuses[i].planning_time = dt
            if not motion.success:
                return fail(
                    i,
                    _PLAN_ERRORS.get(motion.error, ErrorCode.UNREACHABLE),
                    f"primitive {i} ({prim}): {motion.message}",
                )
            problem = check_trajectory(i, motion.trajectory, self.config, self.kinematics)
            if problem:
                return fail(i, *problem)
            steps.append(
                _PlannedStep(prim, motion.trajectory, target_yaw, dt, context, motion.method, self._describe(motion))
            )
            q = motion.trajectory.positions[-1]
            pos, yaw = np.asarray(prim.position, float), target_yaw
        self._world = world
        return steps, None

    @staticmethod
    def _next_gripper_index(plan: list[Primitive], i: int) -> int:
        for j in range(i + 1, len(plan)):
            if plan[j].kind != PrimitiveKind.MOVE_GRIPPER:
                return j
        return -1

    def _approach_target(self, plan: list[Primitive], i: int, world: WorldModel, event: GripperEvent) -> str | None:
        """For a move followed by a close_gripper: the object that close grasps, named or, when unnamed,
        the one at the TCP target of the last move before it (where the world is at this point)."""
        if event.kind != PrimitiveKind.CLOSE_GRIPPER:
            return None
        if event.object_name in world.boxes:
            return event.object_name
        j = self._next_gripper_index(plan, i)
        last = max(k for k in range(i, j) if plan[k].kind == PrimitiveKind.MOVE_GRIPPER)
        return world.object_at(np.asarray(plan[last].position, float))

    def _planning_box(self, start_tcp: np.ndarray) -> tuple[float, float, float, float, float, float]:
        """The box planned paths keep the TCP in: the safety workspace above the table clearance, grown
        to include where the TCP starts (an arm outside the box may come back into it, not leave it)."""
        x0, x1, y0, y1, z0, z1 = self.config.safety.workspace
        z0 += self.config.safety.table_clearance
        p = np.asarray(start_tcp, float)
        eps = 1e-4
        return (
            min(x0, p[0] - eps),
            max(x1, p[0] + eps),
            min(y0, p[1] - eps),
            max(y1, p[1] + eps),
            min(z0, p[2] - eps),
            max(z1, p[2] + eps),
        )

    @staticmethod
    def _describe(motion: MotionPlan) -> str:
        if motion.method == "rrt_connect":
            ratio = motion.path_length / motion.straight_length if motion.straight_length > 1e-6 else float("nan")
            return (
                f"planned path ({ratio:.1f}x the straight line, {motion.planning_time * 1000:.0f} ms) because "
                f"{motion.straight_collision}"
            )
        return ""

    # ------------------------------------------------------------ execution
    def execute(
        self,
        plan: list[Primitive],
        *,
        dry_run: bool = False,
        feedback: FeedbackCallback | None = None,
        cancel: threading.Event | None = None,
        scene: SceneState | None = None,
    ) -> ExecutionResult:
        if not self._lock.acquire(blocking=False):
            return ExecutionResult(False, ErrorCode.BACKEND_ERROR, -1, "another plan is executing")
        try:
            return self._execute(plan, dry_run, feedback, cancel or threading.Event(), scene)
        finally:
            self._lock.release()

    def _execute(
        self,
        plan: list[Primitive],
        dry_run: bool,
        feedback: FeedbackCallback | None,
        cancel: threading.Event,
        scene: SceneState | None,
    ) -> ExecutionResult:
        if not plan:
            return ExecutionResult(False, ErrorCode.INVALID, -1, "the plan is empty")
        if scene is None:
            scene = self.scene_source()
        if scene is None and self.config.require_scene:
            return ExecutionResult(
                False, ErrorCode.INVALID, -1, "no scene to plan around (require_scene is set): is perception running?"
            )
        steps, rejection = self.prepare(plan, self.backend.joint_positions(), scene)
        if rejection is not None:
            for s in rejection.statuses:
                if s.status == Status.PENDING:
                    s.status = Status.SKIPPED
            return rejection
        statuses = [PrimitiveStatus(i, s.primitive.kind, planning_time=s.planning_time) for i, s in enumerate(steps)]
        if dry_run:
            for s, step in zip(statuses, steps):
                s.status = Status.SKIPPED
                s.message = "dry run: planned, not executed" + (f"; {step.note}" if step.note else "")
            return ExecutionResult(True, ErrorCode.SUCCEEDED, -1, f"dry run: {len(plan)} primitives planned", statuses)
        total = len(steps)
        for i, step in enumerate(steps):
            status = statuses[i]
            if cancel.is_set():
                return self._finish(statuses, i, ErrorCode.CANCELED, "cancelled before primitive %d" % i)
            status.status = Status.RUNNING
            if feedback:
                feedback(status, total)
            t0 = time.perf_counter()
            code, message = self._run_step(i, step, status, cancel)
            status.execution_time = time.perf_counter() - t0
            if code != ErrorCode.SUCCEEDED:
                status.status, status.message = Status.FAILED, message
                if feedback:
                    feedback(status, total)
                return self._finish(statuses, i, code, message)
            status.status = Status.DONE
            status.message = message
            if feedback:
                feedback(status, total)
        return ExecutionResult(True, ErrorCode.SUCCEEDED, -1, f"executed {total} primitives", statuses)

    def _trajectory_for_now(
        self, i: int, step: _PlannedStep, q_now: np.ndarray, status: PrimitiveStatus
    ) -> tuple[JointTrajectory | None, tuple[ErrorCode, str] | None, str]:
        """The step's trajectory from where the arm is, checked against the live scene; replanned if needed."""
        prim = step.primitive
        trajectory = step.trajectory
        note = step.note
        context = step.context
        checker = None
        live = self.scene_source() if context is not None else None
        if context is not None and self._world is not None:
            checker = self._checker(self._world)
            if live is not None:
                context = self._world.live_context(live, context)
                try:
                    if checker is not None:
                        checker.set_context(context)
                except ValueError:  # the live scene has other objects than the plan's: a model for them
                    checker = self._checker(WorldModel(live, open_width=self.config.open_width))
                    if checker is not None:
                        checker.set_context(context)
            elif checker is not None:
                checker.set_context(context)
        replan = trajectory is None or float(np.max(np.abs(trajectory.positions[0] - q_now))) > 0.02
        if not replan and checker is not None and live is not None:
            path = trajectory.positions.copy()
            path[0] = q_now
            hit = checker.first_collision(path, self.config.collision.resolution)
            if hit is not None:
                replan, note = True, f"replanned: the scene changed ({hit.describe()})"
        if replan:
            t0 = time.perf_counter()
            motion = self._plan_motion(checker, context, q_now, prim, step.yaw)
            status.planning_time += time.perf_counter() - t0
            if not motion.success:
                code = _PLAN_ERRORS.get(motion.error, ErrorCode.UNREACHABLE)
                return None, (code, f"primitive {i} ({prim}): {motion.message}"), note
            trajectory = motion.trajectory
            note = note if note.startswith("replanned") else self._describe(motion)
        else:
            trajectory = JointTrajectory(trajectory.joint_names, trajectory.times, trajectory.positions.copy())
            trajectory.positions[0] = q_now
            trajectory = fit_to_limits(trajectory, self.config.timing)  # the spliced start may need a little more time
        problem = check_trajectory(i, trajectory, self.config, self.kinematics)
        if problem:
            return None, problem, note
        return trajectory, None, note

    def _run_step(
        self, i: int, step: _PlannedStep, status: PrimitiveStatus, cancel: threading.Event
    ) -> tuple[ErrorCode, str]:
        prim = step.primitive
        cfg = self.config
        timeout = cfg.safety.primitive_timeout
        if prim.kind == PrimitiveKind.MOVE_GRIPPER:
            q_now = self.backend.joint_positions()
            trajectory, problem, note = self._trajectory_for_now(i, step, q_now, status)
            if problem:
                return problem
            assert trajectory is not None
            outcome = self.backend.follow_joint_trajectory(trajectory, cancel, timeout)
            if outcome.error_code == CANCELED and cancel.is_set():
                return ErrorCode.CANCELED, f"primitive {i}: cancelled during motion"
            if outcome.error_code == TIMED_OUT:
                return ErrorCode.TIMEOUT, f"primitive {i}: the motion did not finish within {timeout} s; stopped"
            if outcome.error_code != 0:
                return (
                    ErrorCode.BACKEND_ERROR,
                    f"primitive {i}: controller reported {outcome.error_code}: {outcome.message}",
                )
            q_end = outcome.final_positions if outcome.final_positions is not None else self.backend.joint_positions()
            pos, rot = self.kinematics.forward(q_end)
            err = float(np.linalg.norm(pos - np.asarray(prim.position)))
            yaw_err = abs(math.remainder(math.atan2(rot[1, 0], rot[0, 0]) - step.yaw, 2 * math.pi))
            status.tracking_error = err
            if err > cfg.position_tolerance or math.degrees(yaw_err) > cfg.yaw_tolerance_deg:
                return ErrorCode.LIMIT, (
                    f"primitive {i}: reached {err * 1000:.1f} mm / {math.degrees(yaw_err):.1f} deg from the target "
                    f"(tolerance {cfg.position_tolerance * 1000:.0f} mm / {cfg.yaw_tolerance_deg} deg); "
                    "the arm may be blocked"
                )
            return ErrorCode.SUCCEEDED, note
        opening = prim.kind == PrimitiveKind.OPEN_GRIPPER
        verb = "opening" if opening else "closing"
        if opening:
            outcome = self.backend.move_gripper(cfg.open_width, cfg.safety.gripper_force_limit, cancel, timeout)
        else:
            force = min(cfg.grasp_force, cfg.safety.gripper_force_limit)
            outcome = self.backend.move_gripper(0.0, force, cancel, timeout)
        if cancel.is_set():
            return ErrorCode.CANCELED, f"primitive {i}: cancelled while {verb}"
        if getattr(outcome, "timed_out", False):
            return ErrorCode.TIMEOUT, f"primitive {i}: the gripper did not finish {verb} within {timeout} s"
        if not math.isfinite(outcome.width):
            why = getattr(outcome, "message", "") or "no result"
            return ErrorCode.BACKEND_ERROR, f"primitive {i}: gripper failed while {verb}: {why}"
        if opening:
            return ErrorCode.SUCCEEDED, f"opened to {outcome.width * 1000:.1f} mm"
        # Closing on nothing is not an execution error (the task check decides); say it for the log.
        held = "holding an object" if outcome.stalled and outcome.width > 0.004 else "closed on nothing"
        return ErrorCode.SUCCEEDED, f"closed to {outcome.width * 1000:.1f} mm, {held}"

    @staticmethod
    def _finish(statuses: list[PrimitiveStatus], index: int, code: ErrorCode, message: str) -> ExecutionResult:
        for s in statuses[index + 1 :]:
            s.status = Status.SKIPPED
        return ExecutionResult(False, code, index, message, statuses)
