"""A LocationWarning from the Python API points at the user's line, not at wattwise's."""

from __future__ import annotations

import warnings

import optuna
import pytest

import wattwise
import wattwise.optuna as wo
from wattwise.exceptions import LocationWarning
from wattwise.testing import FakeMeter


@pytest.fixture(autouse=True)
def unknown_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATTWISE_REGION", raising=False)
    monkeypatch.setenv("TZ", "UTC")  # names no country: the world fallback, with a warning


def meters() -> list[FakeMeter]:
    return [FakeMeter({"cpu": 10.0})]


def location_warnings(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    found = [w for w in caught if issubclass(w.category, LocationWarning)]
    assert found, [str(w.message) for w in caught]
    return found


def test_with_track_points_at_the_with_line() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with wattwise.track("t", meters=meters()):
            pass
    (warning,) = location_warnings(caught)
    assert warning.filename == __file__
    assert "Location unknown" in str(warning.message)


def test_decorator_and_start_point_at_the_callers_line() -> None:
    @wattwise.track("decorated", meters=meters())
    def work() -> int:
        return 1

    run = wattwise.track("started", meters=meters())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert work() == 1
        run.start()
        run.stop()
    assert [w.filename for w in location_warnings(caught)] == [__file__, __file__]


def test_optuna_trial_run_points_at_the_objectives_with_line(tmp_path: object) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        with wo.trial_run(trial, meters=meters()):
            return 1.0

    study = optuna.create_study(study_name="stack")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=1)
        wo.end_study(study)
    found = location_warnings(caught)
    assert {w.filename for w in found} == {__file__}
