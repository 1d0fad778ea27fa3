"""Planar rigid poses: position plus yaw about the world z axis.

The Panda's hand points straight down throughout our demos and plans ("z kept up"), so every pose
that matters here (the hand's keyposes, an object resting on the table) is a position and a yaw;
composing and inverting them is exact and cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def wrap(angle: float) -> float:
    """Angle in (-pi, pi]."""
    a = (angle + math.pi) % (2 * math.pi) - math.pi
    return math.pi if a == -math.pi else a


@dataclass(frozen=True)
class Pose:
    x: float
    y: float
    z: float
    yaw: float = 0.0

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    @classmethod
    def of(cls, position, yaw: float = 0.0) -> Pose:
        return cls(float(position[0]), float(position[1]), float(position[2]), float(yaw))

    def compose(self, other: Pose) -> Pose:
        """self * other: ``other`` expressed in this pose's frame, taken to the world."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return Pose(
            self.x + c * other.x - s * other.y,
            self.y + s * other.x + c * other.y,
            self.z + other.z,
            wrap(self.yaw + other.yaw),
        )

    def inverse(self) -> Pose:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return Pose(-(c * self.x + s * self.y), -(-s * self.x + c * self.y), -self.z, wrap(-self.yaw))

    def relative_to(self, frame: Pose) -> Pose:
        """This pose in ``frame``'s coordinates."""
        return frame.inverse().compose(self)

    def distance(self, other: Pose) -> float:
        return float(np.linalg.norm(self.position - other.position))
