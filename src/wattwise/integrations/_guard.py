"""Callbacks never raise into the training loop because of wattwise (unless strict), and
see the training's exceptions without changing them.

:func:`never_raise` guards a hook. :class:`FailureWatch` wraps, on the instance, the methods
a training's failure passes through (a framework calls no hook when training raises), so a
run can end ``failed`` at the moment it fails: the exception goes on unchanged (the same
object, its traceback with a frame more for each wrapper it passed), and nothing of
wattwise's replaces it, whatever ``WATTWISE_STRICT`` says. :class:`Watching` is a
callback's side of it: one watch a training, started at its beginning, stopped at its end.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from wattwise.exceptions import StoreWarning
from wattwise.tracking import strict_from_env

F = TypeVar("F", bound=Callable[..., Any])

_MISSING = object()


def _warn_once(owner: Any, what: str, err: BaseException, then: str) -> None:
    said: set[str] = owner.__dict__.setdefault("_wattwise_said", set())
    key = f"{what}:{type(err).__name__}"
    if key not in said:
        said.add(key)
        warnings.warn(
            f"wattwise: {type(owner).__name__}.{what} failed and was skipped ({then}): "
            f"{type(err).__name__}: {err}",
            StoreWarning, stacklevel=3,
        )  # fmt: skip


def never_raise(hook: F) -> F:
    """Run a callback hook; an error of wattwise's own is said once and training goes on.

    Everything a hook runs is wattwise's code (the run, the FLOP counter, the ledger), so
    any exception is ours: it is reported once per hook and kind as a ``StoreWarning``.
    With ``WATTWISE_STRICT=1`` it propagates instead.
    """

    @functools.wraps(hook)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return hook(self, *args, **kwargs)
        except Exception as err:
            if strict_from_env(None):
                raise
            _warn_once(self, hook.__name__, err, "training goes on")
            return None

    return wrapper  # type: ignore[return-value]


def while_raising(owner: Any, what: str, action: Callable[[], None]) -> None:
    """Run ``action`` while the training's exception propagates: never raise.

    An error of ours here would replace the user's exception, so it is one warning (if
    warnings can be issued at all: under ``-W error`` not even that), strict mode or not.
    """
    try:
        action()
    except Exception as err:
        # warnings may be errors here (-W error): the user's exception matters more
        with contextlib.suppress(Exception):
            _warn_once(owner, what, err, "the training's own error goes on")


class FailureWatch:
    """Methods wrapped on their instances, so an exception passing through any calls back.

    The first exception through a wrapped method restores every method (the watch is over)
    and calls ``on_failure(error)``; the exception then goes on unchanged (an outer wrapper
    it passes through next does nothing). :meth:`restore` (at a normal end) puts back what
    was there; a method someone else set on the instance since is left alone.

    Args:
        owner: Whose warnings these are (the callback).
        on_failure: Called once, with the exception, while it propagates; never raises
            into it (see :func:`while_raising`).
        control_flow: Whether an exception is one the framework catches to go on (the end
            of the data, ``StopIteration``): not a failure, the watch goes on.
    """

    def __init__(
        self, owner: Any, on_failure: Callable[[BaseException], None], *,
        control_flow: Callable[[BaseException], bool] | None = None,
    ) -> None:  # fmt: skip
        self._owner = owner
        self._on_failure = on_failure
        self._control_flow = control_flow
        self._patched: list[tuple[Any, str, Any, Any]] = []  # target, name, previous, ours
        self.failure: BaseException | None = None

    @property
    def active(self) -> bool:
        """Whether some method is still wrapped."""
        return bool(self._patched)

    def wrap(self, target: Any, names: Iterable[str]) -> list[str]:
        """Wrap ``target``'s callable attributes ``names`` (those it has); the names wrapped."""
        done = []
        for name in names:
            method = getattr(target, name, None)
            if not callable(method):
                continue
            previous = vars(target).get(name, _MISSING)
            ours = self._wrapper(method)
            setattr(target, name, ours)
            self._patched.append((target, name, previous, ours))
            done.append(name)
        return done

    def restore(self) -> None:
        """Put back what each wrapped attribute was (unless replaced since: then leave it)."""
        patched, self._patched = self._patched, []
        for target, name, previous, ours in reversed(patched):
            if vars(target).get(name) is not ours:
                continue
            if previous is _MISSING:
                delattr(target, name)
            else:
                setattr(target, name, previous)

    def _wrapper(self, method: Callable[..., Any]) -> Callable[..., Any]:
        watch = self

        @functools.wraps(method)
        def watched(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except BaseException as err:
                watch._failed(err)
                raise

        return watched

    def _failed(self, err: BaseException) -> None:
        if not self._patched:  # an outer wrapper sees what an inner one handled
            return
        if self._control_flow is not None:
            try:
                if self._control_flow(err):
                    return
            except Exception:
                pass
        while_raising(self._owner, "restore", self.restore)
        self.failure = err
        while_raising(self._owner, "on_failure", lambda: self._on_failure(err))


class Watching:
    """The owner's side of :class:`FailureWatch`: one watch at a time, over one training.

    :meth:`start` ends the watch still on (if any) and wraps the methods given (if wrapping
    fails, those wrapped are put back and the error goes on); :meth:`stop`, at a normal end,
    puts them back. When the training raises through a wrapped method, the watch is over
    (its methods back) and ``on_failure(error)`` is called, as :class:`FailureWatch` says:
    while the error propagates, never raising into it.

    Args:
        owner: Whose warnings these are (the callback).
        on_failure: Called once per watch, with the training's exception.
        control_flow: What the framework catches to go on (see :class:`FailureWatch`).
    """

    def __init__(
        self, owner: Any, on_failure: Callable[[BaseException], None], *,
        control_flow: Callable[[BaseException], bool] | None = None,
    ) -> None:  # fmt: skip
        self._on_failure = on_failure
        self._new_watch = functools.partial(
            FailureWatch, owner, self._failed, control_flow=control_flow
        )
        self._watch: FailureWatch | None = None

    def start(self, methods: Iterable[tuple[Any, Iterable[str]]]) -> None:
        """Watch each ``(target, names)``'s methods (those it has) until :meth:`stop`."""
        self.stop()
        watch = self._new_watch()
        self._watch = watch
        try:
            for target, names in methods:
                watch.wrap(target, names)
        except BaseException:
            watch.restore()
            raise

    def stop(self) -> None:
        """Put back the methods of the watch still on (none: nothing to do)."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.restore()

    def _failed(self, error: BaseException) -> None:
        self._watch = None  # the watch restored its methods before calling back
        self._on_failure(error)
