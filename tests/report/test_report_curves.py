"""Learning curves in the report: the user's metrics over steps with the energy spent, the
Green AI plot, energy per epoch; read for the runs shown only. Real SQLite, real runs."""

from __future__ import annotations

import time
from typing import Any

import pytest
from report_support import fake_meter, insert_run, project_ledger, spin

import wattwise
from wattwise.report import build_report, render_html, render_markdown
from wattwise.report._curves import MAX_CURVE_RUNS
from wattwise.store import open_store


def _log(store: Any, run_id: str, points: list[tuple[int, str, float]], start: float) -> None:
    store.flush_run(run_id, {}, metrics=[(s, k, v, start + 1 + s) for s, k, v in points])


def test_a_tracked_run_has_its_curves_with_energy_from_its_samples() -> None:
    with wattwise.track("curvy", meters=[fake_meter()], interval_s=0.05) as run:
        for epoch in range(4):
            spin(0.15)
            run.log(step=epoch, val_acc=0.5 + 0.1 * epoch, train_loss=1 / (epoch + 1),
                    epoch=epoch)  # fmt: skip
    store = open_store()
    report = build_report(store, run=run.id)
    [curves] = report.curves
    assert curves.run_id == run.id
    assert set(curves.metrics) == {"val_acc", "train_loss"}  # "epoch" is not a curve
    acc = curves.metrics["val_acc"]
    assert [s for s, _, _ in acc] == [0.0, 1.0, 2.0, 3.0]
    assert [v for _, v, _ in acc] == pytest.approx([0.5, 0.6, 0.7, 0.8])
    energies = [en for _, _, en in acc]
    assert all(en is not None for en in energies)
    assert energies == sorted(energies) and energies[-1] > energies[0] > 0  # type: ignore[operator]
    assert energies[-1] <= report.runs[0].energy_j * 1.0001  # type: ignore[operator]
    assert curves.energy_source == "samples"
    assert [ep.epoch for ep in curves.epochs] == [0.0, 1.0, 2.0, 3.0]
    assert sum(ep.energy_j for ep in curves.epochs) == pytest.approx(energies[-1])
    assert "power samples" in (curves.epoch_source or "")
    page = render_html(report)
    assert 'id="green-ai"' in page and 'id="epoch-energy"' in page and "val_acc" in page
    assert report.to_dict()["curves"][0]["metrics"]["val_acc"][3]["value"] == pytest.approx(0.8)
    text = render_markdown(report)
    assert "| val\\_acc first | val\\_acc last |" in text and "| 0.5000 | 0.8000 |" in text


def test_energy_logged_at_a_step_wins_and_callback_epochs_are_used_as_logged() -> None:
    store = open_store()
    start = time.time() - 100
    rid = insert_run(store, "lightning-like", started_at=start, duration_s=60, energy_j=900)
    points = []
    for step in range(3):
        points += [(step, "val_loss", 1.0 - 0.2 * step),
                   (step, "wattwise/energy_j", 300.0 * (step + 1)),
                   (step, "wattwise/epoch", float(step)),
                   (step, "wattwise/epoch_energy_j", 290.0 + step),
                   (step, "wattwise/epoch_duration_s", 20.0)]  # fmt: skip
    _log(store, rid, points, start)
    [curves] = build_report(store, run=rid).curves
    assert set(curves.metrics) == {"val_loss"}  # wattwise/ names are ours, not curves
    assert [en for _, _, en in curves.metrics["val_loss"]] == [300.0, 600.0, 900.0]
    assert curves.energy_source == "logged"
    assert [(ep.epoch, ep.energy_j, ep.duration_s) for ep in curves.epochs] == [
        (0.0, 290.0, 20.0), (1.0, 291.0, 20.0), (2.0, 292.0, 20.0)]  # fmt: skip


def test_study_trials_show_the_user_metric_never_tunings_internal_names() -> None:
    store = open_store()
    now = time.time()
    driver = insert_run(store, "sweep", kind="study", started_at=now - 5000, duration_s=3000)
    for i in range(3):
        start = now - 4900 + i * 600
        trial = insert_run(store, f"trial-{i}", kind="trial", study_id=driver, energy_j=1000,
                           started_at=start, duration_s=500)  # fmt: skip
        points = []
        for step in range(4):
            acc = 0.6 + 0.05 * step + 0.01 * i
            points += [(step, "value", acc), (step, "energy_j", 200.0 * (step + 1) + i)]
        points += [(4, "objective", acc), (4, "val_acc", acc)]
        _log(store, trial, points, start)
    report = build_report(store, study=driver)
    assert len(report.curves) == 3
    for c in report.curves:
        assert "objective" not in c.metrics and "value" not in c.metrics
        trial_curve = c.metrics["value (trial reports)"]
        assert [en for _, _, en in trial_curve][:2] == [pytest.approx(200.0, abs=3),
                                                        pytest.approx(400.0, abs=3)]
        assert [ep.energy_j for ep in c.epochs] == pytest.approx([200.0 + int(c.name[-1])]
                                                                 + [200.0] * 3)  # fmt: skip
        assert "trial's reports" in (c.epoch_source or "")
    page = render_html(report)
    runs_table = page[page.index('id="runs"'):page.index('id="setup"')]
    assert ">val_acc<" in runs_table and ">objective<" not in runs_table
    assert "val_acc (objective)" in page  # the scatter's y axis is named after the metric
    text = render_markdown(report)
    assert "val\\_acc (objective) versus energy" in text and "## Learning and cost" in text


def test_the_runs_table_shows_user_metrics_and_the_scatter_names_them() -> None:
    project_ledger()
    page = render_html(build_report(open_store()))
    runs_table = page[page.index('id="runs"'):page.index('id="setup"')]
    assert '<th class="n">val_acc</th>' in runs_table
    assert "objective" not in runs_table


def test_curves_are_read_for_the_runs_shown_only(monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store()
    now = time.time()
    for i in range(3 * MAX_CURVE_RUNS):
        start = now - 10_000 + i * 100
        rid = insert_run(store, f"run-{i}", started_at=start, duration_s=50)
        _log(store, rid, [(s, "val_acc", 0.1 * s) for s in range(3)], start)
    asked: list[list[str] | None] = []
    real = store.iter_metrics

    def spy(run_ids: Any = None) -> Any:
        asked.append(None if run_ids is None else list(run_ids))
        return real(run_ids)

    monkeypatch.setattr(store, "iter_metrics", spy)
    report = build_report(store)
    assert len(report.curves) == MAX_CURVE_RUNS
    assert [c.name for c in report.curves][:2] == [f"run-{3 * MAX_CURVE_RUNS - 1}",
                                                   f"run-{3 * MAX_CURVE_RUNS - 2}"]  # newest
    assert asked and all(ids is not None and len(ids) <= 2 * MAX_CURVE_RUNS for ids in asked)


def test_a_project_without_step_metrics_says_how_to_get_curves() -> None:
    store = open_store()
    insert_run(store, "one", metrics={"val_acc": 0.9})
    insert_run(store, "two", metrics={"val_acc": 0.8})
    report = build_report(store)
    assert report.curves == []
    assert "run.log(step=epoch, val_acc=...)" in render_html(report)


def test_a_metric_named_like_markup_stays_text_in_headings_and_phone_labels() -> None:
    store = open_store()
    start = time.time() - 100
    name = 'val_<script>alert("x")</script>'
    rid = insert_run(store, "markup", started_at=start, metrics={name: 0.5})
    _log(store, rid, [(s, name, 0.1 * s) for s in range(3)], start)
    page = render_html(build_report(store))
    assert "<script>" not in page
    assert 'data-label="val_&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"' in page
