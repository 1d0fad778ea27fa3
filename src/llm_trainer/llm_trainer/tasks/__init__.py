"""Task suite: specs, success predicates and the registry."""

from llm_trainer.tasks.base import Grasp, ObjectSpec, Part, PickPlace, SuccessReport, Task, TaskInstance
from llm_trainer.tasks.registry import get_task, register, task_names

__all__ = [
    "Grasp",
    "ObjectSpec",
    "Part",
    "PickPlace",
    "SuccessReport",
    "Task",
    "TaskInstance",
    "get_task",
    "register",
    "task_names",
]
