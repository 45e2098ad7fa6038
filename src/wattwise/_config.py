"""Project settings: ``[tool.wattwise]`` in pyproject.toml or ``.wattwise/config.toml``.

Environment variables (``WATTWISE_REGION``, ``WATTWISE_PUE``, ...) and explicit arguments
win over files. Unknown keys and bad values are errors, never silently ignored: each is one
line naming the file (or variable) and the key, what was found and what is expected
(:class:`SettingsError`, both a ``ConfigError`` and an ``InvalidParameterError``; exit 2 in
the command line). The keys, their types and variables are listed in
``docs/how-to/configure.md``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
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

#: Shortest sampling period, in seconds. One sample costs the sampler about 1 ms of CPU
#: (measured: 0.95-1.5 ms per sample on a 2-core VM, RAPL-less, model meters), so at
#: 0.05 s it takes about 2 % of a core and writes 20 samples a second per component; at
#: 0.01 s it took 10 % of a core and could not keep the period (197 of 500 samples in
#: 5 s), so that below this bound the sampler's own cost and the ledger's growth, not
#: the job, are what gets measured.
MIN_INTERVAL_S = 0.05

#: Default time between two writes of a running run; raised to ``interval_s`` when the
#: interval is longer.
DEFAULT_FLUSH_S = 5.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved settings.

    Attributes:
        region: Region, grid zone or cloud region (see ``wattwise.carbon.parse_region``).
        pue: Power usage effectiveness to apply (a finite number >= 1.0), or None for the
            location's default.
        intensity_g_per_kwh: A user-supplied grid intensity (> 0), or None to look it up.
        intensity_scope: ``lifecycle`` or ``direct`` emission factors.
        interval_s: Sampling period of the meters, in seconds (>= ``MIN_INTERVAL_S``).
        flush_s: Longest time between two writes of a running run to the ledger, in seconds
            (>= ``interval_s``).
        meters: Meter ids to use, or None to choose the best available.
        diff: Whether ``wattwise run`` stores the uncommitted git diff with the run.
        diff_max_bytes: Largest diff stored as text per run; a bigger one is kept as a hash
            and a ``--stat``.
    """

    region: str | None = None
    pue: float | None = None
    intensity_g_per_kwh: float | None = None
    intensity_scope: str = "lifecycle"
    interval_s: float = 1.0
    flush_s: float = DEFAULT_FLUSH_S
    meters: tuple[str, ...] | None = None
    diff: bool = True
    diff_max_bytes: int = 1_000_000


class SettingsError(ConfigError, InvalidParameterError):
    """A settings file, variable or argument holds a bad value or an unknown key.

    Catch it as ``ConfigError`` or as ``InvalidParameterError``.
    """


# WATTWISE_REGION is read by wattwise.carbon.resolve_location, which records that the
# region came from the environment.
_ENV = {
    "WATTWISE_PUE": "pue",
    "WATTWISE_INTENSITY": "intensity_g_per_kwh",
    "WATTWISE_INTERVAL_S": "interval_s",
    "WATTWISE_FLUSH_S": "flush_s",
    "WATTWISE_INTENSITY_SCOPE": "intensity_scope",
    "WATTWISE_METERS": "meters",
    "WATTWISE_DIFF": "diff",
    "WATTWISE_DIFF_MAX_BYTES": "diff_max_bytes",
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def check_positive(name: str, value: Any, owner: str = "wattwise") -> float:
    """``value`` as a finite float > 0, else the sklearn-style InvalidParameterError.

    A bool is refused although Python counts ``True`` as 1.
    """
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number > 0 or number == math.inf:
        msg = (
            f"The {name!r} parameter of {owner} must be a float in the range (0, inf). "
            f"Got {value!r} instead."
        )
        raise InvalidParameterError(msg)
    return number


def _shown(value: Any) -> str:
    """``value`` as the user wrote it: TOML's ``true``, a quoted string, a number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


class _Source:
    """Where a value comes from, for messages: a file, a variable or an argument."""

    def __init__(self, where: str, kind: str) -> None:
        self.where = where
        self.kind = kind  # "file", "env" or "argument"

    def error(self, key: str, value: Any, expected: str, example: str) -> SettingsError:
        if self.kind == "file":
            head = f"{self.where}: {key} = {_shown(value)} is not valid"
            fix = f"write e.g. {key} = {example}, or remove the key"
        elif self.kind == "env":
            head = f"${self.where} = {_shown(value)} is not valid for {key}"
            fix = f"set e.g. {self.where}={example.strip(chr(34))}, or unset it"
        else:
            head = f"{key}={_shown(value)} is not valid"
            fix = f"pass e.g. {key}={example}"
        return SettingsError(f"{head}: {key} must be {expected}; {fix}.")


def _number(key: str, value: Any, source: _Source, expected: str, example: str) -> float:
    if source.kind == "env" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise source.error(key, value, expected, example) from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise source.error(key, value, expected, example)
    return float(value)


def _coerce(key: str, value: Any, source: _Source) -> Any:
    """``value`` checked and converted for ``key``; raises SettingsError."""
    if key == "pue":
        expected = "a finite number >= 1.0 (PUE = facility energy / IT energy, The Green Grid)"
        number = _number(key, value, source, expected, "1.2")
        if not (math.isfinite(number) and number >= 1.0):
            raise source.error(key, value, expected, "1.2")
        return number
    if key == "intensity_g_per_kwh":
        expected = "a finite number of gCO2e/kWh > 0"
        number = _number(key, value, source, expected, "56")
        if not (math.isfinite(number) and number > 0):
            raise source.error(key, value, expected, "56")
        return number
    if key == "interval_s":
        expected = f"a finite number of seconds >= {MIN_INTERVAL_S:g}"
        number = _number(key, value, source, expected, "1.0")
        if not (math.isfinite(number) and number >= MIN_INTERVAL_S):
            raise source.error(key, value, expected, "1.0")
        return number
    if key == "flush_s":
        expected = "a finite number of seconds > 0, and >= interval_s"
        number = _number(key, value, source, expected, "5.0")
        if not (math.isfinite(number) and number > 0):
            raise source.error(key, value, expected, "5.0")
        return number
    if key == "diff_max_bytes":
        expected = "a whole number of bytes >= 0"
        if source.kind == "env" and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise source.error(key, value, expected, "1000000") from None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise source.error(key, value, expected, "1000000")
        return value
    if key == "diff":
        expected = "true or false" if source.kind != "env" else "1 or 0"
        if source.kind == "env" and isinstance(value, str):
            if value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
        elif isinstance(value, bool):
            return value
        raise source.error(key, value, expected, "false" if source.kind != "env" else "0")
    if key == "meters":
        expected = 'a list of meter ids, none empty (\'wattwise doctor\' lists them)'
        example = '["cpu-rapl", "gpu-nvml"]' if source.kind == "file" else "cpu-rapl,gpu-nvml"
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise source.error(key, value, expected, example)
        if not all(isinstance(item, str) and item.strip() for item in items):
            raise source.error(key, value, expected, example)
        return tuple(item.strip() for item in items)
    if key == "intensity_scope":
        if value not in ("lifecycle", "direct"):
            raise source.error(key, value, "'lifecycle' or 'direct'", '"lifecycle"')
        return value
    # region
    if not isinstance(value, str) or not value.strip():
        raise source.error(key, value, "a region or grid zone, as text", '"FR"')
    return value.strip()


def _read_toml(path: Path) -> dict[str, Any] | None:
    """The TOML document at ``path``; None when there is no such file."""
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_dir():
        msg = (
            f"{path} is a directory, but wattwise reads its settings from a TOML file there; "
            "remove or rename the directory."
        )
        raise SettingsError(msg)
    if path.exists() and not path.is_file():
        msg = (
            f"{path} is not a regular file (a FIFO, socket or device), but wattwise reads its "
            "settings from a TOML file there; replace it with a file or remove it."
        )
        raise SettingsError(msg)
    try:
        raw = path.read_bytes()
    except OSError as err:
        msg = (
            f"Cannot read settings from {path}: {err.strerror or err}; fix its permissions "
            "or remove it."
        )
        raise SettingsError(msg) from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        msg = (
            f"{path} is not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}); TOML "
            "files must be UTF-8: save it again as UTF-8."
        )
        raise SettingsError(msg) from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = f"{path} is not valid TOML: {err}. Fix the TOML syntax."
        raise SettingsError(msg) from err


def _table(path: Path, data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``data[keys[0]][keys[1]]...``, each level a table; {} when a level is absent."""
    for depth, key in enumerate(keys):
        if key not in data:
            return {}
        value = data[key]
        if not isinstance(value, dict):
            name = ".".join(keys[: depth + 1])
            msg = (
                f"{path}: {name} = {_shown(value)} is not valid: [{name}] must be a table of "
                f"settings; write e.g. [tool.wattwise] then region = \"FR\" on the next line."
            )
            raise SettingsError(msg)
        data = value
    return data


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
        SettingsError: A file cannot be read (a directory, not UTF-8, not TOML), or holds
            an unknown key or a bad value; a variable or an override holds a bad value. It
            is both a ``ConfigError`` and an ``InvalidParameterError``.
    """
    from wattwise.store import find_project_root

    env = os.environ if environ is None else environ
    root = find_project_root() if root is None else root
    fields = {f.name for f in dataclasses.fields(Settings)}
    known = ", ".join(sorted(fields))
    values: dict[str, Any] = {}
    origin: dict[str, _Source] = {}
    for path, keys in ((root / "pyproject.toml", ("tool", "wattwise")),
                       (root / ".wattwise" / "config.toml", ())):  # fmt: skip
        document = _read_toml(path)
        if document is None:
            continue
        section = " in [tool.wattwise]" if keys else ""
        for key, value in _table(path, document, keys).items():
            if key not in fields:
                msg = (
                    f"{path}: unknown setting {key!r}{section}; known settings: {known}. "
                    "Fix the spelling or remove the key."
                )
                raise SettingsError(msg)
            source = _Source(str(path), "file")
            values[key], origin[key] = _coerce(key, value, source), source
    for var, key in _ENV.items():
        if env.get(var):
            source = _Source(var, "env")
            values[key], origin[key] = _coerce(key, env[var], source), source
    for key, value in overrides.items():
        if key not in fields:
            msg = f"Unknown setting {key!r}; known settings: {known}."
            raise SettingsError(msg)
        if value is not None:
            source = _Source("wattwise", "argument")
            values[key], origin[key] = _coerce(key, value, source), source
    interval = values.get("interval_s", Settings.interval_s)
    if "flush_s" not in values:
        values["flush_s"] = max(DEFAULT_FLUSH_S, interval)
    elif values["flush_s"] < interval:
        source = origin["flush_s"]
        msg = (
            f"flush_s = {values['flush_s']:g} s (from {_origin_text(source)}) is shorter than "
            f"interval_s = {interval:g} s: a run is written at most once per sample, so "
            "flush_s must be >= interval_s; raise flush_s or lower interval_s."
        )
        raise SettingsError(msg)
    return Settings(**values)


def _origin_text(source: _Source) -> str:
    if source.kind == "env":
        return f"${source.where}"
    if source.kind == "file":
        return source.where
    return "the arguments"
