"""CPU identification (meters/_cpuid.py): Arm server parts mapped where the shipped tables
have rows, identified without a row elsewhere."""

from __future__ import annotations

import pytest
from meters_support import ccf_row

from wattwise.meters import match_cpu
from wattwise.meters._cpuid import arch_from_family_model, arch_from_name
from wattwise.meters._cpuinfo import parse_cpuinfo


def _arm(implementer: int, part: int, model_name: str = "") -> str:
    name = f"model name\t: {model_name}\n" if model_name else ""
    block = (
        "processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd sve\n"
        f"{name}CPU implementer\t: 0x{implementer:x}\nCPU architecture: 8\n"
        f"CPU variant\t: 0x0\nCPU part\t: 0x{part:03x}\nCPU revision\t: 1\n"
    )
    return "\n".join(block.format(i=i) for i in range(4)) + "\n"


@pytest.mark.parametrize(
    ("name", "core", "row"),
    [
        ("Ampere(R) Altra(R) Processor Q80-30", "Neoverse N1", "Graviton2"),
        ("Ampere Altra Max M128-30", "Neoverse N1", "Graviton2"),
        ("NVIDIA Grace CPU", "Neoverse V2", "Graviton4"),
        ("Neoverse-V1", "Neoverse V1", "Graviton3"),
        ("AWS Graviton3E", "Graviton3E", "Graviton3E"),
    ],
)
def test_arm_server_names_map_to_the_row_of_the_same_core(name: str, core: str, row: str) -> None:
    arch = arch_from_name(name)
    assert arch is not None
    assert (arch.label, arch.ccf) == (core, row)
    ccf_row("aws", row)  # the row exists in the shipped AWS table


@pytest.mark.parametrize(
    ("part", "core", "row"),
    [(0xD0C, "Neoverse N1", "Graviton2"), (0xD40, "Neoverse V1", "Graviton3"),
     (0xD4F, "Neoverse V2", "Graviton4")],
)  # fmt: skip
def test_arm_parts_map_by_implementer_and_part(part: int, core: str, row: str) -> None:
    info = parse_cpuinfo(_arm(0x41, part))
    arch = arch_from_family_model(info)
    assert arch is not None
    assert (arch.label, arch.ccf) == (core, row)
    match = match_cpu(info)
    assert match.microarchitecture == core
    assert match.rule == "family-model"
    idle, peak = ccf_row("aws", row)
    assert match.details["ccf_architecture"] == row
    assert (match.details["ccf_idle_w_per_vcpu"], match.details["ccf_max_w_per_vcpu"]) == (
        idle,
        peak,
    )


def test_grace_from_its_cpuinfo_uses_the_v2_row() -> None:
    # Grace reports Arm's implementer and the Neoverse V2 part number
    match = match_cpu(parse_cpuinfo(_arm(0x41, 0xD4F)))
    assert match.microarchitecture == "Neoverse V2"
    assert "Graviton4" in match.source


def test_cores_without_a_shipped_row_are_identified_but_not_mapped() -> None:
    info = parse_cpuinfo(_arm(0xC0, 0xAC3))
    arch = arch_from_family_model(info)
    assert arch is not None
    assert (arch.label, arch.ccf) == ("AmpereOne", None)
    assert "no shipped table has a row" in arch.why
    match = match_cpu(info)
    assert match.rule in ("tdp-table", "default-per-thread")


def test_unknown_arm_part_is_not_guessed() -> None:
    assert arch_from_family_model(parse_cpuinfo(_arm(0x41, 0xFFF))) is None
