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

import h5py
import pytest

from llm_trainer.episodes import EpisodeRecord, OutcomeKind
from llm_trainer.ros.domains import domain_beside

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
    domain = domain_beside(int(ros_env["ROS_DOMAIN_ID"]), 20)  # away from the session's own domain
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
    episodes = [EpisodeRecord.from_json(x) for x in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    assert sorted(e.index for e in episodes) == [0, 1, 2] and all(e.success for e in episodes)


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
    assert not record.success and record.planning is None
    assert record.outcome.kind == OutcomeKind.INFRASTRUCTURE and record.infrastructure_failure
    assert record.outcome.reason == "plan: no answer within 2 s"
    assert record.instruction.startswith("put the ")  # what happened before the failure is kept


def test_a_recorder_killed_mid_episode_loses_no_completed_episode(tmp_path: Path, ros_env, monkeypatch) -> None:
    """SIGKILL of the recorder while an episode records (cameras on, real signal): the generator
    notices within seconds, sets the partial bag aside marked incomplete (its flushed messages
    readable), tries the episode again on a fresh graph, and delivers N real verdicts."""
    import threading

    from llm_trainer.datagen.generate import GenerateOptions, generate
    from llm_trainer.recording import read_episode_bag, read_episode_metadata

    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR", "MUJOCO_GL"):
        monkeypatch.setenv(key, ros_env[key])
    domain = domain_beside(int(ros_env["ROS_DOMAIN_ID"]), 25)
    out = tmp_path / "run"
    killed: dict[str, float] = {}
    lines: list[tuple[float, str]] = []

    def killer() -> None:
        # Once episode 1's bag has a first chunk on disk (the recorder flushes every second; put_block
        # takes several), kill the recorder mid-episode: an event, not a guess at the timing.
        from llm_trainer.recording.recovery import recover_mcap_messages

        deadline = time.monotonic() + 240
        mcap = out / "bags" / "put_block_000001" / "put_block_000001.mcap"
        while time.monotonic() < deadline:
            if mcap.exists() and recover_mcap_messages(mcap)[1]:
                break
            time.sleep(0.05)
        pids = _node_pids("llm_trainer.nodes.recorder_node", domain)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed["at"] = time.monotonic()
        killed["pids"] = len(pids)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    options = GenerateOptions(task="put_block", episodes=3, out=out, base_domain_id=domain)
    summary = generate(options, log=lambda line: lines.append((time.monotonic(), line)))
    thread.join(timeout=5)
    assert killed.get("pids") == 1, "no recorder node found to kill"
    assert summary["episodes"] == 3 and summary["successes"] == 3, (summary, lines)
    assert len(summary["graph_failures"]) == 1 and "recorder" in summary["graph_failures"][0]
    noticed = [t for t, line in lines if "lost to the graph" in line and "recorder" in line]
    assert noticed and noticed[0] - killed["at"] < 3.0, "the dead recorder was not noticed within seconds"
    assert any("restarting its node graph" in line for _, line in lines)
    # every episode has one complete bag; the lost attempt is set aside, marked, and still readable
    for i in range(3):
        meta = read_episode_metadata(out / "bags" / f"put_block_00000{i}")
        assert meta["status"] == "complete" and meta["success"] is True
    partial = out / "attempts" / "put_block_000001.attempt1"
    meta = read_episode_metadata(partial)
    assert meta["status"] == "incomplete" and "recorder" in meta["incomplete_reason"]
    assert meta.get("recovered_messages", 0) > 0, (meta, lines)  # the bag was never closed: rebuilt
    assert len(read_episode_bag(partial, ["/joint_states"])["/joint_states"]) > 0
    records = [EpisodeRecord.from_json(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r.index for r in records) == [0, 1, 2]
    assert [r.provenance["attempt"] for r in sorted(records, key=lambda r: r.index)] == [1, 2, 1]
    with h5py.File(out / "dataset.hdf5", "r") as f:  # exported from the three complete bags only
        assert len(f["data"]) == 3


def test_a_generator_killed_with_sigkill_leaves_no_node_and_resumes_to_exactly_n(tmp_path: Path, ros_env) -> None:
    """SIGKILL of `llm-trainer generate` mid-run: its nodes follow it (no orphans); the same command on
    the same --out then continues: exactly N episodes per task, no duplicate and no missing seed."""
    import subprocess
    import sys

    domain = domain_beside(int(ros_env["ROS_DOMAIN_ID"]), 30)
    out = tmp_path / "run"
    exe = str(Path(sys.prefix) / "bin" / "llm-trainer")
    cmd = [exe, "generate", "--tasks", "put_block,stack_blocks", "--episodes", "2", "--no-cameras",
           "--out", str(out), "--domain-id", str(domain)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = out / "episodes.jsonl"
    deadline = time.monotonic() + 240
    while not (log.exists() and log.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    assert _node_pids("llm_trainer.nodes.sim_node", domain), "the graph is not running"
    proc.kill()  # SIGKILL: no clean-up in the generator at all
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        _node_pids(f"llm_trainer.nodes.{n}", domain)
        for n in ("sim_node", "planner_node", "executor_node", "recorder_node")
    ):
        time.sleep(0.2)
    left = {
        n: _node_pids(f"llm_trainer.nodes.{n}", domain)
        for n in ("sim_node", "planner_node", "executor_node", "recorder_node")
    }
    assert not any(left.values()), f"nodes outlived their generator: {left}"
    done_before = log.read_text().count("\n")
    assert 1 <= done_before < 4
    again = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["resumed_with"] == done_before and summary["episodes"] == 4 and summary["successes"] == 4
    records = [EpisodeRecord.from_json(x) for x in log.read_text().splitlines()]
    assert sorted((r.task, r.seed) for r in records) == [
        ("put_block", 0),
        ("put_block", 1),
        ("stack_blocks", 10_000_000),  # each task its own seeds
        ("stack_blocks", 10_000_001),
    ]
    assert len({r.episode_id for r in records}) == 4
    # the episode cut off by the kill (if its bag was open) is set aside, marked; bags/ has one bag per episode
    assert sorted(p.name for p in (out / "bags").iterdir()) == sorted(r.episode_id for r in records)
    for aside in (out / "attempts").iterdir() if (out / "attempts").exists() else []:
        from llm_trainer.recording import read_episode_metadata

        assert read_episode_metadata(aside)["status"] == "incomplete"
    # a changed configuration is refused with the difference named
    changed = subprocess.run([*cmd[:-2], "--domain-id", str(domain), "--split", "test"], env=ros_env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert changed.returncode == 2 and "split: 'train' -> 'test'" in changed.stderr, changed.stderr
