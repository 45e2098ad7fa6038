"""Log runs' energy, carbon, tags, params and metrics into an MLflow tracking store.

Each wattwise run becomes one MLflow run (found again by its ``wattwise.run_id`` tag, in
any experiment, so exporting twice, or exporting a run logged live by
:mod:`wattwise.integrations.mlflow`, updates instead of duplicating). The names are the
live logger's, one set (:data:`wattwise.integrations.mlflow.METRICS` and ``TAGS``):
totals such as ``wattwise/total_energy_j`` and ``wattwise/total_co2e_g``, the energy and
carbon so far at the run's steps (``wattwise/energy_j``, ``wattwise/co2e_g``: here read
from the ledger's samples, interpolated to the time each step was logged), our sources as
tags; the run's own params and metric series are copied as they are.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import WattwiseError
from wattwise.store import BaseRunStore, RunRecord

if TYPE_CHECKING:
    from wattwise.store import Metric as LedgerMetric

_STATUS = {"finished": "FINISHED", "failed": "FAILED", "crashed": "FAILED", "running": "RUNNING"}
_PARAM_MAX = 6000
_TAG_MAX = 5000


@dataclasses.dataclass(frozen=True)
class MlflowExport:
    """Where one wattwise run went in MLflow.

    Attributes:
        wattwise_run_id: The ledger's run id.
        mlflow_run_id: The MLflow run id.
        experiment_id: The MLflow experiment id.
        created: False when an MLflow run for this wattwise run already existed.
    """

    wattwise_run_id: str
    mlflow_run_id: str
    experiment_id: str
    created: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence MLflow's and SQLAlchemy's own deprecation chatter during our calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def default_tracking_uri(store: BaseRunStore) -> str:
    """``sqlite:///<project>/.wattwise/mlflow.db``, next to the ledger (MLflow 3's default
    backend kind), unless ``MLFLOW_TRACKING_URI`` is set."""
    import os

    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{store.path.parent.resolve() / 'mlflow.db'}"


def _figures(run: RunRecord) -> dict[str, float]:
    from wattwise.integrations.mlflow import total_metrics

    return total_metrics(
        energy_j=run.energy_j, energy_band_j=run.energy_band_j,
        machine_energy_j=run.machine_energy_j, co2e_g=run.co2e_g,
        co2e_band_g=run.co2e_band_g, duration_s=run.duration_s,
        components=run.components, record=run.record,
    )  # fmt: skip


def _tags(run: RunRecord) -> dict[str, str]:
    from wattwise.integrations.mlflow import run_tags

    return run_tags(
        run_id=run.id, kind=run.kind, status=str(run.status), region=run.region,
        components=run.components, record=run.record, tags=run.tags,
        parent_id=run.parent_id, study_id=run.study_id,
    )  # fmt: skip


def _so_far(store: BaseRunStore, run: RunRecord, metrics: list[LedgerMetric]
            ) -> list[tuple[int, float, float]]:  # fmt: skip
    """``(step, energy so far, carbon so far)`` at each step the run logged its own
    metrics at (not ``wattwise/`` ones, which a callback logged with their own energy),
    interpolated from the ledger's samples to the time the step was first logged: what the
    live logger snapshots at those steps."""
    from wattwise.integrations.mlflow import ENERGY_SO_FAR

    ours = {step for step, key, _, _ in metrics if key == ENERGY_SO_FAR}
    first: dict[int, float] = {}
    for step, key, _, at in metrics:
        if step is None or key.startswith("wattwise/") or step in ours:
            continue
        first[step] = min(at, first.get(step, at))
    if not first:
        return []
    series: dict[str, list[tuple[float, float]]] = {}
    for t_s, comp, _, energy_j in store.samples(run.id):
        series.setdefault(comp, []).append((t_s, energy_j))
    if not series:
        return []
    per_j = run.co2e_g / run.energy_j if run.energy_j > 0 else 0.0
    out = []
    for step, at in sorted(first.items()):
        t = at - run.started_at
        energy = sum(_at(sorted(points), t) for points in series.values())
        out.append((step, energy, energy * per_j))
    return out


def _at(points: list[tuple[float, float]], t: float) -> float:
    """Cumulative energy at ``t`` s: linear between samples, from (0, 0), flat past the end."""
    before = (0.0, 0.0)
    for point in points:
        if point[0] >= t:
            span = point[0] - before[0]
            share = (t - before[0]) / span if span > 0 else 1.0
            return before[1] + max(0.0, share) * (point[1] - before[1])
        before = point
    return before[1]


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:_PARAM_MAX]


def log_to_mlflow(
    store: BaseRunStore,
    runs: Sequence[RunRecord],
    *,
    tracking_uri: str,
    experiment_name: str = "wattwise",
) -> list[MlflowExport]:
    """Log each run into MLflow, with the live logger's names (metrics ``wattwise/...``,
    tags ``wattwise.*``).

    Args:
        store: The ledger (read for the runs' metric series).
        runs: Runs to export.
        tracking_uri: An MLflow tracking URI (``sqlite:///...``, ``http://...``,
            ``file:...``).
        experiment_name: MLflow experiment, created when missing.

    Returns:
        One entry per run.

    Raises:
        WattwiseError: MLflow is not installed, or the tracking store refused a write.
    """
    from wattwise.integrations.mlflow import CO2E_SO_FAR, ENERGY_SO_FAR

    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError as err:
        msg = (
            "Exporting to MLflow needs the mlflow package. Install it with: "
            "pip install 'wattwise[interop]'."
        )
        raise WattwiseError(msg) from err
    if tracking_uri.startswith("sqlite:"):
        try:
            import alembic  # noqa: F401
            import sqlalchemy  # noqa: F401
        except ImportError as err:
            msg = (
                f"MLflow's database store ({tracking_uri}) needs SQLAlchemy and Alembic, "
                "which mlflow-skinny does not install. Install them with: pip install "
                "sqlalchemy alembic, or pass --mlflow-uri http://your-mlflow-server."
            )
            raise WattwiseError(msg) from err
    out = []
    try:
        with _quiet():
            client = MlflowClient(tracking_uri=tracking_uri)
            found = client.get_experiment_by_name(experiment_name)
            exp_id = found.experiment_id if found else client.create_experiment(experiment_name)
            # a run logged live (wattwise.integrations.mlflow) may be in any experiment
            everywhere = [e.experiment_id for e in client.search_experiments()] or [exp_id]
            for run in runs:
                existing = client.search_runs(
                    everywhere,
                    filter_string=f"tags.`wattwise.run_id` = '{run.id}'",
                    max_results=1,
                )
                tags = _tags(run)
                start_ms = int(run.started_at * 1000)
                if existing:
                    ml_id = existing[0].info.run_id
                    created = False
                else:
                    named = {**tags, "mlflow.runName": run.name}  # not renaming a user's run
                    ml_id = client.create_run(exp_id, start_time=start_ms,
                                              tags=named).info.run_id  # fmt: skip
                    created = True
                end_ms = int((run.ended_at or run.started_at + run.duration_s) * 1000)
                metrics = [Metric(k, v, end_ms, 0) for k, v in _figures(run).items()]
                if created:
                    series = store.metrics(run.id)
                    metrics += [
                        Metric(key, value, int(at * 1000), step or 0)
                        for step, key, value, at in series
                    ]
                    for step, energy, co2e in _so_far(store, run, series):
                        metrics += [Metric(ENERGY_SO_FAR, energy, end_ms, step),
                                    Metric(CO2E_SO_FAR, co2e, end_ms, step)]  # fmt: skip
                params = [Param(str(k)[:250], _param_text(v)) for k, v in run.params.items()]
                tag_list = [RunTag(k, v) for k, v in tags.items()]
                if not created:
                    params = []  # MLflow params are immutable once logged
                batches = max(-(-len(metrics) // 1000), -(-len(params) // 100),
                              -(-len(tag_list) // 100), 1)  # fmt: skip
                for b in range(batches):
                    client.log_batch(
                        ml_id, metrics=metrics[b * 1000 : (b + 1) * 1000],
                        params=params[b * 100 : (b + 1) * 100],
                        tags=tag_list[b * 100 : (b + 1) * 100],
                    )  # fmt: skip
                status = _STATUS.get(str(run.status), "FINISHED")
                if status != "RUNNING":
                    client.set_terminated(ml_id, status=status, end_time=end_ms)
                out.append(MlflowExport(run.id, ml_id, str(exp_id), created))
    except MlflowException as err:
        msg = f"MLflow at {tracking_uri} refused the export: {err.message}"
        raise WattwiseError(msg) from err
    return out
