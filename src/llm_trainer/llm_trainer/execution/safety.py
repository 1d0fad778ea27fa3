"""The safety layer in front of every motion backend: targets and trajectories checked against the limits.

``check_target`` runs on each ``move_gripper`` before planning (finite numbers, the workspace box,
table clearance, longest move per primitive); ``check_trajectory`` runs on every planned or replanned
joint trajectory before it is handed to a backend, whichever backend that is (joint position limits,
scaled velocity and acceleration limits, the TCP inside the workspace along the whole path, the time
limit per primitive). A failed check is a ``(ErrorCode, message)`` naming the primitive and the limit.
"""

from __future__ import annotations

import math

import numpy as np

from llm_trainer.execution.errors import ErrorCode
from llm_trainer.execution.executor_config import ExecutorConfig
from llm_trainer.motion.kinematics import PandaKinematics
from llm_trainer.motion.trajectory import JOINT_ACCELERATION_LIMIT, JointTrajectory, joint_accelerations
from llm_trainer.primitives import Primitive
from llm_trainer.sim import panda_description as panda

Problem = tuple[ErrorCode, str]

#: Numerical slack on the velocity and acceleration checks (finite differences of sampled paths).
RATE_TOLERANCE = 1.05
#: The TCP may sample this far outside the box between waypoints that are inside it [m].
WORKSPACE_TOLERANCE = 0.003


def joint_limits(config: ExecutorConfig) -> tuple[np.ndarray, np.ndarray]:
    """The joint range motions may use: Franka's limits shrunk by ``safety.joint_limit_margin``."""
    m = config.safety.joint_limit_margin
    return panda.JOINT_LOWER + m, panda.JOINT_UPPER - m


def check_target(index: int, prim: Primitive, from_pos: np.ndarray, config: ExecutorConfig) -> Problem | None:
    safety = config.safety
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


def check_trajectory(
    index: int, trajectory: JointTrajectory, config: ExecutorConfig, kin: PandaKinematics
) -> Problem | None:
    """Every limit a joint trajectory must respect before any backend may run it."""
    times, q = np.asarray(trajectory.times, float), np.asarray(trajectory.positions, float)
    if q.ndim != 2 or q.shape[1] != 7 or len(times) != len(q) or len(q) == 0:
        return ErrorCode.INVALID, f"primitive {index}: malformed trajectory {q.shape} / {len(times)} times"
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(times))) or np.any(np.diff(times) < 0):
        return ErrorCode.INVALID, f"primitive {index}: trajectory with non-finite values or decreasing times"
    lower, upper = joint_limits(config)
    # The first point is where the arm is: it may sit on a limit margin it did not cross itself.
    below, above = q[1:] < lower - 1e-6, q[1:] > upper + 1e-6
    if below.any() or above.any():
        j = int(np.argmax((below | above).any(axis=0)))
        value = q[1:, j][below[:, j] | above[:, j]][0]
        return ErrorCode.LIMIT, (
            f"primitive {index}: panda_joint{j + 1} would reach {value:.3f} rad, outside its limits "
            f"[{lower[j]:.3f}, {upper[j]:.3f}] (safety.joint_limit_margin {config.safety.joint_limit_margin} rad)"
        )
    duration = trajectory.duration
    if duration > config.safety.primitive_timeout:
        return ErrorCode.TIMEOUT, (
            f"primitive {index}: motion needs {duration:.1f} s, over the {config.safety.primitive_timeout} s limit"
        )
    dt = np.diff(times)
    moving = dt > 1e-9
    if moving.any():
        vmax = panda.JOINT_VELOCITY_LIMIT * config.timing.velocity_scaling
        velocity = np.abs(np.diff(q, axis=0)[moving]) / dt[moving, None]
        ratio = velocity / vmax
        if ratio.max() > RATE_TOLERANCE:
            j = int(np.argmax(ratio.max(axis=0)))
            return ErrorCode.LIMIT, (
                f"primitive {index}: panda_joint{j + 1} at {velocity[:, j].max():.2f} rad/s exceeds "
                f"{vmax[j]:.2f} rad/s (timing.velocity_scaling {config.timing.velocity_scaling})"
            )
    amax = JOINT_ACCELERATION_LIMIT * config.timing.acceleration_scaling
    acc = np.abs(joint_accelerations(times, q))
    if acc.size and (acc / amax).max() > RATE_TOLERANCE:
        j = int(np.argmax((acc / amax).max(axis=0)))
        return ErrorCode.LIMIT, (
            f"primitive {index}: panda_joint{j + 1} at {acc[:, j].max():.2f} rad/s^2 exceeds "
            f"{amax[j]:.2f} rad/s^2 (timing.acceleration_scaling {config.timing.acceleration_scaling})"
        )
    x0, x1, y0, y1, z0, z1 = config.safety.workspace
    # An arm that starts outside the box may move back into it, never further out.
    start, _ = kin.forward(q[0])
    x0, x1, y0, y1 = min(x0, start[0]), max(x1, start[0]), min(y0, start[1]), max(y1, start[1])
    z0, z1 = min(z0, start[2]), max(z1, start[2])
    tol = WORKSPACE_TOLERANCE
    for qi in q[1:]:
        p, _ = kin.forward(qi)
        if not (x0 - tol <= p[0] <= x1 + tol and y0 - tol <= p[1] <= y1 + tol and z0 - tol <= p[2] <= z1 + tol):
            return ErrorCode.LIMIT, (
                f"primitive {index}: the path takes the TCP to {np.round(p, 3).tolist()}, outside the safety workspace"
            )
    return None
