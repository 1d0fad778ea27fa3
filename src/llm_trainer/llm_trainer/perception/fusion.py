"""Fusing the views of one object: medians, a circular median of yaw under the box's symmetry,
outlier rejection, a confidence and the view count (BLAZER: median over views).

Yaw is only defined up to the footprint's symmetry: a half turn for a rectangle, a quarter turn
when length and width are nearly equal (then a view may also swap them). Views are first aligned
to the one that agrees best with the others, then averaged by median. An object no view saw is not
returned: the caller reports it missing, never invents it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm_trainer.perception.views import ViewEstimate
from llm_trainer.scene import ObjectState


@dataclass
class FusionConfig:
    square_ratio: float = 1.15  # length / width below this: yaw is symmetric under a quarter turn
    outlier_distance: float = 0.03  # [m] a view whose centre is this far from the median is dropped
    agreement_scale: float = 0.01  # [m] spread of the views' centres at which confidence halves

    def validate(self) -> None:
        if self.square_ratio < 1.0:
            raise ValueError("fusion.square_ratio must be >= 1")
        if self.outlier_distance <= 0 or self.agreement_scale <= 0:
            raise ValueError("fusion distances must be positive")


def symmetry_period(size, square_ratio: float = 1.15) -> float:
    """Yaw's period for a footprint: a quarter turn when nearly square, else a half turn."""
    length, width = sorted((float(size[0]), float(size[1])), reverse=True)
    return math.pi / 2 if width > 0 and length / width < square_ratio else math.pi


def angle_difference(a: float, b: float, period: float) -> float:
    """Smallest |a - b| modulo ``period``."""
    d = (a - b) % period
    return min(d, period - d)


def _align(view: ViewEstimate, yaw: float, period: float) -> tuple[float, np.ndarray]:
    """The view's yaw moved to within half a period of ``yaw``, and its size in that orientation."""
    size = view.size.copy()
    candidates = [(view.yaw, size), (view.yaw + math.pi / 2, size[[1, 0, 2]])]
    best = min(candidates if period < math.pi else candidates[:1], key=lambda c: angle_difference(c[0], yaw, math.pi))
    y, s = best
    y = yaw + ((y - yaw + math.pi / 2) % math.pi - math.pi / 2)
    return y, s


def fuse(name: str, views: list[ViewEstimate], total_views: int, config: FusionConfig, category: str = "object"):
    """The object's fused state (``ObjectState`` with confidence and view count), or None if unseen."""
    if not views:
        return None
    centres = np.array([v.center for v in views])
    keep = views
    if len(views) >= 3:
        median = np.median(centres, axis=0)
        keep = [v for v in views if np.linalg.norm(v.center - median) <= config.outlier_distance] or views
    centres = np.array([v.center for v in keep])
    centre = np.median(centres, axis=0)
    size0 = np.median(np.array([np.sort(v.size[:2])[::-1] for v in keep]), axis=0)
    period = symmetry_period(size0, config.square_ratio)
    # The view whose yaw agrees best with the others anchors the alignment (a circular medoid).
    anchor = min(keep, key=lambda v: sum(angle_difference(v.yaw, w.yaw, period) for w in keep)).yaw
    aligned = [_align(v, anchor, period) for v in keep]
    yaw = float(np.median([a[0] for a in aligned]))
    size = np.median(np.array([a[1] for a in aligned]), axis=0)
    yaw = (yaw + math.pi / 2) % math.pi - math.pi / 2
    spread = float(np.max(np.linalg.norm(centres - centre, axis=1))) if len(keep) > 1 else config.agreement_scale
    confidence = (len(keep) / max(1, total_views)) * (1.0 / (1.0 + spread / config.agreement_scale))
    return ObjectState(
        name=name,
        position=tuple(float(v) for v in centre),
        yaw=yaw,
        size=tuple(float(v) for v in size),
        category=category,
        confidence=round(float(confidence), 3),
        num_views=len(keep),
    )
