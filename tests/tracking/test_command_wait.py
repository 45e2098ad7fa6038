"""``wattwise run`` waits for its command on the command's process file descriptor where the
system has one (``os.pidfd_open``), so the command's end is seen when it happens, not at the
next wake; elsewhere it sleeps between polls. Both ways give the command's exit code and
keep running the main thread's signal handlers between waits."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from wattwise.tracking import _command


def child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no os.pidfd_open on this system")
def test_the_pidfd_is_readable_once_the_command_has_exited_and_not_before() -> None:
    proc = child("import sys; sys.stdin.read()")
    fd = _command._pidfd(proc.pid)
    assert fd is not None
    try:
        assert select.select([fd], [], [], 0)[0] == []  # still running
        proc.kill()
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready == [fd]
        assert proc.wait() == -signal.SIGKILL
    finally:
        os.close(fd)


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
def test_wait_gives_the_exit_code(pidfd: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if pidfd and not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open on this system")
    if not pidfd:
        monkeypatch.setattr(_command, "_pidfd", lambda pid: None)
    opened: list[int] = []
    real = _command._pidfd

    def tracked(pid: int) -> int | None:
        fd = real(pid)
        if fd is not None:
            opened.append(fd)
        return fd

    closed: list[int] = []
    real_close = os.close

    def close(fd: int) -> None:
        closed.append(fd)
        real_close(fd)

    monkeypatch.setattr(_command, "_pidfd", tracked)
    monkeypatch.setattr(os, "close", close)
    assert _command._wait(child("import sys; sys.exit(7)")) == 7
    assert len(opened) == (1 if pidfd else 0)
    assert set(opened) <= set(closed)  # the descriptor is closed after the wait


def test_a_signal_handler_runs_while_the_command_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler of the main thread runs between waits, whichever thread the kernel gave the
    signal to: here it ends the command, as wattwise run's forwarding does."""
    proc = child("import time; time.sleep(600)")
    seen: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        proc.terminate()

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        # another thread sends it, while the main thread waits
        threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGUSR1)).start()
        assert _command._wait(proc) == -signal.SIGTERM
    finally:
        signal.signal(signal.SIGUSR1, old)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert seen == [signal.SIGUSR1]
