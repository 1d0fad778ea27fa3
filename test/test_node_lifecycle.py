"""Nodes stop when asked: SIGINT and SIGTERM end a spinning node, a node still starting, and a
node whose clean-up hangs (bounded by the watchdog), each with a known exit code.

Launch files and ``llm-trainer bringup`` rely on this; a node that ignores SIGTERM keeps its
services advertised with nobody serving them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llm_trainer.ros.domains import domain_beside

pytestmark = pytest.mark.ros


def _start(ros_env: dict[str, str], script: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=ros_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill_if_running(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _wait_for_line(proc: subprocess.Popen, marker: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if marker in line:
            return
        if not line and proc.poll() is not None:
            pytest.fail(f"process exited with {proc.returncode} before printing {marker!r}")
    pytest.fail(f"no {marker!r} within {timeout} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_planner_node_stops_on_signal_after_serving(tmp_path: Path, ros_context, ros_env, sig) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from llm_trainer.ros.conversions import scene_to_msg
    from llm_trainer.scene import ObjectState, SceneState
    from llm_trainer_interfaces.srv import PlanTask

    config = tmp_path / "planner.yaml"
    config.write_text("planner:\n  backend: oracle\n")
    name = f"planner_stop_{sig.name.lower()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_trainer.nodes.planner_node", "--ros-args", "-r", f"__node:={name}"]
        + ["-p", f"config_file:={config}"],
        env=ros_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = rclpy.create_node("stop_client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        client = node.create_client(PlanTask, f"/{name}/plan")
        assert client.wait_for_service(timeout_sec=30.0), "planner service did not come up"
        scene = SceneState(objects=[ObjectState("red_block", (0.5, 0.0, 0.025), 0.0, (0.05, 0.05, 0.05))])
        future = client.call_async(PlanTask.Request(instruction="pick up the red block", scene=scene_to_msg(scene)))
        executor.spin_until_future_complete(future, timeout_sec=30.0)
        assert future.done()
        proc.send_signal(sig)
        start = time.monotonic()
        # One spin slice (0.1 s) plus clean-up; generous for a loaded 2-core CI machine.
        assert proc.wait(timeout=10.0) == 0
        assert time.monotonic() - start < 10.0
    finally:
        executor.shutdown()
        node.destroy_node()
        _kill_if_running(proc)


def test_signal_while_the_node_is_still_being_built_ends_the_process(ros_env) -> None:
    """A planner loading a 70B model must still obey Ctrl-C: the build is interrupted."""
    proc = _start(
        ros_env,
        """
        import time
        from llm_trainer.ros.node_runner import run_node

        def slow_factory():
            print("building", flush=True)
            time.sleep(120)

        raise SystemExit(run_node(slow_factory, name="slow_node"))
        """,
    )
    try:
        _wait_for_line(proc, "building")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10.0) == 0
    finally:
        _kill_if_running(proc)


def test_hung_clean_up_is_cut_off_by_the_watchdog(ros_env) -> None:
    proc = _start(
        ros_env,
        """
        import time
        from rclpy.node import Node
        from llm_trainer.ros.node_runner import run_node

        class StuckOnExit(Node):
            def __init__(self):
                super().__init__("stuck_on_exit")
                self._ready = self.create_timer(0.05, self._say_ready)

            def _say_ready(self):
                self._ready.cancel()
                print("ready", flush=True)

            def destroy_node(self):
                time.sleep(120)  # e.g. a hardware driver that never acknowledges the stop

        raise SystemExit(run_node(StuckOnExit, name="stuck", cleanup_timeout_s=2.0))
        """,
    )
    try:
        _wait_for_line(proc, "ready")
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15.0) == 3
        assert 1.5 < time.monotonic() - start < 15.0
        assert "clean-up did not finish within 2 s" in proc.stdout.read()
    finally:
        _kill_if_running(proc)


def test_a_traced_node_writes_an_allocation_snapshot_on_sigusr1(ros_env, tmp_path: Path) -> None:
    """The soak's leak hunt: with LLM_TRAINER_TRACEMALLOC_DIR set, each SIGUSR1 leaves a whole snapshot
    that holds the node's own allocations (here a list that grows on a timer), and the node keeps running."""
    import tracemalloc

    from llm_trainer.ros.node_runner import TRACEMALLOC_ENV

    env = dict(ros_env, **{TRACEMALLOC_ENV: str(tmp_path)})
    proc = _start(
        env,
        """
        from rclpy.node import Node
        from llm_trainer.ros.node_runner import run_node

        class Hoarder(Node):
            def __init__(self):
                super().__init__("hoarder")
                self.kept = []
                self.create_timer(0.01, self._grow)
                print("ready", flush=True)

            def _grow(self):
                self.kept.append(bytearray(10_000))

        raise SystemExit(run_node(Hoarder, name="hoarder"))
        """,
    )
    try:
        _wait_for_line(proc, "ready")
        time.sleep(0.5)
        for _ in range(2):
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
        deadline = time.monotonic() + 20
        while len(list(tmp_path.glob("hoarder-*.tracemalloc"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        snaps = sorted(tmp_path.glob("hoarder-*.tracemalloc"))
        assert len(snaps) == 2 and not list(tmp_path.glob("*.part"))
        assert proc.poll() is None  # still running
        first, last = (tracemalloc.Snapshot.load(str(p)) for p in snaps)
        top = last.compare_to(first, "lineno")[0]
        # about 1 MB a second from the node's own code (the script given to python -c)
        assert top.size_diff > 500_000 and top.traceback[0].filename == "<string>", top
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15.0) == 0
    finally:
        _kill_if_running(proc)


def test_startup_error_is_one_line_and_exit_code_2(ros_env) -> None:
    proc = _start(
        ros_env,
        """
        from llm_trainer.ros.node_runner import run_node

        def bad_factory():
            raise ValueError("config/planner.yaml: planner.backend must be one of oracle, replay")

        raise SystemExit(run_node(bad_factory, name="planner_node", startup_errors=(ValueError,)))
        """,
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert out.strip() == "planner_node: config/planner.yaml: planner.backend must be one of oracle, replay"


@pytest.mark.slow
def test_sim_executor_and_recorder_stop_on_signals_and_the_recorder_closes_its_episode(tmp_path: Path, ros_env) -> None:
    import json
    import os

    from llm_trainer.bringup.graph import load_graph
    from llm_trainer.bringup.local import LocalGraph
    from llm_trainer.datagen.graph_client import GraphClient
    from llm_trainer.recording import read_episode_bag, read_episode_metadata

    spec = load_graph("sim")
    spec.nodes = [n for n in spec.nodes if n.executable != "planner_node"]
    domain = domain_beside(int(ros_env["ROS_DOMAIN_ID"]), 70)
    args = {"output_dir": str(tmp_path), "record_dir": str(tmp_path), "render_cameras": False}
    with LocalGraph(spec, args, log_dir=tmp_path / "logs", domain_id=domain) as local:
        client = GraphClient(domain_id=domain, alive_check=local.check_alive)
        try:
            deadline = time.monotonic() + 90
            while not (client._reset.service_is_ready() and client._episode.service_is_ready()):
                assert time.monotonic() < deadline, "the graph did not come up"
                local.check_alive()
                time.sleep(0.1)
            time.sleep(0.5)
            client.reset("put_block", 0)
            client.start_episode("episode_000000", {"note": "interrupted on purpose"})
            # wait for an event, not a duration: >10 joint states flushed to the bag (it flushes each second)
            from llm_trainer.recording.recovery import recover_mcap_messages

            mcap = tmp_path / "bags" / "episode_000000" / "episode_000000.mcap"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                topics, messages = recover_mcap_messages(mcap) if mcap.exists() else ([], [])
                js = [i for i, (t, _) in enumerate(topics) if t == "/joint_states"]
                if js and sum(1 for m in messages if m[0] == js[0]) > 10:
                    break
                time.sleep(0.1)
        finally:
            client.close()
        signals = {"recorder": signal.SIGTERM, "sim": signal.SIGINT, "executor": signal.SIGTERM}
        for name, sig in signals.items():
            local.processes[name].send_signal(sig)
        for name in signals:
            assert local.processes[name].wait(timeout=20) == 0, f"{name} did not exit 0 on {signals[name].name}"
    assert local.escalated == {}
    bag = tmp_path / "bags" / "episode_000000"
    meta = read_episode_metadata(bag)
    assert meta["status"] == "interrupted" and meta["note"] == "interrupted on purpose"
    assert (bag / "metadata.yaml").exists()  # closed properly: the bag has its index
    assert len(read_episode_bag(bag, ["/joint_states"])["/joint_states"]) > 10
    assert "closed episode episode_000000 as interrupted" in (tmp_path / "logs" / "recorder.log").read_text()
    assert json.loads(json.dumps(meta))  # the metadata is complete JSON
    assert os.path.getsize(next(bag.glob("*.mcap"))) > 0


def test_local_graph_reports_a_node_that_needed_sigkill(tmp_path: Path, monkeypatch) -> None:
    from llm_trainer.bringup import graph as graph_module
    from llm_trainer.bringup.graph import GraphSpec, NodeSpec
    from llm_trainer.bringup.local import LocalGraph

    (tmp_path / "stubborn_node_for_test.py").write_text(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "while True:\n    time.sleep(0.1)\n"
    )
    monkeypatch.setitem(graph_module.EXECUTABLES, "stubborn_node", "stubborn_node_for_test")
    spec = GraphSpec("stubborn", nodes=[NodeSpec("stubborn", "stubborn_node")])
    local = LocalGraph(spec, log_dir=tmp_path / "logs", extra_env={"PYTHONPATH": str(tmp_path)}).start()
    deadline = time.monotonic() + 30
    while "ready" not in (tmp_path / "logs" / "stubborn.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    escalated = local.stop(timeout=0.5)
    assert escalated == {"stubborn": "SIGKILL"} and local.processes["stubborn"].returncode == -signal.SIGKILL
    assert "ended with SIGKILL" in (tmp_path / "logs" / "stubborn.log").read_text()
