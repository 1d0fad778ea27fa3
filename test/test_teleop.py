"""Teleoperation through the servo interface records a source demo that annotation and augmentation read."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


def _script(path, waypoints, rate_hz: float = 10.0, speed: float = 0.1):
    """JSON-lines commands that fly the hand through ``waypoints`` ((xyz, gripper) pairs) from ``start``."""
    lines, here = [], np.asarray(waypoints[0][0], float)
    for target, gripper in waypoints[1:]:
        target = np.asarray(target, float)
        d = target - here
        steps = max(1, int(np.ceil(np.linalg.norm(d) / (speed / rate_hz))))
        lines.append({"v": (d / steps * rate_hz).tolist(), "steps": steps})
        if gripper:
            lines.append({"gripper": gripper, "steps": 12})
        here = target
    lines.append({"finish": True})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


@pytest.fixture(scope="module")
def put_block_scene():
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    sim = MujocoSimulation(SimConfig(render_cameras=False))
    try:
        instance = sim.reset(get_task("put_block"), 2)
        scene = sim.scene_state()
        return sim.tcp_pose()[0].copy(), scene.get(instance.goal["block"]), scene.get(instance.goal["area"])
    finally:
        sim.close()


def test_a_teleoperated_demo_is_recorded_verified_and_read_as_a_source_demo(tmp_path, put_block_scene) -> None:
    from llm_trainer.augment.annotation import hand_engineered
    from llm_trainer.augment.demo import SourceDemo

    hand, block, area = put_block_scene
    b, a = np.asarray(block.position), np.asarray(area.position)
    waypoints = [(hand, None), ([b[0], b[1], 0.12], None), (b, "close"), ([b[0], b[1], 0.12], None),
                 ([a[0], a[1], 0.12], None), ([a[0], a[1], 0.03], "open"), ([a[0], a[1], 0.12], None)]  # fmt: skip
    script = _script(tmp_path / "demo.jsonl", waypoints)
    r = subprocess.run([sys.executable, "-m", "llm_trainer.cli", "teleop", "--task", "put_block", "--seed", "2",
                        "--device", f"script:{script}", "--out", str(tmp_path / "run"), "--episode-id", "demo",
                        "--keep-going"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["kept"] and summary["success"] and summary["gripper_events"] == 2, summary
    demo = SourceDemo.from_bag(tmp_path / "run" / "bags" / "demo")
    assert demo.task == "put_block" and demo.instruction.startswith("put the")
    assert [(e.kind, e.object_name) for e in demo.events] == [("close", block.name), ("open", "")]
    # the commanded hand poses follow the script: down to the block, over to the area
    z = np.array([p.position[2] for p in demo.poses])
    assert z.min() < block.position[2] + 0.01 and z.max() > 0.11
    annotation = hand_engineered(demo)
    assert len(annotation.keyposes) >= 2


def test_a_discarded_demo_leaves_nothing_and_bad_scripts_are_refused(tmp_path) -> None:
    from llm_trainer.teleop.devices import ScriptDevice
    from llm_trainer.teleop.session import TeleopOptions, record_teleop

    script = tmp_path / "discard.jsonl"
    script.write_text('{"v": [0.05, 0, 0], "steps": 5}\n{"discard": true}\n')
    summary = record_teleop(TeleopOptions("put_block", 0, tmp_path / "run"), ScriptDevice(script), log=lambda _l: None)
    assert summary["kept"] is False and not any((tmp_path / "run" / "bags").iterdir())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"v": [0.05, 0], "steps": 2}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: v must be three finite numbers"):
        ScriptDevice(bad)
    argv = ["teleop", "--task", "put_block", "--device", f"script:{bad}", "--out", str(tmp_path / "r2")]
    r = subprocess.run([sys.executable, "-m", "llm_trainer.cli", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "v must be three finite numbers" in r.stderr and "Traceback" not in r.stderr


def test_the_keyboard_device_needs_a_terminal_and_says_so() -> None:
    from llm_trainer.teleop.devices import make_device

    with open("/dev/null") as not_a_tty:
        from llm_trainer.teleop.devices import KeyboardDevice

        with pytest.raises(ValueError, match="needs a terminal"):
            KeyboardDevice(stream=not_a_tty)
    with pytest.raises(ValueError, match="unknown teleop device"):
        make_device("joystick")


class StandInPanda:
    """What ``panda_py.Panda`` offers the teaching recorder (the lab robot is not here): a scripted guided
    motion, its state as libfranka reports it (q, dq, O_T_EE column-major), and teaching mode on/off."""

    def __init__(self, path_q):
        from llm_trainer.motion.kinematics import PandaKinematics

        self.ik, self.path, self.i, self.teaching = PandaKinematics(), list(path_q), 0, []

    def teaching_mode(self, on: bool) -> None:
        self.teaching.append(on)

    def get_state(self):
        from types import SimpleNamespace

        q = self.path[min(self.i, len(self.path) - 1)]
        self.i += 1
        pos, rot = self.ik.forward(q)
        t = np.eye(4)
        t[:3, :3], t[:3, 3] = rot, pos
        return SimpleNamespace(q=list(q), dq=[0.0] * 7, O_T_EE=list(t.T.reshape(-1)))


class StandInGripper:
    def __init__(self):
        self.width, self.calls = 0.08, []

    def read_once(self):
        from types import SimpleNamespace

        return SimpleNamespace(width=self.width)

    def grasp(self, width, speed, force, eps_in, eps_out):
        self.calls.append(("grasp", force))
        self.width = 0.05  # closed on a 5 cm block

    def move(self, width, speed):
        self.calls.append(("move", width))
        self.width = width


def test_teaching_mode_records_the_guided_arm_as_a_source_demo(tmp_path) -> None:
    from llm_trainer.augment.demo import SourceDemo
    from llm_trainer.motion.kinematics import PandaKinematics
    from llm_trainer.scene import ObjectState, SceneState
    from llm_trainer.sim import panda_description as panda
    from llm_trainer.teleop.devices import TeleopCommand
    from llm_trainer.teleop.teaching import TeachOptions, record_teaching

    ik = PandaKinematics()
    q, path = panda.HOME_Q.copy(), []
    for z in np.r_[np.linspace(0.3, 0.03, 15), np.linspace(0.03, 0.3, 15)]:  # down to the block and up
        q = ik.solve_top_down(np.array([0.5, 0.0, z]), 0.0, q).q
        path.append(q)
    block = ObjectState("red_block", (0.5, 0.0, 0.025), 0.0, (0.05, 0.05, 0.05), "block")
    scene = SceneState(objects=[block], ee_position=(0.5, 0.0, 0.3), ee_yaw=0.0, gripper_width=0.08)
    keys = iter([TeleopCommand()] * 15 + [TeleopCommand(gripper="close")] + [TeleopCommand()] * 14
                + [TeleopCommand(finish=True)])  # fmt: skip

    class Keys:
        def read(self):
            return next(keys)

    robot, gripper = StandInPanda(path), StandInGripper()
    options = TeachOptions("lift_block", scene, "pick up the red block", out=tmp_path, rate_hz=50.0,
                           episode_id="taught")  # fmt: skip
    summary = record_teaching(robot, gripper, Keys(), options, ask=lambda _q: "y", log=lambda _l: None)
    assert summary["kept"] and summary["success"] and summary["gripper_events"] == 1
    assert robot.teaching == [True, False] and gripper.calls == [("grasp", 40.0)]
    demo = SourceDemo.from_bag(tmp_path / "bags" / "taught")
    assert [(e.kind, e.object_name) for e in demo.events] == [("close", "red_block")]
    z = np.array([p.position[2] for p in demo.poses])
    assert z.min() == pytest.approx(0.03, abs=0.01) and z.max() == pytest.approx(0.3, abs=0.02)


def test_teach_refuses_without_the_hardware_confirmation(tmp_path) -> None:
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps({"objects": [], "ee_position": [0.5, 0, 0.3], "ee_yaw": 0.0, "gripper_width": 0.08}))
    argv = ["teach", "--robot-ip", "172.16.0.2", "--task", "t", "--instruction", "x", "--scene", str(scene)]
    r = subprocess.run([sys.executable, "-m", "llm_trainer.cli", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "confirm_hardware" in r.stderr and "Traceback" not in r.stderr
