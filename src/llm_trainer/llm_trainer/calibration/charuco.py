"""The printed ChArUco board: its specification, detection in an image and the board's pose (OpenCV).

Board frame (OpenCV's ``CharucoBoard``): origin at the outer corner of the first square (the top-left
corner of the printed pattern held upright), x along the pattern's rows (to the right), y down the
pattern, z into the paper, so the printed side faces -z. Lying printed side up on the table, the
board's z axis points down into the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: A pose as (R, t): ``R`` (3, 3) and ``t`` (3,) map points of the child frame into the parent frame.
Pose = tuple[np.ndarray, np.ndarray]


@dataclass
class BoardSpec:
    """A ChArUco board: squares across (x) and down (y), square and marker side [m], ArUco dictionary."""

    squares_x: int = 7
    squares_y: int = 5
    square_length_m: float = 0.07
    marker_length_m: float = 0.052
    dictionary: str = "DICT_4X4_50"

    def validate(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError(f"squares_x, squares_y: at least 3 x 3 squares, got {self.squares_x} x {self.squares_y}")
        if not self.square_length_m > 0:
            raise ValueError("square_length_m: must be positive")
        if not 0 < self.marker_length_m < self.square_length_m:
            raise ValueError(
                f"marker_length_m: {self.marker_length_m} must be positive and smaller than "
                f"square_length_m {self.square_length_m}"
            )
        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            known = ", ".join(n for n in dir(cv2.aruco) if n.startswith("DICT_") and n.upper() == n)
            raise ValueError(f"dictionary: unknown ArUco dictionary {self.dictionary!r} (known: {known})")
        needed = (self.squares_x * self.squares_y) // 2
        available = self.aruco_dictionary().bytesList.shape[0]
        if needed > available:
            raise ValueError(
                f"squares_x, squares_y: {needed} markers needed but {self.dictionary} has only {available}"
            )

    def aruco_dictionary(self) -> cv2.aruco.Dictionary:
        return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))

    def board(self) -> cv2.aruco.CharucoBoard:
        return cv2.aruco.CharucoBoard(
            (self.squares_x, self.squares_y),
            float(self.square_length_m),
            float(self.marker_length_m),
            self.aruco_dictionary(),
        )

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares_x * self.square_length_m, self.squares_y * self.square_length_m

    @property
    def corner_count(self) -> int:
        return (self.squares_x - 1) * (self.squares_y - 1)


@dataclass
class Detection:
    """ChArUco corners found in one image: ids and sub-pixel image positions (CameraInfo convention)."""

    ids: np.ndarray  # (N,) int
    corners: np.ndarray  # (N, 2) float64 pixels
    markers: int  # ArUco markers found

    def __len__(self) -> int:
        return int(self.ids.size)


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image if image.dtype == np.uint8 else cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected a grey or colour image, got shape {image.shape}")


class BoardDetector:
    """Finds one board's ChArUco corners; reuse one instance for many images."""

    def __init__(self, spec: BoardSpec):
        self.spec = spec
        self.board = spec.board()
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        self._detector = cv2.aruco.CharucoDetector(self.board, cv2.aruco.CharucoParameters(), params)
        # board-frame positions of the inner corners, indexed by ChArUco id
        self._points = np.asarray(self.board.getChessboardCorners(), np.float64).reshape(-1, 3)

    def detect(self, image: np.ndarray) -> Detection:
        gray = to_gray(image)
        corners, ids, _marker_corners, marker_ids = self._detector.detectBoard(gray)
        markers = 0 if marker_ids is None else len(marker_ids)
        if ids is None or corners is None or len(ids) == 0:
            return Detection(np.zeros(0, int), np.zeros((0, 2)), markers)
        if len(ids) >= 3 and self.board.checkCharucoCornersCollinear(ids):
            # corners on one line fix no pose: treat as not found
            return Detection(np.zeros(0, int), np.zeros((0, 2)), markers)
        return Detection(np.asarray(ids, int).reshape(-1), np.asarray(corners, np.float64).reshape(-1, 2), markers)

    def object_points(self, detection: Detection) -> np.ndarray:
        """(N, 3) board-frame points of a detection's corners."""
        return self._points[detection.ids]


@dataclass
class PoseFit:
    """A board pose in a camera (``camera_T_board``) and how well it explains the corners."""

    pose: Pose
    rms_px: float
    max_px: float
    corners: int


def reprojection_errors(obj: np.ndarray, img: np.ndarray, pose: Pose, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Pixel distance of each observed point from the projection of its board point."""
    rvec, _ = cv2.Rodrigues(np.asarray(pose[0], np.float64))
    proj, _ = cv2.projectPoints(np.asarray(obj, np.float64), rvec, np.asarray(pose[1], np.float64), K, dist)
    return np.linalg.norm(proj.reshape(-1, 2) - img, axis=1)


def solve_board_pose(obj: np.ndarray, img: np.ndarray, K: np.ndarray, dist: np.ndarray | None = None) -> PoseFit:
    """``camera_T_board`` from board points and their pixels (planar IPPE, then Levenberg-Marquardt)."""
    obj = np.asarray(obj, np.float64).reshape(-1, 3)
    img = np.asarray(img, np.float64).reshape(-1, 2)
    if len(obj) < 4:
        raise ValueError(f"a board pose needs at least 4 corners, got {len(obj)}")
    K = np.asarray(K, np.float64)
    dist = np.zeros(5) if dist is None else np.asarray(dist, np.float64)
    try:
        ok, rvecs, tvecs, _errs = cv2.solvePnPGeneric(obj, img, K, dist, flags=cv2.SOLVEPNP_IPPE)
        if not ok or not len(rvecs):
            raise ValueError("OpenCV found no board pose for the detected corners")
        refined = [cv2.solvePnPRefineLM(obj, img, K, dist, r.copy(), t.copy()) for r, t in zip(rvecs, tvecs)]
    except cv2.error as exc:
        raise ValueError(f"OpenCV cannot solve the board pose: {exc.err}") from None
    best = None
    for rvec, tvec in refined:
        pose = (cv2.Rodrigues(rvec)[0], tvec.reshape(3))
        err = reprojection_errors(obj, img, pose, K, dist)
        if pose[1][2] > 0 and (best is None or float(np.sqrt(np.mean(err**2))) < best.rms_px):
            best = PoseFit(pose, float(np.sqrt(np.mean(err**2))), float(err.max()), len(obj))
    if best is None:
        raise ValueError("the board pose OpenCV found lies behind the camera")
    return best


# ------------------------------------------------------------------------------------ pose algebra
def compose(a: Pose, b: Pose) -> Pose:
    """``a * b`` (a: parent_T_mid, b: mid_T_child)."""
    return a[0] @ b[0], a[0] @ b[1] + a[1]


def invert(a: Pose) -> Pose:
    return a[0].T, -a[0].T @ a[1]


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation between two rotation matrices [degrees]."""
    c = (np.trace(np.asarray(a).T @ np.asarray(b)) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(c, -1.0, 1.0))))


def table_board_pose(position, yaw_deg: float) -> Pose:
    """``world_T_board`` of a board lying printed side up on the table, its x axis turned ``yaw_deg``
    from world x about world z, its origin corner at ``position``."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    x, z = np.array([c, s, 0.0]), np.array([0.0, 0.0, -1.0])
    return np.stack([x, np.cross(z, x), z], axis=1), np.asarray(position, float).reshape(3)
