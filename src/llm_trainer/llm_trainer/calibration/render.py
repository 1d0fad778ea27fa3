"""Synthetic views of the ChArUco board for tests and ``calibrate-cameras --selftest``.

The board's printed pattern (``CharucoBoard.generateImage``) is warped into a pinhole camera through
the homography of the board plane, ``K [r1 r2 t]``, at ``supersample`` times the camera's resolution
and then averaged down (``INTER_AREA``), so edges are anti-aliased like a real sensor's. Pixel
coordinates follow CameraInfo's convention (pixel centres at integers), which is OpenCV's: a
supersampled pixel grid of factor ``s`` has ``u_s = s u + (s - 1) / 2``.

``plane_depth`` renders the depth image (along the optical axis, metres) of the table plane z = 0.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from llm_trainer.calibration.charuco import BoardSpec, Pose, compose, invert
from llm_trainer.sensors.cameras import CameraModel

PAPER, INK, TABLE = 235, 25, (150, 128, 104)


def board_pattern(spec: BoardSpec, px_per_m: float = 2000.0, margin_m: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """The printed sheet (grey uint8, white margin around the pattern) and the 3x3 matrix taking its
    pixel coordinates (centres at integers) to board-frame metres (x, y, 1)."""
    margin = int(round(margin_m * px_per_m))
    w = int(round(spec.size_m[0] * px_per_m)) + 2 * margin
    h = int(round(spec.size_m[1] * px_per_m)) + 2 * margin
    img = spec.board().generateImage((w, h), marginSize=margin, borderBits=1)
    # generateImage puts board point (x, y) at pixel x * px_per_m + margin - 0.5 (checked by detection).
    off = (margin - 0.5) / px_per_m
    to_board = np.array([[1 / px_per_m, 0.0, -off], [0.0, 1 / px_per_m, -off], [0.0, 0.0, 1.0]])
    return img, to_board


def printable_board(spec: BoardSpec, dpi: int = 300, margin_m: float = 0.015) -> np.ndarray:
    """The board to print at ``dpi`` (at 100 % scale, no "fit to page")."""
    return board_pattern(spec, dpi / 0.0254, margin_m)[0]


def supersampled_K(K: np.ndarray, s: int) -> np.ndarray:
    k = np.asarray(K, float).copy()
    k[0, 0], k[1, 1] = k[0, 0] * s, k[1, 1] * s
    k[0, 2], k[1, 2] = k[0, 2] * s + (s - 1) / 2, k[1, 2] * s + (s - 1) / 2
    return k


def render_board(
    spec: BoardSpec,
    camera: CameraModel,
    world_T_board: Pose,
    *,
    supersample: int = 4,
    noise: float = 2.0,
    blur_px: float = 0.5,
    seed: int = 0,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the board seen by ``camera`` (its K and world pose), over ``background``."""
    pattern, to_board = board_pattern(spec)
    cam_T_board = compose(invert((camera.rotation, camera.position)), world_T_board)
    r, t = cam_T_board
    if invert(cam_T_board)[1][2] >= 0:  # the camera is behind the sheet: it sees blank paper
        pattern = np.full_like(pattern, 255)
    H = supersampled_K(camera.K, supersample) @ np.column_stack([r[:, 0], r[:, 1], t]) @ to_board
    size = (camera.width * supersample, camera.height * supersample)
    sheet = cv2.warpPerspective(pattern, H, size, flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.warpPerspective(np.full(pattern.shape, 255, np.uint8), H, size, flags=cv2.INTER_LINEAR)
    # ink and paper are not pure black and white
    sheet = INK + sheet.astype(np.float32) * ((PAPER - INK) / 255.0)
    alpha = mask.astype(np.float32)[..., None] / 255.0
    if background is None:
        back = np.broadcast_to(np.asarray(TABLE, np.float32), (size[1], size[0], 3))
    else:
        back = cv2.resize(background.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    big = alpha * sheet[..., None] + (1 - alpha) * back
    img = cv2.resize(big, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    if blur_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_px)
    if noise > 0:
        img = img + np.random.default_rng(seed).normal(0.0, noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def plane_depth(camera: CameraModel, height_m: float = 0.0) -> np.ndarray:
    """(H, W) float32 depth [m] along the optical axis of the horizontal plane z = ``height_m`` (0: none)."""
    v, u = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
    fx, fy, cx, cy = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)  # optical, z = 1
    dz = rays @ camera.rotation[2]  # world z change per unit optical depth
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (height_m - camera.position[2]) / dz
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def look_at_rotation(position, target) -> np.ndarray:
    """world_R_optical of a camera at ``position`` looking at ``target`` (image x level, z up)."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward], axis=1)


def nominal_cameras(width: int = 640, height: int = 480) -> list[CameraModel]:
    """The simulator's cameras (config/sim.yaml: poses and vertical field of view) at ``width`` x ``height``,
    with a centred principal point in CameraInfo's convention."""
    from llm_trainer.sim.sim_config import load_sim_config

    out = []
    for cam in load_sim_config().cameras:
        f = (height / 2) / math.tan(math.radians(cam.fovy_deg) / 2)
        K = np.array([[f, 0.0, width / 2 - 0.5], [0.0, f, height / 2 - 0.5], [0.0, 0.0, 1.0]])
        rot = look_at_rotation(cam.position, cam.look_at)
        out.append(CameraModel(cam.name, width, height, K, np.asarray(cam.position, float), rot))
    return out


def perturbed(camera: CameraModel, shift_m: float, turn_deg: float, rng: np.random.Generator) -> CameraModel:
    """The camera moved by ``shift_m`` and turned by ``turn_deg`` in random directions (a "true" pose)."""
    d = rng.normal(size=3)
    axis = rng.normal(size=3)
    rvec = axis / np.linalg.norm(axis) * math.radians(turn_deg)
    rot = cv2.Rodrigues(rvec)[0] @ camera.rotation
    pos = camera.position + d / np.linalg.norm(d) * shift_m
    return CameraModel(camera.name, camera.width, camera.height, camera.K.copy(), pos, rot)
