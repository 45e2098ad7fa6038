"""One protocol and one registry for every output format: ``wattwise report`` and ``export``.

Each format is a class with a ``name``, the file ``extensions`` that mean it, what input
it ``takes`` and a ``write`` method. The two commands read the registry: their
``--format`` choices and the ``-o`` extension → format mapping come from it, and adding
a format is one class and one :func:`register_exporter` call::

    from wattwise.report import ExportSource, TextExporter, register_exporter

    class CsvSummary(TextExporter):
        name = "summary-csv"
        extensions = (".summary.csv",)
        takes = "runs"
        command = "export"
        help = "one line per run: id, energy (J), carbon (g)"

        def render(self, source: ExportSource, **options: object) -> str:
            return "".join(f"{r.id},{r.energy_j},{r.co2e_g}\\n" for r in source.runs)

    register_exporter(CsvSummary())

What a format takes (``takes``):

- ``report``: a :class:`~wattwise.report.Report` built from the selection (one run, a
  study or the project): html, md, json, hf-card;
- ``runs``: the selected top-level runs (nested runs are counted in their parents):
  codecarbon-csv, boamps;
- ``ledger``: the runs and the store they come from (for their metric series): mlflow.

The registry is cheap to import (the CLI reads it to build its parser): a format's
code is imported when it writes, not before.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TextIO, runtime_checkable

from wattwise.exceptions import InvalidParameterError

if TYPE_CHECKING:
    from wattwise.report._hf_card import HfCard
    from wattwise.report._model import Report, Selection
    from wattwise.store import BaseRunStore, RunRecord

#: What an exporter reads; see the module docstring.
Takes = Literal["report", "runs", "ledger"]
#: The command that offers a format: ``report`` (documents to read) or ``export`` (the
#: formats other tools read).
Command = Literal["report", "export"]


class ExportSource:
    """What an exporter reads: a ledger and a selection in it (a run, a study, the project).

    The selection and the report are computed on first use and kept, so a command that
    needs both reads the ledger once for each.

    Args:
        store: The ledger (read only: nothing here writes it).
        run: A run id or unique prefix; a study driver run selects its study.
        study: A study driver run id or prefix.
        report_options: Keyword arguments for :func:`~wattwise.report.build_report`
            (``metric``, ``title``, the SCI options).
    """

    def __init__(
        self,
        store: BaseRunStore,
        *,
        run: str | None = None,
        study: str | None = None,
        report_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.run = run
        self.study = study
        self.report_options = dict(report_options or {})

    @functools.cached_property
    def selection(self) -> Selection:
        """The runs selected (raises RunNotFoundError for an unknown run or an empty ledger)."""
        from wattwise.report._model import select_runs

        return select_runs(self.store, run=self.run, study=self.study)

    @property
    def runs(self) -> list[RunRecord]:
        """The selected top-level runs: each nested run is counted in its parent."""
        return list(self.selection.counted)

    @functools.cached_property
    def report(self) -> Report:
        """The report on the selection."""
        from wattwise.report._model import build_report

        return build_report(self.store, run=self.run, study=self.study, **self.report_options)


@runtime_checkable
class Exporter(Protocol):
    """An output format.

    Attributes:
        name: The ``--format`` value (``hf-card``).
        extensions: Lower-case file extensions that mean this format (``(".md",)``); the
            first is the default file name's. Empty for a format that writes no file
            (mlflow logs to a tracking server).
        takes: What it reads: ``report``, ``runs`` or ``ledger`` (module docstring).
        command: The command that offers it: ``report`` or ``export``.
        help: One line for ``--help``.
    """

    @property
    def name(self) -> str: ...

    @property
    def extensions(self) -> tuple[str, ...]: ...

    @property
    def takes(self) -> Takes: ...

    @property
    def command(self) -> Command: ...

    @property
    def help(self) -> str: ...

    def write(self, source: ExportSource, stream: TextIO | None, **options: Any) -> list[str]:
        """Write the export.

        Args:
            source: What to export.
            stream: Where a file format writes its text (a file or standard output; the
                caller opens and closes it). None for a format with no ``extensions``, and
                for a file format told by an option to write elsewhere (hf-card's ``into``).
            **options: The format's own options (see each class).

        Returns:
            Lines to tell the user (what was written where), possibly none.
        """
        ...


class TextExporter:
    """Base of the formats that are one text document: subclasses define :meth:`render`."""

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]]
    takes: ClassVar[Takes]
    command: ClassVar[Command]
    help: ClassVar[str]

    def render(self, source: ExportSource, **options: Any) -> str:
        """The document's text."""
        raise NotImplementedError

    def write(self, source: ExportSource, stream: TextIO | None, **options: Any) -> list[str]:
        """Write :meth:`render`'s text into ``stream``."""
        if stream is None:
            msg = (
                f"The {self.name} format writes a document: pass a stream to write it into "
                "(a file opened for writing, or sys.stdout)."
            )
            raise InvalidParameterError(msg)
        stream.write(self.render(source, **options))
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class HtmlExporter(TextExporter):
    """One self-contained HTML page (no network access, no script needed to read it)."""

    name = "html"
    extensions = (".html", ".htm")
    takes = "report"
    command = "report"
    help = "one self-contained HTML page"

    def render(self, source: ExportSource, **options: Any) -> str:
        from wattwise.report._html import render_html

        return render_html(source.report)


class MarkdownExporter(TextExporter):
    """The report as Markdown."""

    name = "md"
    extensions = (".md", ".markdown")
    takes = "report"
    command = "report"
    help = "Markdown"

    def render(self, source: ExportSource, **options: Any) -> str:
        from wattwise.report._markdown import render_markdown

        return render_markdown(source.report)


class JsonExporter(TextExporter):
    """The report's data as indented JSON."""

    name = "json"
    extensions = (".json",)
    takes = "report"
    command = "report"
    help = "the report's data as JSON"

    def render(self, source: ExportSource, **options: Any) -> str:
        return render_json(source.report)


class HfCardExporter(TextExporter):
    """The Hugging Face model card's ``co2_eq_emissions`` block and section.

    Options: ``training_type`` (``fine-tuning`` | ``pre-training``), ``include_embodied``
    (bool), ``into`` (a model card file to merge into instead of writing to the stream).
    """

    name = "hf-card"
    extensions = (".md", ".markdown")
    takes = "report"
    command = "export"
    help = "Hugging Face model card (co2_eq_emissions, grams)"

    def _card(self, source: ExportSource, options: Mapping[str, Any]) -> HfCard:
        from wattwise.report._hf_card import hf_card

        return hf_card(
            source.report,
            training_type=str(options.get("training_type") or "fine-tuning"),
            include_embodied=bool(options.get("include_embodied")),
        )

    def render(self, source: ExportSource, **options: Any) -> str:
        return self._card(source, options).to_markdown()

    def write(self, source: ExportSource, stream: TextIO | None, **options: Any) -> list[str]:
        into = options.get("into")
        if not into:
            return super().write(source, stream, **options)
        from wattwise.report._hf_card import fixed_point, update_model_card

        card = self._card(source, options)
        path = update_model_card(into, card)
        emissions = fixed_point(float(card.co2_eq_emissions["emissions"])).removesuffix(".0")
        return [f"Updated {path.resolve()}: co2_eq_emissions = {emissions} g"]


class CodecarbonCsvExporter(TextExporter):
    """CodeCarbon's ``emissions.csv``, one row per run (emissions in kg, as CodeCarbon).

    Options: ``project_name`` (default: the project folder's name).
    """

    name = "codecarbon-csv"
    extensions = (".csv",)
    takes = "runs"
    command = "export"
    help = "CodeCarbon's emissions.csv (kg!)"

    def render(self, source: ExportSource, **options: Any) -> str:
        from wattwise.report._codecarbon import render_codecarbon_csv

        name = options.get("project_name") or source.store.path.resolve().parent.parent.name
        return render_codecarbon_csv(source.runs, project_name=str(name))


class BoampsExporter(TextExporter):
    """Boavizta's BoAmps JSON: one report, a measure per run (energy in kWh).

    Options: ``context`` (a JSON file, or a mapping, with what only the user knows:
    ``task``, ``header.publisher``...; see :mod:`wattwise.report._boamps`).
    """

    name = "boamps"
    extensions = (".json",)
    takes = "runs"
    command = "export"
    help = "Boavizta's BoAmps JSON report (kWh; task from --boamps-context)"

    def _report(self, source: ExportSource, options: Mapping[str, Any]) -> dict[str, Any]:
        from wattwise.report._boamps import boamps_report, load_context

        given = options.get("context")
        context = load_context(given) if isinstance(given, (str, os.PathLike)) else given
        return boamps_report(source.runs, context=context)

    def render(self, source: ExportSource, **options: Any) -> str:
        import json

        report = options.get("prebuilt") or self._report(source, options)
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"

    def write(self, source: ExportSource, stream: TextIO | None, **options: Any) -> list[str]:
        """Write the report; say what it lacks to be valid (a draft), if anything."""
        from wattwise.report._boamps import missing_fields

        report = self._report(source, options)
        super().write(source, stream, prebuilt=report)
        missing = missing_fields(report)
        if not missing:
            return []
        return [
            f"BoAmps draft: it lacks {', '.join(missing)}, which only you know; put them in a "
            f"JSON file shaped like the report, e.g. {_CONTEXT_EXAMPLE}, and pass it with "
            "--boamps-context FILE (every field: the documentation's explanation 'Reports')."
        ]


#: The smallest context that completes a BoAmps report's task, for the draft note.
_CONTEXT_EXAMPLE = (
    '{"task": {"taskStage": "training", "taskFamily": "image classification", '
    '"algorithms": [{"algorithmType": "neural network"}], '
    '"dataset": [{"dataUsage": "input", "dataType": "image"}]}}'
)


class MlflowExporter:
    """Each run into an MLflow tracking store: figures as ``wattwise.*`` metrics, sources as
    tags; writes no file.

    Options: ``tracking_uri`` (default: ``$MLFLOW_TRACKING_URI``, else an SQLite store
    beside the ledger), ``experiment_name`` (default ``wattwise``).
    """

    name = "mlflow"
    extensions: tuple[str, ...] = ()
    takes: Takes = "ledger"
    command: Command = "export"
    help = "logs the runs to an MLflow tracking store, writes no file"

    def write(self, source: ExportSource, stream: TextIO | None, **options: Any) -> list[str]:
        from wattwise.report._mlflow import default_tracking_uri, log_to_mlflow

        uri = str(options.get("tracking_uri") or default_tracking_uri(source.store))
        experiment = str(options.get("experiment_name") or "wattwise")
        done = log_to_mlflow(source.store, source.runs, tracking_uri=uri,
                             experiment_name=experiment)  # fmt: skip
        lines = [
            f"{item.wattwise_run_id[:12]} -> MLflow run {item.mlflow_run_id} "
            f"({'created' if item.created else 'updated'})"
            for item in done
        ]
        lines.append(f"Logged {len(done)} run(s) to {uri}, experiment '{experiment}'.")
        return lines

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def render_json(report: Report) -> str:
    """The report as indented JSON text (``wattwise report --format json``)."""
    import json

    return json.dumps(report.to_dict(), indent=2, default=str) + "\n"


_REGISTRY: dict[str, Exporter] = {}


def register_exporter(exporter: Exporter, *, replace: bool = False) -> None:
    """Add a format to the registry (both commands read it).

    Raises:
        InvalidParameterError: The object lacks what :class:`Exporter` needs, the name is
            taken (pass ``replace=True`` to replace it), or one of its extensions already
            means another format of the same command.
    """
    if not isinstance(exporter, Exporter) or exporter.takes not in ("report", "runs", "ledger"):
        msg = (
            f"{exporter!r} is not an exporter: it needs name, extensions, takes ('report', "
            "'runs' or 'ledger'), command, help and write(source, stream, **options)."
        )
        raise InvalidParameterError(msg)
    if exporter.command not in ("report", "export"):
        msg = (
            f"Exporter {exporter.name!r} has command {exporter.command!r}; it must be "
            "'report' or 'export'."
        )
        raise InvalidParameterError(msg)
    if exporter.name in _REGISTRY and not replace:
        msg = (
            f"An exporter named {exporter.name!r} is already registered; choose another "
            "name, or pass replace=True to replace it."
        )
        raise InvalidParameterError(msg)
    taken = extension_map(exporter.command)
    for ext in exporter.extensions:
        other = taken.get(ext.lower())
        if other is not None and other != exporter.name:
            msg = (
                f"Extension {ext!r} of exporter {exporter.name!r} already means "
                f"{other!r} for 'wattwise {exporter.command}'; give it another extension."
            )
            raise InvalidParameterError(msg)
    _REGISTRY[exporter.name] = exporter


def get_exporter(name: str) -> Exporter:
    """The registered format called ``name``.

    Raises:
        InvalidParameterError: No format has that name.
    """
    found = _REGISTRY.get(name)
    if found is None:
        msg = (
            f"No export format named {name!r}. Registered formats: "
            f"{', '.join(sorted(_REGISTRY))}."
        )
        raise InvalidParameterError(msg)
    return found


def exporters(command: Command | None = None) -> list[Exporter]:
    """The registered formats (those of one command), in registration order."""
    return [x for x in _REGISTRY.values() if command is None or x.command == command]


def format_names(command: Command) -> tuple[str, ...]:
    """The ``--format`` choices of a command."""
    return tuple(x.name for x in exporters(command))


def extension_map(command: Command) -> dict[str, str]:
    """File extension (lower case, with its dot) → format name, for a command's ``-o``."""
    return {ext.lower(): x.name for x in exporters(command) for ext in x.extensions}


def _register_builtins(items: Sequence[Exporter]) -> None:
    for item in items:
        register_exporter(item)


_register_builtins([
    HtmlExporter(), MarkdownExporter(), JsonExporter(),
    HfCardExporter(), CodecarbonCsvExporter(), MlflowExporter(), BoampsExporter(),
])  # fmt: skip
