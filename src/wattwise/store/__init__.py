"""The ledger: every run of a project, with its energy, carbon and environment.

``open_store()`` finds ``.wattwise/ledger.db`` at the project root (or ``WATTWISE_STORE``)
and opens it; :class:`SQLiteRunStore` documents the concurrency contract.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from wattwise.store._footprint import Footprint, Totals, project_footprint, role_of
from wattwise.store._locate import find_project_root, ledger_path
from wattwise.store._model import ComponentEnergy, RunRecord, RunStatus, iso_utc
from wattwise.store._reuse import ReuseEvent, ReuseTotals
from wattwise.store._schema import SCHEMA_VERSION
from wattwise.store._sqlite import STALE_AFTER_S, SQLiteRunStore

if TYPE_CHECKING:
    from wattwise.store._spool import Merged, SpoolFile, merge_spools, pending_spools

_LAZY = frozenset({"Merged", "SpoolFile", "merge_spools", "pending_spools"})


def __getattr__(name: str) -> Any:
    """The spool's names load on first use: a run that never spools never imports it."""
    if name in _LAZY:
        from wattwise.store import _spool

        return getattr(_spool, name)
    msg = f"module 'wattwise.store' has no attribute {name!r}"
    raise AttributeError(msg)


def open_store(
    url: str | None = None, *, start: str | os.PathLike[str] | None = None
) -> SQLiteRunStore:
    """Open the ledger named by ``url``, ``WATTWISE_STORE`` or the project root.

    Opening writes nothing: reads work on a read-only ledger and never create one (a missing
    default ledger reads as empty; a missing ledger named by ``url`` is a one-line
    ``StoreError`` on first read). The first write creates the ledger.
    """
    return SQLiteRunStore(ledger_path(url, start=start), must_exist=bool(url))


__all__ = [
    "SCHEMA_VERSION",
    "STALE_AFTER_S",
    "ComponentEnergy",
    "Footprint",
    "Merged",
    "ReuseEvent",
    "ReuseTotals",
    "RunRecord",
    "RunStatus",
    "SQLiteRunStore",
    "SpoolFile",
    "Totals",
    "find_project_root",
    "iso_utc",
    "ledger_path",
    "merge_spools",
    "open_store",
    "pending_spools",
    "project_footprint",
    "role_of",
]
