"""Project totals over the ledger: what the finished runs cost and what everything cost."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from wattwise.store._model import RunRecord
from wattwise.store._reuse import ReuseTotals


@dataclasses.dataclass
class Totals:
    """Sums over a group of runs. Units in the names."""

    runs: int = 0
    duration_s: float = 0.0
    energy_j: float = 0.0
    energy_band_j: float = 0.0
    co2e_g: float = 0.0
    co2e_band_g: float = 0.0

    def add(self, run: RunRecord) -> None:
        """Add one run."""
        self.runs += 1
        self.duration_s += run.duration_s
        self.energy_j += run.energy_j
        self.energy_band_j += run.energy_band_j
        self.co2e_g += run.co2e_g
        self.co2e_band_g += run.co2e_band_g

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


def role_of(run: RunRecord) -> str:
    """Where a run's cost goes in the project view.

    ``failed``, ``crashed`` and ``running`` by status; finished trials and study drivers
    (``kind`` ``trial``/``study`` or a ``study_id``) are ``tuning``; other finished runs
    are ``final``.
    """
    status = str(run.status)
    if status in ("failed", "crashed", "running"):
        return status
    if run.kind in ("trial", "study") or run.study_id is not None:
        return "tuning"
    return "final"


@dataclasses.dataclass
class Footprint:
    """The project's footprint: all runs, and split by status.

    Nested runs (a ``track`` block inside ``wattwise run``) are left out: their energy
    is already inside their parent's.
    """

    total: Totals
    by_status: dict[str, Totals]
    by_region: dict[str, Totals]
    by_role: dict[str, Totals]
    first_started_at: float | None
    last_started_at: float | None
    saved_by_reuse: ReuseTotals = dataclasses.field(default_factory=ReuseTotals)

    @property
    def beyond_final_share(self) -> float:
        """Share of the energy that went to anything but final runs (tuning, failures)."""
        final = self.by_role.get("final", Totals()).energy_j
        return 1 - final / self.total.energy_j if self.total.energy_j > 0 else 0.0

    @property
    def not_finished_share(self) -> float:
        """Share of the energy spent by runs that did not finish (failed, crashed, running)."""
        finished = self.by_status.get("finished", Totals()).energy_j
        return 1 - finished / self.total.energy_j if self.total.energy_j > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON shape, with the API's field names."""
        return {
            "total": self.total.to_dict(),
            "by_status": {k: v.to_dict() for k, v in sorted(self.by_status.items())},
            "by_region": {k: v.to_dict() for k, v in sorted(self.by_region.items())},
            "by_role": {k: v.to_dict() for k, v in sorted(self.by_role.items())},
            "beyond_final_energy_share": self.beyond_final_share,
            "not_finished_energy_share": self.not_finished_share,
            "first_started_at": self.first_started_at,
            "last_started_at": self.last_started_at,
            "saved_by_reuse": self.saved_by_reuse.to_dict(),
        }


def project_footprint(
    runs: Iterable[RunRecord], *, saved_by_reuse: ReuseTotals | None = None
) -> Footprint:
    """Totals over top-level runs (runs nested in another run are skipped).

    Args:
        runs: The ledger's runs.
        saved_by_reuse: What cache hits avoided (``SQLiteRunStore.reuse_totals()``); it is
            reported beside the totals, never subtracted from them.
    """
    total = Totals()
    by_status: dict[str, Totals] = {}
    by_region: dict[str, Totals] = {}
    by_role: dict[str, Totals] = {}
    starts = []
    for run in runs:
        if run.parent_id is not None:
            continue
        total.add(run)
        by_status.setdefault(str(run.status), Totals()).add(run)
        by_region.setdefault(run.region or "unknown", Totals()).add(run)
        by_role.setdefault(role_of(run), Totals()).add(run)
        starts.append(run.started_at)
    return Footprint(
        total=total,
        by_status=by_status,
        by_region=by_region,
        by_role=by_role,
        first_started_at=min(starts) if starts else None,
        last_started_at=max(starts) if starts else None,
        saved_by_reuse=saved_by_reuse if saved_by_reuse is not None else ReuseTotals(),
    )


def last_metrics(store: Any, run_ids: Iterable[str]) -> dict[str, dict[str, float]]:
    """The last logged value of each metric of each run: ``{run_id: {key: value}}``.

    On SQLite one indexed query per 500 runs reads only each key's last point; other
    backends stream every point through ``iter_metrics`` and keep the last.
    """
    ids = list(dict.fromkeys(run_ids))
    last: dict[str, dict[str, float]] = {}
    from wattwise.store._sqlite import SQLiteRunStore

    if isinstance(store, SQLiteRunStore):
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            sql = (
                "SELECT run_id, key, value FROM metrics WHERE seq IN (SELECT max(seq) FROM "
                f"metrics WHERE run_id IN ({marks}) GROUP BY run_id, key) ORDER BY seq"
            )

            def op(sql: str = sql, chunk: list[str] = chunk) -> list[Any]:
                return list(store._conn.execute(sql, chunk))

            for run_id, key, value in store._guard(op):
                last.setdefault(run_id, {})[key] = value
        return last
    for run_id, _step, key, value, _at in store.iter_metrics(ids):
        last.setdefault(run_id, {})[key] = value
    return last
