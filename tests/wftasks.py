"""Targets of the workflow tests (test_workflow_*.py): task functions at the
top level of an importable module, so that process tasks pickle them by
reference and JSON finds them by their registered names.

None of them names a supervisor (they would run on the global one, which
tests do not start): each test gives its own, per call or with
``.set(supervisor=sup)``. Append new targets; do not change others'.
"""

from __future__ import annotations

import os
import threading

import mptasks

from atasker import TT_MP, TaskError, background_task, current_context

# --- test_workflow_canvas.py ---


@background_task
def add(a, b=0):
    """A thread task: a + b."""
    return a + b


@background_task(tt=TT_MP)
def p_add(a, b=0):
    """A process task: a + b."""
    return a + b


@background_task(tt=TT_MP)
def square(x):
    """A process task: x * x."""
    return x * x


@background_task
def collect(*args, **kwargs):
    """A thread task: the arguments it was given."""
    return args, kwargs


@background_task(tt=TT_MP)
def p_collect(*args, k=None):
    """A process task: the arguments it was given (no ``**kwargs``: a
    process task taking them is given ``_task_id`` too)."""
    return args, k


@background_task
def total(values, start=0):
    """A thread task (a chord's body): the sum of ``values``."""
    return start + sum(values)


@background_task
def fail(value=None, *args):
    """A thread task that raises ValueError(value): status EXCEPTION."""
    raise ValueError(value)


@background_task(tt=TT_MP)
def p_fail(value=None, *args):
    """A process task that raises ValueError(value): status EXCEPTION."""
    raise ValueError(value)


@background_task
def error(value=None, *args):
    """A thread task that raises TaskError(value): status ERROR."""
    raise TaskError(value)


@background_task(tt=TT_MP)
def p_error(value=None, *args):
    """A process task that raises TaskError(value): status ERROR."""
    raise TaskError(value)


@background_task
def ident(*args):
    """A thread task: the id of the thread it runs in."""
    return threading.get_ident()


@background_task(tt=TT_MP)
def p_exit(*args):
    """A process task whose worker process dies (os._exit)."""
    os._exit(3)


@background_task
def on_failure(record, *args):
    """A thread task for ``link_error``: the failed record it was given, its
    status when this ran, and the other arguments."""
    return record, record.status, args


@background_task
def unpicklable(*args):
    """A thread task whose result no process task can take."""
    return lambda: None


@background_task(tt=TT_MP)
def run_signature(sig, *args):
    """A process task given a signature: runs it there, with ``args``."""
    return sig(*args), os.getpid()


# --- test_workflow_map.py (map / starmap / chunks, eager apply, replace) ---
# Each is a process task (tt=TT_MP); a test runs it as a thread task by
# giving tt=TT_THREAD per call.


@background_task(tt=TT_MP)
def map_square(x):
    """x * x."""
    return x * x


@background_task(tt=TT_MP)
def map_add(a, b):
    """a + b."""
    return a + b


@background_task(tt=TT_MP)
def map_pid(x):
    """(the id of the process it runs in, x)."""
    return os.getpid(), x


@background_task(tt=TT_MP)
def map_crash_at(i, bad):
    """i * 10; item ``bad`` kills its worker process (os._exit)."""
    if i == bad:
        os._exit(7)
    return i * 10


@background_task(tt=TT_MP)
def map_fail_at(i, bad):
    """i * 10; item ``bad`` raises ValueError."""
    if i == bad:
        raise ValueError(f"item {i} failed")
    return i * 10


@background_task(tt=TT_MP)
def map_at_gate(path, i):
    """i, once the mptasks.ProcessGate at ``path`` lets it through."""
    mptasks.wait_at_gate(path)
    return i


@background_task(tt=TT_MP)
def map_where(x):
    """(process id, thread id, x): where it ran."""
    return os.getpid(), threading.get_ident(), x


@background_task(tt=TT_MP)
def map_replace_with_square(x):
    """Replaced by map_square(x + 1) (a process task too); returns
    "not replaced" if replace() ever returns."""
    from atasker import current_context

    current_context().replace(map_square.s(x + 1))
    return "not replaced"


@background_task(tt=TT_MP)
def map_replace_with_failure(i):
    """Replaced by map_fail_at(i, i), which raises ValueError."""
    from atasker import current_context

    current_context().replace(map_fail_at.s(i, i))
    return "not replaced"


@background_task(tt=TT_MP)
def map_task_id(x):
    """(the running task's id, x)."""
    from atasker import current_context

    return current_context().id, x


# --- test_workflow_faults.py: regression tests of the workflow review ---

PARENT_PID = os.getpid()
PICKLED_ON: list[str] = []


class Traced:
    """Records which thread of the parent pickles it."""

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        if os.getpid() == PARENT_PID:
            PICKLED_ON.append(threading.current_thread().name)
        return (Traced, (self.value,))


@background_task(tt=TT_MP)
def f_add(x, y=0):
    return x + y


@background_task(tt=TT_MP)
def f_pair(x, traced):
    return x + traced.value


@background_task(tt=TT_MP)
def f_replacer(x):
    current_context().replace(f_add.s(x, 1))
