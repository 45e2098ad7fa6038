"""Project totals over the ledger: what the finished runs cost and what everything cost."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from wattwise.store._base import AggregateRow, declared_role
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

    def add_row(self, row: AggregateRow) -> None:
        """Add the sums of one aggregate row (``BaseRunStore.aggregate``)."""
        self.runs += row.runs
        self.duration_s += row.duration_s
        self.energy_j += row.energy_j
        self.energy_band_j += row.energy_band_j
        self.co2e_g += row.co2e_g
        self.co2e_band_g += row.co2e_band_g

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


#: Declared roles that the project view counts together.
_FOOTPRINT_ROLES = {"trial": "tuning", "study": "tuning"}


def footprint_role(role: str, status: str) -> str:
    """Where a run's cost goes in the project view, from its role and its status.

    ``failed``, ``crashed`` and ``running`` by status; finished trials and study drivers
    are ``tuning``; other finished runs keep their role (``final``, ``cache-fill``,
    ``reproduce``, ...): a cache fill is not a final run.
    """
    if status in ("failed", "crashed", "running"):
        return status
    return _FOOTPRINT_ROLES.get(role, role)


def role_of(run: RunRecord) -> str:
    """Where a run's cost goes in the project view (:func:`footprint_role`).

    The role is the one the run declared; a run recorded before roles were (no ``role``)
    is ``tuning`` when it is a trial, a study driver or a run of a study, else ``final``.
    """
    return footprint_role(declared_role(run), str(run.status))


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
    """The last logged value of each metric of each run: ``{run_id: {key: value}}``
    (``BaseRunStore.last_metrics``: each backend reads only each key's last point)."""
    result: dict[str, dict[str, float]] = store.last_metrics(run_ids)
    return result


def store_footprint(store: Any) -> Footprint:
    """The project footprint computed by the store (``aggregate``): no run is loaded.

    Same figures as :func:`project_footprint` over ``store.list_runs()`` (top-level runs,
    running runs judged as a reader sees them), from one grouped query (per region, role
    and status; every other split is a sum of its rows).
    """
    total = Totals()
    by_status: dict[str, Totals] = {}
    by_region: dict[str, Totals] = {}
    by_role: dict[str, Totals] = {}
    firsts: list[float] = []
    lasts: list[float] = []
    for row in store.aggregate("region", top_level=True):
        total.add_row(row)
        by_status.setdefault(row.status, Totals()).add_row(row)
        by_role.setdefault(footprint_role(row.role, row.status), Totals()).add_row(row)
        by_region.setdefault(row.group or "unknown", Totals()).add_row(row)
        if row.first_started_at is not None:
            firsts.append(row.first_started_at)
        if row.last_started_at is not None:
            lasts.append(row.last_started_at)
    return Footprint(
        total=total, by_status=by_status, by_region=by_region, by_role=by_role,
        first_started_at=min(firsts) if firsts else None,
        last_started_at=max(lasts) if lasts else None,
        saved_by_reuse=store.reuse_totals(),
    )  # fmt: skip


@dataclasses.dataclass
class GroupFootprint:
    """One group of ``footprint --by``: its totals, split by role as in the footprint.

    Attributes:
        group: The user, host, tag or ``YYYY-MM`` month (UTC, of the start); None for runs
            without one (untagged, or recorded before users were).
        saved_by_reuse: For ``--by user`` only: what the cache hits this user's runs made
            avoided (beside the totals, never subtracted); None for other groupings.
    """

    group: str | None
    total: Totals
    by_role: dict[str, Totals]
    saved_by_reuse: ReuseTotals | None = None

    @property
    def beyond_final_share(self) -> float:
        """Share of the group's energy that went to anything but final runs."""
        final = self.by_role.get("final", Totals()).energy_j
        return 1 - final / self.total.energy_j if self.total.energy_j > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        data = {
            "group": self.group,
            "total": self.total.to_dict(),
            "by_role": {k: v.to_dict() for k, v in sorted(self.by_role.items())},
            "beyond_final_energy_share": self.beyond_final_share,
        }
        if self.saved_by_reuse is not None:
            data["saved_by_reuse"] = self.saved_by_reuse.to_dict()
        return data


def footprint_by(store: Any, group_by: str) -> list[GroupFootprint]:
    """Top-level runs' totals per user, host, tag (a run counts once per tag) or month.

    Computed by the store (``aggregate``). Groups come largest energy first, months in
    time order; runs without a value come last as group None. By user, each group also
    carries what its cache hits saved (``reuse_by_user``); a user who only reused has a
    group with no runs.

    Raises:
        InvalidParameterError: ``group_by`` is not a grouping the store knows.
    """
    groups: dict[str | None, GroupFootprint] = {}
    for row in store.aggregate(group_by, top_level=True):
        group = groups.get(row.group)
        if group is None:
            group = groups[row.group] = GroupFootprint(row.group, Totals(), {})
        group.total.add_row(row)
        group.by_role.setdefault(footprint_role(row.role, row.status), Totals()).add_row(row)
    if group_by == "user":
        saved = store.reuse_by_user()
        for user in saved:
            if user not in groups:
                groups[user] = GroupFootprint(user, Totals(), {})
        for user, group in groups.items():
            group.saved_by_reuse = saved.get(user, ReuseTotals())
    ordered = list(groups.values())
    if group_by == "month":
        ordered.sort(key=lambda g: (g.group is None, g.group or ""))
    else:
        ordered.sort(key=lambda g: (g.group is None, -g.total.energy_j, g.group or ""))
    return ordered
