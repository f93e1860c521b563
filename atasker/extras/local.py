"""Thread-local data (``g``) and the debug switch."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any


class LocalProxy(threading.local):
    """Attributes local to the current thread, with dict-like helpers."""

    def get(self, attr: str, default: Any = None) -> Any:
        """The value of ``attr`` in this thread, or ``default``."""
        return getattr(self, attr, default)

    def has(self, attr: str) -> bool:
        """True if ``attr`` is set in this thread."""
        return hasattr(self, attr)

    def set(self, attr: str, value: Any) -> None:
        """Set ``attr`` in this thread."""
        setattr(self, attr, value)

    def clear(self, attr: str) -> None:
        """Remove ``attr`` in this thread (no error if absent)."""
        with contextlib.suppress(AttributeError):
            delattr(self, attr)


g = LocalProxy()


def set_debug(mode: bool = True) -> None:
    """Set the ``atasker`` logger to DEBUG (True) or back to NOTSET (False)."""
    logging.getLogger("atasker").setLevel(logging.DEBUG if mode else logging.NOTSET)
