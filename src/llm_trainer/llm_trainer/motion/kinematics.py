"""Forward and inverse kinematics of the Panda's tool centre point.

Kinematics run on a MuJoCo model of the arm alone, built from the same description as the
simulator (``llm_trainer.sim.panda_description``), so the IK solution is exact for the sim and
matches the real arm up to its calibration. IK is damped least squares on the 6D TCP error with
a null-space pull toward the home posture and the joint limits enforced at every iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from llm_trainer.sim import panda_description as panda


def top_down_rotation(yaw: float) -> np.ndarray:
    """Rotation of a gripper pointing straight down, turned by ``yaw`` about world z."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (world frame) that rotates ``current`` onto ``target``."""
    r = target @ current.T
    cos_angle = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(cos_angle)
    if angle < 1e-9:
        return np.zeros(3)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    norm = np.linalg.norm(axis)
    if norm < 1e-9:  # angle close to pi: take the axis from the symmetric part
        eigvals, eigvecs = np.linalg.eigh((r + r.T) / 2)
        axis = eigvecs[:, int(np.argmax(eigvals))]
        return axis * angle
    return axis / norm * angle


@dataclass
class IKResult:
    success: bool
    q: np.ndarray
    position_error: float  # [m]
    rotation_error: float  # [rad]
    iterations: int
    message: str = ""


class PandaKinematics:
    """FK/IK of the TCP; one instance per thread (it owns a MuJoCo data buffer)."""

    def __init__(self, *, damping: float = 0.01, posture_gain: float = 0.05):
        xml = f"""<mujoco><compiler angle="radian" autolimits="true"/>
        <default>{panda.panda_mjcf_defaults()}</default>
        <worldbody>{panda.panda_mjcf_body()}</worldbody></mujoco>"""
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self._qadr = np.array([self.model.jnt_qposadr[self.model.joint(n).id] for n in panda.JOINT_NAMES])
        self._dadr = np.array([self.model.jnt_dofadr[self.model.joint(n).id] for n in panda.JOINT_NAMES])
        self._site = self.model.site("tcp").id
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))
        self.damping = damping
        self.posture_gain = posture_gain
        self.lower = panda.JOINT_LOWER.copy()
        self.upper = panda.JOINT_UPPER.copy()

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and rotation matrix for joint positions ``q``."""
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._site].copy(), self.data.site_xmat[self._site].reshape(3, 3).copy()

    def solve(
        self,
        position: np.ndarray,
        rotation: np.ndarray,
        q_init: np.ndarray,
        *,
        max_iterations: int = 300,
        position_tolerance: float = 5e-4,
        rotation_tolerance: float = 5e-3,
        max_step: float = 0.25,
    ) -> IKResult:
        position = np.asarray(position, float)
        q = np.clip(np.asarray(q_init, float).copy(), self.lower, self.upper)
        eye = np.eye(6)
        pos_err_norm = rot_err_norm = math.inf
        for it in range(1, max_iterations + 1):
            self.data.qpos[self._qadr] = q
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_comPos(self.model, self.data)
            p = self.data.site_xpos[self._site]
            r = self.data.site_xmat[self._site].reshape(3, 3)
            e_pos = position - p
            e_rot = rotation_error(rotation, r)
            pos_err_norm, rot_err_norm = float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))
            if pos_err_norm < position_tolerance and rot_err_norm < rotation_tolerance:
                return IKResult(True, q, pos_err_norm, rot_err_norm, it)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self._dadr], self._jacr[:, self._dadr]])
            err = np.concatenate([e_pos, e_rot])
            jjt = jac @ jac.T + (self.damping**2) * eye
            dq = jac.T @ np.linalg.solve(jjt, err)
            # Null-space pull toward home keeps the elbow up and away from the joint limits.
            j_pinv = jac.T @ np.linalg.solve(jjt, eye)
            null = np.eye(7) - j_pinv @ jac
            dq += null @ (self.posture_gain * (panda.HOME_Q - q))
            largest = float(np.max(np.abs(dq)))
            if largest > max_step:
                dq *= max_step / largest
            q = np.clip(q + dq, self.lower, self.upper)
        return IKResult(
            False,
            q,
            pos_err_norm,
            rot_err_norm,
            max_iterations,
            f"no IK solution: {pos_err_norm * 1000:.1f} mm / {math.degrees(rot_err_norm):.1f} deg from the target",
        )

    def solve_top_down(self, position, yaw: float, q_init: np.ndarray, **kwargs) -> IKResult:
        return self.solve(np.asarray(position, float), top_down_rotation(yaw), q_init, **kwargs)


#: Gripper yaws within this of the neutral wrist keep joint 7 inside its limits with margin.
MAX_ABS_GRIPPER_YAW = 1.75


def equivalent_grasp_yaw(yaw: float, reference: float) -> float:
    """A parallel gripper is symmetric under a half turn: of yaw + k*pi, the one nearest ``reference``
    among those the wrist can reach comfortably."""
    candidates = [yaw + k * math.pi for k in (-2, -1, 0, 1, 2)]
    reachable = [c for c in candidates if abs(c) <= MAX_ABS_GRIPPER_YAW] or candidates
    return min(reachable, key=lambda y: abs(y - reference))
