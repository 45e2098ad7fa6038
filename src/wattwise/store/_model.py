"""Records the ledger holds: a run and its per-component energy."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import os
from collections.abc import Mapping
from typing import Any


class RunStatus(str, enum.Enum):
    """Lifecycle of a run: running → finished | failed | crashed."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CRASHED = "crashed"

    def __str__(self) -> str:
        return self.value


def iso_utc(timestamp: float | None) -> str | None:
    """Unix seconds → ISO-8601 UTC string (``2026-11-27T19:48:23.123Z``), None stays None."""
    if timestamp is None:
        return None
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass
class ComponentEnergy:
    """Energy of one component (cpu, dram, gpu) for one run.

    Attributes:
        component: ``cpu`` | ``dram`` | ``gpu``.
        energy_j: Energy attributed to the run's process tree, in joules.
        machine_energy_j: Energy of the whole machine for that component over the run, in J.
        band_j: Half-width of the uncertainty band in joules, or None when unknown
            (counters: instrument error not quantified).
        method: ``counter`` | ``sampled`` | ``model`` | ``user``.
        meter: Meter id (``cpu-rapl``, ``cpu-model``, ...).
        source: What was read, or which table row and constants were used.
        info: Assumptions and details (JSON-serialisable).
    """

    component: str
    energy_j: float
    machine_energy_j: float
    band_j: float | None
    method: str
    meter: str
    source: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by the API, the CLI's ``--json`` and reports."""
        return {
            "component": self.component,
            "energy_j": self.energy_j,
            "energy_band_j": self.band_j,
            "machine_energy_j": self.machine_energy_j,
            "method": self.method,
            "meter": self.meter,
            "source": self.source,
        }


@dataclasses.dataclass
class RunRecord:
    """One run in the ledger. Times are Unix seconds; energy in J; carbon in gCO2e.

    ``user`` is the login name of whoever ran it and ``role`` its declared role in the
    footprint (``final``, ``tuning``, ``trial``, ``cache-fill``, ...); both are None in
    rows written before they existed (readers infer the role, see ``role_of``).
    ``record`` holds the rest of the run's description (command, code version,
    environment, hardware, location, intensity, PUE, sampler statistics, the job it belongs
    to), as JSON. :attr:`job_id` is read from it (the ledger indexes it in a column).
    """

    id: str
    name: str
    kind: str
    status: RunStatus
    started_at: float
    heartbeat_at: float
    host: str
    pid: int
    parent_id: str | None = None
    study_id: str | None = None
    ended_at: float | None = None
    duration_s: float = 0.0
    exit_code: int | None = None
    energy_j: float = 0.0
    energy_band_j: float = 0.0
    machine_energy_j: float = 0.0
    co2e_g: float = 0.0
    co2e_band_g: float = 0.0
    region: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    record: dict[str, Any] = dataclasses.field(default_factory=dict)
    components: list[ComponentEnergy] = dataclasses.field(default_factory=list)
    user: str | None = None
    role: str | None = None

    @property
    def job_id(self) -> str | None:
        """The job this run belongs to: ``record["job"]["id"]`` when that is a string, else
        None. Every store writes it to an indexed column (``list_runs(job_id=...)``)."""
        return job_id_of(self.record)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by the Python API, ``--json`` and reports."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "status": str(self.status),
            "exit_code": self.exit_code,
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(self.ended_at),
            "duration_s": self.duration_s,
            "energy_j": self.energy_j,
            "energy_band_j": self.energy_band_j,
            "machine_energy_j": self.machine_energy_j,
            "co2e_g": self.co2e_g,
            "co2e_band_g": self.co2e_band_g,
            "region": self.region,
            "user": self.user,
            "host": self.host,
            "role": self.role,
            "parent_id": self.parent_id,
            "study_id": self.study_id,
            "tags": list(self.tags),
            "params": dict(self.params),
            "components": [c.to_dict() for c in self.components],
        }


def job_id_of(record: Mapping[str, Any] | None) -> str | None:
    """``record["job"]["id"]`` when ``record`` has a ``job`` dict whose ``id`` is a string,
    else None (what the ledger's ``job_id`` column holds)."""
    job = record.get("job") if isinstance(record, Mapping) else None
    value = job.get("id") if isinstance(job, Mapping) else None
    return value if isinstance(value, str) else None


def login_name() -> str:
    """Who runs this process: ``getpass.getuser()`` (``LOGNAME``, ``USER``, ..., then the
    password database), else the numeric uid, else ``unknown``; never raises."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no name in the environment nor the password database
        uid = getattr(os, "getuid", None)
        return f"uid-{uid()}" if uid is not None else "unknown"
