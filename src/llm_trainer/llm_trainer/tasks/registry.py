"""The task registry: tasks by name, so the generator, CLI and nodes never import a task directly.

Adding a task: write a ``Task`` subclass (instruction template, ``sample``, ``check_success``
and, if a pick-and-place script can solve it, ``oracle_subgoals``) and ``register`` it. Built-in
tasks are registered below; a user's own modules are imported from the ``LLM_TRAINER_TASK_MODULES``
environment variable (comma-separated module names, each calling ``register`` on import), so the
simulator and planner nodes, which inherit the environment, know them too.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from llm_trainer.tasks.base import Task

#: BLAZER's training tasks (Table II); the other built-in tasks are its real-world set (Fig. 5).
BLAZER_TRAINING_TASKS = frozenset(
    {
        "put_block",
        "stack_blocks",
        "rubbish_in_bin",
        "meat_off_grill",
        "close_jar",
        "empty_container",
        "insert_in_peg",
        "basketball_in_hoop",
        "open_bottle",
    }
)

_FACTORIES: dict[str, Callable[[], Task]] = {}


def register(name: str, factory: Callable[[], Task]) -> None:
    if name in _FACTORIES:
        raise ValueError(f"task {name!r} is already registered")
    _FACTORIES[name] = factory


def get_task(name: str) -> Task:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_FACTORIES))}") from None


def task_names() -> list[str]:
    return sorted(_FACTORIES)


def _register_builtin() -> None:
    from llm_trainer.tasks.blocks import PutBlockInTargetArea, StackBlocks
    from llm_trainer.tasks.containers import BlockInBasket, EmptyContainer, JarInBin, RubbishInBin
    from llm_trainer.tasks.fruit import FruitInBowl, FruitInClosestBasket
    from llm_trainer.tasks.insertion import BasketballInHoop, InsertInPeg
    from llm_trainer.tasks.kitchen import CloseJar, MeatOffGrill, OpenBottle
    from llm_trainer.tasks.placing import CaseOnTarget, CupOnObject

    for cls in (
        # BLAZER's training tasks (RLBench analogues)
        PutBlockInTargetArea,
        StackBlocks,
        RubbishInBin,
        MeatOffGrill,
        CloseJar,
        EmptyContainer,
        InsertInPeg,
        BasketballInHoop,
        OpenBottle,
        # its real-world generalisation tasks
        BlockInBasket,
        FruitInBowl,
        FruitInClosestBasket,
        CupOnObject,
        JarInBin,
        CaseOnTarget,
    ):
        register(cls.name, cls)


def _register_user_modules() -> None:
    for module in filter(None, (m.strip() for m in os.environ.get("LLM_TRAINER_TASK_MODULES", "").split(","))):
        importlib.import_module(module)


_register_builtin()
_register_user_modules()
