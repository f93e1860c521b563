"""The event bus: lifecycle events of thread, process and coroutine tasks
(success, error, exception, retry, canceled queued, expired or running,
delayed), what function and class tasks emit (and what emit refuses),
callback subscribers and async event streams (on asyncio.run or an aloop),
glob patterns, unsubscribe, argument errors, a slow subscriber (bounded
buffer, the oldest dropped), a callback that raises, supervisor stop and
restart; and the built-in class tasks atasker/monitor and atasker/cleanup.

Every wait is for an event a callback put in a queue (or a stream yielded),
with a timeout; tests/events_mp.py holds the targets (process tasks too)."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time

import events_mp
import mptasks
import pytest
from conftest import WAIT, started

from atasker import (
    LIFECYCLE_EVENTS,
    TASK_STATUS_CANCELED,
    TASK_STATUS_ERROR,
    TASK_STATUS_EXCEPTION,
    TT_COROUTINE,
    TT_MP,
    TT_THREAD,
    EventStream,
    Subscription,
    TaskEvent,
    UnknownTaskError,
    background_task,
    current_task,
    wait_completed,
)

KINDS = {"thread": TT_THREAD, "process": TT_MP, "coroutine": TT_COROUTINE}
FINAL = ("success", "error", "exception", "canceled")
EMITTERS = {
    "thread": events_mp.Emitter,
    "process": events_mp.ProcessEmitter,
    "coroutine": events_mp.AsyncEmitter,
}


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------


class Collector:
    """A subscriber's callback: events go to a queue; ``until`` takes them
    (each wait at most WAIT seconds) until one matches."""

    def __init__(self) -> None:
        self.queue: queue.Queue[TaskEvent] = queue.Queue()
        self.events: list[TaskEvent] = []
        self.threads: set[str] = set()

    def __call__(self, event: TaskEvent) -> None:
        self.threads.add(threading.current_thread().name)
        self.queue.put(event)

    def until(self, predicate) -> TaskEvent:
        while True:
            try:
                event = self.queue.get(timeout=WAIT)
            except queue.Empty:
                pytest.fail(
                    f"no such event within {WAIT}s; got {len(self.events)}, "
                    f"the last: {self.events[-5:]}"
                )
            self.events.append(event)
            if predicate(event):
                return event

    def final(self, task_id: str) -> TaskEvent:
        """The final event of ``task_id``: taken already, or taken now."""
        predicate = final_of(task_id)
        for event in self.events:
            if predicate(event):
                return event
        return self.until(predicate)

    def drain(self) -> list[TaskEvent]:
        """Take what is in the queue now (after a stop delivered all)."""
        while True:
            try:
                self.events.append(self.queue.get_nowait())
            except queue.Empty:
                return self.events

    def of(self, task_id: str) -> list[TaskEvent]:
        return [e for e in self.events if e.task_id == task_id]

    def names_of(self, task_id: str) -> list[str]:
        return [e.event for e in self.of(task_id)]


def as_coroutine(function):
    """A coroutine function that awaits once, then calls ``function`` (so
    that current_context() inside it is the coroutine task's)."""

    async def run(*args, **kwargs):
        await asyncio.sleep(0)
        return function(*args, **kwargs)

    return run


def task(sup, kind, function, name, **options):
    """``function`` (top level in events_mp) as a task function of ``kind``,
    named ``name``."""
    if kind == "coroutine":
        function = as_coroutine(function)
    return background_task(
        function, name=name, tt=KINDS[kind], supervisor=sup, **options
    )


def event_threads(sup) -> list[threading.Thread]:
    prefix = f"supervisor_{sup.id}_events"
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


async def take_until(stream, predicate, timeout=WAIT) -> list[TaskEvent]:
    """Events of ``stream`` up to the first that matches ``predicate``."""
    got: list[TaskEvent] = []

    async def run():
        async for event in stream:
            got.append(event)
            if predicate(event):
                return
        pytest.fail(f"the stream ended first; got {got[-5:]}")

    try:
        await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"no such event within {timeout}s; got {got[-5:]}")
    return got


async def take_all(stream, timeout=WAIT) -> list[TaskEvent]:
    """Every event of ``stream`` until it ends."""
    got: list[TaskEvent] = []

    async def run():
        async for event in stream:
            got.append(event)

    try:
        await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"the stream did not end within {timeout}s; got {got[-5:]}")
    return got


def final_of(task_id):
    return lambda e: e.task_id == task_id and e.event in FINAL


class LogRecords(logging.Handler):
    """The atasker log records at ``level`` or above; ``wait_for`` waits
    for one that matches."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.records.append(record)
            self.changed.notify_all()

    def wait_for(self, predicate) -> logging.LogRecord:
        with self.changed:
            found: list[logging.LogRecord] = []

            def match():
                found[:] = [r for r in self.records if predicate(r)]
                return bool(found)

            assert self.changed.wait_for(match, WAIT), (
                f"no such log record; got {[r.getMessage() for r in self.records]}"
            )
            return found[0]


@pytest.fixture
def atasker_log():
    logger = logging.getLogger("atasker")
    handler = LogRecords(logging.WARNING)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def full_text(record: logging.LogRecord) -> str:
    """A log record's message with its traceback, if any."""
    text = record.getMessage()
    if record.exc_info:
        text += "\n" + logging.Formatter().formatException(record.exc_info)
    return text


@pytest.fixture(params=list(KINDS))
def kind(request):
    return request.param


@pytest.fixture
def sup(make_supervisor, kind):
    """A started supervisor for tasks of ``kind``."""
    return started(make_supervisor, KINDS[kind])


# ----------------------------------------------------------------------
# Public names
# ----------------------------------------------------------------------


def test_public_names() -> None:
    assert LIFECYCLE_EVENTS == (
        "queued",
        "started",
        "retry",
        "success",
        "error",
        "exception",
        "canceled",
    )
    assert TaskEvent._fields == ("task_id", "task_name", "event", "data", "time")
    event = TaskEvent("id", "name", "tick", {"a": 1}, 1.0)
    with pytest.raises(AttributeError):
        event.data = None  # type: ignore[misc]


# ----------------------------------------------------------------------
# Lifecycle events, for each kind of task
# ----------------------------------------------------------------------


def test_lifecycle_on_success(sup, kind) -> None:
    got = Collector()
    sub = sup.subscribe("*", got)
    assert isinstance(sub, Subscription)
    assert sub.pattern == "*" and sub.active and sub.dropped == 0
    name = f"events/{kind}/double"
    before = time.time()
    record = task(sup, kind, events_mp.double, name)(21)
    assert record.get(WAIT) == 42
    got.final(record.id)
    after = time.time()
    events = got.of(record.id)
    assert [e.event for e in events] == ["queued", "started", "success"]
    assert [e.data for e in events] == [None, None, 42]
    assert all(isinstance(e, TaskEvent) for e in events)
    assert {e.task_name for e in events} == {name}
    times = [e.time for e in events]
    assert times == sorted(times)
    assert before <= times[0] and times[-1] <= after
    # The callback runs on the subscription's own thread.
    assert len(got.threads) == 1
    assert got.threads.pop().startswith(f"supervisor_{sup.id}_events")


def test_lifecycle_on_task_error(sup, kind) -> None:
    got = Collector()
    sup.subscribe("*", got)
    record = task(sup, kind, events_mp.raise_task_error, f"events/{kind}/error")(
        "bad input"
    )
    got.final(record.id)
    assert record.status == TASK_STATUS_ERROR
    assert got.names_of(record.id) == ["queued", "started", "error"]
    assert got.of(record.id)[-1].data == "bad input"


def test_lifecycle_on_exception(sup, kind) -> None:
    got = Collector()
    sup.subscribe("*", got)
    record = task(sup, kind, events_mp.raise_value_error, f"events/{kind}/boom")("boom")
    last = got.final(record.id)
    assert record.wait(WAIT)
    assert record.status == TASK_STATUS_EXCEPTION
    assert got.names_of(record.id) == ["queued", "started", "exception"]
    assert isinstance(last.data, str)
    assert last.data == record.traceback
    assert "ValueError: boom" in last.data


def test_lifecycle_with_a_retry(sup, kind) -> None:
    got = Collector()
    sup.subscribe("*", got)
    record = task(
        sup, kind, events_mp.fail_first_attempt, f"events/{kind}/flaky", retries=1
    )()
    assert record.get(WAIT) == 1
    got.final(record.id)
    events = got.of(record.id)
    assert [e.event for e in events] == [
        "queued",
        "started",
        "retry",
        "started",
        "success",
    ]
    assert [e.data for e in events] == [None, None, "first attempt", None, 1]


@pytest.mark.parametrize(
    ("reason", "expected"), [(None, "canceled"), ("no longer wanted", None)]
)
def test_canceled_queued_task(make_supervisor, gate, reason, expected) -> None:
    sup = started(make_supervisor, threads=1)
    got = Collector()
    sup.subscribe("*", got)
    blocker = background_task(gate.block, name="events/gate", supervisor=sup)()
    gate.wait_started()
    queued = task(sup, "thread", events_mp.double, "events/thread/double")(1)
    assert queued.cancel() if reason is None else queued.cancel(reason)
    last = got.final(queued.id)
    assert got.names_of(queued.id) == ["queued", "canceled"]
    assert last.data == (expected or reason)
    assert queued.status == TASK_STATUS_CANCELED
    gate.release.set()
    assert blocker.get(WAIT) == "released"


def test_expired_queued_task(make_supervisor, gate) -> None:
    sup = started(make_supervisor, threads=1)
    got = Collector()
    sup.subscribe("events/thread/*", got)
    background_task(gate.block, name="events/gate", supervisor=sup)()
    gate.wait_started()
    late = task(sup, "thread", events_mp.double, "events/thread/double", expires=0.05)(
        1
    )
    last = got.final(late.id)
    assert got.names_of(late.id) == ["queued", "canceled"]
    assert last.data == "expired"


def test_running_task_canceled(sup, kind) -> None:
    got = Collector()
    sup.subscribe("*", got)
    if kind == "coroutine":
        function = events_mp.co_wait_canceled
    else:
        function = events_mp.wait_canceled
    record = background_task(
        function, name=f"events/{kind}/wait", tt=KINDS[kind], supervisor=sup
    )()
    got.until(lambda e: e.task_id == record.id and e.event == "started")
    # A thread task ends itself when it sees the request: False here.
    assert record.cancel("enough") is (kind != "thread")
    last = got.final(record.id)
    assert got.names_of(record.id) == ["queued", "started", "canceled"]
    assert last.data == "enough"
    assert record.wait(WAIT) and record.status == TASK_STATUS_CANCELED


def test_delayed_task_is_queued_once(make_supervisor) -> None:
    sup = started(make_supervisor)
    got = Collector()
    sup.subscribe("*", got)
    record = task(sup, "thread", events_mp.double, "events/thread/double", delay=0.05)(
        2
    )
    assert record.get(WAIT) == 4
    got.final(record.id)
    assert [(e.event, e.data) for e in got.of(record.id)] == [
        ("queued", None),
        ("started", None),
        ("success", 4),
    ]


# ----------------------------------------------------------------------
# What tasks emit
# ----------------------------------------------------------------------


def test_function_task_emits(sup, kind) -> None:
    got = Collector()
    name = f"events/{kind}/progress"
    sup.subscribe(name, got)
    stream = sup.events(name)
    assert isinstance(stream, EventStream)
    record = task(sup, kind, events_mp.emit_progress, name)(3)
    assert record.get(WAIT) == 3
    got.final(record.id)
    expected = [
        ("queued", None),
        ("started", None),
        ("progress", {"n": 0}),
        ("progress", {"n": 1}),
        ("progress", {"n": 2}),
        ("success", 3),
    ]
    assert [(e.event, e.data) for e in got.of(record.id)] == expected
    assert {e.task_name for e in got.events} == {name}
    streamed = asyncio.run(take_until(stream, final_of(record.id)))
    assert [(e.event, e.data) for e in streamed] == expected
    stream.close()


def test_class_task_emits(sup, kind) -> None:
    cls = EMITTERS[kind]
    sup.register_task(cls)
    got = Collector()
    sup.subscribe(cls.NAME, got)
    stream = sup.events("events/emitter*")
    record = sup.start_task(cls.NAME, data={"values": [1, "two", {"three": [3]}]})
    assert record.name == cls.NAME
    assert record.get(WAIT) == "done"
    got.final(record.id)
    expected = [
        ("queued", None),
        ("started", None),
        ("tick", 1),
        ("tick", "two"),
        ("tick", {"three": [3]}),
        ("success", "done"),
    ]
    assert [(e.event, e.data) for e in got.of(record.id)] == expected
    assert {e.task_name for e in got.events} == {cls.NAME}
    streamed = asyncio.run(take_until(stream, final_of(record.id)))
    assert [(e.event, e.data) for e in streamed] == expected
    stream.close()


def test_stream_consumed_on_an_aloop(make_supervisor) -> None:
    sup = started(make_supervisor, TT_COROUTINE)
    consumer = sup.create_aloop("consumer")
    stream = sup.events("events/thread/*")
    record = task(sup, "thread", events_mp.emit_progress, "events/thread/progress")(1)
    streamed = consumer.run(take_until(stream, final_of(record.id)), WAIT)
    assert [e.event for e in streamed] == ["queued", "started", "progress", "success"]
    stream.close()


def check_bad_emits(outcomes) -> None:
    """What events_mp.bad_emits reported: each wrong emit refused."""
    reserved = len(events_mp.RESERVED)
    for event, outcome in zip(events_mp.RESERVED, outcomes[:reserved]):
        assert outcome is not None and outcome[0] == "ValueError", (event, outcome)
    empty, not_str, when, a_set, nested, top = outcomes[reserved:]
    assert empty is not None and empty[0] == "ValueError"
    assert not_str is not None and not_str[0] in ("TypeError", "ValueError")
    assert when is not None and when[0] == "TypeError"
    assert "data['when']" in when[1] and "datetime" in when[1]
    assert a_set is not None and a_set[0] == "TypeError"
    assert "data['x']" in a_set[1] and "set" in a_set[1]
    assert nested is not None and nested[0] == "TypeError"
    assert "data['a']" in nested[1]
    assert top is not None and top[0] == "TypeError"


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_function_task_emit_errors(sup, kind) -> None:
    got = Collector()
    sup.subscribe("*", got)
    record = task(sup, kind, events_mp.bad_emits_current, f"events/{kind}/bad")()
    check_bad_emits(record.get(WAIT))
    got.final(record.id)
    # Nothing refused was published.
    assert got.names_of(record.id) == ["queued", "started", "success"]


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_class_task_emit_errors(sup, kind) -> None:
    cls = {"thread": events_mp.BadEmitter, "process": events_mp.ProcessBadEmitter}
    sup.register_task(cls[kind])
    got = Collector()
    sup.subscribe("*", got)
    record = sup.start_task(cls[kind].NAME)
    check_bad_emits(record.get(WAIT))
    got.final(record.id)
    assert got.names_of(record.id) == ["queued", "started", "success"]


# ----------------------------------------------------------------------
# Subscriptions
# ----------------------------------------------------------------------


def test_glob_patterns_select_by_name(make_supervisor) -> None:
    sup = started(make_supervisor)
    # "*" last: once it has an event, the others (earlier) have it too.
    patterns = ["ev/*", "ev/b?", "*alpha", "ev/[!a]*", "EV/*", "nothing", "*"]
    collectors = {pattern: Collector() for pattern in patterns}
    subs = {p: sup.subscribe(p, c) for p, c in collectors.items()}
    names = ["ev/alpha", "ev/beta", "ev/bx", "EV/alpha", "other"]
    records = [task(sup, "thread", events_mp.double, n)(1) for n in names]
    assert wait_completed(records, WAIT) == [2] * len(names)
    for record in records:
        collectors["*"].final(record.id)
    sup.stop(wait=WAIT)  # delivers what the others buffered
    seen = {p: {e.task_name for e in c.drain()} for p, c in collectors.items()}
    assert seen == {
        "*": set(names),
        "ev/*": {"ev/alpha", "ev/beta", "ev/bx"},
        "ev/b?": {"ev/bx"},
        "*alpha": {"ev/alpha", "EV/alpha"},
        "ev/[!a]*": {"ev/beta", "ev/bx"},
        "EV/*": {"EV/alpha"},
        "nothing": set(),
    }
    # Each got every event of its tasks, in order.
    for pattern, collector in collectors.items():
        for record in records:
            if record.name in seen[pattern]:
                assert collector.names_of(record.id) == [
                    "queued",
                    "started",
                    "success",
                ]
    assert all(sub.dropped == 0 for sub in subs.values())


def test_unsubscribe_stops_delivery(make_supervisor) -> None:
    sup = started(make_supervisor)
    got, control = Collector(), Collector()
    sub = sup.subscribe("*", got)
    sup.subscribe("*", control)
    double = task(sup, "thread", events_mp.double, "events/thread/double")
    first = double(1)
    got.final(first.id)
    sub.unsubscribe()
    assert not sub.active
    sub.unsubscribe()  # again: nothing
    assert not sub.active
    second = double(2)
    assert second.get(WAIT) == 4
    control.final(second.id)
    sup.stop(wait=WAIT)
    assert got.drain() == got.of(first.id)
    assert got.names_of(first.id) == ["queued", "started", "success"]


def test_unsubscribe_in_the_callback(make_supervisor) -> None:
    sup = started(make_supervisor)
    got, control = Collector(), Collector()
    subs = []

    def once(event):
        got(event)
        subs[0].unsubscribe()  # on the subscription's own thread

    subs.append(sup.subscribe("*", once))
    sup.subscribe("*", control)
    record = task(sup, "thread", events_mp.double, "events/thread/double")(1)
    assert record.get(WAIT) == 2
    control.final(record.id)
    assert got.until(lambda e: True).event == "queued"
    assert not subs[0].active
    sup.stop(wait=WAIT)
    assert got.names_of(record.id) == ["queued"]  # nothing after it
    assert not event_threads(sup)


def test_record_without_a_name(make_supervisor) -> None:
    sup = started(make_supervisor)
    nameless, everything = Collector(), Collector()
    sup.subscribe("", nameless)
    sup.subscribe("*", everything)
    named = task(sup, "thread", events_mp.double, "events/thread/double")(1)
    record = sup.submit(events_mp.double, (3,))
    assert record.name is None
    assert wait_completed([named, record], WAIT) == [2, 6]
    everything.final(record.id)
    everything.final(named.id)
    sup.stop(wait=WAIT)
    # The pattern sees "" (the event may say None, as the record does).
    assert {e.task_name for e in everything.of(record.id)} <= {None, ""}
    assert nameless.drain() == everything.of(record.id)
    assert [e.event for e in nameless.events] == ["queued", "started", "success"]


def test_events_default_pattern(make_supervisor) -> None:
    sup = started(make_supervisor)
    stream = sup.events()
    records = [
        task(sup, "thread", events_mp.double, "events/thread/double")(1),
        sup.submit(events_mp.double, (2,)),
    ]
    assert wait_completed(records, WAIT) == [2, 4]
    sup.stop(wait=WAIT)
    streamed = asyncio.run(take_all(stream))
    for record in records:
        assert [e.event for e in streamed if e.task_id == record.id] == [
            "queued",
            "started",
            "success",
        ]


def test_subscribe_before_start(make_supervisor) -> None:
    sup = make_supervisor(keep_finished=10)
    got = Collector()
    sup.subscribe("*", got)
    sup.start()
    record = task(sup, "thread", events_mp.double, "events/thread/double")(3)
    assert record.get(WAIT) == 6
    got.final(record.id)
    assert got.names_of(record.id) == ["queued", "started", "success"]


# A subscriber thread that delivered its last event ends at once: this long
# is ample (only a failing test waits for it).
LATE = 2.0


def test_no_thread_left_by_an_event_after_the_stop(make_supervisor, gate) -> None:
    sup = started(make_supervisor, threads=1)
    got = Collector()
    sup.subscribe("*", got)
    record = background_task(gate.block, name="events/gate", supervisor=sup)()
    gate.wait_started()
    sup.stop(wait=0.05)  # the task outlives the stop
    for thread in event_threads(sup):  # told to end by the stop
        thread.join(WAIT)
    assert not event_threads(sup)
    gate.release.set()
    assert record.get(WAIT) == "released"
    # The pool thread publishes the final event (after the waiters woke).
    for thread in threading.enumerate():
        if thread.name.startswith(f"supervisor_{sup.id}_pool_"):
            thread.join(WAIT)
    try:
        # Delivered or not, no subscriber thread stays.
        for thread in event_threads(sup):
            thread.join(LATE)
        assert not event_threads(sup)
    finally:
        sup.start()  # a stop ends the thread a late event started
        sup.stop(wait=WAIT)


def test_argument_errors(make_supervisor) -> None:
    sup = started(make_supervisor)
    callback = Collector()
    for buffer in (0, -1):
        with pytest.raises(ValueError):
            sup.subscribe("*", callback, buffer=buffer)
        with pytest.raises(ValueError):
            sup.events("*", buffer=buffer)
    for buffer in ("5", 1.5, None):
        with pytest.raises((TypeError, ValueError)):
            sup.subscribe("*", callback, buffer=buffer)
        with pytest.raises((TypeError, ValueError)):
            sup.events("*", buffer=buffer)
    for not_callable in (None, "print", 5):
        with pytest.raises(TypeError):
            sup.subscribe("*", not_callable)
    for pattern in (None, b"*", 5, ["*"]):
        with pytest.raises(TypeError):
            sup.subscribe(pattern, callback)
        with pytest.raises(TypeError):
            sup.events(pattern)
    # buffer=1 is fine; so is a pattern that matches nothing.
    sub = sup.subscribe("", callback, buffer=1)
    assert sub.pattern == "" and sub.active
    sub.unsubscribe()
    # None of them left a subscriber behind: a task's events reach no one.
    record = task(sup, "thread", events_mp.double, "events/thread/double")(1)
    assert record.get(WAIT) == 2
    sup.stop(wait=WAIT)
    assert callback.drain() == []
    assert not event_threads(sup)


def test_slow_subscriber_does_not_slow_tasks(make_supervisor) -> None:
    sup = started(make_supervisor)
    hold = threading.Event()
    entered = threading.Event()
    slow = Collector()

    def blocking(event):
        slow(event)
        if not entered.is_set():
            entered.set()
            hold.wait(WAIT)

    sub = sup.subscribe("events/many*", blocking, buffer=5)
    probe = Collector()
    probe_sub = sup.subscribe("*", probe)
    emitted, finish = threading.Event(), threading.Event()
    try:
        double = task(sup, "thread", events_mp.double, "events/many")
        warm = double(0)
        assert entered.wait(WAIT)  # the callback holds warm's "queued"
        records = [double(i) for i in range(200)]
        # All run while the subscriber is blocked.
        assert wait_completed(records, WAIT) == [i * 2 for i in range(200)]
        for record in [warm, *records]:
            probe.final(record.id)
        marker = background_task(
            events_mp.emit_and_wait, name="events/many-marker", supervisor=sup
        )(emitted, finish)
        assert emitted.wait(WAIT)
        # Published so far: 3 + 200 * 3 + 7 (marker's queued, started and 5
        # marks); the held one is out of the buffer, which keeps the last 5.
        assert sub.dropped == 3 + 200 * 3 + 7 - 1 - 5
        hold.set()
        # The newest 5 come (the buffer holds no more until the marker ends).
        slow.until(lambda e: e.event == "mark" and e.data == 4)
    finally:
        hold.set()
        finish.set()
    assert marker.get(WAIT) == "marked"
    slow.final(marker.id)
    arrived = [(e.event, e.data) for e in slow.events]
    assert arrived == [
        ("queued", None),
        *[("mark", i) for i in range(5)],
        ("success", "marked"),
    ]
    assert slow.events[0].task_id == warm.id
    assert sub.dropped == 604
    assert len(slow.events) + sub.dropped == 3 + 200 * 3 + 8  # all published
    assert probe_sub.dropped == 0


def test_callback_that_raises(make_supervisor, atasker_log) -> None:
    sup = started(make_supervisor)
    got = Collector()
    refused = RuntimeError("callback refused")

    def refusing(event):
        got(event)
        if event.event == "started":
            raise refused

    sub = sup.subscribe("*", refusing)
    double = task(sup, "thread", events_mp.double, "events/thread/double")
    first = double(1)
    got.final(first.id)
    second = double(2)
    got.final(second.id)
    assert got.names_of(first.id) == ["queued", "started", "success"]
    assert got.names_of(second.id) == ["queued", "started", "success"]
    assert sub.active
    atasker_log.wait_for(lambda r: "callback refused" in full_text(r))


def test_callback_that_raises_a_base_exception(make_supervisor, atasker_log) -> None:
    sup = started(make_supervisor)
    got = Collector()

    def refusing(event):
        got(event)
        if event.event == "started":
            raise SystemExit("callback exits")

    sup.subscribe("*", refusing)
    double = task(sup, "thread", events_mp.double, "events/thread/double")
    first = double(1)
    got.final(first.id)
    second = double(2)
    got.final(second.id)
    assert got.names_of(second.id) == ["queued", "started", "success"]
    atasker_log.wait_for(lambda r: "callback exits" in full_text(r))


def test_stop_delivers_buffered_events(make_supervisor) -> None:
    sup = started(make_supervisor)
    hold = threading.Event()
    got = Collector()

    def blocking(event):
        got(event)
        hold.wait(WAIT)

    sub = sup.subscribe("*", blocking)
    record = task(sup, "thread", events_mp.emit_then_return, "events/thread/emit")(
        ["a", "b", "c"]
    )
    assert record.get(WAIT) == 3
    stopper = threading.Thread(target=sup.stop, kwargs={"wait": WAIT})
    try:
        stopper.start()
        deadline = time.monotonic() + WAIT
        while sup.active:  # the stop has begun
            assert time.monotonic() < deadline, "the stop did not begin"
            time.sleep(0.001)
    finally:
        hold.set()
        stopper.join(WAIT)
    assert not stopper.is_alive()
    got.drain()
    assert got.names_of(record.id) == [
        "queued",
        "started",
        "a",
        "b",
        "c",
        "success",
    ]
    assert not event_threads(sup)
    assert sub.dropped == 0
    # A callback subscription outlives a restart.
    sup.start()
    again = task(sup, "thread", events_mp.double, "events/thread/double")(5)
    assert again.get(WAIT) == 10
    got.final(again.id)
    assert got.names_of(again.id) == ["queued", "started", "success"]
    sup.stop(wait=WAIT)
    assert not event_threads(sup)


# ----------------------------------------------------------------------
# Event streams
# ----------------------------------------------------------------------


def test_stream_ends_when_the_supervisor_stops(make_supervisor) -> None:
    sup = started(make_supervisor)
    stream = sup.events("*", buffer=2)
    record = task(sup, "thread", events_mp.double, "events/thread/double")(1)
    assert record.get(WAIT) == 2
    sup.stop(wait=WAIT)
    # Buffered events first (the newest 2 of 3), then the end.
    streamed = asyncio.run(take_all(stream))
    assert [(e.event, e.data) for e in streamed] == [("started", None), ("success", 2)]
    assert stream.dropped == 1
    assert not event_threads(sup)


def test_stream_waiting_ends_when_the_supervisor_stops(make_supervisor) -> None:
    sup = started(make_supervisor)
    stream = sup.events("*")
    record = task(sup, "thread", events_mp.double, "events/thread/double")(1)

    async def main():
        got = await take_until(stream, final_of(record.id))
        waiting = asyncio.ensure_future(take_all(stream))
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, sup.stop, WAIT)
        return got, await waiting

    got, rest = asyncio.run(main())
    assert [e.event for e in got] == ["queued", "started", "success"]
    assert rest == []


async def consume(stream) -> list[TaskEvent]:
    return [event async for event in stream]


async def close_waiting(stream, consumers: int, timeout: float):
    """Close ``stream`` while ``consumers`` coroutines wait for its next
    event: what each got, and how many never ended."""
    tasks = [asyncio.ensure_future(consume(stream)) for _ in range(consumers)]
    await asyncio.sleep(0)  # each ran up to its wait for an event
    stream.close()
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for each in pending:
        each.cancel()
    return [each.result() for each in tasks if each in done], len(pending)


def test_stream_close(make_supervisor) -> None:
    sup = started(make_supervisor)
    stream = sup.events("*")
    assert asyncio.run(close_waiting(stream, 1, WAIT)) == ([[]], 0)
    # A closed stream gets nothing more.
    record = task(sup, "thread", events_mp.double, "events/thread/double")(1)
    assert record.get(WAIT) == 2
    assert asyncio.run(take_all(stream)) == []
    stream.close()  # again: nothing


def test_stream_close_ends_every_consumer(make_supervisor) -> None:
    sup = started(make_supervisor)
    stream = sup.events("*")
    assert asyncio.run(close_waiting(stream, 2, LATE)) == ([[], []], 0)


def test_stream_as_context_manager(make_supervisor) -> None:
    sup = started(make_supervisor)

    async def main():
        async with sup.events("events/*") as stream:
            record = task(sup, "thread", events_mp.double, "events/thread/double")(4)
            got = await take_until(stream, final_of(record.id))
        return stream, got

    stream, got = asyncio.run(main())
    assert [(e.event, e.data) for e in got] == [
        ("queued", None),
        ("started", None),
        ("success", 8),
    ]
    assert asyncio.run(take_all(stream)) == []  # closed on exit
    assert stream.dropped == 0


# ----------------------------------------------------------------------
# Built-in class tasks
# ----------------------------------------------------------------------


def test_class_task_reloaded_and_stopped(make_supervisor) -> None:
    sup = started(make_supervisor)
    sup.register_task(events_mp.Waiter)
    got = Collector()
    sup.subscribe("events/waiter", got)
    record = sup.start_task("events/waiter", data={"v": 1})
    got.until(lambda e: e.event == "running")
    assert sup.reload_task(record.id, data={"v": 2}) is record
    got.until(lambda e: e.event == "running" and e.data == {"v": 2})
    final = sup.stop_task(record.id, wait=WAIT)
    assert final is record and record.cancel_reason == "stopped"
    last = got.final(record.id)
    assert (last.event, last.data) == ("canceled", "stopped")
    events = [(e.event, e.data) for e in got.events if e.event != "started"]
    assert events[:2] == [("queued", None), ("running", {"v": 1})]
    assert sorted(events[2:4], key=str) == [
        ("reloaded", {"v": 2}),
        ("running", {"v": 2}),
    ]
    assert events[4:] == [("canceled", "stopped")]
    assert {e.task_id for e in got.events} == {record.id}


def test_stop_cancels_class_tasks(make_supervisor, gate) -> None:
    sup = started(make_supervisor, threads=2)
    sup.register_task(events_mp.Waiter)
    got = Collector()
    sup.subscribe("events/*", got)
    running = sup.start_task("events/waiter", data={"v": 1})
    got.until(lambda e: e.event == "running")
    blocker = background_task(gate.block, name="events/gate", supervisor=sup)()
    gate.wait_started()
    queued = sup.start_task("events/waiter", data={"v": 2})  # no thread left
    stopper = threading.Thread(target=sup.stop, kwargs={"wait": WAIT})
    try:
        stopper.start()
        # Canceled by the stop while no thread could start it.
        got.final(queued.id)
    finally:
        gate.release.set()
        stopper.join(WAIT)
    assert not stopper.is_alive()
    assert blocker.get(WAIT) == "released"
    got.drain()
    assert [(e.event, e.data) for e in got.of(queued.id)] == [
        ("queued", None),
        ("canceled", "stopped"),
    ]
    assert [(e.event, e.data) for e in got.of(running.id)] == [
        ("queued", None),
        ("started", None),
        ("running", {"v": 1}),
        ("canceled", "stopped"),
    ]


def test_builtins_are_registered(make_supervisor) -> None:
    sup = make_supervisor()
    classes = sup.task_classes
    assert {"atasker/monitor", "atasker/cleanup"} <= set(classes)


def test_monitor_reports_a_stuck_task(make_supervisor, gate, atasker_log) -> None:
    sup = started(make_supervisor, threads=2)
    got = Collector()
    sup.subscribe("atasker/monitor", got)
    monitor = sup.start_task(
        "atasker/monitor", data={"interval": 0.05, "task_timeout": 0.1}
    )
    try:
        blocked = background_task(gate.block, name="events/stuck", supervisor=sup)()
        gate.wait_started()
        stuck = [
            got.until(lambda e: e.event == "stuck" and e.data["task_id"] == blocked.id)
            for _ in range(2)
        ]
    finally:
        gate.release.set()
    for event in stuck:
        assert event.task_id == monitor.id
        assert event.task_name == "atasker/monitor"
        assert event.data["task_name"] == "events/stuck"
        assert event.data["seconds"] >= 0.1
    assert stuck[1].data["seconds"] > stuck[0].data["seconds"]
    # Never the monitor itself, though it runs longer than the stuck task.
    assert not [
        e for e in got.events if e.event == "stuck" and e.data["task_id"] == monitor.id
    ]
    atasker_log.wait_for(
        lambda r: (
            r.levelno == logging.WARNING
            and (blocked.id in r.getMessage() or "events/stuck" in r.getMessage())
        )
    )
    assert blocked.get(WAIT) == "released"
    final = sup.stop_task(monitor.id, wait=WAIT)
    assert final.status == TASK_STATUS_CANCELED
    assert final.cancel_reason == "stopped"


def test_monitor_reports_a_saturated_pool(make_supervisor, gate) -> None:
    sup = started(make_supervisor, threads=2)
    sup.timeout_warning = 0.05
    got = Collector()
    sup.subscribe("atasker/monitor", got)
    monitor = sup.start_task(
        "atasker/monitor", data={"interval": 0.05, "task_timeout": 60}
    )
    try:
        block = background_task(gate.block, name="events/gate", supervisor=sup)
        running = block()
        gate.wait_started()
        waiting = block()  # no thread left for it
        saturated = got.until(lambda e: e.event == "saturated")
    finally:
        gate.release.set()
    assert saturated.data["pool"] == "thread"
    assert saturated.data["waited"] >= 0.05
    assert saturated.data["queued"] >= 1
    assert wait_completed([running, waiting], WAIT) == ["released"] * 2
    assert sup.stop_task(monitor.id, wait=WAIT).status == TASK_STATUS_CANCELED


def test_monitor_and_the_process_pool(make_supervisor, tmp_path) -> None:
    sup = started(make_supervisor, TT_MP, threads=2, processes=1)
    sup.timeout_warning = 0.05
    got = Collector()
    sup.subscribe("atasker/monitor", got)
    monitor = sup.start_task(
        "atasker/monitor", data={"interval": 0.05, "task_timeout": 0.1}
    )
    gate = mptasks.ProcessGate(tmp_path / "gate")
    try:
        wait_at_gate = background_task(
            mptasks.wait_at_gate, tt=TT_MP, name="events/process-gate", supervisor=sup
        )
        running = wait_at_gate(str(tmp_path / "gate"))
        gate.wait_arrived()
        waiting = wait_at_gate(str(tmp_path / "gate"))  # no worker left for it
        saturated = got.until(
            lambda e: e.event == "saturated" and e.data["pool"] == "process"
        )
        stuck = got.until(
            lambda e: e.event == "stuck" and e.data["task_id"] == running.id
        )
    finally:
        gate.release()
    assert saturated.data["waited"] >= 0.05 and saturated.data["queued"] >= 1
    assert stuck.data["task_name"] == "events/process-gate"
    assert wait_completed([running, waiting], WAIT) == ["released"] * 2
    assert sup.stop_task(monitor.id, wait=WAIT).status == TASK_STATUS_CANCELED


def test_monitor_stops_at_once(make_supervisor) -> None:
    sup = started(make_supervisor)
    got = Collector()
    sup.subscribe("atasker/monitor", got)
    monitor = sup.start_task("atasker/monitor")  # interval 10
    got.until(lambda e: e.task_id == monitor.id and e.event == "started")
    begun = time.monotonic()
    final = sup.stop_task(monitor.id, wait=WAIT)
    assert time.monotonic() - begun < 5  # not the interval
    assert final.status == TASK_STATUS_CANCELED
    last = got.final(monitor.id)
    assert (last.event, last.data) == ("canceled", "stopped")


CLEANED: queue.Queue = queue.Queue()


@background_task(name="tests/cleanup-handler")
def cleanup_handler(record):
    CLEANED.put((record, threading.current_thread().name, current_task()))


def test_cleanup_drops_old_records(make_supervisor, gate) -> None:
    sup = started(make_supervisor, keep_finished=1000)
    got = Collector()
    sup.subscribe("atasker/cleanup", got)
    while not CLEANED.empty():
        CLEANED.get_nowait()
    records = [
        task(sup, "thread", events_mp.double, "events/thread/double")(i)
        for i in range(3)
    ]
    assert wait_completed(records, WAIT) == [0, 2, 4]
    running = background_task(gate.block, name="events/gate", supervisor=sup)()
    gate.wait_started()
    try:
        cleanup = sup.start_task(
            "atasker/cleanup",
            data={
                "interval": 0.05,
                "max_age": 0.05,
                "handler": "tests/cleanup-handler",
            },
        )
        dropped = 0
        while dropped < 3:
            event = got.until(lambda e: e.event == "cleaned")
            assert event.task_id == cleanup.id
            assert event.data["dropped"] > 0
            dropped += event.data["dropped"]
        assert dropped == 3
        handled = []
        for _ in range(3):
            try:
                handled.append(CLEANED.get(timeout=WAIT))
            except queue.Empty:
                pytest.fail(f"the handler got {handled} only")
        assert {record.id for record, _, _ in handled} == {r.id for r in records}
        assert all(record in records for record, _, _ in handled)
        # Called directly, in the cleanup task's thread (a pool thread here).
        for _, thread, running_task in handled:
            assert thread.startswith(f"supervisor_{sup.id}_pool_")
            assert running_task is cleanup
        for record in records:
            assert sup.get_task(record.id) is None
        # Unfinished records stay.
        assert sup.get_task(running.id) is running
        assert sup.get_task(cleanup.id) is cleanup
    finally:
        gate.release.set()
    assert running.get(WAIT) == "released"
    assert sup.stop_task(cleanup.id, wait=WAIT).status == TASK_STATUS_CANCELED


def test_cleanup_with_an_unknown_handler(make_supervisor) -> None:
    sup = started(make_supervisor)
    with pytest.raises(UnknownTaskError):
        sup.start_task("atasker/cleanup", data={"handler": "tests/no-such-handler"})
