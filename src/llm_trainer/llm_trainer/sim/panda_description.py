"""A Franka Emika Panda description written from Franka's published kinematics.

The kinematic chain is the modified (Craig) Denavit-Hartenberg table that Franka publishes for
the Panda (FER) in its robot documentation, with the published joint position and velocity
limits. Link shapes are simple capsules of the right size: enough for collisions with the table
and the scene, cheap to render, and free of third-party mesh files. The same facts produce the
MJCF body tree for MuJoCo and a URDF for ROS tools (``urdf/panda.urdf``).

Tool frame: Franka's hand is mounted on the flange rotated by -45 degrees about z; its tool
centre point (TCP) lies 0.1034 m along the hand's z axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Modified DH parameters (a_{i-1}, d_i, alpha_{i-1}) of joints 1..7, then the flange (Franka docs).
DH_TABLE: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
FLANGE_D = 0.107

JOINT_NAMES: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINT_NAMES: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")

# Published limits (Franka "robot and interface specifications" for the FER).
JOINT_LOWER = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
JOINT_UPPER = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
JOINT_VELOCITY_LIMIT = np.array([2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100])
JOINT_TORQUE_LIMIT = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
# Link masses [kg], rounded from the identified dynamic model (Gaz et al., RA-L 2019).
LINK_MASSES = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)
HAND_MASS = 0.73
FINGER_MASS = 0.015

#: The "ready" pose used by Franka's examples: gripper down, fingers across the y axis.
HOME_Q = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])

HAND_YAW_ON_FLANGE = -math.pi / 4
TCP_OFFSET = 0.1034
FINGER_TRAVEL = 0.04  # per finger [m]; the hand opens to 0.08 m
GRIPPER_MAX_FORCE = 70.0  # continuous grasp force of the Franka Hand [N]


@dataclass(frozen=True)
class LinkFrame:
    """Pose of joint frame i in frame i-1 for the zero joint angle (MuJoCo body pos/quat)."""

    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]  # w, x, y, z


def dh_link_frame(a: float, d: float, alpha: float) -> LinkFrame:
    # Modified DH: T = RotX(alpha) TransX(a) RotZ(theta) TransZ(d). With theta as the hinge, the
    # body frame sits at RotX(alpha) * (a, 0, d) and is rotated by RotX(alpha).
    pos = (a, -d * math.sin(alpha), d * math.cos(alpha))
    quat = (math.cos(alpha / 2), math.sin(alpha / 2), 0.0, 0.0)
    return LinkFrame(tuple(round(v, 10) for v in pos), tuple(round(v, 10) for v in quat))  # type: ignore[arg-type]


def link_frames() -> list[LinkFrame]:
    frames = [dh_link_frame(a, d, alpha) for a, d, alpha in DH_TABLE]
    frames.append(LinkFrame((0.0, 0.0, FLANGE_D), (1.0, 0.0, 0.0, 0.0)))
    return frames


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


# Capsules per link in the link's own frame: (from, to, radius). They follow the real arm's
# silhouette closely enough for table/object collisions and camera images.
_LINK_CAPSULES: dict[int, list[tuple[tuple[float, float, float], tuple[float, float, float], float]]] = {
    1: [((0, 0, -0.19), (0, 0, -0.05), 0.06)],
    2: [((0, 0, -0.06), (0, 0, 0.06), 0.06), ((0, 0, 0), (0, -0.2, 0), 0.06)],
    3: [((0, 0, -0.15), (0, 0, -0.05), 0.06), ((0, 0, 0), (0.0825, 0, 0), 0.055)],
    4: [((0, 0, -0.06), (0, 0, 0.06), 0.055), ((0, 0, 0), (-0.0825, 0.14, 0), 0.055)],
    5: [((0, 0, -0.24), (0, 0, -0.1), 0.05), ((0, 0.07, -0.24), (0, 0.07, -0.05), 0.035)],
    6: [((0, 0, -0.05), (0, 0, 0.03), 0.05), ((0, 0, 0), (0.088, 0, 0), 0.045)],
    7: [((0, 0, -0.02), (0, 0, 0.08), 0.045)],
}


def panda_mjcf_body(*, prefix: str = "", base_pos=(0.0, 0.0, 0.0)) -> str:
    """MJCF ``<body>`` tree of the arm and hand (put inside ``<worldbody>``)."""
    frames = link_frames()
    lines = [f'<body name="{prefix}link0" pos="{_fmt(base_pos)}">']
    lines.append('  <geom class="panda_link" type="cylinder" size="0.07 0.07" pos="0 0 0.07" mass="2.8"/>')
    indent = "  "
    for i in range(7):
        f = frames[i]
        j = i + 1
        lines.append(f'{indent}<body name="{prefix}link{j}" pos="{_fmt(f.pos)}" quat="{_fmt(f.quat)}" gravcomp="1">')
        indent += "  "
        lines.append(
            f'{indent}<joint name="{prefix}{JOINT_NAMES[i]}" class="panda_arm" '
            f'range="{JOINT_LOWER[i]:.4f} {JOINT_UPPER[i]:.4f}"/>'
        )
        capsules = _LINK_CAPSULES[j]
        per_geom_mass = LINK_MASSES[i] / len(capsules)
        for a, b, r in capsules:
            lines.append(
                f'{indent}<geom class="panda_link" type="capsule" fromto="{_fmt(a)} {_fmt(b)}" '
                f'size="{r}" mass="{per_geom_mass:.4f}"/>'
            )
    # Flange and hand.
    flange = frames[7]
    hq = (math.cos(HAND_YAW_ON_FLANGE / 2), 0.0, 0.0, math.sin(HAND_YAW_ON_FLANGE / 2))
    lines.append(f'{indent}<body name="{prefix}hand" pos="{_fmt(flange.pos)}" quat="{_fmt(hq)}" gravcomp="1">')
    indent += "  "
    lines += [
        f'{indent}<geom class="panda_link" type="box" size="0.03 0.1 0.025" pos="0 0 0.03" mass="{HAND_MASS}"/>',
        f'{indent}<geom class="panda_visual" type="cylinder" size="0.04 0.01" pos="0 0 0.005" rgba="0.2 0.2 0.2 1"/>',
        f'{indent}<site name="{prefix}tcp" pos="0 0 {TCP_OFFSET}" size="0.005" rgba="1 0 0 0.5" group="3"/>',
    ]
    for k, sign in ((1, 1.0), (2, -1.0)):
        # Fingers slide along the hand's y axis; each pad faces the other across the TCP.
        lines += [
            f'{indent}<body name="{prefix}finger{k}" pos="0 0 0.0584" gravcomp="1">',
            f'{indent}  <joint name="{prefix}{FINGER_JOINT_NAMES[k - 1]}" class="panda_finger" axis="0 {sign:g} 0"/>',
            f'{indent}  <geom class="panda_link" type="box" size="0.011 0.006 0.022" '
            f'pos="0 {sign * 0.012:.4f} 0.022" mass="{FINGER_MASS}"/>',
            f'{indent}  <geom name="{prefix}pad{k}" class="panda_pad" type="box" size="0.009 0.003 0.011" '
            f'pos="0 {sign * 0.003:.4f} 0.043" mass="0.005"/>',
            f"{indent}</body>",
        ]
    indent = indent[:-2]
    lines.append(f"{indent}</body>")
    for _ in range(7):
        indent = indent[:-2]
        lines.append(f"{indent}</body>")
    lines.append("</body>")
    return "\n".join(lines)


def panda_mjcf_defaults(*, pad_friction: float = 1.5) -> str:
    """``<default>`` classes used by the body tree."""
    return f"""
<default class="panda">
  <default class="panda_arm">
    <joint type="hinge" axis="0 0 1" armature="0.1" damping="1.0"/>
  </default>
  <default class="panda_finger">
    <joint type="slide" range="0 {FINGER_TRAVEL}" armature="0.01" damping="5"/>
  </default>
  <default class="panda_link">
    <geom contype="2" conaffinity="1" rgba="0.92 0.92 0.95 1" condim="3" group="1"/>
  </default>
  <default class="panda_visual">
    <geom contype="0" conaffinity="0" group="1"/>
  </default>
  <default class="panda_pad">
    <geom contype="2" conaffinity="1" rgba="0.15 0.15 0.15 1" friction="{pad_friction} 0.05 0.001"
          condim="4" solref="0.005 1" solimp="0.95 0.99 0.001" priority="1" group="1"/>
  </default>
</default>"""


# Position-servo gains per joint: stiff enough to track IK trajectories to a few millimetres with
# gravity compensated by gravcomp; damping keeps them from ringing. The wrist's light links with the
# 12 N m torque limit need lower gains: kv 200 there made the clipped damping chatter at 2 ms steps
# (kv * dt / 2I > 1), so a stopped wrist never came to rest.
_KP = (4500, 4500, 3500, 3500, 800, 800, 800)
_KV = (450, 450, 350, 350, 80, 80, 80)
SERVO_KV_OVER_KP = 0.1  # the same ratio for every joint; trajectory following feeds velocity forward with it


def panda_mjcf_actuators(*, prefix: str = "", gripper_force: float = GRIPPER_MAX_FORCE) -> str:
    lines = []
    for i, name in enumerate(JOINT_NAMES):
        lines.append(
            f'<position name="{prefix}act_{name}" joint="{prefix}{name}" kp="{_KP[i]}" kv="{_KV[i]}" '
            f'ctrlrange="{JOINT_LOWER[i]:.4f} {JOINT_UPPER[i]:.4f}" forcerange="{-JOINT_TORQUE_LIMIT[i]:g} '
            f'{JOINT_TORQUE_LIMIT[i]:g}"/>'
        )
    # One servo per finger, both driven to the same target; the force range is the hand's grasp force.
    for k, name in enumerate(FINGER_JOINT_NAMES, start=1):
        lines.append(
            f'<position name="{prefix}act_finger{k}" joint="{prefix}{name}" kp="2000" kv="40" '
            f'ctrlrange="0 {FINGER_TRAVEL}" forcerange="{-gripper_force:g} {gripper_force:g}"/>'
        )
    return "\n".join(lines)


def panda_urdf() -> str:
    """URDF of the same arm (for robot_state_publisher / MoveIt on a full ROS 2 install)."""
    out = [
        '<?xml version="1.0"?>',
        '<robot name="panda">',
        "  <!-- Generated by llm_trainer.sim.panda_description from Franka's published DH table. -->",
        *panda_urdf_elements(),
        "</robot>",
    ]
    return "\n".join(out) + "\n"


def panda_urdf_elements() -> list[str]:
    """The arm's links and joints (from ``panda_link0``), for a robot or a workcell URDF."""
    frames = link_frames()
    out = ['  <link name="panda_link0"/>']
    for i in range(7):
        f = frames[i]
        a, d, alpha = DH_TABLE[i]
        out += [
            f'  <link name="panda_link{i + 1}">',
            f'    <inertial><mass value="{LINK_MASSES[i]}"/><inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" '
            'iyz="0" izz="0.01"/></inertial>',
        ]
        for p, q, r in _LINK_CAPSULES[i + 1]:
            p_, q_ = np.array(p, float), np.array(q, float)
            length = float(np.linalg.norm(q_ - p_))
            mid = (p_ + q_) / 2
            rpy = _rpy_z_to(q_ - p_) if length > 1e-9 else (0.0, 0.0, 0.0)
            out.append(
                f'    <collision><origin xyz="{_fmt(mid)}" rpy="{_fmt(rpy)}"/><geometry>'
                f'<cylinder radius="{r}" length="{max(length, 1e-3):.4f}"/></geometry></collision>'
            )
        out.append("  </link>")
        out += [
            f'  <joint name="{JOINT_NAMES[i]}" type="revolute">',
            f'    <parent link="panda_link{i}"/><child link="panda_link{i + 1}"/>',
            f'    <origin xyz="{_fmt(f.pos)}" rpy="{alpha:.10g} 0 0"/>',
            '    <axis xyz="0 0 1"/>',
            f'    <limit lower="{JOINT_LOWER[i]}" upper="{JOINT_UPPER[i]}" effort="{JOINT_TORQUE_LIMIT[i]:g}" '
            f'velocity="{JOINT_VELOCITY_LIMIT[i]}"/>',
            "  </joint>",
        ]
        del a, d
    out += [
        '  <link name="panda_link8"/>',
        '  <joint name="panda_joint8" type="fixed"><parent link="panda_link7"/><child link="panda_link8"/>'
        f'<origin xyz="0 0 {FLANGE_D}" rpy="0 0 0"/></joint>',
        '  <link name="panda_hand"><collision><origin xyz="0 0 0.03"/><geometry><box size="0.06 0.2 0.05"/>'
        "</geometry></collision></link>",
        '  <joint name="panda_hand_joint" type="fixed"><parent link="panda_link8"/><child link="panda_hand"/>'
        f'<origin xyz="0 0 0" rpy="0 0 {HAND_YAW_ON_FLANGE:.10g}"/></joint>',
        '  <link name="panda_hand_tcp"/>',
        '  <joint name="panda_hand_tcp_joint" type="fixed"><parent link="panda_hand"/><child link="panda_hand_tcp"/>'
        f'<origin xyz="0 0 {TCP_OFFSET}" rpy="0 0 0"/></joint>',
    ]
    for k, sign in ((1, 1), (2, -1)):
        out += [
            '  <link name="panda_leftfinger"/>' if k == 1 else '  <link name="panda_rightfinger"/>',
            f'  <joint name="{FINGER_JOINT_NAMES[k - 1]}" type="prismatic"><parent link="panda_hand"/>'
            f'<child link="{"panda_leftfinger" if k == 1 else "panda_rightfinger"}"/>'
            f'<origin xyz="0 0 0.0584" rpy="0 0 0"/><axis xyz="0 {sign} 0"/>'
            f'<limit lower="0" upper="{FINGER_TRAVEL}" effort="{GRIPPER_MAX_FORCE:g}" velocity="0.2"/>'
            + ('<mimic joint="panda_finger_joint1"/>' if k == 2 else "")
            + "</joint>",
        ]
    return out


def _rpy_z_to(direction: np.ndarray) -> tuple[float, float, float]:
    """Roll-pitch-yaw that turns the z axis onto ``direction`` (for URDF cylinders)."""
    d = direction / np.linalg.norm(direction)
    pitch = math.atan2(math.hypot(d[0], d[1]), d[2])
    yaw = math.atan2(d[1], d[0])
    # R = Rz(yaw) Ry(pitch) maps z onto d; as URDF rpy (fixed axes x, y, z): roll=0, pitch, yaw.
    return (0.0, pitch, yaw)
