"""The Hugging Face model card's ``co2_eq_emissions`` block, written from a run.

The block follows ``huggingface/hub-docs`` ``model-cards-co2.md``: ``emissions`` in
**grams** of CO2e (operational: energy x PUE x grid intensity; embodied carbon is not in
it), ``source``, ``training_type``, ``geographical_location`` and ``hardware_used``. The
number is written in fixed-point notation (``0.0000045136``, never ``4.5136e-06``, which
the Hub's emissions filter misreads). ``wattwise export --format hf-card`` writes the
fuller card (the section that states what the number includes) from the ledger.
"""

from __future__ import annotations

import json
import math
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from wattwise.tracking import Run, RunState


def fixed(value: float, digits: int = 6) -> str:
    """``value`` to ``digits`` significant digits, in fixed-point notation."""
    if value == 0 or not math.isfinite(value):
        return "0.0"
    decimals = max(1, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _hardware(record: dict[str, Any]) -> str:
    hw = record.get("hardware") or {}
    gpus = [str(g) for g in hw.get("gpus") or []]
    if gpus:
        counts: dict[str, int] = {}
        for gpu in gpus:
            counts[gpu] = counts.get(gpu, 0) + 1
        return ", ".join(f"{n} x {name}" for name, n in counts.items())
    if not hw:
        return "unknown (no hardware description recorded)"
    threads = hw.get("threads")
    detail = f" ({threads} threads)" if threads else ""
    return f"CPU only: 1 x {hw.get('cpu') or 'unknown CPU'}{detail}"


def emissions_block(run: Run, *, training_type: str = "fine-tuning") -> dict[str, Any]:
    """The ``co2_eq_emissions`` mapping for ``run`` (finished, or so far if running)."""
    try:
        own = version("wattwise")
    except PackageNotFoundError:
        own = "unknown"
    if run.state is RunState.ENDED:
        co2e = run.result.co2e_g
        comps = ", ".join(f"{c.component} {c.method} ({c.meter})" for c in run.result.components)
        so_far = ""
    else:
        co2e = run.snapshot()["co2e_g"]
        comps = ", ".join(f"{name}: {info.method}" for name, info in run.meter_infos.items())
        so_far = "; the run was still running: emissions up to the card's writing"
    inten = run.intensity
    return {
        "emissions": co2e,
        "source": (
            f"wattwise {own} ({comps or 'no energy recorded'}; intensity: {inten.dataset} "
            f"{inten.year or ''} {inten.zone}, {inten.scope}; PUE {run.pue.value:g}; "
            f"operational only{so_far})"
        ).replace("  ", " "),
        "training_type": training_type,
        "geographical_location": run.location.display_name or run.location.zone,
        "hardware_used": _hardware(run.record),
    }


def write_into_card(path: Path, block: dict[str, Any]) -> None:
    """Put ``block`` as ``co2_eq_emissions`` in the YAML header of the card at ``path``.

    The card's other metadata and its text are kept; a card without a header gets one.
    """
    import yaml

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    meta: dict[str, Any] = {}
    body = text
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            loaded = yaml.safe_load(text[4:end]) or {}
            if isinstance(loaded, dict):
                meta = loaded
                body = text[end + 4 :].lstrip("\n")
    meta.pop("co2_eq_emissions", None)
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) if meta else ""
    lines = ["co2_eq_emissions:"]
    for key, value in block.items():
        if isinstance(value, float):
            lines.append(f"  {key}: {fixed(value)}")
        else:
            lines.append(f"  {key}: {json.dumps(str(value), ensure_ascii=False)}")
    path.write_text(f"---\n{head}" + "\n".join(lines) + f"\n---\n\n{body}", encoding="utf-8")
