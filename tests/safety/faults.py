"""Fault injection for the ledger, shared by tests/safety and benchmarks/fault_table.py.

Each fault is made for real where the machine allows it: a size-limited tmpfs for a full
disk, read-only bind mounts for a read-only file or folder (root ignores permission bits,
so ``chmod`` would prove nothing), another process holding ``BEGIN EXCLUSIVE`` for a held
lock, random bytes for a damaged file; the WAL deletion and the replacement of the ledger
happen from inside the job, mid-run. Where mounting is not allowed (not root, no
CAP_SYS_ADMIN) the full disk is injected into SQLite instead (``max_page_count``) and the
read-only faults are skipped with the reason.

A job is run twice per fault: under ``wattwise run -- python job.py`` (which calls
``wattwise.log()``) and as ``with wattwise.track():`` in a subprocess. The job prints known
bytes (invalid UTF-8 included), burns CPU so that there is energy to lose, logs metrics and
exits with a chosen code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EXIT_CODE = 7
FAST = {"WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.3", "WATTWISE_REGION": "FR"}

_PRELUDE = '''
import os, pathlib, random, sqlite3, sys, time
pathlib.Path(sys.argv[1]).write_text(repr(time.time()))
sys.stdout.buffer.write(b"job output: line one\\nbytes \\xff\\xfe kept as they are\\n")
sys.stdout.flush()
import wattwise
LEDGER = pathlib.Path(".wattwise/ledger.db")

def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

def flushed():
    """True once a flush of the run's samples has reached the ledger."""
    if not LEDGER.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{LEDGER}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] > 0
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or busy: not yet
        return False

def act():
    action = os.environ.get("FAULT_ACTION", "")
    if action == "delete-wal":
        wal = pathlib.Path(str(LEDGER) + "-wal")
        deadline = time.time() + 120  # a loaded machine opens the ledger late
        while not wal.exists() and time.time() < deadline:
            time.sleep(0.05)
        wal.unlink()
    elif action == "replace":
        deadline = time.time() + 120  # a loaded machine flushes late
        while not flushed():  # a flush first: the run is in the ledger, mid-run
            if time.time() > deadline:
                sys.exit("fault injection: no flush reached the ledger in 120 s")
            time.sleep(0.05)
        other = LEDGER.with_name("replacement.db")
        other.write_bytes(random.Random(1).randbytes(8192))
        os.replace(other, LEDGER)
'''

RUN_JOB = _PRELUDE + '''
burn(0.6)
act()
wattwise.log(step=1, acc=0.75)
burn(0.6)
wattwise.log(step=2, acc=0.8)
print("job output: done")
sys.exit(int(sys.argv[2]))
'''

TRACK_JOB = _PRELUDE + '''
with wattwise.track("safety-track") as run:
    burn(0.6)
    run.log(step=0, loss=1.5)
    act()
    burn(0.6)
    wattwise.log(step=1, acc=0.75)
print("job output: after the block")
print("energy kept in the result:", run.result.energy_j > 0)
sys.exit(int(sys.argv[2]))
'''

RUN_EXPECTED = b"job output: line one\nbytes \xff\xfe kept as they are\njob output: done\n"
TRACK_EXPECTED = (
    b"job output: line one\nbytes \xff\xfe kept as they are\njob output: after the block\n"
    b"energy kept in the result: True\n"
)

#: sitecustomize for the SQLite "disk full" injection where no tmpfs can be mounted.
_FULL_HOOK = '''
import sqlite3
_connect = sqlite3.connect
def connect(*args, **kwargs):
    conn = _connect(*args, **kwargs)
    try:
        conn.execute("PRAGMA max_page_count = 1")
    except sqlite3.Error:
        pass
    return conn
sqlite3.connect = connect
'''


def can_mount() -> bool:
    """True when this process may mount (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(f"/tmp/wattwise-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(probe)],
                              capture_output=True)  # fmt: skip
        if done.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def _sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True)


def make_ledger(project: Path) -> None:
    """A valid ledger with one old finished run, as a project would have."""
    from wattwise.store import RunRecord, RunStatus, SQLiteRunStore

    store = SQLiteRunStore(project / ".wattwise" / "ledger.db")
    now = time.time() - 60
    store.insert_run(RunRecord(id="0ld" + "0" * 29, name="earlier", kind="python",
                               status=RunStatus.FINISHED, started_at=now, heartbeat_at=now,
                               host="h", pid=1, ended_at=now + 1, energy_j=1.0))  # fmt: skip
    store.close()


@dataclasses.dataclass
class Fault:
    """One way the ledger can fail: what to set up, what the job does, how to undo it."""

    name: str
    label: str
    setup: Callable[[Path, dict[str, str]], Any] = lambda project, env: None
    remove: Callable[[Path, Any], None] = lambda project, state: None
    action: str = ""
    needs_mount: bool = False
    spooled: bool = True  # the fault makes the run spool (it is merged afterwards)
    recoverable: bool = True  # energy and metrics reach the ledger once the fault is gone


def _damaged(project: Path, env: dict[str, str]) -> None:
    (project / ".wattwise" / "ledger.db").write_bytes(os.urandom(4096))


def _move_aside(project: Path, state: Any) -> None:
    ledger = project / ".wattwise" / "ledger.db"
    if ledger.exists():
        ledger.rename(ledger.with_name("ledger.db.bad"))


def _ro_file(project: Path, env: dict[str, str]) -> Path:
    make_ledger(project)
    ledger = project / ".wattwise" / "ledger.db"
    _sh("mount", "--bind", str(ledger), str(ledger))
    _sh("mount", "-o", "remount,ro,bind", str(ledger))
    return ledger


def _ro_dir(project: Path, env: dict[str, str]) -> Path:
    make_ledger(project)
    folder = project / ".wattwise"
    _sh("mount", "--bind", str(folder), str(folder))
    _sh("mount", "-o", "remount,ro,bind", str(folder))
    return folder


def _unmount(project: Path, state: Any) -> None:
    if state is not None:
        _sh("umount", str(state))


def _full(project: Path, env: dict[str, str]) -> Path | None:
    folder = project / ".wattwise"
    if not can_mount():
        hook = project.parent / "inject-full"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(_FULL_HOOK)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
        return None
    _sh("mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(folder))
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()
    return folder


def _full_remove(project: Path, state: Any) -> None:
    if state is not None:
        _sh("umount", str(state))


def _locked(project: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    make_ledger(project)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys, time
        conn = sqlite3.connect({str(project / ".wattwise" / "ledger.db")!r}, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        held = time.monotonic()
        sys.stdin.readline()  # held until _unlock(): for the whole job, however slow
        time.sleep(max(0.0, 6 - (time.monotonic() - held)))  # and 6 s at least
        conn.execute("ROLLBACK")
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == b"locked"
    return holder


def _unlock(project: Path, state: Any) -> None:
    state.communicate(b"\n", timeout=60)


def _spool_blocked(project: Path, env: dict[str, str]) -> None:
    _damaged(project, env)
    (project / ".wattwise" / "spool").write_text("a file where the spool folder would go")
    blocker = project.parent / "not-a-folder"
    blocker.write_text("x")
    env["XDG_STATE_HOME"] = str(blocker / "state")


FAULTS = [
    Fault("missing", "no ledger yet (folder missing)", spooled=False,
          setup=lambda project, env: shutil.rmtree(project / ".wattwise")),
    Fault("damaged", "damaged file (random bytes)", setup=_damaged, remove=_move_aside),
    Fault("readonly-file", "read-only ledger file (ro bind mount)", setup=_ro_file,
          remove=_unmount, needs_mount=True),
    Fault("readonly-dir", "read-only ledger folder (ro bind mount)", setup=_ro_dir,
          remove=_unmount, needs_mount=True),
    Fault("full", "full disk (150 kB tmpfs, filled)", setup=_full, remove=_full_remove),
    Fault("locked", "lock held 6 s by another process (BEGIN EXCLUSIVE)", setup=_locked,
          remove=_unlock),
    Fault("wal-deleted", "WAL deleted mid-run", action="delete-wal", spooled=False),
    Fault("replaced", "ledger replaced mid-run (random bytes)", action="replace",
          remove=_move_aside),
    Fault("spool-unwritable", "damaged ledger and no writable spool folder",
          setup=_spool_blocked, recoverable=False),
]  # fmt: skip


@dataclasses.dataclass
class Outcome:
    """What a job under a fault did, and what the ledger holds after the fault is gone."""

    fault: str
    mode: str
    returncode: int
    stdout_intact: bool
    start_delay_s: float
    warnings: list[str]
    run: dict[str, Any] | None
    metrics: set[str]
    repair_output: str
    stderr: str

    @property
    def energy_kept(self) -> bool:
        """The run's energy, in the ledger after the fault (or in the printed result)."""
        if self.run is not None:
            return float(self.run["energy_j"]) > 0
        return bool(re.search(r"Energy [0-9.]+ [mk]?J", self.stderr)) or (
            self.mode == "track" and self.stdout_intact
        )


def _warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.startswith("wattwise: warning:") or "StoreWarning" in line]  # fmt: skip


def run_job(fault: Fault, mode: str, base: Path) -> Outcome:
    """Set up ``fault`` in a fresh project under ``base``, run the job, undo the fault,
    merge with ``wattwise doctor --repair`` and read the ledger back."""
    project = base / f"{fault.name}-{mode}" / "project"
    (project / ".wattwise").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.update(FAST)
    env["XDG_STATE_HOME"] = str(project.parent / "state")
    # A stray .wattwise/ above the scratch folder (/tmp/.wattwise) must not become the
    # project of the "missing" fault, whose own .wattwise/ is gone.
    env["WATTWISE_CEILING_DIRECTORIES"] = str(project.parent)
    env["FAULT_ACTION"] = fault.action
    env["PYTHONUNBUFFERED"] = "0"
    job = project / "job.py"
    job.write_text(RUN_JOB if mode == "run" else TRACK_JOB)
    started_file = project.parent / "started"
    state = fault.setup(project, env)
    try:
        argv = [sys.executable, str(job), str(started_file), str(EXIT_CODE)]
        if mode == "run":
            argv = [sys.executable, "-m", "wattwise", "run", "--", *argv]
        launched = time.time()
        done = subprocess.run(argv, cwd=project, env=env, capture_output=True, timeout=120)
        delay = float(started_file.read_text()) - launched if started_file.exists() else -1.0
    finally:
        fault.remove(project, state)
    repair = subprocess.run([sys.executable, "-m", "wattwise", "doctor", "--repair"],
                            cwd=project, env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    run, metrics = _read_back(project, mode)
    stderr = done.stderr.decode(errors="replace")
    expected = RUN_EXPECTED if mode == "run" else TRACK_EXPECTED
    return Outcome(
        fault=fault.name, mode=mode, returncode=done.returncode,
        stdout_intact=done.stdout == expected, start_delay_s=delay,
        warnings=_warning_lines(stderr), run=run, metrics=metrics,
        repair_output=repair.stdout + repair.stderr, stderr=stderr,
    )  # fmt: skip


def _read_back(project: Path, mode: str) -> tuple[dict[str, Any] | None, set[str]]:
    ledger = project / ".wattwise" / "ledger.db"
    if not ledger.exists():
        return None, set()
    try:
        conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        kind = "command" if mode == "run" else "python"
        row = conn.execute("SELECT id, status, exit_code, energy_j, record FROM runs "
                           "WHERE kind = ? ORDER BY started_at DESC LIMIT 1",
                           (kind,)).fetchone()  # fmt: skip
        if row is None:
            return None, set()
        notes = [json.loads(v) for (v,) in conn.execute(
            "SELECT value FROM annotations WHERE run_id = ? AND key = 'notes'", (row[0],))]
        keys = {k for (k,) in conn.execute("SELECT key FROM metrics WHERE run_id = ?",
                                           (row[0],))}  # fmt: skip
        conn.close()
    except sqlite3.Error:
        return None, set()
    run = {"id": row[0], "status": row[1], "exit_code": row[2], "energy_j": row[3],
           "notes": notes}  # fmt: skip
    return run, keys


@contextlib.contextmanager
def scratch(prefix: str = "wattwise-faults-") -> Iterator[Path]:
    """A scratch folder outside pytest's (mounts are undone before it is removed)."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
