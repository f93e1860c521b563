"""What the process pool's manager waits on, with one poll object kept.

``multiprocessing.connection.wait`` makes a selector per call and returns
the ready objects, which the caller then matches to its workers: both cost
more than the wait itself when a step handles one answer. The manager waits
on the same connections and sentinels step after step, so the poll object
is kept while they stay the same (the roster says when they change: a
worker started, retired or died), and each object is registered with a
tag, the worker or process it belongs to, which ``wait`` returns.

A plain ``select.poll`` holds no state in the kernel, so a kept one behaves
as a new one would. Where there is none, a ``selectors`` selector is used.
"""

from __future__ import annotations

import math
import select
import selectors
from collections.abc import Callable, Iterable
from typing import Any

# Where there is no poll (Windows), a selectors selector.
_poll: Callable[[], Any] | None = getattr(select, "poll", None)


def _fileno(item: Any) -> int:
    return item if isinstance(item, int) else int(item.fileno())


class KeptSelector:
    """``multiprocessing.connection.wait`` for a set of objects that rarely
    changes (connections, sentinels, file descriptors), each with a tag."""

    def __init__(self) -> None:
        self._key: int | None = None
        self._poll: Any = None
        self._selector: selectors.BaseSelector | None = None
        self._tags: dict[int, Any] = {}

    def watch(self, key: int, entries: Callable[[], Iterable[tuple[Any, Any]]]) -> None:
        """Wait on the ``(object, tag)`` pairs that ``entries()`` gives,
        unless ``key`` is the one given last (then they are the same)."""
        if key == self._key:
            return
        self.close()
        tags: dict[int, Any] = {}
        if _poll is not None:
            self._poll = _poll()
            for item, tag in entries():
                fd = _fileno(item)
                # Readable or ended (POLLHUP, POLLERR: reported always).
                self._poll.register(fd, select.POLLIN)
                tags[fd] = tag
        else:
            self._selector = selectors.DefaultSelector()
            for item, tag in entries():
                self._selector.register(item, selectors.EVENT_READ, tag)
        self._tags = tags
        self._key = key

    def wait(self, timeout: float | None) -> list[Any]:
        """The tags of the objects ready to read (or ended) within
        ``timeout`` seconds (None: no limit)."""
        if self._poll is not None:
            milliseconds = None if timeout is None else math.ceil(timeout * 1e3)
            tags = self._tags
            return [tags[fd] for fd, _ in self._poll.poll(milliseconds)]
        assert self._selector is not None
        return [key.data for key, _ in self._selector.select(timeout)]

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()
        self._selector = self._poll = None
        self._tags = {}
        self._key = None
