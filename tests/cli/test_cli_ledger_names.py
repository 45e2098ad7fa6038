"""``doctor --repair`` and the ``wattwise run`` summary name the ledger people can find:
a SQLite ledger's file, a server ledger's URL (never its password), not the spool's key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pg_support import PostgresCluster


def _wattwise(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "wattwise", *args], capture_output=True,
                          text=True, timeout=180, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def test_a_sqlite_ledger_is_named_by_its_file(isolated_project: Path) -> None:
    ledger = isolated_project / ".wattwise" / "ledger.db"
    done = _wattwise("run", "--", sys.executable, "-c", "pass")
    assert f"(ledger: {ledger})" in done.stderr
    assert _wattwise("doctor", "--repair").stdout.splitlines()[0] == f"Ledger: {ledger}"
    assert json.loads(_wattwise("doctor", "--repair", "--json").stdout)["ledger"] == str(ledger)
    assert json.loads(_wattwise("doctor", "--json").stdout)["ledger"]["path"] == str(ledger)


def test_a_server_ledger_is_named_by_its_url_without_the_password(
    pg_cluster: PostgresCluster, pg_url: str, isolated_project: Path, tmp_path: Path
) -> None:
    psycopg = pytest.importorskip("psycopg")
    from wattwise.store._postgres import PostgresRunStore

    password = pg_cluster.password
    public = PostgresRunStore(pg_url, defer=True).url
    assert password in pg_url and password not in public and public.startswith("postgresql://")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["HOME"] = str(tmp_path)  # no ~/.pgpass: the URL's password is the only one

    done = _wattwise("--store", pg_url, "doctor", "--repair", env=env)
    assert done.stdout.splitlines()[0] == f"Ledger: {public}"
    repaired = json.loads(_wattwise("--store", pg_url, "doctor", "--repair", "--json",
                                    env=env).stdout)  # fmt: skip
    assert repaired["ledger"] == public
    ran = _wattwise("--store", pg_url, "run", "--", sys.executable, "-c", "pass", env=env)
    assert f"(ledger: {public})" in ran.stderr
    diagnosed = json.loads(_wattwise("--store", pg_url, "doctor", "--json", env=env).stdout)
    assert diagnosed["ledger"]["path"] == public and diagnosed["ledger"]["runs"] == 1
    for out in (done, ran):
        assert password not in out.stdout + out.stderr
        assert ".ledger" not in out.stdout + out.stderr  # the spool's key file name
    with psycopg.connect(pg_url) as conn:  # the run really is on the server
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


@pytest.mark.parametrize("where", ["/nodb?host={tmp}", "/?host={tmp}"],
                         ids=["unreachable", "no-database"])  # fmt: skip
def test_a_store_that_cannot_open_is_named_without_its_password(
    where: str, tmp_path: Path
) -> None:
    pytest.importorskip("psycopg")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    url = "postgresql://alice:hunter2-secret@" + where.format(tmp=tmp_path)
    done = _wattwise("--store", url, "doctor", "--json", env=env)
    assert "hunter2-secret" not in done.stdout + done.stderr
    ledger = json.loads(done.stdout)["ledger"]
    assert ledger["ok"] is False and ledger["path"].startswith("postgresql://")
