"""Reports from the ledger: HTML, Markdown, JSON, SCI, model cards and ecosystem formats.

``build_report()`` reads the store (never writes it) into a :class:`Report`; renderers
format it::

    from wattwise.store import open_store
    from wattwise.report import build_report, render_html
    report = build_report(open_store())                 # the whole project
    Path("report.html").write_text(render_html(report), encoding="utf-8")

``compute_sci()`` gives the GSF SCI ``(E × I + M) / R`` with every term's source;
``hf_card()`` the Hugging Face ``co2_eq_emissions`` block; ``render_codecarbon_csv()``
CodeCarbon's ``emissions.csv`` (kg!); ``log_to_mlflow()`` writes into an MLflow store.
Nothing here imports matplotlib, torch or mlflow at import time.
"""

from __future__ import annotations

from wattwise.report._attributions import DataCredit, data_credits
from wattwise.report._codecarbon import COLUMNS as CODECARBON_COLUMNS
from wattwise.report._codecarbon import codecarbon_row, render_codecarbon_csv
from wattwise.report._hf_card import TRAINING_TYPES, HfCard, hf_card, update_model_card
from wattwise.report._html import render_html
from wattwise.report._markdown import render_markdown
from wattwise.report._mlflow import MlflowExport, default_tracking_uri, log_to_mlflow
from wattwise.report._model import (
    Headline,
    ProjectView,
    Report,
    RunSummary,
    Selection,
    StudyView,
    Timeline,
    build_report,
    select_runs,
)
from wattwise.report._sci import (
    EmbodiedShare,
    SciResult,
    SciTerm,
    cloud_instance_embodied_kg,
    compute_sci,
    server_embodied_kg,
)
from wattwise.store import role_of


def render_json(report: Report) -> str:
    """The report as indented JSON text (``wattwise report --format json``)."""
    import json

    return json.dumps(report.to_dict(), indent=2, default=str) + "\n"


__all__ = [
    "CODECARBON_COLUMNS",
    "DataCredit",
    "EmbodiedShare",
    "Headline",
    "HfCard",
    "MlflowExport",
    "ProjectView",
    "Report",
    "RunSummary",
    "SciResult",
    "SciTerm",
    "Selection",
    "StudyView",
    "TRAINING_TYPES",
    "Timeline",
    "build_report",
    "cloud_instance_embodied_kg",
    "codecarbon_row",
    "compute_sci",
    "data_credits",
    "default_tracking_uri",
    "hf_card",
    "log_to_mlflow",
    "render_codecarbon_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "role_of",
    "select_runs",
    "server_embodied_kg",
    "update_model_card",
]
