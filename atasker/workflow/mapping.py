"""map, starmap and chunks of a task function.

A chunk of items runs as one task (:func:`run_chunk`): a process task's
chunk travels to its worker as one message and comes back as one list, so
the per-task cost is paid once per chunk. With ``chunksize=1`` each item is
a task of the function itself. The items are read lazily, at most
``buffersize`` chunks ahead (see results.py).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable

from ..core.constants import TT_COROUTINE, TT_MP
from ..core.context import current_context
from ..core.task import TaskInfo
from ..core.validation import check_count
from ..supervisor import task_supervisor
from .results import MapResult

if TYPE_CHECKING:
    from ..taskfunction import TaskFunction


def run_chunk(
    function: Callable[..., Any], star: bool, bind: bool, items: list[Any]
) -> list[Any]:
    """Run ``function`` on each item of a chunk, in order (the target of a
    chunk's task; in a worker process, ``function`` arrives by reference)."""
    function = getattr(function, "__atasker_function__", function)
    first = (current_context(),) if bind else ()
    if star:
        return [function(*first, *item) for item in items]
    return [function(*first, item) for item in items]


def map_chunks(
    task_function: TaskFunction,
    iterable: Iterable[Any],
    chunksize: Any,
    buffersize: Any,
    star: bool,
    flat: bool,
    options: dict[str, Any],
    size_name: str = "chunksize",
) -> MapResult:
    """Start a map of ``task_function`` over ``iterable``; its MapResult.

    Raises:
        TypeError, ValueError: a bad argument or option (named: the chunk
            size as ``size_name``).
    """
    size = check_count(chunksize, size_name)
    if size < 1:
        raise ValueError(f"{size_name} must be at least 1; got {chunksize!r}")
    if not isinstance(iterable, Iterable):
        raise TypeError(f"iterable must be iterable; got {iterable!r}")
    merged = task_function._options.replace(**options)
    supervisor = merged.supervisor or task_supervisor
    tt = task_function._task_type(merged)
    if buffersize is None:
        buffer = max(8, 4 * _workers(supervisor, tt, merged.pool))
    else:
        buffer = check_count(buffersize, "buffersize")
        if buffer < 1:
            raise ValueError(f"buffersize must be at least 1; got {buffersize!r}")
    chunks = _chunked(iter(iterable), size)
    if size == 1 and flat:
        # One task per item, of the function itself.
        def submit(chunk: list[Any]) -> TaskInfo:
            item = chunk[0]
            args = tuple(item) if star else (item,)
            return task_function._apply(args, {}, options)

    else:
        if tt == TT_COROUTINE:
            raise ValueError(
                "chunksize: a coroutine task function maps one item per task "
                "(chunksize=1)"
            )
        pickled = tt == TT_MP or merged.pool is not None
        function = task_function._pickle_as() if pickled else None
        function = function or task_function.run
        chunk_options = merged.replace(bind=False)  # run_chunk binds itself

        def submit(chunk: list[Any]) -> TaskInfo:
            record: TaskInfo = supervisor._submit(
                run_chunk,
                (function, star, merged.bind, chunk),
                {},
                chunk_options,
                tt,
            )
            return record

    return MapResult(submit, chunks, buffer, flat, single=size == 1 and flat)


def _chunked(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk:
            return
        yield chunk


def _workers(supervisor: Any, tt: int, pool_name: str | None) -> int:
    """About how many tasks of type ``tt`` (in pool ``pool_name``, if
    given) run at once on ``supervisor``."""
    if pool_name is not None:
        spec = supervisor._pool_specs.get(pool_name)  # its reserve rule
        if spec is None or not spec.size:
            return 8
        return int(spec.size + spec.reserve_normal + spec.reserve_high)
    if tt == TT_MP:
        pool = getattr(supervisor, "_mp_pool", None)
        if pool is not None:
            return int(pool.processes)
        return os.cpu_count() or 1
    # The reserve rule's threads, if there is one; else the pool's cap.
    size = sum(
        getattr(supervisor, name, 0) or 0
        for name in ("pool_size", "reserve_normal", "reserve_high")
    )
    if not getattr(supervisor, "pool_size", 0):
        size = getattr(getattr(supervisor, "_pool", None), "max_size", None) or 0
    return size if isinstance(size, int) and size > 0 else 8

