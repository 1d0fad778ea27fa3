"""Camera extrinsics from a board at a known place, and the calibration YAML.

``--method board``: the board lies at a surveyed place on the table (``placement`` in
config/calibration.yaml), so each camera's pose is ``world_T_camera = world_T_board * board_T_camera``
with ``camera_T_board`` from OpenCV's PnP on the ChArUco corners of all of that camera's images (the
board does not move between them: more images average the corner noise).

The YAML written holds two sections:

* ``realsense``: config/realsense.yaml with the calibrated cameras' ``extrinsics`` replaced, in exactly
  the format ``llm_trainer.sensors.realsense.load_realsense_config`` loads, so the file can be handed to
  the RealSense node as its ``config_file`` (which publishes the extrinsics to perception);
* ``calibration``: how it was made and how well it fits: per camera the intrinsics used, the pose,
  the reprojection error, the images used, and the depth check. ``camera_models`` holds one
  ``CameraModel.to_dict()`` per camera (``load_calibration`` reads them back).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from llm_trainer.calibration.charuco import BoardDetector, Detection, Pose, compose, invert, solve_board_pose
from llm_trainer.config import ConfigError, to_dict
from llm_trainer.sensors.cameras import CameraModel, rotation_to_quaternion
from llm_trainer.sensors.realsense import RealSenseConfig, load_realsense_config


@dataclass
class CameraInput:
    """One camera's images (and optional depth) with the intrinsics to use."""

    name: str
    width: int
    height: int
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    images: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (label, RGB uint8)
    depths: list[np.ndarray] = field(default_factory=list)  # (H, W) float [m], 0: no reading

    def model(self, pose: Pose) -> CameraModel:
        return CameraModel(self.name, self.width, self.height, np.asarray(self.K, float), pose[1], pose[0])


@dataclass
class CameraResult:
    name: str
    model: CameraModel  # intrinsics used and the calibrated world_T_optical
    dist: np.ndarray
    rms_px: float
    max_px: float
    corners: int
    images_used: list[str]
    images_skipped: list[str]
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific (hand-eye: the board mount)

    def report(self) -> dict[str, Any]:
        return {
            "position": np.round(self.model.position, 6).tolist(),
            "quaternion_xyzw": [round(v, 8) for v in rotation_to_quaternion(self.model.rotation)],
            "K": np.round(self.model.K, 6).tolist(),
            "distortion": [float(v) for v in self.dist],
            "reprojection_rms_px": round(self.rms_px, 4),
            "reprojection_max_px": round(self.max_px, 4),
            "corners": self.corners,
            "images_used": self.images_used,
            "images_skipped": self.images_skipped,
            **self.extra,
        }


def detect_all(
    cam: CameraInput, detector: BoardDetector, min_corners: int
) -> tuple[list[tuple[str, Detection]], list[str]]:
    """The images with at least ``min_corners`` corners, and the labels of the others."""
    used, skipped = [], []
    for label, image in cam.images:
        if image.shape[0] != cam.height or image.shape[1] != cam.width:
            raise ValueError(
                f"{cam.name}/{label}: image is {image.shape[1]}x{image.shape[0]}, "
                f"the intrinsics are for {cam.width}x{cam.height}"
            )
        det = detector.detect(image)
        if len(det) >= min_corners:
            used.append((label, det))
        else:
            skipped.append(label)
    return used, skipped


def calibrate_from_board(
    cam: CameraInput, detector: BoardDetector, world_T_board: Pose, min_corners: int = 8
) -> CameraResult:
    """One camera's pose from its views of the board lying at ``world_T_board``."""
    used, skipped = detect_all(cam, detector, min_corners)
    if not used:
        raise ValueError(
            f"camera {cam.name}: the board was not found in any of its {len(cam.images)} image(s) "
            f"(at least {min_corners} ChArUco corners needed; is it the board of config/calibration.yaml?)"
        )
    obj = np.concatenate([detector.object_points(d) for _, d in used])
    img = np.concatenate([d.corners for _, d in used])
    fit = solve_board_pose(obj, img, cam.K, cam.dist)
    world_T_cam = compose(world_T_board, invert(fit.pose))
    return CameraResult(
        cam.name, cam.model(world_T_cam), cam.dist, fit.rms_px, fit.max_px, fit.corners, [u for u, _ in used], skipped
    )


# ------------------------------------------------------------------------------------ the YAML
def check_cameras_configured(names: list[str], realsense: RealSenseConfig, where: str) -> None:
    known = [c.name for c in realsense.cameras]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"camera(s) {', '.join(unknown)} not in {where} (configured: {', '.join(known)}); "
            "the calibration updates that file's cameras"
        )


def calibration_document(
    results: list[CameraResult],
    realsense: RealSenseConfig,
    info: dict[str, Any],
) -> dict[str, Any]:
    """The two sections: ``realsense`` (loadable configuration) and ``calibration`` (the report)."""
    by_name = {r.name: r for r in results}
    rs = to_dict(realsense)
    for cam in rs["cameras"]:
        r = by_name.get(cam["name"])
        if r is not None:
            cam["extrinsics"] = {
                "position": [round(float(v), 6) for v in r.model.position],
                "quaternion_xyzw": [round(v, 8) for v in rotation_to_quaternion(r.model.rotation)],
            }
    calibration = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **info,
        "cameras": {r.name: r.report() for r in results},
        "camera_models": [r.model.to_dict() for r in results],
    }
    return {"realsense": rs, "calibration": calibration}


def _flow_lists(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = (
        all(isinstance(v, (int, float)) for v in data)
        or all(isinstance(v, list) for v in data)
        and all(all(isinstance(x, (int, float)) for x in row) for row in data)
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(list, _flow_lists)


def write_calibration(path: Path | str, document: dict[str, Any], source: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Written by `llm-trainer calibrate-cameras`" + (f" from {source}" if source else "") + ".\n"
        "# realsense: config/realsense.yaml with the calibrated extrinsics; hand this file to the RealSense node\n"
        "#   (ros2 run llm_trainer realsense_node --ros-args -p config_file:=<this file>) or copy the section over.\n"
        "# calibration: how it was made: intrinsics, reprojection errors, depth check (not read by the node).\n"
    )
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
    path.write_text(header + text, encoding="utf-8")
    return path


def load_calibration(path: Path | str) -> dict[str, CameraModel]:
    """The calibrated cameras of a calibration YAML: intrinsics of ``calibration.camera_models`` and the
    extrinsics of its ``realsense`` section (validated as the RealSense node loads it)."""
    from llm_trainer.config import load_yaml

    realsense = load_realsense_config(path)
    data = load_yaml(path).get("calibration") or {}
    models = {}
    for d in data.get("camera_models") or []:
        try:
            model = CameraModel.from_dict(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: calibration.camera_models: invalid entry ({exc})") from None
        ext = realsense.camera(model.name).extrinsics
        model.position, model.rotation = np.asarray(ext.position, float), ext.rotation()
        models[model.name] = model
    return models
