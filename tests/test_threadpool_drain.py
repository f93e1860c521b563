"""A drain under way reads its deadline again when hurried."""

from __future__ import annotations

import threading
import time

from conftest import WAIT, Gate

from atasker import TASK_NORMAL, TT_THREAD
from atasker.core.task import TaskInfo
from atasker.pools.threadpool import ThreadPool


def test_hurry_shortens_a_drain(gate: Gate) -> None:
    pool = ThreadPool(
        "test_drain_pool_",
        lambda task: task.run(),
        pool_size=1,
        reserve_normal=0,
        reserve_high=0,
        min_size=0,
        max_size=1,
    )
    running = TaskInfo("r", gate.block, (), {}, tt=TT_THREAD, priority=TASK_NORMAL)
    queued = TaskInfo("q", abs, (-1,), {}, tt=TT_THREAD, priority=TASK_NORMAL)
    assert pool.submit(running) and pool.submit(queued)
    gate.wait_started()
    deadline: list[float | None] = [None]  # first: no limit
    dropped: list[TaskInfo] = []
    drain = threading.Thread(
        target=lambda: dropped.extend(pool.shutdown(lambda: deadline[0]))
    )
    drain.start()
    # A later, shorter stop: the deadline is now, and the drain is woken.
    deadline[0] = time.monotonic()
    pool.hurry()
    drain.join(WAIT)
    assert not drain.is_alive()
    assert dropped == [queued]
    gate.release.set()
    assert running.get(WAIT) == "released"
    pool.join(time.monotonic() + WAIT)
