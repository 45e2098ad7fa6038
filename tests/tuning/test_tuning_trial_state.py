"""A trial outlives its objective call only as a read-only object: changing it raises
TrialStateError, in the objective's next call as after the study, and the study goes on."""

from __future__ import annotations

from typing import Any

import pytest

import wattwise
from wattwise.exceptions import SearchError, TrialStateError
from wattwise.testing import FakeMeter


def fake_options() -> dict[str, Any]:
    return {"meters": [FakeMeter({"gpu:0": 50.0})], "interval_s": 0.05,
            "emit_warnings": False}  # fmt: skip


def test_a_trial_used_after_its_objective_returned_raises_trial_state_error() -> None:
    kept: list[Any] = []
    raised: list[BaseException] = []

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.report(x, 0)
        if kept:  # the previous trial, kept by mistake
            with pytest.raises(TrialStateError) as caught:
                kept[-1].report(0.5, 1)
            raised.append(caught.value)
        kept.append(trial)
        return x

    result = wattwise.tune(objective, n_trials=2, seed=0, run_options=fake_options())
    assert [t.state for t in result.trials] == ["complete", "complete"]
    assert len(raised) == 1 and "Trial 0 has ended (complete)" in str(raised[0])
    assert "inside the objective call" in str(raised[0])
    assert issubclass(TrialStateError, SearchError)

    done = kept[-1]
    for call in (
        lambda: done.suggest_float("y", 0.0, 1.0),
        lambda: done.suggest_int("n", 1, 3),
        lambda: done.suggest_categorical("c", ["a", "b"]),
        lambda: done.report(0.1, 5),
        lambda: done.set_user_attr("k", 1),
        lambda: done.set_max_step(9),
    ):
        with pytest.raises(TrialStateError, match="Trial 1 has ended"):
            call()
    # what it was stays readable
    assert done.number == 1 and set(done.params) == {"x"}
    assert done.params["x"] == result.trials[1].params["x"]
