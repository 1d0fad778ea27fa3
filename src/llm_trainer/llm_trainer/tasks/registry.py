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
import zlib
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
#: Each task's block of seeds (``datagen.run_store.seed_for``): no two tasks share a seed.
_SEED_BLOCKS: dict[str, int] = {}
#: Blocks below this are the built-in tasks' (in registration order, append-only); a user's task
#: gets one from a hash of its name, so it keeps its seeds whatever else is registered.
USER_SEED_BLOCKS = range(100, 1000)


def register(name: str, factory: Callable[[], Task], *, seed_block: int | None = None) -> None:
    if name in _FACTORIES:
        raise ValueError(f"task {name!r} is already registered")
    if seed_block is None:
        seed_block = USER_SEED_BLOCKS[zlib.crc32(name.encode()) % len(USER_SEED_BLOCKS)]
    owner = next((n for n, b in _SEED_BLOCKS.items() if b == seed_block), None)
    if owner is not None:
        raise ValueError(
            f"task {name!r} would share seed block {seed_block} with {owner!r}: "
            "register it with another seed_block=N (100-999)"
        )
    _FACTORIES[name] = factory
    _SEED_BLOCKS[name] = seed_block


def seed_block(name: str) -> int:
    """The task's seed block: its seeds are ``block * TASK_SEED_STRIDE + ...`` (run_store.seed_for)."""
    if name not in _SEED_BLOCKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_FACTORIES))}")
    return _SEED_BLOCKS[name]


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

    for block, cls in enumerate(
        (
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
            # new built-in tasks go here, at the end: a task's place is its seed block
        )
    ):
        register(cls.name, cls, seed_block=block)


def _register_user_modules() -> None:
    for module in filter(None, (m.strip() for m in os.environ.get("LLM_TRAINER_TASK_MODULES", "").split(","))):
        importlib.import_module(module)


_register_builtin()
_register_user_modules()
