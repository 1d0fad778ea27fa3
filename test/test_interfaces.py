"""llm_trainer_interfaces: every generated type survives a CDR round trip, and constants match the core."""

from __future__ import annotations

import copy
import importlib
import itertools
import re
from typing import Any

import pytest
from rclpy import serialization as rclpy_serialization

from llm_trainer_interfaces import action, msg, srv

# Kilted also generates the service/action internals (X_Event, X_SendGoal_Request, ...): all are
# public types of the package, all get the round trip.
ALL_TYPES = {
    f"{module.__name__.rsplit('.', 1)[1]}/{name}": getattr(module, name)
    for module in (msg, srv, action)
    for name in sorted(dir(module))
    if not name.startswith("_") and hasattr(getattr(module, name), "get_fields_and_field_types")
}
# Services and actions themselves are namespaces; round-trip their parts as well.
for _module in (srv, action):
    for _name in dir(_module):
        _obj = getattr(_module, _name)
        for _part in ("Request", "Response", "Goal", "Result", "Feedback"):
            if hasattr(_obj, _part) and not hasattr(_obj, "get_fields_and_field_types"):
                ALL_TYPES[f"{_module.__name__.rsplit('.', 1)[1]}/{_name}.{_part}"] = getattr(_obj, _part)
        if hasattr(_obj, "Impl") and hasattr(_obj.Impl, "FeedbackMessage"):
            ALL_TYPES[f"action/{_name}.Impl.FeedbackMessage"] = _obj.Impl.FeedbackMessage

EXPECTED_DEFINITIONS = {
    "msg/ObjectState", "msg/SceneState", "msg/Primitive", "msg/PrimitiveStatus", "msg/PrimitiveEvent",
    "srv/PlanTask.Request", "srv/PlanTask.Response", "srv/ResetScene.Request", "srv/ResetScene.Response",
    "srv/CheckSuccess.Request", "srv/CheckSuccess.Response",
    "srv/EpisodeControl.Request", "srv/EpisodeControl.Response",
    "action/ExecutePlan.Goal", "action/ExecutePlan.Result", "action/ExecutePlan.Feedback",
    "action/FollowJointTrajectory.Goal", "action/FollowJointTrajectory.Result",
    "action/FollowJointTrajectory.Feedback",
    "action/GripperCommand.Goal", "action/GripperCommand.Result", "action/GripperCommand.Feedback",
}  # fmt: skip

_INT_TYPES = {"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "char", "byte"}
_FLOAT_TYPES = {"float", "double", "long double"}
_ARRAY = re.compile(r"^(?P<base>.+)\[(?P<n>\d+)\]$")
_SEQUENCE = re.compile(r"^sequence<(?P<base>.+?)(?:, ?(?P<n>\d+))?>$")
_BOUNDED_STRING = re.compile(r"^(?P<base>w?string)<=(?P<n>\d+)$")


class _Filler:
    """Builds messages whose every field holds a distinct, non-default value."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def message(self, cls: type) -> Any:
        instance = cls()
        for field, type_name in cls.get_fields_and_field_types().items():
            setattr(instance, field, self.value(type_name))
        return instance

    def value(self, type_name: str) -> Any:
        k = next(self._counter)
        if m := _ARRAY.match(type_name):
            return [self.value(m["base"]) for _ in range(int(m["n"]))]
        if m := _SEQUENCE.match(type_name):
            n = 2 if m["n"] is None else min(2, int(m["n"]))
            return [self.value(m["base"]) for _ in range(n)]
        if m := _BOUNDED_STRING.match(type_name):
            return f"s{k}"[: int(m["n"])]
        if type_name == "boolean":
            return True
        if type_name in _INT_TYPES:
            return k % 100 + 1
        if type_name in _FLOAT_TYPES:
            return 1.5 + 0.25 * k  # exact in float32 too
        if type_name == "octet":
            return bytes([k % 255 + 1])
        if type_name in ("string", "wstring"):
            return f"value {k}: {type_name} ü"
        return self.message(_resolve(type_name))


def _resolve(type_name: str) -> type:
    """'pkg/Name' -> class; action and service internals (X_Goal, X_Request) live in .action / .srv."""
    package, name = type_name.split("/")
    for cls in ALL_TYPES.values():  # e.g. GripperCommand_Goal is only reachable as GripperCommand.Goal
        if cls.__module__.split(".")[0] == package and cls.__name__ == name:
            return cls
    for kind in ("msg", "srv", "action"):
        try:
            module = importlib.import_module(f"{package}.{kind}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise LookupError(f"no generated type {type_name}")


def _plain(value: Any) -> Any:
    """Message -> nested dict/list of Python values (readable assertion diffs)."""
    if hasattr(value, "get_fields_and_field_types"):
        return {f: _plain(getattr(value, f)) for f in value.get_fields_and_field_types()}
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else value
        return [_plain(v) for v in items]
    return value


def _round_trip(message: Any) -> Any:
    data = rclpy_serialization.serialize_message(message)
    assert isinstance(data, bytes) and data
    return rclpy_serialization.deserialize_message(data, type(message))


def test_all_definitions_are_covered() -> None:
    missing = EXPECTED_DEFINITIONS - set(ALL_TYPES)
    assert not missing, f"generated types missing from llm_trainer_interfaces: {sorted(missing)}"


@pytest.mark.parametrize("type_name", sorted(ALL_TYPES))
def test_round_trip_non_default(type_name: str) -> None:
    cls = ALL_TYPES[type_name]
    original = _Filler().message(cls)
    if cls.get_fields_and_field_types():
        assert original != cls(), "the filler left every field at its default"
    restored = _round_trip(original)
    assert _plain(restored) == _plain(original)
    assert restored == original


def test_round_trip_plan_task_by_hand() -> None:
    """An explicit, readable case on top of the generic one: a two-object scene and a plan."""
    from geometry_msgs.msg import Point, Vector3

    scene = msg.SceneState(source="ground_truth", ee_yaw=0.5, gripper_width=0.08, table_height=0.75)
    scene.header.frame_id = "world"
    scene.header.stamp.sec = 12
    scene.ee_position = Point(x=0.3, y=0.0, z=1.0)
    scene.workspace = [-0.5, 0.5, -0.4, 0.4, 0.75, 1.4]
    for i, name in enumerate(("red_block", "blue_block")):
        scene.objects.append(
            msg.ObjectState(
                name=name,
                category="block",
                position=Point(x=0.1 * i, y=-0.2, z=0.775),
                yaw=-1.25,
                size=Vector3(x=0.05, y=0.05, z=0.05),
                confidence=0.5,
                num_views=3,
            )
        )
    request = srv.PlanTask.Request(
        instruction="stack the red block on the blue block", task_name="stack_blocks", scene=scene, backend="oracle"
    )
    restored = _round_trip(request)
    assert restored == request
    assert [o.name for o in restored.scene.objects] == ["red_block", "blue_block"]
    assert list(restored.scene.workspace) == [-0.5, 0.5, -0.4, 0.4, 0.75, 1.4]
    assert restored.scene.objects[1].num_views == 3

    plan = [
        msg.Primitive(kind=msg.Primitive.MOVE_GRIPPER, position=Point(x=0.1, y=-0.2, z=0.9), yaw=-1.25),
        msg.Primitive(kind=msg.Primitive.CLOSE_GRIPPER, object_name="red_block"),
        msg.Primitive(kind=msg.Primitive.OPEN_GRIPPER),
    ]
    response = srv.PlanTask.Response(success=True, message="ok", plan=plan, backend="oracle", planning_time=0.01)
    restored_response = _round_trip(response)
    assert restored_response == response
    assert [p.kind for p in restored_response.plan] == [0, 2, 1]
    assert restored_response.plan[1].object_name == "red_block"


def _constants(cls: type) -> dict[str, int]:
    # rosidl's generated metaclass hands out the constants through __prepare__.
    return dict(type(cls).__prepare__(cls.__name__, ()))


def test_primitive_constants_match_core() -> None:
    from llm_trainer.primitives import PrimitiveKind

    assert (msg.Primitive.MOVE_GRIPPER, msg.Primitive.OPEN_GRIPPER, msg.Primitive.CLOSE_GRIPPER) == (0, 1, 2)
    assert _constants(msg.Primitive) == {kind.name: kind.value for kind in PrimitiveKind}


def test_scene_from_msg_refuses_what_a_scene_file_would_refuse() -> None:
    """Scenes arrive from perception and in action goals: bad numbers stop at the conversion."""
    from llm_trainer.ros.conversions import scene_from_msg, scene_to_msg
    from llm_trainer.scene import ObjectState, SceneState

    good = scene_to_msg(
        SceneState(
            objects=[
                ObjectState("red_block", (0.5, 0.0, 0.025), 0.3, (0.05, 0.05, 0.05), "block"),
                ObjectState("bin", (0.4, 0.2, 0.05), 0.0, (0.2, 0.2, 0.1), "bin"),
            ],
            gripper_width=0.04,
        )
    )
    scene = scene_from_msg(good)
    assert scene.names() == ["red_block", "bin"] and scene.gripper_width == pytest.approx(0.04)
    cases = []
    bad = copy.deepcopy(good)
    bad.objects[1].position.z = float("nan")
    cases.append((bad, "'bin': position and size must be finite"))
    bad = copy.deepcopy(good)
    bad.objects[0].size.x = 0.0
    cases.append((bad, "'red_block': size must be positive"))
    bad = copy.deepcopy(good)
    bad.objects[1].name = "red_block"
    cases.append((bad, "names must be unique"))
    bad = copy.deepcopy(good)
    bad.gripper_width = float("inf")
    cases.append((bad, "gripper_width must be finite"))
    for message, words in cases:
        with pytest.raises(ValueError, match=words):
            scene_from_msg(message)
