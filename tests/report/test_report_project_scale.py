"""The project view of a large project: grouped, summarised, metrics read only where shown."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from wattwise.report import _model as model
from wattwise.report import build_report, render_html, render_markdown
from wattwise.store import (
    ComponentEnergy,
    RunRecord,
    RunStatus,
    SQLiteRunStore,
    get_store,
    last_metrics,
)

T0 = 1_750_000_000.0  # 2025-06-15
DAY = 86400.0


def _add(store: SQLiteRunStore, i: int, *, study: str | None = None, kind: str = "python",
         energy: float | None = None, user: str | None = None) -> str:  # fmt: skip
    rid = uuid.uuid4().hex
    start = T0 + (i % 120) * DAY
    e = energy if energy is not None else 1000.0 + i
    store.insert_run(RunRecord(
        id=rid, name=f"run-{i}", kind=kind, status=RunStatus.RUNNING, started_at=start,
        heartbeat_at=start, host=f"host{i % 3}", pid=1, study_id=study, region="FR",
        tags=["a", "b"] if i % 2 else [], user=user if user is not None else f"u{i % 4}",
        components=[ComponentEnergy("cpu", e, e, e * 0.1, "model", "cpu-model", "test")],
    ))  # fmt: skip
    store.flush_run(
        rid,
        {"status": RunStatus.FINISHED, "ended_at": start + 60, "duration_s": 60.0,
         "heartbeat_at": start + 60, "energy_j": e, "co2e_g": e / 1000},
        metrics=[(s, "loss", 1.0 / (s + 1), start + s) for s in range(5)],
    )  # fmt: skip
    return rid


def _large(path: Path, runs: int) -> tuple[SQLiteRunStore, list[str], str]:
    store = SQLiteRunStore(path)
    drivers = [_add(store, 10_000 + k, kind="study", energy=1.0) for k in range(12)]
    for i in range(runs):
        study = drivers[(i // 2) % 12] if i % 2 else None
        _add(store, i, study=study, kind="trial" if study else "python")
    big = _add(store, 99_999, energy=1e9, user="hungry")
    return store, drivers, big


def test_large_project_is_grouped_and_summarised(tmp_path: Path) -> None:
    store, drivers, big = _large(tmp_path / "l.db", model.LARGE_PROJECT_RUNS + 50)
    report = build_report(store)
    pv = report.project
    counted = [r for r in report.runs if r.counted]
    assert pv.summarised and pv.counted_runs == len(counted) > model.LARGE_PROJECT_RUNS
    # Cumulative carbon per month (the project spans four months), exact at each point.
    assert pv.bucket == "month"
    assert len(pv.cumulative) <= 5 * len(pv.by_role)
    for role in pv.by_role:
        last = [g for _t, r, g in pv.cumulative if r == role.role][-1]
        assert last == pytest.approx(role.co2e_g)
    total = sum(r.co2e_g for r in counted)
    for grouping in ("user", "host", "month"):
        assert sum(g.co2e_g for g in pv.groups[grouping]) == pytest.approx(total)
        assert sum(g.runs for g in pv.groups[grouping]) == len(counted)
    assert pv.groups["user"][0].group == "hungry"  # the largest carbon first
    tags = {g.group: g.runs for g in pv.groups["tag"]}
    assert tags["a"] == tags["b"] == sum(1 for r in counted if "a" in r.tags)
    assert tags[None] == sum(1 for r in counted if not r.tags)
    assert [g.group for g in pv.groups["month"]] == sorted(g.group for g in pv.groups["month"])
    # The runs that used the most energy, the biggest first.
    assert pv.top_runs[0].id == big and len(pv.top_runs) == model.TOP_RUNS
    assert [r.energy_j for r in pv.top_runs] == sorted(
        (r.energy_j for r in counted), reverse=True
    )[: model.TOP_RUNS]
    # Every study is a row; the ones that used the most energy are shown in full.
    assert {s.id for s in pv.studies} == set(drivers)
    assert len(report.studies) == model.TOP_STUDIES
    assert {s.id for s in report.studies} == {s.id for s in pv.studies if s.shown}
    assert [s.energy_j for s in pv.studies] == sorted((s.energy_j for s in pv.studies),
                                                      reverse=True)  # fmt: skip
    # Metrics were read for what is shown (trials of shown studies, newest, top runs) only.
    shown_trials = {r.id for r in report.runs if r.study_id in {s.id for s in report.studies}}
    by_id = {r.id: r for r in report.runs}
    assert all(by_id[i].metrics.get("loss") == 0.2 for i in shown_trials if i not in drivers)
    shown_ids = {s.id for s in report.studies}
    hidden = [r for r in report.runs if r.study_id and r.study_id not in shown_ids]
    assert hidden and any("loss" not in r.metrics for r in hidden)
    html, md = render_html(report), render_markdown(report)
    for needle in ('id="by-user"', 'id="by-month"', 'id="top-runs"', 'id="study-totals"',
                   "hungry", "summed per month"):  # fmt: skip
        assert needle in html, needle
    for needle in ("### By user", "### By tag", "runs that used the most energy",
                   "### Tuning studies (12)"):  # fmt: skip
        assert needle in md, needle
    data = json.loads(json.dumps(report.to_dict()))
    assert data["project"]["summarised"] is True
    assert data["project"]["top_runs"][0]["id"] == big


def test_small_project_is_shown_run_by_run(tmp_path: Path) -> None:
    store = SQLiteRunStore(tmp_path / "s.db")
    ids = [_add(store, i) for i in range(5)]
    report = build_report(store)
    pv = report.project
    assert not pv.summarised and pv.bucket is None
    assert len(pv.cumulative) == 5
    assert all(r.metrics.get("loss") == 0.2 for r in report.runs)
    assert {g.group for g in pv.groups["user"]} == {"u0", "u1", "u2", "u3"}
    assert "id=\"top-runs\"" not in render_html(report)
    assert set(ids) == {r.id for r in report.runs}


def test_report_time_grows_with_what_is_shown_not_with_every_metric(tmp_path: Path) -> None:
    """A summarised project reads metrics for a bounded set of runs (not a timing test)."""
    store, _drivers, _big = _large(tmp_path / "l.db", 600)
    seen: list[int] = []
    real = model.last_metrics

    def counting(st: object, run_ids: list[str]) -> dict[str, dict[str, float]]:
        seen.append(len(run_ids))
        return real(st, run_ids)

    model.last_metrics = counting  # type: ignore[assignment]
    try:
        build_report(store)
    finally:
        model.last_metrics = real
    per_study = 600 // 2 // 12 + 1  # its trials and the driver
    limit = model.MAX_TABLE_RUNS + model.TOP_RUNS + model.TOP_STUDIES * per_study
    assert len(seen) == 1 and seen[0] <= limit
    assert limit < 600 + 13  # fewer than every run of the ledger


@pytest.mark.parametrize("url", ["sqlite", "memory"])
def test_last_metrics_is_the_last_point_of_each_key(tmp_path: Path, url: str) -> None:
    where = str(tmp_path / "m.db") if url == "sqlite" else f"memory://lm-{time.time_ns()}"
    store = get_store(where)
    rid = uuid.uuid4().hex
    store.insert_run(RunRecord(id=rid, name="m", kind="python", status=RunStatus.RUNNING,
                               started_at=T0, heartbeat_at=T0, host="h", pid=1))  # fmt: skip
    store.flush_run(rid, {}, metrics=[(0, "a", 1.0, T0), (1, "b", 5.0, T0), (2, "a", 3.0, T0)])
    store.flush_run(rid, {}, metrics=[(3, "a", 2.0, T0)])
    assert last_metrics(store, [rid, "missing"]) == {rid: {"a": 2.0, "b": 5.0}}


def _setup_run(store: SQLiteRunStore, i: int, host: str, record: dict[str, object],
               parts: list[str]) -> str:  # fmt: skip
    rid = uuid.uuid4().hex
    comps = [ComponentEnergy(c, 1.0, 1.0, None, "model", f"{c}-model", "test") for c in parts]
    store.insert_run(RunRecord(
        id=rid, name=f"s{i}", kind="python", status=RunStatus.FINISHED, started_at=T0 + i,
        heartbeat_at=T0 + i, host=host, pid=1, record=record, components=comps,
    ))  # fmt: skip
    return rid


@pytest.mark.parametrize("url", ["sqlite", "memory://setup-groups"])
def test_the_project_setup_and_credits_from_the_store_match_the_runs(
    tmp_path: Path, url: str
) -> None:
    """The project view reads the setup and the data credits through the store's groups
    and text search; they are the ones read run by run."""
    store = get_store(str(tmp_path / "l.db") if url == "sqlite" else url)
    hw = {"cpu": {"model_name": "EPYC 7B13", "sockets": 2, "threads": 64}, "ram_gb": 256,
          "gpus": [{"name": "A100"}]}  # fmt: skip
    meters = {"cpu-model": {"method": "model", "source": "calibration/specpower_bands.csv",
                            "details": {"covers": "wall power share"},
                            "assumptions": ["TDP 280 W"]}}  # fmt: skip
    loc = {"display_name": "France", "zone": "FR", "how": "env"}
    inten = {"g_per_kwh": 31.0, "scope": "lifecycle",
             "file": "grid/electricitymaps_yearly_2024.csv"}  # fmt: skip
    records: list[tuple[str, dict[str, object], list[str]]] = [
        ("h1", {"hardware": hw, "meters": meters, "location": loc, "intensity": inten,
                "pue": {"value": 1.0, "source": "own"},
                "attribution": {"cpu": "cpu time share", "gpu": "not used here"}}, ["cpu"]),
        ("h1", {"hardware": hw, "meters": meters, "location": loc, "intensity": inten,
                "pue": {"value": 1.0, "source": "own"}}, ["cpu"]),
        ("h2", {"hardware": {**hw, "ram_gb": 512}, "location": {**loc, "warning": "guessed"},
                "intensity": {**inten, "g_per_kwh": 56.0}, "pue": {"value": 1.2, "source": "x"},
                "attribution": {"gpu": "whole device"}, "loss": float("nan")}, ["cpu", "gpu"]),
        ("h3", {}, []),
        ("h1", {"hardware": hw, "location": loc, "intensity": inten, "summary": {"acc": 1}},
         ["cpu"]),
    ]  # fmt: skip
    ids = [_setup_run(store, i, host, rec, parts)
           for i, (host, rec, parts) in enumerate(records)]  # fmt: skip
    store.annotate_run(ids[3], "location", {"display_name": "Sweden", "zone": "SE"})
    runs = store.list_runs()
    assert model._project_setup(store) == model._setup(runs)
    from_store = model._credits(store, "project", runs, None)
    one_by_one = model.data_credits([r.record for r in runs])
    assert from_store == one_by_one
    assert {c.file for c in from_store if c.used} >= {"grid/electricitymaps_yearly_2024.csv",
                                                      "calibration/specpower_bands.csv"}
    store.close()
