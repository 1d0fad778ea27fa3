"""The MoveIt and panda-py backends without their libraries or a robot: refusal to start, what to
install, configuration, and the logic that turns plans into their calls (a fake panda-py drives the
control loop)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from llm_trainer.config import ConfigError
from llm_trainer.execution.backend import CANCELED, TIMED_OUT
from llm_trainer.execution.backends import BackendUnavailable, load_hardware_config, make_hardware_backend
from llm_trainer.execution.backends.common import require_confirmation, sample_trajectory, valid_robot_address
from llm_trainer.execution.backends.moveit_backend import (
    MoveItConfig,
    PipelineConfig,
    plan_request_parameters,
    planning_scene_objects,
    quaternion_xyzw,
    tcp_pose_goal,
    trajectory_from_points,
)
from llm_trainer.execution.backends.panda_py_backend import PandaPyBackend, PandaPyConfig, gripper_command
from llm_trainer.motion.collision import TABLE, Attachment, Box, CollisionContext
from llm_trainer.motion.kinematics import top_down_rotation
from llm_trainer.motion.trajectory import JointTrajectory, TimingLimits
from llm_trainer.sim import panda_description as panda

CONFIRMED = {"confirm_hardware": True, "robot_ip": "172.16.0.2"}


# ------------------------------------------------------------------------------------------ refusal
@pytest.mark.parametrize("backend", ["moveit", "panda_py"])
def test_hardware_backends_refuse_to_start_without_confirmation(backend: str) -> None:
    with pytest.raises(BackendUnavailable, match="moves a real robot") as info:
        make_hardware_backend(backend)
    assert "confirm_hardware: true" in str(info.value) and "robot_ip" in str(info.value)
    with pytest.raises(BackendUnavailable, match="robot_ip") as info:
        make_hardware_backend(backend, overrides={"confirm_hardware": True})
    assert "confirm_hardware: true and" not in str(info.value)
    with pytest.raises(BackendUnavailable, match="confirm_hardware: true"):
        make_hardware_backend(backend, overrides={"robot_ip": "172.16.0.2"})
    with pytest.raises(BackendUnavailable, match="valid robot_ip"):
        make_hardware_backend(backend, overrides={"confirm_hardware": True, "robot_ip": "300.1.2.3"})


@pytest.mark.parametrize(
    ("backend", "module", "words"),
    [
        ("moveit", "moveit", ["moveit_py", "ros-jazzy-moveit-py"]),
        ("panda_py", "panda_py", ["pip install panda-python", "libfranka"]),
    ],
)
def test_missing_library_is_named_with_what_to_install(monkeypatch, backend: str, module: str, words) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError, installed or not
    with pytest.raises(BackendUnavailable) as info:
        make_hardware_backend(backend, overrides=CONFIRMED)
    message = str(info.value)
    assert f"cannot import {module}" in message
    for word in words:
        assert word in message


def test_confirmation_rules() -> None:
    for good in ("172.16.0.2", "::1", "panda.lab", "fer-1"):
        assert valid_robot_address(good), good
    for bad in ("", " ", "300.1.2.3", "1.2.3", "has space", "-bad"):
        assert not valid_robot_address(bad), bad
    require_confirmation("x", True, "10.0.0.2", "here")
    with pytest.raises(BackendUnavailable):
        require_confirmation("x", "true", "10.0.0.2", "here")  # only a real boolean true confirms


def test_executor_node_exits_with_the_reason(ros_env, tmp_path: Path) -> None:
    """The node refuses the hardware backend at start-up: exit code 2 and one line saying why."""
    for extra, words in (
        ([], "confirm_hardware: true"),
        (["-p", "confirm_hardware:=true", "-p", "robot_ip:=172.16.0.2"], "cannot import panda_py"),
    ):
        cmd = [sys.executable, "-m", "llm_trainer.nodes.executor_node", "--ros-args", "-p", "backend:=panda_py", *extra]
        env = dict(ros_env)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])  # "import panda_py" fails
        (tmp_path / "panda_py.py").write_text("raise ImportError('no panda_py in this test')\n")
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stdout + out.stderr
        assert words in out.stderr and out.stderr.startswith("executor_node:")


# ------------------------------------------------------------------------------------------ configuration
def test_real_hardware_yaml_files_load_and_match_defaults() -> None:
    moveit = load_hardware_config("moveit")
    assert moveit == MoveItConfig() and moveit.straight.planner_id == "LIN" and moveit.free.pipeline == "ompl"
    assert load_hardware_config("panda_py") == PandaPyConfig()
    assert not moveit.confirm_hardware and moveit.robot_ip == ""
    merged = load_hardware_config("panda_py", overrides={"robot_ip": "10.0.0.2", "confirm_hardware": True})
    assert merged.robot_ip == "10.0.0.2" and merged.confirm_hardware is True
    assert load_hardware_config("panda_py", overrides={"robot_ip": ""}).robot_ip == ""  # empty = keep the file's


def _write(tmp_path: Path, section: str, data: dict) -> Path:
    path = tmp_path / f"{section}.yaml"
    path.write_text(yaml.safe_dump({section: data}))
    return path


@pytest.mark.parametrize(
    ("backend", "data", "words"),
    [
        ("panda_py", {"control_rate_hz": 5000.0}, "control_rate_hz"),
        ("panda_py", {"joint_stiffness": [600.0, 600.0]}, "joint_stiffness needs 7"),
        ("panda_py", {"gripper_speed": 0.5}, "gripper_speed"),
        ("panda_py", {"confirm_hardware": "yes"}, "expected true or false"),
        ("panda_py", {"robot": "1.2.3.4"}, "unknown key(s) robot"),
        ("moveit", {"planner": "chomp"}, "planner must be"),
        ("moveit", {"free": {"pipeline": "ompl", "planning_time": 0.0}}, "planning_time must be positive"),
        ("moveit", {"tcp_link": ""}, "tcp_link must not be empty"),
    ],
)
def test_bad_hardware_config_is_named(tmp_path: Path, backend: str, data: dict, words: str) -> None:
    path = _write(tmp_path, backend, data)
    with pytest.raises(ConfigError) as info:
        load_hardware_config(backend, path)
    assert words in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ConfigError, match="unknown override"):
        load_hardware_config(backend, overrides={"speed": 2})


# ------------------------------------------------------------------------------------------ MoveIt logic
def test_moveit_goal_pose_is_the_top_down_tcp_pose() -> None:
    cfg = MoveItConfig()
    for yaw in (0.0, 0.7, -1.4, math.pi / 2):
        goal = tcp_pose_goal((0.5, -0.1, 0.2), yaw, cfg)
        assert goal["frame_id"] == "panda_link0" and goal["link"] == "panda_hand_tcp"
        assert goal["position"] == [0.5, -0.1, 0.2]
        x, y, z, w = goal["orientation_xyzw"]
        assert math.isclose(x * x + y * y + z * z + w * w, 1.0, abs_tol=1e-9)
        # Back to a matrix: the same rotation.
        r = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        np.testing.assert_allclose(r, top_down_rotation(yaw), atol=1e-9)
    assert quaternion_xyzw(np.eye(3)) == (0.0, 0.0, 0.0, 1.0)


def test_moveit_planning_scene_mirrors_the_collision_context() -> None:
    held = Attachment("red", (0.05, 0.05, 0.05), (0.0, 0.0, 0.01), tuple(np.eye(3).ravel()))
    ctx = CollisionContext(
        obstacles=(
            Box("blue", (0.5, 0.1, 0.025), 0.3, (0.05, 0.05, 0.05)),
            Box("bin", (0.4, -0.2, 0.04), 0.0, (0.2, 0.2, 0.08)),
        ),
        attached=held,
        fingers_may_touch=frozenset({"blue"}),
        gripper_may_touch=frozenset({"bin"}),
        held_may_touch=frozenset({TABLE, "blue"}),
    )
    scene = planning_scene_objects(ctx, MoveItConfig())
    world = {o["id"]: o for o in scene["world"]}
    assert set(world) == {"blue", "bin"} and world["blue"]["dimensions"] == [0.05, 0.05, 0.05]
    x, y, z, w = world["blue"]["orientation_xyzw"]
    assert math.isclose(2 * math.atan2(z, w), 0.3, abs_tol=1e-9) and x == y == 0
    assert scene["attached"]["id"] == "red" and scene["attached"]["link"] == "panda_hand_tcp"
    assert "panda_hand" in scene["attached"]["touch_links"]
    allowed = set(scene["allowed"])
    assert ("panda_leftfinger", "blue") in allowed and ("panda_hand", "blue") not in allowed
    assert {("panda_hand", "bin"), ("panda_rightfinger", "bin")} <= allowed
    assert {("red", "<table>"), ("red", "blue")} <= allowed
    assert planning_scene_objects(None, MoveItConfig()) == {"world": [], "attached": None, "allowed": []}


def test_moveit_request_parameters_and_trajectory_conversion() -> None:
    params = plan_request_parameters(PipelineConfig("pilz_industrial_motion_planner", "LIN", 1.0, 2), TimingLimits())
    assert params == {
        "planning_pipeline": "pilz_industrial_motion_planner",
        "planner_id": "LIN",
        "planning_time": 1.0,
        "planning_attempts": 2,
        "max_velocity_scaling_factor": 0.3,
        "max_acceleration_scaling_factor": 0.3,
    }
    # MoveIt may order joints differently and add others (the fingers): ours come out in order.
    names = ["panda_finger_joint1", *reversed(panda.JOINT_NAMES)]
    points = [(0.0, [0.04, *range(7)]), (0.5, [0.04, *[v + 0.1 for v in range(7)]])]
    traj = trajectory_from_points(names, points)
    assert traj.joint_names == panda.JOINT_NAMES
    np.testing.assert_allclose(traj.positions[0], list(reversed(range(7))))
    np.testing.assert_allclose(traj.times, [0.0, 0.5])
    with pytest.raises(ValueError, match="lacks joints panda_joint7"):
        trajectory_from_points(list(panda.JOINT_NAMES[:6]), [(0.0, [0.0] * 6)])


# ------------------------------------------------------------------------------------------ panda-py logic
def test_panda_py_gripper_commands() -> None:
    cfg = PandaPyConfig()
    assert gripper_command(0.08, 70.0, cfg) == {"call": "move", "width": 0.08, "speed": 0.05}
    grasp = gripper_command(0.0, 40.0, cfg)
    assert grasp["call"] == "grasp" and grasp["force"] == 40.0 and grasp["width"] == 0.0
    assert grasp["epsilon_outer"] == 0.08  # any object up to the full stroke counts as grasped
    assert gripper_command(0.2, 40.0, cfg)["width"] == 0.08  # clipped to the hand's stroke


def test_sample_trajectory_follows_the_linear_interpolation() -> None:
    q0 = panda.HOME_Q
    traj = JointTrajectory(panda.JOINT_NAMES, np.array([0.0, 0.5, 1.0]), np.array([q0, q0 + 0.1, q0 + 0.1]))
    s = sample_trajectory(traj, 100.0)
    assert len(s.times) == 101 and s.times[-1] == 1.0
    np.testing.assert_allclose(s.positions[50], q0 + 0.1)
    np.testing.assert_allclose(s.positions[25], q0 + 0.05)
    np.testing.assert_allclose(s.velocities[10], 0.2, atol=1e-9)  # 0.1 rad in 0.5 s
    assert np.all(s.velocities[0] == 0) and np.all(s.velocities[-1] == 0)
    np.testing.assert_allclose(s.velocities[80], 0.0, atol=1e-9)
    with pytest.raises(ValueError):
        sample_trajectory(traj, 0.0)


class _FakeArm:
    """panda-py's Panda, controller and context, for the control loop: the arm follows the reference
    (or stays put when ``blocked``)."""

    def __init__(self, blocked: bool = False):
        self.q = panda.HOME_Q.copy()
        self.blocked = blocked
        self.references: list[np.ndarray] = []
        self.running = False
        self.stopped = 0
        self.on_reference = None  # called with the number of references so far (tests hook events here)

    def make_module(self):
        arm = self

        class Ctrl:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

            def set_control(self, q, dq):  # panda-py 1's JointPosition
                arm.references.append(np.array(q))
                if arm.running and not arm.blocked:
                    arm.q = np.array(q)
                if arm.on_reference is not None:
                    arm.on_reference(len(arm.references))

        class Context:
            def __init__(self, frequency, max_runtime):
                self.period, self.end = 1.0 / frequency, time.monotonic() + max_runtime

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def ok(self):
                time.sleep(self.period)
                return time.monotonic() < self.end

        class Panda:
            def __init__(self, hostname):
                self.hostname = hostname

            def get_state(self):
                return types.SimpleNamespace(q=list(arm.q))

            def start_controller(self, ctrl):
                arm.running = True

            def stop_controller(self):
                arm.running = False
                arm.stopped += 1

            def create_context(self, frequency, max_runtime):
                return Context(frequency, max_runtime)

        class Gripper:
            def __init__(self, hostname):
                self.calls, self.width = [], 0.08

            def move(self, width, speed):
                self.calls.append(("move", width, speed))
                self.width = width

            def grasp(self, width, speed, force, eps_in, eps_out):
                self.calls.append(("grasp", width, speed, force))
                time.sleep(0.3)
                self.width = 0.05

            def stop(self):
                self.calls.append(("stop",))

            def read_once(self):
                return types.SimpleNamespace(width=self.width, is_grasped=self.width == 0.05)

        return types.SimpleNamespace(
            Panda=Panda,
            controllers=types.SimpleNamespace(JointPosition=Ctrl),
            libfranka=types.SimpleNamespace(Gripper=Gripper),
        )


def _short_move(seconds: float = 0.3) -> JointTrajectory:
    q0 = panda.HOME_Q
    return JointTrajectory(panda.JOINT_NAMES, np.array([0.0, seconds]), np.array([q0, q0 + np.full(7, 0.05)]))


def test_panda_py_control_loop_follows_cancels_and_times_out() -> None:
    cfg = PandaPyConfig(robot_ip="10.0.0.2", confirm_hardware=True, control_rate_hz=200.0, stop_time=0.05)
    arm = _FakeArm()
    backend = PandaPyBackend(cfg, module=arm.make_module())
    out = backend.follow_joint_trajectory(_short_move(), threading.Event(), timeout=5.0)
    assert out.error_code == 0 and out.final_error < 1e-9 and arm.stopped == 1
    np.testing.assert_allclose(backend.joint_positions(), panda.HOME_Q + 0.05)
    # Cancel part way (after 30 of the move's 200 control steps, counted by the arm itself, not by a
    # wall-clock timer that a loaded machine can delay past the move): the loop ends, the arm holds
    # where it was, the controller stops.
    arm.q = panda.HOME_Q.copy()
    cancel = threading.Event()
    start = len(arm.references)
    arm.on_reference = lambda n: cancel.set() if n - start >= 30 else None
    out = backend.follow_joint_trajectory(_short_move(1.0), cancel, timeout=5.0)
    arm.on_reference = None
    assert out.error_code == CANCELED and arm.stopped == 2
    held = arm.q.copy()
    assert 0.0 < float(np.max(held - panda.HOME_Q)) < 0.05
    np.testing.assert_allclose(arm.references[-1], held)  # the last reference: hold here
    # A blocked arm: the tracking error stops it.
    blocked = _FakeArm(blocked=True)
    out = PandaPyBackend(cfg, module=blocked.make_module()).follow_joint_trajectory(
        _short_move(), threading.Event(), 5.0
    )
    assert out.error_code != 0 and ("blocked" in out.message or "final joint error" in out.message)
    # The time limit.
    arm.q = panda.HOME_Q.copy()
    out = backend.follow_joint_trajectory(_short_move(1.0), threading.Event(), timeout=0.2)
    assert out.error_code == TIMED_OUT and "0.2 s" in out.message


def test_panda_py_gripper_grasps_with_the_force_limit_and_cancel_stops_it() -> None:
    cfg = PandaPyConfig(robot_ip="10.0.0.2", confirm_hardware=True)
    backend = PandaPyBackend(cfg, module=_FakeArm().make_module())
    out = backend.move_gripper(0.0, 40.0, threading.Event())
    assert backend._gripper.calls[0] == ("grasp", 0.0, 0.05, 40.0)
    assert out.width == 0.05 and out.stalled and not out.timed_out
    out = backend.move_gripper(0.08, 70.0, threading.Event())
    assert backend._gripper.calls[-1] == ("move", 0.08, 0.05) and out.reached_goal
    cancel = threading.Event()
    cancel.set()
    backend.move_gripper(0.0, 40.0, cancel)
    assert ("stop",) in backend._gripper.calls
