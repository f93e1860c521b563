"""What the process pool's manager waits on, with one selector kept.

``multiprocessing.connection.wait`` makes a selector per call, which costs
more than the wait itself when a step handles one answer. The manager waits
on the same connections and sentinels step after step: the selector is kept
while they stay the same, and made anew (as ``wait`` would) when they change
(a worker started, retired or died). A poll selector, as ``wait`` uses: it
holds no state in the kernel, so a kept one behaves as a new one would.
"""

from __future__ import annotations

import selectors
from collections.abc import Sequence
from typing import Any

_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.SelectSelector
)


class KeptSelector:
    """``multiprocessing.connection.wait`` for a set of objects that rarely
    changes (connections, sentinels, file descriptors)."""

    def __init__(self) -> None:
        self._objects: tuple[Any, ...] = ()
        self._selector: selectors.BaseSelector | None = None

    def wait(self, objects: Sequence[Any], timeout: float | None) -> list[Any]:
        """The objects ready to read (or ended) within ``timeout`` seconds
        (None: no limit)."""
        objects = tuple(objects)
        selector = self._selector
        if selector is None or objects != self._objects:
            self.close()
            selector = self._selector = _Selector()
            for item in objects:
                selector.register(item, selectors.EVENT_READ)
            self._objects = objects
        return [key.fileobj for key, _ in selector.select(timeout)]

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
            self._objects = ()
