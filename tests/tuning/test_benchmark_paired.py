"""``python -m benchmarks.tune.paired`` on a recorded run that ships: its counts agree with
the trials themselves (issue 12's paired comparison of methods)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from benchmarks.tune import paired
from benchmarks.tune.workloads import WORKLOADS

RUN = Path(__file__).resolve().parents[2] / (
    "benchmarks/tune/results/full-2026-11-30-replication-seeds5-9.json.gz"
)


def reached_by_hand(by: dict, workload: str, seed: int, method: str) -> bool:
    """A complete trial within the target of the best value any method found in the pair."""
    w = WORKLOADS[workload]
    found = [r.best_value for (n, s, _), r in by.items()
             if (n, s) == (workload, seed) and r.best_value is not None]  # fmt: skip
    best = found[0]
    for v in found[1:]:
        best = v if w.better(v, best) else best
    return any(t.state == "complete" and w.reaches(t.value, w.threshold(best))
               for t in by[(workload, seed, method)].trials)  # fmt: skip


def test_the_paired_table_counts_what_the_trials_say(capsys: pytest.CaptureFixture[str]) -> None:
    by = paired.load([str(RUN)], set())
    assert paired.main(["--from", str(RUN), "--against", "tpe-hyperband"]) == 0
    out = capsys.readouterr().out
    pairs = sorted({(w, s) for w, s, _ in by})
    for method in sorted({meth for _, _, meth in by}):
        hits = {p for p in pairs if reached_by_hand(by, *p, method)}
        row = re.search(rf"^{re.escape(method)}\s+(\d+)/(\d+)\s+\S+\s+(\S+)", out, re.M)
        assert row is not None, out
        assert (int(row[1]), int(row[2])) == (len(hits), len(pairs))
        if method == "tpe-hyperband":
            continue
        ref = {p for p in pairs if reached_by_hand(by, *p, "tpe-hyperband")}
        wins, losses = map(int, row[3].split("-"))
        assert wins + losses == len(hits | ref)  # pairs where neither reached: left out
        assert wins >= len(hits - ref) and losses >= len(ref - hits)
        assert all(not math.isinf(by[(*p, method)].energy_to_target_j) for p in hits)


def test_an_unknown_reference_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert paired.main(["--from", str(RUN), "--against", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use --against one of" in err[0]
