"""Choose pruning defaults from recorded learning curves: a selection aid, not the benchmark.

Two steps, one command each::

    python -m benchmarks.tune.replay record --json curves.json [--seeds 2] [--n-trials 24]
    python -m benchmarks.tune.replay score curves.json [--targets bench.json] [--n-trials 12]

``record`` runs the benchmark's own random search with full training (``RandomSampler(seed)``,
``NopPruner``, through ``wattwise.tune``, every trial a metered run of a private ledger) and
keeps, per trial, every report's value and the trial's energy so far as its run logged them
(``value`` and ``energy_j`` metrics), the trial's total energy and the driver's cost.

``score`` replays those searches through real Optuna pruners: an objective that, for trial
*n*, reports the recorded trial *n*'s values in order and stops when the pruner says so. The
configurations are the recorded ones, so only random-configuration samplers are replayed
(a ``RandomSampler`` with the same seed proposes the same configurations in the same order).
Energy as the fidelity follows ``wattwise.tune``'s rule, through its public helper
``wattwise.tuning.energy_step_j``: one pruner step is 1/32 of the energy of the study's first
complete trial (``ENERGY_STEPS_PER_TRAINING``), a report after ``energy_j`` joules is shown
at step ``int(energy_j / step_j)``, and one whose step would not increase is not shown.
Until a trial completes the unit is not known: its reports are held back (nothing is
pruned), and when it completes they are given to the pruner at their energy steps, in
order, before Optuna is told it completed (the competitor later trials meet at each rung).
A trial that failed in the recording (no value) does not set the unit. With step fidelity
the pruner sees each report's own step. A pruned trial costs its energy at its last report
plus what its recorded run spent after its last report (the run's end).

Per candidate it prints, medians over (workload, seed) pairs: random search's energy to
target over the candidate's (the benchmark's accounting), the candidate's total over one
final training of its chosen configuration (estimated: the recorded trial's energy less its
start cost, the energy before its first report less one report interval), the pairs where it
reached the target and its best value behind random search's. Candidates' ``rN`` are
``min_resource=N`` pruner steps (with energy fidelity, N/32 of the first complete trial's
energy); ``tune() default`` is ``wattwise.tuning.default_pruner()``. ``--scale K``
multiplies the energy of the training (between reports) by K, keeping each trial's fixed
cost: what the ratios would be if the workloads did K times more work per step.

Every figure here is derived from one recording and replayed; the figures that count are
the ones ``python -m benchmarks.tune`` measures (``docs/explanation/tuning-benchmark.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks.tune.workloads import WORKLOADS, Workload


@dataclasses.dataclass
class Curve:
    """One recorded trial: its reports ``(step, value, energy so far)`` and its total."""

    number: int
    params: dict[str, Any]
    reports: list[tuple[int, float, float]]
    energy_j: float
    value: float | None


# -- recording ------------------------------------------------------------------------------


def record(names: list[str], seeds: int, n_trials: int, out: str) -> int:
    """Random search, full training, per (workload, seed); every report's value and energy."""
    import optuna
    from benchmarks.tune.methods import _objective

    import wattwise
    from wattwise.store import open_store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = os.path.join(tempfile.mkdtemp(prefix="wattwise-tune-replay-"), "ledger.db")
    data: dict[str, Any] = {"n_trials": n_trials, "seeds": seeds, "searches": []}
    started = time.perf_counter()
    for seed in range(seeds):
        for name in names:
            workload = WORKLOADS[name]
            workload.load()
            t0 = time.perf_counter()
            result = wattwise.tune(
                _objective(workload, seed), n_trials=n_trials, direction=workload.direction,
                sampler=optuna.samplers.RandomSampler(seed=seed),
                pruner=optuna.pruners.NopPruner(), study_name=f"record-{name}-{seed}",
                store=store, progress=False, run_options={"emit_warnings": False},
            )  # fmt: skip
            led = open_store(store)
            try:
                curves = []
                for t in result.trials:
                    points: dict[int, dict[str, float]] = {}
                    for step, key, value, _ in led.metrics(t.run_id) if t.run_id else []:
                        if key in ("value", "energy_j") and step is not None:
                            points.setdefault(int(step), {})[key] = float(value)
                    reports = [(s, p["value"], p["energy_j"]) for s, p in sorted(points.items())
                               if "value" in p and "energy_j" in p]  # fmt: skip
                    curves.append(dataclasses.asdict(Curve(
                        t.number, dict(t.params), reports, t.energy_j, t.value)))  # fmt: skip
            finally:
                led.close()
            trials_j = sum(t.energy_j for t in result.trials)
            data["searches"].append({
                "workload": name, "seed": seed, "curves": curves,
                "driver_j": result.spent.energy_j - trials_j,
                "wall_s": time.perf_counter() - t0,
            })  # fmt: skip
            print(f"  recorded {name} seed {seed}: best {result.best_value}, "
                  f"{result.spent.energy_j:.1f} J, {time.perf_counter() - t0:.0f} s",
                  flush=True)  # fmt: skip
            data["wall_s"] = time.perf_counter() - started
            with open(out, "w", encoding="utf-8") as fh:  # after every search
                json.dump(data, fh, indent=1)
    print(f"Wrote {out}")
    return 0


# -- replay ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Replayed:
    """One replayed search: per trial (state, value, energy), in the order they ended."""

    trials: list[tuple[str, float | None, float, int]]  # state, value, energy, number
    total_j: float
    best: float | None
    best_number: int | None


class _PrunerSteps:
    """``wattwise.tune``'s rule for the pruner's step in one study (``_Driver._report``):
    the report's own step, or with energy as the fidelity, the energy spent in units of
    ``wattwise.tuning.energy_step_j(first complete trial's energy)``, unknown until then."""

    def __init__(self, energy_fidelity: bool) -> None:
        self.energy_fidelity = energy_fidelity
        self.step_j: float | None = None

    @property
    def known(self) -> bool:
        """Whether reports can be shown to the pruner (with energy: a trial has completed)."""
        return not self.energy_fidelity or self.step_j is not None

    def calibrate(self, trial_energy_j: float) -> None:
        """A complete trial's energy sets the unit, if none has (a trial at 0 J does not)."""
        from wattwise.tuning import energy_step_j

        if self.energy_fidelity and self.step_j is None and trial_energy_j > 0:
            self.step_j = energy_step_j(trial_energy_j)

    def step(self, report_step: int, energy_j: float) -> int:
        """The pruner's step of a report (call only when :attr:`known`)."""
        if not self.energy_fidelity:
            return report_step
        assert self.step_j is not None
        return int(energy_j / self.step_j)


def scaled(curve: Curve, k: float) -> Curve:
    """The curve with the energy after its start cost (the training) times ``k``."""
    if k == 1.0 or not curve.reports:
        return curve
    start = _start_cost(curve)
    reports = [(s, v, start + k * (e - start)) for s, v, e in curve.reports]
    end = curve.energy_j - curve.reports[-1][2]
    return dataclasses.replace(curve, reports=reports, energy_j=reports[-1][2] + end)


def without_process_start(curves: list[Curve]) -> list[Curve]:
    """A trial whose start cost is over 5x the search's median: its process's one-time start
    (the first run of a process; in the benchmark only the first study pays it), set to the
    median start cost."""
    starts = [_start_cost(c) for c in curves if len(c.reports) >= 2]
    if not starts:
        return curves
    med = statistics.median(starts)
    out = []
    for c in curves:
        extra = _start_cost(c) - med
        if len(c.reports) >= 2 and extra > 4 * med:
            reports = [(s, v, e - extra) for s, v, e in c.reports]
            c = dataclasses.replace(c, reports=reports, energy_j=c.energy_j - extra)
        out.append(c)
    return out


def _start_cost(curve: Curve) -> float:
    """The energy before the first report less one report interval's: the run's fixed
    start cost."""
    r = curve.reports
    if len(r) < 2:
        return 0.0
    return max(0.0, r[0][2] - (r[1][2] - r[0][2]))


def final_estimate(curve: Curve) -> float:
    """One training of the configuration without the run's start and end costs."""
    if not curve.reports:
        return curve.energy_j
    return curve.reports[-1][2] - _start_cost(curve)


def _show(trial: Any, step: int, value: float, shown: list[int]) -> bool:
    """Report ``value`` at the pruner's ``step`` unless it does not increase (Optuna keeps
    one value per step; ``wattwise.tune`` logs such a report but does not show it); whether
    the pruner says to stop."""
    if shown and step <= shown[-1]:
        return False
    shown.append(step)
    trial.report(value, step)
    return bool(trial.should_prune())


def replay(
    curves: list[Curve], direction: str, pruner_factory: Callable[[], Any],
    energy_fidelity: bool, n_trials: int,
) -> Replayed:  # fmt: skip
    """Run the recorded trials, in order, through a real Optuna study with the pruner."""
    import optuna

    study = optuna.create_study(direction=direction, pruner=pruner_factory())
    steps = _PrunerSteps(energy_fidelity)  # the unit is calibrated once per study
    out: list[tuple[str, float | None, float, int]] = []
    for curve in curves[:n_trials]:
        trial = study.ask()
        shown: list[int] = []  # the pruner's steps this trial was reported at
        held: list[tuple[int, float, float]] = []  # reports made before the unit was known
        stopped = None
        for step, value, energy in curve.reports:
            if not steps.known:
                held.append((step, value, energy))
            elif _show(trial, steps.step(step, energy), value, shown):
                stopped = (value, energy)
                break
        if stopped is not None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            end = curve.energy_j - (curve.reports[-1][2] if curve.reports else 0.0)
            out.append(("pruned", stopped[0], stopped[1] + end, curve.number))
        elif curve.value is None:  # failed in the recording: sets no unit, meets no rung
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            out.append(("fail", None, curve.energy_j, curve.number))
        else:
            steps.calibrate(curve.energy_j)
            if steps.known:
                for step, value, energy in held:  # its values at the rungs, for the trials
                    _show(trial, steps.step(step, energy), value, shown)  # to come
            study.tell(trial, curve.value)
            out.append(("complete", curve.value, curve.energy_j, curve.number))
    complete = [(v, n) for st, v, _, n in out if st == "complete" and v is not None]
    best = None
    for v, n in complete:
        if best is None or (v > best[0] if direction == "maximize" else v < best[0]):
            best = (v, n)
    return Replayed(out, sum(e for _, _, e, _ in out), None if best is None else best[0],
                    None if best is None else best[1])  # fmt: skip


def ett(rep: Replayed, workload: Workload, target: float) -> float:
    """Energy to target, the benchmark's accounting."""
    total = 0.0
    for state, value, energy, _ in rep.trials:
        total += energy
        if state == "complete" and workload.reaches(value, target):
            return total
    return math.inf


def candidates() -> dict[str, tuple[Callable[[], Any], bool]]:
    """Pruners to score: name -> (factory, energy as fidelity)."""
    import optuna

    from wattwise.tuning import default_pruner

    p = optuna.pruners
    out: dict[str, tuple[Callable[[], Any], bool]] = {}
    for r in (1, 2, 3, 5, 9):
        for eta in (2, 3, 4):
            out[f"sh r{r} eta{eta} energy"] = (
                lambda r=r, eta=eta: p.SuccessiveHalvingPruner(min_resource=r,
                                                               reduction_factor=eta),
                True,
            )  # fmt: skip
    for r in (1, 3):
        out[f"sh r{r} eta3 boot2 energy"] = (
            lambda r=r: p.SuccessiveHalvingPruner(min_resource=r, reduction_factor=3,
                                                  bootstrap_count=2), True)  # fmt: skip
        out[f"sh r{r} eta3 steps"] = (
            lambda r=r: p.SuccessiveHalvingPruner(min_resource=r, reduction_factor=3),
            False,
        )
    for r in (1, 3):
        out[f"hyperband r{r} eta3 energy"] = (
            lambda r=r: p.HyperbandPruner(min_resource=r, reduction_factor=3),
            True,
        )
    out["hyperband optuna-default steps"] = (lambda: p.HyperbandPruner(), False)
    for w in (1, 3, 9):
        out[f"median warmup{w} energy"] = (
            lambda w=w: p.MedianPruner(n_startup_trials=5, n_warmup_steps=w),
            True,
        )
        out[f"percentile25 warmup{w} energy"] = (
            lambda w=w: p.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=w),
            True,
        )
    out["tune() default"] = (default_pruner, True)
    out["none (random search)"] = (lambda: p.NopPruner(), False)
    return out


def load_targets(path: str | None) -> dict[tuple[str, int], float]:
    """Best value any method found per (workload, seed), from a benchmark ``--json``."""
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    best: dict[tuple[str, int], float] = {}
    for r in data["runs"]:
        if r.get("best_value") is None:
            continue
        key, w = (r["workload"], int(r["seed"])), WORKLOADS[r["workload"]]
        if key not in best or w.better(float(r["best_value"]), best[key]):
            best[key] = float(r["best_value"])
    return best


def score(path: str, targets_path: str | None, n_trials: int | None, k: float,
          only: list[str] | None) -> int:  # fmt: skip
    """Replay every candidate on every recorded search; print the medians."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    n = n_trials or int(data["n_trials"])
    best_any = load_targets(targets_path)
    cands = candidates()
    if only:
        cands = {name: c for name, c in cands.items() if any(o in name for o in only)}
    bound: list[float] = []  # random's ETT over the cheapest training at the target
    keys = ("ratio", "sf", "gap", "hit", "tot")
    rows: dict[str, dict[str, list[float]]] = {c: {k: [] for k in keys} for c in cands}
    for search in data["searches"]:
        w = WORKLOADS[search["workload"]]
        curves = without_process_start(
            [Curve(**{**c, "reports": [tuple(r) for r in c["reports"]]}) for c in search["curves"]]
        )
        curves = [scaled(c, k) for c in curves]
        base = replay(curves, w.direction, optuna.pruners.NopPruner, False, n)
        best = base.best
        prior = best_any.get((w.name, int(search["seed"])))
        if prior is not None and (best is None or w.better(prior, best)):
            best = prior
        if best is None:
            continue
        target = w.threshold(best)
        base_ett = ett(base, w, target)
        at_target = [final_estimate(c) for c in curves[:n] if w.reaches(c.value, target)]
        if at_target and not math.isinf(base_ett):
            bound.append(base_ett / min(at_target))
        driver_per_trial = float(search["driver_j"]) / max(1, len(search["curves"]))
        for name, (factory, fid) in cands.items():
            rep = replay(curves, w.direction, factory, fid, n)
            e = ett(rep, w, target)
            if not (math.isinf(e) and math.isinf(base_ett)):
                rows[name]["ratio"].append(
                    0.0 if math.isinf(e) else (math.inf if math.isinf(base_ett) else base_ett / e)
                )
            rows[name]["hit"].append(0.0 if math.isinf(e) else 1.0)
            total = rep.total_j + driver_per_trial * n
            rows[name]["tot"].append(total / (base.total_j + driver_per_trial * n))
            if rep.best_number is not None:
                rows[name]["sf"].append(total / final_estimate(curves[rep.best_number]))
            if rep.best is not None and base.best is not None:
                gap = (base.best - rep.best) * 100 if w.direction == "maximize" else (
                    (rep.best - base.best) / base.best * 100 / 4)  # fmt: skip
                rows[name]["gap"].append(gap)  # points, or % of a loss / 4 (2 % = 0.5 pt)
    print(f"Replay of {path}: {len(data['searches'])} searches, first {n} trials, training "
          f"energy x{k:g}; targets from {targets_path or 'the recording alone'}")  # fmt: skip
    if bound:
        print(
            f"Bound for any method (random's energy to target over one training of the cheapest "
            f"configuration at the target, where random reached it): median "
            f"{statistics.median(bound):.2f}, per pair {', '.join(f'{b:.1f}' for b in bound)}"
        )
    print(f"{'candidate':<32}{'random ETT / cand':>20}{'reached':>9}{'total/random':>14}"
          f"{'search/final':>14}{'best behind':>13}")  # fmt: skip
    for name, r in rows.items():

        def med(v: list[float]) -> str:
            return "-" if not v else f"{statistics.median(v):.2f}"

        hits = f"{sum(r['hit']):.0f}/{len(r['hit'])}"
        print(f"{name:<32}{med(r['ratio']):>20}{hits:>9}"
              f"{med(r['tot']):>14}{med(r['sf']):>14}{med(r['gap']):>13}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    """``record`` or ``score``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tune.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="record random search's curves")
    rec.add_argument("--json", required=True, metavar="FILE")
    rec.add_argument("--seeds", type=int, default=2)
    rec.add_argument("--n-trials", type=int, default=24)
    rec.add_argument("--workloads", help=f"comma list of {', '.join(WORKLOADS)}")
    sc = sub.add_parser("score", help="replay the candidates on a recording")
    sc.add_argument("curves", metavar="FILE")
    sc.add_argument("--targets", metavar="FILE", help="a benchmark --json: best of any method")
    sc.add_argument("--n-trials", type=int, help="replay the first N trials (default: all)")
    sc.add_argument("--scale", type=float, default=1.0, help="training energy times K")
    sc.add_argument("--only", help="comma list: candidates whose name contains one of these")
    args = parser.parse_args(argv)
    if args.cmd == "record":
        names = args.workloads.split(",") if args.workloads else list(WORKLOADS)
        for name in names:
            if name not in WORKLOADS:
                print(f"Unknown workload {name!r}; use {', '.join(WORKLOADS)}.", file=sys.stderr)
                return 2
        return record(names, args.seeds, args.n_trials, args.json)
    if not os.path.exists(args.curves):
        print(f"No recording at {args.curves}; make one with `record --json FILE`.",
              file=sys.stderr)  # fmt: skip
        return 2
    return score(args.curves, args.targets, args.n_trials, args.scale,
                 args.only.split(",") if args.only else None)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
