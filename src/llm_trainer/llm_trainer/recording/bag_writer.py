"""Write one episode as a rosbag2 MCAP bag plus a ``metadata.json`` beside it (ROS-free).

Layout of an episode directory (``<out>/bags/episode_000007/``)::

    episode_000007.mcap   the messages, raw CDR as received (written by rosbags)
    metadata.yaml         rosbag2 bag metadata (written by rosbags on close)
    metadata.json         ours: task, seed, instruction, scene, plan, success, provenance, counts

``metadata.json`` is written when the bag opens (status "recording") and rewritten on close, so a
crashed episode is still identifiable on disk.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import re
import socket
import subprocess
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import Connection
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from llm_trainer.recording.typestore import get_ros2_typestore, store_name

METADATA_FILE = "metadata.json"
BAGS_SUBDIR = "bags"

_EPISODE_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_GENERATED_ID_RE = re.compile(r"^episode_(\d+)$")


class RecorderError(RuntimeError):
    """A recording request that cannot be honoured (wrong state, bad id, bad metadata)."""


# --------------------------------------------------------------------------- provenance / metadata


def _llm_trainer_version() -> str:
    try:
        from importlib.metadata import version

        return version("llm_trainer")
    except Exception:  # noqa: BLE001 - not installed (source checkout): use the package attribute
        try:
            from llm_trainer import __version__

            return str(__version__)
        except Exception:  # noqa: BLE001
            return "unknown"


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    # Cached: the checkout does not change under a running recorder, and git costs ~10 ms per call.
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def build_provenance() -> dict[str, Any]:
    """Where and with what an episode was recorded."""
    try:
        from importlib.metadata import version

        rosbags_version = version("rosbags")
    except Exception:  # noqa: BLE001
        rosbags_version = "unknown"
    return {
        "llm_trainer_version": _llm_trainer_version(),
        "git_commit": _git_commit(),
        "hostname": socket.gethostname(),
        "created": utc_now_iso(),
        "python": platform.python_version(),
        "rosbags_version": rosbags_version,
        "rosbags_store": store_name(),
    }


def parse_metadata_json(text: str, where: str = "metadata_json") -> dict[str, Any]:
    """Parse a metadata JSON object; empty text is an empty dict. Raises ``RecorderError``."""
    if not text or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecorderError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RecorderError(f"{where} must be a JSON object, got {type(data).__name__}")
    return data


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    # Write-then-rename so a crash never leaves a half-written metadata.json.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def update_metadata_json(episode_dir: Path | str, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` (top level) into an episode's metadata.json and return the result."""
    path = Path(episode_dir) / METADATA_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data.update(updates)
    _write_json_atomic(path, data)
    return data


# --------------------------------------------------------------------------- bag writer


class EpisodeBagWriter:
    """One episode's MCAP bag; topics are added on first use.

    Crash safety: rosbags keeps up to 1 MiB of messages in an in-memory chunk; we close the chunk and
    flush the file at least every ``flush_interval_s`` so a crash loses little. The MCAP summary and
    rosbag2 ``metadata.yaml`` are only written by ``close()``.
    """

    def __init__(
        self,
        episode_dir: Path | str,
        metadata: dict[str, Any] | None = None,
        *,
        typestore: Typestore | None = None,
        flush_interval_s: float = 1.0,
        compress: bool = True,
    ) -> None:
        self.path = Path(episode_dir)
        if self.path.exists():
            raise FileExistsError(f"episode directory {self.path} exists already; not overwriting a recording")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._typestore = typestore or get_ros2_typestore()
        self._flush_interval_s = flush_interval_s
        self._last_flush = time.monotonic()
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        if compress:
            # MCAP chunk compression (rosbag2's own for MCAP storage): zstd per chunk; readers decompress.
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.open()
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}
        self.last_ns: dict[str, int] = {}  # newest log time per topic
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self._closed = False
        self.metadata: dict[str, Any] = dict(metadata or {})
        user_prov = self.metadata.pop("provenance", None)
        self.provenance = {**build_provenance(), **(user_prov if isinstance(user_prov, dict) else {})}
        self._write_metadata(status="recording", success=None)

    # -- properties
    @property
    def mcap_path(self) -> Path:
        return self.path / f"{self.path.name}.mcap"

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())

    @property
    def closed(self) -> bool:
        return self._closed

    # -- writing
    def add_topic(self, topic: str, msgtype: str) -> None:
        """Register ``topic`` with ``msgtype`` (e.g. ``sensor_msgs/msg/Image``); repeat calls are no-ops."""
        self._check_open()
        conn = self._connections.get(topic)
        if conn is not None:
            if conn.msgtype != msgtype:
                raise ValueError(f"topic {topic} is recorded as {conn.msgtype}, cannot also record {msgtype}")
            return
        if msgtype not in self._typestore.fielddefs:
            raise ValueError(f"topic {topic}: message type {msgtype} is unknown to the bag typestore")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
        self.counts[topic] = 0

    def write(self, topic: str, msgtype: str, cdr_bytes: bytes | memoryview, t_ns: int) -> None:
        """Append one serialised (CDR) message at log time ``t_ns``."""
        self._check_open()
        if topic not in self._connections:
            self.add_topic(topic, msgtype)
        conn = self._connections[topic]
        if conn.msgtype != msgtype:
            raise ValueError(f"topic {topic} is recorded as {conn.msgtype}, got a {msgtype}")
        t_ns = int(t_ns)
        self._writer.write(conn, t_ns, cdr_bytes)
        self.counts[topic] += 1
        self.last_ns[topic] = max(t_ns, self.last_ns.get(topic, t_ns))
        self.start_ns = t_ns if self.start_ns is None else min(self.start_ns, t_ns)
        self.end_ns = t_ns if self.end_ns is None else max(self.end_ns, t_ns)
        if time.monotonic() - self._last_flush >= self._flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Close the pending MCAP chunk and push it to the OS, so it survives a crash of this process."""
        self._check_open()
        self._last_flush = time.monotonic()
        # rosbags has no public flush; its McapWriter exposes close_chunk()/bio. Degrade to a no-op if a
        # future rosbags renames them rather than failing the recording.
        storage = getattr(self._writer, "storage", None)
        chunk = getattr(storage, "chunk", None)
        if chunk is not None and getattr(chunk, "msgs", None) and hasattr(storage, "close_chunk"):
            storage.close_chunk()
        bio = getattr(storage, "bio", None)
        if bio is not None:
            bio.flush()

    def close(
        self,
        metadata: dict[str, Any] | None = None,
        *,
        success: bool | None = None,
        status: str = "complete",
    ) -> Path:
        """Finish the bag and write metadata.json (``metadata`` merged over the opening metadata).

        Idempotent: a second call only returns the path.
        """
        if self._closed:
            return self.path
        self._closed = True
        if metadata:
            user_prov = metadata.get("provenance")
            self.metadata.update({k: v for k, v in metadata.items() if k != "provenance"})
            if isinstance(user_prov, dict):
                self.provenance.update(user_prov)
        try:
            self._writer.close()
        except Exception:
            # Keep what reached the disk; the metadata still says what happened.
            with suppress(Exception):
                self._writer.abort()
            self._write_metadata(status="error", success=success, error="bag close failed")
            raise
        self._write_metadata(status=status, success=success)
        return self.path

    def __enter__(self) -> EpisodeBagWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            # Keep the partial episode: it is evidence of what went wrong.
            with suppress(Exception):
                self.close({"error": f"{exc_type.__name__}: {exc}"}, success=False, status="error")

    # -- helpers
    def _check_open(self) -> None:
        if self._closed:
            raise RecorderError(f"bag {self.path} is closed")

    def _write_metadata(self, *, status: str, success: bool | None, error: str | None = None) -> None:
        data: dict[str, Any] = {"episode_id": self.path.name, **self.metadata}
        data["status"] = status
        data["success"] = success if success is not None else data.get("success")
        if error:
            data["error"] = error
        data["bag"] = {
            "path": str(self.path),
            "storage": "mcap",
            "file": self.mcap_path.name,
            "message_count": self.message_count,
            "topics": {t: {"type": c.msgtype, "count": self.counts[t]} for t, c in self._connections.items()},
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_s": (self.end_ns - self.start_ns) / 1e9 if self.start_ns is not None else 0.0,
        }
        data["provenance"] = self.provenance
        if status != "recording":
            data["closed"] = utc_now_iso()
        _write_json_atomic(self.path / METADATA_FILE, data)


# --------------------------------------------------------------------------- episode lifecycle


@dataclass
class EpisodeSummary:
    """What a finished (stopped or aborted) episode left on disk."""

    episode_id: str
    bag_path: Path
    message_count: int
    counts: dict[str, int] = field(default_factory=dict)
    status: str = "complete"
    success: bool = False


class EpisodeRecorder:
    """One episode at a time under ``<output_dir>/bags/``; thread-safe (subscriptions write concurrently).

    The ROS node only translates service calls and raw messages into these calls.
    """

    def __init__(
        self, output_dir: Path | str, *, typestore: Typestore | None = None, flush_interval_s: float = 1.0
    ) -> None:
        self.output_dir = Path(output_dir)
        self.bags_dir = self.output_dir / BAGS_SUBDIR
        self._typestore = typestore
        self._flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._bag: EpisodeBagWriter | None = None
        self.ignored = 0  # messages that arrived while no episode was open

    @property
    def active(self) -> bool:
        return self._bag is not None

    @property
    def episode_id(self) -> str | None:
        bag = self._bag
        return bag.path.name if bag is not None else None

    @property
    def bag_path(self) -> Path | None:
        bag = self._bag
        return bag.path if bag is not None else None

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._bag.counts) if self._bag is not None else {}

    def latest_ns(self, topic: str) -> int | None:
        """Newest log time recorded on ``topic`` in the open episode (None if nothing yet)."""
        with self._lock:
            return self._bag.last_ns.get(topic) if self._bag is not None else None

    def start(self, episode_id: str = "", metadata: dict[str, Any] | None = None) -> Path:
        """Open a bag for a new episode; an empty id gets the next free ``episode_NNNNNN``."""
        with self._lock:
            if self._bag is not None:
                raise RecorderError(f"episode {self._bag.path.name} is still recording; STOP or ABORT it first")
            self.bags_dir.mkdir(parents=True, exist_ok=True)
            if episode_id:
                if not _EPISODE_ID_RE.match(episode_id):
                    raise RecorderError(
                        f"episode id {episode_id!r} is not a safe directory name (letters, digits, _ . -; max 128)"
                    )
                try:
                    self._bag = self._open(episode_id, metadata)
                except FileExistsError:
                    raise RecorderError(f"episode {episode_id} already exists in {self.bags_dir}") from None
            else:
                # Another process may share the directory: on a name collision, take the next number.
                index = self._next_index()
                for _ in range(1000):
                    try:
                        self._bag = self._open(f"episode_{index:06d}", metadata)
                        break
                    except FileExistsError:
                        index += 1
                else:  # pragma: no cover - 1000 collisions in a row
                    raise RecorderError(f"cannot find a free episode id in {self.bags_dir}")
            return self._bag.path

    def write(self, topic: str, msgtype: str, cdr_bytes: bytes | memoryview, t_ns: int) -> bool:
        """Record one message if an episode is open; returns False (and counts it as ignored) otherwise."""
        with self._lock:
            if self._bag is None:
                self.ignored += 1
                return False
            self._bag.write(topic, msgtype, cdr_bytes, t_ns)
            return True

    def stop(
        self, episode_id: str = "", metadata: dict[str, Any] | None = None, success: bool = False
    ) -> EpisodeSummary:
        """Close the open episode with its verified outcome; ``metadata`` is merged over START's."""
        return self._finish(episode_id, metadata, success=bool(success), status="complete", aborted=False)

    def abort(self, episode_id: str = "", metadata: dict[str, Any] | None = None) -> EpisodeSummary:
        """Close the open episode and mark it aborted (kept on disk, success false)."""
        return self._finish(episode_id, metadata, success=False, status="aborted", aborted=True)

    def shutdown(self, reason: str = "recorder shut down") -> EpisodeSummary | None:
        """Close any open episode as interrupted (called when the node exits)."""
        if self._bag is None:
            return None
        return self._finish("", {"interrupted": reason}, success=False, status="interrupted", aborted=True)

    # -- helpers
    def _open(self, episode_id: str, metadata: dict[str, Any] | None) -> EpisodeBagWriter:
        meta = dict(metadata or {})
        meta["episode_id"] = episode_id
        meta.setdefault("started", utc_now_iso())
        return EpisodeBagWriter(
            self.bags_dir / episode_id, meta, typestore=self._typestore, flush_interval_s=self._flush_interval_s
        )

    def _next_index(self) -> int:
        indices = [int(m.group(1)) for p in self.bags_dir.iterdir() if (m := _GENERATED_ID_RE.match(p.name))]
        return max(indices, default=-1) + 1

    def _finish(
        self, episode_id: str, metadata: dict[str, Any] | None, *, success: bool, status: str, aborted: bool
    ) -> EpisodeSummary:
        with self._lock:
            bag = self._bag
            if bag is None:
                raise RecorderError("no episode is recording; send START first")
            if episode_id and episode_id != bag.path.name:
                raise RecorderError(f"episode id {episode_id!r} does not match the recording episode {bag.path.name!r}")
            # Detach first: even if close() raises, the recorder must be able to start the next episode.
            self._bag = None
            meta = dict(metadata or {})
            meta.update({"success": success, "aborted": aborted, "stopped": utc_now_iso()})
            bag.close(meta, success=success, status=status)
            return EpisodeSummary(
                episode_id=bag.path.name,
                bag_path=bag.path,
                message_count=bag.message_count,
                counts=dict(bag.counts),
                status=status,
                success=success,
            )
