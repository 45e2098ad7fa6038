"""Ray placements and per-node totals in records; argument checks of wattwise.ray_tune.

No Ray cluster here (see test_ray_tune_cluster.py for the real thing).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from wattwise.exceptions import InvalidParameterError
from wattwise.tuning import RayPlacement, StudyRecord, totals_by_node

NODE_A = "a" * 56
NODE_B = "b" * 56


@dataclasses.dataclass
class FakeRun:
    """What StudyRecord.node_totals reads of a run (a RunRecord has the same attributes)."""

    record: dict[str, Any]
    energy_j: float
    co2e_g: float


def on(node: str | None, energy_j: float, co2e_g: float) -> FakeRun:
    extra = {} if node is None else {"ray": {"node_id": node, "job_id": "01000000"}}
    return FakeRun({"extra": extra}, energy_j, co2e_g)


def test_a_placement_reads_back_what_it_wrote_and_keeps_unknown_keys() -> None:
    written = {"node_id": NODE_A, "job_id": "02000000", "trial_id": "abc_00001",
               "ended": "returned", "study_id": "f" * 32}  # fmt: skip
    placement = RayPlacement.from_record({"extra": {"ray": written}})
    assert placement is not None
    assert (placement.node_id, placement.job_id, placement.trial_id) == (
        NODE_A, "02000000", "abc_00001",
    )  # fmt: skip
    assert placement.other == {"ended": "returned", "study_id": "f" * 32}
    assert placement.to_record() == written
    assert RayPlacement.from_record({"extra": {"trial": {}}}) is None
    odd = RayPlacement.from_dict({"node_id": 7, "job_id": ""})  # a record written by hand
    assert (odd.node_id, odd.job_id) == (None, None)


def test_totals_per_node_add_up_to_the_trials() -> None:
    runs = [on(NODE_B, 2.0, 0.2), on(NODE_A, 1.0, 0.1), on(NODE_A, 3.0, 0.3), on(None, 5.0, 0.5)]
    nodes = StudyRecord.node_totals(runs)
    assert list(nodes) == [NODE_A, NODE_B, "unknown"]  # sorted; no node: "unknown"
    assert nodes[NODE_A] == {"trials": 2, "energy_j": 4.0, "co2e_g": pytest.approx(0.4)}
    assert nodes[NODE_B] == {"trials": 1, "energy_j": 2.0, "co2e_g": 0.2}
    assert nodes["unknown"] == {"trials": 1, "energy_j": 5.0, "co2e_g": 0.5}
    assert sum(n["energy_j"] for n in nodes.values()) == sum(r.energy_j for r in runs)
    assert StudyRecord.node_totals([on(None, 1.0, 0.1)]) == {}  # not a Ray study
    assert totals_by_node([(NODE_A, 1.0, 0.5), (NODE_A, 2.0, 0.5)]) == {
        NODE_A: {"trials": 2, "energy_j": 3.0, "co2e_g": 1.0}
    }


def test_a_study_record_keeps_its_node_totals_and_omits_them_when_none() -> None:
    nodes = {NODE_A: {"trials": 2, "energy_j": 4.0, "co2e_g": 0.4}}
    study = StudyRecord(study_id="s1", executor="ray", nodes=nodes)
    assert study.to_record()["nodes"] == nodes
    assert StudyRecord.from_dict(study.to_record()) == study
    assert "nodes" not in StudyRecord(study_id="s2", executor="inline").to_record()
    odd = StudyRecord.from_dict({"nodes": {NODE_A: {"trials": "2", "energy_j": 1.5},
                                           NODE_B: "garbage"}})  # fmt: skip
    assert odd.nodes == {NODE_A: {"trials": 0, "energy_j": 1.5, "co2e_g": 0.0}}


def test_importing_wattwise_ray_tune_does_not_import_ray() -> None:
    code = (
        "import sys, wattwise.ray_tune as wr; "
        "assert 'ray' not in sys.modules, 'ray imported'; "
        "assert callable(wr.track_trainable) and wr.ENERGY_KEY == 'wattwise/energy_j'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def trainable(config: dict[str, Any]) -> None:
    """Never run here: the argument checks happen in the driver."""


def test_track_trainable_refuses_what_it_cannot_wrap_in_one_line() -> None:
    import wattwise.ray_tune as wr

    class Trainable:
        pass

    with pytest.raises(InvalidParameterError, match="wraps a function trainable"):
        wr.track_trainable(Trainable)
    with pytest.raises(InvalidParameterError, match=r"unknown options gpu.*region"):
        wr.track_trainable(trainable, gpu=1)
    with pytest.raises(InvalidParameterError, match=r"memory.*other processes"):
        wr.track_trainable(trainable, store="memory://")
    wrapped = wr.track_trainable(trainable, region="FR")
    assert wrapped.__name__ == "trainable" and wrapped.__wrapped__ is trainable


def test_the_study_id_is_the_same_wherever_it_is_computed() -> None:
    import wattwise.ray_tune as wr

    one = wr.study_id_for("01000000", "train_2026-11-30_07-05-48")
    assert one == wr.study_id_for("01000000", "train_2026-11-30_07-05-48")
    assert len(one) == 32 and int(one, 16) >= 0
    assert one != wr.study_id_for("02000000", "train_2026-11-30_07-05-48")
    assert one != wr.study_id_for("01000000", "train_2026-11-30_07-05-49")


def test_the_budget_stopper_needs_a_positive_limit_and_counts_each_trial_once() -> None:
    pytest.importorskip("ray.tune", exc_type=ImportError)  # pip install 'ray[tune]'
    import wattwise.ray_tune as wr

    with pytest.raises(InvalidParameterError, match="needs a limit"):
        wr.BudgetStopper()
    with pytest.raises(InvalidParameterError, match="budget_co2e_g"):
        wr.BudgetStopper(budget_co2e_g=-1.0)
    stopper = wr.BudgetStopper(budget_kwh=10.0 / 3.6e6)  # 10 J
    assert not stopper("t1", {wr.ENERGY_KEY: 4.0, wr.CO2E_KEY: 0.1})
    assert not stopper("t1", {wr.ENERGY_KEY: 6.0, wr.CO2E_KEY: 0.2})  # cumulative: 6 J
    assert not stopper("t2", {"loss": 1.0})  # not wrapped: nothing to count
    assert not stopper.stop_all() and stopper.spent().energy_j == 6.0
    assert stopper("t2", {wr.ENERGY_KEY: 4.0, wr.CO2E_KEY: 0.1})  # 6 + 4 = 10 J: reached
    assert stopper.stop_all() and stopper.exhausted == "energy_budget"
    carbon = wr.BudgetStopper(budget_co2e_g=0.25)
    assert not carbon("t1", {wr.ENERGY_KEY: 1.0, wr.CO2E_KEY: 0.2})
    assert carbon("t2", {wr.ENERGY_KEY: 1.0, wr.CO2E_KEY: 0.05})
    assert carbon.exhausted == "carbon_budget"


def test_the_callback_and_the_stopper_pickle_without_a_ledger_connection(tmp_path: Any) -> None:
    pytest.importorskip("ray.tune", exc_type=ImportError)  # pip install 'ray[tune]'
    import pickle

    import wattwise.ray_tune as wr

    callback = wr.WattwiseCallback(store=str(tmp_path / "ledger.db"))
    callback.on_trial_result(0, [], "t1", {wr.ENERGY_KEY: 2.5, wr.CO2E_KEY: 0.1,
                                            wr.NODE_KEY: NODE_A, wr.RUN_KEY: "r1"})  # fmt: skip
    callback.on_trial_complete(0, [], "t1")  # reads the ledger: a connection is open now
    copy = pickle.loads(pickle.dumps(callback))
    assert copy.store_url == callback.store_url and copy.trials == callback.trials
    assert copy.by_node() == {NODE_A: {"trials": 1, "energy_j": 2.5, "co2e_g": 0.1}}
    assert copy.trials["t1"].source == "last report"  # no run r1 in the ledger to read
    stopper = pickle.loads(pickle.dumps(wr.BudgetStopper(budget_co2e_g=3.0)))
    assert stopper.budget.co2e_g == 3.0 and stopper.exhausted is None


def test_without_ray_tune_the_classes_say_what_to_install() -> None:
    code = (
        "import sys; sys.modules['ray.tune'] = None\n"  # as if Ray Tune were not installed
        "import wattwise.ray_tune as wr\n"
        "try:\n    wr.WattwiseCallback\nexcept ImportError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout  # fmt: skip
    assert "wattwise.ray_tune.WattwiseCallback needs Ray Tune" in out
    assert "pip install 'wattwise[ray]' 'ray[tune]'" in out


class Hostile(dict):  # type: ignore[type-arg]
    """A result that fails when read, as a broken Ray or a bug of ours could."""

    def get(self, *args: Any, **kwargs: Any) -> Any:
        msg = "unreadable result"
        raise RuntimeError(msg)


def test_a_failure_inside_the_callback_or_the_stopper_never_reaches_ray_tune(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("ray.tune", exc_type=ImportError)  # pip install 'ray[tune]'
    import wattwise.ray_tune as wr

    callback = wr.WattwiseCallback(store=str(tmp_path / "ledger.db"))
    stopper = wr.BudgetStopper(budget_kwh=1.0)
    with caplog.at_level("WARNING", logger="wattwise"):
        callback.on_trial_result(0, [], "t1", Hostile())
        assert not stopper("t1", Hostile())  # the experiment goes on
    assert "on_trial_result failed" in caplog.text and "__call__ failed" in caplog.text
    assert "unreadable result" in caplog.text
