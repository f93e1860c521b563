"""Dependencies: a task DELAYED until every task it depends on has COMPLETED.

::

    submit(depends_on=[a, b]) ──> record DELAYED, pending = 2, in no container
    a final ──> a's waiters are woken ──> link(a).set():
        a COMPLETED       pending -= 1; at 0: release (the timer if still
                          due later, else its pool)
        a anything else   the dependant ends CANCELED, "dependency failed: <a's id>"

A link is one of the dependency's internal waiters: woken in whichever
thread finishes it, with no lock held, before any user code. Nothing polls.

While it waits, the record is counted in its supervisor's registry
(``waiting_for_dependencies``, read by ``get_info().delayed``): in when
:func:`watch` starts the wait, out once, when the last dependency completes
(before the release: from there the timer counts it, or it is QUEUED) or
when the record becomes final first (canceled by a failed dependency, by
``cancel()``, an expiry or a stop: a :class:`DependencyWait` among its own
waiters says so).

A dependant canceled in turn wakes its own dependants: the links of one
thread are run from a queue, not by recursion (waiting.Cascading), so a
long chain of failures does not exhaust the stack.

A task of a chain or a chord follows its dependencies (:class:`Follow`):
it may be fed their results (prepended to its arguments when the last one
completes), and a failure cancels it with the workflow's reason, ``"chain:
<id> failed"`` or ``"chord: <id> failed"``, the id of the task that failed
first: the rest of a chain gives the same reason along. A task's links are
followers made with it: ``link`` runs if it completes, ``link_error`` if it
fails (fed the record); the one not taken is canceled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Callable

from .attempts import FAILED_STATUSES
from .constants import (
    TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED,
    TASK_STATUS_DELAYED,
)
from .registry import TaskRegistry
from .task import TaskInfo
from .waiting import Cascading, Defer

logger = logging.getLogger("atasker")


class Follow:
    """How a task of a workflow follows the tasks it waits for.

    Args:
        kind: ``"chain"``, ``"chord"``, ``"link"`` (runs if they complete)
            or ``"link_error"`` (runs if the one it follows fails); its
            cancel reasons say which.
        parent: what ``record.parent`` shows (a record, or a GroupResult).
        records: the tasks it waits for, in order.
        feed: ``"one"``: the first record's result is prepended to its
            arguments; ``"all"``: the list of all results; ``"record"``: the
            record itself (an error link); None: nothing (an immutable
            signature).
        pickle_as: what a fed process task's payload names (see dispatch).
    """

    __slots__ = ("kind", "parent", "records", "feed", "pickle_as")

    def __init__(
        self,
        kind: str,
        parent: Any,
        records: Sequence[TaskInfo],
        feed: str | None,
        pickle_as: Any = None,
    ) -> None:
        self.kind = kind
        self.parent = parent
        self.records = tuple(records)
        self.feed = feed
        self.pickle_as = pickle_as

    def value(self) -> Any:
        """What the follower is fed (its dependencies have all completed)."""
        if self.feed == "one":
            return self.records[0].result
        if self.feed == "record":
            return self.records[0]
        return [record.result for record in self.records]


def cancel_reason(kind: str | None, dependency: TaskInfo) -> str:
    """Why a task is canceled when ``dependency`` did not end as it needs."""
    if kind is None:
        return f"dependency failed: {dependency.id}"
    if kind == "link":
        return f"link: {dependency.id} did not complete"
    if kind == "link_error":
        return f"link_error: {dependency.id} did not fail"
    given = dependency.cancel_reason
    if given is not None and given.startswith(("chain: ", "chord: ")):
        return given  # the task that failed first is named all along
    return f"{kind}: {dependency.id} failed"


class DependencyWait:
    """Counts a dependant in its registry while it waits for its
    dependencies (see the module docstring). A waiter of the dependant: its
    ``set()`` (the dependant is final) ends the count if the release did not.

    Args:
        registry: the store that counts it (its supervisor's); None: an
            owner without one, nothing is counted.
    """

    __slots__ = ("registry", "counted")

    def __init__(self, registry: TaskRegistry | None) -> None:
        self.registry = registry
        self.counted = False  # the registry's lock guards it

    def begin(self, dependant: TaskInfo) -> None:
        """Count ``dependant`` until its release or its final status."""
        registry = self.registry
        if registry is None:
            return
        registry.dependency_wait_began(self)
        if not dependant._add_waker(self):
            self.set()  # final already (canceled since it was accepted)

    def set(self) -> None:
        """The wait is over (called once per way out; counted out once)."""
        registry = self.registry
        if registry is not None:
            registry.dependency_wait_ended(self)


class DependencyLink(Cascading):
    """Tells ``dependant`` that ``dependency`` is final (a waiter of the
    dependency; a cascade: see waiting.Cascading)."""

    __slots__ = ("dependant", "dependency", "release", "defer", "kind", "wait")

    def __init__(
        self,
        dependant: TaskInfo,
        dependency: TaskInfo,
        release: Callable[[TaskInfo], None],
        defer: Defer,
        kind: str | None = None,
        wait: DependencyWait | None = None,
    ) -> None:
        self.dependant = dependant
        self.dependency = dependency
        self.release = release
        self.defer = defer
        self.kind = kind
        self.wait = wait  # the dependant's count, shared by its links

    def _fire(self) -> None:
        try:
            dependant, dependency = self.dependant, self.dependency
            if self.kind == "link_error":
                wanted = dependency.status in FAILED_STATUSES
            else:
                wanted = dependency.status == TASK_STATUS_COMPLETED
            if not wanted:
                # Its user code (callbacks) must not run on the thread that
                # finished the dependency: it may be one of ours.
                dependant._finish(
                    TASK_STATUS_CANCELED,
                    only_from=(TASK_STATUS_DELAYED,),
                    defer=self.defer,
                    reason=cancel_reason(self.kind, dependency),
                )
                return
            with dependant._lock:
                extra = dependant._extra_locked()
                extra.pending -= 1
                ready = extra.pending == 0 and dependant.status == TASK_STATUS_DELAYED
            if ready:
                if self.wait is not None:
                    self.wait.set()  # the timer or the pool has it next
                self.release(dependant)
        except BaseException:  # a bug of ours: the finishing thread goes on
            logger.exception("dependency link of task %s failed", self.dependant.id)


def watch(
    dependant: TaskInfo,
    dependencies: Sequence[TaskInfo],
    release: Callable[[TaskInfo], None],
    defer: Defer,
    kind: str | None = None,
) -> None:
    """Release ``dependant`` (DELAYED) once every dependency has COMPLETED,
    or cancel it as soon as one has not; at once for those already final.
    ``kind``: the workflow it belongs to (see :func:`cancel_reason`)."""
    with dependant._lock:
        dependant._extra_locked().pending = len(dependencies)
    # Counted before any link can fire (a dependency may be final already).
    # The registry is the owner's (the supervisor's): get_info() reads it.
    registry = getattr(dependant._owner, "_registry", None)
    wait = DependencyWait(registry if isinstance(registry, TaskRegistry) else None)
    wait.begin(dependant)
    for dependency in dependencies:
        link = DependencyLink(dependant, dependency, release, defer, kind, wait)
        if not dependency._add_waker(link):
            link.set()  # already final
