"""The streaming interface beside whole plans: the hand moved by one small step per call (servoing),
for learned policies, teleoperation and interactive teaching, behind the same safety limits.

Each ``step`` takes a target hand pose (position, yaw; the hand points down) and a gripper command,
clamps the move to ``max_step`` / ``max_turn`` per step and to the safety workspace above the table
clearance (held at the walls, reported), solves IK from the current joints (refusing, with the hand
left where it is, what IK cannot reach or what leaves the joint limits) and moves the joint target
there smoothly over ``dt`` seconds of simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm_trainer.execution.executor_config import ExecutorConfig
from llm_trainer.execution.safety import joint_limits
from llm_trainer.motion.kinematics import PandaKinematics
from llm_trainer.sim import panda_description as panda


@dataclass
class ServoStatus:
    ok: bool
    message: str = ""
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the hand after the step
    yaw: float = 0.0


class ServoController:
    def __init__(self, sim, config: ExecutorConfig | None = None, *, dt: float = 0.1,
                 max_step: float = 0.03, max_turn: float = 0.25, on_step=None):  # fmt: skip
        self.sim = sim
        self.config = config or ExecutorConfig()
        self.dt = dt
        self.max_step = max_step
        self.max_turn = max_turn
        self.on_step = on_step
        self.ik = PandaKinematics()
        self.lower, self.upper = joint_limits(self.config)

    def hand(self) -> tuple[np.ndarray, float]:
        pos, _ = self.sim.tcp_pose()
        return pos, self.sim.tcp_yaw()

    def step(self, position, yaw: float, gripper_closed: bool) -> ServoStatus:
        safety = self.config.safety
        here, here_yaw = self.hand()
        target = np.asarray(position, float)
        if not (np.all(np.isfinite(target)) and math.isfinite(yaw)):
            return ServoStatus(False, "non-finite target", tuple(here), here_yaw)
        move = target - here
        dist = float(np.linalg.norm(move))
        if dist > self.max_step:
            target = here + move * (self.max_step / dist)
        turn = (yaw - here_yaw + math.pi) % (2 * math.pi) - math.pi
        yaw = here_yaw + float(np.clip(turn, -self.max_turn, self.max_turn))
        x0, x1, y0, y1, z0, z1 = safety.workspace
        # A streaming command is held at the workspace's walls (as a robot's Cartesian limits do), not
        # refused: the policy keeps control, the hand never leaves the box or goes below the clearance.
        lo, hi = np.array([x0, y0, z0 + safety.table_clearance]), np.array([x1, y1, z1])
        clamped = bool(np.any(target < lo) or np.any(target > hi))
        target = np.clip(target, lo, hi)
        result = self.ik.solve_top_down(target, yaw, self.sim.joint_positions())
        if not result.success or np.any(result.q < self.lower) or np.any(result.q > self.upper):
            return ServoStatus(False, "the target is out of reach (IK or joint limits)", tuple(here), here_yaw)
        self.sim.set_gripper_target(0.0 if gripper_closed else 2 * panda.FINGER_TRAVEL)
        # The joint target moves to the IK solution smoothly over the step (a held object slips off
        # fingers that are jerked from one target to the next).
        start = self.sim.commanded_joint_positions()
        n = max(1, round(self.dt / self.sim.model.opt.timestep))
        for k in range(1, n + 1):
            s = k / n
            self.sim.set_arm_target(start + (result.q - start) * (3 * s * s - 2 * s * s * s))
            self.sim.step()
            if self.on_step:
                self.on_step(self.sim)
        pos, y = self.hand()
        return ServoStatus(True, "held at the workspace limit" if clamped else "", tuple(float(v) for v in pos), y)
