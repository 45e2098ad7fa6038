"""``benchmarks/tune/replay.py`` scores pruners on recorded learning curves with
``wattwise.tune()``'s own fidelity rule, through the public ``wattwise.tuning.energy_step_j``
(issue 12): replayed, a recorded random search prunes the same trials at the same energy as
the same search run live by ``tune()``.

Real studies (``wattwise.tune``, real Optuna, the project's SQLite ledger) with a fake meter
on a scripted clock: a configuration's cost per report depends on its parameters, so energy
steps and report steps differ.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest

import wattwise
from wattwise.exceptions import InvalidParameterError
from wattwise.store import open_store
from wattwise.testing import FakeMeter
from wattwise.tuning import default_pruner, energy_step_j

replay = pytest.importorskip("benchmarks.tune.replay", reason="run from the repository root")

REPORTS = 12
N_TRIALS = 12


class ScriptedClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def search(pruner: optuna.pruners.BasePruner | None, name: str, seed: int) -> Any:
    """Random configurations whose cost per report grows with ``x`` (deterministic values)."""
    clock = ScriptedClock()

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_float("y", 0.0, 1.0)
        value = 0.0
        for k in range(REPORTS):
            clock.t += 0.125 + 0.5 * x
            value = (1 - abs(y - 0.3)) * (1 - 0.5 ** (k + 1)) * (0.5 + x)
            trial.report(value, k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return wattwise.tune(
        objective, n_trials=N_TRIALS, direction="maximize", study_name=name, progress=False,
        sampler=optuna.samplers.RandomSampler(seed=seed), pruner=pruner, energy_fidelity=True,
        run_options={"meters": [FakeMeter({"gpu:0": 8.0}, clock=clock)],
                     "emit_warnings": False},
    )  # fmt: skip


def curves(result: Any) -> list[Any]:
    """The trials as ``replay record`` keeps them: every report's value and energy so far."""
    store = open_store()
    try:
        out = []
        for t in result.trials:
            points: dict[int, dict[str, float]] = {}
            for step, key, value, _ in store.metrics(t.run_id):
                if key in ("value", "energy_j") and step is not None:
                    points.setdefault(int(step), {})[key] = float(value)
            reports = [(s, p["value"], p["energy_j"]) for s, p in sorted(points.items())]
            out.append(replay.Curve(t.number, dict(t.params), reports, t.energy_j, t.value))
    finally:
        store.close()
    return out


@pytest.mark.parametrize("seed", [0, 2])
def test_a_replayed_search_prunes_what_tune_prunes(seed: int) -> None:
    recorded = search(optuna.pruners.NopPruner(), f"record-{seed}", seed)
    assert all(len(c.reports) == REPORTS for c in curves(recorded))
    replayed = replay.replay(curves(recorded), "maximize", default_pruner, True, N_TRIALS)
    live = search(None, f"live-{seed}", seed)  # the default pruner, energy as the fidelity

    got = sorted((n, state, energy) for state, _, energy, n in replayed.trials)
    want = [(t.number, t.state, t.energy_j) for t in live.trials]
    assert [g[:2] for g in got] == [w[:2] for w in want]
    assert all(math.isclose(g[2], w[2], rel_tol=1e-9) for g, w in zip(got, want, strict=True))
    assert sum(1 for _, state, _ in want if state == "pruned") >= N_TRIALS // 2  # it pruned
    # both derived the unit from the same trial's energy, by the public rule
    fid = live.record.energy_fidelity
    assert fid["step_j"] == energy_step_j(recorded.trials[0].energy_j)


def test_energy_step_j_is_the_recorded_unit_and_refuses_what_sets_none() -> None:
    assert energy_step_j(64.0) == 2.0  # 1/32 of the first complete trial's energy
    for bad in (0.0, -1.0, math.nan, math.inf, True, None):
        with pytest.raises(InvalidParameterError) as err:
            energy_step_j(bad)  # type: ignore[arg-type]
        message = str(err.value)
        assert "\n" not in message and "trial_energy_j" in message and repr(bad) in message
