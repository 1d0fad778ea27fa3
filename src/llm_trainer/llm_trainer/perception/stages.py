"""The per-view stages as small interfaces; backends live in ``perception.backends``.

pointing      image + object phrases -> one pixel per object (Molmo, an open-vocabulary detector,
              or the classical colour backend)
segmentation  image + pixel -> the object's mask (SAM, or the classical colour + connectivity one)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from llm_trainer.perception.views import CameraView, ObjectQuery


class Pointer(ABC):
    name = "pointer"

    @abstractmethod
    def point(self, view: CameraView, queries: list[ObjectQuery]) -> dict[str, list[tuple[float, float]]]:
        """Candidate (u, v) pixels of each queried object in this view, best first; empty where it is
        not seen. Objects that look alike (the same description or colour) may share candidates:
        the pipeline tells them apart by where they are in the world."""


class Segmenter(ABC):
    name = "segmenter"

    @abstractmethod
    def segment(self, view: CameraView, query: ObjectQuery, pixel: tuple[float, float]) -> np.ndarray | None:
        """A boolean (H, W) mask of the object at ``pixel``, or None."""


class PerceptionError(RuntimeError):
    """A backend cannot run here (not installed, no weights); the message says what is missing."""
