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


#: Primitive shapes an object (or one part of a compound object) can be built from.
SHAPES = ("box", "cylinder", "sphere", "capsule", "ellipsoid")

COLOR_NAMES: tuple[str, ...] = tuple(COLORS)


@dataclass(frozen=True)
class Part:
    """One primitive of a compound object, placed in the object's frame.

    The object's frame has its origin at the centre of the object's bounding box (what the scene
    state reports) and its z axis up. ``size`` is the part's full extent in its own frame before
    ``euler`` turns it: box (length, width, height); cylinder and capsule (diameter, diameter,
    length along their z axis, a capsule's caps included); sphere (diameter, diameter, diameter);
    ellipsoid (three diameters). ``rgba`` None takes the object's colour; ``collide`` False makes
    a purely visual part (a label, a stripe).
    """

    shape: str
    size: tuple[float, float, float]
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    euler: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rgba: tuple[float, float, float, float] | None = None
    collide: bool = True

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown part shape {self.shape!r} (known: {', '.join(SHAPES)})")
        if any(not (v > 0 and math.isfinite(v)) for v in self.size):
            raise ValueError(f"part size must be positive and finite, got {self.size}")
        if self.shape == "capsule" and self.size[2] <= self.size[0]:
            raise ValueError(f"a capsule must be longer than its diameter, got {self.size}")

    def volume(self) -> float:
        a, b, c = self.size
        if self.shape == "box":
            return a * b * c
        if self.shape == "cylinder":
            return math.pi * (a / 2) ** 2 * c
        if self.shape == "capsule":
            r = a / 2
            return math.pi * r * r * (c - a) + 4 / 3 * math.pi * r**3
        return 4 / 3 * math.pi * (a / 2) * (b / 2) * (c / 2)  # sphere, ellipsoid


@dataclass
class ObjectSpec:
    """An object the simulator spawns.

    ``size`` is the full length/width/height [m] of its bounding box in its own frame, and
    ``position`` the centre of that box: that is what the scene state reports to planners. A
    plain object is one ``shape`` filling ``size``; a compound one (a bin, a peg, a hoop) lists
    its ``parts`` relative to that centre. ``movable`` objects get a free joint; the others are
    fixtures welded to the table.
    """

    name: str
    category: str
    size: tuple[float, float, float]
    position: tuple[float, float, float]
    yaw: float = 0.0
    rgba: tuple[float, float, float, float] = (0.6, 0.6, 0.6, 1.0)
    movable: bool = True
    mass: float = 0.1
    shape: str = "box"
    parts: tuple[Part, ...] = ()

    def geometry(self) -> tuple[Part, ...]:
        """The parts the simulator builds: ``parts``, or one ``shape`` filling the bounding box."""
        return self.parts or (Part(self.shape, tuple(self.size)),)


@dataclass
class TaskInstance:
    """One concrete episode of a task: what to spawn, what to say, what counts as done."""

    task_name: str
    seed: int
    instruction: str
    goal: dict[str, Any]
    objects: list[ObjectSpec]


@dataclass(frozen=True)
class Grasp:
    """Where to hold an object, in its own frame: ``offset`` from its centre [m] and the hand's
    yaw relative to the object's yaw [rad] (the fingers close along the hand's y axis, so yaw 0
    closes them along the object's y axis). The hand is symmetric under a half turn."""

    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw: float = 0.0


@dataclass(frozen=True)
class PickPlace:
    """One pick-and-place step of an oracle plan: move ``obj`` onto ``target`` (object or region).

    ``place_xy`` is where the object's centre goes. ``place_z`` is the height of the surface the
    object is put on (for a container: its rim, and the object drops in); the oracle adds the
    release height (``release_height``, or its configured one) and the height of the grasp above
    the object's bottom. ``place_yaw`` turns the object onto that yaw (None: keep the grasp yaw).
    ``grasps`` lists where the object may be held (the oracle picks the one with the most room
    for the hand); empty means at its centre, or below the top of a tall object.
    """

    obj: str
    target: str
    place_xy: tuple[float, float]
    place_z: float
    place_yaw: float | None = None
    grasps: tuple[Grasp, ...] = ()
    release_height: float | None = None


@dataclass
class SuccessReport:
    success: bool
    conditions: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"success": self.success, "conditions": self.conditions, "details": self.details}


#: Where the centres of objects the robot handles may be (inside the workspace and all three camera views).
PLACEMENT_REGION = (0.35, 0.65, -0.25, 0.25)
#: Where the whole footprint of a fixture (bin, grill, hoop) may lie: still on the table, reachable and in view.
FIXTURE_REGION = (0.28, 0.72, -0.34, 0.34)


class Task(ABC):
    """Base class of every task in the registry.

    A task is data (its name, instruction template, the attribute values the template's
    placeholders take, a description) plus three small functions: ``sample`` (a seeded episode),
    ``check_success`` (the predicate on the final state) and, for tasks a pick-and-place script
    can solve, ``oracle_subgoals``.
    """

    name: ClassVar[str]
    instruction_template: ClassVar[str]
    description: ClassVar[str] = ""
    oracle_solvable: ClassVar[bool] = True
    #: The values each placeholder of the template is drawn from (for listings and prompt writers).
    attributes: ClassVar[dict[str, tuple[str, ...]]] = {}

    #: Where objects may be placed (inside the workspace and all three camera views).
    placement_region: ClassVar[tuple[float, float, float, float]] = PLACEMENT_REGION

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
    occupied: list[tuple[float, float, float]] | None = None,
) -> list[tuple[float, float]]:
    """Rejection-sample non-overlapping footprints (circles of ``radii``) inside ``region``.

    ``occupied`` holds circles (x, y, r) already placed that the new ones must keep clear of; the
    new circles are appended to it, so successive calls can place groups in different regions.
    """
    x0, x1, y0, y1 = region
    placed = occupied if occupied is not None else []
    out: list[tuple[float, float]] = []
    for r in radii:
        if x1 - x0 < 2 * r or y1 - y0 < 2 * r:
            raise RuntimeError(f"a footprint of radius {r:.3f} m does not fit in region {region}")
        for _ in range(max_tries):
            x = rng.uniform(x0 + r, x1 - r)
            y = rng.uniform(y0 + r, y1 - r)
            if all(math.hypot(x - px, y - py) >= r + pr + clearance for px, py, pr in placed):
                placed.append((x, y, r))
                out.append((x, y))
                break
        else:
            raise RuntimeError(f"could not place {len(radii)} objects in region {region} without overlap")
    return out


def sample_layout(
    rng: np.random.Generator,
    groups: list[tuple[list[float], tuple[float, float, float, float], float]],
    *,
    attempts: int = 200,
) -> list[list[tuple[float, float]]]:
    """Non-overlapping footprints for groups of objects, each group in its own region.

    ``groups`` holds (radii, region, clearance); the groups are placed in order, each clear of all
    circles placed before it. A layout that paints itself into a corner (a big fixture placed where
    the rest no longer fits) is started over, up to ``attempts`` times; all draws come from ``rng``,
    so a seed still gives one layout.
    """
    for _ in range(attempts):
        occupied: list[tuple[float, float, float]] = []
        try:
            return [
                sample_positions(rng, radii, region, clearance=clearance, occupied=occupied, max_tries=300)
                for radii, region, clearance in groups
            ]
        except RuntimeError:
            continue
    raise RuntimeError(f"no layout found for {sum(len(g[0]) for g in groups)} objects in {attempts} attempts")


def pick_colors(rng: np.random.Generator, n: int, exclude: tuple[str, ...] = ()) -> list[str]:
    """``n`` distinct colour names from ``COLORS`` (none of ``exclude``), in random order."""
    names = [c for c in COLORS if c not in exclude]
    return [str(c) for c in rng.choice(names, size=n, replace=False)]


def rgba_of(color: str, alpha: float = 1.0) -> tuple[float, float, float, float]:
    return (*COLORS[color], alpha)


def free_spot(
    scene: SceneState,
    radius: float,
    regions: tuple[tuple[float, float, float, float], ...] = (PLACEMENT_REGION, FIXTURE_REGION),
    *,
    near: tuple[float, float] = (0.5, 0.0),
    tall: float = 0.06,
    hand_reach: float = 0.15,
    finger_reach: float = 0.06,
    margin: float = 0.015,
    step: float = 0.01,
) -> tuple[float, float]:
    """A spot on the table for a footprint of ``radius``, where the hand can put it down: clear of
    every object by the reach of the open fingers (of objects taller than ``tall``, by the reach of
    the hand body) plus ``margin``. Of the free spots in the first region that has one, the one
    nearest ``near``."""
    for x0, x1, y0, y1 in regions:
        best, best_d = None, math.inf
        for x in np.arange(x0 + radius, x1 - radius + 1e-9, step):
            for y in np.arange(y0 + radius, y1 - radius + 1e-9, step):
                ok = all(
                    math.hypot(x - o.position[0], y - o.position[1])
                    >= max(radius, hand_reach if o.top_z > tall else finger_reach) + footprint_radius(o.size) + margin
                    for o in scene.objects
                )
                d = math.hypot(x - near[0], y - near[1])
                if ok and d < best_d:
                    best, best_d = (float(x), float(y)), d
        if best is not None:
            return best
    raise ValueError(f"no free spot of radius {radius} m in regions {regions}")


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
