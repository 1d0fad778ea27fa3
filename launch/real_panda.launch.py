"""The lab robot: Franka Panda (FER), three RealSense D435i, perception, planner, executor and recorder.

    ros2 launch llm_trainer real_panda.launch.py robot_ip:=172.16.0.2                 # checks only
    ros2 launch llm_trainer real_panda.launch.py robot_ip:=172.16.0.2 dry_run:=false speed_scale:=0.3
    llm-trainer task "put the red block in the target area"                          # in another shell

Arguments (defaults in config/graphs/real_panda.yaml; `llm-trainer bringup real_panda --print` shows
every node's resolved parameters): robot_ip, executor_backend (panda_py | moveit), dry_run (true: plans
are checked, never executed), speed_scale, planner_backend, server_url, realsense_config (the
calibration), perception_config, objects_file, record_dir.
"""

from llm_trainer.bringup.graph import argument_docs
from llm_trainer.bringup.launch_support import graph_launch_description


def generate_launch_description():
    return graph_launch_description("real_panda", argument_docs("real_panda"))
