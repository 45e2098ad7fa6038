"""Plain ``wattwise doctor`` counts the cache hits kept for a later booking, and books none.

A cache hit whose booking the ledger did not take in time is kept in a ``reuse-*.hits`` file
(``wattwise.store.HitSpool``); ``wattwise doctor --repair`` books those whose process is
gone. Plain doctor says how many wait, how many of them ``--repair`` would book, and how,
in its text and ``--json`` output, and leaves every file and the ledger as they were.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import call

from wattwise.store import HitSpool, ReuseEvent, open_store

WORK = """
import wattwise

@wattwise.cached
def double(x):
    return 2 * x

print(double(21), flush=True)
"""


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's state folder, where kept hits go first (children inherit it)."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder / "wattwise" / "spool"


def _event(i: int) -> ReuseEvent:
    return ReuseEvent(
        at=1_760_000_000.0 + i, cache_key=f"{i:064x}", function="m:f", producer_run_id=None,
        consumer_run_id=None, energy_avoided_j=1.5 + i, co2e_avoided_g=0.1,
        duration_avoided_s=2.0, method="measured", basis="FR", cache_url="/c",
    )  # fmt: skip


def _hit_kept_by_a_process_that_ends(project: Path) -> None:
    """A real process whose cache hit finds the ledger locked by another: it returns the
    result, keeps the hit in the spool and exits (as test_cache_booking.py's)."""
    script = project / "work.py"
    script.write_text(WORK)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script)], cwd=project, capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip

    filled = run()  # the miss: the entry and its run
    assert (filled.returncode, filled.stdout) == (0, "42\n"), filled.stderr
    holder = sqlite3.connect(project / ".wattwise" / "ledger.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        hit = run()
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert (hit.returncode, hit.stdout) == (0, "42\n"), hit.stderr
    assert "1 kept in the spool" in hit.stderr


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _reuse_rows() -> int:
    with open_store() as store:
        return len(store.reuse_events())


def test_a_project_without_kept_hits_reports_none(isolated_project: Path, state: Path) -> None:
    done = call("doctor", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["ledger"]["kept_hits"] == {
        "files": 0, "hits": 0, "files_owner_gone": 0, "hits_owner_gone": 0,
    }  # fmt: skip
    text = call("doctor")
    assert text.code == 0 and "kept cache hit" not in text.out


def test_plain_doctor_counts_kept_hits_and_who_books_them_and_changes_nothing(
    isolated_project: Path, state: Path
) -> None:
    _hit_kept_by_a_process_that_ends(isolated_project)
    with open_store() as store:
        ledger = store.path
    live = HitSpool(ledger)  # this process lives: it books its own kept hits (the keeper's way)
    try:
        for i in (1, 2):
            live.keep(_event(i), reason="the test's ledger did not answer")
        files_before, rows_before = _snapshot(state), _reuse_rows()
        assert len(files_before) == 2

        done = call("doctor", "--json")
        assert done.code == 0, done.err
        assert json.loads(done.out)["ledger"]["kept_hits"] == {
            "files": 2, "hits": 3, "files_owner_gone": 1, "hits_owner_gone": 1,
        }  # fmt: skip
        text = call("doctor")
        assert text.code == 0, text.err
        assert ("  1 kept cache hit(s) in 1 file(s) wait to be booked, their process gone "
                "(wattwise doctor --repair)") in text.out  # fmt: skip
        assert "  2 kept cache hit(s) in 1 file(s) wait for their process, still running, " \
            "to book them" in text.out

        # Read-only: no file booked, marked, removed or touched; no row in the ledger.
        assert _snapshot(state) == files_before
        assert _reuse_rows() == rows_before

        # The way out it names books the hit whose process is gone, once.
        repaired = call("doctor", "--repair", "--json")
        assert repaired.code == 0, repaired.err
        assert {k: json.loads(repaired.out)[k] for k in ("hits_booked", "hits_left")} == {
            "hits_booked": 1, "hits_left": 2,
        }  # fmt: skip
        assert _reuse_rows() == rows_before + 1
        after = json.loads(call("doctor", "--json").out)["ledger"]["kept_hits"]
        assert after == {"files": 1, "hits": 2, "files_owner_gone": 0, "hits_owner_gone": 0}
        assert "their process gone" not in call("doctor").out
    finally:
        live.close()
