"""Declarative node graphs (``config/graphs/<name>.yaml``): which nodes, with which parameters.

One description, two starters: ``launch/<name>.launch.py`` turns it into ``launch_ros`` Node
actions on a full ROS 2 install, and ``llm_trainer.bringup.local`` starts the same nodes as
processes where ``ros2 launch`` does not exist. ``${arg}`` in a parameter value refers to one of
the graph's arguments (a launch argument there, a keyword here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_trainer.config import ConfigError, config_dir, from_dict, load_yaml

#: Executable name (setup.py console_scripts) -> module with ``main()``.
EXECUTABLES = {
    "sim_node": "llm_trainer.nodes.sim_node",
    "planner_node": "llm_trainer.nodes.planner_node",
    "executor_node": "llm_trainer.nodes.executor_node",
    "recorder_node": "llm_trainer.nodes.recorder_node",
    "perception_node": "llm_trainer.nodes.perception_node",
    "realsense_node": "llm_trainer.nodes.realsense_node",
    "bag_player_node": "llm_trainer.nodes.bag_player_node",
}

_ARG = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class NodeSpec:
    name: str
    executable: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if self.executable not in EXECUTABLES:
            raise ValueError(
                f"node {self.name}: unknown executable {self.executable!r} (known: {', '.join(EXECUTABLES)})"
            )

    @property
    def module(self) -> str:
        return EXECUTABLES[self.executable]


@dataclass
class GraphSpec:
    name: str
    description: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    nodes: list[NodeSpec] = field(default_factory=list)

    def validate(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique: {names}")
        for node in self.nodes:
            for key, value in node.parameters.items():
                for arg in _ARG.findall(str(value)):
                    if arg not in self.arguments:
                        raise ValueError(f"node {node.name}: parameter {key} uses undeclared argument ${{{arg}}}")

    def resolved_parameters(self, node: NodeSpec, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Parameters with ``${arg}`` replaced by the argument's value (override or default), typed by YAML."""
        args = {**self.arguments, **(overrides or {})}
        unknown = set(overrides or {}) - set(self.arguments)
        if unknown:
            raise ConfigError(f"graph {self.name} has no argument(s) {', '.join(sorted(unknown))}")
        out = {}
        for key, value in node.parameters.items():
            if isinstance(value, str) and _ARG.search(value):
                whole = _ARG.fullmatch(value)
                if whole:  # a bare ${arg} keeps the argument's type
                    out[key] = args[whole.group(1)]
                else:
                    out[key] = _ARG.sub(lambda m: str(args[m.group(1)]), value)
            else:
                out[key] = value
        return out


def graph_path(name: str) -> Path:
    return config_dir() / "graphs" / f"{name}.yaml"


def load_graph(name_or_path: str | Path) -> GraphSpec:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = graph_path(str(name_or_path))
    if not path.exists():
        known = sorted(p.stem for p in (config_dir() / "graphs").glob("*.yaml"))
        raise ConfigError(f"no graph {name_or_path!r} (known: {', '.join(known)})")
    data = load_yaml(path)
    try:
        return from_dict(GraphSpec, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def describe(graph: GraphSpec, overrides: dict[str, Any] | None = None) -> str:
    """The graph resolved, as a person reads it: arguments (given or default), then each node with its
    executable, parameters and remappings. Unknown arguments are an error, as when starting it."""
    args = {**graph.arguments, **(overrides or {})}
    for node in graph.nodes:
        graph.resolved_parameters(node, overrides)  # raises on unknown arguments
    lines = [f"graph {graph.name}: {graph.description}", "arguments:"]
    for key, value in args.items():
        given = " (given)" if overrides and key in overrides else ""
        lines.append(f"  {key}: {yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
                     f"{given}")  # fmt: skip
    lines.append("nodes:")
    for node in graph.nodes:
        lines.append(f"  {node.name} ({node.executable} -> {node.module})")
        for key, value in graph.resolved_parameters(node, overrides).items():
            text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            lines.append(f"    {key}: {text}")
        for src, dst in node.remappings.items():
            lines.append(f"    remap {src} -> {dst}")
    return "\n".join(lines) + "\n"


def argument_docs(name: str) -> dict[str, str]:
    """Each graph argument's comment in its YAML file (the launch arguments' descriptions)."""
    docs = {}
    section = False
    for line in graph_path(name).read_text().splitlines():
        if not line.startswith(" "):
            section = line.startswith("arguments:")
            continue
        m = re.match(r"^  ([A-Za-z_][A-Za-z0-9_]*):[^#]*#\s*(.+)$", line)
        if section and m:
            docs[m.group(1)] = m.group(2).strip()
    return docs


def ros_args(node: NodeSpec, parameters: dict[str, Any]) -> list[str]:
    """``--ros-args`` for starting ``node`` as a process with these parameter values."""
    out = ["--ros-args", "-r", f"__node:={node.name}"]
    for key, value in parameters.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        if text.endswith("\n..."):
            text = text[: -len("\n...")]
        text = text.removesuffix("...").strip()
        out += ["-p", f"{key}:={text}"]
    for src, dst in node.remappings.items():
        out += ["-r", f"{src}:={dst}"]
    return out
