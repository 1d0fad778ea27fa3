"""Do the cameras' depth images agree on the table plane, once calibrated?

Each camera's depth is lifted to world points with its calibrated pose (``CameraModel.world_points``);
points within ``band_m`` of z = 0 are table candidates; a least-squares plane is fitted to them (SVD),
then refitted to its inliers. Per camera: the plane's height at ``reference_xy`` and its tilt from
horizontal. A camera whose height differs from the median of all cameras' by more than
``max_disagreement_m`` (or whose plane tilts more than ``max_tilt_deg`` from theirs) gets a warning:
its extrinsics, or its depth scale, are off. With two cameras the pair is named instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm_trainer.calibration.settings import DepthCheck
from llm_trainer.sensors.cameras import CameraModel


@dataclass
class PlaneFit:
    camera: str
    normal: np.ndarray  # (3,) unit, z > 0
    height_m: float  # plane z at the reference point
    tilt_deg: float  # from horizontal
    points: int
    rms_m: float

    def report(self) -> dict:
        return {
            "table_height_m": round(self.height_m, 5),
            "tilt_deg": round(self.tilt_deg, 3),
            "normal": np.round(self.normal, 6).tolist(),
            "points": self.points,
            "rms_m": round(self.rms_m, 5),
        }


def _plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = points.mean(axis=0)
    normal = np.linalg.svd(points - centre, full_matrices=False)[2][2]
    return (normal if normal[2] >= 0 else -normal), centre


def fit_table_plane(model: CameraModel, depth_m: np.ndarray, settings: DepthCheck) -> PlaneFit | None:
    """The table plane in one camera's depth (world coordinates), or None with too few table points."""
    depth = np.nan_to_num(np.asarray(depth_m, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if depth.shape != (model.height, model.width):
        raise ValueError(
            f"camera {model.name}: depth image is {depth.shape[1]}x{depth.shape[0]}, "
            f"the camera is {model.width}x{model.height}"
        )
    pts = model.world_points(depth)
    pts = pts[np.abs(pts[:, 2]) < settings.band_m]
    if len(pts) < settings.min_points:
        return None
    normal, centre = _plane(pts)
    for _ in range(3):
        inliers = pts[np.abs((pts - centre) @ normal) < settings.inlier_m]
        if len(inliers) < settings.min_points:
            return None
        normal, centre = _plane(inliers)
    resid = (inliers - centre) @ normal
    x, y = settings.reference_xy
    height = centre[2] - (normal[0] * (x - centre[0]) + normal[1] * (y - centre[1])) / normal[2]
    tilt = math.degrees(math.acos(float(np.clip(normal[2], -1.0, 1.0))))
    return PlaneFit(model.name, normal, float(height), tilt, int(len(inliers)), float(np.sqrt(np.mean(resid**2))))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip(a @ b, -1.0, 1.0))))


def disagreements(fits: list[PlaneFit], settings: DepthCheck) -> list[str]:
    """Warnings (one line each) about cameras whose table plane disagrees with the others'."""
    if len(fits) < 2:
        return []
    warnings = []
    tol_mm, tilt_tol = settings.max_disagreement_m * 1000, settings.max_tilt_deg
    if len(fits) == 2:
        a, b = fits
        dz = abs(a.height_m - b.height_m) * 1000
        if dz > tol_mm:
            warnings.append(
                f"depth: cameras {a.camera} and {b.camera} put the table {dz:.1f} mm apart "
                f"({a.height_m * 1000:+.1f} / {b.height_m * 1000:+.1f} mm; threshold {tol_mm:.1f} mm)"
            )
        da = _angle_deg(a.normal, b.normal)
        if da > tilt_tol:
            warnings.append(
                f"depth: cameras {a.camera} and {b.camera} see the table tilted {da:.2f} deg apart "
                f"(threshold {tilt_tol:.2f} deg)"
            )
        return warnings
    # Against the median of all cameras: one bad camera cannot drag the reference (unlike a mean).
    median = float(np.median([f.height_m for f in fits]))
    median_normal = np.median([f.normal for f in fits], axis=0)
    median_normal /= np.linalg.norm(median_normal)
    for f in fits:
        dz = (f.height_m - median) * 1000
        if abs(dz) > tol_mm:
            warnings.append(
                f"depth: camera {f.camera} puts the table {dz:+.1f} mm from the cameras' median "
                f"({f.height_m * 1000:+.1f} mm vs {median * 1000:+.1f} mm; threshold {tol_mm:.1f} mm): "
                "check its extrinsics and depth scale"
            )
        da = _angle_deg(f.normal, median_normal)
        if da > tilt_tol:
            warnings.append(
                f"depth: camera {f.camera} sees the table tilted {da:.2f} deg from the cameras' median "
                f"(threshold {tilt_tol:.2f} deg): check its extrinsics"
            )
    return warnings


def depth_check(views: list[tuple[CameraModel, np.ndarray]], settings: DepthCheck) -> tuple[dict, list[str]]:
    """Fit every camera's table plane; a report and the warnings."""
    fits, report, warnings = [], {}, []
    for model, depth in views:
        fit = fit_table_plane(model, depth, settings)
        if fit is None:
            warnings.append(
                f"depth: camera {model.name} has fewer than {settings.min_points} depth points on the table "
                f"(within {settings.band_m * 1000:.0f} mm of z = 0); not checked"
            )
            continue
        fits.append(fit)
        report[model.name] = fit.report()
    warnings += disagreements(fits, settings)
    return report, warnings
