"""What the hardware backends share: the start-up confirmation, lazy imports, trajectory sampling.

A hardware backend moves a real arm. It refuses to start unless its configuration says
``confirm_hardware: true`` *and* names the robot (``robot_ip``): a copied config file or a
mistyped backend name must never be enough to move a robot. Its library is imported only when it
starts, and a missing one is reported with what to install.
"""

from __future__ import annotations

import importlib
import ipaddress
import math
import re
from dataclasses import dataclass

import numpy as np

from llm_trainer.motion.trajectory import JointTrajectory


class BackendUnavailable(RuntimeError):
    """A motion backend cannot start here: library missing, confirmation missing, robot unreachable."""


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def valid_robot_address(address: str) -> bool:
    """An IPv4/IPv6 address or a host name (what libfranka and franka_ros2 accept)."""
    address = address.strip()
    if not address:
        return False
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(address)) and not address.replace(".", "").isdigit()


def require_confirmation(backend: str, confirm_hardware: bool, robot_ip: str, where: str) -> None:
    """Raise ``BackendUnavailable`` unless both the confirmation and a valid robot address are given."""
    missing = []
    if confirm_hardware is not True:
        missing.append("confirm_hardware: true")
    if not valid_robot_address(robot_ip or ""):
        missing.append("robot_ip: <the robot's address>" if not robot_ip else f"a valid robot_ip (got {robot_ip!r})")
    if missing:
        raise BackendUnavailable(
            f"the {backend} backend moves a real robot and starts only when told so explicitly: set "
            f"{' and '.join(missing)} in {where} (or the executor node's parameters confirm_hardware / robot_ip)"
        )


def import_or_explain(module: str, install_hint: str):
    """``importlib.import_module(module)`` or ``BackendUnavailable`` saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(f"cannot import {module} ({exc}); {install_hint}") from None


@dataclass
class SampledTrajectory:
    times: np.ndarray  # [s] from the start, evenly spaced at the control period
    positions: np.ndarray  # N x 7 [rad]
    velocities: np.ndarray  # N x 7 [rad/s]; zero at both ends


def sample_trajectory(trajectory: JointTrajectory, rate_hz: float) -> SampledTrajectory:
    """Positions and velocities at a controller's rate, following the controller's linear interpolation
    between the trajectory's points (what the simulator and a joint trajectory controller do)."""
    if rate_hz <= 0:
        raise ValueError("rate_hz must be positive")
    times = np.asarray(trajectory.times, float)
    q = np.asarray(trajectory.positions, float)
    if len(times) == 0:
        raise ValueError("empty trajectory")
    n = max(1, math.ceil(times[-1] * rate_hz))
    t = np.linspace(0.0, times[-1], n + 1)
    pos = np.column_stack([np.interp(t, times, q[:, j]) for j in range(q.shape[1])])
    vel = np.zeros_like(pos)
    if len(t) > 2:
        vel[1:-1] = (pos[2:] - pos[:-2]) / (t[2:] - t[:-2])[:, None]
    return SampledTrajectory(t, pos, vel)
