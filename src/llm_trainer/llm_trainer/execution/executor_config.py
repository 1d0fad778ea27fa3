"""Executor and safety configuration (``config/executor.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llm_trainer.config import config_dir, load_section
from llm_trainer.motion.planning import PlannerSettings
from llm_trainer.motion.trajectory import TimingLimits

BACKENDS = ("sim", "direct_sim", "moveit", "panda_py")


@dataclass
class SafetyConfig:
    """Limits checked before any motion; a primitive outside them is refused with the reason."""

    workspace: tuple[float, float, float, float, float, float] = (0.2, 0.75, -0.4, 0.4, 0.0, 0.6)
    table_clearance: float = 0.005  # [m] lowest TCP height above the table
    max_cartesian_step: float = 0.8  # [m] longest straight move of one primitive
    gripper_force_limit: float = 70.0  # [N] never command more
    primitive_timeout: float = 20.0  # [s] of robot time per primitive
    joint_limit_margin: float = 0.01  # [rad] kept from Franka's joint position limits

    def validate(self) -> None:
        x0, x1, y0, y1, z0, z1 = self.workspace
        if not (x0 < x1 and y0 < y1 and z0 < z1):
            raise ValueError(f"safety.workspace is empty: {self.workspace}")
        if not 0 < self.gripper_force_limit <= 140:
            raise ValueError("safety.gripper_force_limit must be in (0, 140] N (the Franka Hand's maximum)")
        if self.primitive_timeout <= 0 or self.max_cartesian_step <= 0:
            raise ValueError("safety.primitive_timeout and safety.max_cartesian_step must be positive")
        if not 0 <= self.joint_limit_margin <= 0.2:
            raise ValueError("safety.joint_limit_margin must be within [0, 0.2] rad")


@dataclass
class ExecutorConfig:
    backend: str = "sim"
    grasp_force: float = 40.0  # [N]
    open_width: float = 0.08  # [m]
    position_tolerance: float = 0.005  # [m] TCP error accepted at a waypoint
    yaw_tolerance_deg: float = 3.0
    scene_topic: str = "/scene/ground_truth"  # obstacles for the node ("" = none; /scene/objects = perception)
    require_scene: bool = False  # refuse to plan without a scene (hardware: true)
    timing: TimingLimits = field(default_factory=TimingLimits)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    collision: PlannerSettings = field(default_factory=PlannerSettings)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown executor backend {self.backend!r} ({', '.join(BACKENDS)})")
        if not 0 < self.timing.velocity_scaling <= 1:
            raise ValueError("timing.velocity_scaling must be in (0, 1]")
        if not 0 < self.timing.acceleration_scaling <= 1:
            raise ValueError("timing.acceleration_scaling must be in (0, 1]")
        if self.timing.max_cartesian_speed <= 0 or self.timing.max_yaw_speed <= 0:
            raise ValueError("timing.max_cartesian_speed and timing.max_yaw_speed must be positive")
        if self.grasp_force > self.safety.gripper_force_limit:
            raise ValueError(
                f"grasp_force {self.grasp_force} N exceeds "
                f"safety.gripper_force_limit {self.safety.gripper_force_limit} N"
            )
        if not 0 < self.open_width <= 0.08:
            raise ValueError("open_width must be in (0, 0.08] m (the Franka Hand's stroke)")


def scaled_speeds(config: ExecutorConfig, speed_scale: float) -> ExecutorConfig:
    """The config with every speed and acceleration limit times ``speed_scale`` (0 < s <= 1; hardware bring-up)."""
    import dataclasses

    if not (isinstance(speed_scale, (int, float)) and 0 < speed_scale <= 1):
        raise ValueError(f"speed_scale must be in (0, 1], got {speed_scale!r}")
    t = config.timing
    timing = dataclasses.replace(
        t,
        velocity_scaling=t.velocity_scaling * speed_scale,
        acceleration_scaling=t.acceleration_scaling * speed_scale,
        max_cartesian_speed=t.max_cartesian_speed * speed_scale,
        max_yaw_speed=t.max_yaw_speed * speed_scale,
    )
    return dataclasses.replace(config, timing=timing)


def load_executor_config(path: Path | str | None = None) -> ExecutorConfig:
    return load_section(ExecutorConfig, path or config_dir() / "executor.yaml", "executor")
