"""Search spaces given up front: a dict of Optuna distributions or short forms.

A space is optional: an Optuna-style objective samples its own parameters with
``trial.suggest_*`` (define-by-run). Given a space, every trial's parameters are sampled
by the driver before the trial starts (``study.ask(fixed_distributions=...)``) and are in
``trial.params`` from the first line of the objective; ``trial.suggest_*`` with the same
name returns them.

Short forms:

* ``[a, b, c]`` (a list): categorical choices;
* ``(low, high)``: an int range when both are ints, else a float range;
* ``(low, high, "log")``: the same on a log scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import InvalidParameterError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution


def parse_space(space: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """Optuna distributions from a space dict (see the module doc for short forms).

    Raises:
        InvalidParameterError: A value is neither a distribution nor a short form.
    """
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, BaseDistribution] = {}
    for name, spec in space.items():
        key: object = name
        if not isinstance(key, str):
            msg = f"Search space keys must be parameter names (str). Got {name!r} instead."
            raise InvalidParameterError(msg)
        if isinstance(spec, BaseDistribution):
            out[name] = spec
            continue
        if isinstance(spec, list) and spec:
            out[name] = CategoricalDistribution(spec)
            continue
        if isinstance(spec, tuple) and len(spec) in (2, 3):
            low, high = spec[0], spec[1]
            log = len(spec) == 3 and spec[2] == "log"
            numbers = all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)
            )
            if numbers and low < high and (len(spec) == 2 or log) and (not log or low > 0):
                if isinstance(low, int) and isinstance(high, int):
                    out[name] = IntDistribution(low, high, log=log)
                else:
                    out[name] = FloatDistribution(float(low), float(high), log=log)
                continue
        msg = (
            f"The search space entry {name!r} must be an Optuna distribution, a list of "
            "choices, (low, high) with low < high, or (low, high, 'log') with 0 < low < high. "
            f"Got {spec!r} instead."
        )
        raise InvalidParameterError(msg)
    return out
