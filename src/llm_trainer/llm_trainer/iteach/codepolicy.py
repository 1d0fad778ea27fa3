"""A CodePolicy: the teacher of LLM-iTeach, an LLM-written (or hand-written) step list run in the sandbox.

The host keeps the step pointer (the code is stateless: every function sees only ``scene``): before
each action it asks the current step's ``_done`` check, moves on while steps are complete, and asks
the current step's ``_action``. The answers are checked (``scene_api.parse_action``); anything wrong,
in the code or in what it returns, is a ``SandboxError`` with the reason.

The hand-written CodePolicies for the tasks are in ``iteach/codepolicies/<task>.py``: they are what
runs when no LLM is configured and the reference the LLM-written ones are compared with.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from llm_trainer.iteach.sandbox import Sandbox, SandboxError, SandboxLimits
from llm_trainer.iteach.scene_api import Action, ActionError, parse_action

MAX_ADVANCES_PER_STEP = 3  # done checks that may pass in one control step (a step already complete)


def builtin_codepolicies() -> dict[str, str]:
    """Task name -> source of its hand-written CodePolicy."""
    folder = resources.files("llm_trainer.iteach") / "codepolicies"
    return {p.name[:-3]: p.read_text() for p in folder.iterdir() if p.name.endswith(".py") and p.name[0] != "_"}


def builtin_codepolicy(task: str) -> str:
    policies = builtin_codepolicies()
    if task not in policies:
        raise ValueError(f"no hand-written CodePolicy for {task!r} (there are: {', '.join(sorted(policies))})")
    return policies[task]


class CodePolicy:
    def __init__(self, source: str, limits: SandboxLimits | None = None, name: str = "codepolicy"):
        self.name = name
        self.source = source
        self.sandbox = Sandbox(source, limits)
        self.steps = self.sandbox.steps
        self.index = 0

    def reset(self) -> None:
        self.index = 0

    @property
    def finished(self) -> bool:
        return self.index >= len(self.steps)

    @property
    def step_name(self) -> str:
        return self.steps[self.index] if not self.finished else "finished"

    def _done(self, scene: dict) -> bool:
        value = self.sandbox.call(f"{self.steps[self.index]}_done", scene)
        if not isinstance(value, bool):
            raise SandboxError("runtime", f"{self.steps[self.index]}_done returned {value!r}, not True/False"[:200])
        return value

    def act(self, scene: dict) -> Action:
        """The teacher's action for this scene (after moving past the steps that are complete)."""
        for _ in range(MAX_ADVANCES_PER_STEP):
            if self.finished or not self._done(scene):
                break
            self.index += 1
        if self.finished:
            return Action(np.zeros(3), 0.0, None)
        value = self.sandbox.call(f"{self.steps[self.index]}_action", scene)
        try:
            return parse_action(value)
        except ActionError as exc:
            raise SandboxError("runtime", f"{self.steps[self.index]}_action: {exc}") from None

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> CodePolicy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
