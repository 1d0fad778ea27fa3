"""The planner prompt, in the style of MALMM's single-agent prompt (BLAZER used it to generate data).

Written in our own words from the published facts (``shared/DESIGN.md`` section 2): the world frame
(x right, y away from the viewer, z up), the table height and workspace bounds, the constraints
(gripper yaw = the object's yaw, a safe height above objects, release just above the target,
grasp at the centre, no collisions), the eight-step pick/place recipe, the callable functions,
then the task, the end-effector pose and the scene state as text.

Two modes:
  * ``sequential``: one answer holds the whole plan (reasoning, then a code block);
  * ``dynamic``: the state is re-sent after every executed step and the model writes the next call
    only (``llm_trainer.planning.dynamic`` runs the loop, with bounded retries).

``PROMPT_VERSION`` is stored with every logged request so SFT data knows which prompt produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_trainer.primitives import Primitive
from llm_trainer.scene import ObjectState, SceneState

PROMPT_VERSION = "malmm-single-v1"
MODES = ("sequential", "dynamic")
FORMATS = ("code", "json")


@dataclass
class PromptConfig:
    format: str = "code"  # code: reasoning + a Python block (MALMM); json: {"plan": [...]} (structured output)
    safe_height: float = 0.1  # [m] above an object before descending onto it
    release_height: float = 0.02  # [m] gap between the held object's bottom and the surface at release
    example: bool = True  # include one worked example (a different scene): small models copy its form
    reasoning: bool = True  # ask for a short reasoning before the code (MALMM); off = code only

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"prompt.format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 0.02 <= self.safe_height <= 0.3:
            raise ValueError("prompt.safe_height must be within [0.02, 0.3] m")
        if not 0.0 <= self.release_height <= 0.1:
            raise ValueError("prompt.release_height must be within [0, 0.1] m")


@dataclass
class Prompt:
    """Chat messages for the model plus the flat text that logs and SFT data keep."""

    system: str
    user: str
    version: str = PROMPT_VERSION
    mode: str = "sequential"

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    @property
    def text(self) -> str:
        return f"{self.system}\n\n{self.user}"


def _n(value: float, digits: int = 3) -> str:
    """A number as the prompt writes it (no "-0.000")."""
    return f"{round(float(value), digits) + 0.0:.{digits}f}"


def _v(values) -> str:
    return "[" + ", ".join(_n(v) for v in values) + "]"


def describe_object(o: ObjectState) -> str:
    return f"- {o.name} ({o.category}): position {_v(o.position)}, yaw {_n(o.yaw, 2)} rad, size {_v(o.size)}"


def describe_scene(scene: SceneState) -> str:
    """The scene state as the model reads it: one line per object (centre, yaw, length/width/height)."""
    if not scene.objects:
        return "(no objects detected)"
    return "\n".join(describe_object(o) for o in scene.objects)


def _world(scene: SceneState, cfg: PromptConfig) -> str:
    ws = scene.workspace
    return f"""You plan motions for a Franka Panda arm with a parallel two-finger gripper that works on a table.

World frame: x points to the right, y points away from the viewer, z points up. All positions are in
metres in this frame; angles are in radians. The table surface is at z = {scene.table_height:.3f}.
The gripper must stay inside the workspace: x from {ws.x_min:.2f} to {ws.x_max:.2f}, y from {ws.y_min:.2f} to \
{ws.y_max:.2f}, z from {max(ws.z_min, scene.table_height):.2f} to {ws.z_max:.2f}.
Each object is given by its centre [x, y, z], its yaw (rotation about z) and its size [length, width, height].
The gripper always points straight down; its orientation is its yaw about z.

Rules:
1. When grasping, turn the gripper to the object's yaw and close it at the object's centre.
2. Before descending onto an object or a place, move to {cfg.safe_height:.2f} m above it first; after grasping
   or releasing, go back up to that safe height before moving sideways.
3. Release an object {cfg.release_height:.2f} m above where it should rest: the gripper z is then the surface
   height + half the object's height + {cfg.release_height:.2f}. The surface is the table or the top of the
   object below (its centre z + half its height).
4. Never move through other objects: travel above them.
5. Use only the functions below, with numbers written out (no variables, loops or arithmetic).

Recipe for moving one object (repeat it for each object, in the order the task needs):
  1. move above the object (safe height), with the gripper at the object's yaw
  2. move down to the object's centre
  3. close the gripper on the object
  4. move back up to the safe height
  5. move above the destination
  6. move down to the release height
  7. open the gripper
  8. move back up to the safe height

Functions:
- execute_trajectory(position, orientation): move the gripper in a straight line to position [x, y, z] with yaw
  orientation
- open_gripper(): open the fingers (release)
- close_gripper(object_name): close the fingers on the named object (grasp)
- task_completed(): call once at the end, when the task is done"""


_EXAMPLE_SCENE = """- green_cube (block): position [0.420, 0.180, 0.020], yaw 0.52 rad, size [0.040, 0.040, 0.040]
- tray (target_area): position [0.550, -0.100, 0.005], yaw 0.00 rad, size [0.150, 0.150, 0.010]"""
_EXAMPLE_CALLS = [
    ("open_gripper", None, None),
    ("execute_trajectory", [0.42, 0.18, 0.12], 0.52),
    ("execute_trajectory", [0.42, 0.18, 0.02], 0.52),
    ("close_gripper", "green_cube", None),
    ("execute_trajectory", [0.42, 0.18, 0.12], 0.52),
    ("execute_trajectory", [0.55, -0.10, 0.15], 0.52),
    ("execute_trajectory", [0.55, -0.10, 0.05], 0.52),
    ("open_gripper", None, None),
    ("execute_trajectory", [0.55, -0.10, 0.15], 0.52),
    ("task_completed", None, None),
]
_EXAMPLE_REASONING = (
    "The green cube is at [0.420, 0.180, 0.020] with yaw 0.52, so I grasp it there with yaw 0.52 after "
    "approaching from 0.12 m. The tray top is at 0.005 + 0.005 = 0.010, so I release at "
    "0.010 + 0.020 + 0.02 = 0.05 and approach the tray from 0.15."
)


def _example_code() -> str:
    lines = []
    for func, a, b in _EXAMPLE_CALLS:
        if func == "execute_trajectory":
            lines.append(f"execute_trajectory({_v(a)}, {b:.2f})")
        elif func == "close_gripper":
            lines.append(f'close_gripper("{a}")')
        else:
            lines.append(f"{func}()")
    return "\n".join(lines)


def _example_json() -> str:
    import json

    steps = []
    for func, a, b in _EXAMPLE_CALLS:
        if func == "execute_trajectory":
            steps.append({"call": func, "position": [round(v, 3) for v in a], "orientation": b})
        elif func == "close_gripper":
            steps.append({"call": func, "object": a})
        else:
            steps.append({"call": func})
    return json.dumps({"plan": steps})


def _answer_format(cfg: PromptConfig, mode: str) -> str:
    if mode == "dynamic":
        if cfg.format == "json":
            return (
                'Answer with a JSON object {"plan": [...]} holding only the next call, e.g. '
                '{"plan": [{"call": "open_gripper"}]}; use {"plan": [{"call": "task_completed"}]} '
                "when the task is done."
            )
        return (
            "Answer with one ```python code block that holds only the next call (one line), "
            "or task_completed() when the task is done."
        )
    if cfg.format == "json":
        return (
            'Answer with one JSON object {"plan": [...]} listing the calls in order; each call is an object with '
            '"call" (the function name) and its arguments: "position" and "orientation" for execute_trajectory, '
            '"object" for close_gripper.'
        )
    head = "First explain your plan in a few sentences, then" if cfg.reasoning else "Write"
    return f"{head} one ```python code block with the calls in order, one per line."


def _example(cfg: PromptConfig) -> str:
    task = "Task: put the green cube on the tray."
    if cfg.format == "json":
        return f"Example (a different scene):\nObjects:\n{_EXAMPLE_SCENE}\n{task}\nAnswer:\n{_example_json()}"
    reasoning = f"{_EXAMPLE_REASONING}\n" if cfg.reasoning else ""
    code = f"```python\n{_example_code()}\n```"
    return f"Example (a different scene):\nObjects:\n{_EXAMPLE_SCENE}\n{task}\nAnswer:\n{reasoning}{code}"


def _history(steps: list[Primitive]) -> str:
    from llm_trainer.planning.parser import plan_to_code

    if not steps:
        return "Executed so far: nothing yet."
    return "Executed so far (in order):\n" + plan_to_code(steps, completed=False)


def build_prompt(
    instruction: str,
    scene: SceneState,
    config: PromptConfig | None = None,
    *,
    mode: str = "sequential",
    history: list[Primitive] | None = None,
    feedback: str = "",
) -> Prompt:
    """The prompt for one request. ``history`` (dynamic mode): the calls already executed;
    ``feedback``: why the previous answer was refused (a retry)."""
    cfg = config or PromptConfig()
    if mode not in MODES:
        raise ValueError(f"unknown prompt mode {mode!r} ({', '.join(MODES)})")
    system = _world(scene, cfg) + "\n\n" + _answer_format(cfg, mode)
    if cfg.example and mode == "sequential":
        system += "\n\n" + _example(cfg)
    ee = scene.ee_position
    parts = [
        f"Task: {instruction.strip()}",
        f"Gripper: position {_v(ee)}, orientation (yaw) {_n(scene.ee_yaw, 2)} rad, "
        f"{'open' if scene.gripper_width > 0.01 else 'closed'} (finger gap {scene.gripper_width:.3f} m).",
        "Objects:\n" + describe_scene(scene),
    ]
    if mode == "dynamic":
        parts.append(_history(history or []))
        parts.append("What is the next call?")
    if feedback:
        parts.append(f"Your previous answer was refused: {feedback}\nWrite a corrected answer.")
    return Prompt(system, "\n".join(parts), PROMPT_VERSION, mode)
