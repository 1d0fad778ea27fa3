"""The planner interface every backend implements (oracle, LLM backends, replay) behind the same call."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from llm_trainer.planning.validation import ValidationConfig, check_plan
from llm_trainer.primitives import PlanRejected, Primitive
from llm_trainer.scene import SceneState


@dataclass
class PlanRequest:
    instruction: str
    scene: SceneState
    task_name: str = ""
    goal: dict[str, Any] = field(default_factory=dict)
    mode: str = "sequential"  # or "dynamic": plan the next call only, after ``history``
    history: list[Primitive] = field(default_factory=list)  # dynamic mode: the calls already executed
    holding: str = ""  # dynamic mode: the object in the closed gripper, if any


@dataclass
class PlanResult:
    success: bool
    plan: list[Primitive]
    backend: str
    message: str = ""
    prompt: str = ""
    raw_answer: str = ""
    planning_time: float = 0.0
    parsed_plan: list[Primitive] = field(default_factory=list)  # what the parser got, before validation
    rejections: list[str] = field(default_factory=list)  # every refused attempt's reason, in order
    attempts: int = 0
    completed: bool = False  # the model called task_completed()
    tokens: int = 0
    generation_time: float = 0.0
    prompt_messages: list[dict[str, str]] = field(default_factory=list)  # the chat messages ``prompt`` flattens


class Planner(ABC):
    """A planning backend. ``plan`` never raises for bad model output: it returns the reason."""

    name: str = "base"
    #: Checks run on every proposal; ``None``: the defaults. (A class attribute so that subclasses
    #: with their own ``__init__``, like the oracle, need not call this one; the registry sets it.)
    validation: ValidationConfig | None = None

    def __init__(self, validation: ValidationConfig | None = None):
        self.validation = validation

    @abstractmethod
    def propose(self, request: PlanRequest) -> PlanResult:
        """Produce an unvalidated plan (or a failure with its reason)."""

    def _propose_and_check(self, request: PlanRequest, *args) -> PlanResult:
        t0 = time.perf_counter()
        try:
            result = self.propose(request, *args)
        except (KeyError, ValueError, NotImplementedError) as exc:
            result = PlanResult(False, [], self.name, f"{type(exc).__name__}: {exc}")
        if result.success and not result.plan and result.completed and request.mode == "dynamic":
            pass  # "task_completed()" alone: nothing to check
        elif result.success:
            result.parsed_plan = list(result.plan)
            try:
                result.plan = check_plan(
                    result.plan,
                    request.scene,
                    self.validation or ValidationConfig(),
                    dynamic=request.mode == "dynamic",
                    holding=request.holding,
                )
            except PlanRejected as exc:
                result.success, result.plan, result.message = False, [], f"rejected: {exc}"
        result.planning_time = time.perf_counter() - t0
        return result

    def plan(self, request: PlanRequest) -> PlanResult:
        """Propose, then validate against the scene; the only entry point callers use."""
        result = self._propose_and_check(request)
        result.attempts = 1
        if not result.success:
            result.rejections = [result.message]
        return result

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release models, servers or files the backend holds."""
