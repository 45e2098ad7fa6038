"""Software Carbon Intensity (GSF SCI 1.1 = ISO/IEC 21031:2024): ``(E × I + M) / R``.

``E`` is the energy of the runs in kWh, facility overhead (PUE) included; ``I`` the
location-based grid intensity the runs were charged at (gCO2e/kWh); ``M`` the embodied
emissions share of the hardware, ``TE × TiR/EL × RR/ToR``; ``R`` the count of functional
units. ``E × I`` is taken from the ledger (each run's ``co2e_g``), so the SCI agrees to the
gram with every other wattwise figure.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from wattwise.data import read_csv
from wattwise.exceptions import InvalidParameterError, RunNotFoundError
from wattwise.report._covers import covers_lines
from wattwise.store import RunRecord

JOULES_PER_KWH = 3.6e6
HOURS_PER_YEAR = 8760.0
EMBODIED_FILE = "embodied/embodied_reference_values.csv"
CCF_EMBODIED_FILE = "cloud/ccf_coefficients_{}_embodied.csv"
_PROVIDERS = ("aws", "gcp", "azure")


@dataclasses.dataclass(frozen=True)
class SciTerm:
    """One term of the SCI equation, with its value and where it came from.

    Attributes:
        symbol: ``E``, ``I``, ``O``, ``M``, ``R`` or ``SCI``.
        name: What the term is.
        value: The number, in ``unit``.
        unit: ``kWh``, ``gCO2e/kWh``, ``gCO2e``, the functional unit, ...
        source: Where the value comes from (datasets, table rows, user input).
    """

    symbol: str
    name: str
    value: float
    unit: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class EmbodiedShare:
    """SCI ``M`` for one machine: ``TE × TiR/EL × RR/ToR``.

    Attributes:
        host: Host name the runs ran on.
        runs: Runs counted on that host.
        te_kgco2e: Total embodied emissions of the hardware (TE), kgCO2e.
        te_source: How TE was obtained.
        time_reserved_h: Hours the hardware was reserved (TiR): the union of the runs'
            intervals, so overlapping runs are not counted twice.
        lifetime_years: Expected lifespan in years.
        expected_lifespan_h: EL in hours (``lifetime_years × 8760``).
        lifetime_source: Where the lifespan comes from.
        share: Resource share RR/ToR in [0, 1].
        share_source: Where the share comes from.
        m_g: The embodied share in gCO2e.
    """

    host: str
    runs: int
    te_kgco2e: float
    te_source: str
    time_reserved_h: float
    lifetime_years: float
    expected_lifespan_h: float
    lifetime_source: str
    share: float
    share_source: str
    m_g: float

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


#: R's source when the user gave it.
USER_COUNT = "user (--functional-unit, --count)"
#: How to set R, said wherever a default R is shown.
SET_COUNT = "set it with --functional-unit NAME --count R"


def default_count(scope: str, counted_runs: int, final_runs: int) -> tuple[float, str]:
    """R, and its source in words, when the user gave no ``--count``.

    One SCI per "training run" is only meaningful over the runs that trained something to
    keep: a project or study's R is its final runs (role ``final``: finished, not tuning
    trials, cache fills or reproductions), so the tuning, failed and other runs' carbon is
    carried by the models they led to. A run report's R is that run. With no final run
    in the selection, R is 1 for the whole selection, and the source says so.

    Args:
        scope: ``"run"``, ``"study"`` or ``"project"``.
        counted_runs: Runs whose carbon is counted.
        final_runs: Of those, the runs whose role is ``final``.
    """
    if scope == "run":
        return 1.0, f"default: this run is 1 training run; {SET_COUNT}"
    if final_runs:
        return float(final_runs), (
            f"default: the {final_runs} final run(s) of the {scope}, carrying all "
            f"{counted_runs} counted runs' carbon (tuning, failed and other runs); {SET_COUNT}"
        )
    return 1.0, (
        f"default: no final run in the {scope}, so its {counted_runs} counted run(s) are "
        f"taken as 1 training run; {SET_COUNT}"
    )


@dataclasses.dataclass(frozen=True)
class SciResult:
    """An SCI score with every term and its source (the SCI "Report" step).

    Attributes:
        functional_unit: Name of one functional unit (``"training run"``).
        count: R, the number of functional units the runs delivered.
        runs: Runs counted (top-level runs of the scope; nested runs are inside them).
        it_energy_kwh: Energy measured for the runs, before PUE, in kWh.
        energy_kwh: SCI ``E``: IT energy × PUE, in kWh.
        intensity_g_per_kwh: SCI ``I``: the energy-weighted intensity the runs were
            charged at, in gCO2e/kWh.
        operational_g: SCI ``O = E × I``, in gCO2e.
        embodied_g: SCI ``M``, in gCO2e.
        sci_g_per_unit: ``(O + M) / R``, in gCO2e per functional unit.
        terms: The terms in order, with their sources.
        embodied: ``M`` per machine.
        boundary: ``included`` and ``excluded`` parts of the software boundary.
        data_files: Shipped data files the embodied figures came from.
        count_source: Where R came from: the user's ``--count``, or the default and why
            (see :func:`default_count`), in words.
    """

    functional_unit: str
    count: float
    runs: int
    it_energy_kwh: float
    energy_kwh: float
    intensity_g_per_kwh: float
    operational_g: float
    embodied_g: float
    sci_g_per_unit: float
    terms: tuple[SciTerm, ...]
    embodied: tuple[EmbodiedShare, ...]
    boundary: dict[str, list[str]]
    data_files: tuple[str, ...]
    count_source: str = USER_COUNT

    @property
    def is_default_count(self) -> bool:
        """Whether R is wattwise's default, not a count the user gave."""
        return self.count_source != USER_COUNT

    @property
    def r_short(self) -> str:
        """R in a few words for a card: ``R = 3 × training run (default: --count sets it)``."""
        base = f"R = {self.count:g} × {self.functional_unit}"
        return f"{base} (default: --count sets it)" if self.is_default_count else base

    @property
    def r_text(self) -> str:
        """R and where it came from, in one sentence."""
        return f"R = {self.count:g} × {self.functional_unit}: {self.count_source}."

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (the run-record field names of reference §6 E-F)."""
        return {
            "functional_unit": {"name": self.functional_unit, "count": self.count,
                                "gross_or_effective": "gross", "source": self.count_source},
            "runs": self.runs,
            "energy_kwh_it": self.it_energy_kwh,
            "energy_kwh": self.energy_kwh,
            "carbon_intensity_g_per_kwh": self.intensity_g_per_kwh,
            "operational_gco2e": self.operational_g,
            "embodied_gco2e": self.embodied_g,
            "total_gco2e": self.operational_g + self.embodied_g,
            "sci_g_per_unit": self.sci_g_per_unit,
            "terms": [t.to_dict() for t in self.terms],
            "embodied": [e.to_dict() for e in self.embodied],
            "boundary": self.boundary,
            "market_based_instruments_applied": False,
            "data_files": list(self.data_files),
        }  # fmt: skip


def _checked(
    name: str, value: object, *, upper: float | None = None, allow_zero: bool = False
) -> float:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
        and (upper is None or value <= upper)
    )
    if not ok:
        low = "[0" if allow_zero else "(0"
        rule = f"in the range {low}, {upper:g}]" if upper is not None else (
            ">= 0" if allow_zero else "> 0"
        )
        msg = f"The {name!r} parameter must be a number {rule}. Got {value!r} instead."
        raise InvalidParameterError(msg)
    return float(value)  # type: ignore[arg-type]


def _optional(
    name: str, value: float | None, *, upper: float | None = None, allow_zero: bool = False
) -> float | None:
    return None if value is None else _checked(name, value, upper=upper, allow_zero=allow_zero)


def _reference_rows() -> dict[str, dict[str, str]]:
    return {row["item"]: row for row in read_csv(EMBODIED_FILE)}


def _num(row: Mapping[str, str], key: str) -> float:
    return float(row[key])


def server_embodied_kg(hardware: Mapping[str, Any]) -> tuple[float, str, float, str]:
    """TE of a machine from the CCF/Teads rack-server model, with its lifespan.

    ``TE = 1000 kg base + 100 kg per CPU socket beyond the first + 1.388 kg per GB of RAM
    above 16 GB + 150 kg per GPU``; lifespan 4 years. The constants are read from
    ``embodied/embodied_reference_values.csv`` (rows ``rack_server_base_...``,
    ``additional_cpu_socket``, ``additional_dram``, ``additional_gpu_card``).

    Args:
        hardware: The run record's ``hardware`` section (``cpu.sockets``, ``ram_gb``,
            ``gpus``); missing parts count as the base server.

    Returns:
        ``(te_kgco2e, te_source, lifetime_years, lifetime_source)``.
    """
    rows = _reference_rows()
    base = rows["rack_server_base_mono_socket_low_dram_no_storage"]
    te = _num(base, "value")
    parts = [f"{te:g} kg base rack server"]
    cpu = hardware.get("cpu") if isinstance(hardware.get("cpu"), Mapping) else {}
    sockets = cpu.get("sockets") if isinstance(cpu, Mapping) else None
    if isinstance(sockets, int) and sockets > 1:
        add = (sockets - 1) * _num(rows["additional_cpu_socket"], "value")
        te += add
        parts.append(f"{add:g} kg for {sockets - 1} extra CPU socket(s)")
    ram = hardware.get("ram_gb")
    if isinstance(ram, (int, float)) and ram > 16:
        per_gb = _num(rows["additional_dram"], "value")
        add = (ram - 16) * per_gb
        te += add
        parts.append(f"{add:.4g} kg for {ram - 16:.4g} GB RAM above 16 GB at {per_gb:g} kg/GB")
    gpus = hardware.get("gpus")
    if isinstance(gpus, list) and gpus:
        per_gpu = _num(rows["additional_gpu_card"], "value")
        add = len(gpus) * per_gpu
        te += add
        parts.append(f"{add:g} kg for {len(gpus)} GPU(s) at {per_gpu:g} kg each")
    source = (
        "CCF/Teads rack-server model: " + " + ".join(parts)
        + f" ({EMBODIED_FILE}; Cloud Carbon Footprint, Dell R740 LCA)"
    )  # fmt: skip
    lifetime = _num(base, "lifetime_years")
    life_source = f"{lifetime:g} years, CCF RACK_SERVER_LIFESPAN ({EMBODIED_FILE})"
    return te, source, lifetime, life_source


def _normalise_type(text: str) -> str:
    out = text.strip().lower()
    out = out.removeprefix("standard_")
    return out.replace("_", " ").replace("-", " ")


def cloud_instance_embodied_kg(
    provider: str, instance_type: str, *, microarchitecture: str | None = None
) -> tuple[float, str]:
    """TE of the host platform behind a cloud instance type, from the CCF tables.

    Args:
        provider: ``aws``, ``gcp`` or ``azure``.
        instance_type: The provider's instance type (``m5.xlarge``, ``n2-standard-8``,
            ``Standard_D4s_v3``).
        microarchitecture: Used to pick a row where the table lists a type per CPU
            family (GCP, Azure); otherwise the rows are averaged.

    Returns:
        ``(te_kgco2e, te_source)``; the figure is for the whole host platform.

    Raises:
        InvalidParameterError: Unknown provider or instance type.
    """
    if provider not in _PROVIDERS:
        msg = (
            f"The 'provider' parameter must be one of {set(_PROVIDERS)}. Got {provider!r} "
            "instead."
        )
        raise InvalidParameterError(msg)
    file = CCF_EMBODIED_FILE.format(provider)
    rows = read_csv(file)
    wanted = _normalise_type(instance_type)
    matches = [r for r in rows if _normalise_type(r["type"]) == wanted]
    if not matches:
        close = difflib.get_close_matches(instance_type, sorted({r["type"] for r in rows}), n=3)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        msg = (
            f"Instance type {instance_type!r} is not in the CCF {provider} embodied table "
            f"({file}).{hint} Pass --te-kgco2e to give the embodied emissions yourself."
        )
        raise InvalidParameterError(msg)
    chosen = matches
    note = ""
    if len(matches) > 1:
        same = [r for r in matches if r.get("microarchitecture") == microarchitecture]
        if same:
            chosen = same[:1]
            note = f", row for {microarchitecture}"
        else:
            note = f", mean of {len(matches)} rows (one per CPU microarchitecture)"
    te = sum(float(r["total"]) for r in chosen) / len(chosen)
    source = (
        f"CCF embodied coefficients for {provider} {chosen[0]['type']}{note}: {te:.6g} kg for "
        f"the host platform ({file}, Apache-2.0)"
    )
    return te, source


def _interval(run: RunRecord) -> tuple[float, float]:
    end = run.ended_at if run.ended_at is not None else run.started_at + run.duration_s
    return run.started_at, max(run.started_at, end)


def union_hours(runs: Sequence[RunRecord]) -> float:
    """Hours covered by the union of the runs' ``[started_at, ended_at]`` intervals."""
    spans = sorted(_interval(r) for r in runs)
    total = 0.0
    cur_start: float | None = None
    cur_end = 0.0
    for start, end in spans:
        if cur_start is None or start > cur_end:
            if cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_start is not None:
        total += cur_end - cur_start
    return total / 3600.0


def _host_embodied(
    host: str,
    runs: Sequence[RunRecord],
    *,
    te_kgco2e: float | None,
    lifetime_years: float | None,
    share: float | None,
    instance_type: str | None,
) -> tuple[EmbodiedShare, str | None]:
    hardware: Mapping[str, Any] = {}
    location: Mapping[str, Any] = {}
    for run in reversed(runs):
        if run.record.get("hardware"):
            hardware = run.record["hardware"]
            location = run.record.get("location") or {}
            break
    else:
        location = runs[-1].record.get("location") or {}
    file: str | None = EMBODIED_FILE
    default_life, life_source = None, ""
    provider = location.get("cloud_provider")
    if te_kgco2e is not None:
        te, te_source = te_kgco2e, "user (--te-kgco2e)"
        file = None
    elif instance_type is not None and isinstance(provider, str):
        cpu = hardware.get("cpu") if isinstance(hardware.get("cpu"), Mapping) else {}
        micro = cpu.get("microarchitecture") if isinstance(cpu, Mapping) else None
        te, te_source = cloud_instance_embodied_kg(
            provider, instance_type, microarchitecture=micro if isinstance(micro, str) else None
        )
        file = CCF_EMBODIED_FILE.format(provider)
        default_life = float(_reference_rows()["rack_server_base_mono_socket_low_dram_no_storage"]
                             ["lifetime_years"])  # fmt: skip
        life_source = f"{default_life:g} years, CCF RACK_SERVER_LIFESPAN ({EMBODIED_FILE})"
    else:
        te, te_source, default_life, life_source = server_embodied_kg(hardware)
        if not hardware:
            te_source += "; no hardware description was recorded, so the base server is assumed"
    if lifetime_years is not None:
        life, life_source = lifetime_years, "user (--lifetime-years)"
    elif default_life is not None:
        life = default_life
    else:
        base = _reference_rows()["rack_server_base_mono_socket_low_dram_no_storage"]
        life = _num(base, "lifetime_years")
        life_source = f"{life:g} years, CCF RACK_SERVER_LIFESPAN ({EMBODIED_FILE})"
        file = file or EMBODIED_FILE
    if share is not None:
        rs, share_source = share, "user (--share)"
    elif instance_type is not None and isinstance(provider, str) and te_kgco2e is None:
        rs = 1.0
        share_source = (
            "1.0: the whole host platform is counted, an upper bound; pass --share "
            "(instance vCPUs / host vCPUs) for the instance's share"
        )
    else:
        rs = 1.0
        share_source = "1.0: the whole machine is reserved while the runs execute"
    tir = union_hours(runs)
    el = life * HOURS_PER_YEAR
    m_g = te * 1000.0 * tir / el * rs
    share_obj = EmbodiedShare(
        host=host, runs=len(runs), te_kgco2e=te, te_source=te_source, time_reserved_h=tir,
        lifetime_years=life, expected_lifespan_h=el, lifetime_source=life_source, share=rs,
        share_source=share_source, m_g=m_g,
    )  # fmt: skip
    return share_obj, file


def _section_key(section: Any) -> Any:
    """A hashable key for a record section of plain values, None when it has none."""
    if not isinstance(section, Mapping):
        return None
    try:
        key = tuple((k, type(v), v) for k, v in section.items())
        hash(key)
    except TypeError:  # a nested value: read it as it is
        return None
    return key


def _label_intensity(run: RunRecord) -> str:
    i = run.record.get("intensity") or {}
    if not i:
        return "unknown intensity (no record)"
    scope = str(i.get("scope", "")).replace("lifecycle", "life cycle")
    year = i.get("year")
    return f"{i.get('g_per_kwh')} gCO2e/kWh, {i.get('dataset')}, zone {i.get('zone')}" + (
        f", {year}" if year else ""
    ) + f", {scope}"


def compute_sci(
    runs: Sequence[RunRecord],
    *,
    functional_unit: str = "training run",
    count: float = 1.0,
    te_kgco2e: float | None = None,
    lifetime_years: float | None = None,
    share: float | None = None,
    instance_type: str | None = None,
    count_source: str = USER_COUNT,
) -> SciResult:
    """The SCI of a set of runs per functional unit, with every term sourced.

    ``M`` is computed per machine (runs grouped by host): the hardware is reserved for the
    union of its runs' intervals (TiR), over its expected lifespan (EL), times the
    resource share (RR/ToR, 1.0 unless given). TE: ``te_kgco2e``; else the CCF table row
    of ``instance_type`` on a cloud location; else the CCF/Teads rack-server model from
    the recorded hardware (:func:`server_embodied_kg`).

    Args:
        runs: The runs to count: top-level runs only (nested runs are inside them).
        functional_unit: Name of one unit of R (``"training run"``, ``"1k inferences"``).
        count: R, how many functional units the runs delivered (> 0).
        te_kgco2e: Total embodied emissions of the hardware, kgCO2e (overrides tables).
        lifetime_years: Expected lifespan EL in years (default: 4, CCF).
        share: Resource share RR/ToR in (0, 1] (default 1.0).
        instance_type: Cloud instance type, for the CCF per-instance table.
        count_source: Where ``count`` came from, in words (default: the user); see
            :func:`default_count`.

    Returns:
        The SCI and its terms.

    Raises:
        InvalidParameterError: A parameter is out of range or the instance type unknown.
        RunNotFoundError: ``runs`` is empty.
    """
    count_v = _checked("count", count)
    te_v = _optional("te_kgco2e", te_kgco2e, allow_zero=True)
    life_v = _optional("lifetime_years", lifetime_years)
    share_v = _optional("share", share, upper=1.0)
    unit = functional_unit.strip()
    if not unit:
        msg = "The 'functional_unit' parameter must be a non-empty name. Got '' instead."
        raise InvalidParameterError(msg)
    if not runs:
        msg = (
            "No runs to compute an SCI for. Track one with 'wattwise run -- python train.py' "
            "or pick runs with 'wattwise runs'."
        )
        raise RunNotFoundError(msg)
    it_j = sum(r.energy_j for r in runs)
    # One pass over the runs; the PUE and intensity sections repeat, so each distinct one
    # is read once.
    pue_of: dict[Any, tuple[float, str]] = {}
    label_of: dict[Any, str] = {}
    pue_values: list[float] = []
    pue_set: set[float] = set()
    source_set: set[str] = set()
    intensities_set: set[str] = set()
    for r in runs:
        pue_section = r.record.get("pue") or {}
        key = _section_key(pue_section)
        value_source = pue_of.get(key) if key is not None else None
        if value_source is None:
            value_source = (float(pue_section.get("value", 1.0)),
                            str(pue_section.get("source", "unknown")))  # fmt: skip
            if key is not None:
                pue_of[key] = value_source
        pue_values.append(value_source[0])
        pue_set.add(value_source[0])
        source_set.add(value_source[1])
        ikey = _section_key(r.record.get("intensity") or {})
        label = label_of.get(ikey) if ikey is not None else None
        if label is None:
            label = _label_intensity(r)
            if ikey is not None:
                label_of[ikey] = label
        intensities_set.add(label)
    e_kwh = sum(r.energy_j * p for r, p in zip(runs, pue_values, strict=True))
    e_kwh /= JOULES_PER_KWH
    o_g = sum(r.co2e_g for r in runs)
    intensity = o_g / e_kwh if e_kwh > 0 else 0.0
    by_host: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_host.setdefault(run.host, []).append(run)
    shares = []
    files: list[str] = []
    for host, host_runs in sorted(by_host.items()):
        share_obj, file = _host_embodied(
            host, host_runs, te_kgco2e=te_v, lifetime_years=life_v, share=share_v,
            instance_type=instance_type,
        )  # fmt: skip
        shares.append(share_obj)
        if file and file not in files:
            files.append(file)
    m_g = sum(s.m_g for s in shares)
    sci = (o_g + m_g) / count_v
    pues = sorted(pue_set)
    pue_sources = sorted(source_set)
    methods = sorted({f"{c.component} {c.method} ({c.meter})" for r in runs
                      for c in r.components})  # fmt: skip
    intensities = sorted(intensities_set)
    m_source = "; ".join(
        f"{s.host}: TE {s.te_kgco2e:.6g} kg × TiR {s.time_reserved_h:.4g} h / EL "
        f"{s.expected_lifespan_h:.6g} h × RR/ToR {s.share:g} = {s.m_g:.4g} g "
        f"[TE: {s.te_source}; EL: {s.lifetime_source}; share: {s.share_source}]"
        for s in shares
    )
    terms = (
        SciTerm("E", "energy, facility overhead included", e_kwh, "kWh",
                f"{len(runs)} run(s): IT energy {it_j / JOULES_PER_KWH:.6g} kWh × PUE "
                f"{', '.join(f'{p:g}' for p in pues)} (PUE: {'; '.join(pue_sources)}); "
                f"energy by {', '.join(methods) or 'no component recorded'}"),
        SciTerm("I", "location-based grid intensity", intensity, "gCO2e/kWh",
                "energy-weighted over the runs: " + "; ".join(intensities)
                + "; market-based instruments never applied"),
        SciTerm("O", "operational emissions E × I", o_g, "gCO2e",
                "sum of the runs' recorded operational emissions"),
        SciTerm("M", "embodied emissions TE × TiR/EL × RR/ToR", m_g, "gCO2e", m_source),
        SciTerm("R", "functional units", count_v, unit, count_source),
        SciTerm("SCI", "(O + M) / R", sci, f"gCO2e per {unit}", "computed"),
    )  # fmt: skip
    components = sorted({c.component for r in runs for c in r.components})
    boundary = {
        "included": [
            f"energy of the tracked process trees: {', '.join(components) or 'none recorded'}",
            "every run in scope, failed and crashed ones included",
            f"facility overhead (PUE {', '.join(f'{p:g}' for p in pues)})",
            "embodied emissions of the machines for the time they were reserved",
            *covers_lines(r.record for r in runs),
        ],
        "excluded": [
            "network, storage and other machines (not metered)",
            "end-user devices and deployment (not part of these runs)",
            "market-based instruments (offsets, RECs, PPAs): never applied (SCI rule)",
        ],
    }
    if "gpu" not in components:
        boundary["excluded"].insert(0, "GPUs: none was metered in these runs")
    return SciResult(
        functional_unit=unit, count=count_v, runs=len(runs), it_energy_kwh=it_j / JOULES_PER_KWH,
        energy_kwh=e_kwh, intensity_g_per_kwh=intensity, operational_g=o_g, embodied_g=m_g,
        sci_g_per_unit=sci, terms=terms, embodied=tuple(shares), boundary=boundary,
        data_files=tuple(files), count_source=count_source,
    )  # fmt: skip
