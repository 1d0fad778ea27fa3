"""An episode bag -> ``EpisodeData`` on a fixed time grid (ROS-free: rosbags + numpy + OpenCV).

Every exporter starts here, so a run recorded anywhere (simulation, the lab robot) exports the same
way. Times are header stamps (simulation time in simulation). Each grid time takes the latest
sample at or before it on every topic (the first sample when a topic starts later).

Action spaces (``EpisodeData.actions``), each with the gripper command last:

=================  ====  =====================================================================
``joint_pos``      8     commanded joint positions [rad] + commanded finger gap [m]
``ee_pose_abs``    7     commanded TCP position [m, world] + orientation as axis-angle [rad, world]
                         + finger gap [m]
``ee_pose_delta``  7     commanded TCP minus measured TCP at that sample: position [m, world],
                         rotation (R_cmd R_meas^T) as axis-angle [rad, world] + finger gap [m]
=================  ====  =====================================================================

The commanded TCP pose is the forward kinematics of the commanded joints (the arm's position servos
track exactly those); the executor's primitive events give each sample its primitive index.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from llm_trainer.datasets.episode_data import EpisodeData
from llm_trainer.recording.bag_reader import bag_topic_types, read_episode_bag, read_episode_metadata
from llm_trainer.sensors.cameras import CameraModel, camera_of_topic, quaternion_to_rotation

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")

JOINT_STATES = "/joint_states"
JOINT_COMMANDS = "/joint_commands"
EE_POSE = "/ee_pose"
SCENE = "/scene/ground_truth"
PRIMITIVE_EVENTS = "/executor/primitive_events"

ACTION_SPACES: dict[str, dict[str, Any]] = {
    "joint_pos": {
        "dim": 8,
        "names": [f"joint_pos_{i}" for i in range(7)] + ["gripper_width"],
        "units": "rad x7, m",
        "frame": "joint space",
    },
    "ee_pose_abs": {
        "dim": 7,
        "names": ["x", "y", "z", "rx", "ry", "rz", "gripper_width"],
        "units": "m x3, rad x3 (axis-angle), m",
        "frame": "world (table) frame, TCP",
    },
    "ee_pose_delta": {
        "dim": 7,
        "names": ["dx", "dy", "dz", "drx", "dry", "drz", "gripper_width"],
        "units": "m x3, rad x3 (axis-angle), m",
        "frame": "world (table) frame, commanded minus measured TCP",
    },
}


class DatasetError(ValueError):
    """An episode cannot be converted or written."""


def _stamp_ns(msg: Any, t_ns: int) -> int:
    """Header stamp if set, else the bag's log time (bags from ``ros2 bag record`` log receive time)."""
    header = getattr(msg, "header", None)
    if header is not None:
        ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        if ns > 0:
            return ns
    return int(t_ns)


def _prev_index(stamps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """For each grid time, the index of the latest sample at or before it (the first sample before any)."""
    idx = np.searchsorted(stamps, grid, side="right") - 1
    return np.clip(idx, 0, len(stamps) - 1)


def _sorted_stream(items: list[tuple[int, Any]]) -> tuple[np.ndarray, list[Any]]:
    pairs = sorted((_stamp_ns(m, t), i) for i, (t, m) in enumerate(items))
    return np.array([p[0] for p in pairs], dtype=np.int64), [items[p[1]][1] for p in pairs]


def _joint_rows(msgs: list[Any], field_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(arm (M, 7), fingers (M, 2)) from JointState messages by joint name; NaN where absent."""
    arm = np.full((len(msgs), 7), np.nan)
    fingers = np.full((len(msgs), 2), np.nan)
    cache: dict[tuple[str, ...], tuple[list[int], list[int]]] = {}
    for row, msg in enumerate(msgs):
        values = np.asarray(getattr(msg, field_name), dtype=np.float64)
        names = tuple(msg.name)
        if names not in cache:
            lookup = {n: i for i, n in enumerate(names)}
            cache[names] = ([lookup.get(j, -1) for j in ARM_JOINTS], [lookup.get(j, -1) for j in FINGER_JOINTS])
        arm_idx, finger_idx = cache[names]
        for col, i in enumerate(arm_idx):
            if 0 <= i < len(values):
                arm[row, col] = values[i]
        for col, i in enumerate(finger_idx):
            if 0 <= i < len(values):
                fingers[row, col] = values[i]
    return arm, fingers


def _finger_width(fingers: np.ndarray) -> np.ndarray:
    """(M, 2) finger joint positions -> (M, 1) opening; finger 2 mimics finger 1 when it is not published."""
    f1, f2 = fingers[:, 0], fingers[:, 1]
    width = np.where(np.isnan(f2), 2.0 * f1, f1 + f2)
    return width[:, None]


def rotation_to_axis_angle(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) axis-angle vectors (angle in [0, pi])."""
    r = np.asarray(r, float)
    cos = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    axis = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    sin = np.sin(angle)
    out = np.zeros(axis.shape)
    small = sin < 1e-6
    out[~small] = axis[~small] / (2.0 * sin[~small, None]) * angle[~small, None]
    # Near 0 the axis is ill-defined and the vector is ~0; near pi use the diagonal.
    near_pi = small & (angle > 1.0)
    if np.any(near_pi):
        rp = r[near_pi]
        diag = np.sqrt(np.clip((np.diagonal(rp, axis1=-2, axis2=-1) + 1.0) / 2.0, 0.0, 1.0))
        out[near_pi] = diag * math.pi
    return out


def _rotation_to_quat_xyzw(r: np.ndarray) -> np.ndarray:
    from llm_trainer.sensors.cameras import rotation_to_quaternion

    return np.array([rotation_to_quaternion(m) for m in r])


def episode_from_bag(
    bag_path: Path | str,
    rate_hz: float = 10.0,
    *,
    images: bool = False,
    depth: bool = False,
    cameras: list[str] | None = None,
) -> EpisodeData:
    """Resample an episode bag onto a ``rate_hz`` grid spanning its ``/joint_states``."""
    if not (rate_hz > 0 and math.isfinite(rate_hz)):
        raise DatasetError(f"rate_hz must be a positive number, got {rate_hz}")
    bag_path = Path(bag_path)
    topic_types = bag_topic_types(bag_path)
    camera_streams: dict[tuple[str, str], str] = {}
    for topic in topic_types:
        found = camera_of_topic(topic)
        if found and (cameras is None or found[0] in cameras):
            camera_streams[found] = topic
    wanted_kinds = {"camera_info", "extrinsics"}
    if images:
        wanted_kinds.add("color_compressed")
    if depth:
        wanted_kinds.add("depth_compressed")
    wanted = [JOINT_STATES, JOINT_COMMANDS, EE_POSE, SCENE, PRIMITIVE_EVENTS]
    wanted += [t for (cam, kind), t in camera_streams.items() if kind in wanted_kinds]
    streams = read_episode_bag(bag_path, wanted)
    if not streams.get(JOINT_STATES):
        raise DatasetError(f"{bag_path}: no {JOINT_STATES} messages; cannot build an episode")

    js_t, js_msgs = _sorted_stream(streams[JOINT_STATES])
    step_ns = int(round(1e9 / rate_hz))
    n = int((js_t[-1] - js_t[0]) // step_ns) + 1
    grid = js_t[0] + step_ns * np.arange(n, dtype=np.int64)

    pos_arm, pos_fingers = _joint_rows(js_msgs, "position")
    vel_arm, _ = _joint_rows(js_msgs, "velocity")
    idx = _prev_index(js_t, grid)
    joint_pos = pos_arm[idx]
    gripper_width = _finger_width(pos_fingers[idx])
    joint_vel = vel_arm[idx]
    if np.isnan(joint_vel).all():
        # No velocities published: differentiate the resampled positions instead.
        joint_vel = np.gradient(joint_pos, 1.0 / rate_hz, axis=0) if n > 1 else np.zeros_like(joint_pos)

    if streams.get(JOINT_COMMANDS):
        cmd_t, cmd_msgs = _sorted_stream(streams[JOINT_COMMANDS])
        cmd_arm, cmd_fingers = _joint_rows(cmd_msgs, "position")
        cidx = _prev_index(cmd_t, grid)
        cmd_q = cmd_arm[cidx]
        cmd_width = _finger_width(cmd_fingers[cidx])
        cmd_width = np.where(np.isnan(cmd_width), gripper_width, cmd_width)
    else:
        nxt = np.minimum(np.arange(n) + 1, n - 1)
        cmd_q, cmd_width = joint_pos[nxt], gripper_width[nxt]

    from llm_trainer.motion.kinematics import PandaKinematics

    fk = PandaKinematics()
    target = [fk.forward(q) for q in cmd_q]
    target_pos = np.array([p for p, _ in target])
    target_rot = np.array([r for _, r in target])
    measured = [fk.forward(q) for q in joint_pos]
    meas_pos = np.array([p for p, _ in measured])
    meas_rot = np.array([r for _, r in measured])

    ee_pos, ee_quat = meas_pos, _rotation_to_quat_xyzw(meas_rot)
    if streams.get(EE_POSE):
        ee_t, ee_msgs = _sorted_stream(streams[EE_POSE])
        p = np.array([[m.pose.position.x, m.pose.position.y, m.pose.position.z] for m in ee_msgs])
        q = np.array(
            [[m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w] for m in ee_msgs]
        )
        eidx = _prev_index(ee_t, grid)
        ee_pos, ee_quat = p[eidx], q[eidx]

    object_names: list[str] = []
    object_poses = np.zeros((n, 0, 4))
    if streams.get(SCENE):
        sc_t, sc_msgs = _sorted_stream(streams[SCENE])
        for msg in sc_msgs:
            for obj in msg.objects:
                if obj.name not in object_names:
                    object_names.append(obj.name)
        col = {name: k for k, name in enumerate(object_names)}
        # NaN where an object is absent from a scene message (e.g. perception lost it).
        table = np.full((len(sc_msgs), len(object_names), 4), np.nan)
        for row, msg in enumerate(sc_msgs):
            for obj in msg.objects:
                table[row, col[obj.name]] = (obj.position.x, obj.position.y, obj.position.z, obj.yaw)
        object_poses = table[_prev_index(sc_t, grid)]

    primitive_index = np.full(n, -1, dtype=np.int64)
    if streams.get(PRIMITIVE_EVENTS):
        ev_t, ev_msgs = _sorted_stream(streams[PRIMITIVE_EVENTS])
        starts = [(t, int(m.index)) for t, m in zip(ev_t, ev_msgs) if int(m.status.status) == 1]  # RUNNING
        if starts:
            st = np.array([t for t, _ in starts], dtype=np.int64)
            si = np.array([i for _, i in starts], dtype=np.int64)
            pos = np.searchsorted(st, grid, side="right") - 1
            primitive_index = np.where(pos >= 0, si[np.clip(pos, 0, None)], -1)

    rel = target_rot @ np.transpose(meas_rot, (0, 2, 1))
    actions = {
        "joint_pos": np.concatenate([cmd_q, cmd_width], axis=1),
        "ee_pose_abs": np.concatenate([target_pos, rotation_to_axis_angle(target_rot), cmd_width], axis=1),
        "ee_pose_delta": np.concatenate([target_pos - meas_pos, rotation_to_axis_angle(rel), cmd_width], axis=1),
    }

    from llm_trainer.sensors.image_codec import decode_color, decode_depth

    color_frames: dict[str, np.ndarray] = {}
    depth_frames: dict[str, np.ndarray] = {}
    camera_models: dict[str, Any] = {}
    for (cam, kind), topic in sorted(camera_streams.items()):
        items = streams.get(topic)
        if not items:
            continue
        t, msgs = _sorted_stream(items)
        if kind in ("color_compressed", "depth_compressed"):
            iidx = _prev_index(t, grid)
            decode = decode_color if kind == "color_compressed" else decode_depth
            # Decode each distinct frame once; grid steps usually outnumber camera frames.
            frames = {i: decode(msgs[i].format, msgs[i].data) for i in np.unique(iidx)}
            stack = np.stack([frames[i] for i in iidx])
            (color_frames if kind == "color_compressed" else depth_frames)[cam] = stack
        elif kind == "camera_info":
            info = msgs[-1]
            camera_models.setdefault(cam, {}).update(
                width=int(info.width), height=int(info.height), K=np.asarray(info.k, float).reshape(3, 3)
            )
        elif kind == "extrinsics":
            tf = msgs[-1].transform
            camera_models.setdefault(cam, {}).update(
                position=np.array([tf.translation.x, tf.translation.y, tf.translation.z]),
                rotation=quaternion_to_rotation([tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w]),
            )
    cameras_out = {
        cam: CameraModel(cam, m["width"], m["height"], m["K"], m["position"], m["rotation"]).to_dict()
        for cam, m in camera_models.items()
        if {"width", "K", "position"} <= set(m)
    }

    meta = read_episode_metadata(bag_path)
    record = meta.get("record") if isinstance(meta.get("record"), dict) else {}
    seed = record.get("seed", meta.get("seed", -1))
    return EpisodeData(
        episode_id=str(record.get("episode_id", meta.get("episode_id", bag_path.name))),
        task=str(record.get("task", meta.get("task", ""))),
        instruction=str(record.get("instruction", meta.get("instruction", ""))),
        seed=int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else -1,
        success=bool(meta.get("success", record.get("success", False))),
        fps=float(rate_hz),
        timestamps=(grid - grid[0]) / 1e9,
        obs={
            "joint_pos": joint_pos,
            "joint_vel": joint_vel,
            "gripper_width": gripper_width,
            "ee_pos": ee_pos,
            "ee_quat": ee_quat,
            "object_poses": object_poses,
        },
        actions=actions,
        object_names=object_names,
        images=color_frames,
        depth=depth_frames,
        datagen={
            "target_ee_pos": target_pos,
            "target_ee_quat": _rotation_to_quat_xyzw(target_rot),
            "gripper_command": cmd_width,
            "primitive_index": primitive_index,
        },
        record=record,
        cameras=cameras_out,
        bag_path=str(bag_path),
    )
