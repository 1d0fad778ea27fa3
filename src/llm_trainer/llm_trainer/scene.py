"""The scene state a planner sees (BLAZER / MALMM): objects with centre, yaw and metric size.

Frame convention (MALMM's prompt): x to the right, y away from the viewer, z up, metres,
origin on the floor below the robot base. Everything here is plain Python so that tests,
the CLI and the ROS nodes share one definition; ``llm_trainer.ros.conversions`` maps it
to and from ``llm_trainer_interfaces/SceneState``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any


def normalize_yaw(yaw: float) -> float:
    """Map an angle to (-pi, pi]."""
    wrapped = math.atan2(math.sin(yaw), math.cos(yaw))
    return math.pi if wrapped == -math.pi else wrapped


def _finite(value: Any, what: str) -> float:
    """``value`` as a finite float, or a ValueError that names ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned box the tool centre point must stay inside [m]."""

    x_min: float = 0.2
    x_max: float = 0.75
    y_min: float = -0.4
    y_max: float = 0.4
    z_min: float = 0.0
    z_max: float = 0.6

    def contains(self, p: tuple[float, float, float] | list[float], margin: float = 0.0) -> bool:
        x, y, z = p
        return (
            self.x_min - margin <= x <= self.x_max + margin
            and self.y_min - margin <= y <= self.y_max + margin
            and self.z_min - margin <= z <= self.z_max + margin
        )

    def as_list(self) -> list[float]:
        return [self.x_min, self.x_max, self.y_min, self.y_max, self.z_min, self.z_max]

    @classmethod
    def from_list(cls, values: list[float]) -> Workspace:
        if len(values) != 6:
            raise ValueError(f"workspace needs 6 numbers [x_min, x_max, y_min, y_max, z_min, z_max], got {len(values)}")
        ws = cls(*[float(v) for v in values])
        if not (ws.x_min < ws.x_max and ws.y_min < ws.y_max and ws.z_min < ws.z_max):
            raise ValueError(f"workspace bounds are empty: {values}")
        return ws


@dataclass
class ObjectState:
    """One object: 3D centre, yaw about z, and length/width/height in its own frame."""

    name: str
    position: tuple[float, float, float]
    yaw: float = 0.0
    size: tuple[float, float, float] = (0.05, 0.05, 0.05)
    category: str = "object"
    confidence: float = 1.0
    num_views: int = 0

    @property
    def top_z(self) -> float:
        return self.position[2] + self.size[2] / 2.0

    @property
    def bottom_z(self) -> float:
        return self.position[2] - self.size[2] / 2.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "position": [round(float(v), 4) for v in self.position],
            "yaw": round(float(self.yaw), 4),
            "size": [round(float(v), 4) for v in self.size],
            "confidence": round(float(self.confidence), 3),
            "num_views": int(self.num_views),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObjectState:
        try:
            position = tuple(float(v) for v in d["position"])
            size = tuple(float(v) for v in d.get("size", (0.05, 0.05, 0.05)))
            name = str(d["name"])
        except KeyError as exc:
            raise ValueError(f"object entry lacks {exc.args[0]!r}: {d}") from None
        except (TypeError, ValueError):
            raise ValueError(f"object entry has non-numeric position or size: {d}") from None
        if len(position) != 3 or len(size) != 3:
            raise ValueError(f"object {name!r}: position and size need 3 numbers each")
        if not all(math.isfinite(v) for v in (*position, *size)):
            raise ValueError(f"object {name!r}: position and size must be finite")
        if any(v <= 0 for v in size):
            raise ValueError(f"object {name!r}: size must be positive, got {list(size)}")
        yaw = _finite(d.get("yaw", 0.0), f"object {name!r}: yaw")
        confidence = _finite(d.get("confidence", 1.0), f"object {name!r}: confidence")
        return cls(
            name=name,
            position=position,  # type: ignore[arg-type]
            yaw=normalize_yaw(yaw),
            size=size,  # type: ignore[arg-type]
            category=str(d.get("category", "object")),
            confidence=confidence,
            num_views=int(d.get("num_views", 0)),
        )


@dataclass
class SceneState:
    """Objects plus the end-effector, workspace and table height: what a planner receives."""

    objects: list[ObjectState] = field(default_factory=list)
    ee_position: tuple[float, float, float] = (0.4, 0.0, 0.5)
    ee_yaw: float = 0.0
    gripper_width: float = 0.08
    workspace: Workspace = field(default_factory=Workspace)
    table_height: float = 0.0
    source: str = "ground_truth"

    def get(self, name: str) -> ObjectState:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f"no object named {name!r} in the scene (known: {', '.join(self.names()) or 'none'})")

    def names(self) -> list[str]:
        return [o.name for o in self.objects]

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [o.to_dict() for o in self.objects],
            "end_effector": {
                "position": [round(float(v), 4) for v in self.ee_position],
                "yaw": round(float(self.ee_yaw), 4),
                "gripper_width": round(float(self.gripper_width), 4),
            },
            "workspace": dict(zip(("x_min", "x_max", "y_min", "y_max", "z_min", "z_max"), self.workspace.as_list())),
            "table_height": round(float(self.table_height), 4),
            "source": self.source,
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneState:
        if not isinstance(d, dict) or not isinstance(d.get("objects"), list):
            raise ValueError("a scene is a JSON object with an 'objects' list")
        objects = [ObjectState.from_dict(o) for o in d["objects"]]
        names = [o.name for o in objects]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"object names must be unique; repeated: {', '.join(duplicates)}")
        ee = d.get("end_effector", {})
        ws = d.get("workspace")
        if isinstance(ws, dict):
            workspace = Workspace.from_list([ws[k] for k in ("x_min", "x_max", "y_min", "y_max", "z_min", "z_max")])
        elif isinstance(ws, list):
            workspace = Workspace.from_list(ws)
        else:
            workspace = Workspace()
        ee_position = ee.get("position", (0.4, 0.0, 0.5))
        if not isinstance(ee_position, (list, tuple)) or len(ee_position) != 3:
            raise ValueError(f"end_effector.position needs 3 numbers, got {ee_position!r}")
        return cls(
            objects=objects,
            ee_position=tuple(_finite(v, "end_effector.position") for v in ee_position),  # type: ignore[arg-type]
            ee_yaw=_finite(ee.get("yaw", 0.0), "end_effector.yaw"),
            gripper_width=_finite(ee.get("gripper_width", 0.08), "end_effector.gripper_width"),
            workspace=workspace,
            table_height=_finite(d.get("table_height", 0.0), "table_height"),
            source=str(d.get("source", "ground_truth")),
        )

    @classmethod
    def from_json(cls, text: str) -> SceneState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"scene is not valid JSON: {exc}") from None
        return cls.from_dict(data)
