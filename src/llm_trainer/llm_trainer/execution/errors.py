"""Result codes shared by the executor, its safety layer and the backends."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    # Values match llm_trainer_interfaces/action/ExecutePlan result constants.
    SUCCEEDED = 0
    INVALID = 1
    UNREACHABLE = 2
    COLLISION = 3
    LIMIT = 4
    TIMEOUT = 5
    CANCELED = 6
    BACKEND_ERROR = 7


class Status(IntEnum):
    # Values match llm_trainer_interfaces/msg/PrimitiveStatus constants.
    PENDING = 0
    RUNNING = 1
    DONE = 2
    FAILED = 3
    SKIPPED = 4
