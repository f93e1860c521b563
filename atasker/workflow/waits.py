"""wait and as_completed over records, as concurrent.futures has them.

No polling: each record not final yet gets one small waker among its
waiters, which hands the record to a shared collector when it ends (in
the finishing thread, no user code); the caller sleeps on the collector's
condition. Wakers of records still running are taken back on return.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterable, Iterator

from ..core.errors import WaitTimeoutError
from ..core.task import TaskInfo
from ..core.validation import check_timeout

FIRST_COMPLETED = concurrent.futures.FIRST_COMPLETED
FIRST_EXCEPTION = concurrent.futures.FIRST_EXCEPTION
ALL_COMPLETED = concurrent.futures.ALL_COMPLETED

_RETURN_WHEN = (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED)


class _Collector:
    """Records that ended, in the order they did."""

    def __init__(self) -> None:
        self.condition = threading.Condition(threading.Lock())
        self.arrived: list[TaskInfo] = []
        self.wakers: dict[TaskInfo, _Waker] = {}

    def watch(self, records: Iterable[TaskInfo]) -> None:
        for record in records:
            waker = _Waker(self, record)
            self.wakers[record] = waker
            if not record._add_waker(waker):
                waker.set()  # final meanwhile

    def take(self, timeout: float | None) -> list[TaskInfo]:
        """The records that ended since the last call, after waiting up to
        ``timeout`` for one if there is none."""
        with self.condition:
            if not self.arrived and timeout != 0:
                self.condition.wait(timeout)
            arrived, self.arrived = self.arrived, []
        return arrived

    def release(self) -> None:
        """Take back the wakers of records still running."""
        for record, waker in self.wakers.items():
            if not record.done():
                record._remove_waker(waker)
        self.wakers.clear()


class _Waker:
    __slots__ = ("collector", "record")

    def __init__(self, collector: _Collector, record: TaskInfo) -> None:
        self.collector = collector
        self.record = record

    def set(self) -> None:
        collector = self.collector
        with collector.condition:
            collector.arrived.append(self.record)
            collector.condition.notify()


def _records(records: Iterable[TaskInfo]) -> list[TaskInfo]:
    if isinstance(records, TaskInfo) or not isinstance(records, Iterable):
        raise TypeError(f"records must be an iterable of TaskInfo; got {records!r}")
    checked = list(records)
    for record in checked:
        if not isinstance(record, TaskInfo):
            raise TypeError(f"records must hold TaskInfo records; got {record!r}")
    return checked


def wait(
    records: Iterable[TaskInfo],
    timeout: float | None = None,
    return_when: str = ALL_COMPLETED,
) -> tuple[set[TaskInfo], set[TaskInfo]]:
    """Wait for records as ``concurrent.futures.wait`` waits for futures.

    Args:
        records: task records (a GroupResult's ``tasks``, a list, ...).
        timeout: seconds to wait at most; None: no limit.
        return_when: ALL_COMPLETED, FIRST_COMPLETED, or FIRST_EXCEPTION
            (a task that failed; a canceled one is not an exception, as in
            concurrent.futures).

    Returns:
        ``(done, not_done)``: two sets. When ``timeout`` passes first, what
        is done so far (no exception, as in concurrent.futures).

    Raises:
        TypeError, ValueError: a bad argument (named).
    """
    pending = set(_records(records))
    seconds = check_timeout(timeout, "timeout")
    if return_when not in _RETURN_WHEN:
        raise ValueError(
            f"return_when must be FIRST_COMPLETED, FIRST_EXCEPTION or "
            f"ALL_COMPLETED; got {return_when!r}"
        )
    done = {record for record in pending if record.done()}
    pending -= done

    def satisfied() -> bool:
        if not pending:
            return True
        if return_when == FIRST_COMPLETED:
            return bool(done)
        if return_when == FIRST_EXCEPTION:
            return any(record.failed() for record in done)
        return False

    if satisfied():
        return done, pending
    deadline = None if seconds is None else time.monotonic() + seconds
    collector = _Collector()
    try:
        collector.watch(pending)
        while not satisfied():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            for record in collector.take(remaining):
                pending.discard(record)
                done.add(record)
    finally:
        collector.release()
    return done, pending


def as_completed(
    records: Iterable[TaskInfo], timeout: float | None = None
) -> Iterator[TaskInfo]:
    """Yield records as they end: those already final first, then each as
    it ends (``concurrent.futures.as_completed``). A record given twice is
    yielded once.

    Raises:
        WaitTimeoutError: ``timeout`` seconds (from this call) passed with
            records not final (both the builtin TimeoutError and
            concurrent.futures.TimeoutError), when iteration reaches it.
        TypeError, ValueError: a bad argument (named), at the call.
    """
    given = _records(records)
    seconds = check_timeout(timeout, "timeout")
    deadline = None if seconds is None else time.monotonic() + seconds
    return _completing(given, seconds, deadline)


def _completing(
    given: list[TaskInfo], seconds: float | None, deadline: float | None
) -> Iterator[TaskInfo]:
    pending = dict.fromkeys(given)  # in order, once each
    total = len(pending)
    for record in [r for r in pending if r.done()]:
        del pending[record]
        yield record
    if not pending:
        return
    collector = _Collector()
    try:
        collector.watch(pending)
        while pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(
                    f"{len(pending)} of {total} tasks not completed within {seconds} s"
                )
            for record in collector.take(remaining):
                if record in pending:
                    del pending[record]
                    yield record
    finally:
        collector.release()
