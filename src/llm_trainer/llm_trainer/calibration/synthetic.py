"""Calibration inputs with a known answer: rendered board images in the layout ``calibrate-cameras`` reads.

``board_scene`` puts the board at the configured place on the table and renders it into the
simulator's three cameras (config/sim.yaml) at D435i resolution, each moved and turned from its
nominal pose by a random offset (the truth the calibration must recover); with depth images of the
table plane. ``hand_eye_scene`` hangs the board from the gripper instead and moves the arm (inverse
kinematics to board poses facing each camera; the truth of each pose is the forward kinematics of
the joint positions written). Both write::

    DIR/<camera>/<label>.png          colour (what the camera saw)
    DIR/<camera>/depth/<label>.png    16-bit depth [mm] (board scene only)
    DIR/intrinsics.yaml               the cameras' K (CameraInfo convention)
    DIR/joints.yaml                   label -> 7 joint positions [rad] (hand-eye scene only)
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import yaml

from llm_trainer.calibration.charuco import Pose, compose, invert, rotation_angle_deg
from llm_trainer.calibration.render import nominal_cameras, perturbed, plane_depth, render_board
from llm_trainer.calibration.settings import CalibrationConfig
from llm_trainer.sensors.cameras import CameraModel
from llm_trainer.sensors.image_codec import depth_to_mm


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise OSError(f"cannot write {path}")


def _write_intrinsics(out: Path, cameras: list[CameraModel]) -> None:
    doc = {"cameras": [{"name": c.name, "width": c.width, "height": c.height, "K": c.K.tolist()} for c in cameras]}
    (out / "intrinsics.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def true_cameras(seed: int, shift_m: float = 0.03, turn_deg: float = 3.0) -> list[CameraModel]:
    rng = np.random.default_rng(seed)
    return [perturbed(c, shift_m, turn_deg, rng) for c in nominal_cameras()]


def board_scene(
    out: Path | str,
    config: CalibrationConfig,
    *,
    seed: int = 0,
    images: int = 2,
    depth_offset_m: dict[str, float] | None = None,
    depth_noise_m: float = 0.001,
) -> dict[str, CameraModel]:
    """Render the board lying at ``config.placement``; the true cameras by name. ``depth_offset_m``
    adds a bias to a camera's depth (a miscalibrated depth camera)."""
    out = Path(out)
    world_T_board = config.placement.world_T_board()
    rng = np.random.default_rng(seed + 1)
    cams = true_cameras(seed)
    for cam in cams:
        for i in range(images):
            rgb = render_board(config.board, cam, world_T_board, seed=int(rng.integers(1 << 30)))
            _write_rgb(out / cam.name / f"view_{i:02d}.png", rgb)
            depth = plane_depth(cam)
            valid = depth > 0
            depth = depth + (depth_offset_m or {}).get(cam.name, 0.0) + rng.normal(0, depth_noise_m, depth.shape)
            mm = depth_to_mm(np.where(valid, depth, 0.0))
            (out / cam.name / "depth").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / cam.name / "depth" / f"view_{i:02d}.png"), mm)
    _write_intrinsics(out, cams)
    return {c.name: c for c in cams}


def default_mount(config: CalibrationConfig) -> Pose:
    """``tcp_T_board`` of the synthetic hand-eye rig: the sheet hangs below the fingers, printed side
    along the TCP's +y, pattern rows along its x."""
    w, _ = config.board.size_m
    r = np.stack([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], axis=1)
    return r, np.array([-w / 2, 0.03, 0.04])


def _facing_rotation(centre: np.ndarray, camera: CameraModel, tilt_deg: float, rng: np.random.Generator) -> np.ndarray:
    """``world_R_board`` of a board at ``centre`` with its printed side towards the camera (tilted by
    up to ``tilt_deg`` in a random direction) and the pattern hanging down."""
    z = centre - camera.position
    z /= np.linalg.norm(z)
    axis = np.cross(z, rng.normal(size=3))
    z = cv2.Rodrigues(axis / np.linalg.norm(axis) * math.radians(tilt_deg * rng.uniform(0.4, 1.0)))[0] @ z
    y = np.array([0.0, 0.0, -1.0]) + z[2] * z  # world down, in the board plane
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z], axis=1)


def hand_eye_scene(
    out: Path | str,
    config: CalibrationConfig,
    *,
    seed: int = 0,
    poses_per_camera: int = 8,
    cameras: list[str] | None = None,
) -> tuple[dict[str, CameraModel], Pose]:
    """Render the board held by the gripper; the true cameras by name and the true mount."""
    from llm_trainer.motion.kinematics import PandaKinematics
    from llm_trainer.sim import panda_description as panda

    out = Path(out)
    fk = PandaKinematics()
    mount = default_mount(config)
    w, h = config.board.size_m
    rng = np.random.default_rng(seed + 2)
    cams = [c for c in true_cameras(seed) if cameras is None or c.name in cameras]
    joints: dict[str, list[float]] = {}
    for cam in cams:
        made, attempts = 0, 0
        while made < poses_per_camera and attempts < 10 * poses_per_camera:
            attempts += 1
            centre = np.array([0.5, 0.0, 0.22]) + rng.uniform(-0.08, 0.08, 3)
            board_R = _facing_rotation(centre, cam, 25.0, rng)
            board_t = centre - board_R @ np.array([w / 2, h / 2, 0.0])
            tcp = compose((board_R, board_t), invert(mount))
            ik = fk.solve(tcp[1], tcp[0], panda.HOME_Q)
            if not ik.success:
                continue
            pos, rot = fk.forward(ik.q)
            world_T_board = compose((rot, pos), mount)
            label = f"{cam.name}_{made:02d}"
            _write_rgb(out / cam.name / f"{label}.png", render_board(config.board, cam, world_T_board, seed=attempts))
            joints[label] = [round(float(v), 9) for v in ik.q]
            made += 1
        if made < poses_per_camera:
            raise RuntimeError(f"hand-eye scene: only {made} reachable board poses for camera {cam.name}")
    (out / "joints.yaml").write_text(yaml.safe_dump(joints, sort_keys=True), encoding="utf-8")
    _write_intrinsics(out, cams)
    return {c.name: c for c in cams}, mount


def pose_errors(truth: dict[str, CameraModel], found: dict[str, CameraModel]) -> dict[str, tuple[float, float]]:
    """Per camera: (position error [mm], rotation error [deg]) of ``found`` against ``truth``."""
    return {
        name: (
            float(np.linalg.norm(found[name].position - cam.position) * 1000),
            rotation_angle_deg(found[name].rotation, cam.rotation),
        )
        for name, cam in truth.items()
        if name in found
    }
