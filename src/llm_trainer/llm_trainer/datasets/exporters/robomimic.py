"""Episodes -> robomimic's HDF5 layout, loadable by robomimic's own ``SequenceDataset`` (h5py + numpy).

Layout (robomimic's, plus MimicGen-style datagen info and our provenance)::

    data                        attrs: total, env_args (JSON: env_name, env_kwargs, llm_trainer's action space)
    data/demo_N                 attrs: num_samples, episode_id, task, seed, instruction, success, bag_path,
                                       record_json (the episode record), object_names
        actions                 (N, D) the chosen action space (see bag_episode.ACTION_SPACES)
        action_dict/<space>     (N, D) every action space, for users who want another one
        obs/<key>, next_obs/<key>   joint_pos (7), joint_vel (7), gripper_width (1), ee_pos (3),
                                    ee_quat (4, x y z w), object (4K: x y z yaw per object, attr object_names)
                                    <camera>_image (H, W, 3) uint8 and <camera>_depth (H, W, 1) float32 [m]
                                    when images / depth are exported
        datagen_info/           target_ee_pos (3), target_ee_quat (4), gripper_command (1), primitive_index
        rewards (N,)            1 at the last step of a successful demo, else 0
        dones (N,)              1 at the last step
    mask/train, mask/valid      a deterministic split by episode id (``valid_fraction``)
    mask/successful, mask/failed

``next_obs`` is ``obs`` shifted by one step (the last step repeats), as robomimic's converters write it.
The file is written beside its destination and renamed into place when complete: a crash never
leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from llm_trainer.datasets.bag_episode import ACTION_SPACES, DatasetError
from llm_trainer.datasets.episode_data import EpisodeData

LOW_DIM_KEYS = ("joint_pos", "joint_vel", "gripper_width", "ee_pos", "ee_quat")


def in_valid_split(episode_id: str, valid_fraction: float) -> bool:
    """Deterministic train/valid assignment from the episode id (stable across re-exports)."""
    h = int(hashlib.sha256(episode_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < valid_fraction


def _obs_arrays(ep: EpisodeData) -> dict[str, np.ndarray]:
    obs = {k: np.asarray(ep.obs[k], np.float64) for k in LOW_DIM_KEYS}
    poses = np.asarray(ep.obs["object_poses"], np.float64)
    obs["object"] = poses.reshape(poses.shape[0], -1)
    for cam, frames in ep.images.items():
        obs[f"{cam}_image"] = np.asarray(frames, np.uint8)
    for cam, frames in ep.depth.items():
        obs[f"{cam}_depth"] = (np.asarray(frames, np.float32) * 0.001)[..., None]
    return obs


def _write_demo(grp: h5py.Group, ep: EpisodeData, action_space: str) -> int:
    n = ep.num_samples
    if n < 1:
        raise DatasetError(f"{ep.episode_id}: an episode needs at least one sample")
    grp.attrs["num_samples"] = n
    grp.attrs["episode_id"] = ep.episode_id
    grp.attrs["task"] = ep.task
    grp.attrs["seed"] = int(ep.seed)
    grp.attrs["instruction"] = ep.instruction
    grp.attrs["success"] = bool(ep.success)
    grp.attrs["bag_path"] = ep.bag_path
    grp.attrs["record_json"] = json.dumps(ep.record, default=str)
    grp.attrs["object_names"] = json.dumps(list(ep.object_names))
    grp.attrs["cameras_json"] = json.dumps(ep.cameras)
    grp.create_dataset("actions", data=np.asarray(ep.actions[action_space], np.float64))
    actions = grp.create_group("action_dict")
    for space, values in ep.actions.items():
        actions.create_dataset(space, data=np.asarray(values, np.float64))
    obs = _obs_arrays(ep)
    nxt = np.minimum(np.arange(n) + 1, n - 1)
    for group_name, rows in (("obs", slice(None)), ("next_obs", nxt)):
        g = grp.create_group(group_name)
        for key, arr in obs.items():
            data = arr[rows]
            if data.ndim >= 3:  # images: one chunk per frame (loaders read frames at random), gzip
                g.create_dataset(key, data=data, chunks=(1, *data.shape[1:]), compression="gzip", compression_opts=4)
            else:
                g.create_dataset(key, data=data)
        g["object"].attrs["object_names"] = json.dumps(list(ep.object_names))
        g["object"].attrs["columns"] = "x, y, z, yaw per object"
    info = grp.create_group("datagen_info")
    for key, arr in ep.datagen.items():
        info.create_dataset(key, data=np.asarray(arr))
    if ep.timestamps is not None:
        grp.create_dataset("timestamps", data=np.asarray(ep.timestamps, np.float64))
    dones = np.zeros(n, dtype=np.int64)
    dones[-1] = 1
    rewards = np.zeros(n, dtype=np.float64)
    rewards[-1] = 1.0 if ep.success else 0.0
    grp.create_dataset("dones", data=dones)
    grp.create_dataset("rewards", data=rewards)
    return n


def env_args(action_space: str, rate_hz: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``data.attrs['env_args']``: robomimic's keys (env_name, env_kwargs) plus what our actions mean."""
    return {
        "env_name": "llm_trainer_mujoco_panda",
        "env_kwargs": {"control_freq": rate_hz},
        "llm_trainer": {
            "simulator": "mujoco",
            "action_space": action_space,
            "action": ACTION_SPACES[action_space],
            "rate_hz": rate_hz,
            **(extra or {}),
        },
    }


def write_robomimic(
    episodes: Iterable[EpisodeData],
    out: Path | str,
    *,
    action_space: str = "joint_pos",
    valid_fraction: float = 0.1,
    rate_hz: float = 10.0,
) -> dict[str, Any]:
    """Write every episode as ``demo_0..`` to ``out`` (atomically); returns a summary."""
    if action_space not in ACTION_SPACES:
        raise DatasetError(f"unknown action space {action_space!r} (known: {', '.join(ACTION_SPACES)})")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    names: dict[str, list[str]] = {"train": [], "valid": [], "successful": [], "failed": []}
    total = 0
    try:
        with h5py.File(partial, "w") as f:
            data = f.create_group("data")
            data.attrs["env_args"] = json.dumps(env_args(action_space, rate_hz))
            for i, ep in enumerate(episodes):
                name = f"demo_{i}"
                total += _write_demo(data.create_group(name), ep, action_space)
                names["valid" if in_valid_split(ep.episode_id, valid_fraction) else "train"].append(name)
                names["successful" if ep.success else "failed"].append(name)
            data.attrs["total"] = total
            mask = f.create_group("mask")
            for key, demo_names in names.items():
                # robomimic reads masks as byte strings and decodes them.
                mask.create_dataset(key, data=np.array([n.encode() for n in demo_names], dtype="S16"))
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {"format": "robomimic", "out": str(out), "demos": sum(len(names[k]) for k in ("train", "valid")),
            "samples": total, "train": len(names["train"]), "valid": len(names["valid"])}  # fmt: skip
