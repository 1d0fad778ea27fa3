"""The simulator interface: what the simulator node, the in-process runner and the tasks ask of a simulator.

One class per simulator implements it: the embedded MuJoCo scene (``llm_trainer.sim.mujoco_sim``), Gazebo
over ``ros_gz_bridge`` topics (``llm_trainer.sim.gazebo``) and CoppeliaSim over its ZeroMQ remote API
(``llm_trainer.sim.coppeliasim``). The abstract methods are the simulator's own (build an episode, step,
read joints and object poses, command joint targets, render a camera); everything a task or the node
derives from them (the ground-truth scene, the success check, trajectory following, the cameras' nominal
intrinsics and extrinsics from ``config/sim.yaml``) is written once here, so every backend reports the
scene and judges success the same way. A backend overrides a derived method only where it knows better
(MuJoCo reads contacts to tell which objects the fingers hold).

Units and frames: metres and radians; the world frame is the table frame (z up, the table top at z = 0,
the robot base at the origin); joint order is ``panda_description.JOINT_NAMES``; the gripper width is
the sum of the two finger joints.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llm_trainer.scene import ObjectState, SceneState, Workspace, normalize_yaw
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.sim_config import CameraConfig, SimConfig
from llm_trainer.tasks.base import ObjectSpec, SuccessReport, Task, TaskInstance

TABLE_HEIGHT = 0.0  # the table top is the world's z = 0 plane


@dataclass
class TrajectoryOutcome:
    """How a trajectory ended. ``error_code`` follows FollowJointTrajectory.action."""

    error_code: int  # 0 ok, -1 invalid goal, -5 goal tolerance violated, -6 cancelled
    final_error: float  # max |q - q_goal| at the end [rad]
    max_tracking_error: float  # max |q - q_ref| while moving [rad]
    duration: float  # simulated seconds
    message: str = ""
    final_positions: np.ndarray | None = None  # the arm's joint positions when it ended


@dataclass
class GripperOutcome:
    width: float
    stalled: bool
    reached_goal: bool


StepCallback = Callable[["Simulator"], None]
StopCheck = Callable[[], bool]


def optical_rotation_look_at(position, target) -> np.ndarray:
    """world_R_optical of a camera at ``position`` looking at ``target`` with the world's z up in the image:
    columns are the optical x (right), y (down) and z (forward) axes."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-6:  # looking straight down
        right = np.array([0.0, -1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.column_stack([right, -up, forward])


def pinhole_intrinsics(cam: CameraConfig) -> np.ndarray:
    """K of a camera with square pixels and its principal point at the image centre, in CameraInfo's
    convention (pixel (u, v) is centred at integer u, v: the centre of a W-pixel row is at W/2 - 0.5)."""
    fy = (cam.height / 2) / math.tan(math.radians(cam.fovy_deg) / 2)
    return np.array([[fy, 0.0, cam.width / 2 - 0.5], [0.0, fy, cam.height / 2 - 0.5], [0.0, 0.0, 1.0]])


def yaw_of_quaternion_xyzw(q) -> float:
    x, y, z, w = (float(v) for v in q)
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


class CommandedTargets:
    """For simulator bridges that cannot read their controllers' commands back or report the TCP themselves:
    the last commanded arm and gripper targets are kept here, the TCP comes from forward kinematics of the
    measured joints. Put it before ``Simulator`` in the bases; call ``_init_targets()`` in ``__init__``."""

    def _init_targets(self) -> None:
        self._targets = panda.HOME_Q.copy()
        self._gripper_target = 2 * panda.FINGER_TRAVEL
        self._kin = None

    def commanded_joint_positions(self) -> np.ndarray:
        return self._targets.copy()

    @property
    def gripper_target(self) -> float:
        return self._gripper_target

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        if self._kin is None:
            from llm_trainer.motion.kinematics import PandaKinematics

            self._kin = PandaKinematics()
        return self._kin.forward(self.joint_positions())


class Simulator(ABC):
    """A seeded, resettable scene of the Panda, a task's objects and the contract's cameras."""

    config: SimConfig
    task: Task | None = None
    instance: TaskInstance | None = None
    workspace: Workspace = Workspace()

    # ---------------------------------------------------------------- episodes
    @abstractmethod
    def reset(self, task: Task, seed: int, *, settle: bool = True) -> TaskInstance:
        """Build a fresh episode of ``task`` from ``seed`` (``task.instance(seed)``): spawn its objects, put the
        arm at ``panda.HOME_Q`` with the gripper open, and (``settle``) run ``config.settle_time`` of physics."""

    @property
    @abstractmethod
    def time(self) -> float:
        """Simulated seconds since the episode's reset."""

    @property
    @abstractmethod
    def timestep(self) -> float:
        """Simulated seconds one ``step()`` advances."""

    @abstractmethod
    def step(self, n: int = 1) -> None:
        """Advance physics by ``n`` steps and return when they are done (synchronous)."""

    def step_for(self, seconds: float, on_step: StepCallback | None = None) -> None:
        for _ in range(max(1, round(seconds / self.timestep))):
            self.step()
            if on_step:
                on_step(self)

    # ---------------------------------------------------------------- robot state
    @abstractmethod
    def joint_positions(self) -> np.ndarray:
        """The 7 arm joints [rad]."""

    @abstractmethod
    def joint_velocities(self) -> np.ndarray: ...

    @abstractmethod
    def finger_positions(self) -> np.ndarray:
        """The 2 finger joints [m]."""

    @abstractmethod
    def finger_velocities(self) -> np.ndarray: ...

    def gripper_width(self) -> float:
        return float(np.sum(self.finger_positions()))

    @abstractmethod
    def commanded_joint_positions(self) -> np.ndarray:
        """The arm's current joint targets."""

    @property
    @abstractmethod
    def gripper_target(self) -> float:
        """The commanded gripper width [m]."""

    @abstractmethod
    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Tool centre point position and rotation matrix in the world frame."""

    def tcp_quaternion(self) -> np.ndarray:
        """TCP orientation as a unit quaternion (w, x, y, z)."""
        from llm_trainer.sensors.cameras import rotation_to_quaternion

        x, y, z, w = rotation_to_quaternion(self.tcp_pose()[1])
        return np.array([w, x, y, z])

    def tcp_yaw(self) -> float:
        rot = self.tcp_pose()[1]
        return math.atan2(rot[1, 0], rot[0, 0])

    # ---------------------------------------------------------------- commands
    @abstractmethod
    def set_arm_target(self, q: np.ndarray) -> None:
        """Joint position targets of the arm (clipped to the joint limits); the arm servos to them as it steps."""

    @abstractmethod
    def set_gripper_target(self, width: float, force: float | None = None) -> None: ...

    def follow_trajectory(
        self,
        times: np.ndarray,
        positions: np.ndarray,
        *,
        on_step: StepCallback | None = None,
        should_stop: StopCheck | None = None,
        goal_tolerance: float = 0.01,
        settle_time: float = 0.5,
    ) -> TrajectoryOutcome:
        """Track a joint trajectory (times from its start, one row of 7 positions per time) by sending the
        interpolated reference as the joint targets at every step, then wait for the arm to settle."""
        times = np.asarray(times, float)
        positions = np.asarray(positions, float)
        if positions.ndim != 2 or positions.shape[1] != 7 or len(times) != len(positions) or len(times) == 0:
            return TrajectoryOutcome(-1, math.inf, 0.0, 0.0, "trajectory needs N times and N x 7 positions")
        if np.any(np.diff(times) < 0):
            return TrajectoryOutcome(-1, math.inf, 0.0, 0.0, "trajectory times must not decrease")
        dt = self.timestep
        t_start = self.time
        end = float(times[-1])
        goal = positions[-1]
        max_track = 0.0
        while True:
            q = self.joint_positions()
            if should_stop and should_stop():
                self.set_arm_target(q)
                err = float(np.max(np.abs(q - goal)))
                return TrajectoryOutcome(-6, err, max_track, self.time - t_start, "cancelled", q)
            t = self.time - t_start + dt
            ref = np.array([np.interp(t, times, positions[:, j]) for j in range(7)]) if t <= end else goal
            self.set_arm_target(ref)
            self.step()
            if on_step:
                on_step(self)
            q = self.joint_positions()
            if t <= end:
                max_track = max(max_track, float(np.max(np.abs(q - ref))))
                continue
            err = float(np.max(np.abs(q - goal)))
            settled = err < goal_tolerance * 0.2 and float(np.max(np.abs(self.joint_velocities()))) < 0.02
            if settled or t >= end + settle_time:
                ok = err <= goal_tolerance
                message = "" if ok else f"final joint error {err:.4f} rad exceeds tolerance {goal_tolerance}"
                return TrajectoryOutcome(0 if ok else -5, err, max_track, self.time - t_start, message, q)

    def move_gripper(
        self,
        width: float,
        force: float = panda.GRIPPER_MAX_FORCE,
        *,
        on_step: StepCallback | None = None,
        should_stop: StopCheck | None = None,
        timeout: float = 1.5,
    ) -> GripperOutcome:
        """Drive the fingers to ``width`` with a force limit; stop early once they stop moving."""
        self.set_gripper_target(width, force)
        t_start = self.time
        still_since = None
        while self.time - t_start < timeout:
            if should_stop and should_stop():
                break
            self.step()
            if on_step:
                on_step(self)
            if float(np.max(np.abs(self.finger_velocities()))) > 1e-3:
                still_since = None
            elif still_since is None:
                still_since = self.time
            if self.time - t_start > 0.1 and still_since is not None and self.time - still_since > 0.1:
                break
        reached = abs(self.gripper_width() - width) < 0.003
        return GripperOutcome(self.gripper_width(), stalled=not reached, reached_goal=reached)

    # ---------------------------------------------------------------- scene
    @abstractmethod
    def object_pose(self, spec: ObjectSpec) -> tuple[tuple[float, float, float], float]:
        """Centre and yaw of an object of the episode in the world frame."""

    def scene_state(self) -> SceneState:
        objects = []
        for spec in self.instance.objects if self.instance else []:
            pos, yaw = self.object_pose(spec)
            objects.append(ObjectState(spec.name, pos, normalize_yaw(yaw), spec.size, spec.category, 1.0, 0))
        tcp, _ = self.tcp_pose()
        return SceneState(
            objects=objects,
            ee_position=(float(tcp[0]), float(tcp[1]), float(tcp[2])),
            ee_yaw=normalize_yaw(self.tcp_yaw()),
            gripper_width=self.gripper_width(),
            workspace=self.workspace,
            table_height=TABLE_HEIGHT,
            source="ground_truth",
        )

    def objects_in_gripper(self) -> list[str]:
        """Objects the fingers hold. Without contact data: a movable object whose centre is within 2 cm of the
        TCP's closing axis and as wide as the (not fully open) gripper's opening."""
        if self.instance is None:
            return []
        width = self.gripper_width()
        if width > 2 * panda.FINGER_TRAVEL - 0.004:
            return []
        tcp, rot = self.tcp_pose()
        held = []
        for spec in self.instance.objects:
            if not spec.movable:
                continue
            pos, _ = self.object_pose(spec)
            local = rot.T @ (np.asarray(pos, float) - tcp)  # x, y across the hand; y is the closing axis
            if abs(local[0]) < 0.02 and abs(local[2]) < 0.03 and abs(local[1]) < 0.02 and width > 0.002:
                held.append(spec.name)
        return sorted(held)

    def check_success(self) -> SuccessReport:
        if self.task is None or self.instance is None:
            return SuccessReport(False, details={"error": "no episode has been reset"})
        report = self.task.check_success(self.scene_state(), self.instance.goal)
        held = self.objects_in_gripper()
        report.conditions["gripper_released"] = not held
        if held:
            report.details["held_objects"] = held
            report.success = False
        return report

    # ---------------------------------------------------------------- cameras
    def camera(self, name: str) -> CameraConfig:
        for cam in self.config.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"no camera named {name!r}")

    @abstractmethod
    def render(self, name: str, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """RGB (H x W x 3 uint8) and metric depth along the optical axis (H x W float32) of a camera."""

    def camera_intrinsics(self, name: str) -> np.ndarray:
        return pinhole_intrinsics(self.camera(name))

    def camera_pose_optical(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """World position and rotation of a camera's optical frame (z forward, x right, y down)."""
        cam = self.camera(name)
        return np.asarray(cam.position, float), optical_rotation_look_at(cam.position, cam.look_at)

    def close(self) -> None:  # noqa: B027 - optional: most backends have something to release, not all
        """Release the simulator's resources (connections, renderers)."""
