"""The perception pipeline: per view point -> segment -> lift, then fuse over views.

Backends come from ``config/perception.yaml`` (``PerceptionConfig``). A camera that delivers no
frame simply contributes no view: the others still fuse (a dead camera degrades, never crashes),
and an object that no view saw is listed in ``missing``, never invented.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llm_trainer.config import config_dir, load_section
from llm_trainer.perception.backends.colour import ColourConfig
from llm_trainer.perception.fusion import FusionConfig, fuse
from llm_trainer.perception.lifting import LiftingConfig, lift
from llm_trainer.perception.stages import Pointer, Segmenter
from llm_trainer.perception.views import CameraView, ObjectQuery, ViewEstimate
from llm_trainer.scene import ObjectState

POINTING = ("colour", "molmo", "owlv2")
SEGMENTATION = ("colour", "sam")
GRASP = ("geometric", "m2t2")


@dataclass
class ModelPaths:
    molmo: str = ""  # a local Hugging Face folder (nothing is downloaded)
    sam: str = ""
    owlv2: str = ""
    device: str = "cpu"


@dataclass
class PerceptionConfig:
    pointing: str = "colour"
    segmentation: str = "colour"
    grasp: str = "geometric"  # geometric (the box centre) | m2t2 (where installed)
    lifting: LiftingConfig = field(default_factory=LiftingConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    colour: ColourConfig = field(default_factory=ColourConfig)
    models: ModelPaths = field(default_factory=ModelPaths)

    def validate(self) -> None:
        if self.pointing not in POINTING:
            raise ValueError(f"pointing must be one of {', '.join(POINTING)}, got {self.pointing!r}")
        if self.segmentation not in SEGMENTATION:
            raise ValueError(f"segmentation must be one of {', '.join(SEGMENTATION)}, got {self.segmentation!r}")
        if self.grasp not in GRASP:
            raise ValueError(f"grasp must be one of {', '.join(GRASP)}, got {self.grasp!r}")


def load_perception_config(path=None) -> PerceptionConfig:
    return load_section(PerceptionConfig, path or config_dir() / "perception.yaml", "perception")


@dataclass
class PerceptionResult:
    objects: list[ObjectState]
    missing: list[str]
    views: list[ViewEstimate]
    cameras: list[str]
    seconds: dict[str, float]  # stage -> wall time of this frame set
    backends: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [o.to_dict() for o in self.objects],
            "missing": self.missing,
            "cameras": self.cameras,
            "views": [
                {
                    "name": v.name,
                    "camera": v.camera,
                    "center": v.center.round(4).tolist(),
                    "yaw": round(v.yaw, 4),
                    "size": v.size.round(4).tolist(),
                    "points": v.points,
                    "pixel": v.pixel,
                }  # fmt: skip
                for v in self.views
            ],
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "backends": self.backends,
        }


def make_pointer(config: PerceptionConfig) -> Pointer:
    if config.pointing == "colour":
        from llm_trainer.perception.backends.colour import ColourPointer

        return ColourPointer(config.colour)
    from llm_trainer.perception.backends import models

    return models.make_pointer(config)


def make_segmenter(config: PerceptionConfig) -> Segmenter:
    if config.segmentation == "colour":
        from llm_trainer.perception.backends.colour import ColourSegmenter

        return ColourSegmenter(config.colour)
    from llm_trainer.perception.backends import models

    return models.make_segmenter(config)


class Perception:
    def __init__(self, config: PerceptionConfig | None = None):
        self.config = config or PerceptionConfig()
        self.config.validate()
        if self.config.grasp == "m2t2":
            from llm_trainer.perception.backends import models

            models.require_m2t2()
        self.pointer = make_pointer(self.config)
        self.segmenter = make_segmenter(self.config)

    def perceive(self, views: list[CameraView], queries: list[ObjectQuery]) -> PerceptionResult:
        seconds = {"pointing": 0.0, "segmentation": 0.0, "lifting": 0.0, "fusion": 0.0}
        estimates: list[ViewEstimate] = []
        groups: list[list[ObjectQuery]] = []
        for view in views:
            t0 = time.perf_counter()
            candidates = self.pointer.point(view, queries)
            seconds["pointing"] += time.perf_counter() - t0
            for group in _alike(queries, candidates):
                if group not in groups:
                    groups.append(group)
                pixels = candidates.get(group[0].name) or []
                for pixel in pixels[: len(group)]:
                    t1 = time.perf_counter()
                    mask = self.segmenter.segment(view, group[0], pixel)
                    t2 = time.perf_counter()
                    seconds["segmentation"] += t2 - t1
                    if mask is None:
                        continue
                    estimate = lift(view, group[0].name, mask, self.config.lifting)
                    seconds["lifting"] += time.perf_counter() - t2
                    if estimate is not None:
                        estimate.pixel = pixel
                        estimates.append(estimate)
        t3 = time.perf_counter()
        fused: dict[str, ObjectState] = {}
        for group in _merge_groups(groups, queries):
            seen = [e for e in estimates if e.name in {q.name for q in group}]
            for query, cluster in zip(group, _clusters(seen, len(group), self.config.fusion.outlier_distance)):
                state = fuse(query.name, cluster, len(views), self.config.fusion, query.category)
                if state is not None:
                    fused[query.name] = state
        objects = [fused[q.name] for q in queries if q.name in fused]
        missing = [q.name for q in queries if q.name not in fused]
        seconds["fusion"] = time.perf_counter() - t3
        backends = {"pointing": self.pointer.name, "segmentation": self.segmenter.name, "grasp": self.config.grasp}
        return PerceptionResult(objects, missing, estimates, [v.name for v in views], seconds, backends)


def _alike(queries: list[ObjectQuery], candidates: dict[str, list]) -> list[list[ObjectQuery]]:
    """Queries grouped by the candidates the pointer gave them: objects that look alike share them."""
    groups: list[list[ObjectQuery]] = []
    for q in queries:
        for g in groups:
            if candidates.get(q.name) and candidates.get(q.name) == candidates.get(g[0].name):
                g.append(q)
                break
        else:
            groups.append([q])
    return groups


def _merge_groups(groups: list[list[ObjectQuery]], queries: list[ObjectQuery]) -> list[list[ObjectQuery]]:
    """One group per object over all views: a view that saw only one of two alike objects still
    groups them, so the largest grouping any view found wins."""
    out: list[list[ObjectQuery]] = []
    for q in queries:
        mine = max((g for g in groups if q in g), key=len, default=[q])
        if not any(q in g for g in out):
            out.append([m for m in mine if not any(m in g for g in out)])
    return [g for g in out if g]


def _clusters(estimates: list[ViewEstimate], k: int, radius: float) -> list[list[ViewEstimate]]:
    """Up to ``k`` objects among the views' estimates of alike objects, by world position: greedy
    clusters within ``radius``, the ``k`` seen by most views, ordered by y then x (so names within a
    group of look-alikes are assigned by place, the same way on every frame set)."""
    if k == 1:
        return [estimates]
    clusters: list[list[ViewEstimate]] = []
    for e in sorted(estimates, key=lambda e: -e.points):
        for c in clusters:
            if np.linalg.norm(np.median([x.center for x in c], axis=0) - e.center) <= radius and all(
                x.camera != e.camera for x in c
            ):
                c.append(e)
                break
        else:
            clusters.append([e])
    best = sorted(clusters, key=lambda c: (-len(c), -sum(x.points for x in c)))[:k]
    return sorted(best, key=lambda c: tuple(np.median([x.center for x in c], axis=0)[[1, 0]]))
