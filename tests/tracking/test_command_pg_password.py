"""A ``wattwise run`` child on a PostgreSQL ledger opened with a password in its URL.

``store.url`` carries no password, so the child gets the one the parent's store was opened
with as ``PGPASSWORD`` in its environment (never argv, a file or the record), unless the
environment already sets one. Real throwaway cluster (``tests/pg_support.py``), password
(SCRAM) authentication on its Unix socket, no ``~/.pgpass``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from pg_support import PostgresCluster
from wattwise.store import MemoryRunStore, SQLiteRunStore

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg 3 is not installed: PostgreSQL ledger tests SKIPPED "
    "(pip install -e '.[postgres]')",
)  # fmt: skip

from wattwise.store._postgres import PostgresRunStore  # noqa: E402

_CHILD = """
import json, os, sys, wattwise
wattwise.log(step=0, acc=0.5)
wattwise.log(step=1, acc=0.75)
print(json.dumps({"has_pgpassword": "PGPASSWORD" in os.environ,
                  "argv": sys.argv, "store": os.environ["WATTWISE_STORE"]}))
"""


def _dump(url: str) -> str:
    """Every row of every table of the database, as text."""
    out = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        assert tables, "the ledger has no tables"
        for (table,) in tables:
            out += [r[0] for r in conn.execute(f'SELECT t::text FROM "{table}" AS t')]
    return "\n".join(out)


def _clean_env(home: Path) -> dict[str, str]:
    """This environment without any libpq setting, with an empty HOME (no ~/.pgpass)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=str(home), WATTWISE_INTERVAL_S="0.1", WATTWISE_FLUSH_S="0.2")
    return env


def test_the_child_logs_to_the_server_with_the_parents_password(
    pg_cluster: PostgresCluster, pg_url: str, isolated_project: Path, tmp_path: Path
) -> None:
    password = pg_cluster.password
    assert urllib.parse.urlsplit(pg_url).password == password  # the URL holds it
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(home)
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", "--store", pg_url, "run", "--name", "pw-child",
         "--", sys.executable, "-c", _CHILD],
        env=env, text=True, capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with PostgresRunStore(pg_url, readonly=True) as store:
        [run] = store.list_runs()
        assert (run.name, run.status) == ("pw-child", "finished")
        # the child's own connection wrote these (the parent never sees wattwise.log calls)
        assert [m[1:3] for m in store.metrics(run.id)] == [("acc", 0.5), ("acc", 0.75)]
    assert "spool" not in done.stderr  # no warning: nothing went to the spool
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["has_pgpassword"] is True
    assert password not in json.dumps(seen)  # not in the child's argv nor its store URL
    assert password not in done.stdout + done.stderr
    assert password not in _dump(pg_url)
    assert password not in json.dumps(run.to_dict(), default=str)
    wattwise_dir = isolated_project / ".wattwise"
    assert not list(wattwise_dir.glob("spool/*"))
    for path in [p for p in wattwise_dir.rglob("*") if p.is_file()]:
        assert password.encode() not in path.read_bytes(), path


def test_a_password_already_in_the_environment_is_left_alone(
    pg_cluster: PostgresCluster, pg_url: str, tmp_path: Path
) -> None:
    """The job's own PGPASSWORD wins: wattwise never changes what the command was given."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**_clean_env(home), "PGPASSWORD": pg_cluster.password}
    code = "import os; print(os.environ['PGPASSWORD'] == os.environ['EXPECTED'])"
    env["EXPECTED"] = pg_cluster.password
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", "--store", pg_url, "run", "-q", "--",
         sys.executable, "-c", code],
        env=env, text=True, capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://alice:s3cret@db.lab/ledger", "s3cret"),
        ("postgresql://alice:p%40ss%3Aw%2Frd@db.lab:6432/ledger", "p@ss:w/rd"),
        ("postgresql://alice@/ledger?host=/run/pg&password=q%26p", "q&p"),
        ("postgresql://alice:in-url@db.lab/ledger?password=in-query", "in-query"),
        ("postgresql://alice@db.lab/ledger", None),
        ("postgresql:///ledger", None),
    ],
)
def test_child_environment_of_a_server_ledger(
    url: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    store = PostgresRunStore(url, defer=True)  # never connects
    env = store.child_environment()
    assert env == ({} if expected is None else {"PGPASSWORD": expected})
    assert expected is None or expected not in store.url
    monkeypatch.setenv("PGPASSWORD", "the-jobs-own")
    assert store.child_environment() == {}
    monkeypatch.setenv("PGPASSWORD", "")  # set but empty: libpq would send an empty one
    assert store.child_environment() == env


def test_file_and_memory_ledgers_need_nothing(tmp_path: Path) -> None:
    assert SQLiteRunStore(tmp_path / "ledger.db").child_environment() == {}
    assert MemoryRunStore().child_environment() == {}
