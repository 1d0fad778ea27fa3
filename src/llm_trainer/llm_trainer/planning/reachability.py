"""Reachability of a plan with the executor's own kinematics, before anything moves.

From the arm's current configuration, every ``move_gripper`` is solved with the executor's IK
(``motion.kinematics.PandaKinematics``), along its straight TCP line first
(``motion.trajectory.plan_straight_line``), with the gripper yaw taken modulo the half turn the
wrist prefers (``motion.kinematics.equivalent_grasp_yaw``). The first move whose target has no IK
solution is refused with the reason. Collisions and paths around obstacles stay the executor's
job (it checks the whole plan again before the first motion).
"""

from __future__ import annotations

import math
import threading

import numpy as np

from llm_trainer.primitives import PlanRejected, Primitive, PrimitiveKind
from llm_trainer.scene import SceneState

_local = threading.local()  # PandaKinematics owns a MuJoCo data buffer: one per thread


def _kinematics():
    kin = getattr(_local, "kin", None)
    if kin is None:
        from llm_trainer.motion.kinematics import PandaKinematics

        kin = _local.kin = PandaKinematics()
    return kin


def start_configuration(scene: SceneState) -> np.ndarray:
    """Joint positions for the scene's end-effector pose (IK from the home posture)."""
    from llm_trainer.sim import panda_description as panda

    kin = _kinematics()
    home = np.asarray(panda.HOME_Q, float)
    pos, _ = kin.forward(home)
    if np.linalg.norm(pos - np.asarray(scene.ee_position)) < 1e-3 and abs(scene.ee_yaw) < 1e-3:
        return home
    result = kin.solve_top_down(scene.ee_position, scene.ee_yaw, home)
    if not result.success:
        raise PlanRejected(
            f"the gripper's current pose {list(scene.ee_position)} has no IK solution ({result.message})"
        )
    return result.q


def check_reachability(plan: list[Primitive], scene: SceneState, limits=None) -> None:
    """``PlanRejected`` naming the first move whose target the arm cannot reach, if any.

    Each move is first followed in a straight line with IK (what the executor tries first); when
    the line cannot be followed (a singularity or joint limit on the way), the target pose alone
    must have an IK solution, since the executor may still plan a path around (collision-aware
    planning is the executor's job, and so are collisions).
    """
    from llm_trainer.motion.kinematics import equivalent_grasp_yaw
    from llm_trainer.motion.trajectory import TimingLimits, plan_straight_line
    from llm_trainer.sim import panda_description as panda

    kin = _kinematics()
    limits = limits or TimingLimits()
    q = start_configuration(scene)
    yaw = float(scene.ee_yaw)
    for i, prim in enumerate(plan):
        if prim.kind != PrimitiveKind.MOVE_GRIPPER:
            continue
        assert prim.position is not None
        target_yaw = equivalent_grasp_yaw(prim.yaw, yaw)
        path = plan_straight_line(kin, q, np.asarray(prim.position, float), target_yaw, limits)
        if path.success:
            q = path.trajectory.positions[-1]
        else:
            for seed in (q, np.asarray(panda.HOME_Q, float)):
                ik = kin.solve_top_down(prim.position, target_yaw, seed, max_iterations=400)
                if ik.success:
                    q = ik.q
                    break
            else:
                raise PlanRejected(f"target {_fmt(prim.position)} yaw {prim.yaw:.2f} is out of reach: {ik.message}", i)
        _, rot = kin.forward(q)
        yaw = math.atan2(rot[1, 0], rot[0, 0])


def _fmt(p) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in p) + "]"
