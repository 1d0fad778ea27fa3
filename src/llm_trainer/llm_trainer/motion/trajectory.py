"""Joint trajectories for waypoint primitives: straight tool paths, IK along them, smooth timing.

A ``move_gripper`` primitive becomes a straight line of the TCP from where it is to the target
(position linear, yaw along the shorter arc), sampled every ``step`` metres / radians, solved by
IK warm-started from the previous sample, then timed with a quintic (minimum-jerk) profile whose
duration respects the joint velocity limits scaled by ``velocity_scaling`` and a Cartesian speed
limit. Straight lines matter here: descents onto an object must not swing sideways into it.

Joint-space paths from the collision-aware planner (``llm_trainer.motion.planning``) are timed by
``time_joint_path``: a quintic per segment, at rest at every via point, so the arm follows exactly
the polyline that was checked for collisions. Every timing is then stretched, if needed, so that
no joint exceeds its acceleration limit scaled by ``acceleration_scaling``.
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

#: Franka's published joint acceleration limits for the Panda (FER) [rad/s^2].
JOINT_ACCELERATION_LIMIT = np.array([15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0])


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
    acceleration_scaling: float = 0.3  # fraction of the Panda's joint acceleration limits


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
    times = np.interp(fraction, _S, _U) * duration
    return limit_acceleration(times, path, JOINT_ACCELERATION_LIMIT * limits.acceleration_scaling)


def joint_accelerations(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Accelerations at the inner knots of the piecewise-linear trajectory (finite differences), (N-2) x 7."""
    times = np.asarray(times, float)
    positions = np.asarray(positions, float)
    if len(times) < 3:
        return np.zeros((0, positions.shape[1] if positions.ndim == 2 else 7))
    dt = np.diff(times)
    moving = dt > 1e-9
    velocity = np.zeros((len(dt), positions.shape[1]))
    velocity[moving] = np.diff(positions, axis=0)[moving] / dt[moving, None]
    span = (dt[1:] + dt[:-1]) / 2
    span = np.where(span > 1e-9, span, np.inf)
    return np.diff(velocity, axis=0) / span[:, None]


def limit_acceleration(times: np.ndarray, positions: np.ndarray, max_acceleration: np.ndarray) -> np.ndarray:
    """Stretch ``times`` uniformly (accelerations scale with 1/k^2) until every joint is within its limit."""
    acc = joint_accelerations(times, positions)
    if acc.size == 0:
        return times
    ratio = float(np.max(np.abs(acc) / max_acceleration))
    if ratio <= 1.0:
        return times
    return times * math.sqrt(ratio) * (1 + 1e-9)


def fit_to_limits(trajectory: JointTrajectory, limits: TimingLimits) -> JointTrajectory:
    """The same path, slowed down uniformly (if at all) until its velocities and accelerations are within
    the scaled limits; used after splicing the measured start configuration into a planned trajectory."""
    times, q = np.asarray(trajectory.times, float), np.asarray(trajectory.positions, float)
    dt = np.diff(times)
    moving = dt > 1e-9
    k = 1.0
    if moving.any():
        vmax = panda.JOINT_VELOCITY_LIMIT * limits.velocity_scaling
        k = max(k, float(np.max(np.abs(np.diff(q, axis=0)[moving]) / dt[moving, None] / vmax)))
    acc = joint_accelerations(times, q)
    if acc.size:
        k = max(k, math.sqrt(float(np.max(np.abs(acc) / (JOINT_ACCELERATION_LIMIT * limits.acceleration_scaling)))))
    if k <= 1.0:
        return trajectory
    return JointTrajectory(trajectory.joint_names, times * k * (1 + 1e-9), q)


def time_joint_path(
    kin: PandaKinematics, vertices: np.ndarray, limits: TimingLimits, *, step: float = 0.05
) -> tuple[JointTrajectory, float]:
    """Time a joint-space polyline: each segment a quintic from rest to rest within the limits.

    Segments are sampled every ``step`` rad (largest joint) so that the TCP speed limit and the
    controller's linear interpolation see the same path. Returns the trajectory and the TCP path length.
    """
    vertices = np.asarray(vertices, float)
    vmax = panda.JOINT_VELOCITY_LIMIT * limits.velocity_scaling
    all_q = [vertices[0]]
    all_t = [0.0]
    tcp_length = 0.0
    t0 = 0.0
    for a, b in zip(vertices[:-1], vertices[1:]):
        n = max(1, math.ceil(float(np.max(np.abs(b - a))) / step))
        qs = a + (b - a) * np.linspace(0.0, 1.0, n + 1)[:, None]
        poses = [kin.forward(q) for q in qs]
        tcp = np.array([p for p, _ in poses])
        yaw = np.unwrap([math.atan2(r[1, 0], r[0, 0]) for _, r in poses])
        dist = np.linalg.norm(np.diff(tcp, axis=0), axis=1)
        tcp_length += float(dist.sum())
        seg = np.max(np.abs(np.diff(qs, axis=0)) / vmax, axis=1)
        seg = np.maximum(seg, dist / limits.max_cartesian_speed)
        seg = np.maximum(seg, np.abs(np.diff(yaw)) / limits.max_yaw_speed)
        cumulative = np.concatenate([[0.0], np.cumsum(seg)])
        total = float(cumulative[-1])
        duration = max(limits.min_duration, _QUINTIC_PEAK * total)
        if total <= 1e-12:
            times = np.linspace(0.0, duration, len(qs))
        else:
            times = np.interp(cumulative / total, _S, _U) * duration
        times = limit_acceleration(times, qs, JOINT_ACCELERATION_LIMIT * limits.acceleration_scaling)
        all_q.extend(qs[1:])
        all_t.extend((t0 + times[1:]).tolist())
        t0 += float(times[-1])
    return JointTrajectory(panda.JOINT_NAMES, np.array(all_t), np.array(all_q)), tcp_length


def tcp_path_length(kin: PandaKinematics, positions: np.ndarray) -> float:
    """Length of the TCP polyline through the FK of each joint waypoint [m]."""
    tcp = np.array([kin.forward(q)[0] for q in positions])
    return float(np.linalg.norm(np.diff(tcp, axis=0), axis=1).sum()) if len(tcp) > 1 else 0.0


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
