"""Processes the tests start, and how they stop them: one place for the whole suite.

The servers of ``pg_support`` (PostgreSQL), ``slurm_support`` (MUNGE, MariaDB, slurmdbd,
slurmctld, slurmd) and the jobs and torchrun tests (``jobs/jobs_support``) all follow the
same rules, kept here:

- a daemon or a command under test starts in a new session (``start_new_session=True``), so
  its process group is its own and its pid is the group's id (:func:`spawn`);
- it is stopped by that group only: SIGTERM and a grace period, then SIGKILL
  (:func:`stop_group`), or at once (:func:`kill_group`), or by the pid a server wrote in its
  own folder (:func:`stop_pid`); never by a name, never anything the tests did not start;
- a wait is for a condition, with a generous deadline, never a fixed sleep
  (:func:`wait_until`): the suite runs on loaded 2-core machines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

#: How often :func:`wait_until` asks.
POLL_S = 0.05


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    what: str, ready: Callable[[], bool], timeout: float, *,
    proc: subprocess.Popen[Any] | None = None, log: Callable[[], str] | None = None,
    poll_s: float = POLL_S,
) -> None:  # fmt: skip
    """Poll ``ready()`` until it is true.

    Args:
        what: What is awaited, for the error (``"the node became idle"``).
        ready: The condition; asked every ``poll_s`` seconds.
        timeout: The deadline in seconds (generous: the machine may be loaded).
        proc: The process that should make it true: if it exits first, fail at once.
        log: Gives the text quoted in the error (a daemon's log tail).

    Raises:
        RuntimeError: ``proc`` exited before ``ready()`` was true, or the deadline passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            tail = f":\n{log()}" if log is not None else ""
            msg = f"{proc.args!r} exited ({proc.returncode}) before {what}{tail}"
            raise RuntimeError(msg)
        if time.monotonic() >= deadline:
            tail = f":\n{log()}" if log is not None else ""
            msg = f"{what} did not happen within {timeout:.0f} s{tail}"
            raise RuntimeError(msg)
        time.sleep(poll_s)


def spawn(
    argv: Sequence[str], *, log: Path, cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start a daemon in a session (and process group) of its own, its output to ``log``."""
    out = open(log, "wb")  # noqa: SIM115 - the daemon keeps it open
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=cwd, env=env, start_new_session=True,
        )  # fmt: skip
    finally:
        out.close()


def stop_group(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads (started by :func:`spawn` or with
    ``start_new_session=True``); SIGKILL it if it is still there after ``grace_s``; reap."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        # Not reaped yet, so its pid (the group's id) cannot have been reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group a test started (``start_new_session=True``) and every
    process below its leader (``wattwise run`` puts its command in a group of its own, and
    torchrun its workers), by pid, then reap the leader."""
    try:
        below = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        below = []
    # The group outlives its leader while a member is alive (Linux reuses no pid that is
    # still a group's id), so this reaches members left behind by a leader that exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in below:
        with contextlib.suppress(psutil.Error):
            child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def started(*procs: subprocess.Popen[Any]) -> Iterator[None]:
    """Kill whatever of ``procs`` is still running (their own groups) when the block ends,
    and close their pipes."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill_group(proc)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def stop_pid(pid: int, sig: signal.Signals, gone: Callable[[], bool], timeout: float) -> bool:
    """Signal a server the tests started but do not hold a handle to, by the pid it wrote in
    the tests' own folder (PostgreSQL's ``postmaster.pid``), and wait until ``gone()``.

    Returns:
        Whether ``gone()`` became true within ``timeout`` seconds.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    try:
        wait_until(f"pid {pid} stopped", gone, timeout, poll_s=0.1)
    except RuntimeError:
        return False
    return True
