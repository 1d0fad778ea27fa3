"""ament_python package of llm_trainer.

Two ways in:
- here (ROS 2 wheels from PyPI): ``pip install -e src/llm_trainer`` (scripts/setup.sh does it) puts
  ``llm-trainer`` and the node entry points into ``<venv>/bin``;
- a full ROS 2 install: ``colcon build`` puts the nodes into ``lib/llm_trainer/`` (``ros2 run``) and
  launch/config/urdf into ``share/llm_trainer/`` (``ros2 launch``); see setup.cfg.
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "llm_trainer"
HERE = Path(__file__).resolve().parent


def files(pattern: str) -> list[str]:
    """Plain files matching a glob relative to this folder (an empty or missing folder gives [])."""
    return sorted(p for p in glob(pattern, root_dir=HERE) if (HERE / p).is_file())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", files("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", files("config/*.yaml")),
        (f"share/{PACKAGE}/urdf", files("urdf/*")),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "pyyaml", "mujoco", "rosbags", "h5py"],
    zip_safe=False,
    maintainer="llm_trainer developers",
    maintainer_email="llm-trainer@example.org",
    description="LLM-driven robot data generation with ROS 2 and MuJoCo",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "llm-trainer = llm_trainer.cli:main",
            "sim_node = llm_trainer.nodes.sim_node:main",
            "planner_node = llm_trainer.nodes.planner_node:main",
            "executor_node = llm_trainer.nodes.executor_node:main",
            "recorder_node = llm_trainer.nodes.recorder_node:main",
            "perception_node = llm_trainer.nodes.perception_node:main",
            "realsense_node = llm_trainer.nodes.realsense_node:main",
            "bag_player_node = llm_trainer.nodes.bag_player_node:main",
        ],
    },
)
