"""Simulation bringup: the embedded MuJoCo Panda, planner, executor and demo recorder.

    ros2 launch llm_trainer sim.launch.py output_dir:=runs/latest render_cameras:=true

The node list and parameters come from config/graphs/sim.yaml, the same description that
`llm-trainer bringup sim` starts on machines without `ros2 launch`.
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from llm_trainer.bringup.graph import load_graph
from llm_trainer.bringup.launch_support import launch_parameters


def generate_launch_description():
    graph = load_graph("sim")
    arguments = [
        DeclareLaunchArgument(name, default_value=str(value), description=f"graph argument {name}")
        for name, value in graph.arguments.items()
    ]
    nodes = [
        Node(
            package="llm_trainer",
            executable=node.executable,
            name=node.name,
            parameters=[launch_parameters(node, LaunchConfiguration)],
            remappings=list(node.remappings.items()),
            output="screen",
        )
        for node in graph.nodes
    ]
    return LaunchDescription(arguments + nodes)
