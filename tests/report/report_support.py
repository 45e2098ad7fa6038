"""Ledgers for report tests: real tracked runs plus records inserted as they would be left."""

from __future__ import annotations

import time
import uuid
from typing import Any

import wattwise
from wattwise.store import ComponentEnergy, RunRecord, RunStatus, SQLiteRunStore, open_store
from wattwise.testing import FakeMeter

FR_INTENSITY = {
    "g_per_kwh": 31.0, "intensity_type": "average", "scope": "lifecycle", "year": 2025,
    "dataset": "Electricity Maps yearly 2025 (via co2.js)",
    "file": "grid/electricitymaps_yearly_2025_lifecycle.json", "zone": "FR",
    "temporal_granularity": "annual", "source": "Electricity Maps 2025 FR", "licence": "ODbL-1.0",
    "note": None,
}  # fmt: skip
FR_LOCATION = {
    "zone": "FR", "country_iso2": "FR", "subdivision": None, "cloud_provider": None,
    "cloud_region": None, "display_name": "France", "how": "env", "warning": None,
}  # fmt: skip
HARDWARE = {
    "cpu": {"model_name": "Intel(R) Xeon(R) Processor", "sockets": 1, "threads": 8,
            "microarchitecture": "Sapphire Rapids", "is_virtual": True},
    "ram_gb": 32.0, "gpus": [], "accelerator": "cpu",
}  # fmt: skip

XSS = "<script>alert(1)</script>"


def spin(seconds: float) -> None:
    """Busy-wait: CPU time the tracker can attribute."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def fake_meter() -> FakeMeter:
    return FakeMeter({"cpu:0": 20.0, "dram:0": 3.0}, method="model", band_fraction=0.4)


def tracked_run(name: str, *, seconds: float = 0.3, metrics: dict[str, float] | None = None,
                flops: float | None = None, **kwargs: Any) -> str:  # fmt: skip
    """A real run with a fake meter; returns its id."""
    with wattwise.track(name, meters=[fake_meter()], interval_s=0.05, **kwargs) as run:
        deadline = time.monotonic() + seconds
        step = 0
        while time.monotonic() < deadline:
            spin(0.05)  # real CPU work: a sleeping run is attributed (correctly) no CPU energy
            run.log(step=step, **(metrics or {}))
            step += 1
        if flops is not None:
            run.record_flops(flops / 10, steps=10, samples_per_step=32)
    return run.id


def insert_run(
    store: SQLiteRunStore,
    name: str,
    *,
    status: str = "finished",
    energy_j: float = 3600.0,
    duration_s: float = 60.0,
    started_at: float | None = None,
    kind: str = "python",
    study_id: str | None = None,
    parent_id: str | None = None,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
    hardware: dict[str, Any] | None = None,
    host: str = "testhost",
    pue: float = 1.0,
    intensity: float = 31.0,
    tags: list[str] | None = None,
    params: dict[str, Any] | None = None,
    flops: dict[str, Any] | None = None,
) -> str:
    """Insert a run as the tracker would have left it (crashed ones too)."""
    run_id = uuid.uuid4().hex
    start = started_at if started_at is not None else time.time() - duration_s
    co2e = energy_j / 3.6e6 * pue * intensity
    record: dict[str, Any] = {
        "intensity": {**FR_INTENSITY, "g_per_kwh": intensity},
        "location": FR_LOCATION,
        "pue": {"value": pue, "source": "test", "applies_to": "own hardware"},
        "hardware": hardware if hardware is not None else HARDWARE,
        "meters": {"cpu-model": {"method": "model", "source": "test model", "assumptions": [],
                                 "band_fraction": 0.4, "band_source": "test"}},
        "attribution": {"cpu": "process-tree CPU time share"},
        "summary": dict(metrics or {}),
        "idle_included": True,
    }  # fmt: skip
    if extra:
        record["extra"] = extra
    if flops:
        record["flops"] = flops
    comp = ComponentEnergy(
        component="cpu", energy_j=energy_j, machine_energy_j=energy_j * 2, band_j=energy_j * 0.4,
        method="model", meter="cpu-model", source="test model",
    )  # fmt: skip
    run = RunRecord(
        id=run_id, name=name, kind=kind, status=RunStatus.RUNNING, started_at=start,
        heartbeat_at=start + duration_s, host=host, pid=999_999, parent_id=parent_id,
        study_id=study_id, region="FR", tags=tags or [], params=params or {}, record=record,
        components=[comp],
    )  # fmt: skip
    store.insert_run(run)
    samples = [(float(t), "cpu", 20.0 + (t % 7), energy_j * t / duration_s)
               for t in range(1, int(duration_s) + 1, max(1, int(duration_s) // 30))]  # fmt: skip
    points = [(0, k, v, start + duration_s) for k, v in (metrics or {}).items()]
    store.flush_run(
        run_id,
        {"status": RunStatus(status), "ended_at": start + duration_s, "duration_s": duration_s,
         "energy_j": energy_j, "energy_band_j": energy_j * 0.4, "machine_energy_j": energy_j * 2,
         "co2e_g": co2e, "co2e_band_g": co2e * 0.4},
        samples=samples, metrics=points,
    )  # fmt: skip
    return run_id


def project_ledger() -> dict[str, str]:
    """A project: two real runs, a failed and a crashed run, a study with five trials."""
    ids = {}
    ids["real"] = tracked_run("baseline-cnn", metrics={"val_acc": 0.91}, flops=3.2e9,
                              config={"lr": 0.1})  # fmt: skip
    store = open_store()
    now = time.time()
    ids["failed"] = insert_run(store, "oom-attempt", status="failed", energy_j=5000,
                               started_at=now - 7200, duration_s=300)  # fmt: skip
    ids["crashed"] = insert_run(store, "killed-by-scheduler", status="crashed",
                                energy_j=9000, started_at=now - 6800, duration_s=600)
    driver = insert_run(store, "lr-sweep", kind="study", energy_j=500, started_at=now - 6000,
                        duration_s=3000)  # fmt: skip
    trials = []
    for i, (acc, energy) in enumerate([(0.80, 4000), (0.88, 6000), (0.86, 9000),
                                       (0.93, 12000), (0.70, 2500)]):  # fmt: skip
        status = "failed" if i == 4 else "finished"
        trials.append(insert_run(
            store, f"trial-{i}", kind="trial", study_id=driver, energy_j=energy,
            started_at=now - 5900 + i * 500, duration_s=400, metrics={"val_acc": acc},
            status=status, params={"lr": 10 ** -(i + 1)},
        ))  # fmt: skip
    store.flush_run(driver, {"record": {
        **store.get_run(driver).record,
        "extra": {"study": {"avoided_energy_j": 20000.0, "avoided_co2e_g": 0.172,
                            "pareto_run_ids": [trials[4], trials[0], trials[1], trials[3]],
                            "best_run_id": trials[3], "stop_reason": "energy budget spent",
                            "budget": {"energy_kwh": 0.01}, "spent": {"energy_kwh": 0.0095}}},
    }})  # fmt: skip
    ids["study"] = driver
    ids["best"] = trials[3]
    ids["final"] = insert_run(store, "final-train", energy_j=15000, started_at=now - 1500,
                              duration_s=900, metrics={"val_acc": 0.94},
                              flops={"flops_total": 4.5e13, "samples_total": 60000})
    ids["xss"] = insert_run(store, XSS, energy_j=100, started_at=now - 200, duration_s=20,
                            tags=[XSS], params={"note": XSS})  # fmt: skip
    store.close()
    return ids
