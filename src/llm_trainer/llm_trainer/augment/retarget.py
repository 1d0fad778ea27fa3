"""Keypose retargeting: a keypose that depends on an object keeps its pose *relative to that object*
when the object moves (LLM Trainer: "keyposes are moved with their objects' new poses").

``new = object_new * (object_old^-1 * keypose_old)``: a rigid transform, exact by construction.
A keypose on ``world`` stays where it was. An object's yaw is only known up to its footprint's
symmetry (a block turned by a quarter turn looks the same), so the change of yaw used is the
smallest one that symmetry allows: the hand does not spin a full half turn for a block that
merely appears turned.
"""

from __future__ import annotations

import math

from llm_trainer.augment.poses import Pose, wrap

WORLD = "world"


def symmetric_yaw_change(old_yaw: float, new_yaw: float, period: float) -> float:
    """new - old, folded into (-period/2, period/2]."""
    d = (new_yaw - old_yaw) % period
    return d - period if d > period / 2 else d


def object_pose_for(old: Pose, new: Pose, period: float = 2 * math.pi) -> Pose:
    """``new`` with its yaw re-expressed as the symmetric-nearest one to ``old``'s."""
    return Pose(new.x, new.y, new.z, wrap(old.yaw + symmetric_yaw_change(old.yaw, new.yaw, period)))


def retarget_pose(keypose: Pose, old_object: Pose, new_object: Pose) -> Pose:
    return new_object.compose(keypose.relative_to(old_object))


def retarget(
    keyposes: list[tuple[Pose, str]],
    old_objects: dict[str, Pose],
    new_objects: dict[str, Pose],
    periods: dict[str, float] | None = None,
) -> list[Pose]:
    """Each ``(keypose, reference object)`` moved with its object from the old scene to the new one."""
    out = []
    for pose, ref in keyposes:
        if ref == WORLD:
            out.append(pose)
            continue
        if ref not in old_objects or ref not in new_objects:
            raise KeyError(f"keypose depends on {ref!r}, which is not in both scenes")
        period = (periods or {}).get(ref, 2 * math.pi)
        out.append(retarget_pose(pose, old_objects[ref], object_pose_for(old_objects[ref], new_objects[ref], period)))
    return out
