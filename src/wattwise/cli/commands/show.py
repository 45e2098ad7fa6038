"""``wattwise show RUN``: everything the ledger knows about one run."""

from __future__ import annotations

import argparse
import json
from typing import Any

from wattwise.cli import _args
from wattwise.cli import _format as fmt

HELP = "show one run: energy per component, carbon, environment, metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wattwise show``."""
    parser.add_argument(
        "run", type=_args.run_ref, help="run id or unique prefix (4+ characters)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run_details(store: Any, ref: str) -> dict[str, Any]:
    """The run's API fields plus its record, final metrics and series."""
    run = store.get_run(ref)
    data: dict[str, Any] = run.to_dict()
    data["record"] = run.record
    series: dict[str, list[dict[str, Any]]] = {}
    for step, key, value, logged_at in store.metrics(run.id):
        series.setdefault(key, []).append({"step": step, "value": value, "at": logged_at})
    data["metrics"] = series
    return data


def main(args: argparse.Namespace) -> int:
    """Print the run."""
    from wattwise.store import open_store

    store = open_store(args.store)
    try:
        data = run_details(store, args.run)
    finally:
        store.close()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    rec = data["record"]
    lines = [
        f"Run {data['id']}  '{data['name']}'  [{data['status']}]"
        + (f"  exit code {data['exit_code']}" if data["exit_code"] is not None else ""),
        f"  started {data['started_at']}  ended {data['ended_at']}  "
        f"({fmt.duration(data['duration_s'])})",
        f"  energy  {fmt.with_band(data['energy_j'], data['energy_band_j'])} attributed; "
        f"whole machine {fmt.energy(data['machine_energy_j'])}",
    ]
    if data.get("tags"):
        lines.append("  tags  " + ", ".join(map(str, data["tags"])))
    for comp in data["components"]:
        band = comp["energy_band_j"]
        lines.append(
            f"    {comp['component']:<5} {fmt.with_band(comp['energy_j'], band):<22} "
            f"{fmt.method_label(comp['method'])} by {comp['meter']}: {comp['source']}"
        )
    for meter, info in rec.get("meters", {}).items():
        for assumption in info.get("assumptions", []):
            lines.append(f"      [{meter}] {assumption}")
    intensity, pue = rec.get("intensity", {}), rec.get("pue", {})
    lines.append(
        f"  carbon  {fmt.with_band(data['co2e_g'], data['co2e_band_g'], fmt.carbon)} = energy "
        f"x PUE {pue.get('value')} x {intensity.get('g_per_kwh')} gCO2e/kWh"
    )
    lines.append(
        f"    intensity: {intensity.get('zone')} {intensity.get('year')} "
        f"{intensity.get('scope')} ({intensity.get('dataset')})"
    )
    lines.append(f"    PUE: {pue.get('source')}")
    loc = rec.get("location", {})
    lines.append(f"  location  {loc.get('display_name')} (determined: {loc.get('how')})")
    code = rec.get("code", {})
    if code.get("available"):
        dirty = " (dirty)" if code.get("dirty") else ""
        lines.append(f"  code  {str(code.get('commit', ''))[:12]}{dirty} on {code.get('branch')}")
    env = rec.get("environment", {})
    if env:
        lines.append(
            f"  python {env.get('python')}  {env.get('os')} {env.get('kernel')}  "
            f"{len(env.get('packages', {}))} packages"
        )
    hw = rec.get("hardware", {})
    if hw:
        cpu = hw.get("cpu", {})
        lines.append(f"  hardware  {cpu.get('model_name')} x{cpu.get('threads')}  "
                     f"RAM {hw.get('ram_gb')} GB  accelerator {hw.get('accelerator')}")
    cmd = rec.get("command", {})
    if cmd.get("argv"):
        lines.append(f"  command  {' '.join(cmd['argv'])}  (in {cmd.get('cwd')})")
    sampler = rec.get("sampler", {})
    lines.append(
        f"  sampler  every {sampler.get('interval_s')} s, {sampler.get('samples')} samples, "
        f"own CPU {sampler.get('cpu_s', 0):.3f} s"
    )
    if rec.get("seeds"):
        seeds = rec["seeds"]
        seeded = ", ".join(map(str, seeds.get("seeded", []))) if isinstance(seeds, dict) else ""
        lines.append(f"  seeds  {seeds.get('seed') if isinstance(seeds, dict) else seeds}"
                     + (f" ({seeded})" if seeded else ""))  # fmt: skip
    for item in rec.get("data", []):
        lines.append(
            f"  data  {item.get('name') or item.get('path')}: {item.get('algorithm', '')}:"
            f"{str(item.get('digest', item.get('hash', '')))[:16]} ({item.get('size_bytes')} B)"
        )
    if rec.get("reproduces"):
        lines.append(f"  reproduces  {rec['reproduces']}")
    flops = rec.get("flops")
    if flops and data["energy_j"] > 0 and flops.get("flops_total"):
        lines.append(
            f"  FLOPs  {flops['flops_total']:.3g} ({flops.get('method')}), "
            f"{flops['flops_total'] / data['energy_j']:.3g} FLOP/J"
        )
    if data["params"]:
        lines.append("  params  " + ", ".join(f"{k}={v}" for k, v in data["params"].items()))
    if data["metrics"]:
        last = ", ".join(f"{k}={v[-1]['value']:.4g}" for k, v in data["metrics"].items())
        lines.append(f"  metrics (last)  {last}")
    for warning in rec.get("warnings", []):
        lines.append(f"  warning: {warning}")
    if rec.get("error"):
        lines.append(f"  error: {rec['error']}")
    print(fmt.lines(lines))
    return 0
