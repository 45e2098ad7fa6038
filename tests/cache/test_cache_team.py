"""Two users, one shared cache bucket, one ledger: the second reuses the first's entry and
the energy it avoided is booked to the second user's run.

Two real processes with their own ``HOME`` and user name; when the tests run as root the
second one also runs under another uid (``nobody``), so nothing of the first user's is
reachable to it but the bucket and the ledger. The ledger is a shared SQLite file, or a
database on the throwaway PostgreSQL cluster of ``tests/pg_support.py`` (skipped, with the
reason, where there is none).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from s3_support import Bucket, walk_files

from wattwise.cache import ArtifactCache
from wattwise.store import open_store

JOB = textwrap.dedent(
    """
    import getpass, json, os, sys, time
    import numpy as np
    import wattwise

    computed = []

    @wattwise.cached(version=1)
    def features(n):
        computed.append(n)
        end = time.perf_counter() + 0.6
        while time.perf_counter() < end:  # work worth caching
            pass
        return np.arange(n, dtype=np.float64) ** 2

    with wattwise.track(sys.argv[1]) as run:
        value = features(100_000)
    print(json.dumps({
        "run_id": run.id, "computed": bool(computed), "sum": float(value.sum()),
        "uid": os.getuid(), "user": getpass.getuser(),
    }))
    """
)


@pytest.fixture
def team_folder() -> Iterator[Path]:
    """A folder outside pytest's private temporary tree (mode 0700): another uid must reach
    it. Removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="wattwise-team-"))
    try:
        base.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _other_account() -> tuple[int, int]:
    """``nobody``'s uid and gid, when this process may switch to it and that account can
    run this interpreter and import wattwise; skips loudly otherwise."""
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root; the 'names' variant still runs")
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' account to run the second user as")
    ids = entry.pw_uid, entry.pw_gid
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import wattwise"], user=ids[0], group=ids[1],
            extra_groups=[], cwd="/", capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        usable = probe.returncode == 0
    except PermissionError:
        usable = False
    if not usable:
        pytest.skip(
            f"'nobody' cannot run {sys.executable} with wattwise (a home folder of mode "
            "0700 on its path?); the 'names' variant still runs"
        )
    return ids


def _env(
    home: Path, user: str, cache_url: str, ledger: str, aws: dict[str, str]
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "AWS_", "WATTWISE_")) and k not in ("HOME", "USER")
    }
    env.update(aws)
    env.update(
        HOME=str(home), USER=user, LOGNAME=user, WATTWISE_REGION="FR",
        WATTWISE_INTERVAL_S="0.1", WATTWISE_CACHE=cache_url, WATTWISE_STORE=ledger,
    )  # fmt: skip
    return env


def _run_job(
    base: Path, user: str, env: dict[str, str], ids: tuple[int, int] | None
) -> dict[str, Any]:
    home = Path(env["HOME"])
    home.mkdir(mode=0o700)
    if ids is not None:
        os.chown(home, *ids)
    kwargs: dict[str, Any] = {}
    if ids is not None:
        kwargs = {"user": ids[0], "group": ids[1], "extra_groups": []}
    done = subprocess.run(
        [sys.executable, str(base / "job.py"), f"{user}-features"], env=env, cwd=home,
        capture_output=True, text=True, timeout=180, check=False, **kwargs,
    )  # fmt: skip
    assert done.returncode == 0, f"{user}: {done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _ledger_text(ledger: str) -> bytes:
    """Every row of every table of a PostgreSQL ledger, as text."""
    import psycopg

    out = []
    with psycopg.connect(ledger) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        for (table,) in tables:
            out += [r[0] for r in conn.execute(f'SELECT t::text FROM "{table}" AS t')]
    return "\n".join(out).encode()


@pytest.mark.slow
@pytest.mark.parametrize("second", ["names", "uid"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_second_user_reuses_the_first_users_entry_and_books_the_saving(
    s3: Bucket, team_folder: Path, second: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """``names``: another HOME and user name; ``uid``: also another account (as root)."""
    other = _other_account() if second == "uid" else None
    base = team_folder
    (base / "job.py").write_text(JOB)
    team = base / "team"
    team.mkdir()
    team.chmod(0o777)  # the team's shared folder for the SQLite ledger
    if backend == "postgresql":
        ledger = str(request.getfixturevalue("pg_url"))  # skips, saying why, without one
    else:
        ledger = str(team / "ledger.db")
    aws = s3.server.env(base)

    alice = _run_job(base, "alice", _env(base / "alice", "alice", s3.url, ledger, aws), None)
    # The admin step a shared SQLite ledger needs (SQLite creates files 0644 whatever the
    # umask): let the team write it. PostgreSQL needs nothing of the kind.
    for path in team.iterdir():
        path.chmod(0o666)
    bob = _run_job(base, "bob", _env(base / "bob", "bob", s3.url, ledger, aws), other)

    assert (alice["user"], bob["user"]) == ("alice", "bob")
    if other is not None:  # really another account, not only another name
        assert bob["uid"] == other[0] != alice["uid"]
    assert alice["computed"] and not bob["computed"]
    assert bob["sum"] == alice["sum"]

    # One entry in the bucket, written by alice, intact.
    cache = ArtifactCache(s3.url)
    [entry] = cache.entries()
    assert entry.writer == f"alice@{socket.gethostname()}"
    assert cache.verify() == []
    assert entry.cost["producer_run_id"] == alice["run_id"]
    assert entry.energy_j > 0

    # One ledger: both runs, and the reuse booked to bob's run.
    store = open_store(ledger)
    runs = {r.id: r for r in store.list_runs()}
    assert {alice["run_id"], bob["run_id"]} <= set(runs)
    [event] = store.reuse_events()
    assert event.consumer_run_id == bob["run_id"]  # booked to bob's run, so to bob
    assert event.producer_run_id == alice["run_id"]
    assert event.energy_avoided_j == pytest.approx(entry.energy_j)
    assert event.cache_url == s3.url
    # The producing cost stays on alice's run: her run used at least what the entry cost.
    assert runs[alice["run_id"]].energy_j >= entry.energy_j
    store.close()

    # The dummy credentials reached the server and were written nowhere.
    secret = s3.server.secret.encode()
    assert not any(secret in data for data in s3.objects().values())
    assert not [p for p in walk_files(base) if secret in p.read_bytes()]
    if backend == "postgresql":
        assert secret not in _ledger_text(ledger)

    # Who each run belongs to, as the ledger says: the saving is bob's.
    assert (runs[alice["run_id"]].user, runs[bob["run_id"]].user) == ("alice", "bob")
    assert stat.S_IMODE((base / "bob").stat().st_mode) == 0o700
