"""Training datasets exported from recorded episodes (robomimic-layout HDF5)."""

from llm_trainer.datasets.robomimic_hdf5 import (
    DatasetError,
    EpisodeArrays,
    RobomimicWriter,
    episode_from_bag,
    export_episode,
    make_env_args,
    read_demo,
)

__all__ = [
    "DatasetError",
    "EpisodeArrays",
    "RobomimicWriter",
    "episode_from_bag",
    "export_episode",
    "make_env_args",
    "read_demo",
]
