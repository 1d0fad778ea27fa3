"""Plan parser: MALMM-style answers in, primitives out; everything else refused with line, call and reason."""

from __future__ import annotations

import pytest

from llm_trainer.planning.parser import (
    MAX_ANSWER_CHARS,
    PlanParseError,
    extract_code,
    parse_answer,
    plan_to_code,
    plan_to_json,
)
from llm_trainer.primitives import MAX_PLAN_LENGTH, Primitive, PrimitiveKind
from llm_trainer.scene import ObjectState, SceneState, Workspace


def _scene() -> SceneState:
    return SceneState(
        objects=[
            ObjectState("red_block", (0.5, 0.1, 0.025), 0.3, (0.05, 0.05, 0.05), "block"),
            ObjectState("target_area", (0.45, -0.15, 0.001), 0.0, (0.14, 0.14, 0.002), "target_area"),
        ],
        workspace=Workspace(0.2, 0.75, -0.4, 0.4, 0.0, 0.6),
    )


MALMM_ANSWER = """The red block is at [0.5, 0.1, 0.025] with yaw 0.3, so I approach it from 0.1 m above, grasp it at
its centre and carry it to the target area, releasing 0.02 m above the surface.

```python
# pick up the red block
open_gripper()
execute_trajectory([0.5, 0.1, 0.125], 0.3)
execute_trajectory([0.5, 0.1, 0.025], 0.3)
close_gripper("red_block")
execute_trajectory([0.5, 0.1, 0.2], 0.3)
execute_trajectory([0.45, -0.15, 0.2], 0.0)
execute_trajectory(position=[0.45, -0.15, 0.048], orientation=-0.0)
open_gripper()
execute_trajectory([0.45, -0.15, 0.15], 0)
task_completed()
```
Done."""


def _reject(answer: str, match: str, scene: SceneState | None = None, fmt: str = "auto") -> PlanParseError:
    with pytest.raises(PlanParseError, match=match) as info:
        parse_answer(answer, scene or _scene(), fmt)
    return info.value


def _code(body: str) -> str:
    return f"Reasoning first.\n```python\n{body}\n```\n"


# ------------------------------------------------------------------------------------------ accepted
def test_malmm_answer_parses_to_primitives() -> None:
    parsed = parse_answer(MALMM_ANSWER, _scene())
    assert parsed.format == "code" and parsed.completed
    kinds = [p.kind for p in parsed.primitives]
    assert kinds == [
        PrimitiveKind.OPEN_GRIPPER,
        *[PrimitiveKind.MOVE_GRIPPER] * 2,
        PrimitiveKind.CLOSE_GRIPPER,
        *[PrimitiveKind.MOVE_GRIPPER] * 3,
        PrimitiveKind.OPEN_GRIPPER,
        PrimitiveKind.MOVE_GRIPPER,
    ]
    assert parsed.primitives[1] == Primitive.move((0.5, 0.1, 0.125), 0.3)
    assert parsed.primitives[3].object_name == "red_block"
    assert parsed.primitives[6] == Primitive.move((0.45, -0.15, 0.048), 0.0)  # keywords and -0.0
    assert parsed.primitives[8].yaw == 0.0 and isinstance(parsed.primitives[8].yaw, float)  # int literal


def test_last_python_block_wins_and_unfenced_code_is_accepted() -> None:
    answer = "Example:\n```python\nopen_gripper()\n```\nMy plan:\n```py\nexecute_trajectory([0.5, 0.0, 0.3], 0.1)\n```"
    assert parse_answer(answer).primitives == [Primitive.move((0.5, 0.0, 0.3), 0.1)]
    assert extract_code("open_gripper()\ntask_completed()") == "open_gripper()\ntask_completed()"
    # A fence the model never closed (cut off by the token limit) runs to the end.
    assert len(parse_answer("```python\nopen_gripper()\nopen_gripper()\n").primitives) == 2


def test_aliases_and_unnamed_close() -> None:
    plan = parse_answer(_code("move_gripper([0.5, 0.1, 0.03], yaw=-1)\nclose_gripper()\nopen_gripper()")).primitives
    assert plan == [Primitive.move((0.5, 0.1, 0.03), -1.0), Primitive.close(), Primitive.open()]


def test_json_answer_parses_and_round_trips() -> None:
    plan = parse_answer(MALMM_ANSWER, _scene()).primitives
    text = plan_to_json(plan)
    parsed = parse_answer(text, _scene())
    assert (
        parsed.format == "json"
        and parsed.completed
        and parsed.primitives == [Primitive.move(p.position, round(p.yaw, 2)) if p.position else p for p in plan]
    )
    fenced = f"Here it is:\n```json\n{text}\n```"
    assert parse_answer(fenced, _scene()).primitives == parsed.primitives
    assert parse_answer(plan_to_code(plan), _scene(), "code").primitives == parsed.primitives


def test_only_completed_is_allowed_for_dynamic_answers() -> None:
    _reject(_code("task_completed()"), "no robot calls")
    parsed = parse_answer(_code("task_completed()"), _scene(), allow_only_completed=True)
    assert parsed.primitives == [] and parsed.completed


# ------------------------------------------------------------------------------------------ refused
@pytest.mark.parametrize(
    ("body", "line", "match"),
    [
        ("import os\nopen_gripper()", 1, r"line 1: `import os`: import statements are not allowed"),
        ("open_gripper()\nfrom os import system", 2, r"line 2: `from os import system`: import"),
        ("open_gripper()\nos.system('rm -rf /')", 2, r"line 2: `os.system\('rm -rf /'\)`: attribute access"),
        ("for i in range(3):\n    open_gripper()", 1, r"line 1: .*loops are not allowed"),
        ("while True:\n    open_gripper()", 1, r"loops are not allowed"),
        ("execute_trajectory([x for x in (0.5, 0.1, 0.2)], 0.0)", 1, r"comprehensions are not allowed"),
        ("[open_gripper() for _ in range(2)]", 1, r"only calls of execute_trajectory"),
        ("fly_to([0.5, 0.1, 0.2])", 1, r"unknown function 'fly_to' \(known: execute_trajectory, open_gripper"),
        ("print('hello')", 1, r"unknown function 'print'"),
        ("pos = [0.5, 0.1, 0.2]\nexecute_trajectory(pos, 0.0)", 1, r"assignments are not allowed"),
        ("execute_trajectory(pos, 0.0)", 1, r"position must be a list .*variable 'pos'"),
        ("execute_trajectory([0.5, 0.1, 0.1 + 0.1], 0.0)", 1, r"position z must be a literal number: arithmetic"),
        (
            "execute_trajectory([0.5, 0.1, 0.2], yaw_of('red_block'))",
            1,
            r"orientation must be a literal number: nested",
        ),
        ("execute_trajectory([0.5, 0.1, 0.2], float('nan'))", 1, r"orientation must be a literal number"),
        ("execute_trajectory([0.5, 0.1, 1e999], 0.0)", 1, r"position z is not a finite number"),
        ("execute_trajectory([0.5, 0.1], 0.0)", 1, r"position needs 3 numbers \[x, y, z\], got 2"),
        ("execute_trajectory([0.5, 0.1, True], 0.0)", 1, r"position z must be a number, got True"),
        ("execute_trajectory([0.5, 0.1, '0.2'], 0.0)", 1, r"position z must be a number, got '0.2'"),
        ("close_gripper('blue_block')", 1, r"unknown object 'blue_block' \(the scene has: red_block, target_area\)"),
        ("close_gripper(red_block)", 1, r"object_name must be a string literal"),
        ("open_gripper(1)", 1, r"open_gripper takes 0 argument"),
        ("execute_trajectory([0.5, 0.1, 0.2], speed=2)", 1, r"has no parameter 'speed'"),
        ("execute_trajectory(*args)", 1, r"unpacking"),
        ("task_completed()\nopen_gripper()", 2, r"task_completed\(\) must be the last call"),
        ("def plan():\n    open_gripper()", 1, r"function definitions are not allowed"),
        ("x = lambda: 0", 1, r"assignments are not allowed"),
        ("open_gripper(", 1, r"not valid Python"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_refusals_name_line_call_and_reason(body: str, line: int, match: str) -> None:
    err = _reject(_code(body), match)
    assert err.line == line


def test_empty_and_absurd_answers() -> None:
    _reject("", "the answer is empty")
    _reject("   \n ", "the answer is empty")
    _reject("I cannot help with that.", r"no ```python code block, and as a whole it is not Python \(line 1")
    _reject(_code("# nothing to do\npass"), "no robot calls")
    _reject('```json\n{"plan": []}\n```', "no robot calls")
    _reject("x" * (MAX_ANSWER_CHARS + 1), f"more than the limit of {MAX_ANSWER_CHARS}")
    many = "\n".join(["open_gripper()"] * (MAX_PLAN_LENGTH + 1))
    _reject(_code(many), f"more than {MAX_PLAN_LENGTH} calls")
    _reject(_code("(" * 5000 + ")" * 5000), "cannot be parsed|not valid Python")
    _reject("```bash\nrm -rf /\n```", r"fenced blocks \(bash\) but no Python block")


def test_json_refusals() -> None:
    _reject(
        '{"plan": [{"call": "execute_trajectory", "position": [NaN, 0.1, 0.2], "orientation": 0}]}',
        "NaN is not a finite",
    )
    _reject(
        '{"plan": [{"call": "execute_trajectory", "position": [0.5, 0.1, 0.2], "orientation": Infinity}]}', "Infinity"
    )
    _reject('{"plan": [{"call": "self_destruct"}]}', r"`plan\[0\]`: unknown function 'self_destruct'")
    _reject('{"plan": [{"call": "close_gripper", "object": "ghost"}]}', "unknown object 'ghost'")
    _reject('{"plan": [{"call": "open_gripper", "speed": 3}]}', "has no field")
    _reject('{"plan": [{"call": "execute_trajectory", "position": [0.5, 0.1], "orientation": 0}]}', "3 numbers")
    _reject(
        '{"plan": [{"call": "execute_trajectory", "position": [0.5, "a", 0.2], "orientation": 0}]}', "must be a number"
    )
    _reject('{"steps": []}', "no 'plan' list")
    _reject('{"plan": [', "not valid JSON", fmt="json")


def test_parse_error_message_format() -> None:
    err = PlanParseError("reason here", 3, "foo(1)")
    assert str(err) == "line 3: `foo(1)`: reason here"
    assert str(PlanParseError("whole answer")) == "whole answer"
    # one line, whatever the model wrote: a multi-line call is quoted on one line, so logs stay line-based
    multi = PlanParseError("bad call", 2, "foo(\n  1)")
    assert "\n" not in str(multi) and str(multi).startswith("line 2: ")


# ------------------------------------------------------------------------------------------ validated
def _check(body: str, **kwargs):
    from llm_trainer.planning.validation import ValidationConfig, check_plan

    return check_plan(parse_answer(_code(body), _scene()).primitives, _scene(), ValidationConfig(**kwargs))


def test_parsed_malmm_plan_passes_validation_and_reachability() -> None:
    from llm_trainer.planning.validation import check_plan

    plan = check_plan(parse_answer(MALMM_ANSWER, _scene()).primitives, _scene())
    assert len(plan) == 9


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("execute_trajectory([0.9, 0.0, 0.2], 0.0)", r"primitive 0: target \[0.9, 0.0, 0.2\] is outside the workspace"),
        (
            "execute_trajectory([0.5, 0.0, 0.7], 0.0)",
            r"outside the workspace x\[0.2, 0.75\] y\[-0.4, 0.4\] z\[0.0, 0.6\]",
        ),
        ("execute_trajectory([0.5, 0.0, 0.001], 0.0)", r"not above the table"),
        ("execute_trajectory([0.5, 0.1, 0.2], 0.3)\nclose_gripper('red_block')\nopen_gripper()", r"close on nothing"),
        ("execute_trajectory([0.75, 0.4, 0.01], 0.0)", r"primitive 0: target .* is out of reach: no IK solution"),
        ("execute_trajectory([0.5, 0.1, 0.025], 0.3)\nclose_gripper('red_block')", r"ends with the gripper closed"),
        (
            "execute_trajectory([0.5, 0.1, 0.025], 0.3)\nclose_gripper('red_block')\n"
            "execute_trajectory([0.5, 0.1, 0.3], 0.3)\nopen_gripper()",
            r"primitive 3: open_gripper releases red_block 0.275 m above the table .*mid-air",
        ),
    ],
    ids=["x_out", "z_out", "below_table", "close_on_nothing", "unreachable", "ends_closed", "mid_air"],
)
def test_parsed_plans_are_validated_before_motion(body: str, match: str) -> None:
    from llm_trainer.primitives import PlanRejected

    with pytest.raises(PlanRejected, match=match):
        _check(body)


def test_release_in_air_when_intended_and_yaw_normalised() -> None:
    body = (
        "execute_trajectory([0.5, 0.1, 0.025], 6.583)\nclose_gripper('red_block')\n"
        "execute_trajectory([0.5, 0.1, 0.3], 0.3)\nopen_gripper()"
    )
    plan = _check(body, allow_release_in_air=True)
    assert plan[0].yaw == pytest.approx(0.3, abs=1e-3)  # 6.583 - 2 pi
