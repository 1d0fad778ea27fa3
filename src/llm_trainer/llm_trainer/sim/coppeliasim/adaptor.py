"""CoppeliaSim behind the simulator interface: load a scene, spawn a task's objects, step synchronously.

``CoppeliaSimulation`` drives a CoppeliaSim 4.6+ instance through the ZeroMQ remote API (``sim.*`` functions
of the regular API, called remotely):

- ``reset``: stop the simulation, ``sim.loadScene`` the lab scene (table + Panda; the robot base at the world
  origin, the table top at z = 0), spawn each object of the task instance as primitive shapes
  (``sim.createPrimitiveShape``, grouped with ``sim.groupShapes`` for compound objects, named with
  ``sim.setObjectAlias``), create one vision sensor per camera of the contract at its pose, look up the
  joints (``sim.getObject``), switch to stepped mode (``sim.setStepping(True)``), start the simulation and
  put the arm at home;
- ``step``: ``sim.step()``, which returns once CoppeliaSim has computed the next simulation step;
- state: ``sim.getJointPosition`` / ``sim.getJointVelocity``, ``sim.getObjectPose`` (x, y, z, qx, qy, qz, qw in
  the world); commands: ``sim.setJointTargetPosition`` (the joints must be in position-control mode, as the
  scene's Panda joints are when ``dynamic`` and ``position control`` are set in the scene), ``sim.setJointTargetForce``;
- cameras: ``sim.getVisionSensorImg`` (RGB, bottom row first) and ``sim.getVisionSensorDepth`` (metres).

The TCP pose comes from the measured joints through the project's Panda kinematics (the scene's robot must
match ``urdf/panda.urdf``: import that file with CoppeliaSim's URDF importer to be sure).

Verified only against the local stand-in of the protocol (``test/coppeliasim_standin.py``); the
orientation of the vision sensors (optical frame vs. CoppeliaSim's sensor frame) and the joint modes are
to be checked on a machine with CoppeliaSim.
"""

from __future__ import annotations

import math
import time as time_mod
from dataclasses import dataclass
from typing import Any

import numpy as np

from llm_trainer.config import load_section
from llm_trainer.sensors.cameras import rotation_to_quaternion
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.base import CommandedTargets, Simulator, yaw_of_quaternion_xyzw
from llm_trainer.sim.coppeliasim.remote_api import DEFAULT_PORT, RemoteApiClient, RemoteApiError
from llm_trainer.sim.sim_config import CameraConfig, SimConfig
from llm_trainer.tasks.base import ObjectSpec, Part, Task, TaskInstance

#: Our part shapes and the primitive shape constants of ``sim.createPrimitiveShape`` they become.
PRIMITIVE_OF_SHAPE = {
    "box": "primitiveshape_cuboid",
    "cylinder": "primitiveshape_cylinder",
    "sphere": "primitiveshape_spheroid",
    "ellipsoid": "primitiveshape_spheroid",
    "capsule": "primitiveshape_capsule",
}
#: CoppeliaSim's vision sensor looks along its +z with +y up in the image: the optical frame turned half
#: a turn about z (x right, y down).
SENSOR_FROM_OPTICAL = np.diag([-1.0, -1.0, 1.0])


@dataclass
class CoppeliaConfig:
    """Where CoppeliaSim runs and how its scene names things (a ``coppeliasim:`` section of a YAML file)."""

    host: str = "localhost"
    port: int = DEFAULT_PORT
    scene: str = ""  # a .ttt on the CoppeliaSim machine with the table and the Panda; "" keeps the open scene
    joint_path: str = "/panda/{joint}"  # sim.getObject path of a joint, {joint} = panda_joint1 ...
    create_cameras: bool = True  # add one vision sensor per contract camera at each reset
    near_clip: float = 0.05
    far_clip: float = 3.0
    connect_timeout_s: float = 5.0
    call_timeout_s: float = 60.0

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} outside 1..65535")
        if "{joint}" not in self.joint_path:
            raise ValueError(f"joint_path {self.joint_path!r} must contain {{joint}}")
        if not 0 < self.near_clip < self.far_clip:
            raise ValueError("need 0 < near_clip < far_clip")
        if self.connect_timeout_s <= 0 or self.call_timeout_s <= 0:
            raise ValueError("timeouts must be positive")


def load_coppelia_config(path) -> CoppeliaConfig:
    return load_section(CoppeliaConfig, path, "coppeliasim")


def _euler_xyz_matrix(euler) -> np.ndarray:
    """MJCF's default ``euler`` (sequence xyz, rotating axes): R = Rx(a) Ry(b) Rz(c)."""
    a, b, c = euler
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def _yaw_matrix(yaw: float) -> np.ndarray:
    return np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])


def part_world_pose(spec: ObjectSpec, part: Part) -> list[float]:
    """A part's pose in the world as CoppeliaSim wants it: x, y, z, qx, qy, qz, qw."""
    r_obj = _yaw_matrix(spec.yaw)
    pos = np.asarray(spec.position, float) + r_obj @ np.asarray(part.pos, float)
    quat = rotation_to_quaternion(r_obj @ _euler_xyz_matrix(part.euler))
    return [*map(float, pos), *quat]


def primitive_size(part: Part) -> list[float]:
    """``sim.createPrimitiveShape`` sizes: the full extents along x, y, z (a capsule's length includes its caps)."""
    return [float(v) for v in part.size]


def horizontal_view_angle(cam: CameraConfig) -> float:
    """A vision sensor's perspective angle applies to its larger image side: from our vertical field of view."""
    half_v = math.radians(cam.fovy_deg) / 2
    if cam.width >= cam.height:
        return 2 * math.atan(math.tan(half_v) * cam.width / cam.height)
    return 2 * half_v


class CoppeliaSimulation(CommandedTargets, Simulator):
    """The Panda, a task's objects and the contract's cameras in a CoppeliaSim scene, stepped synchronously.

    ``client`` is anything with ``require("sim")`` (this package's ``RemoteApiClient`` by default, or the
    official ``coppeliasim_zmqremoteapi_client.RemoteAPIClient``)."""

    def __init__(
        self,
        config: SimConfig | None = None,
        bridge: CoppeliaConfig | None = None,
        *,
        client: Any = None,
    ):
        self.config = config or SimConfig()
        self.bridge = bridge or CoppeliaConfig()
        self.bridge.validate()
        self._own_client = client is None
        self.client = client or RemoteApiClient(
            self.bridge.host,
            self.bridge.port,
            timeout_s=self.bridge.call_timeout_s,
            connect_timeout_s=self.bridge.connect_timeout_s,
        )
        self.sim = self.client.require("sim")
        self.task: Task | None = None
        self.instance: TaskInstance | None = None
        self._objects: dict[str, int] = {}
        self._cameras: dict[str, int] = {}
        self._arm: list[int] = []
        self._fingers: list[int] = []
        self._init_targets()
        self._dt = float(self.sim.getSimulationTimeStep())
        self._t0 = 0.0

    # ---------------------------------------------------------------- episodes
    def _stop(self, timeout_s: float = 10.0) -> None:
        sim = self.sim
        if sim.getSimulationState() == sim.simulation_stopped:
            return
        sim.stopSimulation()
        deadline = time_mod.monotonic() + timeout_s
        while sim.getSimulationState() != sim.simulation_stopped:
            if time_mod.monotonic() > deadline:
                raise RemoteApiError(f"CoppeliaSim did not stop its simulation within {timeout_s:g} s")
            time_mod.sleep(0.01)

    def _spawn(self, spec: ObjectSpec) -> int:
        sim = self.sim
        handles = []
        for part in spec.geometry():
            h = sim.createPrimitiveShape(getattr(sim, PRIMITIVE_OF_SHAPE[part.shape]), primitive_size(part), 0)
            sim.setObjectPose(h, part_world_pose(spec, part), sim.handle_world)
            rgba = part.rgba if part.rgba is not None else spec.rgba
            sim.setShapeColor(h, None, sim.colorcomponent_ambient_diffuse, [float(c) for c in rgba[:3]])
            handles.append(h)
        handle = handles[0] if len(handles) == 1 else sim.groupShapes(handles)
        sim.setObjectAlias(handle, spec.name)
        sim.setObjectInt32Param(handle, sim.shapeintparam_static, 0 if spec.movable else 1)
        sim.setObjectInt32Param(handle, sim.shapeintparam_respondable, 1)
        if spec.movable:
            sim.setShapeMass(handle, float(spec.mass))
        return handle

    def _create_camera(self, cam: CameraConfig) -> int:
        sim = self.sim
        b = self.bridge
        float_params = [b.near_clip, b.far_clip, horizontal_view_angle(cam), 0.01, 0.0, 0.0, 0, 0, 0, 0, 0]
        h = sim.createVisionSensor(1, [cam.width, cam.height, 0, 0], float_params)  # options bit 0: perspective
        pos, rot = self.camera_pose_optical(cam.name)
        sim.setObjectPose(h, [*map(float, pos), *rotation_to_quaternion(rot @ SENSOR_FROM_OPTICAL)], sim.handle_world)
        sim.setObjectAlias(h, cam.name)
        return h

    def reset(self, task: Task, seed: int, *, settle: bool = True) -> TaskInstance:
        instance = task.instance(seed)
        sim = self.sim
        self._stop()
        if self.bridge.scene:
            sim.loadScene(self.bridge.scene)
        else:  # the same open scene: take the last episode's objects and sensors away
            old = [*self._objects.values(), *self._cameras.values()]
            if old:
                sim.removeObjects(old)
        self._objects, self._cameras = {}, {}
        self._objects = {spec.name: self._spawn(spec) for spec in instance.objects}
        if self.bridge.create_cameras:
            self._cameras = {cam.name: self._create_camera(cam) for cam in self.config.cameras}
        path = self.bridge.joint_path
        self._arm = [sim.getObject(path.format(joint=n)) for n in panda.JOINT_NAMES]
        self._fingers = [sim.getObject(path.format(joint=n)) for n in panda.FINGER_JOINT_NAMES]
        self.task, self.instance = task, instance
        sim.setStepping(True)
        sim.startSimulation()
        self._dt = float(sim.getSimulationTimeStep())
        self._t0 = float(sim.getSimulationTime())
        for h, q in zip(self._arm, panda.HOME_Q):
            sim.setJointPosition(h, float(q))
        self.set_arm_target(panda.HOME_Q)
        for h in self._fingers:
            sim.setJointPosition(h, panda.FINGER_TRAVEL)
        self.set_gripper_target(2 * panda.FINGER_TRAVEL)
        if settle:
            self.step_for(self.config.settle_time)
        return instance

    # ---------------------------------------------------------------- stepping
    @property
    def time(self) -> float:
        return float(self.sim.getSimulationTime()) - self._t0

    @property
    def timestep(self) -> float:
        return self._dt

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.sim.step()

    # ---------------------------------------------------------------- robot state
    def _read(self, fn, handles: list[int]) -> np.ndarray:
        if not handles:
            raise RuntimeError("no episode has been reset: the joints are not known yet")
        return np.array([float(fn(h)) for h in handles])

    def joint_positions(self) -> np.ndarray:
        return self._read(self.sim.getJointPosition, self._arm)

    def joint_velocities(self) -> np.ndarray:
        return self._read(self.sim.getJointVelocity, self._arm)

    def finger_positions(self) -> np.ndarray:
        return self._read(self.sim.getJointPosition, self._fingers)

    def finger_velocities(self) -> np.ndarray:
        return self._read(self.sim.getJointVelocity, self._fingers)

    # ---------------------------------------------------------------- commands
    def set_arm_target(self, q: np.ndarray) -> None:
        self._targets = np.clip(np.asarray(q, float), panda.JOINT_LOWER, panda.JOINT_UPPER)
        for h, target in zip(self._arm, self._targets):
            self.sim.setJointTargetPosition(h, float(target))

    def set_gripper_target(self, width: float, force: float | None = None) -> None:
        width = float(np.clip(width, 0.0, 2 * panda.FINGER_TRAVEL))
        self._gripper_target = width
        for h in self._fingers:
            if force is not None:
                self.sim.setJointTargetForce(h, float(np.clip(force, 1.0, 140.0)))
            self.sim.setJointTargetPosition(h, width / 2)

    # ---------------------------------------------------------------- scene
    def object_handle(self, name: str) -> int:
        return self._objects[name]

    def object_pose(self, spec: ObjectSpec) -> tuple[tuple[float, float, float], float]:
        pose = self.sim.getObjectPose(self._objects[spec.name], self.sim.handle_world)
        x, y, z = (float(v) for v in pose[:3])
        return (x, y, z), yaw_of_quaternion_xyzw(pose[3:7])

    # ---------------------------------------------------------------- cameras
    def render(self, name: str, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        cam = self.camera(name)
        if name not in self._cameras:
            raise KeyError(f"camera {name!r} has no vision sensor (reset first, with create_cameras on)")
        h = self._cameras[name]
        buf, res = self.sim.getVisionSensorImg(h)
        w, hgt = int(res[0]), int(res[1])
        if (w, hgt) != (cam.width, cam.height):
            raise RemoteApiError(f"camera {name}: sensor gives {w}x{hgt}, the contract says {cam.width}x{cam.height}")
        rgb = np.flipud(np.frombuffer(bytes(buf), np.uint8).reshape(hgt, w, 3)).copy()
        d = None
        if depth:
            dbuf, _ = self.sim.getVisionSensorDepth(h, 1)  # options bit 0: metres, not normalised
            d = np.flipud(np.frombuffer(bytes(dbuf), np.float32).reshape(hgt, w)).copy()
        return rgb, d

    def close(self) -> None:
        if self._own_client:
            self.client.close()
