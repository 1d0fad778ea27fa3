"""One episode in this process: the same steps the node graph runs, without DDS in between.

Used by tests, by the benchmark as the in-process baseline, and by workers that do not need ROS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from llm_trainer.execution.backend import DirectSimBackend
from llm_trainer.execution.executor import ExecutionResult, PlanExecutor
from llm_trainer.planning.base import Planner, PlanRequest, PlanResult
from llm_trainer.primitives import plan_to_dicts
from llm_trainer.sim.mujoco_sim import MujocoSimulation
from llm_trainer.tasks.registry import get_task


@dataclass
class EpisodeOutcome:
    """What one episode produced; ``to_metadata`` is what datasets store with it."""

    task_name: str
    seed: int
    instruction: str
    goal: dict[str, Any]
    scene: dict[str, Any]
    plan: list[dict[str, Any]]
    planner: str
    plan_message: str
    execution_message: str
    success: bool
    success_report: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "task": self.task_name,
            "seed": self.seed,
            "instruction": self.instruction,
            "goal": self.goal,
            "scene": self.scene,
            "plan": self.plan,
            "planner": self.planner,
            "plan_message": self.plan_message,
            "execution_message": self.execution_message,
            "success": self.success,
            "success_report": self.success_report,
            "timings": self.timings,
        }


def run_episode_in_process(
    sim: MujocoSimulation,
    planner: Planner,
    executor: PlanExecutor,
    task_name: str,
    seed: int,
    *,
    settle_after: float = 0.5,
) -> EpisodeOutcome:
    t0 = time.perf_counter()
    instance = sim.reset(get_task(task_name), seed)
    scene = sim.scene_state()
    t1 = time.perf_counter()
    plan_result: PlanResult = planner.plan(PlanRequest(instance.instruction, scene, task_name, instance.goal))
    t2 = time.perf_counter()
    exec_result: ExecutionResult | None = None
    if plan_result.success:
        exec_result = executor.execute(plan_result.plan)
        sim.step_for(settle_after, getattr(executor.backend, "on_step", None))
    t3 = time.perf_counter()
    report = sim.check_success()
    return EpisodeOutcome(
        task_name=task_name,
        seed=seed,
        instruction=instance.instruction,
        goal=instance.goal,
        scene=scene.to_dict(),
        plan=plan_to_dicts(plan_result.plan),
        planner=plan_result.backend,
        plan_message=plan_result.message,
        execution_message=exec_result.message if exec_result else "not executed: no valid plan",
        success=bool(plan_result.success and exec_result is not None and exec_result.success and report.success),
        success_report=report.to_dict(),
        timings={"reset": t1 - t0, "plan": t2 - t1, "execute": t3 - t2, "sim_time": sim.time},
    )


def make_in_process_runner(sim: MujocoSimulation, planner: Planner, executor_config=None) -> PlanExecutor:
    return PlanExecutor(DirectSimBackend(sim), executor_config)
