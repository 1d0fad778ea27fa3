"""The task registry: tasks by name, so the generator, CLI and nodes never import a task directly."""

from __future__ import annotations

from collections.abc import Callable

from llm_trainer.tasks.base import Task

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

    register("put_block", PutBlockInTargetArea)
    register("stack_blocks", StackBlocks)


_register_builtin()
