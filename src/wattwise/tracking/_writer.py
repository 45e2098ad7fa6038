"""The run side of the ledger: write a run, or spool it when the ledger cannot take it.

A :class:`LedgerWriter` owns one run's writes. Each write tries the ledger; on any failure of
the store (locked beyond the busy timeout, read-only, full, damaged, replaced, its WAL
deleted) it goes to the run's spool instead (``wattwise.store.Spool``), the store is
dropped and re-opened at the next write. When the ledger takes writes again, the writer
merges its own spool, re-inserts the run if the file changed under it, and goes on. Each
kind of fault is reported once per run, through the ``warn`` callback.

Nothing here raises because of the store unless ``strict`` is set: measuring must never
change the outcome of the work measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import (
    RunNotFoundError,
    SchemaVersionError,
    StoreCorruptError,
    StoreError,
    WattwiseError,
)
from wattwise.store import BaseRunStore, ComponentEnergy, RunRecord

if TYPE_CHECKING:
    from wattwise.store import Spool

Metric = tuple[int | None, str, float, float]
Sample = tuple[float, str, float, float]

#: Busy timeout of the first insert: the start of a run never waits long for a lock.
START_TIMEOUT_S = 0.5
#: Busy timeout of later writes (the sampler thread's, and the final one).
WRITE_TIMEOUT_S = 2.0

#: After a failed write, a child process logs straight to its spool for this long.
CHILD_BACKOFF_S = 5.0

_STORE_FAULTS = (WattwiseError, sqlite3.Error, OSError)


def strict_from_env(strict: bool | None) -> bool:
    """``strict`` if given, else ``WATTWISE_STRICT`` (``1``, ``true``, ``yes``)."""
    if strict is not None:
        return bool(strict)
    return os.environ.get("WATTWISE_STRICT", "").strip().lower() in ("1", "true", "yes", "on")


def fault_kind(err: BaseException) -> str:
    """A short name for the kind of store fault (one warning per kind per run)."""
    if isinstance(err, StoreCorruptError):
        return "damaged"
    if isinstance(err, SchemaVersionError):
        return "schema"
    text = str(err).lower()
    for kind, words in (
        ("full", ("full", "no space")),
        ("locked", ("locked", "busy")),
        ("read-only", ("readonly", "read-only", "permission", "unable to open")),
        ("replaced", ("replaced", "removed", "write-ahead", "not in the ledger")),
    ):
        if any(word in text for word in words):
            return kind
    return "other"


class LedgerWriter:
    """Writes one run to the ledger, falling back to its spool.

    Args:
        run_id: The run.
        store: The ledger (shared or owned).
        owned: Close the store when done.
        strict: Raise store failures instead of spooling.
        warn: Called as ``warn(kind, text)`` on a fault (the caller shows each kind once).
    """

    def __init__(
        self, run_id: str, store: BaseRunStore, *, owned: bool, strict: bool,
        warn: Callable[[str, str], None],
    ) -> None:  # fmt: skip
        self.run_id = run_id
        self.store = store
        self._owned = owned
        self.strict = strict
        self._warn = warn
        self._lock = threading.Lock()
        self._run: RunRecord | None = None
        self._metrics: list[Metric] = []
        self._spool: Spool | None = None
        self._resync = False
        self._spooled_record: str | None = None
        self._abandoned: str | None = None
        self._resend = False
        self._graveyard: list[BaseRunStore] = []
        #: Where this run's records were spooled (last file), if anywhere.
        self.spooled_to: Path | None = None
        #: True when a write could go neither to the ledger nor to the spool.
        self.lost = False
        #: Kinds of faults met, in order.
        self.faults: list[str] = []

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self.store.path

    # -- writes ----------------------------------------------------------------------

    def insert(self, run: RunRecord) -> None:
        """Insert the run (status running); spooled if the ledger cannot take it now."""
        self._run = run
        with self._lock:
            try:
                self.store.insert_run(run)
                return
            except _STORE_FAULTS as err:
                if self.strict:
                    raise
                self._fault(err)
            self._to_spool({"op": "insert"}, str(self._last_error))

    def write(
        self, fields: dict[str, Any], components: Sequence[ComponentEnergy],
        samples: Sequence[Sample], metrics: Sequence[Metric], *, final: bool = False,
    ) -> None:  # fmt: skip
        """Write the run's latest state; to the spool if the ledger refuses it."""
        with self._lock:
            try:
                self._to_ledger(fields, components, samples, metrics)
                ok = True
            except _STORE_FAULTS as err:
                if self.strict:
                    raise
                self._fault(err)
                ok = False
            if not ok:
                fields = dict(fields)
                text = json.dumps(fields.get("record"), sort_keys=True, default=str)
                if text == self._spooled_record and self._spool is not None and (
                    self._spool.path is not None
                ):
                    del fields["record"]  # unchanged: the spool keeps one copy per file
                else:
                    self._spooled_record = text
                spooled_metrics = list(metrics)
                if self._resend:
                    spooled_metrics = [*self._metrics, *metrics]
                    self._resend = False
                entry = {
                    "op": "flush", "final": final, "fields": fields,
                    "components": [dataclasses.asdict(c) for c in components],
                    "samples": list(samples), "metrics": spooled_metrics,
                }  # fmt: skip
                self._to_spool(entry, str(self._last_error))
            self._metrics.extend(metrics)
            if final and self._spool is not None:
                self._spool.close()

    def _to_ledger(
        self, fields: dict[str, Any], components: Sequence[ComponentEnergy],
        samples: Sequence[Sample], metrics: Sequence[Metric],
    ) -> None:  # fmt: skip
        store = self.store
        if self._abandoned is not None:
            raise StoreError(self._abandoned)
        try:
            store.verify()
        except StoreError as err:
            if "write-ahead log" in str(err):
                store.reset()  # reopened at the next write, which re-inserts what was lost
                raise
            # The file was replaced: SQLite could mix our WAL with the new file, so this run
            # writes only to its spool from now on. The old connection stays open until
            # exit (closing it now could delete the new file's WAL by name).
            self._abandoned = f"{err} This run stops writing to that file."
            self._graveyard.append(store)
            self._resend = True  # what went to the old file went with it
            raise StoreError(self._abandoned) from err
        if self._resync:
            self._recover(fields, components)
        try:
            store.flush_run(self.run_id, fields, components=components, samples=samples,
                            metrics=metrics)  # fmt: skip
        except RunNotFoundError:
            # The file holds no such run any more (replaced by another ledger): put it back.
            self._recover(fields, components)
            store.flush_run(self.run_id, fields, components=components, samples=samples,
                            metrics=metrics)  # fmt: skip

    def _recover(self, fields: dict[str, Any], components: Sequence[ComponentEnergy]) -> None:
        """The ledger takes writes again: merge our spool, make sure it holds the run."""
        if self._spool is not None and self._spool.path is not None:
            from wattwise.store import read_spool

            spooled = read_spool(self._spool.path)
            if spooled is not None and self.store.merge_spooled(spooled) is not None:
                self._spool.discard()
                self._spool = None
                self.spooled_to = None  # all of it is in the ledger now
        if self._run is not None:
            self.store.resync_run(self._run, fields, components=components,
                                  metrics=self._metrics)  # fmt: skip
        self._resync = False

    def _fault(self, err: BaseException) -> None:
        self._last_error = err
        self._resync = True
        if self._graveyard and self.store is self._graveyard[-1]:
            self.store = self.store.reopen()
        else:
            self.store.reset()
        kind = fault_kind(err)
        if kind not in self.faults:
            self.faults.append(kind)
        self._pending_warning = (kind, err)

    _last_error: BaseException | None = None
    _pending_warning: tuple[str, BaseException] | None = None

    def _to_spool(self, entry: dict[str, Any], reason: str) -> None:
        from wattwise.store import Spool

        if self._spool is None:
            run = spool_header(self._run) if self._run is not None else None
            self._spool = Spool(self.path, self.run_id, run)
        pending, self._pending_warning = self._pending_warning, None
        try:
            where = self._spool.append(entry, reason=reason)
        except StoreError as err:
            self.lost = True
            if pending is not None:
                self._warn(pending[0], _ledger_text(self.path, pending[1], None))
            self._warn("spool", (
                f"{err} This run goes on but will not be recorded; its energy is in the "
                "result printed or returned at the end."))  # fmt: skip
            return
        self.spooled_to = where
        if pending is not None:
            self._warn(pending[0], _ledger_text(self.path, pending[1], where))

    # -- housekeeping ---------------------------------------------------------------

    def housekeeping(self) -> None:
        """Merge spools left by other runs, book cache hits kept by processes that are gone,
        and persist crashed runs (when the ledger allows)."""
        if self._resync:
            return
        # Other runs' business: if it fails, the next writer will try again.
        with contextlib.suppress(*_STORE_FAULTS):
            if _any_spooled(self.store.path):
                from wattwise.store import merge_spools

                merge_spools(self.store, skip_run=self.run_id)
            from wattwise.store import any_kept_hits, replay_hits

            if any_kept_hits(self.store.path):  # cache hits kept by processes now gone
                replay_hits(self.store)
            self.store.reap()

    def close(self) -> None:
        """Close the spool file and, if owned, the store."""
        with self._lock:
            if self._spool is not None:
                self._spool.close()
            if self._owned:
                with contextlib.suppress(*_STORE_FAULTS):
                    self.store.close()


def spool_header(run: RunRecord) -> dict[str, Any]:
    """The run as a spool header carries it (inserted by whoever merges the file)."""
    fields = dataclasses.asdict(run)
    fields["status"] = str(fields["status"])
    fields.pop("components", None)
    return fields


def _any_spooled(ledger: Path) -> bool:
    """Cheaply: is there any spool file where ``ledger``'s could be (a listing, no reads)?"""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")  # fmt: skip
    for folder in (os.path.join(os.path.dirname(os.path.abspath(ledger)), "spool"),
                   os.path.join(state, "wattwise", "spool")):  # fmt: skip
        try:
            with os.scandir(folder) as entries:
                if any(entry.name.endswith(".jsonl") for entry in entries):
                    return True
        except OSError:
            continue
    return False


def _ledger_text(path: Path, err: BaseException, spool: Path | None) -> str:
    where = (
        f"its records are kept in the spool {spool} until the next wattwise process that "
        "can write the ledger merges them (or: wattwise doctor --repair)"
        if spool is not None else "the spool cannot be written either"
    )  # fmt: skip
    return f"{err} The run goes on; {where}."
