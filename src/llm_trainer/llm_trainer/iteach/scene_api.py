"""The scene API a CodePolicy sees, and the action it answers with (plain data both ways).

A CodePolicy is a Python module with a list of step names and, per step, two functions of ``scene``:

    STEPS = ["above_block", "grasp", ...]
    def above_block_action(scene): return {"move": [dx, dy, dz], "turn": 0.0, "gripper": "open"}
    def above_block_done(scene): return True or False

``scene`` is a dict (metres, radians, world frame: x forward, y left, z up from the table top)::

    {"instruction": "put the red block in the target area",
     "goal": {"block": "red_block", "area": "target_area"},          # the task's roles -> object names
     "objects": {"red_block": {"position": [x, y, z], "yaw": a, "size": [l, w, h], "category": "block"}, ...},
     "hand": {"position": [x, y, z], "yaw": a, "gripper_width": w, "holding": ["red_block"]},
     "limits": {"max_move": 0.03, "max_turn": 0.25, "gripper_open_width": 0.08}}

``position`` is an object's bounding-box centre, ``size`` its full extent along its own axes, ``yaw``
its rotation about z; the hand points down, its ``position`` is between the fingertips. The action
moves the hand by ``move`` (clipped to ``max_move`` per step), turns it by ``turn`` (clipped to
``max_turn``) and opens or closes the gripper (``"open"``, ``"close"``; omitted: unchanged). The step
functions run one after another: ``X_action`` drives until ``X_done`` says the step is complete.
``holding`` is the one model of what the hand holds that the rest of the stack uses
(``MujocoSimulation.objects_in_gripper``: both fingers touching the object).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACTION_KEYS = frozenset({"move", "turn", "gripper"})
GRIPPER_WORDS = {"open": False, "close": True}


@dataclass
class Action:
    move: np.ndarray  # (3,) metres
    turn: float = 0.0  # radians
    close: bool | None = None  # None: leave the gripper as it is

    def as_list(self, gripper_closed: bool) -> list[float]:
        closed = gripper_closed if self.close is None else self.close
        return [*map(float, self.move), float(self.turn), 1.0 if closed else 0.0]


class ActionError(ValueError):
    pass


def parse_action(value) -> Action:
    """A CodePolicy's answer -> ``Action``, or ``ActionError`` saying what is wrong with it."""
    if not isinstance(value, dict):
        raise ActionError(f"an action must be a dict with move/turn/gripper, got {type(value).__name__}")
    unknown = set(value) - ACTION_KEYS
    if unknown:
        raise ActionError(f"unknown action key(s) {sorted(unknown)} (known: move, turn, gripper)")
    move = value.get("move", [0.0, 0.0, 0.0])
    if not (isinstance(move, list) and len(move) == 3 and all(_number(v) for v in move)):
        raise ActionError(f"move must be a list of three finite numbers, got {move!r}"[:200])
    turn = value.get("turn", 0.0)
    if not _number(turn):
        raise ActionError(f"turn must be a finite number, got {turn!r}"[:200])
    gripper = value.get("gripper")
    if gripper is not None and gripper not in GRIPPER_WORDS:
        raise ActionError(f"gripper must be 'open' or 'close', got {gripper!r}"[:200])
    return Action(np.asarray(move, float), float(turn), None if gripper is None else GRIPPER_WORDS[gripper])


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def scene_view(sim, instance, *, max_move: float, max_turn: float) -> dict:
    """The simulator's state as the scene API's dict (what the CodePolicy and the agent's features read)."""
    from llm_trainer.sim import panda_description as panda

    state = sim.scene_state()
    pos, _ = sim.tcp_pose()
    return {
        "instruction": instance.instruction,
        "goal": instance.goal,
        "objects": {
            o.name: {
                "position": [float(v) for v in o.position],
                "yaw": float(o.yaw),
                "size": [float(v) for v in o.size],
                "category": o.category,
            }
            for o in state.objects
        },
        "hand": {
            "position": [float(v) for v in pos],
            "yaw": float(sim.tcp_yaw()),
            "gripper_width": float(sim.gripper_width()),
            "holding": sorted(sim.objects_in_gripper()),
        },
        "limits": {"max_move": max_move, "max_turn": max_turn, "gripper_open_width": 2 * panda.FINGER_TRAVEL},
    }
