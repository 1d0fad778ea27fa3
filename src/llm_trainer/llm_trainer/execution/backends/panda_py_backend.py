"""panda-py backend: direct joint control of the lab's Panda (FER) and its Franka Hand, as BLAZER did.

``pip install panda-python`` (panda-py; its 0.x/1.x wheels bundle libfranka 0.9.2 for the FER, its
2.x wheels speak every FCI protocol). The executor plans and checks every trajectory (collision
model, joint/velocity/acceleration limits, workspace); this backend streams it to panda-py's 1 kHz
joint impedance controller as position + velocity references at ``control_rate_hz``:
``controllers.JointPosition.set_control(q, dq)`` on panda-py 1, ``controllers.JointImpedance.
set_reference(q, dq)`` on panda-py 2. Cancel and timeout hold the arm where it is (reference = the
measured position, zero velocity) for ``stop_time`` before the controller stops. The gripper uses
libfranka's ``Gripper``: ``move`` to open, ``grasp`` (force-limited) to close; a blocking gripper call
runs on a worker thread so that cancel can ``stop()`` it.

Nothing here runs without ``confirm_hardware: true`` and ``robot_ip`` (config/panda_py.yaml or the
executor node's parameters). Tested here without the library or a robot: configuration, the
confirmation, the missing-library message, trajectory sampling and the control loop against a fake
panda-py; on the lab robot it needs its first run with ``dry_run`` plans and a hand on the e-stop.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llm_trainer.config import config_dir, load_section
from llm_trainer.execution.backend import CANCELED, TIMED_OUT, GripperResult, MotionBackend
from llm_trainer.execution.backends.common import import_or_explain, require_confirmation, sample_trajectory
from llm_trainer.motion.trajectory import JointTrajectory
from llm_trainer.sim.mujoco_sim import TrajectoryOutcome

INSTALL_HINT = (
    "install panda-py on the robot PC: pip install panda-python (the FER needs a build with libfranka < 0.10, "
    "e.g. panda-python 0.8.x with libfranka 0.9.2; see docker/)"
)


@dataclass
class PandaPyConfig:
    """``config/panda_py.yaml`` (section ``panda_py``)."""

    robot_ip: str = ""  # the FCI address of the arm (Desk's network settings)
    confirm_hardware: bool = False  # must be true to start: this backend moves a real robot
    control_rate_hz: float = 500.0  # reference updates sent from Python (panda-py's own loop runs at 1 kHz)
    stop_time: float = 0.3  # [s] holding the measured position after a cancel/timeout before stopping
    settle_time: float = 1.0  # [s] after the trajectory's end to reach the goal within goal_tolerance
    goal_tolerance: float = 0.01  # [rad] largest joint error accepted at the end
    max_tracking_error: float = 0.1  # [rad] larger lag aborts the motion (the arm is blocked)
    joint_stiffness: list[float] = field(default_factory=list)  # 7 values [Nm/rad]; empty: panda-py default
    joint_damping: list[float] = field(default_factory=list)  # 7 values [Nms/rad]; empty: panda-py default
    gripper_speed: float = 0.05  # [m/s]
    grasp_epsilon: float = 0.08  # [m] a close succeeds on any object up to this wide (libfranka epsilon_outer)

    def validate(self) -> None:
        if not 10.0 <= self.control_rate_hz <= 1000.0:
            raise ValueError("control_rate_hz must be within [10, 1000]")
        if not 0.0 < self.stop_time <= 2.0 or not 0.0 <= self.settle_time <= 10.0:
            raise ValueError("stop_time must be in (0, 2] s and settle_time in [0, 10] s")
        if not 0.0 < self.goal_tolerance <= 0.1 or not 0.0 < self.max_tracking_error <= 0.5:
            raise ValueError("goal_tolerance must be in (0, 0.1] rad and max_tracking_error in (0, 0.5] rad")
        for key in ("joint_stiffness", "joint_damping"):
            values = getattr(self, key)
            if values and (len(values) != 7 or any(not (v > 0 and math.isfinite(v)) for v in values)):
                raise ValueError(f"{key} needs 7 positive numbers (or none for panda-py's default)")
        if not 0.0 < self.gripper_speed <= 0.1:
            raise ValueError("gripper_speed must be in (0, 0.1] m/s (the Franka Hand's range)")
        if not 0.0 < self.grasp_epsilon <= 0.08:
            raise ValueError("grasp_epsilon must be in (0, 0.08] m")


def load_panda_py_config(path: Path | str | None = None) -> PandaPyConfig:
    return load_section(PandaPyConfig, path or config_dir() / "panda_py.yaml", "panda_py")


def gripper_command(width: float, force: float, config: PandaPyConfig, open_width: float = 0.08) -> dict[str, Any]:
    """The libfranka Gripper call for a target width: ``move`` when opening, force-limited ``grasp``
    when closing (width 0 means "close on whatever is there")."""
    width = float(np.clip(width, 0.0, 0.08))
    if width >= min(open_width, 0.08) - 1e-6 or force <= 0:
        return {"call": "move", "width": width, "speed": config.gripper_speed}
    return {
        "call": "grasp",
        "width": width,
        "speed": config.gripper_speed,
        "force": float(force),
        "epsilon_inner": 0.005,
        "epsilon_outer": config.grasp_epsilon,
    }


class PandaPyBackend(MotionBackend):
    """Streams checked trajectories to panda-py; see the module docstring."""

    name = "panda_py"
    hardware = True

    def __init__(self, config: PandaPyConfig, *, where: str = "config/panda_py.yaml", module: Any = None):
        require_confirmation("panda_py", config.confirm_hardware, config.robot_ip, where)
        self.config = config
        panda_py = module if module is not None else import_or_explain("panda_py", INSTALL_HINT)
        self._controllers = getattr(panda_py, "controllers", None) or import_or_explain(
            "panda_py.controllers", INSTALL_HINT
        )
        libfranka = getattr(panda_py, "libfranka", None) or import_or_explain("panda_py.libfranka", INSTALL_HINT)
        try:
            self._panda = panda_py.Panda(config.robot_ip)
            self._gripper = libfranka.Gripper(config.robot_ip)
        except Exception as exc:  # noqa: BLE001 - libfranka raises its own types
            from llm_trainer.execution.backends.common import BackendUnavailable

            raise BackendUnavailable(f"cannot connect to the Panda at {config.robot_ip}: {exc}") from exc
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ state
    def joint_positions(self) -> np.ndarray:
        return np.array(self._panda.get_state().q, dtype=float)

    # ------------------------------------------------------------------ arm
    def _controller(self):
        """A joint impedance controller and its reference setter, for panda-py 2 or 1."""
        c, cfg = self._controllers, self.config
        kwargs = {}
        if cfg.joint_stiffness:
            kwargs["stiffness"] = np.array(cfg.joint_stiffness)
        if cfg.joint_damping:
            kwargs["damping"] = np.array(cfg.joint_damping)
        if hasattr(c, "JointImpedance"):
            ctrl = c.JointImpedance(**kwargs)
            return ctrl, ctrl.set_reference
        ctrl = c.JointPosition(**kwargs)
        return ctrl, ctrl.set_control

    def follow_joint_trajectory(
        self, trajectory: JointTrajectory, cancel: threading.Event, timeout: float = float("inf")
    ) -> TrajectoryOutcome:
        cfg = self.config
        sampled = sample_trajectory(trajectory, cfg.control_rate_hz)
        goal = sampled.positions[-1]
        n = len(sampled.times)
        ctrl, set_reference = self._controller()
        max_runtime = min(timeout, sampled.times[-1] + cfg.settle_time)
        code, message, max_track = 0, "", 0.0
        with self._lock:
            set_reference(sampled.positions[0], np.zeros(7))
            self._panda.start_controller(ctrl)
            t0 = time.monotonic()
            try:
                with self._panda.create_context(frequency=cfg.control_rate_hz, max_runtime=max_runtime) as ctx:
                    while ctx.ok():
                        if cancel.is_set():
                            code, message = CANCELED, "cancelled"
                            break
                        k = min(int((time.monotonic() - t0) * cfg.control_rate_hz), n - 1)
                        set_reference(sampled.positions[k], sampled.velocities[k])
                        q = self.joint_positions()
                        lag = float(np.max(np.abs(q - sampled.positions[k])))
                        max_track = max(max_track, lag)
                        if lag > cfg.max_tracking_error:
                            code, message = -4, f"tracking error {lag:.3f} rad: the arm is blocked; stopped"
                            break
                        if k == n - 1 and float(np.max(np.abs(q - goal))) < cfg.goal_tolerance * 0.5:
                            break
                    else:
                        if time.monotonic() - t0 >= timeout - 1e-3:
                            code, message = TIMED_OUT, f"stopped after {timeout:.1f} s"
            finally:
                if code != 0:
                    self._hold(set_reference)
                self._panda.stop_controller()
        q = self.joint_positions()
        err = float(np.max(np.abs(q - goal)))
        if code == 0 and err > cfg.goal_tolerance:
            code, message = -5, f"final joint error {err:.4f} rad exceeds {cfg.goal_tolerance}"
        return TrajectoryOutcome(code, err, max_track, time.monotonic() - t0, message, q)

    def _hold(self, set_reference) -> None:
        """Brake: the measured position with zero velocity as the reference, for stop_time."""
        end = time.monotonic() + self.config.stop_time
        while time.monotonic() < end:
            set_reference(self.joint_positions(), np.zeros(7))
            time.sleep(1.0 / self.config.control_rate_hz)

    # ------------------------------------------------------------------ gripper
    def move_gripper(
        self, width: float, force: float, cancel: threading.Event, timeout: float = float("inf")
    ) -> GripperResult:
        cmd = gripper_command(width, force, self.config)
        done = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            try:
                if cmd["call"] == "move":
                    self._gripper.move(cmd["width"], cmd["speed"])
                else:
                    self._gripper.grasp(
                        cmd["width"], cmd["speed"], cmd["force"], cmd["epsilon_inner"], cmd["epsilon_outer"]
                    )
            except Exception as exc:  # noqa: BLE001 - libfranka.GripperException and friends
                error.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="gripper", daemon=True).start()
        deadline = time.monotonic() + min(timeout, 30.0)
        timed_out = False
        while not done.wait(0.02):
            if cancel.is_set() or time.monotonic() > deadline:
                timed_out = not cancel.is_set()
                self._gripper.stop()
                done.wait(2.0)
                break
        state = self._gripper.read_once()
        reached = abs(float(state.width) - cmd["width"]) < 0.003
        grasped = bool(getattr(state, "is_grasped", False))
        message = f"gripper error: {error[0]}" if error else ""
        return GripperResult(float(state.width), grasped or not reached, reached, timed_out=timed_out, message=message)

    def close(self) -> None:
        try:
            self._panda.stop_controller()
        except Exception:  # noqa: BLE001 - nothing running is fine
            pass
