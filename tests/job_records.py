"""Jobs' run records as the tracker leaves them (issue 11), written through the public store
API: a 2-host x 2-rank torchrun job whose ranks track themselves, and the same job run as
one ``wattwise run -- torchrun`` wrapper per host with ranks nested inside.

The records follow the election: each device (``cpu:HOST``, ``dram:HOST``, ``gpu:UUID``) is
measured by exactly one run, whose component holds its energy; every other run of the
host records that device as ``measured_by`` that run and has no energy for it. The
figures are the test's own inputs, so a test can say exactly what the job must sum to.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from wattwise.store import BaseRunStore, ComponentEnergy, RunRecord, RunStatus

#: Grid intensity of every test run (gCO2e/kWh), as its record says.
G_PER_KWH = 31.0
#: Relative band of every modelled component.
BAND = 0.1


def co2e_g(energy_j: float) -> float:
    """Carbon of ``energy_j`` at :data:`G_PER_KWH` with PUE 1."""
    return energy_j / 3.6e6 * G_PER_KWH


@dataclasses.dataclass
class Planned:
    """One run of a job, before it is written."""

    host: str
    rank: int | None
    local_rank: int | None
    energy: dict[str, float]  # component -> J (what this run measured for the job)
    measures: list[str]
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    measured_by: dict[str, str] = dataclasses.field(default_factory=dict)
    parent: str | None = None
    status: RunStatus = RunStatus.FINISHED
    node_rank: int | None = None

    @property
    def energy_j(self) -> float:
        return sum(self.energy.values())


def write_run(
    store: BaseRunStore,
    plan: Planned,
    *,
    job_id: str | None,
    started_at: float,
    duration_s: float = 60.0,
    world_size: int | None = 4,
    source: str = "torchrun",
    extra: dict[str, Any] | None = None,
    job_extra: dict[str, Any] | None = None,
    name: str = "train",
) -> RunRecord:
    """Insert ``plan`` as a run and flush its final state; returns it as read back."""
    record: dict[str, Any] = {
        "intensity": {"g_per_kwh": G_PER_KWH, "zone": "FR", "scope": "lifecycle",
                      "year": 2025, "dataset": "test"},
        "pue": {"value": 1.0, "source": "test"},
        "location": {"zone": "FR", "display_name": "France", "how": "env"},
        **(extra or {}),
    }  # fmt: skip
    if job_id is not None:
        record["job"] = {
            "id": job_id, "source": source, "host": plan.host, "rank": plan.rank,
            "local_rank": plan.local_rank, "world_size": world_size,
            "node_rank": plan.node_rank, "measures": list(plan.measures),
            "role": "rank" if plan.rank is not None else "node",
            # As the tracker writes it: who measures each device, this run included.
            "measured_by": {**{key: plan.id for key in plan.measures}, **plan.measured_by},
            "attribution": "whole device",
            **(job_extra or {}),
        }  # fmt: skip
    components = [
        ComponentEnergy(component=comp, energy_j=joules, machine_energy_j=joules,
                        band_j=joules * BAND, method="model", meter=f"{comp}-model",
                        source="test model")
        for comp, joules in sorted(plan.energy.items())
    ]  # fmt: skip
    running = plan.status is RunStatus.RUNNING
    beat = time.time() if running else started_at + duration_s
    store.insert_run(RunRecord(
        id=plan.id, name=name, kind="python", status=RunStatus.RUNNING,
        started_at=started_at, heartbeat_at=beat, host=plan.host, pid=999_999,
        parent_id=plan.parent, region="FR", record=record, components=components,
        user="ana",
    ))  # fmt: skip
    energy = plan.energy_j
    fields: dict[str, Any] = {
        "energy_j": energy, "energy_band_j": energy * BAND, "machine_energy_j": energy,
        "co2e_g": co2e_g(energy), "co2e_band_g": co2e_g(energy) * BAND, "heartbeat_at": beat,
    }  # fmt: skip
    if not running:
        fields.update({"status": plan.status, "ended_at": started_at + duration_s,
                       "duration_s": duration_s})  # fmt: skip
    store.flush_run(plan.id, fields, components=components)
    return store.get_run(plan.id)


def ranks_job() -> list[Planned]:
    """2 hosts x 2 ranks, each rank a run of its own (``wattwise.track()`` in every rank).

    On node-a rank 0 won the CPU and DRAM; on node-b local rank 1 did (rank 0 is not
    special). Each rank measures its own GPU.
    """
    r0 = Planned("node-a", 0, 0, {"cpu": 1200.0, "dram": 150.0, "gpu": 9000.0},
                 ["cpu:node-a", "dram:node-a", "gpu:GPU-a0"], node_rank=0)
    r1 = Planned("node-a", 1, 1, {"gpu": 8000.0}, ["gpu:GPU-a1"], node_rank=0)
    r2 = Planned("node-b", 2, 0, {"gpu": 7000.0}, ["gpu:GPU-b0"], node_rank=1)
    r3 = Planned("node-b", 3, 1, {"cpu": 1100.0, "dram": 140.0, "gpu": 6000.0},
                 ["cpu:node-b", "dram:node-b", "gpu:GPU-b1"], node_rank=1)  # fmt: skip
    r1.measured_by = {"cpu:node-a": r0.id, "dram:node-a": r0.id}
    r2.measured_by = {"cpu:node-b": r3.id, "dram:node-b": r3.id}
    return [r0, r1, r2, r3]


def nodes_job() -> list[Planned]:
    """2 hosts, each a ``wattwise run -- torchrun`` wrapper whose ranks do not track
    themselves: the wrapper's record lists them with their CPU-time share of its energy."""
    return [
        Planned("node-a", None, None, {"cpu": 1500.0, "dram": 200.0, "gpu": 17000.0},
                ["cpu:node-a", "dram:node-a", "gpu:GPU-a0", "gpu:GPU-a1"], node_rank=0),
        Planned("node-b", None, None, {"cpu": 1400.0, "dram": 180.0, "gpu": 13000.0},
                ["cpu:node-b", "dram:node-b", "gpu:GPU-b0", "gpu:GPU-b1"], node_rank=1),
    ]  # fmt: skip


def node_ranks(plan: Planned, first: int, shares: tuple[float, float]) -> dict[str, Any]:
    """``job_extra`` of a node's run: the ranks it saw below it (``record["job"]["ranks"]``)."""
    return {"ranks": [
        {"rank": first + local, "local_rank": local, "world_size": 4, "cpu_s": 10.0 * share,
         "share": share, "energy_j": share * plan.energy_j, "pid": 4000 + local}
        for local, share in enumerate(shares)
    ]}  # fmt: skip


def wrapped_job() -> list[Planned]:
    """2 hosts, each a ``wattwise run -- torchrun`` wrapper measuring the whole node, with
    2 ranks nested in each (their own ``track()`` runs: a part of the wrapper's energy)."""
    wa = Planned("node-a", None, None, {"cpu": 1500.0, "dram": 200.0, "gpu": 17000.0},
                 ["cpu:node-a", "dram:node-a", "gpu:GPU-a0", "gpu:GPU-a1"], node_rank=0)
    wb = Planned("node-b", None, None, {"cpu": 1400.0, "dram": 180.0, "gpu": 13000.0},
                 ["cpu:node-b", "dram:node-b", "gpu:GPU-b0", "gpu:GPU-b1"], node_rank=1)
    plans = [wa, wb]
    for wrapper, first in ((wa, 0), (wb, 2)):
        for local in (0, 1):
            nested = Planned(wrapper.host, first + local, local, {"cpu": 300.0}, [],
                             parent=wrapper.id, node_rank=wrapper.node_rank)
            nested.measured_by = {key: wrapper.id for key in wrapper.measures}
            plans.append(nested)
    return plans  # fmt: skip


def write_job(store: BaseRunStore, plans: list[Planned], job_id: str, started_at: float,
              **options: Any) -> list[RunRecord]:  # fmt: skip
    """Write a job's planned runs, each starting a little after the previous one."""
    return [
        write_run(store, plan, job_id=job_id, started_at=started_at + i * 0.5, **options)
        for i, plan in enumerate(plans)
    ]
