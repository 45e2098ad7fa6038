from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from report_support import XSS, project_ledger

from wattwise.report import build_report, render_html, render_json, render_markdown
from wattwise.store import open_store


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        for key, value in attrs:
            if key == "id" and value:
                self.ids.add(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def ledger_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # module-scoped: build once in its own project folder
    import os

    cwd = os.getcwd()
    project = tmp_path_factory.mktemp("render") / "project"
    (project / ".wattwise").mkdir(parents=True)
    os.chdir(project)
    try:
        os.environ["WATTWISE_REGION"] = "FR"
        ids = project_ledger()
        store = open_store()
        project_report = build_report(store)
        out = {
            "html": render_html(project_report),
            "md": render_markdown(project_report),
            "json": render_json(project_report),
            "run_html": render_html(build_report(store, run=ids["real"])),
            "study_html": render_html(build_report(store, study=ids["study"])),
            "xss_html": render_html(build_report(store, run=ids["xss"])),
            "xss_md": render_markdown(build_report(store, run=ids["xss"])),
        }
        store.close()
    finally:
        os.chdir(cwd)
    return out


@pytest.mark.parametrize("key", ["html", "run_html", "study_html"])
def test_html_is_self_contained_and_loads_nothing(ledger_reports: dict[str, str],
                                                 key: str) -> None:  # fmt: skip
    html = ledger_reports[key]
    parsed = _Collector()
    parsed.feed(html)
    tags = {t for t, _ in parsed.tags}
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    assert "img" not in tags and "object" not in tags
    for tag, attrs in parsed.tags:
        for name in ("src", "srcset", "data", "action"):
            assert name not in attrs, (tag, attrs)
        href = attrs.get("href")
        if href is not None and tag != "a":
            pytest.fail(f"<{tag} href={href}> would load a resource")
    assert "@import" not in html and "url(" not in html
    csp = next(a for t, a in parsed.tags if t == "meta" and a.get("http-equiv"))
    assert "default-src 'none'" in str(csp["content"])
    assert html.startswith("<!doctype html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_html_has_every_section_and_labels_methods(ledger_reports: dict[str, str]) -> None:
    parsed = _Collector()
    parsed.feed(ledger_reports["html"])
    assert {"headline", "headline-energy", "headline-carbon", "includes", "timeline", "project",
            "studies", "runs", "setup", "sci", "methodology", "saved-pruning",
            "saved-reuse"} <= parsed.ids  # fmt: skip
    text = " ".join(parsed.text)
    assert "estimated" in text and "What these numbers include" in text
    assert "Saved by pruning" in text and "nothing reused from the cache yet" in text
    assert "Pareto front" in text and "FLOPs per joule" in text
    assert "Electricity Maps" in text and "ODbL-1.0" in text  # attribution required by ODbL
    assert "SCI = (E × I + M) / R" in text
    assert ledger_reports["html"].count("<svg") >= 4  # power, energy, cumulative x2, pareto


def test_user_text_is_escaped_everywhere(ledger_reports: dict[str, str]) -> None:
    for key in ("html", "md", "xss_html", "xss_md"):
        text = ledger_reports[key]
        assert XSS not in text, key
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, key
    html = ledger_reports["xss_html"]
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;" not in html  # title is the run name
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # name, title, tag, param
    parsed = _Collector()
    parsed.feed(html)
    assert "script" not in {t for t, _ in parsed.tags}
    assert XSS in "".join(parsed.text)  # shown as text


def test_study_report_without_studies_elsewhere(ledger_reports: dict[str, str]) -> None:
    html = ledger_reports["run_html"]
    assert 'id="studies"' not in html  # a single run has no study section
    assert "this run" in html


def test_markdown_has_tables_and_attributions(ledger_reports: dict[str, str]) -> None:
    md = ledger_reports["md"]
    assert md.startswith("# Project footprint")
    assert "| Figure | Value | How |" in md and "## Where the carbon went" in md
    assert "## Software Carbon Intensity (ISO/IEC 21031:2024)" in md
    assert "Electricity Maps" in md and "https://opendatacommons.org/licenses/odbl/1-0/" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    widths = {len(re.findall(r"(?<!\\)\|", line)) for line in rows if "Trial" not in line}
    assert widths  # every table row is well formed (escaped pipes do not split cells)


def test_json_round_trips_with_the_same_figures(ledger_reports: dict[str, str]) -> None:
    data = json.loads(ledger_reports["json"])
    assert data["wattwise_report_version"] == "1" and data["scope"] == "project"
    assert data["headline"]["counted_runs"] == 11
    assert sum(r["co2e_g"] for r in data["runs"]) == pytest.approx(data["headline"]["co2e_g"])
    assert data["sci"]["functional_unit"]["name"] == "training run"
    assert data["sci"]["market_based_instruments_applied"] is False
    assert data["studies"][0]["metric"] == "val_acc"
