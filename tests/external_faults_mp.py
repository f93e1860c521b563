"""Targets of test_external_faults.py that a ProcessPoolExecutor must
unpickle: top-level names of an importable module."""

from __future__ import annotations

import threading

from atasker import background_task

# The threads a Probe was pickled in (this process only: a worker process
# unpickles it, which runs none of this).
pickled_in: list[str] = []


class Probe:
    """An argument whose pickling is user code: it notes the thread."""

    def __reduce__(self):
        pickled_in.append(threading.current_thread().name)
        return (Probe, ())


def kind_of(value):
    return type(value).__name__


def square(x):
    return x * x


@background_task
def double(x):
    """A task function: it pickles as its module-level name only."""
    return 2 * x
