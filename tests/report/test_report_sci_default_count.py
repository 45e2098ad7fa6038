"""The report's SCI says what R is: by default the final runs, never a silent 1."""

from __future__ import annotations

import json

import pytest
from report_support import insert_run

from wattwise.cli import main
from wattwise.report import build_report, render_html, render_markdown
from wattwise.store import open_store


def _project(finals: int, trials: int) -> list[str]:
    store = open_store()
    ids = [insert_run(store, "learn.py", energy_j=3600.0) for _ in range(finals)]
    ids += [insert_run(store, "trial", kind="trial", energy_j=3600.0) for _ in range(trials)]
    return ids


def test_project_r_is_its_final_runs_and_every_view_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _project(finals=2, trials=5)
    report = build_report(open_store())
    sci = report.sci
    assert sci is not None
    total = sci.operational_g + sci.embodied_g
    assert sci.count == 2.0 and sci.sci_g_per_unit == pytest.approx(total / 2)
    assert sci.is_default_count
    assert sci.count_source.startswith("default: the 2 final run(s) of the project")
    assert "7 counted runs" in sci.count_source and "--count R" in sci.count_source
    assert "R = 2 × training run (default: --count sets it)" in render_html(report)
    assert "R = 2 × training run: default: the 2 final run(s)" in render_markdown(report)

    assert main(["report", "--format", "json", "-o", "-"]) == 0
    data = json.loads(capsys.readouterr().out)["sci"]
    assert data["functional_unit"]["count"] == 2.0
    assert data["functional_unit"]["source"].startswith("default: the 2 final run(s)")


def test_a_given_count_is_the_users_and_a_run_is_one() -> None:
    ids = _project(finals=2, trials=1)
    given = build_report(open_store(), functional_unit="1k inferences", count=10).sci
    assert given is not None and given.count == 10.0 and not given.is_default_count
    assert given.r_short == "R = 10 × 1k inferences"
    unit_only = build_report(open_store(), functional_unit="epoch").sci
    assert unit_only is not None and unit_only.count == 1.0
    assert unit_only.count_source.startswith("default: 1, no --count given")
    one = build_report(open_store(), run=ids[0]).sci
    assert one is not None and one.count == 1.0
    assert one.count_source.startswith("default: this run is 1 training run")


def test_without_a_final_run_r_is_one_for_the_whole_selection_and_says_so() -> None:
    _project(finals=0, trials=3)
    sci = build_report(open_store()).sci
    assert sci is not None and sci.count == 1.0
    assert sci.count_source.startswith("default: no final run in the project, so its 3 counted")


def test_sci_command_states_r_on_its_first_line(capsys: pytest.CaptureFixture[str]) -> None:
    _project(finals=1, trials=2)
    assert main(["sci", "--functional-unit", "model", "--count", "3"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "per model  (R = 3 model over 3 run(s), project)" in first
