"""Nested waits: a pool thread waiting for a task of its own pool lends its slot."""

from __future__ import annotations

import pytest
from conftest import WAIT

from atasker import background_task, wait_completed

POOLS = [
    {"pool_size": 1, "max_size": 1},  # one thread in all
    {"pool_size": 1},  # one slot, threads to spare
]


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("how", ["get", "wait", "wait_completed"])
def test_parent_waits_for_its_child(make_supervisor, pool, how) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(reserve_normal=0, reserve_high=0, **pool)
    sup.start()
    child = background_task(lambda x: x * 2, supervisor=sup)

    def parent(x):
        task = child(x)
        if how == "get":
            return task.get(WAIT) + 1
        if how == "wait":
            assert task.wait(WAIT)
            return task.result + 1
        return wait_completed([task], timeout=WAIT)[0] + 1

    assert background_task(parent, supervisor=sup)(5).get(WAIT) == 11
    # The pool is back to its limits and still runs tasks.
    assert background_task(abs, supervisor=sup)(-1).get(WAIT) == 1


@pytest.mark.parametrize("pool", POOLS)
def test_three_generations(make_supervisor, pool) -> None:
    sup = make_supervisor()
    sup.set_thread_pool(reserve_normal=0, reserve_high=0, **pool)
    sup.start()

    def generation(depth):
        if depth == 0:
            return 0
        return background_task(generation, supervisor=sup)(depth - 1).get(WAIT) + 1

    assert background_task(generation, supervisor=sup)(3).get(WAIT) == 3
    assert background_task(abs, supervisor=sup)(-1).get(WAIT) == 1
