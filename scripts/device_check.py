"""Compare wattwise's GPU meters with the vendor tools on real hardware (scripts/device-check).

1. Every registered GPU meter that works here (gpu-nvml, gpu-amdsmi, plug-ins) is read in
   process around a short training load, beside the vendor tool's own figure over the same
   window (nvidia-smi's energy counter and its 10 Hz power log; amd-smi's energy counter).
   On NVIDIA, NVML is also read in sampled mode (power every 0.1 s, window-corrected) beside
   the counter, to check the sampled path where the counter exists.
2. On NVIDIA, the same load runs end to end under ``wattwise run``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = """
import time, torch
assert torch.cuda.is_available(), "no CUDA device visible to PyTorch"
dev = torch.device("cuda")
torch.manual_seed(0)
x = torch.randn(8192, 1024, device=dev)
y = torch.randint(0, 10, (8192,), device=dev)
model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(),
                            torch.nn.Linear(4096, 4096), torch.nn.ReLU(),
                            torch.nn.Linear(4096, 10)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
end = time.time() + float(__import__("sys").argv[1])
steps = 0
while time.time() < end:
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    steps += 1
torch.cuda.synchronize()
print(f"trained {steps} steps, final loss {float(loss):.4f}")
"""


def smi_energy_j() -> dict[int, float]:
    """Total energy counters per GPU from `nvidia-smi -q -d POWER`, where reported."""
    try:
        text = subprocess.run(["nvidia-smi", "-q", "-d", "POWER"], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return {}
    found: dict[int, float] = {}
    for index, block in enumerate(re.split(r"\nGPU [0-9A-Fa-f:.]+\n", text)[1:]):
        match = re.search(r"Energy Consumption\s*:\s*([\d.]+)\s*(m?J)", block)
        if match:
            value = float(match.group(1))
            found[index] = value / 1000 if match.group(2) == "mJ" else value
    return found


def amd_smi_energy_j() -> dict[int, float]:
    """Energy counters per GPU from ``amd-smi metric --energy --json``, where it answers."""
    try:
        text = subprocess.run(["amd-smi", "metric", "--energy", "--json"], capture_output=True,
                              text=True, check=True, timeout=30).stdout  # fmt: skip
        data = json.loads(text)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    found: dict[int, float] = {}
    for position, entry in enumerate(data if isinstance(data, list) else [data]):
        index = entry.get("gpu", position) if isinstance(entry, dict) else position
        joules = _energy_in(entry)
        if joules is not None:
            found[int(index)] = joules
    return found


def _energy_in(node: object) -> float | None:
    """The first energy figure in an amd-smi JSON tree, in J ({"value", "unit"} or "1.2 J")."""
    units = {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "\u00b5J": 1e-6, "kJ": 1e3}
    if isinstance(node, dict):
        if "value" in node and node.get("unit") in units:
            return float(node["value"]) * units[node["unit"]]
        for key, value in node.items():
            if "energy" in str(key).lower():
                found = _energy_in(value)
                if found is not None:
                    return found
        for value in node.values():
            found = _energy_in(value)
            if found is not None:
                return found
    if isinstance(node, str):
        match = re.fullmatch(r"\s*([\d.]+)\s*(kJ|mJ|uJ|\u00b5J|J)\s*", node)
        if match:
            return float(match.group(1)) * units[match.group(2)]
    return None


def compare_meters(seconds: float) -> None:
    """Read every working GPU meter around a training load, beside the vendor tools."""
    from wattwise import meters

    print("GPU meters here:")
    working: list[meters.BaseMeter] = []
    for described in meters.describe_meters():
        if "gpu" not in (described.get("covers") or []):
            continue
        mark = "ok" if described["ok"] else "--"
        print(f"  {mark} {described['meter']}: {described['reason']}")
        if described["ok"]:
            cls = next(e.cls for e in meters.meter_entries() if e.name == described["meter"])
            assert cls is not None
            working.append(cls.from_context(meters.MeterContext()))
    if not working:
        print("No GPU meter works here: nothing to compare.")
        return
    if any(m.name == "gpu-nvml" for m in working):
        working.append(meters.NvmlMeter(force_sampled=True))
    for meter in working:
        meter.probe()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "train.py"
        script.write_text(TRAIN)
        nv_before, amd_before = smi_energy_j(), amd_smi_energy_j()
        before = [m.read() for m in working]
        subprocess.run([sys.executable, str(script), str(seconds)], check=True)
        after = [m.read() for m in working]
        nv_after, amd_after = smi_energy_j(), amd_smi_energy_j()
    for meter, start, end in zip(working, before, after, strict=True):
        info = meter.info()
        label = f"{meter.name} ({info.method})"
        for key in sorted(end):
            ours = end[key] - start.get(key, 0.0)
            index = int(key.split(":")[1])
            line = f"{label} {key}: {ours:.1f} J"
            vendor = None
            if meter.name == "gpu-nvml" and index in nv_before and index in nv_after:
                vendor = ("nvidia-smi counter", nv_after[index] - nv_before[index])
            if meter.name == "gpu-amdsmi" and index in amd_before and index in amd_after:
                vendor = ("amd-smi counter", amd_after[index] - amd_before[index])
            if vendor is not None and vendor[1] > 0:
                line += f" | {vendor[0]} {vendor[1]:.1f} J, relative difference "
                line += f"{(ours - vendor[1]) / vendor[1]:+.2%}"
            print(line)
        if info.band_fraction is not None or info.method == "sampled":
            print(f"  band {info.band_fraction}: {info.band_source}")
        meter.close()
    print()


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 45.0
    compare_meters(min(seconds, 20.0))
    if subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode:
        print("No nvidia-smi here: the end-to-end 'wattwise run' check is NVIDIA-only.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "train.py").write_text(TRAIN)
        log = root / "power.csv"
        env = {**os.environ, "WATTWISE_STORE": str(root / "ledger.db"),
               "WATTWISE_REGION": os.environ.get("WATTWISE_REGION", "FR")}  # fmt: skip
        logger = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=index,timestamp,power.draw",
             "--format=csv,noheader,nounits", "-lms", "100"],
            stdout=log.open("w"), stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)
        before = smi_energy_j()
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "wattwise", "run", "--name", "device-check", "--",
                        sys.executable, str(root / "train.py"), str(seconds)],
                       check=True, env=env)  # fmt: skip
        t1 = time.time()
        after = smi_energy_j()
        time.sleep(0.5)
        logger.terminate()
        logger.wait()
        runs = json.loads(subprocess.run([sys.executable, "-m", "wattwise", "runs", "--json"],
                                         capture_output=True, text=True, check=True,
                                         env=env).stdout)  # fmt: skip
        run = runs[-1]
        shown = json.loads(subprocess.run([sys.executable, "-m", "wattwise", "show", run["id"],
                                           "--json"], capture_output=True, text=True,
                                          check=True, env=env).stdout)  # fmt: skip
        # power x time from nvidia-smi's 10 Hz log, over the run's wall-clock window
        per_gpu: dict[int, list[tuple[float, float]]] = {}
        for line in log.read_text().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 3 or not parts[2].replace(".", "", 1).isdigit():
                continue
            stamp = time.mktime(time.strptime(parts[1].split(".")[0], "%Y/%m/%d %H:%M:%S"))
            frac = float("0." + parts[1].split(".")[1]) if "." in parts[1] else 0.0
            per_gpu.setdefault(int(parts[0]), []).append((stamp + frac, float(parts[2])))
    gpu = [c for c in run["components"] if c["component"] == "gpu"]
    ours = gpu[0]["machine_energy_j"] if gpu else None
    print(f"\nwattwise run {run['id'][:8]}: {run['duration_s']:.1f} s, status {run['status']}")
    print(f"wattwise GPU energy (NVML, {gpu[0]['method'] if gpu else 'none'}): "
          f"{ours if ours is not None else 'not measured'} J")  # fmt: skip
    print("NVML devices:", json.dumps(shown["record"].get("meters", {}).get("gpu-nvml", {})
                                      .get("details", {}), default=str))  # fmt: skip
    for index, points in sorted(per_gpu.items()):
        inside = [(t, p) for t, p in points if t0 - 0.2 <= t <= t1 + 0.2]
        energy = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(inside))
        line = f"GPU {index}: nvidia-smi power x time {energy:.1f} J ({len(inside)} samples)"
        if ours:
            line += f", relative difference {(ours - energy) / energy:+.2%}" if energy else ""
        print(line)
    for index in sorted(set(before) & set(after)):
        delta = after[index] - before[index]
        line = f"GPU {index}: nvidia-smi energy counter {delta:.1f} J (window incl. start-up)"
        if ours and delta:
            line += f", relative difference {(ours - delta) / delta:+.2%}"
        print(line)
    if not before:
        print("nvidia-smi -q -d POWER reports no energy counter on this driver.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
