"""CPU identification: which microarchitecture a cpuinfo describes, and the table row for it.

Split from the power model (``_cpu_model.py``): this module only says *what* the CPU is,
with the source of each rule; ``_cpu_model`` turns that into watts. Three ways, in the
order ``match_cpu`` tries them:

``arch_from_name``
    The model string names the part ("AMD EPYC 7R13" -> Zen 3, "Intel Xeon Platinum
    8375C" -> Ice Lake, "Graviton3", "Ampere Altra" -> Neoverse N1, "NVIDIA Grace" ->
    Neoverse V2).
``arch_from_family_model``
    cpuinfo's numbers: AMD family/model (Linux ``arch/x86/kernel/cpu/amd.c``), Intel
    family 6 model (``arch/x86/include/asm/intel-family.h``), Arm implementer/part
    (``arch/arm64/include/asm/cputype.h``).
``check_isa``
    The ISA flags overrule a family/model that contradicts them (AMX in a VM that hides
    the model).

Arm server parts are mapped to a row only where the shipped tables have one: Cloud Carbon
Footprint's AWS table has Graviton2/3/3E/4 rows (Neoverse N1, V1, V1, V2), so Ampere Altra
(N1) and NVIDIA Grace (V2) use the row of AWS's part on the same core; AmpereOne and
NVIDIA's own cores are identified without a row.
"""

from __future__ import annotations

import dataclasses
import re

from wattwise.meters._cpuinfo import CpuInfo


@dataclasses.dataclass(frozen=True)
class Arch:
    """A CPU's microarchitecture and the table row that covers it.

    Attributes:
        label: ``"Zen 4"``, ``"Sapphire Rapids"``, ``"Neoverse N1"``.
        ccf: The Cloud Carbon Footprint "Architecture" row with figures for it, or None
            when the shipped tables have none.
        why: How it was found, with its source.
    """

    label: str
    ccf: str | None
    why: str


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


def arch_from_name(name: str) -> Arch | None:
    """Microarchitecture named by a model string, or None."""
    if m := _EPYC_NAME.search(name):
        gen = int(m.group(2))
        return Arch(
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
        return Arch(
            label,
            label if label != "Cooper Lake" else None,
            f"model name {name!r}: Xeon Scalable generation {gen} (second digit of the "
            f"model number) -> {label}",
        )
    if m := _XEON_6.search(name):
        label = "Granite Rapids" if m.group(1).upper() == "P" else "Sierra Forest"
        return Arch(
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
        return Arch(label, ccf, f"model name {name!r}: Xeon E{m.group(1)} {ver} -> {label}")
    if m := _XEON_PRE_2011.search(name):
        family = int(m.group(1))
        if family in _XEON_PRE_2011_FAMILY:
            label, series = _XEON_PRE_2011_FAMILY[family]
            return Arch(label, None, f"model name {name!r}: {series} -> {label}")
    if m := _OPTERON.search(name):
        key = (int(m.group(1)), int(m.group(2)))
        if key in _OPTERON_GEN:
            label = _OPTERON_GEN[key]
            return Arch(
                label,
                None,
                f"model name {name!r}: Opteron {key[0]}{key[1]}xx series -> {label}",
            )
    if m := _XEON_E2.search(name):
        gen = int(m.group(1))
        if gen not in _XEON_E2_GEN:
            return None
        label = _XEON_E2_GEN[gen]
        return Arch(
            label,
            label if label == "Coffee Lake" else None,
            f"model name {name!r}: Xeon E-2{gen}00 series -> {label}",
        )
    if m := _GRAVITON.search(name):
        label = f"Graviton{m.group(1)}{m.group(2).upper()}"
        return Arch(label, label, f"model name {name!r} -> {label}")
    for pattern, core, why in _ARM_NAMES:
        if pattern.search(name):
            row = _NEOVERSE_ROWS[core]
            return Arch(
                core,
                row,
                f"model name {name!r}: {why}; CCF row {row!r} (AWS's part on the same core)",
            )
    return None


# ---------------------------------------------------------------------------------------
# (b) cpu family / model


def _amd_arch(family: int, model: int) -> Arch | None:
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
    return Arch(label, ccf, f"{where} -> {label} per {src}")


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


def _intel_arch(model: int, stepping: int | None) -> Arch | None:
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
    return Arch(label, ccf, f"{where}{step} -> {label} per {src}")


# Arm part numbers, Linux arch/arm64/include/asm/cputype.h (implementer 0x41 = Arm Ltd).
# CCF's Graviton rows are AWS's Neoverse parts: Graviton2 = Neoverse N1, Graviton3 =
# Neoverse V1, Graviton4 = Neoverse V2 (other vendors' parts on the same core match too).
_ARM_PARTS: dict[int, tuple[str, str]] = {
    0xD0C: ("Neoverse N1", "Graviton2"),
    0xD40: ("Neoverse V1", "Graviton3"),
    0xD4F: ("Neoverse V2", "Graviton4"),
}
_NEOVERSE_ROWS = {core: row for core, row in _ARM_PARTS.values()}

# Server parts built on those cores, by the name lscpu, DMI or a cloud shows:
# Ampere Altra and Altra Max: 80 and 128 Neoverse N1 cores (Ampere Altra product brief);
# NVIDIA Grace: 72 Neoverse V2 cores (NVIDIA Grace CPU Superchip datasheet).
_ARM_NAMES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"\bNeoverse[-\s]?N1\b", re.I), "Neoverse N1", "names the Neoverse N1 core"),
    (re.compile(r"\bNeoverse[-\s]?V1\b", re.I), "Neoverse V1", "names the Neoverse V1 core"),
    (re.compile(r"\bNeoverse[-\s]?V2\b", re.I), "Neoverse V2", "names the Neoverse V2 core"),
    (re.compile(r"\bAmpere(?:\(R\))?\s+Altra\b", re.I), "Neoverse N1",
     "Ampere Altra and Altra Max are built on Neoverse N1 cores"),
    (re.compile(r"\bNVIDIA\s+Grace\b|\bGrace\s+(?:CPU|Hopper|Blackwell)\b", re.I),
     "Neoverse V2", "NVIDIA Grace is built on Neoverse V2 cores"),
)  # fmt: skip

# Other implementers' own cores (Linux arch/arm64/include/asm/cputype.h): identified, but
# the shipped tables have no row for them, so no CCF row.
_OTHER_ARM_PARTS: dict[tuple[int, int], str] = {
    (0xC0, 0xAC3): "AmpereOne",  # ARM_CPU_IMP_AMPERE, AMPERE_CPU_PART_AMPERE1
    (0x4E, 0x003): "NVIDIA Denver",  # ARM_CPU_IMP_NVIDIA, NVIDIA_CPU_PART_DENVER
    (0x4E, 0x004): "NVIDIA Carmel",  # NVIDIA_CPU_PART_CARMEL (Jetson Xavier)
}


def arch_from_family_model(info: CpuInfo) -> Arch | None:
    if info.vendor == "AuthenticAMD" and info.family is not None and info.model is not None:
        return _amd_arch(info.family, info.model)
    if info.vendor == "GenuineIntel" and info.family == 6 and info.model is not None:
        return _intel_arch(info.model, info.stepping)
    if info.arm_implementer == 0x41 and info.arm_part in _ARM_PARTS:
        core, row = _ARM_PARTS[info.arm_part]
        return Arch(
            core,
            row,
            f"Arm CPU part 0x{info.arm_part:X} -> {core} per Linux "
            f"arch/arm64/include/asm/cputype.h; CCF row {row!r} ({core} is its core)",
        )
    key = (info.arm_implementer, info.arm_part)
    if key in _OTHER_ARM_PARTS:
        label = _OTHER_ARM_PARTS[key]
        return Arch(
            label,
            None,
            f"Arm implementer 0x{info.arm_implementer:X} part 0x{info.arm_part:X} -> {label} "
            "per Linux arch/arm64/include/asm/cputype.h; no shipped table has a row for it",
        )
    return None


def check_isa(info: CpuInfo, arch: Arch | None) -> Arch | None:
    """Correct a family/model answer the ISA flags contradict (masked models in VMs)."""
    if info.vendor != "GenuineIntel" or "amx_tile" not in info.flags:
        return arch
    if arch is not None and arch.label in _AMX_ARCHES:
        return arch
    label = "Granite Rapids" if "amx_fp16" in info.flags else "Sapphire Rapids"
    claimed = f"the family/model says {arch.label}" if arch else "the model number is unknown"
    return Arch(
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
