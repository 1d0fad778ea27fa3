"""Task specifications: what a scene holds, what the sentence says, and when the task is solved.

A task is data plus small functions (like RLBench's success conditions and MimicGen's task
specs): ``sample`` draws a concrete episode from a seed (objects, attributes in the sentence,
the structured goal), ``check_success`` is the predicate on the final simulator state, and
``oracle_subgoals`` says which pick-and-place steps solve it (for the scripted oracle planner).
Tasks know nothing about MuJoCo or ROS: they see ``SceneState`` and ``ObjectSpec`` only.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from llm_trainer.scene import SceneState, Workspace

#: Named colours used for randomised attributes ("the red block") and for rendering.
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.1, 0.1),
    "green": (0.1, 0.7, 0.15),
    "blue": (0.1, 0.25, 0.85),
    "yellow": (0.95, 0.85, 0.1),
    "orange": (0.95, 0.5, 0.05),
    "purple": (0.55, 0.15, 0.7),
    "cyan": (0.1, 0.8, 0.85),
    "magenta": (0.9, 0.15, 0.6),
}


@dataclass
class ObjectSpec:
    """An object the simulator spawns. ``size`` is the full length/width/height [m]."""

    name: str
    category: str
    size: tuple[float, float, float]
    position: tuple[float, float, float]
    yaw: float = 0.0
    rgba: tuple[float, float, float, float] = (0.6, 0.6, 0.6, 1.0)
    movable: bool = True
    mass: float = 0.1
    shape: str = "box"


@dataclass
class TaskInstance:
    """One concrete episode of a task: what to spawn, what to say, what counts as done."""

    task_name: str
    seed: int
    instruction: str
    goal: dict[str, Any]
    objects: list[ObjectSpec]


@dataclass(frozen=True)
class PickPlace:
    """One pick-and-place step of an oracle plan: move ``obj`` onto ``target`` (object or region).

    ``place_z`` is the height of the surface the object is put on; the oracle adds the object's
    half height and the release height.
    """

    obj: str
    target: str
    place_xy: tuple[float, float]
    place_z: float
    place_yaw: float | None = None


@dataclass
class SuccessReport:
    success: bool
    conditions: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"success": self.success, "conditions": self.conditions, "details": self.details}


class Task(ABC):
    """Base class of every task in the registry."""

    name: ClassVar[str]
    instruction_template: ClassVar[str]
    description: ClassVar[str] = ""
    oracle_solvable: ClassVar[bool] = True

    #: Where objects may be placed (inside the workspace and all three camera views).
    placement_region: ClassVar[tuple[float, float, float, float]] = (0.35, 0.65, -0.25, 0.25)

    @abstractmethod
    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        """Draw a concrete episode."""

    @abstractmethod
    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        """The success predicate on the (settled) final state."""

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        raise NotImplementedError(f"task {self.name!r} has no oracle solution; it is for LLM plans")

    def instance(self, seed: int) -> TaskInstance:
        return self.sample(np.random.default_rng(seed), seed)


def sample_positions(
    rng: np.random.Generator,
    radii: list[float],
    region: tuple[float, float, float, float],
    *,
    clearance: float = 0.02,
    max_tries: int = 2000,
) -> list[tuple[float, float]]:
    """Rejection-sample non-overlapping footprints (circles of ``radii``) inside ``region``."""
    x0, x1, y0, y1 = region
    placed: list[tuple[float, float, float]] = []
    for r in radii:
        for _ in range(max_tries):
            x = rng.uniform(x0 + r, x1 - r)
            y = rng.uniform(y0 + r, y1 - r)
            if all(math.hypot(x - px, y - py) >= r + pr + clearance for px, py, pr in placed):
                placed.append((x, y, r))
                break
        else:
            raise RuntimeError(f"could not place {len(radii)} objects in region {region} without overlap")
    return [(x, y) for x, y, _ in placed]


def footprint_radius(size: tuple[float, float, float]) -> float:
    return 0.5 * math.hypot(size[0], size[1])


def point_in_box_xy(
    point: tuple[float, float, float], box_centre, box_size, box_yaw: float, margin: float = 0.0
) -> bool:
    """Is ``point`` inside the (yawed) footprint of a box, shrunk by ``margin``?"""
    dx, dy = point[0] - box_centre[0], point[1] - box_centre[1]
    c, s = math.cos(-box_yaw), math.sin(-box_yaw)
    lx, ly = c * dx - s * dy, s * dx + c * dy
    return abs(lx) <= box_size[0] / 2 - margin and abs(ly) <= box_size[1] / 2 - margin


def default_workspace() -> Workspace:
    return Workspace()
