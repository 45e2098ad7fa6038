"""A study record says where the pruner's rungs were, not only its class (issue 12):
``wattwise.tuning.pruner_settings`` reads what an Optuna pruner was constructed with."""

from __future__ import annotations

import math
from typing import Any

import optuna

from wattwise.tuning import StudyRecord, default_pruner, fidelity_line, pruner_settings


def test_the_default_pruner_and_optunas_own_are_read_as_constructed() -> None:
    assert pruner_settings(default_pruner()) == {
        "min_resource": 6, "reduction_factor": 2, "min_early_stopping_rate": 0,
        "bootstrap_count": 0,
    }  # fmt: skip
    hb = pruner_settings(optuna.pruners.HyperbandPruner(min_resource=3, reduction_factor=4))
    assert hb == {"min_resource": 3, "max_resource": "auto", "reduction_factor": 4,
                  "bootstrap_count": 0}  # fmt: skip
    assert pruner_settings(optuna.pruners.NopPruner()) == {}


def test_a_foreign_pruner_gives_what_can_be_read_and_nothing_else() -> None:
    class Own(optuna.pruners.BasePruner):
        def __init__(self, patience: int, scale: float, curve: Any, label: str) -> None:
            self._patience, self._scale, self._curve = patience, scale, curve
            self.label = label  # public: not how Optuna keeps a setting

        def prune(self, study: Any, trial: Any) -> bool:
            return False

    assert pruner_settings(Own(3, math.nan, [1, 2], "x")) == {"patience": 3}


def test_the_line_names_the_non_zero_settings_by_name() -> None:
    record = StudyRecord.from_dict({
        "pruner": "SuccessiveHalvingPruner",
        "pruner_settings": {"reduction_factor": 2, "min_resource": 6, "bootstrap_count": 0,
                            "bad": [1]},
        "energy_fidelity": {"enabled": False},
    })  # fmt: skip
    assert record.pruner_settings == {"reduction_factor": 2, "min_resource": 6,
                                      "bootstrap_count": 0}  # fmt: skip
    assert fidelity_line(record) == (
        "report steps (the pruner sees each report's own step); pruner "
        "SuccessiveHalvingPruner (min_resource 6, reduction_factor 2)"
    )
    assert "pruner_settings" not in StudyRecord(pruner="NopPruner").to_record()
