"""Dependencies: a task DELAYED until every task it depends on has COMPLETED.

::

    submit(depends_on=[a, b]) ──> record DELAYED, pending = 2, in no container
    a final ──> a's waiters are woken ──> link(a).set():
        a COMPLETED       pending -= 1; at 0: release (the timer if still
                          due later, else its pool)
        a anything else   the dependant ends CANCELED, "dependency failed: <a's id>"

A link is one of the dependency's internal waiters: woken in whichever
thread finishes it, with no lock held, before any user code. Nothing polls.

A dependant canceled in turn wakes its own dependants: the links of one
thread are run from a queue, not by recursion, so a long chain of failures
does not exhaust the stack.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Sequence
from typing import Callable

from .constants import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
)
from .task import TaskInfo
from .waiting import Defer

logger = logging.getLogger("atasker")

# Links being run in this thread (see the module docstring).
_cascade = threading.local()


class DependencyLink:
    """Tells ``dependant`` that ``dependency`` is final."""

    __slots__ = ("dependant", "dependency", "release", "defer")

    def __init__(
        self,
        dependant: TaskInfo,
        dependency: TaskInfo,
        release: Callable[[TaskInfo], None],
        defer: Defer,
    ) -> None:
        self.dependant = dependant
        self.dependency = dependency
        self.release = release
        self.defer = defer

    def set(self) -> None:
        queue: collections.deque[DependencyLink] | None = getattr(
            _cascade, "queue", None
        )
        if queue is not None:  # an outer link of this thread runs it
            queue.append(self)
            return
        _cascade.queue = queue = collections.deque((self,))
        try:
            while queue:
                queue.popleft()._fire()
        finally:
            _cascade.queue = None

    def _fire(self) -> None:
        try:
            dependant, dependency = self.dependant, self.dependency
            if dependency.status != TASK_STATUS_COMPLETED:
                # Its user code (callbacks) must not run on the thread that
                # finished the dependency: it may be one of ours.
                dependant._finish(
                    TASK_STATUS_CANCELED,
                    only_from=(TASK_STATUS_DELAYED,),
                    defer=self.defer,
                    reason=f"dependency failed: {dependency.id}",
                )
                return
            with dependant._lock:
                extra = dependant._extra_locked()
                extra.pending -= 1
                ready = extra.pending == 0 and dependant.status == TASK_STATUS_DELAYED
            if ready:
                self.release(dependant)
        except BaseException:  # a bug of ours: the finishing thread goes on
            logger.exception("dependency link of task %s failed", self.dependant.id)


def watch(
    dependant: TaskInfo,
    dependencies: Sequence[TaskInfo],
    release: Callable[[TaskInfo], None],
    defer: Defer,
) -> None:
    """Release ``dependant`` (DELAYED) once every dependency has COMPLETED,
    or cancel it as soon as one has not; at once for those already final."""
    with dependant._lock:
        dependant._extra_locked().pending = len(dependencies)
    for dependency in dependencies:
        link = DependencyLink(dependant, dependency, release, defer)
        if not dependency._add_waker(link):
            link.set()  # already final
