"""What the hand holds: one model for the plan checks, the executor's world model and dynamic replanning.

Before this module the question was answered three ways with three tolerances (the plan check 15 mm
from the box, the executor's world 20 and 30 mm from a grown box, dynamic replanning "the nearest
centre, however far"). Now:

- the closing fingers take the object whose box (yawed, 0 inside it) is nearest the TCP, if it is
  within ``GRASP_REACH`` of it; a named object only if it is that one (``object_at_tcp``);
- after a real motion the TCP is where the executor brought it, within its position tolerance: the
  executor adds that slack (``reach=GRASP_REACH + slack``) and nothing else;
- a plan that starts with the fingers stopped short of open holds the object at the TCP whose extent
  across the fingers matches the opening within ``WIDTH_MATCH`` (``held_by_width``);
- what the simulator reports (``MujocoSimulation.objects_in_gripper``: both finger pads touching) is
  the physical truth these predict; the scene API of LLM-iTeach and the recorder read that one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

#: [m] how far outside an object's box the TCP may be when the gripper closes on it
GRASP_REACH = 0.015
#: [m] how closely the fingers' opening must match an object's width across them to count as holding it
WIDTH_MATCH = 0.012
#: [m] an opening this close to fully open, or below this, holds nothing
OPEN_MARGIN = 0.005
CLOSED_ON_NOTHING = 0.004

#: (name, centre, yaw, size) of an object's box
ObjectBox = tuple[str, tuple[float, float, float], float, tuple[float, float, float]]


def box_distance(point, centre, yaw: float, size) -> float:
    """Distance from ``point`` to an object's (yawed) box; 0 inside it."""
    dx, dy, dz = point[0] - centre[0], point[1] - centre[1], point[2] - centre[2]
    c, s = math.cos(yaw), math.sin(yaw)
    local = (c * dx + s * dy, -s * dx + c * dy, dz)
    outside = [max(abs(v) - h / 2.0, 0.0) for v, h in zip(local, size)]
    return math.sqrt(sum(v * v for v in outside))


def distances(tcp, objects: Iterable[ObjectBox]) -> dict[str, float]:
    return {name: box_distance(tcp, centre, yaw, size) for name, centre, yaw, size in objects}


def object_at_tcp(tcp, objects: Iterable[ObjectBox], *, reach: float = GRASP_REACH, name: str = "") -> str | None:
    """The object the closing fingers take at ``tcp`` (``name``: only that one), or None."""
    d = distances(tcp, objects)
    if name:
        return name if name in d and d[name] <= reach else None
    if not d:
        return None
    nearest = min(d, key=d.get)
    return nearest if d[nearest] <= reach else None


def extent_across_fingers(size, object_yaw: float, hand_yaw: float) -> float:
    """Width of a box along the fingers' closing axis for a top-down grasp at ``hand_yaw``."""
    rel = object_yaw - hand_yaw
    # The fingers close along the hand's y axis, (sin yaw, -cos yaw) in the world for a top-down hand.
    return abs(size[0] * math.sin(rel)) + abs(size[1] * math.cos(rel))


def held_by_width(tcp, hand_yaw: float, finger_width: float, open_width: float, objects: Iterable[ObjectBox], *,
                  reach: float = GRASP_REACH) -> str | None:  # fmt: skip
    """The object a plan starts with in the hand: fingers stopped on it (None: open, shut, or no match)."""
    if finger_width >= open_width - OPEN_MARGIN or finger_width < CLOSED_ON_NOTHING:
        return None
    objects = list(objects)
    name = object_at_tcp(tcp, objects, reach=reach)
    if name is None:
        return None
    _, _, yaw, size = next(o for o in objects if o[0] == name)
    return name if abs(extent_across_fingers(size, yaw, hand_yaw) - finger_width) <= WIDTH_MATCH else None


def scene_boxes(scene) -> list[ObjectBox]:
    """A ``SceneState``'s objects as boxes."""
    return [(o.name, tuple(o.position), float(o.yaw), tuple(o.size)) for o in scene.objects]
