"""The ledger in memory (``memory://``): the contract without a database, for tests.

``memory://`` opens a fresh ledger; ``memory://name`` shares one ledger between every store
opened with that name in this process (a run and the code that reads its results). The
ledger lives as long as the process: nothing is written to disk, and other processes (a
``wattwise run`` child, a worker) cannot see it.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import socket
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import RunNotFoundError, StoreError
from wattwise.store import _liveness
from wattwise.store._base import (
    AggregateRow,
    BaseRunStore,
    Metric,
    RunMetric,
    Sample,
    add_run,
    check_group_by,
    declared_role,
    group_values,
    rows_from_sums,
    verified_artifact,
)
from wattwise.store._model import ComponentEnergy, RunRecord, RunStatus, job_id_of, login_name
from wattwise.store._records import json_text, valid, valid_points, valid_text
from wattwise.store._reuse import ReuseEvent, ReuseTotals
from wattwise.store._schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from wattwise.store._spool import SpoolFile

#: Margin added to a remote run's stale window (as for SQLite).
STALE_AFTER_S = 30.0
_FIXED = frozenset({"id", "started_at", "host", "pid", "user"})
_COLUMNS = frozenset(f.name for f in dataclasses.fields(RunRecord)) - {"components"}
_UPDATABLE = _COLUMNS - _FIXED


@dataclasses.dataclass
class _Ledger:
    """What one memory ledger holds; guarded by its lock."""

    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock)
    runs: dict[str, RunRecord] = dataclasses.field(default_factory=dict)
    metrics: dict[str, list[tuple[int, Metric]]] = dataclasses.field(default_factory=dict)
    samples: dict[str, list[Sample]] = dataclasses.field(default_factory=dict)
    annotations: dict[str, list[tuple[str, str, bool]]] = dataclasses.field(default_factory=dict)
    artifacts: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    blobs: dict[str, bytes] = dataclasses.field(default_factory=dict)
    reuse: list[ReuseEvent] = dataclasses.field(default_factory=list)
    #: The job of each run, as the SQL backends' ``job_id`` column holds it.
    jobs: dict[str, str] = dataclasses.field(default_factory=dict)
    seq: int = 0


_NAMED: dict[str, _Ledger] = {}
_ANONYMOUS: weakref.WeakValueDictionary[str, _Ledger] = weakref.WeakValueDictionary()
_NAMED_LOCK = threading.Lock()


def _json(value: Any) -> Any:
    """The value as the SQL backends give it back (a JSON round trip, text made valid)."""
    return json.loads(json_text(value))


class MemoryRunStore(BaseRunStore):
    """The run ledger in this process's memory.

    Args:
        url: ``memory://`` (a fresh ledger) or ``memory://name`` (shared by name).
        readonly: Refuse every write with a one-line StoreError.
        stale_after_s: Margin added to a remote run's stale window.
    """

    def __init__(
        self, url: str = "memory://", *, readonly: bool = False,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:  # fmt: skip
        name = url.split("://", 1)[1] if "://" in url else url
        name = name.strip("/")
        with _NAMED_LOCK:
            if not name:
                # Kept while a store holds it, so that ``store.url`` opens it again.
                name = f"anonymous-{uuid.uuid4().hex[:12]}"
                self._db = _ANONYMOUS[name] = _Ledger()
            elif name in _ANONYMOUS:
                self._db = _ANONYMOUS[name]
            else:
                self._db = _NAMED.setdefault(name, _Ledger())
        self._name = name
        self.readonly = readonly
        self.stale_after_s = stale_after_s
        self.path = Path(tempfile.gettempdir()) / f"wattwise-memory-{name}" / "ledger.db"
        self._host = socket.gethostname()
        self._closed = False

    @property
    def url(self) -> str:
        """``memory://name``: opens this same ledger again in this process."""
        return f"memory://{self._name}"

    @property
    def writable(self) -> bool:
        """A memory ledger is always ready to write (unless read-only)."""
        return not self.readonly

    def reopen(self) -> MemoryRunStore:
        """Another store on the same ledger."""
        return MemoryRunStore(self.url, readonly=self.readonly, stale_after_s=self.stale_after_s)

    def close(self) -> None:
        """Nothing to release; the ledger stays while its name is known."""
        self._closed = True

    def schema_version(self) -> int:
        """Always the current version: a memory ledger is born current."""
        return SCHEMA_VERSION

    # -- plumbing ---------------------------------------------------------------------

    def _writing(self) -> _Ledger:
        if self.readonly:
            msg = (
                f"The ledger {self.url} was opened read-only and this step writes. Open it "
                "with get_store(url) (readonly=False) to write."
            )
            raise StoreError(msg)
        return self._db

    def _missing(self, run_id: str) -> RunNotFoundError:
        return RunNotFoundError(f"Run {run_id!r} is not in the ledger {self.url}.")

    def _read(self, run: RunRecord, *, judge: bool = True) -> RunRecord:
        """A copy of a run as readers see it: annotations merged, liveness judged."""
        result = copy.deepcopy(run)
        for key, value, is_append in self._db.annotations.get(run.id, []):
            if is_append:
                existing = result.record.get(key)
                if not isinstance(existing, list):
                    existing = result.record[key] = []
                existing.append(json.loads(value))
            else:
                result.record[key] = json.loads(value)
        result.components.sort(key=lambda c: c.component)
        if judge and result.status is RunStatus.RUNNING:
            verdict = self._liveness(result, time.time())
            if verdict.note:
                live = result.record.setdefault("liveness", {})
                if isinstance(live, dict):
                    live["note"] = verdict.note
                warnings = result.record.setdefault("warnings", [])
                if isinstance(warnings, list):
                    warnings.append(verdict.note)
            if not verdict.alive:
                result.status = RunStatus.CRASHED
                result.ended_at = result.heartbeat_at
        return result

    def _liveness(self, run: RunRecord, now: float) -> _liveness.Liveness:
        return _liveness.effective_state(
            host=run.host, pid=run.pid, heartbeat_at=run.heartbeat_at, record=run.record,
            now=now, this_host=self._host, margin_s=self.stale_after_s,
        )  # fmt: skip

    def _stored(self, run: RunRecord) -> RunRecord:
        stored = copy.deepcopy(run)
        stored.status = RunStatus(stored.status)
        stored.tags = _json(stored.tags)
        stored.params = _json(stored.params)
        stored.record = _json(stored.record)
        return stored

    @staticmethod
    def _index_job(db: _Ledger, run_id: str, record: Any) -> None:
        """Note the job a record names; one that names none leaves it (as in SQL)."""
        job = job_id_of(record)
        if job is not None:
            db.jobs[run_id] = job

    def _set(self, db: _Ledger, run_id: str, fields: dict[str, Any]) -> None:
        if "record" in fields:
            self._index_job(db, run_id, fields["record"])
        run = db.runs[run_id]
        for name, value in fields.items():
            if name in ("tags", "params", "record"):
                value = _json(value)
            elif name == "status":
                value = RunStatus(value)
            setattr(run, name, value)

    def _add_points(
        self, db: _Ledger, run_id: str, samples: Iterable[Sample], metrics: Iterable[Metric]
    ) -> None:
        db.samples.setdefault(run_id, []).extend(tuple(s) for s in samples)  # type: ignore[misc]
        points = db.metrics.setdefault(run_id, [])
        for metric in metrics:
            db.seq += 1
            points.append((db.seq, tuple(metric)))  # type: ignore[arg-type]

    def _annotate(self, db: _Ledger, run_id: str, key: str, value: Any, append: bool) -> None:
        db.annotations.setdefault(run_id, []).append((valid_text(key), json_text(value), append))

    # -- writes -------------------------------------------------------------------------

    def insert_run(self, run: RunRecord) -> None:
        """Add a new run; a missing ``user`` is this process's login name."""
        db = self._writing()
        if run.user is None:
            run.user = login_name()
        with db.lock:
            if run.id in db.runs:
                msg = f"Run {run.id!r} is already in the ledger {self.url}; run ids are unique."
                raise StoreError(msg)
            db.runs[run.id] = self._stored(valid(run))
            self._index_job(db, run.id, valid(run.record))

    def flush_run(
        self,
        run_id: str,
        fields: dict[str, Any],
        *,
        components: Sequence[ComponentEnergy] = (),
        samples: Iterable[Sample] = (),
        metrics: Iterable[Metric] = (),
    ) -> None:
        """Write a run's latest state at once."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            msg = f"Cannot update run columns {sorted(unknown)}; allowed: {sorted(_UPDATABLE)}."
            raise StoreError(msg)
        db = self._writing()
        fields, components = valid(fields), valid(list(components))
        samples, metrics = valid_points(list(samples), 1), valid_points(list(metrics), 1)
        with db.lock:
            if run_id not in db.runs:
                if fields or components:
                    raise self._missing(run_id)
            else:
                self._set(db, run_id, fields)
                if components:
                    self._replace_components(db, run_id, components)
            self._add_points(db, run_id, samples, metrics)

    def _replace_components(
        self, db: _Ledger, run_id: str, components: Sequence[ComponentEnergy]
    ) -> None:
        by_name = {c.component: c for c in db.runs[run_id].components}
        for component in components:
            stored = copy.deepcopy(component)
            stored.info = _json(stored.info)
            by_name[component.component] = stored
        db.runs[run_id].components = sorted(by_name.values(), key=lambda c: c.component)

    def resync_run(
        self, run: RunRecord, fields: dict[str, Any], *, components: Sequence[ComponentEnergy],
        metrics: Sequence[Metric],
    ) -> None:  # fmt: skip
        """Make the ledger hold the run's whole state again (a missing ``user`` is ours)."""
        db = self._writing()
        if run.user is None:
            run.user = login_name()
        run, fields = valid(run), valid(fields)
        components, metrics = valid(list(components)), valid_points(list(metrics), 1)
        with db.lock:
            if run.id not in db.runs:
                db.runs[run.id] = self._stored(run)
            self._index_job(db, run.id, run.record)
            self._set(db, run.id, {k: v for k, v in fields.items() if k in _UPDATABLE})
            self._replace_components(db, run.id, components)
            if len(db.metrics.get(run.id, [])) < len(metrics):
                db.metrics[run.id] = []
                self._add_points(db, run.id, (), metrics)

    def annotate_run(self, run_id: str, key: str, value: Any, *, append: bool = False) -> None:
        """Attach a fact to a run's record (merged on read)."""
        db = self._writing()
        with db.lock:
            if run_id not in db.runs:
                raise self._missing(run_id)
            self._annotate(db, run_id, key, value, append)
            if not append:
                self._index_job(db, run_id, valid({key: value}))

    def put_artifact(
        self, run_id: str, name: str, content: bytes, *, created_at: float | None = None
    ) -> str:
        """Store a run's artifact; content kept once per sha256."""
        db = self._writing()
        digest = hashlib.sha256(content).hexdigest()
        name = valid_text(name)
        with db.lock:
            old = db.artifacts.pop((run_id, name), None)
            db.blobs.setdefault(digest, bytes(content))
            db.artifacts[(run_id, name)] = {
                "name": name, "sha256": digest, "size_bytes": len(content),
                "created_at": time.time() if created_at is None else created_at,
            }  # fmt: skip
            if old is not None and old["sha256"] != digest:
                self._release(db, old["sha256"])
        return digest

    @staticmethod
    def _release(db: _Ledger, digest: str) -> None:
        if not any(a["sha256"] == digest for a in db.artifacts.values()):
            db.blobs.pop(digest, None)

    def add_reuse(self, event: ReuseEvent) -> None:
        """Record a cache hit; a missing ``user`` is the consuming run's."""
        db = self._writing()
        event = valid(event)
        with db.lock:
            consumer = db.runs.get(event.consumer_run_id or "")
            if event.user is None and consumer is not None:
                event = dataclasses.replace(event, user=consumer.user)
            db.reuse.append(event)

    def merge_spooled(self, spooled: SpoolFile) -> int | None:
        """Merge one spool file at once; idempotent (see the SQLite backend)."""
        db = self._writing()
        run_id, header = spooled.run_id, valid(spooled.header)
        with db.lock:
            for key, value, _ in db.annotations.get(run_id, []):
                if key == "spooled" and f'"{spooled.file_id}"' in value:
                    return 0
            run = header.get("run")
            if run is not None and run_id not in db.runs:
                data = {k: v for k, v in run.items() if k in _COLUMNS}
                data["components"] = [ComponentEnergy(**c) for c in run.get("components") or []]
                db.runs[run_id] = self._stored(RunRecord(**data))
                self._index_job(db, run_id, data.get("record"))
            if run_id not in db.runs:
                return None
            merged = 0
            for entry in valid(spooled.entries):
                fields = {k: v for k, v in (entry.get("fields") or {}).items() if k in _UPDATABLE}
                beat = fields.get("heartbeat_at")
                if fields and (
                    not isinstance(beat, (int, float)) or beat >= db.runs[run_id].heartbeat_at
                ):
                    self._set(db, run_id, fields)
                    parts = [ComponentEnergy(**c) for c in entry.get("components") or []]
                    if parts:
                        self._replace_components(db, run_id, parts)
                self._add_points(
                    db, run_id,
                    [tuple(s) for s in entry.get("samples") or []],
                    [tuple(m) for m in entry.get("metrics") or []],
                )  # fmt: skip
                merged += 1
            fact = {
                "file_id": spooled.file_id, "file": str(spooled.path), "entries": merged,
                "reason": header.get("reason"), "merged_at": time.time(),
                "owner_pid": (header.get("owner") or {}).get("pid"),
            }  # fmt: skip
            self._annotate(db, run_id, "spooled", fact, True)
            what = "its records" if run is not None else "metrics logged by another process"
            note = (
                f"{what} were spooled to {spooled.path} because the ledger could not be "
                f"written ({header.get('reason')}); merged by pid {os.getpid()}"
            )
            self._annotate(db, run_id, "notes", note, True)
            return merged

    def reap(self, *, now: float | None = None) -> list[str]:
        """Persist ``crashed`` for every running run whose tracker is gone."""
        db = self._writing()
        now = time.time() if now is None else now
        dead = []
        with db.lock:
            for run in list(db.runs.values()):
                if run.status is not RunStatus.RUNNING:
                    continue
                verdict = self._liveness(self._read(run, judge=False), now)
                if verdict.alive:
                    continue
                run.status = RunStatus.CRASHED
                run.ended_at = run.heartbeat_at
                if verdict.note:
                    self._annotate(db, run.id, "notes", f"marked crashed: {verdict.note}", True)
                dead.append(run.id)
        return dead

    # -- reads --------------------------------------------------------------------------

    def get_run(self, ref: str) -> RunRecord:
        """The run whose id is ``ref`` or starts with it (at least 4 characters)."""
        with self._db.lock:
            if len(ref) < 4:
                found = [self._db.runs[ref]] if ref in self._db.runs else []
            else:
                found = sorted(
                    (r for r in self._db.runs.values() if r.id.startswith(ref)),
                    key=lambda r: r.started_at,
                )[:5]
            runs = [self._read(r) for r in found]
        if not runs:
            msg = f"No run {ref!r} in the ledger {self.url}. List runs with 'wattwise runs'."
            raise RunNotFoundError(msg)
        if len(runs) > 1:
            ids = ", ".join(r.id[:12] for r in runs)
            msg = f"Run prefix {ref!r} is ambiguous ({ids}); give more characters."
            raise RunNotFoundError(msg)
        return runs[0]

    def _select(
        self, *, status: str | None, study_id: str | None, top_level: bool, user: str | None,
        host: str | None, job_id: str | None = None,
    ) -> list[RunRecord]:  # fmt: skip
        """Matching runs as readers see them, newest first."""
        with self._db.lock:
            runs = [
                self._read(r)
                for r in self._db.runs.values()
                if (study_id is None or r.study_id == (study_id or None))
                and (job_id is None or self._db.jobs.get(r.id) == job_id)
                and (user is None or r.user == user)
                and (host is None or r.host == host)
                and not (top_level and r.parent_id is not None)
            ]
        if status is not None:
            runs = [r for r in runs if r.status.value == status]
        runs.sort(key=lambda r: r.id)
        runs.sort(key=lambda r: r.started_at, reverse=True)
        return runs

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
        """Runs matching every filter, paged from the newest."""
        runs = self._select(status=status, study_id=study_id, top_level=top_level, user=user,
                            host=host, job_id=job_id)  # fmt: skip
        start = max(0, int(offset))
        stop = None if limit is None else start + max(0, int(limit))
        page = runs[start:stop]
        if not newest_first:
            page.reverse()
        return page

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
        """How many runs :meth:`list_runs` would return."""
        return len(self._select(status=status, study_id=study_id, top_level=top_level,
                                user=user, host=host, job_id=job_id))  # fmt: skip

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
        """Sums per group, role and status (in Python: the data is in Python)."""
        check_group_by(group_by)
        runs = self._select(status=None, study_id=study_id, top_level=top_level, user=user,
                            host=host, job_id=job_id)  # fmt: skip
        sums: dict[tuple[str | None, str, str], list[Any]] = {}
        for run in runs:
            groups = [self._db.jobs.get(run.id)] if group_by == "job" else None
            for group in groups or group_values(run, group_by):
                add_run(sums, (group, declared_role(run), run.status.value), run)
        return rows_from_sums(sums)

    def metrics(self, run_id: str) -> list[Metric]:
        """Metric points of a run in logging order."""
        with self._db.lock:
            return [m for _, m in self._db.metrics.get(run_id, [])]

    def iter_metrics(self, run_ids: Iterable[str] | None = None) -> Iterator[RunMetric]:
        """Metric points of many runs, by run then logging order."""
        with self._db.lock:
            ids = sorted(self._db.metrics) if run_ids is None else list(run_ids)
        for run_id in ids:
            for step, key, value, logged_at in self.metrics(run_id):
                yield (run_id, step, key, value, logged_at)

    def samples(self, run_id: str) -> list[Sample]:
        """Power samples of a run by time."""
        with self._db.lock:
            return sorted(self._db.samples.get(run_id, []), key=lambda s: (s[0], s[1]))

    def get_artifact(self, run_id: str, name: str) -> bytes | None:
        """A run's artifact, checked against its sha256."""
        with self._db.lock:
            meta = self._db.artifacts.get((run_id, name))
            content = None if meta is None else self._db.blobs.get(meta["sha256"])
        if meta is None or content is None:
            return None
        return verified_artifact(content, meta["sha256"], name=name, run_id=run_id,
                                 where=self.url)

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """A run's artifacts without content, by name."""
        with self._db.lock:
            found = [dict(a) for (rid, _), a in self._db.artifacts.items() if rid == run_id]
        return sorted(found, key=lambda a: a["name"])

    def reuse_events(
        self, *, cache_key: str | None = None, consumer_run_id: str | None = None
    ) -> list[ReuseEvent]:
        """Cache hits, oldest first."""
        with self._db.lock:
            return [
                e
                for e in self._db.reuse
                if (cache_key is None or e.cache_key == cache_key)
                and (consumer_run_id is None or e.consumer_run_id == consumer_run_id)
            ]

    def reuse_totals(self) -> ReuseTotals:
        """What every cache hit avoided, summed."""
        with self._db.lock:
            events = list(self._db.reuse)
        return _reuse_sum(events)

    def reuse_by_user(self) -> dict[str | None, ReuseTotals]:
        """What cache hits avoided, per user who saved it."""
        with self._db.lock:
            events = list(self._db.reuse)
        users = dict.fromkeys(e.user for e in events)
        return {u: _reuse_sum([e for e in events if e.user == u]) for u in users}


def _reuse_sum(events: list[ReuseEvent]) -> ReuseTotals:
    return ReuseTotals(
        hits=len(events),
        energy_j=sum(e.energy_avoided_j for e in events),
        co2e_g=sum(e.co2e_avoided_g for e in events),
        duration_s=sum(e.duration_avoided_s for e in events),
    )


def forget(name: str) -> None:
    """Drop the shared memory ledger ``memory://name`` (tests start afresh)."""
    with _NAMED_LOCK:
        _NAMED.pop(name.split("://", 1)[-1].strip("/"), None)
