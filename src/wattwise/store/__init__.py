"""The ledger: every run of a project, with its energy, carbon and environment.

``get_store(url)`` opens a ledger by URL (a file path, ``sqlite:///``, ``postgresql://``,
``memory://``; default ``.wattwise/ledger.db`` at the project root or ``WATTWISE_STORE``);
:class:`BaseRunStore` states the contract every backend keeps.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from wattwise import _lazy
from wattwise.store._base import (
    GROUP_BY,
    NO_STUDY,
    ROLES,
    AggregateRow,
    BaseRunStore,
    Metric,
    RunMetric,
    Sample,
    declared_role,
    get_store,
)
from wattwise.store._liveness import identity
from wattwise.store._locate import find_project_root, ledger_path
from wattwise.store._model import ComponentEnergy, RunRecord, RunStatus, iso_utc, login_name
from wattwise.store._reuse import ReuseEvent, ReuseTotals
from wattwise.store._schema import SCHEMA_VERSION
from wattwise.store._sqlite import STALE_AFTER_S, SQLiteRunStore

if TYPE_CHECKING:
    from wattwise.store._footprint import (
        Footprint,
        GroupFootprint,
        Totals,
        footprint_by,
        footprint_role,
        last_metrics,
        project_footprint,
        role_of,
        store_footprint,
    )
    from wattwise.store._hit_spool import (
        HitSpool,
        KeptFile,
        any_kept_hits,
        kept_hit_files,
        pending_hits,
        read_kept_hits,
        replay_hits,
    )
    from wattwise.store._memory import MemoryRunStore
    from wattwise.store._spool import (
        Merged,
        Spool,
        SpoolFile,
        merge_spools,
        pending_spools,
        read_spool,
    )
    from wattwise.store._transfer import (
        EXPORT_FORMAT,
        EXPORT_VERSION,
        ExportSummary,
        ImportSummary,
        LedgerFileError,
        export_ledger,
        export_to_path,
        import_from_path,
        import_ledger,
    )

# The spool's names load on first use: a run that never spools never imports it; the kept
# cache hits' and the transfer's (ledger export and import) likewise, and the footprint's
# and the in-memory ledger's, which `wattwise run` never needs.
_LAZY: _lazy.LazyTable = {
    **dict.fromkeys(
        ("Footprint", "GroupFootprint", "Totals", "footprint_by", "footprint_role",
         "last_metrics", "project_footprint", "role_of", "store_footprint"),
        "wattwise.store._footprint",
    ),
    "MemoryRunStore": "wattwise.store._memory",
    **dict.fromkeys(
        ("Merged", "Spool", "SpoolFile", "merge_spools", "pending_spools", "read_spool"),
        "wattwise.store._spool",
    ),
    **dict.fromkeys(
        ("HitSpool", "KeptFile", "any_kept_hits", "kept_hit_files", "pending_hits",
         "read_kept_hits", "replay_hits"),
        "wattwise.store._hit_spool",
    ),
    **dict.fromkeys(
        ("EXPORT_FORMAT", "EXPORT_VERSION", "ExportSummary", "ImportSummary",
         "LedgerFileError", "export_ledger", "export_to_path", "import_from_path",
         "import_ledger"),
        "wattwise.store._transfer",
    ),
}  # fmt: skip
__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, globals())


def open_store(
    url: str | None = None,
    *,
    readonly: bool = False,
    start: str | os.PathLike[str] | None = None,
) -> BaseRunStore:
    """Open the ledger named by ``url``, ``WATTWISE_STORE`` or the project root.

    The same as :func:`get_store` (kept for existing callers). Opening writes nothing:
    reads work on a read-only ledger and never create one (a missing default ledger reads
    as empty; a missing ledger named by ``url`` is a one-line ``StoreError`` on first
    read). The first write creates the ledger.
    """
    return get_store(url, readonly=readonly, start=start)


__all__ = [
    "GROUP_BY",
    "NO_STUDY",
    "ROLES",
    "SCHEMA_VERSION",
    "STALE_AFTER_S",
    "AggregateRow",
    "BaseRunStore",
    "ComponentEnergy",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ExportSummary",
    "Footprint",
    "GroupFootprint",
    "HitSpool",
    "ImportSummary",
    "KeptFile",
    "LedgerFileError",
    "MemoryRunStore",
    "Merged",
    "Metric",
    "ReuseEvent",
    "ReuseTotals",
    "RunMetric",
    "RunRecord",
    "RunStatus",
    "SQLiteRunStore",
    "Sample",
    "Spool",
    "SpoolFile",
    "Totals",
    "any_kept_hits",
    "declared_role",
    "export_ledger",
    "export_to_path",
    "find_project_root",
    "footprint_by",
    "footprint_role",
    "get_store",
    "identity",
    "import_from_path",
    "import_ledger",
    "iso_utc",
    "kept_hit_files",
    "last_metrics",
    "ledger_path",
    "login_name",
    "merge_spools",
    "open_store",
    "pending_hits",
    "pending_spools",
    "read_kept_hits",
    "read_spool",
    "replay_hits",
    "project_footprint",
    "role_of",
    "store_footprint",
]
