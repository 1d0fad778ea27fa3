"""The classical backends: objects found by colour, for the simulator's coloured primitives (and a
lab scene with known, distinct object colours in ``config/perception.yaml``).

Colour is compared in CIELAB with the lightness down-weighted: shading and the cameras' angles
change how bright a face looks far more than its hue. The mask is the connected region of
matching colour at the point (OpenCV), opened to drop single-pixel speckle.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from llm_trainer.perception.stages import Pointer, Segmenter
from llm_trainer.perception.views import CameraView, ObjectQuery


@dataclass
class ColourConfig:
    max_distance: float = 22.0  # CIELAB distance (lightness weighted by ``lightness_weight``)
    lightness_weight: float = 0.25
    # A target with less chroma than this (white, grey, black) is matched on full lightness and a
    # tighter distance: shading then matters, but so does not confusing it with the beige table.
    achromatic_chroma: float = 12.0
    achromatic_distance: float = 10.0
    min_pixels: int = 12  # a smaller region is noise, not an object
    # A region whose median world point lies outside this box [m] (x0, x1, y0, y1, z0, z1) is not an
    # object on the table (the arm, the floor, the background).
    region: tuple[float, float, float, float, float, float] = (0.05, 0.95, -0.7, 0.7, -0.01, 0.35)

    def validate(self) -> None:
        if self.max_distance <= 0 or self.min_pixels < 1 or self.lightness_weight < 0:
            raise ValueError("colour backend thresholds must be positive")


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def colour_mask(view: CameraView, rgb: tuple[int, int, int], config: ColourConfig) -> np.ndarray:
    image = _lab(view.rgb)
    target = _lab(np.array([[rgb]], dtype=np.uint8))[0, 0]
    d = image - target
    achromatic = float(np.hypot(target[1], target[2])) < config.achromatic_chroma
    weight = 1.0 if achromatic else config.lightness_weight
    distance = np.sqrt(weight * d[..., 0] ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2)
    limit = config.achromatic_distance if achromatic else config.max_distance
    mask = ((distance < limit) & (view.depth_m > 0)).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))


def regions(view: CameraView, rgb: tuple[int, int, int], config: ColourConfig) -> tuple[np.ndarray, list[int]]:
    """Connected regions of the colour that plausibly are objects on the table, largest first:
    (label image, labels)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(colour_mask(view, rgb, config), connectivity=8)
    x0, x1, y0, y1, z0, z1 = config.region
    keep = []
    for k in np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1:
        if stats[k, cv2.CC_STAT_AREA] < config.min_pixels:
            break
        points = view.camera.world_points(view.depth_m, labels == k)
        if not len(points):
            continue
        x, y, z = np.median(points, axis=0)
        if x0 <= x <= x1 and y0 <= y <= y1 and z0 <= z <= z1:
            keep.append(int(k))
    return labels, keep


def _inner_pixel(labels: np.ndarray, k: int) -> tuple[float, float]:
    """The region's pixel nearest its centroid (a centroid can fall outside a concave region)."""
    v, u = np.nonzero(labels == k)
    i = int(np.argmin((u - u.mean()) ** 2 + (v - v.mean()) ** 2))
    return float(u[i]), float(v[i])


class ColourPointer(Pointer):
    name = "colour"

    def __init__(self, config: ColourConfig | None = None):
        self.config = config or ColourConfig()

    def point(self, view: CameraView, queries: list[ObjectQuery]) -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = {}
        cache: dict[tuple[int, int, int], list[tuple[float, float]]] = {}
        for q in queries:
            if q.rgb is None:
                out[q.name] = []
                continue
            if q.rgb not in cache:
                labels, keep = regions(view, q.rgb, self.config)
                alike = sum(1 for other in queries if other.rgb == q.rgb)
                cache[q.rgb] = [_inner_pixel(labels, k) for k in keep[:alike]]
            out[q.name] = list(cache[q.rgb])
        return out


class ColourSegmenter(Segmenter):
    name = "colour"

    def __init__(self, config: ColourConfig | None = None):
        self.config = config or ColourConfig()

    def segment(self, view: CameraView, query: ObjectQuery, pixel: tuple[float, float]) -> np.ndarray | None:
        if query.rgb is None:
            return None
        n, labels, stats, _ = cv2.connectedComponentsWithStats(
            colour_mask(view, query.rgb, self.config), connectivity=8
        )
        u, v = int(round(pixel[0])), int(round(pixel[1]))
        if not (0 <= v < labels.shape[0] and 0 <= u < labels.shape[1]) or labels[v, u] == 0:
            return None
        k = labels[v, u]
        if stats[k, cv2.CC_STAT_AREA] < self.config.min_pixels:
            return None
        return labels == k
