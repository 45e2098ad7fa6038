"""In-process fail-safety: the store, the meters and the settings never raise into the job.

Faults of the store itself are proven for real, process by process, in tests/safety; here
the in-process contract: ``track()``'s enter and exit, ``log()``, the decorator and
``start()``/``finish()`` never raise because of wattwise's own faults (unless strict),
each kind of fault is said once per run, the user's own mistakes still raise, a run left
open at exit keeps its energy, and ``.wattwise/`` ignores itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

import wattwise
from wattwise.exceptions import (
    ConfigError,
    InvalidParameterError,
    RunStateError,
    StoreError,
    StoreWarning,
)
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter

LEDGER = Path(".wattwise") / "ledger.db"


def fake() -> list[FakeMeter]:
    return [FakeMeter({"cpu:0": 20.0})]


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _store_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]


def test_a_damaged_ledger_never_reaches_the_job_and_is_said_once() -> None:
    LEDGER.write_bytes(os.urandom(4096))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with wattwise.track("t", interval_s=0.05, flush_s=0.05, meters=fake()) as run:
            busy(0.8)  # about 16 flushes, every one refused
            wattwise.log(step=1, acc=0.5)
    said = _store_warnings(caught)
    assert len(said) == 1, said
    assert "damaged" in said[0] and "spool" in said[0]
    assert run.result.energy_j > 0
    assert run.recorded_in == "spool" and run.spooled_to is not None
    assert run.spooled_to.parent == Path.cwd() / ".wattwise" / "spool"


def test_strict_mode_raises_store_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    LEDGER.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="damaged"):
        wattwise.track("t", strict=True, meters=fake()).start()
    monkeypatch.setenv("WATTWISE_STRICT", "1")
    with pytest.raises(StoreError, match="damaged"):
        wattwise.track("t", meters=fake()).start()


def test_a_broken_config_file_falls_back_to_the_defaults_with_one_warning() -> None:
    (Path(".wattwise") / "config.toml").write_text("interval_s = [not toml")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with wattwise.track("t", meters=fake()) as run:
            pass
    said = _store_warnings(caught)
    assert len(said) == 1 and "config.toml" in said[0] and "This run uses" in said[0]
    assert run.settings.interval_s == 1.0
    assert open_store().get_run(run.id).status is RunStatus.FINISHED
    with pytest.raises(ConfigError):
        wattwise.track("t", strict=True, meters=fake()).start()


class FlakyMeter(FakeMeter):
    """Reads fine twice, then fails with an OSError (not a MeterError) on every read."""

    def __init__(self) -> None:
        super().__init__({"cpu:0": 20.0})
        self.reads = 0

    def read(self) -> dict[str, float]:
        self.reads += 1
        if self.reads > 2:
            msg = "counter vanished"
            raise OSError(msg)
        return super().read()


def test_a_sampler_failing_every_interval_warns_once() -> None:
    meter = FlakyMeter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with wattwise.track("t", interval_s=0.05, flush_s=0.05, meters=[meter]) as run:
            deadline = time.monotonic() + 120  # shared machines can starve the sampler
            while meter.reads <= 8 and time.monotonic() < deadline:
                busy(0.05)
    assert meter.reads > 8  # it kept failing, interval after interval
    said = _store_warnings(caught)
    assert len(said) == 1 and "counter vanished" in said[0], said
    assert run.result.status == "finished"


def test_the_users_own_mistakes_still_raise() -> None:
    with wattwise.track("t", meters=fake()) as run, pytest.raises(InvalidParameterError):
        run.log(acc="high")  # type: ignore[arg-type]
    with pytest.raises(RunStateError, match="Start it first"):
        wattwise.track("never started", meters=fake()).finish()


def test_the_decorator_never_raises_because_of_the_store() -> None:
    LEDGER.mkdir()  # a folder where the ledger file should be

    @wattwise.track("decorated", meters=fake(), emit_warnings=False)
    def work(x: int) -> int:
        return x * 2

    assert work(21) == 42


OPEN_AT_EXIT = """
import sys, time
sys.path.insert(0, {src!r})
import wattwise
from wattwise.testing import FakeMeter
run = wattwise.track("left-open", interval_s=0.05, flush_s=0.1,
                     meters=[FakeMeter({{"cpu:0": 20.0}})]).start()
print(run.id, flush=True)
end = time.monotonic() + 0.6
while time.monotonic() < end:
    pass
raise RuntimeError("training diverged")
"""


def test_a_run_left_open_at_exit_ends_failed_keeping_its_energy(tmp_path: Path) -> None:
    script = tmp_path / "open.py"
    script.write_text(OPEN_AT_EXIT.format(src=str(Path(wattwise.__file__).parents[1])))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 1 and "training diverged" in done.stderr  # the job's own
    run = open_store().get_run(done.stdout.strip())
    assert run.status is RunStatus.FAILED
    assert run.energy_j > 0 and run.duration_s >= 0.5
    assert "RuntimeError: training diverged" in run.record["error"]
    assert "still open" in run.record["error"]


def test_the_state_folder_ignores_itself() -> None:
    shutil.rmtree(".wattwise")
    with wattwise.track("t", meters=fake()):
        pass
    assert (Path(".wattwise") / ".gitignore").read_text().splitlines()[-1] == "*"
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q"], check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert ".wattwise" not in status


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda tmp: "wattwise-no-such-program", 127),
        (lambda tmp: str(tmp), 126),  # a folder
        (lambda tmp: _not_executable(tmp), 126),
    ],
    ids=["not-found", "directory", "not-executable"],
)
def test_a_command_that_never_ran_gets_the_shells_code(
    make: object, code: int, tmp_path: Path
) -> None:
    program = make(tmp_path)  # type: ignore[operator]
    done = subprocess.run([sys.executable, "-m", "wattwise", "run", "--", program],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == code
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wattwise: error: Cannot start"), lines
    (run,) = open_store().list_runs()
    assert run.status is RunStatus.FAILED and run.exit_code == code


def _not_executable(tmp: Path) -> str:
    path = tmp / "script.sh"
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(0o644)
    return str(path)


CHILD_LOGS = textwrap.dedent("""
    import wattwise
    wattwise.log(step=1, acc=0.9)
""")


def test_metrics_from_a_child_reach_the_run_through_the_ledger(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD_LOGS)
    done = subprocess.run([sys.executable, "-m", "wattwise", "run", "-q", "--", sys.executable,
                           str(script)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = open_store().list_runs()
    assert [m[1:3] for m in open_store().metrics(run.id)] == [("acc", 0.9)]
    assert not (Path(".wattwise") / "spool").exists()  # nothing needed spooling


def test_a_broken_meter_selection_is_said_once_and_the_block_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wattwise.meters

    def broken(*_args: object, **_kwargs: object) -> object:
        msg = "probe crashed"
        raise RuntimeError(msg)

    monkeypatch.setattr(wattwise.meters, "select_meters", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with wattwise.track("t") as run:
            ran = True
    assert ran
    said = _store_warnings(caught)
    assert len(said) == 1 and "probe crashed" in said[0] and "no energy" in said[0]
    assert run.result.energy_j == 0
    with pytest.raises(RuntimeError, match="probe crashed"):
        wattwise.track("t", strict=True).start()


def test_the_next_run_that_can_write_merges_what_was_spooled() -> None:
    LEDGER.write_bytes(os.urandom(4096))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        with wattwise.track("spooled", interval_s=0.05, meters=fake()) as first:
            busy(0.2)
            wattwise.log(step=1, acc=0.5)
    assert first.spooled_to is not None and first.spooled_to.exists()
    LEDGER.rename(LEDGER.with_name("ledger.db.bad"))  # the fault is removed
    with wattwise.track("next", interval_s=0.05, meters=fake()):
        deadline = time.monotonic() + 120  # the sampler tidies up after its first interval
        while first.spooled_to.exists() and time.monotonic() < deadline:
            busy(0.05)
    merged = open_store().get_run(first.id)
    assert merged.status is RunStatus.FINISHED and merged.energy_j > 0
    assert [m[1:3] for m in open_store().metrics(first.id)] == [("acc", 0.5)]
    assert any("spooled to" in note for note in merged.record["notes"])
    assert not first.spooled_to.exists()


def test_a_run_whose_ledger_recovers_merges_its_own_spool() -> None:
    import sqlite3

    wattwise.track("first", meters=fake()).start().finish()  # the ledger exists
    holder = sqlite3.connect(LEDGER, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # held longer than the run's busy timeouts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with wattwise.track("t", interval_s=0.05, flush_s=0.05, meters=fake()) as run:
            busy(0.3)
            run.log(step=1, acc=0.5)
            busy(3.0)  # a flush or two wait out their timeout, then spool
            assert run.spooled_to is not None
            holder.execute("ROLLBACK")  # the lock is released mid-run
            busy(0.5)
            run.log(step=2, acc=0.6)
    holder.close()
    said = _store_warnings(caught)
    assert len(said) == 1 and "locked" in said[0]
    assert run.recorded_in == "ledger" and run.spooled_to is None
    stored = open_store().get_run(run.id)
    assert stored.status is RunStatus.FINISHED and stored.energy_j > 0
    assert [m[2] for m in open_store().metrics(run.id)] == [0.5, 0.6]
    assert not any((Path(".wattwise") / "spool").glob("*.jsonl"))
