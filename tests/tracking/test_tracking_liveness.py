"""A live run is never shown crashed: real processes, real SIGKILL (of what the test started)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from wattwise.store import RunStatus, open_store

FAST = {"WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.3"}
SPIN = "import os\nprint(os.getpid(), flush=True)\nwhile True: pass"


def _wait_gone(pid: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    msg = f"pid {pid} still there after {timeout_s} s"
    raise AssertionError(msg)


def test_a_killed_tracker_leaves_a_running_run_until_its_command_is_gone() -> None:
    command_pid = None
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "wattwise", "run", "-q", "--", sys.executable, "-c", SPIN],
            stdout=subprocess.PIPE, text=True, env={**os.environ, **FAST},
        ) as tracker:  # fmt: skip
            assert tracker.stdout is not None
            command_pid = int(tracker.stdout.readline())
            store = open_store()
            deadline = time.monotonic() + 120  # a loaded machine flushes late
            while True:  # the command's identity and some energy are flushed
                runs = store.list_runs()
                live = runs[0].record.get("liveness", {}) if runs else {}
                if runs and "command" in live and runs[0].energy_j > 0:
                    break
                assert time.monotonic() < deadline, "no flush with the command's identity"
                time.sleep(0.1)
            tracker.send_signal(signal.SIGKILL)
            tracker.wait()
        run = store.list_runs()[0]
        assert run.status is RunStatus.RUNNING
        note = f"tracker lost; command still running as pid {command_pid}"
        assert run.record["liveness"]["note"] == note
        flushed = run.energy_j
        assert flushed > 0
    finally:
        if command_pid is not None:
            os.kill(command_pid, signal.SIGKILL)  # only the command this test started
            _wait_gone(command_pid)
    run = store.list_runs()[0]
    assert run.status is RunStatus.CRASHED
    assert run.energy_j == flushed  # the energy of its last flush
    assert run.ended_at == run.heartbeat_at
