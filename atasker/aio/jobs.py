"""Async job scheduler: targets run at a fixed interval on an aloop.

Each job is a chain of loop timers (``loop.call_at``), nothing sleeps::

    tick ──> run the target (awaited; a plain function runs in the loop's
             executor) ──> when the run ends, arm the next tick: the first tick
             of the schedule start + k * interval that is still ahead

So a job never overlaps itself, a run that overran its interval skips the
ticks it missed instead of bursting to catch up, and a job whose run raised
is logged and keeps its schedule. Public methods may be called from any
thread; the scheduling itself happens in the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from ..core.interval import next_tick
from ..core.validation import check_callable, check_count, check_delay
from .aloop import ALoop
from .aloops import AloopRegistry

logger = logging.getLogger("atasker")


class AsyncJob:
    """One scheduled job; create it with ``create_async_job``.

    Attributes:
        target, args, kwargs: what runs at each tick.
        interval: seconds between ticks.
        delay_before: seconds before the first tick.
        number: runs to make, then the job ends; 0: no limit.
        runs: completed runs so far.
        canceled: True once canceled (or ended by ``number``).
    """

    def __init__(
        self,
        scheduler: AsyncJobScheduler,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        interval: float,
        delay_before: float | None,
        number: int = 0,
    ) -> None:
        self.scheduler = scheduler
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self.interval = interval
        self.delay_before = delay_before
        self.number = number
        self.runs = 0
        self.canceled = False
        self._next = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """True until the job is canceled or has made its ``number`` of runs."""
        return not self.canceled

    def cancel(self) -> None:
        """Cancel the job (aiosched's call): no more ticks; a run in progress
        is cancelled."""
        self.scheduler.cancel_job(self)

    def __repr__(self) -> str:
        name = getattr(self.target, "__qualname__", repr(self.target))
        return f"<AsyncJob {name} every {self.interval} s, {self.runs} runs>"


class AsyncJobScheduler:
    """Runs :class:`AsyncJob` s on one aloop."""

    def __init__(self, name: str, aloop: ALoop) -> None:
        self.name = name
        self.aloop = aloop
        self._jobs: set[AsyncJob] = set()
        self._lock = threading.Lock()
        self.active = False

    def __repr__(self) -> str:
        return f"<AsyncJobScheduler {self.name!r} on {self.aloop.name!r}>"

    def get_jobs(self) -> list[AsyncJob]:
        """The jobs not canceled."""
        with self._lock:
            return list(self._jobs)

    def start(self) -> None:
        """Start running the jobs (those created so far, and later ones)."""
        with self._lock:
            if self.active:
                return
            self.active = True
            jobs = list(self._jobs)
        loop = self.aloop.get_loop()
        for job in jobs:
            loop.call_soon_threadsafe(self._arm_first, job)

    def create_job(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        interval: float | None = None,
        delay_before: float | None = None,
        timer: float | None = None,
        number: int = 0,
    ) -> AsyncJob:
        """Schedule ``target(*args, **kwargs)`` every ``interval`` seconds.

        Args:
            target: a coroutine function, or a function (run in the loop's
                default executor).
            interval: seconds between runs.
            delay_before: seconds before the first run.
            timer: aiosched's option: the first run is ``timer`` seconds from
                now, and ``timer`` is the interval too unless ``interval`` is
                given.
            number: make this many runs, then end the job; 0: no limit.

        Raises:
            TypeError: target not callable, interval, delay, timer or number
                not a number.
            ValueError: interval not > 0, delay_before or timer negative,
                number negative.
        """
        check_callable(target, "target")
        timer = check_delay(timer, "timer")
        if interval is None and timer:
            interval = timer
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise TypeError(f"interval must be a number of seconds; got {interval!r}")
        if not math.isfinite(interval) or interval <= 0:
            raise ValueError(
                f"interval must be a finite number of seconds > 0; got {interval!r}"
            )
        delay_before = check_delay(delay_before, "delay_before")
        job = AsyncJob(
            self,
            target,
            tuple(args),
            dict(kwargs or {}),
            float(interval),
            (delay_before or 0.0) + (timer or 0.0) or None,
            check_count(number, "number"),
        )
        with self._lock:
            self._jobs.add(job)
            active = self.active
        if active:
            self.aloop.get_loop().call_soon_threadsafe(self._arm_first, job)
        return job

    def create_threadsafe(self, target: Callable[..., Any], **options: Any) -> AsyncJob:
        """aiosched's name for :meth:`create_job` (thread-safe, as all are)."""
        return self.create_job(target, **options)

    def cancel(self, job: AsyncJob) -> None:
        """aiosched's name for :meth:`cancel_job`."""
        self.cancel_job(job)

    def cancel_job(self, job: AsyncJob) -> None:
        """Stop ``job``: no more ticks; a run in progress is cancelled."""
        with self._lock:
            self._jobs.discard(job)
        job.canceled = True
        # A stopped loop raises RuntimeError: nothing runs there any more.
        with contextlib.suppress(RuntimeError):
            self.aloop.get_loop().call_soon_threadsafe(self._cancel_in_loop, job)

    def stop(self, wait: bool = True) -> None:
        """Cancel every job. ``wait`` is accepted for compatibility."""
        with self._lock:
            self.active = False
            jobs, self._jobs = self._jobs, set()
        for job in jobs:
            self.cancel_job(job)

    # In the loop's thread -------------------------------------------------

    def _arm_first(self, job: AsyncJob) -> None:
        if job.canceled or job._timer is not None or job._running is not None:
            return
        loop = asyncio.get_running_loop()
        job._next = loop.time() + (job.delay_before or 0.0)
        job._timer = loop.call_at(job._next, self._tick, job)

    def _tick(self, job: AsyncJob) -> None:
        job._timer = None
        if not job.canceled:
            job._running = asyncio.get_running_loop().create_task(self._run(job))

    async def _run(self, job: AsyncJob) -> None:
        loop = asyncio.get_running_loop()
        try:
            if inspect.iscoroutinefunction(job.target):
                await job.target(*job.args, **job.kwargs)
            else:
                call = functools.partial(job.target, *job.args, **job.kwargs)
                result = await loop.run_in_executor(None, call)
                if inspect.isawaitable(result):
                    await result
        except asyncio.CancelledError:
            job.canceled = True  # cancelled by cancel_job or by the loop stopping
            raise
        except Exception:
            logger.exception("async job %r failed; it keeps its schedule", job)
        finally:
            job._running = None
        job.runs += 1
        if job.number and job.runs >= job.number:
            self._end(job)
        if job.canceled:
            return
        # The next tick of the schedule still ahead: missed ticks are skipped.
        job._next = next_tick(job._next, job.interval, loop.time())
        job._timer = loop.call_at(job._next, self._tick, job)

    def _end(self, job: AsyncJob) -> None:
        """``job`` made its ``number`` of runs."""
        self.cancel_job(job)

    @staticmethod
    def _cancel_in_loop(job: AsyncJob) -> None:
        if job._timer is not None:
            job._timer.cancel()
            job._timer = None
        if job._running is not None:
            job._running.cancel()


class JobSchedulerRegistry(AloopRegistry):
    """The async job schedulers of a supervisor (the supervisor inherits this)."""

    def __init__(self) -> None:
        super().__init__()
        self._job_schedulers: dict[str, AsyncJobScheduler] = {}
        self.default_async_job_scheduler: AsyncJobScheduler | None = None

    def create_async_job_scheduler(
        self,
        name: str,
        aloop: str | ALoop | None = None,
        start: bool = True,
        default: bool = False,
    ) -> AsyncJobScheduler:
        """Create a scheduler of async jobs on an aloop.

        Args:
            name: its name (unique).
            aloop: an aloop name or ALoop; the default aloop if None.
            start: start it now.
            default: make it the default for ``create_async_job``.

        Raises:
            ValueError: the name is taken, or no such aloop.
            RuntimeError: no aloop given and no default aloop.
        """
        target = self.get_aloop(aloop) if aloop is not None else self.default_aloop
        if target is None:
            if aloop is not None:
                raise ValueError(
                    f"no aloop named {aloop!r}: create_aloop({aloop!r}) first"
                )
            raise RuntimeError(
                "no aloop for the scheduler: pass aloop=, or create one with "
                "supervisor.create_aloop('name', default=True)"
            )
        scheduler = AsyncJobScheduler(name, target)
        with self._aloops_lock:
            if name in self._job_schedulers:
                raise ValueError(
                    f"an async job scheduler named {name!r} already exists"
                )
            self._job_schedulers[name] = scheduler
            if default or self.default_async_job_scheduler is None:
                self.default_async_job_scheduler = scheduler
        if start:
            scheduler.start()
        return scheduler

    def get_async_job_schedulers(self) -> dict[str, AsyncJobScheduler]:
        """Every async job scheduler, by name."""
        with self._aloops_lock:
            return dict(self._job_schedulers)

    def _job_scheduler(
        self, scheduler: str | AsyncJobScheduler | None
    ) -> AsyncJobScheduler:
        if isinstance(scheduler, AsyncJobScheduler):
            return scheduler
        if scheduler is None:
            found = self.default_async_job_scheduler
        else:
            found = self.get_async_job_schedulers().get(scheduler)
        if found is None:
            raise ValueError(
                f"no async job scheduler {scheduler!r}: "
                "create_async_job_scheduler(name, default=True) first"
            )
        return found

    def create_async_job(
        self,
        scheduler: str | AsyncJobScheduler | None = None,
        target: Callable[..., Any] | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        interval: float | None = None,
        delay_before: float | None = None,
        timer: float | None = None,
        number: int = 0,
    ) -> AsyncJob:
        """Run ``target`` every ``interval`` seconds on a scheduler (the
        default one if None); see :meth:`AsyncJobScheduler.create_job` (for
        ``timer`` and ``number`` too)."""
        return self._job_scheduler(scheduler).create_job(
            target,  # type: ignore[arg-type]
            args=args,
            kwargs=kwargs,
            interval=interval,
            delay_before=delay_before,
            timer=timer,
            number=number,
        )

    def cancel_async_job(
        self,
        scheduler: str | AsyncJobScheduler | None = None,
        job: AsyncJob | None = None,
    ) -> None:
        """Cancel ``job`` (on the default scheduler if ``scheduler`` is None)."""
        if not isinstance(job, AsyncJob):
            raise TypeError(f"job must be an AsyncJob; got {job!r}")
        self._job_scheduler(scheduler).cancel_job(job)

    def _stop_job_schedulers(self) -> None:
        for scheduler in self.get_async_job_schedulers().values():
            scheduler.stop()
