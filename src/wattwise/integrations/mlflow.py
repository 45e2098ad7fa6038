"""Live MLflow logging: a wattwise run's energy and carbon go into the MLflow run in use.

No call is needed. When a wattwise run starts (``wattwise.track``, a callback's run, a
study or trial of ``wattwise tune``) it is followed into MLflow if:

* this process has imported ``mlflow`` already and an MLflow run is active
  (``mlflow.start_run()``, the Trainer's ``report_to="mlflow"``, Lightning's
  ``MLFlowLogger``...): wattwise logs into *that* run; mlflow is never imported for
  users who do not use it;
* its parent wattwise run is followed (a study's trials, a run inside a run): it becomes a
  nested MLflow run (tag ``mlflow.parentRunId``, as ``mlflow.start_run(nested=True)``);
* ``WATTWISE_MLFLOW=1`` and ``MLFLOW_TRACKING_URI`` are set: wattwise makes an MLflow run
  of its own (experiment ``MLFLOW_EXPERIMENT_NAME``, else ``wattwise``).

``WATTWISE_MLFLOW=0`` turns it off. What is logged:

* metrics named ``wattwise/...`` as the run logs them, at their steps: the callbacks'
  energy per step and epoch (``wattwise/energy_j``, ``wattwise/co2e_g``,
  ``wattwise/step_energy_j``, ``wattwise/epoch_energy_j``...); when the run logs other
  metrics at a new step (``run.log(step=3, val_acc=0.9)``), the energy and carbon so far
  at that step, at most every :data:`MIN_SNAPSHOT_S` seconds;
* the run's other metrics too, into MLflow runs wattwise made (not into yours, where your
  own logging already puts them);
* tags ``wattwise.run_id``, ``wattwise.method`` (each component's method and meter),
  ``wattwise.intensity_source``, ``wattwise.region``, ``wattwise.pue``,
  ``wattwise.status``; at the end, totals ``wattwise/total_energy_j``,
  ``wattwise/total_energy_band_j``, ``wattwise/total_co2e_g``, ``wattwise/total_co2e_band_g``,
  ``wattwise/duration_s`` and ``wattwise/total_energy_j/<component>``.

Writes go through ``MlflowClient`` on a background thread, in batches: training never
waits for MLflow. An MLflow failure is one warning and the run goes on; at exit, what is
still queued gets :data:`EXIT_WAIT_S` seconds. ``wattwise export --format mlflow`` later
finds the same MLflow run by its ``wattwise.run_id`` tag and adds to it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from typing import Any

from wattwise.exceptions import StoreWarning
from wattwise.tracking import Run, RunState

logger = logging.getLogger("wattwise")

#: The least time between two snapshots of the energy added at the user's steps.
MIN_SNAPSHOT_S = 0.5
#: How long the end of a process waits for the queued writes of the runs it followed.
EXIT_WAIT_S = 10.0
#: How long a follower waits for the run's result after it ended.
RESULT_WAIT_S = 60.0

_followers: dict[str, MlflowFollower] = {}  # wattwise run id -> follower, while followed
_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_exit_hook = {"installed": False}


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


class MlflowFollower:
    """Logs one wattwise run into one MLflow run, from a background thread.

    Args:
        run: The wattwise run.
        tracking_uri: Where the MLflow run lives.
        run_id: An MLflow run to log into (the user's: it is not ended by wattwise).
        parent: The follower of the parent run (a nested MLflow run is made under it).
    """

    def __init__(self, run: Run, tracking_uri: str, *, run_id: str | None = None,
                 parent: MlflowFollower | None = None) -> None:  # fmt: skip
        self.run = run
        self.tracking_uri = tracking_uri
        self.mlflow_run_id = run_id
        #: Whether wattwise made the MLflow run (it logs every metric and ends it).
        self.owned = run_id is None
        self._parent = parent
        self.ready = threading.Event()
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
        _install_exit_hook()
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
            out.update({"wattwise/energy_j": snap["energy_j"], "wattwise/co2e_g": snap["co2e_g"]})
        if ours or "wattwise/energy_j" in out:
            self._last_step = step
        if out:
            self._queue.put(("metrics", (step, now, out)))

    def ended(self) -> None:
        """The run is ending: the thread logs its totals once its result exists."""
        _followers.pop(self.run.id, None)
        self._queue.put(("end", None))
        self._say_error()

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
                          stacklevel=4)  # fmt: skip

    def _work(self) -> None:
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri)
            self._open(client)
        except Exception as err:  # MLflow missing or the store refused: said once
            self._failed(err)
            return
        finally:
            self.ready.set()
        pending: list[Any] = []
        ended = False
        while not ended:
            try:
                kind, item = self._queue.get(timeout=1.0)
            except queue.Empty:
                kind, item = "tick", None
            if kind == "metrics":
                pending.extend(self._metrics(*item))
            ended = kind == "end"
            if pending and (kind != "metrics" or len(pending) >= 500 or ended):
                if not self._write(client, metrics=pending):
                    return
                pending = []
        self._finish(client)

    def _open(self, client: Any) -> None:
        """Make the MLflow run if wattwise owns it; tag it."""
        tags = {"wattwise.run_id": self.run.id, "wattwise.kind": self.run.kind,
                "wattwise.region": self.run.location.zone,
                "wattwise.intensity_source": _intensity_source(self.run),
                "wattwise.pue": f"{self.run.pue.value:g}", "wattwise.status": "running",
                "wattwise.method": ", ".join(f"{name}: {info.method}" for name, info
                                             in self.run.meter_infos.items())}  # fmt: skip
        if self.mlflow_run_id is None:
            tags["mlflow.runName"] = self.run.name
            if self._parent is not None:
                self._parent.ready.wait(timeout=30)
                parent_id = self._parent.mlflow_run_id
                if parent_id is None:
                    msg = "the parent run's MLflow run could not be made"
                    raise RuntimeError(msg)
                experiment = client.get_run(parent_id).info.experiment_id
                tags["mlflow.parentRunId"] = parent_id
            else:
                name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "wattwise"
                found = client.get_experiment_by_name(name)
                experiment = found.experiment_id if found else client.create_experiment(name)
            made = client.create_run(experiment, tags=tags)
            self.mlflow_run_id = made.info.run_id
        else:
            self._write(client, tags=tags)

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
            for start in range(0, max(len(metrics), 1), 1000):
                client.log_batch(self.mlflow_run_id, metrics=metrics[start : start + 1000],
                                 tags=tag_list if start == 0 else [])  # fmt: skip
        except Exception as err:
            self._failed(err)
            return False
        return True

    def _finish(self, client: Any) -> None:
        """Log the totals once the run's result exists; end a run wattwise made."""
        deadline = time.monotonic() + RESULT_WAIT_S
        while self.run.state is not RunState.ENDED or not _has_result(self.run):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        result = self.run.result
        totals = {
            "wattwise/total_energy_j": result.energy_j,
            "wattwise/total_energy_band_j": result.energy_band_j,
            "wattwise/total_co2e_g": result.co2e_g,
            "wattwise/total_co2e_band_g": result.co2e_band_g,
            "wattwise/duration_s": result.duration_s,
        }
        for comp in result.components:
            totals[f"wattwise/total_energy_j/{comp.component}"] = comp.energy_j
        tags = {
            "wattwise.status": result.status,
            "wattwise.method": ", ".join(f"{c.component}: {c.method} ({c.meter})"
                                         for c in result.components) or "no energy recorded",
        }  # fmt: skip
        if not self._write(client, metrics=self._metrics(None, time.time(), totals), tags=tags):
            return
        if self.owned:
            status = "FINISHED" if result.status == "finished" else "FAILED"
            try:
                client.set_terminated(self.mlflow_run_id, status=status)
            except Exception as err:
                self._failed(err)


def _has_result(run: Run) -> bool:
    try:
        run.result  # noqa: B018
    except Exception:
        return False
    return True


def _intensity_source(run: Run) -> str:
    i = run.intensity
    return f"{i.dataset} {i.year or ''} {i.zone} ({i.scope})".replace("  ", " ")


def _install_exit_hook() -> None:
    if _exit_hook["installed"]:
        return
    _exit_hook["installed"] = True
    atexit.register(wait_for_writes)


def wait_for_writes(timeout_s: float = EXIT_WAIT_S) -> None:
    """Wait (at most ``timeout_s`` in all) for the MLflow writes still queued or running."""
    deadline = time.monotonic() + timeout_s
    for thread in list(_threads):
        thread.join(max(0.0, deadline - time.monotonic()))
