"""``llm-trainer teach``: record a source demonstration on the lab Panda in panda-py's teaching mode.

The person guides the arm by hand (``Panda.teaching_mode(True)``: gravity-compensated, compliant) and
works the gripper from the keyboard (space: close/open, Enter: finish, x: discard). The robot's state
(libfranka ``q``, ``dq``, ``O_T_EE``, the gripper width) is read at ``rate_hz`` and written through the
same recorder as simulated episodes (``RobotStateView`` gives it what it reads from the simulator), with
the measured pose as the commanded one and the gripper commands as primitive events: ``annotate`` and
``augment --demo`` read the bag like any other. The scene the demo starts from comes from a JSON file
(``llm-trainer scene`` or the perception node's ``/scene/objects``); there is no success check on the
robot, so the person says whether the demo succeeded.

Runs only with ``confirm_hardware`` and a robot address, like the executor's panda_py backend.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llm_trainer.scene import SceneState
from llm_trainer.sim import panda_description as panda


class RobotStateView:
    """The robot's measured state with the accessors the in-process recorder reads from the simulator."""

    def __init__(self, robot, gripper, scene: SceneState):
        from llm_trainer.sim.sim_config import SimConfig

        self.robot, self.gripper, self.scene = robot, gripper, scene
        self.config = SimConfig(render_cameras=False)
        self._t0 = time.monotonic()
        self.gripper_target = 2 * panda.FINGER_TRAVEL
        self.refresh()

    @property
    def time(self) -> float:
        return self._now - self._t0

    def refresh(self) -> None:
        state = self.robot.get_state()
        self._now = time.monotonic()
        self.q = np.asarray(state.q, float)
        self.dq = np.asarray(state.dq, float)
        self.ee = np.asarray(state.O_T_EE, float).reshape(4, 4).T  # libfranka: column-major
        self.width = float(self.gripper.read_once().width)

    def joint_positions(self) -> np.ndarray:
        return self.q

    def joint_velocities(self) -> np.ndarray:
        return self.dq

    def commanded_joint_positions(self) -> np.ndarray:
        return self.q  # teaching: the person's motion is the command

    def finger_positions(self) -> np.ndarray:
        return np.array([self.width / 2, self.width / 2])

    def finger_velocities(self) -> np.ndarray:
        return np.zeros(2)

    def gripper_width(self) -> float:
        return self.width

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ee[:3, 3].copy(), self.ee[:3, :3].copy()

    def tcp_quaternion(self) -> np.ndarray:
        from llm_trainer.sensors.cameras import rotation_to_quaternion

        x, y, z, w = rotation_to_quaternion(self.ee[:3, :3])
        return np.array([w, x, y, z])

    def tcp_yaw(self) -> float:
        r = self.ee[:3, :3]
        return float(np.arctan2(r[1, 0], r[0, 0]))

    def scene_state(self) -> SceneState:
        pos = self.ee[:3, 3]
        return SceneState(objects=self.scene.objects, ee_position=tuple(float(v) for v in pos),
                          ee_yaw=self.tcp_yaw(), gripper_width=self.width, table_height=self.scene.table_height,
                          source=self.scene.source)  # fmt: skip


@dataclass
class TeachOptions:
    task: str
    scene: SceneState
    instruction: str
    out: Path = Path("runs/teach")
    rate_hz: float = 30.0
    max_s: float = 600.0
    grasp_force: float = 40.0
    episode_id: str = ""


def record_teaching(robot, gripper, keys, options: TeachOptions, *, ask=input, log=print) -> dict:
    """One demonstration; ``robot`` a ``panda_py.Panda``, ``gripper`` a ``libfranka.Gripper``, ``keys`` a device."""
    from llm_trainer import grasp
    from llm_trainer.datagen.inprocess import InProcessRecorder
    from llm_trainer.episodes import EpisodeRecord, ExecutionRecord, Outcome, OutcomeKind, PlanningRecord, provenance
    from llm_trainer.execution.errors import Status
    from llm_trainer.execution.executor import PrimitiveStatus
    from llm_trainer.primitives import Primitive

    episode_id = options.episode_id or f"teach_{options.task}_{time.strftime('%Y%m%d_%H%M%S')}"
    bags = Path(options.out) / "bags"
    view = RobotStateView(robot, gripper, options.scene)
    recorder = InProcessRecorder(view, bags)
    recorder.start(episode_id, {"record": {"episode_id": episode_id, "task": options.task, "seed": -1}})
    plan: list[Primitive] = []
    closed, ended, samples = False, "timeout", 0

    def event(prim: Primitive) -> None:
        plan.append(prim)
        for status in (Status.RUNNING, Status.DONE):
            recorder.primitive_event(plan, PrimitiveStatus(len(plan) - 1, prim.kind, status), 0)

    robot.teaching_mode(True)
    log("teaching mode: guide the arm by hand; space closes/opens the gripper, Enter finishes, x discards")
    try:
        t_end = time.monotonic() + options.max_s
        while time.monotonic() < t_end:
            view.refresh()
            recorder.on_step(view)
            samples += 1
            cmd = keys.read()
            if cmd.discard or cmd.finish:
                ended = "discarded" if cmd.discard else "finished"
                break
            if cmd.gripper is not None and (cmd.gripper == "close") != closed:
                closed = cmd.gripper == "close"
                pos, _ = view.tcp_pose()
                event(Primitive.move(tuple(pos), view.tcp_yaw()))
                if closed:
                    event(Primitive.close(grasp.object_at_tcp(pos, grasp.scene_boxes(options.scene)) or ""))
                    view.gripper_target = 0.0
                    gripper.grasp(0.0, 0.05, options.grasp_force, 0.08, 0.08)
                else:
                    event(Primitive.open())
                    view.gripper_target = 2 * panda.FINGER_TRAVEL
                    gripper.move(2 * panda.FINGER_TRAVEL, 0.05)
            time.sleep(max(0.0, 1.0 / options.rate_hz - (time.monotonic() - view._now)))
    finally:
        robot.teaching_mode(False)
    if ended == "discarded":
        import shutil

        recorder.bag.close({"record": {"episode_id": episode_id}}, success=False, status="discarded")
        shutil.rmtree(bags / episode_id, ignore_errors=True)
        return {"episode_id": episode_id, "kept": False}
    success = ask("did the demonstration succeed? [y/N] ").strip().lower() in ("y", "yes")
    plan_dicts = [p.to_dict() for p in plan]
    record = EpisodeRecord(
        episode_id=episode_id, task=options.task, seed=-1, instruction=options.instruction,
        scene=options.scene.to_dict(), final_scene=view.scene_state().to_dict(),
        planning=PlanningRecord(backend="teaching", success=True, message="kinesthetic teaching (panda-py)",
                                plan=plan_dicts, parsed_plan=plan_dicts, mode="teleop"),
        execution=ExecutionRecord(success=True, message=f"{samples} samples"), success=success,
        success_report={"success": success, "conditions": {"person_confirmed": success}},
        outcome=Outcome(OutcomeKind.SUCCESS) if success else Outcome(OutcomeKind.TASK_NOT_ACHIEVED, "not confirmed"),
        provenance=provenance("teaching", rate_hz=options.rate_hz),
    )  # fmt: skip
    record.bag = recorder.stop(record)
    return {"episode_id": episode_id, "kept": True, "bag": record.bag, "success": success, "samples": samples,
            "gripper_events": len(plan) // 2, "ended": ended}  # fmt: skip


def connect(robot_ip: str, confirm_hardware: bool):
    """``(panda_py.Panda, libfranka.Gripper)`` after the same confirmation the executor's backend asks for."""
    from llm_trainer.execution.backends.common import import_or_explain, require_confirmation
    from llm_trainer.execution.backends.panda_py_backend import INSTALL_HINT

    require_confirmation("teach", confirm_hardware, robot_ip, "the command line (--confirm-hardware --robot-ip)")
    panda_py = import_or_explain("panda_py", INSTALL_HINT)
    libfranka = import_or_explain("panda_py.libfranka", INSTALL_HINT)
    return panda_py.Panda(robot_ip), libfranka.Gripper(robot_ip)
