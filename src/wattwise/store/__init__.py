"""The ledger: every run of a project, with its energy, carbon and environment.

``open_store()`` finds ``.wattwise/ledger.db`` at the project root (or ``WATTWISE_STORE``)
and opens it; :class:`SQLiteRunStore` documents the concurrency contract.
"""

from __future__ import annotations

import os

from wattwise.store._footprint import Footprint, Totals, project_footprint, role_of
from wattwise.store._locate import find_project_root, ledger_path
from wattwise.store._model import ComponentEnergy, RunRecord, RunStatus, iso_utc
from wattwise.store._schema import SCHEMA_VERSION
from wattwise.store._sqlite import STALE_AFTER_S, SQLiteRunStore


def open_store(
    url: str | None = None, *, start: str | os.PathLike[str] | None = None
) -> SQLiteRunStore:
    """Open the ledger named by ``url``, ``WATTWISE_STORE`` or the project root."""
    return SQLiteRunStore(ledger_path(url, start=start))


__all__ = [
    "SCHEMA_VERSION",
    "STALE_AFTER_S",
    "ComponentEnergy",
    "Footprint",
    "RunRecord",
    "RunStatus",
    "SQLiteRunStore",
    "Totals",
    "find_project_root",
    "iso_utc",
    "ledger_path",
    "open_store",
    "project_footprint",
    "role_of",
]
