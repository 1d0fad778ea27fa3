"""Episodes as a LeRobot dataset, format v3.0 (pyarrow + PyAV + numpy; the lerobot package is not needed).

The output loads in lerobot's own reader (``LeRobotDataset(repo_id, root=out)``, checked against
lerobot 0.4.4 by ``test/lerobot_reader_check.py`` in the side venv of ``scripts/reader_venvs.sh``).

Layout written (episodes are concatenated into one file per chunk, as v3.0 does)::

    meta/info.json                                  codebase_version "v3.0", fps, totals, features, path templates
    meta/stats.json                                 per-feature min/max/mean/std/count/q01..q99 over all frames
    meta/tasks.parquet                              task (the pandas index) -> task_index; task = ep.instruction
    meta/episodes/chunk-000/file-000.parquet        one row per episode: episode_index, tasks, length,
                                                    dataset_from_index/to_index, data/chunk_index, data/file_index,
                                                    videos/<key>/{chunk_index,file_index,from_timestamp,to_timestamp},
                                                    stats/<feature>/<stat>, meta/episodes/{chunk,file}_index,
                                                    llm_trainer/{episode_id,task,seed,success,bag_path,record}
    meta/llm_trainer_episodes.jsonl                 provenance, one line per episode (episode_id, seed, success,
                                                    task, instruction, record, cameras, object_names, bag_path)
    data/chunk-000/file-000.parquet                 one row per frame: observation.state, action, timestamp,
                                                    frame_index, episode_index, index, task_index
    videos/observation.images.<camera>/chunk-000/file-000.mp4

Frames
    ``observation.state`` = ``ep.obs[k]`` for ``k`` in ``state_keys``, each flattened to (N, D_k) and
    concatenated, float32, with one name per component (``joint_pos_0..6``, ``gripper_width``,
    ``ee_pos_x``, ``ee_quat_w``, ``<object>_yaw`` ...). ``action`` = ``ep.actions[action_space]``, float32,
    names ``<action_space>_<i>``. ``timestamp`` is written as ``frame_index / fps`` (the episode's grid;
    ``ep.timestamps`` must agree with it to a quarter of a frame), because lerobot looks video frames up
    by ``from_timestamp + timestamp`` with a 1e-4 s tolerance.

Videos
    One mp4 per camera and file, frames of all its episodes back to back with pts = frame number in the
    file (time base 1/fps), so episode ``e`` occupies ``[from_timestamp, to_timestamp)`` there. Codec:
    ``vcodec="auto"`` takes the first of libx264 (H.264), mpeg4 (MPEG-4 part 2) and libsvtav1 (AV1,
    lerobot's own default; last, see VCODEC_PREFERENCE) that the installed PyAV can open as an encoder; all three are
    decoded by torchcodec with Debian 12's FFmpeg 5.1 (libdav1d / h264 / mpeg4 decoders). yuv420p, a key
    frame every 2 frames (lerobot's g=2: cheap random access), no B-frames. Frame width and height must be
    even (4:2:0 chroma).

Not exported
    Depth (``ep.depth``) is NOT written: LeRobot v3.0 has no lossless 16-bit depth feature that its
    reader decodes (videos are 8-bit yuv420p), and a lossy 8-bit depth video would silently lose the
    millimetres. ``ep.datagen`` and ``ep.obs`` keys outside ``state_keys`` are not written either (the
    robomimic exporter keeps them); the record JSON is kept in the provenance.

Files roll over to ``file-001`` ... (and ``chunk-001`` after 1000 files) at episode boundaries when a
data file passes ~100 MB or a video file 200 MB, as lerobot's writer does. The dataset is built in
``<out>.partial`` and renamed to ``out`` only when complete; an existing ``out`` is never touched.

Imports: numpy, pyarrow and the standard library at import time; PyAV only when a video is written;
``EpisodeData`` only for type checking, so this file imports without the project installed.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from llm_trainer.datasets.episode_data import EpisodeData

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_FILE_SIZE_IN_MB = 100
VIDEO_FILE_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
PROVENANCE_PATH = "meta/llm_trainer_episodes.jsonl"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
#: libx264 first: FFmpeg's libsvtav1 (lerobot's own default) switches the calling thread to SCHED_FIFO
#: priority 99 when it may (as root), and every process started from it afterwards inherits that
#: (measured here: the node graph's busy loops then starved the simulator). ``_keep_scheduling``
#: restores the policy whichever encoder runs.
VCODEC_PREFERENCE = ("libx264", "mpeg4", "libsvtav1")
MAX_STAT_FRAMES = 100  # image stats: at most this many frames per episode, each downsampled to ~150 px
STAT_IMAGE_SIZE = 150

#: component names for the known low-dimensional observations (others get <key>_<i>)
_COMPONENT_SUFFIXES = {
    "ee_pos": ("x", "y", "z"),
    "ee_quat": ("x", "y", "z", "w"),
    "target_ee_pos": ("x", "y", "z"),
    "target_ee_quat": ("x", "y", "z", "w"),
}
_OBJECT_POSE_SUFFIXES = ("x", "y", "z", "yaw")


class LeRobotExportError(ValueError):
    """The episodes cannot be written as one LeRobot dataset (inconsistent shapes, fps, ...)."""


# ----------------------------------------------------------------------------------------------------
# public API


def write_lerobot_dataset(
    episodes: Iterable[EpisodeData],
    out: Path,
    *,
    fps: float | None = None,
    action_space: str = "joint_pos",
    state_keys: tuple[str, ...] | list[str] = ("joint_pos", "gripper_width"),
    include_images: bool = True,
    robot_type: str = "franka_panda",
    repo_id: str = "local/llm_trainer",
    vcodec: str = "auto",
) -> dict[str, Any]:
    """Write ``episodes`` (consumed once, one at a time) as a LeRobot v3.0 dataset at ``out``.

    ``fps`` defaults to the first episode's ``fps``; every episode must be on that grid. ``vcodec`` is
    ``"auto"`` (see the module docstring) or a PyAV encoder name. ``repo_id`` is recorded in the
    summary only (LeRobot takes it from the caller of ``LeRobotDataset``). Returns a summary:
    ``{"path", "repo_id", "episodes", "frames", "tasks", "fps", "vcodec", "cameras", "files"}`` with
    ``files`` relative to ``out``. Raises ``FileExistsError`` if ``out`` exists and
    ``LeRobotExportError`` (a ``ValueError``) for inconsistent input; nothing is left at ``out`` then.
    No episodes at all: nothing is created and the summary says ``"episodes": 0``.
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(
            f"LeRobot dataset {out} already exists; refusing to overwrite it (remove it or pick another path)"
        )
    partial = out.with_name(out.name + ".partial")
    if partial.exists():  # a crashed earlier export into the same place: ours, safe to drop
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    with _keep_scheduling():
        return _write(
            episodes, out, partial, fps, action_space, state_keys, include_images, robot_type, repo_id, vcodec
        )


def _keep_scheduling():
    """Restore this thread's scheduling policy afterwards (libsvtav1 raises it to SCHED_FIFO 99 as root)."""
    import contextlib
    import os

    @contextlib.contextmanager
    def guard():
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
        try:
            yield
        finally:
            if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
                os.sched_setscheduler(0, policy, param)

    return guard()


def _write(episodes, out, partial, fps, action_space, state_keys, include_images, robot_type, repo_id, vcodec):
    try:
        writer = _DatasetWriter(
            partial,
            fps=fps,
            action_space=action_space,
            state_keys=tuple(state_keys),
            include_images=include_images,
            robot_type=robot_type,
            vcodec=vcodec,
        )
        try:
            for ep in episodes:
                writer.add_episode(ep)
        finally:
            writer.close()
        if not writer.episode_rows:  # nothing to write: LeRobot cannot load an empty dataset, so make none
            shutil.rmtree(partial, ignore_errors=True)
            return {
                "path": str(out),
                "repo_id": repo_id,
                "episodes": 0,
                "frames": 0,
                "tasks": 0,
                "fps": writer.fps,
                "vcodec": None,
                "cameras": [],
                "files": [],
            }
        summary = writer.finish()
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():  # appeared while we were writing
        shutil.rmtree(partial, ignore_errors=True)
        raise FileExistsError(f"LeRobot dataset {out} appeared during the export; refusing to overwrite it")
    partial.rename(out)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return {"path": str(out), "repo_id": repo_id, **summary, "files": files}


# ----------------------------------------------------------------------------------------------------
# schema helpers


def _as_2d(arr: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 0:
        raise LeRobotExportError(f"{what} is a scalar, expected one row per sample")
    return arr.reshape(arr.shape[0], -1)


def _component_names(key: str, arr: np.ndarray, object_names: list[str]) -> list[str]:
    arr = np.asarray(arr)
    width = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
    if width == 1:
        return [key]
    if key == "object_poses" and arr.ndim == 3 and arr.shape[2] == 4 and len(object_names) == arr.shape[1]:
        return [f"{obj}_{c}" for obj in object_names for c in _OBJECT_POSE_SUFFIXES]
    suffixes = _COMPONENT_SUFFIXES.get(key)
    if suffixes is not None and len(suffixes) == width:
        return [f"{key}_{s}" for s in suffixes]
    return [f"{key}_{i}" for i in range(width)]


def _normalise_fps(value: float) -> int | float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise LeRobotExportError(f"fps must be a positive number, got {value}")
    return int(round(value)) if abs(value - round(value)) < 1e-9 else value


def _fixed_list(values: np.ndarray, dtype: pa.DataType) -> pa.Array:
    values = np.ascontiguousarray(values)
    width = values.shape[1]
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=dtype), width)


# ----------------------------------------------------------------------------------------------------
# statistics (same keys and shapes as lerobot's: vectors (D,), scalars (1,), images (3, 1, 1) in [0, 1])


def _vector_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    stats = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([x.shape[0]], dtype=np.int64),
    }
    for q in QUANTILES:
        stats[f"q{int(round(q * 100)):02d}"] = np.quantile(x, q, axis=0)
    return stats


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    n, h, w, _ = frames.shape
    idx = np.unique(np.linspace(0, n - 1, min(n, MAX_STAT_FRAMES)).round().astype(int))
    stride = max(1, int(math.ceil(max(h, w) / STAT_IMAGE_SIZE)))
    sample = frames[idx, ::stride, ::stride, :].reshape(-1, 3).astype(np.float64) / 255.0
    stats = _vector_stats(sample)
    stats = {k: (v if k == "count" else v.reshape(3, 1, 1)) for k, v in stats.items()}
    stats["count"] = np.array([len(idx)], dtype=np.int64)
    return stats


def _aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    total = counts.sum()
    shape = (-1,) + (1,) * per_episode[0]["mean"].ndim
    w = counts.reshape(shape)
    means = np.stack([s["mean"] for s in per_episode])
    variances = np.stack([s["std"] ** 2 for s in per_episode])
    mean = (means * w).sum(axis=0) / total
    var = ((variances + (means - mean) ** 2) * w).sum(axis=0) / total
    agg = {
        "min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
        "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(total)], dtype=np.int64),
    }
    for key in per_episode[0]:
        if key.startswith("q"):  # count-weighted mean of the episodes' quantiles (an approximation)
            agg[key] = (np.stack([s[key] for s in per_episode]) * w).sum(axis=0) / total
    return agg


# ----------------------------------------------------------------------------------------------------
# video


def _pick_vcodec(requested: str) -> str:
    import av

    candidates = VCODEC_PREFERENCE if requested == "auto" else (requested,)
    for name in candidates:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several types for an unknown encoder
            continue
        return name
    raise LeRobotExportError(f"no usable video encoder among {list(candidates)} in this PyAV build")


def _codec_options(vcodec: str) -> dict[str, str]:
    if vcodec == "libsvtav1":
        return {"g": "2", "crf": "30", "preset": "8"}
    if vcodec in ("libx264", "h264"):
        return {"g": "2", "crf": "23", "preset": "medium", "bf": "0"}
    if vcodec == "mpeg4":
        return {"g": "2", "qscale": "3", "bf": "0"}
    return {"g": "2"}


class _VideoFile:
    """One open mp4 of one camera; frames get pts = frame number in the file (time base 1/fps)."""

    def __init__(self, path: Path, vcodec: str, rate: Fraction, width: int, height: int):
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.frames = 0
        self.bytes = 0  # encoded so far (the muxer and the encoder buffer, so the file on disk lags)
        self._av = av
        self._container = av.open(str(path), "w")
        self._stream = self._container.add_stream(vcodec, rate=rate, options=_codec_options(vcodec))
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = 1 / rate
        self._time_base = 1 / rate

    def write(self, frames: np.ndarray) -> None:
        for img in frames:
            frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.frames
            frame.time_base = self._time_base
            self._mux(self._stream.encode(frame))
            self.frames += 1

    def _mux(self, packets: list) -> None:
        self.bytes += sum(p.size for p in packets)
        self._container.mux(packets)

    def size_in_mb(self) -> float:
        return max(self.bytes, self.path.stat().st_size if self.path.exists() else 0) / (1024**2)

    def close(self) -> None:
        if self._container is None:
            return
        try:
            self._mux(self._stream.encode(None))
        finally:
            self._container.close()
            self._container = None


def _next_file(chunk: int, file: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


# ----------------------------------------------------------------------------------------------------
# the writer


class _DatasetWriter:
    def __init__(
        self,
        root: Path,
        *,
        fps: float | None,
        action_space: str,
        state_keys: tuple[str, ...],
        include_images: bool,
        robot_type: str,
        vcodec: str,
    ):
        if not state_keys:
            raise LeRobotExportError("state_keys is empty: observation.state needs at least one key")
        self.root = root
        self.fps = _normalise_fps(fps) if fps is not None else None
        self.action_space = action_space
        self.state_keys = state_keys
        self.include_images = include_images
        self.robot_type = robot_type
        self.vcodec_request = vcodec
        self.vcodec: str | None = None
        self.features: dict[str, dict[str, Any]] | None = None
        self.cameras: list[str] = []
        self.tasks: dict[str, int] = {}
        self.episode_rows: list[dict[str, Any]] = []
        self.episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self.provenance: Any = None  # opened with the schema, in meta/
        self.total_frames = 0
        # data parquet state
        self._data_writer: pq.ParquetWriter | None = None
        self._data_loc = (0, 0)
        self._data_mb = 0.0
        self._schema: pa.Schema | None = None
        # video state per camera
        self._videos: dict[str, _VideoFile] = {}
        self._video_loc: dict[str, tuple[int, int]] = {}

    # -- schema from the first episode ------------------------------------------------------------

    def _init_schema(self, ep: EpisodeData) -> None:
        if self.fps is None:
            self.fps = _normalise_fps(ep.fps)
        state_names: list[str] = []
        for k in self.state_keys:
            if k not in ep.obs:
                raise LeRobotExportError(f"episode {ep.episode_id}: no observation {k!r} (has {sorted(ep.obs)})")
            state_names += _component_names(k, ep.obs[k], list(ep.object_names))
        if self.action_space not in ep.actions:
            raise LeRobotExportError(
                f"episode {ep.episode_id}: no action space {self.action_space!r} (has {sorted(ep.actions)})"
            )
        action_dim = _as_2d(ep.actions[self.action_space], "action").shape[1]
        features: dict[str, dict[str, Any]] = {
            "observation.state": {"dtype": "float32", "shape": [len(state_names)], "names": state_names},
            "action": {
                "dtype": "float32",
                "shape": [action_dim],
                "names": [f"{self.action_space}_{i}" for i in range(action_dim)],
            },
        }
        if self.include_images:
            self.cameras = sorted(ep.images)
            if self.cameras:
                self.vcodec = _pick_vcodec(self.vcodec_request)
            for cam in self.cameras:
                imgs = np.asarray(ep.images[cam])
                if imgs.ndim != 4 or imgs.shape[3] != 3:
                    raise LeRobotExportError(f"camera {cam}: images must be (N, H, W, 3), got {imgs.shape}")
                _, h, w, _ = imgs.shape
                if h % 2 or w % 2:
                    raise LeRobotExportError(f"camera {cam}: {w}x{h} has an odd side; yuv420p needs even sides")
                features[f"observation.images.{cam}"] = {
                    "dtype": "video",
                    "shape": [h, w, 3],
                    "names": ["height", "width", "channels"],
                    "info": {},  # filled in finish() from the first file
                }
        for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
            features[key] = {"dtype": "float32" if key == "timestamp" else "int64", "shape": [1], "names": None}
        self.features = features
        self._schema = pa.schema(
            [
                ("observation.state", pa.list_(pa.float32(), len(state_names))),
                ("action", pa.list_(pa.float32(), action_dim)),
                ("timestamp", pa.float32()),
                ("frame_index", pa.int64()),
                ("episode_index", pa.int64()),
                ("index", pa.int64()),
                ("task_index", pa.int64()),
            ]
        )
        (self.root / "meta").mkdir(parents=True, exist_ok=True)
        self.provenance = (self.root / PROVENANCE_PATH).open("w", encoding="utf-8")

    # -- one episode ------------------------------------------------------------------------------

    def add_episode(self, ep: EpisodeData) -> None:
        if self.features is None:
            self._init_schema(ep)
        assert self.features is not None and self._schema is not None
        n = int(np.asarray(ep.timestamps).shape[0])
        ep_index = len(self.episode_rows)
        where = f"episode {ep_index} ({ep.episode_id})"
        if n == 0:
            raise LeRobotExportError(f"{where} has no samples")
        if abs(float(ep.fps) - float(self.fps)) > 1e-6:
            raise LeRobotExportError(f"{where}: fps {ep.fps} differs from the dataset's {self.fps}")
        grid = np.arange(n, dtype=np.float64) / float(self.fps)
        drift = float(np.max(np.abs(np.asarray(ep.timestamps, dtype=np.float64) - grid)))
        if drift > 0.25 / float(self.fps):
            raise LeRobotExportError(f"{where}: timestamps are off the {self.fps} Hz grid by up to {drift:.4f} s")

        parts = []
        for k in self.state_keys:
            if k not in ep.obs:
                raise LeRobotExportError(f"{where}: no observation {k!r}")
            arr = _as_2d(ep.obs[k], f"obs[{k!r}]")
            if arr.shape[0] != n:
                raise LeRobotExportError(f"{where}: obs[{k!r}] has {arr.shape[0]} rows, expected {n}")
            parts.append(arr.astype(np.float32))
        state = np.concatenate(parts, axis=1)
        if state.shape[1] != self.features["observation.state"]["shape"][0]:
            raise LeRobotExportError(f"{where}: state width {state.shape[1]} differs from the first episode's")
        if self.action_space not in ep.actions:
            raise LeRobotExportError(f"{where}: no action space {self.action_space!r}")
        action = _as_2d(ep.actions[self.action_space], "action").astype(np.float32)
        if action.shape != (n, self.features["action"]["shape"][0]):
            raise LeRobotExportError(f"{where}: action shape {action.shape} differs from the first episode's")

        task = str(ep.instruction)
        task_index = self.tasks.setdefault(task, len(self.tasks))
        frame_index = np.arange(n, dtype=np.int64)
        timestamp = (frame_index / float(self.fps)).astype(np.float32)
        index = self.total_frames + frame_index
        cols = {
            "observation.state": state,
            "action": action,
            "timestamp": timestamp,
            "frame_index": frame_index,
            "episode_index": np.full(n, ep_index, dtype=np.int64),
            "index": index,
            "task_index": np.full(n, task_index, dtype=np.int64),
        }
        row: dict[str, Any] = {"episode_index": ep_index, "tasks": [task], "length": n}
        row.update(self._write_data(cols))
        row["dataset_from_index"] = self.total_frames
        row["dataset_to_index"] = self.total_frames + n

        stats: dict[str, dict[str, np.ndarray]] = {k: _vector_stats(v) for k, v in cols.items()}
        for cam in self.cameras:
            key = f"observation.images.{cam}"
            if cam not in ep.images:
                raise LeRobotExportError(f"{where}: no images from camera {cam!r}")
            imgs = np.asarray(ep.images[cam])
            if imgs.dtype != np.uint8:
                raise LeRobotExportError(f"{where}: camera {cam} images are {imgs.dtype}, expected uint8")
            if tuple(imgs.shape) != (n, *self.features[key]["shape"]):
                raise LeRobotExportError(f"{where}: camera {cam} images {imgs.shape} != ({n}, H, W, 3) of the first")
            row.update(self._write_video(cam, imgs))
            stats[key] = _image_stats(imgs)

        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        row["llm_trainer/episode_id"] = str(ep.episode_id)
        row["llm_trainer/task"] = str(ep.task)
        row["llm_trainer/seed"] = int(ep.seed)
        row["llm_trainer/success"] = bool(ep.success)
        row["llm_trainer/bag_path"] = str(ep.bag_path)
        row["llm_trainer/record"] = json.dumps(ep.record, sort_keys=True, default=str)
        self.episode_rows.append(row)
        self.episode_stats.append(stats)
        assert self.provenance is not None
        self.provenance.write(
            json.dumps(
                {
                    "episode_index": ep_index,
                    "episode_id": str(ep.episode_id),
                    "task": str(ep.task),
                    "instruction": task,
                    "seed": int(ep.seed),
                    "success": bool(ep.success),
                    "num_frames": n,
                    "bag_path": str(ep.bag_path),
                    "object_names": list(ep.object_names),
                    "cameras": ep.cameras,
                    "depth_not_exported": sorted(ep.depth),
                    "record": ep.record,
                },
                sort_keys=True,
                default=str,
            )
            + "\n"
        )
        self.total_frames += n

    def _write_data(self, cols: dict[str, np.ndarray]) -> dict[str, int]:
        assert self._schema is not None
        arrays = []
        for field in self._schema:
            v = cols[field.name]
            arrays.append(_fixed_list(v, pa.float32()) if v.ndim == 2 else pa.array(v, type=field.type))
        table = pa.Table.from_arrays(arrays, schema=self._schema)
        if self._data_writer is not None and self._data_mb + table.nbytes / 1024**2 > DATA_FILE_SIZE_IN_MB:
            self._data_writer.close()
            self._data_writer = None
            self._data_loc = _next_file(*self._data_loc)
            self._data_mb = 0.0
        chunk, file = self._data_loc
        if self._data_writer is None:
            path = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(path, self._schema, compression="snappy")
        self._data_writer.write_table(table)
        self._data_mb += table.nbytes / 1024**2
        return {"data/chunk_index": chunk, "data/file_index": file}

    def _write_video(self, cam: str, imgs: np.ndarray) -> dict[str, Any]:
        key = f"observation.images.{cam}"
        video = self._videos.get(cam)
        if video is not None and video.size_in_mb() >= VIDEO_FILE_SIZE_IN_MB:
            video.close()
            self._video_loc[cam] = _next_file(*self._video_loc[cam])
            video = None
        if video is None:
            chunk, file = self._video_loc.setdefault(cam, (0, 0))
            path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            rate = Fraction(self.fps).limit_denominator(1001 * 1000)
            h, w = imgs.shape[1:3]
            assert self.vcodec is not None
            video = self._videos[cam] = _VideoFile(path, self.vcodec, rate, w, h)
        chunk, file = self._video_loc[cam]
        start = video.frames
        video.write(imgs)
        return {
            f"videos/{key}/chunk_index": chunk,
            f"videos/{key}/file_index": file,
            f"videos/{key}/from_timestamp": start / float(self.fps),
            f"videos/{key}/to_timestamp": video.frames / float(self.fps),
        }

    # -- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every open file (also on errors)."""
        for video in self._videos.values():
            video.close()
        if self._data_writer is not None:
            self._data_writer.close()
            self._data_writer = None
        if self.provenance is not None:
            self.provenance.close()

    def finish(self) -> dict[str, Any]:
        if not self.episode_rows:
            raise LeRobotExportError("no episodes to export")
        assert self.features is not None
        # meta/episodes: bookkeeping columns + flattened per-episode stats
        rows = []
        for row, stats in zip(self.episode_rows, self.episode_stats, strict=True):
            full = dict(row)
            for feat, fstats in stats.items():
                for name, value in fstats.items():
                    full[f"stats/{feat}/{name}"] = value.tolist()
            rows.append(full)
        columns = list(rows[0])
        table = pa.Table.from_pydict({c: [r[c] for r in rows] for c in columns})
        path = self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="snappy")

        # meta/tasks.parquet: pandas-readable, index "task" -> column task_index
        tasks = sorted(self.tasks.items(), key=lambda kv: kv[1])
        task_table = pa.table(
            {
                "task_index": pa.array([i for _, i in tasks], type=pa.int64()),
                "task": pa.array([t for t, _ in tasks], type=pa.string()),
            }
        )
        pandas_meta = {
            "index_columns": ["task"],
            "column_indexes": [
                {
                    "name": None,
                    "field_name": None,
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": {"encoding": "UTF-8"},
                }
            ],
            "columns": [
                {
                    "name": "task_index",
                    "field_name": "task_index",
                    "pandas_type": "int64",
                    "numpy_type": "int64",
                    "metadata": None,
                },
                {
                    "name": "task",
                    "field_name": "task",
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": None,
                },
            ],
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.2.3",
        }
        task_table = task_table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
        pq.write_table(task_table, self.root / "meta" / "tasks.parquet")

        # meta/stats.json
        agg = {
            feat: {k: v.tolist() for k, v in _aggregate_stats([s[feat] for s in self.episode_stats]).items()}
            for feat in self.episode_stats[0]
        }
        (self.root / "meta" / "stats.json").write_text(json.dumps(agg, indent=4))

        # meta/info.json
        for cam in self.cameras:
            key = f"observation.images.{cam}"
            self.features[key]["info"] = self._video_info(
                self.root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
            )
        n_eps = len(self.episode_rows)
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": n_eps,
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILE_SIZE_IN_MB,
            "fps": self.fps,
            "splits": {"train": f"0:{n_eps}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.cameras else None,
            "features": self.features,
        }
        (self.root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
        return {
            "episodes": n_eps,
            "frames": self.total_frames,
            "tasks": len(self.tasks),
            "fps": self.fps,
            "vcodec": self.vcodec,
            "cameras": list(self.cameras),
        }

    def _video_info(self, path: Path) -> dict[str, Any]:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return {
                "video.height": stream.height,
                "video.width": stream.width,
                "video.codec": stream.codec_context.codec.canonical_name,
                "video.pix_fmt": stream.pix_fmt or "yuv420p",
                "video.is_depth_map": False,
                "video.fps": self.fps,
                "video.channels": 3,
                "has_audio": False,
            }
