"""Camera-contract messages -> synchronised ``CameraView`` frame sets.

Works on any message objects with the standard fields (rclpy's or rosbags' deserialised ones), so
the perception node and bag readers share it: per camera the latest intrinsics (``camera_info``),
extrinsics (the transient-local ``TransformStamped``), compressed colour and compressed depth; a
camera is ready when its colour and depth carry the same stamp and its calibration is known. A
frame set is every ready camera whose stamp is within ``max_skew`` of the newest one: a camera that
stopped delivering drops out of the set instead of holding it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llm_trainer.perception.views import CameraView
from llm_trainer.sensors.cameras import DEPTH_UNIT_M, CameraModel, camera_of_topic, quaternion_to_rotation
from llm_trainer.sensors.image_codec import decode_color, decode_depth


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


@dataclass
class _Camera:
    info: object | None = None
    pose: tuple[np.ndarray, np.ndarray] | None = None
    color: object | None = None
    depth: object | None = None


@dataclass
class FrameAssembler:
    max_skew: float = 0.05  # [s]
    cameras: dict[str, _Camera] = field(default_factory=dict)
    only: set[str] | None = None  # cameras to use (None: all); the rest are ignored (--drop-camera)

    def add(self, topic: str, msg) -> str | None:
        """Take one contract message; returns the camera it belongs to (None if not a camera topic)."""
        found = camera_of_topic(topic)
        if found is None:
            return None
        name, stream = found
        if self.only is not None and name not in self.only:
            return None
        cam = self.cameras.setdefault(name, _Camera())
        if stream == "camera_info":
            cam.info = msg
        elif stream == "extrinsics":
            t, q = msg.transform.translation, msg.transform.rotation
            cam.pose = (np.array([t.x, t.y, t.z]), quaternion_to_rotation([q.x, q.y, q.z, q.w]))
        elif stream == "color_compressed":
            cam.color = msg
        elif stream == "depth_compressed":
            cam.depth = msg
        return name

    def ready(self) -> dict[str, float]:
        """Cameras with a matching colour/depth pair and known calibration -> their stamp."""
        out = {}
        for name, cam in self.cameras.items():
            if cam.info is None or cam.pose is None or cam.color is None or cam.depth is None:
                continue
            if abs(_stamp(cam.color) - _stamp(cam.depth)) < 1e-6:
                out[name] = _stamp(cam.color)
        return out

    def frame_set(self) -> list[CameraView]:
        ready = self.ready()
        if not ready:
            return []
        newest = max(ready.values())
        views = []
        for name in sorted(ready):
            if newest - ready[name] > self.max_skew:
                continue
            cam = self.cameras[name]
            k = np.asarray(cam.info.k, float).reshape(3, 3)
            model = CameraModel(name, int(cam.info.width), int(cam.info.height), k, cam.pose[0], cam.pose[1])
            rgb = decode_color(cam.color.format, bytes(cam.color.data))
            depth = decode_depth(cam.depth.format, bytes(cam.depth.data)).astype(np.float32) * DEPTH_UNIT_M
            views.append(CameraView(model, rgb, depth, ready[name]))
        return views
