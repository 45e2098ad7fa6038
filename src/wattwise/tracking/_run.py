"""A run: its record and its lifecycle (start, finish, ``with``, the decorator).

``wattwise.track()`` and ``wattwise run`` are two doors into this class. The sampler thread
reads every meter each ``interval_s``; energy is attributed to the run's process tree
(CPU-time share for CPU, resident-memory share for DRAM, whole device for GPUs) and the
record is written to the ledger at least every ``flush_s``, so a killed run keeps what
was measured up to its last flush.

The parts of ``Run`` live beside this module (see :mod:`wattwise.tracking._state`):
measuring in ``_measuring``, what the user records in ``_recording``, settings and the
environment capture in ``_capture``, the runs left open at exit in ``_exit``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from wattwise.exceptions import (
    InvalidParameterError,
    LocationWarning,
    RunStateError,
    user_stacklevel,
)
from wattwise.meters import BaseMeter
from wattwise.store import (
    BaseRunStore,
    RunRecord,
    RunStatus,
    find_project_root,
    get_store,
    identity,
)
from wattwise.tracking import _exit
from wattwise.tracking._active import active_run, current, drop_started, push_started
from wattwise.tracking._capture import CaptureMixin
from wattwise.tracking._handoff import FINAL_WAIT_S, WriterThread, final_wait_s
from wattwise.tracking._job import host_id
from wattwise.tracking._job_session import start_job
from wattwise.tracking._kind import RunKind, role_for, run_kind
from wattwise.tracking._measuring import choose_meters
from wattwise.tracking._naming import command_name
from wattwise.tracking._recording import RecordingMixin
from wattwise.tracking._result import RunResult, run_html
from wattwise.tracking._sampler import Sampler
from wattwise.tracking._state import RunState, copy_json
from wattwise.tracking._writer import (
    START_TIMEOUT_S,
    WRITE_TIMEOUT_S,
    LedgerWriter,
    strict_from_env,
)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Run", "RunState", "track"]


class Run(RecordingMixin, CaptureMixin):
    """One tracked piece of work. Use :func:`wattwise.track` to make one.

    A run can be used once: as a context manager (``with track(...) as run``), by
    ``start()``/``stop()`` (a notebook: the run is current until stopped), or as a
    decorator, which starts a fresh run per call.
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
        #: The script or module a command runs (``train.py``, ``pkg.train``), else ``run``.
        self.name = name or (command_name(command) if command else "run")
        #: What kind of run this is: its role, attribution and process tree (see RunKind).
        self.run_kind = run_kind(kind)
        self.kind = self.run_kind.name
        #: Where the finished run counts in the footprint (``final``, ``tuning``, ...).
        self.role = role_for(self.run_kind, study_id, reproduces)
        self.params = dict(config or {})
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
        self._result = None
        self._token: contextvars.Token[Run | None] | None = None
        #: One finish at a time (the user's, an exit hook's): the second returns the result.
        self._finish_lock = threading.RLock()
        self._lock = threading.RLock()
        self._pending_metrics = []
        #: Set by start(): settings, where and what the energy costs, the ledger, the meters
        #: and their sums, the writer, the record.
        self._settings = self._location = self._intensity = self._pue = None
        self._store = self._sampler = self._writer = None
        self._record = {}
        self._fallbacks = []
        self._t0_wall = 0.0
        self._ended_at = None
        self._sampler_cpu_s = 0.0
        self._cwd = Path.cwd()
        self._stop = threading.Event()
        self._thread = self._env_thread = None
        self._capture_claim = None
        self._last_metrics = {}
        self.warnings = []
        self._warned = set()
        self._handoff = None
        self._final_wait_s = FINAL_WAIT_S
        self._flush_soon = False
        self._command_identity = None
        self._job = None  # this run's part in its job (set by start(), docs/explanation/jobs.md)

    # -- lifecycle --------------------------------------------------------------

    def start(self, *, root_pid: int | None = None, is_child: bool = False) -> Run:
        """Start measuring and make this the current run until :meth:`stop`.

        Current means that ``wattwise.log()``, ``use_data()``, the callbacks and a run
        made inside it (its child) find this run: in this context first (as in a ``with``
        block), and in every other thread and later notebook cell where no ``with`` block
        is open. Tuning's study and trial runs and command runs (``wattwise run``, whose
        work is another process) are not made current: their workflows link their runs.

        Args:
            root_pid: The process tree to attribute energy to (default: this process).
            is_child: ``root_pid`` is a child this process started (``wattwise run``).

        Raises:
            RunStateError: The run was already started.
        """
        self._begin(root_pid=root_pid, is_child=is_child)
        if self.kind != "command" and self.role not in ("study", "trial", "tuning"):
            self._token = current.set(self)
            push_started(self)
        return self

    def _begin(self, *, root_pid: int | None = None, is_child: bool = False) -> None:
        """Start measuring (``start()`` and ``with`` then say where the run is current)."""
        if self.state is not RunState.CREATED:
            msg = (
                f"Run {self.id[:8]!r} has already been started and cannot be re-entered. "
                "Start a new run with wattwise.track()."
            )
            raise RunStateError(msg)
        from wattwise import carbon

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
                warnings.warn(self.location.warning, LocationWarning, stacklevel=user_stacklevel())
        chosen, self._fallbacks = choose_meters(
            self.settings.meters, self._given_meters, only_given=self._only_given,
            run_kind=self.run_kind, strict=self.strict, warn=self._warn_once,
        )  # fmt: skip
        if isinstance(self._store_arg, BaseRunStore):
            self._store = self._store_arg
        else:  # opened lazily: a missing, locked or broken ledger costs nothing here
            self._store = get_store(self._store_arg, defer=True,
                                   busy_timeout_s=START_TIMEOUT_S)  # fmt: skip
        owned = not isinstance(self._store_arg, BaseRunStore)
        self._writer = writer = LedgerWriter(self.id, self.store, owned=owned,
                                             strict=self.strict, warn=self._warn_once)  # fmt: skip
        self._final_wait_s = final_wait_s(self._warn_once)

        tree = self.run_kind.make_tree(root_pid or os.getpid(), is_child)
        self._t0_wall = time.time()
        self._sampler = Sampler(chosen, tree, strict=self.strict, warn=self._warn_once,
                                replace=self._meter_replacement(),
                                on_fallback=self._meter_fallback)  # fmt: skip
        tuning = self.study_id or self.role in ("study", "trial")  # a study is their group
        self._job, job = (None, None) if tuning else start_job(
            self.id, self._sampler, command=self.command, warn=self._warn_once)  # fmt: skip
        self._cwd = Path.cwd()
        self._record = self._initial_record()
        if job is not None:
            self._record["job"] = job
        if self.reproduces:
            self._record["reproduces"] = self.reproduces
        self._record["liveness"] = {"tracker": identity()}
        if self._command_identity is not None:
            self._record["liveness"]["command"] = self._command_identity
        captured = self._take_ready_capture()  # a trial of a study whose capture is ready

        def after_insert() -> None:  # on the writer thread: later writes may wait longer
            if owned:
                writer.store.busy_timeout_s = WRITE_TIMEOUT_S

        self._handoff = WriterThread(writer, warn=self._warn_once, after_insert=after_insert)
        # At most START_TIMEOUT_S: a ledger that hangs (a dead mount) never holds the job up.
        self._handoff.insert(self._run_record(), wait_s=START_TIMEOUT_S)
        self.state = RunState.RUNNING
        _exit.register(self)
        if not captured:
            self._start_capture()
        self._thread = threading.Thread(
            target=self._sample_loop, name="wattwise-sampler", daemon=True
        )
        self._thread.start()

    def _run_record(self) -> RunRecord:
        """The run as first inserted: status running, the initial record."""
        return RunRecord(
            id=self.id, name=self.name, kind=self.kind, status=RunStatus.RUNNING,
            started_at=self._t0_wall, heartbeat_at=self._t0_wall, host=host_id(),
            pid=os.getpid(), parent_id=self.parent_id, study_id=self.study_id,
            region=self.location.zone, tags=self.tags, params=self.params,
            record=copy_json(self._record), role=self.role,
        )  # fmt: skip

    def finish(
        self, status: RunStatus | str | None = None, *, exit_code: int | None = None,
        error: str | None = None,
    ) -> RunResult:  # fmt: skip
        """Stop measuring, write the final record and return the result.

        Idempotent: once the run has ended, another call (``stop()`` in a later cell, the
        exit hook) changes nothing and returns the same result. The run is no longer
        current anywhere.

        Args:
            status: ``finished`` (default) or ``failed``.
            exit_code: The command's exit code, for command runs.
            error: A one-line description of the failure, kept in the record.

        Raises:
            RunStateError: The run was never started.
        """
        with self._finish_lock:
            if self.state is RunState.ENDED and self._result is not None:
                return self._result
            if self.state is not RunState.RUNNING:
                msg = (
                    f"Run {self.id[:8]!r} is not running (state: {self.state.value}); "
                    "nothing to finish. Start it first: run.start() or 'with run:'."
                    if self.state is RunState.CREATED else
                    f"Run {self.id[:8]!r} is being finished already; its result is "
                    "run.result once that is done."
                )  # fmt: skip
                raise RunStateError(msg)
            self._release_current()
            return self._finish(status, exit_code=exit_code, error=error)

    def stop(
        self, status: RunStatus | str | None = None, *, exit_code: int | None = None,
        error: str | None = None,
    ) -> RunResult:  # fmt: skip
        """Same as :meth:`finish` (the pair of :meth:`start`); idempotent."""
        return self.finish(status, exit_code=exit_code, error=error)

    def _release_current(self) -> None:
        """This run is no longer current: process-wide, and in the context ``start()`` ran in
        (elsewhere a context still naming it skips it: it is not running)."""
        drop_started(self)
        token, self._token = self._token, None
        if token is not None:
            with contextlib.suppress(ValueError, RuntimeError):  # another context or cell
                current.reset(token)

    def _finish(
        self, status: RunStatus | str | None, *, exit_code: int | None, error: str | None
    ) -> RunResult:
        final = RunStatus(status) if status is not None else RunStatus.FINISHED
        self.state = RunState.ENDED
        _exit.unregister(self)
        self._stop.set()
        for thread in (self._thread, self._env_thread):
            if thread is not None:
                thread.join()
        sampler, handoff = self._live_sampler(), self._live_handoff()
        handed = False
        try:
            with self._lock:
                try:
                    self._sample()
                except Exception as err:
                    if self.strict:
                        raise
                    self._warn_once(f"sampling:{type(err).__name__}", f"sampling failed: {err}")
                self._refresh_bands()
                self._record["sampler"]["cpu_s"] = self._sampler_cpu_s
                self._record["summary"] = dict(self._last_metrics)
                if error:
                    self._record["error"] = error
                ended = self._ended_at = time.time()
                payload = self._payload(status=final, ended_at=ended, exit_code=exit_code)
            handed = True
            # Bounded: past it the final state goes to a local spool and the run returns.
            handoff.finish(payload, wait_s=self._final_wait_s)
        finally:
            sampler.close()
            if not handed:  # strict mode raised before the final write: close all the same
                handoff.call(lambda writer: writer.close(), wait_s=None)
            if self._job is not None:
                self._job.close()
            if self._ended_at is None:
                self._ended_at = time.time()
            self._result = self._make_result(final, exit_code)
        return self._result

    def __enter__(self) -> Run:
        self._begin()
        self._token = current.set(self)  # current in this context only, until the block ends
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

    def __repr__(self) -> str:
        return f"<wattwise.Run {self.id[:8]} {self.name!r} {self.state.value}>"

    def _repr_html_(self) -> str:
        """Jupyter's rich display: what the run has cost so far, or its result."""
        if self._result is not None:
            return self._result._repr_html_()
        if self.state is RunState.RUNNING:
            try:
                so_far = self.snapshot()
            except Exception:  # a display never raises: show the run without figures
                so_far = None
            return run_html(self.id, self.name, "running", so_far, self.location.zone)
        return run_html(self.id, self.name, self.state.value, None, None)

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
