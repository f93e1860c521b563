"""Signatures and the canvas: a task function with its arguments and
options, and the ways to join them (celery's canvas, in process).

::

    add.s(2, 3)            Signature: task function + args + options
    s1 | s2 | s3           chain: each result prepended to the next's args
    group(s1, s2)          all at once ──> GroupResult
    chord(group, body)     body(list of the group's results)

A chain or chord is submitted whole at once: every follower is a DELAYED
record that depends on what it follows (core/deps.py: ``Follow``) and is
fed its result when that completes; a failure cancels the followers with
the workflow's reason. Nothing waits in a thread meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..core import names
from ..core.deps import Follow
from ..core.errors import safe_repr
from ..core.jsonvalues import check_json, expect
from ..core.task import TaskInfo
from ..core.validation import check_args, check_kwargs
from .results import GroupResult

if TYPE_CHECKING:
    from ..taskfunction import TaskFunction

# Options that hold signatures: JSON carries them as nested signatures.
LINK_OPTIONS = ("link", "link_error")


class Signature:
    """A task function, arguments and options: a task to run later.

    Made by ``f.s(*args, **kwargs)`` (``f.si``: immutable) or
    :func:`signature`. Mutable like celery's: :meth:`set` changes it.

    Attributes:
        task: the task function.
        args, kwargs: its arguments (partial: ``apply_async`` may add more).
        options: the options given to this signature (the task function's
            own apply under them).
        immutable: True if a parent's result is not prepended (``si``).
    """

    __slots__ = ("task", "args", "kwargs", "options", "immutable")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(
        self,
        task: TaskFunction,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        immutable: bool = False,
    ) -> None:
        if not callable(getattr(task, "_apply", None)):
            raise TypeError(
                f"task must be a task function (made by background_task); got {task!r}"
            )
        self.task = task
        self.args = check_args(args)
        self.kwargs = check_kwargs(kwargs)
        self.options: dict[str, Any] = {}
        self.immutable = bool(immutable)
        if options:
            self.set(**options)

    # ------------------------------------------------------------------
    # What it is
    # ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The task function's name."""
        return self.task.name

    @property
    def task_type(self) -> int:
        """The type of task it makes (TT_THREAD, TT_MP, TT_COROUTINE)."""
        return self.task._task_type(self.task._options.replace(**self.options))

    def __repr__(self) -> str:
        shown = [safe_repr(arg) for arg in self.args]
        shown += [f"{key}={safe_repr(value)}" for key, value in self.kwargs.items()]
        text = f"{self.name}({', '.join(shown)})"
        for key, value in self.options.items():
            text += f" {key}={safe_repr(value)}"
        if self.immutable:
            text += " immutable"
        return f"<Signature {text}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        return (
            self.name == other.name
            and self.args == other.args
            and self.kwargs == other.kwargs
            and self.options == other.options
            and self.immutable == other.immutable
        )

    # ------------------------------------------------------------------
    # Changing it
    # ------------------------------------------------------------------

    def set(self, **options: Any) -> Signature:
        """Set options (checked now, as at a call); returns the signature.

        Raises:
            TypeError, ValueError: a bad option (named).
        """
        if "countdown" in options:  # one name for one option
            options = dict(options)
            options["delay"] = options.pop("countdown")
        self.task._options.replace(**{**self.options, **options})
        self.options.update(options)
        return self

    def clone(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A copy, with ``args`` prepended (unless immutable), ``kwargs``
        and ``options`` added."""
        return Signature(
            self.task,
            self._args(check_args(args)),
            {**self.kwargs, **check_kwargs(kwargs)},
            {**self.options, **options},
            self.immutable,
        )

    def _args(self, first: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.args if self.immutable or not first else (*first, *self.args)

    # ------------------------------------------------------------------
    # Running it
    # ------------------------------------------------------------------

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskInfo:
        """Queue it; its record. ``args`` go before its own (a mutable
        signature's: celery's partial), ``kwargs`` and ``options`` over its
        own.

        Raises:
            TypeError, ValueError: a bad argument or option (named).
            SupervisorNotRunningError: the supervisor is not started.
        """
        task_id = options.pop("task_id", None)
        return self._submit(
            check_args(args), check_kwargs(kwargs), options, task_id=task_id
        )

    def delay(self, *args: Any, **kwargs: Any) -> TaskInfo:
        """``apply_async(args, kwargs)``."""
        return self._submit(args, kwargs, {})

    def _submit(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: Mapping[str, Any],
        follow: Follow | None = None,
        task_id: str | None = None,
    ) -> TaskInfo:
        record: TaskInfo = self.task._apply(
            self._args(args),
            {**self.kwargs, **kwargs},
            {**self.options, **options},
            task_id=task_id,
            follow=follow,
        )
        return record

    def apply(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskInfo:
        """Run it here, in this thread (see ``TaskFunction.apply``); the
        final record."""
        record: TaskInfo = self.task.apply(
            self._args(check_args(args)),
            {**self.kwargs, **check_kwargs(kwargs)},
            **{**self.options, **options},
        )
        return record

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here and return its value (not as a task)."""
        return self.task.run(*self._args(args), **{**self.kwargs, **kwargs})

    def __or__(self, other: Any) -> chain:
        return chain(self, other)

    def _follow_task(self, parent: TaskInfo, kind: str, supervisor: Any) -> TaskInfo:
        """Submit as a link of ``parent`` (``kind``: ``"link"`` or
        ``"link_error"``): a record that follows it (dispatch)."""
        fed = "record" if kind == "link_error" else "one"
        follow = Follow(kind, parent, (parent,), None if self.immutable else fed)
        return self._submit((), {}, self._on(supervisor), follow)

    def _apply_replacing(self, record: TaskInfo) -> TaskInfo:
        """Run in ``record``'s place (``replace``): the new record.

        Raises:
            Exception: it could not be submitted.
        """
        owner = record._owner
        if getattr(owner, "eager", False):
            return self.apply()
        return self._submit((), {}, self._on(owner))

    def _on(self, owner: Any) -> dict[str, Any]:
        """The options to run on ``owner`` (the supervisor of the task that
        applies it), unless this signature or its function names one."""
        if (
            owner is None
            or self.options.get("supervisor") is not None
            or self.task._options.supervisor is not None
        ):
            return {}
        return {"supervisor": owner}

    # ------------------------------------------------------------------
    # As text
    # ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Name, args, kwargs, options and ``immutable`` as JSON values.

        Raises:
            TypeError: a value JSON cannot hold, named by its path.
        """
        options: dict[str, Any] = {}
        for key, value in self.options.items():
            if key in LINK_OPTIONS:
                links = value if isinstance(value, (list, tuple)) else (value,)
                options[key] = [link.to_dict() for link in links]
            else:
                options[key] = check_json(value, f"options[{key!r}]")
        return {
            "task": self.name,
            "args": check_json(self.args, "args"),
            "kwargs": check_json(self.kwargs, "kwargs"),
            "options": options,
            "immutable": self.immutable,
        }

    def to_json(self) -> str:
        """The signature as JSON text (alligator's ``serialize``).

        Raises:
            TypeError: a value JSON cannot hold, named by its path
                (``kwargs['when']: datetime is not JSON``).
        """
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> Signature:
        """The signature :meth:`to_dict` gave.

        Raises:
            UnknownTaskError: no task function has its name in this process.
            ValueError: ``data`` is not a signature.
            TypeError: a bad option (named).
        """
        expect(data, dict, "the signature")
        name = expect(data.get("task"), str, "'task'")
        args = expect(data.get("args", []), list, "'args'")
        kwargs = expect(data.get("kwargs", {}), dict, "'kwargs'")
        options = dict(expect(data.get("options", {}), dict, "'options'"))
        immutable = expect(data.get("immutable", False), bool, "'immutable'")
        for key in LINK_OPTIONS:
            if key in options:
                links = expect(options[key], list, f"options[{key!r}]")
                options[key] = [cls.from_dict(link) for link in links]
        return signature(name, args, kwargs, immutable=immutable, **options)

    @classmethod
    def from_json(cls, text: str | bytes) -> Signature:
        """The signature :meth:`to_json` gave (alligator's ``deserialize``).
        Only a registered name can be started: the text never imports
        anything.

        Raises:
            UnknownTaskError: no task function has its name in this process.
            ValueError: the text is not JSON, or not a signature.
        """
        return cls.from_dict(json.loads(text))


def signature(
    task: Any,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    immutable: bool = False,
    **options: Any,
) -> Signature:
    """A signature of ``task``: a task function, or the name it has.

    Raises:
        UnknownTaskError: no task function has that name.
        TypeError, ValueError: a bad argument or option (named).
    """
    if isinstance(task, Signature):
        return task.clone(args, kwargs, **options)
    if isinstance(task, str):
        task = names.lookup(task)
    return Signature(task, args, kwargs, options, immutable)


# ----------------------------------------------------------------------
# The canvas
# ----------------------------------------------------------------------


def _signatures(tasks: tuple[Any, ...], what: str) -> list[Any]:
    """``tasks`` (or one iterable of them) as a list of canvas parts."""
    if len(tasks) == 1 and not isinstance(tasks[0], _PARTS):
        if not isinstance(tasks[0], Iterable):
            raise TypeError(f"{what} takes signatures; got {tasks[0]!r}")
        tasks = tuple(tasks[0])
    for task in tasks:
        if not isinstance(task, _PARTS):
            raise TypeError(f"{what} takes signatures (f.s(...)); got {task!r}")
    return list(tasks)


class _Parts:
    """What a group and a chain share: their parts (``tasks``), compared in
    order; ``|`` chains them on."""

    tasks: list[Any]
    __hash__ = None  # type: ignore[assignment]  # mutable, as celery's

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.tasks == other.tasks

    def __len__(self) -> int:
        return len(self.tasks)

    def __or__(self, other: Any) -> chain:
        return chain(self, other)


class group(_Parts):
    """Signatures run at once; ``apply_async`` returns a GroupResult."""

    def __init__(self, *tasks: Any) -> None:
        self.tasks: list[Signature] = _signatures(tasks, "group")
        for task in self.tasks:
            if not isinstance(task, Signature):
                raise TypeError(f"a group holds signatures; got {task!r}")

    def __repr__(self) -> str:
        return f"group({', '.join(map(repr, self.tasks))})"

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """Queue every task (``args`` go first in each); their GroupResult."""
        first, extra = check_args(args), check_kwargs(kwargs)
        return GroupResult(task._submit(first, extra, options) for task in self.tasks)

    def apply(self, **options: Any) -> GroupResult:
        """Run every task here, in turn (eager)."""
        return GroupResult(task.apply(**options) for task in self.tasks)

    def _follow(self, before: Any, options: Mapping[str, Any]) -> GroupResult:
        return GroupResult(_follow(task, before, options) for task in self.tasks)


class chain(_Parts):
    """Signatures run one after another, each result prepended to the next's
    arguments; ``apply_async`` returns the last task's record (a
    GroupResult if the chain ends with a group)."""

    def __init__(self, *tasks: Any) -> None:
        flat: list[Any] = []
        for task in _signatures(tasks, "chain"):
            flat.extend(task.tasks if isinstance(task, chain) else (task,))
        if not flat:
            raise ValueError("chain takes one signature at least")
        self.tasks: list[Any] = flat

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.tasks))

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Queue the whole chain now (``args`` go to the first task;
        ``options`` to every task, but ``link`` and ``link_error`` to the
        last); the last task's record."""
        # The chain's own: the last task's (celery's).
        own = {
            key: options.pop(key)
            for key in (*LINK_OPTIONS, "task_id")
            if key in options
        }
        first, *rest = self.tasks
        if not rest:
            return first.apply_async(args, kwargs, **options, **own)
        made: list[Any] = []
        try:
            made.append(first.apply_async(args, kwargs, **options))
            for task in rest[:-1]:
                made.append(_follow(task, made[-1], options))
            return _follow(rest[-1], made[-1], {**options, **own})
        except BaseException:
            # All or nothing: what was queued does not run orphaned.
            for part in made:
                part.cancel("chain: a later task could not be submitted")
            raise

    def apply(self, **options: Any) -> Any:
        """Run the chain here, in turn (eager); the last record."""
        first, *rest = self.tasks
        last = first.apply(**options)
        for task in rest:
            if not last.successful():
                break
            if isinstance(last, GroupResult):
                value: Any = [record.result for record in last.tasks]
            else:
                value = last.result
            if isinstance(task, group):
                last = GroupResult(member.apply((value,)) for member in task.tasks)
            else:
                last = task.apply((value,))
        return last


class chord(chain):
    """A group (the header), then a body run once with the list of its
    results; ``apply_async`` returns the body's record, whose ``parent`` is
    the header's GroupResult. A header task that fails cancels the body
    (``"chord: <id> failed"``)."""

    def __init__(self, header: Any, body: Signature) -> None:
        if not isinstance(header, (group, Iterable)):
            raise TypeError(
                f"a chord's header must be a group or signatures; got {header!r}"
            )
        self.header = header if isinstance(header, group) else group(header)
        if not isinstance(body, Signature):
            raise TypeError(f"a chord's body must be a signature; got {body!r}")
        self.body = body
        super().__init__(self.header, body)

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"


_PARTS = (Signature, group, chain)


def _follow(task: Any, before: Any, options: Mapping[str, Any]) -> Any:
    """Queue ``task`` to follow ``before`` (a record or a GroupResult)."""
    options = dict(options)
    task_id = options.pop("task_id", None)
    if isinstance(task, group):
        return task._follow(before, options)
    if isinstance(before, GroupResult):
        if not before.tasks:  # nothing to wait for: the empty list now
            return task._submit(([],), {}, options, task_id=task_id)
        follow = Follow(
            "chord", before, before.tasks, None if task.immutable else "all"
        )
    else:
        follow = Follow("chain", before, (before,), None if task.immutable else "one")
    return task._submit((), {}, options, follow, task_id)
