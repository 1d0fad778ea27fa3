"""Episodes in robomimic's HDF5 layout, one demo appended at a time (ROS-free: rosbags + numpy + h5py).

Layout (robomimic's, plus our per-episode provenance)::

    data                      attrs: total (samples over all demos), env_args (JSON)
    data/demo_N               attrs: num_samples, task, seed, instruction, success, plan_json, scene_json,
                                     episode_id, bag_path, provenance_json, object_names, aborted
        actions               (N, 8)  7 commanded joint positions + commanded gripper width [rad, m]
        obs/joint_pos         (N, 7)
        obs/joint_vel         (N, 7)
        obs/gripper_width     (N, 1)  distance between the fingers [m]
        obs/ee_pos            (N, 3)
        obs/ee_quat           (N, 4)  x, y, z, w
        obs/object_poses      (N, K, 4) x, y, z, yaw per object, in the order of attr object_names
        obs/<camera>_rgb      (N, H, W, 3) uint8, only when images are included
        timestamps            (N,)    simulation time since the first joint state [s]
        dones                 (N,)    1 at the last step
        rewards               (N,)    1 at the last step of a successful demo, else 0
    mask/successful, mask/failed      demo names (bytes); failures are kept and marked, never dropped

Each append opens the file, writes one demo, flushes and closes it: a crash loses at most the demo in
flight. HDF5 has no journal, so a crash *inside* the write can still damage the file; keep the bags,
they are the source of truth and can be converted again.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from llm_trainer.recording.bag_reader import read_episode_bag, read_episode_metadata

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")

JOINT_STATES = "/joint_states"
JOINT_COMMANDS = "/joint_commands"
EE_POSE = "/ee_pose"
SCENE = "/scene/ground_truth"
_CAMERA_COLOR_RE = re.compile(r"^/cameras/([^/]+)/color$")

_DEMO_RE = re.compile(r"^demo_(\d+)$")


class DatasetError(ValueError):
    """An episode cannot be converted or written."""


@dataclass
class EpisodeArrays:
    """One episode on a fixed time grid, ready for ``RobomimicWriter.append``."""

    actions: np.ndarray  # (N, 8)
    joint_pos: np.ndarray  # (N, 7)
    joint_vel: np.ndarray  # (N, 7)
    gripper_width: np.ndarray  # (N, 1)
    ee_pos: np.ndarray  # (N, 3)
    ee_quat: np.ndarray  # (N, 4) xyzw
    object_poses: np.ndarray  # (N, K, 4)
    object_names: list[str] = field(default_factory=list)
    timestamps: np.ndarray | None = None  # (N,) seconds
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> (N, H, W, 3) uint8
    success: bool = False
    aborted: bool = False
    task: str = ""
    seed: int = -1
    instruction: str = ""
    plan: Any = field(default_factory=list)
    scene: Any = field(default_factory=dict)
    episode_id: str = ""
    bag_path: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(np.asarray(self.actions).shape[0])

    def validate(self) -> None:
        """Raise ``DatasetError`` on inconsistent shapes, before anything touches the file."""
        n = self.num_samples
        if n < 1:
            raise DatasetError("an episode needs at least one sample")
        k = len(self.object_names)
        expected = {
            "actions": (n, 8),
            "joint_pos": (n, 7),
            "joint_vel": (n, 7),
            "gripper_width": (n, 1),
            "ee_pos": (n, 3),
            "ee_quat": (n, 4),
            "object_poses": (n, k, 4),
        }
        for name, shape in expected.items():
            got = np.asarray(getattr(self, name)).shape
            if got != shape:
                raise DatasetError(f"{name} has shape {got}, expected {shape}")
        if self.timestamps is not None and np.asarray(self.timestamps).shape != (n,):
            raise DatasetError(f"timestamps has shape {np.asarray(self.timestamps).shape}, expected ({n},)")
        for cam, frames in self.images.items():
            arr = np.asarray(frames)
            if arr.ndim != 4 or arr.shape[0] != n or arr.shape[3] != 3 or arr.dtype != np.uint8:
                raise DatasetError(f"images[{cam!r}] must be uint8 (N={n}, H, W, 3), got {arr.dtype} {arr.shape}")


def make_env_args(simulator: str = "mujoco", task: str = "", config: dict[str, Any] | None = None) -> dict[str, Any]:
    """``data.attrs['env_args']`` content: robomimic's keys (env_name, env_kwargs) plus ours."""
    return {
        "env_name": task or "llm_trainer",
        "env_kwargs": dict(config or {}),
        "simulator": simulator,
        "task": task,
        "config": dict(config or {}),
    }


class RobomimicWriter:
    """Append episodes to a robomimic-layout HDF5 file, continuing the numbering of existing demos."""

    def __init__(self, path: Path | str, env_args: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.env_args = env_args
        if self.path.exists():
            # Fail now, not at the first append, if the file is not HDF5 or not our layout.
            with h5py.File(self.path, "r") as f:
                if "data" in f and not isinstance(f["data"], h5py.Group):
                    raise DatasetError(f"{self.path}: 'data' is not a group")

    def demo_names(self) -> list[str]:
        if not self.path.exists():
            return []
        with h5py.File(self.path, "r") as f:
            return _sorted_demos(f["data"]) if "data" in f else []

    @property
    def num_demos(self) -> int:
        return len(self.demo_names())

    def append(self, episode: EpisodeArrays) -> str:
        """Write one demo; returns its name (``demo_N``). On any error, earlier demos are untouched."""
        episode.validate()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(self.path, "a") as f:
            data = f.require_group("data")
            if "env_args" not in data.attrs:
                env_args = self.env_args or make_env_args(task=episode.task)
                data.attrs["env_args"] = json.dumps(env_args)
            existing = _sorted_demos(data)
            index = max((int(_DEMO_RE.match(n).group(1)) for n in existing), default=-1) + 1
            name = f"demo_{index}"
            try:
                _write_demo(data.create_group(name), episode)
            except BaseException:
                # Remove the half-written group so the file lists only complete demos.
                if name in data:
                    del data[name]
                raise
            _update_index(f)
            f.flush()
        return name


def _sorted_demos(data: h5py.Group) -> list[str]:
    names = [n for n in data.keys() if _DEMO_RE.match(n)]
    return sorted(names, key=lambda n: int(_DEMO_RE.match(n).group(1)))


def _write_demo(grp: h5py.Group, ep: EpisodeArrays) -> None:
    n = ep.num_samples
    grp.attrs["num_samples"] = n
    grp.attrs["task"] = ep.task
    grp.attrs["seed"] = int(ep.seed)
    grp.attrs["instruction"] = ep.instruction
    grp.attrs["success"] = bool(ep.success)
    grp.attrs["aborted"] = bool(ep.aborted)
    grp.attrs["plan_json"] = json.dumps(ep.plan)
    grp.attrs["scene_json"] = json.dumps(ep.scene)
    grp.attrs["episode_id"] = ep.episode_id
    grp.attrs["bag_path"] = ep.bag_path
    grp.attrs["provenance_json"] = json.dumps(ep.provenance, default=str)
    grp.attrs["object_names"] = json.dumps(list(ep.object_names))
    grp.create_dataset("actions", data=np.asarray(ep.actions, dtype=np.float64))
    obs = grp.create_group("obs")
    obs.create_dataset("joint_pos", data=np.asarray(ep.joint_pos, dtype=np.float64))
    obs.create_dataset("joint_vel", data=np.asarray(ep.joint_vel, dtype=np.float64))
    obs.create_dataset("gripper_width", data=np.asarray(ep.gripper_width, dtype=np.float64))
    obs.create_dataset("ee_pos", data=np.asarray(ep.ee_pos, dtype=np.float64))
    obs.create_dataset("ee_quat", data=np.asarray(ep.ee_quat, dtype=np.float64))
    poses = obs.create_dataset("object_poses", data=np.asarray(ep.object_poses, dtype=np.float64))
    poses.attrs["object_names"] = json.dumps(list(ep.object_names))
    poses.attrs["columns"] = "x, y, z, yaw"
    for cam, frames in sorted(ep.images.items()):
        arr = np.asarray(frames, dtype=np.uint8)
        # One chunk per frame: training loaders read frames at random; gzip roughly halves rendered images.
        obs.create_dataset(f"{cam}_rgb", data=arr, chunks=(1, *arr.shape[1:]), compression="gzip", compression_opts=4)
    if ep.timestamps is not None:
        grp.create_dataset("timestamps", data=np.asarray(ep.timestamps, dtype=np.float64))
    dones = np.zeros(n, dtype=np.int64)
    dones[-1] = 1
    rewards = np.zeros(n, dtype=np.float64)
    rewards[-1] = 1.0 if ep.success else 0.0
    grp.create_dataset("dones", data=dones)
    grp.create_dataset("rewards", data=rewards)


def _update_index(f: h5py.File) -> None:
    """Recompute data.attrs['total'] and the masks from the demos present (robust to resumed files)."""
    data = f["data"]
    demos = _sorted_demos(data)
    data.attrs["total"] = int(sum(int(data[n].attrs["num_samples"]) for n in demos))
    successful = [n for n in demos if bool(data[n].attrs.get("success", False))]
    failed = [n for n in demos if not bool(data[n].attrs.get("success", False))]
    mask = f.require_group("mask")
    for key, names in (("successful", successful), ("failed", failed)):
        if key in mask:
            del mask[key]
        # robomimic reads masks as fixed-length byte strings and decodes them.
        mask.create_dataset(key, data=np.array([n.encode() for n in names], dtype="S") if names else np.array([], "S1"))


def read_demo(path: Path | str, demo: str) -> EpisodeArrays:
    """Load one demo back into ``EpisodeArrays`` (for tests, inspection and re-export)."""
    with h5py.File(path, "r") as f:
        grp = f["data"][demo]
        obs = grp["obs"]
        a = grp.attrs
        images = {k[: -len("_rgb")]: obs[k][()] for k in obs if k.endswith("_rgb")}
        return EpisodeArrays(
            actions=grp["actions"][()],
            joint_pos=obs["joint_pos"][()],
            joint_vel=obs["joint_vel"][()],
            gripper_width=obs["gripper_width"][()],
            ee_pos=obs["ee_pos"][()],
            ee_quat=obs["ee_quat"][()],
            object_poses=obs["object_poses"][()],
            object_names=json.loads(a.get("object_names", "[]")),
            timestamps=grp["timestamps"][()] if "timestamps" in grp else None,
            images=images,
            success=bool(a["success"]),
            aborted=bool(a.get("aborted", False)),
            task=str(a["task"]),
            seed=int(a["seed"]),
            instruction=str(a["instruction"]),
            plan=json.loads(a["plan_json"]),
            scene=json.loads(a["scene_json"]),
            episode_id=str(a["episode_id"]),
            bag_path=str(a["bag_path"]),
            provenance=json.loads(a["provenance_json"]),
        )


# --------------------------------------------------------------------------- bag -> arrays


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
    pairs = sorted(((_stamp_ns(m, t), i) for i, (t, m) in enumerate(items)))
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


def _image_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 for rgb8 / bgr8 / rgba8 / bgra8."""
    enc = str(msg.encoding).lower()
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4}.get(enc)
    if channels is None:
        raise DatasetError(f"unsupported image encoding {msg.encoding!r} (want rgb8, bgr8, rgba8 or bgra8)")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    # Rows may be padded to `step` bytes.
    rows = np.asarray(msg.data, dtype=np.uint8).reshape(h, step)[:, : w * channels]
    img = rows.reshape(h, w, channels)[:, :, :3]
    return img[:, :, ::-1].copy() if enc.startswith("bgr") else img.copy()


def episode_from_bag(
    bag_path: Path | str,
    rate_hz: float = 10.0,
    *,
    include_images: bool = False,
    cameras: list[str] | None = None,
) -> EpisodeArrays:
    """Resample an episode bag onto a ``rate_hz`` grid spanning its ``/joint_states``.

    Each grid time takes the latest sample at or before it on every topic (the first sample when a topic
    starts later). Times are header stamps (simulation time). Metadata (task, seed, plan, success, ...)
    comes from the episode's ``metadata.json``. A missing ``/joint_commands`` makes the action the next
    observed joint state; a missing ``/ee_pose`` leaves NaN; a missing scene gives K = 0 objects.
    """
    if not (rate_hz > 0 and math.isfinite(rate_hz)):
        raise DatasetError(f"rate_hz must be a positive number, got {rate_hz}")
    bag_path = Path(bag_path)
    state_topics = [JOINT_STATES, JOINT_COMMANDS, EE_POSE, SCENE]
    camera_topics: dict[str, str] = {}
    if include_images:
        from llm_trainer.recording.bag_reader import bag_topic_types

        for topic in bag_topic_types(bag_path):
            m = _CAMERA_COLOR_RE.match(topic)
            if m and (cameras is None or m.group(1) in cameras):
                camera_topics[m.group(1)] = topic
    streams = read_episode_bag(bag_path, state_topics + list(camera_topics.values()))
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
        cmd_width = _finger_width(cmd_fingers[cidx])
        cmd_width = np.where(np.isnan(cmd_width), gripper_width, cmd_width)
        actions = np.concatenate([cmd_arm[cidx], cmd_width], axis=1)
    else:
        nxt = np.minimum(np.arange(n) + 1, n - 1)
        actions = np.concatenate([joint_pos[nxt], gripper_width[nxt]], axis=1)

    ee_pos = np.full((n, 3), np.nan)
    ee_quat = np.full((n, 4), np.nan)
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

    images: dict[str, np.ndarray] = {}
    for cam, topic in sorted(camera_topics.items()):
        if not streams.get(topic):
            continue
        im_t, im_msgs = _sorted_stream(streams[topic])
        iidx = _prev_index(im_t, grid)
        # Convert each distinct frame once; grid steps usually outnumber camera frames.
        frames = {i: _image_rgb(im_msgs[i]) for i in np.unique(iidx)}
        images[cam] = np.stack([frames[i] for i in iidx])

    meta = read_episode_metadata(bag_path)
    seed = meta.get("seed", -1)
    return EpisodeArrays(
        actions=actions,
        joint_pos=joint_pos,
        joint_vel=joint_vel,
        gripper_width=gripper_width,
        ee_pos=ee_pos,
        ee_quat=ee_quat,
        object_poses=object_poses,
        object_names=object_names,
        timestamps=(grid - grid[0]) / 1e9,
        images=images,
        success=bool(meta.get("success", False)),
        aborted=bool(meta.get("aborted", False)),
        task=str(meta.get("task", "")),
        seed=int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else -1,
        instruction=str(meta.get("instruction", "")),
        plan=meta.get("plan", []),
        scene=meta.get("scene", {}),
        episode_id=str(meta.get("episode_id", bag_path.name)),
        bag_path=str(bag_path),
        provenance=meta.get("provenance", {}),
    )


def export_episode(
    bag_path: Path | str,
    dataset_path: Path | str,
    *,
    rate_hz: float = 10.0,
    include_images: bool = False,
    env_args: dict[str, Any] | None = None,
) -> str:
    """Convert one episode bag and append it to a robomimic HDF5 file; returns the demo name."""
    episode = episode_from_bag(bag_path, rate_hz, include_images=include_images)
    return RobomimicWriter(dataset_path, env_args=env_args).append(episode)
