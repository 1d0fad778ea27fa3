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


def validate_plan(
    plan: list[Primitive],
    scene: SceneState,
    *,
    table_clearance: float = 0.005,
) -> list[Primitive]:
    """Return the plan with yaws normalised, or raise ``PlanRejected`` with the first reason.

    Checks: non-empty and bounded length; finite numbers; every target inside the workspace
    and at least ``table_clearance`` above the table; object names known to the scene;
    the gripper is not closed twice in a row without opening, and a plan that closes the
    gripper opens it again before it ends (nothing is left clamped in the hand).
    """
    if not plan:
        raise PlanRejected("the plan is empty")
    if len(plan) > MAX_PLAN_LENGTH:
        raise PlanRejected(f"the plan has {len(plan)} primitives, more than the limit of {MAX_PLAN_LENGTH}")
    known = set(scene.names())
    checked: list[Primitive] = []
    closed = False
    for i, prim in enumerate(plan):
        if prim.kind == PrimitiveKind.MOVE_GRIPPER:
            if prim.position is None or len(prim.position) != 3:
                raise PlanRejected("move_gripper needs a position [x, y, z]", i)
            values = (*prim.position, prim.yaw)
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
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
            checked.append(Primitive.move(prim.position, normalize_yaw(prim.yaw)))
        elif prim.kind == PrimitiveKind.CLOSE_GRIPPER:
            if prim.object_name and prim.object_name not in known:
                raise PlanRejected(
                    f"close_gripper names unknown object {prim.object_name!r} (known: {', '.join(sorted(known))})", i
                )
            if closed:
                raise PlanRejected("close_gripper while the gripper is already closed", i)
            closed = True
            checked.append(prim)
        elif prim.kind == PrimitiveKind.OPEN_GRIPPER:
            closed = False
            checked.append(prim)
        else:  # pragma: no cover - the enum has three members
            raise PlanRejected(f"unknown primitive kind {prim.kind!r}", i)
    if closed:
        raise PlanRejected("the plan ends with the gripper closed; release the object with open_gripper()")
    return checked
