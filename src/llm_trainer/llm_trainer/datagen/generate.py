"""``llm-trainer generate``: verified demonstrations through the real node graph.

For each episode: reset the simulator (seeded) -> start recording -> plan (service) -> execute
(action) -> verify (the simulator's success predicate) -> stop recording with the verdict. Every
episode ends as one ``EpisodeRecord`` (``llm_trainer.episodes``) in ``episodes.jsonl`` and in its
bag's ``metadata.json``; failures are kept with their typed outcome, never dropped. An attempt lost
to the graph itself (a node died, no answer) is set aside and the episode tried again on a fresh
graph, so ``--episodes N`` gives N real verdicts. At the end the bags are exported to a robomimic
``dataset.hdf5`` (``llm-trainer export`` does the other formats, and this one again, from the bags).
Episodes parallelise over workers: each worker
starts its own node graph on its own ROS domain, so graphs never see each other's topics.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_trainer.bringup.graph import load_graph
from llm_trainer.bringup.local import LocalGraph
from llm_trainer.datagen.graph_client import GraphClient, GraphError
from llm_trainer.datagen.run_store import MAX_BASE_SEED, SEED_SCHEME, SPLITS, TEST_SEED_OFFSET, RunStore, slots
from llm_trainer.episodes import (
    EpisodeRecord,
    ExecutionRecord,
    Outcome,
    OutcomeKind,
    PlanningRecord,
    classify,
    provenance,
)
from llm_trainer.execution.errors import ErrorCode
from llm_trainer.execution.executor import ExecutionResult
from llm_trainer.planning.registry import BACKENDS
from llm_trainer.primitives import plan_to_dicts
from llm_trainer.ros.conversions import primitive_from_msg, scene_from_msg, seconds_from_stamp, status_from_msg
from llm_trainer.ros.domains import random_domain
from llm_trainer.tasks.registry import get_task, task_names


@dataclass
class GenerateOptions:
    task: str = ""  # one task (or use ``tasks``)
    episodes: int = 1  # per task
    planner: str = "oracle"
    out: Path = Path("runs/latest")
    seed: int = 0
    workers: int = 1
    render_cameras: bool = True
    camera_rate_hz: float = 5.0
    graph: str = "sim"
    record: bool = True
    base_domain_id: int | None = None
    tasks: list[str] = field(default_factory=list)  # several tasks, or ["all"]
    split: str = "train"  # train | test: disjoint seeds (run_store.seed_for)
    force: bool = False  # continue a run whose configuration changed
    progress: bool = False  # live bars per task (tqdm, on stderr)
    runner: str = "graph"  # graph (the node graph over DDS) | inprocess (the same core code, no DDS)
    ray_address: str | None = None  # local | auto | HOST:PORT: the episodes run as Ray tasks (inprocess runner)
    concurrency: int = 1  # planning requests in flight (inprocess runner; for server backends)
    # Dotted keys over config/planner.yaml (``{"transformers.adapter": "runs/sft"}``): the
    # planners ``llm-trainer evaluate`` compares differ only here (inprocess runner).
    planner_overrides: dict[str, Any] = field(default_factory=dict)
    # Where a server planner (openai backend) listens for this run; not part of what a resumed run must
    # match, since a server started for the run (``evaluate``) gets a free port each time.
    planner_base_url: str = ""
    state: str = "ground_truth"  # the scene the planner sees: ground_truth | perception (inprocess runner)

    def task_list(self) -> list[str]:
        names = list(self.tasks) or ([self.task] if self.task else [])
        if names == ["all"]:
            return task_names()
        return names

    def validate(self) -> None:
        names = self.task_list()
        if not names:
            raise ValueError("give --task or --tasks")
        if len(set(names)) != len(names):
            raise ValueError(f"--tasks names a task twice: {names}")
        for name in names:
            get_task(name)  # raises KeyError naming the known tasks
        if self.planner not in BACKENDS:
            raise ValueError(f"unknown planner backend {self.planner!r} (available: {', '.join(BACKENDS)})")
        if self.episodes < 1:
            raise ValueError("--episodes must be at least 1")
        if self.episodes >= TEST_SEED_OFFSET:
            raise ValueError(f"--episodes must be below {TEST_SEED_OFFSET} (test seeds start there)")
        if self.split not in SPLITS:
            raise ValueError(f"--split must be one of {', '.join(SPLITS)}")
        if not 0 <= self.seed <= MAX_BASE_SEED:
            raise ValueError(f"--seed must be within [0, {MAX_BASE_SEED}] (each task owns a block of seeds)")
        if not 1 <= self.workers <= 16:
            raise ValueError("--workers must be within [1, 16]")
        if self.base_domain_id is not None and not 0 <= self.base_domain_id <= 232 - self.workers:
            raise ValueError(f"--domain-id must be within [0, {232 - self.workers}] for {self.workers} worker(s)")
        if self.camera_rate_hz <= 0:
            raise ValueError("--camera-rate must be positive")
        if self.runner not in RUNNERS:
            raise ValueError(f"--runner must be one of {', '.join(RUNNERS)}")
        if self.runner == "inprocess" and self.workers != 1 and not self.ray_address:
            raise ValueError(
                "--runner inprocess runs in this one process: use --workers 1, --ray-address, or --runner graph"
            )
        if not 1 <= self.concurrency <= 64:
            raise ValueError("--concurrency must be within [1, 64]")
        if self.concurrency > 1 and self.runner != "inprocess":
            raise ValueError("--concurrency plans ahead in the in-process runner: add --runner inprocess")
        if self.concurrency > 1 and self.planner == "transformers":
            raise ValueError("--concurrency needs a planner that serves requests in parallel (openai, replay, oracle)")
        if self.ray_address and self.runner != "inprocess":
            raise ValueError("--ray-address runs episodes with the in-process runner: add --runner inprocess")
        if self.state not in ("ground_truth", "perception"):
            raise ValueError(f"--state must be ground_truth or perception, got {self.state!r}")
        if self.state == "perception" and (self.runner != "inprocess" or self.concurrency > 1 or self.ray_address):
            raise ValueError("--state perception runs with --runner inprocess, --concurrency 1 and no Ray (for now)")
        if self.planner_overrides:
            if self.runner != "inprocess":
                raise ValueError("planner overrides apply to the in-process runner: add --runner inprocess")
            from llm_trainer.config import with_overrides
            from llm_trainer.planning.registry import load_planner_config

            with_overrides(load_planner_config(), self.planner_overrides, "planner")  # names a bad key

    def resume_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"planner_overrides": dict(self.planner_overrides)} if self.planner_overrides else {}
        if self.state != "ground_truth":
            config["state"] = self.state
        return {
            **config,
            "tasks": self.task_list(),
            "episodes": self.episodes,
            "seed": self.seed,
            "seeds": SEED_SCHEME,
            "split": self.split,
            "planner": self.planner,
            "graph": self.graph,
            "render_cameras": self.render_cameras,
            "camera_rate_hz": self.camera_rate_hz,
            "record": self.record,
        }


RUNNERS = ("graph", "inprocess")

#: A worker restarts its node graph at most this many times before it gives up.
MAX_GRAPH_RESTARTS = 3
#: An episode lost to an infrastructure fault is tried again on a fresh graph, this many tries in all.
MAX_EPISODE_ATTEMPTS = 2


def run_graph_episode(
    client: GraphClient,
    task: str,
    seed: int,
    episode_id: str,
    planner: str,
    *,
    index: int = 0,
    worker: int = 0,
    attempt: int = 1,
) -> EpisodeRecord:
    """One episode through the graph. A graph failure is an ``infrastructure`` outcome with the reason.

    A service or action that never answers (a lost DDS response) or a node that dies fails this
    episode's attempt, marked and with the reason, instead of the whole run; the caller restarts
    the graph and tries the episode again.
    """
    t0 = time.perf_counter()
    record = EpisodeRecord(
        episode_id, task, seed, index=index, provenance=provenance("graph", worker=worker, attempt=attempt)
    )
    recording: dict[str, bool] = {"started": False}
    try:
        _run_graph_episode(client, planner, record, recording)
    except GraphError as exc:
        record.success = False
        record.outcome = Outcome(OutcomeKind.INFRASTRUCTURE, str(exc))
        if recording["started"]:
            # Close the bag with the reason while the recorder still answers; if it does not, the
            # generator marks the partial bag after the graph has stopped.
            try:
                stopped = client.stop_episode(episode_id, {"record": record.to_dict()}, False, timeout=10.0)
                record.bag = stopped.bag_path
            except GraphError:
                pass
    record.timing["wall"] = time.perf_counter() - t0
    return record


def _execution_record(result) -> ExecutionRecord:
    return ExecutionRecord.from_result(
        ExecutionResult(
            bool(result.success),
            ErrorCode(int(result.error_code)),
            int(result.failed_index),
            result.message,
            [status_from_msg(s) for s in result.statuses],
        )
    )


def _run_graph_episode(client: GraphClient, planner: str, record: EpisodeRecord, recording: dict[str, bool]) -> None:
    t0 = time.perf_counter()
    reset = client.reset(record.task, record.seed)
    record.instruction = reset.instruction
    record.goal = json.loads(reset.goal_json or "{}")
    record.scene = scene_from_msg(reset.scene).to_dict()
    t1 = time.perf_counter()
    if client.record:
        client.start_episode(record.episode_id, {"record": record.to_dict()})
        recording["started"] = True
    plan = client.plan(
        reset.instruction,
        reset.scene,
        record.task,
        record.goal,
        backend=planner,
        episode_id=record.episode_id,
        seed=record.seed,
    )
    if plan.planning_json:
        record.planning = PlanningRecord.from_dict(json.loads(plan.planning_json))
    else:  # a planner node that predates planning_json
        record.planning = PlanningRecord(
            plan.backend, plan.success, plan.message, plan.prompt, raw_answer=plan.raw_answer,
            plan=plan_to_dicts([primitive_from_msg(p) for p in plan.plan]), planning_time=plan.planning_time,
        )  # fmt: skip
    t2 = time.perf_counter()
    if plan.success:
        record.execution = _execution_record(client.execute(plan.plan, scene=reset.scene))
    t3 = time.perf_counter()
    check = client.check_success()
    record.success_report = json.loads(check.details_json or "{}")
    record.final_scene = scene_from_msg(check.scene).to_dict()
    record.outcome = classify(record.planning, record.execution, check.success)
    record.success = record.outcome.success
    verdict_stamp = seconds_from_stamp(check.scene.header.stamp)
    t4 = time.perf_counter()
    record.timing.update(
        reset=t1 - t0,
        plan=t2 - t1,
        execute=t3 - t2,
        check=t4 - t3,
        sim_time=verdict_stamp - seconds_from_stamp(reset.scene.header.stamp),  # sim time runs on across resets
    )
    if client.record:
        # The recorder keeps recording until it has seen /joint_states up to the verdict's time, so the
        # bag ends where the check ended (messages are still in flight when STOP arrives).
        # ... and every primitive event the executor sent (a start and an end per primitive that ran).
        # (A plan refused before any motion sent none; one that failed mid-way also ended its last primitive.)
        statuses = record.execution.statuses if record.execution else []
        ran = sum(s["status"] == "done" for s in statuses)
        if record.outcome.kind == OutcomeKind.EXECUTION_FAILED:
            ran += sum(s["status"] == "failed" for s in statuses)
        stop_meta = {"record": record.to_dict(), "record_until": verdict_stamp}
        if ran:
            stop_meta["record_counts"] = {"/executor/primitive_events": 2 * ran}
        stopped = client.stop_episode(record.episode_id, stop_meta, record.success)
        recording["started"] = False
        record.bag = stopped.bag_path


def _worker_dir(out: Path, workers: int, k: int) -> Path:
    """Where worker ``k`` keeps its planner log (bags of every worker go to ``out/bags``)."""
    return out if workers == 1 else out / "workers" / f"worker_{k}"


def generate(options: GenerateOptions, log=print) -> dict[str, Any]:
    """Generate (or continue generating) every slot of the run; returns the summary."""
    options.validate()
    out = Path(options.out).resolve()
    store = RunStore(out, options.resume_config())
    done = store.open(force=options.force)
    if options.record:
        for moved in store.set_aside_orphans(done):
            log(f"set aside {moved.name}: the previous run stopped during that episode")
    tasks = options.task_list()
    all_slots = slots(tasks, options.episodes, options.seed, options.split)
    todo = [slot for slot in all_slots if slot.episode_id not in done]
    if done:
        log(f"continuing {out}: {len(all_slots) - len(todo)} of {len(all_slots)} episodes already done")
    base_domain = options.base_domain_id
    if base_domain is None:
        # Each run starts private graphs: a random domain keeps two runs (or someone's other nodes on
        # the default domain 0) from answering each other's services. --domain-id pins it.
        base_domain = random_domain(options.workers)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    graph = load_graph(options.graph)
    if not options.record:
        graph.nodes = [n for n in graph.nodes if n.executable != "recorder_node"]
    shares = [todo[k :: options.workers] for k in range(options.workers)]
    records: list[EpisodeRecord] = list(done.values())
    errors: list[str] = []
    graph_failures: list[str] = []
    graphs: list[LocalGraph] = []  # every graph started, to report nodes that had to be killed
    lock = threading.Lock()
    t_start = time.perf_counter()
    startup: list[float] = []
    progress = TaskProgress(tasks, options.episodes, records) if options.progress else None
    say = progress.write if progress else log
    total = len(all_slots)

    def record_episode(rec: EpisodeRecord) -> None:
        if rec.bag and Path(rec.bag).is_relative_to(out):
            rec.bag = str(Path(rec.bag).relative_to(out))
        with lock:
            records.append(rec)
            store.append(rec)
            ok = sum(r.success for r in records)
            n_done = len(records)
            if progress:
                progress.update(rec)
        status = "ok  " if rec.success else "FAIL"
        say(
            f"[{n_done}/{total}] {status} {rec.episode_id} {rec.task} seed {rec.seed} "
            f"({rec.timing.get('wall', 0.0):.1f} s): {rec.instruction}"
            + ("" if rec.success else f" -- {rec.outcome.kind.value}: {rec.outcome.reason}")
            + f"  [{ok} verified so far]"
        )

    def worker(k: int) -> None:
        domain = base_domain + k
        arguments = {
            "output_dir": str(_worker_dir(out, options.workers, k)),
            "record_dir": str(out),
            "render_cameras": options.render_cameras,
            "camera_rate_hz": options.camera_rate_hz,
            "planner_backend": options.planner,
            # Nothing records: listeners want the latest state, not 50 Hz of simulated time (sim_node);
            # the executor then checks each motion against the scene sent as the previous goal ended.
            "stream_clock": "sim" if options.record else "wall",
            "scene_after_goal_timeout": 0.0 if options.record else 1.0,
        }
        pending = list(shares[k])
        tries: dict[str, int] = {}
        starts = 0
        while pending:
            starts += 1
            in_flight: EpisodeRecord | None = None
            try:
                with LocalGraph(graph, arguments, log_dir=out / "logs" / f"worker_{k}", domain_id=domain) as local:
                    client = GraphClient(
                        domain_id=domain,
                        record=options.record,
                        node_name=f"llm_trainer_generator_{k}",
                        alive_check=local.check_alive,
                    )
                    try:
                        client.wait_ready()
                        if starts == 1:
                            with lock:
                                startup.append(time.perf_counter() - t_start)
                        while pending:
                            slot = pending[0]
                            tries[slot.episode_id] = tries.get(slot.episode_id, 0) + 1
                            rec = run_graph_episode(
                                client, slot.task, slot.seed, slot.episode_id, options.planner,
                                index=slot.index, worker=k, attempt=tries[slot.episode_id],
                            )  # fmt: skip
                            rec.split = options.split
                            if rec.infrastructure_failure:
                                in_flight = rec
                                say(f"worker {k}: {rec.episode_id} lost to the graph: {rec.outcome.reason}")
                                raise GraphError(f"{rec.episode_id}: {rec.outcome.reason}")
                            pending.pop(0)
                            record_episode(rec)
                    finally:
                        client.close()
                        graphs.append(local)
            except (GraphError, RuntimeError) as exc:
                # The graph has stopped (LocalGraph's exit): set the lost attempt aside, start the graph
                # afresh (a lost response can leave a node waiting for it) and try that episode again.
                with lock:
                    graph_failures.append(f"worker {k}: {exc}")
                if in_flight is not None and options.record:
                    attempt = in_flight.provenance.get("attempt", 1)
                    store.set_aside(in_flight.episode_id, "attempt", in_flight.outcome.reason,
                                    record=in_flight.to_dict(), start=attempt)  # fmt: skip
                if in_flight is not None and tries.get(in_flight.episode_id, 0) >= MAX_EPISODE_ATTEMPTS:
                    # The same episode broke the graph every time: keep it, failed, with the reason.
                    pending = [s for s in pending if s.episode_id != in_flight.episode_id]
                    record_episode(in_flight)
                if not pending:
                    return
                if starts > MAX_GRAPH_RESTARTS:
                    with lock:
                        errors.append(
                            f"worker {k}: gave up after {starts} graph starts ({len(pending)} episodes not run): {exc}"
                        )
                    return
                say(f"worker {k}: restarting its node graph after: {exc}")

    def inprocess_worker() -> None:
        from llm_trainer.datagen.inprocess import InProcessRunner

        runner = InProcessRunner(
            options.planner,
            render_cameras=options.render_cameras,
            camera_rate_hz=options.camera_rate_hz,
            record_dir=out if options.record else None,
            concurrency=options.concurrency,
            planner_overrides=options.planner_overrides,
            planner_base_url=options.planner_base_url,
            state=options.state,
        )
        with lock:
            startup.append(time.perf_counter() - t_start)
        try:
            for rec in runner.run_all(shares[0]):
                rec.split = options.split
                record_episode(rec)
        finally:
            runner.close()

    def ray_driver() -> None:
        from llm_trainer.datagen.ray_runner import run_on_ray

        for rec in run_on_ray(
            options, todo, out, log=say, started=lambda: startup.append(time.perf_counter() - t_start)
        ):
            rec.split = options.split
            record_episode(rec)

    if options.ray_address:
        threads = [threading.Thread(target=ray_driver, daemon=True)]
    else:
        target = inprocess_worker if options.runner == "inprocess" else worker
        threads = [
            threading.Thread(target=target, args=() if options.runner == "inprocess" else (k,), daemon=True)
            for k in range(options.workers)
        ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if progress:
        progress.close()
    wall = time.perf_counter() - t_start
    # Throughput counts from the moment the graphs were up: start-up is reported on its own.
    startup_s = max(startup) if startup else wall
    episode_wall = max(wall - startup_s, 1e-9)
    new_records = len(records) - len(done)
    dataset = out / "dataset.hdf5"
    if options.record and any(r.bag for r in records):
        from llm_trainer.datasets.export import ExportOptions, export_run

        try:
            export_run(ExportOptions(run_dir=out, format="robomimic", out=dataset, include_failures=True))
        except Exception as exc:  # noqa: BLE001 - the bags are the data; `llm-trainer export` can redo this
            errors.append(f"robomimic export failed (the bags are intact; rerun `llm-trainer export`): {exc}")
    order = {t: k for k, t in enumerate(tasks)}
    records.sort(key=lambda r: (order.get(r.task, len(order)), r.index))
    successes = sum(r.success for r in records)
    per_task = task_table(tasks, records)
    summary = {
        "task": tasks[0] if len(tasks) == 1 else None,
        "tasks": per_task,
        "split": options.split,
        "runner": options.runner,
        "ray_address": options.ray_address,
        "planner": options.planner,
        "episodes": len(records),
        "requested": total,
        "successes": successes,
        "success_rate": round(successes / len(records), 4) if records else 0.0,
        "failure_kinds": dict(Counter(r.outcome.kind.value for r in records if not r.success)),
        "resumed_with": len(done),
        "out": str(out),
        "dataset": str(dataset) if dataset.exists() else None,
        "bags": sum(1 for r in records if r.bag),
        "workers": options.workers,
        "ros_domain_ids": [base_domain + k for k in range(options.workers)],
        "wall_time_s": round(wall, 2),
        "startup_time_s": round(startup_s, 2),
        "episodes_per_minute": round(60 * new_records / episode_wall, 2),
        # each one lost an attempt (set aside under attempts/, then tried again) and restarted that worker's graph
        "graph_failures": graph_failures,
        # nodes that did not stop on SIGINT (their clean-up was cut short): node -> the signal that ended it
        "node_escalations": [{**g.escalated, "log_dir": str(g.log_dir)} for g in graphs if g.escalated],
        "errors": errors,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown_table(per_task) + "\n")
    return summary


def task_table(tasks: list[str], records: list[EpisodeRecord]) -> dict[str, dict[str, Any]]:
    """Per task: attempts, verified, rate, failure kinds, episodes per minute of one graph (from the
    episodes' own wall times, so tasks run side by side on several workers are not mixed up)."""
    table = {}
    for task in tasks:
        rs = [r for r in records if r.task == task]
        ok = sum(r.success for r in rs)
        wall_s = sum(r.timing.get("wall", 0.0) for r in rs)
        table[task] = {
            "attempts": len(rs),
            "verified": ok,
            "rate": round(ok / len(rs), 4) if rs else 0.0,
            "failure_kinds": dict(Counter(r.outcome.kind.value for r in rs if not r.success)),
            "episodes_per_minute": round(60 * len(rs) / wall_s, 2) if wall_s else None,
        }
    return table


def markdown_table(per_task: dict[str, dict[str, Any]]) -> str:
    lines = ["| task | attempts | verified | rate | failure kinds | episodes/min |", "|---|---|---|---|---|---|"]
    for task, row in per_task.items():
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(row["failure_kinds"].items())) or "-"
        epm = row["episodes_per_minute"] if row["episodes_per_minute"] is not None else "-"
        lines.append(f"| {task} | {row['attempts']} | {row['verified']} | {row['rate']:.0%} | {kinds} | {epm} |")
    return "\n".join(lines)


class TaskProgress:
    """One live tqdm bar per task: verified / attempts, success rate, ETA."""

    def __init__(self, tasks: list[str], episodes: int, done: list[EpisodeRecord]):
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bars = {}
        for k, task in enumerate(tasks):
            rs = [r for r in done if r.task == task]
            bar = tqdm(total=episodes, initial=len(rs), desc=task, position=k, leave=True, dynamic_ncols=True)
            self.bars[task] = (bar, [len(rs), sum(r.success for r in rs)])
            self._postfix(task)

    def _postfix(self, task: str) -> None:
        bar, (n, ok) = self.bars[task]
        bar.set_postfix_str(f"verified {ok}/{n} ({ok / n:.0%})" if n else "verified 0/0")

    def update(self, record: EpisodeRecord) -> None:
        bar, counts = self.bars[record.task]
        counts[0] += 1
        counts[1] += int(record.success)
        bar.update(1)
        self._postfix(record.task)

    def write(self, line: str) -> None:
        self._tqdm.write(line)

    def close(self) -> None:
        for bar, _ in self.bars.values():
            bar.close()
