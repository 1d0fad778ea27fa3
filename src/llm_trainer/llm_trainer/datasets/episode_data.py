"""One recorded episode on a fixed time grid: what every exporter writes (ROS-free).

``episode_from_bag`` (``llm_trainer.datasets.bag_episode``) builds it from an episode's MCAP bag;
the exporters (``llm_trainer.datasets.exporters``) turn it into robomimic HDF5, LeRobot v3.0 or
SFT JSONL. Arrays are sample-major: row ``i`` is grid time ``timestamps[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class EpisodeData:
    episode_id: str
    task: str
    instruction: str
    seed: int
    success: bool
    fps: float  # grid rate [Hz]
    timestamps: np.ndarray  # (N,) seconds since the first sample
    #: low-dimensional observations by key, each (N, D): joint_pos (7), joint_vel (7), gripper_width (1),
    #: ee_pos (3), ee_quat (4, x y z w), object_poses (N, K, 4: x y z yaw in ``object_names`` order)
    obs: dict[str, np.ndarray]
    #: actions by action space, each (N, D); see ``action_spaces`` in bag_episode for frames and units
    actions: dict[str, np.ndarray]
    object_names: list[str] = field(default_factory=list)
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> (N, H, W, 3) uint8 RGB
    depth: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> (N, H, W) uint16 [mm]
    #: per-sample datagen info (MimicGen's "datagen_info"): target_ee_pos (N,3), target_ee_quat (N,4),
    #: gripper_command (N,1) [m], primitive_index (N,) int (-1 before the first primitive)
    datagen: dict[str, np.ndarray] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)  # the episode record (llm_trainer.episodes) as JSON
    cameras: dict[str, Any] = field(default_factory=dict)  # camera name -> intrinsics/extrinsics (contract)
    bag_path: str = ""

    @property
    def num_samples(self) -> int:
        return int(self.timestamps.shape[0])
