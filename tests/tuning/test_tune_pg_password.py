"""Worker processes of a study on a PostgreSQL ledger opened with a password in its URL.

The workers open the ledger by ``store.url`` (no password); the driver hands them the
password as ``PGPASSWORD`` through the spawn pipe (never argv, a file or a record), so
their trial runs and metrics land on the server instead of the spool.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import wattwise
from pg_support import PostgresCluster
from wattwise.testing import FakeMeter

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg 3 is not installed: PostgreSQL ledger tests SKIPPED "
    "(pip install -e '.[postgres]')",
)  # fmt: skip

from wattwise.store._postgres import PostgresRunStore  # noqa: E402


def reports_two_steps(trial: Any) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(2):
        time.sleep(0.05)
        trial.report(x, step)
    return x


def test_worker_processes_write_their_trials_to_the_server(
    pg_cluster: PostgresCluster, pg_url: str, isolated_project: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    password = pg_cluster.password
    for var in [v for v in os.environ if v.startswith("PG")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass: the URL's password is the only one
    result = wattwise.tune(
        reports_two_steps, n_trials=2, executor="processes", n_workers=1, seed=0, store=pg_url,
        run_options={"meters": [FakeMeter({"cpu:0": 20.0})], "interval_s": 0.05,
                     "flush_s": 0.1, "emit_warnings": False},
    )  # fmt: skip
    assert [t.state for t in result.trials] == ["complete", "complete"]
    assert "PGPASSWORD" not in os.environ  # the driver's own environment is untouched

    with PostgresRunStore(pg_url, readonly=True) as store:
        for trial in result.trials:
            run = store.get_run(trial.run_id)
            assert run.pid != os.getpid() and run.status.value == "finished"
            # the worker's own connection wrote the trial's reports
            values = [m for m in store.metrics(run.id) if m[1] == "value"]
            assert [m[0] for m in values] == [0, 1]
        dump = json.dumps([r.to_dict() for r in store.list_runs()], default=str)
    assert password not in dump
    with psycopg.connect(pg_url) as conn:
        for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall():
            rows = conn.execute(f'SELECT t::text FROM "{table}" AS t').fetchall()
            assert not [r for r in rows if password in r[0]], table
    wattwise_dir = isolated_project / ".wattwise"
    assert not list(wattwise_dir.glob("spool/*"))
    for path in [p for p in wattwise_dir.rglob("*") if p.is_file()]:
        assert password.encode() not in path.read_bytes(), path
