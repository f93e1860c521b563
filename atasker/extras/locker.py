"""Locker: a lock with a timeout that reports when it cannot be had.

Used as a decorator or a context manager. A lock not acquired within
``timeout`` seconds means something holds it far too long (a deadlock, a
hung call): it is logged at CRITICAL and :meth:`Locker.critical` is called,
where a daemon may restart itself. The decorated call then returns None; the
``with`` form raises TimeoutError.
"""

from __future__ import annotations

import functools
import logging
import threading
from types import TracebackType
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("atasker")


class Locker:
    """A named lock with a timeout.

    Args:
        mod: a name for the log messages.
        timeout: seconds to wait for the lock.
        relative: re-entrant (the holding thread may take it again), as
            atasker's Locker; False for a plain lock.
    """

    def __init__(
        self, mod: str = "main", timeout: float = 5, relative: bool = True
    ) -> None:
        self.mod = mod
        self.timeout = timeout
        self.relative = relative
        self.lock: Any = threading.RLock() if relative else threading.Lock()

    def critical(self) -> None:
        """Called when the lock was not acquired in time; override or assign."""

    def _acquire(self, what: str) -> bool:
        if self.lock.acquire(timeout=self.timeout):
            return True
        logger.critical(
            "locker %s: %s could not lock within %s s: locking broken",
            self.mod,
            what,
            self.timeout,
        )
        try:
            self.critical()
        except Exception:
            logger.exception("locker %s: critical() failed", self.mod)
        return False

    def __call__(self, f: F) -> F:
        """Decorate ``f`` to run holding the lock (None if not acquired)."""

        @functools.wraps(f)
        def locked(*args: Any, **kwargs: Any) -> Any:
            if not self._acquire(getattr(f, "__qualname__", repr(f))):
                return None
            try:
                return f(*args, **kwargs)
            finally:
                self.lock.release()

        return locked  # type: ignore[return-value]

    def __enter__(self) -> Locker:
        if not self._acquire("with block"):
            raise TimeoutError(
                f"locker {self.mod}: not acquired within {self.timeout} s"
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.lock.release()
