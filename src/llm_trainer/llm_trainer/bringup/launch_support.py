"""Helpers for the ROS 2 launch files (imported only there: launch/launch_ros exist on full installs)."""

from __future__ import annotations

import re
from typing import Any

from llm_trainer.bringup.graph import NodeSpec

_ARG = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def launch_parameters(node: NodeSpec, launch_configuration) -> dict[str, Any]:
    """A node's parameters with each ``${arg}`` turned into a launch substitution.

    ``launch_configuration`` is ``launch.substitutions.LaunchConfiguration`` (passed in so that this
    module imports without ``launch``). Mixed strings become a list of text and substitutions, which
    launch concatenates.
    """
    out: dict[str, Any] = {}
    for key, value in node.parameters.items():
        if not isinstance(value, str) or not _ARG.search(value):
            out[key] = value
            continue
        parts: list[Any] = []
        pos = 0
        for match in _ARG.finditer(value):
            if match.start() > pos:
                parts.append(value[pos : match.start()])
            parts.append(launch_configuration(match.group(1)))
            pos = match.end()
        if pos < len(value):
            parts.append(value[pos:])
        out[key] = parts[0] if len(parts) == 1 else parts
    return out


def graph_launch_description(graph_name: str, extra_arguments: dict[str, str] | None = None):
    """A ``LaunchDescription`` of ``config/graphs/<graph_name>.yaml``: one launch argument per graph argument
    (documented with the YAML's comment text where given in ``extra_arguments``) and one ``Node`` per node."""
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription
    from llm_trainer.bringup.graph import load_graph

    graph = load_graph(graph_name)
    docs = extra_arguments or {}
    arguments = [
        DeclareLaunchArgument(name, default_value=str(value), description=docs.get(name, f"graph argument {name}"))
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
