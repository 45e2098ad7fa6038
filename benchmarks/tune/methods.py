"""The search methods compared, each measured by wattwise, with equal trial counts and seeds.

Every Optuna-based method runs through ``wattwise.tune`` (inline executor), so each trial is
a wattwise run metered the same way; only the sampler, the pruner and the fidelity differ.
Ray Tune runs its own loop (``ray.tune.Tuner`` with ``ASHAScheduler``) on a real local Ray
(``ray.init(num_cpus=2, include_dashboard=False)``); each trial is a ``wattwise.track`` run
inside its Ray worker, which reports its energy so far with every result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.tune.workloads import MAX_STEPS, WORKLOADS, Workload


@dataclasses.dataclass
class TrialRow:
    """One trial as the benchmark scores it."""

    number: int
    state: str  # complete | pruned | fail
    value: float | None  # final value (complete) or last reported (pruned)
    energy_j: float
    params: dict[str, Any]
    order: float  # when it ended (for energy-to-target: cumulative energy in this order)


@dataclasses.dataclass
class SearchResult:
    """One search: its trials, its cost and what it found."""

    method: str
    workload: str
    seed: int
    trials: list[TrialRow]
    total_energy_j: float
    best_value: float | None
    best_params: dict[str, Any]
    wall_s: float
    note: str = ""
    final_energy_j: float | None = None
    energy_to_target_j: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


#: Methods, in the order of the table. ``wattwise-defaults`` is ``wattwise.tune`` with no
#: sampler, pruner or fidelity given: whatever wattwise ships.
METHODS = ("random", "tpe", "tpe-hyperband", "ray-asha", "wattwise-defaults")
LABELS = {
    "random": "random search, full training",
    "tpe": "Optuna TPE, no pruning",
    "tpe-hyperband": "Optuna TPE + HyperbandPruner",
    "ray-asha": "Ray Tune ASHAScheduler",
    "wattwise-defaults": "wattwise defaults",
    "random-sh-energy": "random + SH min 1, energy",
    "tpe5-sh-energy": "TPE (5 startup) + succ. halving, energy",
    "random-sh3-energy": "random + SH min 3, energy",
    "random-sh5-energy": "random + SH min 5, energy",
    "random-sh5e2-energy": "random + SH min 5 eta 2, energy",
    "tpe-defaults": "TPE (10 startup) + the default pruner, energy",
    "tpe-sh6e3-energy": "TPE + SH min 6 eta 3, energy",
    "tpe-sh3e2-energy": "TPE + SH min 3 eta 2, energy",
    "tpe5-defaults": "TPE (5 startup) + the default pruner, energy",
    "tpemv-defaults": "TPE (multivariate) + the default pruner, energy",
}
#: TPE candidates, successive halving on energy: (min_resource, reduction_factor,
#: TPE's n_startup_trials, multivariate).
TPE_SH_ENERGY = {
    "tpe-sh6e3-energy": (6, 3, 10, False),
    "tpe-sh3e2-energy": (3, 2, 10, False),
    "tpe5-defaults": (6, 2, 5, False),
    "tpemv-defaults": (6, 2, 10, True),
}
#: Successive halving on energy with random configurations: (min_resource, reduction_factor).
SH_ENERGY = {
    "random-sh-energy": (1, 3),  # the defaults before the replay
    "random-sh3-energy": (3, 3),
    "random-sh5-energy": (5, 3),
    "random-sh5e2-energy": (5, 2),
}


def _objective(workload: Workload, seed: int) -> Any:
    import optuna

    def objective(trial: Any) -> float:
        params = workload.suggest(trial)
        if hasattr(trial, "set_max_step"):
            trial.set_max_step(MAX_STEPS - 1)

        def report(value: float, step: int) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return workload.train(params, seed, report)

    return objective


def run_optuna(
    method: str, workload: Workload, seed: int, n_trials: int, store: str
) -> SearchResult:
    """One search through ``wattwise.tune``."""
    import optuna

    import wattwise

    samplers, pruners = optuna.samplers, optuna.pruners
    kwargs: dict[str, Any] = {}
    if method == "random":
        kwargs = {"sampler": samplers.RandomSampler(seed=seed), "pruner": pruners.NopPruner()}
    elif method == "tpe":
        kwargs = {"sampler": samplers.TPESampler(seed=seed), "pruner": pruners.NopPruner()}
    elif method == "tpe-hyperband":  # what Optuna users run today: its defaults
        kwargs = {"sampler": samplers.TPESampler(seed=seed), "pruner": pruners.HyperbandPruner()}
    elif method in SH_ENERGY:  # candidates scored by benchmarks/tune/replay.py
        r, eta = SH_ENERGY[method]
        kwargs = {
            "sampler": samplers.RandomSampler(seed=seed),
            "pruner": pruners.SuccessiveHalvingPruner(min_resource=r, reduction_factor=eta),
            "energy_fidelity": True,
        }
    elif method == "tpe5-sh-energy":  # the first defaults tried (see tuning-benchmark.md)
        kwargs = {
            "sampler": samplers.TPESampler(seed=seed, n_startup_trials=5),
            "pruner": pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
            "energy_fidelity": True,
        }
    elif method in TPE_SH_ENERGY:  # candidates for the defaults, after TPE became one
        r, eta, startup, multivariate = TPE_SH_ENERGY[method]
        kwargs = {
            "sampler": samplers.TPESampler(
                seed=seed, n_startup_trials=startup, multivariate=multivariate
            ),
            "pruner": pruners.SuccessiveHalvingPruner(min_resource=r, reduction_factor=eta),
            "energy_fidelity": True,
        }
    elif method == "tpe-defaults":  # a candidate: Optuna's TPE with wattwise's pruning
        kwargs = {"seed": seed, "sampler": samplers.TPESampler(seed=seed)}
    elif method == "wattwise-defaults":
        kwargs = {"seed": seed}
    else:
        msg = f"Unknown method {method!r}; use one of {', '.join(LABELS)}."
        raise ValueError(msg)
    workload.load()  # data loaded once per process, before the study
    t0 = time.perf_counter()
    result = wattwise.tune(
        _objective(workload, seed), n_trials=n_trials, direction=workload.direction,
        study_name=f"{workload.name}-{method}-{seed}", store=store, progress=False,
        run_options={"emit_warnings": False}, **kwargs,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    rows = [
        TrialRow(t.number, t.state, t.value, t.energy_j, dict(t.params), float(t.number))
        for t in result.trials
    ]
    rec = result.record
    note = f"{rec.sampler} + {rec.pruner}" + (
        ", energy fidelity" if (rec.energy_fidelity or {}).get("enabled") else ""
    )
    return SearchResult(
        method, workload.name, seed, rows, result.spent.energy_j, result.best_value,
        result.best_params, wall, note,
    )  # fmt: skip


#: Workloads whose training already ran once in this process.
_WARM: set[str] = set()


class _WarmUpDoneError(Exception):
    """Ends a warm-up training after its first report."""


def warm_up(names: list[str]) -> None:
    """One step of each workload's training, outside any measured run.

    A process's first training step costs about 2.5 s of CPU here (60x a later one: the
    libraries' first forward and backward passes), which would otherwise land on whichever
    method's first trial comes first, and on each Ray worker's first trial.
    """
    import optuna

    def stop(value: float, step: int) -> None:
        raise _WarmUpDoneError

    for name in names:
        if name in _WARM:
            continue
        _WARM.add(name)
        workload = WORKLOADS[name]
        workload.load()
        params = workload.suggest(
            optuna.create_study(sampler=optuna.samplers.RandomSampler(0)).ask()
        )
        with contextlib.suppress(_WarmUpDoneError):
            workload.train(params, 0, stop)


def _ray_trainable(workload_name: str, seed: int, store: str) -> Any:
    def trainable(config: dict[str, Any]) -> None:
        from benchmarks.tune.workloads import WORKLOADS
        from ray import tune

        import wattwise

        workload = WORKLOADS[workload_name]
        workload.load()  # data loaded (and torch imported) before the trial's run, as inline
        warm_up([workload_name])  # once per worker process, as the driver does in process
        with wattwise.track(f"ray-{workload_name}", store=store, kind="trial",
                            emit_warnings=False) as run:  # fmt: skip

            def report(value: float, step: int) -> None:
                tune.report({"value": value, "energy_j": run.snapshot()["energy_j"],
                             "t_end": time.time()})  # fmt: skip

            workload.train(config, seed, report)

    return trainable


def start_ray() -> None:
    """A real local Ray, two CPUs, no dashboard; workers can import ``benchmarks``."""
    import ray

    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p
    )
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")


def stop_ray() -> None:
    """Shut the local Ray down and wait until its processes (this process's children) exit."""
    import psutil
    import ray

    children = psutil.Process().children(recursive=True)
    ray.shutdown()
    _, alive = psutil.wait_procs(children, timeout=30)
    for proc in alive:  # ours: started by ray.init() in this process
        proc.kill()
    psutil.wait_procs(alive, timeout=10)


def run_ray(workload: Workload, seed: int, n_trials: int, store: str, tmp: str) -> SearchResult:
    """Ray Tune with ASHA (grace 1 step, reduction 3, max ``MAX_STEPS``), random configs."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    scheduler = ASHAScheduler(max_t=MAX_STEPS, grace_period=1, reduction_factor=3)
    tuner = tune.Tuner(
        tune.with_resources(_ray_trainable(workload.name, seed, store), {"cpu": 1}),
        param_space=workload.ray_space(),
        tune_config=tune.TuneConfig(
            metric="value", mode="max" if workload.direction == "maximize" else "min",
            num_samples=n_trials, scheduler=scheduler,
            search_alg=BasicVariantGenerator(random_state=seed), reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            storage_path=tmp, name=f"{workload.name}-{seed}", verbose=0,
        ),
    )  # fmt: skip
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    rows = []
    for i, res in enumerate(grid):
        last = res.metrics or {}
        if "value" not in last:
            rows.append(TrialRow(i, "fail", None, 0.0, dict(res.config or {}), math.inf))
            continue
        steps = int(last.get("training_iteration", 0))
        rows.append(
            TrialRow(
                i, "complete" if steps >= MAX_STEPS else "pruned", float(last["value"]),
                float(last["energy_j"]), dict(res.config or {}), float(last["t_end"]),
            )
        )  # fmt: skip
    rows.sort(key=lambda r: r.order)
    complete = [r for r in rows if r.state == "complete" and r.value is not None]
    best = None
    for r in complete:
        if best is None or workload.better(float(r.value or 0.0), float(best.value or 0.0)):
            best = r
    return SearchResult(
        "ray-asha", workload.name, seed, rows, sum(r.energy_j for r in rows),
        None if best is None else best.value, {} if best is None else dict(best.params), wall,
        "ASHAScheduler(grace 1, rf 3) + random search; trial energy as last reported "
        "(Ray's own processes not counted)",
    )  # fmt: skip


def final_training(workload: Workload, params: dict[str, Any], seed: int, store: str) -> float:
    """Energy of one full training of ``params``, measured by wattwise, in joules.

    The training's own energy: the run's energy after it less before it (``snapshot()``),
    so what a run records when it starts (its environment) is not counted, as it is not in
    a trial's figure.
    """
    import wattwise

    with wattwise.track(f"final-{workload.name}", store=store, emit_warnings=False) as run:
        before = run.snapshot()["energy_j"]
        workload.train(params, seed, None)
        after = run.snapshot()["energy_j"]
    return float(after - before)
