"""Builders shared by the meters tests: fake sysfs trees, cpuinfo files, clocks, data rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import wattwise.data

DATA_DIR = Path(wattwise.data.__file__).parent


def data_rows(relpath: str, skip_rows: int = 0) -> list[dict[str, str]]:
    """Rows of a shipped data file, read independently of the code under test."""
    text = (DATA_DIR / relpath).read_text(encoding="utf-8-sig")
    lines = io.StringIO(text)
    for _ in range(skip_rows):
        lines.readline()
    return list(csv.DictReader(lines))


def ccf_row(provider: str, architecture: str) -> tuple[float, float]:
    """(Min Watts, Max Watts) per vCPU of a CCF row."""
    for row in data_rows(f"cloud/ccf_coefficients_{provider}_use.csv"):
        if row["Architecture"] == architecture:
            return float(row["Min Watts"]), float(row["Max Watts"])
    msg = f"no CCF row {architecture!r} for {provider}"
    raise AssertionError(msg)


def make_zone(
    parent: Path,
    zone_id: str,
    name: str,
    energy_uj: int | None = 0,
    max_range_uj: int | None = 262_143_328_850,
) -> Path:
    """One powercap zone directory with its name, energy_uj and max_energy_range_uj files."""
    zone = parent / zone_id
    zone.mkdir(parents=True)
    (zone / "name").write_text(name + "\n")
    if energy_uj is not None:
        (zone / "energy_uj").write_text(f"{energy_uj}\n")
    if max_range_uj is not None:
        (zone / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return zone


def set_energy(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


def cpuinfo_text(
    *,
    vendor: str,
    model_name: str,
    family: int,
    model: int,
    stepping: int = 1,
    n: int = 2,
    sockets: int = 1,
    cores: int | None = None,
    flags: str = "fpu vme de pse tsc msr pae hypervisor",
) -> str:
    """A /proc/cpuinfo with ``n`` logical CPUs spread over ``sockets``."""
    per_socket = n // sockets
    cores = cores if cores is not None else per_socket
    blocks = []
    for i in range(n):
        blocks.append(
            f"processor\t: {i}\n"
            f"vendor_id\t: {vendor}\n"
            f"cpu family\t: {family}\n"
            f"model\t\t: {model}\n"
            f"model name\t: {model_name}\n"
            f"stepping\t: {stepping}\n"
            f"physical id\t: {i // per_socket}\n"
            f"siblings\t: {per_socket}\n"
            f"core id\t\t: {i % cores}\n"
            f"cpu cores\t: {cores}\n"
            f"flags\t\t: {flags}\n"
        )
    return "\n".join(blocks) + "\n"


def write_cpuinfo(tmp_path: Path, filename: str = "cpuinfo", **kwargs: Any) -> Path:
    path = tmp_path / filename
    path.write_text(cpuinfo_text(**kwargs))
    return path


def details_list(details: dict[str, object], key: str) -> list[Any]:
    """A list-valued entry of MeterInfo.details."""
    value = details[key]
    assert isinstance(value, list)
    return value


EPYC_VM: dict[str, Any] = {
    "vendor": "AuthenticAMD",
    "model_name": "AMD EPYC",
    "family": 25,
    "model": 17,
}
INTEL_VM: dict[str, Any] = {
    "vendor": "GenuineIntel",
    "model_name": "Intel(R) Xeon(R) Processor",
    "family": 6,
    "model": 167,
}
# The flags this project's test VM reports (family 6 model 167 with AMX).
AMX_FLAGS = "fpu avx512f avx512_fp16 amx_bf16 amx_tile amx_int8 hypervisor"


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
