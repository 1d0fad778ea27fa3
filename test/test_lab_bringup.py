"""The lab graphs (real_panda, replay, sim) against the nodes they start, the launch files, `bringup --print`,
and the lab's daily loop (`llm-trainer task`) with the executor's dry-run gate and stop service over real DDS."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llm_trainer.bringup.graph import EXECUTABLES, argument_docs, describe, load_graph
from llm_trainer.config import ConfigError, config_dir
from llm_trainer.ros.domains import domain_beside

GRAPHS = sorted(p.stem for p in (config_dir() / "graphs").glob("*.yaml"))


def declared_parameters(module: str) -> dict[str, object]:
    """``declare_parameter("name", default)`` calls of a node module, read from its source (no ROS needed)."""
    path = Path(importlib.util.find_spec(module).origin)
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "declare_parameter" and node.args:
            name = ast.literal_eval(node.args[0])
            try:
                out[name] = ast.literal_eval(node.args[1]) if len(node.args) > 1 else None
            except ValueError:  # a computed default (e.g. list(CAMERAS)): its type is not checked
                out[name] = None
    return out


def _compatible(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return type(value) is type(default)


def test_the_graphs_cover_sim_robot_and_replay() -> None:
    assert {"sim", "real_panda", "replay"} <= set(GRAPHS)


@pytest.mark.parametrize("name", GRAPHS)
def test_every_graph_parameter_is_declared_by_its_node_with_that_type(name: str) -> None:
    graph = load_graph(name)
    graph.validate()
    for node in graph.nodes:
        declared = declared_parameters(EXECUTABLES[node.executable])
        assert declared, f"{node.executable} declares no parameter"
        params = graph.resolved_parameters(node)
        unknown = set(params) - set(declared)
        assert not unknown, f"{name}/{node.name}: {sorted(unknown)} not declared by {node.executable}"
        for key, value in params.items():
            assert _compatible(value, declared[key]), f"{name}/{node.name}.{key}: {value!r} vs {declared[key]!r}"
        source = Path(importlib.util.find_spec(EXECUTABLES[node.executable]).origin).read_text()
        for src in node.remappings:
            assert src in source, f"{name}/{node.name}: remapping of {src}, which the node never uses"


def test_the_lab_graph_wires_cameras_scene_and_safety_consistently() -> None:
    from llm_trainer.sensors.realsense import load_realsense_config

    graph = load_graph("real_panda")
    p = {n.name: graph.resolved_parameters(n) for n in graph.nodes}
    by_exe = {n.executable for n in graph.nodes}
    assert {"realsense_node", "perception_node", "planner_node", "executor_node", "recorder_node"} <= by_exe
    streamed = [p[n.name]["cameras"] for n in graph.nodes if n.executable == "realsense_node"]
    configured = [c.name for c in load_realsense_config().cameras]
    assert sorted(streamed) == sorted(configured) == sorted(p["perception"]["cameras"].split(","))
    scene = p["perception"]["output_topic"]
    assert p["planner"]["scene_topic"] == scene == p["executor"]["scene_topic"] == "/scene/objects"
    assert p["executor"]["dry_run"] is True and 0 < p["executor"]["speed_scale"] <= 1  # safe until told otherwise
    assert p["executor"]["backend"] in ("panda_py", "moveit")
    assert (config_dir().parent / p["perception"]["objects_file"]).is_file()
    docs = argument_docs("real_panda")
    assert set(docs) == set(graph.arguments) and "dry_run" in docs and docs["dry_run"]
    replay = load_graph("replay")
    rp = {n.name: replay.resolved_parameters(n, {"bag": "/data/bag"}) for n in replay.nodes}
    assert rp["bag_player"]["bag"] == "/data/bag" and rp["perception"]["output_topic"] == scene


@pytest.mark.parametrize("path", sorted((config_dir().parent / "launch").glob("*.launch.py")), ids=lambda p: p.name)
def test_every_launch_file_builds_one_of_the_graphs(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "graph_launch_description"
    ]
    assert len(calls) == 1
    name = ast.literal_eval(calls[0].args[0])
    assert name in GRAPHS and path.name == f"{name}.launch.py"


def test_launch_files_run_where_launch_is_installed() -> None:
    if importlib.util.find_spec("launch") is None or importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch / launch_ros are not on PyPI: the launch files run on full ROS 2 installs only")
    for path in sorted((config_dir().parent / "launch").glob("*.launch.py")):
        spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        graph = load_graph(path.name.removesuffix(".launch.py"))
        nodes = [e for e in description.entities if type(e).__name__ == "Node"]
        assert len(nodes) == len(graph.nodes)


def test_bringup_print_shows_the_resolved_graph_and_refuses_unknown_arguments() -> None:
    r = subprocess.run([sys.executable, "-m", "llm_trainer.cli", "bringup", "real_panda", "--print", "--arg",
                        "robot_ip=172.16.0.2", "--arg", "speed_scale=0.2"], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "robot_ip: 172.16.0.2 (given)" in r.stdout and "speed_scale: 0.2" in r.stdout
    for node in load_graph("real_panda").nodes:
        assert f"  {node.name} ({node.executable}" in r.stdout
    r = subprocess.run([sys.executable, "-m", "llm_trainer.cli", "bringup", "real_panda", "--print", "--arg",
                        "robot=1"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip() == "llm-trainer: error: graph real_panda has no argument(s) robot"
    with pytest.raises(ConfigError):
        describe(load_graph("replay"), {"nope": 1})


def test_speed_scale_scales_every_limit_and_refuses_nonsense() -> None:
    from llm_trainer.execution.executor_config import ExecutorConfig, scaled_speeds

    base = ExecutorConfig()
    slow = scaled_speeds(base, 0.25)
    for key in ("velocity_scaling", "acceleration_scaling", "max_cartesian_speed", "max_yaw_speed"):
        assert getattr(slow.timing, key) == pytest.approx(0.25 * getattr(base.timing, key))
    slow.validate()
    for bad in (0, -0.5, 1.5, "fast"):
        with pytest.raises(ValueError, match="speed_scale"):
            scaled_speeds(base, bad)


def test_the_waypoint_picture_marks_each_waypoint_where_the_camera_sees_it() -> None:
    from llm_trainer.bringup.drive import waypoint_picture
    from llm_trainer.perception.debug import project
    from llm_trainer.perception.views import CameraView
    from llm_trainer.primitives import Primitive
    from llm_trainer.sensors.cameras import CameraModel

    k = np.array([[300.0, 0, 159.5], [0, 300.0, 119.5], [0, 0, 1]])
    down = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # looking straight down from 1 m
    view = CameraView(CameraModel("top", 320, 240, k, np.array([0.5, 0.0, 1.0]), down),
                      np.zeros((240, 320, 3), np.uint8), np.zeros((240, 320), np.float32))  # fmt: skip
    plan = [Primitive.move((0.5, 0.0, 0.1), 0.0), Primitive.close("b"), Primitive.move((0.6, 0.1, 0.1), 0.0)]
    image = waypoint_picture(view, plan)
    (u0, v0), (u1, v1) = project(view, np.array([p.position for p in plan if p.position]))
    assert (u0, v0) == pytest.approx((159.5, 119.5))
    assert tuple(image[round(v0), round(u0)]) == (0, 200, 255)  # open hand: cyan
    assert tuple(image[round(v1), round(u1)]) == (255, 80, 0)  # carrying: orange
    assert image.sum() > 0 and view.rgb.sum() == 0  # drawn on a copy


# ------------------------------------------------------------------ the daily loop over real DDS
@pytest.fixture(scope="module")
def sim_graph(tmp_path_factory):
    from llm_trainer.bringup.local import LocalGraph
    from llm_trainer.datagen.graph_client import GraphClient

    out = tmp_path_factory.mktemp("lab")
    spec = load_graph("sim")
    args = {"output_dir": str(out), "record_dir": str(out), "render_cameras": True, "camera_rate_hz": 2.0}
    with LocalGraph(spec, args, log_dir=out / "logs") as local:
        client = GraphClient(record=True, node_name="lab_test")
        try:
            client.wait_ready(timeout=120.0, alive_check=local.check_alive)
            yield client, local, out
        finally:
            client.close()


def _arm(client) -> np.ndarray:
    from sensor_msgs.msg import JointState

    from llm_trainer.bringup.drive import _first_message

    msg = _first_message(client.node, JointState, "/joint_states", 10.0)
    return np.array(msg.position[:7])


@pytest.mark.ros
def test_the_task_loop_checks_plans_confirms_executes_records_and_stops(sim_graph, tmp_path) -> None:
    from llm_trainer.bringup.drive import Refused, TaskOptions, run_task
    from llm_trainer.datagen.graph_client import GraphError

    client, _local, out = sim_graph
    lines: list[str] = []
    # A camera nobody publishes: refused before anything is planned, naming it.
    with pytest.raises(Refused, match=r"missing camera top \(no /cameras/top/color/camera_info\)"):
        run_task(client, TaskOptions(reset="put_block:4", cameras=["front", "top"], timeout=4.0), log=lines.append)
    # Dry run: plan shown and drawn, the executor checks it, nothing moves.
    before = _arm(client)
    picture = tmp_path / "plan.png"
    summary = run_task(client, TaskOptions(reset="put_block:4", cameras=["front"], dry_run=True, picture=picture),
                       log=lines.append)  # fmt: skip
    assert summary["executor_ok"] and summary["executed"] is False and summary["planned"]
    assert np.abs(_arm(client) - before).max() < 1e-3
    assert picture.stat().st_size > 1000 and any("move_gripper" in line for line in lines)
    assert any("| red_block |" in line or "_block |" in line for line in lines)  # the scene table
    # Not confirmed: nothing runs.
    summary = run_task(client, TaskOptions(reset="put_block:4", cameras=["front"]), ask=lambda _q: "n",
                       log=lines.append)  # fmt: skip
    assert summary["refused"] == "not confirmed" and np.abs(_arm(client) - before).max() < 1e-3
    # Confirmed: executed, checked by the simulator, recorded.
    summary = run_task(client, TaskOptions(reset="put_block:4", cameras=["front"]), ask=lambda _q: "y",
                       log=lines.append)  # fmt: skip
    assert summary["executor_ok"] and summary["task_success"] is True, summary
    assert (out / "bags" / summary["episode_id"]).is_dir()
    # Stop: goals are refused until resume.
    assert client.stop().startswith("stopped:")
    with pytest.raises(GraphError, match="rejected the goal"):
        run_task(client, TaskOptions(reset="put_block:5", cameras=[], yes=True, record=False), log=lines.append)
    assert client.resume().startswith("resumed")
    summary = run_task(client, TaskOptions(reset="put_block:5", cameras=[], dry_run=True), log=lines.append)
    assert summary["executor_ok"]


@pytest.mark.ros
def test_an_executor_started_with_dry_run_never_moves(tmp_path) -> None:

    from llm_trainer.bringup.drive import TaskOptions, run_task
    from llm_trainer.bringup.local import LocalGraph
    from llm_trainer.datagen.graph_client import GraphClient

    spec = load_graph("sim")
    spec.nodes = [n for n in spec.nodes if n.executable != "recorder_node"]
    executor = next(n for n in spec.nodes if n.name == "executor")
    executor.parameters.update(dry_run=True, speed_scale=0.5)
    domain = domain_beside(int(os.environ["ROS_DOMAIN_ID"]), 40)
    with LocalGraph(spec, {"output_dir": str(tmp_path), "render_cameras": False}, log_dir=tmp_path / "logs",
                    domain_id=domain) as local:  # fmt: skip
        client = GraphClient(domain_id=domain, record=False, node_name="dry_run_test")
        try:
            client.wait_ready(timeout=120.0, alive_check=local.check_alive)
            before = _arm(client)
            summary = run_task(client, TaskOptions(reset="put_block:4", cameras=[], yes=True, record=False),
                               log=lambda _l: None)  # fmt: skip
            assert summary["executor_ok"] and "dry run only" in summary["message"]
            assert summary["task_success"] is False  # the simulator's check: the block never moved
            assert np.abs(_arm(client) - before).max() < 1e-3
        finally:
            client.close()
    log = (tmp_path / "logs" / "executor.log").read_text()
    assert "DRY RUN" in log and "speed scale 0.5" in log
    assert json.dumps(summary)


@pytest.mark.ros
def test_the_replay_graph_plays_a_bag_into_perception(tmp_path) -> None:
    """The replay graph as launched: bag_player publishes the bag's camera streams, perception answers with
    the scene, every queried object found; with one camera left out of playback, the others' objects."""
    import threading

    from llm_trainer.bringup.local import LocalGraph
    from llm_trainer.datagen.graph_client import GraphClient
    from llm_trainer.perception.scene_bag import record_scene_bag
    from llm_trainer.recording.bag_reader import read_episode_metadata
    from llm_trainer.ros.qos import SCENE_QOS
    from llm_trainer_interfaces.msg import SceneState as SceneStateMsg

    bag = record_scene_bag("put_block", 3, tmp_path / "put_block_3", seconds=0.6)
    queries = read_episode_metadata(bag)["perception"]["queries"]
    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps(queries))
    for cameras in ("", "left,right"):
        domain = domain_beside(int(os.environ["ROS_DOMAIN_ID"]), 45)
        # Looping: a pass sent before perception's readers saw the player is lost; a later one is not.
        args = {"bag": str(bag), "rate": 1.0, "loop": True, "objects_file": str(objects), "cameras": cameras,
                "perception_cameras": cameras or "front,left,right"}  # fmt: skip
        logs = tmp_path / f"logs{cameras or 'all'}"
        client = GraphClient(domain_id=domain, record=False, node_name="replay_test")
        scenes: list = []
        done = threading.Event()

        def on_scene(msg, scenes=scenes, done=done, everything=not cameras) -> None:
            scenes.append(msg)
            if len(msg.objects) == len(queries) or not everything:
                done.set()

        # Perception answers each stamp once (the first pass of the loop), maybe before this reader has
        # matched its publisher: the scene topic is latched (SCENE_QOS), so a late reader still gets it.
        client.node.create_subscription(SceneStateMsg, "/scene/objects", on_scene, SCENE_QOS)
        try:
            with LocalGraph(load_graph("replay"), args, log_dir=logs, domain_id=domain) as local:
                for _ in range(60):
                    local.check_alive()
                    if done.wait(1.0):
                        break
                assert done.is_set(), ([len(m.objects) for m in scenes], (logs / "perception.log").read_text()[-1500:])
                names = {o.name for o in scenes[-1].objects}
                if not cameras:
                    assert names == {q["name"] for q in queries}
                else:  # a camera short: what the others see, never an invented object
                    assert names and names <= {q["name"] for q in queries}
        finally:
            client.close()
        assert "playing" in (logs / "bag_player.log").read_text()
