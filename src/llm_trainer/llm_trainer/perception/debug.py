"""Debug images: what perception made of one view, drawn on its colour image (OpenCV).

Each fused object is drawn as its box projected into the view (the footprint at the bottom and at
the top, joined), the pointing stage's pixel as a dot, and the name with the view count. Objects
the view did not see themselves, but other views did, are drawn in grey.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from llm_trainer.perception.views import CameraView


def project(view: CameraView, points: np.ndarray) -> np.ndarray:
    """(N, 2) pixel coordinates of world points (CameraInfo's convention, as ``CameraModel.world_points``)."""
    cam = view.camera
    p = (np.asarray(points, float) - cam.position) @ cam.rotation
    z = np.maximum(p[:, 2], 1e-6)
    u = cam.K[0, 0] * p[:, 0] / z + cam.K[0, 2]
    v = cam.K[1, 1] * p[:, 1] / z + cam.K[1, 2]
    return np.stack([u, v], axis=1)


def box_corners(position, yaw: float, size) -> np.ndarray:
    length, width, height = size
    c, s = math.cos(yaw), math.sin(yaw)
    out = []
    for dz in (-height / 2, height / 2):
        for dx, dy in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
            x, y = dx * length / 2, dy * width / 2
            out.append((position[0] + c * x - s * y, position[1] + s * x + c * y, position[2] + dz))
    return np.array(out)


def debug_image(view: CameraView, result) -> np.ndarray:
    image = np.ascontiguousarray(view.rgb.copy())
    seen_here = {e.name: e for e in result.views if e.camera == view.name}
    for obj in result.objects:
        colour = (0, 255, 0) if obj.name in seen_here else (160, 160, 160)
        uv = project(view, box_corners(obj.position, obj.yaw, obj.size)).round().astype(np.int32)
        cv2.polylines(image, [uv[:4], uv[4:]], True, colour, 1, cv2.LINE_AA)
        for k in range(4):
            cv2.line(image, tuple(uv[k]), tuple(uv[k + 4]), colour, 1, cv2.LINE_AA)
        estimate = seen_here.get(obj.name)
        if estimate is not None and estimate.pixel is not None:
            cv2.circle(image, (int(estimate.pixel[0]), int(estimate.pixel[1])), 3, (255, 0, 0), -1)
        top = uv[4:].min(axis=0)
        cv2.putText(image, f"{obj.name} ({obj.num_views})", (int(top[0]), max(10, int(top[1]) - 3)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1, cv2.LINE_AA)  # fmt: skip
    return image
