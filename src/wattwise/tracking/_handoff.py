"""The run's writer thread: every ledger write of a run, handed off with a bounded wait.

A ledger on a dead network mount does not fail, it hangs: ``open()``, ``stat()`` or a write
never returns, and no SQLite busy timeout applies. So no thread the job depends on touches
the ledger. One daemon thread per run (``wattwise-writer``) owns the run's
:class:`~wattwise.tracking._writer.LedgerWriter` (and through it the store), and the run
hands work to it:

* the first insert: ``start()`` waits at most ``START_TIMEOUT_S`` (0.5 s), then goes on;
  the insert completes later, or the run spools;
* flushes from the sampler thread: never waited for. While the writer is busy, flushes
  merge into one (fields and components are cumulative, samples and metrics are
  appended), so a stuck ledger costs one pending payload, not a growing queue;
* artifacts and housekeeping: waited for briefly, or not at all;
* the final write: ``finish()`` waits at most :func:`final_wait_s` (5 s, or
  ``WATTWISE_FINAL_WRITE_S``). When it is not done by then, the writer is abandoned: the
  final state, with the samples and metrics not known to be written, goes to a spool file
  in the user's state folder (local disk, not the ledger's folder, which may be the dead
  mount), and ``finish()`` returns the result. A daemon thread stuck in a system call does
  not keep the process from exiting.

Once a write has not come back in time, the ledger is *known to hang* in this process (keyed
by the store's URL, :func:`ledger_key`): later runs to it wait only :data:`PROBE_WAIT_S`
(50 ms) for their start, final and artifact writes, instead of paying the full waits afresh.
Each such run still hands its writes to its own writer thread, which is the probe: as soon as
any write to that ledger that began at or after the one that did not come back returns (the
stuck call itself, or a later run's write to a ledger that answers again), the mark is
cleared and runs wait as before. Only a write that does not come back marks a ledger: a
locked one fails within its busy timeout, spools and marks nothing (a lock usually clears in
seconds, so each run tries it afresh). Strict mode keeps the full waits.

Costs, stated: a flush that was in flight when ``finish()`` gave up is spooled too; if that
write completes after all (the ledger comes back while the process lives on), its samples
and metric points are in the ledger twice once the spool is merged.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wattwise.exceptions import StoreError
from wattwise.store import ComponentEnergy, RunRecord
from wattwise.tracking._writer import LedgerWriter, spool_header

#: How long ``finish()`` waits for the final write by default, in seconds.
FINAL_WAIT_S = 5.0
#: How long the emergency spool may take before the run's records are given up.
SPOOL_WAIT_S = 2.0
#: What a run waits for a write to a ledger known to hang (it still hands the write over).
PROBE_WAIT_S = 0.05

Payload = tuple[dict[str, Any], Sequence[ComponentEnergy], list[Any], list[Any]]


def final_wait_s(warn: Callable[[str, str], None] | None = None) -> float:
    """``WATTWISE_FINAL_WRITE_S`` if it is a number > 0, else :data:`FINAL_WAIT_S`."""
    raw = os.environ.get("WATTWISE_FINAL_WRITE_S", "").strip()
    if not raw:
        return FINAL_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if 0 < value < float("inf"):
        return value
    if warn is not None:
        warn("config", f"$WATTWISE_FINAL_WRITE_S = {raw!r} is not valid: it must be a number "
             f"of seconds > 0; this run waits {FINAL_WAIT_S:g} s. Set e.g. "
             "WATTWISE_FINAL_WRITE_S=10, or unset it.")  # fmt: skip
    return FINAL_WAIT_S


def spool_late(
    ledger: Path, run_id: str, run: dict[str, Any] | None, entry: dict[str, Any], *,
    reason: str, warn: Callable[[str, str], None], kept: str, lost: str,
) -> Path | None:  # fmt: skip
    """The never-block write path's last step: put ``entry`` in the run's local spool.

    The ledger did not take a write in time (``reason`` says which, lower-case). The entry
    is appended to the spool of run ``run_id`` in the user's state folder (local disk, not
    the ledger's folder, which may be the dead mount), on a helper thread waited for at most
    :data:`SPOOL_WAIT_S`; this late in the interpreter's shutdown, when no thread can start,
    synchronously. Then ``warn("hung", ...)`` says once where it went, or that it was lost.

    Args:
        ledger: The ledger the entry was meant for.
        run_id: The run it belongs to.
        run: The run's spool header (:func:`~wattwise.tracking._writer.spool_header`), or
            None when the run is the ledger's already (a job writing into its parent's run).
        entry: The spool entry (``{"op": ..., ...}``).
        reason: Why the ledger was not written, e.g. "the final write ... did not finish
            within 5 s (...)".
        warn: ``(kind, text)``: report a fault once per kind.
        kept: What the warning says is kept, e.g. "The metrics are" (followed by "kept in the
            spool PATH ...").
        lost: The warning's last sentence when the spool failed too.

    Returns:
        The spool file, or None when the entry could not be spooled (it is lost).
    """
    box: dict[str, Any] = {}

    def write() -> None:
        from wattwise.store import Spool

        spool = Spool(ledger, run_id, run, prefer_local=True)
        try:
            box["path"] = spool.append(entry, reason=reason)
        except StoreError as err:
            box["error"] = err
        finally:
            spool.close()

    helper = threading.Thread(target=write, name="wattwise-spool", daemon=True)
    try:
        helper.start()
    except RuntimeError:  # no new thread this late in the interpreter's shutdown
        write()
    else:
        helper.join(SPOOL_WAIT_S)
    path = box.get("path")
    told = f"{reason[0].upper()}{reason[1:]}"
    if isinstance(path, Path):
        warn("hung", f"{told}. {kept} kept in the spool {path} until the next wattwise process "
             "that can write the ledger merges it (or: wattwise doctor --repair).")  # fmt: skip
        return path
    why = box.get("error") or f"the spool did not answer within {SPOOL_WAIT_S:g} s either"
    warn("hung", f"{told}, and {why}. {lost}")
    return None


@dataclasses.dataclass(frozen=True)
class _Hang:
    since: float  # time.monotonic() at which the write that did not come back began
    owner: int  # the serial number of the WriterThread that saw it


_hung_lock = threading.Lock()
_serials = itertools.count()
#: Ledgers known to hang in this process: ledger key -> the write that did not come back.
_hung: dict[str, _Hang] = {}


def ledger_key(writer: LedgerWriter) -> str:
    """What identifies the ledger of ``writer`` in this process: its store's URL."""
    try:
        return writer.store.url
    except Exception:  # a store without a URL: its file
        return os.path.abspath(writer.path)


def known_hung(key: str) -> bool:
    """Whether a write to the ledger ``key`` did not come back in time and none since has."""
    with _hung_lock:
        return key in _hung


def _mark_hung(key: str, since: float, owner: int) -> None:
    with _hung_lock:
        if key not in _hung or _hung[key].since > since:
            _hung[key] = _Hang(since, owner)


def _answered(key: str, began: float) -> None:
    """A write to ``key`` that began at ``began`` came back: the ledger answers again if it
    began no earlier than the write that did not."""
    with _hung_lock:
        hang = _hung.get(key)
        if hang is not None and began >= hang.since:
            del _hung[key]


@dataclasses.dataclass(eq=False)
class _Job:
    kind: str  # insert, flush, call, close
    fn: Callable[[LedgerWriter], Any] | None = None
    fields: dict[str, Any] | None = None
    components: Sequence[ComponentEnergy] = ()
    samples: list[Any] = dataclasses.field(default_factory=list)
    metrics: list[Any] = dataclasses.field(default_factory=list)
    final: bool = False
    began: float | None = None  # time.monotonic() when the thread took it up
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class WriterThread:
    """The one thread that writes a run to its ledger (see the module docstring).

    Args:
        writer: The run's ledger writer; only this thread uses it from now on.
        warn: ``(kind, text)``: report a fault once per kind.
        after_insert: Called on this thread once the first insert is done (the run raises
            the store's busy timeout for later writes there).
    """

    def __init__(
        self, writer: LedgerWriter, *, warn: Callable[[str, str], None],
        after_insert: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.writer = writer
        self._warn = warn
        self._after_insert = after_insert
        self._cond = threading.Condition()
        self._queue: collections.deque[_Job] = collections.deque()
        self._busy: _Job | None = None
        self._run: RunRecord | None = None
        self._abandoned = False
        #: Samples and metrics of a flush that failed in strict mode, for the next one.
        self._carry: tuple[list[Any], list[Any]] = ([], [])
        #: Where the final state went when the ledger did not answer in time.
        self.emergency_spool: Path | None = None
        #: True when the final state could go neither to the ledger nor to a spool.
        self.lost = False
        self._key = ledger_key(writer)
        self._serial = next(_serials)
        self._thread = threading.Thread(target=self._loop, name="wattwise-writer", daemon=True)
        self._thread.start()

    # -- hand-offs ----------------------------------------------------------------------

    def insert(self, run: RunRecord, *, wait_s: float) -> bool:
        """Insert the run; wait at most ``wait_s``. True when it was done in time.

        Raises:
            StoreError: Strict mode, and the insert failed or did not finish in time.
        """
        self._run = run
        wait_s = self._bounded(wait_s)
        job = self._put(_Job("insert"))
        done = job.done.wait(wait_s)
        if not done:
            self._late()
        if self.writer.strict:
            if not done:
                self._abandon()
                raise StoreError(self._late_text("The first write", wait_s))
            if job.error is not None:
                self._put(_Job("close"))  # the run does not start: nothing more to write
                raise job.error
        return done

    def flush(self, payload: Payload) -> None:
        """Hand the run's latest state over; never waits (merged with a pending flush)."""
        fields, components, samples, metrics = payload
        with self._cond:
            last = self._queue[-1] if self._queue else None
            if last is not None and last.kind == "flush":
                last.fields, last.components = fields, components
                last.samples.extend(samples)
                last.metrics.extend(metrics)
                return
        self._put(_Job("flush", fields=fields, components=components, samples=list(samples),
                       metrics=list(metrics)))  # fmt: skip

    def call(self, fn: Callable[[LedgerWriter], Any], *, wait_s: float | None) -> _Job:
        """Run ``fn(writer)`` on the writer thread; wait at most ``wait_s`` (None: no wait).

        A call still queued when the wait ends is withdrawn. The returned job says whether
        it was done (``done.is_set()``), its ``result`` and its ``error``.
        """
        job = self._put(_Job("call", fn=fn))
        if wait_s is not None:
            wait_s = self._bounded(wait_s)
        if wait_s is not None and not job.done.wait(wait_s):
            self._late()
            with self._cond:
                if job in self._queue:
                    self._queue.remove(job)
        return job

    def finish(self, payload: Payload, *, wait_s: float) -> bool:
        """Hand over the final state and wait at most ``wait_s`` for it to be written.

        Returns:
            True when the ledger writer took it in time (to the ledger or its spool); False
            when the final state went to the emergency spool instead (or was lost).

        Raises:
            BaseException: Strict mode: what the final write raised, or a StoreError when
                it did not finish in time.
        """
        fields, components, samples, metrics = payload
        wait_s = self._bounded(wait_s)
        job = _Job("flush", fields=fields, components=components, samples=list(samples),
                   metrics=list(metrics), final=True)  # fmt: skip
        with self._cond:
            last = self._queue[-1] if self._queue else None
            if last is not None and last.kind == "flush":  # merge the pending flush in
                self._queue.pop()
                job.samples[:0] = last.samples
                job.metrics[:0] = last.metrics
        self._put(job)
        close = self._put(_Job("close"))
        deadline = time.monotonic() + wait_s
        if job.done.wait(wait_s):
            close.done.wait(max(0.0, deadline - time.monotonic()))
            if job.error is not None and self.writer.strict:
                raise job.error
            return True
        self._late()
        self._spool_final(job, wait_s)
        if self.writer.strict:
            raise StoreError(self._late_text("The final write", wait_s))
        return False

    # -- the thread ---------------------------------------------------------------------

    def _put(self, job: _Job) -> _Job:
        with self._cond:
            if self._abandoned:
                job.error = StoreError("the run's ledger writer was given up")
                job.done.set()
                return job
            self._queue.append(job)
            self._cond.notify()
        return job

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._abandoned:
                    self._cond.wait()
                if self._abandoned:
                    return
                job = self._busy = self._queue.popleft()
            job.began = began = time.monotonic()
            try:
                job.result = self._do(job)
            except BaseException as err:  # strict mode, or a bug: kept for the caller
                job.error = err
                if job.kind == "flush" and not job.final:  # nobody waits for a flush
                    self._warn(f"write:{type(err).__name__}", f"writing the run failed "
                               f"(retried at the next flush, said once): {err}")  # fmt: skip
            _answered(self._key, began)  # it came back, whatever it did: the ledger answers
            with self._cond:
                self._busy = None
                job.done.set()
                if job.kind == "close" or self._abandoned:
                    return

    def _do(self, job: _Job) -> Any:
        writer = self.writer
        if job.kind == "insert":
            assert self._run is not None
            writer.insert(self._run)
            if self._after_insert is not None:
                self._after_insert()
            return None
        if job.kind == "flush":
            assert job.fields is not None
            job.samples[:0], job.metrics[:0] = self._carry
            self._carry = ([], [])
            try:
                writer.write(job.fields, job.components, job.samples, job.metrics,
                             final=job.final)  # fmt: skip
            except BaseException:
                if not job.final:  # strict mode: resent with the next flush, not before
                    self._carry = (job.samples, job.metrics)
                raise
            return None
        if job.kind == "call":
            assert job.fn is not None
            return job.fn(writer)
        writer.close()
        return None

    # -- a ledger known to hang ----------------------------------------------------------

    def _bounded(self, wait_s: float) -> float:
        """``wait_s``, or :data:`PROBE_WAIT_S` when another run found the ledger hangs (and
        no write has come back since). The run that found it waits as before; so does
        strict mode."""
        if self.writer.strict or wait_s <= PROBE_WAIT_S:
            return wait_s
        with _hung_lock:
            hang = _hung.get(self._key)
        if hang is None or hang.owner == self._serial:
            return wait_s
        self._probed = True
        return PROBE_WAIT_S

    _probed = False

    def _late(self) -> None:
        """A wait ran out: the write this thread is on (if any) did not come back in time."""
        with self._cond:
            busy = self._busy
            since = busy.began if busy is not None else None
        _mark_hung(self._key, since if since is not None else time.monotonic(), self._serial)

    # -- giving up ----------------------------------------------------------------------

    def _abandon(self) -> list[_Job]:
        """Stop the thread at its next step; return the jobs it will never do."""
        with self._cond:
            self._abandoned = True
            left = list(self._queue)
            self._queue.clear()
            busy = self._busy
            self._cond.notify()
        for job in left:
            job.error = StoreError("the run's ledger writer was given up")
            job.done.set()
        return [busy, *left] if busy is not None else left

    def _spool_final(self, final: _Job, wait_s: float) -> None:
        """The final write did not finish in time: spool it on local disk, bounded too."""
        unwritten = self._abandon()
        samples: list[Any] = list(self._carry[0])
        metrics: list[Any] = list(self._carry[1])
        for job in unwritten:  # the one in flight (if any) first, then the queued ones
            if job.kind == "flush" and job is not final:
                samples.extend(job.samples)
                metrics.extend(job.metrics)
        samples.extend(final.samples)
        metrics.extend(final.metrics)
        entry = {
            "op": "flush", "final": True, "fields": final.fields,
            "components": [dataclasses.asdict(c) for c in final.components],
            "samples": samples, "metrics": metrics,
        }  # fmt: skip
        reason = self._late_text("the final write", wait_s)
        run = spool_header(self._run) if self._run is not None else None
        path = spool_late(
            self.writer.path, self.writer.run_id, run, entry, reason=reason, warn=self._warn,
            kept="The job is not held up: its final state is",
            lost="This run will not be recorded; its energy is in the result printed or "
                 "returned at the end.",
        )  # fmt: skip
        if path is None:
            self.lost = True
        else:
            self.emergency_spool = path

    def _late_text(self, what: str, wait_s: float) -> str:
        why = (
            "a write to it earlier in this process has not come back: a hung disk or network "
            "mount?" if self._probed else "a hung disk or network mount?"
        )  # fmt: skip
        return (
            f"{what} of run {self.writer.run_id[:8]} to the ledger {self.writer.path} did not "
            f"finish within {wait_s:g} s ({why})"
        )
