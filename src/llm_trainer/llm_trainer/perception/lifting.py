"""Mask + depth -> world points -> a robust oriented box (centre, yaw, length/width/height).

The cameras look down at the table from the side, so a view sees the top and one or two sides of
an object: its footprint comes from the minimum-area rectangle of the points' x-y projection
(OpenCV), its top from a high percentile of z, its bottom from a low one, snapped to the table when
it is that close (the lowest few millimetres are usually hidden by the object itself). Percentiles
rather than extremes keep depth noise and mask edges that bleed onto the background from inflating
the box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from llm_trainer.perception.views import CameraView, ViewEstimate


@dataclass
class LiftingConfig:
    table_z: float = 0.0  # [m] table surface in the world frame
    above_table: float = 0.003  # [m] points lower than this above the table are the table
    table_snap: float = 0.015  # [m] a bottom this close to the table is on the table
    trim: float = 2.0  # [%] trimmed from each end of the point distribution
    min_points: int = 20

    def validate(self) -> None:
        if not 0.0 <= self.trim < 20.0:
            raise ValueError("lifting.trim must be within [0, 20) percent")
        if self.min_points < 3:
            raise ValueError("lifting.min_points must be at least 3")


def box_from_points(
    points: np.ndarray, config: LiftingConfig, pixel_size: float = 0.0
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """(centre, yaw, size) of the points, or None when too few. ``pixel_size`` [m], one pixel's
    footprint at the object's depth, is added to length and width: a colour mask loses about half a
    pixel at every edge (edge pixels blend with the background)."""
    pts = points[points[:, 2] > config.table_z + config.above_table]
    if len(pts) < config.min_points:
        # A flat object (a target area, a mat) has nothing above the table: keep its table-level points.
        pts = points[points[:, 2] > config.table_z - config.above_table]
        if len(pts) < config.min_points:
            return None
    lo, hi = config.trim, 100.0 - config.trim
    top = float(np.percentile(pts[:, 2], hi))
    bottom = float(np.percentile(pts[:, 2], lo))
    if bottom - config.table_z < config.table_snap:
        bottom = config.table_z
    # Footprint: drop the points furthest from the median in x-y (mask bleed), then the rectangle.
    xy = pts[:, :2]
    d = np.linalg.norm(xy - np.median(xy, axis=0), axis=1)
    xy = xy[d <= np.percentile(d, hi)]
    (cx, cy), (w, h), angle = cv2.minAreaRect(xy.astype(np.float32))
    yaw = math.radians(angle)
    length, width = float(w), float(h)
    if width > length:  # length along the yaw axis, the longer side
        length, width, yaw = width, length, yaw + math.pi / 2
    yaw = (yaw + math.pi / 2) % math.pi - math.pi / 2  # a box is the same turned by pi
    top = max(top, bottom)
    centre = np.array([cx, cy, (top + bottom) / 2])
    return centre, yaw, np.array([length + pixel_size, width + pixel_size, top - bottom])


def lift(view: CameraView, name: str, mask: np.ndarray, config: LiftingConfig) -> ViewEstimate | None:
    mask = mask.astype(bool)
    points = view.camera.world_points(view.depth_m, mask)
    if not len(points):
        return None
    depth = float(np.median(view.depth_m[mask & (view.depth_m > 0)]))
    box = box_from_points(points, config, pixel_size=depth / float(view.camera.K[0, 0]))
    if box is None:
        return None
    centre, yaw, size = box
    return ViewEstimate(name, view.name, centre, yaw, size, len(points), mask_pixels=int(mask.sum()))
