"""``llm-trainer generate``: verified demonstrations through the real node graph.

For each episode: reset the simulator (seeded) -> start recording -> plan (service) -> execute
(action) -> verify (the simulator's success predicate) -> stop recording with the verdict.
Failures are kept and marked, never dropped. Episodes parallelise over workers: each worker
starts its own node graph on its own ROS domain, so graphs never see each other's topics.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llm_trainer.bringup.graph import load_graph
from llm_trainer.bringup.local import LocalGraph
from llm_trainer.datagen.graph_client import GraphClient, GraphError
from llm_trainer.planning.registry import BACKENDS
from llm_trainer.primitives import plan_to_dicts
from llm_trainer.ros.conversions import primitive_from_msg, scene_from_msg, seconds_from_stamp
from llm_trainer.tasks.registry import get_task


@dataclass
class GenerateOptions:
    task: str
    episodes: int
    planner: str = "oracle"
    out: Path = Path("runs/latest")
    seed: int = 0
    workers: int = 1
    render_cameras: bool = True
    camera_rate_hz: float = 5.0
    graph: str = "sim"
    record: bool = True
    base_domain_id: int | None = None

    def validate(self) -> None:
        get_task(self.task)  # raises KeyError naming the known tasks
        if self.planner not in BACKENDS:
            raise ValueError(f"unknown planner backend {self.planner!r} (available: {', '.join(BACKENDS)})")
        if self.episodes < 1:
            raise ValueError("--episodes must be at least 1")
        if not 1 <= self.workers <= 16:
            raise ValueError("--workers must be within [1, 16]")
        if self.base_domain_id is not None and not 0 <= self.base_domain_id <= 232 - self.workers:
            raise ValueError(f"--domain-id must be within [0, {232 - self.workers}] for {self.workers} worker(s)")
        if self.camera_rate_hz <= 0:
            raise ValueError("--camera-rate must be positive")


@dataclass
class EpisodeRecord:
    index: int
    episode_id: str
    task: str
    seed: int
    instruction: str = ""
    success: bool = False
    plan_ok: bool = False
    execution_ok: bool = False
    message: str = ""
    bag_path: str = ""
    worker: int = 0
    wall_time: float = 0.0
    sim_time: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    graph_error: str = ""  # the graph itself failed during this episode (it was restarted after)


#: A worker restarts its node graph at most this many times before it gives up.
MAX_GRAPH_RESTARTS = 3


def run_graph_episode(client: GraphClient, task: str, seed: int, episode_id: str, planner: str) -> EpisodeRecord:
    """One episode through the graph; a graph failure is kept in the record (``graph_error``).

    A service or action that never answers (a lost DDS response, a node that died) fails this
    episode, marked and with the reason, instead of the whole run; the caller restarts the graph.
    """
    t0 = time.perf_counter()
    record = EpisodeRecord(0, episode_id, task, seed)
    recording: dict[str, bool] = {"started": False}
    try:
        _run_graph_episode(client, task, seed, episode_id, planner, record, recording)
    except GraphError as exc:
        record.success = False
        record.graph_error = str(exc)
        record.message = f"graph error: {exc}"
        if recording["started"]:
            # Close the bag with the reason while the recorder still answers; if it does not, the
            # graph's shutdown closes it as interrupted.
            try:
                stopped = client.stop_episode(episode_id, {"graph_error": str(exc)}, False, timeout=10.0)
                record.bag_path = stopped.bag_path
            except GraphError:
                pass
    record.wall_time = time.perf_counter() - t0
    return record


def _run_graph_episode(
    client: GraphClient,
    task: str,
    seed: int,
    episode_id: str,
    planner: str,
    record: EpisodeRecord,
    recording: dict[str, bool],
) -> None:
    reset = client.reset(task, seed)
    record.instruction = reset.instruction
    goal = json.loads(reset.goal_json or "{}")
    scene = scene_from_msg(reset.scene)
    metadata: dict[str, Any] = {
        "task": task,
        "seed": seed,
        "instruction": reset.instruction,
        "goal": goal,
        "scene": scene.to_dict(),
        "planner": planner,
    }
    if client.record:
        client.start_episode(episode_id, metadata)
        recording["started"] = True
    plan = client.plan(reset.instruction, reset.scene, task, goal, backend=planner)
    record.plan_ok = plan.success
    stop_meta: dict[str, Any] = {
        "plan": plan_to_dicts([primitive_from_msg(p) for p in plan.plan]),
        "plan_message": plan.message,
        "planning_time": plan.planning_time,
        "prompt": plan.prompt,
        "raw_answer": plan.raw_answer,
    }
    if plan.success:
        result = client.execute(plan.plan, scene=reset.scene)
        record.execution_ok = result.success
        record.message = result.message
        stop_meta["execution"] = {
            "success": result.success,
            "error_code": int(result.error_code),
            "failed_index": int(result.failed_index),
            "message": result.message,
        }
    else:
        record.message = f"plan rejected: {plan.message}"
        stop_meta["execution"] = {"success": False, "message": "not executed: the plan was rejected"}
    check = client.check_success()
    report = json.loads(check.details_json or "{}")
    record.success = bool(plan.success and record.execution_ok and check.success)
    record.details = report
    stop_meta["success_report"] = report
    stop_meta["final_scene"] = scene_from_msg(check.scene).to_dict()
    verdict_stamp = seconds_from_stamp(check.scene.header.stamp)
    record.sim_time = verdict_stamp - seconds_from_stamp(reset.scene.header.stamp)  # sim time runs on across resets
    # The recorder keeps recording until it has seen /joint_states up to the verdict's time, so the
    # bag ends where the check ended (messages are still in flight when STOP arrives).
    stop_meta["record_until"] = verdict_stamp
    if client.record:
        stopped = client.stop_episode(episode_id, stop_meta, record.success)
        recording["started"] = False
        record.bag_path = stopped.bag_path


def _worker_dirs(out: Path, workers: int, k: int) -> Path:
    return out if workers == 1 else out / "workers" / f"worker_{k}"


def generate(options: GenerateOptions, log=print) -> dict[str, Any]:
    options.validate()
    out = Path(options.out).resolve()
    previous = [
        p.name for p in (out / "episodes.jsonl", out / "dataset.hdf5", out / "bags", out / "workers") if p.exists()
    ]
    if previous:
        # Never mix two runs (or overwrite one): episode ids and demo numbers would collide.
        raise FileExistsError(f"{out} already holds a generation run ({', '.join(previous)}); choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    base_domain = options.base_domain_id
    if base_domain is None:
        # Each run starts private graphs: a random domain keeps two runs (or someone's other nodes on
        # the default domain 0) from answering each other's services. --domain-id pins it.
        base_domain = random.randint(1, 200 - options.workers)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    graph = load_graph(options.graph)
    if not options.record:
        graph.nodes = [n for n in graph.nodes if n.executable != "recorder_node"]
    indices = list(range(options.episodes))
    shares = [indices[k :: options.workers] for k in range(options.workers)]
    records: list[EpisodeRecord] = []
    errors: list[str] = []
    lock = threading.Lock()
    episodes_log = out / "episodes.jsonl"
    t_start = time.perf_counter()
    startup: list[float] = []

    graph_failures: list[str] = []

    def record_episode(rec: EpisodeRecord) -> None:
        with lock:
            records.append(rec)
            with open(episodes_log, "a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(rec)) + "\n")
            done = len(records)
            ok = sum(r.success for r in records)
        status = "ok  " if rec.success else "FAIL"
        log(
            f"[{done}/{options.episodes}] {status} {rec.episode_id} seed {rec.seed} "
            f"({rec.wall_time:.1f} s): {rec.instruction}"
            + ("" if rec.success else f" -- {rec.message or 'task check failed'}")
            + f"  [{ok} verified so far]"
        )

    def worker(k: int) -> None:
        wdir = _worker_dirs(out, options.workers, k)
        domain = base_domain + k
        arguments = {
            "output_dir": str(wdir),
            "render_cameras": options.render_cameras,
            "camera_rate_hz": options.camera_rate_hz,
            "planner_backend": options.planner,
        }
        pending = list(shares[k])
        attempts = 0
        while pending:
            attempts += 1
            try:
                with LocalGraph(graph, arguments, log_dir=out / "logs" / f"worker_{k}", domain_id=domain) as local:
                    client = GraphClient(
                        domain_id=domain, record=options.record, node_name=f"llm_trainer_generator_{k}"
                    )
                    try:
                        client.wait_ready(alive_check=local.check_alive)
                        if attempts == 1:
                            with lock:
                                startup.append(time.perf_counter() - t_start)
                        while pending:
                            local.check_alive()
                            i = pending.pop(0)
                            rec = run_graph_episode(
                                client, options.task, options.seed + i, f"episode_{i:06d}", options.planner
                            )
                            rec.index, rec.worker = i, k
                            record_episode(rec)
                            if rec.graph_error:
                                raise GraphError(f"{rec.episode_id}: {rec.graph_error}")
                    finally:
                        client.close()
            except (GraphError, RuntimeError) as exc:
                # Start the graph afresh (a lost response can leave a node waiting for it) and go
                # on with the next episode; give up on a graph that keeps failing.
                with lock:
                    graph_failures.append(f"worker {k}: {exc}")
                if not pending:
                    return
                if attempts > MAX_GRAPH_RESTARTS:
                    with lock:
                        errors.append(f"worker {k}: gave up after {attempts} graph starts: {exc}")
                    return
                log(f"worker {k}: restarting its node graph after: {exc}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(options.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    # Throughput counts from the moment the graphs were up: start-up is reported on its own.
    startup_s = max(startup) if startup else wall
    episode_wall = max(wall - startup_s, 1e-9)
    dataset = out / "dataset.hdf5"
    if options.workers > 1 and options.record:
        from llm_trainer.datasets.merge import merge_datasets

        parts = [_worker_dirs(out, options.workers, k) / "dataset.hdf5" for k in range(options.workers)]
        merge_datasets([p for p in parts if p.exists()], dataset)
    records.sort(key=lambda r: r.index)
    successes = sum(r.success for r in records)
    summary = {
        "task": options.task,
        "planner": options.planner,
        "episodes": len(records),
        "requested": options.episodes,
        "successes": successes,
        "success_rate": round(successes / len(records), 4) if records else 0.0,
        "out": str(out),
        "dataset": str(dataset) if options.record and dataset.exists() else None,
        "bags": sum(1 for r in records if r.bag_path),
        "workers": options.workers,
        "ros_domain_ids": [base_domain + k for k in range(options.workers)],
        "wall_time_s": round(wall, 2),
        "startup_time_s": round(startup_s, 2),
        "episodes_per_minute": round(60 * len(records) / episode_wall, 2),
        "graph_failures": graph_failures,  # each one failed its episode and restarted that worker's graph
        "errors": errors,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
