"""Forward/inverse kinematics of the Panda TCP and straight-line joint trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llm_trainer.motion.kinematics import (
    MAX_ABS_GRIPPER_YAW,
    PandaKinematics,
    equivalent_grasp_yaw,
    rotation_error,
    top_down_rotation,
)
from llm_trainer.motion.trajectory import TimingLimits, plan_straight_line, time_parameterize
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.mujoco_sim import MujocoSimulation


@pytest.fixture(scope="module")
def kin() -> PandaKinematics:
    return PandaKinematics()


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(rotation_error(a, b)))


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _random_targets(n: int, seed: int = 0) -> list[tuple[np.ndarray, float]]:
    rng = np.random.default_rng(seed)
    return [
        (np.array([rng.uniform(0.3, 0.7), rng.uniform(-0.3, 0.3), rng.uniform(0.02, 0.4)]), rng.uniform(-1.5, 1.5))
        for _ in range(n)
    ]


# ------------------------------------------------------------------------------------------ rotations
def test_top_down_rotation_is_a_downward_rotation() -> None:
    for yaw in (-2.0, 0.0, 0.7, math.pi):
        r = top_down_rotation(yaw)
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        np.testing.assert_allclose(r[:, 2], [0, 0, -1], atol=1e-12)
        assert math.atan2(r[1, 0], r[0, 0]) == pytest.approx(math.remainder(yaw, 2 * math.pi))


def test_rotation_error_axis_angle() -> None:
    base = top_down_rotation(0.2)
    np.testing.assert_allclose(rotation_error(base, base), 0.0, atol=1e-12)
    np.testing.assert_allclose(rotation_error(_rot_z(0.3) @ base, base), [0, 0, 0.3], atol=1e-9)
    np.testing.assert_allclose(rotation_error(base, _rot_z(0.3) @ base), [0, 0, -0.3], atol=1e-9)
    half_turn = rotation_error(_rot_z(math.pi) @ base, base)  # the axis comes from the symmetric part
    assert np.linalg.norm(half_turn) == pytest.approx(math.pi, abs=1e-6)
    np.testing.assert_allclose(np.abs(half_turn / np.linalg.norm(half_turn)), [0, 0, 1], atol=1e-6)


# ------------------------------------------------------------------------------------------ FK
def test_fk_home_is_top_down(kin: PandaKinematics) -> None:
    pos, rot = kin.forward(panda.HOME_Q)
    assert _angle(top_down_rotation(0.0), rot) < math.radians(0.01)
    # The ready pose: in front of the base, on its plane of symmetry, about half a metre up.
    assert 0.25 < pos[0] < 0.35 and abs(pos[1]) < 1e-6 and 0.4 < pos[2] < 0.55


def test_fk_matches_simulator_tcp(kin: PandaKinematics) -> None:
    """A consistency check, not an independent one: the IK model and the scene are both MuJoCo built
    from the same description, so this catches them being built differently (a frame, a joint order).
    The independent checks are the DH chain below and the published table it is compared with."""
    sim = MujocoSimulation()
    rng = np.random.default_rng(3)
    for _ in range(5):
        q = rng.uniform(panda.JOINT_LOWER, panda.JOINT_UPPER)
        sim.set_arm_configuration(q)
        pos, rot = kin.forward(q)
        sim_pos, sim_rot = sim.tcp_pose()
        np.testing.assert_allclose(pos, sim_pos, atol=1e-9)
        np.testing.assert_allclose(rot, sim_rot, atol=1e-9)
    sim.close()


def test_fk_follows_dh_table(kin: PandaKinematics) -> None:
    """Independent check: chain the published modified-DH transforms by hand."""

    def transform(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
        ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
        return np.array(
            [[ct, -st, 0, a], [st * ca, ct * ca, -sa, -d * sa], [st * sa, ct * sa, ca, d * ca], [0, 0, 0, 1]]
        )

    rng = np.random.default_rng(11)
    corners = [np.where(np.arange(7) % 2 == k, panda.JOINT_LOWER, panda.JOINT_UPPER) for k in (0, 1)]
    for q in [*rng.uniform(panda.JOINT_LOWER, panda.JOINT_UPPER, size=(200, 7)), panda.HOME_Q, *corners]:
        t = np.eye(4)
        for (a, d, alpha), theta in zip(panda.DH_TABLE, q):
            t = t @ transform(a, d, alpha, theta)
        t = t @ transform(0.0, panda.FLANGE_D, 0.0, panda.HAND_YAW_ON_FLANGE)
        t = t @ transform(0.0, panda.TCP_OFFSET, 0.0, 0.0)
        pos, rot = kin.forward(q)
        # The MJCF writes frame numbers with 6 significant digits: agreement to ~1e-6.
        np.testing.assert_allclose(pos, t[:3, 3], atol=1e-5)
        np.testing.assert_allclose(rot, t[:3, :3], atol=1e-5)


def test_dh_table_is_franka_s_published_one() -> None:
    """Franka's documented modified-DH parameters (a, d, alpha) per joint, and the 0.107 m flange,
    written here from the datasheet rather than imported, so a typo in the description shows."""
    published = [
        (0.0, 0.333, 0.0),
        (0.0, 0.0, -math.pi / 2),
        (0.0, 0.316, math.pi / 2),
        (0.0825, 0.0, math.pi / 2),
        (-0.0825, 0.384, -math.pi / 2),
        (0.0, 0.0, math.pi / 2),
        (0.088, 0.0, math.pi / 2),
    ]
    np.testing.assert_allclose(np.array(panda.DH_TABLE, float), np.array(published), atol=1e-12)
    assert panda.FLANGE_D == pytest.approx(0.107)


# ------------------------------------------------------------------------------------------ IK
def test_ik_solves_random_top_down_targets(kin: PandaKinematics) -> None:
    for position, yaw in _random_targets(50):
        result = kin.solve_top_down(position, yaw, panda.HOME_Q)
        assert result.success, f"{position.round(3)}, yaw {yaw:.2f}: {result.message}"
        assert result.message == ""
        assert np.all(result.q >= panda.JOINT_LOWER) and np.all(result.q <= panda.JOINT_UPPER)
        pos, rot = kin.forward(result.q)
        assert np.linalg.norm(pos - position) < 1e-3
        assert _angle(top_down_rotation(yaw), rot) < math.radians(0.5)
        assert result.position_error == pytest.approx(np.linalg.norm(pos - position), abs=1e-9)


def test_ik_warm_started_from_previous_solution(kin: PandaKinematics) -> None:
    q = panda.HOME_Q.copy()
    for position, yaw in _random_targets(20, seed=1):
        result = kin.solve_top_down(position, yaw, q)
        assert result.success, result.message
        q = result.q
        pos, _ = kin.forward(q)
        assert np.linalg.norm(pos - position) < 1e-3


@pytest.mark.parametrize(
    ("position", "yaw"), [((1.5, 0.0, 0.2), 0.0), ((0.75, 0.4, 0.02), 0.0), ((0.0, 0.0, 1.3), 0.5)]
)
def test_ik_reports_unreachable_targets(kin: PandaKinematics, position, yaw: float) -> None:
    result = kin.solve_top_down(position, yaw, panda.HOME_Q)
    assert not result.success
    assert result.message.startswith("no IK solution:") and "mm" in result.message and "deg" in result.message
    assert result.iterations == 300
    assert result.position_error > 5e-4
    # Even the best effort it returns stays inside the joint limits, and it is no solution either.
    assert np.all(result.q >= panda.JOINT_LOWER) and np.all(result.q <= panda.JOINT_UPPER)
    pos, _ = kin.forward(result.q)
    assert np.linalg.norm(pos - np.asarray(position)) > 5e-4


def test_ik_respects_joint_limits_from_any_start(kin: PandaKinematics) -> None:
    rng = np.random.default_rng(5)
    for position, yaw in _random_targets(15, seed=2):
        q0 = rng.uniform(panda.JOINT_LOWER, panda.JOINT_UPPER)
        result = kin.solve_top_down(position, yaw, q0)
        assert np.all(result.q >= panda.JOINT_LOWER) and np.all(result.q <= panda.JOINT_UPPER)
    # A start outside the limits is clipped, not used as is.
    outside = panda.JOINT_UPPER + 0.5
    result = kin.solve_top_down((0.5, 0.0, 0.3), 0.0, outside)
    assert np.all(result.q <= panda.JOINT_UPPER)


def test_ik_gripper_yaw_turns_joint_7(kin: PandaKinematics) -> None:
    """The last joint does the turning: yaw +-0.5 about the same point differ by ~1 rad in q7.

    The flange axis points down, so a positive turn of joint 7 turns the gripper's yaw negative.
    """
    a = kin.solve_top_down((0.5, 0.0, 0.2), 0.5, panda.HOME_Q)
    b = kin.solve_top_down((0.5, 0.0, 0.2), -0.5, panda.HOME_Q)
    assert a.success and b.success
    assert a.q[6] - b.q[6] == pytest.approx(-1.0, abs=0.05)
    assert np.max(np.abs(a.q[:6] - b.q[:6])) < 0.25


# ------------------------------------------------------------------------------------------ grasp yaw
def test_equivalent_grasp_yaw_examples() -> None:
    assert equivalent_grasp_yaw(3.0, 0.0) == pytest.approx(3.0 - math.pi)
    assert equivalent_grasp_yaw(-3.0, 0.0) == pytest.approx(-3.0 + math.pi)
    assert equivalent_grasp_yaw(0.2, 0.0) == pytest.approx(0.2)
    # 1.6 and 1.6 - pi are both reachable: the one nearest the reference wins.
    assert equivalent_grasp_yaw(1.6, 0.0) == pytest.approx(1.6 - math.pi)
    assert equivalent_grasp_yaw(1.6, 1.5) == pytest.approx(1.6)
    # A yaw a full turn off comes back into the comfortable range.
    assert equivalent_grasp_yaw(0.3 + 2 * math.pi, 0.0) == pytest.approx(0.3)


def test_equivalent_grasp_yaw_properties() -> None:
    rng = np.random.default_rng(9)
    for _ in range(500):
        yaw, ref = rng.uniform(-2 * math.pi, 2 * math.pi), rng.uniform(-MAX_ABS_GRIPPER_YAW, MAX_ABS_GRIPPER_YAW)
        out = equivalent_grasp_yaw(yaw, ref)
        assert math.remainder(out - yaw, math.pi) == pytest.approx(0.0, abs=1e-9)  # same grasp
        assert abs(out) <= MAX_ABS_GRIPPER_YAW
        others = [out + k * math.pi for k in (-1, 1) if abs(out + k * math.pi) <= MAX_ABS_GRIPPER_YAW]
        assert all(abs(out - ref) <= abs(o - ref) + 1e-12 for o in others)


# ------------------------------------------------------------------------------------------ trajectories
CASES = [((0.5, 0.2, 0.1), 1.0), ((0.6, -0.3, 0.3), -1.2), ((0.35, 0.0, 0.05), 0.0), ((0.7, 0.1, 0.02), 0.7)]


@pytest.mark.parametrize("scaling", [0.3, 1.0])
@pytest.mark.parametrize(("target", "yaw"), CASES)
def test_plan_straight_line_timing(kin: PandaKinematics, target, yaw: float, scaling: float) -> None:
    limits = TimingLimits(velocity_scaling=scaling, max_cartesian_speed=0.25)
    plan = plan_straight_line(kin, panda.HOME_Q, np.array(target), yaw, limits)
    assert plan.success, plan.message
    traj = plan.trajectory
    assert traj.joint_names == panda.JOINT_NAMES
    assert traj.positions.shape == (len(traj.times), 7) and len(traj) >= 2
    assert traj.times[0] == 0.0
    assert np.all(np.diff(traj.times) >= 0)
    assert traj.duration >= limits.min_duration
    np.testing.assert_allclose(traj.positions[0], panda.HOME_Q)
    dt = np.diff(traj.times)
    moving = dt > 0
    velocity = np.abs(np.diff(traj.positions, axis=0))[moving] / dt[moving, None]
    ratio = velocity / (scaling * panda.JOINT_VELOCITY_LIMIT)
    assert ratio.max() <= 1.03, f"joint velocity at {ratio.max():.3f} x the scaled limit"
    assert np.all(traj.positions >= panda.JOINT_LOWER) and np.all(traj.positions <= panda.JOINT_UPPER)


@pytest.mark.parametrize("scaling", [0.3, 1.0])
@pytest.mark.parametrize(("target", "yaw"), CASES)
def test_plan_straight_line_respects_cartesian_speed_limit(
    kin: PandaKinematics, target, yaw: float, scaling: float
) -> None:
    """The documented TCP speed limit (TimingLimits.max_cartesian_speed) holds along the path too."""
    limits = TimingLimits(velocity_scaling=scaling, max_cartesian_speed=0.25)
    plan = plan_straight_line(kin, panda.HOME_Q, np.array(target), yaw, limits)
    assert plan.success, plan.message
    traj = plan.trajectory
    dt = np.diff(traj.times)
    tcp = np.array([kin.forward(q)[0] for q in traj.positions])
    speed = np.linalg.norm(np.diff(tcp, axis=0), axis=1)[dt > 0] / dt[dt > 0]
    assert speed.max() <= 1.03 * limits.max_cartesian_speed, f"TCP at {speed.max():.3f} m/s"


@pytest.mark.parametrize(("target", "yaw"), CASES)
def test_plan_straight_line_stays_on_the_line(kin: PandaKinematics, target, yaw: float) -> None:
    plan = plan_straight_line(kin, panda.HOME_Q, np.array(target), yaw, TimingLimits())
    assert plan.success, plan.message
    positions = plan.trajectory.positions
    start, _ = kin.forward(positions[0])
    end = np.asarray(target, float)
    assert plan.tcp_path_length == pytest.approx(np.linalg.norm(end - start))
    direction = (end - start) / np.linalg.norm(end - start)
    # Waypoints and the joint-space midpoints between them (what a controller interpolates).
    samples = list(positions) + [(a + b) / 2 for a, b in zip(positions[:-1], positions[1:])]
    progress = []
    for q in samples:
        p, rot = kin.forward(q)
        rel = p - start
        along = float(rel @ direction)
        assert np.linalg.norm(rel - along * direction) < 0.002
        assert -1e-3 <= along <= np.linalg.norm(end - start) + 1e-3
        assert rot[2, 2] < -math.cos(math.radians(1))  # pointing down throughout
        progress.append(along)
    assert np.all(np.diff(progress[: len(positions)]) > 0), "the TCP does not move monotonically along the line"
    p_end, rot_end = kin.forward(positions[-1])
    assert np.linalg.norm(p_end - end) < 1e-3
    assert _angle(top_down_rotation(yaw), rot_end) < math.radians(0.5)


def test_plan_straight_line_turns_the_short_way(kin: PandaKinematics) -> None:
    start = kin.solve_top_down((0.5, 0.0, 0.2), 1.4, panda.HOME_Q).q
    plan = plan_straight_line(kin, start, np.array([0.5, 0.0, 0.2]), -1.4 + 2 * math.pi, TimingLimits())
    assert plan.success
    yaws = [math.atan2(r[1, 0], r[0, 0]) for r in (kin.forward(q)[1] for q in plan.trajectory.positions)]
    # From 1.4 to 4.88 (== -1.4): going up is 3.48 rad, going down through zero is 2.8 rad.
    assert min(abs(y) for y in yaws) < 0.1
    assert plan.trajectory.duration >= 1.875 * 2.8 / TimingLimits().max_yaw_speed - 1e-6


def test_plan_straight_line_unreachable(kin: PandaKinematics) -> None:
    plan = plan_straight_line(kin, panda.HOME_Q, np.array([0.75, 0.4, 0.02]), 0.0, TimingLimits())
    assert not plan.success
    assert "unreachable" in plan.message and "[0.75, 0.4, 0.02]" in plan.message
    assert 0.0 < plan.failed_fraction <= 1.0
    assert len(plan.trajectory) == 0 and plan.trajectory.duration == 0.0


def test_time_parameterize_degenerate_paths() -> None:
    limits = TimingLimits(min_duration=0.4)
    assert time_parameterize(panda.HOME_Q[None, :], 0.0, 0.0, limits).tolist() == [0.0]
    still = time_parameterize(np.array([panda.HOME_Q, panda.HOME_Q]), 0.0, 0.0, limits)
    np.testing.assert_allclose(still, [0.0, 0.4])
    # A pure yaw turn is timed by the yaw speed limit.
    turn = time_parameterize(np.array([panda.HOME_Q, panda.HOME_Q + 1e-6]), 0.0, 1.0, limits)
    assert turn[-1] == pytest.approx(1.875 * 1.0 / limits.max_yaw_speed)
