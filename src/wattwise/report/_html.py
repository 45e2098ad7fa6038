"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no fetches).

A Content-Security-Policy in the page forbids every external load and every script, so
the file opens offline and a run name such as ``<script>`` can only ever be text (it is
escaped as well).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape, unescape
from typing import Any

from wattwise import _units as units
from wattwise.report import _svg as svg
from wattwise.report._curves import (
    RunCurves,
    is_user_metric,
    is_validation_metric,
    series_labels,
    validation_metric,
)
from wattwise.report._model import (
    NOT_OBJECTIVE_PREFIXES,
    ROLE_LABELS,
    Report,
    RunSummary,
    StudyView,
    study_metric_label,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"


def e(value: object) -> str:
    """Escape any value for HTML text or attribute context."""
    return escape(str(value), quote=True)


CSS = """
:root{--bg:#f4f6f9;--card:#fff;--ink:#152030;--muted:#5d6878;--line:#e2e7ef;--soft:#f0f3f7;
--accent:#0f766e;--accent-ink:#fff;--cpu:#2563eb;--gpu:#d97706;--dram:#8b5cf6;--other:#64748b;
--final:#0f766e;--tuning:#6366f1;--failed:#e11d48;--crashed:#f97316;--running:#94a3b8;
--front:#d97706;--pt:#94a3b8;--shadow:0 1px 2px rgba(15,23,42,.05),0 6px 20px rgba(15,23,42,.06)}
@media (prefers-color-scheme:dark){:root{--bg:#0e141c;--card:#161f2b;--ink:#e6ebf2;
--muted:#9aa6b6;--line:#263244;--soft:#1c2735;--accent:#2dd4bf;--accent-ink:#062925;
--pt:#64748b;--shadow:0 1px 2px rgba(0,0,0,.4)}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);line-height:1.5;
font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
font-variant-numeric:tabular-nums}
.wrap{max-width:1120px;margin:0 auto;padding:0 20px}
header.top{background:linear-gradient(135deg,#0f766e 0%,#115e59 55%,#134e4a 100%);color:#fff;
padding:26px 0 64px}
.brand{font-weight:700;letter-spacing:.02em;opacity:.92;font-size:14px}
.brand b{display:inline-block;background:rgba(255,255,255,.16);border-radius:6px;padding:1px 7px;
margin-right:6px}
h1{font-size:30px;line-height:1.2;margin:10px 0 6px;word-break:break-word}
.meta{margin:0;opacity:.88;font-size:14px}
.meta .badge{background:rgba(255,255,255,.18);color:#fff}
main{margin-top:-44px;padding-bottom:40px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:14px}
.card{background:var(--card);border-radius:14px;box-shadow:var(--shadow);padding:16px 18px;
border:1px solid var(--line);min-width:0}
.card .k{font-size:12px;text-transform:uppercase;letter-spacing:.07em;color:var(--muted);
font-weight:600}
.card .v{font-size:30px;font-weight:700;line-height:1.15;margin:6px 0 2px;overflow-wrap:anywhere}
.card .v small{font-size:15px;font-weight:600;color:var(--muted);margin-left:4px}
.card .s{font-size:13px;color:var(--muted)}
.card.hero{border-top:4px solid var(--accent)}
section.panel{background:var(--card);border-radius:14px;box-shadow:var(--shadow);
border:1px solid var(--line);padding:20px 22px;margin-top:18px;min-width:0}
h2{font-size:20px;margin:0 0 4px}
h3{font-size:16px;margin:18px 0 6px}
p.lead{color:var(--muted);margin:0 0 14px}
.twocol{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.twocol>div{min-width:0}
ul.checks{list-style:none;margin:0;padding:0}
ul.checks li{padding:6px 0 6px 28px;position:relative;border-bottom:1px dashed var(--line)}
ul.checks li:last-child{border-bottom:0}
ul.checks li::before{position:absolute;left:0;top:6px;width:20px;height:20px;border-radius:50%;
display:inline-flex;align-items:center;justify-content:center;font-size:12px;font-weight:700}
ul.yes li::before{content:"\\2713";background:#dcfce7;color:#166534}
ul.no li::before{content:"\\2715";background:#fee2e2;color:#991b1b}
.note{background:#fff7ed;border:1px solid #fed7aa;color:#7c2d12;border-radius:10px;
padding:10px 14px;margin-top:14px;font-size:14px}
@media (prefers-color-scheme:dark){.note{background:#2a1c10;border-color:#7c2d12;color:#fed7aa}}
.pill{display:inline-block;border-radius:999px;padding:1px 9px;font-size:12px;font-weight:600;
white-space:nowrap;vertical-align:1px}
.pill.measured{background:#dcfce7;color:#166534}.pill.estimated{background:#fef3c7;color:#92400e}
.pill.user{background:#e0e7ff;color:#3730a3}.pill.unknown{background:var(--soft);color:var(--muted)}
.badge{display:inline-block;border-radius:6px;padding:1px 7px;font-size:12px;font-weight:600;
background:var(--soft);color:var(--muted)}
.badge.finished{background:#ccfbf1;color:#115e59}.badge.failed{background:#ffe4e6;color:#9f1239}
.badge.crashed{background:#ffedd5;color:#9a3412}.badge.running{background:#e2e8f0;color:#334155}
.badge.tuning{background:#e0e7ff;color:#3730a3}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:13px;color:var(--muted);
margin:4px 0 8px}
.legend span{display:inline-flex;align-items:center;gap:6px}
.legend i{width:12px;height:12px;border-radius:3px;display:inline-block;flex:none}
.narrow-only{display:none}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.charts>figure{margin:0;min-width:0}
figure figcaption{font-size:13px;color:var(--muted);margin-top:4px}
svg.chart{width:100%;height:auto;display:block}
svg.chart text{fill:var(--muted);font-size:13px;font-family:inherit}
svg.chart text.label{font-size:13px;fill:var(--ink)}
svg.chart text.strong{fill:var(--ink);font-weight:700}
svg.chart .grid{stroke:var(--line);stroke-width:1}
svg.chart .axis{stroke:var(--muted);stroke-width:1}
svg.chart .line{fill:none;stroke-width:2.2;stroke-linejoin:round}
svg.chart .soft{fill-opacity:.13}svg.chart .solid{fill-opacity:.82}
.s-cpu{stroke:var(--cpu)}.f-cpu{fill:var(--cpu)}.s-gpu{stroke:var(--gpu)}.f-gpu{fill:var(--gpu)}
.s-dram{stroke:var(--dram)}.f-dram{fill:var(--dram)}.s-other{stroke:var(--other)}
.f-other{fill:var(--other)}
.s-final{stroke:var(--final)}.f-final{fill:var(--final)}.s-tuning{stroke:var(--tuning)}
.f-tuning{fill:var(--tuning)}.s-failed{stroke:var(--failed)}.f-failed{fill:var(--failed)}
.s-crashed{stroke:var(--crashed)}.f-crashed{fill:var(--crashed)}.s-running{stroke:var(--running)}
.f-running{fill:var(--running)}
.s-front{stroke:var(--front);stroke-dasharray:5 4}
.s-r0{stroke:#0f766e}.s-r1{stroke:#2563eb}.s-r2{stroke:#d97706}.s-r3{stroke:#8b5cf6}
.s-r4{stroke:#e11d48}.s-r5{stroke:#65a30d}.s-r6{stroke:#0891b2}.s-r7{stroke:#a16207}
.f-r0,.bg-r0{fill:#0f766e;background:#0f766e}.f-r1,.bg-r1{fill:#2563eb;background:#2563eb}
.f-r2,.bg-r2{fill:#d97706;background:#d97706}.f-r3,.bg-r3{fill:#8b5cf6;background:#8b5cf6}
.f-r4,.bg-r4{fill:#e11d48;background:#e11d48}.f-r5,.bg-r5{fill:#65a30d;background:#65a30d}
.f-r6,.bg-r6{fill:#0891b2;background:#0891b2}.f-r7,.bg-r7{fill:#a16207;background:#a16207}
svg.chart .pt{fill:var(--pt);stroke:var(--card);stroke-width:1.5}
svg.chart .pt.front{fill:var(--front)}
svg.chart .pt.hollow{fill:var(--card);stroke:var(--pt);stroke-width:2}
svg.chart .pt.front.hollow{stroke:var(--front)}
svg.chart .best{fill:none;stroke:var(--ink);stroke-width:2}
.bg-cpu{background:var(--cpu)}.bg-gpu{background:var(--gpu)}.bg-dram{background:var(--dram)}
.bg-other{background:var(--other)}.bg-final{background:var(--final)}
.bg-tuning{background:var(--tuning)}.bg-failed{background:var(--failed)}
.bg-crashed{background:var(--crashed)}.bg-running{background:var(--running)}
.bg-front{background:var(--front)}.bg-pt{background:var(--pt)}
.stack{display:flex;height:30px;border-radius:8px;overflow:hidden;background:var(--soft);
margin:8px 0}
.stack div{min-width:3px}
.minis{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:12px;
margin:14px 0}
.mini{background:var(--soft);border-radius:10px;padding:10px 14px}
.mini .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.06em;
font-weight:600}
.mini .v{font-size:20px;font-weight:700}
.mini .s{font-size:13px;color:var(--muted)}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--line);
border-radius:10px}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th,td{padding:8px 10px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--soft);font-weight:600;color:var(--muted);font-size:12px;
text-transform:uppercase;letter-spacing:.04em}
tr:last-child td{border-bottom:0}
td.n,th.n{text-align:right;white-space:nowrap}
td .id{color:var(--muted);font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:12px}
dl.kv{display:grid;grid-template-columns:minmax(120px,190px) 1fr;gap:6px 14px;margin:10px 0 0}
dl.kv dt{color:var(--muted);font-size:13px}
dl.kv dd{margin:0;word-break:break-word}
.src{color:var(--muted);font-size:13px;word-break:break-word}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;
background:var(--soft);padding:1px 5px;border-radius:5px;overflow-wrap:anywhere}
.formula{font-size:18px;font-weight:600;margin:4px 0 12px}
a{color:var(--accent)}
footer{color:var(--muted);font-size:13px;padding:10px 0 40px}
details{margin-top:12px}summary{cursor:pointer;color:var(--muted);font-size:14px;margin-bottom:8px}
details.fold>summary{color:var(--accent);font-weight:600}
.charts.three{grid-template-columns:repeat(auto-fit,minmax(300px,1fr))}
nav.toc{display:flex;flex-wrap:wrap;gap:8px;margin:16px 0 0}
nav.toc a{font-size:13px;text-decoration:none;background:var(--card);border:1px solid var(--line);
border-radius:999px;padding:3px 12px;color:var(--ink)}
@media (max-width:720px){
.wrap{padding:0 14px}
h1{font-size:24px}
.twocol,.charts{grid-template-columns:1fr}
.cards{grid-template-columns:1fr 1fr;gap:10px}
.card{padding:12px 14px}
.card .v{font-size:24px}
section.panel{padding:16px 14px}
svg.chart text,svg.chart text.label{font-size:19px}
.narrow-only{display:block}.wide-only{display:none}
dl.kv{grid-template-columns:1fr}
dl.kv dt{margin-top:6px}
.table-wrap{border:0;border-radius:0;overflow:visible}
.table-wrap table,.table-wrap tbody,.table-wrap tr,.table-wrap td{display:block;width:100%}
.table-wrap thead{display:none}
.table-wrap tr{border:1px solid var(--line);border-radius:10px;margin:0 0 10px;padding:4px 0}
.table-wrap td,.table-wrap td.n{text-align:right;white-space:normal;border:0;
padding:4px 12px;overflow-wrap:anywhere;min-width:0}
.table-wrap td::after{content:"";display:block;clear:both}
.table-wrap td[data-label]::before{content:attr(data-label);float:left;max-width:45%;
margin-right:12px;text-align:left;color:var(--muted);font-size:12px;font-weight:600;
text-transform:uppercase;letter-spacing:.04em}
.table-wrap td:empty{display:none}
}
@media print{header.top{background:none;color:var(--ink)}main{margin-top:0}
.card,section.panel{box-shadow:none}}
"""

_METHOD_CLASS = {"counter": "measured", "sampled": "measured", "model": "estimated",
                 "user": "user"}  # fmt: skip


def method_pill(method: str, meter: str | None = None) -> str:
    """A coloured label: measured (green), estimated (amber), user-given (blue)."""
    cls = _METHOD_CLASS.get(method, "unknown")
    text = units.method_label(method)
    detail = f" · {method}" + (f": {meter}" if meter else "")
    return f'<span class="pill {cls}" title="{e(method + detail)}">{e(text)}</span>'


def _status_badge(status: str) -> str:
    return f'<span class="badge {e(status)}">{e(status)}</span>'


def _comp_key(component: str) -> str:
    return component if component in ("cpu", "gpu", "dram") else "other"


def _legend(items: Iterable[tuple[str, str]]) -> str:
    spans = "".join(f'<span><i class="bg-{e(k)}"></i>{e(label)}</span>' for k, label in items)
    return f'<div class="legend">{spans}</div>'


def _card(key: str, value: tuple[str, str] | str, sub: str, *, hero: bool = False,
          ident: str | None = None) -> str:  # fmt: skip
    shown = f"{e(value[0])}<small>{e(value[1])}</small>" if isinstance(value, tuple) else e(value)
    attrs = f' id="{e(ident)}"' if ident else ""
    cls = "card hero" if hero else "card"
    return (
        f'<div class="{cls}"{attrs}><div class="k">{e(key)}</div><div class="v">{shown}</div>'
        f'<div class="s">{sub}</div></div>'
    )


def _headline(report: Report) -> str:
    h = report.headline
    methods = sorted({m for c in h.components for m in c.methods})
    pills = " ".join(method_pill(m) for m in methods) or method_pill("unknown")
    band = (
        f"± {e(units.energy(h.energy_band_j))}" if h.energy_band_j and h.band_complete
        else ("band not quantified" if not h.band_complete else "no band")
    )  # fmt: skip
    pue_note = ""
    if abs(h.facility_energy_j - h.energy_j) > 1e-9:
        pue_note = f" · with PUE {e(units.energy(h.facility_energy_j))}"
    intens = sorted({s.intensity_g_per_kwh for s in report.runs
                     if s.counted and s.intensity_g_per_kwh is not None})  # fmt: skip
    at = (
        f"at {', '.join(units.number(i) for i in intens)} gCO2e/kWh" if intens
        else "intensity unknown"
    )  # fmt: skip
    cards = [
        _card("Energy", units.energy_parts(h.energy_j), f"{band} {pills}{pue_note}", hero=True,
              ident="headline-energy"),
        _card("Carbon (operational)", units.carbon_parts(h.co2e_g),
              (f"± {e(units.carbon(h.co2e_band_g))} · " if h.co2e_band_g else "") + e(at)
              + f" {pills}", hero=True, ident="headline-carbon"),
        _card("Time", units.duration(h.duration_s),
              e(f"{h.counted_runs} run(s) counted" + (
                  f" of {h.runs} shown" if h.runs != h.counted_runs else ""))),
    ]  # fmt: skip
    if h.flops_total is not None:
        per_j = units.rate(h.flops_per_j, "FLOP/J") if h.flops_per_j else "-"
        samples = (
            f" · {units.rate(h.samples_per_j, 'samples/J')}" if h.samples_per_j else ""
        )  # fmt: skip
        cards.append(_card("FLOPs per joule", per_j,
                           e(f"{units.flops(h.flops_total)} in {h.flops_runs} run(s){samples}")))
    elif h.samples_per_j is not None:
        cards.append(_card("Samples per joule", units.rate(h.samples_per_j, "samples/J"), ""))
    if report.sci is not None:
        sci = report.sci
        number, unit = units.carbon_parts(sci.sci_g_per_unit)
        cards.append(_card(
            "SCI", (number, f"{unit} / {sci.functional_unit}"),
            e(f"(O + M) / R with embodied M = {units.carbon(sci.embodied_g)}; {sci.r_short}")
            + " "
            + method_pill("model", "embodied: CCF/Teads or user TE"),
        ))  # fmt: skip
    return f'<section class="cards" id="headline">{"".join(cards)}</section>'


def _includes(report: Report) -> str:
    yes = "".join(f"<li>{e(x)}</li>" for x in report.includes)
    no = "".join(f"<li>{e(x)}</li>" for x in report.excludes)
    notes = "".join(f'<div class="note">{e(n)}</div>' for n in report.notes)
    return (
        '<section class="panel" id="includes"><h2>What these numbers include</h2>'
        '<p class="lead">Energy is what the tracked processes used (before facility overhead); '
        "carbon is operational: energy × PUE × the grid's yearly average intensity.</p>"
        f'<div class="twocol"><div><h3>Included</h3><ul class="checks yes">{yes}</ul></div>'
        f'<div><h3>Not included</h3><ul class="checks no">{no}</ul></div></div>{notes}'
        "</section>"
    )


def _timeline(report: Report) -> str:
    tl = report.timeline
    if tl is None:
        return (
            '<section class="panel" id="timeline"><h2>Power over time</h2>'
            '<p class="lead">No power samples were recorded for these runs.</p></section>'
        )
    comps = sorted(tl.series, key=lambda c: -(tl.series[c][-1][2] if tl.series[c] else 0))
    power = [svg.Series(c, _comp_key(c), [(t, p) for t, p, _ in tl.series[c]]) for c in comps]
    energy = [svg.Series(c, _comp_key(c), [(t, en) for t, _, en in tl.series[c]]) for c in comps]
    t_min = min((pts[0][0] for pts in tl.series.values() if pts), default=0.0)
    t_max = max((pts[-1][0] for pts in tl.series.values() if pts), default=1.0)
    factor, unit = (1.0, "s") if t_max < 120 else ((60.0, "min") if t_max < 7200 else
                                                    (3600.0, "h"))  # fmt: skip
    ticks = [t * factor for t in svg.nice_ticks(t_min / factor, t_max / factor, 4)]

    def x_fmt(t: float) -> str:
        return f"{t / factor:g}"

    power_svg = svg.line_chart(
        power, title="Power per component", x_label=f"time since start ({unit})",
        y_label="power (W)", x_fmt=x_fmt, y_fmt=_axis_fmt, fill=True, x_ticks=ticks,
        width=480, height=280,
    )  # fmt: skip
    energy_svg = svg.line_chart(
        energy, title="Cumulative energy per component (stacked)",
        x_label=f"time since start ({unit})", y_label=f"energy ({_energy_unit(energy)})",
        x_fmt=x_fmt, y_fmt=_energy_axis(energy), fill=True, stacked=True, x_ticks=ticks,
        width=480, height=280,
    )  # fmt: skip
    legend = _legend((_comp_key(c), f"{c.upper()}") for c in comps)
    pills = " ".join(
        f"{e(c.upper())} {method_pill(tl.methods.get(c, 'unknown'))}" for c in comps
    )
    return (
        '<section class="panel" id="timeline"><h2>Power and energy over time</h2>'
        f'<p class="lead">Run <b>{e(tl.run_name)}</b> <span class="id">{e(tl.run_id[:12])}'
        f"</span> ({e(tl.why)}), attributed to its process tree, as sampled. {pills}</p>"
        f'{legend}<div class="charts"><figure>{power_svg}<figcaption>Average power between '
        "samples.</figcaption></figure>"
        f"<figure>{energy_svg}<figcaption>Energy accumulated since the start, components "
        "stacked.</figcaption></figure></div></section>"
    )


def _axis_fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _energy_unit(series: Sequence[svg.Series]) -> str:
    total = sum(s.points[-1][1] for s in series if s.points)
    return units.energy(max(total, 1e-12)).split(" ")[1]


def _energy_axis(series: Sequence[svg.Series]) -> svg.Fmt:
    unit = _energy_unit(series)
    factor = {"nJ": 1e-9, "µJ": 1e-6, "mJ": 1e-3, "J": 1.0, "kJ": 1e3, "MJ": 1e6,
              "kWh": 3.6e6}[unit]  # fmt: skip
    return lambda v: f"{v / factor:g}"


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def _project(report: Report) -> str:
    pv = report.project
    total = sum(r.co2e_g for r in pv.by_role) or 1.0
    bars = "".join(
        f'<div class="bg-{e(_role_class(r.role))}" '
        f'style="width:{max(0.0, r.co2e_g / total * 100):.3f}%" '
        f'title="{e(ROLE_LABELS.get(r.role, r.role))}: {e(units.carbon(r.co2e_g))}"></div>'
        for r in pv.by_role
    )
    rows = "".join(
        f'<tr><td><span class="legend"><span><i class="bg-{e(_role_class(r.role))}"></i>'
        f"{e(ROLE_LABELS.get(r.role, r.role))}</span></span></td><td class=\"n\">{r.runs}</td>"
        f'<td class="n">{e(units.energy(r.energy_j))}</td>'
        f'<td class="n">{e(units.carbon(r.co2e_g))}</td>'
        f'<td class="n">{r.co2e_g / total:.0%}</td></tr>'
        for r in pv.by_role
    )
    prune = pv.saved_by_pruning
    reuse = pv.saved_by_reuse
    studies = _plural(int(prune["studies"]), "study")
    hits = _plural(int(reuse["hits"]), "cache hit")
    prune_text = (
        (units.carbon(prune["co2e_g"]),
         f"{units.energy(prune['energy_j'])} not spent in {studies}")
        if prune["studies"] else ("-", "no tuning study recorded savings yet")
    )  # fmt: skip
    reuse_text = (
        (units.carbon(reuse["co2e_g"]), f"{units.energy(reuse['energy_j'])} not spent, {hits}")
        if reuse["hits"] or reuse["energy_j"] else ("-", "nothing reused from the cache yet")
    )  # fmt: skip
    minis = (
        f'<div class="minis"><div class="mini"><div class="k">Beyond the final runs</div>'
        f'<div class="v">{pv.not_final_share:.0%}</div><div class="s">of the carbon went to '
        "tuning, failed or crashed runs</div></div>"
        f'<div class="mini" id="saved-pruning"><div class="k">Saved by pruning</div>'
        f'<div class="v">{e(prune_text[0])}</div><div class="s">{e(prune_text[1])}</div></div>'
        f'<div class="mini" id="saved-reuse"><div class="k">Saved by reuse</div>'
        f'<div class="v">{e(reuse_text[0])}</div><div class="s">{e(reuse_text[1])}</div></div>'
        "</div>"
    )
    series = []
    for role in [r.role for r in pv.by_role]:
        pts = [(t, g) for t, rl, g in pv.cumulative if rl == role]
        if pts:
            series.append(svg.Series(ROLE_LABELS.get(role, role), role, pts))
    chart = ""
    if len(pv.cumulative) < 2:
        chart = (
            "<h3>Cumulative carbon over time</h3><p class=\"src\">One run so far: the "
            "cumulative view starts with the second run.</p>"
        )
    else:
        counted = [r for r in report.runs if r.counted]
        t0 = min(r.started_at for r in counted)
        t_end = max(t for t, _, _ in pv.cumulative)
        t1 = t_end + (t_end - t0) * 0.03
        starts = [
            svg.Series(s.name, s.key, [(t0, 0.0), *s.points, (t1, s.points[-1][1])])
            for s in series
        ]
        ticks, fmt = svg.time_ticks(t0, t1)
        unit_g = units.carbon(max(total, 1e-9)).split(" ")[1]
        factor = {"ngCO2e": 1e-9, "µgCO2e": 1e-6, "mgCO2e": 1e-3, "gCO2e": 1.0, "kgCO2e": 1e3,
                  "tCO2e": 1e6}[unit_g]  # fmt: skip

        def cumulative(width: int, height: int) -> str:
            return svg.line_chart(
                starts, title="Cumulative carbon by role", x_label="time (UTC)",
                y_label=f"cumulative {unit_g}", x_fmt=fmt, y_fmt=lambda v: f"{v / factor:g}",
                stacked=True, step=True, x_ticks=ticks if width > 600 else ticks[::2],
                width=width, height=height,
            )

        chart_svg = (
            f'<div class="wide-only">{cumulative(900, 300)}</div>'
            f'<div class="narrow-only">{cumulative(460, 320)}</div>'
        )
        chart = (
            f"<h3>Cumulative carbon over time</h3>"
            f"{_legend((r.role, ROLE_LABELS.get(r.role, r.role)) for r in pv.by_role)}"
            f"<figure style=\"margin:0\">{chart_svg}<figcaption>Operational carbon of the "
            f"counted runs, {_added_at(pv.bucket)}, stacked by role.</figcaption></figure>"
        )
    return (
        '<section class="panel" id="project"><h2>Where the carbon went</h2>'
        '<p class="lead">Final runs versus everything it took to get there: tuning trials, '
        "failed and crashed runs are part of the cost.</p>"
        f'<div class="stack" role="img" aria-label="carbon by role">{bars}</div>'
        '<div class="table-wrap"><table><thead><tr><th>Role</th><th class="n">Runs</th>'
        '<th class="n">Energy</th><th class="n">Carbon</th><th class="n">Share</th></tr>'
        f"</thead><tbody>{rows}</tbody></table></div>{minis}{chart}"
        f"{_project_groups(report)}{_project_top(report)}{_project_studies(report)}</section>"
    )


def _role_class(role: str) -> str:
    """The colour class of a role (roles without their own colour share ``other``)."""
    return role if role in ("final", "tuning", "failed", "crashed", "running") else "other"


def _added_at(bucket: str | None) -> str:
    if bucket is None:
        return "added at each run's end"
    return f"summed per {bucket} (UTC), each point at the end of the {bucket}'s last run"


#: Groups listed per grouping in a project view; the rest are summed in one row.
MAX_GROUP_ROWS = 12
_GROUP_TITLES = {"user": "By person", "host": "By machine", "tag": "By tag",
                 "month": "By month (UTC, of the start)"}  # fmt: skip


def _project_groups(report: Report) -> str:
    """Carbon by user, host, tag and month: one small table each."""
    pv = report.project
    if not pv.groups or pv.counted_runs < 2:
        return ""
    total = sum(r.co2e_g for r in pv.by_role) or 1.0
    tables = []
    for grouping, groups in pv.groups.items():
        if not groups:
            continue
        shown, rest = groups[:MAX_GROUP_ROWS], groups[MAX_GROUP_ROWS:]
        if grouping == "month" and rest:  # the latest months, in order
            shown, rest = groups[-MAX_GROUP_ROWS:], groups[:-MAX_GROUP_ROWS]
        rows = "".join(
            f"<tr><td>{e(g.group) if g.group is not None else '<i>none recorded</i>'}</td>"
            f'<td class="n">{g.runs}</td><td class="n">{e(units.energy(g.energy_j))}</td>'
            f'<td class="n">{e(units.carbon(g.co2e_g))}</td>'
            f'<td class="n">{g.co2e_g / total:.0%}</td>'
            f'<td class="n">{(1 - g.final_co2e_g / g.co2e_g) if g.co2e_g > 0 else 0:.0%}</td>'
            "</tr>"
            for g in shown
        )
        if rest:
            rows += (
                f'<tr><td><i>{len(rest)} more</i></td><td class="n">'
                f"{sum(g.runs for g in rest)}</td><td class=\"n\">"
                f"{e(units.energy(sum(g.energy_j for g in rest)))}</td><td class=\"n\">"
                f"{e(units.carbon(sum(g.co2e_g for g in rest)))}</td><td></td><td></td></tr>"
            )
        note = " (a run counts once per tag)" if grouping == "tag" else ""
        tables.append(
            f"<div><h3>{e(_GROUP_TITLES.get(grouping, grouping))}{e(note)}</h3>"
            '<div class="table-wrap">'
            f'<table class="groups" id="by-{e(grouping)}"><thead><tr><th>{e(grouping.title())}'
            '</th><th class="n">Runs</th><th class="n">Energy</th><th class="n">Carbon</th>'
            '<th class="n">Share</th><th class="n">Beyond final</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div></div>"
        )
    if not tables:
        return ""
    return (
        '<details class="fold"><summary>Carbon by person, machine, tag and month</summary>'
        f'{"".join(tables)}</details>'
    )


def _project_top(report: Report) -> str:
    pv = report.project
    if not pv.summarised or not pv.top_runs:
        return ""
    rows = "".join(
        f"<tr><td>{e(r.name)}</td><td><code>{e(r.id[:12])}</code></td>"
        f"<td>{e(ROLE_LABELS.get(r.role, r.role))}</td><td>{_status_badge(r.status)}</td>"
        f'<td class="n">{e(units.duration(r.duration_s))}</td>'
        f'<td class="n">{e(units.energy(r.energy_j))}</td>'
        f'<td class="n">{e(units.carbon(r.co2e_g))}</td></tr>'
        for r in pv.top_runs
    )
    return (
        f'<h3>The {len(pv.top_runs)} runs that used the most energy</h3><p class="src">'
        f"{pv.counted_runs} counted runs: this project is summarised (top runs, studies, "
        "time buckets); 'wattwise runs' lists them all, and --format json holds each run."
        '</p><div class="table-wrap"><table id="top-runs"><thead><tr><th>Run</th><th>Id</th>'
        '<th>Role</th><th>Status</th><th class="n">Time</th><th class="n">Energy</th>'
        f'<th class="n">Carbon</th></tr></thead><tbody>{rows}</tbody></table></div>'
    )


def _project_studies(report: Report) -> str:
    pv = report.project
    if len(pv.studies) < 2 and not pv.summarised:
        return ""
    if not pv.studies:
        return ""
    rows = "".join(
        f"<tr><td>{e(t.name)}</td><td><code>{e(t.id[:12])}</code></td>"
        f'<td class="n">{t.trials}</td><td class="n">{e(units.energy(t.energy_j))}</td>'
        f'<td class="n">{e(units.carbon(t.co2e_g))}</td>'
        f'<td class="n">{e(units.number(t.best_value, 4)) if t.best_value is not None else "-"}'
        f"</td><td>{'plotted below' if t.shown else ''}</td></tr>"
        for t in pv.studies
    )
    return (
        f"<h3>Tuning studies ({len(pv.studies)})</h3>"
        '<div class="table-wrap"><table id="study-totals"><thead><tr><th>Study</th><th>Id</th>'
        '<th class="n">Trials</th><th class="n">Energy</th><th class="n">Carbon</th>'
        f'<th class="n">Best value</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>'
    )


def _study(view: StudyView, runs: Sequence[RunSummary] = ()) -> str:
    maximize = view.direction == "maximize"
    points = [
        (p.energy_j, p.value, f"{p.name} ({p.state})", p.on_front, p.is_best, p.complete)
        for p in view.points
    ]
    x_max = max((p.energy_j for p in view.points), default=1.0)
    unit = units.energy(max(x_max, 1e-12)).split(" ")[1]
    factor = {"nJ": 1e-9, "µJ": 1e-6, "mJ": 1e-3, "J": 1.0, "kJ": 1e3, "MJ": 1e6,
              "kWh": 3.6e6}[unit]  # fmt: skip
    metric = study_metric_label(view, runs)
    chart = svg.scatter_chart(
        points, title=f"{metric} versus energy", x_label=f"energy per trial ({unit})",
        y_label=f"{metric} ({'higher' if maximize else 'lower'} is better)",
        x_fmt=lambda v: f"{v / factor:g}", y_fmt=lambda v: f"{v:.4g}", maximize=maximize,
        width=480, height=300,
    )  # fmt: skip
    front = sorted((p for p in view.points if p.on_front), key=lambda p: p.energy_j)
    rows = "".join(
        f"<tr><td>{e(p.name)} <span class=\"id\">{e(p.run_id[:8])}</span>"
        f"{' <b>best</b>' if p.is_best else ''}</td><td class=\"n\">{e(units.number(p.value, 4))}"
        f'</td><td class="n">{e(units.energy(p.energy_j))}</td></tr>'
        for p in front
    )
    study = view.study
    recorded: list[tuple[str, str | None]] = [
        ("stop reason", _budget_text(study.stop_reason) if study.stop_reason else None),
        ("budget", _budget_text(study.budget) if study.budget else None),
        ("spent", _budget_text(study.spent) if study.spent else None),
        ("best run id", study.best_run_id[:12] if study.best_run_id else None),
        ("fidelity", view.fidelity),
    ]
    summary_items = [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in recorded if v is not None]
    summary = f'<dl class="kv">{"".join(summary_items)}</dl>' if summary_items else ""
    return (
        f"<h3>{e(view.name)} <span class=\"id\">{e(view.id[:12])}</span></h3>"
        f'<p class="lead">{view.trials} trial(s); {len(view.points)} logged {e(metric)}. '
        f"Pareto front ({e(view.front_source)}): no other trial is both cheaper and better.</p>"
        f"{_legend([('pt', 'trial'), ('front', 'Pareto front')])}"
        f'<div class="charts"><figure>{chart}<figcaption>Each dot is a trial; hollow dots did '
        "not finish (pruned or failed).</figcaption></figure><div>"
        '<div class="table-wrap"><table><thead><tr><th>On the front</th>'
        f'<th class="n">{e(metric)}</th><th class="n">Energy</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>{summary}</div></div>"
    )


def _budget_text(value: Any) -> str:
    """A budget or spend mapping in words: energy, carbon, time, trials; others as is."""
    if not isinstance(value, Mapping):
        return _plain(value)
    parts = []
    if isinstance(value.get("energy_j"), (int, float)):
        parts.append(units.energy(float(value["energy_j"])))
    elif isinstance(value.get("energy_kwh"), (int, float)):
        parts.append(units.energy(float(value["energy_kwh"]) * units.JOULES_PER_KWH))
    if isinstance(value.get("co2e_g"), (int, float)):
        parts.append(units.carbon(float(value["co2e_g"])))
    for key in ("duration_s", "timeout_s"):
        if isinstance(value.get(key), (int, float)):
            parts.append(units.duration(float(value[key])))
    if isinstance(value.get("n_trials"), int):
        parts.append(f"{value['n_trials']} trials")
    known = {"energy_j", "energy_kwh", "co2e_g", "duration_s", "timeout_s", "n_trials"}
    if not parts:
        return _plain({k: v for k, v in value.items() if v is not None and k not in known})
    return ", ".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _studies(report: Report) -> str:
    if not report.studies:
        if report.scope == "run":
            return ""
        return (
            '<section class="panel" id="studies"><h2>Accuracy versus energy</h2>'
            '<p class="lead">No tuning studies yet. Studies run with <code>wattwise tune</code> '
            "show each trial's objective against its energy here, with the Pareto front."
            "</p></section>"
        )
    body = "".join(_study(s, report.runs) for s in report.studies)
    return (
        '<section class="panel" id="studies"><h2>Accuracy versus energy</h2>'
        '<p class="lead">Efficiency reported beside accuracy: every trial of each study, '
        f"cheaper to the left.</p>{body}</section>"
    )


def _labelled(html: str) -> str:
    """Each table cell gets its column's heading as ``data-label``: on a phone the table is
    shown as one card per row, each value beside its heading (CSS only, no script)."""

    def table(match: re.Match[str]) -> str:
        text = match.group(0)
        head = re.search(r"<thead>(.*?)</thead>", text, re.S)
        if head is None:
            return text
        labels = [
            escape(unescape(re.sub(r"<[^>]+>", "", th)).strip(), quote=True)
            for th in re.findall(r"<th[^>]*>(.*?)</th>", head.group(1), re.S)
        ]

        def row(m: re.Match[str]) -> str:
            cells = iter(labels)
            return re.sub(
                r"<td(?=[ >])",
                lambda _c: f'<td data-label="{lab}"' if (lab := next(cells, "")) else "<td",
                m.group(0),
            )

        return re.sub(r"<tr>.*?</tr>", row, text, flags=re.S)

    return re.sub(r"<table[ >].*?</table>", table, html, flags=re.S)


def _energy_scale(joules: float) -> tuple[str, float]:
    unit = units.energy(max(joules, 1e-12)).split(" ")[1]
    return unit, {"nJ": 1e-9, "µJ": 1e-6, "mJ": 1e-3, "J": 1.0, "kJ": 1e3, "MJ": 1e6,
                  "kWh": 3.6e6}[unit]  # fmt: skip


def _run_legend(curves: Sequence[RunCurves]) -> str:
    return _legend((f"r{i}", label) for i, label in enumerate(series_labels(curves)))


def _learning(report: Report) -> str:
    """Learning curves, the Green AI plot (a validation metric against cumulative energy,
    runs overlaid) and energy per epoch, for the runs the model chose."""
    curves = report.curves
    if not curves:
        if report.scope == "run":
            return ""
        return (
            '<section class="panel" id="learning"><h2>Learning and cost</h2><p class="lead">'
            "No run logged a metric at two steps or more. Log one with "
            "<code>run.log(step=epoch, val_acc=...)</code> (or a Lightning, Trainer or Keras "
            "callback) to see learning curves beside energy here.</p></section>"
        )
    keyed = {c.run_id: f"r{i}" for i, c in enumerate(curves)}
    named = dict(zip((c.run_id for c in curves), series_labels(curves), strict=True))
    metric = validation_metric(curves)
    parts = [_run_legend(curves)]
    figures = []
    if metric is not None:
        series = [
            svg.Series(named[c.run_id], keyed[c.run_id],
                       [(en, v) for _, v, en in c.metrics.get(metric, []) if en is not None])
            for c in curves
        ]  # fmt: skip
        top = max((x for sr in series for x, _ in sr.points), default=1.0)
        unit, factor = _energy_scale(top)
        chart = svg.line_chart(
            series, title=f"{metric} versus cumulative energy", fill=False, from_zero=False,
            x_label=f"cumulative energy ({unit})", y_label=metric,
            x_fmt=lambda v: f"{v / factor:g}", y_fmt=lambda v: f"{v:.4g}",
            width=480, height=300,
        )  # fmt: skip
        figures.append(
            f'<figure id="green-ai">{chart}<figcaption>{e(metric)} against the energy each '
            "run had used when it logged it: a curve further left reached its value for less "
            "energy.</figcaption></figure>"
        )
    by_metric: dict[str, int] = {}
    for c in curves:
        for k in c.metrics:
            by_metric[k] = by_metric.get(k, 0) + 1
    shown = sorted(by_metric, key=lambda k: (k != metric, not is_validation_metric(k),
                                            -by_metric[k], k))[:2]  # fmt: skip
    for key in shown:
        series = [
            svg.Series(named[c.run_id], keyed[c.run_id],
                       [(st, v) for st, v, _ in c.metrics.get(key, [])])
            for c in curves
        ]
        chart = svg.line_chart(
            series, title=f"{key} by step", fill=False, from_zero=False, x_label="step",
            y_label=key, x_fmt=_axis_fmt, y_fmt=lambda v: f"{v:.4g}", width=480, height=300,
        )  # fmt: skip
        figures.append(f"<figure>{chart}<figcaption>Learning curve: {e(key)} at each logged "
                       "step, runs overlaid.</figcaption></figure>")
    with_epochs = [c for c in curves if c.epochs]
    if with_epochs:
        series = [
            svg.Series(named[c.run_id], keyed[c.run_id],
                       [(ep.epoch, ep.energy_j) for ep in c.epochs])
            for c in with_epochs
        ]
        top = max(ep.energy_j for c in with_epochs for ep in c.epochs)
        unit, factor = _energy_scale(top)
        chart = svg.line_chart(
            series, title="Energy per epoch", fill=False, x_label="epoch",
            y_label=f"energy per epoch ({unit})", x_fmt=_axis_fmt,
            y_fmt=lambda v: f"{v / factor:g}", width=480, height=300,
        )  # fmt: skip
        sources = sorted({c.epoch_source for c in with_epochs if c.epoch_source})
        figures.append(
            f'<figure id="epoch-energy">{chart}<figcaption>Energy of each epoch, from '
            f"{e('; '.join(sources))}. Unless a callback logged it, the first epoch includes "
            "what ran before it.</figcaption></figure>"
        )
    parts.append(f'<div class="charts">{"".join(figures)}</div>')
    rows = "".join(
        f"<tr><td><i class=\"bg-{keyed[c.run_id]}\" style=\"display:inline-block;width:10px;"
        f'height:10px;border-radius:2px"></i> <b>{e(c.name)}</b> '
        f'<span class="id">{e(c.run_id[:12])}</span></td><td>{e(c.role)}</td>'
        f"<td>{e(', '.join(f'{k} ({c.points_total.get(k, 0)})' for k in c.metrics)) or '-'}"
        f'</td><td class="n">{len(c.epochs) or "-"}</td>'
        f"<td>{e(_energy_source_text(c.energy_source))}</td></tr>"
        for c in curves
    )
    parts.append(
        '<details class="fold"><summary>Which runs and where the energy at each point comes '
        'from</summary><div class="table-wrap"><table id="curve-runs"><thead><tr><th>Run</th>'
        '<th>Role</th><th>Metrics (points)</th><th class="n">Epochs</th>'
        f"<th>Energy at each point</th></tr></thead><tbody>{rows}</tbody></table></div>"
        "</details>"
    )
    return (
        '<section class="panel" id="learning"><h2>Learning and cost</h2><p class="lead">'
        f"What each run learned against what it cost: {len(curves)} run(s) with logged "
        "metrics (the newest, or the study's best and its front), thinned to "
        "at most 400 points per curve.</p>" + "".join(parts) + "</section>"
    )


def _energy_source_text(source: str | None) -> str:
    return {
        "logged": "energy logged at the same step",
        "samples": "power samples at the time it was logged",
        "logged+samples": "logged at the same step, else the power samples",
    }.get(source or "", "unknown (no energy logged at the steps, no power samples)")


def _metric_cells(run: RunSummary, keys: Sequence[str]) -> str:
    return "".join(
        f'<td class="n">{e(units.number(run.metrics[k], 4)) if k in run.metrics else "-"}</td>'
        for k in keys
    )


_ROLE_SHORT = {"final": "final", "tuning": "tuning", "failed": "failed", "crashed": "crashed",
               "running": "running"}  # fmt: skip


def _methods_cell(run: RunSummary) -> str:
    by_label: dict[str, list[str]] = {}
    for comp, method in sorted(run.methods.items()):
        by_label.setdefault(method, []).append(f"{comp}: {run.meters.get(comp, '?')}")
    return " ".join(
        f'<span class="pill {_METHOD_CLASS.get(m, "unknown")}" title="{e(", ".join(where))}">'
        f"{e(units.method_label(m))}</span>"
        for m, where in by_label.items()
    ) or method_pill("unknown")


#: Runs listed in the runs table before the rest are folded (``<details>``).
RUNS_UNFOLDED = 12


def _metric_keys(runs: Sequence[RunSummary]) -> list[str]:
    """Up to two of the user's metrics for the runs table: validation metrics first, then
    those most runs logged (tuning's internal ``objective``/``value`` never)."""
    counts: dict[str, int] = {}
    for r in runs:
        for k in r.metrics:
            if is_user_metric(k) and not k.lower().startswith(NOT_OBJECTIVE_PREFIXES):
                counts[k] = counts.get(k, 0) + 1
    return sorted(counts, key=lambda k: (not is_validation_metric(k), -counts[k], k))[:2]


def _runs(report: Report) -> str:
    runs = list(reversed(report.runs))[:200]
    keys = _metric_keys(runs)
    show_flops = any(r.flops_total for r in runs)
    show_samples = any(r.samples_per_j for r in runs)
    head = "".join(f'<th class="n">{e(k)}</th>' for k in keys)
    if show_flops:
        head += '<th class="n">FLOPs (per J)</th>'
    if show_samples:
        head += '<th class="n">Samples/J</th>'
    rows = []
    for r in runs:
        band = f"<br><span class=\"id\">± {e(units.energy(r.energy_band_j))}</span>" if (
            r.energy_band_j) else ""
        nested = "" if r.counted else ' <span class="badge">nested</span>'
        role = _ROLE_SHORT.get(r.role, r.role)
        badge_cls = r.status if r.role in ("failed", "crashed", "running") else (
            "finished" if r.role == "final" else "tuning")
        tags = "".join(f' <span class="badge">{e(t)}</span>' for t in r.tags[:4])
        params = ", ".join(f"{k}={_plain(v)}" for k, v in list(r.params.items())[:4])
        params_html = (
            f'<br><span class="id" title="{e(_plain(r.params))}">{e(params[:80])}</span>'
            if params else ""
        )
        cells = [
            f"<td><b>{e(r.name)}</b>{nested}{tags}<br><span class=\"id\">{e(r.id[:12])}</span>"
            f"{params_html}</td>",
            f'<td><span class="badge {e(badge_cls)}">{e(role)}</span></td>',
            f'<td title="{e(units.when(r.started_at))}">{e(_short_when(r.started_at))}'
            f'<br><span class="id">{e(units.duration(r.duration_s))}</span></td>',
            f'<td class="n">{e(units.energy(r.energy_j))}{band}</td>',
            f'<td class="n">{e(units.carbon(r.co2e_g))}</td>',
            f"<td>{_methods_cell(r)}</td>",
            _metric_cells(r, keys),
        ]
        if show_flops:
            per_j = (
                f'<br><span class="id">{e(units.rate(r.flops_per_j, "FLOP/J"))}</span>'
                if r.flops_per_j else ""
            )
            cells.append(
                f'<td class="n">{e(units.flops(r.flops_total)) if r.flops_total else "-"}'
                f"{per_j}</td>"
            )
        if show_samples:
            cells.append(
                f'<td class="n">{e(units.rate(r.samples_per_j, "/J")) if r.samples_per_j else "-"}'
                "</td>"
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    more = len(report.runs) - len(runs)
    extra = f'<p class="src">{more} older run(s) not shown; see --format json.</p>' if more else ""
    thead = (
        '<thead><tr><th>Run</th><th>Role</th><th>Started (UTC), time</th>'
        f'<th class="n">Energy</th><th class="n">Carbon</th><th>Method</th>{head}</tr></thead>'
    )
    table = (
        f'<div class="table-wrap"><table id="runs-table">{thead}'
        f'<tbody>{"".join(rows[:RUNS_UNFOLDED])}</tbody></table></div>'
    )
    if len(rows) > RUNS_UNFOLDED:
        table += (
            f'<details class="fold"><summary>{len(rows) - RUNS_UNFOLDED} more run(s)</summary>'
            f'<div class="table-wrap"><table>{thead}<tbody>{"".join(rows[RUNS_UNFOLDED:])}'
            "</tbody></table></div></details>"
        )
    return (
        '<section class="panel" id="runs"><h2>Runs</h2><p class="lead">Newest first. Energy is '
        "attributed to each run's process tree (± its uncertainty band); carbon is operational. "
        "Failed and crashed runs count up to their last record.</p>"
        f"{table}{extra}</section>"
    )


def _short_when(timestamp: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).strftime("%b %d, %H:%M")


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    items = "".join(
        f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in pairs if v not in (None, "", [])
    )
    return f'<dl class="kv">{items}</dl>'


def _setup(report: Report) -> str:
    s = report.setup
    left = []
    for hw in s.hardware:
        gpus = hw.get("gpus") or []
        micro = hw.get("microarchitecture") or "microarchitecture unknown"
        virtual = " (virtual machine)" if hw.get("virtual") else ""
        left.append(
            f"<h3>Hardware on {e(hw.get('host') or 'unknown host')}</h3>"
            + _kv([
                ("CPU", f"{hw.get('cpu')} ({micro})"),
                ("Sockets / threads", f"{hw.get('sockets')} / {hw.get('threads')}{virtual}"),
                ("Memory", f"{hw.get('ram_gb')} GB" if hw.get("ram_gb") else None),
                ("GPUs", ", ".join(str(g) for g in gpus) if gpus else "none detected"),
                ("Runs", hw.get("runs")),
            ])
        )
    if not s.hardware:
        left.append('<p class="src">No hardware description was recorded.</p>')
    right = []
    for loc in s.locations:
        cloud = (
            f"{loc.get('cloud_provider')} {loc.get('cloud_region')}"
            if loc.get("cloud_provider") else "own hardware (no cloud region)"
        )
        right.append(
            f"<h3>Location: {e(loc.get('display_name'))}</h3>"
            + _kv([
                ("Grid zone", loc.get("zone")), ("Compute", cloud),
                ("Determined by", loc.get("how")), ("Caution", loc.get("warning")),
                ("Runs", loc.get("runs")),
            ])
        )
    inten_rows = "".join(
        f'<tr><td class="n"><b>{e(units.short(float(i.get("g_per_kwh") or 0)))}</b></td>'
        f"<td>{e(i.get('dataset'))}<br><code>{e(i.get('file') or 'user')}</code></td>"
        f"<td>{e(i.get('year') or 'user')}</td><td>{e(i.get('zone'))}</td>"
        f"<td>{e(i.get('intensity_type'))}, "
        f"{e(str(i.get('scope', '')).replace('lifecycle', 'life cycle'))}, "
        f"{e(i.get('temporal_granularity'))}</td>"
        f'<td class="src">{e(i.get("source"))}'
        + (f"<br>Note: {e(i.get('note'))}" if i.get("note") else "")
        + f'</td><td>{e(i.get("licence"))}</td><td class="n">{e(i.get("runs"))}</td></tr>'
        for i in s.intensities
    )
    pue_rows = "".join(
        f'<tr><td class="n"><b>{e(p.get("value"))}</b></td><td>{e(p.get("applies_to"))}</td>'
        f'<td class="src">{e(p.get("source"))}</td><td class="n">{e(p.get("runs"))}</td></tr>'
        for p in s.pues
    )
    meter_rows = "".join(
        f"<tr><td><code>{e(m.get('meter'))}</code></td><td>{method_pill(str(m.get('method')))}"
        f"</td><td>{e(_band_text(m))}</td><td class=\"src\">{e(m.get('source'))}"
        + "".join(f"<br>· {e(a)}" for a in m.get("assumptions") or [])
        + f'</td><td class="n">{e(m.get("runs"))}</td></tr>'
        for m in s.meters
    )
    tables = ""
    if inten_rows:
        tables += (
            '<h3>Grid carbon intensity</h3><div class="table-wrap"><table><thead><tr>'
            '<th class="n">gCO2e/kWh</th><th>Dataset</th><th>Vintage</th><th>Zone</th>'
            '<th>Type, scope</th><th>Source</th><th>Licence</th><th class="n">Runs</th></tr>'
            f"</thead><tbody>{inten_rows}</tbody></table></div>"
        )
    if pue_rows:
        tables += (
            '<h3>Data-centre overhead (PUE)</h3><div class="table-wrap"><table><thead><tr>'
            '<th class="n">PUE</th><th>Applies to</th><th>Source</th><th class="n">Runs</th>'
            f"</tr></thead><tbody>{pue_rows}</tbody></table></div>"
        )
    if meter_rows:
        tables += (
            '<h3>Meters</h3><div class="table-wrap"><table><thead><tr><th>Meter</th>'
            "<th>Method</th><th>Band</th><th>Source and assumptions</th>"
            f'<th class="n">Runs</th></tr></thead><tbody>{meter_rows}</tbody></table></div>'
        )
    if tables:
        tables = (
            '<details class="fold"><summary>Intensity, PUE and meter sources</summary>'
            f"{tables}</details>"
        )
    return (
        '<section class="panel" id="setup"><h2>Hardware and location</h2>'
        '<p class="lead">What ran where, and the data each figure was looked up in, with its '
        f'vintage.</p><div class="twocol"><div>{"".join(left)}</div>'
        f'<div>{"".join(right)}</div></div>{tables}</section>'
    )


def _band_text(meter: Mapping[str, Any]) -> str:
    frac = meter.get("band_fraction")
    if isinstance(frac, (int, float)):
        src = meter.get("band_source") or ""
        return f"±{frac:.0%}" + (f" ({src})" if src else "")
    return "not quantified"


def _sci(report: Report) -> str:
    sci = report.sci
    if sci is None:
        return ""
    rows = "".join(
        f"<tr><td><b>{e(t.symbol)}</b></td><td>{e(t.name)}</td>"
        f'<td class="n">{e(units.short(t.value))}</td><td>{e(t.unit)}</td>'
        f'<td class="src">{e(t.source)}</td></tr>'
        for t in sci.terms
    )
    inc = "".join(f"<li>{e(x)}</li>" for x in sci.boundary["included"])
    exc = "".join(f"<li>{e(x)}</li>" for x in sci.boundary["excluded"])
    return (
        '<section class="panel" id="sci"><h2>Software Carbon Intensity</h2>'
        '<p class="lead">GSF SCI 1.1 (ISO/IEC 21031:2024). Change the functional unit with '
        "<code>wattwise sci --functional-unit ... --count R</code>.</p>"
        f'<p class="formula">SCI = (E × I + M) / R = {e(units.carbon(sci.sci_g_per_unit))} per '
        f"{e(sci.functional_unit)}</p><p>{e(sci.r_text)}</p>"
        '<details class="fold"><summary>Each term, its source and the boundary</summary>'
        '<div class="table-wrap"><table><thead><tr><th>Term</th><th>What</th>'
        '<th class="n">Value</th><th>Unit</th><th>Source</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
        f'<div class="twocol"><div><h3>Boundary: included</h3><ul class="checks yes">{inc}</ul>'
        f'</div><div><h3>Boundary: excluded</h3><ul class="checks no">{exc}</ul></div></div>'
        "</details></section>"
    )


def _methodology(report: Report) -> str:
    attribution = report.setup.attribution
    attr = "".join(f"<li><b>{e(k.upper())}</b>: {e(v)}</li>" for k, v in attribution.items())
    def credit_rows(used: bool) -> str:
        return "".join(
            f"<tr><td><b>{e(c.name)}</b><br><code>{e(c.file)}</code></td>"
            f'<td><a href="{e(c.licence_url)}">{e(c.licence)}</a></td>'
            f'<td class="src">{e(c.attribution)}</td></tr>'
            for c in report.credits
            if c.used == used
        )

    head = "<thead><tr><th>Dataset</th><th>Licence</th><th>Attribution</th></tr></thead>"
    used_rows, other_rows = credit_rows(True), credit_rows(False)
    credits = (
        f'<div class="table-wrap"><table>{head}<tbody>{used_rows}</tbody></table></div>'
        if used_rows else '<p class="src">No shipped dataset was used.</p>'
    )
    if other_rows:
        credits += (
            '<details><summary>Other data shipped with wattwise (not used here)</summary>'
            f'<div class="table-wrap"><table>{head}<tbody>{other_rows}</tbody></table></div>'
            "</details>"
        )
    return (
        '<section class="panel" id="methodology"><h2>Methodology and data</h2>'
        '<details class="fold"><summary>How energy, carbon and FLOPs are obtained</summary>'
        "<h3>Energy</h3><p>Each component's energy is read from a hardware counter (RAPL, "
        "NVML) where one is readable (<i>measured</i>), else from a power model of the CPU and "
        "memory (<i>estimated</i>, with the uncertainty band shown). The sampler attributes "
        f"energy to the run's process tree:</p><ul>{attr}</ul>"
        "<h3>Carbon</h3><p>Operational carbon O = energy (kWh) × PUE × grid intensity "
        "(gCO2e/kWh). The intensity is the location-based yearly average of the grid zone "
        "(never market-based: offsets, RECs and PPAs are not applied); its scope (life cycle "
        "or direct), year and dataset are listed above. Embodied carbon M = TE × TiR/EL × "
        "RR/ToR is reported separately, in the SCI section.</p>"
        "<h3>FLOPs</h3><p>FLOPs are counted with <code>torch.utils.flop_counter</code> "
        "(matrix multiplications and convolutions; forward, or forward and backward for "
        "training steps) through <code>run.count_flops()</code> or the Lightning and "
        "Transformers callbacks. FLOPs per joule = FLOPs / attributed energy; samples per "
        "joule likewise. FLOPs are not a proxy for energy: both are shown.</p></details>"
        "<h3>Data sources and licences</h3><p>This report's figures were computed with the "
        "data below; their licences require these attributions. Licence texts ship in "
        "<code>wattwise/data/LICENSES/</code>; provenance (repository, commit) in "
        f"<code>wattwise/data/PROVENANCE.md</code>.</p>{credits}</section>"
    )


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document (UTF-8 text).

    Args:
        report: From :func:`~wattwise.report.build_report`.

    Returns:
        HTML that loads nothing from outside and runs no script.
    """
    h = report.headline
    span = (
        f"{units.when(h.first_started_at)} to {units.when(h.last_ended_at)}"
        if h.first_started_at is not None else "no runs"
    )  # fmt: skip
    scope = {"run": "one run", "study": "tuning study", "project": "whole project"}[report.scope]
    toc = [("includes", "What's included"), ("timeline", "Timeline")]
    if report.curves or report.scope != "run":
        toc.append(("learning", "Learning & cost"))
    toc.append(("project", "Project"))
    if report.studies or report.scope != "run":
        toc.append(("studies", "Accuracy vs energy"))
    toc += [("runs", "Runs"), ("setup", "Hardware & location")]
    if report.sci:
        toc.append(("sci", "SCI"))
    toc.append(("methodology", "Methodology & data"))
    nav = "".join(f'<a href="#{k}">{e(v)}</a>' for k, v in toc)
    body = "".join([
        _headline(report), f'<nav class="toc">{nav}</nav>', _includes(report), _timeline(report),
        _learning(report), _project(report), _studies(report), _runs(report), _setup(report),
        _sci(report), _methodology(report),
    ])  # fmt: skip
    body = _labelled(body)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="generator" content="wattwise {e(report.tool_version)}">'
        f"<title>{e(report.title)} · wattwise report</title><style>{CSS}</style></head>"
        '<body><header class="top"><div class="wrap">'
        '<div class="brand"><b>&#9889; wattwise</b>energy and carbon report</div>'
        f'<h1 id="title">{e(report.title)}</h1>'
        f'<p class="meta"><span class="badge">{e(scope)}</span> {h.runs} run(s) · {e(span)}'
        f" · generated {e(units.when(report.generated_at))}</p></div></header>"
        f'<main class="wrap">{body}</main>'
        f'<footer class="wrap">Made by wattwise {e(report.tool_version)} from the ledger '
        f"<code>{e(report.store_path)}</code>. Figures carry their method (measured, "
        "estimated, user-given) and source; see Methodology.</footer></body></html>\n"
    )
