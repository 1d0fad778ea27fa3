"""Motion backends: what the executor needs from a robot, and the in-process simulator backend.

A backend moves joints along a timed trajectory and drives the gripper; it knows nothing about
primitives, IK or safety (the executor checks every trajectory before handing it over). Backends:

- ``DirectSimBackend``: the embedded MuJoCo simulation in this process (generator workers, tests,
  benchmarks);
- ``llm_trainer.ros.sim_controller_backend.SimControllerBackend``: the simulator node's trajectory and
  gripper actions over DDS (``backend: sim`` in the executor node);
- ``llm_trainer.execution.backends.moveit_backend.MoveItBackend``: MoveIt 2 through ``moveit_py``;
- ``llm_trainer.execution.backends.panda_py_backend.PandaPyBackend``: panda-py direct control.

A backend may also plan (MoveIt does): ``native_planner`` then replaces the executor's own planner.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from llm_trainer.motion.trajectory import JointTrajectory
from llm_trainer.scene import SceneState
from llm_trainer.sim.mujoco_sim import GripperOutcome, MujocoSimulation, StepCallback, TrajectoryOutcome

#: ``TrajectoryOutcome.error_code`` of a cancelled motion (FollowJointTrajectory's CANCELED).
CANCELED = -6
#: ``TrajectoryOutcome.error_code`` of a motion stopped by the executor's timeout (never on the wire).
TIMED_OUT = -100


@dataclass
class GripperResult(GripperOutcome):
    """A gripper outcome that can also say it timed out or failed."""

    timed_out: bool = False
    message: str = ""


class MotionBackend(ABC):
    name: str = "base"
    #: True for backends that move a real robot: they refuse to start without explicit confirmation.
    hardware: bool = False
    #: An object with ``plan(q_start, position, yaw, limits, context) -> MotionPlan`` when the backend
    #: plans itself (MoveIt); None means the executor's own collision-aware planner.
    native_planner = None

    @abstractmethod
    def joint_positions(self) -> np.ndarray:
        """Current arm joint positions (7)."""

    @abstractmethod
    def follow_joint_trajectory(
        self, trajectory: JointTrajectory, cancel: threading.Event, timeout: float = float("inf")
    ) -> TrajectoryOutcome:
        """Execute a timed joint trajectory. Return early with ``CANCELED`` when ``cancel`` is set and
        with ``TIMED_OUT`` after ``timeout`` seconds of robot time, the arm held where it is."""

    @abstractmethod
    def move_gripper(
        self, width: float, force: float, cancel: threading.Event, timeout: float = float("inf")
    ) -> GripperOutcome:
        """Move the fingers to ``width`` [m] with at most ``force`` [N]."""

    def current_scene(self) -> SceneState | None:
        """The scene as the backend knows it now (the simulator's ground truth), or None."""
        return None

    def new_plan(self) -> None:  # noqa: B027 - optional hook, a no-op unless a backend caches state per plan
        """A new plan starts: forget what held only within the last one (the sim controllers' last goal end)."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless a backend holds a connection
        """Release the robot / connections (idempotent)."""


class DirectSimBackend(MotionBackend):
    """Drives a ``MujocoSimulation`` living in this process (generator workers, tests, benchmarks)."""

    name = "direct_sim"

    def __init__(self, sim: MujocoSimulation, on_step: StepCallback | None = None):
        self.sim = sim
        self.on_step = on_step

    def joint_positions(self) -> np.ndarray:
        return self.sim.joint_positions()

    def current_scene(self) -> SceneState | None:
        return self.sim.scene_state() if self.sim.instance is not None else None

    def follow_joint_trajectory(
        self, trajectory: JointTrajectory, cancel: threading.Event, timeout: float = float("inf")
    ) -> TrajectoryOutcome:
        t_start = self.sim.time
        timed_out = threading.Event()

        def stop() -> bool:
            if cancel.is_set():
                return True
            if self.sim.time - t_start > timeout:
                timed_out.set()
                return True
            return False

        outcome = self.sim.follow_trajectory(
            trajectory.times, trajectory.positions, on_step=self.on_step, should_stop=stop
        )
        if outcome.error_code == CANCELED and timed_out.is_set() and not cancel.is_set():
            outcome.error_code = TIMED_OUT
            outcome.message = f"stopped after {timeout:.1f} s"
        return outcome

    def move_gripper(
        self, width: float, force: float, cancel: threading.Event, timeout: float = float("inf")
    ) -> GripperOutcome:
        out = self.sim.move_gripper(
            width, force, on_step=self.on_step, should_stop=cancel.is_set, timeout=min(1.5, timeout)
        )
        return GripperResult(out.width, out.stalled, out.reached_goal)
