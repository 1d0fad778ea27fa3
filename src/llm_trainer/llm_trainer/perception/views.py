"""What perception consumes and produces, independent of where frames come from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llm_trainer.sensors.cameras import CameraModel


@dataclass
class CameraView:
    """One synchronised RGB-D frame of one calibrated camera (depth aligned to colour, metres)."""

    camera: CameraModel
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_m: np.ndarray  # (H, W) float32, 0 where the sensor has no depth
    stamp: float = 0.0

    @property
    def name(self) -> str:
        return self.camera.name


@dataclass(frozen=True)
class ObjectQuery:
    """An object perception must find: its name (what the planner calls it), category, and what
    the backends may use to find it: words for open-vocabulary models, a colour for the classical one."""

    name: str
    category: str = "object"
    description: str = ""  # e.g. "red block"; default: the name with spaces
    rgb: tuple[int, int, int] | None = None  # appearance for the classical colour backend (0-255)

    def phrase(self) -> str:
        return self.description or self.name.replace("_", " ")


@dataclass
class ViewEstimate:
    """One object as one view saw it: a world-frame box, and where in the image it was found."""

    name: str
    camera: str
    center: np.ndarray  # (3,)
    yaw: float
    size: np.ndarray  # (3,) length (along yaw), width, height
    points: int  # world points behind the box
    pixel: tuple[float, float] | None = None  # the pointing stage's (u, v)
    mask_pixels: int = 0
    stages: dict[str, str] = field(default_factory=dict)  # stage -> backend that ran
