"""Timer: delayed tasks wait here, holding no pool slot, until they are due;
and the supervisor's own timed calls (time limits, expiries) fire here.

One heap of ``(due, sequence, item)`` and one thread that sleeps on a
Condition until the head is due. An item in the heap (a record, or a
:class:`TimerCall`) names the timer as its container, so its cancel removes
it from this timer whatever the supervisor did since. A new head (an earlier
due time) wakes the thread; a later one does not. The thread is started with
the first item, so a supervisor that never delays anything never has it.

The timer counts the records it holds (:attr:`Timer.delayed`), so
``get_info().delayed`` reads a number instead of scanning every unfinished
record: one more on a push, one less on the pop, the cancel (discard) or the
drain that takes a record out; the heap's ``__len__`` also counts the timed
calls.

Lifecycle: :meth:`Timer.stop` refuses new delayed tasks and hands back those
still waiting, but timed calls go on firing (the pools drain after it, and
their tasks' time limits still apply); :meth:`Timer.close` ends the thread.

The thread runs no user code: ``on_due`` and the timed calls are the
supervisor's, and hand any user code to a thread of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .admission import TaskHeap
from .task import TaskInfo

logger = logging.getLogger("atasker")


class TimerCall:
    """A call the timer makes at its due time, unless canceled first.

    ``on_close``, if given, is called instead when the timer closes before
    the call was due (a time limit that must still end its task).
    """

    __slots__ = ("fn", "on_close", "_container")

    def __init__(
        self, fn: Callable[[], object], on_close: Callable[[], object] | None = None
    ) -> None:
        self.fn = fn
        self.on_close = on_close
        self._container: Timer | None = None

    def cancel(self) -> None:
        """Forget the call if it has not been made (any thread). What it
        would call is dropped at once: removal from the heap is lazy, and
        the call must not keep a finished task alive meanwhile."""
        timer = self._container
        if timer is not None:
            timer.discard(self)
        self.fn = self.on_close = _nothing


def _nothing() -> None:
    pass


class Timer:
    """Hands each scheduled task to ``on_due`` at its due time, and makes
    timed calls.

    Args:
        thread_name: name of the timer thread.
        on_due: called in the timer thread, without the timer's lock held.
    """

    def __init__(self, thread_name: str, on_due: Callable[[TaskInfo], None]) -> None:
        self._thread_name = thread_name
        self._on_due = on_due
        self._condition = threading.Condition()
        self._heap = TaskHeap(self)
        self._thread: threading.Thread | None = None
        self._refusing = False  # stop(): no new delayed task
        self._closed = False  # close(): nothing more; the thread ends
        # Live records in the heap (timed calls are not counted): changed
        # under the condition's lock wherever one goes in or out.
        self._records = 0

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def delayed(self) -> int:
        """Records waiting here for their due time (a retry's included);
        timed calls are not counted. O(1)."""
        return self._records

    def schedule(self, task: TaskInfo, delay: float) -> bool:
        """Hand ``task`` to ``on_due`` in ``delay`` seconds; False if stopped."""
        due = time.monotonic() + delay
        with self._condition:
            if self._refusing:
                return False
            is_head = self._heap.push(due, task)
            # The heap does not take a record canceled meanwhile: it then
            # names no container, and is not counted.
            if task._container is self:
                self._records += 1
            self._wake_locked(is_head)
        return True

    def call_at(
        self,
        due: float,
        fn: Callable[[], object],
        on_close: Callable[[], object] | None = None,
    ) -> TimerCall | None:
        """Call ``fn()`` in the timer thread at ``due`` (``time.monotonic()``);
        None if the timer is closed. ``fn`` must be quick and run no user
        code. ``on_close()`` is called instead if the timer closes first.
        """
        call = TimerCall(fn, on_close)
        with self._condition:
            if self._closed:
                return None
            self._wake_locked(self._heap.push_item(due, call))
        return call

    def _wake_locked(self, is_head: bool) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=self._thread_name, daemon=True
            )
            self._thread.start()
        elif is_head:
            self._condition.notify()

    def discard(self, item: TaskInfo | TimerCall) -> None:
        """Forget a task canceled while it waited here, or a canceled call
        (an item this timer does not hold is left alone: it names its
        container)."""
        with self._condition:
            if (
                item._container is self
                and self._heap.discard(item)
                and type(item) is TaskInfo
            ):
                self._records -= 1

    def _run(self) -> None:
        condition = self._condition
        with condition:
            while not self._closed:
                head = self._heap.peek()
                if head is None:
                    condition.wait()
                    continue
                wait = head[0] - time.monotonic()
                if wait > 0:
                    condition.wait(wait)
                    continue
                item = self._heap.pop()
                # Read under the lock: a cancel from now on cannot stop it.
                fn: Callable[[], object] | None = (
                    item.fn if type(item) is TimerCall else None
                )
                if type(item) is TaskInfo:
                    # Out of the count now: on_due makes it QUEUED (or ends
                    # it) at once, with no user code in between.
                    self._records -= 1
                condition.release()
                try:
                    if fn is not None:
                        fn()
                    else:
                        self._on_due(item)
                except BaseException:  # a bug of ours: the timer goes on
                    logger.exception("the timer's call for %r failed", item)
                finally:
                    item = fn = None
                    condition.acquire()

    def stop(self) -> list[TaskInfo]:
        """Refuse new delayed tasks; return those that were still waiting.
        Timed calls go on until :meth:`close`."""
        with self._condition:
            self._refusing = True
            tasks: list[TaskInfo] = self._heap.drain(TaskInfo)
            self._records -= len(tasks)
            return tasks

    def close(self) -> None:
        """End the thread (after :meth:`stop`): pending calls are dropped,
        but for their ``on_close``, called here."""
        with self._condition:
            self._refusing = self._closed = True
            items = self._heap.drain()
            self._records = 0
            self._condition.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        for item in items:
            if type(item) is TaskInfo:  # none if stop() came first, as it should
                item.set_canceled(reason="stopped")
            elif item.on_close is not None:
                try:
                    item.on_close()
                except BaseException:  # a bug of ours: the others still run
                    logger.exception("the timer's closing call failed")
