"""The report's study section says what the pruner's step was, in one line, as ``wattwise
show`` does: HTML and Markdown (issue 12; in headless Chromium:
``test_report_study_fidelity_browser.py``). A study recorded without it shows nothing new.

Real studies (``wattwise.tune``, real Optuna, the project's real SQLite ledger) with a fake
meter on a scripted clock, so each complete trial costs exactly ``TRAINING_J``.
"""

from __future__ import annotations

import html
import re
import time
import uuid
from typing import Any

import optuna

import wattwise
from study_support import ScriptedClock, scripted_run_options, study_record
from wattwise._units import energy
from wattwise.report import build_report, render_html, render_markdown
from wattwise.report._markdown import md
from wattwise.store import RunRecord, RunStatus, open_store

POWER_W = 10.0
REPORT_S = 0.5  # 5 J between reports, exact in binary floating point
REPORTS = 8
TRAINING_J = POWER_W * REPORT_S * REPORTS  # 40 J


def study(**kwargs: Any) -> wattwise.tuning.TuneResult:
    """A real study of 3 trials (the default pruner, energy as the fidelity)."""
    clock = ScriptedClock()

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(REPORTS):
            clock.t += REPORT_S
            trial.report(x, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    return wattwise.tune(
        objective, n_trials=3, seed=0, progress=False,
        run_options=scripted_run_options(clock, POWER_W),
        **kwargs,
    )  # fmt: skip


def expected_line(study_id: str) -> str:
    """The line, composed from the study record the ledger holds."""
    record = study_record(study_id)
    fid = record.energy_fidelity
    assert fid["calibrated_on_energy_j"] == TRAINING_J  # one whole trial, measured
    return (
        f"energy: 1 step = {energy(fid['step_j'])} (1/{fid['steps_per_training']} of trial "
        f"{fid['calibrated_on_trial']}'s {energy(fid['calibrated_on_energy_j'])}, its first "
        f"complete trial); pruner {record.pruner} (min_resource 6, reduction_factor 2)"
    )


def dd_after(page: str, term: str) -> list[str]:
    """The text of each ``<dd>`` that follows a ``<dt>term</dt>``, unescaped."""
    return [html.unescape(m) for m in re.findall(
        rf"<dt>{re.escape(term)}</dt><dd>(.*?)</dd>", page)]  # fmt: skip


def test_html_and_markdown_show_the_energy_unit_of_a_study() -> None:
    result = study()
    line = expected_line(result.study_id)
    assert line.startswith("energy: 1 step = 1.25 J (1/32 of trial 0's 40.0 J,")
    store = open_store()
    try:
        for report in (build_report(store, study=result.study_id), build_report(store)):
            assert [s.fidelity for s in report.studies] == [line]
            assert dd_after(render_html(report), "fidelity") == [line]
            text = render_markdown(report)
            assert text.count("Fidelity: ") == 1
            assert f"\nFidelity: {md(line)}\n" in text
            # the section is the study's: after its heading and trials' table
            assert text.index(f"## Study {md(result.study_name)}") < text.index("Fidelity: ")
    finally:
        store.close()


def test_fidelity_off_and_a_record_without_it() -> None:
    off = study(energy_fidelity=False, pruner=optuna.pruners.MedianPruner(),
                study_name="off")  # fmt: skip
    # a driver whose record is a real study's less the fidelity (an older wattwise's)
    older = dict(study(study_name="older").summary)
    older.pop("energy_fidelity")
    store = open_store()
    try:
        run_id, now = uuid.uuid4().hex, time.time()
        store.insert_run(RunRecord(
            id=run_id, name="older-study", kind="study", status=RunStatus.RUNNING,
            started_at=now - 10, heartbeat_at=now, host="testhost", pid=999_999, region="FR",
            record={"extra": {"study": older}},
        ))  # fmt: skip
        store.flush_run(run_id, {"status": RunStatus.FINISHED, "ended_at": now,
                                 "duration_s": 10.0, "energy_j": 1.0})  # fmt: skip
        report = build_report(store, study=off.study_id)
        words = ("report steps (the pruner sees each report's own step); pruner MedianPruner"
                 " (interval_steps 1, n_min_trials 1, n_startup_trials 5)")  # fmt: skip
        assert dd_after(render_html(report), "fidelity") == [words]
        assert f"Fidelity: {md(words)}" in render_markdown(report)

        report = build_report(store, study=run_id)
        assert [s.fidelity for s in report.studies] == [None]
        assert "<dt>fidelity</dt>" not in render_html(report)
        assert "Fidelity:" not in render_markdown(report)
    finally:
        store.close()
