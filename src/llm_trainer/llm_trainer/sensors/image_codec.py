"""Image codecs of ``image_transport``'s ``compressed`` and ``compressedDepth`` plugins (OpenCV).

Colour: JPEG (quality ``DEFAULT_JPEG_QUALITY``; lossy, as ROS users expect of ``/compressed``) or PNG
(lossless), with the plugin's format string, e.g. ``"rgb8; jpeg compressed bgr8"``.
Depth: 16UC1 [mm] as PNG behind the plugin's 12-byte header (``"16UC1; compressedDepth png"``): lossless.
Both decode back here and in the C++ plugins (and Foxglove).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

DEFAULT_JPEG_QUALITY = 90
DEFAULT_PNG_LEVEL = 1  # fast; PNG is lossless at every level
#: compressed_depth_image_transport's ConfigHeader: int32 compressionFormat (INV_DEPTH = 0) and two float
#: depth quantisation parameters (used for 32FC1 only), little-endian.
_DEPTH_HEADER = struct.Struct("<iff")


class CodecError(ValueError):
    """An image cannot be encoded or decoded."""


def encode_color(rgb: np.ndarray, fmt: str = "jpeg", quality: int = DEFAULT_JPEG_QUALITY) -> tuple[str, bytes]:
    """(format string, bytes) for an (H, W, 3) uint8 RGB image."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CodecError(f"colour images must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, DEFAULT_PNG_LEVEL])
    else:
        raise CodecError(f"colour format must be jpeg or png, got {fmt!r}")
    if not ok:
        raise CodecError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    return f"rgb8; {fmt} compressed bgr8", buf.tobytes()


def decode_color(fmt: str, data: bytes | memoryview) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a ``compressed`` message's format and data."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise CodecError(f"cannot decode a compressed colour image (format {fmt!r})")
    # The plugin's target format names the channel order of the compressed bytes (bgr8 by default).
    target = fmt.split("compressed", 1)[1].strip() if "compressed" in fmt else "bgr8"
    return img if target.startswith("rgb") else np.ascontiguousarray(img[:, :, ::-1])


def encode_depth(depth_mm: np.ndarray) -> tuple[str, bytes]:
    """(format string, bytes) for an (H, W) uint16 depth image in millimetres (0: no reading)."""
    if depth_mm.dtype != np.uint16 or depth_mm.ndim != 2:
        raise CodecError(f"depth images must be (H, W) uint16 [mm], got {depth_mm.dtype} {depth_mm.shape}")
    ok, buf = cv2.imencode(".png", depth_mm, [cv2.IMWRITE_PNG_COMPRESSION, DEFAULT_PNG_LEVEL])
    if not ok:
        raise CodecError("OpenCV could not encode the depth image as PNG")
    return "16UC1; compressedDepth png", _DEPTH_HEADER.pack(0, 0.0, 0.0) + buf.tobytes()


def decode_depth(fmt: str, data: bytes | memoryview) -> np.ndarray:
    """(H, W) uint16 [mm] from a ``compressedDepth`` message (16UC1 PNG)."""
    encoding = fmt.split(";", 1)[0].strip()
    if encoding != "16UC1" or "png" not in fmt:
        raise CodecError(f"only 16UC1 PNG compressedDepth is supported, got format {fmt!r}")
    raw = bytes(data)
    if len(raw) <= _DEPTH_HEADER.size:
        raise CodecError("compressedDepth data shorter than its header")
    img = cv2.imdecode(np.frombuffer(raw[_DEPTH_HEADER.size :], np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16:
        raise CodecError("cannot decode the compressedDepth PNG as 16-bit")
    return img


def depth_to_mm(depth_m: np.ndarray, max_m: float = 65.535) -> np.ndarray:
    """Metric depth (float, 0 or non-finite: no reading) -> uint16 millimetres, rounded."""
    d = np.nan_to_num(np.asarray(depth_m, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    d = np.where((d > 0) & (d <= max_m), d, 0.0)
    return np.round(d * 1000.0).astype(np.uint16)
