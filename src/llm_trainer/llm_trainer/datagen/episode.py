"""One episode in this process: the same steps the node graph runs, without DDS in between.

Used by tests, by the benchmark as the in-process baseline, and by workers that do not need ROS.
"""

from __future__ import annotations

import time
from typing import Any

from llm_trainer.episodes import EpisodeRecord, ExecutionRecord, PlanningRecord, classify, provenance
from llm_trainer.execution.backend import DirectSimBackend
from llm_trainer.execution.executor import PlanExecutor
from llm_trainer.planning.base import Planner, PlanRequest, PlanResult
from llm_trainer.sim.mujoco_sim import MujocoSimulation
from llm_trainer.tasks.registry import get_task


def run_episode_in_process(
    sim: MujocoSimulation,
    planner: Planner,
    executor: PlanExecutor,
    task_name: str,
    seed: int,
    *,
    settle_after: float = 0.5,
    episode_id: str = "",
    index: int = 0,
    prompt_config: dict[str, Any] | None = None,
    recorder=None,
    planned: tuple[dict[str, Any], PlanResult] | None = None,
    perceive=None,
) -> EpisodeRecord:
    """One episode: reset (seeded) -> plan -> execute -> verify; the episode record says what happened.

    ``recorder`` (``datagen.inprocess.InProcessRecorder``) records it as the graph's recorder would:
    the executor's backend calls its ``on_step`` every physics step, this function opens and closes the
    bag and forwards the executor's primitive events. ``planned`` is ``(scene dict, PlanResult)`` of a
    plan made ahead for this task and seed (``--concurrency``); it is used when the reset scene is that
    scene (physics is deterministic), else the episode plans afresh.
    """
    t0 = time.perf_counter()
    instance = sim.reset(get_task(task_name), seed)
    scene = sim.scene_state()
    if perceive is not None:
        scene = perceive(sim, instance, scene)
    episode_id = episode_id or f"episode_{index:06d}"
    if recorder is not None:
        recorder.start(episode_id, {"record": {"episode_id": episode_id, "task": task_name, "seed": seed}})
    t1 = time.perf_counter()
    if planned is not None and planned[0] == scene.to_dict():
        plan_result = planned[1]
    else:
        plan_result = planner.plan(PlanRequest(instance.instruction, scene, task_name, instance.goal))
    planning = PlanningRecord.from_result(plan_result, prompt_config)
    t2 = time.perf_counter()
    execution: ExecutionRecord | None = None
    on_step = getattr(executor.backend, "on_step", None)
    if plan_result.success:
        events = (lambda status, total: recorder.primitive_event(plan_result.plan, status, total)) if recorder else None
        execution = ExecutionRecord.from_result(executor.execute(plan_result.plan, feedback=events))
        sim.step_for(settle_after, on_step)
    elif recorder is not None:
        sim.step_for(settle_after, on_step)  # as the simulator node's check does: the objects settle
    t3 = time.perf_counter()
    report = sim.check_success()
    t4 = time.perf_counter()
    timing = {"reset": t1 - t0, "plan": t2 - t1, "execute": t3 - t2, "check": t4 - t3, "wall": t4 - t0}
    record = checked_record(
        sim, instance, scene, planning, execution, report, episode_id=episode_id, index=index, timing=timing
    )
    if recorder is not None:
        record.bag = recorder.stop(record)
    return record


def checked_record(
    sim: MujocoSimulation,
    instance,
    scene,
    planning: PlanningRecord,
    execution: ExecutionRecord | None,
    report,
    *,
    episode_id: str,
    index: int,
    timing: dict[str, float] | None = None,
    **provenance_extra: Any,
) -> EpisodeRecord:
    """The record of an in-process episode once its success check ran (shared by the sequential and
    the dynamic-replanning episode): the typed outcome from the planning, execution and check."""
    outcome = classify(planning, execution, report.success)
    return EpisodeRecord(
        episode_id=episode_id,
        task=instance.task_name,
        seed=instance.seed,
        index=index,
        instruction=instance.instruction,
        goal=instance.goal,
        scene=scene.to_dict(),
        final_scene=sim.scene_state().to_dict(),
        planning=planning,
        execution=execution,
        success=outcome.success,
        success_report=report.to_dict(),
        outcome=outcome,
        timing={**(timing or {}), "sim_time": sim.time},
        provenance=provenance("inprocess", **provenance_extra),
    )


def make_in_process_runner(sim: MujocoSimulation, planner: Planner, executor_config=None) -> PlanExecutor:
    return PlanExecutor(DirectSimBackend(sim), executor_config)
