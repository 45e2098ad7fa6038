"""``wattwise doctor``: which meters work here and why not; location; data vintage."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

HELP = "check which meters work here (and why not), the location and the shipped data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise doctor``."""
    parser.add_argument("--region", help="check this region instead of the resolved one")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--repair", action="store_true",
        help="merge spooled runs and kept cache hits into the ledger and mark dead runs "
        "crashed, then say what was done",
    )  # fmt: skip


def repair(store_arg: str | None) -> dict[str, Any]:
    """Merge every spool file whose run is done, book the cache hits kept by processes that
    are gone, and persist crashed runs.

    Raises:
        StoreError: The ledger still cannot be written (the spool is kept).
    """
    from wattwise.cli import _format as fmt
    from wattwise.store import merge_spools, open_store, pending_hits, pending_spools, replay_hits

    store = open_store(store_arg)
    try:
        merged = merge_spools(store)
        hits = replay_hits(store)
        crashed = store.reap()
    finally:
        store.close()
    left = pending_spools(store.path)
    return {
        "ledger": fmt.ledger(store),
        "merged": [{"file": str(m.path), "run_id": m.run_id, "entries": m.entries}
                   for m in merged],
        "hits_booked": hits,
        "hits_left": pending_hits(store.path),
        "crashed": crashed,
        "left": [{"file": str(f.path), "run_id": f.run_id} for f in left],
    }  # fmt: skip


def _kept_hits(ledger: Path | None) -> dict[str, int]:
    """The cache hits kept for ``ledger`` and not booked yet, counted (read-only: nothing is
    booked or removed): all of them, and those whose process is gone (``--repair`` books
    those; a running process books its own)."""
    from wattwise.store import kept_hit_files

    files = [k for k in kept_hit_files(ledger) if k.waiting] if ledger is not None else []
    gone = [k for k in files if k.owner_done()]
    return {
        "files": len(files), "hits": sum(len(k.waiting) for k in files),
        "files_owner_gone": len(gone), "hits_owner_gone": sum(len(k.waiting) for k in gone),
    }  # fmt: skip


def diagnose(region: str | None, store_arg: str | None) -> dict[str, Any]:
    """Everything doctor reports, as data."""
    from wattwise import __version__, carbon, meters
    from wattwise._config import load_settings
    from wattwise.exceptions import WattwiseError

    settings = load_settings()
    probes = [  # every registered meter (built-ins and plug-ins) with its reason and fix
        {k: v for k, v in d.items() if k != "availability"} for d in meters.describe_meters()
    ]
    selection = meters.select_meters(settings.meters)
    location = carbon.resolve_location(region, config_region=settings.region)
    intensity = carbon.intensity_for(
        location, scope=settings.intensity_scope,  # type: ignore[arg-type]
        override_g_per_kwh=settings.intensity_g_per_kwh,
    )  # fmt: skip
    pue = carbon.pue_for(location, override=settings.pue)
    from wattwise.cli import _format as fmt
    from wattwise.environment import redact_url
    from wattwise.store import get_store, pending_spools

    ledger: dict[str, Any]
    try:  # read-only: diagnosing never writes the ledger (a file path or any store URL)
        store = get_store(store_arg, readonly=True, defer=True)
    except WattwiseError as err:
        ledger = {"path": redact_url(store_arg or ""), "exists": False, "ok": False,
                  "error": str(err), "spooled": 0, "kept_hits": _kept_hits(None)}  # fmt: skip
    else:
        where = fmt.ledger(store)
        try:
            if store.schema_version() > 0:
                ledger = {"path": where, "exists": True, "runs": store.count_runs(), "ok": True}
            else:
                ledger = {"path": where, "exists": False, "ok": True,
                          "note": "created by the first run"}  # fmt: skip
        except WattwiseError as err:
            ledger = {"path": where, "exists": True, "ok": False, "error": str(err)}
        finally:
            store.close()
        ledger["spooled"] = len(pending_spools(store.path))
        ledger["kept_hits"] = _kept_hits(store.path)
    return {
        "wattwise": __version__,
        "python": platform.python_version(),
        "meters": probes,
        "selected": [
            {"meter": m.name, "method": m.info().method, "components": list(m.components())}
            for m in selection.meters
        ],
        "fallbacks": list(selection.fallbacks),
        "hardware": meters.describe_hardware(),
        "location": location.to_dict(),
        "intensity": intensity.to_dict(),
        "pue": {"value": pue.value, "source": pue.source, "applies_to": pue.applies_to},
        "datasets": carbon.datasets(),
        "ledger": ledger,
    }


def main(args: argparse.Namespace) -> int:
    """Print the diagnosis (with ``--repair``: merge the spool first and say what was done)."""
    from wattwise.cli import _format as fmt

    if args.repair:
        done = repair(args.store)
        if args.json:
            print(json.dumps(done, indent=2))
            return 0
        lines = [f"Ledger: {done['ledger']}"]
        for m in done["merged"]:
            what = f"{m['entries']} spooled writes" if m["entries"] else "already merged"
            lines.append(f"  merged run {m['run_id'][:8]}: {what} from {m['file']}")
        if done["hits_booked"]:
            lines.append(f"  booked {done['hits_booked']} cache hit(s) kept in the spool")
        if done["hits_left"]:
            lines.append(f"  left {done['hits_left']} kept cache hit(s): their process still "
                         "runs and books them itself")  # fmt: skip
        for run_id in done["crashed"]:
            lines.append(f"  marked run {run_id[:8]} crashed (its tracker and command are gone)")
        for f in done["left"]:
            lines.append(f"  left {f['file']}: run {f['run_id'][:8]} is still running")
        if len(lines) == 1:
            lines.append("  nothing to repair: no spooled runs or cache hits, no dead runs")
        print(fmt.lines(lines))
        return 0
    data = diagnose(args.region, args.store)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    out = [f"wattwise {data['wattwise']} on Python {data['python']}", "", "Meters:"]
    for probe in data["meters"]:
        mark = "ok " if probe["ok"] else "-- "
        covers = "/".join(probe.get("covers") or []) or "?"
        out.append(f"  {mark}{probe['meter']:<11} [{covers}] {probe['reason']}")
        if not probe["ok"] and probe["hint"]:
            out.append(f"       fix: {probe['hint']}")
    chosen = ", ".join(
        f"{s['meter']} ({s['method']}: {'/'.join(s['components'])})" for s in data["selected"]
    )
    out.append(f"  using: {chosen}")
    out += [f"  note: {f}" for f in data["fallbacks"]]
    cpu = data["hardware"].get("cpu", {})
    out += ["", "Hardware:",
            f"  CPU {cpu.get('model_name')} "
            f"({cpu.get('microarchitecture') or 'unknown family'}; "
            f"{cpu.get('threads')} threads), RAM {data['hardware'].get('ram_gb')} GB"]  # fmt: skip
    for gpu in data["hardware"].get("gpus", []):
        out.append(f"  GPU {gpu.get('index')}: {gpu.get('name')} ({gpu.get('vendor', 'nvidia')})")
    loc, inten, pue = data["location"], data["intensity"], data["pue"]
    out += [
        "",
        "Location and carbon:",
        f"  location  {loc['display_name']} (zone {loc['zone']}, determined: {loc['how']})",
    ]
    if loc.get("warning"):
        out.append(f"  warning   {loc['warning']}")
    out += [
        f"  intensity {inten['g_per_kwh']:.1f} gCO2e/kWh, {inten['scope']}, {inten['year']}, "
        f"{inten['dataset']}",
        f"  PUE       {pue['value']} ({pue['source']})",
        "",
        "Shipped data (vintage):",
    ]
    for ds in data["datasets"]:
        out.append(f"  {ds.get('file')}: {ds.get('year')} {ds.get('scope', '')} "
                   f"[{ds.get('licence', '')}]")  # fmt: skip
    led = data["ledger"]
    out += ["", f"Ledger: {led['path']}"]
    if led.get("spooled"):
        out.append(f"  {led['spooled']} spool files wait to be merged (wattwise doctor --repair)")
    kept = led.get("kept_hits") or {}
    if kept.get("hits_owner_gone"):
        out.append(f"  {kept['hits_owner_gone']} kept cache hit(s) in "
                   f"{kept['files_owner_gone']} file(s) wait to be booked, their process "
                   "gone (wattwise doctor --repair)")  # fmt: skip
    if kept.get("hits", 0) > kept.get("hits_owner_gone", 0):
        out.append(f"  {kept['hits'] - kept['hits_owner_gone']} kept cache hit(s) in "
                   f"{kept['files'] - kept['files_owner_gone']} file(s) wait for their "
                   "process, still running, to book them")  # fmt: skip
    if not led["ok"]:
        out.append(f"  problem: {led['error']}")
    elif led["exists"]:
        out.append(f"  {led['runs']} runs")
    else:
        out.append(f"  {led['note']}")
    print("\n".join(out))
    return 0
