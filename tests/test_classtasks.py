"""Class tasks (issue 11): Task subclasses registered on a supervisor and
started by name.

Registration errors, the data check at start_task, stop / reload / restart
of a running task (thread, coroutine and process tasks), the statuses of
self.Error and of other exceptions, provide_context's order, class options,
a process task that emits, and a supervisor's stop.

Tasks tell the test what they do through a Listener (classtasks_mp): one
JSON message per event, so that a process task is heard like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import queue
import threading
import time
from typing import ClassVar

import classtasks_mp
import pytest
from classtasks_mp import Listener, announce, announce_stop, wait_stopping
from conftest import WAIT, Gate, retry_scheduled, started

from atasker import (
    TASK_HIGH,
    TASK_LOW,
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TASK_STATUS_QUEUED,
    TASK_STATUS_STARTED,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
    SupervisorNotRunningError,
    Task,
    TaskCancelledError,
    TaskError,
    TaskTimeoutError,
    UnknownTaskError,
    background_task,
)

# ----------------------------------------------------------------------
# Thread and coroutine versions of classtasks_mp's Poller and Outcome
# ----------------------------------------------------------------------


class ThreadPoller(Task):
    """Runs until stopped (classtasks_mp.Poller, in a pool thread)."""

    NAME = "test/thread-poller"

    def start(self):
        announce(self)
        return "stopped" if wait_stopping(self) else "never stopped"

    def stop(self):
        announce_stop(self)


class AsyncPoller(Task):
    """Runs until stopped (classtasks_mp.Poller, as a coroutine; its stop is
    a coroutine too)."""

    NAME = "test/async-poller"

    async def start(self):
        announce(self)
        try:
            await asyncio.wait_for(self.stopping.wait(), WAIT)
        except asyncio.TimeoutError:
            return "never stopped"
        return "stopped"

    async def stop(self):
        announce_stop(self)


def outcome(task):
    kind = task.data["outcome"]
    if kind == "error":
        raise task.Error("refused")
    if kind == "exception":
        raise ValueError("broken")
    return {"outcome": kind}


class ThreadOutcome(Task):
    NAME = "test/thread-outcome"

    def start(self):
        return outcome(self)


class AsyncOutcome(Task):
    NAME = "test/async-outcome"

    async def start(self):
        return outcome(self)


KINDS = {
    "thread": (TT_THREAD, ThreadPoller, ThreadOutcome),
    "coroutine": (TT_COROUTINE, AsyncPoller, AsyncOutcome),
    "process": (TT_MP, classtasks_mp.Poller, classtasks_mp.Outcome),
}


class Kind:
    """A started supervisor with the Poller and Outcome classes of one task
    type registered, and the Listener its pollers tell."""

    def __init__(self, name, sup, listener):
        self.name = name
        self.tt, self.poller, self.outcome = KINDS[name]
        self.sup = sup
        self.listener = listener
        sup.register_tasks(self.poller, self.outcome)

    def data(self, **data):
        return {"socket": self.listener.path, **data}

    def start(self, task_id=None, **data):
        return self.sup.start_task(self.poller.NAME, self.data(**data), task_id=task_id)

    def expect(self, *events):
        """Receive one message per event in ``events`` (in any order; each
        event once); the messages by event."""
        messages = [self.listener.receive() for _ in events]
        by_event = {message["event"]: message for message in messages}
        assert sorted(m["event"] for m in messages) == sorted(events)
        return by_event

    def alive(self):
        """One more task of this type goes through the same supervisor."""
        record = self.sup.start_task(self.outcome.NAME, {"outcome": "alive"})
        assert record.get(WAIT) == {"outcome": "alive"}


@pytest.fixture
def listener(tmp_path):
    heard = Listener(tmp_path / "s")
    yield heard
    heard.close()


@pytest.fixture(params=list(KINDS))
def kind(request, make_supervisor, listener):
    return Kind(
        request.param, started(make_supervisor, KINDS[request.param][0]), listener
    )


@pytest.fixture
def threads(make_supervisor, listener):
    """The thread kind alone."""
    return Kind("thread", started(make_supervisor), listener)


def alive(sup):
    """One more (function) thread task goes through the same supervisor."""
    assert background_task(abs, supervisor=sup)(-7).get(WAIT) == 7


def stopped(record):
    """``record`` ended CANCELED by a stop."""
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == "stopped"
    with pytest.raises(TaskCancelledError):
        record.get(WAIT)


# ----------------------------------------------------------------------
# Registration
# ----------------------------------------------------------------------


def test_register_before_start_as_a_decorator(make_supervisor) -> None:
    sup = make_supervisor()

    @sup.register_task
    class Poller(Task):
        NAME = "test/poller"

        def start(self):
            return self.data

    assert isinstance(Poller, type) and issubclass(Poller, Task)
    classes = sup.task_classes
    assert classes["test/poller"] is Poller
    assert {"atasker/monitor", "atasker/cleanup"} <= set(classes)
    classes.pop("test/poller")  # a copy
    assert sup.task_classes["test/poller"] is Poller
    sup.start()
    record = sup.start_task("test/poller", {"a": [1, "x", None]})
    assert record.name == "test/poller"
    assert record.get(WAIT) == {"a": [1, "x", None]}


def test_register_tasks_registers_each(make_supervisor) -> None:
    sup = make_supervisor()
    sup.register_tasks(ThreadPoller, ThreadOutcome, AsyncOutcome)
    assert {ThreadPoller.NAME, ThreadOutcome.NAME, AsyncOutcome.NAME} <= set(
        sup.task_classes
    )
    # Registered on this supervisor only.
    assert ThreadPoller.NAME not in make_supervisor().task_classes


def test_register_refuses_a_missing_or_empty_name(make_supervisor) -> None:
    sup = make_supervisor()

    class Nameless(Task):
        def start(self):
            return None

    class Empty(Task):
        NAME = ""

        def start(self):
            return None

    class NotAString(Task):
        NAME = 7

        def start(self):
            return None

    with pytest.raises(ValueError):
        sup.register_task(Nameless)
    with pytest.raises(ValueError):
        sup.register_task(Empty)
    with pytest.raises((TypeError, ValueError)):
        sup.register_task(NotAString)
    assert {"", 7, None}.isdisjoint(sup.task_classes)
    assert set(sup.task_classes) == {"atasker/monitor", "atasker/cleanup"}


def test_register_refuses_a_duplicate_name(make_supervisor) -> None:
    sup = make_supervisor()

    class First(Task):
        NAME = "test/same"

        def start(self):
            return 1

    class Second(Task):
        NAME = "test/same"

        def start(self):
            return 2

    class Monitor(Task):
        NAME = "atasker/monitor"

        def start(self):
            return None

    assert sup.register_task(First) is First
    with pytest.raises(ValueError):
        sup.register_task(Second)
    with pytest.raises(ValueError):
        sup.register_task(Monitor)  # a built-in's name
    assert sup.register_task(First) is First  # the same class again: a no-op
    assert sup.task_classes["test/same"] is First
    assert sup.task_classes["atasker/monitor"] is not Monitor


def test_register_refuses_a_class_without_start(make_supervisor) -> None:
    sup = make_supervisor()

    class NoStart(Task):
        NAME = "test/no-start"

        def stop(self):
            pass

    with pytest.raises(TypeError):
        sup.register_task(NoStart)
    assert "test/no-start" not in sup.task_classes


def test_register_refuses_what_is_not_a_task_class(make_supervisor) -> None:
    sup = make_supervisor()

    class Plain:
        NAME = "test/plain"

        def start(self):
            return None

    def function():
        return None

    for thing in (Plain, Plain(), function):
        with pytest.raises(TypeError):
            sup.register_task(thing)
    assert set(sup.task_classes) == {"atasker/monitor", "atasker/cleanup"}


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("PRIORITY", "high"),
        ("RETRIES", -1),
        ("TIME_LIMIT", "soon"),
        ("RETRY_DELAY", -2),
        ("TT", 99),
    ],
)
def test_register_refuses_a_bad_option(make_supervisor, attribute, value) -> None:
    sup = make_supervisor()
    Poller = type(
        "Poller",
        (Task,),
        {"NAME": "test/bad-option", "start": lambda self: None, attribute: value},
    )
    with pytest.raises((TypeError, ValueError), match=rf"^Poller\.{attribute}\b"):
        sup.register_task(Poller)
    assert "test/bad-option" not in sup.task_classes


def test_register_names_an_attribute_of_options_refused_together(
    make_supervisor,
) -> None:
    sup = make_supervisor()
    Poller = type(  # its __qualname__ is its __name__ (see the test below)
        "Poller",
        (Task,),
        {
            "NAME": "test/delay-and-eta",
            "DELAY": 5,
            "ETA": time.time() + 3600,
            "start": lambda self: None,
        },
    )
    with pytest.raises((TypeError, ValueError), match=r"^Poller\.(DELAY|ETA)\b"):
        sup.register_task(Poller)
    assert "test/delay-and-eta" not in sup.task_classes


def test_register_names_a_local_class_by_its_name(make_supervisor) -> None:
    sup = make_supervisor()

    class Poller(Task):
        NAME = "test/local-bad-option"
        PRIORITY = "high"

        def start(self):
            return None

    with pytest.raises((TypeError, ValueError), match=r"^Poller\.PRIORITY: "):
        sup.register_task(Poller)


def test_register_refuses_a_process_task_with_async_start(make_supervisor) -> None:
    sup = make_supervisor()

    class AsyncInAProcess(Task):
        NAME = "test/async-mp"
        TT = TT_MP

        async def start(self):
            return None

    with pytest.raises(ValueError):
        sup.register_task(AsyncInAProcess)
    assert "test/async-mp" not in sup.task_classes


# ----------------------------------------------------------------------
# start_task: names and data
# ----------------------------------------------------------------------


def test_start_task_unknown_name(threads) -> None:
    with pytest.raises(UnknownTaskError):
        threads.sup.start_task("test/no-such-task")
    with pytest.raises(UnknownTaskError):
        threads.sup.start_task("test/THREAD-POLLER")  # names are exact
    threads.alive()


def test_start_task_needs_a_started_supervisor(make_supervisor) -> None:
    sup = make_supervisor()
    sup.register_task(ThreadOutcome)
    with pytest.raises(SupervisorNotRunningError):
        sup.start_task(ThreadOutcome.NAME, {"outcome": "x"})
    assert type(sup).start_local_task is type(sup).start_task


def test_start_task_refuses_data_that_is_not_json(threads) -> None:
    sup = threads.sup
    name = ThreadOutcome.NAME
    with pytest.raises(TypeError, match=r"data\['x'\]: set is not JSON"):
        sup.start_task(name, {"outcome": "x", "x": {1, 2}})
    with pytest.raises(TypeError, match=r"data\['when'\]: datetime is not JSON"):
        sup.start_task(name, {"outcome": "x", "when": datetime.datetime.now()})
    with pytest.raises(TypeError, match=r"data\['deep'\].*object is not JSON"):
        sup.start_task(name, {"outcome": "x", "deep": [1, {"y": object()}]})
    with pytest.raises(TypeError):
        sup.start_task(name, [("outcome", "x")])  # not a dict
    threads.alive()


def test_start_task_with_a_task_id_and_options(threads) -> None:
    record = threads.sup.start_task(
        ThreadOutcome.NAME, {"outcome": "given"}, task_id="mine", priority=TASK_HIGH
    )
    assert record.id == "mine"
    assert record.name == ThreadOutcome.NAME
    assert record.priority == TASK_HIGH
    assert record.reloads == 0
    assert record.get(WAIT) == {"outcome": "given"}
    with pytest.raises(ValueError):  # as submit's
        threads.sup.start_task(ThreadOutcome.NAME, {"outcome": "x"}, priority="high")
    with pytest.raises(TypeError):
        threads.sup.start_task(ThreadOutcome.NAME, {"outcome": "x"}, bogus=1)
    threads.alive()


# ----------------------------------------------------------------------
# What an instance has
# ----------------------------------------------------------------------


@pytest.mark.parametrize("tt", [TT_THREAD, TT_COROUTINE])
def test_attributes_set_before_init(make_supervisor, tt) -> None:
    sup = started(make_supervisor, tt)
    seen = {}

    class Sync(Task):
        NAME = "test/attributes"

        def __init__(self, url, interval=5):
            seen.update(
                id=self.id, name=self.name, stopping=type(self.stopping), url=url
            )
            self.url = url
            self.interval = interval

        def start(self):
            return [self.url, self.interval, threading.current_thread().name]

    class Async(Task):
        NAME = "test/attributes"

        def __init__(self, url, interval=5):
            seen.update(
                id=self.id, name=self.name, stopping=type(self.stopping), url=url
            )
            self.url = url
            self.interval = interval

        async def start(self):
            return [self.url, self.interval, "loop"]

    sup.register_task(Sync if tt == TT_THREAD else Async)
    record = sup.start_task("test/attributes", {"url": "http://x"})
    url, interval, where = record.get(WAIT)
    assert (url, interval) == ("http://x", 5)
    assert record.tt == tt
    assert seen == {
        "id": record.id,
        "name": "test/attributes",
        "stopping": threading.Event if tt == TT_THREAD else asyncio.Event,
        "url": "http://x",
    }
    if tt == TT_THREAD:
        assert where.startswith(f"supervisor_{sup.id}_pool_")


def test_default_init_keeps_the_data(threads) -> None:
    record = threads.sup.start_task(ThreadOutcome.NAME, {"outcome": "kept"})
    assert record.get(WAIT) == {"outcome": "kept"}
    record = threads.sup.start_task(ThreadOutcome.NAME, None)
    with pytest.raises(KeyError):  # data {}: no "outcome"
        record.get(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert "KeyError" in record.traceback


# ----------------------------------------------------------------------
# Statuses
# ----------------------------------------------------------------------


def test_error_is_task_error() -> None:
    assert Task.Error is TaskError


def test_statuses(kind) -> None:
    name = kind.outcome.NAME
    done = kind.sup.start_task(name, {"outcome": "fine"})
    assert done.get(WAIT) == {"outcome": "fine"}
    assert done.status == TASK_STATUS_COMPLETED

    error = kind.sup.start_task(name, {"outcome": "error"})
    with pytest.raises(TaskError):
        error.get(WAIT)
    assert error.status == TASK_STATUS_ERROR

    exception = kind.sup.start_task(name, {"outcome": "exception"})
    with pytest.raises(ValueError, match="broken"):
        exception.get(WAIT)
    assert exception.status == TASK_STATUS_EXCEPTION
    assert "ValueError" in exception.traceback
    kind.alive()


# ----------------------------------------------------------------------
# stop / reload / restart of a running task (thread, coroutine, process)
# ----------------------------------------------------------------------


def test_stop_a_running_task(kind) -> None:
    record = kind.start(n=1)
    message = kind.expect("started")["started"]
    assert message["id"] == record.id
    assert message["name"] == kind.poller.NAME
    assert message["data"] == kind.data(n=1)
    assert record.name == kind.poller.NAME
    assert record.tt == kind.tt
    assert record.status == TASK_STATUS_STARTED

    assert kind.sup.stop_task(record.id) is record  # wait=True
    stopped(record)  # though start returned a value
    kind.expect("stop")
    assert kind.sup.stop_task(record.id, wait=False) is record  # finished: at once
    stopped(record)
    kind.alive()


def test_reload_a_running_task_keeps_its_record(kind) -> None:
    events = queue.Queue()
    sub = kind.sup.subscribe(kind.poller.NAME, events.put)
    seen = []

    def until(event):
        """The events published up to ``event`` (published by then)."""
        while not seen or seen[-1].event != event:
            seen.append(events.get(timeout=WAIT))

    record = kind.start(task_id="reloaded", n=1)
    kind.expect("started")

    assert kind.sup.reload_task(record.id, kind.data(n=2)) is record
    heard = kind.expect("stop", "started")
    assert heard["stop"]["data"]["n"] == 1
    assert heard["started"]["data"] == kind.data(n=2)  # the new data
    assert heard["started"]["id"] == "reloaded"
    assert record.status == TASK_STATUS_STARTED
    assert kind.sup.get_task("reloaded") is record
    # The supervisor has seen the new run begin (a process task's tells it
    # over the pipe, after the run told the test).
    until("reloaded")
    assert record.reloads == 1

    assert kind.sup.reload_task(record.id) is record  # None: the last data
    heard = kind.expect("stop", "started")
    assert heard["started"]["data"] == kind.data(n=2)

    assert kind.sup.stop_task(record.id) is record
    stopped(record)
    kind.expect("stop")
    assert record.reloads == 2
    assert record.id == "reloaded"
    until("canceled")
    assert [(e.event, e.data) for e in seen] == [
        ("queued", None),
        ("started", None),
        ("reloaded", kind.data(n=2)),
        ("reloaded", kind.data(n=2)),
        ("canceled", "stopped"),
    ]
    sub.unsubscribe()
    kind.alive()


def test_restart_after_stop_is_a_new_record(kind) -> None:
    record = kind.start(n=1)
    kind.expect("started")
    kind.sup.reload_task(record.id, kind.data(n=2))
    kind.expect("stop", "started")
    kind.sup.stop_task(record.id)
    kind.expect("stop")
    stopped(record)

    again = kind.sup.restart_task(record.id)
    assert again is not record
    assert again.id == record.id
    assert again.name == kind.poller.NAME
    message = kind.expect("started")["started"]
    assert message["data"] == kind.data(n=2)  # the last data
    assert kind.sup.get_task(record.id) is again
    assert again.status == TASK_STATUS_STARTED

    kind.sup.stop_task(again.id)
    kind.expect("stop")
    stopped(again)
    stopped(record)  # the old record is as it was
    kind.alive()


def test_restart_a_running_task_is_a_reload(kind) -> None:
    record = kind.start(n=3)
    kind.expect("started")
    assert kind.sup.restart_task(record.id) is record
    heard = kind.expect("stop", "started")
    assert heard["started"]["data"] == kind.data(n=3)
    assert record.status == TASK_STATUS_STARTED
    kind.sup.stop_task(record.id)
    kind.expect("stop")
    stopped(record)
    assert record.reloads == 1
    kind.alive()


def test_a_time_limit_given_at_start_ends_a_running_task(kind) -> None:
    record = kind.sup.start_task(kind.poller.NAME, kind.data(), time_limit=0.2)
    assert record.time_limit == 0.2
    with pytest.raises(TaskTimeoutError):
        record.get(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    kind.alive()


def test_supervisor_stop_stops_a_running_class_task(kind) -> None:
    record = kind.start()
    kind.expect("started")
    kind.sup.stop(wait=WAIT)
    assert record.wait(WAIT)
    stopped(record)
    kind.expect("stop")


# ----------------------------------------------------------------------
# stop / reload / restart: the rest (thread tasks)
# ----------------------------------------------------------------------


def test_restart_of_a_forgotten_record(make_supervisor) -> None:
    sup = started(make_supervisor, keep_finished=0)
    sup.register_task(ThreadOutcome)
    record = sup.start_task(ThreadOutcome.NAME, {"outcome": "once"})
    assert record.get(WAIT) == {"outcome": "once"}
    with pytest.raises(UnknownTaskError, match="keep_finished"):
        sup.restart_task(record.id)
    with pytest.raises(UnknownTaskError):
        sup.restart_task("never-was")
    alive(sup)


def test_restart_of_a_finished_task_after_each_status(threads) -> None:
    name = ThreadOutcome.NAME
    for kind in ("fine", "error", "exception"):
        record = threads.sup.start_task(name, {"outcome": kind})
        assert record.wait(WAIT)
        again = threads.sup.restart_task(record.id)
        assert again is not record and again.id == record.id
        assert again.wait(WAIT)
        assert again.status == record.status


def test_stop_task_errors(threads) -> None:
    with pytest.raises(UnknownTaskError):
        threads.sup.stop_task("never-was")
    function = background_task(abs, supervisor=threads.sup)(-1)
    assert function.get(WAIT) == 1
    assert function.reloads == 0
    with pytest.raises(ValueError):
        threads.sup.stop_task(function.id)
    with pytest.raises(ValueError):
        threads.sup.reload_task(function.id)
    with pytest.raises(ValueError):
        threads.sup.restart_task(function.id)
    with pytest.raises(UnknownTaskError):
        threads.sup.reload_task("never-was")
    threads.alive()


@pytest.mark.parametrize("again", ["reload", "restart"])
def test_the_last_data_is_the_last_given(threads, again) -> None:
    release = threading.Event()
    began = queue.Queue()

    class Held(Task):
        """Stops when asked, but returns only once the test lets it."""

        NAME = "test/held"

        def start(self):
            began.put(self.data["n"])
            wait_stopping(self)
            assert release.wait(WAIT)
            return "done"

    sup = threads.sup
    sup.register_task(Held)
    record = sup.start_task("test/held", {"n": 1})
    assert began.get(timeout=WAIT) == 1
    assert sup.reload_task(record.id, {"n": 2}) is record
    # Still running (held): the same record, asked again with its last data.
    if again == "reload":
        assert sup.reload_task(record.id) is record
    else:
        assert sup.restart_task(record.id) is record
    release.set()
    try:
        assert began.get(timeout=WAIT) == 2  # got 1: the data before the last
    finally:
        sup.stop_task(record.id, wait=WAIT)
    stopped(record)
    threads.alive()


def test_stop_task_waits_as_told_and_calls_stop_once(threads) -> None:
    sup = threads.sup
    release = threading.Event()
    running = threading.Event()
    stops = []

    class Slow(Task):
        """Stops only once the test lets it."""

        NAME = "test/slow"

        def start(self):
            running.set()
            assert release.wait(WAIT)
            return "late"

        def stop(self):
            stops.append(threading.get_ident())

    sup.register_task(Slow)
    record = sup.start_task("test/slow")
    assert running.wait(WAIT)
    assert sup.stop_task(record.id, wait=False) is record
    assert record.status == TASK_STATUS_STARTED
    assert sup.stop_task(record.id, wait=0.05) is record  # at most that long
    assert record.status == TASK_STATUS_STARTED
    release.set()
    assert record.wait(WAIT)
    stopped(record)
    assert stops == [threading.get_ident()]  # once, from the stopper's thread
    threads.alive()


@pytest.mark.parametrize(
    ("raised", "status"),
    [("error", TASK_STATUS_ERROR), ("exception", TASK_STATUS_EXCEPTION)],
)
def test_a_failure_after_stop_is_its_status(threads, raised, status) -> None:
    class FailsWhenStopped(Task):
        NAME = "test/fails-when-stopped"

        def start(self):
            announce(self)
            wait_stopping(self)
            self.data["outcome"] = raised
            return outcome(self)

    threads.sup.register_task(FailsWhenStopped)
    record = threads.sup.start_task(FailsWhenStopped.NAME, threads.data(n=1))
    threads.expect("started")
    # A reload: how the old instance ended does not end the record.
    assert threads.sup.reload_task(record.id, threads.data(n=2)) is record
    assert threads.expect("started")["started"]["data"]["n"] == 2
    assert record.status == TASK_STATUS_STARTED
    assert threads.sup.stop_task(record.id) is record
    assert record.status == status
    assert record.reloads == 1
    threads.alive()


def test_stop_and_reload_of_a_queued_task(make_supervisor, gate: Gate, listener):
    sup = started(make_supervisor, threads=1)
    ran = []

    class Counted(Task):
        NAME = "test/counted"

        def start(self):
            ran.append(self.data["n"])
            return self.data["n"]

    sup.register_task(Counted)
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()

    queued = sup.start_task("test/counted", {"n": 1})
    assert queued.status == TASK_STATUS_QUEUED
    assert sup.stop_task(queued.id, wait=False) is queued
    stopped(queued)  # at once

    other = sup.start_task("test/counted", {"n": 2})
    new = sup.reload_task(other.id, {"n": 3})
    assert new is not other and new.id == other.id
    assert other.status == TASK_STATUS_CANCELED
    assert other.cancel_reason == "reloaded"
    assert new.reloads == other.reloads + 1 == 1
    assert sup.restart_task(new.id) is new  # queued: unchanged

    gate.release.set()
    assert blocker.get(WAIT) == "released"
    assert new.get(WAIT) == 3
    assert ran == [3]  # neither the stopped nor the replaced one ran
    alive(sup)


def test_reload_of_a_finished_task_is_a_new_record(threads) -> None:
    record = threads.start(n=1)
    threads.expect("started")
    threads.sup.stop_task(record.id)
    threads.expect("stop")
    again = threads.sup.reload_task(record.id, threads.data(n=9))
    assert again is not record and again.id == record.id
    assert again.reloads == record.reloads + 1
    assert threads.expect("started")["started"]["data"] == threads.data(n=9)
    threads.sup.stop_task(again.id)
    threads.expect("stop")
    stopped(again)
    threads.alive()


@pytest.mark.parametrize("name", ["thread", "process"])
def test_supervisor_stop_cancels_a_queued_class_task(make_supervisor, listener, name):
    sup = started(make_supervisor, KINDS[name][0], threads=1)
    kind = Kind(name, sup, listener)
    running = kind.start(n=1)
    kind.expect("started")
    queued = kind.start(n=2)  # the only thread is taken
    assert queued.status == TASK_STATUS_QUEUED
    sup.stop(wait=WAIT)
    assert running.wait(WAIT) and queued.wait(WAIT)
    stopped(running)
    stopped(queued)
    message = kind.expect("stop")["stop"]
    assert message["data"]["n"] == 1  # the queued one never started


# ----------------------------------------------------------------------
# provide_context
# ----------------------------------------------------------------------


class Order:
    """Steps, each with its thread, in order; ``exits`` counts the exits."""

    def __init__(self):
        self._lock = threading.Lock()
        self.entries = []
        self.started = threading.Semaphore(0)
        self.exits = threading.Semaphore(0)

    def note(self, step):
        with self._lock:
            self.entries.append((step, threading.get_ident()))
        if step == "start":
            self.started.release()
        if step == "exit":
            self.exits.release()

    @property
    def steps(self):
        with self._lock:
            return [step for step, _ in self.entries]

    def thread_of(self, step, nth=0):
        with self._lock:
            return [t for s, t in self.entries if s == step][nth]

    def wait(self, semaphore):
        assert semaphore.acquire(timeout=WAIT), "timed out"


def test_provide_context_thread(threads) -> None:
    order = Order()

    class Context(Task):
        NAME = "test/context"

        @staticmethod
        @contextlib.contextmanager
        def provide_context():
            order.note("enter")
            try:
                yield
            finally:
                order.note("exit")

        def __init__(self, wait=True):
            order.note("init")
            self.wait_for_stop = wait

        def start(self):
            order.note("start")
            if self.wait_for_stop:
                return "stopped" if wait_stopping(self) else "never stopped"
            return "done"

        def stop(self):
            order.note("stop")

    sup = threads.sup
    sup.register_task(Context)
    record = sup.start_task("test/context")
    order.wait(order.started)
    sup.reload_task(record.id)  # a new run: the context again
    order.wait(order.exits)
    order.wait(order.started)
    sup.stop_task(record.id)
    order.wait(order.exits)
    run = ["enter", "init", "start", "stop", "exit"]
    assert order.steps == run + run
    stopped(record)
    for nth in (0, 1):
        # The run in the thread of start; stop() in the stopper's.
        start = order.thread_of("start", nth)
        assert order.thread_of("enter", nth) == order.thread_of("init", nth) == start
        assert order.thread_of("exit", nth) == start
        assert order.thread_of("stop", nth) == threading.get_ident() != start

    order.entries.clear()
    done = sup.start_task("test/context", {"wait": False})
    assert done.get(WAIT) == "done"
    order.wait(order.exits)
    assert order.steps == ["enter", "init", "start", "exit"]  # no stop: none asked
    threads.alive()


def test_provide_context_coroutine(make_supervisor) -> None:
    sup = started(make_supervisor, TT_COROUTINE)
    order = Order()

    class Context(Task):
        NAME = "test/async-context"

        @staticmethod
        @contextlib.asynccontextmanager
        async def provide_context():
            order.note("enter")
            try:
                yield
            finally:
                order.note("exit")

        def __init__(self):
            order.note("init")

        async def start(self):
            order.note("start")
            await asyncio.wait_for(self.stopping.wait(), WAIT)
            return "stopped"

        def stop(self):
            order.note("stop")

    sup.register_task(Context)
    record = sup.start_task("test/async-context")
    order.wait(order.started)
    assert sup.stop_task(record.id) is record
    order.wait(order.exits)
    assert order.steps == ["enter", "init", "start", "stop", "exit"]
    stopped(record)
    # All on the loop's thread.
    assert len({order.thread_of(step) for step in order.steps}) == 1


def test_provide_context_process(make_supervisor, listener) -> None:
    sup = started(make_supervisor, TT_MP)
    sup.register_tasks(classtasks_mp.ContextOrder, classtasks_mp.Outcome)
    name = classtasks_mp.ContextOrder.NAME
    record = sup.start_task(name, {"socket": listener.path})
    assert listener.receive() == {"event": "started", "id": record.id}
    assert sup.stop_task(record.id) is record
    message = listener.receive()
    assert message["event"] == "order"
    steps = [step for step, _ in message["steps"]]
    assert steps == ["enter", "init", "start", "stop", "exit"]
    threads = dict(message["steps"])
    assert threads["enter"] == threads["init"] == threads["start"] == threads["exit"]
    assert threads["stop"] != threads["start"]  # a control thread in the worker
    stopped(record)

    done = sup.start_task(name, {"socket": listener.path, "stop": False})
    assert listener.receive() == {"event": "started", "id": done.id}
    assert done.get(WAIT) == "done"
    message = listener.receive()
    assert [step for step, _ in message["steps"]] == ["enter", "init", "start", "exit"]
    outcome = sup.start_task(classtasks_mp.Outcome.NAME, {"outcome": "alive"})
    assert outcome.get(WAIT) == {"outcome": "alive"}


# ----------------------------------------------------------------------
# Class options
# ----------------------------------------------------------------------


def test_class_priority(make_supervisor, gate: Gate) -> None:
    sup = started(make_supervisor, threads=1)
    ran = []

    class Urgent(Task):
        NAME = "test/urgent"
        PRIORITY = TASK_HIGH

        def start(self):
            ran.append(self.data.get("label", "class"))

    sup.register_task(Urgent)
    blocker = background_task(gate.block, supervisor=sup)()
    gate.wait_started()
    normal = background_task(ran.append, supervisor=sup)("function")
    urgent = sup.start_task("test/urgent")
    lowered = sup.start_task("test/urgent", {"label": "lowered"}, priority=TASK_LOW)
    assert urgent.priority == TASK_HIGH
    assert lowered.priority == TASK_LOW  # start_task's option wins
    gate.release.set()
    for record in (blocker, normal, urgent, lowered):
        assert record.wait(WAIT)
    assert ran == ["class", "function", "lowered"]


def test_class_retries(threads) -> None:
    attempts = []

    class Flaky(Task):
        NAME = "test/flaky"
        RETRIES = 2

        def start(self):
            attempts.append(self.id)
            if len(attempts) <= 2:
                raise ValueError(f"attempt {len(attempts)}")
            return len(attempts)

    threads.sup.register_task(Flaky)
    record = threads.sup.start_task("test/flaky")
    assert record.get(WAIT) == 3
    assert record.retries == 2
    assert attempts == [record.id] * 3

    attempts.clear()
    once = threads.sup.start_task("test/flaky", retries=0)  # overrides RETRIES
    with pytest.raises(ValueError, match="attempt 1"):
        once.get(WAIT)
    assert attempts == [once.id]


def test_class_time_limit(threads) -> None:
    class Busy(Task):
        NAME = "test/busy"
        TIME_LIMIT = 0.1

        def start(self):
            # Pure Python: the limit's asynchronous exception arrives at once.
            deadline = time.monotonic() + WAIT / 2
            while time.monotonic() < deadline:
                pass
            return "not interrupted"

    threads.sup.register_task(Busy)
    record = threads.sup.start_task("test/busy")
    assert record.time_limit == 0.1
    with pytest.raises(TaskTimeoutError):
        record.get(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    threads.alive()


# ----------------------------------------------------------------------
# emit
# ----------------------------------------------------------------------


def test_emit_checks_its_arguments(threads) -> None:
    refused = {}

    class Emits(Task):
        NAME = "test/emits"

        def start(self):
            for event, data in (
                ("", None),
                ("started", None),
                ("canceled", None),
                ("reloaded", None),
                ("fine", {"when": datetime.datetime.now()}),
            ):
                try:
                    self.emit(event, data)
                except (TypeError, ValueError) as exc:
                    refused[event] = exc
            self.emit("fine", {"n": [1, 2]})
            return "emitted"

    events = queue.Queue()
    threads.sup.register_task(Emits)
    sub = threads.sup.subscribe("test/emits", events.put)
    record = threads.sup.start_task("test/emits")
    assert record.get(WAIT) == "emitted"
    assert sorted(refused) == ["", "canceled", "fine", "reloaded", "started"]
    for event in ("", "started", "canceled", "reloaded"):
        assert type(refused[event]) is ValueError
    assert type(refused["fine"]) is TypeError
    assert "data['when']: datetime is not JSON" in str(refused["fine"])
    seen = []
    while not seen or seen[-1].event != "success":
        seen.append(events.get(timeout=WAIT))
    assert [e.event for e in seen] == ["queued", "started", "fine", "success"]
    assert seen[2].data == {"n": [1, 2]}
    sub.unsubscribe()


def test_process_task_emits_and_is_stopped(make_supervisor) -> None:
    sup = started(make_supervisor, TT_MP)
    sup.register_tasks(classtasks_mp.Emitter, classtasks_mp.Outcome)
    name = classtasks_mp.Emitter.NAME
    events = queue.Queue()
    sub = sup.subscribe(name, events.put)
    record = sup.start_task(name, {"ticks": 3})

    seen = []
    while [e.event for e in seen].count("tick") < 3:
        seen.append(events.get(timeout=WAIT))
    assert sup.stop_task(record.id) is record
    stopped(record)
    while seen[-1].event != "canceled":
        seen.append(events.get(timeout=WAIT))
    assert [e.event for e in seen] == [
        "queued",
        "started",
        "tick",
        "tick",
        "tick",
        "bye",
        "canceled",
    ]
    assert [e.data for e in seen if e.event == "tick"] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert seen[-2].data == {"stopped": True}
    assert seen[-1].data == "stopped"
    assert {(e.task_id, e.task_name) for e in seen} == {(record.id, name)}
    sub.unsubscribe()
    outcome = sup.start_task(classtasks_mp.Outcome.NAME, {"outcome": "alive"})
    assert outcome.get(WAIT) == {"outcome": "alive"}


def test_reload_refuses_data_that_is_not_json(threads) -> None:
    record = threads.start(n=1)
    threads.expect("started")
    with pytest.raises(TypeError, match=r"data\['x'\]: set is not JSON"):
        threads.sup.reload_task(record.id, threads.data(x={1}))
    with pytest.raises(TypeError):
        threads.sup.reload_task(record.id, ["not", "a", "dict"])
    assert record.status == TASK_STATUS_STARTED
    threads.sup.stop_task(record.id)
    assert threads.expect("stop")["stop"]["data"]["n"] == 1  # never reloaded
    assert record.reloads == 0
    stopped(record)
    threads.alive()


@pytest.mark.parametrize("name", ["thread", "process"])
def test_stop_and_restart_of_a_queued_task(make_supervisor, listener, name):
    sup = started(make_supervisor, KINDS[name][0], threads=1)
    kind = Kind(name, sup, listener)
    running = kind.start(n=1)
    kind.expect("started")
    queued = kind.start(n=2)  # the only thread (or process) is taken
    assert queued.status == TASK_STATUS_QUEUED
    assert sup.restart_task(queued.id) is queued  # queued: left as it is
    assert sup.stop_task(queued.id, wait=False) is queued
    stopped(queued)  # at once
    sup.stop_task(running.id)
    assert kind.expect("stop")["stop"]["data"]["n"] == 1
    stopped(running)
    kind.alive()  # the stopped one never ran: the next task's turn came


def test_delay_option_and_a_delayed_task(threads) -> None:
    class Later(Task):
        NAME = "test/later"
        DELAY = WAIT * 6  # never due in this test

        def start(self):
            return "ran"

    sup = threads.sup
    sup.register_task(Later)
    delayed = sup.start_task("test/later", {"n": 1})
    assert delayed.status == TASK_STATUS_DELAYED
    assert sup.stop_task(delayed.id) is delayed
    stopped(delayed)

    other = sup.start_task("test/later", {"n": 2})
    new = sup.reload_task(other.id, {"n": 3})
    assert other.status == TASK_STATUS_CANCELED
    assert other.cancel_reason == "reloaded"
    assert new is not other and new.id == other.id and new.reloads == 1
    now = sup.reload_task(new.id, {"n": 4})
    assert now.reloads == 2
    assert sup.start_task("test/later", {"n": 5}, delay=0).get(WAIT) == "ran"
    sup.stop_task(now.id)
    stopped(now)


def test_emit_checks_its_arguments_in_a_process(make_supervisor) -> None:
    sup = started(make_supervisor, TT_MP)
    sup.register_task(classtasks_mp.BadEmits)
    events = queue.Queue()
    sub = sup.subscribe(classtasks_mp.BadEmits.NAME, events.put)
    record = sup.start_task(classtasks_mp.BadEmits.NAME)
    refused = record.get(WAIT)
    assert sorted(refused) == ["", "fine", "reloaded", "started", "success"]
    for event in ("", "started", "success", "reloaded"):
        assert refused[event][0] == "ValueError"
    assert refused["fine"][0] == "TypeError"
    assert "data['s']: set is not JSON" in refused["fine"][1]
    seen = []
    while not seen or seen[-1].event != "success":
        seen.append(events.get(timeout=WAIT))
    assert [e.event for e in seen] == ["queued", "started", "fine", "success"]
    assert seen[2].data == {"n": 1}
    sub.unsubscribe()


@pytest.mark.parametrize("request_", ["stop", "reload"])
def test_stop_or_reload_while_waiting_for_the_next_attempt(threads, request_):
    calls = []

    class FailsFirst(Task):
        NAME = "test/fails-first"
        RETRIES = 1
        RETRY_DELAY = 3600

        def start(self):
            calls.append(self.data["n"])
            if len(calls) == 1:
                raise ValueError("first attempt")
            return self.data["n"]

    sup = threads.sup
    sup.register_task(FailsFirst)
    scheduled = retry_scheduled(sup)
    record = sup.start_task("test/fails-first", {"n": 1})
    assert scheduled.wait(WAIT)
    assert record.status == TASK_STATUS_DELAYED
    if request_ == "stop":
        assert sup.stop_task(record.id, wait=False) is record
        stopped(record)
    else:
        new = sup.reload_task(record.id, {"n": 2})
        assert record.status == TASK_STATUS_CANCELED
        assert record.cancel_reason == "reloaded"
        assert new is not record and new.id == record.id and new.reloads == 1
        assert new.get(WAIT) == 2  # its first attempt: it does not fail
    assert calls == ([1] if request_ == "stop" else [1, 2])
    threads.alive()


def test_loop_option(make_supervisor) -> None:
    sup = started(make_supervisor, TT_COROUTINE)
    sup.create_aloop("side")

    class OnTheSide(Task):
        NAME = "test/side"
        LOOP = "side"

        async def start(self):
            return threading.current_thread().name

    class OnMain(Task):
        NAME = "test/main"

        async def start(self):
            return threading.current_thread().name

    sup.register_tasks(OnTheSide, OnMain)
    prefix = f"supervisor_{sup.id}_aloop_"
    assert sup.start_task("test/side").get(WAIT) == prefix + "side"
    assert sup.start_task("test/main").get(WAIT) == prefix + "main"


# A stop asked before the instance is ready (its context being entered, its
# __init__ running) is kept, and stop() is called once __init__ returned,
# before start: never on a half-built instance, never lost.


class SlowInit(Task):
    NAME = "test/slow-init"
    gate = threading.Event()
    in_init = threading.Event()
    calls: ClassVar[list[str]] = []

    def __init__(self) -> None:
        SlowInit.in_init.set()
        SlowInit.gate.wait(WAIT)
        self.released = threading.Event()
        SlowInit.calls.append("init")

    def start(self) -> bool:
        SlowInit.calls.append("start")
        return self.released.wait(WAIT)

    def stop(self) -> None:
        SlowInit.calls.append("stop")
        self.released.set()


def test_a_stop_during_init_calls_stop_once_init_returned(threads) -> None:
    SlowInit.gate.clear()
    SlowInit.in_init.clear()
    SlowInit.calls.clear()
    threads.sup.register_task(SlowInit)
    record = threads.sup.start_task("test/slow-init")
    assert SlowInit.in_init.wait(WAIT)
    threads.sup.stop_task(record.id, wait=False)
    SlowInit.gate.set()
    assert record.wait(WAIT)
    assert record.status == TASK_STATUS_CANCELED
    assert record.cancel_reason == "stopped"
    assert SlowInit.calls == ["init", "stop", "start"]
    threads.alive()
