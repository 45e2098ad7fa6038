"""Where trials run: worker processes, or Ray actors (the inline executor is the driver).

Both pools follow one protocol. The driver owns the Optuna study (in memory); a worker
runs :func:`~wattwise.tuning._trial.execute_trial`, whose trial asks the driver for each
``suggest_*`` and each pruning decision over a channel (a pipe to a worker process, a
mailbox actor for Ray), and sends its outcome back when the trial ends. A worker that
dies mid-trial shows up as a :class:`Died` event; the pool starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from wattwise.exceptions import InvalidParameterError, SearchError
from wattwise.tracking import (
    HandedCapture,
    adopt_observers,
    adopt_study_capture,
    current_run,
    hand_off_observers,
    hand_off_study_capture,
)
from wattwise.tuning._records import RayPlacement
from wattwise.tuning._tree import StudyTree
from wattwise.tuning._trial import execute_trial, portable_error

# -- the objective, as something a worker can load ------------------------------------------


@dataclasses.dataclass(frozen=True)
class ObjectiveRef:
    """An objective a worker can load: a picklable callable, or a function in a file.

    Attributes:
        fn: The callable (sent by reference: define it at module level).
        path: A Python file that defines the objective (``wattwise tune FILE.py``).
        name: The function's name in that file.
    """

    fn: Callable[..., Any] | None = None
    path: str | None = None
    name: str = "objective"

    def load(self) -> Callable[..., Any]:
        """The callable."""
        if self.fn is not None:
            return self.fn
        assert self.path is not None
        return load_objective(self.path, self.name)

    @property
    def label(self) -> str:
        """A short name for the objective (the default study name)."""
        if self.fn is not None:
            return str(getattr(self.fn, "__name__", "objective"))
        return self.name


def load_module(path: str | os.PathLike[str]) -> Any:
    """Import a Python file as a module (its folder goes first on ``sys.path``).

    Raises:
        SearchError: The file does not exist or fails to import.
    """
    file = Path(path).resolve()
    if not file.is_file():
        msg = f"No objective file {str(path)!r}. Give the path of a Python file: FILE.py[:NAME]."
        raise SearchError(msg)
    module_name = f"_wattwise_tune_{file.stem}"
    if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) == str(
        file
    ):
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        msg = f"Cannot import {str(path)!r} as Python. Give a .py file: FILE.py[:NAME]."
        raise SearchError(msg)
    module = importlib.util.module_from_spec(spec)
    if str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[module_name]
        msg = f"Importing {str(path)!r} failed: {type(err).__name__}: {err}"
        raise SearchError(msg) from err
    return module


def load_objective(path: str | os.PathLike[str], name: str = "objective") -> Callable[..., Any]:
    """The function ``name`` defined in the Python file ``path``.

    Raises:
        SearchError: The file cannot be imported, or has no callable of that name.
    """
    module = load_module(path)
    fn = getattr(module, name, None)
    if not callable(fn):
        found = sorted(
            k for k, v in vars(module).items()
            if callable(v) and not k.startswith("_") and getattr(v, "__module__", None)
            == module.__name__
        )  # fmt: skip
        hint = f" Functions defined there: {', '.join(found)}." if found else ""
        msg = (
            f"No function {name!r} in {str(path)!r}.{hint} Name the objective with "
            f"{path}:NAME."
        )
        raise SearchError(msg)
    return fn  # type: ignore[no-any-return]


# -- events the pools report to the driver -------------------------------------------------


@dataclasses.dataclass
class Request:
    """A trial asks the driver something; answer with ``pool.answer(request, reply)``."""

    worker: Any
    message: dict[str, Any]
    token: Any = None


@dataclasses.dataclass
class Done:
    """A trial ended (complete, pruned or failed) and its run is finished."""

    worker: Any
    outcome: dict[str, Any]


@dataclasses.dataclass
class Died:
    """The worker running trial ``number`` died (its run is left for the reaper)."""

    worker: Any
    number: int | None
    error: str


Event = Request | Done | Died


class WorkerPool(Protocol):
    """What the study loop needs from a pool of workers."""

    n_workers: int

    def start(self, tree: StudyTree) -> None:
        """Start the workers; register their processes with the driver's tree."""

    def idle(self) -> int:
        """Workers free to take a trial."""

    def busy(self) -> int:
        """Workers running a trial."""

    def submit(self, spec: dict[str, Any]) -> None:
        """Give a trial to a free worker."""

    def poll(self, timeout: float) -> list[Event]:
        """Events since the last poll, waiting up to ``timeout`` seconds for one."""

    def answer(self, request: Request, reply: Any) -> None:
        """Reply to a request."""

    def close(self, *, kill: bool = False) -> None:
        """Stop the workers (at once when ``kill``)."""

    def interrupt(self, timeout_s: float) -> list[Event]:
        """Interrupt the running trials; their outcomes, waited for up to ``timeout_s`` s."""


# -- worker processes ------------------------------------------------------------------------


class _PipeChannel:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def call(self, message: dict[str, Any]) -> Any:
        self._conn.send(("call", message))
        return self._conn.recv()


def _process_worker(
    conn: Connection, ref: ObjectiveRef, run_options: dict[str, Any],
    env: Mapping[str, str] | None = None,
) -> None:  # fmt: skip
    """Body of a worker process: run the trials the driver sends, one at a time.

    ``env`` (the ledger's secret, :meth:`BaseRunStore.child_environment`) arrives through
    the spawn pipe and goes into this process's environment only.
    """
    os.environ.update(env or {})
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    signal.signal(signal.SIGTERM, _interrupt_trial)  # the driver stops the trial with it
    with contextlib.suppress(OSError):  # a group of its own: the driver signals it whole
        os.setpgid(0, 0)
    try:
        objective = ref.load()
    except BaseException as err:
        conn.send(("fatal", f"{type(err).__name__}: {err}"))
        return
    with contextlib.suppress(KeyboardInterrupt):  # stopped between trials: just exit
        _serve(conn, objective, run_options)


def _interrupt_trial(signum: int, _frame: Any) -> None:
    """SIGTERM in a worker: the trial's objective raises KeyboardInterrupt (once; its outcome
    then goes back to the driver undisturbed)."""
    signal.signal(signum, signal.SIG_IGN)
    msg = f"stopped by {signal.Signals(signum).name}: the study was stopped"
    raise KeyboardInterrupt(msg)


def _signal_group(process: Any, signum: int) -> None:
    """Signal a live worker's process group (the worker and what it started), or the worker
    alone before it made its group. An unreaped child's pid cannot be reused."""
    pid = process.pid
    if pid is None or process.exitcode is not None:
        return
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:  # no group of its own yet
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _serve(conn: Connection, objective: Callable[..., Any], run_options: dict[str, Any]) -> None:
    channel = _PipeChannel(conn)
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            return
        if spec is None:
            return
        adopt_observers(spec.get("observers"))  # MLflow: the trial nests under the study
        handed = spec.pop("capture", None)
        if isinstance(handed, HandedCapture):  # the driver's capture: not made again here
            adopt_study_capture(handed)
        outcome = execute_trial(objective, spec, channel, run_options)
        exc = outcome.get("exception")
        if exc is not None:
            outcome["exception"] = portable_error(exc)
        conn.send(("done", outcome))


@dataclasses.dataclass
class _Proc:
    slot: int
    process: Any
    conn: Connection
    number: int | None = None
    #: The study's environment capture was sent to it (once per worker process).
    has_capture: bool = False


#: How long a worker's first trial waits for the driver's capture of the environment
#: (git, packages, hardware: the same machine and interpreter), which its trials then copy.
CAPTURE_WAIT_S = 2.0


class ProcessPool:
    """Trials in local worker processes (``multiprocessing`` spawn), each metered there.

    Args:
        ref: The objective (picklable).
        run_options: Keyword arguments for each trial's run (picklable).
        n_workers: Worker processes, at most one trial each at a time.
        env: Variables set in each worker's environment: what the ledger's URL leaves out
            (``PGPASSWORD``), never in argv or a file.
    """

    def __init__(
        self, ref: ObjectiveRef, run_options: dict[str, Any], n_workers: int,
        env: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        import multiprocessing

        self.n_workers = n_workers
        self._ref = ref
        self._run_options = run_options
        self._env = dict(env or {})
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[_Proc] = []
        self._tree: StudyTree | None = None
        self._capture_wait_s = CAPTURE_WAIT_S
        self._stopping = False
        try:
            pickle.dumps((ref, run_options))
        except Exception as err:
            msg = (
                f"The objective or run options cannot be sent to worker processes ({err}). "
                "Define the objective at module level in an importable file, or use "
                "executor='inline'."
            )
            raise SearchError(msg) from err

    def _spawn(self, slot: int) -> _Proc:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_process_worker, args=(child, self._ref, self._run_options, self._env),
            name=f"wattwise-trial-worker-{slot}", daemon=True,
        )  # fmt: skip
        process.start()
        child.close()
        if self._tree is not None and process.pid is not None:
            self._tree.add_worker(process.pid)
        return _Proc(slot, process, parent)

    def start(self, tree: StudyTree) -> None:
        """Start ``n_workers`` processes."""
        self._tree = tree
        self._procs = [self._spawn(i) for i in range(self.n_workers)]

    def idle(self) -> int:
        """Free workers."""
        return sum(1 for p in self._procs if p.number is None)

    def busy(self) -> int:
        """Workers in a trial."""
        return sum(1 for p in self._procs if p.number is not None)

    def submit(self, spec: dict[str, Any]) -> None:
        """Send a trial to the first free worker."""
        proc = next(p for p in self._procs if p.number is None)
        proc.number = int(spec["number"])
        spec = {**spec, "observers": hand_off_observers(str(spec["study_id"]))}
        if not proc.has_capture:  # its first trial: the driver's environment capture too
            proc.has_capture = True
            wait_s, self._capture_wait_s = self._capture_wait_s, 0.0  # once per pool
            try:  # waited for while the worker starts; a worker without it captures its own
                handed = hand_off_study_capture(str(spec["study_id"]), wait_s=wait_s)
            except Exception:
                handed = None
            if handed is not None:
                spec["capture"] = handed
        proc.conn.send(spec)

    def _replace(self, proc: _Proc) -> None:
        proc.conn.close()
        proc.process.join(timeout=5)
        if self._stopping:  # no new worker for a study that is stopping
            self._procs.remove(proc)
            return
        self._procs[self._procs.index(proc)] = self._spawn(proc.slot)

    def poll(self, timeout: float) -> list[Event]:
        """Messages and deaths, waiting up to ``timeout`` s."""
        from multiprocessing.connection import wait

        by_conn = {p.conn: p for p in self._procs}
        by_sentinel = {p.process.sentinel: p for p in self._procs}
        ready = wait([*by_conn, *by_sentinel], timeout)
        events: list[Event] = []
        dead: list[_Proc] = []
        for obj in ready:
            proc = by_conn.get(obj)  # type: ignore[call-overload]
            if proc is None:
                continue
            try:
                kind, payload = proc.conn.recv()
            except (EOFError, OSError):
                if proc not in dead:
                    dead.append(proc)
                continue
            if kind == "call":
                events.append(Request(proc, payload))
            elif kind == "done":
                proc.number = None
                events.append(Done(proc, payload))
            elif kind == "fatal":
                msg = f"A worker process could not load the objective: {payload}"
                raise SearchError(msg)
        for obj in ready:
            proc = by_sentinel.get(obj)
            if proc is not None and proc not in dead and not proc.process.is_alive():
                dead.append(proc)
        for proc in dead:
            proc.process.join(timeout=5)  # its pipe can close before it is reaped
            code = proc.process.exitcode
            events.append(Died(proc, proc.number, f"worker process died (exit code {code})"))
            self._replace(proc)
        return events

    def answer(self, request: Request, reply: Any) -> None:
        """Send the reply down the worker's pipe."""
        proc: _Proc = request.worker
        with contextlib.suppress(OSError, ValueError):  # it died: poll() reports it
            proc.conn.send(reply)

    def interrupt(self, timeout_s: float) -> list[Event]:
        """Stop the running trials: SIGTERM to each busy worker's process group, on which its
        objective raises KeyboardInterrupt and its run ends failed with the energy it spent.
        Returns their outcomes (and deaths), waited for up to ``timeout_s`` seconds; workers
        still running then are killed by :meth:`close`."""
        self._stopping = True
        for proc in self._procs:
            if proc.number is not None:
                _signal_group(proc.process, signal.SIGTERM)
        events: list[Event] = []
        deadline = time.monotonic() + timeout_s
        while self.busy() > 0 and time.monotonic() < deadline:
            # a request goes unanswered: the signal interrupts the worker's wait for it
            events.extend(
                e for e in self.poll(min(0.2, max(deadline - time.monotonic(), 0.0)))
                if not isinstance(e, Request)
            )  # fmt: skip
        return events

    def close(self, *, kill: bool = False) -> None:
        """Ask the workers to exit (or kill them, by process group), then reap them."""
        for proc in self._procs:
            if kill:
                _signal_group(proc.process, signal.SIGKILL)
            else:
                with contextlib.suppress(OSError, ValueError):
                    proc.conn.send(None)
        for proc in self._procs:
            proc.process.join(timeout=10)
            if proc.process.is_alive():
                _signal_group(proc.process, signal.SIGKILL)
                proc.process.join(timeout=5)
            proc.conn.close()
        self._procs = []


# -- Ray ------------------------------------------------------------------------------------


class _Mailbox:
    """A Ray async actor between trials (in Ray workers) and the driver."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[tuple[int, int, dict[str, Any]]] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._next = 0

    async def call(self, worker: int, message: dict[str, Any]) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        token, self._next = self._next, self._next + 1
        self._waiting[token] = fut
        await self._inbox.put((token, worker, message))
        return await fut

    async def drain(self, timeout: float) -> list[tuple[int, int, dict[str, Any]]]:
        items = []
        try:
            items.append(await asyncio.wait_for(self._inbox.get(), timeout))
        except asyncio.TimeoutError:
            return items
        while not self._inbox.empty():
            items.append(self._inbox.get_nowait())
        return items

    async def answer(self, token: int, reply: Any) -> None:
        fut = self._waiting.pop(token, None)
        if fut is not None and not fut.done():
            fut.set_result(reply)


class _RayChannel:
    def __init__(self, mailbox: Any, worker: int) -> None:
        self._mailbox = mailbox
        self._worker = worker

    def call(self, message: dict[str, Any]) -> Any:
        import ray

        return ray.get(self._mailbox.call.remote(self._worker, message))


class _RayWorker:
    """A Ray actor that runs trials one at a time, each metered in the actor's process."""

    def __init__(
        self, ref: ObjectiveRef, run_options: dict[str, Any], mailbox: Any, worker: int
    ) -> None:
        self._objective = ref.load()
        self._run_options = run_options
        self._channel = _RayChannel(mailbox, worker)

    def pid(self) -> int:
        return os.getpid()

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        adopt_observers(spec.get("observers"))  # MLflow: the trial nests under the study
        placement = ray_placement()

        def placed() -> None:  # the trial's run has started: say where it runs
            run = current_run()
            if run is not None:
                run.annotate(RayPlacement.KEY, placement.to_record())

        outcome = execute_trial(
            self._objective, spec, self._channel, self._run_options, on_started=placed
        )
        outcome[RayPlacement.KEY] = placement.to_record()
        exc = outcome.get("exception")
        if exc is not None:
            outcome["exception"] = portable_error(exc)
        return outcome


def ray_placement() -> RayPlacement:
    """The Ray node and job this process runs in (an empty placement outside Ray)."""
    try:
        import ray

        context = ray.get_runtime_context()
        return RayPlacement(node_id=context.get_node_id(), job_id=context.get_job_id())
    except Exception:  # not in a Ray worker, or a Ray without these: nothing to record
        return RayPlacement()


def _register_by_value(fn: Callable[..., Any] | None) -> None:
    """Let Ray ship a function whose module Ray workers cannot import (tests, scripts)."""
    if fn is None:
        return
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    path = str(getattr(module, "__file__", "") or "")
    if module is None or module.__name__ == "__main__":
        return  # cloudpickle ships __main__ by value already
    if "site-packages" in path or "dist-packages" in path or not path:
        return
    from ray import cloudpickle

    pickler: Any = cloudpickle
    pickler.register_pickle_by_value(module)


class RayPool:
    """Trials as Ray actors (one trial at a time per actor), metered where they run.

    The Run of each trial is created inside the actor and writes to the ledger at the
    path given in ``run_options["store"]``; on a multi-node cluster that path must be
    visible to every node.

    Args:
        ref: The objective.
        run_options: Keyword arguments for each trial's run.
        n_workers: Actors, or None for the cluster's CPUs / ``cpus_per_trial``.
        cpus_per_trial: CPUs Ray reserves for each actor.
        gpus_per_trial: GPUs Ray reserves for each actor.
    """

    def __init__(
        self,
        ref: ObjectiveRef,
        run_options: dict[str, Any],
        n_workers: int | None,
        *,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
    ) -> None:
        try:
            import ray as ray_module
        except ImportError as err:
            msg = (
                "Using executor='ray', but the 'ray' package is not installed. Install it "
                "with: pip install 'wattwise[ray]'."
            )
            raise InvalidParameterError(msg) from err
        self._ray: Any = ray_module
        self._owns = False
        self.n_workers = n_workers or 0  # known once Ray is up (start)
        self._requested = n_workers
        self._cpus_per_trial = cpus_per_trial
        self._ref = ref
        self._run_options = run_options
        self._options = {"num_cpus": cpus_per_trial, "num_gpus": gpus_per_trial}
        self._actors: dict[int, Any] = {}
        self._running: dict[Any, tuple[int, int]] = {}  # future -> (slot, trial number)
        self._pids: dict[int, int] = {}
        self._tree: StudyTree | None = None
        self._mailbox: Any = None

    def _spawn(self, slot: int) -> None:
        actor = self._worker_cls.options(**self._options).remote(
            self._ref, self._run_options, self._mailbox, slot
        )
        self._actors[slot] = actor
        pid = int(self._ray.get(actor.pid.remote()))
        self._pids[slot] = pid
        if self._tree is not None:
            self._tree.add_worker(pid)

    def start(self, tree: StudyTree) -> None:
        """Start Ray if needed (metered as the study's overhead), the mailbox, the actors."""
        ray = self._ray
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            self._owns = True
        if self._requested is None:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            self.n_workers = max(1, int(cpus // self._cpus_per_trial))
        _register_by_value(self._ref.fn)
        self._mailbox_cls: Any = ray.remote(num_cpus=0)(_Mailbox)
        self._worker_cls: Any = ray.remote(_RayWorker)
        self._tree = tree
        self._mailbox = self._mailbox_cls.remote()
        try:
            for slot in range(self.n_workers):
                self._spawn(slot)
        except self._ray.exceptions.RayError as err:
            first = (str(err).strip().splitlines() or [""])[-1][:300]
            msg = (
                f"Ray could not start a trial worker ({type(err).__name__}: {first}). Check "
                "that the objective can be imported or pickled on the Ray workers."
            )
            raise SearchError(msg) from err

    def idle(self) -> int:
        """Actors without a trial."""
        return self.n_workers - len(self._running)

    def busy(self) -> int:
        """Actors in a trial."""
        return len(self._running)

    def submit(self, spec: dict[str, Any]) -> None:
        """Start a trial on a free actor."""
        taken = {slot for slot, _ in self._running.values()}
        slot = next(s for s in range(self.n_workers) if s not in taken)
        handed = hand_off_observers(str(spec["study_id"]))
        future = self._actors[slot].run.remote({**spec, "observers": handed})
        self._running[future] = (slot, int(spec["number"]))

    def poll(self, timeout: float) -> list[Event]:
        """Requests from the mailbox, then finished or failed trials."""
        ray: Any = self._ray
        events: list[Event] = []
        for token, worker, message in ray.get(self._mailbox.drain.remote(timeout)):
            events.append(Request(worker, message, token))
        if self._running:
            ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
            for future in ready:
                slot, number = self._running.pop(future)
                try:
                    events.append(Done(slot, ray.get(future)))
                except ray.exceptions.RayError as err:
                    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    text = f"Ray worker died ({type(err).__name__}: {first})"[:300]
                    events.append(Died(slot, number, text))
                    ray.kill(self._actors[slot], no_restart=True)
                    self._spawn(slot)
        return events

    def answer(self, request: Request, reply: Any) -> None:
        """Reply through the mailbox."""
        self._mailbox.answer.remote(request.token, reply)

    def interrupt(self, timeout_s: float) -> list[Event]:
        """Nothing to wait for: :meth:`close` kills the actors, and the driver marks their
        running trials' runs crashed."""
        return []

    def close(self, *, kill: bool = False) -> None:
        """Kill the actors and the mailbox; shut Ray down if this pool started it."""
        ray: Any = self._ray
        for actor in self._actors.values():
            ray.kill(actor, no_restart=True)
        if self._mailbox is not None:
            ray.kill(self._mailbox, no_restart=True)
            self._mailbox = None
        self._actors = {}
        if self._owns:
            ray.shutdown()


def make_pool(
    executor: str,
    ref: ObjectiveRef,
    run_options: Mapping[str, Any],
    n_workers: int | None,
    *,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    env: Mapping[str, str] | None = None,
) -> WorkerPool:
    """The pool for ``executor`` (``processes`` or ``ray``).

    ``env`` goes into local worker processes' environments (the ledger's password, see
    :meth:`BaseRunStore.child_environment`). Ray workers do not get it: Ray keeps a
    runtime environment in its own records, so they authenticate through ``~/.pgpass``
    or ``PGPASSWORD`` on their nodes.
    """
    if executor == "processes":
        return ProcessPool(ref, dict(run_options), n_workers or (os.cpu_count() or 1), env)
    return RayPool(
        ref, dict(run_options), n_workers, cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
    )  # fmt: skip
