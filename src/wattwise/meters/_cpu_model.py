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

Which microarchitecture a cpuinfo describes (the ``model-name``, ``family-model`` and
``isa-flags`` rules, Arm parts included) is decided in ``_cpuid.py``; this module holds the
power model, the TDP tables and the meter.
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
from wattwise.meters._cpuid import Arch, arch_from_family_model, arch_from_name, check_isa
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

    def from_arch(arch: Arch, rule: str) -> CpuMatch | None:
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

    def family_model() -> tuple[CpuMatch | None, Arch | None]:
        fm = arch_from_family_model(info)
        checked = check_isa(info, fm)
        if checked is None:
            return None, None
        rule = "family-model" if checked is fm else "isa-flags"
        return from_arch(checked, rule), checked

    arch_seen: Arch | None = None
    # (a) the model name
    named = arch_from_name(info.model_name)
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
    info: CpuInfo, arch: Arch | None, base_details: dict[str, object], cal: Calibration
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
