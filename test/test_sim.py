"""The embedded MuJoCo simulation: resets, physics of the scene, cameras, trajectories, gripper, success."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from llm_trainer.motion.kinematics import PandaKinematics, equivalent_grasp_yaw
from llm_trainer.motion.trajectory import TimingLimits, plan_straight_line
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.mujoco_sim import MujocoSimulation
from llm_trainer.tasks.base import COLORS
from llm_trainer.tasks.blocks import BLOCK_SIZE
from llm_trainer.tasks.registry import get_task

TASKS = ("put_block", "stack_blocks")


@pytest.fixture(scope="module")
def kin() -> PandaKinematics:
    return PandaKinematics()


@pytest.fixture
def sim():
    s = MujocoSimulation()
    yield s
    s.close()


def _poses(sim: MujocoSimulation) -> dict[str, tuple[np.ndarray, float]]:
    return {o.name: (np.array(o.position), o.yaw) for o in sim.scene_state().objects}


def _place(sim: MujocoSimulation, name: str, position, yaw: float = 0.0) -> None:
    """Teleport a free block (sets its free-joint qpos, zero velocity)."""
    m, d = sim.model, sim.data
    joint = m.joint(f"{name}_joint")
    qadr, dadr = m.jnt_qposadr[joint.id], m.jnt_dofadr[joint.id]
    d.qpos[qadr : qadr + 3] = position
    d.qpos[qadr + 3 : qadr + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
    d.qvel[dadr : dadr + 6] = 0.0
    mujoco.mj_forward(m, d)


def _grip(sim: MujocoSimulation, kin: PandaKinematics, name: str) -> None:
    """Put the open hand around a block (teleport, for test setup only)."""
    obj = sim.scene_state().get(name)
    ik = kin.solve_top_down(obj.position, equivalent_grasp_yaw(obj.yaw, 0.0), panda.HOME_Q)
    assert ik.success, ik.message
    sim.set_arm_configuration(ik.q)
    sim.step_for(0.1)


# ------------------------------------------------------------------------------------------ resets
@pytest.mark.parametrize("task", TASKS)
def test_reset_is_deterministic_per_seed(task: str) -> None:
    a, b = MujocoSimulation(), MujocoSimulation()
    inst_a, inst_b = a.reset(get_task(task), 7), b.reset(get_task(task), 7)
    assert inst_a.instruction == inst_b.instruction and inst_a.goal == inst_b.goal
    pa, pb = _poses(a), _poses(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        np.testing.assert_allclose(pa[name][0], pb[name][0], atol=1e-9)
        assert pa[name][1] == pytest.approx(pb[name][1], abs=1e-9)
    # Resetting the same simulation again reproduces it too.
    a.reset(get_task(task), 7)
    for name, (pos, _) in _poses(a).items():
        np.testing.assert_allclose(pos, pb[name][0], atol=1e-9)
    # Another seed gives another scene.
    a.reset(get_task(task), 8)
    pc = _poses(a)
    moved = [n for n in pc if n not in pb or np.linalg.norm(pc[n][0][:2] - pb[n][0][:2]) > 0.01]
    assert moved, "seed 8 placed every object exactly where seed 7 did"


@pytest.mark.parametrize("task", TASKS)
def test_objects_rest_on_table_without_interpenetration(sim: MujocoSimulation, task: str) -> None:
    for seed in range(6):
        instance = sim.reset(get_task(task), seed)
        sim.step_for(0.3)
        scene = sim.scene_state()
        geoms = {sim.model.geom(f"{o.name}_geom").id: o.name for o in instance.objects}
        for i in range(sim.data.ncon):
            c = sim.data.contact[i]
            if c.geom1 in geoms or c.geom2 in geoms:
                assert c.dist > -0.002, f"seed {seed}: {geoms.get(c.geom1)}/{geoms.get(c.geom2)} penetrate {c.dist}"
        for spec in instance.objects:
            obj = scene.get(spec.name)
            assert obj.position[2] == pytest.approx(spec.size[2] / 2, abs=0.002), (seed, spec.name, obj.position)
            assert np.hypot(obj.position[0] - spec.position[0], obj.position[1] - spec.position[1]) < 0.003
            assert math.remainder(obj.yaw - spec.yaw, math.pi / 2) == pytest.approx(0.0, abs=0.02)
            assert sim.workspace.contains(obj.position)
        blocks = [o for o in scene.objects if o.category == "block"]
        for i, a in enumerate(blocks):
            for b in blocks[i + 1 :]:
                gap = np.hypot(a.position[0] - b.position[0], a.position[1] - b.position[1])
                assert gap > BLOCK_SIZE, f"seed {seed}: {a.name} and {b.name} overlap ({gap:.3f} m apart)"
        sim.step_for(0.2)
        for spec in instance.objects:
            if spec.movable:
                dof = sim.model.jnt_dofadr[sim.model.joint(f"{spec.name}_joint").id]
                speed = np.abs(sim.data.qvel[dof : dof + 6]).max()
                assert speed < 0.01, f"seed {seed}: {spec.name} still moving"


# ------------------------------------------------------------------------------------------ cameras
@pytest.mark.parametrize("camera", ["front", "left", "right"])
def test_render_shapes_and_centre_depth(sim: MujocoSimulation, camera: str) -> None:
    cam = sim.camera(camera)
    rgb, depth = sim.render(camera)
    assert rgb.shape == (cam.height, cam.width, 3) and rgb.dtype == np.uint8
    assert depth is not None and depth.shape == (cam.height, cam.width) and depth.dtype == np.float32
    assert rgb.std() > 5, "the image is flat"
    # The optical axis of the empty scene hits the table plane (z = 0) at a known distance.
    pos, look = np.array(cam.position), np.array(cam.look_at)
    axis = (look - pos) / np.linalg.norm(look - pos)
    expected = -pos[2] / axis[2]
    centre = depth[cam.height // 2 - 1 : cam.height // 2 + 1, cam.width // 2 - 1 : cam.width // 2 + 1].mean()
    assert centre == pytest.approx(expected, abs=0.01)
    rgb_only, no_depth = sim.render(camera, depth=False)
    assert no_depth is None
    np.testing.assert_array_equal(rgb_only, rgb)


def test_camera_intrinsics_match_fovy(sim: MujocoSimulation) -> None:
    for cam in sim.config.cameras:
        k = sim.camera_intrinsics(cam.name)
        fovy = sim.model.cam_fovy[sim.model.camera(cam.name).id]
        assert fovy == pytest.approx(cam.fovy_deg)
        # The top image row sees the ray fovy/2 above the optical axis.
        assert math.degrees(2 * math.atan((cam.height / 2) / k[1, 1])) == pytest.approx(fovy)
        assert k[0, 0] == pytest.approx(k[1, 1])
        assert (k[0, 2], k[1, 2]) == (cam.width / 2 - 0.5, cam.height / 2 - 0.5)  # CameraInfo: integer pixel centres
        np.testing.assert_array_equal(k[2], [0.0, 0.0, 1.0])


def test_camera_pose_optical_looks_at_target(sim: MujocoSimulation) -> None:
    for cam in sim.config.cameras:
        pos, rot = sim.camera_pose_optical(cam.name)
        np.testing.assert_allclose(pos, cam.position, atol=1e-6)
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-6)
        assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-6)
        to_target = np.array(cam.look_at) - np.array(cam.position)
        np.testing.assert_allclose(rot[:, 2], to_target / np.linalg.norm(to_target), atol=1e-6)
        assert abs(rot[2, 0]) < 1e-6, "image x axis should be horizontal"
        assert rot[2, 1] < 0, "image y axis should point down"


@pytest.mark.parametrize(("task", "seed"), [("put_block", 0), ("stack_blocks", 1)])
def test_blocks_are_visible_where_they_project(task: str, seed: int) -> None:
    """Project each block's top centre with K and the optical pose: the pixel shows that block."""
    sim, empty = MujocoSimulation(), MujocoSimulation()
    sim.reset(get_task(task), seed)
    unit = {n: np.array(c) / np.linalg.norm(c) for n, c in COLORS.items()}
    for camera in ("front", "left", "right"):
        rgb, depth = sim.render(camera)
        rgb_empty, _ = empty.render(camera)
        assert np.abs(rgb.astype(int) - rgb_empty.astype(int)).sum() > 0
        k = sim.camera_intrinsics(camera)
        cam_pos, cam_rot = sim.camera_pose_optical(camera)
        for spec in sim.instance.objects:
            if spec.category != "block":
                continue
            (x, y, z), _ = sim.object_pose(spec)
            p_cam = cam_rot.T @ (np.array([x, y, z + spec.size[2] / 2]) - cam_pos)
            u, v, w = k @ p_cam
            col, row = int(round(u / w)), int(round(v / w))
            assert 0 <= col < rgb.shape[1] and 0 <= row < rgb.shape[0], f"{spec.name} out of {camera}'s view"
            pixel = rgb[row, col].astype(float)
            assert np.abs(pixel - rgb_empty[row, col]).sum() > 60, f"{spec.name} not visible in {camera}"
            colour = max(unit, key=lambda n: float(unit[n] @ pixel) / np.linalg.norm(pixel))
            assert spec.name == f"{colour}_block", f"{camera}: pixel at {spec.name} looks {colour}"
            assert depth[row, col] == pytest.approx(p_cam[2], abs=0.01)
    sim.close()
    empty.close()


# ------------------------------------------------------------------------------------------ trajectories
def _trajectory(sim: MujocoSimulation, kin: PandaKinematics, target=(0.5, 0.2, 0.1), yaw=1.0):
    path = plan_straight_line(kin, sim.joint_positions(), np.array(target), yaw, TimingLimits())
    assert path.success, path.message
    return path.trajectory


def test_follow_trajectory_reaches_goal(sim: MujocoSimulation, kin: PandaKinematics) -> None:
    traj = _trajectory(sim, kin)
    t0 = sim.time
    out = sim.follow_trajectory(traj.times, traj.positions)
    assert out.error_code == 0, out.message
    assert out.final_error < 0.01 and out.max_tracking_error < 0.05
    assert traj.duration <= out.duration <= traj.duration + 0.5 + 1e-6
    assert sim.time - t0 == pytest.approx(out.duration)
    tcp, rot = sim.tcp_pose()
    np.testing.assert_allclose(tcp, [0.5, 0.2, 0.1], atol=0.003)
    assert sim.tcp_yaw() == pytest.approx(1.0, abs=math.radians(1))


def test_follow_trajectory_steps_off_its_precomputed_clock_are_evaluated_on_their_own(
    sim: MujocoSimulation, kin: PandaKinematics
) -> None:
    """The reference is computed for MuJoCo's clock ahead of the motion; should the clock not be where
    it was predicted (here nudged by a callback), each later step gets its own reference, and the
    motion is followed as closely as before."""
    traj = _trajectory(sim, kin)
    start = (sim.data.qpos.copy(), sim.data.qvel.copy(), sim.data.ctrl.copy(), sim.data.time)

    def restore() -> None:
        sim.data.qpos[:], sim.data.qvel[:], sim.data.ctrl[:], sim.data.time = start
        mujoco.mj_forward(sim.model, sim.data)

    plain = sim.follow_trajectory(traj.times, traj.positions)
    restore()
    steps = {"n": 0}

    def nudge(s: MujocoSimulation) -> None:
        steps["n"] += 1
        if steps["n"] == 100:
            s.data.time += 1e-9

    evaluations = []
    precomputed = MujocoSimulation._references
    sim._references = lambda *a: (evaluations.append(len(a[0])), precomputed(*a))[1]
    try:
        nudged = sim.follow_trajectory(traj.times, traj.positions, on_step=nudge)
    finally:
        del sim._references
    assert evaluations[0] > 100 and evaluations[1:] and set(evaluations[1:]) == {1}  # then one step at a time
    assert plain.error_code == nudged.error_code == 0, nudged.message
    assert nudged.max_tracking_error == pytest.approx(plain.max_tracking_error, rel=0.05)
    assert nudged.final_error < 0.01
    np.testing.assert_allclose(nudged.final_positions, plain.final_positions, atol=2e-3)


def test_follow_trajectory_rejects_malformed_input(sim: MujocoSimulation) -> None:
    q = sim.joint_positions()
    t0 = sim.time
    assert sim.follow_trajectory(np.array([0.0, 1.0]), np.array([q])).error_code == -1
    assert sim.follow_trajectory(np.array([0.0]), np.zeros((1, 6))).error_code == -1
    bad = sim.follow_trajectory(np.array([0.0, 1.0, 0.5]), np.array([q, q, q]))
    assert bad.error_code == -1 and "decrease" in bad.message
    assert sim.time == t0


def _cancel_midway(sim: MujocoSimulation, kin: PandaKinematics, fraction: float):
    traj = _trajectory(sim, kin)
    start = sim.joint_positions()
    stop_at = sim.time + fraction * traj.duration
    out = sim.follow_trajectory(traj.times, traj.positions, should_stop=lambda: sim.time >= stop_at)
    return traj, start, out


def test_follow_trajectory_cancel_returns_minus_six_midway(sim: MujocoSimulation, kin: PandaKinematics) -> None:
    traj, start, out = _cancel_midway(sim, kin, 0.45)
    assert out.error_code == -6 and out.message == "cancelled"
    assert out.duration == pytest.approx(0.45 * traj.duration, abs=0.01)
    q = out.final_positions
    assert q is not None
    goal = traj.positions[-1]
    # Stopped part way: clearly away from both ends.
    assert np.max(np.abs(q - start)) > 0.1 and np.max(np.abs(q - goal)) > 0.1
    np.testing.assert_allclose(sim.commanded_joint_positions(), q, atol=1e-12)  # holds where it stopped


def test_arm_comes_to_rest_after_cancel(sim: MujocoSimulation, kin: PandaKinematics) -> None:
    """After a stop at speed the servos hold the arm still: no drift and no residual joint motion.

    (A wrist servo whose damping demand exceeds its force limit can fall into a step-by-step
    bang-bang cycle: the velocity flips sign every physics step while the position barely moves.)
    """
    _, _, out = _cancel_midway(sim, kin, 0.45)
    q_stop = out.final_positions
    tcp_stop = sim.tcp_pose()[0]
    sim.step_for(1.0)
    assert np.max(np.abs(sim.joint_positions() - q_stop)) < 0.02
    assert np.linalg.norm(sim.tcp_pose()[0] - tcp_stop) < 0.005
    velocities = sim.joint_velocities()
    assert np.max(np.abs(velocities)) < 0.01, f"joints still moving 1 s after the stop: {np.round(velocities, 3)}"


# ------------------------------------------------------------------------------------------ gripper
def test_gripper_stalls_on_block_and_holds_it(sim: MujocoSimulation, kin: PandaKinematics) -> None:
    instance = sim.reset(get_task("put_block"), 0)
    block = instance.goal["block"]
    _grip(sim, kin, block)
    assert sim.objects_in_gripper() == []
    closed = sim.move_gripper(0.0, 40.0)
    assert closed.stalled and not closed.reached_goal
    assert closed.width == pytest.approx(BLOCK_SIZE, abs=0.003)
    assert sim.objects_in_gripper() == [block]
    opened = sim.move_gripper(0.08, 40.0)
    assert opened.reached_goal and not opened.stalled
    assert opened.width == pytest.approx(0.08, abs=0.003)
    assert sim.objects_in_gripper() == []


def test_gripper_closes_fully_on_nothing(sim: MujocoSimulation) -> None:
    out = sim.move_gripper(0.0, 40.0)
    assert out.reached_goal and not out.stalled and out.width < 0.003
    assert sim.objects_in_gripper() == []
    assert sim.gripper_target == 0.0


# ------------------------------------------------------------------------------------------ success
def test_stack_blocks_success_predicate_on_built_states(sim: MujocoSimulation) -> None:
    instance = sim.reset(get_task("stack_blocks"), 3)
    base_name, order = instance.goal["base"], instance.goal["order"]
    base = sim.scene_state().get(base_name)
    bx, by, _ = base.position
    assert not sim.check_success().success  # the fresh scene is not solved

    def build(offsets):
        z = base.top_z
        for name, (dx, dy, dz) in zip(order, offsets):
            _place(sim, name, (bx + dx, by + dy, z + BLOCK_SIZE / 2 + dz), base.yaw)
            z += BLOCK_SIZE + dz

    build([(0, 0, 0), (0, 0, 0)])
    report = sim.check_success()
    assert report.success, report.conditions
    assert all(report.conditions.values())
    sim.step_for(0.5)  # and the stack really stands
    assert sim.check_success().success

    build([(0.015, -0.01, 0), (0.02, 0.005, 0)])  # off-centre (offsets from the base) but supported
    assert sim.check_success().success

    build([(0, 0, 0), (0, 0, 0.03)])  # top block hovering 3 cm above
    report = sim.check_success()
    assert not report.success
    assert report.conditions[f"{order[0]}_on_{base_name}"]
    assert not report.conditions[f"{order[1]}_on_{order[0]}"]

    # First block beside the base, the second on it.
    _place(sim, order[0], (bx + 0.06, by, BLOCK_SIZE / 2), base.yaw)
    _place(sim, order[1], (bx + 0.06, by, 1.5 * BLOCK_SIZE), base.yaw)
    report = sim.check_success()
    assert not report.success
    assert not report.conditions[f"{order[0]}_on_{base_name}"]
    assert report.conditions[f"{order[1]}_on_{order[0]}"]

    build([(0, 0, 0)])  # only the first block stacked
    _place(sim, order[1], (0.4, -0.2, BLOCK_SIZE / 2), 0.0)
    assert not sim.check_success().success


def test_put_block_success_predicate_on_built_states(sim: MujocoSimulation) -> None:
    instance = sim.reset(get_task("put_block"), 2)
    block, area = instance.goal["block"], sim.scene_state().get(instance.goal["area"])
    ax, ay, _ = area.position
    rest_z = area.top_z + BLOCK_SIZE / 2
    assert not sim.check_success().success

    _place(sim, block, (ax, ay, rest_z))
    report = sim.check_success()
    assert report.success, report.conditions
    sim.step_for(0.3)
    assert sim.check_success().success

    _place(sim, block, (ax + 0.06, ay - 0.06, rest_z))  # area half width is 0.07: just inside
    assert sim.check_success().success
    _place(sim, block, (ax + 0.075, ay, rest_z))  # just outside
    report = sim.check_success()
    assert not report.success and not report.conditions["block_centre_in_area"]
    assert report.conditions["block_resting_on_area"]
    _place(sim, block, (ax, ay, rest_z + 0.03))  # hovering
    report = sim.check_success()
    assert not report.success and report.conditions["block_centre_in_area"]
    assert not report.conditions["block_resting_on_area"]


def test_check_success_is_false_while_block_is_held(sim: MujocoSimulation, kin: PandaKinematics) -> None:
    instance = sim.reset(get_task("put_block"), 2)
    block, area = instance.goal["block"], sim.scene_state().get(instance.goal["area"])
    _place(sim, block, (area.position[0], area.position[1], area.top_z + BLOCK_SIZE / 2))
    assert sim.check_success().success
    _grip(sim, kin, block)
    sim.move_gripper(0.0, 40.0)
    report = sim.check_success()
    assert not report.success
    assert report.conditions["block_centre_in_area"] and report.conditions["block_resting_on_area"]
    assert report.conditions["gripper_released"] is False
    assert report.details["held_objects"] == [block]
    sim.move_gripper(0.08, 40.0)
    report = sim.check_success()
    assert report.success and report.conditions["gripper_released"]


def test_check_success_without_episode(sim: MujocoSimulation) -> None:
    report = sim.check_success()
    assert not report.success and "no episode" in report.details["error"]
