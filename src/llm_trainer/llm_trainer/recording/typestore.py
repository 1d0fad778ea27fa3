"""A rosbags typestore for ROS 2 plus our custom messages, and cheap header-stamp peeking.

rosbags ships the standard ROS 2 types per distribution; our ``llm_trainer_interfaces`` messages are
registered from the installed ``.msg`` text, so bags carry the same definitions and RIHS01 hashes as
the ROS graph that produced them (readers such as ``ros2 bag`` and Foxglove check those hashes).
"""

from __future__ import annotations

import functools
import os
import struct
import sys
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

INTERFACES_PACKAGE = "llm_trainer_interfaces"

#: Newest first; the first one this rosbags knows is used unless $ROS_DISTRO names another it knows.
_PREFERRED_STORES = ("ROS2_KILTED", "ROS2_JAZZY", "ROS2_HUMBLE")

_HEADER_TYPE = "std_msgs/msg/Header"
_TIME_TYPE = "builtin_interfaces/msg/Time"


class TypestoreError(RuntimeError):
    """The custom interface definitions cannot be found or parsed."""


def store_name() -> str:
    """The rosbags store used: the running distro's if rosbags has it, else the newest preferred one."""
    distro = os.environ.get("ROS_DISTRO", "").strip().upper()
    # Match the distro of the graph being recorded: its standard types (and hashes) are what rclpy sends.
    # Kilted from PyPI does not set ROS_DISTRO, hence the fallback list.
    candidates = ([f"ROS2_{distro}"] if distro else []) + list(_PREFERRED_STORES)
    for name in candidates:
        if name in Stores.__members__:
            return name
    raise TypestoreError(f"this rosbags offers none of the ROS 2 stores {', '.join(_PREFERRED_STORES)}")


def interfaces_share_dir() -> Path:
    """The installed share directory of ``llm_trainer_interfaces`` (with its msg/*.msg files)."""
    tried: list[str] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory(INTERFACES_PACKAGE))
        if (path / "msg").is_dir():
            return path
        tried.append(str(path))
    except Exception as exc:  # noqa: BLE001 - no ament index (AMENT_PREFIX_PATH unset) is normal in a venv
        tried.append(f"ament index ({type(exc).__name__}: {exc})")
    # A venv with the interfaces installed into its prefix works without AMENT_PREFIX_PATH.
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        path = Path(prefix) / "share" / INTERFACES_PACKAGE
        if (path / "msg").is_dir():
            return path
        tried.append(str(path))
    raise TypestoreError(f"cannot find the {INTERFACES_PACKAGE} share directory; tried: {'; '.join(tried)}")


def custom_types(share_dir: Path | None = None) -> dict:
    """Parse every ``msg/*.msg`` of the interfaces package into rosbags type definitions."""
    share_dir = share_dir or interfaces_share_dir()
    types: dict = {}
    for msg_file in sorted((share_dir / "msg").glob("*.msg")):
        name = f"{INTERFACES_PACKAGE}/msg/{msg_file.stem}"
        try:
            types.update(get_types_from_msg(msg_file.read_text(encoding="utf-8"), name))
        except Exception as exc:  # noqa: BLE001 - report which file broke
            raise TypestoreError(f"{msg_file}: cannot parse message definition: {exc}") from exc
    if not types:
        raise TypestoreError(f"{share_dir / 'msg'} holds no .msg files")
    return types


@functools.lru_cache(maxsize=1)
def get_ros2_typestore() -> Typestore:
    """The cached typestore: standard ROS 2 types plus ``llm_trainer_interfaces`` messages."""
    store = get_typestore(Stores[store_name()])
    store.register(custom_types())
    return store


def _stamp_field_kind(store: Typestore, msgtype: str) -> str | None:
    """'header' or 'time' if the message's first field is a Header or a Time, else None."""
    try:
        _, fields = store.fielddefs[msgtype]
    except KeyError:
        return None
    if not fields:
        return None
    _, (_, detail) = fields[0]
    if detail == _HEADER_TYPE:
        return "header"
    if detail == _TIME_TYPE:
        return "time"
    return None


@functools.lru_cache(maxsize=256)
def _cached_kind(msgtype: str) -> str | None:
    return _stamp_field_kind(get_ros2_typestore(), msgtype)


def header_stamp_ns(cdr: bytes | memoryview, msgtype: str, store: Typestore | None = None) -> int | None:
    """The message's own time stamp in ns, read from the CDR bytes without deserialising.

    Works for messages whose first field is ``std_msgs/Header`` (stamp comes first) or a bare
    ``builtin_interfaces/Time`` (``rosgraph_msgs/Clock``). Returns None for other types, for a
    zero stamp (publisher left it unset) and for truncated data, so callers fall back to receive time.
    Peeking avoids deserialising every camera image just to time-stamp it.
    """
    kind = _stamp_field_kind(store, msgtype) if store is not None else _cached_kind(msgtype)
    if kind is None or len(cdr) < 12:
        return None
    # Bytes 0-1: encapsulation id, whose lowest bit is the endianness (0x0001 little-endian CDR);
    # 2-3: options. The first field starts at offset 4: int32 sec + uint32 nanosec.
    endian = "<" if cdr[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(f"{endian}iI", cdr, 4)
    if sec == 0 and nanosec == 0:
        return None
    return sec * 1_000_000_000 + nanosec


def deserialize_cdr(store: Typestore, cdr: bytes | memoryview, msgtype: str) -> object:
    """Deserialise CDR bytes, tolerating trailing padding.

    rclpy/Fast DDS (Kilted wheels) can emit up to 8 bytes past the last field (seen: a JointState with
    empty velocity/effort sequences), which rosbags' ``deserialize_cdr`` rejects as a size mismatch.
    The bytes are valid CDR followed by slack, so decode the fields and ignore the rest.
    """
    if len(cdr) < 4 or bytes(cdr[:2]) not in (b"\x00\x00", b"\x00\x01"):
        raise ValueError(f"{msgtype}: invalid or unsupported CDR encapsulation")
    msgdef = store.get_msgdef(msgtype)
    func = msgdef.deserialize_cdr_le if cdr[1] else msgdef.deserialize_cdr_be
    try:
        message, _ = func(memoryview(cdr)[4:], 0, msgdef.cls, store)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise ValueError(f"cannot deserialise {msgtype}: {exc}") from exc
    return message
