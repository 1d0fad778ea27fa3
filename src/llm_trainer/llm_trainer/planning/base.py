"""The planner interface every backend implements (oracle now; LLM backends behind the same call)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from llm_trainer.primitives import PlanRejected, Primitive, validate_plan
from llm_trainer.scene import SceneState


@dataclass
class PlanRequest:
    instruction: str
    scene: SceneState
    task_name: str = ""
    goal: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanResult:
    success: bool
    plan: list[Primitive]
    backend: str
    message: str = ""
    prompt: str = ""
    raw_answer: str = ""
    planning_time: float = 0.0


class Planner(ABC):
    """A planning backend. ``plan`` never raises for bad model output: it returns the reason."""

    name: str = "base"

    @abstractmethod
    def propose(self, request: PlanRequest) -> PlanResult:
        """Produce an unvalidated plan (or a failure with its reason)."""

    def plan(self, request: PlanRequest) -> PlanResult:
        """Propose, then validate against the scene; the only entry point callers use."""
        t0 = time.perf_counter()
        try:
            result = self.propose(request)
        except (KeyError, ValueError, NotImplementedError) as exc:
            result = PlanResult(False, [], self.name, f"{type(exc).__name__}: {exc}")
        if result.success:
            try:
                result.plan = validate_plan(result.plan, request.scene)
            except PlanRejected as exc:
                result = PlanResult(False, [], self.name, f"rejected: {exc}", result.prompt, result.raw_answer)
        result.planning_time = time.perf_counter() - t0
        return result
