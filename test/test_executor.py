"""The plan executor in process: DirectSimBackend on a real MuJoCo simulation."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from llm_trainer.execution.backend import DirectSimBackend
from llm_trainer.execution.executor import ErrorCode, PlanExecutor, PrimitiveStatus, Status
from llm_trainer.execution.executor_config import ExecutorConfig, SafetyConfig
from llm_trainer.motion.kinematics import top_down_rotation
from llm_trainer.planning.base import PlanRequest
from llm_trainer.planning.oracle import OraclePlanner
from llm_trainer.primitives import Primitive, PrimitiveKind
from llm_trainer.sim.mujoco_sim import MujocoSimulation
from llm_trainer.tasks.registry import get_task

UNREACHABLE = (0.75, 0.4, 0.02)  # inside the default workspace, ~5 cm beyond the arm's reach top-down


@pytest.fixture
def sim():
    s = MujocoSimulation()
    yield s
    s.close()


def _snapshot(sim: MujocoSimulation) -> dict:
    return {
        "q": sim.joint_positions(),
        "fingers": sim.finger_positions(),
        "ctrl": sim.data.ctrl.copy(),
        "time": sim.time,
        "steps": sim.physics_steps,
        "qpos": sim.data.qpos.copy(),
    }


def _assert_nothing_moved(sim: MujocoSimulation, before: dict) -> None:
    after = _snapshot(sim)
    assert after["time"] == before["time"] and after["steps"] == before["steps"]
    for key in ("q", "fingers", "ctrl", "qpos"):
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def _yaw_error_mod_pi(rot: np.ndarray, yaw: float) -> float:
    """A parallel gripper is symmetric under a half turn."""
    return abs(math.remainder(math.atan2(rot[1, 0], rot[0, 0]) - yaw, math.pi))


def _demo_plan() -> list[Primitive]:
    return [
        Primitive.open(),
        Primitive.move((0.5, 0.1, 0.2), 0.5),
        Primitive.move((0.5, 0.1, 0.05), 0.5),
        Primitive.close(),
        Primitive.move((0.45, -0.2, 0.3), -1.2),
        Primitive.open(),
        Primitive.move((0.4, 0.0, 0.4), 1.5),
    ]


# ------------------------------------------------------------------------------------------ success
def test_oracle_plan_executes_and_every_waypoint_is_reached(sim: MujocoSimulation) -> None:
    instance = sim.reset(get_task("put_block"), 1)
    scene = sim.scene_state()
    plan = OraclePlanner().plan(PlanRequest(instance.instruction, scene, "put_block", instance.goal)).plan
    reached: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    events: list[tuple[int, Status]] = []

    def feedback(status: PrimitiveStatus, total: int) -> None:
        assert total == len(plan)
        events.append((status.index, status.status))
        if status.status == Status.DONE:
            reached[status.index] = sim.tcp_pose()

    executor = PlanExecutor(DirectSimBackend(sim))
    result = executor.execute(plan, feedback=feedback)
    assert result.success and result.error_code == ErrorCode.SUCCEEDED, result.message
    assert result.failed_index == -1
    assert [s.status for s in result.statuses] == [Status.DONE] * len(plan)
    assert events == [(i, st) for i in range(len(plan)) for st in (Status.RUNNING, Status.DONE)]
    for i, prim in enumerate(plan):
        status = result.statuses[i]
        assert status.kind == prim.kind and status.execution_time > 0
        if prim.kind != PrimitiveKind.MOVE_GRIPPER:
            continue
        assert status.planning_time > 0
        assert status.tracking_error < 0.005, f"primitive {i}: {status.tracking_error * 1000:.1f} mm"
        pos, rot = reached[i]
        assert np.linalg.norm(pos - np.asarray(prim.position)) < 0.005, f"primitive {i} ended at {pos.round(4)}"
        assert math.degrees(_yaw_error_mod_pi(rot, prim.yaw)) < 3.0, f"primitive {i}"
        assert rot[2, 2] < -math.cos(math.radians(3)), f"primitive {i}: the gripper is not pointing down"
    assert "holding an object" in result.statuses[3].message  # the close_gripper on the block
    assert sim.check_success().success


def test_plan_without_objects_reaches_waypoints_and_reports_grasps(sim: MujocoSimulation) -> None:
    plan = _demo_plan()
    executor = PlanExecutor(DirectSimBackend(sim))
    result = executor.execute(plan)
    assert result.success, result.message
    assert result.message == f"executed {len(plan)} primitives"
    assert "closed on nothing" in result.statuses[3].message
    pos, rot = sim.tcp_pose()
    np.testing.assert_allclose(pos, plan[-1].position, atol=0.005)
    np.testing.assert_allclose(rot[:, 2], top_down_rotation(1.5)[:, 2], atol=0.01)
    assert math.degrees(_yaw_error_mod_pi(rot, 1.5)) < 3.0
    assert sim.gripper_width() == pytest.approx(0.08, abs=0.003)


# ------------------------------------------------------------------------------------------ rejections
def test_unreachable_pose_is_rejected_before_anything_moves(sim: MujocoSimulation) -> None:
    plan = [Primitive.open(), Primitive.move((0.5, 0.0, 0.2), 0.0), Primitive.move(UNREACHABLE, 0.0), Primitive.open()]
    sim.set_gripper_target(0.04)  # so that an executed open_gripper would show in ctrl
    before = _snapshot(sim)
    events: list = []
    result = PlanExecutor(DirectSimBackend(sim)).execute(plan, feedback=lambda s, n: events.append(s.index))
    assert not result.success
    assert result.error_code == ErrorCode.UNREACHABLE
    assert result.failed_index == 2
    assert "primitive 2" in result.message and "unreachable" in result.message and "0.75" in result.message
    assert [s.status for s in result.statuses] == [Status.SKIPPED, Status.SKIPPED, Status.FAILED, Status.SKIPPED]
    assert result.statuses[2].message == result.message
    assert events == []
    _assert_nothing_moved(sim, before)


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ((0.9, 0.0, 0.2), "outside the safety workspace"),
        ((0.5, 0.5, 0.2), "outside the safety workspace"),
        ((0.5, 0.0, 0.7), "outside the safety workspace"),
        ((0.5, 0.0, 0.002), "closer than 0.005 m to the table"),
    ],
)
def test_limit_violation_is_refused_before_motion(sim: MujocoSimulation, target, words: str) -> None:
    plan = [Primitive.open(), Primitive.move((0.5, 0.0, 0.3), 0.0), Primitive.move(target, 0.0), Primitive.open()]
    before = _snapshot(sim)
    result = PlanExecutor(DirectSimBackend(sim)).execute(plan)
    assert result.error_code == ErrorCode.LIMIT and result.failed_index == 2
    assert words in result.message and result.message.startswith("primitive 2:")
    assert result.statuses[2].status == Status.FAILED
    _assert_nothing_moved(sim, before)


def test_custom_safety_limits(sim: MujocoSimulation) -> None:
    config = ExecutorConfig(safety=SafetyConfig(workspace=(0.3, 0.6, -0.2, 0.2, 0.05, 0.5), max_cartesian_step=0.3))
    executor = PlanExecutor(DirectSimBackend(sim), config)
    before = _snapshot(sim)
    # Inside the default workspace, outside this one.
    result = executor.execute([Primitive.move((0.5, 0.3, 0.2), 0.0)])
    assert result.error_code == ErrorCode.LIMIT and "y[-0.2, 0.2]" in result.message
    # A long jump in one primitive.
    hops = [(0.5, 0.0, 0.3), (0.5, 0.0, 0.3), (0.45, 0.1, 0.15), (0.6, -0.2, 0.45)]  # the last one is 0.45 m
    result = executor.execute([Primitive.move(p, 0.0) for p in hops])
    assert result.error_code == ErrorCode.LIMIT and result.failed_index == 3
    assert "exceeds the 0.3 m limit" in result.message
    _assert_nothing_moved(sim, before)


def test_non_finite_and_empty_plans_are_invalid(sim: MujocoSimulation) -> None:
    executor = PlanExecutor(DirectSimBackend(sim))
    before = _snapshot(sim)
    result = executor.execute([Primitive.move((0.5, float("nan"), 0.2), 0.0)])
    assert result.error_code == ErrorCode.INVALID and "non-finite" in result.message
    result = executor.execute([Primitive.move((0.5, 0.0, 0.2), float("inf"))])
    assert result.error_code == ErrorCode.INVALID
    result = executor.execute([])
    assert result.error_code == ErrorCode.INVALID and "empty" in result.message
    _assert_nothing_moved(sim, before)


def test_dry_run_plans_everything_and_moves_nothing(sim: MujocoSimulation) -> None:
    plan = _demo_plan()
    before = _snapshot(sim)
    events: list = []
    result = PlanExecutor(DirectSimBackend(sim)).execute(plan, dry_run=True, feedback=lambda s, n: events.append(s))
    assert result.success and result.error_code == ErrorCode.SUCCEEDED
    assert "dry run" in result.message
    assert all(s.status == Status.SKIPPED for s in result.statuses)
    assert all(s.planning_time > 0 for s, p in zip(result.statuses, plan) if p.kind == PrimitiveKind.MOVE_GRIPPER)
    assert events == []
    _assert_nothing_moved(sim, before)
    # A dry run still finds the unreachable waypoint.
    result = PlanExecutor(DirectSimBackend(sim)).execute(plan + [Primitive.move(UNREACHABLE, 0.0)], dry_run=True)
    assert result.error_code == ErrorCode.UNREACHABLE and result.failed_index == len(plan)
    _assert_nothing_moved(sim, before)


# ------------------------------------------------------------------------------------------ cancel
def test_cancel_from_another_thread_stops_the_arm(sim: MujocoSimulation) -> None:
    plan = _demo_plan()
    cancel = threading.Event()
    reached = threading.Event()
    resume = threading.Event()
    state: dict = {}

    def on_step(s: MujocoSimulation) -> None:
        # Part way through the long move to (0.45, -0.2, 0.3): let the other thread cancel, then go on.
        if state.get("moving") and s.time > state["moving"] + 0.8 and not reached.is_set():
            state["speed_at_cancel"] = float(np.max(np.abs(s.joint_velocities())))
            reached.set()
            resume.wait(10)

    events: list[tuple[int, Status]] = []

    def feedback(status: PrimitiveStatus, total: int) -> None:
        events.append((status.index, status.status))
        if status.index == 4 and status.status == Status.RUNNING:
            state["moving"] = sim.time

    executor = PlanExecutor(DirectSimBackend(sim, on_step=on_step))
    worker = threading.Thread(
        target=lambda: state.setdefault("result", executor.execute(plan, feedback=feedback, cancel=cancel))
    )
    worker.start()
    assert reached.wait(30), "the executor never got to the move"
    # While it runs, a second plan is turned away.
    busy = executor.execute([Primitive.open()])
    assert busy.error_code == ErrorCode.BACKEND_ERROR and "another plan" in busy.message
    cancel.set()
    resume.set()
    worker.join(30)
    assert not worker.is_alive()
    result = state["result"]
    assert result.error_code == ErrorCode.CANCELED and not result.success
    assert result.failed_index == 4 and "cancelled during motion" in result.message
    assert [s.status for s in result.statuses] == [Status.DONE] * 4 + [Status.FAILED] + [Status.SKIPPED] * 2
    assert events[-1] == (4, Status.FAILED)
    assert state["speed_at_cancel"] > 0.05, "the arm was not moving when cancelled"
    # The arm stays where it stopped: not at the target of the cancelled move, and not moving.
    tcp_stop, q_stop = sim.tcp_pose()[0], sim.joint_positions()
    assert np.linalg.norm(tcp_stop - np.array(plan[4].position)) > 0.05
    sim.step_for(0.5)
    q_a, tcp_a = sim.joint_positions(), sim.tcp_pose()[0]
    sim.step_for(0.1)
    q_b, tcp_b = sim.joint_positions(), sim.tcp_pose()[0]
    assert np.linalg.norm(tcp_b - tcp_stop) < 0.003
    assert np.max(np.abs(q_b - q_stop)) < 0.02
    # Average joint speed over the last 0.1 s and TCP speed: at rest.
    assert np.max(np.abs(q_b - q_a)) / 0.1 < 0.01
    assert np.linalg.norm(tcp_b - tcp_a) / 0.1 < 0.002
    # A new plan runs afterwards from where the arm is.
    again = executor.execute([Primitive.move((0.4, 0.0, 0.4), 0.0)])
    assert again.success, again.message


def test_cancel_before_start_moves_nothing(sim: MujocoSimulation) -> None:
    cancel = threading.Event()
    cancel.set()
    before = _snapshot(sim)
    result = PlanExecutor(DirectSimBackend(sim)).execute(_demo_plan(), cancel=cancel)
    assert result.error_code == ErrorCode.CANCELED and result.failed_index == 0
    assert all(s.status == Status.SKIPPED for s in result.statuses[1:])
    _assert_nothing_moved(sim, before)


def test_feedback_sees_running_then_done_per_primitive(sim: MujocoSimulation) -> None:
    plan = [Primitive.open(), Primitive.move((0.45, 0.05, 0.35), 0.3), Primitive.close(), Primitive.open()]
    seen: list[tuple[int, Status, int]] = []
    result = PlanExecutor(DirectSimBackend(sim)).execute(
        plan, feedback=lambda s, n: seen.append((s.index, s.status, n))
    )
    assert result.success
    assert seen == [(i, st, len(plan)) for i in range(len(plan)) for st in (Status.RUNNING, Status.DONE)]


def test_gripper_force_is_clamped_at_run_time_too(sim: MujocoSimulation) -> None:
    """A config changed after validation (or a backend default) never makes the hand squeeze harder
    than ``safety.gripper_force_limit``: the executor clamps every gripper command it sends."""

    class ForceLog(DirectSimBackend):
        def __init__(self, s):
            super().__init__(s)
            self.forces: list[float] = []

        def move_gripper(self, width, force, cancel, timeout=float("inf")):
            self.forces.append(force)
            return super().move_gripper(width, force, cancel, timeout)

    sim.reset(get_task("put_block"), 0)
    config = ExecutorConfig()
    config.grasp_force = 120.0  # past the 70 N limit: validation refuses this on load, so set it afterwards
    backend = ForceLog(sim)
    result = PlanExecutor(backend, config).execute([Primitive.close(), Primitive.open()])
    assert result.success, result.message
    assert backend.forces == [config.safety.gripper_force_limit] * 2 == [70.0, 70.0]
    # and the simulated hand's actuator really was limited to it
    assert np.allclose(np.abs(sim.model.actuator_forcerange[sim._finger_act]), 70.0)
