"""Core dataclasses <-> llm_trainer_interfaces / standard messages. Pure mapping, no logic."""

from __future__ import annotations

import importlib
import math

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Vector3
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg
from trajectory_msgs.msg import JointTrajectoryPoint

from llm_trainer.execution.executor import PrimitiveStatus, Status
from llm_trainer.motion.trajectory import JointTrajectory
from llm_trainer.primitives import Primitive, PrimitiveKind
from llm_trainer.scene import ObjectState, SceneState
from llm_trainer_interfaces.msg import ObjectState as ObjectStateMsg
from llm_trainer_interfaces.msg import Primitive as PrimitiveMsg
from llm_trainer_interfaces.msg import PrimitiveStatus as PrimitiveStatusMsg
from llm_trainer_interfaces.msg import SceneState as SceneStateMsg


def object_to_msg(obj: ObjectState) -> ObjectStateMsg:
    return ObjectStateMsg(
        name=obj.name,
        category=obj.category,
        position=Point(x=float(obj.position[0]), y=float(obj.position[1]), z=float(obj.position[2])),
        yaw=float(obj.yaw),
        size=Vector3(x=float(obj.size[0]), y=float(obj.size[1]), z=float(obj.size[2])),
        confidence=float(obj.confidence),
        num_views=int(obj.num_views),
    )


def object_from_msg(msg: ObjectStateMsg) -> ObjectState:
    """The object; a ValueError names what is wrong (non-finite numbers, non-positive size)."""
    return ObjectState.from_dict(_object_dict(msg))


def _object_dict(msg: ObjectStateMsg) -> dict:
    return {
        "name": msg.name,
        "position": [msg.position.x, msg.position.y, msg.position.z],
        "yaw": msg.yaw,
        "size": [msg.size.x, msg.size.y, msg.size.z],
        "category": msg.category,
        "confidence": float(msg.confidence),
        "num_views": int(msg.num_views),
    }


def scene_to_msg(scene: SceneState, stamp=None, frame_id: str = "world") -> SceneStateMsg:
    msg = SceneStateMsg()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.source = scene.source
    msg.objects = [object_to_msg(o) for o in scene.objects]
    msg.ee_position = Point(x=float(scene.ee_position[0]), y=float(scene.ee_position[1]), z=float(scene.ee_position[2]))
    msg.ee_yaw = float(scene.ee_yaw)
    msg.gripper_width = float(scene.gripper_width)
    msg.workspace = [float(v) for v in scene.workspace.as_list()]
    msg.table_height = float(scene.table_height)
    return msg


def scene_from_msg(msg: SceneStateMsg) -> SceneState:
    """The scene, validated like a scene file: a ValueError says what is wrong with it.

    Scenes come from perception and from action goals; a NaN or a duplicate name must stop here,
    before it becomes an obstacle the executor plans around.
    """
    ws = list(msg.workspace)
    return SceneState.from_dict(
        {
            "objects": [_object_dict(o) for o in msg.objects],
            "end_effector": {
                "position": [msg.ee_position.x, msg.ee_position.y, msg.ee_position.z],
                "yaw": msg.ee_yaw,
                "gripper_width": msg.gripper_width,
            },
            "workspace": ws if any(ws) else None,
            "table_height": msg.table_height,
            "source": msg.source or "ground_truth",
        }
    )


def primitive_to_msg(p: Primitive) -> PrimitiveMsg:
    msg = PrimitiveMsg(kind=int(p.kind), object_name=p.object_name, yaw=float(p.yaw))
    if p.position is not None:
        msg.position = Point(x=float(p.position[0]), y=float(p.position[1]), z=float(p.position[2]))
    return msg


def primitive_from_msg(msg: PrimitiveMsg) -> Primitive:
    kind = PrimitiveKind(msg.kind)  # raises ValueError on an unknown kind
    if kind == PrimitiveKind.MOVE_GRIPPER:
        return Primitive.move((msg.position.x, msg.position.y, msg.position.z), msg.yaw)
    if kind == PrimitiveKind.OPEN_GRIPPER:
        return Primitive.open()
    return Primitive.close(msg.object_name)


def status_to_msg(s: PrimitiveStatus) -> PrimitiveStatusMsg:
    return PrimitiveStatusMsg(
        index=int(s.index),
        kind=int(s.kind),
        status=int(s.status),
        planning_time=float(s.planning_time),
        execution_time=float(s.execution_time),
        tracking_error=float(s.tracking_error),
        message=s.message,
    )


def status_from_msg(msg: PrimitiveStatusMsg) -> PrimitiveStatus:
    return PrimitiveStatus(
        msg.index,
        PrimitiveKind(msg.kind),
        Status(msg.status),
        msg.planning_time,
        msg.execution_time,
        msg.tracking_error,
        msg.message,
    )


def stamp_from_seconds(t: float) -> Time:
    """A ``builtin_interfaces`` Time of ``t`` seconds."""
    sec = int(math.floor(t))
    return Time(sec=sec, nanosec=min(int((t - sec) * 1e9), 999_999_999))


def seconds_from_stamp(stamp) -> float:
    """Seconds of a ``builtin_interfaces`` Time or Duration (both are ``sec`` + ``nanosec``)."""
    return stamp.sec + stamp.nanosec * 1e-9


def _duration(seconds: float) -> Duration:
    sec = int(np.floor(seconds))
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def trajectory_to_msg(traj: JointTrajectory) -> JointTrajectoryMsg:
    msg = JointTrajectoryMsg()
    msg.joint_names = list(traj.joint_names)
    msg.points = [
        JointTrajectoryPoint(positions=[float(v) for v in q], time_from_start=_duration(float(t)))
        for t, q in zip(traj.times, traj.positions)
    ]
    return msg


def trajectory_from_msg(msg: JointTrajectoryMsg) -> JointTrajectory:
    times = np.array([seconds_from_stamp(p.time_from_start) for p in msg.points])
    positions = np.array([list(p.positions) for p in msg.points], dtype=float).reshape(len(msg.points), -1)
    return JointTrajectory(tuple(msg.joint_names), times, positions)


def message_class(msgtype: str):
    """The rclpy message class of a ROS 2 type name as bags store it (``sensor_msgs/msg/CompressedImage``)."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)
