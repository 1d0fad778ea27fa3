"""The plan executor: validate the whole plan, plan every motion, then move, one primitive at a time.

Conservative by construction: the complete plan is checked against the safety limits and every
``move_gripper`` is solved by IK along its straight path *before the first motion*, so an
unreachable or out-of-bounds waypoint rejects the plan with nothing moved. During execution,
feedback is reported per primitive, cancel stops the arm where it is, and the result names the
primitive that failed and why.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from llm_trainer.execution.backend import MotionBackend
from llm_trainer.execution.executor_config import ExecutorConfig
from llm_trainer.motion.kinematics import PandaKinematics, equivalent_grasp_yaw
from llm_trainer.motion.trajectory import JointTrajectory, plan_straight_line
from llm_trainer.primitives import Primitive, PrimitiveKind


class ErrorCode(IntEnum):
    # Values match llm_trainer_interfaces/action/ExecutePlan result constants.
    SUCCEEDED = 0
    INVALID = 1
    UNREACHABLE = 2
    COLLISION = 3
    LIMIT = 4
    TIMEOUT = 5
    CANCELED = 6
    BACKEND_ERROR = 7


class Status(IntEnum):
    # Values match llm_trainer_interfaces/msg/PrimitiveStatus constants.
    PENDING = 0
    RUNNING = 1
    DONE = 2
    FAILED = 3
    SKIPPED = 4


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


@dataclass
class _PlannedStep:
    primitive: Primitive
    trajectory: JointTrajectory | None = None
    yaw: float = 0.0
    planning_time: float = 0.0


class PlanExecutor:
    """Runs validated primitives on a ``MotionBackend`` with IK from ``PandaKinematics``."""

    def __init__(self, backend: MotionBackend, config: ExecutorConfig | None = None):
        self.backend = backend
        self.config = config or ExecutorConfig()
        self.kinematics = PandaKinematics()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ checks before motion
    def _check_limits(self, index: int, prim: Primitive, from_pos: np.ndarray) -> tuple[ErrorCode, str] | None:
        safety = self.config.safety
        if prim.kind != PrimitiveKind.MOVE_GRIPPER:
            return None
        pos = np.asarray(prim.position, float)
        if not (np.all(np.isfinite(pos)) and math.isfinite(prim.yaw)):
            return ErrorCode.INVALID, f"primitive {index}: non-finite target {prim}"
        x0, x1, y0, y1, z0, z1 = safety.workspace
        if not (x0 <= pos[0] <= x1 and y0 <= pos[1] <= y1 and z0 <= pos[2] <= z1):
            return ErrorCode.LIMIT, (
                f"primitive {index}: target {np.round(pos, 3).tolist()} is outside the safety workspace "
                f"x[{x0}, {x1}] y[{y0}, {y1}] z[{z0}, {z1}]"
            )
        if pos[2] < z0 + safety.table_clearance:
            return (
                ErrorCode.LIMIT,
                f"primitive {index}: target z={pos[2]:.3f} is closer than {safety.table_clearance} m to the table",
            )
        step = float(np.linalg.norm(pos - from_pos))
        if step > safety.max_cartesian_step:
            return ErrorCode.LIMIT, (
                f"primitive {index}: a {step:.2f} m move exceeds the {safety.max_cartesian_step} m limit per primitive"
            )
        return None

    def prepare(self, plan: list[Primitive], q_start: np.ndarray) -> tuple[list[_PlannedStep], ExecutionResult | None]:
        """Check every primitive and plan every motion from ``q_start``; nothing moves."""
        steps: list[_PlannedStep] = []
        q = np.asarray(q_start, float)
        pos, rot = self.kinematics.forward(q)
        yaw = math.atan2(rot[1, 0], rot[0, 0])
        statuses = [PrimitiveStatus(i, p.kind) for i, p in enumerate(plan)]
        for i, prim in enumerate(plan):
            if prim.kind == PrimitiveKind.MOVE_GRIPPER:
                problem = self._check_limits(i, prim, pos)
                if problem:
                    code, message = problem
                    statuses[i].status, statuses[i].message = Status.FAILED, message
                    return steps, ExecutionResult(False, code, i, message, statuses)
                target_yaw = equivalent_grasp_yaw(prim.yaw, yaw)
                t0 = time.perf_counter()
                path = plan_straight_line(self.kinematics, q, np.asarray(prim.position), target_yaw, self.config.timing)
                dt = time.perf_counter() - t0
                statuses[i].planning_time = dt
                if not path.success:
                    message = f"primitive {i} ({prim}): {path.message}"
                    statuses[i].status, statuses[i].message = Status.FAILED, message
                    return steps, ExecutionResult(False, ErrorCode.UNREACHABLE, i, message, statuses)
                steps.append(_PlannedStep(prim, path.trajectory, target_yaw, dt))
                q = path.trajectory.positions[-1]
                pos, yaw = np.asarray(prim.position, float), target_yaw
            else:
                steps.append(_PlannedStep(prim))
        return steps, None

    # ------------------------------------------------------------ execution
    def execute(
        self,
        plan: list[Primitive],
        *,
        dry_run: bool = False,
        feedback: FeedbackCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ExecutionResult:
        if not self._lock.acquire(blocking=False):
            return ExecutionResult(False, ErrorCode.BACKEND_ERROR, -1, "another plan is executing")
        try:
            return self._execute(plan, dry_run, feedback, cancel or threading.Event())
        finally:
            self._lock.release()

    def _execute(
        self, plan: list[Primitive], dry_run: bool, feedback: FeedbackCallback | None, cancel: threading.Event
    ) -> ExecutionResult:
        if not plan:
            return ExecutionResult(False, ErrorCode.INVALID, -1, "the plan is empty")
        steps, rejection = self.prepare(plan, self.backend.joint_positions())
        if rejection is not None:
            for s in rejection.statuses:
                if s.status == Status.PENDING:
                    s.status = Status.SKIPPED
            return rejection
        statuses = [PrimitiveStatus(i, s.primitive.kind, planning_time=s.planning_time) for i, s in enumerate(steps)]
        if dry_run:
            for s in statuses:
                s.status, s.message = Status.SKIPPED, "dry run: planned, not executed"
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

    def _run_step(
        self, i: int, step: _PlannedStep, status: PrimitiveStatus, cancel: threading.Event
    ) -> tuple[ErrorCode, str]:
        prim = step.primitive
        cfg = self.config
        if prim.kind == PrimitiveKind.MOVE_GRIPPER:
            trajectory = step.trajectory
            q_now = self.backend.joint_positions()
            if trajectory is None or float(np.max(np.abs(trajectory.positions[0] - q_now))) > 0.02:
                # The arm is not where planning assumed (e.g. an object pushed it): replan from here.
                path = plan_straight_line(self.kinematics, q_now, np.asarray(prim.position), step.yaw, cfg.timing)
                if not path.success:
                    return ErrorCode.UNREACHABLE, f"primitive {i} ({prim}): {path.message}"
                trajectory = path.trajectory
            else:
                trajectory.positions[0] = q_now
            if trajectory.duration > cfg.safety.primitive_timeout:
                return ErrorCode.TIMEOUT, (
                    f"primitive {i}: motion needs {trajectory.duration:.1f} s, "
                    f"over the {cfg.safety.primitive_timeout} s limit"
                )
            outcome = self.backend.follow_joint_trajectory(trajectory, cancel)
            if outcome.error_code == -6:
                return ErrorCode.CANCELED, f"primitive {i}: cancelled during motion"
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
            return ErrorCode.SUCCEEDED, ""
        if prim.kind == PrimitiveKind.OPEN_GRIPPER:
            outcome = self.backend.move_gripper(cfg.open_width, cfg.safety.gripper_force_limit, cancel)
            if cancel.is_set():
                return ErrorCode.CANCELED, f"primitive {i}: cancelled while opening"
            return ErrorCode.SUCCEEDED, f"opened to {outcome.width * 1000:.1f} mm"
        force = min(cfg.grasp_force, cfg.safety.gripper_force_limit)
        outcome = self.backend.move_gripper(0.0, force, cancel)
        if cancel.is_set():
            return ErrorCode.CANCELED, f"primitive {i}: cancelled while closing"
        # Closing on nothing is not an execution error (the task check decides); say it for the log.
        held = "holding an object" if outcome.stalled and outcome.width > 0.004 else "closed on nothing"
        return ErrorCode.SUCCEEDED, f"closed to {outcome.width * 1000:.1f} mm, {held}"

    @staticmethod
    def _finish(statuses: list[PrimitiveStatus], index: int, code: ErrorCode, message: str) -> ExecutionResult:
        for s in statuses[index + 1 :]:
            s.status = Status.SKIPPED
        return ExecutionResult(False, code, index, message, statuses)
