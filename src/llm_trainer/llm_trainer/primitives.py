"""Waypoint primitives (BLAZER / MALMM) and their validation before anything moves.

A plan is a list of three kinds of primitive:
``move_gripper(position, yaw)``, ``open_gripper()`` and ``close_gripper(object_name)``.
``validate_plan`` checks what can be checked without a robot: finite numbers, targets inside the
workspace and above the table, known object names, a sensible gripper sequence. Reachability
is checked by the executor's IK (``llm_trainer.motion``), which has the robot model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from llm_trainer.grasp import GRASP_REACH, box_distance
from llm_trainer.scene import SceneState, normalize_yaw

#: Plans longer than this are rejected as runaway model output.
MAX_PLAN_LENGTH = 200


class PrimitiveKind(IntEnum):
    # Values match llm_trainer_interfaces/msg/Primitive constants.
    MOVE_GRIPPER = 0
    OPEN_GRIPPER = 1
    CLOSE_GRIPPER = 2


@dataclass(frozen=True)
class Primitive:
    kind: PrimitiveKind
    position: tuple[float, float, float] | None = None
    yaw: float = 0.0
    object_name: str = ""

    @staticmethod
    def move(position: tuple[float, float, float] | list[float], yaw: float) -> Primitive:
        return Primitive(PrimitiveKind.MOVE_GRIPPER, tuple(float(v) for v in position), float(yaw))  # type: ignore[arg-type]

    @staticmethod
    def open() -> Primitive:
        return Primitive(PrimitiveKind.OPEN_GRIPPER)

    @staticmethod
    def close(object_name: str = "") -> Primitive:
        return Primitive(PrimitiveKind.CLOSE_GRIPPER, object_name=object_name)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == PrimitiveKind.MOVE_GRIPPER:
            assert self.position is not None
            return {
                "primitive": "move_gripper",
                "position": [round(v, 4) for v in self.position],
                "yaw": round(self.yaw, 4),
            }
        if self.kind == PrimitiveKind.OPEN_GRIPPER:
            return {"primitive": "open_gripper"}
        d: dict[str, Any] = {"primitive": "close_gripper"}
        if self.object_name:
            d["object"] = self.object_name
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Primitive:
        kind = d.get("primitive")
        if kind == "move_gripper":
            pos = d.get("position")
            if not isinstance(pos, (list, tuple)) or len(pos) != 3:
                raise ValueError(f"move_gripper needs position [x, y, z], got {pos!r}")
            return cls.move([float(v) for v in pos], float(d.get("yaw", 0.0)))
        if kind == "open_gripper":
            return cls.open()
        if kind == "close_gripper":
            return cls.close(str(d.get("object", "")))
        raise ValueError(f"unknown primitive {kind!r} (known: move_gripper, open_gripper, close_gripper)")

    def __str__(self) -> str:
        if self.kind == PrimitiveKind.MOVE_GRIPPER:
            assert self.position is not None
            x, y, z = self.position
            return f"move_gripper([{x:.3f}, {y:.3f}, {z:.3f}], yaw={self.yaw:.3f})"
        if self.kind == PrimitiveKind.OPEN_GRIPPER:
            return "open_gripper()"
        return f"close_gripper({self.object_name!r})" if self.object_name else "close_gripper()"


def plan_to_dicts(plan: list[Primitive]) -> list[dict[str, Any]]:
    return [p.to_dict() for p in plan]


def plan_from_dicts(items: list[dict[str, Any]]) -> list[Primitive]:
    return [Primitive.from_dict(d) for d in items]


class PlanRejected(ValueError):
    """A plan failed validation. ``index`` is the offending primitive (-1 for the whole plan)."""

    def __init__(self, reason: str, index: int = -1):
        self.reason = reason
        self.index = index
        super().__init__(f"primitive {index}: {reason}" if index >= 0 else reason)


#: Defaults of the gripper-sequence checks (``validate_plan`` keyword arguments).
#: [m] how far outside an object's box the TCP may be when the gripper closes on it (``grasp``: one model)
GRASP_TOLERANCE = GRASP_REACH
MAX_RELEASE_HEIGHT = 0.05  # [m] highest gap under a released object before it counts as dropped mid-air


@dataclass
class _Held:
    """An object in the closed gripper: its name, size and centre offset from the TCP at grasp time."""

    name: str
    size: tuple[float, float, float]
    offset: tuple[float, float, float]
    yaw_offset: float


def _fmt(p) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in p) + "]"


def validate_plan(
    plan: list[Primitive],
    scene: SceneState,
    *,
    table_clearance: float = 0.005,
    grasp_tolerance: float | None = GRASP_TOLERANCE,
    max_release_height: float | None = MAX_RELEASE_HEIGHT,
    start_holding: str = "",
    allow_ending_closed: bool = False,
) -> list[Primitive]:
    """Return the plan with yaws normalised, or raise ``PlanRejected`` with the first reason.

    Checks, in order, for each primitive:
      * non-empty and bounded length; finite numbers;
      * every target inside the workspace and at least ``table_clearance`` above the table;
      * object names known to the scene;
      * the gripper sequence, by following the plan on the scene (held objects move with the TCP):
        ``close_gripper`` only on an object (the TCP within ``grasp_tolerance`` of the named
        object's box, or of some object's box when no name is given; ``None`` skips this), never
        twice without an ``open_gripper``; ``open_gripper`` while holding an object only where the
        object rests within ``max_release_height`` of the surface below it (table or the top of an
        object under it): a release mid-air is refused unless ``max_release_height`` is ``None``;
      * the plan does not end with the gripper closed (nothing is left clamped in the hand).

    ``start_holding`` names an object already in the closed gripper and ``allow_ending_closed``
    accepts a plan that stops holding something (dynamic replanning checks one step at a time).
    Reachability needs the robot model: ``llm_trainer.planning.reachability``.
    """
    if not plan:
        raise PlanRejected("the plan is empty")
    if len(plan) > MAX_PLAN_LENGTH:
        raise PlanRejected(f"the plan has {len(plan)} primitives, more than the limit of {MAX_PLAN_LENGTH}")
    known = set(scene.names())
    # Where each object is as the plan unfolds: (centre, yaw, size).
    where = {o.name: (tuple(o.position), o.yaw, tuple(o.size)) for o in scene.objects}
    tcp: tuple[float, float, float] = tuple(float(v) for v in scene.ee_position)  # type: ignore[assignment]
    tcp_yaw = float(scene.ee_yaw)
    held: _Held | None = None
    closed = False
    if start_holding:
        if start_holding not in where:
            raise PlanRejected(f"start_holding names unknown object {start_holding!r}")
        centre, yaw, size = where[start_holding]
        held = _Held(start_holding, size, tuple(c - t for c, t in zip(centre, tcp)), yaw - tcp_yaw)  # type: ignore[arg-type]
        closed = True
    checked: list[Primitive] = []
    for i, prim in enumerate(plan):
        if prim.kind == PrimitiveKind.MOVE_GRIPPER:
            if prim.position is None or len(prim.position) != 3:
                raise PlanRejected("move_gripper needs a position [x, y, z]", i)
            values = (*prim.position, prim.yaw)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise PlanRejected(f"non-finite number in {prim}", i)
            if not scene.workspace.contains(prim.position):
                ws = scene.workspace
                raise PlanRejected(
                    f"target {[round(v, 3) for v in prim.position]} is outside the workspace "
                    f"x[{ws.x_min}, {ws.x_max}] y[{ws.y_min}, {ws.y_max}] z[{ws.z_min}, {ws.z_max}]",
                    i,
                )
            if prim.position[2] < scene.table_height + table_clearance:
                raise PlanRejected(
                    f"target z={prim.position[2]:.3f} is not above the table "
                    f"(table at {scene.table_height:.3f} m, clearance {table_clearance} m)",
                    i,
                )
            tcp, tcp_yaw = tuple(float(v) for v in prim.position), float(prim.yaw)  # type: ignore[assignment]
            if held is not None:
                centre = tuple(t + o for t, o in zip(tcp, held.offset))
                where[held.name] = (centre, tcp_yaw + held.yaw_offset, held.size)
            checked.append(Primitive.move(prim.position, normalize_yaw(prim.yaw)))
        elif prim.kind == PrimitiveKind.CLOSE_GRIPPER:
            if prim.object_name and prim.object_name not in known:
                raise PlanRejected(
                    f"close_gripper names unknown object {prim.object_name!r} (known: {', '.join(sorted(known))})", i
                )
            if closed:
                raise PlanRejected("close_gripper while the gripper is already closed", i)
            closed = True
            grasped = _object_at_tcp(prim.object_name, tcp, where, grasp_tolerance, i)
            if grasped:
                centre, yaw, size = where[grasped]
                held = _Held(grasped, size, tuple(c - t for c, t in zip(centre, tcp)), yaw - tcp_yaw)  # type: ignore[arg-type]
            checked.append(prim)
        elif prim.kind == PrimitiveKind.OPEN_GRIPPER:
            if held is not None:
                where[held.name] = _released(held, where, scene, max_release_height, i)
            closed, held = False, None
            checked.append(prim)
        else:  # pragma: no cover - the enum has three members
            raise PlanRejected(f"unknown primitive kind {prim.kind!r}", i)
    if closed and not allow_ending_closed:
        raise PlanRejected("the plan ends with the gripper closed; release the object with open_gripper()")
    return checked


def _object_at_tcp(name: str, tcp, where: dict, tolerance: float | None, index: int) -> str:
    """The object the fingers close on (``name`` or the nearest one), or a rejection: no closing on nothing."""
    if tolerance is None:
        return name
    distances = {n: box_distance(tcp, c, y, s) for n, (c, y, s) in where.items()}
    if name:
        d = distances[name]
        if d > tolerance:
            centre = where[name][0]
            raise PlanRejected(
                f"close_gripper({name!r}) with the gripper at {_fmt(tcp)}, {d:.3f} m from {name} "
                f"(centre {_fmt(centre)}; grasp within {tolerance} m of the object): it would close on nothing",
                index,
            )
        return name
    if not distances or min(distances.values()) > tolerance:
        nearest = min(distances, key=distances.get) if distances else "none"
        raise PlanRejected(
            f"close_gripper() with the gripper at {_fmt(tcp)} and no object between the fingers "
            f"(nearest: {nearest}): it would close on nothing",
            index,
        )
    return min(distances, key=distances.get)


def _released(held: _Held, where: dict, scene: SceneState, max_height: float | None, index: int):
    """Where a released object comes to rest; a rejection if it would be dropped from too high."""
    centre, yaw, size = where[held.name]
    bottom = centre[2] - size[2] / 2.0
    support, below = scene.table_height, "the table"
    for name, (c, y, s) in where.items():
        if name == held.name:
            continue
        top = c[2] + s[2] / 2.0
        # Under the released object's centre, and not above its bottom by more than a finger's depth.
        if box_distance((centre[0], centre[1], c[2]), c, y, s) <= 1e-9 and support < top <= bottom + 0.02:
            support, below = top, name
    gap = bottom - support
    if max_height is not None and gap > max_height:
        raise PlanRejected(
            f"open_gripper releases {held.name} {gap:.3f} m above {below} (more than {max_height} m): "
            "it would be dropped mid-air; lower it first",
            index,
        )
    return ((centre[0], centre[1], support + size[2] / 2.0), yaw, size)
