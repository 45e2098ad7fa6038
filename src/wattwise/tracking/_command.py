"""``wattwise run -- CMD``: run a command as a tracked process tree.

The command runs in its own process group. Signals sent to wattwise (SIGINT, SIGTERM,
SIGHUP, SIGQUIT) are forwarded to that group; when wattwise owns the terminal, the
command's group is made the terminal's foreground group, so Ctrl-C reaches the command
once, directly, and interactive programs (pdb) keep working. The exit code is the
command's own (128 + N when it died from signal N).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

from wattwise.exceptions import CommandNotStartedError, InvalidParameterError
from wattwise.store import RunStatus
from wattwise.tracking._job import job_child_environ
from wattwise.tracking._result import RunResult
from wattwise.tracking._run import Run

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@contextlib.contextmanager
def _foreground(pgid: int) -> Iterator[None]:
    """Give the terminal to process group ``pgid`` while the command runs, if we own it."""
    try:
        fd = sys.stdin.fileno()
        owned = os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        owned = False
    if not owned:
        yield
        return
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgid)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, os.getpgrp())
        signal.signal(signal.SIGTTOU, old)


#: How often the main thread wakes while the command runs, in seconds (see :func:`_wait`).
WAKE_S = 0.1


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the command, waking every :data:`WAKE_S` to run pending signal handlers.

    The kernel hands a process-directed signal to any thread that does not block it, and
    wattwise run has several (sampler, writer, ...). Python runs handlers only in the main
    thread, and a signal taken by another thread does not interrupt the main thread's
    ``waitpid()``: a blocking ``proc.wait()`` held a forwarded SIGTERM until the command ended
    by itself. Each wake is one ``waitpid(WNOHANG)``.

    Where the system has process file descriptors (Linux 5.3+: ``os.pidfd_open``), each wait
    is a ``select()`` on the command's, which returns the moment it exits; elsewhere a sleep
    of :data:`WAKE_S`, which let the command's end wait up to that long (50 ms on average).
    """
    pidfd = _pidfd(proc.pid)
    try:
        while (code := proc.poll()) is None:
            if pidfd is None:
                time.sleep(WAKE_S)
            else:
                select.select([pidfd], [], [], WAKE_S)
        return code
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when process ``pid`` exits, or None where the
    system has none (not Linux, a kernel before 5.3, a seccomp filter)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _new_group() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}  # type: ignore[unreachable, unused-ignore]


def _not_started_code(err: OSError) -> int:
    """The shells' exit code for a command that never ran: 127 not found, else 126."""
    return 127 if isinstance(err, FileNotFoundError) else 126


def _not_started_reason(program: str, err: OSError) -> str:
    """Why ``program`` did not start, in the shells' words: ``execve`` says "Permission
    denied" for a folder, the shells say "is a directory"."""
    if isinstance(err, PermissionError) and os.sep in program and os.path.isdir(program):
        return "it is a directory, not a program"
    return err.strerror or str(err)


def run_command(
    argv: Sequence[str], *, run: Run | None = None, **run_kwargs: Any
) -> tuple[int, RunResult]:
    """Run ``argv`` under a new tracked run and wait for it.

    The command's exit code is returned untouched whatever happens to the ledger (it is
    spooled when it cannot be written; see ``wattwise.tracking._writer``).

    Args:
        argv: The command and its arguments.
        run: A run made for it (not started); default: one made from ``run_kwargs``.
        **run_kwargs: Passed to :class:`~wattwise.tracking.Run` (name, region, tags, ...).

    Returns:
        The command's exit code (128 + N when it died of signal N) and the run's result.

    Raises:
        InvalidParameterError: ``argv`` is empty.
        CommandNotStartedError: The program cannot be started; its ``exit_code`` is 127
            (not found) or 126 (not executable, a folder); the run is recorded as failed
            with that code.
    """
    if not argv:
        msg = "No command given. Usage: wattwise run [OPTIONS] -- COMMAND [ARGS...]."
        raise InvalidParameterError(msg)
    if run is None:
        run = Run(run_kwargs.pop("name", None), command=list(argv), kind="command",
                  **run_kwargs)  # fmt: skip
    # Handlers go in first: a signal that arrives before the command exists is kept and
    # delivered to it as soon as it is started, never lost and never fatal to the run.
    child: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if not child:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child[0].pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        run.start()
        # The child opens the ledger by its URL, which holds no password; the secret the
        # parent's store was opened with (if any, and none is set) goes in its environment.
        env = {
            **os.environ, **run.store.child_environment(),
            "WATTWISE_RUN_ID": run.id, "WATTWISE_STORE": run.store.url,
            **job_child_environ(run.record),  # its ranks join its job (docs/explanation/jobs.md)
        }  # fmt: skip
        try:
            proc = subprocess.Popen(list(argv), env=env, **_new_group())
        except OSError as err:
            code = _not_started_code(err)
            reason = _not_started_reason(argv[0], err)
            run.finish(RunStatus.FAILED, exit_code=code, error=f"{argv[0]}: {reason}")
            msg = (
                f"Cannot start {argv[0]!r}: {reason} (exit code {code}). "
                "Check the command and your PATH."
            )
            raise CommandNotStartedError(msg, code) from err
        child.append(proc)
        run.attach(proc.pid)
        for signum in pending:
            forward(signum, None)
        with _foreground(proc.pid):
            code = _wait(proc)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code < 0:
        code = 128 - code
    status = RunStatus.FINISHED if code == 0 else RunStatus.FAILED
    result = run.finish(status, exit_code=code)
    return code, result
