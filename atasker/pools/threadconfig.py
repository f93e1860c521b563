"""The thread pool's configuration: the reserve rule and the thread limits.

The supervisor inherits :class:`ThreadPoolConfig`; the values live here and
go to the running :class:`~atasker.pools.threadpool.ThreadPool` whenever they change.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from ..core.validation import check_count

if TYPE_CHECKING:
    from .threadpool import ThreadPool


def reserve_rule(
    current: tuple[int, int, int], new: tuple[int | None, int | None, int | None]
) -> tuple[int, int, int]:
    """``(pool_size, reserve_normal, reserve_high)``: ``new`` where given
    (checked to be ints >= 0), else ``current``.

    Raises:
        TypeError, ValueError: a value is not an int >= 0.
    """
    names = ("pool_size", "reserve_normal", "reserve_high")
    pool_size, reserve_normal, reserve_high = (
        old if value is None else check_count(value, name)
        for old, value, name in zip(current, new, names)
    )
    return pool_size, reserve_normal, reserve_high


class ThreadPoolConfig:
    """``set_thread_pool`` and the values it sets (mixed into the supervisor).

    Attributes:
        pool_size, reserve_normal, reserve_high: the reserve rule.
        min_size: threads kept when idle (``'max'``: max_size).
        max_size: most threads for non-CRITICAL tasks; None: the default.
    """

    _state_lock: threading.RLock
    _pool: ThreadPool | None

    def __init__(self) -> None:
        super().__init__()
        self.pool_size = 0
        self.reserve_normal = 0
        self.reserve_high = 0
        self.min_size: int | str = 0
        self.max_size: int | None = None

    # atasker 0.7's names of the reserve rule.

    @property
    def thread_pool_size(self) -> int:
        """The thread pool's ``pool_size`` (atasker 0.7's attribute)."""
        return self.pool_size

    @property
    def thread_reserve_normal(self) -> int:
        """The thread pool's ``reserve_normal`` (atasker 0.7's attribute)."""
        return self.reserve_normal

    @property
    def thread_reserve_high(self) -> int:
        """The thread pool's ``reserve_high`` (atasker 0.7's attribute)."""
        return self.reserve_high

    def set_thread_pool(
        self,
        pool_size: int | None = None,
        reserve_normal: int | None = None,
        reserve_high: int | None = None,
        min_size: int | str | None = None,
        max_size: int | None = None,
    ) -> None:
        """Configure the thread pool; works before and while running.

        Args:
            pool_size: LOW tasks run while fewer than this run; 0: unlimited.
            reserve_normal: extra slots NORMAL (and higher) tasks may use.
            reserve_high: extra slots HIGH tasks may use on top of those.
                CRITICAL tasks always start, growing the pool past max_size.
            min_size: threads started with the pool and kept when idle;
                ``'max'`` for max_size.
            max_size: most threads for non-CRITICAL tasks. Default: the larger
                of ``cpu_count * 5`` and ``pool_size + reserves``.

        Raises:
            TypeError, ValueError: an argument is not an int >= 0, or
                min_size is larger than max_size.
        """
        with self._state_lock:
            # Everything is checked before anything changes.
            rule = reserve_rule(
                (self.pool_size, self.reserve_normal, self.reserve_high),
                (pool_size, reserve_normal, reserve_high),
            )
            if max_size is not None and check_count(max_size, "max_size") < 1:
                raise ValueError(f"max_size must be >= 1; got {max_size!r}")
            if min_size is not None and min_size != "max":
                check_count(min_size, "min_size")
            new_max = self.max_size if max_size is None else max_size
            new_min = self.min_size if min_size is None else min_size
            top = _max_threads(rule, new_max)
            if new_min != "max" and int(new_min) > top:
                raise ValueError(
                    f"min_size ({new_min}) cannot be larger than max_size ({top})"
                )
            self.pool_size, self.reserve_normal, self.reserve_high = rule
            self.max_size, self.min_size = new_max, new_min
            if self._pool is not None:
                self._pool.configure(
                    self.pool_size,
                    self.reserve_normal,
                    self.reserve_high,
                    self._min_threads(),
                    self._max_threads(),
                )

    set_config = set_thread_pool  # atasker's older name

    def _max_threads(self) -> int:
        return _max_threads(
            (self.pool_size, self.reserve_normal, self.reserve_high), self.max_size
        )

    def _min_threads(self) -> int:
        if self.min_size == "max":
            return self._max_threads()
        return min(int(self.min_size), self._max_threads())


def _max_threads(rule: tuple[int, int, int], max_size: int | None) -> int:
    """Most threads for non-CRITICAL tasks: ``max_size`` if set, else the
    larger of ``cpu_count * 5`` and the reserve rule's total."""
    if max_size is not None:
        return max_size
    default = (os.cpu_count() or 1) * 5
    return max(default, sum(rule)) if rule[0] else default
