"""Simulation bringup: the embedded MuJoCo Panda, planner, executor and demo recorder.

    ros2 launch llm_trainer sim.launch.py output_dir:=runs/latest render_cameras:=true

The node list and parameters come from config/graphs/sim.yaml, the same description that
`llm-trainer bringup sim` starts on machines without `ros2 launch`.
"""

from llm_trainer.bringup.graph import argument_docs
from llm_trainer.bringup.launch_support import graph_launch_description


def generate_launch_description():
    return graph_launch_description("sim", argument_docs("sim"))
