"""Gazebo behind the simulator interface: ``GazeboSimulation`` reads and commands a gz-sim world over the
``ros_gz_bridge`` topics of ``bridge.py``, and steps it synchronously through the world control service.

- ``reset``: writes the episode's SDF world (``world.py``) and (re)starts the Gazebo server on it, paused
  (``gz sim -s <world>``); the bridge keeps running across restarts (gz-transport topics reconnect);
- ``step(n)``: ``/world/<w>/control`` with ``multi_step = n`` (paused afterwards), then waits until the
  world clock has advanced by ``n`` steps and a joint state of that time has arrived;
- state: ``/world/<w>/model/panda/joint_state``; objects: ``/world/<w>/dynamic_pose/info``; commands: one
  ``std_msgs/Float64`` position target per joint; cameras: the rgbd sensors' colour and 32-bit depth.

The transport is a ``GazeboLink``: ``RosGazeboLink`` (rclpy and a full ROS 2 install with ros_gz; imported
lazily, with a clear message where they are missing) on the lab machine, a fake in the tests. Verified
here: the adaptor's logic against a fake link, and that its topics are exactly the bridge's (tests); not
run against Gazebo (none on this machine).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.base import CommandedTargets, Simulator, yaw_of_quaternion_xyzw
from llm_trainer.sim.gazebo.bridge import GZ_TO_ROS, ROS_TO_GZ
from llm_trainer.sim.gazebo.names import GazeboNames
from llm_trainer.sim.gazebo.world import build_world_sdf
from llm_trainer.sim.sim_config import SimConfig
from llm_trainer.tasks.base import ObjectSpec, Task, TaskInstance


def link_topics(config: SimConfig, names: GazeboNames) -> dict[str, tuple[str, str]]:
    """Every ROS topic the link subscribes (GZ_TO_ROS) or publishes (ROS_TO_GZ), with its type."""
    topics = {
        names.clock: ("rosgraph_msgs/msg/Clock", GZ_TO_ROS),
        names.joint_state: ("sensor_msgs/msg/JointState", GZ_TO_ROS),
        names.dynamic_poses: ("tf2_msgs/msg/TFMessage", GZ_TO_ROS),
    }
    for joint in names.joints:
        topics[names.joint_command(joint)] = ("std_msgs/msg/Float64", ROS_TO_GZ)
    for cam in config.cameras:
        topics[names.camera_image(cam.name)] = ("sensor_msgs/msg/Image", GZ_TO_ROS)
        topics[names.camera_depth(cam.name)] = ("sensor_msgs/msg/Image", GZ_TO_ROS)
        topics[names.camera_info(cam.name)] = ("sensor_msgs/msg/CameraInfo", GZ_TO_ROS)
    return topics


class GazeboLink(ABC):
    """What the adaptor needs from the Gazebo side."""

    @abstractmethod
    def load_world(self, sdf: str) -> None:
        """Start (or restart) the server on this world, paused, and return once its clock is heard."""

    @abstractmethod
    def control(self, *, pause: bool, multi_step: int = 0) -> None:
        """The world control service: pause / run, or ``multi_step`` steps and pause."""

    @abstractmethod
    def clock(self) -> float | None:
        """The latest world clock [s] (None before the first)."""

    @abstractmethod
    def joint_state(self) -> tuple[float, dict[str, tuple[float, float]]] | None:
        """(stamp, {joint: (position, velocity)}) of the latest joint state."""

    @abstractmethod
    def poses(self) -> dict[str, tuple[tuple[float, float, float], tuple[float, float, float, float]]]:
        """{entity name: (position, quaternion xyzw)} of the latest dynamic poses."""

    @abstractmethod
    def image(self, camera: str, kind: str) -> np.ndarray | None:
        """The latest ``"color"`` (H x W x 3 uint8) or ``"depth"`` (H x W float32 metres) image."""

    @abstractmethod
    def command(self, joint: str, position: float) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional: a fake link starts nothing
        """Stop what the link started."""


class GazeboSimulation(CommandedTargets, Simulator):
    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        link: GazeboLink | None = None,
        names: GazeboNames | None = None,
        step_timeout_s: float = 10.0,
    ):
        self.config = config or SimConfig()
        self.names = names or GazeboNames()
        self.link = link or RosGazeboLink(self.config, self.names)
        self.step_timeout_s = step_timeout_s
        self.task: Task | None = None
        self.instance: TaskInstance | None = None
        self._init_targets()
        self._t0 = 0.0

    # ---------------------------------------------------------------- episodes and stepping
    def reset(self, task: Task, seed: int, *, settle: bool = True) -> TaskInstance:
        instance = task.instance(seed)
        self.link.load_world(build_world_sdf(instance, self.config, names=self.names))
        self.task, self.instance = task, instance
        self._t0 = self.link.clock() or 0.0
        self.set_arm_target(panda.HOME_Q)  # the controllers' initial positions are home as well
        self.set_gripper_target(2 * panda.FINGER_TRAVEL)
        if settle:
            self.step_for(self.config.settle_time)
        return instance

    @property
    def time(self) -> float:
        return (self.link.clock() or 0.0) - self._t0

    @property
    def timestep(self) -> float:
        return self.config.timestep

    def step(self, n: int = 1) -> None:
        start = self.link.clock() or 0.0
        target = start + n * self.timestep - 0.25 * self.timestep
        self.link.control(pause=True, multi_step=n)
        deadline = time.monotonic() + self.step_timeout_s
        while True:
            clock, state = self.link.clock(), self.link.joint_state()
            if clock is not None and clock >= target and state is not None and state[0] >= target:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Gazebo did not report {n} step(s) within {self.step_timeout_s:g} s "
                    f"(clock {clock}, wanted {target:.4f}): is the server and the bridge running?"
                )
            time.sleep(0.0005)

    # ---------------------------------------------------------------- robot state
    def _joints(self, names: tuple[str, ...], index: int) -> np.ndarray:
        state = self.link.joint_state()
        if state is None:
            raise RuntimeError(f"no joint state from Gazebo yet (topic {self.names.joint_state})")
        missing = [n for n in names if n not in state[1]]
        if missing:
            raise RuntimeError(f"Gazebo's joint state lacks {missing}")
        return np.array([state[1][n][index] for n in names])

    def joint_positions(self) -> np.ndarray:
        return self._joints(panda.JOINT_NAMES, 0)

    def joint_velocities(self) -> np.ndarray:
        return self._joints(panda.JOINT_NAMES, 1)

    def finger_positions(self) -> np.ndarray:
        return self._joints(panda.FINGER_JOINT_NAMES, 0)

    def finger_velocities(self) -> np.ndarray:
        return self._joints(panda.FINGER_JOINT_NAMES, 1)

    # ---------------------------------------------------------------- commands
    def set_arm_target(self, q: np.ndarray) -> None:
        self._targets = np.clip(np.asarray(q, float), panda.JOINT_LOWER, panda.JOINT_UPPER)
        for joint, target in zip(panda.JOINT_NAMES, self._targets):
            self.link.command(joint, float(target))

    def set_gripper_target(self, width: float, force: float | None = None) -> None:
        """``force`` is not adjustable at run time: the finger controllers' ``cmd_max`` (the world's) limits it."""
        width = float(np.clip(width, 0.0, 2 * panda.FINGER_TRAVEL))
        self._gripper_target = width
        for joint in panda.FINGER_JOINT_NAMES:
            self.link.command(joint, width / 2)

    # ---------------------------------------------------------------- scene and cameras
    def object_pose(self, spec: ObjectSpec) -> tuple[tuple[float, float, float], float]:
        if not spec.movable:
            return spec.position, spec.yaw
        poses = self.link.poses()
        if spec.name not in poses:
            raise RuntimeError(f"no pose of {spec.name!r} from Gazebo (topic {self.names.dynamic_poses})")
        pos, quat = poses[spec.name]
        return (float(pos[0]), float(pos[1]), float(pos[2])), yaw_of_quaternion_xyzw(quat)

    def render(self, name: str, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        cam = self.camera(name)
        rgb = self.link.image(name, "color")
        d = self.link.image(name, "depth") if depth else None
        if rgb is None or (depth and d is None):
            raise RuntimeError(f"no image from Gazebo camera {name!r} yet (topic {self.names.camera_topic(name)}/*)")
        if rgb.shape[:2] != (cam.height, cam.width):
            raise RuntimeError(
                f"camera {name}: Gazebo gives {rgb.shape[1]}x{rgb.shape[0]}, want {cam.width}x{cam.height}"
            )
        if d is not None:
            d = np.where(np.isfinite(d), d, 0.0).astype(np.float32)  # gz marks no-return pixels inf / nan
        return rgb, d

    def close(self) -> None:
        self.link.close()


class RosGazeboLink(GazeboLink):
    """The link over rclpy: subscriptions and publishers on the bridge's topics, the control service client,
    and the Gazebo server as a child process (``gz sim -s``; ``GZ_SIM_EXE`` overrides the executable)."""

    def __init__(self, config: SimConfig, names: GazeboNames, *, workdir: Path | None = None):
        try:
            import rclpy
            from rclpy.executors import SingleThreadedExecutor
            from ros_gz_interfaces.srv import ControlWorld
            from rosgraph_msgs.msg import Clock
            from sensor_msgs.msg import CameraInfo, Image, JointState
            from std_msgs.msg import Float64
            from tf2_msgs.msg import TFMessage
        except ImportError as exc:
            raise ImportError(
                f"GazeboSimulation needs a ROS 2 install with ros_gz (rclpy, ros_gz_interfaces, tf2_msgs): {exc}"
            ) from None
        self.names = names
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="llm_trainer_gz_"))
        self._lock = threading.Lock()
        self._clock: float | None = None
        self._joints: tuple[float, dict[str, tuple[float, float]]] | None = None
        self._poses: dict = {}
        self._images: dict[tuple[str, str], np.ndarray] = {}
        self._proc: subprocess.Popen | None = None
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node("gazebo_link")
        types = {"rosgraph_msgs/msg/Clock": Clock, "sensor_msgs/msg/JointState": JointState,
                 "tf2_msgs/msg/TFMessage": TFMessage, "std_msgs/msg/Float64": Float64,
                 "sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CameraInfo": CameraInfo}  # fmt: skip
        self._pubs = {}
        for topic, (type_name, direction) in link_topics(config, names).items():
            if direction == ROS_TO_GZ:
                self._pubs[topic] = self.node.create_publisher(types[type_name], topic, 10)
            else:
                self.node.create_subscription(types[type_name], topic, self._callback(topic), 10)
        self._Float64 = Float64
        self._control = self.node.create_client(ControlWorld, names.control_service)
        self._ControlWorld = ControlWorld
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._spin = threading.Thread(target=self._executor.spin, daemon=True)
        self._spin.start()

    def _callback(self, topic: str):
        names = self.names

        def on_msg(msg) -> None:
            with self._lock:
                if topic == names.clock:
                    self._clock = msg.clock.sec + msg.clock.nanosec * 1e-9
                elif topic == names.joint_state:
                    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                    vel = list(msg.velocity) or [0.0] * len(msg.name)
                    self._joints = (stamp, {n: (p, v) for n, p, v in zip(msg.name, msg.position, vel)})
                elif topic == names.dynamic_poses:
                    for tf in msg.transforms:
                        t, r = tf.transform.translation, tf.transform.rotation
                        self._poses[tf.child_frame_id] = ((t.x, t.y, t.z), (r.x, r.y, r.z, r.w))
                elif topic.endswith("/image") or topic.endswith("/depth_image"):
                    camera = topic.split("/")[-2]
                    if msg.encoding == "32FC1":
                        img = np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width)
                        self._images[(camera, "depth")] = img
                    else:
                        img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
                        self._images[(camera, "color")] = img

        return on_msg

    def load_world(self, sdf: str, timeout_s: float = 60.0) -> None:
        self.close_server()
        path = self.workdir / "world.sdf"
        path.write_text(sdf)
        exe = os.environ.get("GZ_SIM_EXE") or shutil.which("gz")
        if exe is None:
            raise FileNotFoundError(
                "the Gazebo executable 'gz' is not on PATH (install gz-harmonic / ros-jazzy-ros-gz)"
            )
        with self._lock:
            self._clock, self._joints, self._poses, self._images = None, None, {}, {}
        self._proc = subprocess.Popen([exe, "sim", "-s", str(path)], stdout=subprocess.DEVNULL)
        if not self._control.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"no {self.names.control_service} service within {timeout_s:g} s (is the bridge up?)")
        deadline = time.monotonic() + timeout_s
        while self.clock() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no clock on {self.names.clock} within {timeout_s:g} s")
            self.control(pause=True, multi_step=1)
            time.sleep(0.05)

    def control(self, *, pause: bool, multi_step: int = 0) -> None:
        req = self._ControlWorld.Request()
        req.world_control.pause = pause
        req.world_control.multi_step = int(multi_step)
        future = self._control.call_async(req)
        deadline = time.monotonic() + 10.0
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.names.control_service} did not answer within 10 s")
            time.sleep(0.0005)
        if not future.result().success:
            raise RuntimeError(f"{self.names.control_service} refused the request")

    def clock(self) -> float | None:
        with self._lock:
            return self._clock

    def joint_state(self):
        with self._lock:
            return self._joints

    def poses(self):
        with self._lock:
            return dict(self._poses)

    def image(self, camera: str, kind: str):
        with self._lock:
            return self._images.get((camera, kind))

    def command(self, joint: str, position: float) -> None:
        if math.isfinite(position):
            self._pubs[self.names.joint_command(joint)].publish(self._Float64(data=float(position)))

    def close_server(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None

    def close(self) -> None:
        self.close_server()
        self._executor.shutdown()
        self.node.destroy_node()
