from __future__ import annotations

import time

import pytest
from report_support import XSS, fake_meter, insert_run, project_ledger, spin, tracked_run

import wattwise
from wattwise.exceptions import InvalidParameterError, RunNotFoundError
from wattwise.report import build_report, role_of, select_runs
from wattwise.store import ReuseEvent, open_store


@pytest.fixture
def ids() -> dict[str, str]:
    return project_ledger()


def test_project_report_sums_every_top_level_run_and_splits_by_role(ids: dict[str, str]) -> None:
    store = open_store()
    report = build_report(store)
    runs = store.list_runs()
    assert report.scope == "project" and report.headline.runs == len(runs) == 11
    assert report.headline.counted_runs == 11
    assert report.headline.energy_j == pytest.approx(sum(r.energy_j for r in runs))
    assert report.headline.co2e_g == pytest.approx(sum(r.co2e_g for r in runs))
    roles = {r.role: r for r in report.project.by_role}
    assert set(roles) == {"final", "tuning", "failed", "crashed"}
    assert roles["failed"].runs == 2  # the failed run and the failed trial
    assert roles["tuning"].runs == 5  # driver + 4 finished trials
    final = roles["final"].co2e_g
    assert report.project.not_final_share == pytest.approx(1 - final / report.headline.co2e_g)
    assert report.project.saved_by_pruning == {"energy_j": 20000.0, "co2e_g": 0.172,
                                               "studies": 1.0}  # fmt: skip
    assert report.project.saved_by_reuse == {"energy_j": 0.0, "co2e_g": 0.0, "hits": 0.0}
    # cumulative carbon ends at each role's total
    last: dict[str, float] = {}
    for _t, role, grams in report.project.cumulative:
        last[role] = grams
    assert last == pytest.approx({r: v.co2e_g for r, v in roles.items()})


def test_headline_flops_per_joule_uses_only_runs_that_recorded_flops(ids: dict[str, str]) -> None:
    report = build_report(open_store())
    with_flops = [r for r in report.runs if r.flops_total]
    assert {r.id for r in with_flops} == {ids["real"], ids["final"]}
    energy = sum(r.energy_j for r in with_flops)
    assert report.headline.flops_total == pytest.approx(3.2e9 + 4.5e13)
    assert report.headline.flops_per_j == pytest.approx((3.2e9 + 4.5e13) / energy)
    final = next(r for r in report.runs if r.id == ids["final"])
    assert final.samples_per_j == pytest.approx(60000 / 15000)


def test_study_report_has_points_and_recorded_pareto_front(ids: dict[str, str]) -> None:
    store = open_store()
    report = build_report(store, study=ids["study"][:8])
    assert report.scope == "study" and report.headline.runs == 6
    (study,) = report.studies
    assert study.metric == "val_acc" and study.direction == "maximize"
    assert study.front_source == "recorded" and len(study.points) == 5
    best = [p for p in study.points if p.is_best]
    assert [p.run_id for p in best] == [ids["best"]]
    assert sum(p.on_front for p in study.points) == 4
    assert report.project.saved_by_pruning["co2e_g"] == pytest.approx(0.172)
    # a study driver given as a run gives the same study report
    again = build_report(store, run=ids["study"])
    assert again.scope == "study" and [p.run_id for p in again.studies[0].points] == [
        p.run_id for p in study.points
    ]


def test_run_report_has_the_run_power_timeline_per_component(ids: dict[str, str]) -> None:
    report = build_report(open_store(), run=ids["real"])
    assert report.scope == "run" and report.headline.runs == 1
    assert report.timeline is not None and report.timeline.why == "this run"
    assert set(report.timeline.series) == {"cpu", "dram"}
    assert report.timeline.methods == {"cpu": "model", "dram": "model"}
    cpu = report.timeline.series["cpu"]
    # The run's last sample is its final read of the meters: the energy so far there is the
    # run's CPU energy, whatever the machine's load did to the samples before it.
    totals = {c.component: c.energy_j for c in report.headline.components}
    assert cpu[-1][2] == pytest.approx(totals["cpu"], rel=1e-9)
    assert report.headline.method_label == "estimated (model)"
    assert any("CPU energy" in x and "estimated" in x for x in report.includes)
    assert any("Embodied" in x for x in report.excludes)
    assert report.sci is not None and report.sci.runs == 1
    used = {c.file for c in report.credits if c.used}
    assert "grid/electricitymaps_yearly_2025_lifecycle.json" in used
    assert "embodied/embodied_reference_values.csv" in used


def test_nested_runs_are_shown_but_counted_inside_their_parent() -> None:
    with (
        wattwise.track("outer", meters=[fake_meter()], interval_s=0.05) as outer,
        wattwise.track("inner", meters=[fake_meter()], interval_s=0.05),
    ):
        spin(0.1)
    report = build_report(open_store(), run=outer.id)
    assert report.headline.runs == 2 and report.headline.counted_runs == 1
    inner = next(r for r in report.runs if r.name == "inner")
    assert not inner.counted and inner.parent_id == outer.id
    assert report.headline.energy_j == pytest.approx(outer.result.energy_j)
    assert any("nested" in x for x in report.includes)


def test_trials_without_a_recorded_front_get_a_computed_one() -> None:
    store = open_store()
    driver = insert_run(store, "sweep", kind="study")
    for name, loss, energy in [("a", 0.5, 100), ("b", 0.3, 300), ("c", 0.4, 400),
                               ("d", 0.2, 900)]:  # fmt: skip
        insert_run(store, name, kind="trial", study_id=driver, energy_j=energy,
                   metrics={"val_loss": loss})  # fmt: skip
    (study,) = build_report(store, study=driver).studies
    assert study.front_source == "computed" and study.direction == "minimize"
    assert {p.name for p in study.points if p.on_front} == {"a", "b", "d"}
    assert not any(p.is_best for p in study.points)


def test_saved_by_reuse_comes_from_the_ledger_cache_hits(ids: dict[str, str]) -> None:
    store = open_store()
    assert build_report(store).project.saved_by_reuse == {"energy_j": 0.0, "co2e_g": 0.0,
                                                          "hits": 0.0}  # fmt: skip
    for consumer, joules in ((ids["final"], 7200.0), (ids["final"], 3600.0), (None, 1000.0)):
        store.add_reuse(ReuseEvent(
            at=time.time(), cache_key="k" * 64, function="m:embed", producer_run_id=ids["real"],
            consumer_run_id=consumer, energy_avoided_j=joules,
            co2e_avoided_g=joules / 3.6e6 * 31, duration_avoided_s=1.0, method="estimated",
            basis="FR 2025", cache_url="file:///cache",
        ))  # fmt: skip
    project = build_report(store).project.saved_by_reuse
    assert project == {"energy_j": 11800.0, "co2e_g": pytest.approx(11800 / 3.6e6 * 31),
                       "hits": 3.0}  # fmt: skip
    run = build_report(store, run=ids["final"]).project.saved_by_reuse
    assert run["hits"] == 2.0 and run["energy_j"] == 10800.0
    assert build_report(store, run=ids["real"]).project.saved_by_reuse["hits"] == 0.0


def test_user_text_is_kept_verbatim_in_the_model(ids: dict[str, str]) -> None:
    report = build_report(open_store(), run=ids["xss"])
    assert report.runs[0].name == XSS and report.runs[0].tags == [XSS]
    assert report.to_dict()["runs"][0]["params"] == {"note": XSS}


def test_role_of_statuses_and_kinds(ids: dict[str, str]) -> None:
    store = open_store()
    roles = {r.name: role_of(r) for r in store.list_runs()}
    assert roles["oom-attempt"] == "failed" and roles["killed-by-scheduler"] == "crashed"
    assert roles["lr-sweep"] == "tuning" and roles["trial-0"] == "tuning"
    assert roles["trial-4"] == "failed" and roles["final-train"] == "final"


def test_errors_say_what_to_do() -> None:
    store = open_store()
    with pytest.raises(RunNotFoundError, match="no runs yet"):
        build_report(store)
    run_id = tracked_run("solo", seconds=0.1)
    with pytest.raises(InvalidParameterError, match="not both"):
        select_runs(store, run=run_id, study=run_id)
    with pytest.raises(RunNotFoundError, match="not a tuning study"):
        build_report(store, study=run_id)
    with pytest.raises(RunNotFoundError, match="wattwise runs"):
        build_report(store, run="ffffffffff")
