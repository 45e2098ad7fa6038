"""Host-local election: one measurer per (job, host, device), by ``flock`` on a lock file.

Each process of a job that could measure a device tries an exclusive, non-blocking
``fcntl.flock`` on a file named after the job, the host and the device, in a folder only
this user can write (:func:`runtime_dir`). The process that gets the lock is the device's
measurer and keeps the lock (an open file descriptor) for the life of its run; it writes
its run id into the file so that the others can name it in their records. The kernel
drops the lock when the measurer's process ends, however it ends (``kill -9`` included),
so a loser that tries again (:meth:`Ballot.retry`) takes over.

No collectives, no network, no rank is special: only the local file system, so the
election works whatever launched the processes. Lock files are left in place (unlinking a
file another process may be waiting on would let two processes hold "the" lock); they are
a few bytes each, in a folder the system clears (``$XDG_RUNTIME_DIR``) or the temporary
folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from wattwise.exceptions import WattwiseError

#: Overrides where the lock files live (tests; a node-local folder on a cluster).
LOCK_DIR_ENV = "WATTWISE_JOB_LOCK_DIR"


class ElectionError(WattwiseError):
    """The election could not be held here (no safe folder for the lock files)."""


def runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder for this user's lock files, created 0700 if missing.

    ``$WATTWISE_JOB_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/wattwise/jobs``, else
    ``<temp dir>/wattwise-<uid>/jobs``. The folder must belong to this user and be closed to
    others: a lock file another user could create or replace could steal the election.

    Raises:
        ElectionError: The folder cannot be made, or it belongs to someone else or is open
            to other users.
    """
    env = os.environ if environ is None else environ
    uid = os.getuid()
    if env.get(LOCK_DIR_ENV, "").strip():
        base = Path(env[LOCK_DIR_ENV].strip())
        folder = base
    elif env.get("XDG_RUNTIME_DIR", "").strip():
        base = Path(env["XDG_RUNTIME_DIR"].strip()) / "wattwise"
        folder = base / "jobs"
    else:
        base = Path(tempfile.gettempdir()) / f"wattwise-{uid}"
        folder = base / "jobs"
    for path in (base, folder):
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            info = path.lstat()
        except OSError as err:
            msg = (
                f"Cannot use {str(path)!r} for job election lock files: {err.strerror or err}. "
                f"Set {LOCK_DIR_ENV} to a folder of your own."
            )
            raise ElectionError(msg) from err
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o022:
            msg = (
                f"{str(path)!r} is not a folder owned by this user and closed to others, so "
                f"it cannot hold job election locks. Remove it, or set {LOCK_DIR_ENV} to a "
                "folder of your own."
            )
            raise ElectionError(msg)
    return folder


def lock_path(folder: Path, job_id: str, host: str, device: str) -> Path:
    """The lock file of one (job, host, device): a hash, so any id makes a safe name."""
    digest = hashlib.sha256(f"{job_id}\0{host}\0{device}".encode()).hexdigest()[:40]
    return folder / f"{digest}.lock"


class Ballot:
    """One process's claim on one device of a job.

    Args:
        path: The device's lock file (:func:`lock_path`).
        run_id: This run's id, written into the file when it wins.
    """

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._fd: int | None = None

    @property
    def won(self) -> bool:
        """True while this process holds the lock (it is the device's measurer)."""
        return self._fd is not None

    def retry(self) -> bool:
        """Try to take the lock without waiting; True when this process holds it now.

        Raises:
            OSError: The lock file cannot be opened or locked for another reason than
                another holder (the caller treats that as a failed election).
        """
        if self._fd is not None:
            return True
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        try:
            payload = json.dumps({"run_id": self.run_id, "pid": os.getpid(),
                                  "since": time.time()}).encode()  # fmt: skip
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)
        except BaseException:
            os.close(fd)  # closing drops the lock
            raise
        self._fd = fd
        return True

    def holder(self) -> str | None:
        """The run id the measurer wrote into the lock file, or None when unknown yet
        (the winner has not written it, or this process holds the lock: see ``run_id``)."""
        if self._fd is not None:
            return self.run_id
        try:
            raw = self.path.read_bytes()[:4096]
            found = json.loads(raw.decode()) if raw else None
        except (OSError, ValueError):
            return None
        run_id = found.get("run_id") if isinstance(found, dict) else None
        return run_id if isinstance(run_id, str) and run_id else None

    def release(self) -> None:
        """Give the lock up (the end of the run); the file stays (see the module doc)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                # Unlock first: a child forked meanwhile shares this open file and would
                # otherwise keep the lock after we close our descriptor.
                fcntl.flock(fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)
