"""Model answer -> primitives, by parsing (``ast`` / ``json``), never by executing anything.

Two answer formats:

* ``code`` (MALMM style): free reasoning, then one fenced Python block whose statements are calls
  of the known functions with literal arguments::

      execute_trajectory([0.512, 0.103, 0.125], -0.31)   # position [x, y, z] in m, orientation = yaw
      open_gripper()
      close_gripper("red_block")
      task_completed()

* ``json`` (structured output, for schema-constrained decoding)::

      {"plan": [{"call": "open_gripper"},
                {"call": "execute_trajectory", "position": [0.512, 0.103, 0.125], "orientation": -0.31},
                {"call": "close_gripper", "object": "red_block"}, {"call": "task_completed"}]}

Only those four calls are accepted (``move_gripper`` is an alias of ``execute_trajectory``), with
numbers written as literals (a leading minus is fine), positions as a list of three numbers and
object names as strings naming an object of the scene. Anything else (imports, assignments, loops,
comprehensions, attribute access, other functions, variables, expressions, NaN or infinite
numbers) is refused with a ``PlanParseError`` that says where (line, call) and why. Geometry
(workspace, table, gripper sequence) is ``validate_plan``'s job afterwards.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from dataclasses import dataclass, field

from llm_trainer.primitives import MAX_PLAN_LENGTH, Primitive, PrimitiveKind
from llm_trainer.scene import SceneState

#: Answers longer than this are refused before parsing (runaway generations, pasted garbage).
MAX_ANSWER_CHARS = 20_000
#: The callable names a plan may use, with their parameters (the prompt lists the same).
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "execute_trajectory": ("position", "orientation"),
    "open_gripper": (),
    "close_gripper": ("object_name",),
    "task_completed": (),
}
ALIASES = {"move_gripper": "execute_trajectory"}
#: Keyword spellings accepted besides the parameter names above.
KEYWORD_ALIASES = {"yaw": "orientation", "object": "object_name", "name": "object_name"}

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL)


class PlanParseError(ValueError):
    """The answer is not an acceptable plan. ``line`` is 1-based within the extracted code (0: none)."""

    def __init__(self, reason: str, line: int = 0, call: str = ""):
        self.reason = reason
        self.line = line
        # One line whatever the model wrote (a call split over lines): `rejected: ...` and logs stay line-based.
        self.call = call = " ".join(call.split())
        where = f"line {line}" if line else ""
        if call:
            where = f"{where}: `{call}`" if where else f"`{call}`"
        super().__init__(f"{where}: {reason}" if where else reason)


@dataclass
class ParsedPlan:
    primitives: list[Primitive]
    format: str  # "code" or "json"
    code: str  # the extracted code block or JSON text
    completed: bool = False  # the answer ended with task_completed()
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ extraction
def extract_code(answer: str) -> str:
    """The Python code of a MALMM-style answer: its last fenced block (``python``, ``py`` or untagged).

    An answer without any fence is taken whole (a model told to write only code may drop the
    fence). A fence the model never closed runs to the end of the answer.
    """
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(answer)]
    code_blocks = [body for lang, body in blocks if lang in ("", "python", "py", "python3")]
    if code_blocks:
        return code_blocks[-1]
    if blocks:
        langs = ", ".join(sorted({lang or "untagged" for lang, _ in blocks}))
        raise PlanParseError(f"the answer has fenced blocks ({langs}) but no Python block")
    return answer


def detect_format(answer: str) -> str:
    """``json`` when the answer is (or fences) a JSON object, else ``code``."""
    stripped = answer.strip()
    if stripped.startswith("{") or re.search(r"```[ \t]*json", stripped, re.IGNORECASE):
        return "json"
    return "code"


def _check_size(answer: str) -> None:
    if not isinstance(answer, str):
        raise PlanParseError(f"the answer must be text, got {type(answer).__name__}")
    if len(answer) > MAX_ANSWER_CHARS:
        raise PlanParseError(f"the answer is {len(answer)} characters long, more than the limit of {MAX_ANSWER_CHARS}")
    if not answer.strip():
        raise PlanParseError("the answer is empty")


def parse_answer(
    answer: str, scene: SceneState | None = None, fmt: str = "auto", *, allow_only_completed: bool = False
) -> ParsedPlan:
    """Parse a model answer into primitives; ``PlanParseError`` with line, call and reason if not acceptable.

    With a ``scene``, object names must exist in it. ``fmt``: ``auto`` (detect), ``code`` or ``json``.
    ``allow_only_completed``: an answer that only says ``task_completed()`` is an empty, completed
    plan rather than an error (dynamic replanning's last answer).
    """
    _check_size(answer)
    if fmt == "auto":
        fmt = detect_format(answer)
    if fmt not in ("code", "json"):
        raise ValueError(f"unknown answer format {fmt!r} (auto, code, json)")
    parsed = _parse_json(answer, scene) if fmt == "json" else _parse_code(answer, scene)
    if not parsed.primitives and not (allow_only_completed and parsed.completed):
        raise PlanParseError("the answer contains no robot calls (empty plan)")
    return parsed


# ------------------------------------------------------------------------------------------ code
def _segment(code: str, node: ast.AST) -> str:
    text = ast.get_source_segment(code, node) or type(node).__name__
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


_STATEMENT_NAMES = {
    ast.Import: "import statements are not allowed",
    ast.ImportFrom: "import statements are not allowed",
    ast.For: "loops are not allowed: write every call out",
    ast.AsyncFor: "loops are not allowed: write every call out",
    ast.While: "loops are not allowed: write every call out",
    ast.If: "conditionals are not allowed: write the calls for this scene",
    ast.FunctionDef: "function definitions are not allowed",
    ast.AsyncFunctionDef: "function definitions are not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.Assign: "assignments are not allowed: pass literal numbers to the calls",
    ast.AugAssign: "assignments are not allowed: pass literal numbers to the calls",
    ast.AnnAssign: "assignments are not allowed: pass literal numbers to the calls",
    ast.With: "with statements are not allowed",
    ast.Try: "try statements are not allowed",
    ast.Return: "return statements are not allowed",
    ast.Delete: "del statements are not allowed",
    ast.Global: "global statements are not allowed",
    ast.Nonlocal: "nonlocal statements are not allowed",
    ast.Raise: "raise statements are not allowed",
    ast.Assert: "assert statements are not allowed",
}


def _describe_expression(node: ast.AST) -> str:
    """Why a non-literal argument or statement is refused, naming the construct."""
    for sub in ast.walk(node):
        if isinstance(sub, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return "comprehensions are not allowed"
        if isinstance(sub, ast.Attribute):
            return "attribute access is not allowed"
        if isinstance(sub, ast.Lambda):
            return "lambdas are not allowed"
        if isinstance(sub, ast.Call):
            return "nested calls are not allowed in arguments"
        if isinstance(sub, (ast.Subscript, ast.Starred)):
            return "indexing and unpacking are not allowed"
        if isinstance(sub, ast.Name):
            return f"variable {sub.id!r} is not allowed: write the number itself"
        if isinstance(sub, ast.BinOp):
            return "arithmetic is not allowed: write the computed number"
    return f"{type(node).__name__} is not a literal"


def _number(node: ast.AST, code: str, line: int, call: str, what: str) -> float:
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        value = sign * float(node.value)
        if not math.isfinite(value):
            raise PlanParseError(f"{what} is not a finite number ({_segment(code, node)})", line, call)
        return value
    if isinstance(node, ast.Constant):
        raise PlanParseError(f"{what} must be a number, got {node.value!r}", line, call)
    raise PlanParseError(f"{what} must be a literal number: {_describe_expression(node)}", line, call)


def _position(node: ast.AST, code: str, line: int, call: str) -> tuple[float, float, float]:
    if not isinstance(node, (ast.List, ast.Tuple)):
        reason = "position must be a list [x, y, z] of literal numbers"
        if not isinstance(node, ast.Constant):
            reason += f": {_describe_expression(node)}"
        raise PlanParseError(reason, line, call)
    if len(node.elts) != 3:
        raise PlanParseError(f"position needs 3 numbers [x, y, z], got {len(node.elts)}", line, call)
    x, y, z = (_number(e, code, line, call, f"position {axis}") for e, axis in zip(node.elts, "xyz"))
    return (x, y, z)


def _object_name(node: ast.AST, scene: SceneState | None, line: int, call: str) -> str:
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        raise PlanParseError("object_name must be a string literal naming an object of the scene", line, call)
    return _check_name(node.value, scene, line, call)


def _check_name(name: str, scene: SceneState | None, line: int, call: str) -> str:
    if scene is not None and name not in scene.names():
        known = ", ".join(scene.names()) or "none"
        raise PlanParseError(f"unknown object {name!r} (the scene has: {known})", line, call)
    return name


def _bind(call_node: ast.Call, func: str, code: str, line: int, text: str) -> dict[str, ast.AST]:
    params = FUNCTIONS[func]
    if any(isinstance(a, ast.Starred) for a in call_node.args) or any(k.arg is None for k in call_node.keywords):
        raise PlanParseError("argument unpacking (* or **) is not allowed", line, text)
    if len(call_node.args) > len(params):
        raise PlanParseError(
            f"{func} takes {len(params)} argument(s) ({', '.join(params) or 'none'}), got {len(call_node.args)}",
            line,
            text,
        )
    bound = dict(zip(params, call_node.args))
    for kw in call_node.keywords:
        name = KEYWORD_ALIASES.get(kw.arg, kw.arg)
        if name not in params:
            raise PlanParseError(
                f"{func} has no parameter {kw.arg!r} (parameters: {', '.join(params) or 'none'})", line, text
            )
        if name in bound:
            raise PlanParseError(f"{func} got {name!r} twice", line, text)
        bound[name] = kw.value
    return bound


def _parse_code(answer: str, scene: SceneState | None) -> ParsedPlan:
    code = extract_code(answer)
    try:
        with warnings.catch_warnings():  # model text may hold odd literals; SyntaxWarnings are noise here
            warnings.simplefilter("ignore")
            tree = ast.parse(code, mode="exec")
    except SyntaxError as exc:
        if code is answer:  # no fence: the answer was taken whole
            raise PlanParseError(
                f"the answer has no ```python code block, and as a whole it is not Python "
                f"(line {exc.lineno or 0}: {exc.msg})"
            ) from None
        raise PlanParseError(f"not valid Python: {exc.msg}", exc.lineno or 0) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise PlanParseError(
            f"the code cannot be parsed ({type(exc).__name__}: nested too deeply or malformed)"
        ) from None
    primitives: list[Primitive] = []
    completed = False
    for stmt in tree.body:
        line = getattr(stmt, "lineno", 0)
        text = _segment(code, stmt)
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            continue  # a docstring-like comment string
        if type(stmt) in _STATEMENT_NAMES:
            raise PlanParseError(_STATEMENT_NAMES[type(stmt)], line, text)
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
            raise PlanParseError(f"only calls of {', '.join(FUNCTIONS)} are allowed, one per line", line, text)
        call_node = stmt.value
        if isinstance(call_node.func, ast.Attribute):
            raise PlanParseError("attribute access is not allowed: call the functions by their plain names", line, text)
        if not isinstance(call_node.func, ast.Name):
            raise PlanParseError(f"only calls of {', '.join(FUNCTIONS)} are allowed", line, text)
        func = ALIASES.get(call_node.func.id, call_node.func.id)
        if func not in FUNCTIONS:
            raise PlanParseError(f"unknown function {call_node.func.id!r} (known: {', '.join(FUNCTIONS)})", line, text)
        if completed:
            raise PlanParseError("task_completed() must be the last call", line, text)
        args = _bind(call_node, func, code, line, text)
        if func == "execute_trajectory":
            if "position" not in args:
                raise PlanParseError("execute_trajectory needs a position [x, y, z]", line, text)
            position = _position(args["position"], code, line, text)
            yaw = _number(args["orientation"], code, line, text, "orientation") if "orientation" in args else 0.0
            primitives.append(Primitive.move(position, yaw))
        elif func == "open_gripper":
            primitives.append(Primitive.open())
        elif func == "close_gripper":
            name = _object_name(args["object_name"], scene, line, text) if "object_name" in args else ""
            primitives.append(Primitive.close(name))
        else:
            completed = True
        if len(primitives) > MAX_PLAN_LENGTH:
            raise PlanParseError(f"more than {MAX_PLAN_LENGTH} calls: runaway output", line, text)
    return ParsedPlan(primitives, "code", code, completed)


# ------------------------------------------------------------------------------------------ json
def _reject_constant(token: str) -> float:
    raise PlanParseError(f"{token} is not a finite number")


def _json_number(value, where: str, index: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlanParseError(f"{where} must be a number, got {value!r}", 0, f"plan[{index}]")
    if not math.isfinite(float(value)):
        raise PlanParseError(f"{where} is not a finite number", 0, f"plan[{index}]")
    return float(value)


def _parse_json(answer: str, scene: SceneState | None) -> ParsedPlan:
    text = answer.strip()
    fenced = re.search(r"```[ \t]*json[ \t]*\r?\n(.*?)(?:```|\Z)", text, re.DOTALL | re.IGNORECASE)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except PlanParseError:
        raise
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PlanParseError(f"not valid JSON: {exc}") from None
    if isinstance(data, dict):
        steps = data.get("plan")
        if steps is None:
            raise PlanParseError("the JSON object has no 'plan' list")
    else:
        steps = data
    if not isinstance(steps, list):
        raise PlanParseError("'plan' must be a list of calls")
    primitives: list[Primitive] = []
    completed = False
    for i, step in enumerate(steps):
        where = f"plan[{i}]"
        if not isinstance(step, dict):
            raise PlanParseError(f"each step must be an object with a 'call', got {step!r}"[:200], 0, where)
        raw_func = step.get("call", step.get("function", step.get("primitive")))
        if not isinstance(raw_func, str):
            raise PlanParseError("the step has no 'call' naming a function", 0, where)
        func = ALIASES.get(raw_func, raw_func)
        if func not in FUNCTIONS:
            raise PlanParseError(f"unknown function {raw_func!r} (known: {', '.join(FUNCTIONS)})", 0, where)
        if completed:
            raise PlanParseError("task_completed must be the last call", 0, where)
        allowed = (
            {"call", "function", "primitive"}
            | set(FUNCTIONS[func])
            | {k for k, v in KEYWORD_ALIASES.items() if v in FUNCTIONS[func]}
        )
        extra = sorted(set(step) - allowed)
        if extra:
            raise PlanParseError(f"{func} has no field(s) {', '.join(extra)}", 0, where)
        if func == "execute_trajectory":
            pos = step.get("position")
            if not isinstance(pos, list) or len(pos) != 3:
                raise PlanParseError(f"position must be a list of 3 numbers, got {pos!r}"[:200], 0, where)
            position = tuple(_json_number(v, f"position {a}", i) for v, a in zip(pos, "xyz"))
            yaw_value = step.get("orientation", step.get("yaw", 0.0))
            primitives.append(Primitive.move(position, _json_number(yaw_value, "orientation", i)))
        elif func == "open_gripper":
            primitives.append(Primitive.open())
        elif func == "close_gripper":
            name = step.get("object_name", step.get("object", step.get("name", "")))
            if not isinstance(name, str):
                raise PlanParseError("object must be a string naming an object of the scene", 0, where)
            primitives.append(Primitive.close(_check_name(name, scene, 0, where) if name else ""))
        else:
            completed = True
        if len(primitives) > MAX_PLAN_LENGTH:
            raise PlanParseError(f"more than {MAX_PLAN_LENGTH} calls: runaway output", 0, where)
    return ParsedPlan(primitives, "json", text, completed)


# ------------------------------------------------------------------------------------------ output
def _num(value: float, digits: int) -> str:
    return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.000"


def plan_to_code(plan: list[Primitive], completed: bool = True) -> str:
    """The MALMM-style code for a plan (what a model should have written; also the SFT completion)."""
    lines = []
    for p in plan:
        if p.kind == PrimitiveKind.MOVE_GRIPPER:
            assert p.position is not None
            x, y, z = (_num(v, 3) for v in p.position)
            lines.append(f"execute_trajectory([{x}, {y}, {z}], {_num(p.yaw, 2)})")
        elif p.kind == PrimitiveKind.OPEN_GRIPPER:
            lines.append("open_gripper()")
        else:
            lines.append(f'close_gripper("{p.object_name}")' if p.object_name else "close_gripper()")
    if completed:
        lines.append("task_completed()")
    return "\n".join(lines)


def plan_to_json(plan: list[Primitive], completed: bool = True) -> str:
    steps: list[dict] = []
    for p in plan:
        if p.kind == PrimitiveKind.MOVE_GRIPPER:
            assert p.position is not None
            steps.append(
                {
                    "call": "execute_trajectory",
                    "position": [round(v, 3) for v in p.position],
                    "orientation": round(p.yaw, 2),
                }
            )
        elif p.kind == PrimitiveKind.OPEN_GRIPPER:
            steps.append({"call": "open_gripper"})
        else:
            steps.append({"call": "close_gripper", "object": p.object_name})
    if completed:
        steps.append({"call": "task_completed"})
    return json.dumps({"plan": steps})
