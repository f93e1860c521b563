"""A finished record drops what it ran; nothing of ours holds a dropped record."""

from __future__ import annotations

import gc
import weakref

import pytest
from conftest import WAIT

from atasker import background_task


class Big:
    __slots__ = ("data", "__weakref__")

    def __init__(self) -> None:
        self.data = bytearray(1 << 20)


def test_finished_record_drops_target_args_kwargs(supervisor) -> None:
    argument = Big()
    keyword = Big()
    arg_ref, kw_ref = weakref.ref(argument), weakref.ref(keyword)

    def target(a, k=None):
        return 1

    task = background_task(target, supervisor=supervisor)(argument, k=keyword)
    assert task.get(WAIT) == 1
    del argument, keyword
    gc.collect()
    assert task.target is None
    assert task.args == ()
    assert dict(task.kwargs) == {}
    with pytest.raises(TypeError):
        task.kwargs["x"] = 1  # type: ignore[index]
    assert arg_ref() is None and kw_ref() is None


@pytest.mark.parametrize("keep", [0, 5])
def test_results_freed_once_handles_dropped(make_supervisor, keep) -> None:
    sup = make_supervisor(keep_finished=keep)
    sup.set_thread_pool(pool_size=4, reserve_normal=0, reserve_high=0, min_size=4)
    sup.start()
    refs = []
    for _ in range(400):
        task = background_task(Big, supervisor=sup)()
        refs.append(weakref.ref(task.get(WAIT)))
    del task
    # A pool thread may still be returning from the last task when get()
    # returns (waiters are woken first): stopping joins the threads.
    assert background_task(abs, supervisor=sup)(-1).get(WAIT) == 1
    sup.stop(wait=WAIT)
    gc.collect()
    alive = [r for r in refs if r() is not None]
    # Only the records still kept for look-up (the newest ``keep``) hold theirs.
    assert len(alive) <= keep
    assert all(refs[-1 - i]() is not None for i in range(keep - 1))
