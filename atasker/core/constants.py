"""Priorities, task types and task statuses.

The values are atasker 0.7's and must not change: code written for it may
store or compare them.
"""

from __future__ import annotations

# Priorities: a lower number is a higher priority.
TASK_LOW = 200
TASK_NORMAL = 100
TASK_HIGH = 50
TASK_CRITICAL = 0

PRIORITIES = (TASK_CRITICAL, TASK_HIGH, TASK_NORMAL, TASK_LOW)

# Task types: where a task runs.
TT_COROUTINE = 0
TT_THREAD = 1
TT_MP = 2

TASK_TYPES = (TT_COROUTINE, TT_THREAD, TT_MP)

# Task statuses.
TASK_STATUS_QUEUED = 0  # waiting for a pool slot
TASK_STATUS_DELAYED = 2  # waiting for its due time
TASK_STATUS_STARTED = 100  # running
TASK_STATUS_COMPLETED = 200  # returned a value
TASK_STATUS_CANCELED = -1  # will never run
TASK_STATUS_ERROR = -2  # raised TaskError: an expected, reported failure
TASK_STATUS_EXCEPTION = -3  # raised anything else

FINAL_STATUSES = frozenset(
    (
        TASK_STATUS_COMPLETED,
        TASK_STATUS_CANCELED,
        TASK_STATUS_ERROR,
        TASK_STATUS_EXCEPTION,
    )
)
