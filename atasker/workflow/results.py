"""Results of many tasks at once: a group's, and a map's.

:class:`GroupResult` holds every record of a group. :class:`MapResult`
holds only the chunks in flight: a map feeds its iterable lazily, a chunk
at a time, as earlier chunks finish, and keeps each finished chunk's values
(not its record)::

    f.map(items) ──> MapResult ──> pump: while fewer than buffersize chunks
        are in flight, take the next chunk and submit it
    a chunk's record final ──> its values (or its failure) kept in order
        ──> pump again ──> iterable done, nothing in flight: finished

One thread pumps at a time; a chunk that ends while another thread pumps
leaves room that thread sees. Nothing polls: a chunk's done callback
moves the map on, and the waiters of ``get`` wait on one Event.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import uuid
from collections.abc import Generator, Iterable, Iterator
from typing import Any, Callable

from ..core.constants import TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED
from ..core.errors import TaskCancelledError, WaitTimeoutError
from ..core.task import TaskInfo
from ..core.validation import check_timeout
from ..core.waiting import LoopWaker, wait_all


def outcome(record: TaskInfo) -> Any:
    """A final record's result, or the exception it ended with (a
    TaskCancelledError for a canceled one)."""
    if record.status == TASK_STATUS_COMPLETED:
        return record.result
    if record.status == TASK_STATUS_CANCELED:
        return TaskCancelledError(
            f"task {record.id} ({record.name}) was canceled: {record.cancel_reason}"
        )
    return record.exception


class GroupResult:
    """The records of a group's tasks, in the group's order (celery's
    ``GroupResult``).

    Attributes:
        id: this group's id.
        tasks: the records (also ``results``).
    """

    def __init__(self, tasks: Iterable[TaskInfo], group_id: str | None = None) -> None:
        self.tasks: list[TaskInfo] = list(tasks)
        self.id = group_id or uuid.uuid4().hex

    @property
    def results(self) -> list[TaskInfo]:
        """The records (celery's name)."""
        return self.tasks

    def __repr__(self) -> str:
        return f"<GroupResult {self.id} of {len(self.tasks)} tasks>"

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[TaskInfo]:
        return iter(self.tasks)

    def __getitem__(self, index: int) -> TaskInfo:
        return self.tasks[index]

    def ready(self) -> bool:
        """True once every task is final."""
        return all(record.done() for record in self.tasks)

    def waiting(self) -> bool:
        """True while a task is not final."""
        return not self.ready()

    def successful(self) -> bool:
        """True if every task completed."""
        return all(record.successful() for record in self.tasks)

    def failed(self) -> bool:
        """True if a task failed (ERROR or EXCEPTION)."""
        return any(record.failed() for record in self.tasks)

    def completed_count(self) -> int:
        """How many tasks completed successfully."""
        return sum(record.successful() for record in self.tasks)

    def cancel(self, reason: str | None = None) -> None:
        """Cancel every task (see :meth:`TaskInfo.cancel`)."""
        for record in self.tasks:
            record.cancel(reason)

    def get(self, timeout: float | None = None, propagate: bool = True) -> list[Any]:
        """Wait for every task; their results, in order.

        Args:
            timeout: seconds to wait at most, for all; None: no limit.
            propagate: raise the first failure (in order); if False, a failed
                task's slot holds its exception (a canceled one's, a
                TaskCancelledError).

        Raises:
            WaitTimeoutError: not all final within ``timeout``.
            BaseException: the first failure, with ``propagate``.
        """
        timeout = check_timeout(timeout, "timeout")
        wait_all(self.tasks, timeout, f"tasks of group {self.id}")
        if propagate:
            return [record.get() for record in self.tasks]
        return [outcome(record) for record in self.tasks]

    join = get

    def __await__(self) -> Generator[Any, None, list[Any]]:
        """``await group_result``: the results, as ``get()`` gives them."""
        results = []
        for record in self.tasks:
            results.append((yield from record.__await__()))
        return results


class _Failed:
    """A chunk that failed: its exception, for each of its items."""

    __slots__ = ("exception", "size")

    def __init__(self, exception: BaseException, size: int) -> None:
        self.exception = exception
        self.size = size


class MapResult:
    """The results of ``f.map``, ``f.starmap`` and ``f.chunks``, in input
    order (see the module docstring).

    Args:
        submit: submits one chunk (a list of items); returns its record,
            whose result is the list of the chunk's values.
        chunks: the chunks, consumed lazily.
        buffersize: chunks in flight at most.
        flat: ``get()`` is one flat list (map) rather than a list per chunk
            (chunks).
        single: each chunk is one item, whose record's result is its value
            (not a list of values).
    """

    def __init__(
        self,
        submit: Callable[[list[Any]], TaskInfo],
        chunks: Iterator[list[Any]],
        buffersize: int,
        flat: bool,
        single: bool = False,
    ) -> None:
        self.id = uuid.uuid4().hex
        self._submit = submit
        self._chunks = chunks
        self._buffersize = buffersize
        self._flat = flat
        self._single = single
        self._lock = threading.Lock()
        self._values: list[Any] = []  # per chunk: its list, _Failed, or None
        self._in_flight: dict[int, TaskInfo] = {}
        self._exhausted = False
        self._error: BaseException | None = None  # what the iterable raised
        self._canceled = False
        self._pumping = False
        self._finished = threading.Event()
        self._wakers: list[LoopWaker] = []  # of coroutines awaiting it
        self._pump()

    def __repr__(self) -> str:
        state = "ready" if self.ready() else f"{len(self._in_flight)} chunks in flight"
        return f"<MapResult {self.id} {state}>"

    @property
    def tasks(self) -> list[TaskInfo]:
        """The records of the chunks in flight now (finished ones are not
        kept: a long map holds its values, not its records)."""
        with self._lock:
            return list(self._in_flight.values())

    # ------------------------------------------------------------------
    # Feeding
    # ------------------------------------------------------------------

    def _pump(self) -> None:
        """Submit chunks while there is room (one thread at a time)."""
        with self._lock:
            if self._pumping:  # that thread sees the room this call would
                return
            self._pumping = True
        try:
            self._pump_chunks()
        except BaseException:
            # It reads no more. (Not in a finally: once _pump_chunks has
            # returned, another thread may be pumping.)
            with self._lock:
                self._pumping = False
                self._exhausted = True
            raise
        self._check_finished()

    def _pump_chunks(self) -> None:
        while True:
            with self._lock:
                full = len(self._in_flight) >= self._buffersize
                if self._canceled or self._exhausted or full:
                    # Under the same lock as the check: a chunk that ends
                    # after this pumps itself.
                    self._pumping = False
                    return
                index = len(self._values)
                self._values.append(None)  # its slot, kept in order
            chunk = self._next_chunk()  # the user's iterable: no lock held
            if chunk is None:
                with self._lock:
                    self._values.pop()  # the pumping thread alone appends
                continue
            try:
                record = self._submit(chunk)
            except Exception as exc:  # refused (a stop): read no more
                with self._lock:
                    self._values[index] = _Failed(exc, len(chunk))
                    self._exhausted = True
                    self._error = self._error or exc
                if index == 0:
                    raise  # the first submit: the caller learns at once
                continue
            with self._lock:
                self._in_flight[index] = record
            record.add_done_callback(
                functools.partial(self._chunk_done, index, len(chunk))
            )

    def _next_chunk(self) -> list[Any] | None:
        """The next chunk, or None at the end (or if the iterable failed:
        ``get()`` raises what it raised)."""
        try:
            return next(self._chunks)
        except StopIteration:
            error = None
        except BaseException as exc:  # not ours to let through a callback
            error = exc
        with self._lock:
            self._exhausted = True
            self._error = self._error or error
        return None

    def _chunk_done(self, index: int, size: int, record: Any) -> None:
        value = outcome(record)
        with self._lock:
            self._in_flight.pop(index, None)
            if record.status == TASK_STATUS_COMPLETED:
                self._values[index] = [value] if self._single else value
            else:
                self._values[index] = _Failed(value, size)
        self._pump()
        self._check_finished()

    def _check_finished(self) -> None:
        with self._lock:
            if self._finished.is_set() or self._in_flight or self._pumping:
                return
            if not (self._exhausted or self._canceled):
                return
            self._finished.set()
            wakers, self._wakers = self._wakers, []
        for waker in wakers:
            waker.set()

    # ------------------------------------------------------------------
    # Queries
    # ------------------------------------------------------------------

    def ready(self) -> bool:
        """True once every item has an outcome (or the map was canceled)."""
        return self._finished.is_set()

    def waiting(self) -> bool:
        """True while items remain."""
        return not self.ready()

    def _slots(self) -> list[Any]:
        with self._lock:
            return list(self._values)

    def successful(self) -> bool:
        """True once every chunk completed (and the iterable did not fail)."""
        return (
            self.ready()
            and self._error is None
            and not self._canceled
            and not any(isinstance(v, _Failed) for v in self._slots())
        )

    def failed(self) -> bool:
        """True if a chunk failed or the iterable raised."""
        return self._error is not None or any(
            isinstance(v, _Failed) and not isinstance(v.exception, TaskCancelledError)
            for v in self._slots()
        )

    def completed_count(self) -> int:
        """How many items completed."""
        return sum(len(v) for v in self._slots() if isinstance(v, list))

    def cancel(self, reason: str | None = None) -> None:
        """Take no more items; cancel the chunks in flight."""
        with self._lock:
            self._canceled = True
            in_flight = list(self._in_flight.values())
        for record in in_flight:
            record.cancel(reason)
        self._check_finished()

    def get(self, timeout: float | None = None, propagate: bool = True) -> list[Any]:
        """Wait for every item; the values in input order (``map``,
        ``starmap``: flat; ``chunks``: a list per chunk).

        Args:
            timeout: seconds to wait at most; None: no limit.
            propagate: raise the first failure (in order); if False, each
                item of a failed chunk holds its exception (``chunks``: the
                chunk's slot does).

        Raises:
            WaitTimeoutError: not finished within ``timeout``.
            BaseException: the first failure, with ``propagate``; what the
                iterable raised; TaskCancelledError if canceled.
        """
        timeout = check_timeout(timeout, "timeout")
        if not self._finished.wait(timeout):
            raise WaitTimeoutError(f"map {self.id} not completed within {timeout} s")
        return self._collect(propagate)

    join = get

    def _collect(self, propagate: bool) -> list[Any]:
        values: list[Any] = []
        for slot in self._slots():
            if isinstance(slot, _Failed):
                if propagate:
                    raise slot.exception
                if self._flat:
                    values.extend([slot.exception] * slot.size)
                else:
                    values.append(slot.exception)
            elif slot is not None:
                if self._flat:
                    values.extend(slot)
                else:
                    values.append(slot)
        if propagate and self._error is not None:
            raise self._error
        if propagate and self._canceled:
            raise TaskCancelledError(f"map {self.id} was canceled")
        return values

    def __await__(self) -> Generator[Any, None, list[Any]]:
        """``await map_result``: the values, as ``get()`` gives them."""
        if not self._finished.is_set():
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()

            with self._lock:
                finished = self._finished.is_set()
                if not finished:
                    self._wakers.append(LoopWaker(loop, future))
            if finished:
                future.set_result(None)
            try:
                yield from future.__await__()
            except asyncio.CancelledError:
                self.cancel()
                raise
        return self._collect(True)
