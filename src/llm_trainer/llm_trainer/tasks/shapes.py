"""Objects built from simple geometry, and the geometric predicates the tasks share.

No meshes and no third-party assets: a bin is a floor and four walls, a bowl a floor and a ring
of wall segments, a hoop a ring of bars over a net on a pole. Every factory returns an
``ObjectSpec`` whose ``size`` and ``position`` are the bounding box the scene state reports, so a
planner sees a container as a box with its rim at ``top_z``.

Predicates take ``ObjectState``s (what the simulator reports), never MuJoCo data.
"""

from __future__ import annotations

import math

import numpy as np

from llm_trainer.scene import ObjectState
from llm_trainer.tasks.base import ObjectSpec, Part, point_in_box_xy

RGBA = tuple[float, float, float, float]

#: Colours of things whose colour is not a task attribute.
WOOD: RGBA = (0.55, 0.38, 0.2, 1.0)
WICKER: RGBA = (0.72, 0.55, 0.3, 1.0)
STEEL: RGBA = (0.55, 0.57, 0.6, 1.0)
DARK: RGBA = (0.18, 0.18, 0.2, 1.0)
WHITE: RGBA = (0.92, 0.92, 0.9, 1.0)
MAT: RGBA = (0.2, 0.2, 0.2, 1.0)

#: An object counts as resting on a surface when its bottom is within this of the surface [m].
REST_TOLERANCE = 0.012

#: Categories of open containers (a floor and walls, open at the top). Their wall and floor thickness.
OPEN_CONTAINER_CATEGORIES = frozenset({"bin", "basket", "bowl", "container"})
CONTAINER_WALL = 0.008
CONTAINER_FLOOR = 0.008


def _rot(euler: tuple[float, float, float]) -> np.ndarray:
    """Rotation of MuJoCo's default ``eulerseq="xyz"`` (intrinsic x, then y, then z)."""
    a, b, c = euler
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def parts_extent(parts: list[Part]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners of the axis-aligned box around ``parts`` (rotated parts: their box's corners)."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for part in parts:
        half = np.asarray(part.size) / 2
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
        world = corners @ _rot(part.euler).T + np.asarray(part.pos)
        lo, hi = np.minimum(lo, world.min(axis=0)), np.maximum(hi, world.max(axis=0))
    return lo, hi


def compound(
    name: str,
    category: str,
    parts: list[Part],
    xy: tuple[float, float],
    yaw: float = 0.0,
    rgba: RGBA = STEEL,
    *,
    movable: bool = False,
    mass: float = 0.1,
    base_z: float = 0.0,
) -> ObjectSpec:
    """An object from ``parts`` given in a frame whose origin sits on the object's base.

    The parts are re-centred on their bounding box (whose bottom goes to ``base_z``), as the
    scene state reports objects by their box centre.
    """
    lo, hi = parts_extent(parts)
    centre = (lo + hi) / 2
    shifted = tuple(
        Part(p.shape, p.size, tuple(float(v) for v in np.asarray(p.pos) - centre), p.euler, p.rgba, p.collide)
        for p in parts
    )
    size = tuple(round(float(v), 6) for v in hi - lo)
    rot = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
    dx, dy = rot @ centre[:2]
    position = (xy[0] + float(dx), xy[1] + float(dy), base_z + float(hi[2] - lo[2]) / 2)
    return ObjectSpec(name, category, size, position, yaw, rgba, movable, mass, "box", shifted)


def box_object(
    name: str,
    category: str,
    size: tuple[float, float, float],
    xy: tuple[float, float],
    yaw: float = 0.0,
    rgba: RGBA = STEEL,
    *,
    movable: bool = True,
    mass: float = 0.1,
    base_z: float = 0.0,
) -> ObjectSpec:
    return ObjectSpec(name, category, size, (xy[0], xy[1], base_z + size[2] / 2), yaw, rgba, movable, mass, "box")


def cylinder_object(
    name: str,
    category: str,
    diameter: float,
    height: float,
    xy: tuple[float, float],
    yaw: float = 0.0,
    rgba: RGBA = STEEL,
    *,
    movable: bool = True,
    mass: float = 0.1,
    base_z: float = 0.0,
) -> ObjectSpec:
    size = (diameter, diameter, height)
    return ObjectSpec(name, category, size, (xy[0], xy[1], base_z + height / 2), yaw, rgba, movable, mass, "cylinder")


def sphere_object(
    name: str,
    category: str,
    diameter: float,
    xy: tuple[float, float],
    rgba: RGBA = STEEL,
    *,
    mass: float = 0.08,
    base_z: float = 0.0,
) -> ObjectSpec:
    size = (diameter, diameter, diameter)
    return ObjectSpec(name, category, size, (xy[0], xy[1], base_z + diameter / 2), 0.0, rgba, True, mass, "sphere")


def box_container(
    name: str,
    category: str,
    inner: tuple[float, float],
    height: float,
    xy: tuple[float, float],
    yaw: float = 0.0,
    rgba: RGBA = DARK,
    *,
    wall: float = CONTAINER_WALL,
    floor: float = CONTAINER_FLOOR,
) -> ObjectSpec:
    """An open box fixed to the table (bin, basket, container): a floor and four walls.

    Its bounding box is (inner + 2 walls) by ``height``; the rim is its ``top_z``.
    """
    lx, ly = inner
    ox, oy = lx + 2 * wall, ly + 2 * wall
    wall_h = height - floor
    zc = floor + wall_h / 2
    parts = [
        Part("box", (ox, oy, floor), (0.0, 0.0, floor / 2)),
        Part("box", (ox, wall, wall_h), (0.0, (oy - wall) / 2, zc)),
        Part("box", (ox, wall, wall_h), (0.0, -(oy - wall) / 2, zc)),
        Part("box", (wall, ly, wall_h), ((ox - wall) / 2, 0.0, zc)),
        Part("box", (wall, ly, wall_h), (-(ox - wall) / 2, 0.0, zc)),
    ]
    return compound(name, category, parts, xy, yaw, rgba)


def ring_parts(
    inner_radius: float,
    thickness: float,
    height: float,
    z: float,
    *,
    segments: int = 16,
    rgba: RGBA | None = None,
) -> list[Part]:
    """A closed ring of ``segments`` straight boxes (a polygonal tube) centred on the z axis at height ``z``."""
    r_mid = inner_radius + thickness / 2
    length = 2 * (inner_radius + thickness) * math.tan(math.pi / segments) + 0.002  # slight overlap at the joints
    parts = []
    for k in range(segments):
        a = 2 * math.pi * k / segments
        parts.append(
            Part("box", (thickness, length, height), (r_mid * math.cos(a), r_mid * math.sin(a), z), (0.0, 0.0, a), rgba)
        )
    return parts


def round_container(
    name: str,
    category: str,
    inner_radius: float,
    height: float,
    xy: tuple[float, float],
    rgba: RGBA = WHITE,
    *,
    wall: float = CONTAINER_WALL,
    floor: float = CONTAINER_FLOOR,
    segments: int = 16,
) -> ObjectSpec:
    """A round open container fixed to the table (bowl, round basket): a disc and a ring of walls."""
    wall_h = height - floor
    parts = [Part("cylinder", (2 * (inner_radius + wall), 2 * (inner_radius + wall), floor), (0.0, 0.0, floor / 2))]
    parts += ring_parts(inner_radius, wall, wall_h, floor + wall_h / 2, segments=segments)
    return compound(name, category, parts, xy, 0.0, rgba)


# ---------------------------------------------------------------------------------------------- predicates
def xy_distance(a: ObjectState, b: ObjectState | tuple[float, float]) -> float:
    bx, by = (b.position[0], b.position[1]) if isinstance(b, ObjectState) else b
    return math.hypot(a.position[0] - bx, a.position[1] - by)


def rests_on(obj: ObjectState, support: ObjectState, tol: float = REST_TOLERANCE) -> bool:
    """Is ``obj``'s bottom at ``support``'s top (within ``tol``)?"""
    return abs(obj.bottom_z - support.top_z) <= tol


def over_footprint(obj: ObjectState, support: ObjectState, margin: float = 0.0) -> bool:
    """Is ``obj``'s centre over ``support``'s (yawed) footprint, shrunk by ``margin``?"""
    return point_in_box_xy(obj.position, support.position, support.size, support.yaw, margin)


def in_box_container(obj: ObjectState, container: ObjectState, wall: float) -> bool:
    """Is ``obj``'s centre inside ``container``'s walls and below its rim (and not under its floor)?"""
    inside_walls = point_in_box_xy(obj.position, container.position, container.size, container.yaw, wall)
    return inside_walls and container.bottom_z < obj.position[2] < container.top_z


def in_round_container(obj: ObjectState, container: ObjectState, inner_radius: float) -> bool:
    """Is ``obj``'s centre inside a round container's wall and below its rim?"""
    inside_wall = xy_distance(obj, container) < inner_radius
    return inside_wall and container.bottom_z < obj.position[2] < container.top_z


def open_container_boxes(obj: ObjectState) -> list[ObjectState]:
    """An open container as the boxes it is made of (floor and four walls), for collision models that
    see the scene as boxes: a container's bounding box is not solid, objects go in and come out of it.

    Objects of other categories come back as they are. Round containers get the walls of their
    bounding square (what lies outside the round wall is free; close enough for planning).
    """
    if obj.category not in OPEN_CONTAINER_CATEGORIES:
        return [obj]
    lx, ly, h = obj.size
    w, f = CONTAINER_WALL, CONTAINER_FLOOR
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    x, y, z = obj.position
    wall_z = z + f / 2  # the walls stand on the floor: from bottom + f to the rim
    pieces = [
        ("floor", (0.0, 0.0), (lx, ly, f), z - h / 2 + f / 2),
        ("wall_px", ((lx - w) / 2, 0.0), (w, ly, h - f), wall_z),
        ("wall_nx", (-(lx - w) / 2, 0.0), (w, ly, h - f), wall_z),
        ("wall_py", (0.0, (ly - w) / 2), (lx, w, h - f), wall_z),
        ("wall_ny", (0.0, -(ly - w) / 2), (lx, w, h - f), wall_z),
    ]
    return [
        ObjectState(f"{obj.name}/{tag}", (x + c * dx - s * dy, y + s * dx + c * dy, pz), obj.yaw, size, obj.category)
        for tag, (dx, dy), size, pz in pieces
    ]
