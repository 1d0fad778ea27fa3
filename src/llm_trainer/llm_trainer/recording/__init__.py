"""Episode recording: rosbag2 MCAP bags with a metadata.json each (ROS-free; the node is a thin adapter)."""

from llm_trainer.recording.bag_reader import bag_summary, bag_topic_types, read_episode_bag, read_episode_metadata
from llm_trainer.recording.bag_writer import (
    EpisodeBagWriter,
    EpisodeRecorder,
    EpisodeSummary,
    RecorderError,
    build_provenance,
    parse_metadata_json,
    update_metadata_json,
)
from llm_trainer.recording.typestore import (
    deserialize_cdr,
    get_ros2_typestore,
    header_stamp_ns,
    interfaces_share_dir,
)

__all__ = [
    "EpisodeBagWriter",
    "EpisodeRecorder",
    "EpisodeSummary",
    "RecorderError",
    "bag_summary",
    "bag_topic_types",
    "build_provenance",
    "deserialize_cdr",
    "get_ros2_typestore",
    "header_stamp_ns",
    "interfaces_share_dir",
    "parse_metadata_json",
    "read_episode_bag",
    "read_episode_metadata",
    "update_metadata_json",
]
