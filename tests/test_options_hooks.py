"""Hooks: on_start, on_success, on_error, on_retry, after_return.

Their order, the thread they run in, that waiters wake first, and that a
hook that raises (even a BaseException) changes nothing but a log record.
"""

from __future__ import annotations

import logging
import threading

import mptasks
import pytest
from conftest import WAIT

from atasker import (
    TASK_STATUS_COMPLETED,
    TASK_STATUS_EXCEPTION,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
    background_task,
)

HOOKS = ("on_start", "on_success", "on_error", "on_retry", "after_return")
KINDS = {"thread": TT_THREAD, "process": TT_MP, "coroutine": TT_COROUTINE}


class Log:
    """What the hooks and the function did, in order, and in which thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.entries = []  # (event, thread name, the hook's record, its argument)

    def add(self, event, record=None, argument=None):
        with self._lock:
            self.entries.append(
                (event, threading.current_thread().name, record, argument)
            )

    @property
    def events(self):
        return [entry[0] for entry in self.entries]

    def hooks(self, raising=None, last=None):
        """Every hook, logging itself; ``raising`` (an exception class) is
        raised by each after it logged; ``last`` is set after after_return."""

        def hook(name):
            def run(record, *argument):
                self.add(name, record, argument[0] if argument else None)
                if name == "after_return" and last is not None:
                    last.set()
                if raising is not None:
                    raise raising(f"{name} refused")

            return run

        return {name: hook(name) for name in HOOKS}


def thread_double(log, x):
    log.add("function")
    return x * 2


async def coroutine_double(log, x):
    log.add("function")
    return x * 2


def thread_fail(log, message):
    log.add("function")
    raise ValueError(message)


async def coroutine_fail(log, message):
    log.add("function")
    raise ValueError(message)


class Kind:
    """Runs the same test body as a thread, process or coroutine task."""

    def __init__(self, name, supervisor, log):
        self.name = name
        self.tt = KINDS[name]
        self.supervisor = supervisor
        self.log = log

    def task(self, outcome, *args, **options):
        """Queue a task that doubles ``args[0]`` (``outcome="double"``) or
        raises ValueError(args[0]) (``"fail"``); the thread and coroutine
        versions log "function" when they run."""
        if self.tt == TT_MP:
            target = {"double": mptasks.add, "fail": mptasks.fail}[outcome]
            args = (args[0], args[0]) if outcome == "double" else args
        else:
            target = {
                (TT_THREAD, "double"): thread_double,
                (TT_THREAD, "fail"): thread_fail,
                (TT_COROUTINE, "double"): coroutine_double,
                (TT_COROUTINE, "fail"): coroutine_fail,
            }[self.tt, outcome]
            args = (self.log, *args)
        return background_task(
            target, tt=self.tt, supervisor=self.supervisor, **options
        )(*args)

    def function(self):
        """The function's own entry in the log (a process task's is in its
        worker)."""
        return [] if self.tt == TT_MP else ["function"]

    def thread_prefix(self):
        return f"supervisor_{self.supervisor.id}_"


@pytest.fixture(params=list(KINDS))
def kind(request, make_supervisor):
    sup = make_supervisor(keep_finished=100)
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    if request.param == "process":
        sup.create_mp_pool(processes=1)
    if request.param == "coroutine":
        sup.create_aloop("main", default=True)
    sup.start()
    return Kind(request.param, sup, Log())


def test_order_on_success(kind) -> None:
    last = threading.Event()
    record = kind.task("double", 3, **kind.log.hooks(last=last))
    assert record.tt == kind.tt
    assert record.get(WAIT) == 6
    assert last.wait(WAIT)
    assert kind.log.events == [
        "on_start",
        *kind.function(),
        "on_success",
        "after_return",
    ]
    hooks = [entry for entry in kind.log.entries if entry[0] != "function"]
    assert all(entry[2] is record for entry in hooks)  # each gets the record
    assert hooks[1][3] == 6  # on_success gets the result


def test_order_on_error(kind) -> None:
    last = threading.Event()
    record = kind.task("fail", "broken", **kind.log.hooks(last=last))
    with pytest.raises(ValueError, match="broken"):
        record.get(WAIT)
    assert last.wait(WAIT)
    assert kind.log.events == ["on_start", *kind.function(), "on_error", "after_return"]
    error = kind.log.entries[-2][3]
    assert error is record.exception  # on_error gets the exception


def test_order_with_retries(kind) -> None:
    finished = threading.Semaphore(0)
    hooks = kind.log.hooks()
    after_return = hooks["after_return"]

    def count_after_return(record):
        after_return(record)
        finished.release()

    hooks["after_return"] = count_after_return
    record = kind.task("fail", "again", retries=2, **hooks)
    with pytest.raises(ValueError, match="again"):
        record.get(WAIT)
    for _ in range(3):
        assert finished.acquire(timeout=WAIT)
    attempt = ["on_start", *kind.function()]
    assert kind.log.events == [
        *attempt,
        "on_retry",
        "after_return",
        *attempt,
        "on_retry",
        "after_return",
        *attempt,
        "on_error",
        "after_return",
    ]
    retried = [entry[3] for entry in kind.log.entries if entry[0] == "on_retry"]
    assert [str(exc) for exc in retried] == ["again", "again"]
    assert record.retries == 2 and len(record.attempts) == 3


def test_where_hooks_run(kind) -> None:
    last = threading.Event()
    record = kind.task("double", 1, **kind.log.hooks(last=last))
    assert record.get(WAIT) == 2
    assert last.wait(WAIT)
    threads = {entry[1] for entry in kind.log.entries}
    prefix = kind.thread_prefix()
    if kind.tt == TT_THREAD:
        # All in the task's thread, a pool thread.
        assert len(threads) == 1
        assert threads.pop().startswith(f"{prefix}pool_")
    elif kind.tt == TT_COROUTINE:
        # All in the loop's thread, where the coroutine ran.
        assert threads == {f"{prefix}aloop_main"}
    else:
        # In this process (the list is ours), on a thread of the supervisor
        # that is not one of its internal ones.
        assert record.tt == TT_MP
        for name in threads:
            assert name.startswith(prefix)
            assert not name.endswith(("mp_manager", "timer"))


def test_waiters_wake_before_on_success(kind) -> None:
    woken = threading.Event()
    seen = []
    done = threading.Event()

    def on_success(record, result):
        seen.append(woken.wait(WAIT))  # the test's get() returned first
        done.set()

    record = kind.task("double", 4, on_success=on_success)
    assert record.get(WAIT) == 8
    woken.set()
    assert done.wait(WAIT)
    assert seen == [True]


class HookErrors(logging.Handler):
    """The atasker log records of hooks that raised."""

    def __init__(self, expected):
        super().__init__(logging.ERROR)
        self.records = []
        self.expected = expected
        self.enough = threading.Event()

    def emit(self, record):
        message = record.getMessage()
        if any(f"{hook} hook" in message for hook in HOOKS):
            self.records.append(record)
            if len(self.records) >= self.expected:
                self.enough.set()


@pytest.fixture
def hook_errors():
    logger = logging.getLogger("atasker")
    handlers = []

    def install(expected):
        handler = HookErrors(expected)
        logger.addHandler(handler)
        handlers.append(handler)
        return handler

    yield install
    for handler in handlers:
        logger.removeHandler(handler)


@pytest.mark.parametrize("raising", [RuntimeError, SystemExit, KeyboardInterrupt])
def test_raising_hooks_on_success_change_nothing(kind, hook_errors, raising) -> None:
    errors = hook_errors(expected=3)  # on_start, on_success, after_return
    results = []
    called = threading.Event()

    def callback(result):
        results.append(result)
        called.set()

    record = kind.task("double", 5, callback=callback, **kind.log.hooks(raising))
    assert record.get(WAIT) == 10
    assert called.wait(WAIT)  # the callback option runs after the hooks
    assert errors.enough.wait(WAIT)
    assert results == [10]
    assert record.status == TASK_STATUS_COMPLETED and record.exception is None
    assert kind.log.events == [
        "on_start",
        *kind.function(),
        "on_success",
        "after_return",
    ]
    _check_logged(errors, raising, ["on_start", "on_success", "after_return"])
    _check_alive(kind)


@pytest.mark.parametrize("raising", [RuntimeError, SystemExit])
def test_raising_hooks_on_failure_change_nothing(kind, hook_errors, raising) -> None:
    # on_start, on_retry, after_return; on_start, on_error, after_return
    errors = hook_errors(expected=6)
    record = kind.task("fail", "real", retries=1, **kind.log.hooks(raising))
    with pytest.raises(ValueError, match="real"):
        record.get(WAIT)
    assert errors.enough.wait(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert isinstance(record.exception, ValueError)
    assert record.retries == 1
    assert [attempt.exception for attempt in record.attempts] == [
        "ValueError('real')"
    ] * 2
    _check_logged(
        errors,
        raising,
        [
            "on_start",
            "on_retry",
            "after_return",
            "on_start",
            "on_error",
            "after_return",
        ],
    )
    _check_alive(kind)


def _check_logged(errors, raising, hooks):
    messages = [record.getMessage() for record in errors.records]
    assert [next(h for h in HOOKS if f"{h} hook" in m) for m in messages] == hooks
    for record in errors.records:
        assert record.exc_info is not None and record.exc_info[0] is raising
        assert record.levelno == logging.ERROR


def _check_alive(kind):
    """The pool (or loop) that ran the hooks still runs tasks."""
    assert kind.task("double", 21).get(WAIT) == 42


def test_a_hook_may_wait_for_another_task(kind) -> None:
    """Hooks hold no internal lock and block no internal thread: one may
    submit a task and wait for it (a coroutine's hook, in the loop's thread,
    waits for a thread task)."""
    inner_kind = (
        Kind("thread", kind.supervisor, kind.log) if kind.tt == TT_COROUTINE else kind
    )
    results = []
    done = threading.Event()

    def on_success(record, result):
        results.append(inner_kind.task("double", result).get(WAIT))
        results.append(record.cancel())  # final already
        done.set()

    record = kind.task("double", 2, on_success=on_success)
    assert record.get(WAIT) == 4
    assert done.wait(WAIT)
    assert results == [8, False]
