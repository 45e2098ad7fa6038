"""Reuse pays: a three-stage pipeline run twice, and how fast cache keys are computed.

One command (about a minute):

    .venv/bin/python benchmarks/cache_reuse.py            # 1 GB hashing inputs
    .venv/bin/python benchmarks/cache_reuse.py --quick    # 256 MB hashing inputs

1. Pipeline: ``preprocess`` (digits, augmented by one-pixel shifts, standardised),
   ``features`` (PCA to 40, degree-2 polynomial features) and ``train`` (logistic
   regression; returns coefficients and accuracy as arrays, no pickle), each
   ``@wattwise.cached``, in one ``wattwise.track`` block, run in two fresh processes
   against the same project cache. Reported: the second block's energy as a share of the
   first (target < 5 %) and what the ledger says reuse avoided.
2. Key hashing throughput for a 1 GB NumPy array and a 1 GB file (target >= 1 GB/s),
   through the same code path as a cache key (``digest_value``). The file is hashed right
   after it was written, so it is read from the page cache; a cold disk is slower.

Energy figures come from the best meter on this machine (RAPL when readable, else the
CPU power model, labelled "estimated"); ratios are measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

PIPELINE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import wattwise

    @wattwise.cached
    def preprocess(seed):
        from sklearn.datasets import load_digits
        from sklearn.preprocessing import StandardScaler
        digits = load_digits()
        images = [digits.images]
        for dx, dy in [(1, 0), (-1, 0), (0, 1), (0, -1)]:
            images.append(np.roll(np.roll(digits.images, dx, axis=2), dy, axis=1))
        x = np.concatenate(images).reshape(-1, 64)
        y = np.tile(digits.target, 5)
        order = np.random.default_rng(seed).permutation(len(y))
        return StandardScaler().fit_transform(x)[order], y[order]

    @wattwise.cached
    def features(x, n_components=40):
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import PolynomialFeatures
        z = PCA(n_components, random_state=0).fit_transform(x)
        return PolynomialFeatures(2).fit_transform(z)

    @wattwise.cached(version=1)
    def train(f, y, c=1.0):
        from sklearn.linear_model import LogisticRegression
        split = 7000
        model = LogisticRegression(C=c, max_iter=200).fit(f[:split], y[:split])
        return {"coef": model.coef_, "intercept": model.intercept_,
                "accuracy": float(model.score(f[split:], y[split:]))}

    with wattwise.track("digits-pipeline") as run:
        x, y = preprocess(0)
        f = features(x)
        model = train(f, y)
    res = run.result
    print(json.dumps({"id": res.id, "energy_j": res.energy_j, "duration_s": res.duration_s,
                      "accuracy": model["accuracy"],
                      "method": sorted({c.method for c in res.components})}))
    """
)


def run_pipeline(project: Path, env: dict[str, str]) -> dict[str, Any]:
    """One pipeline run in a fresh process; its result line as a dict."""
    out = subprocess.run([sys.executable, "pipeline.py"], cwd=project, env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode != 0:
        msg = f"pipeline failed:\n{out.stderr}"
        raise SystemExit(msg)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def pipeline_section() -> dict[str, Any]:
    """Run the pipeline twice; energy ratio and the ledger's reuse totals."""
    from wattwise.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / ".wattwise").mkdir()
        (project / "pipeline.py").write_text(PIPELINE)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
        env["WATTWISE_REGION"] = os.environ.get("WATTWISE_REGION", "FR")
        first = run_pipeline(project, env)
        second = run_pipeline(project, env)
        store = open_store(str(project / ".wattwise" / "ledger.db"))
        try:
            saved = store.reuse_totals()
            events = store.reuse_events(consumer_run_id=second["id"])
        finally:
            store.close()
        cache_bytes = sum(p.stat().st_size for p in (project / ".wattwise" / "cache").rglob("*")
                          if p.is_file())  # fmt: skip
    return {
        "first": first,
        "second": second,
        "energy_ratio": second["energy_j"] / first["energy_j"],
        "time_ratio": second["duration_s"] / first["duration_s"],
        "hits_in_second_run": len(events),
        "saved_by_reuse": saved.to_dict(),
        "cache_bytes": cache_bytes,
    }


def hashing_section(size_bytes: int, repeats: int = 3) -> dict[str, Any]:
    """Throughput of content hashing as done for cache keys, array and file, in GB/s."""
    import numpy as np

    from wattwise.cache import digest_value

    array = np.random.default_rng(0).integers(0, 256, size_bytes, dtype=np.uint8)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        digest_value(array)
        times.append(time.perf_counter() - t0)
    array_s = statistics.median(times)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bin"
        array.tofile(path)
        del array
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            digest_value(path)
            times.append(time.perf_counter() - t0)
    file_s = statistics.median(times)
    return {
        "size_bytes": size_bytes,
        "array_s": array_s,
        "array_gb_per_s": size_bytes / array_s / 1e9,
        "file_s": file_s,
        "file_gb_per_s": size_bytes / file_s / 1e9,
        "cpus": os.cpu_count(),
    }


def main() -> int:
    """Run both sections and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="256 MB hashing inputs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = (256 if args.quick else 1024) * 2**20
    results = {"pipeline": pipeline_section(), "hashing": hashing_section(size)}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    p, h = results["pipeline"], results["hashing"]
    saved = p["saved_by_reuse"]
    print(f"Pipeline (digits, 3 cached stages), meter method: {', '.join(p['first']['method'])}")
    print(f"  first run   {p['first']['energy_j']:8.2f} J  {p['first']['duration_s']:6.2f} s  "
          f"accuracy {p['first']['accuracy']:.4f}")  # fmt: skip
    print(f"  second run  {p['second']['energy_j']:8.2f} J  {p['second']['duration_s']:6.2f} s  "
          f"accuracy {p['second']['accuracy']:.4f}  ({p['hits_in_second_run']} hits)")  # fmt: skip
    verdict = "ok" if p["energy_ratio"] < 0.05 else "MISSED"
    print(f"  second/first energy {p['energy_ratio']:.2%} (target < 5 %: {verdict}); "
          f"time {p['time_ratio']:.2%}")  # fmt: skip
    print(
        f"  ledger: saved by reuse {saved['hits']} hits, {saved['energy_j']:.2f} J, "
        f"{saved['co2e_g'] * 1000:.3f} mgCO2e; cache holds {p['cache_bytes'] / 1e6:.1f} MB"
    )
    gb = h["size_bytes"] / 2**30
    for kind in ("array", "file"):
        rate = h[f"{kind}_gb_per_s"]
        verdict = "ok" if rate >= 1 else "MISSED"
        print(f"Key hashing, {gb:g} GiB {kind}: {h[f'{kind}_s']:.3f} s = {rate:.2f} GB/s "
              f"(target >= 1 GB/s: {verdict}; {h['cpus']} CPUs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
