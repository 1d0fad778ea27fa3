#!/usr/bin/env python3
"""Peer row for the generation benchmark: robosuite's two-cube Stack with a Panda, scripted.

    .venv-peers/robosuite/bin/python scripts/peer_robosuite_stack.py [--episodes 10] [--seed 0]

Runs with the peer venv built by ``bash scripts/peer_venvs.sh robosuite`` (robosuite 1.5.2, the
simulator MimicGen generates its data in), never with the project venv. The environment has no
renderer and no cameras; the robot uses robosuite's default composite controller for the Panda
(BASIC: OSC_POSE on the arm, delta end-effector input in the base frame, plus the gripper).
A small scripted pick-and-place policy (written for this benchmark) drives it: above cubeA,
descend, close, lift, carry cubeA above cubeB, lower, open. Success is ``env._check_success()``.

Prints one JSON line on stdout. Environment construction (``env_build_s``) and a one-step warm-up
(``warmup_s``: numba JIT) are timed apart and kept out of the per-episode rate; each episode's time
includes its ``env.reset()``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import robosuite.utils.transform_utils as T

# Policy constants (metres / steps at 20 Hz). cubeA is 4 cm wide, cubeB 5 cm.
HOVER = 0.08  # height of the gripper above cubeA before the descent
CARRY = 0.06  # clearance of cubeA's bottom over cubeB's top while carrying
XY_TOL = 0.006  # horizontal alignment needed before a descent
Z_TOL = 0.008
GAIN = 12.0  # proportional gain: action = GAIN * position error, clipped to [-1, 1]
ROT_GAIN = 2.0  # axis-angle error (rad) -> rotation action (1 = 0.5 rad per step)
ROT_TOL = 0.05
CLOSE_STEPS = 12
OPEN_STEPS = 8
PHASE_TIMEOUT = 80  # steps; a phase that has not converged by then moves on anyway
CUBE_A_HALF, CUBE_B_HALF = 0.02, 0.025
OPEN, CLOSE = -1.0, 1.0


def yaw_of(quat_xyzw: np.ndarray) -> float:
    x, y, z, w = quat_xyzw
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def hand_down(yaw: float) -> np.ndarray:
    """Rotation of a hand pointing straight down whose x axis heads ``yaw`` (the Panda closes along y)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def grasp_yaw(obs: dict) -> float:
    """Hand yaw that squares the fingers to two faces of cubeA, keeping them off cubeB.

    The fingers close along the hand's y axis; of the two face-normal directions of cubeA, pick the
    one most nearly perpendicular to cubeA -> cubeB, so the fingers come down beside cubeA and not
    between the two cubes. The hand is symmetric under a half turn: take the yaw nearest the hand's.
    """
    cube = yaw_of(obs["cubeA_quat"])
    to_b = (obs["cubeB_pos"] - obs["cubeA_pos"])[:2]
    to_b = to_b / (np.linalg.norm(to_b) + 1e-9)
    closing = min((cube, cube + np.pi / 2), key=lambda h: abs(np.cos(h) * to_b[0] + np.sin(h) * to_b[1]))
    yaw = closing - np.pi / 2  # hand y axis = closing direction (up to sign)
    here = yaw_of(obs["robot0_eef_quat"])
    return here + (yaw - here + np.pi / 2) % np.pi - np.pi / 2


class StackPolicy:
    """Phase machine over the observation dict; returns a 7-D action (dx dy dz, drx dry drz, grip)."""

    PHASES = ("hover", "descend", "close", "lift", "carry", "lower", "release", "retreat")

    def __init__(self) -> None:
        self.phase = 0
        self.count = 0
        self.hand = None  # goal hand orientation (world), fixed at the first step

    def _next(self) -> None:
        self.phase += 1
        self.count = 0

    def __call__(self, obs: dict) -> np.ndarray:
        eef = obs["robot0_eef_pos"]
        a, b = obs["cubeA_pos"], obs["cubeB_pos"]
        if self.hand is None:
            self.hand = hand_down(grasp_yaw(obs))
        # Orientation error as an axis-angle in the world (= Panda base) frame: OSC applies delta @ R.
        rot = T.quat2axisangle(T.mat2quat(self.hand @ T.quat2mat(obs["robot0_eef_quat"]).T))
        name = self.PHASES[min(self.phase, len(self.PHASES) - 1)]
        self.count += 1
        grip, target = OPEN, eef
        if name == "hover":
            target = a + [0.0, 0.0, HOVER]
            err = target - eef
            aligned = np.linalg.norm(err[:2]) < XY_TOL and abs(err[2]) < 2 * Z_TOL and np.linalg.norm(rot) < ROT_TOL
            if aligned or self.count > PHASE_TIMEOUT:
                self._next()
        elif name == "descend":
            target = a + [0.0, 0.0, -0.005]
            if abs(target[2] - eef[2]) < Z_TOL or self.count > PHASE_TIMEOUT:
                self._next()
        elif name == "close":
            grip, target = CLOSE, eef
            if self.count >= CLOSE_STEPS:
                self._next()
        elif name == "lift":
            grip = CLOSE
            target = np.array([eef[0], eef[1], b[2] + CUBE_B_HALF + CARRY + CUBE_A_HALF + (eef[2] - a[2])])
            if abs(target[2] - eef[2]) < 2 * Z_TOL or self.count > PHASE_TIMEOUT:
                self._next()
        elif name in ("carry", "lower"):
            # Steer cubeA (not the hand) onto cubeB: the grasp offset is whatever the fingers left.
            grip = CLOSE
            clearance = CARRY if name == "carry" else 0.003
            err = b + [0.0, 0.0, CUBE_B_HALF + CUBE_A_HALF + clearance] - a
            target = eef + err
            if name == "carry" and (
                (np.linalg.norm(err[:2]) < XY_TOL / 2 and abs(err[2]) < 2 * Z_TOL) or self.count > PHASE_TIMEOUT
            ):
                self._next()
            elif name == "lower" and (abs(err[2]) < 0.004 or self.count > PHASE_TIMEOUT):
                self._next()
        elif name == "release":
            grip, target = OPEN, eef
            if self.count >= OPEN_STEPS:
                self._next()
        else:  # retreat: straight up, open
            target = eef + [0.0, 0.0, 0.05]
        action = np.zeros(7)
        action[:3] = np.clip(GAIN * (np.asarray(target) - eef), -1.0, 1.0)
        action[3:6] = np.clip(ROT_GAIN * rot, -1.0, 1.0)
        action[6] = grip
        return action

    @property
    def released(self) -> bool:
        return self.phase >= self.PHASES.index("retreat")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--horizon", type=int, default=400, help="control steps (20 Hz) per episode at most")
    parser.add_argument(
        "--hard-reset",
        action="store_true",
        help="robosuite's own default: rebuild the MJCF model and sim on every reset (slower); off = sim.reset()",
    )
    parser.add_argument("--verbose", action="store_true", help="one line per episode on stderr")
    args = parser.parse_args()

    import mujoco
    import robosuite
    from robosuite.controllers import load_composite_controller_config

    t0 = time.perf_counter()
    env = robosuite.make(
        "Stack",
        robots="Panda",
        controller_configs=load_composite_controller_config(controller=None, robot="Panda"),
        has_renderer=False,
        has_offscreen_renderer=False,
        use_camera_obs=False,
        use_object_obs=True,
        control_freq=20,
        horizon=args.horizon,
        ignore_done=True,  # the loop below bounds the episode itself
        hard_reset=args.hard_reset,
        seed=args.seed,
    )
    env_build_s = time.perf_counter() - t0
    # Warm-up, kept out of the rate too: robosuite's numba kernels (transform / control utils) are
    # compiled on first call and cached under site-packages, so a fresh venv's first step pays seconds.
    t0 = time.perf_counter()
    StackPolicy()(env.reset())  # the policy's own transform_utils calls JIT-compile here as well
    env.step(np.zeros(env.action_dim))
    warmup_s = time.perf_counter() - t0

    successes, steps_total = 0, 0
    t0 = time.perf_counter()
    for episode in range(args.episodes):
        obs = env.reset()
        policy = StackPolicy()
        success, steps = False, 0
        while steps < args.horizon:
            obs, _reward, _done, _info = env.step(policy(obs))
            steps += 1
            # Stop as a data generator would: once the cube is down, released and the check holds.
            if policy.released and env._check_success():
                success = True
                break
        successes += success
        steps_total += steps
        if args.verbose:
            print(f"episode {episode}: success={success} steps={steps} phase={policy.phase}", file=sys.stderr)
    wall = time.perf_counter() - t0
    env.close()

    n = max(args.episodes, 1)
    print(
        json.dumps(
            {
                "peer": "robosuite",
                "robosuite": robosuite.__version__,
                "mujoco": mujoco.__version__,
                "task": "Stack",
                "episodes": args.episodes,
                "successes": successes,
                "seconds_per_episode": wall / n,
                "episodes_per_minute": 60 * args.episodes / wall if wall > 0 else 0.0,
                "sim_seconds_per_episode": steps_total * env.control_timestep / n,
                "env_build_s": env_build_s,
                "warmup_s": warmup_s,
                "control_steps": steps_total,
                "hard_reset": args.hard_reset,
                "seed": args.seed,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
