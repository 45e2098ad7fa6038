"""A run's values as ledger columns, shared by the backends.

``tags``, ``params`` and ``record`` are JSON text; a status is its value; ``job_id`` is not
written by anyone directly: it follows the record (``record["job"]["id"]``), so a ledger
can list a job's runs without reading every record.

Every text a ledger holds is valid Unicode. A Python string need not be: ``os.fsdecode``
turns a filename's bytes that are not UTF-8 into lone surrogates (``b"a\\xff"`` →
``"a\\udcff"``), which neither SQLite nor PostgreSQL can store. Such a run is recorded all
the same, with each lone surrogate written as the escape that shows it: ``\\xNN`` for the
byte ``os.fsdecode`` could not decode (U+DC80..U+DCFF), else ``\\uDXXX``. So the run name
``"a\\udcff"`` is ``a\\xff`` in every backend (5 characters: a backslash, not the byte);
valid text is never changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from wattwise.store._model import RunRecord, RunStatus, job_id_of

#: Columns that hold JSON text.
JSON_COLUMNS = frozenset({"tags", "params", "record"})

T = TypeVar("T")


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (see the module docstring)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_escaped(c) if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def valid(value: T) -> T:
    """``value`` with every string in it made valid (:func:`valid_text`): in dicts (keys
    too), lists, tuples and dataclasses such as a :class:`RunRecord`. The same object when
    nothing changes, else a copy with the changes (the caller's value is left as it is)."""
    return cast(T, _valid(value))


def _valid(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return valid_text(value)
    if kind is dict:
        pairs = [(_valid(k), _valid(v)) for k, v in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if kind is list or kind is tuple:
        items = [_valid(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return kind(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = {}
        for field in dataclasses.fields(value):
            if field.init:
                old = getattr(value, field.name)
                new = _valid(old)
                if new is not old:
                    changed[field.name] = new
        return dataclasses.replace(value, **changed) if changed else value
    return value


def valid_points(rows: list[Any], at: int) -> list[Any]:
    """Samples or metric points (tuples or lists) with the text at index ``at`` (the
    component, the key) made valid; ``rows`` itself when none changes (the hot path: one
    cheap check per row)."""
    out = rows
    for i, row in enumerate(rows):
        text = row[at]
        if type(text) is str and not text.isascii():
            fixed = valid_text(text)
            if fixed is not text:
                if out is rows:
                    out = list(rows)
                out[i] = (*row[:at], fixed, *row[at + 1 :])
    return out


def json_text(value: Any) -> str:
    """``value`` as the JSON text a ledger holds (keys sorted, other objects as ``str()``),
    its strings made valid (:func:`valid`)."""
    text = json.dumps(value, sort_keys=True, default=str)
    if "\\ud" in text:  # a non-ASCII character beyond U+FFFF, or a lone surrogate
        cleaned = valid(value)
        if cleaned is not value:
            text = json.dumps(cleaned, sort_keys=True, default=str)
    return text


def encode(col: str, value: Any) -> Any:
    """The value column ``col`` holds for ``value``: JSON text, a status's value, valid
    text, or as is."""
    if col in JSON_COLUMNS:
        return json_text(value)
    if isinstance(value, RunStatus):
        return value.value
    if type(value) is str:
        return valid_text(value)
    return value


def row_values(run: RunRecord | dict[str, Any], cols: Sequence[str]) -> list[Any]:
    """A run's values for ``cols`` (a record, or a spooled run's dict); ``job_id`` comes
    from the record."""
    if isinstance(run, RunRecord):
        return [encode(col, getattr(run, col)) for col in cols]
    job = valid(job_id_of(run.get("record")))
    return [job if col == "job_id" else encode(col, run.get(col)) for col in cols]


def job_sets(cols: list[str], fields: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """Columns and encoded values to set from ``fields``; a new ``record`` that names a job
    sets ``job_id`` too (one that names none leaves it: a job never changes)."""
    values = [encode(col, fields[col]) for col in cols]
    job = job_id_of(fields.get("record")) if "record" in cols else None
    if job is not None:
        return [*cols, "job_id"], [*values, valid_text(job)]
    return cols, values
