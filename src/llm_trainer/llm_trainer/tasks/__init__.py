"""Task suite: specs, success predicates and the registry."""

from llm_trainer.tasks.base import ObjectSpec, PickPlace, SuccessReport, Task, TaskInstance
from llm_trainer.tasks.registry import get_task, register, task_names

__all__ = ["ObjectSpec", "PickPlace", "SuccessReport", "Task", "TaskInstance", "get_task", "register", "task_names"]
