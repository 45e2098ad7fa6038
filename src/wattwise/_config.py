"""Project settings: ``[tool.wattwise]`` in pyproject.toml or ``.wattwise/config.toml``.

Environment variables (``WATTWISE_REGION``, ``WATTWISE_PUE``, ...) and explicit arguments
win over files. Unknown keys and bad values are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wattwise.exceptions import ConfigError, InvalidParameterError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved settings.

    Attributes:
        region: Region, grid zone or cloud region (see ``wattwise.carbon.parse_region``).
        pue: Power usage effectiveness to apply, or None for the location's default.
        intensity_g_per_kwh: A user-supplied grid intensity, or None to look it up.
        intensity_scope: ``lifecycle`` or ``direct`` emission factors.
        interval_s: Sampling period of the meters, in seconds.
        flush_s: Longest time between two writes of a running run to the ledger, in seconds.
        meters: Meter ids to use, or None to choose the best available.
    """

    region: str | None = None
    pue: float | None = None
    intensity_g_per_kwh: float | None = None
    intensity_scope: str = "lifecycle"
    interval_s: float = 1.0
    flush_s: float = 5.0
    meters: tuple[str, ...] | None = None


# WATTWISE_REGION is read by wattwise.carbon.resolve_location, which records that the
# region came from the environment.
_ENV = {
    "WATTWISE_PUE": "pue",
    "WATTWISE_INTENSITY": "intensity_g_per_kwh",
    "WATTWISE_INTERVAL_S": "interval_s",
    "WATTWISE_FLUSH_S": "flush_s",
    "WATTWISE_INTENSITY_SCOPE": "intensity_scope",
    "WATTWISE_METERS": "meters",
}


def check_positive(name: str, value: Any, owner: str = "wattwise") -> float:
    """``value`` as a float > 0, else the sklearn-style InvalidParameterError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0 or number == float("inf"):
        msg = (
            f"The {name!r} parameter of {owner} must be a float in the range (0, inf). "
            f"Got {value!r} instead."
        )
        raise InvalidParameterError(msg)
    return number


def _coerce(key: str, value: Any, origin: str) -> Any:
    try:
        if key in ("pue", "intensity_g_per_kwh", "interval_s", "flush_s"):
            number = check_positive(key, value, origin)
            if key == "pue" and number < 1.0:
                msg = (
                    f"The 'pue' parameter of {origin} must be a float >= 1.0. "
                    f"Got {value!r} instead."
                )
                raise InvalidParameterError(msg)
            return number
        if key == "meters":
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple):
                msg = f"The 'meters' parameter of {origin} must be a list of meter ids."
                raise InvalidParameterError(msg)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if key == "intensity_scope":
            if value not in ("lifecycle", "direct"):
                msg = (
                    f"The 'intensity_scope' parameter of {origin} must be 'lifecycle' or "
                    f"'direct'. Got {value!r} instead."
                )
                raise InvalidParameterError(msg)
            return value
        return str(value)
    except InvalidParameterError as err:
        raise ConfigError(str(err)) from err


def load_settings(
    root: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from the project's files, then the environment, then ``overrides``.

    Args:
        root: Project root (default: found from the working directory).
        environ: Environment to read (default: ``os.environ``).
        **overrides: Explicit values; None means "not given".

    Raises:
        ConfigError: A file cannot be parsed, or holds an unknown key or a bad value.
    """
    from wattwise.store import find_project_root

    env = os.environ if environ is None else environ
    root = find_project_root() if root is None else root
    fields = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    for path, table in ((root / "pyproject.toml", ("tool", "wattwise")),
                        (root / ".wattwise" / "config.toml", ())):
        if not path.is_file():
            continue
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            msg = f"Cannot read settings from {path}: {err}. Fix the TOML syntax."
            raise ConfigError(msg) from err
        for key in table:
            data = data.get(key, {}) if isinstance(data, dict) else {}
        for key, value in data.items():
            if key not in fields:
                msg = (
                    f"Unknown setting {key!r} in {path}. Known settings: "
                    f"{', '.join(sorted(fields))}."
                )
                raise ConfigError(msg)
            values[key] = _coerce(key, value, str(path))
    for var, key in _ENV.items():
        if env.get(var):
            values[key] = _coerce(key, env[var], f"${var}")
    for key, value in overrides.items():
        if key not in fields:
            msg = f"Unknown setting {key!r}. Known settings: {', '.join(sorted(fields))}."
            raise InvalidParameterError(msg)
        if value is not None:
            values[key] = _coerce(key, value, "wattwise")
    return Settings(**values)
