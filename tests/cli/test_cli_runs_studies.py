"""``wattwise runs`` folds a tuning study's trials into its study's line (``--trials``
unfolds them), in the ledger's own query; ``--json`` the same. Real SQLite, real studies."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from cli_support import call, insert_run

import wattwise
from wattwise.store import NO_STUDY, BaseRunStore, get_store, open_store
from wattwise.store._memory import MemoryRunStore


def objective(trial: wattwise.tuning.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    trial.report(x * x, 0)
    if trial.number % 2:  # every other trial pruned: a count the line must show
        raise optuna.TrialPruned()
    return (x - 1) ** 2


@pytest.fixture
def ledger(isolated_project: Path) -> dict[str, wattwise.tuning.TuneResult]:
    studies = {}
    for name, n in (("first", 4), ("second", 3)):
        studies[name] = wattwise.tune(
            objective, n_trials=n, study_name=name, pruner=optuna.pruners.NopPruner(),
            seed=0, progress=False,
        )  # fmt: skip
    insert_run("loose")  # a run outside any study
    return studies


def test_trials_fold_into_their_study_line(ledger: dict[str, wattwise.tuning.TuneResult]) -> None:
    result = call("runs")
    assert result.code == 0, result.err
    lines = result.out.splitlines()[1:]
    assert len(lines) == 3  # two studies and the loose run: no trial line
    assert not any("#" in line for line in lines)  # trial runs are named study#N
    first, second = ledger["first"], ledger["second"]
    assert lines[0].startswith(second.study_id[:8])  # newest first, as before
    assert lines[1].startswith(first.study_id[:8])
    assert f"study first: 4 trial(s), 2 pruned, best {first.best_value:.6g}" in lines[1]
    assert f"study second: 3 trial(s), 1 pruned, best {second.best_value:.6g}" in lines[0]
    assert "loose" in lines[2]

    unfolded = call("runs", "--trials").out
    for result_ in ledger.values():
        for trial in result_.trials:
            assert f"  {trial.run_id[:8]}" in unfolded
    assert call("runs", "--limit", "1").out.splitlines()[-1] == (
        "2 more line(s) (a study is one); use --limit N, --offset 1 or --all."
    )
    page = call("runs", "--limit", "1", "--offset", "1").out.splitlines()
    assert page[1].startswith(first.study_id[:8]) and "1 more line(s)" in page[-1]


def test_show_study_lists_its_trials(ledger: dict[str, wattwise.tuning.TuneResult]) -> None:
    first = ledger["first"]
    result = call("show", first.study_id[:8])
    assert result.code == 0, result.err
    assert "  trials  4 (runs of this study):" in result.out
    rows = result.out.split("trials  4 (runs of this study):")[1].splitlines()[2:]
    assert [row.split()[:3] for row in rows] == [
        [f"#{t.number}", (t.run_id or "")[:8], t.state] for t in first.trials
    ]
    assert "trials " not in call("show", first.trials[0].run_id or "").out


def test_json_study_entries(ledger: dict[str, wattwise.tuning.TuneResult]) -> None:
    entries = json.loads(call("runs", "--json").out)
    assert [e["kind"] for e in entries] == ["study", "study", "python"]
    store = open_store()
    for entry, result in zip(entries[:2], (ledger["second"], ledger["first"]), strict=True):
        assert entry["id"] == result.study_id
        trials = store.list_runs(study_id=result.study_id)
        assert entry["trials"] == len(result.trials) == len(trials)
        assert entry["pruned_trials"] == result.summary["n_trials"]["pruned"]
        assert entry["best_value"] == result.best_value
        study_run = store.get_run(result.study_id)
        # the study's energy: its study run plus its trials, as the ledger has them
        assert entry["run_energy_j"] == study_run.energy_j
        assert entry["energy_j"] == pytest.approx(
            study_run.energy_j + sum(t.energy_j for t in trials)
        )
        assert "trial_runs" not in entry
    unfolded = json.loads(call("runs", "--json", "--trials").out)
    assert [t["id"] for t in unfolded[1]["trial_runs"]] == [
        r.id for r in store.list_runs(study_id=ledger["first"].study_id, newest_first=True)
    ]


@pytest.mark.parametrize("backend", ["sqlite", "memory", "postgresql"])
def test_no_study_filter_in_each_store(
    ledger: dict[str, wattwise.tuning.TuneResult], backend: str, request: pytest.FixtureRequest
) -> None:
    sqlite = open_store()
    if backend == "sqlite":
        store = sqlite
    else:
        url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
        store = get_store(url) if url else MemoryRunStore()
        for run in sqlite.list_runs():
            store.insert_run(run)
    try:
        check_outside(store, ledger["first"].study_id)
    finally:
        store.close()
        sqlite.close()


def check_outside(store: BaseRunStore, first_study: str) -> None:
    outside = store.list_runs(study_id=NO_STUDY, newest_first=True)
    assert [r.kind for r in outside] == ["study", "study", "python"]
    assert store.count_runs(study_id=NO_STUDY) == 3
    assert sum(r.runs for r in store.aggregate(study_id=NO_STUDY, top_level=False)) == 3
    assert store.count_runs() == 3 + 4 + 3
    assert len(store.list_runs(study_id=first_study)) == 4
