"""What the simulator publishes, built once as CDR bytes (ROS-free: rosbags' serialiser).

One builder for both paths: the simulator node publishes these bytes with rclpy (``publish`` of
serialised data), and the in-process runner writes the same bytes straight into the episode bag.
So a bag from either runner holds the same messages, and the node skips building rclpy messages in
Python field by field (most of the graph's per-message cost).

Streams and their rates (simulated time, on a drift-free grid): joint states, joint commands, the
end-effector pose and ``/clock`` at ``joint_state_rate_hz``; the ground-truth scene at
``scene_rate_hz``; per camera (the camera contract, ``llm_trainer.sensors.cameras``) compressed colour
and depth, intrinsics and extrinsics at ``camera_rate_hz``, raw images only when asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llm_trainer.recording.typestore import get_ros2_typestore
from llm_trainer.scene import SceneState
from llm_trainer.sensors.cameras import (
    COLOR_ENCODING,
    DEPTH_ENCODING,
    WORLD_FRAME,
    CameraModel,
    camera_topics,
    optical_frame,
    rotation_to_quaternion,
)
from llm_trainer.sensors.image_codec import depth_to_mm, encode_color, encode_depth
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.sim_config import SimConfig

JOINT_STATES, JOINT_COMMANDS, EE_POSE, SCENE, CLOCK = (
    "/joint_states",
    "/joint_commands",
    "/ee_pose",
    "/scene/ground_truth",
    "/clock",
)
JOINT_STATE = "sensor_msgs/msg/JointState"


@dataclass(frozen=True)
class Sample:
    topic: str
    msgtype: str
    data: bytes
    t_ns: int


# Simulated time is a running sum of 2 ms steps and the grid a running sum of periods: both carry
# rounding error, so "due" allows a microsecond (far under half a physics step). Without it a step
# that lands 1e-15 s short of the grid waits one step more, and the stream shifts 2 ms off its grid.
DUE_TOLERANCE_S = 1e-6


def is_due(due: dict[str, float], stream: str, t: float) -> bool:
    return t + DUE_TOLERANCE_S >= due[stream]


def advance(due: dict[str, float], stream: str, t: float, rate_hz: float) -> None:
    """Next publishing time on a fixed grid: a period that is not a whole number of physics steps
    (15 Hz of 2 ms steps) must not drift to the next step every time (that gave 14.7 Hz)."""
    period = 1.0 / rate_hz
    due[stream] += period
    if due[stream] <= t + DUE_TOLERANCE_S:  # far behind (a reset, a stall): restart the grid here
        due[stream] = t + period


class SimTopics:
    """The simulator's messages due at each physics step, as CDR bytes."""

    def __init__(self, config: SimConfig, store=None):
        self.config = config
        self.store = store or get_ros2_typestore()
        self.T = self.store.types
        self.due = {"joints": 0.0, "scene": 0.0, "cameras": 0.0}
        self._names = list(panda.JOINT_NAMES + panda.FINGER_JOINT_NAMES)
        self._empty = np.array([], dtype=np.float64)

    def restart(self) -> None:
        """A new episode restarts simulation time: restart the schedule with it."""
        self.due = dict.fromkeys(self.due, 0.0)

    # ------------------------------------------------------------------ helpers
    def _ser(self, msg, msgtype: str) -> bytes:
        return bytes(self.store.serialize_cdr(msg, msgtype))

    def _time(self, stamp_s: float):
        sec = int(math.floor(stamp_s))
        return self.T["builtin_interfaces/msg/Time"](sec=sec, nanosec=min(int((stamp_s - sec) * 1e9), 999_999_999))

    def _header(self, stamp_s: float, frame: str = ""):
        return self.T["std_msgs/msg/Header"](stamp=self._time(stamp_s), frame_id=frame)

    def _point(self, v):
        return self.T["geometry_msgs/msg/Point"](x=float(v[0]), y=float(v[1]), z=float(v[2]))

    # ------------------------------------------------------------------ streams
    def due_samples(
        self,
        sim,
        t: float,
        stamp_s: float,
        *,
        want_raw: Callable[[str, str], bool] | None = None,
    ) -> list[Sample]:
        """Messages due at schedule time ``t`` (simulation time, or wall time when nothing records),
        stamped ``stamp_s``: time runs on across resets."""
        out: list[Sample] = []
        t_ns = int(round(stamp_s * 1e9))
        cfg = self.config
        if is_due(self.due, "joints", t):
            advance(self.due, "joints", t, cfg.joint_state_rate_hz)
            out += self.state_samples(sim, stamp_s, t_ns)
        if is_due(self.due, "scene", t):
            advance(self.due, "scene", t, cfg.scene_rate_hz)
            out.append(
                Sample(SCENE, "llm_trainer_interfaces/msg/SceneState", self.scene(sim.scene_state(), stamp_s), t_ns)
            )
        if cfg.render_cameras and is_due(self.due, "cameras", t):
            advance(self.due, "cameras", t, cfg.camera_rate_hz)
            out += self.camera_samples(sim, stamp_s, t_ns, want_raw)
        return out

    def state_samples(self, sim, stamp_s: float, t_ns: int) -> list[Sample]:
        T = self.T
        clock = T["rosgraph_msgs/msg/Clock"](clock=self._time(stamp_s))
        js = T[JOINT_STATE](
            header=self._header(stamp_s),
            name=self._names,
            position=np.concatenate([sim.joint_positions(), sim.finger_positions()]).astype(np.float64),
            velocity=np.concatenate([sim.joint_velocities(), sim.finger_velocities()]).astype(np.float64),
            effort=self._empty,
        )
        half = sim.gripper_target / 2
        cmd = T[JOINT_STATE](
            header=self._header(stamp_s),
            name=self._names,
            position=np.concatenate([sim.commanded_joint_positions(), [half, half]]).astype(np.float64),
            velocity=self._empty,
            effort=self._empty,
        )
        pos, quat = sim.tcp_pose()[0], sim.tcp_quaternion()  # quat: w, x, y, z
        pose = T["geometry_msgs/msg/PoseStamped"](
            header=self._header(stamp_s, WORLD_FRAME),
            pose=T["geometry_msgs/msg/Pose"](
                position=self._point(pos),
                orientation=T["geometry_msgs/msg/Quaternion"](
                    x=float(quat[1]), y=float(quat[2]), z=float(quat[3]), w=float(quat[0])
                ),
            ),
        )
        return [
            Sample(CLOCK, "rosgraph_msgs/msg/Clock", self._ser(clock, "rosgraph_msgs/msg/Clock"), t_ns),
            Sample(JOINT_STATES, JOINT_STATE, self._ser(js, JOINT_STATE), t_ns),
            Sample(JOINT_COMMANDS, JOINT_STATE, self._ser(cmd, JOINT_STATE), t_ns),
            Sample(EE_POSE, "geometry_msgs/msg/PoseStamped", self._ser(pose, "geometry_msgs/msg/PoseStamped"), t_ns),
        ]

    def scene(self, scene: SceneState, stamp_s: float) -> bytes:
        T = self.T
        objects = [
            T["llm_trainer_interfaces/msg/ObjectState"](
                name=o.name,
                category=o.category,
                position=self._point(o.position),
                yaw=float(o.yaw),
                size=T["geometry_msgs/msg/Vector3"](x=float(o.size[0]), y=float(o.size[1]), z=float(o.size[2])),
                confidence=float(o.confidence),
                num_views=int(o.num_views),
            )
            for o in scene.objects
        ]
        msg = T["llm_trainer_interfaces/msg/SceneState"](
            header=self._header(stamp_s, WORLD_FRAME),
            source=scene.source,
            objects=objects,
            ee_position=self._point(scene.ee_position),
            ee_yaw=float(scene.ee_yaw),
            gripper_width=float(scene.gripper_width),
            workspace=np.array(scene.workspace.as_list(), dtype=np.float64),
            table_height=float(scene.table_height),
        )
        return self._ser(msg, "llm_trainer_interfaces/msg/SceneState")

    def camera_model(self, sim, name: str) -> CameraModel:
        pos, rot = sim.camera_pose_optical(name)
        cam = sim.camera(name)
        return CameraModel(name, cam.width, cam.height, sim.camera_intrinsics(name), pos, rot)

    def camera_samples(self, sim, stamp_s: float, t_ns: int, want_raw=None) -> list[Sample]:
        T = self.T
        out: list[Sample] = []
        for cam in self.config.cameras:
            topics = camera_topics(cam.name)
            frame = optical_frame(cam.name)
            rgb, depth = sim.render(cam.name)
            depth_mm = depth_to_mm(depth)
            header = self._header(stamp_s, frame)
            if want_raw is not None and want_raw(cam.name, "color"):
                img = T["sensor_msgs/msg/Image"](header=header, height=cam.height, width=cam.width,
                                                 encoding=COLOR_ENCODING, is_bigendian=0, step=cam.width * 3,
                                                 data=np.frombuffer(rgb.tobytes(), np.uint8))  # fmt: skip
                out.append(Sample(topics.color, "sensor_msgs/msg/Image", self._ser(img, "sensor_msgs/msg/Image"), t_ns))
            if want_raw is not None and want_raw(cam.name, "depth"):
                img = T["sensor_msgs/msg/Image"](header=header, height=cam.height, width=cam.width,
                                                 encoding=DEPTH_ENCODING, is_bigendian=0, step=cam.width * 2,
                                                 data=np.frombuffer(depth_mm.tobytes(), np.uint8))  # fmt: skip
                out.append(Sample(topics.depth, "sensor_msgs/msg/Image", self._ser(img, "sensor_msgs/msg/Image"), t_ns))
            for topic, (fmt, data) in (
                (topics.color_compressed, encode_color(rgb, self.config.color_format, self.config.jpeg_quality)),
                (topics.depth_compressed, encode_depth(depth_mm)),
            ):
                msg = T["sensor_msgs/msg/CompressedImage"](
                    header=header, format=fmt, data=np.frombuffer(data, np.uint8)
                )
                out.append(
                    Sample(
                        topic,
                        "sensor_msgs/msg/CompressedImage",
                        self._ser(msg, "sensor_msgs/msg/CompressedImage"),
                        t_ns,
                    )
                )
            model = self.camera_model(sim, cam.name)
            k = model.K
            info = T["sensor_msgs/msg/CameraInfo"](
                header=header,
                height=cam.height,
                width=cam.width,
                distortion_model="plumb_bob",
                d=np.zeros(5),
                k=np.asarray(k, np.float64).reshape(-1),
                r=np.eye(3).reshape(-1),
                p=np.array([k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]),
                binning_x=0,
                binning_y=0,
                roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
            )
            out.append(
                Sample(
                    topics.camera_info,
                    "sensor_msgs/msg/CameraInfo",
                    self._ser(info, "sensor_msgs/msg/CameraInfo"),
                    t_ns,
                )
            )
            q = rotation_to_quaternion(model.rotation)
            tf = T["geometry_msgs/msg/TransformStamped"](
                header=self._header(stamp_s, WORLD_FRAME),
                child_frame_id=frame,
                transform=T["geometry_msgs/msg/Transform"](
                    translation=T["geometry_msgs/msg/Vector3"](
                        x=float(model.position[0]), y=float(model.position[1]), z=float(model.position[2])
                    ),
                    rotation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
                ),
            )
            out.append(
                Sample(
                    topics.extrinsics,
                    "geometry_msgs/msg/TransformStamped",
                    self._ser(tf, "geometry_msgs/msg/TransformStamped"),
                    t_ns,
                )
            )
        return out
