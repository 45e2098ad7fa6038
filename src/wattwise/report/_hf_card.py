"""Hugging Face model card: the ``co2_eq_emissions`` metadata block and its body table.

The block follows ``huggingface/hub-docs`` ``model-cards-co2.md``: ``emissions`` in
**grams**, ``source``, ``training_type`` (``pre-training`` or ``fine-tuning``),
``geographical_location`` and ``hardware_used``. The Hub's spec does not say whether
``emissions`` includes embodied carbon or data-centre overhead, so the card body states
both, with the operational and embodied figures side by side.
"""

from __future__ import annotations

import dataclasses
import decimal
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wattwise import _units as units
from wattwise.exceptions import InvalidParameterError, WattwiseError
from wattwise.report._covers import covers_by_meter
from wattwise.report._markdown import md
from wattwise.report._model import Report

TRAINING_TYPES = ("pre-training", "fine-tuning")
START = "<!-- wattwise:environmental-impact:start -->"
END = "<!-- wattwise:environmental-impact:end -->"


@dataclasses.dataclass(frozen=True)
class HfCard:
    """A model card's emissions metadata and its "Environmental impact" section.

    Attributes:
        metadata: ``{"co2_eq_emissions": {...}}``, ready for the card's YAML header.
        section: The Markdown section (between wattwise markers), with the table that
            states what the number includes.
    """

    metadata: dict[str, Any]
    section: str

    @property
    def co2_eq_emissions(self) -> dict[str, Any]:
        """The ``co2_eq_emissions`` mapping."""
        value: dict[str, Any] = self.metadata["co2_eq_emissions"]
        return value

    def yaml(self) -> str:
        """The metadata as YAML (strings double-quoted; JSON strings are valid YAML)."""
        lines = ["co2_eq_emissions:"]
        for key, value in self.co2_eq_emissions.items():
            if isinstance(value, str):
                shown = json.dumps(value, ensure_ascii=False)
            elif isinstance(value, float):
                shown = fixed_point(value)
            else:
                shown = repr(value)
            lines.append(f"  {key}: {shown}")
        return "\n".join(lines) + "\n"

    def to_markdown(self) -> str:
        """A complete card: YAML front matter and the section."""
        return f"---\n{self.yaml()}---\n\n{self.section}"


#: Significant digits of ``emissions`` (grams): wattwise's bands are percent-level, so six
#: digits keep every figure a band could tell apart.
EMISSIONS_DIGITS = 6


def _significant(value: float) -> float:
    return float(f"{value:.{EMISSIONS_DIGITS}g}")


def fixed_point(value: float) -> str:
    """``value`` in fixed-point notation, never exponent notation (``0.00000451359``).

    The Hub's emissions filter reads ``4.51359e-06`` as 4.51 g, so the card's YAML and
    its table write ``emissions`` this way: :data:`EMISSIONS_DIGITS` significant digits,
    no trailing zeros after the point, at least one digit after it (a YAML float).
    """
    if not math.isfinite(value):
        return repr(value)
    text = format(decimal.Decimal(f"{value:.{EMISSIONS_DIGITS}g}"), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if "." in text else f"{text}.0"


def _hardware_used(report: Report) -> str:
    parts = []
    for hw in report.setup.hardware:
        gpus = [str(g) for g in hw.get("gpus") or []]
        if gpus:
            counts: dict[str, int] = {}
            for g in gpus:
                counts[g] = counts.get(g, 0) + 1
            parts.append(", ".join(f"{n} x {name}" for name, n in counts.items()))
        else:
            threads = hw.get("threads")
            detail = f" ({threads} threads)" if threads else ""
            parts.append(f"CPU only: 1 x {hw.get('cpu') or 'unknown CPU'}{detail}")
    distinct = list(dict.fromkeys(parts))
    return "; ".join(distinct) if distinct else "unknown (no hardware description recorded)"


def _location(report: Report) -> str:
    names = list(dict.fromkeys(
        str(loc.get("display_name")) for loc in report.setup.locations if loc.get("display_name")
    ))  # fmt: skip
    return "; ".join(names) if names else "unknown"


def _source(report: Report) -> str:
    h = report.headline
    methods = ", ".join(
        f"{c.component} {c.label} ({', '.join(c.meters)})" for c in h.components
    ) or "no energy recorded"
    intens = "; ".join(dict.fromkeys(
        f"{i.get('dataset')} {i.get('year') or ''} {i.get('zone')}, "
        f"{str(i.get('scope', '')).replace('lifecycle', 'life cycle')}".replace("  ", " ")
        for i in report.setup.intensities
    )) or "unknown"
    return f"wattwise {report.tool_version} ({methods}; intensity: {intens})"


def hf_card(
    report: Report, *, training_type: str = "fine-tuning", include_embodied: bool = False
) -> HfCard:
    """The model card block and section for a report's runs.

    Args:
        report: From :func:`~wattwise.report.build_report` (a run, study or project).
        training_type: ``"pre-training"`` or ``"fine-tuning"`` (the Hub's exact strings).
        include_embodied: Put operational + embodied (SCI ``O + M``) in ``emissions``
            instead of operational only.

    Returns:
        The card parts.

    Raises:
        InvalidParameterError: ``training_type`` is not one of the two Hub values.
    """
    if training_type not in TRAINING_TYPES:
        msg = (
            f"The 'training_type' parameter must be one of {set(TRAINING_TYPES)}. "
            f"Got {training_type!r} instead."
        )
        raise InvalidParameterError(msg)
    h = report.headline
    operational = h.co2e_g
    embodied = report.sci.embodied_g if report.sci is not None else 0.0
    emissions = operational + embodied if include_embodied else operational
    shown = _significant(emissions)
    block: dict[str, Any] = {
        "emissions": shown,
        "source": _source(report),
        "training_type": training_type,
        "geographical_location": _location(report),
        "hardware_used": _hardware_used(report),
    }
    pues = sorted({s.pue for s in report.runs if s.counted and s.pue is not None})
    pue_text = ", ".join(f"{p:g}" for p in pues) or "unknown"
    pue_note = (
        "yes, but PUE 1.0 counts no data-centre overhead" if pues == [1.0]
        else f"yes, PUE {pue_text}"
    )  # fmt: skip
    statuses: dict[str, int] = {}
    for s in report.runs:
        if s.counted:
            statuses[s.status] = statuses.get(s.status, 0) + 1
    runs_text = f"{h.counted_runs}" + (
        " (" + ", ".join(f"{n} {k}" for k, n in sorted(statuses.items())) + ")"
        if statuses else ""
    )  # fmt: skip
    clouds = sorted({
        f"{loc.get('cloud_provider')} {loc.get('cloud_region')}"
        for loc in report.setup.locations if loc.get("cloud_provider")
    })  # fmt: skip
    band = f" ± {units.energy(h.energy_band_j)}" if h.energy_band_j else ""
    rows = [
        ("Hardware type", block["hardware_used"]),
        ("Hours used", f"{h.duration_s / 3600:.4g}"),
        ("Cloud provider", ", ".join(c.split(" ")[0] for c in clouds) or "none (own hardware)"),
        ("Compute region", ", ".join(clouds) or block["geographical_location"]),
        ("Carbon emitted (`co2_eq_emissions.emissions`)",
         f"{fixed_point(shown)} gCO2e"),
        ("Operational emissions O = E × PUE × I", units.carbon(operational)),
        ("Embodied emissions M (SCI, hardware manufacturing)", units.carbon(embodied)),
        ("Embodied carbon included in `emissions`", "yes" if include_embodied else "no"),
        ("Data-centre overhead (PUE) included in `emissions`", pue_note),
        ("Energy (IT, attributed to the training processes)",
         f"{units.energy(h.energy_j)}{band}, {h.method_label}"),
        ("Grid intensity", "; ".join(dict.fromkeys(
            f"{i.get('g_per_kwh')} gCO2e/kWh, {i.get('dataset')}, {i.get('year') or 'user'}, "
            f"{str(i.get('scope', '')).replace('lifecycle', 'life cycle')}"
            for i in report.setup.intensities)) or "unknown"),
        ("Runs counted (failed and tuning runs included)", runs_text),
    ]  # fmt: skip
    covers = covers_by_meter((str(m.get("meter")), m) for m in report.setup.meters)
    if covers:
        rows.append(("What estimated energy covers", "; ".join(
            f"{name}: {text}" for name, text in sorted(covers.items()))))  # fmt: skip
    if h.flops_total is not None:
        rows.append(("FLOPs (torch.utils.flop_counter)", units.flops(h.flops_total)))
    what = "the whole project" if report.scope == "project" else report.title
    table = "\n".join(f"| {md(k) if '`' not in k else k} | {md(v)} |" for k, v in rows)
    section = (
        f"{START}\n## Environmental impact\n\n"
        f"Carbon emissions of {md(what)} were measured and estimated with "
        f"wattwise {md(report.tool_version)}; the YAML `co2_eq_emissions.emissions` is in "
        "grams of CO2e.\n\n| Field | Value |\n|---|---|\n"
        f"{table}\n\nMarket-based instruments (offsets, RECs) are never applied. Energy and "
        "carbon of every run in scope are included, not only the final one.\n"
        f"{END}\n"
    )
    return HfCard(metadata={"co2_eq_emissions": block}, section=section)


def update_model_card(path: str | os.PathLike[str], card: HfCard) -> Path:
    """Write the block into an existing model card (README.md), or create one.

    The card's other metadata and text are kept; ``co2_eq_emissions`` is replaced and the
    section between the wattwise markers is replaced (or appended).

    Args:
        path: The model card file.
        card: From :func:`hf_card`.

    Returns:
        The path written.

    Raises:
        WattwiseError: ``huggingface_hub`` is not installed and the card already exists.
    """
    target = Path(path)
    if not target.exists():
        target.write_text(card.to_markdown(), encoding="utf-8")
        return target
    try:
        from huggingface_hub import metadata_load, metadata_save
    except ImportError as err:
        msg = (
            "Updating an existing model card needs huggingface_hub. Install it with: "
            "pip install 'wattwise[interop]', or write a new card with -o."
        )
        raise WattwiseError(msg) from err
    data: Mapping[str, Any] | None = metadata_load(target)
    merged = dict(data or {})
    merged["co2_eq_emissions"] = card.co2_eq_emissions
    metadata_save(target, merged)
    text = _fixed_point_emissions(target.read_text(encoding="utf-8"), card)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + card.section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + card.section
    target.write_text(text, encoding="utf-8")
    return target


_EMISSIONS_LINE = re.compile(r"^(\s+emissions:[ \t]*)([-+.0-9eE]+)[ \t]*$", re.MULTILINE)


def _fixed_point_emissions(text: str, card: HfCard) -> str:
    """The card text with ``co2_eq_emissions.emissions`` in fixed-point notation.

    ``metadata_save`` writes floats with PyYAML, which writes small ones in exponent
    notation; this rewrites that one line of the front matter (the first ``emissions:``
    line inside the ``co2_eq_emissions`` block).
    """
    value = card.co2_eq_emissions.get("emissions")
    if not isinstance(value, float):
        return text
    start = text.find("co2_eq_emissions:")
    end = text.find("\n---", start)
    if start < 0 or end < 0:
        return text
    block = _EMISSIONS_LINE.sub(lambda m: m.group(1) + fixed_point(value), text[start:end],
                                count=1)  # fmt: skip
    return text[:start] + block + text[end:]
