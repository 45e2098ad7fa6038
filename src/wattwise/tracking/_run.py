"""A run: start, sample meters in the background, log metrics, flush, finish.

``wattwise.track()`` and ``wattwise run`` are two doors into this class. The sampler thread
reads every meter each ``interval_s``; energy is attributed to the run's process tree
(CPU-time share for CPU, resident-memory share for DRAM, whole device for GPUs) and the
record is written to the ledger at least every ``flush_s``, so a killed run keeps what
was measured up to its last flush.
"""

from __future__ import annotations

import atexit
import contextvars
import enum
import functools
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wattwise import __version__
from wattwise._config import Settings, load_settings
from wattwise.exceptions import (
    ConfigError,
    InvalidParameterError,
    LocationWarning,
    MeterUnavailableError,
    RunStateError,
    StoreWarning,
    WattwiseError,
)
from wattwise.meters import BaseMeter, MeterInfo
from wattwise.store import (
    SCHEMA_VERSION,
    BaseRunStore,
    ComponentEnergy,
    RunRecord,
    RunStatus,
    find_project_root,
    get_store,
    identity,
)
from wattwise.tracking._active import _points, active_run, current
from wattwise.tracking._kind import RunKind, role_for, run_kind
from wattwise.tracking._proctree import ProcessTree
from wattwise.tracking._result import RunResult
from wattwise.tracking._sampler import ATTRIBUTION, Sampler, meter_record
from wattwise.tracking._writer import (
    START_TIMEOUT_S,
    WRITE_TIMEOUT_S,
    LedgerWriter,
    strict_from_env,
)

if TYPE_CHECKING:  # carbon loads when a run starts
    from wattwise.carbon import Intensity, Location, Pue

logger = logging.getLogger("wattwise")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class RunState(enum.Enum):
    """Where a :class:`Run` object is in its life."""

    CREATED = "created"
    RUNNING = "running"
    ENDED = "ended"


class Run:
    """One tracked piece of work. Use :func:`wattwise.track` to make one.

    A run can be used once: as a context manager (``with track(...) as run``), by
    ``start()``/``finish()``, or as a decorator, which starts a fresh run per call.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        region: str | None = None,
        meters: Iterable[str | BaseMeter] | None = None,
        store: BaseRunStore | str | None = None,
        interval_s: float | None = None,
        flush_s: float | None = None,
        pue: float | None = None,
        kind: RunKind | str = "python",
        study_id: str | None = None,
        parent_id: str | None = None,
        command: list[str] | None = None,
        emit_warnings: bool = True,
        on_warning: Callable[[str], None] | None = None,
        reproduces: str | None = None,
        strict: bool | None = None,
        diff: bool | None = None,
    ) -> None:
        self._init_kwargs: dict[str, Any] = {
            "config": config, "tags": tags, "region": region, "meters": meters,
            "store": store, "interval_s": interval_s, "flush_s": flush_s, "pue": pue,
            "kind": kind, "study_id": study_id, "parent_id": parent_id,
            "emit_warnings": emit_warnings, "on_warning": on_warning, "strict": strict,
            "diff": diff,
        }  # fmt: skip
        #: Store the working tree's diff (None: the ``diff`` setting; ``--no-diff``: False).
        self._diff = diff
        #: Let failures of the store, meters and settings raise (also ``WATTWISE_STRICT=1``);
        #: by default they are reported once per kind and the run goes on.
        self.strict = strict_from_env(strict)
        self.id = uuid.uuid4().hex
        self.name = name or (Path(command[0]).name if command else "run")
        #: What kind of run this is: its role, attribution and process tree (see RunKind).
        self.run_kind = run_kind(kind)
        self.kind = self.run_kind.name
        #: Where the finished run counts in the footprint (``final``, ``tuning``, ...).
        self.role = role_for(self.run_kind, study_id, reproduces)
        self.params: dict[str, Any] = dict(config or {})
        self.tags = [str(t) for t in tags]
        self.command = command
        self.study_id = study_id
        parent = active_run()
        self.parent_id = parent_id or (parent.id if parent else None)
        self.state = RunState.CREATED
        self._region = region
        if isinstance(meters, (str, BaseMeter)):
            msg = (
                f"The 'meters' parameter must be a list of meter ids or meter objects. Got "
                f"{meters!r} instead; put it in a list."
            )
            raise InvalidParameterError(msg)
        chosen = list(meters) if meters is not None else None
        #: Meters given as objects (tests, replays, a meter of your own): used as they are.
        self._given_meters = [m for m in chosen or () if isinstance(m, BaseMeter)]
        names = [m for m in chosen or () if not isinstance(m, BaseMeter)]
        #: Meters asked for by id: selected at start (None: the ``meters`` setting, else all).
        self._meter_names = tuple(names) if names else None
        #: Only the meter objects given (``meters=[]``: none, this run measures no energy).
        self._only_given = chosen is not None and not names
        self._store_arg = store
        self._interval_s = interval_s
        self._flush_s = flush_s
        self._pue_arg = pue
        self._emit_warnings = emit_warnings
        self._on_warning = on_warning
        #: Id of the run this one re-runs (``wattwise reproduce``), kept in the record.
        self.reproduces = reproduces
        self._result: RunResult | None = None
        self._token: contextvars.Token[Run | None] | None = None
        self._lock = threading.RLock()
        self._pending_metrics: list[tuple[int | None, str, float, float]] = []
        #: Set by start(): settings, where and what the energy costs, the ledger, the meters
        #: and their sums, the writer, the record.
        self._settings: Settings | None = None
        self._location: Location | None = None
        self._intensity: Intensity | None = None
        self._pue: Pue | None = None
        self._store: BaseRunStore | None = None
        self._sampler: Sampler | None = None
        self._writer: LedgerWriter | None = None
        self._record: dict[str, Any] = {}
        self._fallbacks: list[str] = []
        self._t0_wall = 0.0
        self._ended_at: float | None = None
        self._sampler_cpu_s = 0.0
        self._cwd = Path.cwd()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._env_thread: threading.Thread | None = None
        self._last_metrics: dict[str, float] = {}
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._io_lock = threading.Lock()
        self._flush_soon = False
        self._command_identity: dict[str, Any] | None = None

    # -- lifecycle --------------------------------------------------------------

    def start(self, *, root_pid: int | None = None, is_child: bool = False) -> Run:
        """Start measuring. ``root_pid`` is the process tree to attribute energy to.

        Raises:
            RunStateError: The run was already started.
        """
        if self.state is not RunState.CREATED:
            msg = (
                f"Run {self.id[:8]!r} has already been started and cannot be re-entered. "
                "Start a new run with wattwise.track()."
            )
            raise RunStateError(msg)
        from wattwise import carbon, meters

        root = find_project_root()
        self._settings = self._load_settings(root)
        self._location = carbon.resolve_location(self._region,
                                                 config_region=self.settings.region)  # fmt: skip
        self._intensity = carbon.intensity_for(
            self.location,
            scope=self.settings.intensity_scope,  # type: ignore[arg-type]
            override_g_per_kwh=self.settings.intensity_g_per_kwh,
        )
        self._pue = carbon.pue_for(self.location, override=self.settings.pue)
        if self.location.warning:
            self.warnings.append(self.location.warning)
            if self._on_warning is not None:
                self._on_warning(self.location.warning)
            elif self._emit_warnings:
                warnings.warn(self.location.warning, LocationWarning, stacklevel=3)
        chosen: list[BaseMeter] = []
        if self._only_given:
            chosen = list(self._given_meters)
        else:
            try:
                selection = meters.select_meters(self.settings.meters)
                chosen = [*selection.meters, *self._given_meters]
                self._fallbacks = list(selection.fallbacks)
            except (MeterUnavailableError, InvalidParameterError, ConfigError):
                raise  # meters asked for by name that are not here: the user's to fix
            except Exception as err:
                if self.strict:
                    raise
                chosen, self._fallbacks = [], []
                self._warn_once("meters", f"no meter could be set up ({type(err).__name__}: "
                                f"{err}); this run measures no energy")  # fmt: skip
        excluded = set(self.run_kind.excluded_components)
        if excluded:
            kept = [m for m in chosen if not set(m.components()) & excluded]
            for meter in chosen:
                if meter not in kept:
                    meter.close()
            chosen = kept
        if isinstance(self._store_arg, BaseRunStore):
            self._store = self._store_arg
        else:  # opened lazily: a missing, locked or broken ledger costs nothing here
            self._store = get_store(self._store_arg, defer=True,
                                   busy_timeout_s=START_TIMEOUT_S)  # fmt: skip
        self._writer = writer = LedgerWriter(
            self.id, self.store, owned=not isinstance(self._store_arg, BaseRunStore),
            strict=self.strict, warn=self._warn_once,
        )  # fmt: skip

        tree = self.run_kind.make_tree(root_pid or os.getpid(), is_child)
        self._t0_wall = time.time()
        self._sampler = Sampler(chosen, tree, strict=self.strict, warn=self._warn_once)
        self._cwd = Path.cwd()
        self._record = self._initial_record()
        if self.reproduces:
            self._record["reproduces"] = self.reproduces
        self._record["liveness"] = {"tracker": identity()}
        if self._command_identity is not None:
            self._record["liveness"]["command"] = self._command_identity

        record = RunRecord(
            id=self.id, name=self.name, kind=self.kind, status=RunStatus.RUNNING,
            started_at=self._t0_wall, heartbeat_at=self._t0_wall, host=socket.gethostname(),
            pid=os.getpid(), parent_id=self.parent_id, study_id=self.study_id,
            region=self.location.zone, tags=self.tags, params=self.params,
            record=_copy(self._record), role=self.role,
        )  # fmt: skip
        writer.insert(record)
        if not isinstance(self._store_arg, BaseRunStore):
            self.store.busy_timeout_s = WRITE_TIMEOUT_S
        self.state = RunState.RUNNING
        _open_runs.add(self)
        _install_exit_hooks()
        self._env_thread = threading.Thread(
            target=self._capture_environment_safely, name="wattwise-env", daemon=True
        )
        self._env_thread.start()
        self._thread = threading.Thread(
            target=self._sample_loop, name="wattwise-sampler", daemon=True
        )
        self._thread.start()
        return self

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

    def _started(self, value: T | None) -> T:
        if value is None:
            msg = (
                f"Run {self.id[:8]!r} has not started; its settings, location, intensity, "
                "PUE and ledger exist after start() (or inside the 'with' block)."
            )
            raise RunStateError(msg)
        return value

    def attach(self, pid: int, *, is_child: bool = True) -> None:
        """Attribute energy to the tree rooted at ``pid`` from now on (``wattwise run``).

        The command's pid and start time go in the record (``liveness.command``) at the
        next tick of the sampler, so readers can tell a lost tracker from a dead command.
        """
        with self._lock:
            self._live_sampler().attach(self.run_kind.make_tree(pid, is_child))
            self._command_identity = identity(pid)
            self._record.setdefault("liveness", {})["command"] = self._command_identity
            self._flush_soon = True

    @property
    def record(self) -> dict[str, Any]:
        """A copy of the run's record as it stands (command, location, meters, ...)."""
        with self._lock:
            copied: dict[str, Any] = _copy(self._record)
        return copied

    @property
    def recorded_in(self) -> str:
        """Where this run's records went: ``ledger``, ``spool`` or ``nowhere`` (both failed)."""
        writer = self._writer
        if writer is None or (not writer.lost and writer.spooled_to is None):
            return "ledger"
        return "nowhere" if writer.lost else "spool"

    @property
    def spooled_to(self) -> Path | None:
        """The spool file this run's records went to when the ledger refused them, or None."""
        writer = self._writer
        return writer.spooled_to if writer is not None else None

    def finish(
        self, status: RunStatus | str | None = None, *, exit_code: int | None = None,
        error: str | None = None,
    ) -> RunResult:  # fmt: skip
        """Stop measuring, write the final record and return the result.

        Args:
            status: ``finished`` (default) or ``failed``.
            exit_code: The command's exit code, for command runs.
            error: A one-line description of the failure, kept in the record.
        """
        if self.state is not RunState.RUNNING:
            msg = (
                f"Run {self.id[:8]!r} is not running (state: {self.state.value}); "
                "nothing to finish."
            )
            raise RunStateError(msg)
        final = RunStatus(status) if status is not None else RunStatus.FINISHED
        self.state = RunState.ENDED
        _open_runs.discard(self)
        self._stop.set()
        for thread in (self._thread, self._env_thread):
            if thread is not None:
                thread.join()
        sampler, writer = self._live_sampler(), self._live_writer()
        try:
            with self._io_lock:
                with self._lock:
                    try:
                        self._sample()
                    except Exception as err:
                        if self.strict:
                            raise
                        self._warn_once(f"sampling:{type(err).__name__}",
                                        f"sampling failed: {err}")  # fmt: skip
                    self._refresh_bands()
                    self._record["sampler"]["cpu_s"] = self._sampler_cpu_s
                    self._record["summary"] = dict(self._last_metrics)
                    if error:
                        self._record["error"] = error
                    ended = self._ended_at = time.time()
                    payload = self._payload(status=final, ended_at=ended, exit_code=exit_code)
                writer.write(*payload, final=True)
        finally:
            sampler.close()
            writer.close()
            if self._ended_at is None:
                self._ended_at = time.time()
            self._result = self._make_result(final, exit_code)
        return self._result

    def __enter__(self) -> Run:
        self.start()
        self._token = current.set(self)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._token is not None:
            try:
                current.reset(self._token)
            except ValueError:  # exited in another context than entered (generators)
                current.set(None)
            self._token = None
        if exc is None:
            self.finish()
        else:
            self.finish(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call of ``fn`` is a new run with these settings."""
        name = self.name if self.name != "run" else getattr(fn, "__qualname__", "run")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Run(name, **self._init_kwargs):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    @property
    def result(self) -> RunResult:
        """The result once the run has ended.

        Raises:
            RunStateError: The run has not ended yet.
        """
        if self._result is None:
            msg = f"Run {self.id[:8]!r} has not ended yet; its result exists after the block."
            raise RunStateError(msg)
        return self._result

    # -- metrics ----------------------------------------------------------------

    def log(self, step: int | None = None, **metrics: float) -> None:
        """Record metric values (``run.log(step=3, val_acc=0.91, loss=0.2)``).

        Raises:
            InvalidParameterError: A value is not a finite-or-not real number.
        """
        if self.state is not RunState.RUNNING:
            msg = f"Cannot log to run {self.id[:8]!r}: it is {self.state.value}, not running."
            raise RunStateError(msg)
        points = _points(step, metrics)
        with self._lock:
            self._pending_metrics.extend(points)
            self._last_metrics.update({p[1]: p[2] for p in points})

    def set_params(self, **params: Any) -> None:
        """Add or update the run's parameters (kept in the record)."""
        with self._lock:
            self.params.update(params)

    def snapshot(self) -> dict[str, float]:
        """Take a sample now and return what the run has cost so far.

        Returns:
            ``energy_j``, ``energy_band_j``, ``co2e_g``, ``duration_s`` up to this moment.

        Raises:
            RunStateError: The run is not running.
        """
        if self.state is not RunState.RUNNING:
            msg = f"Run {self.id[:8]!r} is not running (state: {self.state.value})."
            raise RunStateError(msg)
        with self._lock:
            self._sample()
            _, energy, band, _, co2e, _ = self._totals()
        return {
            "energy_j": energy,
            "energy_band_j": band,
            "co2e_g": co2e,
            "duration_s": time.time() - self._t0_wall,
        }

    def use_data(self, path_or_array: Any, *, name: str | None = None) -> dict[str, Any]:
        """Declare data the run reads: its content hash and size go in ``record["data"]``.

        Args:
            path_or_array: A file or folder path, a NumPy array, a torch tensor or bytes.
            name: A label (default: the file or folder name, or ``array``).

        Returns:
            The fingerprint (see :func:`wattwise.repro.fingerprint`).

        Raises:
            InvalidParameterError: The path does not exist or the type is not supported.
            RunStateError: The run is not running.
        """
        from wattwise.environment import fingerprint

        if self.state is not RunState.RUNNING:
            msg = f"Cannot record data in run {self.id[:8]!r}: it is {self.state.value}."
            raise RunStateError(msg)

        found = fingerprint(path_or_array, name=name)
        self.set_record("data", found, append=True)
        return found

    def set_record(self, key: str, value: Any, *, append: bool = False) -> None:
        """Set (or append to a list at) a top-level record field (seeds, data).

        Prefer the dedicated methods (``use_data``, ``annotate``, ``record_flops``); this
        is for workflows recording a fact of their own (``wattwise.seed_everything``).
        """
        with self._lock:
            if append:
                self._record.setdefault(key, []).append(value)
            else:
                self._record[key] = value

    @property
    def meter_infos(self) -> dict[str, MeterInfo]:
        """How each meter of this run makes its figures (after start)."""
        return dict(self._sampler.infos) if self._sampler is not None else {}

    def wait_for_environment(self) -> None:
        """Block until the background capture of code, packages and hardware has ended."""
        thread = self._env_thread
        if thread is not None:
            thread.join()

    def annotate(self, key: str, value: Any) -> None:
        """Attach a JSON-serialisable fact to the run record under ``extra[key]``."""
        with self._lock:
            self._record.setdefault("extra", {})[key] = value

    def count_flops(
        self, model: Any, example_batch: Any, *, steps: int = 1, include_backward: bool = False
    ) -> int:
        """Count ``model``'s FLOPs on ``example_batch`` and record them with the run.

        Counted by ``torch.utils.flop_counter`` (see
        :func:`wattwise.flops.count_flops`); reports show them beside energy
        (FLOPs per joule, samples per joule).

        Args:
            model: A ``torch.nn.Module``.
            example_batch: One batch (a mapping is passed as keyword arguments).
            steps: How many such calls the run makes; the total is per step × steps.
            include_backward: Count a training step (forward and backward passes).

        Returns:
            FLOPs of one call.
        """
        from wattwise.flops import count_flops

        count = count_flops(model, example_batch, include_backward=include_backward)
        self.record_flops(
            count.flops, steps=steps, samples_per_step=count.batch_size,
            source="run.count_flops", passes=count.passes,
            details={"n_parameters": count.n_parameters, "by_operator": count.by_operator},
        )  # fmt: skip
        return count.flops

    def record_flops(
        self, flops_per_step: float, *, steps: int = 1, samples_per_step: float | None = None,
        flops_total: float | None = None, samples_total: float | None = None,
        source: str = "user", passes: str = "forward", method: str = "torch.utils.flop_counter",
        details: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Record the FLOPs (and samples) the run processed, in its record's ``flops``.

        Totals default to per step × ``steps``. The callbacks call this as training goes,
        so a crashed run keeps what was counted up to its last flush.

        Args:
            flops_per_step: FLOPs of one step (or call).
            steps: Steps the run made.
            samples_per_step: Examples per step, if known.
            flops_total: Total FLOPs, when not per step × steps (e.g. a smaller last batch).
            samples_total: Total examples, likewise.
            source: Who counted (``run.count_flops``, ``lightning``, ``transformers``).
            passes: ``forward`` or ``forward+backward``.
            method: How (``torch.utils.flop_counter``, ``6·N·D estimate``, ``user``).
            details: More JSON-serialisable facts (operators, parameters).

        Raises:
            InvalidParameterError: A count is negative or not finite, or steps < 0.
        """
        from wattwise.flops import flops_record

        found = flops_record(
            flops_per_step, steps=steps, samples_per_step=samples_per_step,
            flops_total=flops_total, samples_total=samples_total, source=source,
            passes=passes, method=method, details=details,
        )  # fmt: skip
        with self._lock:
            self._record["flops"] = found

    @property
    def tree(self) -> ProcessTree:
        """The process tree energy is attributed to (made by the run kind at start).

        Raises:
            RunStateError: The run has not started.
        """
        if self._sampler is None:
            msg = f"Run {self.id[:8]!r} has not started; its process tree exists after start()."
            raise RunStateError(msg)
        return self._sampler.tree

    def _live_sampler(self) -> Sampler:
        """The sampler (the run has started: internal callers only)."""
        assert self._sampler is not None, "the run has not started"
        return self._sampler

    def _live_writer(self) -> LedgerWriter:
        """The ledger writer (the run has started: internal callers only)."""
        assert self._writer is not None, "the run has not started"
        return self._writer

    # -- internals --------------------------------------------------------------

    def _initial_record(self) -> dict[str, Any]:
        from wattwise.environment import redact_argv  # secrets never reach the record

        infos = meter_record(self._live_sampler().infos)
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "wattwise", "version": __version__},
            "command": {
                "argv": redact_argv(self.command if self.command is not None
                                    else list(sys.argv)),
                "cwd": str(Path.cwd()),
                "is_command": self.command is not None,
            },
            "location": self.location.to_dict(),
            "intensity": self.intensity.to_dict(),
            "pue": {"value": self.pue.value, "source": self.pue.source,
                    "applies_to": self.pue.applies_to},
            "meters": infos,
            "fallbacks": self._fallbacks,
            "attribution": ATTRIBUTION,
            "idle_included": True,
            "sampler": {
                "interval_s": self.settings.interval_s,
                "flush_s": self.settings.flush_s,
                "samples": 0,
                "cpu_s": 0.0,
            },
            "warnings": list(self.warnings),
            "market_based_instruments_applied": False,
            "role": self.role,
            **({"attribution_note": note} if (note := self.run_kind.attribution_note) else {}),
        }

    def _refresh_bands(self) -> None:
        """Take each meter's band for the load the run actually had (model meters' bands
        depend on the load range: idle and low load are wider), before the final write."""
        for name, info in self._live_sampler().refresh().items():
            entry = self._record.get("meters", {}).get(name)
            if isinstance(entry, dict):
                entry.update(band_fraction=info.band_fraction, band_source=info.band_source,
                             band_meaning=info.band_meaning,
                             assumptions=list(info.assumptions), details=info.details)

    def _capture_environment_safely(self) -> None:
        try:
            self._capture_environment()
        except Exception as err:  # the user's work must go on whatever happens here
            logger.warning("wattwise: could not capture the environment: %s", err)

    def _load_settings(self, root: Path) -> Settings:
        """The settings; a broken config file or variable falls back to the defaults."""
        explicit: dict[str, Any] = {"interval_s": self._interval_s, "flush_s": self._flush_s,
                                    "pue": self._pue_arg, "meters": self._meter_names}  # fmt: skip
        try:
            return load_settings(root, **explicit)
        except ConfigError as err:
            if self.strict:
                raise
            nowhere = root / ".wattwise" / "no-such-folder"
            try:
                settings = load_settings(nowhere, **explicit)
                what = "the environment and arguments only"
            except ConfigError:
                settings = load_settings(nowhere, environ={}, **explicit)
                what = "the defaults and arguments only"
            self._warn_once("config", f"{err} This run uses {what}.")
            return settings

    def _warn_once(self, kind: str, text: str) -> None:
        """Report a fault once per kind per run: on_warning, else a StoreWarning."""
        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
            self.warnings.append(text)
            self._record.setdefault("warnings", []).append(text)
        if self._on_warning is not None:
            self._on_warning(text)
        elif self._emit_warnings:
            warnings.warn(f"wattwise: {text}", StoreWarning, stacklevel=2)

    def _sample_loop(self) -> None:
        start_cpu = time.thread_time()
        interval = self.settings.interval_s
        flush_every = self.settings.flush_s
        last_flush = time.monotonic()
        tidied = False
        while not self._stop.wait(interval):
            if not tidied:  # after the first interval: a short run pays nothing for it
                tidied = True
                self._live_writer().housekeeping()
            try:
                with self._io_lock:
                    payload = None
                    with self._lock:
                        self._sample()
                        due = time.monotonic() - last_flush >= flush_every
                        if due or self._flush_soon:
                            self._flush_soon = False
                            self._sampler_cpu_s = time.thread_time() - start_cpu
                            self._record["sampler"]["cpu_s"] = self._sampler_cpu_s
                            payload = self._payload()
                    if payload is not None:
                        last_flush = time.monotonic()
                        self._write(payload)
            except Exception as err:
                self._warn_once(f"sampling:{type(err).__name__}", f"sampling failed (retried "
                                f"each interval, said once): {err}")  # fmt: skip
        self._sampler_cpu_s = time.thread_time() - start_cpu

    def _capture_environment(self) -> None:
        from wattwise import meters
        from wattwise.environment import capture, last_seeds

        found = capture(
            self._cwd, self._record["command"]["argv"],
            diff=self.settings.diff if self._diff is None else self._diff,
            diff_max_bytes=self.settings.diff_max_bytes, command=self.command is not None,
        )  # fmt: skip
        unstored = []
        for name, content in found.artifacts.items():  # before the record points at them
            try:
                self.store.put_artifact(self.id, name, content)
            except (WattwiseError, OSError) as err:
                if self.strict:
                    raise
                unstored.append(f"artifact {name!r} not stored: {err}")
        hardware = meters.describe_hardware()
        seeds = last_seeds()
        with self._io_lock:
            with self._lock:
                self._record.update(found.record)
                self._record["hardware"] = hardware
                if unstored:
                    self._record.setdefault("notes", []).extend(unstored)
                if seeds is not None and "seeds" not in self._record:
                    self._record["seeds"] = seeds
                    self._record["determinism_flags"] = seeds["determinism_flags"]
                payload = self._payload()
            self._write(payload)

    def _sample(self) -> None:
        """Take a sample (call with ``_lock`` held) and put its facts in the record."""
        sampler = self._live_sampler()
        sampler.sample()
        self._record["sampler"]["samples"] = sampler.n_samples
        self._record["cpu_time_s"] = sampler.cpu_time_s
        if sampler.gpu_modes:
            self._record.setdefault("gpu_attribution", {}).update(sampler.gpu_modes)
        if sampler.meter_errors:
            self._record["meter_errors"] = list(sampler.meter_errors)

    def _components(self) -> list[ComponentEnergy]:
        return self._live_sampler().components()

    def _totals(self) -> tuple[list[ComponentEnergy], float, float, float, float, float]:
        from wattwise.carbon import operational_co2e_g

        comps = self._components()
        energy = sum(c.energy_j for c in comps)
        band = sum(c.band_j or 0.0 for c in comps)
        machine = sum(c.machine_energy_j for c in comps)
        co2e = operational_co2e_g(energy, self.intensity, self.pue)
        co2e_band = co2e * band / energy if energy > 0 else 0.0
        return comps, energy, band, machine, co2e, co2e_band

    def _payload(
        self, *, status: RunStatus | None = None, ended_at: float | None = None,
        exit_code: int | None = None,
    ) -> tuple[dict[str, Any], list[ComponentEnergy], list[Any], list[Any]]:  # fmt: skip
        """What the next write holds (call with ``_lock`` held): a snapshot, safe to send."""
        comps, energy, band, machine, co2e, co2e_band = self._totals()
        now = time.time()
        fields: dict[str, Any] = {
            "heartbeat_at": now,
            "duration_s": (ended_at or now) - self._t0_wall,
            "energy_j": energy,
            "energy_band_j": band,
            "machine_energy_j": machine,
            "co2e_g": co2e,
            "co2e_band_g": co2e_band,
            "record": _copy(self._record),
            "params": _copy(self.params),
        }
        if status is not None:
            fields.update(status=status.value, ended_at=ended_at, exit_code=exit_code)
        samples = self._live_sampler().take_samples()
        metrics, self._pending_metrics = self._pending_metrics, []
        return fields, comps, samples, metrics

    def _write(self, payload: tuple[dict[str, Any], list[ComponentEnergy], list[Any],
                                    list[Any]]) -> None:  # fmt: skip
        """Write a payload (with ``_io_lock`` held, ``_lock`` not): ledger, else spool."""
        fields, comps, samples, metrics = payload
        try:
            self._live_writer().write(fields, comps, samples, metrics)
        except BaseException:
            with self._lock:  # strict mode: keep them for the next flush
                self._live_sampler().pending[:0] = samples
                self._pending_metrics[:0] = metrics
            raise

    def _make_result(self, status: RunStatus, exit_code: int | None) -> RunResult:
        comps, energy, band, machine, co2e, co2e_band = self._totals()
        return RunResult(
            id=self.id, name=self.name, status=status.value, exit_code=exit_code,
            duration_s=(self._ended_at or time.time()) - self._t0_wall,
            energy_j=energy, energy_band_j=band, machine_energy_j=machine, co2e_g=co2e,
            co2e_band_g=co2e_band, region=self.location.zone,
            intensity_g_per_kwh=self.intensity.g_per_kwh, pue=self.pue.value,
            components=tuple(comps),
        )  # fmt: skip


_open_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_exit_state: dict[str, Any] = {"installed": False, "uncaught": None}


def _copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (what the ledger will hold)."""
    return json.loads(json.dumps(value, default=str))


def _install_exit_hooks() -> None:
    """Once per process: finish runs left open at exit, keeping their energy."""
    if _exit_state["installed"]:
        return
    _exit_state["installed"] = True
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        _exit_state["uncaught"] = f"{kind.__name__}: {exc}"[:500]
        previous(kind, exc, tb)

    sys.excepthook = excepthook
    atexit.register(_finish_open_runs)


def _finish_open_runs() -> None:
    """At exit: a run still open (a Trainer that raised, a missing finish()) ends failed."""
    uncaught = _exit_state["uncaught"]
    for run in list(_open_runs):
        if run.state is not RunState.RUNNING:
            continue
        why = f"the process exited with the run still open ({uncaught or 'no finish()'})"
        try:
            run.finish(RunStatus.FAILED, error=why[:500])
        except Exception as err:  # at exit there is nobody left to tell but the log
            logger.warning("wattwise: could not finish run %s at exit: %s", run.id[:8], err)


def track(name: str | None = None, **kwargs: Any) -> Run:
    """Track a block or a function: its energy, carbon, environment and metrics.

    Use as ``with wattwise.track("train", config=cfg) as run: ...`` (then
    ``run.result``), or as a decorator ``@wattwise.track("train")``.

    Args:
        name: Run name shown in listings.
        **kwargs: ``config`` (params dict), ``tags``, ``region``, ``meters`` (meter ids or
            :class:`~wattwise.meters.BaseMeter` objects, e.g. ``wattwise.testing.ReplayMeter``),
            ``store`` (path or store), ``interval_s``, ``flush_s``, ``pue``.
    """
    return Run(name, **kwargs)
