"""The graph description shared by launch/sim.launch.py and `llm-trainer bringup`."""

from __future__ import annotations

import ast

import pytest
import yaml

from llm_trainer.bringup.graph import EXECUTABLES, load_graph, ros_args
from llm_trainer.bringup.launch_support import launch_parameters
from llm_trainer.config import ConfigError


def test_sim_graph_lists_the_four_nodes_with_known_executables():
    graph = load_graph("sim")
    assert [n.name for n in graph.nodes] == ["sim", "planner", "executor", "recorder"]
    assert all(n.executable in EXECUTABLES for n in graph.nodes)


def test_arguments_are_substituted_with_their_types():
    graph = load_graph("sim")
    sim = next(n for n in graph.nodes if n.name == "sim")
    params = graph.resolved_parameters(sim, {"render_cameras": False, "camera_rate_hz": 2.5})
    assert params["render_cameras"] is False and params["camera_rate_hz"] == 2.5
    planner = next(n for n in graph.nodes if n.name == "planner")
    params = graph.resolved_parameters(planner, {"output_dir": "/data/run1"})
    assert params["request_log"] == "/data/run1/planner_requests.jsonl"
    with pytest.raises(ConfigError, match="no argument"):
        graph.resolved_parameters(planner, {"no_such_arg": 1})


def test_ros_args_round_trip_through_yaml():
    graph = load_graph("sim")
    sim = next(n for n in graph.nodes if n.name == "sim")
    args = ros_args(sim, {"render_cameras": True, "camera_rate_hz": 5.0, "topics": ["/a", "/b"], "name": "x y"})
    assert args[:3] == ["--ros-args", "-r", "__node:=sim"]
    values = dict(a.split(":=", 1) for a in args[4::2])
    assert {k: yaml.safe_load(v) for k, v in values.items()} == {
        "render_cameras": True,
        "camera_rate_hz": 5.0,
        "topics": ["/a", "/b"],
        "name": "x y",
    }


def test_undeclared_argument_in_a_graph_is_an_error(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "g",
                "arguments": {},
                "nodes": [{"name": "sim", "executable": "sim_node", "parameters": {"x": "${y}"}}],
            }
        )
    )
    with pytest.raises(ConfigError, match="undeclared argument"):
        load_graph(path)
    path.write_text(yaml.safe_dump({"name": "g", "nodes": [{"name": "a", "executable": "rviz"}]}))
    with pytest.raises(ConfigError, match="unknown executable 'rviz'"):
        load_graph(path)


def test_launch_parameters_turn_arguments_into_substitutions():
    class FakeLaunchConfiguration:  # stands in for launch.substitutions.LaunchConfiguration (not installed here)
        def __init__(self, name):
            self.name = name

        def __eq__(self, other):
            return isinstance(other, FakeLaunchConfiguration) and other.name == self.name

    graph = load_graph("sim")
    planner = next(n for n in graph.nodes if n.name == "planner")
    params = launch_parameters(planner, FakeLaunchConfiguration)
    assert params["scene_topic"] == "/scene/ground_truth"
    assert params["backend"] == FakeLaunchConfiguration("planner_backend")
    assert params["request_log"] == [FakeLaunchConfiguration("output_dir"), "/planner_requests.jsonl"]


def test_launch_file_builds_from_the_same_description(repo_root):
    source = (repo_root / "launch" / "sim.launch.py").read_text()
    tree = ast.parse(source)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    assert 'graph_launch_description("sim"' in source
