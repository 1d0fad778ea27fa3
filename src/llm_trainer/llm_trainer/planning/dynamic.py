"""Dynamic replanning (MALMM's closed-loop variant): after every executed step the state is observed
again and re-sent, and the model writes only the next call.

Bounded: at most ``max_steps`` executed calls, and per step at most ``max_retries`` re-asks with
the refusal reason fed back. Every exchange (prompt, raw answer, accepted call or reason) is kept
in the transcript, which the request log and the SFT exporter store like sequential requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llm_trainer.planning.base import PlanRequest
from llm_trainer.planning.llm import LLMPlanner
from llm_trainer.primitives import Primitive, PrimitiveKind, plan_to_dicts
from llm_trainer.scene import SceneState

#: Runs one primitive on the robot; returns ``None`` on success or the failure message.
StepExecutor = Callable[[Primitive], "str | None"]


@dataclass
class DynamicConfig:
    max_steps: int = 40  # executed calls, task_completed() not counted
    max_retries: int = 2  # re-asks per step after a refused answer

    def validate(self) -> None:
        if not 1 <= self.max_steps <= 200:
            raise ValueError("dynamic.max_steps must be within [1, 200]")
        if not 0 <= self.max_retries <= 10:
            raise ValueError("dynamic.max_retries must be within [0, 10]")


@dataclass
class DynamicOutcome:
    completed: bool  # the model called task_completed()
    executed: list[Primitive]
    message: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0


def _nearest(scene: SceneState) -> str:
    """What an unnamed close_gripper() grasped (``grasp.object_at_tcp``; "" when nothing was there)."""
    from llm_trainer.grasp import object_at_tcp, scene_boxes

    return object_at_tcp(scene.ee_position, scene_boxes(scene)) or ""


def run_dynamic(
    planner: LLMPlanner,
    instruction: str,
    observe: Callable[[], SceneState],
    execute: StepExecutor,
    *,
    task_name: str = "",
    goal: dict | None = None,
    config: DynamicConfig | None = None,
) -> DynamicOutcome:
    """Ask, validate, execute one call at a time until ``task_completed()`` or a bound is hit."""
    cfg = config or DynamicConfig()
    executed: list[Primitive] = []
    transcript: list[dict[str, Any]] = []
    holding = ""
    requests = 0
    while len(executed) < cfg.max_steps:
        scene = observe()
        feedback = ""
        accepted = None
        for _ in range(cfg.max_retries + 1):
            request = PlanRequest(instruction, scene, task_name, goal or {}, "dynamic", list(executed), holding)
            result = planner._propose_and_check(request, feedback)
            requests += 1
            transcript.append(
                {
                    "step": len(executed),
                    "prompt": result.prompt,
                    "raw_answer": result.raw_answer,
                    "plan": plan_to_dicts(result.plan),
                    "completed": result.completed,
                    "success": result.success,
                    "message": result.message,
                }
            )
            if result.success:
                accepted = result
                break
            if result.message.startswith("generation failed"):
                return DynamicOutcome(False, executed, result.message, transcript, requests)
            feedback = result.message.removeprefix("rejected: ")
        if accepted is None:
            return DynamicOutcome(
                False,
                executed,
                f"step {len(executed)}: no acceptable answer after {cfg.max_retries + 1} tries: {feedback}",
                transcript,
                requests,
            )
        if not accepted.plan and accepted.completed:
            return DynamicOutcome(True, executed, "task_completed()", transcript, requests)
        step = accepted.plan[0]  # the next call only, even if the model wrote more
        error = execute(step)
        if error:
            return DynamicOutcome(
                False, executed, f"step {len(executed)} ({step}) failed: {error}", transcript, requests
            )
        executed.append(step)
        if step.kind == PrimitiveKind.CLOSE_GRIPPER:
            holding = step.object_name or _nearest(scene)
        elif step.kind == PrimitiveKind.OPEN_GRIPPER:
            holding = ""
        if accepted.completed:
            return DynamicOutcome(True, executed, "task_completed()", transcript, requests)
    return DynamicOutcome(
        False, executed, f"stopped after {cfg.max_steps} steps without task_completed()", transcript, requests
    )


def run_dynamic_in_sim(sim, planner: LLMPlanner, executor, task_name: str, seed: int, config=None):
    """One dynamic-replanning episode in the in-process simulator (``datagen.episode``'s setting):
    reset, then ask / validate / execute one call at a time, then the task's success check.

    Returns the episode record (``llm_trainer.episodes``): ``planning`` holds the executed calls as the
    plan, every exchange in ``transcript`` and the number of requests in ``attempts``; each call goes
    to ``executor.execute`` as a plan of its own (the executor carries an object already in the hand).
    """
    from llm_trainer.datagen.episode import checked_record
    from llm_trainer.episodes import ExecutionRecord, PlanningRecord
    from llm_trainer.tasks.registry import get_task

    instance = sim.reset(get_task(task_name), seed)
    scene = sim.scene_state()
    failure: dict[str, str] = {}

    def execute(prim: Primitive) -> str | None:
        result = executor.execute([prim])
        if not result.success:
            failure["error"] = result.error_code.name
        return None if result.success else result.message

    outcome = run_dynamic(
        planner, instance.instruction, sim.scene_state, execute, task_name=task_name, goal=instance.goal, config=config
    )
    sim.step_for(0.5)
    report = sim.check_success()
    last = outcome.transcript[-1] if outcome.transcript else {}
    planning = PlanningRecord(
        backend=planner.name,
        success=outcome.completed or "error" in failure,  # the model's answers were accepted
        message=outcome.message,
        prompt=last.get("prompt", ""),
        raw_answer=last.get("raw_answer", ""),
        plan=plan_to_dicts(outcome.executed),
        attempts=outcome.requests,
        mode="dynamic",
        transcript=outcome.transcript,
    )
    execution = ExecutionRecord(
        success="error" not in failure,
        error=failure.get("error", "SUCCEEDED"),
        failed_index=len(outcome.executed) if failure else -1,
        message=outcome.message,
    )
    # Not completed without an execution error: the model's answers ran out (refused, or no task_completed()).
    return checked_record(
        sim, instance, scene, planning, execution, report, episode_id=f"episode_{seed:06d}", index=seed,
        planner_mode="dynamic",
    )  # fmt: skip
