"""A run's values as ledger columns, shared by the SQL backends (SQLite, PostgreSQL).

``tags``, ``params`` and ``record`` are JSON text; a status is its value; ``job_id`` is not
written by anyone directly: it follows the record (``record["job"]["id"]``), so a ledger
can list a job's runs without reading every record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from wattwise.store._model import RunRecord, RunStatus, job_id_of

#: Columns that hold JSON text.
JSON_COLUMNS = frozenset({"tags", "params", "record"})


def encode(col: str, value: Any) -> Any:
    """The value column ``col`` holds for ``value``: JSON text, a status's value, or as is."""
    if col in JSON_COLUMNS:
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, RunStatus):
        return value.value
    return value


def row_values(run: RunRecord | dict[str, Any], cols: Sequence[str]) -> list[Any]:
    """A run's values for ``cols`` (a record, or a spooled run's dict); ``job_id`` comes
    from the record."""
    if isinstance(run, RunRecord):
        return [encode(col, getattr(run, col)) for col in cols]
    job = job_id_of(run.get("record"))
    return [job if col == "job_id" else encode(col, run.get(col)) for col in cols]


def job_sets(cols: list[str], fields: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """Columns and encoded values to set from ``fields``; a new ``record`` that names a job
    sets ``job_id`` too (one that names none leaves it: a job never changes)."""
    values = [encode(col, fields[col]) for col in cols]
    job = job_id_of(fields.get("record")) if "record" in cols else None
    if job is not None:
        return [*cols, "job_id"], [*values, job]
    return cols, values
