"""CPU energy estimated from the CPU model and machine-wide busy time, where no counter exists.

Machine-wide CPU power, per vCPU (Cloud Carbon Footprint's use model)::

    P = n_vcpu * idle_W + busy_vcpus * (max_W - idle_W)

so the cumulative energy since the first read is::

    E = n_vcpu * idle_W * elapsed_s + busy_cpu_seconds * (max_W - idle_W)

where ``busy_cpu_seconds`` is the machine's busy CPU time (``psutil.cpu_times()``).

``idle_W``/``max_W`` are per hardware thread and come from the first rule that matches,
recorded in ``info().details["rule"]``. The microarchitecture rules use, for that
architecture, the row fitted on SPECpower_ssj2008 (``calibration/specpower_coefficients.csv``,
see ``wattwise.meters._calibration``) or, for architectures SPECpower has no results for,
the Cloud Carbon Footprint row scaled by the calibration's ``ccf-scale``:

``model-name``
    The ``model name`` string names the part ("AMD EPYC 7R13" -> Zen 3, "Intel Xeon
    Platinum 8375C" -> Ice Lake, "Xeon E3-1220v2" -> Ivy Bridge, "Xeon X5670" -> Westmere,
    "Opteron 6276" -> Bulldozer).
``family-model``
    The name is generic (VMs hide it: "AMD EPYC", "Intel(R) Xeon(R) Processor"), so
    cpuinfo's ``cpu family``/``model`` give the microarchitecture (AMD: Linux
    ``arch/x86/kernel/cpu/amd.c`` ``bsp_init_amd``; Intel family 6: Linux
    ``arch/x86/include/asm/intel-family.h``; Arm: ``arch/arm64/include/asm/cputype.h``).
``isa-flags``
    The family/model number contradicts the ISA flags (a hypervisor reported a model
    without AMX while the flags show AMX, found only on 4th-generation Xeon Scalable and
    later): the flags decide (``amx_fp16`` -> Granite Rapids, else Sapphire Rapids).
``tdp-table``
    No architecture row: TDP per thread from CodeCarbon's ``cpu_power.csv`` (bare metal
    only: TDP / threads per socket) or Green Algorithms' ``TDP_cpu.csv`` (TDP / (cores x
    threads per core)), matched by normalised model string, times the idle and busy
    fractions of TDP fitted on SPECpower.
``default-per-thread``
    Nothing matched: the median idle and busy watts per thread of every SPECpower server,
    with the wide band that knowing nothing deserves.

The figure is the host's wall-power share without memory (CPU, fans, disks, power-supply
losses); ``dram-model`` adds memory's share. Each rule class has a 90 % band per load
range, estimated out of sample (``band_for()``; ``info().band_meaning`` says what it is).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from wattwise.data import read_csv
from wattwise.exceptions import InvalidParameterError, MeterError, MeterUnavailableError
from wattwise.meters._base import (
    Availability,
    BaseMeter,
    Component,
    MeterInfo,
    Method,
    clause,
)
from wattwise.meters._calibration import (
    BANDS_FILE,
    COEFFICIENTS_FILE,
    Calibration,
    load_range_of,
    shipped_calibration,
)
from wattwise.meters._cpuinfo import DEFAULT_CPUINFO, CpuInfo, read_cpuinfo

PROVIDERS: tuple[str, ...] = ("aws", "gcp", "azure")
DEFAULT_PROVIDER_TABLE = "aws"
_CCF_FILE = "cloud/ccf_coefficients_{}_use.csv"
_CODECARBON_TDP_FILE = "hardware/codecarbon_cpu_power.csv"
_GA_TDP_FILE = "hardware/greenalgorithms_TDP_cpu.csv"

#: What a modelled host figure covers, written into the record.
COVERS = (
    "host wall-power share: cpu-model covers CPU, fans, disks and power-supply losses; "
    "dram-model covers memory; together they are what SPECpower_ssj2008 measures at the wall"
)

# psutil.cpu_times() fields that are not busy time. On Linux guest and guest_nice are
# already inside user and nice (psutil's own cpu_percent subtracts them the same way).
_NOT_BUSY_FIELDS = frozenset({"idle", "iowait", "guest", "guest_nice"})

RULES: tuple[str, ...] = (
    "model-name",
    "family-model",
    "isa-flags",
    "tdp-table",
    "default-per-thread",
)


@dataclasses.dataclass(frozen=True)
class _Arch:
    label: str  # "Zen 4", "Sapphire Rapids"
    ccf: str | None  # CCF "Architecture" row name, None when CCF has none for it
    why: str  # how it was found, with its source


@dataclasses.dataclass(frozen=True)
class CpuMatch:
    """The per-vCPU power figures chosen for this CPU, and why.

    Attributes:
        microarchitecture: ``"Zen 4"``, ``"Sapphire Rapids"``… or None when unknown.
        rule: One of ``model-name``, ``family-model``, ``isa-flags``, ``tdp-table``,
            ``default-per-thread``.
        idle_w_per_vcpu: Power of one idle vCPU, W.
        max_w_per_vcpu: Power of one fully busy vCPU, W.
        source: The table row (or constant) used, human readable.
        assumptions: Each rule and constant the figures rest on, with its source.
        details: Structured facts for the record.
        band_class: Which calibrated band applies: ``arch-specpower-recent`` or
            ``arch-specpower-older`` (architecture row fitted on SPECpower, by the age of
            its servers), ``arch-ccf`` (CCF row, no SPECpower results for the
            architecture), ``tdp-table`` or ``default``.
    """

    microarchitecture: str | None
    rule: str
    idle_w_per_vcpu: float
    max_w_per_vcpu: float
    source: str
    assumptions: tuple[str, ...]
    details: dict[str, object]
    band_class: str = "default"


# ---------------------------------------------------------------------------------------
# (a) model name string


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


_ZEN_BY_EPYC_GEN = {1: "Zen", 2: "Zen 2", 3: "Zen 3", 4: "Zen 4", 5: "Zen 5"}
_EPYC_NAME = re.compile(r"\bEPYC\s+(?:Embedded\s+)?([3-9])[0-9A-Z]{2}([1-5])", re.I)
_XEON_SCALABLE = re.compile(
    r"\bXeon(?:\(R\))?\s+(Platinum|Gold|Silver|Bronze)\s+(\d)(\d)\d{2}([A-Z+]*)", re.I
)
_XEON_6 = re.compile(r"\bXeon(?:\(R\))?\s+6\d{3}([PE])\b", re.I)
# "E5-2699 v4", "E3-1220v2", "E5-2660V2", "E3-1265Lv3": the version may follow the model
# number or its letter suffix with or without a space. The suffix class leaves out V so that
# "1220v2" is read as 1220 + v2 (under re.I, [A-Z] would swallow the "v").
_XEON_E357 = re.compile(
    r"\bXeon(?:\(R\))?\s+(?:CPU\s+|Processor\s+)?E([357])-\s?\d{4}[A-UW-Z]*(?:\s*v(\d))?\b",
    re.I,
)
# Xeon numbers before the E3/E5/E7 scheme (2006-2011): an optional letter (E, L, X, W) then
# four digits, the first two naming the family ("Intel Xeon L5420", "Xeon X5670", "Xeon 3070").
_XEON_PRE_2011 = re.compile(
    r"\bXeon(?:\(R\))?\s+(?:CPU\s+|Processor\s+)?[ELXW]?([3-7]\d)\d{2}\b(?!-)", re.I
)
_OPTERON = re.compile(r"\bOpteron(?:\(tm\))?\s+(?:Processor\s+)?([1-8])(\d)\d{2}(?!\d)", re.I)
_XEON_E2 = re.compile(r"\bXeon(?:\(R\))?\s+(?:CPU\s+)?E-2(\d)\d{2}", re.I)
_GRAVITON = re.compile(r"\bGraviton\s*(\d)(E?)\b", re.I)

# Intel's naming of Xeon Scalable generations: the second digit of the model number.
# 3rd-generation parts with an H/HL suffix are Cooper Lake (no CCF row), the others Ice Lake.
_XEON_SCALABLE_GEN = {
    1: "Skylake",
    2: "Cascade Lake",
    3: "Ice Lake",
    4: "Sapphire Rapids",
    5: "Emerald Rapids",
}
# Xeon E3/E5/E7 "vN" suffix -> microarchitecture (no suffix: Sandy Bridge for E3/E5).
_XEON_VERSION = {
    None: "Sandy Bridge",
    2: "Ivy Bridge",
    3: "Haswell",
    4: "Broadwell",
    5: "Skylake",
    6: "Kaby Lake",
}
_XEON_E2_GEN = {1: "Coffee Lake", 2: "Coffee Lake", 3: "Rocket Lake", 4: "Raptor Lake"}
# Xeon numbers of 2006-2011, first two digits -> microarchitecture (Intel ARK product
# families; the Core microarchitecture is Intel's 65 nm "Core", Penryn its 45 nm shrink).
_XEON_PRE_2011_FAMILY = {
    30: ("Core", "Xeon 3000 (Conroe)"),
    31: ("Penryn", "Xeon 3100 (Wolfdale)"),
    32: ("Core", "Xeon 3200 (Kentsfield)"),
    33: ("Penryn", "Xeon 3300 (Yorkfield)"),
    34: ("Nehalem", "Xeon 3400 (Lynnfield)"),
    35: ("Nehalem", "Xeon 3500 (Bloomfield)"),
    36: ("Westmere", "Xeon 3600 (Gulftown)"),
    50: ("NetBurst", "Xeon 5000 (Dempsey)"),
    51: ("Core", "Xeon 5100 (Woodcrest)"),
    52: ("Penryn", "Xeon 5200 (Wolfdale-DP)"),
    53: ("Core", "Xeon 5300 (Clovertown)"),
    54: ("Penryn", "Xeon 5400 (Harpertown)"),
    55: ("Nehalem", "Xeon 5500 (Gainestown)"),
    56: ("Westmere", "Xeon 5600 (Westmere-EP)"),
    65: ("Nehalem", "Xeon 6500 (Beckton)"),
    70: ("NetBurst", "Xeon 7000 (Paxville MP)"),
    71: ("NetBurst", "Xeon 7100 (Tulsa)"),
    72: ("Core", "Xeon 7200 (Tigerton)"),
    73: ("Core", "Xeon 7300 (Tigerton)"),
    74: ("Penryn", "Xeon 7400 (Dunnington)"),
    75: ("Nehalem", "Xeon 7500 (Beckton)"),
}
# Opteron model numbers: first digit the socket series, second the generation (AMD's
# numbering; 1/2/8-series: 2 = K8 Rev F, 3-4 = K10; 3/4/6-series: 1 = K10, 2 = Bulldozer,
# 3 = Piledriver).
_OPTERON_GEN = {
    (1, 2): "K8", (2, 2): "K8", (8, 2): "K8",
    (1, 3): "K10", (2, 3): "K10", (8, 3): "K10", (2, 4): "K10", (8, 4): "K10",
    (4, 1): "K10", (6, 1): "K10",
    (3, 2): "Bulldozer", (4, 2): "Bulldozer", (6, 2): "Bulldozer",
    (3, 3): "Piledriver", (4, 3): "Piledriver", (6, 3): "Piledriver",
}  # fmt: skip


def _arch_from_name(name: str) -> _Arch | None:
    """Microarchitecture named by a model string, or None."""
    if m := _EPYC_NAME.search(name):
        gen = int(m.group(2))
        return _Arch(
            _ZEN_BY_EPYC_GEN[gen],
            f"EPYC {_ordinal(gen)} Gen",
            f"model name {name!r}: the last digit of an EPYC model number is its "
            f"generation ({m.group(0).split()[-1]} -> {_ordinal(gen)} Gen)",
        )
    if m := _XEON_SCALABLE.search(name):
        gen, suffix = int(m.group(3)), m.group(4).upper()
        if gen == 3 and suffix.startswith("H"):
            label = "Cooper Lake"
        elif gen in _XEON_SCALABLE_GEN:
            label = _XEON_SCALABLE_GEN[gen]
        else:
            return None
        return _Arch(
            label,
            label if label != "Cooper Lake" else None,
            f"model name {name!r}: Xeon Scalable generation {gen} (second digit of the "
            f"model number) -> {label}",
        )
    if m := _XEON_6.search(name):
        label = "Granite Rapids" if m.group(1).upper() == "P" else "Sierra Forest"
        return _Arch(
            label,
            label if label == "Granite Rapids" else None,
            f"model name {name!r}: Xeon 6 {m.group(1).upper()}-core part -> {label}",
        )
    if m := _XEON_E357.search(name):
        version = int(m.group(2)) if m.group(2) else None
        if m.group(1) == "7" and version is None:
            label = "Westmere"
        elif version in _XEON_VERSION:
            label = _XEON_VERSION[version]
        else:
            return None
        ccf = label if label not in ("Westmere", "Kaby Lake") else None
        ver = f"v{version}" if version else "without a vN suffix"
        return _Arch(label, ccf, f"model name {name!r}: Xeon E{m.group(1)} {ver} -> {label}")
    if m := _XEON_PRE_2011.search(name):
        family = int(m.group(1))
        if family in _XEON_PRE_2011_FAMILY:
            label, series = _XEON_PRE_2011_FAMILY[family]
            return _Arch(label, None, f"model name {name!r}: {series} -> {label}")
    if m := _OPTERON.search(name):
        key = (int(m.group(1)), int(m.group(2)))
        if key in _OPTERON_GEN:
            label = _OPTERON_GEN[key]
            return _Arch(
                label,
                None,
                f"model name {name!r}: Opteron {key[0]}{key[1]}xx series -> {label}",
            )
    if m := _XEON_E2.search(name):
        gen = int(m.group(1))
        if gen not in _XEON_E2_GEN:
            return None
        label = _XEON_E2_GEN[gen]
        return _Arch(
            label,
            label if label == "Coffee Lake" else None,
            f"model name {name!r}: Xeon E-2{gen}00 series -> {label}",
        )
    if m := _GRAVITON.search(name):
        label = f"Graviton{m.group(1)}{m.group(2).upper()}"
        return _Arch(label, label, f"model name {name!r} -> {label}")
    return None


# ---------------------------------------------------------------------------------------
# (b) cpu family / model


def _amd_arch(family: int, model: int) -> _Arch | None:
    # Linux arch/x86/kernel/cpu/amd.c, bsp_init_amd(): "Figure out Zen generations".
    src = "Linux arch/x86/kernel/cpu/amd.c (bsp_init_amd)"
    where = f"cpu family {family} (0x{family:X}) model {model} (0x{model:X})"
    zen: int | None = None
    if family == 0x17:
        if 0x00 <= model <= 0x2F or 0x50 <= model <= 0x5F:
            zen = 1
        elif (
            0x30 <= model <= 0x4F
            or 0x60 <= model <= 0x7F
            or 0x90 <= model <= 0x91
            or 0xA0 <= model <= 0xAF
        ):
            zen = 2
    elif family == 0x19:
        if 0x00 <= model <= 0x0F or 0x20 <= model <= 0x5F:
            zen = 3
        elif 0x10 <= model <= 0x1F or 0x60 <= model <= 0xAF:
            zen = 4
    elif family == 0x1A:
        if 0x00 <= model <= 0x2F or 0x40 <= model <= 0x4F or 0x60 <= model <= 0x7F:
            zen = 5
        elif 0x50 <= model <= 0x5F or 0x80 <= model <= 0xAF or 0xC0 <= model <= 0xEF:
            zen = 6
    if zen is None:
        return None
    label = "Zen" if zen == 1 else f"Zen {zen}"
    ccf = f"EPYC {_ordinal(zen)} Gen" if zen <= 5 else None
    return _Arch(label, ccf, f"{where} -> {label} per {src}")


# Intel family 6 model numbers, Linux arch/x86/include/asm/intel-family.h.
# value: (microarchitecture, CCF row or None). 0x55, 0x8E and 0x9E depend on the stepping.
_INTEL_FAM6: dict[int, tuple[str, str | None]] = {
    0x2A: ("Sandy Bridge", "Sandy Bridge"),
    0x2D: ("Sandy Bridge", "Sandy Bridge"),  # SANDYBRIDGE_X
    0x3A: ("Ivy Bridge", "Ivy Bridge"),
    0x3E: ("Ivy Bridge", "Ivy Bridge"),  # IVYBRIDGE_X
    0x3C: ("Haswell", "Haswell"),
    0x3F: ("Haswell", "Haswell"),  # HASWELL_X
    0x45: ("Haswell", "Haswell"),
    0x46: ("Haswell", "Haswell"),
    0x3D: ("Broadwell", "Broadwell"),
    0x47: ("Broadwell", "Broadwell"),
    0x4F: ("Broadwell", "Broadwell"),  # BROADWELL_X
    0x56: ("Broadwell", "Broadwell"),  # BROADWELL_D
    0x4E: ("Skylake", "Skylake"),
    0x5E: ("Skylake", "Skylake"),
    0xA5: ("Comet Lake", None),
    0xA6: ("Comet Lake", None),
    0x66: ("Cannon Lake", None),
    0x6A: ("Ice Lake", "Ice Lake"),  # ICELAKE_X
    0x6C: ("Ice Lake", "Ice Lake"),  # ICELAKE_D
    0x7D: ("Ice Lake", "Ice Lake"),
    0x7E: ("Ice Lake", "Ice Lake"),
    0x9D: ("Ice Lake", "Ice Lake"),
    0xA7: ("Rocket Lake", None),
    0x8C: ("Tiger Lake", None),
    0x8D: ("Tiger Lake", None),
    0x8F: ("Sapphire Rapids", "Sapphire Rapids"),  # SAPPHIRERAPIDS_X
    0xCF: ("Emerald Rapids", "Emerald Rapids"),  # EMERALDRAPIDS_X
    0xAD: ("Granite Rapids", "Granite Rapids"),  # GRANITERAPIDS_X
    0xAE: ("Granite Rapids", "Granite Rapids"),  # GRANITERAPIDS_D
    0x8A: ("Lakefield", None),
    0x97: ("Alder Lake", None),
    0x9A: ("Alder Lake", None),
    0xB7: ("Raptor Lake", None),
    0xBA: ("Raptor Lake", None),
    0xBF: ("Raptor Lake", None),
    0xAA: ("Meteor Lake", None),
    0xAC: ("Meteor Lake", None),
    0xB5: ("Arrow Lake", None),
    0xC5: ("Arrow Lake", None),
    0xC6: ("Arrow Lake", None),
    0xBD: ("Lunar Lake", None),
    0xAF: ("Sierra Forest", None),  # ATOM_CRESTMONT_X
    0xDD: ("Clearwater Forest", None),  # ATOM_DARKMONT_X
}
_AMX_ARCHES = frozenset({"Sapphire Rapids", "Emerald Rapids", "Granite Rapids"})


def _intel_arch(model: int, stepping: int | None) -> _Arch | None:
    src = "Linux arch/x86/include/asm/intel-family.h"
    where = f"cpu family 6 model {model} (0x{model:X})"
    step = f" stepping {stepping}" if stepping is not None else ""
    label: str | None
    ccf: str | None
    if model == 0x55:
        # SKYLAKE_X; the header's comments: CASCADELAKE_X is stepping 7, COOPERLAKE_X 11.
        # Steppings 5-6 are early Cascade Lake silicon; 0-4 Skylake-SP.
        if stepping is None:
            return None
        if stepping >= 10:
            label, ccf = "Cooper Lake", None
        elif stepping >= 5:
            label, ccf = "Cascade Lake", "Cascade Lake"
        else:
            label, ccf = "Skylake", "Skylake"
    elif model == 0x8E:
        # KABYLAKE_L; comments: AMBERLAKE_L s:9, COFFEELAKE_L s:10, WHISKEYLAKE_L s:11,12.
        if stepping == 10:
            label, ccf = "Coffee Lake", "Coffee Lake"
        else:
            label = {9: "Amber Lake", 11: "Whiskey Lake", 12: "Whiskey Lake"}.get(
                stepping if stepping is not None else -1, "Kaby Lake"
            )
            ccf = None
    elif model == 0x9E:
        # KABYLAKE; comment: COFFEELAKE s:10-13.
        if stepping is not None and 10 <= stepping <= 13:
            label, ccf = "Coffee Lake", "Coffee Lake"
        else:
            label, ccf = "Kaby Lake", None
    elif model in _INTEL_FAM6:
        label, ccf = _INTEL_FAM6[model]
    else:
        return None
    return _Arch(label, ccf, f"{where}{step} -> {label} per {src}")


# Arm part numbers, Linux arch/arm64/include/asm/cputype.h (implementer 0x41 = Arm Ltd).
# CCF's Graviton rows are AWS's Neoverse parts: Graviton2 = Neoverse N1, Graviton3 =
# Neoverse V1, Graviton4 = Neoverse V2 (other vendors' parts on the same core match too).
_ARM_PARTS: dict[int, tuple[str, str]] = {
    0xD0C: ("Neoverse N1", "Graviton2"),
    0xD40: ("Neoverse V1", "Graviton3"),
    0xD4F: ("Neoverse V2", "Graviton4"),
}


def _arch_from_family_model(info: CpuInfo) -> _Arch | None:
    if info.vendor == "AuthenticAMD" and info.family is not None and info.model is not None:
        return _amd_arch(info.family, info.model)
    if info.vendor == "GenuineIntel" and info.family == 6 and info.model is not None:
        return _intel_arch(info.model, info.stepping)
    if info.arm_implementer == 0x41 and info.arm_part in _ARM_PARTS:
        core, row = _ARM_PARTS[info.arm_part]
        return _Arch(
            core,
            row,
            f"Arm CPU part 0x{info.arm_part:X} -> {core} per Linux "
            f"arch/arm64/include/asm/cputype.h; CCF row {row!r} ({core} is its core)",
        )
    return None


def _check_isa(info: CpuInfo, arch: _Arch | None) -> _Arch | None:
    """Correct a family/model answer the ISA flags contradict (masked models in VMs)."""
    if info.vendor != "GenuineIntel" or "amx_tile" not in info.flags:
        return arch
    if arch is not None and arch.label in _AMX_ARCHES:
        return arch
    label = "Granite Rapids" if "amx_fp16" in info.flags else "Sapphire Rapids"
    claimed = f"the family/model says {arch.label}" if arch else "the model number is unknown"
    return _Arch(
        label,
        label,
        f"{claimed}, but the flags show AMX (amx_tile), which Intel ships only from 4th "
        f"Gen Xeon Scalable (Sapphire Rapids) on; "
        + (
            "amx_fp16 (added with Granite Rapids) is present -> Granite Rapids"
            if label == "Granite Rapids"
            else "no amx_fp16 -> Sapphire Rapids (Emerald Rapids has the same flags and "
            "cannot be told apart)"
        ),
    )


# ---------------------------------------------------------------------------------------
# (c) TDP tables

_NOISE = re.compile(
    r"\((?:r|tm)\)|®|™|\bcpu\b|\bprocessor\b|@\s*[\d.]+\s*[gm]hz|\b\d+-core\b", re.IGNORECASE
)


def normalise_model_name(name: str) -> str:
    """Lower-case a CPU model string and drop trademarks, "CPU", "Processor" and clocks.

    ``"Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"`` -> ``"intel xeon gold 6148"``.
    """
    return " ".join(_NOISE.sub(" ", name.lower()).split())


def _is_generic(name: str) -> bool:
    """True when the name carries no model number ("AMD EPYC", "Intel Xeon Processor")."""
    return not any(ch.isdigit() for ch in normalise_model_name(name))


@functools.cache
def _tdp_index(relpath: str, skip_rows: int, name_col: str) -> dict[str, list[dict[str, str]]]:
    index: dict[str, list[dict[str, str]]] = {}
    for row in read_csv(relpath, skip_rows=skip_rows):
        key = normalise_model_name(row.get(name_col, "") or "")
        if key and key != "any" and (row.get("TDP") or "").strip():
            index.setdefault(key, []).append(row)
    return index


def _lookup_tdp(
    name: str, relpath: str, skip_rows: int, name_col: str
) -> tuple[str, dict[str, str]] | None:
    """The row whose normalised name equals the model, or is its longest token suffix."""
    tokens = normalise_model_name(name).split()
    if not tokens or not any(ch.isdigit() for ch in tokens[-1]):
        return None
    index = _tdp_index(relpath, skip_rows, name_col)
    # A suffix needs two tokens ("gold 6148"): a bare number could be another vendor's.
    for start in range(max(1, len(tokens) - 1)):
        candidate = " ".join(tokens[start:])
        rows = index.get(candidate)
        if rows:
            if len({float(r["TDP"]) for r in rows}) > 1:
                return None  # ambiguous
            return candidate, rows[0]
    return None


# ---------------------------------------------------------------------------------------
# matching


def _ccf_row(provider_table: str, ccf: str) -> dict[str, str] | None:
    for row in read_csv(_CCF_FILE.format(provider_table)):
        if row["Architecture"] == ccf:
            return row
    return None


_WALL_ASSUMPTION = (
    "The figure is the host's wall-power share without memory (CPU, fans, disks, "
    "power-supply losses): SPECpower_ssj2008 measures whole-server AC power; dram-model "
    "adds memory's share, fitted jointly, so nothing is counted twice."
)


def match_cpu(
    info: CpuInfo, *, provider: str | None = None, calibration: Calibration | None = None
) -> CpuMatch:
    """Choose per-vCPU idle and max power for this CPU, following the documented rules.

    Args:
        info: Parsed cpuinfo.
        provider: ``aws``, ``gcp`` or ``azure`` to use that CCF table; None uses AWS's.
        calibration: The SPECpower calibration to use; None uses the shipped one (the
            calibration benchmark passes one fitted without the server it checks).

    Returns:
        The match, with its rule, source, assumptions and details.
    """
    cal = calibration or shipped_calibration()
    table = provider or DEFAULT_PROVIDER_TABLE
    base_details: dict[str, object] = {
        "model_name": info.model_name,
        "vendor": info.vendor,
        "family": info.family,
        "model": info.model,
        "stepping": info.stepping,
        "is_virtual": info.is_virtual,
    }
    if provider:
        table_note = f"Provider {provider!r}: its CCF table is used."
    else:
        sizes = {p: len(read_csv(_CCF_FILE.format(p))) for p in PROVIDERS}
        table_note = (
            "No cloud provider given: the AWS CCF table is used, the most complete of the "
            f"three ({sizes['aws']} architectures against {sizes['gcp']} for GCP and "
            f"{sizes['azure']} for Azure)."
        )
    generic = _is_generic(info.model_name)

    def from_arch(arch: _Arch, rule: str) -> CpuMatch | None:
        fitted = cal.architectures.get(arch.label)
        if fitted is not None:
            idle, peak = fitted.idle, fitted.max
            source = (
                f"SPECpower_ssj2008 calibration, architecture {arch.label!r}: {idle:.3f} W "
                f"idle to {peak:.3f} W busy per thread ({fitted.n_servers} servers)."
            )
            assumptions: tuple[str, ...] = (
                f"Microarchitecture: {arch.why}.",
                f"Idle/busy W per thread for {arch.label!r} from {COEFFICIENTS_FILE}: "
                f"{fitted.source}.",
                _WALL_ASSUMPTION,
            )
            details = {
                **base_details,
                "rule": rule,
                "microarchitecture": arch.label,
                "ccf_architecture": arch.ccf,
                "coefficients": "specpower-fit",
                "table": COEFFICIENTS_FILE,
                "idle_w_per_vcpu": idle,
                "max_w_per_vcpu": peak,
            }
            return CpuMatch(
                arch.label,
                rule,
                idle,
                peak,
                source,
                assumptions,
                details,
                fitted.band_class or "arch-specpower-older",
            )
        if arch.ccf is None:
            return None
        row = _ccf_row(table, arch.ccf)
        used_table = table
        extra: tuple[str, ...] = ()
        if row is None and table != DEFAULT_PROVIDER_TABLE:
            row = _ccf_row(DEFAULT_PROVIDER_TABLE, arch.ccf)
            used_table = DEFAULT_PROVIDER_TABLE
            extra = (f"The {table} CCF table has no {arch.ccf!r} row; the AWS row is used.",)
        if row is None:
            return None
        ccf_idle, ccf_peak = float(row["Min Watts"]), float(row["Max Watts"])
        k_idle, k_max = cal.ccf_scale
        idle, peak = ccf_idle * k_idle, ccf_peak * k_max
        source = (
            f"Cloud Carbon Footprint coefficients ({used_table} table), row {arch.ccf!r}: "
            f"{ccf_idle:.3f} to {ccf_peak:.3f} W per vCPU, scaled by the SPECpower "
            f"calibration ({k_idle:.3f} idle, {k_max:.3f} busy) to {idle:.3f} W idle to "
            f"{peak:.3f} W busy per vCPU."
        )
        assumptions = (
            f"Microarchitecture: {arch.why}.",
            table_note,
            *extra,
            f"Min/Max Watts per vCPU for {arch.ccf!r} from ccf-coefficients "
            f"output/coefficients-{used_table}-use.csv (derived from SPECpower_ssj2008 "
            "results; Apache-2.0). CCF's figures are whole-server watts per vCPU, memory "
            "included.",
            f"No SPECpower results for {arch.label!r}: the CCF row is scaled by "
            f"{k_idle:.3f} (idle) and {k_max:.3f} (busy), the median ratio of fitted to CCF "
            f"figures over the architectures that have both ({COEFFICIENTS_FILE}, "
            "ccf-scale), which takes memory out (dram-model adds it).",
            _WALL_ASSUMPTION,
        )
        details = {
            **base_details,
            "rule": rule,
            "microarchitecture": arch.label,
            "ccf_architecture": arch.ccf,
            "coefficients": "ccf-scaled",
            "table": f"cloud/ccf_coefficients_{used_table}_use.csv",
            "ccf_idle_w_per_vcpu": ccf_idle,
            "ccf_max_w_per_vcpu": ccf_peak,
            "idle_w_per_vcpu": idle,
            "max_w_per_vcpu": peak,
        }
        return CpuMatch(arch.label, rule, idle, peak, source, assumptions, details, "arch-ccf")

    def family_model() -> tuple[CpuMatch | None, _Arch | None]:
        fm = _arch_from_family_model(info)
        checked = _check_isa(info, fm)
        if checked is None:
            return None, None
        rule = "family-model" if checked is fm else "isa-flags"
        return from_arch(checked, rule), checked

    arch_seen: _Arch | None = None
    # (a) the model name
    named = _arch_from_name(info.model_name)
    if named is not None:
        arch_seen = named
        if (m := from_arch(named, "model-name")) is not None:
            return m
    # (b) cpu family / model when the name is generic
    if generic and named is None:
        m, arch = family_model()
        arch_seen = arch or arch_seen
        if m is not None:
            return m
    # (c) TDP tables by model string
    m = _tdp_match(info, arch_seen, base_details, cal)
    if m is not None:
        return m
    # (b, late) a specific name no table knows: the family/model still names the family
    if not generic and named is None:
        m, arch = family_model()
        arch_seen = arch or arch_seen
        if m is not None:
            return m
    # (d) the per-thread default, from SPECpower
    idle, peak = cal.default_w_per_thread
    row = cal.rows[("default", "all")]
    label = arch_seen.label if arch_seen else None
    why = (
        f" The microarchitecture ({arch_seen.why}) has no calibrated or CCF row."
        if arch_seen
        else ""
    )
    return CpuMatch(
        label,
        "default-per-thread",
        idle,
        peak,
        f"SPECpower_ssj2008 calibration, default per thread: {idle:.3f} W idle to "
        f"{peak:.3f} W busy ({row.n_servers} servers).",
        (
            f"No architecture row and no TDP table row matched the CPU {info.model_name!r}.{why}",
            f"Idle/busy W per thread from {COEFFICIENTS_FILE} (default): {row.source}. "
            "Its band is wide: it knows nothing of the CPU.",
            _WALL_ASSUMPTION,
        ),
        {
            **base_details,
            "rule": "default-per-thread",
            "microarchitecture": label,
            "ccf_architecture": None,
            "coefficients": "specpower-default",
            "table": COEFFICIENTS_FILE,
            "idle_w_per_vcpu": idle,
            "max_w_per_vcpu": peak,
        },
        "default",
    )


def tdp_per_thread(info: CpuInfo) -> tuple[float, str, tuple[str, ...], str, str] | None:
    """TDP per hardware thread from the TDP tables, or None when no row matches.

    Returns:
        ``(watts, source, assumptions, table, row name)``.
    """
    if not info.model_name:
        return None
    threads_per_core = info.threads_per_core or 1
    # CodeCarbon's table gives only the package TDP: divide by the threads of one package,
    # which cpuinfo's "siblings" gives on bare metal only (in a VM it counts the guest's
    # vCPUs, not the chip's threads).
    if not info.is_virtual and info.siblings:
        hit = _lookup_tdp(info.model_name, _CODECARBON_TDP_FILE, 0, "Name")
        if hit is not None:
            key, row = hit
            tdp = float(row["TDP"])
            per = tdp / info.siblings
            return (
                per,
                f"CodeCarbon cpu_power.csv row {row['Name']!r}: TDP {tdp:g} W / "
                f"{info.siblings} threads per socket = {per:.3f} W per thread",
                (
                    f"TDP {tdp:g} W from hardware/codecarbon_cpu_power.csv (CodeCarbon, MIT; "
                    f"scraped from Intel ARK and AMD pages), matched as {key!r}.",
                    f"Bare metal (no hypervisor flag): cpuinfo 'siblings' = {info.siblings} "
                    "threads per socket.",
                ),
                _CODECARBON_TDP_FILE,
                row["Name"],
            )
    hit = _lookup_tdp(info.model_name, _GA_TDP_FILE, 1, "model")
    if hit is not None and (hit[1].get("n_cores") or "").strip():
        key, row = hit
        tdp, cores = float(row["TDP"]), int(float(row["n_cores"]))
        per = tdp / (cores * threads_per_core)
        return (
            per,
            f"Green Algorithms TDP_cpu.csv row {row['model']!r}: TDP {tdp:g} W / ({cores} "
            f"cores x {threads_per_core} threads per core) = {per:.3f} W per thread",
            (
                f"TDP {tdp:g} W and {cores} cores from hardware/greenalgorithms_TDP_cpu.csv "
                f"(Green Algorithms, CC BY 4.0; source {row.get('source', '').strip()}), "
                f"matched as {key!r}.",
                f"Threads per core = {threads_per_core} from cpuinfo siblings / cpu cores "
                "(1 when unknown).",
            ),
            _GA_TDP_FILE,
            row["model"],
        )
    return None


def _tdp_match(
    info: CpuInfo, arch: _Arch | None, base_details: dict[str, object], cal: Calibration
) -> CpuMatch | None:
    hit = tdp_per_thread(info)
    if hit is None:
        return None
    per, tdp_source, tdp_assumptions, table, row_name = hit
    f_idle, f_max = cal.tdp_fraction
    row = cal.rows[("tdp-fraction", "all")]
    idle, peak = per * f_idle, per * f_max
    why = f" Its microarchitecture ({arch.why}) has no calibrated or CCF row." if arch else ""
    label = arch.label if arch else None
    return CpuMatch(
        label,
        "tdp-table",
        idle,
        peak,
        f"{tdp_source}; x {f_idle:.3f} idle and x {f_max:.3f} busy (SPECpower "
        f"calibration, {row.n_servers} servers) = {idle:.3f} to {peak:.3f} W per thread.",
        (
            f"No architecture row for the CPU {info.model_name!r}.{why}",
            *tdp_assumptions,
            f"Idle and busy power = {f_idle:.3f} and {f_max:.3f} x TDP per thread, from "
            f"{COEFFICIENTS_FILE} (tdp-fraction): {row.source}.",
            _WALL_ASSUMPTION,
        ),
        {
            **base_details,
            "rule": "tdp-table",
            "microarchitecture": label,
            "ccf_architecture": None,
            "coefficients": "tdp-scaled",
            "table": table,
            "table_row": row_name,
            "tdp_w_per_thread": per,
            "idle_w_per_vcpu": idle,
            "max_w_per_vcpu": peak,
        },
        "tdp-table",
    )


# ---------------------------------------------------------------------------------------
# the meter


def busy_cpu_seconds(times: Any) -> float:
    """Machine busy CPU seconds from a ``psutil.cpu_times()`` result.

    Sums every field except idle and iowait, and except guest and guest_nice, which Linux
    already counts inside user and nice.
    """
    fields: tuple[str, ...] = getattr(times, "_fields", ())
    return float(sum(getattr(times, f) for f in fields if f not in _NOT_BUSY_FIELDS))


def _psutil_cpu_times() -> Any:
    import psutil

    return psutil.cpu_times()


def _band_assumption(band: float | None, meaning: str, by_load: dict[str, float | None]) -> str:
    """The band and what it means, as one line of the record's assumptions."""
    if band is None:
        return f"Band: {meaning}."
    ranges = ", ".join(
        f"{label} ±{value * 100:.0f} %"
        for label, key in (("idle", "idle"), ("10-20 % load", "low"), ("30-100 % load", "active"))
        if (value := by_load.get(key)) is not None
    )
    return f"Band ±{band * 100:.0f} %: {meaning} By load: {ranges}."


class CpuModelMeter(BaseMeter):
    """Machine-wide CPU energy from per-vCPU idle/max power and machine busy time.

    Args:
        cpuinfo_path: The cpuinfo file that names the CPU.
        provider: ``aws``, ``gcp`` or ``azure`` to use that CCF table; None uses AWS's.
        clock: Monotonic seconds (``time.monotonic``); injectable for tests.
        cpu_times: Returns a ``psutil.cpu_times()``-like named tuple (machine totals);
            injectable for tests.
        n_vcpu: Number of vCPUs; default: the logical CPUs in cpuinfo.
        calibration: SPECpower calibration; default: the shipped one.

    Raises:
        InvalidParameterError: ``provider`` is not one of the known providers.
    """

    name: ClassVar[str] = "cpu-model"
    method: ClassVar[Method] = "model"
    covers: ClassVar[tuple[Component, ...]] = ("cpu",)
    preference: ClassVar[int] = 80
    way_out: ClassVar[str] = "leave 'cpu-model' out of meters"

    @classmethod
    def from_context(cls, context: Any) -> CpuModelMeter:
        """The meter for ``context.cpuinfo_path`` and ``context.provider``."""
        return cls(context.cpuinfo_path, context.provider)

    def absence(self, component: str, availability: Availability) -> str:
        """Why no estimate, as a clause."""
        return f"no CPU model estimate ({clause(availability.reason)})"

    def selection_note(self) -> str:
        """The matched rule, for the fallback sentence."""
        return f" (rule {self.match.rule!r})"

    def __init__(
        self,
        cpuinfo_path: Path | str = DEFAULT_CPUINFO,
        provider: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu_times: Callable[[], Any] | None = None,
        n_vcpu: int | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        if provider is not None and provider not in PROVIDERS:
            msg = (
                "The 'provider' parameter of CpuModelMeter must be one of 'aws', 'gcp', "
                f"'azure' or None. Got {provider!r} instead."
            )
            raise InvalidParameterError(msg)
        if n_vcpu is not None and (not isinstance(n_vcpu, int) or n_vcpu < 1):
            msg = (
                "The 'n_vcpu' parameter of CpuModelMeter must be an int in the range "
                f"[1, inf) or None. Got {n_vcpu!r} instead."
            )
            raise InvalidParameterError(msg)
        self._cpuinfo_path = Path(cpuinfo_path)
        self._provider = provider
        self._clock = clock
        self._cpu_times = cpu_times or _psutil_cpu_times
        self._n_vcpu = n_vcpu
        self._match: CpuMatch | None = None
        self._cal = calibration
        self._t0: float | None = None
        self._busy0 = 0.0
        self._last = 0.0
        self._elapsed = 0.0
        self._busy_s = 0.0

    @property
    def match(self) -> CpuMatch:
        """The per-vCPU figures for this CPU (computed once)."""
        if self._match is None:
            self._match = match_cpu(
                read_cpuinfo(self._cpuinfo_path),
                provider=self._provider,
                calibration=self._cal,
            )
        return self._match

    @property
    def n_vcpu(self) -> int:
        """Number of vCPUs the idle power is counted for."""
        return self._n_vcpu or read_cpuinfo(self._cpuinfo_path).logical_cpus

    def _probe(self) -> Availability:
        """Check that busy time can be read and the CPU was matched."""
        try:
            busy_cpu_seconds(self._cpu_times())
            match = self.match
        except ImportError:
            return Availability(
                False,
                "psutil is not installed, so the machine's busy CPU time cannot be read.",
                "Install it with: pip install psutil.",
            )
        except Exception as err:
            return Availability(
                False,
                f"The CPU model meter could not start: {err}.",
                "Run 'wattwise doctor --debug' and report the output.",
            )
        return Availability(
            True,
            f"CPU energy estimated by rule {match.rule!r}: {match.idle_w_per_vcpu:.3f} to "
            f"{match.max_w_per_vcpu:.3f} W per vCPU x {self.n_vcpu} vCPUs.",
        )

    def components(self) -> tuple[Component, ...]:
        """``("cpu",)``."""
        return ("cpu",)

    def read(self) -> dict[str, float]:
        """Cumulative machine-wide CPU joules since the first read (first call: 0).

        Raises:
            MeterUnavailableError: psutil is not installed.
            MeterError: The machine's busy time could not be read.
        """
        match = self.match
        try:
            busy = busy_cpu_seconds(self._cpu_times())
        except ImportError as err:
            msg = (
                "Cannot estimate CPU energy: psutil is not installed. Install it with: "
                "pip install psutil."
            )
            raise MeterUnavailableError(msg) from err
        except Exception as err:
            msg = (
                f"Reading the machine's busy CPU time failed: {err!r}. The energy so far is "
                "kept; run 'wattwise doctor --debug' and report the output."
            )
            raise MeterError(msg) from err
        now = self._clock()
        if self._t0 is None:
            self._t0, self._busy0 = now, busy
        elapsed = max(0.0, now - self._t0)
        busy_s = max(0.0, busy - self._busy0)
        energy = self.n_vcpu * match.idle_w_per_vcpu * elapsed + busy_s * (
            match.max_w_per_vcpu - match.idle_w_per_vcpu
        )
        self._last = max(self._last, energy)  # values only grow, even if /proc/stat jitters
        self._elapsed, self._busy_s = elapsed, busy_s
        return {"cpu:0": self._last}

    @property
    def mean_utilisation(self) -> float | None:
        """Machine busy fraction since the first read, in [0, 1]; None before any time passed."""
        if self._elapsed <= 0:
            return None
        return min(1.0, max(0.0, self._busy_s / (self.n_vcpu * self._elapsed)))

    def band_for(self, utilisation: float | None = None) -> tuple[float | None, str, str]:
        """The calibrated 90 % band for this CPU's rule at a mean utilisation.

        Args:
            utilisation: Mean machine busy fraction in [0, 1]; None pools every load
                level (the band used before the run's load is known).

        Returns:
            ``(band_fraction, band_source, band_meaning)``; ``band_fraction`` is None only
            if the shipped bands table lacks the rule class (then the source says so).
        """
        load = "all" if utilisation is None else load_range_of(utilisation)
        band = self._calibration().band(self.match.band_class, load)
        if band is None:
            return (
                None,
                f"No calibrated band for rule class {self.match.band_class!r} at load {load!r} "
                f"in {BANDS_FILE}.",
                "no band: not calibrated",
            )
        source = f"{BANDS_FILE} row ({band.rule_class}, {band.load_range}): {band.meaning()}"
        return band.band_fraction, source, band.meaning()

    def _calibration(self) -> Calibration:
        return self._cal or shipped_calibration()

    def info(self) -> MeterInfo:
        """The matched rule, coefficients and their sources, and the calibrated band.

        The band is for the load seen so far (``mean_utilisation``), or for every load level
        pooled before any time has passed; ``details["bands_by_load"]`` lists all of them.
        """
        match = self.match
        band, band_source, meaning = self.band_for(self.mean_utilisation)
        cal = self._calibration()
        by_load = {
            load: (b.band_fraction if (b := cal.band(match.band_class, load)) else None)
            for load in ("idle", "low", "active", "all")
        }
        n = self.n_vcpu
        assumptions = (
            "CPU power = n_vcpu x idle_W + busy_vcpus x (max_W - idle_W) (Cloud Carbon "
            "Footprint: Average Watts = Min Watts + utilisation x (Max Watts - Min Watts), "
            "per vCPU).",
            f"n_vcpu = {n} (logical CPUs in {self._cpuinfo_path}).",
            *match.assumptions,
            "Busy CPU seconds = psutil.cpu_times() summed over every field except idle and "
            "iowait (guest and guest_nice are already inside user and nice on Linux); steal "
            "time counts as busy, as in psutil's cpu_percent.",
            "Figures are machine-wide; attribution to a process tree happens in "
            "wattwise.tracking.",
            _band_assumption(band, meaning, by_load),
        )
        return MeterInfo(
            name=self.name,
            method=self.method,
            source=(
                f"{match.source.rstrip('.')}; for {n} vCPUs, busy time from psutil.cpu_times()."
            ),
            assumptions=assumptions,
            band_fraction=band,
            band_source=band_source,
            details={
                **match.details,
                "n_vcpu": n,
                "provider": self._provider,
                "band_class": match.band_class,
                "bands_by_load": by_load,
                "mean_utilisation": self.mean_utilisation,
                "covers": COVERS,
            },
            band_meaning=meaning,
        )
