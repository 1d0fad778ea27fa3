"""Read episode bags back (ROS-free): deserialised messages per topic, counts, our metadata.json."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader
from rosbags.typesys.store import Typestore

from llm_trainer.recording.bag_writer import METADATA_FILE
from llm_trainer.recording.typestore import deserialize_cdr, get_ros2_typestore


def _bag_location(path: Path | str) -> Path:
    """An episode directory (with metadata.yaml) or a bare ``.mcap`` file, as rosbags wants it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no bag at {path}")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        # rosbags writes metadata.yaml on close; without it, open the .mcap itself if that is complete.
        mcaps = sorted(path.glob("*.mcap"))
        if len(mcaps) != 1:
            raise FileNotFoundError(f"{path} has no metadata.yaml and {len(mcaps)} .mcap files; not a closed bag")
        path = mcaps[0]
    if path.suffix == ".mcap" and not _mcap_complete(path):
        raise ValueError(
            f"{path} was never closed (recorder crashed or still recording): its flushed chunks are on disk but "
            "the MCAP footer is missing; `mcap recover` can rebuild a readable file"
        )
    return path


def _mcap_complete(path: Path) -> bool:
    """True if the file ends with the MCAP magic (written last by a clean close)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() < 16:
            return False
        f.seek(-8, 2)
        return f.read(8) == b"\x89MCAP0\r\n"


def read_episode_bag(
    path: Path | str,
    topics: Iterable[str] | None = None,
    *,
    typestore: Typestore | None = None,
) -> dict[str, list[tuple[int, Any]]]:
    """Deserialise a bag into ``{topic: [(t_ns, msg), ...]}`` in log-time order.

    ``topics`` limits what is deserialised (skip the cameras when only states are needed). Types come
    from the definitions stored in the bag; ``typestore`` (default: ours) is used only for bags
    without stored definitions.
    """
    wanted = set(topics) if topics is not None else None
    out: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([_bag_location(path)], default_typestore=typestore or get_ros2_typestore()) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn in conns:
            out.setdefault(conn.topic, [])
        store = _store_for(reader)
        for conn, t_ns, raw in reader.messages(connections=conns):
            out[conn.topic].append((t_ns, deserialize_cdr(store, raw, conn.msgtype)))
    return out


#: Typestores by the message definitions of the bags they were built for (most recent last).
_STORES: dict[tuple, Typestore] = {}
_STORES_KEPT = 8


def _store_for(reader: AnyReader) -> Typestore:
    """The typestore of an earlier bag with the same message definitions, else this bag's own.

    AnyReader builds a fresh typestore from each bag's stored definitions, and a fresh typestore
    generates its deserialisers again on first use: most of the 120 ms it took to read one
    put_block episode back (an export of 1,000 bags spent two minutes on it). The episodes of a
    run carry the same definitions, so the first bag's store serves the rest.
    """
    key = tuple(
        sorted({(c.msgtype, c.msgdef.data if c.msgdef is not None else "", c.digest) for c in reader.connections})
    )
    store = _STORES.pop(key, None) or reader.typestore
    _STORES[key] = store
    while len(_STORES) > _STORES_KEPT:
        _STORES.pop(next(iter(_STORES)))
    return store


def bag_topic_types(path: Path | str) -> dict[str, str]:
    """``{topic: msgtype}`` of a bag, without reading messages."""
    with Reader(_bag_location(path)) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def bag_summary(path: Path | str) -> dict[str, int]:
    """``{topic: message count}`` from the bag's index, without reading messages."""
    counts: dict[str, int] = {}
    with Reader(_bag_location(path)) as reader:
        for conn in reader.connections:
            counts[conn.topic] = counts.get(conn.topic, 0) + conn.msgcount
    return counts


def read_episode_metadata(path: Path | str) -> dict[str, Any]:
    """The episode's ``metadata.json`` (path: the episode directory or its .mcap); {} if absent."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    meta_file = folder / METADATA_FILE
    if not meta_file.exists():
        return {}
    return json.loads(meta_file.read_text(encoding="utf-8"))


def read_raw_messages(path: Path | str, topics: Iterable[str] | None = None) -> list[tuple[int, str, str, bytes]]:
    """``[(t_ns, topic, msgtype, cdr bytes), ...]`` in log-time order: what a replay publishes as is."""
    wanted = set(topics) if topics is not None else None
    with AnyReader([_bag_location(path)], default_typestore=get_ros2_typestore()) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        return [(t_ns, conn.topic, conn.msgtype, bytes(raw)) for conn, t_ns, raw in reader.messages(connections=conns)]
