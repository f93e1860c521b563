"""The supervisor's event bus, as its users see it: subscribe, events.

The records publish their lifecycle (queued here at the submit, the others in
task.py and attempts.py); a running task's ``emit`` comes through
``_task_emitted``. The bus itself is core/events.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..core.events import DEFAULT_BUFFER, EventBus, EventStream, Subscription, TaskEvent
from ..core.task import TaskInfo


class TaskEvents:
    """Subscriptions to the events of the supervisor's tasks (mixed into
    the supervisor)."""

    if TYPE_CHECKING:  # ClassTaskControl's

        def _class_task_reloaded(self, task: TaskInfo, data: Any) -> None: ...

    def __init__(self) -> None:
        super().__init__()
        self._events = EventBus("atasker_")

    def subscribe(
        self,
        pattern: str,
        callback: Callable[[TaskEvent], Any],
        *,
        buffer: int = DEFAULT_BUFFER,
    ) -> Subscription:
        """Call ``callback(event)`` for each event of every task whose name
        matches the glob ``pattern`` ("*": all), on a thread of the
        subscription's own, in the order they were published. A callback
        slower than the tasks loses the oldest of the ``buffer`` events it
        has not had yet (``Subscription.dropped`` counts them); the tasks
        never wait for it.

        Returns:
            The subscription: ``unsubscribe()`` ends it.

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
        """
        return self._events.subscribe(pattern, callback, buffer)

    def events(
        self, pattern: str = "*", *, buffer: int = DEFAULT_BUFFER
    ) -> EventStream:
        """The events of tasks whose name matches ``pattern``, from now on,
        as an async iterator (``async for event in supervisor.events()``)
        for any asyncio loop; it ends when the supervisor stops or on
        ``close()``. Buffering as :meth:`subscribe`'s.

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
        """
        return self._events.stream(pattern, buffer)

    def _task_emitted(self, task: TaskInfo, event: str, data: Any) -> None:
        """A running task emitted ``event``; a class task's run that began
        again after a reload says "reloaded"."""
        if event == "reloaded":  # it publishes "reloaded"
            self._class_task_reloaded(task, data)
            return
        events = self._events
        if events.active:
            events.publish(task.id, task.name, event, data)
