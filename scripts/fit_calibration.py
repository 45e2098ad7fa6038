"""Fit the CPU and DRAM model coefficients on SPECpower_ssj2008 and write the shipped tables.

    .venv/bin/python scripts/fit_calibration.py [TABLE] [--write]

TABLE defaults to ``../shared/data/specpower/specpower_ssj2008_results.csv`` (relative to the
repository). Without ``--write`` it prints what it would write; with it, it rewrites
``src/wattwise/data/calibration/specpower_coefficients.csv`` and ``specpower_bands.csv``.
``benchmarks/calibration.py`` imports this module and checks the same fit out of sample.

The model of a server's wall power at utilisation u (0 = active idle, 1 = 100 % load)::

    P(u) = T * (idle_t + u * (max_t - idle_t)) + w_mem * M

T hardware threads, M GB of memory. ``idle_t``/``max_t`` come from the first rule that
matches the CPU (architecture row, TDP table, default). For each server, a least-squares
line through its 11 points of ``(P - w_mem * M) / T`` against the actual load gives its own
``idle_s``/``max_s``; a rule's coefficients are medians of those over the servers it covers
(so one odd server cannot move them). ``w_mem`` is chosen from a grid by the leave-one-
server-out median error of the architecture rows, among values that keep every fitted idle
figure positive.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from wattwise.meters import CpuInfo, match_cpu  # noqa: E402
from wattwise.meters._calibration import (  # noqa: E402
    RECENT_FROM_YEAR,
    RULE_CLASSES,
    Band,
    Calibration,
    Coefficient,
    load_range_of,
)
from wattwise.meters._cpu_model import tdp_per_thread  # noqa: E402

DEFAULT_TABLE = REPO.parent / "shared" / "data" / "specpower" / "specpower_ssj2008_results.csv"
OUT_DIR = REPO / "src" / "wattwise" / "data" / "calibration"
LEVELS = (100, 90, 80, 70, 60, 50, 40, 30, 20, 10)
#: A fitted architecture row needs this many servers; fewer fall to the next rule.
MIN_SERVERS = 3
#: Memory W/GB candidates (0 = memory inside the per-thread figures).
W_MEM_GRID = tuple(round(0.025 * i, 3) for i in range(0, 17))
COVERAGE = 0.9
SOURCE = (
    "SPECpower_ssj2008 results published by SPEC (green-coding-solutions/spec-power-raw-data "
    "3fe0e561), fitted by scripts/fit_calibration.py"
)


@dataclasses.dataclass(frozen=True)
class Point:
    level: str  # "idle", "10" … "100"
    load: float  # actual load reached, 0-1
    watts: float


@dataclasses.dataclass(frozen=True)
class Server:
    file: str
    cpu_name: str
    year: int | None
    threads: int
    chips: int
    cores: int
    mem_gb: float
    nodes: int
    points: tuple[Point, ...]
    info: CpuInfo
    arch: str | None  # microarchitecture label the package finds for the name
    ccf: tuple[float, float] | None  # CCF Min/Max W per vCPU (AWS table), raw
    tdp_t: float | None  # TDP per thread from the TDP tables

    @property
    def generation(self) -> str:
        if self.year is None:
            return "unknown"
        for lo, hi in ((2007, 2009), (2010, 2012), (2013, 2016), (2017, 2019), (2020, 2022)):
            if lo <= self.year <= hi:
                return f"{lo}-{hi}"
        return str(self.year)


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _year(text: str) -> int | None:
    for token in text.replace("-", " ").split():
        if token.isdigit() and len(token) == 4:
            return int(token)
    return None


def cpuinfo_for(name: str, threads: int, chips: int, cores: int) -> CpuInfo:
    """What /proc/cpuinfo would say on one node of this bare-metal server."""
    low = name.lower()
    vendor = "AuthenticAMD" if "amd" in low else "GenuineIntel" if "intel" in low else ""
    chips = max(chips, 1)
    per_socket = max(threads // chips, 1)
    cores_per_socket = max(cores // chips, 1) if cores else None
    tpc = per_socket // cores_per_socket if cores_per_socket else None
    return CpuInfo(
        vendor=vendor,
        model_name=" ".join(name.split()),
        logical_cpus=threads,
        sockets=chips,
        cores_per_socket=cores_per_socket,
        threads_per_core=tpc,
        siblings=per_socket,
        is_virtual=False,
    )


def _basis(info: CpuInfo) -> tuple[str | None, tuple[float, float] | None]:
    """Architecture label and raw CCF row the package finds, independent of calibration."""
    # A calibration with no fitted rows and unit CCF scale exposes the package's own chain.
    probe = Calibration(
        architectures={},
        ccf_scale=(1.0, 1.0),
        tdp_fraction=(1.0, 1.0),
        default_w_per_thread=(1.0, 1.0),
        dram_w_per_gb=0.0,
        rows={
            ("default", "all"): Coefficient("default", "all", 1, 1, "", 0, 0, ""),
            ("tdp-fraction", "all"): Coefficient("tdp-fraction", "all", 1, 1, "", 0, 0, ""),
        },
        bands={},
    )
    m = match_cpu(info, calibration=probe)
    ccf = None
    if m.band_class == "arch-ccf":
        ccf = (float(str(m.details["ccf_idle_w_per_vcpu"])),
               float(str(m.details["ccf_max_w_per_vcpu"])))  # fmt: skip
    return m.microarchitecture, ccf


REQUIRED_COLUMNS = ("file", "cpu_name", "idle", "w100", "act100", "threads", "chips", "mem_gb")


class TableError(ValueError):
    """The SPECpower table cannot be used (missing columns, no usable rows)."""


def load_servers(path: Path) -> list[Server]:
    """Every result with idle and 100 % power, threads and memory.

    Raises:
        TableError: A required column is missing, or no row has power data.
    """
    servers = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            msg = (
                f"The table {path} has no column {', '.join(missing)}; it must have the "
                f"SPECpower columns {', '.join(REQUIRED_COLUMNS)}, w10-w90 and act10-act90 "
                "(see ../shared/data/PROVENANCE.md, specpower/)."
            )
            raise TableError(msg)
        for row in reader:
            idle, threads = _float(row.get("idle")), _float(row.get("threads"))
            if idle is None or not threads or _float(row.get("w100")) is None:
                continue
            points = [Point("idle", 0.0, idle)]
            for level in LEVELS:
                w, act = _float(row.get(f"w{level}")), _float(row.get(f"act{level}"))
                if w is not None and act is not None:
                    points.append(Point(str(level), act / 100.0, w))
            chips = int(_float(row.get("chips")) or 1)
            cores = int(_float(row.get("cores")) or 0)
            info = cpuinfo_for(row["cpu_name"], int(threads), chips, cores)
            arch, ccf = _basis(info)
            tdp = tdp_per_thread(info)
            servers.append(
                Server(
                    file=row["file"],
                    cpu_name=info.model_name,
                    year=_year(row.get("Hardware Availability", "")),
                    threads=int(threads),
                    chips=chips,
                    cores=cores,
                    mem_gb=_float(row.get("mem_gb")) or 0.0,
                    nodes=int(_float(row.get("nodes")) or 1),
                    points=tuple(points),
                    info=info,
                    arch=arch,
                    ccf=ccf,
                    tdp_t=tdp[0] if tdp else None,
                )
            )
    if len(servers) < 2 * MIN_SERVERS:
        msg = (
            f"The table {path} has {len(servers)} results with idle and 100 % power; a "
            f"calibration needs at least {2 * MIN_SERVERS}."
        )
        raise TableError(msg)
    return servers


_LINES: dict[tuple[str, float], tuple[float, float]] = {}


def server_line(server: Server, w_mem: float) -> tuple[float, float]:
    """Least-squares idle and 100 % watts per thread of one server, memory taken out."""
    key = (server.file, w_mem)
    if key not in _LINES:
        _LINES[key] = _server_line(server, w_mem)
    return _LINES[key]


def _server_line(server: Server, w_mem: float) -> tuple[float, float]:
    xs = [p.load for p in server.points]
    ys = [(p.watts - w_mem * server.mem_gb) / server.threads for p in server.points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    idle = my - slope * mx
    return idle, idle + slope


def fit(
    servers: Sequence[Server], w_mem: float, *, ccf_archs: frozenset[str] = frozenset()
) -> Calibration:
    """Fit every coefficient on these servers (medians of per-server lines).

    Args:
        servers: The servers to fit on.
        w_mem: Memory W per GB.
        ccf_archs: Architectures where the CCF row is kept (no fitted row is made).
    """
    lines = {s.file: server_line(s, w_mem) for s in servers}
    by_arch: dict[str, list[Server]] = {}
    for s in servers:
        if s.arch is not None:
            by_arch.setdefault(s.arch, []).append(s)
    rows: list[Coefficient] = []
    for arch, group in sorted(by_arch.items()):
        if len(group) < MIN_SERVERS or arch in ccf_archs:
            continue
        idle = statistics.median(lines[s.file][0] for s in group)
        peak = statistics.median(lines[s.file][1] for s in group)
        years = sorted(s.year for s in group if s.year)
        span = f", {years[0]}-{years[-1]}" if years else ""
        rows.append(
            Coefficient("architecture", arch, idle, peak, "W/thread", len(group),
                        sum(len(s.points) for s in group),
                        f"median over {len(group)} servers{span} of each server's least-"
                        f"squares line, memory ({w_mem:g} W/GB) taken out; {SOURCE}",
                        f"arch-specpower-{era_of(group)}")
        )  # fmt: skip
    fitted = {r.key: r for r in rows}
    # CCF rows -> fitted quantity: median over architectures that have both.
    pairs = {}
    for s in servers:
        if s.arch in fitted and s.ccf is not None:
            pairs[s.arch] = (fitted[s.arch].idle / s.ccf[0], fitted[s.arch].max / s.ccf[1])
    if pairs:
        k = (statistics.median(p[0] for p in pairs.values()),
             statistics.median(p[1] for p in pairs.values()))  # fmt: skip
    else:
        k = (1.0, 1.0)
    rows.append(
        Coefficient("ccf-scale", "all", k[0], k[1], "ratio to CCF Min/Max Watts", len(pairs), 0,
                    f"median over the {len(pairs)} architectures with both a fitted row and a "
                    f"CCF row ({', '.join(sorted(pairs))}) of fitted / CCF (AWS table); "
                    f"{SOURCE}")
    )  # fmt: skip
    tdp_servers = [s for s in servers if s.tdp_t]
    f_idle = statistics.median(lines[s.file][0] / (s.tdp_t or 1) for s in tdp_servers)
    f_max = statistics.median(lines[s.file][1] / (s.tdp_t or 1) for s in tdp_servers)
    rows.append(
        Coefficient("tdp-fraction", "all", f_idle, f_max, "fraction of TDP per thread",
                    len(tdp_servers), sum(len(s.points) for s in tdp_servers),
                    f"median over {len(tdp_servers)} servers with a TDP table match of their "
                    f"idle and 100 % watts per thread / TDP per thread; {SOURCE}")
    )  # fmt: skip
    d_idle = statistics.median(lines[s.file][0] for s in servers)
    d_max = statistics.median(lines[s.file][1] for s in servers)
    rows.append(
        Coefficient("default", "all", d_idle, d_max, "W/thread", len(servers),
                    sum(len(s.points) for s in servers),
                    f"median over all {len(servers)} servers of their idle and 100 % watts per "
                    f"thread; {SOURCE}")
    )  # fmt: skip
    rows.append(
        Coefficient("dram", "all", w_mem, w_mem, "W/GB", len(servers),
                    sum(len(s.points) for s in servers),
                    f"memory's share of wall power, chosen from {W_MEM_GRID[0]:g}-"
                    f"{W_MEM_GRID[-1]:g} W/GB by the leave-one-server-out median error of the "
                    f"architecture rows (every fitted idle figure kept positive); {SOURCE}")
    )  # fmt: skip
    return Calibration.from_rows(rows, [])


def era_of(group: Sequence[Server]) -> str:
    """``recent`` when the servers' median hardware-availability year is 2013 or later."""
    years = [s.year for s in group if s.year]
    return "recent" if years and statistics.median(years) >= RECENT_FROM_YEAR else "older"


def predict(server: Server, cal: Calibration) -> tuple[str, str, list[float]]:
    """(rule, band class, predicted watts per point) through the package's own chain."""
    m = match_cpu(server.info, calibration=cal)
    t, mem = server.threads, server.mem_gb * cal.dram_w_per_gb
    watts = [
        t * (m.idle_w_per_vcpu + p.load * (m.max_w_per_vcpu - m.idle_w_per_vcpu)) + mem
        for p in server.points
    ]
    return m.rule, m.band_class, watts


def conformal_q(residuals: Iterable[float], coverage: float = COVERAGE) -> float:
    """Split-conformal half-width: the ceil((n+1)·coverage)-th smallest |residual|."""
    r = sorted(abs(x) for x in residuals)
    if not r:
        return math.inf
    k = math.ceil((len(r) + 1) * coverage)
    return r[min(k, len(r)) - 1]


def loso_arch_error(servers: Sequence[Server], w_mem: float) -> float:
    """Median |p/m - 1| of architecture rows, each server predicted without itself."""
    lines = {s.file: server_line(s, w_mem) for s in servers}
    by_arch: dict[str, list[Server]] = {}
    for s in servers:
        if s.arch is not None:
            by_arch.setdefault(s.arch, []).append(s)
    errors = []
    for group in by_arch.values():
        if len(group) - 1 < MIN_SERVERS:
            continue
        for s in group:
            rest = [lines[o.file] for o in group if o is not s]
            idle = statistics.median(x[0] for x in rest)
            peak = statistics.median(x[1] for x in rest)
            for p in s.points:
                pred = s.threads * (idle + p.load * (peak - idle)) + w_mem * s.mem_gb
                errors.append(abs(pred / p.watts - 1))
    return statistics.median(errors)


def choose_w_mem(servers: Sequence[Server]) -> tuple[float, list[tuple[float, float, bool]]]:
    """The grid value with the lowest out-of-sample error among those with positive idle."""
    trace = []
    for w in W_MEM_GRID:
        cal = fit(servers, w)
        positive = all(r.idle > 0 for r in cal.architectures.values())
        trace.append((w, loso_arch_error(servers, w), positive))
    ok = [t for t in trace if t[2]]
    best = min(ok, key=lambda t: (round(t[1], 4), t[0]))
    return best[0], trace


def choose_ccf_archs(servers: Sequence[Server], w_mem: float) -> frozenset[str]:
    """Architectures where the scaled CCF row is at least as good as the fitted one.

    Both are scored on the architecture's servers: the fitted row leave-one-server-out,
    the CCF row with its scale fitted without that architecture.
    """
    keep = set()
    archs = {s.arch for s in servers if s.arch and s.ccf}
    for arch in sorted(a for a in archs if a is not None):
        group = [s for s in servers if s.arch == arch]
        if len(group) - 1 < MIN_SERVERS:
            continue
        others = fit([s for s in servers if s.arch != arch], w_mem)
        e_fit, e_ccf = [], []
        for s in group:
            cal = fit([o for o in servers if o is not s], w_mem)
            row = cal.architectures[arch]
            k = others.ccf_scale
            ccf = s.ccf or (0.0, 0.0)
            for p in s.points:
                mem = w_mem * s.mem_gb
                pf = s.threads * (row.idle + p.load * (row.max - row.idle)) + mem
                ci, cm = ccf[0] * k[0], ccf[1] * k[1]
                pc = s.threads * (ci + p.load * (cm - ci)) + mem
                e_fit.append(abs(pf / p.watts - 1))
                e_ccf.append(abs(pc / p.watts - 1))
        if statistics.median(e_ccf) <= statistics.median(e_fit):
            keep.add(arch)
    return frozenset(keep)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One out-of-sample prediction of one load point."""

    server: Server
    point: Point
    predicted: float
    rule: str
    band_class: str

    @property
    def residual(self) -> float:
        """measured / predicted - 1."""
        return self.point.watts / self.predicted - 1

    @property
    def error(self) -> float:
        """|predicted / measured - 1|."""
        return abs(self.predicted / self.point.watts - 1)


def forced_outcomes(
    servers: Sequence[Server], w_mem: float, ccf_archs: frozenset[str]
) -> dict[str, list[Outcome]]:
    """Each rule class applied to every server it can cover, out of sample.

    ``arch-specpower``, ``tdp-table`` and ``default``: fitted without the server.
    ``arch-ccf``: the CCF row, its scale fitted without the server's architecture.
    """
    out: dict[str, list[Outcome]] = {c: [] for c in RULE_CLASSES}
    loao: dict[str, Calibration] = {}
    eras = {a: era_of([s for s in servers if s.arch == a]) for a in {s.arch for s in servers}}
    for s in servers:
        cal = fit([o for o in servers if o is not s], w_mem, ccf_archs=ccf_archs)
        mem = w_mem * s.mem_gb
        cands: dict[str, tuple[float, float]] = {}
        if s.arch is not None and s.arch in cal.architectures:
            row = cal.architectures[s.arch]
            cands[row.band_class] = (row.idle, row.max)
        if s.ccf is not None and s.arch is not None:
            if s.arch not in loao:
                loao[s.arch] = fit([o for o in servers if o.arch != s.arch], w_mem,
                                   ccf_archs=ccf_archs)  # fmt: skip
            k = loao[s.arch].ccf_scale
            ccf_class = "arch-ccf" if eras[s.arch] == "recent" else "arch-ccf-older"
            cands[ccf_class] = (s.ccf[0] * k[0], s.ccf[1] * k[1])
        if s.tdp_t:
            f = cal.tdp_fraction
            cands["tdp-table"] = (s.tdp_t * f[0], s.tdp_t * f[1])
        cands["default"] = cal.default_w_per_thread
        for cls, (idle, peak) in cands.items():
            for p in s.points:
                pred = s.threads * (idle + p.load * (peak - idle)) + mem
                out[cls].append(Outcome(s, p, pred, cls, cls))
    return out


def chain_outcomes(
    servers: Sequence[Server], w_mem: float, ccf_archs: frozenset[str]
) -> list[Outcome]:
    """The package's full rule chain, each server predicted by a calibration without it."""
    out: list[Outcome] = []
    for s in servers:
        cal = fit([o for o in servers if o is not s], w_mem, ccf_archs=ccf_archs)
        rule, cls, watts = predict(s, cal)
        out.extend(Outcome(s, p, w, rule, cls) for p, w in zip(s.points, watts, strict=True))
    return out


def bands_from(outcomes: dict[str, list[Outcome]], method: dict[str, str]) -> list[Band]:
    """Per rule class and load range: conformal half-width and its nested coverage."""
    bands = []
    for cls, outs in outcomes.items():
        for load in ("idle", "low", "active", "all"):
            sel = [o for o in outs if load == "all" or load_range_of(o.point.load) == load]
            if not sel:
                continue
            q = conformal_q(o.residual for o in sel)
            bands.append(
                Band(cls, load, q, nested_coverage(sel), len({o.server.file for o in sel}),
                     len(sel), method[cls])
            )  # fmt: skip
    return bands


def nested_coverage(outs: Sequence[Outcome]) -> float:
    """Share of points inside a band estimated without their own server."""
    by_server: dict[str, list[Outcome]] = {}
    for o in outs:
        by_server.setdefault(o.server.file, []).append(o)
    residuals = sorted(abs(o.residual) for o in outs)
    inside = 0
    for group in by_server.values():
        own = sorted(abs(o.residual) for o in group)
        rest = _remove_sorted(residuals, own)
        q = conformal_q(rest)
        inside += sum(1 for o in group if abs(o.residual) <= q)
    return inside / len(outs)


def _remove_sorted(values: list[float], remove: list[float]) -> list[float]:
    out, j = [], 0
    for v in values:
        if j < len(remove) and v == remove[j]:
            j += 1
            continue
        out.append(v)
    return out


_CCF_METHOD = (
    "CCF row scaled without the server's architecture (leave-one-architecture-out), "
    "conformal 90 % quantile; CCF derived its rows from SPECpower results, so not strictly "
    "out of sample"
)
METHOD = {
    "arch-specpower-recent": "leave-one-server-out fit, split-conformal 90 % quantile of "
    f"|measured / predicted - 1|, architectures whose servers date from {RECENT_FROM_YEAR} on",
    "arch-specpower-older": "leave-one-server-out fit, split-conformal 90 % quantile of "
    f"|measured / predicted - 1|, architectures whose servers date from before "
    f"{RECENT_FROM_YEAR}",
    "arch-ccf": f"{_CCF_METHOD}; architectures from {RECENT_FROM_YEAR} on (every CCF row "
    "without SPECpower results is a 2020s architecture)",
    "arch-ccf-older": f"{_CCF_METHOD}; architectures from before {RECENT_FROM_YEAR} "
    "(reported only: no CCF-only row is that old)",
    "tdp-table": "leave-one-server-out fit over every server with a TDP table match, "
    "conformal 90 % quantile",
    "default": "leave-one-server-out fit over every server, conformal 90 % quantile",
}


def calibrate(servers: Sequence[Server]) -> tuple[Calibration, dict[str, object]]:
    """The full calibration (coefficients and bands) and the facts behind its choices."""
    w_mem, trace = choose_w_mem(servers)
    ccf_archs = choose_ccf_archs(servers, w_mem)
    cal = fit(servers, w_mem, ccf_archs=ccf_archs)
    forced = forced_outcomes(servers, w_mem, ccf_archs)
    bands = bands_from(forced, METHOD)
    full = Calibration.from_rows(list(cal.rows.values()), bands)
    return full, {"w_mem": w_mem, "w_trace": trace, "ccf_archs": sorted(ccf_archs),
                  "forced": forced}  # fmt: skip


def write_tables(cal: Calibration, out_dir: Path) -> None:
    """Write the coefficients and bands tables the package reads."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "specpower_coefficients.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["kind", "key", "idle", "max", "unit", "n_servers", "n_points", "source",
                    "band_class"])  # fmt: skip
        for r in sorted(cal.rows.values(), key=lambda r: (r.kind != "architecture", r.kind,
                                                          r.key)):  # fmt: skip
            w.writerow([r.kind, r.key, f"{r.idle:.4f}", f"{r.max:.4f}", r.unit, r.n_servers,
                        r.n_points, r.source, r.band_class])  # fmt: skip
    with (out_dir / "specpower_bands.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["rule_class", "load_range", "band_fraction", "coverage", "n_servers",
                    "n_points", "method"])  # fmt: skip
        for b in cal.bands.values():
            w.writerow([b.rule_class, b.load_range, f"{b.band_fraction:.4f}",
                        f"{b.coverage:.4f}", b.n_servers, b.n_points, b.method])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "table",
        nargs="?",
        type=Path,
        default=DEFAULT_TABLE,
        help="SPECpower_ssj2008 results CSV (default: %(default)s)",
    )
    parser.add_argument("--write", action="store_true",
                        help=f"rewrite the shipped tables in {OUT_DIR}")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.table.is_file():
        print(f"No SPECpower table at {args.table}; pass its path as the first argument.",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        servers = load_servers(args.table)
    except TableError as err:
        print(err, file=sys.stderr)
        return 2
    cal, facts = calibrate(servers)
    print(f"{len(servers)} servers; w_mem = {facts['w_mem']} W/GB; CCF kept for "
          f"{facts['ccf_archs'] or 'none'}")  # fmt: skip
    for w, error, positive in facts["w_trace"]:  # type: ignore[attr-defined]
        print(f"  w_mem {w:5.3f}: LOSO median error {error:.4f}{'' if positive else ' (idle<0)'}")
    for r in cal.rows.values():
        print(f"  {r.kind:13s} {r.key:16s} idle {r.idle:8.4f} max {r.max:8.4f} n={r.n_servers}")
    for b in cal.bands.values():
        print(
            f"  band {b.rule_class:15s} {b.load_range:6s} ±{b.band_fraction:.3f} "
            f"coverage {b.coverage:.3f} ({b.n_servers} servers, {b.n_points} points)"
        )
    if args.write:
        write_tables(cal, OUT_DIR)
        print(f"wrote {OUT_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
