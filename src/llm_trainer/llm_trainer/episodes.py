"""The one episode record: what every producer and consumer of episodes reads and writes.

Generation (in process and through the node graph), evaluation, the benchmarks, the planner's
request log, the recorder's ``metadata.json`` and the exporters share these dataclasses and their
versioned JSON form (``schema`` + ``version``). Why an episode failed is a typed ``Outcome``
(``OutcomeKind``), never a string prefix to parse:

- ``plan_rejected``: the planner produced no valid plan (its answer was refused, or it could not answer);
- ``execution_refused``: the executor refused the plan before any motion (unreachable, collision, limit);
- ``execution_failed``: the plan stopped during motion (timeout, cancel, backend error);
- ``task_not_achieved``: it ran to the end, but the task's success check says no;
- ``infrastructure``: the system failed (a node died, a service never answered): not the plan's
  fault, so generation retries such an episode instead of counting it.
"""

from __future__ import annotations

import json
import platform
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

SCHEMA = "llm_trainer.episode"
SCHEMA_VERSION = 1


class OutcomeKind(str, Enum):
    SUCCESS = "success"
    PLAN_REJECTED = "plan_rejected"
    EXECUTION_REFUSED = "execution_refused"
    EXECUTION_FAILED = "execution_failed"
    TASK_NOT_ACHIEVED = "task_not_achieved"
    INFRASTRUCTURE = "infrastructure"


#: Executor error codes (``ExecutePlan`` result) that refuse a plan before anything moves.
_REFUSING_CODES = {"INVALID", "UNREACHABLE", "COLLISION", "LIMIT"}


@dataclass
class Outcome:
    kind: OutcomeKind
    reason: str = ""

    @property
    def success(self) -> bool:
        return self.kind == OutcomeKind.SUCCESS

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Outcome:
        try:
            kind = OutcomeKind(d["kind"])
        except (KeyError, ValueError):
            raise ValueError(f"outcome kind must be one of {[k.value for k in OutcomeKind]}, got {d!r}") from None
        return cls(kind, str(d.get("reason", "")))


@dataclass
class PlanningRecord:
    """One planning request's answer: what the model saw and said, and what came of it.

    The planner node writes one per request to its log (with ``episode_id`` and ``seed``), returns it
    with the service response, and the episode record embeds it; the SFT exporter reads it back.
    """

    backend: str
    success: bool = False
    message: str = ""
    prompt: str = ""  # the flat text (system, blank line, user) exactly as built
    prompt_messages: list[dict[str, str]] = field(default_factory=list)  # the chat messages as sent
    prompt_version: str = ""
    prompt_config: dict[str, Any] = field(default_factory=dict)  # PromptConfig the prompt was (or would be) built with
    raw_answer: str = ""
    parsed_plan: list[dict[str, Any]] = field(default_factory=list)
    plan: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    attempts: int = 0
    tokens: int = 0
    planning_time: float = 0.0
    generation_time: float = 0.0
    mode: str = "sequential"
    transcript: list[dict[str, Any]] = field(default_factory=list)  # dynamic mode: every exchange, in order

    @classmethod
    def from_result(cls, result, prompt_config: dict[str, Any] | None = None) -> PlanningRecord:
        """From a ``planning.base.PlanResult``."""
        from llm_trainer.planning.prompt import PROMPT_VERSION
        from llm_trainer.primitives import plan_to_dicts

        return cls(
            backend=result.backend,
            success=bool(result.success),
            message=result.message,
            prompt=result.prompt,
            prompt_messages=list(result.prompt_messages),
            prompt_version=PROMPT_VERSION if result.prompt else "",
            prompt_config=dict(prompt_config or {}),
            raw_answer=result.raw_answer,
            parsed_plan=plan_to_dicts(result.parsed_plan),
            plan=plan_to_dicts(result.plan),
            rejections=list(result.rejections),
            attempts=int(result.attempts),
            tokens=int(result.tokens),
            planning_time=float(result.planning_time),
            generation_time=float(result.generation_time),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlanningRecord:
        return _from_dict(cls, d)


@dataclass
class ExecutionRecord:
    success: bool
    error: str = "SUCCEEDED"  # ErrorCode name (ExecutePlan result constants)
    failed_index: int = -1
    message: str = ""
    statuses: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_result(cls, result) -> ExecutionRecord:
        """From ``execution.executor.ExecutionResult``."""
        return cls(
            success=bool(result.success),
            error=result.error_code.name,
            failed_index=int(result.failed_index),
            message=result.message,
            statuses=[
                {
                    "index": s.index,
                    "kind": s.kind.name.lower(),
                    "status": s.status.name.lower(),
                    "planning_time": round(float(s.planning_time), 4),
                    "execution_time": round(float(s.execution_time), 4),
                    "message": s.message,
                }
                for s in result.statuses
            ],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExecutionRecord:
        return _from_dict(cls, d)


@dataclass
class EpisodeRecord:
    """Everything about one episode; ``to_dict`` is its versioned JSON form."""

    episode_id: str
    task: str
    seed: int
    index: int = 0
    split: str = "train"
    instruction: str = ""
    goal: dict[str, Any] = field(default_factory=dict)
    scene: dict[str, Any] = field(default_factory=dict)  # what the planner saw
    final_scene: dict[str, Any] = field(default_factory=dict)  # after the success check
    planning: PlanningRecord | None = None
    execution: ExecutionRecord | None = None
    success: bool = False
    success_report: dict[str, Any] = field(default_factory=dict)  # the task predicate's conditions and details
    outcome: Outcome = field(default_factory=lambda: Outcome(OutcomeKind.INFRASTRUCTURE, "not run"))
    timing: dict[str, float] = field(default_factory=dict)  # reset, plan, execute, check, wall [s]; sim_time
    provenance: dict[str, Any] = field(default_factory=dict)  # runner, worker, host, versions, attempt
    bag: str = ""  # the episode's bag directory, relative to the run directory when inside it
    schema: str = SCHEMA
    version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["planning"] = self.planning.to_dict() if self.planning else None
        d["execution"] = self.execution.to_dict() if self.execution else None
        d["outcome"] = self.outcome.to_dict()
        # schema and version first, so a reader sees them before anything else
        return {
            "schema": self.schema,
            "version": self.version,
            **{k: v for k, v in d.items() if k not in ("schema", "version")},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeRecord:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise ValueError(f"not an {SCHEMA} record (schema {d.get('schema') if isinstance(d, dict) else d!r})")
        if d.get("version") != SCHEMA_VERSION:
            raise ValueError(f"episode record version {d.get('version')!r}; this llm_trainer reads {SCHEMA_VERSION}")
        data = dict(d)
        data["planning"] = PlanningRecord.from_dict(d["planning"]) if d.get("planning") else None
        data["execution"] = ExecutionRecord.from_dict(d["execution"]) if d.get("execution") else None
        data["outcome"] = Outcome.from_dict(d.get("outcome") or {})
        return _from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> EpisodeRecord:
        return cls.from_dict(json.loads(text))

    @property
    def infrastructure_failure(self) -> bool:
        return self.outcome.kind == OutcomeKind.INFRASTRUCTURE


def _from_dict(cls, d: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    return cls(**d)


def classify(planning: PlanningRecord | None, execution: ExecutionRecord | None, task_success: bool | None) -> Outcome:
    """The typed outcome of an episode that ran without an infrastructure fault."""
    if planning is not None and not planning.success and planning.message.startswith("generation failed"):
        # The planner could not answer at all (server down, timeout): not the plan's fault.
        return Outcome(OutcomeKind.INFRASTRUCTURE, planning.message)
    if planning is None or not planning.success:
        return Outcome(OutcomeKind.PLAN_REJECTED, planning.message if planning else "no plan")
    if execution is None:
        return Outcome(OutcomeKind.EXECUTION_REFUSED, "not executed")
    if not execution.success:
        executed_any = any(s.get("status") in ("done", "running") for s in execution.statuses)
        refused = execution.error in _REFUSING_CODES and not executed_any
        kind = OutcomeKind.EXECUTION_REFUSED if refused else OutcomeKind.EXECUTION_FAILED
        return Outcome(kind, f"{execution.error}: {execution.message}")
    if not task_success:
        return Outcome(OutcomeKind.TASK_NOT_ACHIEVED, "the task's success check failed")
    return Outcome(OutcomeKind.SUCCESS)


def provenance(runner: str, **extra: Any) -> dict[str, Any]:
    """Where and how an episode was made (merged into every record)."""
    from llm_trainer import __version__

    return {
        "runner": runner,
        "llm_trainer": __version__,
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
