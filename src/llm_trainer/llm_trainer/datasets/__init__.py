"""Training datasets made from recorded episode bags: robomimic HDF5, LeRobot v3.0, SFT JSONL.

``bag_episode.episode_from_bag`` resamples a bag into ``EpisodeData``; ``exporters/`` write the
formats; ``export.export_run`` is ``llm-trainer export``.
"""

from llm_trainer.datasets.bag_episode import ACTION_SPACES, DatasetError, episode_from_bag
from llm_trainer.datasets.episode_data import EpisodeData

__all__ = ["ACTION_SPACES", "DatasetError", "EpisodeData", "episode_from_bag"]
