"""What every part of a :class:`~wattwise.tracking.Run` shares: its state and its fields.

``Run`` is assembled from a few parts, each readable on its own:

* :mod:`wattwise.tracking._run`: the record and its lifecycle (``start``, ``finish``,
  ``with``, the decorator);
* :mod:`wattwise.tracking._measuring`: the meters chosen, the sampling loop, totals and
  the payloads handed to the ledger writer;
* :mod:`wattwise.tracking._recording`: what the user records (metrics, parameters, data,
  FLOPs, facts);
* :mod:`wattwise.tracking._capture`: settings, the initial record and the background
  capture of the environment;
* :mod:`wattwise.tracking._exit`: the runs still open and the hooks that end them at exit.

This module holds the fields they share (declared once, set by ``Run.__init__`` and
``start()``), the accessors that say clearly when a run has not started, and the
once-per-kind warning path every fault goes through.
"""

from __future__ import annotations

import enum
import json
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wattwise.exceptions import RunStateError, StoreWarning

if TYPE_CHECKING:
    from wattwise._config import Settings
    from wattwise.carbon import Intensity, Location, Pue
    from wattwise.meters import BaseMeter
    from wattwise.store import BaseRunStore
    from wattwise.tracking._capture import SharedCapture
    from wattwise.tracking._handoff import WriterThread
    from wattwise.tracking._job_session import JobSession
    from wattwise.tracking._kind import RunKind
    from wattwise.tracking._result import RunResult
    from wattwise.tracking._sampler import Sampler
    from wattwise.tracking._writer import LedgerWriter

T = TypeVar("T")

#: A metric point: step, name, value, time logged.
Metric = tuple[int | None, str, float, float]


class RunState(enum.Enum):
    """Where a :class:`Run` object is in its life."""

    CREATED = "created"
    RUNNING = "running"
    ENDED = "ended"


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (what the ledger will hold)."""
    return json.loads(json.dumps(value, default=str))


class RunFields:
    """The fields of a run that its parts share, and the accessors over them."""

    id: str
    name: str
    kind: str
    run_kind: RunKind
    role: str
    strict: bool
    params: dict[str, Any]
    tags: list[str]
    command: list[str] | None
    study_id: str | None
    parent_id: str | None
    reproduces: str | None
    state: RunState
    warnings: list[str]
    _diff: bool | None
    _region: str | None
    _given_meters: list[BaseMeter]
    _meter_names: tuple[str, ...] | None
    _only_given: bool
    _store_arg: BaseRunStore | str | None
    _interval_s: float | None
    _flush_s: float | None
    _pue_arg: float | None
    _emit_warnings: bool
    _on_warning: Callable[[str], None] | None
    _result: RunResult | None
    _lock: threading.RLock
    _pending_metrics: list[Metric]
    _last_metrics: dict[str, float]
    _warned: set[str]
    _settings: Settings | None
    _location: Location | None
    _intensity: Intensity | None
    _pue: Pue | None
    _store: BaseRunStore | None
    _sampler: Sampler | None
    _writer: LedgerWriter | None
    _handoff: WriterThread | None
    _final_wait_s: float
    _record: dict[str, Any]
    _fallbacks: list[str]
    _t0_wall: float
    _ended_at: float | None
    _sampler_cpu_s: float
    _cwd: Path
    _stop: threading.Event
    _thread: threading.Thread | None
    _env_thread: threading.Thread | None
    #: A study's environment capture this run makes for its trials too (the driver's).
    _capture_claim: tuple[SharedCapture, bool] | None
    _flush_soon: bool
    _command_identity: dict[str, Any] | None
    _job: JobSession | None

    # -- what start() decided ---------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The settings the run started with (config files, environment, arguments)."""
        return self._started(self._settings)

    @property
    def location(self) -> Location:
        """Where the energy was spent (grid zone, and how it was decided)."""
        return self._started(self._location)

    @property
    def intensity(self) -> Intensity:
        """The grid intensity applied, with its source."""
        return self._started(self._intensity)

    @property
    def pue(self) -> Pue:
        """The power usage effectiveness applied, with its source."""
        return self._started(self._pue)

    @property
    def store(self) -> BaseRunStore:
        """The ledger this run writes to."""
        return self._started(self._store)

    # -- where the run stands -------------------------------------------------------

    @property
    def record(self) -> dict[str, Any]:
        """A copy of the run's record as it stands (command, location, meters, ...)."""
        with self._lock:
            copied: dict[str, Any] = copy_json(self._record)
        return copied

    @property
    def recorded_in(self) -> str:
        """Where this run's records went: ``ledger``, ``spool`` or ``nowhere`` (both failed)."""
        writer, handoff = self._writer, self._handoff
        if writer is None or handoff is None:
            return "ledger"
        if handoff.emergency_spool is not None:
            return "spool"
        if writer.lost or handoff.lost:
            return "nowhere"
        return "ledger" if writer.spooled_to is None else "spool"

    @property
    def spooled_to(self) -> Path | None:
        """The spool file this run's records went to when the ledger refused them, or None."""
        writer, handoff = self._writer, self._handoff
        if handoff is not None and handoff.emergency_spool is not None:
            return handoff.emergency_spool
        return writer.spooled_to if writer is not None else None

    def _started(self, value: T | None) -> T:
        if value is None:
            msg = (
                f"Run {self.id[:8]!r} has not started; its settings, location, intensity, "
                "PUE and ledger exist after start() (or inside the 'with' block)."
            )
            raise RunStateError(msg)
        return value

    def _require_running(self, doing: str) -> None:
        """Raise RunStateError unless the run is running (``doing``: what was attempted)."""
        if self.state is not RunState.RUNNING:
            msg = f"Cannot {doing} run {self.id[:8]!r}: it is {self.state.value}, not running."
            raise RunStateError(msg)

    def _live_sampler(self) -> Sampler:
        """The sampler (the run has started: internal callers only)."""
        assert self._sampler is not None, "the run has not started"
        return self._sampler

    def _live_handoff(self) -> WriterThread:
        """The run's writer thread (the run has started: internal callers only)."""
        assert self._handoff is not None, "the run has not started"
        return self._handoff

    def _warn_once(self, kind: str, text: str, category: type[Warning] = StoreWarning) -> None:
        """Report a fault once per kind per run: on_warning, else a warning of ``category``.

        The text is kept in ``warnings`` and in the record's ``warnings``.
        """
        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
            self.warnings.append(text)
            self._record.setdefault("warnings", []).append(text)
        if self._on_warning is not None:
            self._on_warning(text)
        elif self._emit_warnings:
            warnings.warn(f"wattwise: {text}", category, stacklevel=2)
