"""Live MLflow logging: a wattwise run's energy and carbon go into the MLflow run in use.

No call is needed. When a wattwise run starts (``wattwise.track``, a callback's run, a
study or trial of ``wattwise tune``) it is followed into MLflow if:

* this process has imported ``mlflow`` already and an MLflow run is active
  (``mlflow.start_run()``, the Trainer's ``report_to="mlflow"``, Lightning's
  ``MLFlowLogger``...): wattwise logs into *that* run; mlflow is never imported for
  users who do not use it;
* its parent wattwise run is followed (a study's trials, a run inside a run): it becomes a
  nested MLflow run (tag ``mlflow.parentRunId``, as ``mlflow.start_run(nested=True)``),
  also when the trial runs in a worker process (``executor="processes"`` or ``"ray"``:
  the driver hands the parent's MLflow run id and tracking URI to the worker with the
  trial, never a password: a URI holding one stays in the driver, and the worker uses
  its own ``MLFLOW_TRACKING_URI``);
* ``WATTWISE_MLFLOW=1`` and ``MLFLOW_TRACKING_URI`` are set: wattwise makes an MLflow run
  of its own (experiment ``MLFLOW_EXPERIMENT_NAME``, else ``wattwise``).

``WATTWISE_MLFLOW=0`` turns it off. What is logged (the names of :data:`METRICS` and
:data:`TAGS`, the same as ``wattwise export --format mlflow`` writes):

* metrics named ``wattwise/...`` as the run logs them, at their steps (the callbacks'
  ``wattwise/step_energy_j``, ``wattwise/epoch_energy_j``...); when the run logs other
  metrics at a new step (``run.log(step=3, val_acc=0.9)``), the energy and carbon so far
  at that step (``wattwise/energy_j``, ``wattwise/co2e_g``), at most every
  :data:`MIN_SNAPSHOT_S` seconds;
* the run's other metrics too, into MLflow runs wattwise made (not into yours, where your
  own logging already puts them);
* tags (:func:`run_tags`) at the start, completed at the end; the totals
  (:func:`total_metrics`) at the end.

This module is a run observer (:class:`wattwise.tracking.RunObserver`): writes go through
``MlflowClient`` on a background thread, in batches, and training never waits for MLflow.
An MLflow failure is one warning and the run goes on; at exit, what is still queued gets
:data:`EXIT_WAIT_S` seconds. ``wattwise export --format mlflow`` later finds the same
MLflow run by its ``wattwise.run_id`` tag and adds to it.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from wattwise.exceptions import StoreWarning
from wattwise.tracking import Run, RunObserver, RunState

if TYPE_CHECKING:
    from wattwise.store import ComponentEnergy
    from wattwise.tracking import RunResult

logger = logging.getLogger("wattwise")

#: The least time between two snapshots of the energy added at the user's steps.
MIN_SNAPSHOT_S = 0.5
#: How long the end of a process waits for the queued writes of the runs it followed.
EXIT_WAIT_S = 10.0
#: How long a study's driver waits, at most once, for its MLflow run to exist before it
#: hands the run's id to a trial in a worker process.
HAND_OFF_WAIT_S = 10.0

# -- the names: one set, for live logging and for `wattwise export --format mlflow` -------

#: Metrics: name -> (unit, what). ``<component>``: ``cpu``, ``gpu``, ``dram``...
METRICS: dict[str, tuple[str, str]] = {
    "wattwise/energy_j": ("J", "energy so far, at the steps the run logs"),
    "wattwise/co2e_g": ("gCO2e", "operational carbon so far, at the same steps"),
    "wattwise/total_energy_j": ("J", "energy attributed to the run (IT energy, before PUE)"),
    "wattwise/total_energy_band_j": ("J", "its uncertainty band (±)"),
    "wattwise/total_machine_energy_j": ("J", "energy of the whole machine over the run"),
    "wattwise/total_co2e_g": ("gCO2e", "operational carbon: energy × PUE × grid intensity"),
    "wattwise/total_co2e_band_g": ("gCO2e", "its band (±, from the energy band)"),
    "wattwise/duration_s": ("s", "the run's wall time"),
    "wattwise/total_energy_j/<component>": ("J", "energy per component"),
    "wattwise/intensity_g_per_kwh": ("gCO2e/kWh", "the grid intensity applied"),
    "wattwise/flops": ("FLOP", "FLOPs the run recorded, where it did"),
    "wattwise/flops_per_j": ("FLOP/J", "FLOPs per joule, where recorded"),
    "wattwise/samples_per_j": ("1/J", "samples per joule, where recorded"),
}
#: Tags: name -> what.
TAGS: dict[str, str] = {
    "wattwise.run_id": "the ledger's run id (how the export finds the MLflow run again)",
    "wattwise.kind": "python, command, study, trial...",
    "wattwise.status": "running, then finished, failed or crashed",
    "wattwise.region": "the grid zone the carbon is computed for",
    "wattwise.method": "each component's method and meter: 'cpu: counter (cpu-rapl)'",
    "wattwise.intensity_source": "the intensity's data set, year, zone and scope",
    "wattwise.pue": "the PUE applied",
    "wattwise.boundary": "what the figures include and exclude",
    "wattwise.tags": "the run's tags, comma-separated (where it has any)",
    "wattwise.tag.<tag>": "'true' for each of the run's tags",
    "wattwise.parent_run_id": "the parent wattwise run, where there is one",
    "wattwise.study_id": "the study's wattwise run, for a trial",
    "mlflow.source.git.commit": "the commit the run's code was at, where known",
    "mlflow.source.git.branch": "its branch, where known",
}
ENERGY_SO_FAR = "wattwise/energy_j"
CO2E_SO_FAR = "wattwise/co2e_g"


def total_metrics(
    *, energy_j: float, energy_band_j: float, machine_energy_j: float, co2e_g: float,
    co2e_band_g: float, duration_s: float, components: Iterable[ComponentEnergy],
    record: Mapping[str, Any],
) -> dict[str, float]:  # fmt: skip
    """A run's totals as MLflow metrics (:data:`METRICS`), from its result or ledger row.

    Args:
        record: The run's record (its ``intensity`` and ``flops``, where present).
    """
    out = {
        "wattwise/total_energy_j": energy_j,
        "wattwise/total_energy_band_j": energy_band_j,
        "wattwise/total_machine_energy_j": machine_energy_j,
        "wattwise/total_co2e_g": co2e_g,
        "wattwise/total_co2e_band_g": co2e_band_g,
        "wattwise/duration_s": duration_s,
    }
    for comp in components:
        out[f"wattwise/total_energy_j/{comp.component}"] = comp.energy_j
    intensity = (record.get("intensity") or {}).get("g_per_kwh")
    if isinstance(intensity, (int, float)):
        out["wattwise/intensity_g_per_kwh"] = float(intensity)
    flops = record.get("flops") or {}
    total = flops.get("flops_total")
    if isinstance(total, (int, float)) and total > 0:
        out["wattwise/flops"] = float(total)
        if energy_j > 0:
            out["wattwise/flops_per_j"] = float(total) / energy_j
    samples = flops.get("samples_total")
    if isinstance(samples, (int, float)) and samples > 0 and energy_j > 0:
        out["wattwise/samples_per_j"] = float(samples) / energy_j
    return {k: float(v) for k, v in out.items()}


def run_tags(
    *, run_id: str, kind: str, status: str, region: str | None,
    components: Sequence[ComponentEnergy], record: Mapping[str, Any],
    tags: Sequence[str] = (), parent_id: str | None = None, study_id: str | None = None,
) -> dict[str, str]:  # fmt: skip
    """A run's tags in MLflow (:data:`TAGS`), from its result or ledger row, each at most
    MLflow's 5000 characters."""
    inten = record.get("intensity") or {}
    pue = (record.get("pue") or {}).get("value")
    comps = ", ".join(c.component for c in components) or "none"
    out = {
        "wattwise.run_id": run_id,
        "wattwise.kind": kind,
        "wattwise.status": status,
        "wattwise.region": region or "",
        "wattwise.method": ", ".join(f"{c.component}: {c.method} ({c.meter})"
                                     for c in components) or "no energy recorded",
        "wattwise.intensity_source": _intensity_text(inten),
        "wattwise.pue": f"{pue:g}" if isinstance(pue, (int, float)) else "unknown",
        "wattwise.boundary": (
            f"process tree energy ({comps}); carbon = energy x PUE {pue} x grid intensity; "
            "operational only, embodied excluded; no market-based instruments"
        ),
    }  # fmt: skip
    if tags:
        out["wattwise.tags"] = ", ".join(tags)
    for tag in tags:
        out[f"wattwise.tag.{tag}"[:250]] = "true"
    if parent_id:
        out["wattwise.parent_run_id"] = parent_id
    if study_id:
        out["wattwise.study_id"] = study_id
    code = record.get("code") or {}
    if code.get("available") and code.get("commit"):
        out["mlflow.source.git.commit"] = str(code["commit"])
        if code.get("branch"):
            out["mlflow.source.git.branch"] = str(code["branch"])
    return {k: v[:5000] for k, v in out.items()}


def _intensity_text(inten: Mapping[str, Any]) -> str:
    if not inten:
        return "unknown"
    year = inten.get("year")
    return (f"{inten.get('dataset')} {year or ''} {inten.get('zone')} "
            f"({inten.get('scope')})").replace("  ", " ")  # fmt: skip


# -- following runs ----------------------------------------------------------------------------

_followers: dict[str, MlflowFollower] = {}  # wattwise run id -> follower, while followed
_handed: dict[str, Mapping[str, Any]] = {}  # wattwise run id -> its MLflow run (a worker)
_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def _active_mlflow_run() -> tuple[str, str] | None:
    """(tracking URI, run id) of the MLflow run active in this thread, if mlflow is loaded."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return None
    active = mlflow.active_run()
    if active is None:
        return None
    return str(mlflow.get_tracking_uri()), str(active.info.run_id)


def follow_run(run: Run) -> MlflowFollower | None:
    """The follower that logs ``run`` into MLflow, or None when MLflow is not in use."""
    parent = _followers.get(run.parent_id or "") or _followers.get(run.study_id or "")
    if parent is not None and parent.run is not run:
        return MlflowFollower(run, parent.tracking_uri, parent=parent)
    handed = _handed.get(run.study_id or "") or _handed.get(run.parent_id or "")
    if handed is not None:  # a trial in a worker process: nested under the study's run
        uri = handed.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        if not uri:
            warnings.warn(
                "wattwise: this trial's study logs to an MLflow server whose URI holds a "
                "password, which is never handed to worker processes, and "
                "MLFLOW_TRACKING_URI is not set here, so the trial is not logged to "
                "MLflow. Set MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_PASSWORD) in the "
                "workers' environment.", StoreWarning, stacklevel=4,
            )  # fmt: skip
            return None
        return MlflowFollower(run, uri, parent=(str(handed["run_id"]),
                                                str(handed["experiment_id"])))  # fmt: skip
    active = _active_mlflow_run()
    if active is not None:
        return MlflowFollower(run, active[0], run_id=active[1])
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if os.environ.get("WATTWISE_MLFLOW", "").strip() == "1":
        if not uri:
            warnings.warn(
                "wattwise: WATTWISE_MLFLOW=1 but MLFLOW_TRACKING_URI is not set, so this run "
                "is not logged to MLflow. Set MLFLOW_TRACKING_URI (e.g. sqlite:///mlflow.db "
                "or http://your-mlflow-server), or unset WATTWISE_MLFLOW.",
                StoreWarning, stacklevel=4,
            )  # fmt: skip
            return None
        return MlflowFollower(run, uri)
    return None


class MlflowObserver(RunObserver):
    """The run observer that follows runs into MLflow (one per process: :func:`observer`)."""

    def started(self, run: Run) -> None:
        """Follow ``run`` if MLflow is in use for it."""
        follower = follow_run(run)
        if follower is not None:
            follower.started()

    def logged(self, run: Run, step: int | None, metrics: Mapping[str, float]) -> None:
        """Queue what ``run`` logged (runs not followed are skipped)."""
        follower = _followers.get(run.id)
        if follower is not None and follower.run is run:
            follower.logged(step, metrics)

    def ended(self, run: Run, result: RunResult) -> None:
        """Queue ``run``'s totals and final tags; the writer ends a run wattwise made.

        A trial in a worker process (its study handed off) waits for its writes, at most
        :data:`EXIT_WAIT_S`: its run has ended, no user code waits on this thread, and the
        worker may be killed as soon as the driver has the outcome (Ray's actors are).
        """
        follower = _followers.pop(run.id, None)
        if follower is not None:
            follower.ended(result)
            if follower.handed:
                follower.join(EXIT_WAIT_S)

    def closing(self) -> None:
        """Wait (at most :data:`EXIT_WAIT_S`) for the writes still queued."""
        wait_for_writes()

    def hand_off(self, run_id: str) -> Mapping[str, Any] | None:
        """The MLflow run of ``run_id`` (a study), for its trials in worker processes."""
        follower = _followers.get(run_id)
        if follower is None:
            return None
        if not follower.ready.is_set() and not follower.waited:
            follower.waited = True  # at most once: an MLflow that hangs never slows a study
            follower.ready.wait(HAND_OFF_WAIT_S)
        if follower.mlflow_run_id is None or follower.experiment_id is None:
            return None
        uri = follower.tracking_uri
        return {"parent": run_id, "run_id": follower.mlflow_run_id,
                "experiment_id": follower.experiment_id,
                "tracking_uri": None if _has_password(uri) else uri}  # fmt: skip

    def adopt(self, handed: Mapping[str, Any]) -> None:
        """In a worker: the trials of study ``handed["parent"]`` nest under its MLflow run.

        MLflow is loaded and its store opened here, before the trial starts (seconds, once
        per worker, counted in the study's overhead), not by the writer thread while the
        trial runs, where its imports would hold the trial up.
        """
        _handed[str(handed["parent"])] = dict(handed)
        uri = handed.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        if uri:
            try:
                _client(uri)
            except Exception as err:  # said by the trial's follower, which meets it again
                logger.debug("wattwise: MLflow at %s is not reachable: %s", uri, err)


_observer = MlflowObserver()


def observer() -> MlflowObserver:
    """The run observer of this module (loaded by :mod:`wattwise.tracking` on use)."""
    return _observer


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _client(uri: str) -> Any:
    """One ``MlflowClient`` per tracking URI in this process (opening a store is slow)."""
    with _clients_lock:
        client = _clients.get(uri)
        if client is None:
            from mlflow.tracking import MlflowClient

            client = _clients[uri] = MlflowClient(tracking_uri=uri)
    return client


def _has_password(uri: str) -> bool:
    try:
        return bool(urlsplit(uri).password)
    except ValueError:
        return True  # not parsable: not handed off either


class MlflowFollower:
    """Logs one wattwise run into one MLflow run, from a background thread.

    Args:
        run: The wattwise run.
        tracking_uri: Where the MLflow run lives.
        run_id: An MLflow run to log into (the user's: it is not ended by wattwise).
        parent: The parent's follower, or its MLflow ``(run id, experiment id)`` (handed
            to a worker process): a nested MLflow run is made under it.
    """

    def __init__(self, run: Run, tracking_uri: str, *, run_id: str | None = None,
                 parent: MlflowFollower | tuple[str, str] | None = None) -> None:  # fmt: skip
        self.run = run
        self.tracking_uri = tracking_uri
        self.mlflow_run_id = run_id
        self.experiment_id: str | None = None
        #: Whether wattwise made the MLflow run (it logs every metric and ends it).
        self.owned = run_id is None
        self._parent = parent
        #: Whether the parent was handed to this (worker) process by a study's driver.
        self.handed = isinstance(parent, tuple)
        self.ready = threading.Event()
        self.waited = False
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._error: str | None = None
        self._said = False
        self._say_lock = threading.Lock()
        self._last_step: int | None = None
        self._last_snapshot = 0.0
        self._thread = threading.Thread(target=self._work, name="wattwise-mlflow", daemon=True)

    # -- what the run tells (its threads) ----------------------------------------

    def started(self) -> None:
        """Remember the run for its children; start the writer thread."""
        _followers[self.run.id] = self
        _threads.add(self._thread)
        self._thread.start()

    def logged(self, step: int | None, metrics: Mapping[str, float]) -> None:
        """Queue the metrics to log; add the energy so far at a new step of the user's."""
        self._say_error()
        now = time.time()
        out = dict(metrics) if self.owned else {
            k: v for k, v in metrics.items() if k.startswith("wattwise/")
        }  # fmt: skip
        ours = any(k.startswith("wattwise/") for k in metrics)
        if (
            step is not None and not ours and step != self._last_step
            and time.monotonic() - self._last_snapshot >= MIN_SNAPSHOT_S
            and self.run.state is RunState.RUNNING
        ):  # fmt: skip
            snap = self.run.snapshot()
            self._last_snapshot = time.monotonic()
            out.update({ENERGY_SO_FAR: snap["energy_j"], CO2E_SO_FAR: snap["co2e_g"]})
        if ours or ENERGY_SO_FAR in out:
            self._last_step = step
        if out:
            self._queue.put(("metrics", (step, now, out)))

    def ended(self, result: RunResult) -> None:
        """The run has ended: the thread logs its totals and final tags."""
        run = self.run
        record = run.record
        totals = total_metrics(
            energy_j=result.energy_j, energy_band_j=result.energy_band_j,
            machine_energy_j=result.machine_energy_j, co2e_g=result.co2e_g,
            co2e_band_g=result.co2e_band_g, duration_s=result.duration_s,
            components=result.components, record=record,
        )  # fmt: skip
        tags = run_tags(
            run_id=run.id, kind=run.kind, status=result.status, region=result.region,
            components=result.components, record=record, tags=run.tags,
            parent_id=run.parent_id, study_id=run.study_id,
        )  # fmt: skip
        self._queue.put(("end", (totals, tags, result.status)))
        self._say_error()

    def join(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) for the writer thread to finish."""
        self._thread.join(timeout_s)

    # -- the writer thread ------------------------------------------------------------

    def _failed(self, err: Exception) -> None:
        """Keep the error for the run's next call; said to the log if the run has ended."""
        self._error = f"{type(err).__name__}: {err}"
        if self.run.state is RunState.ENDED and self._first_saying():
            logger.warning("wattwise: logging run %s to MLflow at %s failed: %s",
                           self.run.id[:8], self.tracking_uri, self._error)  # fmt: skip

    def _first_saying(self) -> bool:
        with self._say_lock:
            first, self._said = not self._said, True
        return first

    def _say_error(self) -> None:
        if self._error and self._first_saying():
            warnings.warn(f"wattwise: logging to MLflow at {self.tracking_uri} failed and "
                          f"stopped (training goes on): {self._error}", StoreWarning,
                          stacklevel=7)  # fmt: skip

    def _work(self) -> None:
        try:
            client = _client(self.tracking_uri)
            self._open(client)
        except Exception as err:  # MLflow missing or the store refused: said once
            self._failed(err)
            return
        finally:
            self.ready.set()
        pending: list[Any] = []
        end: Any = None
        while end is None:
            try:
                kind, item = self._queue.get(timeout=1.0)
            except queue.Empty:
                kind, item = "tick", None
            if kind == "metrics":
                pending.extend(self._metrics(*item))
            if kind == "end":
                end = item
            if pending and (kind != "metrics" or len(pending) >= 500):
                if not self._write(client, metrics=pending):
                    return
                pending = []
        self._finish(client, *end)

    def _open(self, client: Any) -> None:
        """Make the MLflow run if wattwise owns it; tag it."""
        run = self.run
        tags = {"wattwise.run_id": run.id, "wattwise.kind": run.kind,
                "wattwise.region": run.location.zone,
                "wattwise.intensity_source": _intensity_text(run.intensity.to_dict()),
                "wattwise.pue": f"{run.pue.value:g}", "wattwise.status": "running",
                "wattwise.method": ", ".join(f"{name}: {info.method}" for name, info
                                             in run.meter_infos.items())}  # fmt: skip
        if self.mlflow_run_id is not None:
            self.experiment_id = str(client.get_run(self.mlflow_run_id).info.experiment_id)
            self._write(client, tags=tags)
            return
        tags["mlflow.runName"] = run.name
        if isinstance(self._parent, MlflowFollower):
            self._parent.ready.wait(timeout=30)
            parent_id, experiment = self._parent.mlflow_run_id, self._parent.experiment_id
            if parent_id is None or experiment is None:
                msg = "the parent run's MLflow run could not be made"
                raise RuntimeError(msg)
            tags["mlflow.parentRunId"] = parent_id
        elif self._parent is not None:
            tags["mlflow.parentRunId"], experiment = self._parent
        else:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "wattwise"
            found = client.get_experiment_by_name(name)
            experiment = found.experiment_id if found else client.create_experiment(name)
        made = client.create_run(experiment, tags=tags)
        self.experiment_id = str(experiment)
        self.mlflow_run_id = made.info.run_id

    def _metrics(self, step: int | None, at: float, values: Mapping[str, float]) -> list[Any]:
        from mlflow.entities import Metric

        return [Metric(key, float(v), int(at * 1000), step or 0) for key, v in values.items()]

    def _write(self, client: Any, *, metrics: list[Any] | None = None,
               tags: Mapping[str, str] | None = None) -> bool:  # fmt: skip
        from mlflow.entities import RunTag

        assert self.mlflow_run_id is not None
        try:
            metrics = list(metrics or [])
            tag_list = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
            for start in range(0, max(len(metrics), len(tag_list), 1), 100):
                client.log_batch(self.mlflow_run_id, metrics=metrics[start : start + 100],
                                 tags=tag_list[start : start + 100])  # fmt: skip
        except Exception as err:
            self._failed(err)
            return False
        return True

    def _finish(self, client: Any, totals: Mapping[str, float], tags: Mapping[str, str],
                status: str) -> None:  # fmt: skip
        """Log the totals and final tags; end a run wattwise made."""
        if not self._write(client, metrics=self._metrics(None, time.time(), totals), tags=tags):
            return
        if self.owned:
            try:
                client.set_terminated(
                    self.mlflow_run_id, status="FINISHED" if status == "finished" else "FAILED"
                )
            except Exception as err:
                self._failed(err)


def wait_for_writes(timeout_s: float = EXIT_WAIT_S) -> None:
    """Wait (at most ``timeout_s`` in all) for the MLflow writes still queued or running."""
    deadline = time.monotonic() + timeout_s
    for thread in list(_threads):
        thread.join(max(0.0, deadline - time.monotonic()))
