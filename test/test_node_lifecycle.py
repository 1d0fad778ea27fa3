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
