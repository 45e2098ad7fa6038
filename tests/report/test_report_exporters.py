"""One Exporter protocol and registry for ``report`` and ``export``: the six formats, the
``-o`` extensions they claim, a format added by a user reaching both the API and the CLI,
and registration errors."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_support import project_ledger

import wattwise.report as rp
from wattwise.cli import main
from wattwise.exceptions import InvalidParameterError
from wattwise.store import open_store


def test_the_seven_formats_are_registered_with_what_they_take() -> None:
    table = {x.name: (x.command, x.takes, x.extensions) for x in rp.exporters()}
    assert table == {
        "html": ("report", "report", (".html", ".htm")),
        "md": ("report", "report", (".md", ".markdown")),
        "json": ("report", "report", (".json",)),
        "hf-card": ("export", "report", (".md", ".markdown")),
        "codecarbon-csv": ("export", "runs", (".csv",)),
        "mlflow": ("export", "ledger", ()),
        "boamps": ("export", "runs", (".json",)),
    }
    assert all(isinstance(x, rp.Exporter) for x in rp.exporters())
    # the -o mappings of issue 8, now read from the registry
    assert rp.extension_map("report") == {".html": "html", ".htm": "html", ".md": "md",
                                          ".markdown": "md", ".json": "json"}  # fmt: skip
    assert rp.extension_map("export") == {".md": "hf-card", ".markdown": "hf-card",
                                          ".csv": "codecarbon-csv", ".json": "boamps"}  # fmt: skip
    assert rp.format_names("export") == ("hf-card", "codecarbon-csv", "mlflow", "boamps")


def test_text_exporters_write_what_the_renderers_render() -> None:
    ids = project_ledger()
    store = open_store()
    source = rp.ExportSource(store, study=ids["study"])
    report = source.report  # built once: it carries the time it was generated
    expected = {
        "md": rp.render_markdown(report),
        "json": rp.render_json(report),
        "hf-card": rp.hf_card(report, training_type="pre-training").to_markdown(),
        "codecarbon-csv": rp.render_codecarbon_csv(
            rp.select_runs(store, study=ids["study"]).counted, project_name="demo"
        ),
    }
    options: dict[str, dict[str, Any]] = {
        "hf-card": {"training_type": "pre-training"}, "codecarbon-csv": {"project_name": "demo"},
    }  # fmt: skip
    for name, text in expected.items():
        stream = io.StringIO()
        assert rp.get_exporter(name).write(source, stream, **options.get(name, {})) == []
        assert stream.getvalue() == text, name
    stream = io.StringIO()
    rp.get_exporter("html").write(source, stream)
    assert stream.getvalue().startswith("<!doctype html>") and "lr-sweep" in stream.getvalue()
    with pytest.raises(InvalidParameterError, match="pass a stream"):
        rp.get_exporter("md").write(source, None)


class RunIds(rp.TextExporter):
    """A user's format: one run id a line."""

    name = "run-ids"
    extensions = (".ids",)
    takes = "runs"
    command = "export"
    help = "one run id a line"

    def render(self, source: rp.ExportSource, **options: Any) -> str:
        return "".join(f"{r.id}\n" for r in source.runs)


@pytest.fixture
def run_ids_format() -> Iterator[RunIds]:
    exporter = RunIds()
    rp.register_exporter(exporter)
    yield exporter
    from wattwise.report import _exporters

    del _exporters._REGISTRY[exporter.name]  # registered by this test only


def test_a_registered_format_reaches_the_export_command(
    run_ids_format: RunIds, capsys: pytest.CaptureFixture[str]
) -> None:
    project_ledger()
    assert rp.extension_map("export")[".ids"] == "run-ids"
    assert main(["export", "-o", "runs.ids"]) == 0  # chosen by the extension
    assert capsys.readouterr().out.startswith("Wrote ")
    counted = rp.select_runs(open_store()).counted
    assert Path("runs.ids").read_text(encoding="utf-8").split() == [r.id for r in counted]
    assert main(["export", "--format", "run-ids"]) == 0
    assert capsys.readouterr().out.split() == [r.id for r in counted]


def test_registration_errors_say_what_is_wrong(run_ids_format: RunIds) -> None:
    with pytest.raises(InvalidParameterError, match=r"already registered.*replace=True"):
        rp.register_exporter(RunIds())
    rp.register_exporter(run_ids_format, replace=True)

    class Clash(RunIds):
        name = "clash"
        extensions = (".CSV",)

    with pytest.raises(InvalidParameterError, match=r"'\.CSV' of exporter 'clash' already means "
                                                    r"'codecarbon-csv'"):  # fmt: skip
        rp.register_exporter(Clash())

    class Nowhere(RunIds):
        name = "nowhere"
        command = "publish"  # type: ignore[assignment]

    with pytest.raises(InvalidParameterError, match="must be 'report' or 'export'"):
        rp.register_exporter(Nowhere())
    with pytest.raises(InvalidParameterError, match="is not an exporter"):
        rp.register_exporter(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="No export format named 'pdf'"):
        rp.get_exporter("pdf")
    assert "clash" not in rp.format_names("export")
