"""Make a crashed recording readable again, and mark it incomplete with the reason.

A recorder that dies mid-episode leaves an MCAP file without its summary and footer (and no
rosbag2 ``metadata.yaml``): its flushed chunks are on disk, but readers that seek to the footer
(rosbags, ``ros2 bag``) refuse it. ``mark_incomplete`` reads the complete chunks with ``mcap``'s
stream reader up to the truncation, writes them into a new, properly closed bag, swaps it in and
sets ``metadata.json``'s status to ``incomplete`` with the reason. The messages that reached the disk
stay readable; the episode is never mistaken for a complete one (exporters skip it).
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

from llm_trainer.recording.bag_reader import _mcap_complete
from llm_trainer.recording.bag_writer import METADATA_FILE, update_metadata_json, utc_now_iso
from llm_trainer.recording.typestore import get_ros2_typestore


def recover_mcap_messages(mcap_path: Path) -> tuple[list[tuple[str, str]], list[tuple[int, int, bytes]]]:
    """(channels as (topic, msgtype) by channel index, messages as (channel index, log_time, data)).

    Everything in complete records before the truncation point; a damaged chunk is skipped.
    """
    from mcap.exceptions import McapError
    from mcap.records import Channel, Chunk, Message, Schema
    from mcap.stream_reader import StreamReader, breakup_chunk

    schemas: dict[int, str] = {}
    channels: dict[int, int] = {}  # mcap channel id -> our index
    topics: list[tuple[str, str]] = []
    messages: list[tuple[int, int, bytes]] = []
    with open(mcap_path, "rb") as f:
        try:
            for rec in StreamReader(f, emit_chunks=True).records:
                if isinstance(rec, Chunk):
                    try:
                        inner = breakup_chunk(rec, validate_crc=True)
                    except Exception:  # noqa: BLE001 - a damaged chunk: keep the others
                        continue
                else:
                    inner = [rec]
                for r in inner:
                    if isinstance(r, Schema):
                        schemas[r.id] = r.name
                    elif isinstance(r, Channel) and r.id not in channels and r.schema_id in schemas:
                        channels[r.id] = len(topics)
                        topics.append((r.topic, schemas[r.schema_id]))
                    elif isinstance(r, Message) and r.channel_id in channels:
                        messages.append((channels[r.channel_id], r.log_time, bytes(r.data)))
        except (McapError, struct.error, ValueError, EOFError):
            pass  # the truncation point: what came before it is what survived
    return topics, messages


def mark_incomplete(episode_dir: Path | str, reason: str, *, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mark an episode bag incomplete (with ``reason``), recovering its MCAP first if it was never closed.

    Returns the updated metadata. Idempotent: a closed bag is only re-marked.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    episode_dir = Path(episode_dir)
    mcaps = sorted(episode_dir.glob("*.mcap"))
    recovered: dict[str, Any] = {}
    if len(mcaps) == 1 and not (_mcap_complete(mcaps[0]) and (episode_dir / "metadata.yaml").exists()):
        topics, messages = recover_mcap_messages(mcaps[0])
        tmp = episode_dir.parent / f".{episode_dir.name}.recovering"
        if tmp.exists():
            shutil.rmtree(tmp)
        store = get_ros2_typestore()
        writer = Writer(tmp, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        conns = [writer.add_connection(topic, msgtype, typestore=store) for topic, msgtype in topics]
        for index, t_ns, data in sorted(messages, key=lambda m: m[1]):
            writer.write(conns[index], t_ns, data)
        writer.close()
        # Swap in the recovered bag under the original file name; the partial file goes away.
        written = next(tmp.glob("*.mcap"))
        os.replace(written, mcaps[0])
        for extra in ("metadata.yaml",):
            text = (tmp / extra).read_text().replace(written.name, mcaps[0].name)
            (episode_dir / extra).write_text(text)
        shutil.rmtree(tmp)
        recovered = {"recovered_messages": len(messages), "recovered_topics": [t for t, _ in topics]}
    updates: dict[str, Any] = {
        "status": "incomplete",
        "incomplete_reason": reason,
        "marked": utc_now_iso(),
        **recovered,
    }
    if record is not None:
        updates["record"] = record
    if not (episode_dir / METADATA_FILE).exists():
        updates["episode_id"] = episode_dir.name
    return update_metadata_json(episode_dir, updates)
