"""Log runs' energy, carbon, tags, params and metrics into an MLflow tracking store.

Each wattwise run becomes one MLflow run (found again by its ``wattwise.run_id`` tag, in
any experiment, so exporting twice, or exporting a run logged live by
:mod:`wattwise.integrations.mlflow`, updates instead of duplicating). Our figures are
metrics under the ``wattwise.`` namespace (``wattwise.energy_kwh``, ``wattwise.co2e_g``,
...), our sources are tags, the run's own params and metric series are copied as they are.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from wattwise.exceptions import WattwiseError
from wattwise.store import BaseRunStore, RunRecord

_KWH = 3.6e6
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
    rec = run.record
    out = {
        "wattwise.energy_kwh": run.energy_j / _KWH,
        "wattwise.energy_j": run.energy_j,
        "wattwise.energy_band_j": run.energy_band_j,
        "wattwise.machine_energy_j": run.machine_energy_j,
        "wattwise.co2e_g": run.co2e_g,
        "wattwise.co2e_band_g": run.co2e_band_g,
        "wattwise.duration_s": run.duration_s,
    }
    for comp in run.components:
        out[f"wattwise.energy_j.{comp.component}"] = comp.energy_j
    intensity = (rec.get("intensity") or {}).get("g_per_kwh")
    if isinstance(intensity, (int, float)):
        out["wattwise.intensity_g_per_kwh"] = float(intensity)
    pue = (rec.get("pue") or {}).get("value")
    if isinstance(pue, (int, float)):
        out["wattwise.pue"] = float(pue)
    flops = rec.get("flops") or {}
    total = flops.get("flops_total")
    if isinstance(total, (int, float)) and total > 0:
        out["wattwise.flops"] = float(total)
        if run.energy_j > 0:
            out["wattwise.flops_per_j"] = float(total) / run.energy_j
    samples = flops.get("samples_total")
    if isinstance(samples, (int, float)) and samples > 0 and run.energy_j > 0:
        out["wattwise.samples_per_j"] = float(samples) / run.energy_j
    return out


def _tags(run: RunRecord) -> dict[str, str]:
    rec = run.record
    inten = rec.get("intensity") or {}
    methods = ", ".join(f"{c.component}: {c.method} ({c.meter})" for c in run.components)
    comps = ", ".join(c.component for c in run.components) or "none"
    pue = (rec.get("pue") or {}).get("value")
    tags = {
        "mlflow.runName": run.name,
        "wattwise.run_id": run.id,
        "wattwise.kind": run.kind,
        "wattwise.status": str(run.status),
        "wattwise.region": run.region or "",
        "wattwise.method": methods,
        "wattwise.intensity_source": (
            f"{inten.get('dataset')} {inten.get('year')} {inten.get('zone')} "
            f"({inten.get('scope')})" if inten else "unknown"
        ),
        "wattwise.boundary": (
            f"process tree energy ({comps}); carbon = energy x PUE {pue} x grid intensity; "
            "operational only, embodied excluded; no market-based instruments"
        ),
        "wattwise.tags": ", ".join(run.tags),
    }  # fmt: skip
    for tag in run.tags:
        tags[f"wattwise.tag.{tag}"[:250]] = "true"
    if run.parent_id:
        tags["wattwise.parent_run_id"] = run.parent_id
    if run.study_id:
        tags["wattwise.study_id"] = run.study_id
    code = rec.get("code") or {}
    if code.get("available") and code.get("commit"):
        tags["mlflow.source.git.commit"] = str(code["commit"])
        if code.get("branch"):
            tags["mlflow.source.git.branch"] = str(code["branch"])
    return {k: v[:_TAG_MAX] for k, v in tags.items()}


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
    """Log each run into MLflow: figures as ``wattwise.*`` metrics, sources as tags.

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
                    everywhere, filter_string=f"tags.`wattwise.run_id` = '{run.id}'",
                    max_results=1,
                )
                tags = _tags(run)
                start_ms = int(run.started_at * 1000)
                if existing:
                    ml_id = existing[0].info.run_id
                    created = False
                else:
                    ml_id = client.create_run(exp_id, start_time=start_ms, tags=tags).info.run_id
                    created = True
                end_ms = int((run.ended_at or run.started_at + run.duration_s) * 1000)
                metrics = [Metric(k, v, end_ms, 0) for k, v in _figures(run).items()]
                if created:
                    metrics += [
                        Metric(key, value, int(at * 1000), step or 0)
                        for step, key, value, at in store.metrics(run.id)
                    ]
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
