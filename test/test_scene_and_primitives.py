"""Scene model and waypoint primitives: JSON round trips, parsing errors, plan validation."""

from __future__ import annotations

import json
import math

import pytest

from llm_trainer.primitives import (
    MAX_PLAN_LENGTH,
    PlanRejected,
    Primitive,
    plan_from_dicts,
    plan_to_dicts,
    validate_plan,
)
from llm_trainer.scene import ObjectState, SceneState, Workspace, normalize_yaw


def _scene() -> SceneState:
    return SceneState(
        objects=[
            ObjectState("red_block", (0.5, 0.1, 0.025), 0.3, (0.05, 0.05, 0.05), "block", 0.9, 3),
            ObjectState("target_area", (0.45, -0.15, 0.001), 0.0, (0.14, 0.14, 0.002), "target_area", 1.0, 2),
        ],
        ee_position=(0.3069, 0.0, 0.4869),
        ee_yaw=-0.25,
        gripper_width=0.08,
        workspace=Workspace(0.2, 0.75, -0.4, 0.4, 0.0, 0.6),
        table_height=0.0,
        source="ground_truth",
    )


def _pick_place(scene: SceneState) -> list[Primitive]:
    return [
        Primitive.open(),
        Primitive.move((0.5, 0.1, 0.125), 0.3),
        Primitive.move((0.5, 0.1, 0.025), 0.3),
        Primitive.close("red_block"),
        Primitive.move((0.5, 0.1, 0.2), 0.3),
        Primitive.move((0.45, -0.15, 0.2), 0.0),
        Primitive.move((0.45, -0.15, 0.048), 0.0),
        Primitive.open(),
        Primitive.move((0.45, -0.15, 0.15), 0.0),
    ]


# ------------------------------------------------------------------------------------------ yaw
@pytest.mark.parametrize(
    ("yaw", "expected"),
    [
        (0.0, 0.0),
        (0.5, 0.5),
        (math.pi, math.pi),
        (-math.pi, math.pi),  # the half-open interval (-pi, pi] keeps +pi
        (3 * math.pi / 2, -math.pi / 2),
        (-3 * math.pi / 2, math.pi / 2),
        (2 * math.pi + 0.1, 0.1),
        (-4 * math.pi - 0.2, -0.2),
        (7.0, 7.0 - 2 * math.pi),
    ],
)
def test_normalize_yaw(yaw: float, expected: float) -> None:
    got = normalize_yaw(yaw)
    assert got == pytest.approx(expected, abs=1e-12)
    assert -math.pi < got <= math.pi


# ------------------------------------------------------------------------------------------ scene
def test_scene_json_round_trip() -> None:
    scene = _scene()
    text = scene.to_json(indent=2)
    back = SceneState.from_json(text)
    assert back == scene
    assert back.to_dict() == scene.to_dict()
    assert json.loads(text)["objects"][0]["name"] == "red_block"
    assert back.get("target_area").size == (0.14, 0.14, 0.002)
    assert back.get("red_block").num_views == 3


def test_scene_round_trip_normalises_object_yaw_and_accepts_list_workspace() -> None:
    d = _scene().to_dict()
    d["objects"][0]["yaw"] = 3 * math.pi / 2
    d["workspace"] = [0.1, 0.8, -0.5, 0.5, 0.0, 0.7]
    scene = SceneState.from_dict(d)
    assert scene.get("red_block").yaw == pytest.approx(-math.pi / 2)
    assert scene.workspace == Workspace(0.1, 0.8, -0.5, 0.5, 0.0, 0.7)


def test_scene_get_unknown_lists_known_names() -> None:
    with pytest.raises(KeyError, match="blue_block.*red_block, target_area"):
        _scene().get("blue_block")


@pytest.mark.parametrize("missing", ["name", "position"])
def test_scene_from_dict_rejects_missing_keys(missing: str) -> None:
    d = _scene().to_dict()
    del d["objects"][0][missing]
    with pytest.raises(ValueError, match=f"lacks '{missing}'"):
        SceneState.from_dict(d)


def test_scene_from_dict_rejects_missing_objects_list() -> None:
    with pytest.raises(ValueError, match="'objects' list"):
        SceneState.from_dict({"end_effector": {}})
    with pytest.raises(ValueError, match="'objects' list"):
        SceneState.from_dict([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "index"), [("position", 0), ("position", 2), ("size", 1)], ids=["pos_x", "pos_z", "size_y"]
)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_scene_from_dict_rejects_non_finite_object_geometry(field: str, index: int, bad: float) -> None:
    d = _scene().to_dict()
    d["objects"][0][field][index] = bad
    with pytest.raises(ValueError, match="red_block.*must be finite"):
        SceneState.from_dict(d)


def test_scene_from_json_rejects_nan_literal() -> None:
    # Python's json accepts the NaN literal; the scene must not.
    text = _scene().to_json().replace('"position": [0.5, 0.1, 0.025]', '"position": [NaN, 0.1, 0.025]')
    assert "NaN" in text
    with pytest.raises(ValueError, match="finite"):
        SceneState.from_json(text)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("objects", 0, "yaw"), float("nan")),
        (("objects", 0, "yaw"), float("inf")),
        (("end_effector", "position", 0), float("nan")),
        (("end_effector", "yaw"), float("nan")),
        (("end_effector", "gripper_width"), float("inf")),
        (("table_height",), float("nan")),
    ],
    ids=lambda v: ".".join(str(k) for k in v) if isinstance(v, tuple) else str(v),
)
def test_scene_from_dict_rejects_other_non_finite_numbers(path: tuple, bad: float) -> None:
    """Every number a planner reads must be finite, not only object positions and sizes."""
    d = _scene().to_dict()
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(ValueError, match="finite"):
        SceneState.from_dict(d)


def test_scene_from_dict_rejects_wrong_vector_lengths() -> None:
    d = _scene().to_dict()
    d["objects"][0]["position"] = [0.5, 0.1]
    with pytest.raises(ValueError, match="red_block.*3 numbers"):
        SceneState.from_dict(d)
    d = _scene().to_dict()
    d["objects"][1]["size"] = ["wide", 0.1, 0.1]
    with pytest.raises(ValueError, match="non-numeric"):
        SceneState.from_dict(d)


def test_scene_from_dict_rejects_duplicate_names() -> None:
    d = _scene().to_dict()
    d["objects"].append(dict(d["objects"][0], position=[0.6, 0.0, 0.025]))
    with pytest.raises(ValueError, match="unique.*repeated: red_block"):
        SceneState.from_dict(d)


def test_scene_from_json_rejects_bad_json_and_empty_workspace() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        SceneState.from_json("{objects: [")
    d = _scene().to_dict()
    d["workspace"]["x_max"] = 0.1  # below x_min
    with pytest.raises(ValueError, match="workspace bounds are empty"):
        SceneState.from_dict(d)
    with pytest.raises(ValueError, match="6 numbers"):
        Workspace.from_list([0, 1, 0, 1, 0])


def test_workspace_contains_with_margin() -> None:
    ws = Workspace(0.2, 0.75, -0.4, 0.4, 0.0, 0.6)
    assert ws.contains((0.2, -0.4, 0.0))
    assert ws.contains((0.75, 0.4, 0.6))
    assert not ws.contains((0.76, 0.0, 0.3))
    assert ws.contains((0.76, 0.0, 0.3), margin=0.02)
    assert not ws.contains((0.5, 0.0, -0.001))


def test_object_top_and_bottom() -> None:
    block = ObjectState("b", (0.5, 0.0, 0.075), size=(0.05, 0.05, 0.05))
    assert block.top_z == pytest.approx(0.1)
    assert block.bottom_z == pytest.approx(0.05)


# ------------------------------------------------------------------------------------------ primitives
def test_primitive_dict_round_trip() -> None:
    plan = _pick_place(_scene()) + [Primitive.close()]
    back = plan_from_dicts(json.loads(json.dumps(plan_to_dicts(plan))))
    assert back == plan
    assert str(back[3]) == "close_gripper('red_block')"
    assert str(back[-1]) == "close_gripper()"
    assert str(back[1]) == "move_gripper([0.500, 0.100, 0.125], yaw=0.300)"


def test_primitive_from_dict_errors() -> None:
    with pytest.raises(ValueError, match="unknown primitive 'fly'.*move_gripper, open_gripper, close_gripper"):
        Primitive.from_dict({"primitive": "fly"})
    with pytest.raises(ValueError, match=r"needs position \[x, y, z\]"):
        Primitive.from_dict({"primitive": "move_gripper", "position": [0.5, 0.1]})


def test_validate_accepts_pick_place_and_keeps_it() -> None:
    scene = _scene()
    plan = _pick_place(scene)
    checked = validate_plan(plan, scene)
    assert checked == plan


def test_validate_normalises_yaw() -> None:
    scene = _scene()
    plan = [Primitive.move((0.5, 0.0, 0.2), 3 * math.pi / 2), Primitive.move((0.5, 0.0, 0.3), -math.pi)]
    checked = validate_plan(plan, scene)
    assert checked[0].yaw == pytest.approx(-math.pi / 2)
    assert checked[1].yaw == pytest.approx(math.pi)
    assert checked[0].position == (0.5, 0.0, 0.2)


def _rejection(plan: list[Primitive], scene: SceneState | None = None, **kwargs) -> PlanRejected:
    with pytest.raises(PlanRejected) as info:
        validate_plan(plan, scene or _scene(), **kwargs)
    return info.value


def test_validate_rejects_empty_plan() -> None:
    err = _rejection([])
    assert err.index == -1
    assert "empty" in err.reason


def test_validate_rejects_too_long_plan() -> None:
    plan = [Primitive.open()] * (MAX_PLAN_LENGTH + 1)
    err = _rejection(plan)
    assert err.index == -1
    assert str(MAX_PLAN_LENGTH + 1) in err.reason and str(MAX_PLAN_LENGTH) in err.reason
    # Exactly the limit is fine.
    assert len(validate_plan([Primitive.open()] * MAX_PLAN_LENGTH, _scene())) == MAX_PLAN_LENGTH


@pytest.mark.parametrize(
    "move",
    [
        Primitive.move((float("nan"), 0.0, 0.2), 0.0),
        Primitive.move((0.5, float("inf"), 0.2), 0.0),
        Primitive.move((0.5, 0.0, -float("inf")), 0.0),
        Primitive.move((0.5, 0.0, 0.2), float("nan")),
        Primitive.move((0.5, 0.0, 0.2), float("inf")),
    ],
    ids=["x_nan", "y_inf", "z_-inf", "yaw_nan", "yaw_inf"],
)
def test_validate_rejects_non_finite(move: Primitive) -> None:
    err = _rejection([Primitive.open(), Primitive.move((0.5, 0.0, 0.3), 0.0), move])
    assert err.index == 2
    assert "non-finite" in err.reason
    assert str(err).startswith("primitive 2:")


@pytest.mark.parametrize(
    "position", [(0.9, 0.0, 0.2), (0.1, 0.0, 0.2), (0.5, 0.45, 0.2), (0.5, -0.41, 0.2), (0.5, 0.0, 0.65)]
)
def test_validate_rejects_out_of_workspace(position: tuple[float, float, float]) -> None:
    err = _rejection([Primitive.move((0.5, 0.0, 0.3), 0.0), Primitive.move(position, 0.0)])
    assert err.index == 1
    assert "outside the workspace" in err.reason
    assert str(list(position)) in err.reason


def test_validate_rejects_below_table() -> None:
    # Inside the workspace box (z_min = 0) but closer to the table than the clearance.
    err = _rejection([Primitive.open(), Primitive.move((0.5, 0.0, 0.003), 0.0)])
    assert err.index == 1
    assert "not above the table" in err.reason and "z=0.003" in err.reason
    # A raised table moves the limit with it.
    scene = _scene()
    scene.table_height = 0.1
    err = _rejection([Primitive.move((0.5, 0.0, 0.3), 0.0), Primitive.move((0.5, 0.0, 0.1), 0.0)], scene)
    assert err.index == 1
    assert "table at 0.100" in err.reason
    # A custom clearance is honoured.
    assert validate_plan([Primitive.move((0.5, 0.0, 0.003), 0.0)], _scene(), table_clearance=0.001)


def test_validate_rejects_unknown_object() -> None:
    err = _rejection([Primitive.open(), Primitive.move((0.5, 0.1, 0.025), 0.0), Primitive.close("blue_block")])
    assert err.index == 2
    assert "unknown object 'blue_block'" in err.reason
    assert "red_block, target_area" in err.reason


def test_validate_rejects_double_close() -> None:
    # (Changed with the gripper-sequence checks: the first close must now happen at the block.)
    plan = [
        Primitive.move((0.5, 0.1, 0.025), 0.3),
        Primitive.close("red_block"),
        Primitive.move((0.5, 0.1, 0.025), 0.3),
        Primitive.close(),
        Primitive.open(),
    ]
    err = _rejection(plan)
    assert err.index == 3
    assert "already closed" in err.reason
    # Opening in between makes it legal.
    plan.insert(3, Primitive.open())
    validate_plan(plan, _scene())


def test_validate_rejects_closing_on_nothing() -> None:
    err = _rejection([Primitive.open(), Primitive.move((0.5, 0.1, 0.2), 0.3), Primitive.close("red_block")])
    assert err.index == 2
    assert "close_gripper('red_block')" in err.reason and "close on nothing" in err.reason
    assert "0.150 m from red_block" in err.reason  # from the box, whose top is at 0.05
    err = _rejection([Primitive.move((0.3, -0.3, 0.1), 0.0), Primitive.close(), Primitive.open()])
    assert err.index == 1 and "no object between the fingers" in err.reason
    # Unnamed close at the block is a grasp of that block; the check can be switched off.
    validate_plan([Primitive.move((0.5, 0.1, 0.03), 0.0), Primitive.close(), Primitive.open()], _scene())
    validate_plan([Primitive.close("red_block"), Primitive.open()], _scene(), grasp_tolerance=None)


def test_validate_rejects_release_mid_air_unless_allowed() -> None:
    plan = _pick_place(_scene())
    plan[6] = Primitive.move((0.45, -0.15, 0.3), 0.0)  # release 0.3 m up instead of just above the target
    err = _rejection(plan)
    assert err.index == 7
    assert "releases red_block" in err.reason and "above target_area" in err.reason and "mid-air" in err.reason
    assert validate_plan(plan, _scene(), max_release_height=None)


def test_validate_follows_objects_through_the_plan() -> None:
    """A block stacked by the plan is where a later grasp must find it."""
    scene = _scene()
    scene.objects.append(ObjectState("blue_block", (0.6, 0.0, 0.025), 0.0, (0.05, 0.05, 0.05), "block"))
    stack = [
        Primitive.open(),
        Primitive.move((0.6, 0.0, 0.025), 0.0),
        Primitive.close("blue_block"),
        Primitive.move((0.6, 0.0, 0.2), 0.0),
        Primitive.move((0.5, 0.1, 0.2), 0.0),
        Primitive.move((0.5, 0.1, 0.085), 0.0),  # 0.01 m above red_block's top
        Primitive.open(),
        Primitive.move((0.5, 0.1, 0.2), 0.0),
    ]
    validate_plan(stack, scene)
    # The blue block now sits on the red one: grasping it at its old place closes on nothing...
    err = _rejection(stack + [Primitive.move((0.6, 0.0, 0.025), 0.0), Primitive.close("blue_block")], scene)
    assert err.index == 9 and "close on nothing" in err.reason
    # ...and at its new place (on top of red_block, centre z 0.075) it is found.
    validate_plan(
        stack + [Primitive.move((0.5, 0.1, 0.075), 0.0), Primitive.close("blue_block"), Primitive.open()], scene
    )


def test_validate_rejects_ending_closed() -> None:
    plan = _pick_place(_scene())[:4]  # ... close_gripper('red_block') and stop
    err = _rejection(plan)
    assert err.index == -1
    assert "ends with the gripper closed" in err.reason
