"""Function and task collections, Locker, g, set_debug."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from conftest import WAIT

from atasker import (
    TASK_HIGH,
    TASK_LOW,
    FunctionCollection,
    LocalProxy,
    Locker,
    TaskCollection,
    g,
    set_debug,
)


def make_functions(order: list):
    def first():
        order.append("first")
        return 1

    def second():
        order.append("second")
        return 2

    def third():
        order.append("third")
        return 3

    def broken():
        order.append("broken")
        raise ValueError("broken")

    return first, second, third, broken


def make_collection(kind, supervisor, **options):
    if kind == "tasks":
        return TaskCollection(supervisor=supervisor, **options)
    return FunctionCollection(**options)


@pytest.mark.parametrize("kind", ["functions", "tasks"])
def test_collection_order_results_and_all_ok(kind, supervisor) -> None:
    order: list = []
    first, second, third, broken = make_functions(order)
    errors = []

    def on_error(**kwargs):  # atasker 0.7's documented handler
        errors.append((sys.exc_info()[1], kwargs))

    collection = make_collection(
        kind, supervisor, on_error=on_error, on_error_kwargs={"k": 1}
    )
    collection(third)  # bare decorator form: TASK_NORMAL
    collection(priority=TASK_HIGH)(first)
    collection.append(second, priority=TASK_HIGH)
    collection.append(broken, priority=TASK_LOW)
    collection.append(second)  # already in: ignored, as in 0.7
    results, all_ok = collection.execute()
    prefix = f"{__name__}."
    assert results == {
        prefix + "first": 1,
        prefix + "second": 2,
        prefix + "third": 3,
        prefix + "broken": None,
    }
    assert list(results) == [prefix + n for n in ("first", "second", "third", "broken")]
    assert all_ok is False
    assert [(str(e), kw) for e, kw in errors] == [("broken", {"k": 1})]
    assert isinstance(errors[0][0], ValueError)  # on_error ran inside the except
    if kind == "functions":
        assert order == ["first", "second", "third", "broken"]
    collection.remove(broken)
    assert collection.execute()[1] is True
    assert len(collection.run()) == 3
    assert collection() == collection.run()  # calling the collection runs it
    with pytest.raises(ValueError):
        collection.remove(broken)


@pytest.mark.parametrize("kind", ["functions", "tasks"])
def test_include_exceptions_and_logging(kind, supervisor, caplog) -> None:
    order: list = []
    _, _, _, broken = make_functions(order)
    collection = make_collection(kind, supervisor, include_exceptions=True)
    collection(broken)
    with caplog.at_level(logging.ERROR, logger="atasker"):
        results = collection.run()
    ((exc, text),) = results.values()
    assert isinstance(exc, ValueError)
    assert "Traceback" in text and "ValueError: broken" in text
    assert "broken" in caplog.text


@pytest.mark.parametrize("kind", ["functions", "tasks"])
def test_unknown_options_are_accepted(kind, supervisor) -> None:
    collection = make_collection(kind, supervisor, colour="blue")
    assert collection.options == {"colour": "blue"}


def test_locker_decorator_and_with() -> None:
    lock = Locker(mod="test", timeout=WAIT)

    @lock
    def locked(x):
        with lock:  # re-entrant (relative=True)
            return x * 2

    assert locked(21) == 42


def test_locker_timeout_paths(caplog) -> None:
    lock = Locker(mod="test", timeout=0.05)
    called = []
    lock.critical = lambda: called.append("critical")
    holding = threading.Event()
    release = threading.Event()

    def hold():
        with lock:
            holding.set()
            release.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(WAIT)
    try:
        with caplog.at_level(logging.CRITICAL, logger="atasker"):

            @lock
            def blocked():
                return "ran"

            assert blocked() is None
            with pytest.raises(TimeoutError), lock:
                pass
    finally:
        release.set()
        holder.join(WAIT)
    assert called == ["critical", "critical"]
    assert "locking broken" in caplog.text


def test_g_is_per_thread() -> None:
    g.set("user", "main")
    seen = {}

    def other():
        seen["has"] = g.has("user")
        g.set("user", "other")
        seen["value"] = g.get("user")

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(WAIT)
    assert seen == {"has": False, "value": "other"}
    assert g.get("user") == "main" and g.get("missing", 5) == 5
    g.clear("user")
    assert not g.has("user")
    assert isinstance(g, LocalProxy)


def test_set_debug() -> None:
    logger = logging.getLogger("atasker")
    set_debug()
    assert logger.level == logging.DEBUG
    set_debug(False)
    assert logger.level == logging.NOTSET
