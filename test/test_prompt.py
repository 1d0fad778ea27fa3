"""Prompt builder (MALMM single-agent style, both modes) and the grammars/schemas that constrain decoding."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import pytest

from llm_trainer.planning.grammar import code_grammar, number_rule, plan_json_schema
from llm_trainer.planning.parser import parse_answer, plan_to_code
from llm_trainer.planning.prompt import PROMPT_VERSION, PromptConfig, build_prompt, describe_scene
from llm_trainer.primitives import Primitive
from llm_trainer.scene import ObjectState, SceneState, Workspace

xgr = pytest.importorskip("xgrammar")


def _scene() -> SceneState:
    return SceneState(
        objects=[
            ObjectState("red_block", (0.5, 0.1, 0.025), 0.3, (0.05, 0.05, 0.05), "block"),
            ObjectState("blue_block", (0.6, -0.2, 0.025), -0.5, (0.05, 0.05, 0.05), "block"),
            ObjectState("target_area", (0.45, -0.15, 0.001), 0.0, (0.14, 0.14, 0.002), "target_area"),
        ],
        ee_position=(0.3069, -0.0, 0.4869),
        ee_yaw=-0.0,
        workspace=Workspace(0.2, 0.75, -0.4, 0.4, 0.0, 0.6),
        table_height=0.0,
    )


def _accepts(grammar: str, text: str) -> bool:
    return xgr.testing._is_grammar_accept_string(grammar, text)


# ------------------------------------------------------------------------------------------ prompt
def test_sequential_prompt_has_every_malmm_part() -> None:
    p = build_prompt("put the red block in the target area", _scene())
    assert p.version == PROMPT_VERSION and p.mode == "sequential"
    text = p.text
    for part in (
        "x points to the right, y points away from the viewer, z points up",  # world frame
        "table surface is at z = 0.000",
        "x from 0.20 to 0.75, y from -0.40 to 0.40, z from 0.00 to 0.60",  # workspace bounds
        "turn the gripper to the object's yaw and close it at the object's centre",  # constraints
        "0.10 m above it",
        "Release an object 0.02 m above",
        "Never move through other objects",
        "8. move back up to the safe height",  # the recipe
        "execute_trajectory(position, orientation)",  # functions
        "open_gripper()",
        "close_gripper(object_name)",
        "task_completed()",
        "Task: put the red block in the target area",
        "Gripper: position [0.307, 0.000, 0.487], orientation (yaw) 0.00 rad, open",  # no "-0.000"
        "- red_block (block): position [0.500, 0.100, 0.025], yaw 0.30 rad, size [0.050, 0.050, 0.050]",
        "```python",
    ):
        assert part in text, part
    assert [m["role"] for m in p.messages] == ["system", "user"]
    assert "Executed so far" not in text


def test_prompt_follows_config_and_scene() -> None:
    scene = _scene()
    scene.table_height = 0.1
    scene.workspace = Workspace(0.3, 0.7, -0.3, 0.3, 0.0, 0.8)
    cfg = PromptConfig(safe_height=0.15, release_height=0.01, example=False, reasoning=False)
    text = build_prompt("stack", scene, cfg).text
    assert "z = 0.100" in text and "x from 0.30 to 0.70" in text and "z from 0.10 to 0.80" in text
    assert "0.15 m above it" in text and "0.01 m above where it should rest" in text
    assert "Example" not in text and "First explain" not in text
    json_text = build_prompt("stack", scene, PromptConfig(format="json")).text
    assert '{"plan": [...]}' in json_text and '"call": "execute_trajectory"' in json_text


def test_worked_example_in_the_prompt_is_a_valid_plan() -> None:
    """The example teaches the format: it must parse and validate for its own (made-up) scene."""
    from llm_trainer.planning.validation import check_plan

    text = build_prompt("x", _scene()).system
    example = text[text.index("Example (a different scene)") :]
    scene = SceneState(
        objects=[
            ObjectState("green_cube", (0.42, 0.18, 0.02), 0.52, (0.04, 0.04, 0.04), "block"),
            ObjectState("tray", (0.55, -0.1, 0.005), 0.0, (0.15, 0.15, 0.01), "target_area"),
        ]
    )
    plan = check_plan(parse_answer(example, scene).primitives, scene)
    assert len(plan) == 9
    json_example = build_prompt("x", _scene(), PromptConfig(format="json")).system.split("Answer:\n")[1]
    assert parse_answer(json_example, scene).primitives == plan


def test_dynamic_prompt_resends_state_and_history() -> None:
    history = [Primitive.open(), Primitive.move((0.5, 0.1, 0.125), 0.3)]
    p = build_prompt("put the red block in the target area", _scene(), mode="dynamic", history=history)
    assert p.mode == "dynamic"
    assert "Executed so far (in order):\nopen_gripper()\nexecute_trajectory([0.500, 0.100, 0.125], 0.30)" in p.user
    assert "only the next call" in p.system and "What is the next call?" in p.user
    assert "Example" not in p.system
    retry = build_prompt("t", _scene(), mode="dynamic", feedback="primitive 0: close on nothing")
    assert "Executed so far: nothing yet." in retry.user
    assert "Your previous answer was refused: primitive 0: close on nothing" in retry.user
    with pytest.raises(ValueError, match="unknown prompt mode"):
        build_prompt("t", _scene(), mode="chaotic")


def test_describe_scene_lists_each_object() -> None:
    lines = describe_scene(_scene()).splitlines()
    assert len(lines) == 3 and lines[2].startswith("- target_area (target_area): position [0.450, -0.150, 0.001]")
    assert describe_scene(SceneState()) == "(no objects detected)"


# ------------------------------------------------------------------------------------------ grammar
def _regex(rule: str) -> re.Pattern:
    body = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), rule)
    return re.compile("^(?:" + body.replace(" | ", "|").replace(" ", "") + ")$")


@pytest.mark.parametrize(("lo", "hi"), [(0.2, 0.75), (-0.4, 0.4), (0.01, 0.6), (-1.234, 2.5), (-0.05, -0.01)])
def test_number_rule_is_exactly_the_range(lo: float, hi: float) -> None:
    rx = _regex(number_rule(lo, hi))
    candidates = [f"{s}{i}.{d:0{n}d}" for s in ("", "-") for i in range(3) for n in (2, 3) for d in range(10**n)]
    accepted = [c for c in candidates if rx.match(c)]
    assert accepted and all(lo - 1e-9 <= float(c) <= hi + 1e-9 for c in accepted)
    needed = [c for c in candidates if len(c.split(".")[1]) == 2 and lo <= float(c) <= hi and c != "-0.00"]
    assert all(rx.match(c) for c in needed)
    assert len(number_rule(lo, hi)) < 400  # a handful of alternatives: grammar engines stay fast


def test_oracle_style_plans_match_the_recipe_grammar() -> None:
    scene = _scene()
    plan = [
        Primitive.open(),
        Primitive.move((0.5, 0.1, 0.125), 0.3),
        Primitive.move((0.5, 0.1, 0.025), 0.3),
        Primitive.close("red_block"),
        Primitive.move((0.5, 0.1, 0.2), 0.3),
        Primitive.move((0.45, -0.15, 0.2), -0.0),
        Primitive.move((0.45, -0.15, 0.048), 0.0),
        Primitive.open(),
        Primitive.move((0.45, -0.15, 0.15), 0.0),
    ]
    answer = "```python\n" + plan_to_code(plan) + "\n```"
    for level in ("syntax", "recipe", "anchored"):
        assert _accepts(code_grammar(scene, level), answer), level
    # recipe: the gripper sequence is fixed, so a plan without the first open is outside the grammar
    assert not _accepts(code_grammar(scene, "recipe"), "```python\n" + plan_to_code(plan[1:]) + "\n```")
    assert _accepts(code_grammar(scene, "syntax"), "```python\n" + plan_to_code(plan[1:]) + "\n```")
    # anchored: the grasp must be at a scene object's centre, closing on that object
    moved = [plan[0], Primitive.move((0.5, 0.1, 0.125), 0.3), Primitive.move((0.51, 0.1, 0.025), 0.3), *plan[3:]]
    assert not _accepts(code_grammar(scene, "anchored"), "```python\n" + plan_to_code(moved) + "\n```")
    wrong_name = [*plan[:3], Primitive.close("blue_block"), *plan[4:]]
    assert not _accepts(code_grammar(scene, "anchored"), "```python\n" + plan_to_code(wrong_name) + "\n```")
    assert _accepts(code_grammar(scene, "recipe"), "```python\n" + plan_to_code(wrong_name) + "\n```")


@pytest.mark.parametrize(
    "bad",
    [
        "execute_trajectory([0.80, 0.100, 0.125], 0.30)",  # x beyond the workspace
        "execute_trajectory([0.500, 0.100, 0.005], 0.30)",  # below the grammar's table margin
        "execute_trajectory([0.500, 0.100, 0.125], 3.20)",  # yaw beyond pi
        'close_gripper("ghost")',  # not in the scene
        "import os",
        "execute_trajectory([0.5, 0.1, 0.125], 0.3)",  # too few decimals
    ],
)
def test_grammar_excludes_bad_lines(bad: str) -> None:
    assert not _accepts(code_grammar(_scene(), "syntax"), f"```python\n{bad}\ntask_completed()\n```")


def test_dynamic_grammar_is_one_call() -> None:
    g = code_grammar(_scene(), "recipe", dynamic=True)
    assert _accepts(g, "```python\nopen_gripper()\n```")
    assert _accepts(g, "```python\ntask_completed()\n```")
    assert not _accepts(g, "```python\nopen_gripper()\nopen_gripper()\n```")


_LLAMA_CPP_SAMPLE = """
import sys, llama_cpp
from llm_trainer.planning.models import smollm2_gguf
llm = llama_cpp.Llama(model_path=str(smollm2_gguf()), n_ctx=512, verbose=False, n_threads=1)
grammar = llama_cpp.LlamaGrammar.from_string(sys.stdin.read(), verbose=False)
out = llm.create_completion("Write the plan.\\n", grammar=grammar, max_tokens=16, temperature=0)
print(repr(out["choices"][0]["text"]))
"""


def _llama_cpp_sample(grammar: str) -> subprocess.CompletedProcess:
    """Decode 16 tokens of the real SmolLM2 under ``grammar`` with llama.cpp's own sampler.

    In a child process: llama.cpp parses the grammar only when it builds the sampler, and a grammar it
    cannot parse then crashes the process (``LlamaGrammar.from_string`` alone only stores the text).
    """
    return subprocess.run(
        [sys.executable, "-c", _LLAMA_CPP_SAMPLE], input=grammar, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
@pytest.mark.parametrize("level", ["syntax", "recipe", "anchored"])
def test_every_grammar_level_parses_in_xgrammar_and_drives_llama_cpp(level: str) -> None:
    pytest.importorskip("llama_cpp")
    grammar = code_grammar(_scene(), level)
    xgr.Grammar.from_ebnf(grammar)  # xgrammar's GBNF parser: raises on a grammar it cannot read
    proc = _llama_cpp_sample(grammar)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    # whatever the small model wanted to say, the sampler kept it on the grammar: a code block of calls
    assert text.startswith("```python\n") and _accepts_prefix(grammar, text), text


@pytest.mark.slow
def test_the_grammar_checks_fail_on_a_broken_grammar() -> None:
    pytest.importorskip("llama_cpp")
    broken = "this is ::= not (( a grammar"
    with pytest.raises(RuntimeError):
        xgr.Grammar.from_ebnf(broken)
    assert _llama_cpp_sample(broken).returncode != 0
    # and a grammar that parses but is not ours is caught by the prefix check
    assert not _accepts_prefix(code_grammar(_scene(), "syntax"), "import os\n")


def _accepts_prefix(grammar: str, text: str) -> bool:
    """``text`` is a prefix of some string the grammar accepts (the model stopped at max_tokens)."""
    compiled = xgr.GrammarCompiler(xgr.TokenizerInfo([])).compile_grammar(grammar)
    return xgr.GrammarMatcher(compiled).accept_string(text)


def test_plan_json_schema_constrains_json_answers() -> None:
    from llm_trainer.planning.parser import plan_to_json

    schema = json.dumps(plan_json_schema(_scene()))
    grammar = xgr.Grammar.from_json_schema(schema, any_whitespace=False)
    good = plan_to_json([Primitive.open(), Primitive.move((0.5, 0.1, 0.125), 0.3), Primitive.close("red_block")])
    assert xgr.testing._is_grammar_accept_string(grammar, good)
    bad = good.replace("red_block", "ghost")
    assert not xgr.testing._is_grammar_accept_string(grammar, bad)
    assert plan_json_schema(_scene(), dynamic=True)["properties"]["plan"]["maxItems"] == 1


def test_grammar_needs_objects_and_a_known_level() -> None:
    with pytest.raises(ValueError, match="no objects"):
        code_grammar(SceneState())
    with pytest.raises(ValueError, match="unknown grammar level"):
        code_grammar(_scene(), "poetry")
