"""Grammars and JSON schemas that constrain decoding to parseable plans for one scene.

The grammar is GBNF (llama.cpp's notation); xgrammar reads the same text, so one grammar serves
the in-process ``transformers`` backend (xgrammar logits processor) and a llama.cpp server
(``grammar`` request field). Numbers are written with 2-3 decimals and bounded to the workspace by
construction (a model cannot produce an unbounded or out-of-range number), object names come
from the scene, and the levels add structure:

* ``syntax``: a ```python block of known calls, any order, then ``task_completed()``;
* ``recipe``: ``open_gripper()``, then one to N blocks of the eight-step pick/place recipe
  (move, move, close, move, move, move, open, move), then ``task_completed()``: the gripper
  sequence is right by construction;
* ``anchored``: ``recipe`` whose approach and grasp waypoints sit on a scene object's centre
  (x, y, and z for the grasp) at its yaw, closing on that object; the model still chooses which
  object, the heights, the destination and the release point.

A grammar guarantees the *form*; ``validate_plan`` and the reachability check still judge the plan.
"""

from __future__ import annotations

import json
import math

from llm_trainer.primitives import MAX_PLAN_LENGTH
from llm_trainer.scene import ObjectState, SceneState

LEVELS = ("syntax", "recipe", "anchored")
GRIPPER_MAX_OPENING = 0.08  # [m] the Franka Hand's finger gap
MIN_GRAMMAR_Z_ABOVE_TABLE = 0.01  # [m] lowest z the grammar lets a model write (validation allows 0.005)


def _digit_class(lo: int, hi: int) -> str:
    return f'"{lo}"' if lo == hi else f"[{lo}-{hi}]"


def number_rule(lo: float, hi: float) -> str:
    """Compact GBNF for the numbers with 2 or 3 decimals within [lo, hi] (ends rounded inward).

    Values are grouped by sign, integer part and tenths digit so the rule has a handful of
    alternatives (grammar engines slow down with long alternations); a third decimal moves a value
    away from zero, so it is allowed only where the result stays inside the range.
    """
    lo_h, hi_h = math.ceil(round(lo * 100, 6)), math.floor(round(hi * 100, 6))
    if lo_h > hi_h:
        raise ValueError(f"empty number range [{lo}, {hi}]")
    # (sign, integer, tenths) -> hundredths digits, each flagged with "may take a third decimal"
    groups: dict[tuple[str, int, int], list[tuple[int, bool]]] = {}
    for h in range(lo_h, hi_h + 1):
        extreme = (h + 0.9) / 100 if h >= 0 else (h - 0.9) / 100
        sign = "-" if h < 0 else ""
        a = abs(h)
        key = (sign, a // 100, (a // 10) % 10)
        groups.setdefault(key, []).append((a % 10, lo - 1e-9 <= extreme <= hi + 1e-9))
    # Each group's tail (hundredths class, optional third decimal); equal tails of consecutive tenths merge.
    tails: list[tuple[str, int, int, str]] = []
    for (sign, integer, tenths), digits in groups.items():
        for flag in (True, False):
            ds = sorted(d for d, f in digits if f == flag)
            if not ds:
                continue
            runs, start = [], ds[0]
            for prev, cur in zip(ds, ds[1:] + [None]):
                if cur != prev + 1:
                    runs.append(_digit_class(start, prev))
                    start = cur
            cls = runs[0] if len(runs) == 1 else "(" + " | ".join(runs) + ")"
            tails.append((sign, integer, tenths, cls + (" [0-9]?" if flag else "")))
    merged: list[list] = []  # [sign, integer, lowest tenths, highest tenths, last tenths, tail]
    for sign, integer, tenths, tail in tails:
        last = merged[-1] if merged else None
        if last and last[0] == sign and last[1] == integer and abs(last[4] - tenths) == 1 and last[5] == tail:
            last[2], last[3], last[4] = min(last[2], tenths), max(last[3], tenths), tenths
        else:
            merged.append([sign, integer, tenths, tenths, tenths, tail])
    alternatives = [f'"{sign}{integer}." {_digit_class(t0, t1)} {tail}' for sign, integer, t0, t1, _, tail in merged]
    return " | ".join(alternatives)


def graspable(o: ObjectState) -> bool:
    """Fits between the fingers across its narrower side and stands proud of the table."""
    return min(o.size[0], o.size[1]) <= GRIPPER_MAX_OPENING and o.size[2] >= 0.01


def _coordinate_rules(scene: SceneState) -> list[str]:
    ws = scene.workspace
    z_lo = max(ws.z_min, scene.table_height + MIN_GRAMMAR_Z_ABOVE_TABLE)
    return [
        f"x ::= {number_rule(ws.x_min, ws.x_max)}",
        f"y ::= {number_rule(ws.y_min, ws.y_max)}",
        f"z ::= {number_rule(z_lo, ws.z_max)}",
        'yaw ::= "-"? ([0-2] "." [0-9] [0-9] | "3.1" [0-4])',
        'move ::= "execute_trajectory([" x ", " y ", " z "], " yaw ")\\n"',
    ]


def _quoted(name: str) -> str:
    return json.dumps(name)[1:-1].replace('"', '\\"')


def code_grammar(scene: SceneState, level: str = "recipe", *, dynamic: bool = False) -> str:
    """The GBNF grammar of an acceptable code answer for this scene (``dynamic``: one next call)."""
    if level not in LEVELS:
        raise ValueError(f"unknown grammar level {level!r} ({', '.join(LEVELS)})")
    names = [o.name for o in scene.objects]
    if not names:
        raise ValueError("the scene has no objects: nothing to constrain names to")
    rules = _coordinate_rules(scene)
    rules.append("name ::= " + " | ".join(f'"\\"{_quoted(n)}\\""' for n in names))
    rules.append('close ::= "close_gripper(" name ")\\n"')
    rules.append('open ::= "open_gripper()\\n"')
    rules.append('done ::= "task_completed()\\n"')
    fence, end = '"```python\\n"', '"```"'
    if dynamic:
        rules.insert(0, f"root ::= {fence} (move | open | close | done) {end}")
        return "\n".join(rules) + "\n"
    if level == "syntax":
        rules.insert(0, f"root ::= {fence} (move | open | close)+ done {end}")
        return "\n".join(rules) + "\n"
    movable = [o for o in scene.objects if graspable(o)] or list(scene.objects)
    n = max(1, min(len(movable), MAX_PLAN_LENGTH // 9))
    chain = "pickplace"
    for _ in range(n - 1):
        chain = f"pickplace ({chain})?"
    rules.insert(0, f"root ::= {fence} open {chain} done {end}")
    if level == "recipe":
        rules.append("pickplace ::= move move close move move move open move")
        return "\n".join(rules) + "\n"
    # anchored: one alternative per graspable object, with its centre and yaw written in.
    alternatives = []
    for k, o in enumerate(movable):
        x, y, z = (f"{v:.3f}" for v in o.position)
        yaw = f"{o.yaw:.2f}"
        rule = f"pick{k}"
        rules.append(
            f'{rule} ::= "execute_trajectory([{x}, {y}, " z "], {yaw})\\n" '
            f'"execute_trajectory([{x}, {y}, {z}], {yaw})\\n" '
            f'"close_gripper(\\"{_quoted(o.name)}\\")\\n" move move move open move'
        )
        alternatives.append(rule)
    rules.append("pickplace ::= " + " | ".join(alternatives))
    return "\n".join(rules) + "\n"


def plan_json_schema(scene: SceneState, *, dynamic: bool = False) -> dict:
    """JSON schema of a ``{"plan": [...]}`` answer for this scene (for servers with structured output)."""
    ws = scene.workspace
    z_lo = max(ws.z_min, scene.table_height + MIN_GRAMMAR_Z_ABOVE_TABLE)
    names = [o.name for o in scene.objects]
    move = {
        "type": "object",
        "properties": {
            "call": {"type": "string", "enum": ["execute_trajectory"]},
            "position": {
                "type": "array",
                "prefixItems": [
                    {"type": "number", "minimum": ws.x_min, "maximum": ws.x_max},
                    {"type": "number", "minimum": ws.y_min, "maximum": ws.y_max},
                    {"type": "number", "minimum": z_lo, "maximum": ws.z_max},
                ],
                "items": False,
                "minItems": 3,
                "maxItems": 3,
            },
            "orientation": {"type": "number", "minimum": -math.pi, "maximum": math.pi},
        },
        "required": ["call", "position", "orientation"],
        "additionalProperties": False,
    }
    close = {
        "type": "object",
        "properties": {
            "call": {"type": "string", "enum": ["close_gripper"]},
            "object": {"type": "string", "enum": names},
        },
        "required": ["call", "object"],
        "additionalProperties": False,
    }

    def bare(name: str) -> dict:
        return {
            "type": "object",
            "properties": {"call": {"type": "string", "enum": [name]}},
            "required": ["call"],
            "additionalProperties": False,
        }

    items = {"anyOf": [move, bare("open_gripper"), close, bare("task_completed")]}
    return {
        "type": "object",
        "properties": {
            "plan": {"type": "array", "items": items, "minItems": 1, "maxItems": 1 if dynamic else MAX_PLAN_LENGTH}
        },
        "required": ["plan"],
        "additionalProperties": False,
    }
