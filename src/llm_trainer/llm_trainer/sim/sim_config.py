"""Configuration of the embedded simulator and its cameras (``config/sim.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llm_trainer.config import config_dir, load_section


@dataclass
class CameraConfig:
    """A fixed RGB-D camera, placed like one of the lab's RealSense D435i views."""

    name: str
    position: tuple[float, float, float]
    look_at: tuple[float, float, float] = (0.5, 0.0, 0.05)
    fovy_deg: float = 42.0  # vertical field of view of the D435i colour stream
    width: int = 320
    height: int = 240

    def validate(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"camera name {self.name!r} must be a plain identifier (it becomes a topic name)")
        if not 10.0 <= self.fovy_deg <= 120.0:
            raise ValueError(f"camera {self.name}: fovy_deg {self.fovy_deg} outside [10, 120]")
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ValueError(f"camera {self.name}: image size {self.width}x{self.height} outside [16, 4096]")
        if self.position == self.look_at:
            raise ValueError(f"camera {self.name}: position equals look_at")


def _default_cameras() -> list[CameraConfig]:
    return [
        CameraConfig("front", (1.35, 0.0, 0.7)),
        CameraConfig("left", (0.5, 0.85, 0.7)),
        CameraConfig("right", (0.5, -0.85, 0.7)),
    ]


@dataclass
class SimConfig:
    timestep: float = 0.002
    object_friction: float = 1.5
    settle_time: float = 0.3  # [s] of physics after a reset, before the first observation
    render_cameras: bool = True
    camera_rate_hz: float = 5.0  # in simulation time
    joint_state_rate_hz: float = 50.0
    scene_rate_hz: float = 10.0
    real_time_factor: float = 0.0  # 0: as fast as the CPU allows while a motion runs; >0: paced
    color_format: str = "jpeg"  # compressed colour stream: jpeg (lossy, quality below) or png (lossless)
    jpeg_quality: int = 90
    cameras: list[CameraConfig] = field(default_factory=_default_cameras)

    def validate(self) -> None:
        if not 0.0005 <= self.timestep <= 0.01:
            raise ValueError(f"timestep {self.timestep} outside [0.0005, 0.01] s")
        for name in ("camera_rate_hz", "joint_state_rate_hz", "scene_rate_hz"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.real_time_factor < 0:
            raise ValueError("real_time_factor must be >= 0 (0 means unpaced)")
        if self.color_format not in ("jpeg", "png"):
            raise ValueError(f"color_format must be jpeg or png, got {self.color_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be within [1, 100]")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique: {names}")


def load_sim_config(path: Path | str | None = None) -> SimConfig:
    return load_section(SimConfig, path or config_dir() / "sim.yaml", "simulator")
