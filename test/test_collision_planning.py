"""Collision-aware planning: the collision model, RRT-Connect, the predicted world, the safety layer,
and the executor on the in-process simulator planning around an obstacle."""

from __future__ import annotations

import copy
import math
import threading

import numpy as np
import pytest

from llm_trainer.execution.backend import TIMED_OUT, DirectSimBackend
from llm_trainer.execution.errors import ErrorCode, Status
from llm_trainer.execution.executor import PlanExecutor
from llm_trainer.execution.executor_config import ExecutorConfig, SafetyConfig
from llm_trainer.execution.safety import check_trajectory
from llm_trainer.execution.world import WorldModel
from llm_trainer.motion.collision import TABLE, Attachment, Box, CollisionChecker, CollisionContext
from llm_trainer.motion.kinematics import PandaKinematics
from llm_trainer.motion.planning import MotionPlanner, PlannerSettings, rrt_connect
from llm_trainer.motion.trajectory import (
    JOINT_ACCELERATION_LIMIT,
    JointTrajectory,
    TimingLimits,
    plan_straight_line,
    time_joint_path,
)
from llm_trainer.planning.base import PlanRequest
from llm_trainer.planning.oracle import OraclePlanner
from llm_trainer.primitives import Primitive, PrimitiveKind
from llm_trainer.scene import SceneState
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.mujoco_sim import MujocoSimulation
from llm_trainer.tasks.base import ObjectSpec, SuccessReport, Task, TaskInstance
from llm_trainer.tasks.registry import get_task

BLOCK = (0.05, 0.05, 0.05)
WALL_SIZE = (0.12, 0.04, 0.25)
WALL_POS = (0.45, 0.0, WALL_SIZE[2] / 2)
A, B = (0.45, 0.2, 0.1), (0.45, -0.2, 0.1)  # the straight line between them runs through the wall


class _Scene(Task):
    """A task that only places fixed objects (no goal): scenes for the planner tests."""

    name = "test_scene"
    instruction_template = "nothing"

    def __init__(self, objects: list[ObjectSpec]):
        self.objects = objects

    def sample(self, rng, seed):
        return TaskInstance(self.name, seed, "nothing", {}, list(self.objects))

    def check_success(self, scene, goal):
        return SuccessReport(True)


def _wall() -> ObjectSpec:
    return ObjectSpec(name="wall", category="obstacle", size=WALL_SIZE, position=WALL_POS, yaw=0.0, movable=False)


@pytest.fixture(scope="module")
def kin() -> PandaKinematics:
    return PandaKinematics()


@pytest.fixture
def wall_sim():
    sim = MujocoSimulation()
    sim.reset(_Scene([_wall()]), 0)
    yield sim
    sim.close()


def _yaw(rot: np.ndarray) -> float:
    return math.atan2(rot[1, 0], rot[0, 0])


# ------------------------------------------------------------------------------------------ collision model
def test_collision_checker_table_self_collision_and_margin() -> None:
    checker = CollisionChecker([], margin=0.005)
    assert checker.contacts(panda.HOME_Q) == [] and checker.is_free(panda.HOME_Q)
    # Forearm folded back onto the upper arm: self-collision (the simulator itself does not model it).
    folded = np.array([0.0, -1.5, 0.0, -3.0, 0.0, 0.5, 0.785])
    parts = {(c.robot_part, c.other) for c in checker.contacts(folded)}
    assert ("link2", "hand") in parts and not checker.is_free(folded)
    assert CollisionChecker([], self_collision=False).contacts(folded) == []
    # The gripper pushed below the table top.
    kin = PandaKinematics()
    low = kin.solve_top_down((0.5, 0.0, 0.003), 0.0, panda.HOME_Q).q
    contacts = checker.contacts(low)
    assert contacts and all(c.other == TABLE for c in contacts)
    assert contacts[0].distance < 0 and "deep" in contacts[0].describe()
    # Within the margin but not touching: reported with its distance.
    near = kin.solve_top_down((0.5, 0.0, 0.0155), 0.0, panda.HOME_Q).q  # pads ~6.5 mm above the table
    assert checker.is_free(near)
    assert not CollisionChecker([], margin=0.01).is_free(near)


def test_grasp_contacts_are_allowed_for_the_fingers_only(kin: PandaKinematics) -> None:
    checker = CollisionChecker([("red", BLOCK)], margin=0.005)
    block = Box("red", (0.5, 0.1, 0.025), 0.3, BLOCK)
    # Fingers closed to the block's width around it: the pads sit on its faces.
    q = kin.solve_top_down(block.position, 0.3, panda.HOME_Q).q
    checker.set_context(CollisionContext(obstacles=(block,), finger_width=0.05))
    squeezed = checker.contacts(q)
    assert squeezed and {c.other for c in squeezed} == {"red"}
    assert {c.robot_part.rstrip("12") for c in squeezed} <= {"pad", "finger"}
    checker.set_context(CollisionContext(obstacles=(block,), finger_width=0.05, fingers_may_touch=frozenset({"red"})))
    assert checker.contacts(q) == []
    # Lower, the hand body comes within the margin of the block's top: not a finger contact, a collision.
    lowered = kin.solve_top_down((0.5, 0.1, 0.005), 0.3, q).q
    assert any(c.robot_part == "hand" and c.other == "red" for c in checker.contacts(lowered))
    checker.set_context(CollisionContext(obstacles=(block,), finger_width=0.05, gripper_may_touch=frozenset({"red"})))
    assert all(c.other == TABLE for c in checker.contacts(lowered))


def test_attached_object_moves_with_the_hand(kin: PandaKinematics) -> None:
    checker = CollisionChecker([("red", BLOCK)], margin=0.005)
    q_grasp = kin.solve_top_down((0.5, 0.0, 0.025), 0.0, panda.HOME_Q).q
    p, r = kin.forward(q_grasp)
    att = Attachment.from_poses(Box("red", (0.5, 0.0, 0.025), 0.2, BLOCK), p, r)
    np.testing.assert_allclose(att.position, [0.0, 0.0, 0.0], atol=1e-3)
    back = att.world_box(p, r)
    assert back.yaw == pytest.approx(0.2, abs=1e-6) and np.allclose(back.position, (0.5, 0.0, 0.025), atol=1e-3)
    # Held at the table: the block touches the table unless that contact is allowed.
    checker.set_context(CollisionContext(attached=att, finger_width=0.05))
    assert {c.other for c in checker.contacts(q_grasp)} == {TABLE}
    assert {c.robot_part for c in checker.contacts(q_grasp)} == {"held red"}
    checker.set_context(CollisionContext(attached=att, finger_width=0.05, held_may_touch=frozenset({TABLE})))
    assert checker.contacts(q_grasp) == []
    # Raised, it is clear of everything; the world copy of a held object is never an obstacle.
    q_up = kin.solve_top_down((0.5, 0.0, 0.2), 0.0, q_grasp).q
    checker.set_context(
        CollisionContext(obstacles=(Box("red", (0.5, 0.0, 0.025), 0.2, BLOCK),), attached=att, finger_width=0.05)
    )
    assert checker.contacts(q_up) == []


def test_rrt_connect_finds_a_free_path_deterministically(kin: PandaKinematics) -> None:
    checker = CollisionChecker([("wall", WALL_SIZE)], margin=0.005)
    checker.set_context(CollisionContext(obstacles=(Box("wall", WALL_POS, 0.0, WALL_SIZE),)))
    q0 = kin.solve_top_down(A, 0.0, panda.HOME_Q).q
    q1 = kin.solve_top_down(B, 0.0, q0).q
    assert checker.is_free(q0) and checker.is_free(q1) and not checker.segment_free(q0, q1)
    paths = [rrt_connect(checker, q0, q1, np.random.default_rng(3), max_time=5.0)[0] for _ in range(2)]
    assert paths[0] is not None and len(paths[0]) == len(paths[1])
    np.testing.assert_allclose(np.array(paths[0]), np.array(paths[1]))
    path = paths[0]
    np.testing.assert_allclose(path[0], q0)
    np.testing.assert_allclose(path[-1], q1)
    assert all(checker.segment_free(a, b, 0.01) for a, b in zip(path[:-1], path[1:]))


# ------------------------------------------------------------------------------------------ planner + timing
def test_planner_uses_the_straight_line_when_free_and_plans_around_otherwise(kin: PandaKinematics) -> None:
    checker = CollisionChecker([("wall", WALL_SIZE)], margin=0.005)
    box = (0.2, 0.75, -0.4, 0.4, 0.005, 0.6)
    checker.set_context(CollisionContext(obstacles=(Box("wall", WALL_POS, 0.0, WALL_SIZE),), workspace=box))
    planner = MotionPlanner(kin, checker, PlannerSettings())
    q0 = kin.solve_top_down(A, 0.0, panda.HOME_Q).q
    free = planner.plan(q0, np.array([0.55, 0.25, 0.1]), 0.0, TimingLimits())
    assert free.success and free.method == "straight" and free.straight_collision == ""
    around = planner.plan(q0, np.array(B), 0.0, TimingLimits())
    assert around.success and around.method == "rrt_connect", around.message
    assert "wall" in around.straight_collision
    assert checker.first_collision(around.trajectory.positions, 0.01) is None
    assert around.path_length > around.straight_length == pytest.approx(0.4, abs=1e-3)
    end, rot = kin.forward(around.trajectory.positions[-1])
    assert np.linalg.norm(end - np.array(B)) < 1e-3 and abs(_yaw(rot)) < math.radians(0.5)
    # Inside the wall there is no collision-free goal at all.
    inside = planner.plan(q0, np.array([0.45, 0.0, 0.1]), 0.0, TimingLimits())
    assert not inside.success and inside.error == "collision" and "wall" in inside.message
    # Without collision checking (never on hardware), the straight line is taken blindly.
    blind = MotionPlanner(kin, checker, PlannerSettings(enabled=False)).plan(q0, np.array(B), 0.0, TimingLimits())
    assert blind.success and blind.method == "straight"


def test_time_joint_path_rests_at_vias_and_respects_limits(kin: PandaKinematics) -> None:
    limits = TimingLimits(velocity_scaling=0.3, acceleration_scaling=0.3, max_cartesian_speed=0.25)
    q0 = kin.solve_top_down(A, 0.0, panda.HOME_Q).q
    via = q0 + np.array([0.3, -0.4, 0.0, 0.5, 0.0, -0.2, 0.0])
    q1 = kin.solve_top_down(B, 0.0, q0).q
    traj, length = time_joint_path(kin, np.array([q0, via, q1]), limits)
    assert length > 0 and traj.times[0] == 0 and np.all(np.diff(traj.times) > 0)
    np.testing.assert_allclose(traj.positions[0], q0)
    np.testing.assert_allclose(traj.positions[-1], q1)
    dt = np.diff(traj.times)
    v = np.abs(np.diff(traj.positions, axis=0)) / dt[:, None]
    assert (v / (panda.JOINT_VELOCITY_LIMIT * 0.3)).max() <= 1.03
    k = int(np.argmin(np.linalg.norm(traj.positions - via, axis=1)))
    assert np.allclose(traj.positions[k], via)
    assert max(v[k - 1].max(), v[k].max()) < 0.2 * v.max()  # slowing to rest there (the samples are 0.05 rad apart)
    config = ExecutorConfig(timing=limits, safety=SafetyConfig(workspace=(-1.0, 1.0, -1.0, 1.0, 0.0, 1.2)))
    assert check_trajectory(0, traj, config, kin) is None


def _traj(positions, times) -> JointTrajectory:
    return JointTrajectory(panda.JOINT_NAMES, np.asarray(times, float), np.asarray(positions, float))


def test_safety_layer_refuses_trajectories_over_any_limit(kin: PandaKinematics) -> None:
    cfg = ExecutorConfig()
    q0 = panda.HOME_Q
    ok = _traj([q0, q0 + 0.01], [0.0, 1.0])
    assert check_trajectory(3, ok, cfg, kin) is None
    over_limit = q0.copy()
    over_limit[3] = panda.JOINT_UPPER[3] - 0.005  # inside Franka's range, inside the 0.01 rad margin
    code, msg = check_trajectory(3, _traj([q0, over_limit], [0.0, 5.0]), cfg, kin)
    assert (
        code == ErrorCode.LIMIT
        and "panda_joint4" in msg
        and "joint_limit_margin" in msg
        and msg.startswith("primitive 3")
    )
    code, msg = check_trajectory(3, _traj([q0, q0 + 0.5], [0.0, 0.1]), cfg, kin)
    assert code == ErrorCode.LIMIT and "rad/s exceeds" in msg and "velocity_scaling" in msg
    # Velocity fine, but a sudden stop: acceleration over its scaled limit.
    step = np.array([0, 0.32, 0, 0, 0, 0, 0])  # 0.64 rad/s for 0.5 s, then a stop within 5 ms
    jerk = _traj([q0, q0 + step, q0 + step], [0.0, 0.5, 0.505])
    code, msg = check_trajectory(3, jerk, cfg, kin)
    assert code == ErrorCode.LIMIT and "rad/s^2" in msg and "acceleration_scaling" in msg
    assert JOINT_ACCELERATION_LIMIT[1] == 7.5
    code, msg = check_trajectory(3, _traj([q0, q0], [0.0, 25.0]), cfg, kin)
    assert code == ErrorCode.TIMEOUT and "over the 20.0 s limit" in msg
    # The TCP may not leave the workspace box on the way; an arm already outside may only come back.
    small = ExecutorConfig(safety=SafetyConfig(workspace=(0.2, 0.75, -0.4, 0.4, 0.0, 0.45)))
    inside = kin.solve_top_down((0.5, 0.0, 0.3), 0.0, panda.HOME_Q).q
    above = kin.solve_top_down((0.5, 0.0, 0.5), 0.0, inside).q
    code, msg = check_trajectory(3, _traj([inside, above], [0.0, 3.0]), small, kin)
    assert code == ErrorCode.LIMIT and "outside the safety workspace" in msg
    assert check_trajectory(3, _traj([above, inside], [0.0, 3.0]), small, kin) is None


# ------------------------------------------------------------------------------------------ predicted world
def test_world_model_allows_exactly_the_planned_contacts() -> None:
    sim = MujocoSimulation()
    try:
        instance = sim.reset(get_task("stack_blocks"), 3)
        scene = sim.scene_state()
    finally:
        sim.close()
    plan = OraclePlanner().plan(PlanRequest(instance.instruction, scene, "stack_blocks", instance.goal)).plan
    executor = PlanExecutor(DirectSimBackend(MujocoSimulation()))
    steps, rejection = executor.prepare(plan, panda.HOME_Q, scene)
    assert rejection is None, rejection.message
    base, first, second = instance.goal["base"], *instance.goal["order"]
    ctx = [s.context for s in steps]
    # 0 open, 1 above, 2 down, 3 close(first), 4 up, 5 over, 6 down, 7 open, 8 up, 9 above second, ...
    assert plan[3].kind == PrimitiveKind.CLOSE_GRIPPER and plan[3].object_name == first
    assert ctx[1].fingers_may_touch == ctx[2].fingers_may_touch == frozenset({first})
    assert ctx[2].attached is None and ctx[2].held_may_touch == frozenset()
    assert ctx[4].attached.name == first and TABLE in ctx[4].held_may_touch  # the lift off the table
    assert ctx[5].attached.name == first and ctx[5].held_may_touch == frozenset()  # carrying: nothing
    assert base in ctx[6].held_may_touch and base in ctx[6].gripper_may_touch  # lowering onto the base
    assert first not in {b.name for b in ctx[5].obstacles}  # a held object is not an obstacle
    assert ctx[8].attached is None and first in ctx[8].fingers_may_touch  # the retreat from the released block
    assert ctx[9].fingers_may_touch == frozenset({second})  # then only the next block to grasp
    # The second block is put on the first one where the prediction left it.
    last_place = max(
        i
        for i, p in enumerate(plan)
        if p.kind == PrimitiveKind.MOVE_GRIPPER and i + 1 < len(plan) and plan[i + 1].kind == PrimitiveKind.OPEN_GRIPPER
    )
    assert first in ctx[last_place].held_may_touch
    world = executor._world
    stacked = world.boxes[first]
    assert stacked.bottom_z == pytest.approx(world.boxes[base].top_z, abs=1e-6)
    assert (
        math.hypot(
            stacked.position[0] - world.boxes[base].position[0], stacked.position[1] - world.boxes[base].position[1]
        )
        < 0.01
    )


def test_world_model_unnamed_close_and_closing_on_nothing() -> None:
    scene = SceneState.from_dict(
        {"objects": [{"name": "cube", "position": [0.5, 0.0, 0.025], "yaw": 0.4, "size": [0.05, 0.04, 0.05]}]}
    )
    world = WorldModel(scene)
    assert world.object_at(np.array([0.5, 0.0, 0.03])) == "cube"
    assert world.object_at(np.array([0.5, 0.2, 0.03])) is None
    assert world.close("", np.array([0.5, 0.0, 0.025]), 0.4) == "cube"
    assert world.finger_width == pytest.approx(0.04, abs=1e-6)  # the cube's width across the fingers
    assert world.open(np.array([0.6, 0.1, 0.3]), 0.4) == "cube"
    assert world.boxes["cube"].position == pytest.approx((0.6, 0.1, 0.025), abs=1e-6)  # dropped onto the table
    assert world.close("cube", np.array([0.3, 0.3, 0.025]), 0.0) is None  # named, but not between the fingers
    assert world.finger_width == 0.0 and world.held is None


def test_world_model_knows_what_the_hand_already_holds() -> None:
    """A plan may start with an object in the hand (dynamic replanning): the gripper width says so."""

    def world(width: float) -> WorldModel:
        scene = SceneState.from_dict(
            {
                "objects": [{"name": "cube", "position": [0.5, 0.0, 0.025], "yaw": 0.0, "size": [0.05, 0.04, 0.05]}],
                "end_effector": {"position": [0.5, 0.0, 0.03], "yaw": 0.0, "gripper_width": width},
            }
        )
        return WorldModel(scene)

    tcp = np.array([0.5, 0.0, 0.03])
    held = world(0.039)  # closed on the cube: 4 cm across the fingers at yaw 0
    assert held.held_at_start(tcp, 0.0) == "cube"
    assert held.held is not None and "cube" not in {b.name for b in held.obstacles()}
    assert TABLE in held.pick_support and held.finger_width == pytest.approx(0.039)
    assert world(0.08).held_at_start(tcp, 0.0) is None  # open around it: just released, not held
    assert world(0.0).held_at_start(tcp, 0.0) is None  # closed on nothing
    assert world(0.039).held_at_start(np.array([0.5, 0.2, 0.03]), 0.0) is None  # closed, but elsewhere
    assert world(0.02).held_at_start(tcp, 0.0) is None  # narrower than the cube: not this cube
    assert world(0.049).held_at_start(tcp, math.pi / 2) == "cube"  # turned: 5 cm across the fingers


def test_a_plan_that_starts_with_an_object_in_the_hand_carries_it() -> None:
    """Grasp with one plan, lift and carry with the next: the block in the hand is no obstacle."""
    sim = MujocoSimulation()
    try:
        instance = sim.reset(get_task("put_block"), 2)
        scene = sim.scene_state()
        plan = OraclePlanner().plan(PlanRequest(instance.instruction, scene, "put_block", instance.goal)).plan
        grasp = next(i for i, p in enumerate(plan) if p.kind == PrimitiveKind.CLOSE_GRIPPER)
        executor = PlanExecutor(DirectSimBackend(sim))
        first = executor.execute(plan[: grasp + 1])
        assert first.success, first.message
        second = executor.execute(plan[grasp + 1 :])  # scene from the simulator: closed on the block
        assert second.success, second.message
        assert executor._world.held is None  # released at the end of the second plan
        report = sim.check_success()
    finally:
        sim.close()
    assert report.success, report


# ------------------------------------------------------------------------------------------ executor on the sim
def test_executor_plans_around_an_obstacle_and_the_arm_never_touches_it(wall_sim: MujocoSimulation) -> None:
    sim = wall_sim
    wall = sim.model.geom("wall_geom").id
    touches: list[str] = []
    tcp_trace: dict[int, list[np.ndarray]] = {}
    current = {"index": -1}

    def on_step(s: MujocoSimulation) -> None:
        for k in range(s.data.ncon):
            c = s.data.contact[k]
            if wall in (c.geom1, c.geom2):
                other = c.geom2 if c.geom1 == wall else c.geom1
                touches.append(s.model.body(int(s.model.geom_bodyid[other])).name)
        tcp_trace.setdefault(current["index"], []).append(s.tcp_pose()[0])

    reached: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def feedback(status, total) -> None:
        current["index"] = status.index
        if status.status == Status.DONE:
            reached[status.index] = sim.tcp_pose()

    executor = PlanExecutor(DirectSimBackend(sim, on_step=on_step))
    plan = [Primitive.move(A, 0.0), Primitive.move(B, 0.3)]
    # The straight line from A to B runs through the wall (the TCP itself passes its centre).
    q_a = executor.kinematics.solve_top_down(A, 0.0, panda.HOME_Q).q
    straight = plan_straight_line(executor.kinematics, q_a, np.array(B), 0.3, TimingLimits())
    assert straight.success
    checker = CollisionChecker([("wall", WALL_SIZE)])
    checker.set_context(CollisionContext(obstacles=(Box("wall", WALL_POS, 0.0, WALL_SIZE),)))
    hit = checker.first_collision(straight.trajectory.positions)
    assert hit is not None and any(c.other == "wall" for c in hit.contacts)

    result = executor.execute(plan, feedback=feedback)
    assert result.success, result.message
    assert result.statuses[1].message.startswith("planned path") and "wall" in result.statuses[1].message
    assert touches == [], f"the arm touched the wall: {sorted(set(touches))}"
    for i, prim in enumerate(plan):
        pos, rot = reached[i]
        assert np.linalg.norm(pos - np.asarray(prim.position)) < 0.005
        assert abs(math.degrees(math.remainder(_yaw(rot) - prim.yaw, math.pi))) < 3.0
        assert result.statuses[i].tracking_error < 0.005
    trace = np.array(tcp_trace[1])
    executed = float(np.linalg.norm(np.diff(trace, axis=0), axis=1).sum())
    assert executed > 0.4 * 1.2  # around the wall, not through it
    assert trace[:, 2].max() > WALL_SIZE[2] or np.abs(trace[:, 0] - WALL_POS[0]).max() > WALL_SIZE[0] / 2


def test_target_inside_an_obstacle_is_refused_before_motion(wall_sim: MujocoSimulation) -> None:
    before = (wall_sim.joint_positions(), wall_sim.time)
    result = PlanExecutor(DirectSimBackend(wall_sim)).execute(
        [Primitive.move(A, 0.0), Primitive.move((0.45, 0.0, 0.1), 0.0)]
    )
    assert result.error_code == ErrorCode.COLLISION and result.failed_index == 1
    assert "collides" in result.message and "wall" in result.message and result.message.startswith("primitive 1")
    assert [s.status for s in result.statuses] == [Status.SKIPPED, Status.FAILED]
    np.testing.assert_array_equal(wall_sim.joint_positions(), before[0])
    assert wall_sim.time == before[1]
    # A planner without time to search reports the collision of the straight line.
    config = ExecutorConfig(collision=PlannerSettings(rrt_max_time=1e-4, goal_attempts=1))
    result = PlanExecutor(DirectSimBackend(wall_sim), config).execute([Primitive.move(A, 0.0), Primitive.move(B, 0.0)])
    # Nothing moved (a lucky direct connection would have moved the arm), and the reason is the collision.
    assert wall_sim.time == before[1]
    assert result.error_code == ErrorCode.COLLISION and result.failed_index == 1, result.message
    assert "no collision-free path" in result.message and "wall" in result.message


def test_a_scene_change_after_planning_is_seen_before_the_motion(wall_sim: MujocoSimulation) -> None:
    """Planned against a scene without the wall, executed in a world with it: checked and replanned."""
    stale = SceneState.from_dict({"objects": []})
    events: list = []
    result = PlanExecutor(DirectSimBackend(wall_sim)).execute(
        [Primitive.move(A, 0.0), Primitive.move(B, 0.0)], scene=stale, feedback=lambda s, n: events.append(s.message)
    )
    assert result.success, result.message
    assert (
        result.statuses[1].message.startswith("replanned: the scene changed") and "wall" in result.statuses[1].message
    )
    np.testing.assert_allclose(wall_sim.tcp_pose()[0], B, atol=0.005)


def test_primitive_timeouts(wall_sim: MujocoSimulation) -> None:
    # A motion planned to take longer than the limit is refused before anything moves.
    config = ExecutorConfig(safety=SafetyConfig(primitive_timeout=1.0))
    t0 = wall_sim.time
    result = PlanExecutor(DirectSimBackend(wall_sim), config).execute([Primitive.move(A, 0.0)])
    assert result.error_code == ErrorCode.TIMEOUT and "over the 1.0 s limit" in result.message
    assert wall_sim.time == t0
    # A motion that runs past its time limit is stopped and held where it is.
    kin = PandaKinematics()
    traj = plan_straight_line(kin, wall_sim.joint_positions(), np.array(A), 0.0, TimingLimits()).trajectory
    outcome = DirectSimBackend(wall_sim).follow_joint_trajectory(traj, threading.Event(), timeout=0.5)
    assert outcome.error_code == TIMED_OUT and "0.5 s" in outcome.message
    assert 0.5 <= outcome.duration < 0.6
    q = wall_sim.joint_positions()
    wall_sim.step_for(0.3)
    assert np.max(np.abs(wall_sim.joint_positions() - q)) < 0.02


# ------------------------------------------------------------------------------------------ over DDS
@pytest.mark.ros
def test_executor_node_plans_against_the_published_scene(tmp_path) -> None:
    """The executor node takes its obstacles from /scene/ground_truth: moving the fingers into a block
    is refused as a collision, unless a close_gripper on that block follows (a planned grasp). A goal
    that carries the scene its plan was made for is planned against that scene instead."""
    from llm_trainer.bringup.graph import load_graph
    from llm_trainer.bringup.local import LocalGraph
    from llm_trainer.datagen.graph_client import GraphClient
    from llm_trainer.ros.conversions import primitive_to_msg, scene_from_msg

    spec = load_graph("sim")
    spec.nodes = [n for n in spec.nodes if n.executable != "recorder_node"]
    with LocalGraph(spec, {"output_dir": str(tmp_path), "render_cameras": False}, log_dir=tmp_path / "logs") as local:
        client = GraphClient(record=False)
        try:
            client.wait_ready(timeout=90.0, alive_check=local.check_alive)
            scene_msg = client.reset("put_block", 1).scene
            scene = scene_from_msg(scene_msg)
            block = next(o for o in scene.objects if o.category == "block")
            x, y, _ = block.position
            into = [Primitive.move((x, y, 0.12), block.yaw), Primitive.move((x, y, 0.03), block.yaw + math.pi / 4)]
            result = client.execute([primitive_to_msg(p) for p in into], dry_run=True)
            assert result.error_code == ErrorCode.COLLISION and result.failed_index == 1, result.message
            assert block.name in result.message
            grasp = [Primitive.open(), *into[:1], Primitive.move((x, y, block.position[2]), block.yaw)]
            grasp += [Primitive.close(block.name), Primitive.move((x, y, 0.12), block.yaw), Primitive.open()]
            result = client.execute([primitive_to_msg(p) for p in grasp], dry_run=True)
            assert result.success and result.message.startswith("dry run"), result.message
            # A goal that carries its scene is planned against that scene, not the topic's.
            into_msgs = [primitive_to_msg(p) for p in into]
            result = client.execute(into_msgs, scene=scene_msg, dry_run=True)
            assert result.error_code == ErrorCode.COLLISION and block.name in result.message, result.message
            without_block = copy.deepcopy(scene_msg)
            without_block.objects = [o for o in scene_msg.objects if o.name != block.name]
            result = client.execute(into_msgs, scene=without_block, dry_run=True)
            assert result.success, result.message
            broken = copy.deepcopy(scene_msg)
            broken.objects[0].position.x = float("nan")
            result = client.execute(into_msgs, scene=broken, dry_run=True)
            assert result.error_code == ErrorCode.INVALID and "invalid scene in the goal" in result.message
        finally:
            client.close()
