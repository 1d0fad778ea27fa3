"""The state a policy sees: the hand (position, yaw as sin/cos, gripper width) and the task's objects
in the order of their roles in the task goal (so "the block to stack first" is the same input in
every scene, whatever its colour), each relative to the hand."""

from __future__ import annotations

import math

import numpy as np


def role_names(goal, names: list[str]) -> list[str]:
    """Object names in the order the goal mentions them (sorted keys, list order); others last."""
    out: list[str] = []

    def walk(v) -> None:
        if isinstance(v, str) and v in names and v not in out:
            out.append(v)
        elif isinstance(v, dict):
            for k in sorted(v):
                walk(v[k])
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(goal)
    return out


def yaw_of_quat_xyzw(q) -> float:
    x, y, z, w = (float(v) for v in q)
    return math.atan2(2 * (x * y + z * w), 1 - 2 * (y * y + z * z))


def state_features(ee_pos, ee_yaw: float, gripper_width: float, objects: list) -> np.ndarray:
    """``objects``: (x, y, z, yaw) per role, in role order."""
    f = [*np.asarray(ee_pos, float), math.sin(ee_yaw), math.cos(ee_yaw), float(gripper_width)]
    for x, y, z, yaw in objects:
        f += [x - ee_pos[0], y - ee_pos[1], z - ee_pos[2], math.sin(2 * (yaw - ee_yaw)), math.cos(2 * (yaw - ee_yaw))]
    return np.asarray(f, np.float32)


def wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi
