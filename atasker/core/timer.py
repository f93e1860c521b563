"""Timer: delayed tasks wait here, holding no pool slot, until they are due.

One heap of ``(due, sequence, task)`` and one thread that sleeps on a
Condition until the head is due. A record in the heap names the timer as its
container, so its cancel removes it from this timer whatever the supervisor
did since. A new head (an earlier due time) wakes it; a
later one does not. The thread is started with the first delayed task, so a
supervisor that never delays anything never has it.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from .admission import TaskHeap
from .task import TaskInfo


class Timer:
    """Hands each scheduled task to ``on_due`` at its due time.

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
        self._stopping = False

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, task: TaskInfo, delay: float) -> bool:
        """Hand ``task`` to ``on_due`` in ``delay`` seconds; False if stopped."""
        due = time.monotonic() + delay
        with self._condition:
            if self._stopping:
                return False
            is_head = self._heap.push(due, task)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=self._thread_name, daemon=True
                )
                self._thread.start()
            elif is_head:
                self._condition.notify()
        return True

    def discard(self, task: TaskInfo) -> None:
        """Forget a task that was canceled while it waited here (a task this
        timer does not hold is left alone: the record names its container)."""
        with self._condition:
            if task._container is self:
                self._heap.discard(task)

    def _run(self) -> None:
        condition = self._condition
        with condition:
            while not self._stopping:
                head = self._heap.peek()
                if head is None:
                    condition.wait()
                    continue
                wait = head[0] - time.monotonic()
                if wait > 0:
                    condition.wait(wait)
                    continue
                task = self._heap.pop()
                condition.release()
                try:
                    self._on_due(task)
                finally:
                    condition.acquire()

    def stop(self) -> list[TaskInfo]:
        """Stop the thread; return the tasks that were still waiting."""
        with self._condition:
            self._stopping = True
            waiting = list(self._heap.drain())
            self._condition.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        return waiting
