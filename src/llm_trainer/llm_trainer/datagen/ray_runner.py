"""Episodes as Ray tasks: the same in-process episode workers, spread over a Ray cluster.

Ray is the distributed engine (no scheduler of our own): each task runs a few slots with its own
``InProcessRunner`` (simulator, planner, executor, recorder) and returns their episode records; the
driver appends them to the run's resumable store as they arrive, so a run on Ray resumes like any
other. Bags are written by the tasks straight into ``<out>/bags``: on a cluster, ``--out`` must be a
path every node sees (a shared filesystem). ``--ray-address local`` starts a private local cluster
(``--workers`` CPUs); ``auto`` joins the cluster this machine belongs to (``ray start``); ``HOST:PORT``
a given head node.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from llm_trainer.episodes import EpisodeRecord

#: Slots per Ray task: large enough to amortise building the simulator and planner, small enough to spread.
SLOTS_PER_TASK = 3


def _run_slots(config: dict, slots: list[dict], out: str) -> list[dict]:
    from llm_trainer.datagen.inprocess import InProcessRunner

    runner = InProcessRunner(
        config["planner"],
        render_cameras=config["render_cameras"],
        camera_rate_hz=config["camera_rate_hz"],
        record_dir=Path(out) if config["record"] else None,
        planner_overrides=config.get("planner_overrides"),
        planner_base_url=config.get("planner_base_url", ""),
    )
    try:
        records = []
        for s in slots:
            record = runner.run(s["task"], s["seed"], s["episode_id"], s["index"])
            record.provenance["ray_node"] = os.uname().nodename
            records.append(record.to_dict())
        return records
    finally:
        runner.close()


def run_on_ray(
    options, slots, out: Path, *, log: Callable[[str], None], started: Callable[[], None]
) -> Iterator[EpisodeRecord]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray-address needs Ray: pip install 'ray>=2.40'") from None
    env = {
        k: os.environ[k] for k in ("MUJOCO_GL", "LLM_TRAINER_CONFIG_DIR", "LLM_TRAINER_TASK_MODULES") if k in os.environ
    }
    if options.ray_address == "local":
        ray.init(num_cpus=options.workers, include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)
    else:
        ray.init(address=options.ray_address, runtime_env={"env_vars": env}, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=2)(_run_slots)
        config = {**options.resume_config(), "planner_base_url": options.planner_base_url}
        chunks = [slots[i : i + SLOTS_PER_TASK] for i in range(0, len(slots), SLOTS_PER_TASK)]
        pending = [remote.remote(config, [s.__dict__ for s in chunk], str(out)) for chunk in chunks]
        log(f"ray: {len(slots)} episodes in {len(pending)} tasks on {ray.cluster_resources().get('CPU', 0):.0f} CPUs")
        started()
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for record in ray.get(done[0]):
                yield EpisodeRecord.from_dict(record)
    finally:
        ray.shutdown()
