"""Runs of the same script are told apart in the learning charts' legend."""

from __future__ import annotations

import re
import time
from typing import Any

from report_support import insert_run

from wattwise.report import build_report, render_html
from wattwise.report._curves import RunCurves, series_labels
from wattwise.store import open_store


def _curves(name: str, run_id: str, params: dict[str, Any], role: str = "final") -> RunCurves:
    return RunCurves(run_id=run_id, name=name, role=role, status="finished",
                     metrics={"val_acc": [(0.0, 0.5, None), (1.0, 0.6, None)]},
                     points_total={"val_acc": 2}, energy_source=None, epochs=[],
                     epoch_source=None, params=params)  # fmt: skip


def test_labels_name_the_params_that_differ_then_the_short_id() -> None:
    curves = [
        _curves("learn.py", "a" * 32, {"lr": 0.01, "epochs": 5, "seed": 1}),
        _curves("learn.py", "b" * 32, {"lr": 0.1, "epochs": 5, "seed": 1}),
        _curves("learn.py", "c" * 32, {"lr": 0.1, "epochs": 5, "seed": 1}),
        _curves("other.py", "d" * 32, {}),
        _curves("learn.py", "e" * 32, {"lr": 0.1}, role="tuning"),
    ]
    assert series_labels(curves) == [
        "learn.py (final, lr=0.01)",
        "learn.py (final, lr=0.1, bbbbbbbb)",
        "learn.py (final, lr=0.1, cccccccc)",
        "other.py (final)",
        "learn.py (tuning)",
    ]
    same = [_curves("learn.py", "1234abcd" + "0" * 24, {}), _curves("learn.py", "9" * 32, {})]
    assert series_labels(same) == ["learn.py (final, 1234abcd)", "learn.py (final, 99999999)"]
    long = [_curves("x", "f" * 32, {"model": "resnet152-imagenet"}), _curves("x", "0" * 32, {})]
    assert series_labels(long)[0] == "x (final, model=resnet152-i…)"


def test_the_report_legend_tells_two_runs_of_one_script_apart() -> None:
    store = open_store()
    start = time.time() - 100
    ids = []
    for lr in (0.01, 0.1):
        rid = insert_run(store, "learn.py", started_at=start, duration_s=60, energy_j=900,
                         params={"lr": lr, "epochs": 3})  # fmt: skip
        points = [(s, "val_acc", 0.5 + lr * s, start + 1 + s) for s in range(3)]
        store.flush_run(rid, {}, metrics=points)
        ids.append(rid)
    page = render_html(build_report(store))
    legend = re.search(r'<section class="panel" id="learning">.*?<div class="legend">(.*?)</div>',
                       page, re.S)  # fmt: skip
    assert legend is not None
    labels = re.findall(r"</i>([^<]*)</span>", legend[1])
    assert len(labels) == 2 and len(set(labels)) == 2, labels
    assert {"learn.py (final, lr=0.01)", "learn.py (final, lr=0.1)"} == set(labels)
