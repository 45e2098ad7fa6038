"""``wattwise footprint`` names the ledger it summed: the project folder for the project's
own SQLite ledger, the file for a SQLite ledger elsewhere, the URL (never its password) for
a server or memory ledger."""

from __future__ import annotations

import uuid
from pathlib import Path

from cli_support import call

from pg_support import PostgresCluster
from wattwise.store import RunRecord, RunStatus, get_store, open_store


def _one_run(url: str | None) -> None:
    store = open_store(url) if url is None or "://" not in url else get_store(url)
    try:
        store.insert_run(RunRecord(id=uuid.uuid4().hex, name="r", kind="python",
                                   status=RunStatus.RUNNING, started_at=1.0e9,
                                   heartbeat_at=1.0e9, host="h", pid=1))  # fmt: skip
        store.flush_run(store.list_runs()[0].id, {"status": RunStatus.FINISHED,
                                                  "energy_j": 10.0})  # fmt: skip
    finally:
        store.close()


def _heading(*argv: str) -> str:
    done = call(*argv, "footprint")
    assert done.code == 0, done.err
    return done.out.splitlines()[0]


def test_the_projects_own_ledger_is_named_by_the_project_folder(isolated_project: Path) -> None:
    _one_run(None)
    assert _heading() == f"Project footprint ({isolated_project}):"


def test_a_sqlite_ledger_elsewhere_is_named_by_its_file(
    isolated_project: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "shared" / "team.db"
    ledger.parent.mkdir()
    _one_run(str(ledger))
    assert _heading("--store", str(ledger)) == f"Project footprint ({ledger}):"


def test_a_memory_ledger_is_named_by_its_url(isolated_project: Path) -> None:
    url = f"memory://footprint-{uuid.uuid4().hex[:8]}"
    keep = get_store(url)  # a memory ledger lives as long as one store holds it
    _one_run(url)
    assert _heading("--store", url) == f"Project footprint ({url}):"
    keep.close()


def test_a_server_ledger_is_named_by_its_url_without_the_password(
    pg_cluster: PostgresCluster, pg_url: str, isolated_project: Path
) -> None:
    _one_run(pg_url)
    server = get_store(pg_url, defer=True)
    public = server.url
    server.close()
    assert pg_cluster.password in pg_url and pg_cluster.password not in public
    heading = _heading("--store", pg_url)
    assert heading == f"Project footprint ({public}):"
    assert pg_cluster.password not in heading and str(isolated_project) not in heading

