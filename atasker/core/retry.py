"""The retry policy: whether a failed attempt is retried, and after how long.

::

    attempt failed with exc ──> a Retry signal (ctx.retry())? ── yes ──> retry,
                          │ no                 while retries made < its max_retries
                          │                    (default: the retries option)
                          └──> retries made < retries, exc in retry_for,
                               and not a never-retried kind (unless named)? ──> retry

    wait before retry n (n = retries made so far, from 0):
        retry_backoff False   retry_delay
        retry_backoff True    (retry_delay or 1 s) * 2**n
        retry_backoff b       b * 2**n
        backoff waits are capped at retry_backoff_max; retry_jitter draws
        uniformly between 0 and the wait ("full jitter")
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random

from .errors import Retry, TaskError, TaskTimeoutError
from .options import TaskOptions

# Failures that are not retried unless retry_for names their class (or a
# subclass): an expected, reported failure; a cancellation; a hard time limit.
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    TaskError,
    concurrent.futures.CancelledError,
    asyncio.CancelledError,
    TaskTimeoutError,
)

# The random draw of retry_jitter (a test may replace it).
uniform = random.uniform


def is_retryable(options: TaskOptions, exc: BaseException) -> bool:
    """Does ``options.retry_for`` cover ``exc``? (The count is the caller's.)"""
    matching = [cls for cls in options.retry_for if isinstance(exc, cls)]
    if not matching:
        return False
    for never in NEVER_RETRIED:
        if isinstance(exc, never):
            return any(issubclass(cls, never) for cls in matching)
    return True


def retry_wait(options: TaskOptions, retries_made: int) -> float:
    """Seconds to wait before the next attempt (see the module docstring)."""
    backoff = options.retry_backoff
    if backoff is False:
        wait = options.retry_delay
    else:
        base = (options.retry_delay or 1.0) if backoff is True else float(backoff)
        # 2**n overflows a float past n = 1023: the cap applies long before.
        wait = min(base * 2.0 ** min(retries_made, 1023), options.retry_backoff_max)
    if options.retry_jitter and wait > 0:
        wait = uniform(0.0, wait)
    return wait


def next_wait(
    options: TaskOptions, exc: BaseException, retries_made: int, retryable: bool
) -> float | None:
    """The wait before another attempt after ``exc``, or None: no retry.

    Args:
        options: the task's options.
        exc: what the attempt raised.
        retries_made: retries already made.
        retryable: False when the attempt asked for no automatic retry (its
            ``ctx.retry()`` ran out of retries and re-raised).
    """
    if isinstance(exc, Retry):
        limit = options.retries if exc.max_retries is None else exc.max_retries
        if retries_made >= limit:
            return None  # raised past its limit (ctx.retry() raises no Retry then)
        if exc.countdown is not None:
            return exc.countdown
        return retry_wait(options, retries_made)
    if not retryable or retries_made >= options.retries:
        return None
    if not is_retryable(options, exc):
        return None
    return retry_wait(options, retries_made)
