"""Generation survives its graph: a node that dies between episodes, or a service that never
answers within an episode, fails (at most) that episode, marked with the reason, and the run
goes on on a fresh graph. Real nodes over real DDS; the faults are real (SIGKILL, a missing server).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _node_pids(module: str, domain_id: int) -> list[int]:
    """PIDs of running ``python -m <module>`` processes on ``domain_id`` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if module.encode() in cmdline and f"ROS_DOMAIN_ID={domain_id}".encode() in environ:
            pids.append(int(entry.name))
    return pids


def test_a_node_killed_between_episodes_costs_a_graph_restart_not_the_run(tmp_path: Path, ros_env, monkeypatch):
    from llm_trainer.datagen.generate import GenerateOptions, generate

    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR", "MUJOCO_GL"):
        monkeypatch.setenv(key, ros_env[key])
    domain = int(ros_env["ROS_DOMAIN_ID"]) % 200 + 20  # away from the session's own domain
    killed: list[int] = []
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if not killed and line.startswith("[1/"):
            # Between episodes 1 and 2: the executor node dies (as a segfault would end it).
            killed.extend(_node_pids("llm_trainer.nodes.executor_node", domain))
            assert killed, "no executor node found on the run's domain"
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while any(Path(f"/proc/{pid}").exists() for pid in killed) and time.monotonic() < deadline:
                time.sleep(0.05)

    options = GenerateOptions(
        task="put_block", episodes=3, out=tmp_path / "run", render_cameras=False, record=False, base_domain_id=domain
    )
    summary = generate(options, log=log)
    assert killed
    assert summary["episodes"] == 3 and summary["successes"] == 3, lines
    assert summary["errors"] == []
    assert len(summary["graph_failures"]) == 1 and "executor" in summary["graph_failures"][0]
    assert any("restarting its node graph" in line for line in lines)
    episodes = [json.loads(x) for x in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    assert sorted(e["index"] for e in episodes) == [0, 1, 2] and all(e["graph_error"] == "" for e in episodes)


def test_a_service_that_never_answers_fails_the_episode_with_the_reason(tmp_path: Path, ros_env) -> None:
    from llm_trainer.bringup.graph import load_graph
    from llm_trainer.bringup.local import LocalGraph
    from llm_trainer.datagen.generate import run_graph_episode
    from llm_trainer.datagen.graph_client import GraphClient, GraphEndpoints

    spec = load_graph("sim")
    spec.nodes = [n for n in spec.nodes if n.executable == "sim_node"]  # no planner: nobody answers /plan
    domain = int(ros_env["ROS_DOMAIN_ID"])
    with LocalGraph(spec, {"render_cameras": False}, log_dir=tmp_path / "logs", domain_id=domain):
        client = GraphClient(domain_id=domain, record=False, endpoints=GraphEndpoints(plan="/nobody/plan"))
        client.plan_timeout = 2.0
        try:
            deadline = time.monotonic() + 60
            while not client._reset.service_is_ready() and time.monotonic() < deadline:
                time.sleep(0.1)
            record = run_graph_episode(client, "put_block", 0, "episode_000000", "oracle")
        finally:
            client.close()
    assert not record.success and not record.plan_ok
    assert record.graph_error == "plan: no answer within 2 s"
    assert record.message == "graph error: plan: no answer within 2 s"
    assert record.instruction.startswith("put the ")  # what happened before the failure is kept
