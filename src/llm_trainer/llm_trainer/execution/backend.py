"""Motion backends: what the executor needs from a robot, and the in-process simulator backend.

A backend moves joints along a timed trajectory and drives the gripper; it knows nothing about
primitives or IK. Backends: ``DirectSimBackend`` (the embedded MuJoCo simulation in this
process), ``llm_trainer.nodes.sim_controller_client.SimControllerBackend`` (the simulator node's
trajectory and gripper actions over DDS). MoveIt and panda-py backends plug in the same way.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import numpy as np

from llm_trainer.motion.trajectory import JointTrajectory
from llm_trainer.sim.mujoco_sim import GripperOutcome, MujocoSimulation, StepCallback, TrajectoryOutcome


class MotionBackend(ABC):
    name: str = "base"

    @abstractmethod
    def joint_positions(self) -> np.ndarray:
        """Current arm joint positions (7)."""

    @abstractmethod
    def follow_joint_trajectory(self, trajectory: JointTrajectory, cancel: threading.Event) -> TrajectoryOutcome:
        """Execute a timed joint trajectory; return early with error_code -6 when ``cancel`` is set."""

    @abstractmethod
    def move_gripper(self, width: float, force: float, cancel: threading.Event) -> GripperOutcome:
        """Move the fingers to ``width`` [m] with at most ``force`` [N]."""


class DirectSimBackend(MotionBackend):
    """Drives a ``MujocoSimulation`` living in this process (generator workers, tests, benchmarks)."""

    name = "direct_sim"

    def __init__(self, sim: MujocoSimulation, on_step: StepCallback | None = None):
        self.sim = sim
        self.on_step = on_step

    def joint_positions(self) -> np.ndarray:
        return self.sim.joint_positions()

    def follow_joint_trajectory(self, trajectory: JointTrajectory, cancel: threading.Event) -> TrajectoryOutcome:
        return self.sim.follow_trajectory(
            trajectory.times, trajectory.positions, on_step=self.on_step, should_stop=cancel.is_set
        )

    def move_gripper(self, width: float, force: float, cancel: threading.Event) -> GripperOutcome:
        return self.sim.move_gripper(width, force, on_step=self.on_step, should_stop=cancel.is_set)
