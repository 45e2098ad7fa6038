"""The ledger's contract: what every backend (SQLite, PostgreSQL, memory) promises.

:class:`BaseRunStore` is the interface the rest of wattwise uses; :func:`get_store` picks a
backend from a URL. Backends are checked against the contract by
:class:`wattwise.testing.store_contract.RunStoreContract`.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import ConfigError, StoreCorruptError

if TYPE_CHECKING:
    from wattwise.store._model import ComponentEnergy, RunRecord
    from wattwise.store._reuse import ReuseEvent, ReuseTotals
    from wattwise.store._spool import SpoolFile

Sample = tuple[float, str, float, float]  # (t_s, component, power_w, cumulative energy_j)
Metric = tuple[int | None, str, float, float]  # (step, key, value, logged_at)
RunMetric = tuple[str, int | None, str, float, float]  # (run_id, step, key, value, logged_at)

#: What :meth:`BaseRunStore.aggregate` can group by.
#: ``study_id=NO_STUDY`` keeps the runs outside any study (``list_runs``, ``count_runs``,
#: ``aggregate``): no run has an empty study id.
NO_STUDY = ""

GROUP_BY = ("none", "user", "host", "tag", "month", "status", "role", "region", "kind", "study",
            "job")

#: Roles a run may declare (``RunRecord.role``); readers infer one for old rows.
ROLES = ("final", "tuning", "trial", "study", "cache-fill", "reproduce")


@dataclasses.dataclass(frozen=True)
class AggregateRow:
    """Sums over the runs of one group with one role and one status. Units in the names.

    Attributes:
        group: The group's value (a user, host, tag, ``YYYY-MM`` month, ...); None for runs
            without one (no tag, no region, no user recorded) and for ``group_by="none"``.
        role: The role the run declared, or for old rows the one inferred from its kind
            (``tuning`` for trials and studies, else ``final``).
        status: The status a reader sees (a running run whose tracker is gone: crashed).
        runs: How many runs.
    """

    group: str | None
    role: str
    status: str
    runs: int
    duration_s: float
    energy_j: float
    energy_band_j: float
    co2e_g: float
    co2e_band_g: float
    first_started_at: float | None
    last_started_at: float | None

    @property
    def footprint_role(self) -> str:
        """The role in the project footprint: the status unless finished, else the role."""
        return self.role if self.status == "finished" else self.status

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RecordGroup:
    """Runs of one host, with the same components, whose records hold the same values
    under some keys (:meth:`BaseRunStore.record_groups`).

    Attributes:
        host: The runs' host.
        components: The components the runs have energy for, sorted.
        values: Each key asked for → its value in the records (None when absent).
        runs: How many runs.
        first_started_at: The oldest run's start (Unix s).
        last_started_at: The newest run's start.
    """

    host: str
    components: tuple[str, ...]
    values: dict[str, Any]
    runs: int
    first_started_at: float
    last_started_at: float


class BaseRunStore(abc.ABC):
    """The run ledger: runs with their energy, metrics, samples, artifacts and cache hits.

    **Who writes what.** A run's own tracker (one process, its ``LedgerWriter``) inserts
    the run and is the only one to change its columns (:meth:`insert_run`,
    :meth:`flush_run`, :meth:`resync_run`). Other processes (a ``wattwise run`` child, a
    worker) add facts with :meth:`annotate_run` and metrics through :meth:`flush_run` with
    empty ``fields``; they never change columns. Anyone may add cache hits
    (:meth:`add_reuse`) and merge spool files (:meth:`merge_spooled`, idempotent).

    **Atomicity.** Every write method is one transaction: it lands whole or not at all.
    ``flush_run`` writes the fields, components, samples and metrics together;
    ``merge_spooled`` merges a whole file or nothing and records that it did.

    **Concurrency.** One store object may be shared by the threads of a process. Any number
    of processes (on any number of hosts, for server backends) may write the same ledger
    at once; writes queue and none is lost. Reads see committed writes only, and each read
    sees every write committed before it began, however long the store has been open (a
    dashboard, an exporter or a tuning driver that keeps one open never shows a stale
    ledger).

    **Values are copies.** A record returned by a read is the caller's: changing it changes
    nothing in the ledger, and later writes do not change it; likewise a record passed to a
    write is copied (Optuna's storages promise the same).

    **Readers never write.** Opening a store and every read method write nothing: no
    file, folder, table or migration is created by reading, and reads work on a read-only
    ledger. An older ledger reads through an upgraded view; only the first write migrates
    it. A ``running`` run whose tracker is gone is *shown* ``crashed`` by reads
    (:mod:`wattwise.store._liveness`); only :meth:`reap` writes that.

    **Crashes.** A run whose process died stays ``running`` in the ledger until a writer
    calls :meth:`reap` (the next run's writer at its end, ``wattwise doctor --repair``),
    which marks it ``crashed`` with the energy last flushed and a note saying why.

    **Schema.** Each backend follows the one migration list in
    :mod:`wattwise.store._schema` and records applied versions; a ledger newer than this
    wattwise is refused with :class:`~wattwise.exceptions.SchemaVersionError`.

    **Jobs and savers.** A run's job is ``record["job"]["id"]`` (:attr:`RunRecord.job_id`);
    every write that carries a record, and an annotation under ``job``, keeps it in an
    indexed column (a record naming no job leaves it), for ``list_runs``, ``count_runs`` and
    ``aggregate`` with ``job_id=``. A cache hit without a ``user`` is booked to its
    consuming run's user (:meth:`reuse_by_user`).

    **Reading a large ledger.** Listings page in the backend (``limit``, ``offset``), sums
    are computed by it (:meth:`aggregate`, :meth:`reuse_totals`, :meth:`reuse_by_user`), and
    what a project view needs from every record comes grouped or searched, not record by
    record: :meth:`record_groups` (runs per host, components and record values) and
    :meth:`record_mentions` (which strings some record holds). Their base implementations
    read every run and define what they return; backends override them with queries.

    **Text.** Every text a ledger holds is valid Unicode. A write whose text is not (a
    lone surrogate: ``os.fsdecode`` makes them from a filename's bytes that are not UTF-8)
    is recorded all the same, each lone surrogate written as its escape: ``\\xNN`` for
    such a byte, else ``\\uDXXX`` (the run name ``"a\\udcff"`` reads back ``a\\xff``);
    see :mod:`wattwise.store._records`. A read given such text finds nothing, or fails as
    a one-line StoreError.

    **Errors.** Every failure is a :class:`~wattwise.exceptions.StoreError` (or a
    subclass) with a one-line message; backend exceptions never escape.
    """

    #: Where this ledger's local companions live: the spool folder is ``path.parent /
    #: "spool"``. For SQLite the database file; other backends name a file under the
    #: project's ``.wattwise/`` (which need not exist).
    path: Path
    #: Margin added to a remote run's stale window (3 of its flush intervals + this).
    stale_after_s: float
    #: True for a store opened with ``readonly=True``: every write raises StoreError.
    readonly: bool = False

    # -- identity and lifecycle ---------------------------------------------------------

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The URL that opens this ledger again (``get_store(store.url)``), for children
        and workers (``WATTWISE_STORE``). Never holds a password."""

    def child_environment(self) -> dict[str, str]:
        """Environment variables a child process or worker needs, besides
        ``WATTWISE_STORE=url``, to open this ledger as this store did: the secret that
        :attr:`url` leaves out (none for most backends). For a child's environment only:
        never put them in argv, a file or a record.
        """
        return {}

    @property
    def writable(self) -> bool:
        """True once this store holds a connection open for writing."""
        return False

    #: Seconds a write waits for other writers before failing (settable; backends that
    #: wait on locks make it a property that applies to their open connection).
    busy_timeout_s: float = 60.0

    @abc.abstractmethod
    def reopen(self) -> BaseRunStore:
        """A new store on the same ledger with the same settings that opens nothing until
        first used (a writer replaces a store whose connection went bad)."""

    def verify(self) -> None:  # noqa: B027 - optional hook: nothing to check by default
        """Check that the ledger this store writes is still the one at its URL.

        Raises:
            StoreError: It was replaced or removed since this store opened it (call
                :meth:`reset` and write again).
        """

    def reset(self) -> None:  # noqa: B027 - optional hook: nothing to drop by default
        """Drop the connection; the next use opens the ledger afresh."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection. The store cannot be used afterwards."""

    def __enter__(self) -> BaseRunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------

    @abc.abstractmethod
    def insert_run(self, run: RunRecord) -> None:
        """Add a new run (status running) with its components, if any.

        Raises:
            StoreError: A run with that id exists, or the ledger cannot be written.
        """

    @abc.abstractmethod
    def flush_run(
        self,
        run_id: str,
        fields: dict[str, Any],
        *,
        components: Sequence[ComponentEnergy] = (),
        samples: Iterable[Sample] = (),
        metrics: Iterable[Metric] = (),
    ) -> None:
        """Write a run's latest state in one transaction.

        Args:
            run_id: The run.
            fields: Run columns to set (``status``, ``energy_j``, ``heartbeat_at``, ...);
                ``id``, ``started_at``, ``host``, ``pid`` and ``user`` cannot change.
            components: Per-component energy, replacing what was stored.
            samples: New power samples ``(t_s, component, power_w, energy_j)``.
            metrics: New metric points ``(step, key, value, logged_at)``.

        Raises:
            RunNotFoundError: ``fields`` given and no such run.
            StoreError: An unknown column, or the ledger cannot be written.
        """

    @abc.abstractmethod
    def resync_run(
        self, run: RunRecord, fields: dict[str, Any], *, components: Sequence[ComponentEnergy],
        metrics: Sequence[Metric],
    ) -> None:  # fmt: skip
        """Make the ledger hold a run's whole state again after it changed under the run.

        Inserts the run if missing, sets ``fields``, replaces the components and, if the
        ledger holds fewer metric points than ``metrics`` (all the run logged), replaces
        them. Used by the run's own writer only.
        """

    @abc.abstractmethod
    def annotate_run(self, run_id: str, key: str, value: Any, *, append: bool = False) -> None:
        """Attach a fact to a run's record from another process.

        Merged into ``record[key]`` on read: set (last write wins) or, with ``append``,
        added to a list. ``value`` must be JSON-serialisable.

        Raises:
            RunNotFoundError: No such run.
        """

    @abc.abstractmethod
    def put_artifact(
        self, run_id: str, name: str, content: bytes, *, created_at: float | None = None
    ) -> str:
        """Store a run's artifact, replacing one of the same name; content kept once per
        sha256. ``created_at`` (default now) keeps the original time when copying a ledger.
        Returns the sha256 (hex)."""

    @abc.abstractmethod
    def add_reuse(self, event: ReuseEvent) -> None:
        """Record a cache hit and the energy it avoided."""

    @abc.abstractmethod
    def merge_spooled(self, spooled: SpoolFile) -> int | None:
        """Merge one spool file in one transaction; idempotent.

        Returns:
            Entries merged, 0 if merged before, None if its run is not in the ledger and
            the file cannot add it.
        """

    @abc.abstractmethod
    def reap(self, *, now: float | None = None) -> list[str]:
        """Persist ``crashed`` for every running run whose tracker is gone (a write).

        On the run's host: its tracker process (pid plus start time) and its command are
        gone; elsewhere: its heartbeat is older than three of its flush intervals plus
        ``stale_after_s``. Energy stays as last flushed; a note says why.

        Returns:
            Ids of the runs marked crashed (each by exactly one concurrent reaper).
        """

    # -- reads -----------------------------------------------------------------------

    @abc.abstractmethod
    def get_run(self, ref: str) -> RunRecord:
        """The run whose id is ``ref`` or starts with it (at least 4 characters).

        Raises:
            RunNotFoundError: No run matches, or the prefix matches several runs.
        """

    @abc.abstractmethod
    def list_runs(
        self,
        *,
        status: str | None = None,
        study_id: str | None = None,
        top_level: bool = False,
        user: str | None = None,
        host: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
        job_id: str | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter given, as readers see them.

        Pages are taken newest first: ``limit`` keeps the newest ``limit`` runs after
        skipping the newest ``offset``. The page is returned oldest first unless
        ``newest_first``.

        Args:
            status: Keep only runs with this (effective) status.
            study_id: Keep only runs of this study; :data:`NO_STUDY` (``""``): only runs
                outside any study (study runs themselves, no trials).
            top_level: Drop runs nested inside another run (their energy is in the parent).
            user: Keep only runs of this user.
            host: Keep only runs from this host.
            limit: Page size (None: all).
            job_id: Keep only runs of this job (:attr:`RunRecord.job_id`).
            offset: Runs skipped, counted from the newest.
            newest_first: Order of the returned page.
        """

    @abc.abstractmethod
    def count_runs(
        self,
        *,
        status: str | None = None,
        study_id: str | None = None,
        top_level: bool = False,
        user: str | None = None,
        host: str | None = None,
        job_id: str | None = None,
    ) -> int:
        """How many runs :meth:`list_runs` would return with these filters and no limit."""

    @abc.abstractmethod
    def aggregate(
        self,
        group_by: str = "none",
        *,
        top_level: bool = True,
        study_id: str | None = None,
        user: str | None = None,
        host: str | None = None,
        job_id: str | None = None,
    ) -> list[AggregateRow]:
        """Sums per group, role and effective status, computed by the backend.

        Args:
            group_by: One of :data:`GROUP_BY`. ``tag`` counts a run once per tag (and
                once under None if untagged); ``month`` is the UTC ``YYYY-MM`` of the start;
                ``job`` the run's :attr:`RunRecord.job_id`.
            top_level: Leave out nested runs (their energy is inside their parent's).
            study_id, user, host, job_id: Keep only runs with this value.

        Returns:
            Rows sorted by group (None last), role, status.

        Raises:
            InvalidParameterError: ``group_by`` is not one of :data:`GROUP_BY`.
        """

    @abc.abstractmethod
    def metrics(self, run_id: str) -> list[Metric]:
        """Metric points of a run in logging order: ``(step, key, value, logged_at)``."""

    @abc.abstractmethod
    def iter_metrics(self, run_ids: Iterable[str] | None = None) -> Iterator[RunMetric]:
        """Metric points of many runs (all with None), by run then logging order:
        ``(run_id, step, key, value, logged_at)``. Streams: memory stays flat."""

    @abc.abstractmethod
    def samples(self, run_id: str) -> list[Sample]:
        """Power samples of a run: ``(t_s, component, power_w, energy_j)`` by time."""

    @abc.abstractmethod
    def get_artifact(self, run_id: str, name: str) -> bytes | None:
        """A run's artifact, checked against its sha256; None if there is none.

        Raises:
            StoreCorruptError: The content does not match its hash.
        """

    @abc.abstractmethod
    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """A run's artifacts without content: ``name``, ``sha256``, ``size_bytes``,
        ``created_at``, by name."""

    @abc.abstractmethod
    def reuse_events(
        self, *, cache_key: str | None = None, consumer_run_id: str | None = None
    ) -> list[ReuseEvent]:
        """Cache hits, oldest first, optionally for one entry or one consuming run."""

    @abc.abstractmethod
    def reuse_totals(self) -> ReuseTotals:
        """What every cache hit recorded in this ledger avoided, summed."""

    def last_metrics(self, run_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """The last logged value of each metric of each run: ``{run_id: {key: value}}``
        (runs without metrics left out), keys in the order of their last points.

        This default streams every point of the runs (:meth:`iter_metrics`); backends read
        only each key's last point.
        """
        last: dict[str, dict[str, tuple[int, float]]] = {}
        points = self.iter_metrics(list(dict.fromkeys(run_ids)))
        for order, (run_id, _step, key, value, _at) in enumerate(points):
            last.setdefault(run_id, {})[key] = (order, value)
        return {
            run_id: {k: v for k, (_, v) in sorted(points.items(), key=lambda kv: kv[1][0])}
            for run_id, points in last.items()
        }

    def record_groups(self, keys: Sequence[str]) -> list[RecordGroup]:
        """Every run counted once, grouped by host, components and ``record[key]`` for each
        of ``keys`` (facts annotated from other processes included), oldest group first.

        Raises:
            InvalidParameterError: A key is empty or holds a quote or backslash.

        For the project report's setup (hardware, location, intensity, PUE, meters): a
        ledger of many runs on few machines has few groups, so backends group in the
        database instead of reading every record. This default reads every run.
        """
        import json

        keys = check_record_keys(keys)
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for run in self.list_runs():
            comps = tuple(sorted({c.component for c in run.components}))
            values = {k: run.record.get(k) for k in keys}
            key = (run.host, comps, json.dumps(values, sort_keys=True, default=str))
            entry = groups.get(key)
            if entry is None:
                groups[key] = [run.host, comps, values, 1, run.started_at, run.started_at]
            else:
                entry[3] += 1
                entry[4] = min(entry[4], run.started_at)
                entry[5] = max(entry[5], run.started_at)
        return sorted_groups(groups.values())

    def record_mentions(self, needles: Iterable[str]) -> set[str]:
        """Which of ``needles`` occur in some run's record (facts annotated from other
        processes included), as text in the record's JSON (``json.dumps``, keys sorted).

        For the project report's data credits: which shipped data files the ledger's runs
        name, without reading every record. Backends search the stored text; this default
        reads every run.
        """
        import json

        records = (json.dumps(r.record, sort_keys=True, default=str) for r in self.list_runs())
        return mentions_in(records, needles)

    @abc.abstractmethod
    def reuse_by_user(self) -> dict[str | None, ReuseTotals]:
        """What cache hits avoided, summed per user who saved it (the consuming run's
        user; None for hits outside any run or recorded before users were)."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version the ledger is at (0: not created yet). Reads only."""


def verified_artifact(content: bytes, digest: str, *, name: str, run_id: str,
                      where: object) -> bytes:
    """``content`` if its sha256 is ``digest``, for every backend's ``get_artifact``.

    Raises:
        StoreCorruptError: The content does not match its hash.
    """
    import hashlib

    if hashlib.sha256(content).hexdigest() != digest:
        msg = (
            f"Artifact {name!r} of run {run_id[:8]!r} in {where} does not match its sha256; "
            "the ledger is damaged. Restore it from a backup."
        )
        raise StoreCorruptError(msg)
    return content


def mentions_in(texts: Iterable[str], needles: Iterable[str], *, chunk: int = 500) -> set[str]:
    """Which ``needles`` occur in some of ``texts``, searched ``chunk`` texts at a time
    (stops reading once every needle is found)."""
    wanted = [n for n in dict.fromkeys(needles) if n]
    found: set[str] = set()
    batch: list[str] = []

    def search() -> None:
        haystack = "\n".join(batch)
        found.update(n for n in wanted if n not in found and n in haystack)
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= chunk:
            search()
            if len(found) == len(wanted):
                return found
    search()
    return found


def sorted_groups(entries: Iterable[Sequence[Any]]) -> list[RecordGroup]:
    """``[host, components, values, runs, first, last]`` entries as groups, oldest first."""
    import json

    groups = [RecordGroup(e[0], tuple(e[1]), dict(e[2]), int(e[3]), e[4], e[5])
              for e in entries]  # fmt: skip
    groups.sort(key=lambda g: (g.first_started_at, g.host, g.components,
                               json.dumps(g.values, sort_keys=True, default=str)))  # fmt: skip
    return groups


def check_record_keys(keys: Sequence[str]) -> list[str]:
    """``keys`` without repeats; refuses a key a JSON path cannot name plainly."""
    for key in keys:
        if not isinstance(key, str) or not key or '"' in key or "\\" in key:
            from wattwise.exceptions import InvalidParameterError

            msg = f"Cannot group runs by the record key {key!r}: give a plain key name."
            raise InvalidParameterError(msg)
    return list(dict.fromkeys(keys))


def check_group_by(group_by: str) -> None:
    """Refuse a ``group_by`` that is not one of :data:`GROUP_BY`."""
    if group_by not in GROUP_BY:
        from wattwise.exceptions import InvalidParameterError

        msg = f"Cannot group runs by {group_by!r}: use one of {', '.join(GROUP_BY)}."
        raise InvalidParameterError(msg)


def declared_role(run: RunRecord) -> str:
    """The role a run declared, or for rows older than the column the one its kind implies
    (``tuning`` for trials, studies and runs of a study, else ``final``)."""
    if run.role:
        return run.role
    if run.kind in ("trial", "study") or run.study_id is not None:
        return "tuning"
    return "final"


def group_values(run: RunRecord, group_by: str) -> list[str | None]:
    """The groups a run counts in for ``group_by`` (several for ``tag``), as the SQL
    backends compute them; for backends that aggregate in Python and for running runs."""
    if group_by == "none":
        return [None]
    if group_by == "tag":
        return list(run.tags) or [None]
    if group_by == "month":
        return [time.strftime("%Y-%m", time.gmtime(run.started_at))]
    if group_by == "role":
        return [declared_role(run)]
    if group_by == "status":
        return [run.status.value]
    attribute = {"user": "user", "host": "host", "region": "region", "kind": "kind",
                 "study": "study_id", "job": "job_id"}[group_by]  # fmt: skip
    value = getattr(run, attribute)
    return [None if value is None else str(value)]


_Sums = dict[tuple[str | None, str, str], list[Any]]


def add_run(sums: _Sums, key: tuple[str | None, str, str], run: RunRecord) -> None:
    """Add one run to the sums under ``key`` (group, role, status)."""
    entry = sums.get(key)
    if entry is None:
        sums[key] = [1, run.duration_s, run.energy_j, run.energy_band_j, run.co2e_g,
                     run.co2e_band_g, run.started_at, run.started_at]  # fmt: skip
        return
    entry[0] += 1
    for index, value in enumerate(
        (run.duration_s, run.energy_j, run.energy_band_j, run.co2e_g, run.co2e_band_g), 1
    ):
        entry[index] += value
    entry[6] = min(entry[6], run.started_at)
    entry[7] = max(entry[7], run.started_at)


def rows_from_sums(sums: _Sums) -> list[AggregateRow]:
    """Sums as rows, sorted by group (None last), role, status."""
    rows = [
        AggregateRow(
            group=None if g is None else str(g),
            role=r,
            status=st,
            runs=int(v[0]),
            duration_s=float(v[1]),
            energy_j=float(v[2]),
            energy_band_j=float(v[3]),
            co2e_g=float(v[4]),
            co2e_band_g=float(v[5]),
            first_started_at=v[6],
            last_started_at=v[7],
        )
        for (g, r, st), v in sums.items()
    ]
    rows.sort(key=lambda row: (row.group is None, row.group or "", row.role, row.status))
    return rows


def get_store(
    url: str | None = None,
    *,
    readonly: bool = False,
    start: str | os.PathLike[str] | None = None,
    defer: bool = False,
    busy_timeout_s: float | None = None,
) -> BaseRunStore:
    """Open the ledger named by ``url``, ``WATTWISE_STORE`` or the project root.

    Accepted: a file path (the default ``.wattwise/ledger.db`` at the project root),
    ``sqlite:///path``, ``memory://`` (``memory://name`` shares one ledger per name within
    a process) and ``postgresql://…`` (needs ``pip install 'wattwise[postgres]'``).

    Opening writes nothing. A missing default ledger reads as empty; a missing ledger
    named explicitly is a one-line StoreError on first read. The first write creates it.

    Args:
        url: The ledger; None for ``WATTWISE_STORE`` or the project's default.
        readonly: Refuse every write (report building, listings).
        start: Where to look for the project root (default: working directory).
        defer: Open nothing until first used.
        busy_timeout_s: How long a write waits for another writer.

    Raises:
        ConfigError: An unknown URL scheme.
    """
    text = url or os.environ.get("WATTWISE_STORE") or ""
    options: dict[str, Any] = {"readonly": readonly, "defer": defer}
    if busy_timeout_s is not None:
        options["busy_timeout_s"] = busy_timeout_s
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "memory":
        from wattwise.store._memory import MemoryRunStore

        return MemoryRunStore(text, readonly=readonly)
    if scheme in ("postgresql", "postgres"):
        import importlib

        backend = importlib.import_module("wattwise.store._postgres")  # psycopg loads here
        store: BaseRunStore = backend.PostgresRunStore(text, start=start, **options)
        return store
    if scheme and scheme != "sqlite":
        msg = (
            f"Unsupported store URL scheme {scheme!r} in {text!r}. Use a file path, "
            "sqlite:///path/to/ledger.db, postgresql://host/db or memory://."
        )
        raise ConfigError(msg)
    from wattwise.store._locate import ledger_path
    from wattwise.store._sqlite import SQLiteRunStore

    return SQLiteRunStore(ledger_path(text or None, start=start), must_exist=bool(url),
                          **options)  # fmt: skip


def local_path_for(start: str | os.PathLike[str] | None = None) -> Path:
    """The project's default ledger file (a server backend's local companions go beside it)."""
    from wattwise.store._locate import LEDGER_FILE, STATE_DIR, find_project_root

    return find_project_root(start) / STATE_DIR / LEDGER_FILE
