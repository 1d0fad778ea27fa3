"""Perceived scene vs ground truth, per object and in summary (what ``perception-eval`` prints).

Errors: centre [mm] (3D distance), size [mm] (mean absolute error of length, width and height, the
footprint sides compared longest to longest), yaw [deg] modulo the footprint's symmetry, scored
only where yaw means something (box-shaped objects; a sphere or a jar has none). Objects that look
alike (``alike``: e.g. two identical baskets) are matched to the ground truth by the assignment
with the smallest total centre error, since no view can tell which is which.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from llm_trainer.perception.fusion import angle_difference, symmetry_period
from llm_trainer.scene import ObjectState


@dataclass
class ObjectError:
    name: str
    detected: bool
    center_mm: float | None = None
    size_mm: float | None = None
    yaw_deg: float | None = None
    views: int = 0
    confidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(float(v), 2)  # noqa: E731
        return {"name": self.name, "detected": self.detected, "center_error_mm": r(self.center_mm),
                "size_error_mm": r(self.size_mm), "yaw_error_deg": r(self.yaw_deg), "views": self.views,
                "confidence": r(self.confidence)}  # fmt: skip


def object_error(est: ObjectState, truth: ObjectState, yaw_defined: bool) -> ObjectError:
    centre = 1000 * float(np.linalg.norm(np.subtract(est.position, truth.position)))
    e = sorted(est.size[:2], reverse=True) + [est.size[2]]
    t = sorted(truth.size[:2], reverse=True) + [truth.size[2]]
    size = 1000 * float(np.mean(np.abs(np.subtract(e, t))))
    yaw = math.degrees(angle_difference(est.yaw, truth.yaw, symmetry_period(truth.size))) if yaw_defined else None
    return ObjectError(truth.name, True, centre, size, yaw, est.num_views, est.confidence)


def score(
    perceived: list[ObjectState],
    truth: list[ObjectState],
    *,
    yaw_defined: set[str],
    alike: list[list[str]] | None = None,
) -> list[ObjectError]:
    """One error per ground-truth object (undetected ones marked so)."""
    est = {o.name: o for o in perceived}
    true = {o.name: o for o in truth}
    groups = [g for g in (alike or []) if len(g) > 1]
    grouped = {n for g in groups for n in g}
    out: list[ObjectError] = []
    for name, t in true.items():
        if name in grouped:
            continue
        out.append(object_error(est[name], t, name in yaw_defined) if name in est else ObjectError(name, False))
    for group in groups:
        seen = [n for n in group if n in est]
        best = None
        for perm in itertools.permutations(group, len(seen)):
            cost = sum(np.linalg.norm(np.subtract(est[s].position, true[p].position)) for s, p in zip(seen, perm))
            if best is None or cost < best[0]:
                best = (cost, perm)
        matched = dict(zip(best[1], seen)) if best else {}
        for name in group:
            if name in matched:
                out.append(object_error(est[matched[name]], true[name], name in yaw_defined))
            else:
                out.append(ObjectError(name, False))
    return out


def summary(errors: list[ObjectError]) -> dict[str, Any]:
    def median(values):
        values = [v for v in values if v is not None]
        return round(float(np.median(values)), 2) if values else None

    detected = [e for e in errors if e.detected]
    return {
        "objects": len(errors),
        "detected": len(detected),
        "detection_rate": round(len(detected) / len(errors), 4) if errors else 0.0,
        "median_center_error_mm": median(e.center_mm for e in detected),
        "median_size_error_mm": median(e.size_mm for e in detected),
        "median_yaw_error_deg": median(e.yaw_deg for e in detected),
    }


def yaw_defined_names(instance) -> set[str]:
    """Objects of a task instance whose yaw means something: box-shaped, every part a box."""
    return {o.name for o in instance.objects if o.shape == "box" and all(p.shape == "box" for p in o.parts)}


def alike_groups(queries) -> list[list[str]]:
    groups: dict[tuple, list[str]] = {}
    for q in queries:
        groups.setdefault((q.rgb, q.category), []).append(q.name)
    return [g for g in groups.values() if len(g) > 1]
