"""Callbacks never raise into the training loop because of wattwise (unless strict)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from wattwise.exceptions import StoreWarning
from wattwise.tracking import strict_from_env

F = TypeVar("F", bound=Callable[..., Any])


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
            said: set[str] = self.__dict__.setdefault("_wattwise_said", set())
            key = f"{hook.__name__}:{type(err).__name__}"
            if key not in said:
                said.add(key)
                warnings.warn(
                    f"wattwise: {type(self).__name__}.{hook.__name__} failed and was skipped "
                    f"(training goes on): {type(err).__name__}: {err}",
                    StoreWarning, stacklevel=2,
                )  # fmt: skip
            return None

    return wrapper  # type: ignore[return-value]
