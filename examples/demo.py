"""The main job, end to end and offline: what `make demo` runs.

1. trains a small PyTorch network on the digits data under `wattwise run` (zero code
   change: the script only logs its accuracy when it finds itself tracked);
2. shows the run: energy per component with method and band, carbon, environment;
3. runs an energy-aware hyperparameter search under an energy budget with wattwise's
   defaults (random configurations; successive halving with energy as the fidelity, chosen on
   benchmarks/tune), and prints the best model and the accuracy-versus-energy Pareto front;
4. prints the project footprint from the ledger;
5. writes report.html for the project and prints its path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wattwise(*args: str) -> int:
    """Run the wattwise command line with this interpreter."""
    return subprocess.call([sys.executable, "-m", "wattwise", *args])


def main() -> int:
    """Train, show, sum up."""
    print("== 1. Training a PyTorch MLP on digits under `wattwise run` ==", flush=True)
    code = wattwise(
        "run", "--name", "digits-mlp", "--tag", "demo", "--",
        sys.executable, str(HERE / "train_digits.py"), "--epochs", "30",
    )  # fmt: skip
    if code != 0:
        return code
    print("\n== 2. The run, as recorded in the ledger ==", flush=True)
    last = subprocess.run(
        [sys.executable, "-m", "wattwise", "runs", "--limit", "1", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    import json

    run_id = json.loads(last)[-1]["id"]
    wattwise("show", run_id)
    print("\n== 3. An energy-aware search, under an energy budget ==", flush=True)
    code = subprocess.call([sys.executable, str(HERE / "tune_digits.py")])
    if code != 0:
        return code
    print("\n== 4. The project footprint ==", flush=True)
    code = wattwise("footprint")
    if code != 0:
        return code
    print("\n== 5. The report ==", flush=True)
    return subprocess.call([sys.executable, str(HERE / "report_demo.py")])


if __name__ == "__main__":
    sys.exit(main())
