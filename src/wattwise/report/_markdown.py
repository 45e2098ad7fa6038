"""The Markdown report: for a README, a paper appendix or a pull request.

User text is escaped so that a run name cannot inject HTML, break a table or hide
control characters in the file (a terminal that shows it would act on them).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from wattwise import _units as units
from wattwise.report._curves import validation_metric
from wattwise.report._model import ROLE_LABELS, Report, study_metric_label

_MD_SPECIAL = "\\`*_[]#|"
#: Unicode categories a terminal or viewer may act on instead of showing: controls (C0,
#: DEL, C1), format characters (bidirectional overrides, zero-width spaces, BOM), lone
#: surrogates (undecodable file names; they cannot even be written as UTF-8), line and
#: paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Format characters that real text needs: the zero-width (non-)joiners of Persian, Indic
#: scripts and emoji sequences.
_KEPT = frozenset({"\u200c", "\u200d"})


def _visible(char: str) -> str:
    """A character as is, or a hidden one as ``\\xNN`` / ``\\uNNNN`` text."""
    if char in _KEPT or unicodedata.category(char) not in _HIDDEN_CATEGORIES:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def md(value: object) -> str:
    """Escape text for Markdown (tables included): HTML entities and punctuation; line
    breaks and tabs become spaces, other control characters visible ``\\x1b`` text."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = " ".join(text.splitlines()).replace("\t", " ")
    if not text.isprintable():
        text = "".join(_visible(ch) for ch in text)
    return "".join(f"\\{ch}" if ch in _MD_SPECIAL else ch for ch in text)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _learning(report: Report) -> list[str]:
    """Each run with curves: its validation metric at the start and the end, the energy
    it had used by then, and its energy per epoch."""
    if not report.curves:
        return []
    metric = validation_metric(report.curves)
    rows = []
    for c in report.curves:
        points = c.metrics.get(metric, []) if metric else []
        first, last = (points[0], points[-1]) if points else (None, None)
        per_epoch = (
            units.energy(sum(ep.energy_j for ep in c.epochs) / len(c.epochs)) if c.epochs
            else "-"
        )  # fmt: skip
        rows.append([
            md(c.name), md(c.role),
            units.number(first[1], 4) if first else "-",
            units.number(last[1], 4) if last else "-",
            units.energy(last[2]) if last and last[2] is not None else "-",
            str(len(c.epochs)) if c.epochs else "-", per_epoch,
        ])  # fmt: skip
    shown = md(metric) if metric else "metric"
    return [
        "", "## Learning and cost", "",
        f"{shown} at the first and last logged step, with the energy each run had used when "
        "it logged the last one (the HTML report plots the curves).", "",
        *_table(["Run", "Role", f"{shown} first", f"{shown} last", "Energy by then", "Epochs",
                 "Energy per epoch (mean)"], rows),
    ]  # fmt: skip


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown.

    Args:
        report: From :func:`~wattwise.report.build_report`.

    Returns:
        Markdown text: headline table, what is included, project view, studies, runs,
        hardware and location, SCI, methodology and data credits.
    """
    h = report.headline
    out = [f"# {md(report.title)}", ""]
    out.append(
        f"*wattwise {md(report.tool_version)} report, {md(report.scope)} scope, generated "
        f"{units.when(report.generated_at)}; {h.runs} run(s), {h.counted_runs} counted.*"
    )
    out.append("")
    band = (
        f" ± {units.energy(h.energy_band_j)}" if h.energy_band_j and h.band_complete else
        (" (band not quantified)" if not h.band_complete else "")
    )  # fmt: skip
    rows = [
        ["Energy (IT, attributed)", f"{units.energy(h.energy_j)}{band}", md(h.method_label)],
        ["Energy × PUE", units.energy(h.facility_energy_j), "facility overhead included"],
        ["Carbon (operational)", units.with_band(h.co2e_g, h.co2e_band_g or None, "carbon")
         if h.co2e_band_g else units.carbon(h.co2e_g), "energy × PUE × grid intensity"],
        ["Time", units.duration(h.duration_s), f"{h.counted_runs} run(s)"],
    ]  # fmt: skip
    if h.flops_total is not None:
        rows.append(["FLOPs", units.flops(h.flops_total),
                     f"{h.flops_runs} run(s), torch.utils.flop_counter"])  # fmt: skip
        if h.flops_per_j:
            rows.append(["FLOPs per joule", units.rate(h.flops_per_j, "FLOP/J"), ""])
    if h.samples_per_j is not None:
        rows.append(["Samples per joule", units.rate(h.samples_per_j, "samples/J"), ""])
    if report.sci is not None:
        rows.append([
            "SCI", f"{units.carbon(report.sci.sci_g_per_unit)} per "
            f"{md(report.sci.functional_unit)}",
            f"(O + M) / R, embodied M = {units.carbon(report.sci.embodied_g)}, "
            f"{md(report.sci.r_short)}",
        ])  # fmt: skip
    out += _table(["Figure", "Value", "How"], rows)
    out += ["", "**Included:**", ""]
    out += [f"- {md(x)}" for x in report.includes]
    out += ["", "**Not included:**", ""]
    out += [f"- {md(x)}" for x in report.excludes]
    for note in report.notes:
        out += ["", f"> **Note:** {md(note)}"]

    pv = report.project
    out += ["", "## Where the carbon went", ""]
    total = sum(r.co2e_g for r in pv.by_role) or 1.0
    out += _table(
        ["Role", "Runs", "Energy", "Carbon", "Share"],
        ([md(ROLE_LABELS[r.role]), str(r.runs), units.energy(r.energy_j), units.carbon(r.co2e_g),
          f"{r.co2e_g / total:.0%}"] for r in pv.by_role),
    )  # fmt: skip
    prune, reuse = pv.saved_by_pruning, pv.saved_by_reuse
    out.append("")
    out.append(
        f"- Saved by pruning: {units.carbon(prune['co2e_g'])} ({units.energy(prune['energy_j'])})"
        if prune["studies"] else "- Saved by pruning: no tuning study recorded savings yet"
    )
    out.append(
        f"- Saved by reuse: {units.carbon(reuse['co2e_g'])} ({units.energy(reuse['energy_j'])}, "
        f"{int(reuse['hits'])} hit(s))" if reuse["hits"] or reuse["energy_j"]
        else "- Saved by reuse: nothing reused from the cache yet"
    )  # fmt: skip
    out += _project_sections(report)

    for study in report.studies:
        label = study_metric_label(study, report.runs)
        out += ["", f"## Study {md(study.name)}: {md(label)} versus energy", ""]
        out += _table(
            ["Trial", md(label), "Energy", "Pareto front"],
            ([md(p.name) + (" (best)" if p.is_best else ""), units.number(p.value, 4),
              units.energy(p.energy_j), "yes" if p.on_front else ""]
             for p in sorted(study.points, key=lambda p: p.energy_j)),
        )  # fmt: skip
        if study.fidelity is not None:
            out += ["", f"Fidelity: {md(study.fidelity)}"]

    out += _learning(report)

    out += ["", "## Runs", ""]
    out += _table(
        ["Run", "Id", "Role", "Status", "Time", "Energy", "Carbon", "Method", "FLOPs/J"],
        ([md(r.name), f"`{r.id[:12]}`", md(ROLE_LABELS.get(r.role, r.role)), md(r.status),
          units.duration(r.duration_s), units.energy(r.energy_j), units.carbon(r.co2e_g),
          md(", ".join(f"{c} {units.method_label(m)}" for c, m in sorted(r.methods.items()))),
          units.rate(r.flops_per_j, "FLOP/J") if r.flops_per_j else "-"]
         for r in reversed(report.runs[-200:])),
    )  # fmt: skip

    s = report.setup
    out += ["", "## Hardware and location", ""]
    for hw in s.hardware:
        gpus = ", ".join(hw.get("gpus") or []) or "none"
        out.append(
            f"- Hardware ({md(hw.get('host'))}): {md(hw.get('cpu'))}, {md(hw.get('threads'))} "
            f"threads, {md(hw.get('ram_gb'))} GB RAM, GPUs: {md(gpus)}"
        )
    for loc in s.locations:
        out.append(
            f"- Location: {md(loc.get('display_name'))} (zone {md(loc.get('zone'))}, "
            f"determined by {md(loc.get('how'))})"
        )
    for i in s.intensities:
        out.append(
            f"- Grid intensity: {md(i.get('g_per_kwh'))} gCO2e/kWh, {md(i.get('dataset'))}, "
            f"{md(i.get('year'))}, {md(i.get('scope'))}: {md(i.get('source'))}"
        )
    for p in s.pues:
        out.append(f"- PUE {md(p.get('value'))}: {md(p.get('source'))}")

    if report.sci is not None:
        sci = report.sci
        out += ["", "## Software Carbon Intensity (ISO/IEC 21031:2024)", "",
                f"SCI = (E × I + M) / R = **{units.carbon(sci.sci_g_per_unit)} per "
                f"{md(sci.functional_unit)}**", "", md(sci.r_text), ""]  # fmt: skip
        out += _table(
            ["Term", "What", "Value", "Unit", "Source"],
            ([t.symbol, md(t.name), units.number(t.value, 4), md(t.unit), md(t.source)]
             for t in sci.terms),
        )  # fmt: skip

    out += ["", "## Methodology and data", ""]
    out.append(
        "Energy per component is measured by hardware counters where readable, else "
        "estimated by a power model (band shown). Operational carbon = energy × PUE × the "
        "grid's location-based yearly average intensity; no market-based instruments. "
        "Embodied carbon is the SCI M term. FLOPs by torch.utils.flop_counter."
    )
    out += ["", "Data used (attribution required by the licences):", ""]
    for c in report.credits:
        if c.used:
            out.append(f"- {md(c.name)} (`{c.file}`), [{c.licence}]({c.licence_url}): "
                       f"{md(c.attribution)}")  # fmt: skip
    out.append("")
    return "\n".join(out)


#: Groups listed per grouping in a project view; the rest are summed in one row.
MAX_GROUP_ROWS = 12


def _project_sections(report: Report) -> list[str]:
    """Carbon by user, host, tag and month; the top runs and the studies of a large project."""
    pv = report.project
    out: list[str] = []
    if pv.bucket is not None:
        out += ["", f"*Cumulative carbon is summed per {pv.bucket} (UTC) in the JSON report.*"]
    total = sum(r.co2e_g for r in pv.by_role) or 1.0
    if pv.counted_runs >= 2:
        for grouping, groups in pv.groups.items():
            if not groups:
                continue
            shown, rest = groups[:MAX_GROUP_ROWS], groups[MAX_GROUP_ROWS:]
            if grouping == "month" and rest:
                shown, rest = groups[-MAX_GROUP_ROWS:], groups[:-MAX_GROUP_ROWS]
            note = " (a run counts once per tag)" if grouping == "tag" else ""
            out += ["", f"### By {grouping}{note}", ""]
            rows = [
                [md(g.group) if g.group is not None else "*none recorded*", str(g.runs),
                 units.energy(g.energy_j), units.carbon(g.co2e_g), f"{g.co2e_g / total:.0%}"]
                for g in shown
            ]  # fmt: skip
            if rest:
                rows.append([f"*{len(rest)} more*", str(sum(g.runs for g in rest)),
                             units.energy(sum(g.energy_j for g in rest)),
                             units.carbon(sum(g.co2e_g for g in rest)), ""])  # fmt: skip
            out += _table([grouping.title(), "Runs", "Energy", "Carbon", "Share"], rows)
    if pv.summarised and pv.top_runs:
        out += ["", f"### The {len(pv.top_runs)} runs that used the most energy", "",
                f"*{pv.counted_runs} counted runs: this project is summarised (top runs, "
                "studies, time buckets); `wattwise runs` lists them all.*", ""]  # fmt: skip
        out += _table(
            ["Run", "Id", "Role", "Status", "Time", "Energy", "Carbon"],
            ([md(r.name), f"`{r.id[:12]}`", md(ROLE_LABELS.get(r.role, r.role)), md(r.status),
              units.duration(r.duration_s), units.energy(r.energy_j), units.carbon(r.co2e_g)]
             for r in pv.top_runs),
        )  # fmt: skip
    if pv.studies and (pv.summarised or len(pv.studies) > 1):
        out += ["", f"### Tuning studies ({len(pv.studies)})", ""]
        out += _table(
            ["Study", "Id", "Trials", "Energy", "Carbon", "Best value", "Shown"],
            ([md(t.name), f"`{t.id[:12]}`", str(t.trials), units.energy(t.energy_j),
              units.carbon(t.co2e_g),
              units.number(t.best_value, 4) if t.best_value is not None else "-",
              "below" if t.shown else ""] for t in pv.studies),
        )  # fmt: skip
    return out
