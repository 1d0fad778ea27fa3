"""Demo warping between keyposes (LLM Trainer: "the original demo is warped between keyposes: rigid
transform aligning segment ends, z kept up, rotation interpolated").

Each keypose j gets a correction: turn by ``theta_j`` about its old position ``c_j`` and shift by
``d_j``, which takes the old keypose exactly onto the new one. Between keyposes j and j+1 the
correction's parameters are interpolated linearly (in the sample index), and every demo sample of
that segment is moved by the interpolated correction; before the first keypose the correction
grows from none (the robot's start), after the last it stays. Hence: the warped trajectory passes
exactly through the new keyposes, is continuous, and a segment whose two ends move by the same
rigid transform keeps the original's shape exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm_trainer.augment.poses import Pose, wrap


@dataclass(frozen=True)
class Correction:
    theta: float  # [rad] about z
    centre: np.ndarray  # (3,) the old keypose's position: the turn is about it
    shift: np.ndarray  # (3,)

    @classmethod
    def between(cls, old: Pose, new: Pose) -> Correction:
        return cls(wrap(new.yaw - old.yaw), old.position, new.position - old.position)

    @classmethod
    def identity(cls, at: Pose) -> Correction:
        return cls(0.0, at.position, np.zeros(3))

    def apply(self, pose: Pose) -> Pose:
        c, s = math.cos(self.theta), math.sin(self.theta)
        p = pose.position - self.centre
        q = np.array([c * p[0] - s * p[1], s * p[0] + c * p[1], p[2]]) + self.centre + self.shift
        return Pose.of(q, wrap(pose.yaw + self.theta))


def _blend(a: Correction, b: Correction, s: float) -> Correction:
    # The turn takes the short way from a to b.
    dtheta = wrap(b.theta - a.theta)
    return Correction(a.theta + s * dtheta, (1 - s) * a.centre + s * b.centre, (1 - s) * a.shift + s * b.shift)


def warp(demo: list[Pose], key_indices: list[int], new_keyposes: list[Pose]) -> list[Pose]:
    """The demo's poses moved so that sample ``key_indices[j]`` lands on ``new_keyposes[j]``."""
    if len(key_indices) != len(new_keyposes):
        raise ValueError("one new keypose per keyframe index is needed")
    if not key_indices:
        return list(demo)
    if sorted(key_indices) != list(key_indices) or len(set(key_indices)) != len(key_indices):
        raise ValueError(f"keyframe indices must be strictly increasing, got {key_indices}")
    if key_indices[0] < 0 or key_indices[-1] >= len(demo):
        raise ValueError(f"keyframe indices must lie within the demo's {len(demo)} samples")
    corrections = [Correction.between(demo[k], p) for k, p in zip(key_indices, new_keyposes)]
    anchors = [0, *key_indices] if key_indices[0] > 0 else list(key_indices)
    corr = [Correction.identity(demo[0]), *corrections] if key_indices[0] > 0 else corrections
    out: list[Pose] = []
    for i, pose in enumerate(demo):
        if i >= anchors[-1]:
            c = corr[-1]
        else:
            j = int(np.searchsorted(anchors, i, side="right")) - 1
            s = (i - anchors[j]) / (anchors[j + 1] - anchors[j])
            c = _blend(corr[j], corr[j + 1], s)
        out.append(c.apply(pose))
    return out
