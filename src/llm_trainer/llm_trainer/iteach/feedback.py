"""LLM-iTeach's feedback rule and loss weights.

The angle between the agent's translational action and the teacher's (the CodePolicy's) decides:
above the threshold (20 degrees by default, the paper's best) the teacher's action replaces the
agent's and the sample is *corrective*; at or below it the agent's own action is approved and kept
as an *evaluative* sample. We also call a step corrective when the two disagree on the gripper or
turn the hand differently by more than ``turn_tolerance`` (our action has a yaw beside the paper's
translation and gripper: without this, an agent that holds still while the teacher only wants to turn
would be approved forever, both translations being zero). A translational action
shorter than ``still`` has no direction: two such actions agree (angle 0); one against a real motion
is 180 degrees off.

Loss weights (CEILing's scheme, which LLM-iTeach keeps): with N samples in the buffer of which N_c are
corrective, a corrective sample weighs N / N_c (inversely to how frequent corrections are), an
evaluative one a fixed ``evaluative_weight``.
"""

from __future__ import annotations

import math

import numpy as np

CORRECTIVE = "corrective"
EVALUATIVE = "evaluative"


def action_angle_deg(a, b, still: float = 1e-4) -> float:
    """Angle in degrees between two translational actions (0..180)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < still and nb < still:
        return 0.0
    if na < still or nb < still:
        return 180.0
    cos = float(np.clip(a @ b / (na * nb), -1.0, 1.0))
    return math.degrees(math.acos(cos))


def feedback_label(agent_move, teacher_move, threshold_deg: float = 20.0, *, agent_closed: bool | None = None,
                   teacher_closed: bool | None = None, agent_turn: float | None = None,
                   teacher_turn: float | None = None, turn_tolerance: float = 0.05) -> str:  # fmt: skip
    """``corrective`` when the angle exceeds the threshold (or gripper or turn disagree), else ``evaluative``."""
    if agent_closed is not None and teacher_closed is not None and agent_closed != teacher_closed:
        return CORRECTIVE
    if agent_turn is not None and teacher_turn is not None and abs(agent_turn - teacher_turn) > turn_tolerance:
        return CORRECTIVE
    return CORRECTIVE if action_angle_deg(agent_move, teacher_move) > threshold_deg else EVALUATIVE


def loss_weights(labels, evaluative_weight: float = 1.0) -> np.ndarray:
    """Per-sample weights: corrective N / N_c, evaluative ``evaluative_weight`` (see the module docstring)."""
    labels = list(labels)
    n = len(labels)
    n_c = sum(1 for lab in labels if lab == CORRECTIVE)
    unknown = set(labels) - {CORRECTIVE, EVALUATIVE}
    if unknown:
        raise ValueError(f"unknown feedback label(s) {sorted(unknown)}")
    w_c = n / n_c if n_c else 0.0
    return np.array([w_c if lab == CORRECTIVE else evaluative_weight for lab in labels], np.float32)
