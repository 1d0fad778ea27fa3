"""The ``ros_gz_bridge`` configuration, generated from the camera contract and the joint list, so its names
cannot drift from the world (``world.py``) or from what ``GazeboSimulation`` reads and commands.

Format (ros_gz_bridge's ``config_file``, as its ``bridge_config.cpp`` parses it): a YAML sequence of maps
with ``ros_topic_name``, ``gz_topic_name``, ``ros_type_name``, ``gz_type_name`` and ``direction``
(``GZ_TO_ROS`` | ``ROS_TO_GZ`` | ``BIDIRECTIONAL``), optionally ``lazy`` and queue sizes. Services cannot be
put in that file; the world control service goes on the command line (``bridge_command``).

Carried: per camera colour, depth (32-bit float metres: the node turns it into the contract's 16UC1 mm)
and intrinsics; the Panda's joint states; one position command per joint; the world clock; the dynamic
poses of the objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llm_trainer.sim.gazebo.names import GazeboNames
from llm_trainer.sim.sim_config import SimConfig

GZ_TO_ROS, ROS_TO_GZ, BIDIRECTIONAL = "GZ_TO_ROS", "ROS_TO_GZ", "BIDIRECTIONAL"
#: The ROS <-> Gazebo message pairs this configuration uses (from ros_gz_bridge's README table).
TYPE_PAIRS = {
    "sensor_msgs/msg/Image": "gz.msgs.Image",
    "sensor_msgs/msg/CameraInfo": "gz.msgs.CameraInfo",
    "sensor_msgs/msg/JointState": "gz.msgs.Model",
    "std_msgs/msg/Float64": "gz.msgs.Double",
    "rosgraph_msgs/msg/Clock": "gz.msgs.Clock",
    "tf2_msgs/msg/TFMessage": "gz.msgs.Pose_V",
}
CONTROL_SERVICE_TYPE = "ros_gz_interfaces/srv/ControlWorld"
KEYS = {"topic_name", "ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction", "lazy"}
KEYS |= {"publisher_queue", "subscriber_queue"}


def _entry(topic: str, ros_type: str, direction: str, **extra) -> dict[str, Any]:
    return {
        "ros_topic_name": topic,
        "gz_topic_name": topic,
        "ros_type_name": ros_type,
        "gz_type_name": TYPE_PAIRS[ros_type],
        "direction": direction,
        **extra,
    }


def bridge_entries(config: SimConfig | None = None, names: GazeboNames | None = None) -> list[dict[str, Any]]:
    config = config or SimConfig()
    names = names or GazeboNames()
    out = [
        _entry(names.clock, "rosgraph_msgs/msg/Clock", GZ_TO_ROS),
        _entry(names.joint_state, "sensor_msgs/msg/JointState", GZ_TO_ROS),
        _entry(names.dynamic_poses, "tf2_msgs/msg/TFMessage", GZ_TO_ROS),
    ]
    out += [_entry(names.joint_command(j), "std_msgs/msg/Float64", ROS_TO_GZ) for j in names.joints]
    for cam in config.cameras:
        out += [
            _entry(names.camera_image(cam.name), "sensor_msgs/msg/Image", GZ_TO_ROS, lazy=False),
            _entry(names.camera_depth(cam.name), "sensor_msgs/msg/Image", GZ_TO_ROS, lazy=False),
            _entry(names.camera_info(cam.name), "sensor_msgs/msg/CameraInfo", GZ_TO_ROS),
        ]
    return out


def bridge_yaml(config: SimConfig | None = None, names: GazeboNames | None = None) -> str:
    header = (
        "# ros_gz_bridge configuration for the Gazebo simulator bridge (generated: do not edit by hand).\n"
        "# Regenerate: python -m llm_trainer.sim.gazebo bridge --out config/gazebo_bridge.yaml\n"
        "# Run: " + bridge_command(Path("config/gazebo_bridge.yaml"), names) + "\n"
    )
    return header + yaml.safe_dump(bridge_entries(config, names), sort_keys=False, width=120)


def bridge_command(config_file: Path, names: GazeboNames | None = None) -> str:
    """The parameter_bridge command line: the YAML for the topics, an argument for the control service."""
    names = names or GazeboNames()
    return (
        f"ros2 run ros_gz_bridge parameter_bridge {names.control_service}@{CONTROL_SERVICE_TYPE} "
        f"--ros-args -p config_file:={config_file}"
    )


def check_bridge_entries(entries: Any) -> list[str]:
    """Problems ros_gz_bridge would reject an entry for (its parser's rules), plus type pairs it cannot bridge."""
    if not isinstance(entries, list):
        return ["the top level must be a YAML sequence"]
    problems = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            problems.append(f"entry {i}: must be a map")
            continue
        unknown = set(e) - KEYS
        if unknown:
            problems.append(f"entry {i}: unknown keys {sorted(unknown)}")
        if "topic_name" in e and ("ros_topic_name" in e or "gz_topic_name" in e):
            problems.append(f"entry {i}: topic_name excludes ros_topic_name and gz_topic_name")
        if not e.get("ros_type_name") or not e.get("gz_type_name"):
            problems.append(f"entry {i}: both ros_type_name and gz_type_name must be set")
        elif TYPE_PAIRS.get(e["ros_type_name"]) != e["gz_type_name"]:
            problems.append(f"entry {i}: {e['ros_type_name']} does not bridge to {e['gz_type_name']}")
        if e.get("direction", BIDIRECTIONAL) not in (GZ_TO_ROS, ROS_TO_GZ, BIDIRECTIONAL):
            problems.append(f"entry {i}: invalid direction {e.get('direction')!r}")
        if not any(e.get(k) for k in ("topic_name", "ros_topic_name", "gz_topic_name")):
            problems.append(f"entry {i}: no topic name")
    return problems
