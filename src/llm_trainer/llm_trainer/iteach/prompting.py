"""CodePolicy generation by hierarchical prompting (LLM-iTeach's planner prompt, then action and check prompts).

1. The planner prompt gets the task sentence, the goal's roles and the scene's objects and returns the
   steps as JSON (``{"steps": [{"name": ..., "description": ...}]}``).
2. Per step, a fresh action prompt asks for ``def <name>_action(scene)`` and a fresh check prompt for
   ``def <name>_done(scene)``, both over the documented scene API (``scene_api``'s docstring).
3. The functions are assembled into one module and put through the sandbox's static check; a refused
   function is asked for again with the reason (at most ``retries`` times), then the whole
   generation is refused with every reason. Nothing the model writes runs outside the sandbox.

The transcript (every prompt and answer) is returned beside the code for the user to read.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

from llm_trainer.iteach import scene_api
from llm_trainer.iteach.sandbox import SandboxError, check_source
from llm_trainer.planning.llm import GenerationRequest
from llm_trainer.planning.prompt import Prompt

PROMPT_VERSION = "llm-trainer-codepolicy-v1"

STEPS_SCHEMA = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "minItems": 1,
            "maxItems": 24,
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
                "required": ["name", "description"],
            },
        }
    },
    "required": ["steps"],
}

SYSTEM = (
    "You write control code for a Franka Panda arm that picks and places objects on a table, seen from above. "
    "The code is Python; only the math module may be imported; no classes, files, printing or other modules."
)


def api_text() -> str:
    doc = scene_api.__doc__ or ""
    return doc.split("``holding`` is")[0].strip()


def scene_text(scene: dict) -> str:
    lines = [f"Task: {scene['instruction']}", f"Goal roles: {json.dumps(scene['goal'])}", "Objects:"]
    for name, o in scene["objects"].items():
        pos = ", ".join(f"{v:.3f}" for v in o["position"])
        size = ", ".join(f"{v:.3f}" for v in o["size"])
        lines.append(f"- {name} ({o['category']}): position [{pos}] m, size [{size}] m")
    return "\n".join(lines)


@dataclass
class GeneratedCodePolicy:
    source: str
    steps: list[str]
    transcript: list[dict] = field(default_factory=list)


class CodePolicyGenerationError(RuntimeError):
    def __init__(self, reasons: list[str], transcript: list[dict]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons
        self.transcript = transcript


def _code(answer: str) -> str:
    m = re.search(r"```(?:python)?\s*\n(.*?)```", answer, re.S)
    return (m.group(1) if m else answer).strip()


def extract_function(answer: str, name: str) -> str:
    """The top-level ``def name(...)`` (plus helper functions it defines) of an answer, or a SandboxError."""
    code = _code(answer)
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise SandboxError("static", f"{name}: does not compile: {exc.msg} (line {exc.lineno})") from None
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not any(f.name == name for f in funcs):
        raise SandboxError("static", f"the answer defines no function {name}(scene)")
    return "\n\n\n".join(ast.get_source_segment(code, f) for f in funcs)


class CodePolicyWriter:
    def __init__(self, generator, *, retries: int = 2, max_new_tokens: int = 512, temperature: float = 0.0):
        self.generator = generator
        self.retries = retries
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.transcript: list[dict] = []

    def _ask(self, stage: str, user: str, schema: dict | None = None) -> str:
        prompt = Prompt(system=SYSTEM, user=user, version=PROMPT_VERSION)
        request = GenerationRequest(prompt, None, schema, self.max_new_tokens, self.temperature, 0)
        if schema is not None and "json_schema" not in getattr(self.generator, "supports", ()):
            request.json_schema = None
        text = self.generator.generate(request).text
        self.transcript.append({"stage": stage, "prompt": user, "answer": text})
        return text

    def plan_steps(self, scene: dict) -> list[tuple[str, str]]:
        user = (f"{scene_text(scene)}\n\nSplit the task into short sequential steps the arm can do one after "
                "another (move above, go down, close the gripper, lift, carry, lower, open, retreat...). Answer "
                'JSON only: {"steps": [{"name": "snake_case_name", "description": "what the step does"}]}')  # fmt: skip
        reasons = []
        for _ in range(self.retries + 1):
            text = self._ask("steps", user + ("\n\nYour last answer was refused: " + reasons[-1] if reasons else ""),
                             STEPS_SCHEMA)  # fmt: skip
            try:
                m = re.search(r"\{.*\}", text, re.S)
                steps = json.loads(m.group(0) if m else text)["steps"]
                out = [(str(s["name"]), str(s["description"])) for s in steps]
                names = [n for n, _ in out]
                if not out or not all(n.isidentifier() and not n.startswith("_") for n in names):
                    raise ValueError("every step name must be a snake_case identifier")
                if len(set(names)) != len(names):
                    raise ValueError("step names must be distinct")
                return out
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                reasons.append(f"steps: {exc}")
        raise CodePolicyGenerationError(reasons, self.transcript)

    def write_function(self, scene: dict, steps, index: int, kind: str) -> str:
        name, description = steps[index]
        fn = f"{name}_{kind}"
        plan = "\n".join(f"{i + 1}. {n}: {d}" for i, (n, d) in enumerate(steps))
        what = ("return the action dict for this step (move, turn, gripper)" if kind == "action"
                else "return True when this step is complete, else False")  # fmt: skip
        user = (f"{api_text()}\n\n{scene_text(scene)}\n\nThe steps:\n{plan}\n\nWrite `def {fn}(scene):` for step "
                f"{index + 1} ({name}: {description}): {what}. Use object names through scene['goal'] so the code "
                "works in every scene of the task. Answer with one Python code block.")  # fmt: skip
        reasons: list[str] = []
        for _ in range(self.retries + 1):
            text = self._ask(fn, user + (f"\n\nYour last answer was refused: {reasons[-1]}" if reasons else ""))
            try:
                code = extract_function(text, fn)
                check_source(f"import math\n\nSTEPS = ['{name}']\n\n{code}\n\n{_stub(name, kind)}")
                return code
            except SandboxError as exc:
                reasons.append(f"{fn}: {exc.reason}")
        raise CodePolicyGenerationError(reasons, self.transcript)

    def write(self, scene: dict) -> GeneratedCodePolicy:
        steps = self.plan_steps(scene)
        parts = [f'"""CodePolicy written by a language model ({PROMPT_VERSION}) for: {scene["instruction"]}"""',
                 "import math", f"STEPS = {json.dumps([n for n, _ in steps])}"]  # fmt: skip
        for i in range(len(steps)):
            parts.append(self.write_function(scene, steps, i, "action"))
            parts.append(self.write_function(scene, steps, i, "done"))
        source = "\n\n\n".join(parts) + "\n"
        try:
            names = check_source(source)
        except SandboxError as exc:  # e.g. two answers defining the same helper differently
            raise CodePolicyGenerationError([exc.reason], self.transcript) from None
        return GeneratedCodePolicy(source, names, self.transcript)


def _stub(name: str, kind: str) -> str:
    other = "done" if kind == "action" else "action"
    return f"def {name}_{other}(scene):\n    return False\n"
