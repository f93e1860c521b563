"""Fixed-rate schedules: the one place that says when the next tick is.

Workers (:mod:`atasker.workers`) and async jobs (:mod:`atasker.aio.jobs`) both run
on a grid of ticks ``start + k * interval``. A run that overruns its interval
is followed at once by the next run, and the ticks it missed are skipped
instead of bursting to catch up::

    ticks:   0     1     2     3     4
    run:     [=========]                  overran ticks 1 and 2 (missed)
    next:                      ^ tick 3, the first still ahead
"""

from __future__ import annotations

import math


def next_tick(tick: float, interval: float, now: float) -> float:
    """The first tick of the grid ``tick + k * interval`` (k >= 1) after ``now``.

    Args:
        tick: the tick the last run took.
        interval: seconds between ticks (> 0).
        now: the current time, on the clock ``tick`` was read from.

    Returns:
        ``tick + interval`` if that is still ahead, else the first later tick
        of the grid that is.
    """
    following = tick + interval
    if following > now:
        return following
    following += (math.floor((now - following) / interval) + 1) * interval
    if following <= now:  # float rounding put it on ``now``
        following += interval
    return following
