"""Hand-eye calibration of a fixed camera with the board held by the gripper (``--method hand-eye``).

The arm moves the board through several poses; for each, the joint positions give ``world_T_tcp`` by
the Panda's forward kinematics (``llm_trainer.motion.kinematics``; the robot base is the world origin)
and the camera's image gives ``camera_T_board``. With the unknown camera pose ``camera_T_world`` and
the unknown mount ``tcp_T_board``:

    camera_T_board(i) = camera_T_world * world_T_tcp(i) * tcp_T_board

which is OpenCV's robot-world/hand-eye problem ``cTw = cTg * gTb * bTw`` with OpenCV's "world" our
board, its "gripper" our world and its "base" our TCP (``cv2.calibrateRobotWorldHandEye``, Shah's
method). The two transforms are then refined together on the reprojection error of every corner in
every view (Levenberg-Marquardt, SciPy), which is what the reported error measures.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from llm_trainer.calibration.charuco import BoardDetector, Pose, compose, invert, solve_board_pose
from llm_trainer.calibration.extrinsics import CameraInput, CameraResult, detect_all
from llm_trainer.sensors.cameras import rotation_to_quaternion


def tcp_poses_from_joints(joints: Mapping[str, list[float]]) -> dict[str, Pose]:
    """``world_T_tcp`` per label from the arm's 7 joint positions [rad] (forward kinematics)."""
    from llm_trainer.motion.kinematics import PandaKinematics

    fk = PandaKinematics()
    poses = {}
    for label, q in joints.items():
        q = np.asarray(q, float).reshape(-1)
        if q.size != 7 or not np.all(np.isfinite(q)):
            raise ValueError(f"joints {label!r}: expected 7 finite joint positions [rad], got {list(q)}")
        pos, rot = fk.forward(q)
        poses[label] = (rot, pos)
    return poses


def _pose_vec(p: Pose) -> np.ndarray:
    return np.concatenate([cv2.Rodrigues(np.asarray(p[0], np.float64))[0].reshape(3), np.asarray(p[1]).reshape(3)])


def _vec_pose(v: np.ndarray) -> Pose:
    return cv2.Rodrigues(np.asarray(v[:3], np.float64).reshape(3, 1))[0], np.asarray(v[3:6], float)


def calibrate_hand_eye(
    cam: CameraInput,
    detector: BoardDetector,
    world_T_tcp: Mapping[str, Pose],
    *,
    min_corners: int = 8,
    min_views: int = 5,
) -> CameraResult:
    """One fixed camera's pose from views of the board on the gripper (labels of images and poses match)."""
    missing = [label for label, _ in cam.images if label not in world_T_tcp]
    if missing:
        raise ValueError(f"camera {cam.name}: no joint positions for image(s) {', '.join(missing[:5])}")
    used, skipped = detect_all(cam, detector, min_corners)
    if len(used) < min_views:
        raise ValueError(
            f"camera {cam.name}: the board is seen in {len(used)} of {len(cam.images)} image(s); hand-eye needs at "
            f"least {min_views} robot poses with the board in view (rotated about different axes)"
        )
    obj = [detector.object_points(d) for _, d in used]
    img = [d.corners for _, d in used]
    tcp = [world_T_tcp[label] for label, _ in used]
    views = [solve_board_pose(o, i, cam.K, cam.dist).pose for o, i in zip(obj, img)]
    try:
        r_bt, t_bt, r_cw, t_cw = cv2.calibrateRobotWorldHandEye(
            [v[0] for v in views],
            [v[1].reshape(3, 1) for v in views],
            [p[0] for p in tcp],
            [np.asarray(p[1], float).reshape(3, 1) for p in tcp],
            method=cv2.CALIB_ROBOT_WORLD_HAND_EYE_SHAH,
        )
    except cv2.error as exc:
        raise ValueError(f"camera {cam.name}: OpenCV's hand-eye solver failed: {exc.err}") from None
    cam_T_world = (np.asarray(r_cw, float), np.asarray(t_cw, float).reshape(3))
    tcp_T_board = invert((np.asarray(r_bt, float), np.asarray(t_bt, float).reshape(3)))
    cam_T_world, tcp_T_board = _refine(cam, obj, img, tcp, cam_T_world, tcp_T_board)
    residuals = np.concatenate(
        [_project(cam, o, compose(compose(cam_T_world, p), tcp_T_board)) - i for o, i, p in zip(obj, img, tcp)]
    )
    err = np.linalg.norm(residuals, axis=1)
    mount = {
        "board_mount": {
            "frame": "tcp",
            "position": np.round(tcp_T_board[1], 6).tolist(),
            "quaternion_xyzw": [round(v, 8) for v in rotation_to_quaternion(tcp_T_board[0])],
        }
    }
    return CameraResult(
        cam.name,
        cam.model(invert(cam_T_world)),
        cam.dist,
        float(np.sqrt(np.mean(err**2))),
        float(err.max()),
        int(err.size),
        [label for label, _ in used],
        skipped,
        mount,
    )


def _project(cam: CameraInput, obj: np.ndarray, cam_T_board: Pose) -> np.ndarray:
    rvec = cv2.Rodrigues(cam_T_board[0])[0]
    proj, _ = cv2.projectPoints(obj, rvec, np.asarray(cam_T_board[1], np.float64), cam.K, cam.dist)
    return proj.reshape(-1, 2)


def _refine(cam, obj, img, tcp, cam_T_world: Pose, tcp_T_board: Pose) -> tuple[Pose, Pose]:
    from scipy.optimize import least_squares

    def residuals(x: np.ndarray) -> np.ndarray:
        cw, tb = _vec_pose(x[:6]), _vec_pose(x[6:])
        return np.concatenate(
            [(_project(cam, o, compose(compose(cw, p), tb)) - i).ravel() for o, i, p in zip(obj, img, tcp)]
        )

    x0 = np.concatenate([_pose_vec(cam_T_world), _pose_vec(tcp_T_board)])
    sol = least_squares(residuals, x0, method="lm", x_scale="jac")
    return _vec_pose(sol.x[:6]), _vec_pose(sol.x[6:])
