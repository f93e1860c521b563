"""TaskOptions: the one validated, immutable set of options of a task.

The decorator (``@background_task(**options)``), ``apply_async(**options)``,
``supervisor.submit(**options)`` and ``co_apply`` all build or refine one of
these; each value is checked once, where it is given, and an unknown option
or a bad value raises there, naming the option::

    background_task(f, retries=3)        TaskOptions(retries=3)        at decoration
    f.apply_async(args, countdown=5)     options.replace(delay=5)      at the call
    f(*args)                             the decorator's object, as is (no check)

Times: ``delay`` (``countdown``) is seconds from the submit; ``eta`` a
``datetime`` or epoch seconds, kept as epoch seconds; ``expires`` seconds
from the submit or a ``datetime``, resolved at each submit
(:meth:`TaskOptions.expires_at`). A per-call ``delay``, ``countdown`` or
``eta`` replaces all three of the defaults.
"""

from __future__ import annotations

import asyncio
import datetime
import types
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Protocol, runtime_checkable

from .constants import TASK_NORMAL, TT_MP, TT_THREAD
from .validation import (
    check_bool,
    check_callable,
    check_count,
    check_delay,
    check_epoch,
    check_exception_types,
    check_limit,
    check_priority,
    check_task_type,
)

# atasker 0.7's options: a task that uses only these needs none of the
# per-attempt machinery (hooks, context, limits on threads, retries).
PLAIN_OPTIONS = frozenset(
    ("name", "priority", "tt", "delay", "callback", "loop", "supervisor")
)

HOOKS = ("on_start", "on_success", "on_error", "on_retry", "after_return")
END_HOOKS = ("on_success", "on_error", "after_return")  # run as a task ends

# Every option and its default.
DEFAULTS: dict[str, Any] = {
    "name": None,
    "priority": TASK_NORMAL,
    "tt": TT_THREAD,
    "delay": None,
    "eta": None,
    "expires": None,
    "callback": None,
    "time_limit": None,
    "soft_time_limit": None,
    "retries": 0,
    "retry_for": (Exception,),
    "retry_delay": 0.0,
    "retry_backoff": False,
    "retry_backoff_max": 600.0,
    "retry_jitter": False,
    **dict.fromkeys(HOOKS),
    "bind": False,
    "depends_on": (),
    "link": (),
    "link_error": (),
    "loop": None,
    "supervisor": None,
    "pool": None,
}

# The options that say when a task runs: given per call, they replace all of
# the defaults' (a call with eta= does not also wait the decorator's delay).
WHEN = ("delay", "eta")


@runtime_checkable
class SupervisorLike(Protocol):
    """What ``supervisor=`` must be (a TaskSupervisor; the core does not
    import it)."""

    def submit(self, *args: Any, **kwargs: Any) -> Any: ...

    def get_task(self, task_id: Any) -> Any: ...


def _check_name(value: Any, argument: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{argument} must be a str or None; got {value!r}")
    return value


def _check_expires(value: Any, argument: str) -> float | datetime.datetime | None:
    """Seconds from the submit (> 0), or a datetime (kept: resolved per submit)."""
    if value is None or isinstance(value, datetime.datetime):
        return value
    return check_limit(value, argument)


def _check_eta(value: Any, argument: str) -> float | None:
    return None if value is None else check_epoch(value, argument)


def _check_backoff(value: Any, argument: str) -> bool | float:
    if isinstance(value, bool):
        return value
    seconds = check_limit(value, argument) if value is not None else None
    if seconds is None:
        raise TypeError(f"{argument} must be True, False or seconds > 0; got None")
    return seconds


def _check_retry_delay(value: Any, argument: str) -> float:
    return check_delay(value, argument) or 0.0


def _check_backoff_max(value: Any, argument: str) -> float:
    seconds = check_limit(value, argument)
    if seconds is None:
        raise TypeError(f"{argument} must be a number of seconds > 0; got None")
    return seconds


def _check_hook(value: Any, argument: str) -> Callable[..., Any] | None:
    result: Callable[..., Any] | None = check_callable(value, argument, allow_none=True)
    return result


def _check_depends_on(value: Any, argument: str) -> tuple[Any, ...]:
    """Records or task ids (a single one, or an iterable of them).

    Whether each id is known is checked at the submit, by the supervisor.
    """
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        items: tuple[Any, ...] = (value,)
    else:
        items = tuple(value)
    for item in items:
        # A record: anything with an id and a status (TaskInfo; not imported
        # here, so that options stay below the record in the layers).
        if not isinstance(item, str) and not (
            hasattr(item, "id") and hasattr(item, "status")
        ):
            raise TypeError(
                f"{argument} must hold task records or task ids; got {item!r}"
            )
    return items


def _check_links(value: Any, argument: str) -> tuple[Any, ...]:
    """A signature or an iterable of them (workflow Signatures: not imported
    here, so that options stay below them in the layers)."""
    if value is None:
        return ()
    items = (value,) if _is_signature(value) else None
    if items is None:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise TypeError(
                f"{argument} must be a signature (f.s(...)) or a list of them; "
                f"got {value!r}"
            )
        items = tuple(value)
    for item in items:
        if not _is_signature(item):
            raise TypeError(f"{argument} must hold signatures (f.s(...)); got {item!r}")
        if argument == "link_error" and item.task_type == TT_MP:
            raise ValueError(
                f"link_error: {item!r} is a process task, but an error link is "
                "called with the failed record, which cannot be pickled: make "
                "it a thread task"
            )
    return items


def _is_signature(value: Any) -> bool:
    return callable(getattr(value, "_follow_task", None))


def _check_loop(value: Any, argument: str) -> Any:
    if (
        value is None
        or isinstance(value, (str, asyncio.AbstractEventLoop))
        or callable(getattr(value, "get_loop", None))  # an ALoop
    ):
        return value
    raise TypeError(
        f"{argument} must be an aloop name, an ALoop or an asyncio loop; got {value!r}"
    )


def _check_pool(value: Any, argument: str) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise TypeError(
        f"{argument} must be the name of a pool (add_pool()) or None; got {value!r}"
    )


def check_for_executor(values: Mapping[str, Any], where: str) -> None:
    """Refuse what a task run by an external executor cannot have: a
    context (``bind``) or a soft limit.

    Raises:
        ValueError: names ``where`` (how the task goes there) and the option.
    """
    for option in ("bind", "soft_time_limit"):
        if values[option] not in (None, False):
            raise ValueError(
                f"{where} cannot be given with {option}: a task an executor "
                "runs has no context and no soft limit"
            )


def _check_supervisor(value: Any, argument: str) -> Any:
    if value is None or isinstance(value, SupervisorLike):
        return value
    raise TypeError(f"{argument} must be a TaskSupervisor; got {value!r}")


CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "name": _check_name,
    "priority": check_priority,
    "tt": check_task_type,
    "delay": check_delay,
    "eta": _check_eta,
    "expires": _check_expires,
    "callback": _check_hook,
    "time_limit": check_limit,
    "soft_time_limit": check_limit,
    "retries": check_count,
    "retry_for": check_exception_types,
    "retry_delay": _check_retry_delay,
    "retry_backoff": _check_backoff,
    "retry_backoff_max": _check_backoff_max,
    "retry_jitter": check_bool,
    **dict.fromkeys(HOOKS, _check_hook),
    "bind": check_bool,
    "depends_on": _check_depends_on,
    "link": _check_links,
    "link_error": _check_links,
    "loop": _check_loop,
    "supervisor": _check_supervisor,
    "pool": _check_pool,
}


class TaskOptions:
    """The options of a task, checked; immutable (see the module docstring).

    ``TaskOptions(**options)`` checks each value; :meth:`replace` makes a
    new object with some changed. Read an option as an attribute
    (``options.retries``) or through :attr:`mapping`.

    Raises (both):
        TypeError: an unknown option, a value of the wrong type, or both
            ``delay`` and ``countdown``.
        ValueError: a value out of range (a negative delay, an unknown
            priority, a soft limit not below the hard one, ...).
    """

    __slots__ = (*DEFAULTS, "_mapping", "_extended", "end_hooks")

    name: str | None
    priority: int
    tt: int
    delay: float | None
    eta: float | None
    expires: float | datetime.datetime | None
    callback: Callable[[Any], Any] | None
    time_limit: float | None
    soft_time_limit: float | None
    retries: int
    retry_for: tuple[type[BaseException], ...]
    retry_delay: float
    retry_backoff: bool | float
    retry_backoff_max: float
    retry_jitter: bool
    on_start: Callable[..., Any] | None
    on_success: Callable[..., Any] | None
    on_error: Callable[..., Any] | None
    on_retry: Callable[..., Any] | None
    after_return: Callable[..., Any] | None
    bind: bool
    depends_on: tuple[Any, ...]
    link: tuple[Any, ...]
    link_error: tuple[Any, ...]
    loop: Any
    supervisor: Any
    pool: str | None
    _mapping: Mapping[str, Any]
    _extended: frozenset[str] | None  # non-default options beyond 0.7's
    end_hooks: bool  # on_success, on_error or after_return is set

    def __init__(self, **options: Any) -> None:
        self._set(DEFAULTS, _checked(options))

    def _set(self, base: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
        values = {**base, **changes}
        soft, hard = values["soft_time_limit"], values["time_limit"]
        if soft is not None and hard is not None and soft >= hard:
            raise ValueError(
                f"soft_time_limit ({soft}) must be less than time_limit ({hard})"
            )
        if values["pool"] is not None:
            check_for_executor(values, f"pool={values['pool']!r}")
        for key, value in values.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_mapping", types.MappingProxyType(values))
        object.__setattr__(self, "_extended", None)
        object.__setattr__(
            self,
            "end_hooks",
            any(values[hook] is not None for hook in END_HOOKS),
        )

    def replace(self, **changes: Any) -> TaskOptions:
        """A new options object: these options changed (checked), the rest
        kept. A ``delay``, ``countdown`` or ``eta`` among them replaces this
        object's delay and eta."""
        if not changes:
            return self
        checked = _checked(changes)
        if not WHEN_KEYS.isdisjoint(changes):
            checked = {**dict.fromkeys(WHEN, None), **checked}
        new = object.__new__(TaskOptions)
        new._set(self._mapping, checked)
        return new

    @property
    def mapping(self) -> Mapping[str, Any]:
        """Every option and its value, read-only."""
        return self._mapping

    def is_plain(self, task_type: int) -> bool:
        """True if a task of ``task_type`` with these options needs nothing
        beyond atasker 0.7's options (a process task's time limit is its
        pool's business, as before)."""
        extended = self._extended
        if extended is None:  # computed once: options objects are shared
            extended = frozenset(
                key
                for key, value in self._mapping.items()
                if key not in PLAIN_OPTIONS and value != DEFAULTS[key]
            )
            object.__setattr__(self, "_extended", extended)
        return not extended or (extended == _TIME_LIMIT and task_type == TT_MP)

    def expires_at(self, now: float) -> float | None:
        """The expiry as epoch seconds for a task submitted at ``now``."""
        expires = self.expires
        if expires is None:
            return None
        if isinstance(expires, datetime.datetime):
            return expires.timestamp()
        return now + expires

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("TaskOptions are immutable: use replace()")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskOptions):
            return NotImplemented
        return dict(self._mapping) == dict(other._mapping)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.changed().items(), key=lambda kv: kv[0])))

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults."""
        return {k: v for k, v in self._mapping.items() if v != DEFAULTS[k]}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.changed().items())
        return f"TaskOptions({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.changed(),))


WHEN_KEYS = frozenset((*WHEN, "countdown"))
_TIME_LIMIT = frozenset(("time_limit",))


def _rebuild(changed: dict[str, Any]) -> TaskOptions:
    return TaskOptions(**changed)


def _checked(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check each option; ``countdown`` becomes ``delay``.

    Raises:
        TypeError, ValueError: see :class:`TaskOptions`.
    """
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key == "countdown":
            if "delay" in options:
                raise TypeError("give delay or countdown (the same option), not both")
            checked["delay"] = check_delay(value, "countdown")
            continue
        check = CHECKS.get(key)
        if check is None:
            raise TypeError(f"unknown option {key!r}; the options are: {_known()}")
        checked[key] = check(value, key)
    if checked.get("delay") is not None and checked.get("eta") is not None:
        raise TypeError("give eta or delay (countdown), not both")
    return checked


def _known() -> str:
    return ", ".join([*DEFAULTS, "countdown"])


DEFAULT_OPTIONS = TaskOptions()

# Options objects made from the defaults by calls that give the same values
# again and again (put_task, co_apply, submit): checked once each. Bounded;
# values that cannot be hashed are not cached.
_made: dict[tuple[tuple[str, Any], ...], TaskOptions] = {}
MADE_MAX = 256


def options_from_defaults(values: Mapping[str, Any]) -> TaskOptions:
    """``DEFAULT_OPTIONS.replace(**values)``, made once per distinct values
    of atasker 0.7's options (others are not worth keeping)."""
    if not PLAIN_OPTIONS.issuperset(values):
        return DEFAULT_OPTIONS.replace(**values)
    # True == 1 and hashes the same: no key with a bool (bools are rare here).
    if bool in map(type, values.values()):
        return DEFAULT_OPTIONS.replace(**values)
    key = tuple(values.items())
    try:
        options = _made.get(key)
    except TypeError:  # an unhashable value
        return DEFAULT_OPTIONS.replace(**values)
    if options is None:
        options = DEFAULT_OPTIONS.replace(**values)
        if len(_made) >= MADE_MAX:
            _made.clear()
        _made[key] = options
    return options
