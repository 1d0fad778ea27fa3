"""Joint trajectories for waypoint primitives: straight tool paths, IK along them, smooth timing.

A ``move_gripper`` primitive becomes a straight line of the TCP from where it is to the target
(position linear, yaw along the shorter arc), sampled every ``step`` metres / radians, solved by
IK warm-started from the previous sample, then timed with a quintic (minimum-jerk) profile whose
duration respects the joint velocity limits scaled by ``velocity_scaling`` and a Cartesian speed
limit. Straight lines matter here: descents onto an object must not swing sideways into it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from llm_trainer.motion.kinematics import PandaKinematics, top_down_rotation
from llm_trainer.sim import panda_description as panda

# Quintic minimum-jerk profile s(u) = 10u^3 - 15u^4 + 6u^5: peak speed is 1.875 x the mean.
_QUINTIC_PEAK = 1.875
_U = np.linspace(0.0, 1.0, 2001)
_S = 10 * _U**3 - 15 * _U**4 + 6 * _U**5


@dataclass
class JointTrajectory:
    joint_names: tuple[str, ...] = panda.JOINT_NAMES
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [s] from the start, non-decreasing
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))  # N x 7 [rad]

    @property
    def duration(self) -> float:
        return float(self.times[-1]) if len(self.times) else 0.0

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class PathPlan:
    success: bool
    trajectory: JointTrajectory
    tcp_path_length: float
    message: str = ""
    failed_fraction: float = 0.0  # how far along the line IK failed


@dataclass
class TimingLimits:
    velocity_scaling: float = 0.3  # fraction of the Panda's joint velocity limits
    max_cartesian_speed: float = 0.25  # [m/s] of the TCP
    max_yaw_speed: float = 1.0  # [rad/s]
    min_duration: float = 0.25  # [s]


def time_parameterize(path: np.ndarray, tcp_length: float, yaw_change: float, limits: TimingLimits) -> np.ndarray:
    """Times for joint waypoints ``path`` (N x 7) on a quintic profile within the limits."""
    if len(path) == 1:
        return np.zeros(1)
    vmax = panda.JOINT_VELOCITY_LIMIT * limits.velocity_scaling
    # Progress measure: the time each segment needs at full speed under the tightest of the limits:
    # its slowest joint, the TCP speed and the yaw speed (the samples are evenly spaced along the line).
    n = len(path) - 1
    seg = np.max(np.abs(np.diff(path, axis=0)) / vmax, axis=1)
    seg = np.maximum(seg, (tcp_length / n) / limits.max_cartesian_speed)
    seg = np.maximum(seg, (abs(yaw_change) / n) / limits.max_yaw_speed)
    cumulative = np.concatenate([[0.0], np.cumsum(seg)])
    total = cumulative[-1]
    duration = max(limits.min_duration, _QUINTIC_PEAK * total)
    if total <= 1e-12:
        return np.linspace(0.0, duration, len(path))
    fraction = cumulative / total
    return np.interp(fraction, _S, _U) * duration


def plan_straight_line(
    kin: PandaKinematics,
    q_start: np.ndarray,
    target_position: np.ndarray,
    target_yaw: float,
    limits: TimingLimits,
    *,
    step: float = 0.01,
    yaw_step: float = 0.08,
    max_joint_jump: float = 0.35,
) -> PathPlan:
    """IK along the straight TCP line from FK(q_start) to the target; empty plan + reason on failure."""
    start_pos, start_rot = kin.forward(q_start)
    start_yaw = math.atan2(start_rot[1, 0], start_rot[0, 0])
    target_position = np.asarray(target_position, float)
    length = float(np.linalg.norm(target_position - start_pos))
    yaw_change = math.atan2(math.sin(target_yaw - start_yaw), math.cos(target_yaw - start_yaw))
    n = max(1, math.ceil(length / step), math.ceil(abs(yaw_change) / yaw_step))
    qs = [np.asarray(q_start, float)]
    q = qs[0]
    for i in range(1, n + 1):
        a = i / n
        pos = start_pos + a * (target_position - start_pos)
        rot = top_down_rotation(start_yaw + a * yaw_change)
        result = kin.solve(pos, rot, q, max_iterations=200 if i < n else 400)
        if not result.success:
            return PathPlan(
                False,
                JointTrajectory(),
                length,
                f"target {np.round(target_position, 3).tolist()} yaw {target_yaw:.2f} unreachable: "
                f"{result.message} at {100 * a:.0f}% of the straight path",
                a,
            )
        if float(np.max(np.abs(result.q - q))) > max_joint_jump:
            return PathPlan(
                False,
                JointTrajectory(),
                length,
                f"joint jump of {float(np.max(np.abs(result.q - q))):.2f} rad at {100 * a:.0f}% of the path "
                "(the straight line passes near a singularity or a joint limit)",
                a,
            )
        q = result.q
        qs.append(q)
    path = np.array(qs)
    times = time_parameterize(path, length, yaw_change, limits)
    return PathPlan(True, JointTrajectory(panda.JOINT_NAMES, times, path), length)
