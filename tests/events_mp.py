"""Targets of the event bus tests (tests/test_events.py): top-level functions
and Task classes of an importable module, so that worker processes find them
too. The same functions serve as thread tasks."""

from __future__ import annotations

import asyncio
import datetime
import time

from atasker import LIFECYCLE_EVENTS, TT_MP, Task, TaskError, current_context

# Every name emit() refuses: the lifecycle's and "reloaded".
RESERVED = (*LIFECYCLE_EVENTS, "reloaded")


def double(x):
    return x * 2


def raise_task_error(message):
    raise TaskError(message)


def raise_value_error(message):
    raise ValueError(message)


def fail_first_attempt():
    """Raise on the first attempt; later, return the retries made."""
    retries = current_context().retries
    if retries == 0:
        raise ValueError("first attempt")
    return retries


def wait_canceled():
    """Run until canceled (at most 10 s): a thread task ends itself once its
    cancel is asked; a process task's worker is ended for it."""
    context = current_context()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        context.check_cancelled()
        time.sleep(0.001)
    return "never canceled"


async def co_wait_canceled():
    """A coroutine task that runs until cancelled (at most 10 s)."""
    await asyncio.sleep(10)
    return "never canceled"


def emit_progress(count):
    """Emit ``progress`` with ``{"n": i}`` for i in range(count)."""
    context = current_context()
    for i in range(count):
        context.emit("progress", {"n": i})
    return count


def bad_emits(emit):
    """Call ``emit`` with each kind of wrong argument; what each raised, as
    [exception class name, message] (None: it raised nothing)."""
    calls = [(name, None) for name in RESERVED]
    calls += [
        ("", None),
        (5, None),
        ("ok", {"when": datetime.datetime(2024, 1, 1)}),
        ("ok", {"x": {1, 2}}),
        ("ok", {"a": [1, object()]}),
        ("ok", {1, 2}),
    ]
    outcomes = []
    for event, data in calls:
        try:
            emit(event, data)
        except Exception as exc:
            outcomes.append([type(exc).__name__, str(exc)])
        else:
            outcomes.append(None)
    return outcomes


def bad_emits_current():
    """bad_emits with current_context().emit (a function task)."""
    return bad_emits(current_context().emit)


def emit_and_wait(emitted, finish, count=5):
    """Emit ``mark`` with 0..count-1, set ``emitted``, block until
    ``finish`` is set (thread tasks only: the events are this process's)."""
    context = current_context()
    for i in range(count):
        context.emit("mark", i)
    emitted.set()
    if not finish.wait(10):
        raise RuntimeError("never released")
    return "marked"


def emit_then_return(events):
    """Emit each of ``events``, an event name each; return their count."""
    context = current_context()
    for name in events:
        context.emit(name)
    return len(events)


class Emitter(Task):
    """Emits ``tick`` with each of its ``values``; returns "done"."""

    NAME = "events/emitter"

    def start(self):
        for value in self.data.get("values", []):
            self.emit("tick", value)
        return "done"


class ProcessEmitter(Emitter):
    NAME = "events/emitter-mp"
    TT = TT_MP


class AsyncEmitter(Task):
    NAME = "events/emitter-async"

    async def start(self):
        for value in self.data.get("values", []):
            self.emit("tick", value)
        return "done"


class BadEmitter(Task):
    """Returns what its wrong emits raised (see bad_emits)."""

    NAME = "events/bad-emitter"

    def start(self):
        return bad_emits(self.emit)


class ProcessBadEmitter(BadEmitter):
    NAME = "events/bad-emitter-mp"
    TT = TT_MP


class Waiter(Task):
    """Emits ``running`` with its data, then runs until asked to stop."""

    NAME = "events/waiter"

    def start(self):
        self.emit("running", self.data)
        if not self.stopping.wait(10):
            raise RuntimeError("never stopped")
        return "stopped by request"
