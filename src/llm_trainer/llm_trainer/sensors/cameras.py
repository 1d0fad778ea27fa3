"""The camera contract: one place for camera names, topics, frames, intrinsics and extrinsics.

The simulator, the RealSense node and a bag replay all publish exactly this, so perception and the
exporters cannot tell them apart. The layout follows ``realsense2_camera`` and ``image_transport``:

    /cameras/<name>/color/image_raw                       sensor_msgs/Image rgb8 (only while someone listens)
    /cameras/<name>/color/image_raw/compressed            sensor_msgs/CompressedImage (JPEG, image_transport's)
    /cameras/<name>/color/camera_info                     sensor_msgs/CameraInfo (intrinsics)
    /cameras/<name>/depth/image_raw                       sensor_msgs/Image 16UC1 [mm], aligned to colour
    /cameras/<name>/depth/image_raw/compressedDepth       sensor_msgs/CompressedImage (lossless PNG)
    /cameras/<name>/extrinsics                            geometry_msgs/TransformStamped world -> optical frame
                                                          (transient local: what /tf_static carries on a full
                                                          install, where tf2 exists; it is not on PyPI)

Depth is 16-bit millimetres, the D435i's native ``z16`` format, so it compresses losslessly.
Frames: ``world`` (the table frame, z up) and ``<name>_color_optical_frame`` (z forward, x right, y down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

TOPIC_ROOT = "/cameras"
WORLD_FRAME = "world"
DEPTH_ENCODING = "16UC1"
DEPTH_UNIT_M = 0.001  # one depth count is this many metres
COLOR_ENCODING = "rgb8"


@dataclass(frozen=True)
class CameraTopics:
    color: str
    color_compressed: str
    depth: str
    depth_compressed: str
    camera_info: str
    extrinsics: str

    def recorded(self) -> list[str]:
        """What every episode bag keeps of this camera: the compressed streams, intrinsics, extrinsics."""
        return [self.color_compressed, self.depth_compressed, self.camera_info, self.extrinsics]


def camera_topics(name: str) -> CameraTopics:
    base = f"{TOPIC_ROOT}/{name}"
    return CameraTopics(
        color=f"{base}/color/image_raw",
        color_compressed=f"{base}/color/image_raw/compressed",
        depth=f"{base}/depth/image_raw",
        depth_compressed=f"{base}/depth/image_raw/compressedDepth",
        camera_info=f"{base}/color/camera_info",
        extrinsics=f"{base}/extrinsics",
    )


def optical_frame(name: str) -> str:
    return f"{name}_color_optical_frame"


def camera_of_topic(topic: str) -> tuple[str, str] | None:
    """``(camera, stream)`` for a contract topic (stream: one of CameraTopics' field names), else None."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[1] != TOPIC_ROOT.strip("/"):
        return None
    name = parts[2]
    for stream, t in camera_topics(name).__dict__.items():
        if t == topic:
            return name, stream
    return None


@dataclass
class CameraModel:
    """One calibrated pinhole camera: intrinsics ``K`` and the optical frame's pose in the world."""

    name: str
    width: int
    height: int
    K: np.ndarray  # (3, 3)
    position: np.ndarray  # (3,) optical centre in the world [m]
    rotation: np.ndarray  # (3, 3) world_R_optical (columns: the optical x, y, z axes in the world)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "width": int(self.width),
            "height": int(self.height),
            "K": np.asarray(self.K, float).round(6).tolist(),
            "frame_id": optical_frame(self.name),
            "parent_frame": WORLD_FRAME,
            "position": np.asarray(self.position, float).round(6).tolist(),
            "quaternion_xyzw": [round(v, 8) for v in rotation_to_quaternion(self.rotation)],
            "depth_encoding": DEPTH_ENCODING,
            "depth_unit_m": DEPTH_UNIT_M,
            "topics": camera_topics(self.name).__dict__,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CameraModel:
        return cls(
            str(d["name"]),
            int(d["width"]),
            int(d["height"]),
            np.asarray(d["K"], float).reshape(3, 3),
            np.asarray(d["position"], float).reshape(3),
            quaternion_to_rotation(d["quaternion_xyzw"]),
        )

    def world_points(self, depth_m: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(M, 3) world points of the pixels with depth (and inside ``mask``); depth along the optical z.
        ``K`` is in the CameraInfo convention: pixel (u, v) is centred at integer (u, v)."""
        v, u = np.nonzero((depth_m > 0) if mask is None else (mask & (depth_m > 0)))
        z = depth_m[v, u]
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        cam = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=1)
        return cam @ self.rotation.T + self.position


def rotation_to_quaternion(r: np.ndarray) -> list[float]:
    """3x3 rotation -> unit quaternion (x, y, z, w)."""
    r = np.asarray(r, float)
    t = np.trace(r)
    if t > 0:
        s = 2.0 * math.sqrt(t + 1.0)
        w, x, y, z = 0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        w, x, y, z = (r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        w, x, y, z = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        w, x, y, z = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    return [float(v) for v in (q if q[3] >= 0 else -q)]


def quaternion_to_rotation(q_xyzw) -> np.ndarray:
    x, y, z, w = (float(v) for v in q_xyzw)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
