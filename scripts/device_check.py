"""Compare wattwise's NVML energy with nvidia-smi on real hardware (see scripts/device-check)."""

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


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 45.0
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
