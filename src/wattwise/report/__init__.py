"""Reports from the ledger: HTML, Markdown, JSON, SCI, model cards and ecosystem formats.

``build_report()`` reads the store (never writes it) into a :class:`Report`; renderers
format it::

    from wattwise.store import open_store
    from wattwise.report import build_report, render_html
    report = build_report(open_store())                 # the whole project
    Path("report.html").write_text(render_html(report), encoding="utf-8")

``compute_sci()`` gives the GSF SCI ``(E × I + M) / R`` with every term's source;
``hf_card()`` the Hugging Face ``co2_eq_emissions`` block; ``render_codecarbon_csv()``
CodeCarbon's ``emissions.csv`` (kg!); ``render_boamps()`` a BoAmps JSON report (kWh);
``log_to_mlflow()`` writes into an MLflow store.
Every output format is an :class:`Exporter` in one registry (``get_exporter("hf-card")``,
``register_exporter(...)``) that ``wattwise report`` and ``wattwise export`` share.
Nothing here imports matplotlib, torch or mlflow at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattwise import _lazy

if TYPE_CHECKING:
    from wattwise.report._attributions import DataCredit, data_credits
    from wattwise.report._boamps import boamps_report, render_boamps
    from wattwise.report._codecarbon import COLUMNS as CODECARBON_COLUMNS
    from wattwise.report._codecarbon import codecarbon_row, render_codecarbon_csv
    from wattwise.report._exporters import (
        BoampsExporter,
        CodecarbonCsvExporter,
        Exporter,
        ExportSource,
        HfCardExporter,
        HtmlExporter,
        JsonExporter,
        MarkdownExporter,
        MlflowExporter,
        TextExporter,
        exporters,
        extension_map,
        format_names,
        get_exporter,
        register_exporter,
        render_json,
    )
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

# Loaded on first use: the CLI reads the exporter registry to build its parser, and
# ``wattwise run`` must not pay for the renderers.
_LAZY: _lazy.LazyTable = {
    "BoampsExporter": ("wattwise.report._exporters", "BoampsExporter"),
    "CODECARBON_COLUMNS": ("wattwise.report._codecarbon", "COLUMNS"),
    "CodecarbonCsvExporter": ("wattwise.report._exporters", "CodecarbonCsvExporter"),
    "DataCredit": ("wattwise.report._attributions", "DataCredit"),
    "EmbodiedShare": ("wattwise.report._sci", "EmbodiedShare"),
    "ExportSource": ("wattwise.report._exporters", "ExportSource"),
    "Exporter": ("wattwise.report._exporters", "Exporter"),
    "Headline": ("wattwise.report._model", "Headline"),
    "HfCard": ("wattwise.report._hf_card", "HfCard"),
    "HfCardExporter": ("wattwise.report._exporters", "HfCardExporter"),
    "HtmlExporter": ("wattwise.report._exporters", "HtmlExporter"),
    "JsonExporter": ("wattwise.report._exporters", "JsonExporter"),
    "MarkdownExporter": ("wattwise.report._exporters", "MarkdownExporter"),
    "MlflowExport": ("wattwise.report._mlflow", "MlflowExport"),
    "MlflowExporter": ("wattwise.report._exporters", "MlflowExporter"),
    "ProjectView": ("wattwise.report._model", "ProjectView"),
    "Report": ("wattwise.report._model", "Report"),
    "RunSummary": ("wattwise.report._model", "RunSummary"),
    "SciResult": ("wattwise.report._sci", "SciResult"),
    "SciTerm": ("wattwise.report._sci", "SciTerm"),
    "Selection": ("wattwise.report._model", "Selection"),
    "StudyView": ("wattwise.report._model", "StudyView"),
    "TRAINING_TYPES": ("wattwise.report._hf_card", "TRAINING_TYPES"),
    "TextExporter": ("wattwise.report._exporters", "TextExporter"),
    "Timeline": ("wattwise.report._model", "Timeline"),
    "boamps_report": ("wattwise.report._boamps", "boamps_report"),
    "build_report": ("wattwise.report._model", "build_report"),
    "cloud_instance_embodied_kg": ("wattwise.report._sci", "cloud_instance_embodied_kg"),
    "codecarbon_row": ("wattwise.report._codecarbon", "codecarbon_row"),
    "compute_sci": ("wattwise.report._sci", "compute_sci"),
    "data_credits": ("wattwise.report._attributions", "data_credits"),
    "default_tracking_uri": ("wattwise.report._mlflow", "default_tracking_uri"),
    "exporters": ("wattwise.report._exporters", "exporters"),
    "extension_map": ("wattwise.report._exporters", "extension_map"),
    "format_names": ("wattwise.report._exporters", "format_names"),
    "get_exporter": ("wattwise.report._exporters", "get_exporter"),
    "hf_card": ("wattwise.report._hf_card", "hf_card"),
    "log_to_mlflow": ("wattwise.report._mlflow", "log_to_mlflow"),
    "register_exporter": ("wattwise.report._exporters", "register_exporter"),
    "render_boamps": ("wattwise.report._boamps", "render_boamps"),
    "render_codecarbon_csv": ("wattwise.report._codecarbon", "render_codecarbon_csv"),
    "render_html": ("wattwise.report._html", "render_html"),
    "render_json": ("wattwise.report._exporters", "render_json"),
    "render_markdown": ("wattwise.report._markdown", "render_markdown"),
    "role_of": ("wattwise.store", "role_of"),
    "select_runs": ("wattwise.report._model", "select_runs"),
    "server_embodied_kg": ("wattwise.report._sci", "server_embodied_kg"),
    "update_model_card": ("wattwise.report._hf_card", "update_model_card"),
}

__all__ = [
    "BoampsExporter",
    "CODECARBON_COLUMNS",
    "CodecarbonCsvExporter",
    "DataCredit",
    "EmbodiedShare",
    "ExportSource",
    "Exporter",
    "HfCardExporter",
    "HtmlExporter",
    "JsonExporter",
    "MarkdownExporter",
    "MlflowExporter",
    "TextExporter",
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
    "boamps_report",
    "build_report",
    "cloud_instance_embodied_kg",
    "codecarbon_row",
    "compute_sci",
    "data_credits",
    "default_tracking_uri",
    "exporters",
    "extension_map",
    "format_names",
    "get_exporter",
    "hf_card",
    "log_to_mlflow",
    "register_exporter",
    "render_boamps",
    "render_codecarbon_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "role_of",
    "select_runs",
    "server_embodied_kg",
    "update_model_card",
]


__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, globals())
