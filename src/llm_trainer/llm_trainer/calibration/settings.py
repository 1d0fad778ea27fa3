"""Settings of ``calibrate-cameras`` (``config/calibration.yaml``, section ``calibration``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from llm_trainer.calibration.charuco import BoardSpec, Pose, table_board_pose
from llm_trainer.config import config_dir, load_section


@dataclass
class BoardPlacement:
    """Where the board lies, printed side up, for ``--method board``: the world position of its origin
    corner (the outer corner of the first square) and the turn of its x axis from world x about z."""

    position: tuple[float, float, float] = (0.255, 0.175, 0.0)
    yaw_deg: float = 0.0

    def validate(self) -> None:
        if not all(math.isfinite(v) for v in (*self.position, self.yaw_deg)):
            raise ValueError("position, yaw_deg: must be finite numbers")

    def world_T_board(self) -> Pose:
        return table_board_pose(self.position, self.yaw_deg)


@dataclass
class DepthCheck:
    """Table-plane agreement of the cameras' depth, in world coordinates after calibration."""

    max_disagreement_m: float = 0.005  # warn when a camera's table height differs more from the others'
    max_tilt_deg: float = 1.0  # ... or its table plane tilts more than this from the others'
    band_m: float = 0.05  # points within this of z = 0 are table candidates
    inlier_m: float = 0.004  # plane inliers: residual below this (after a first fit)
    reference_xy: tuple[float, float] = (0.5, 0.0)  # where table heights are compared [m]
    min_points: int = 500

    def validate(self) -> None:
        for name in ("max_disagreement_m", "max_tilt_deg", "band_m", "inlier_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive")
        if self.min_points < 3:
            raise ValueError("min_points: at least 3")


@dataclass
class CalibrationConfig:
    board: BoardSpec = field(default_factory=BoardSpec)
    placement: BoardPlacement = field(default_factory=BoardPlacement)
    min_corners: int = 8  # per image; fewer: the image is skipped
    max_reprojection_px: float = 1.0  # warn when a camera's RMS reprojection error exceeds this
    hand_eye_min_views: int = 5
    depth_check: DepthCheck = field(default_factory=DepthCheck)

    def validate(self) -> None:
        if self.min_corners < 4:
            raise ValueError("min_corners: at least 4 (a board pose needs 4 points)")
        if not self.max_reprojection_px > 0:
            raise ValueError("max_reprojection_px: must be positive")
        if self.hand_eye_min_views < 3:
            raise ValueError("hand_eye_min_views: at least 3 (hand-eye needs two independent motions)")


def load_calibration_config(path: Path | str | None = None) -> CalibrationConfig:
    return load_section(CalibrationConfig, path or config_dir() / "calibration.yaml", "calibration")
