"""A cache hit's booking in the ledger, handed off so that it never holds up the job.

A ledger on a dead network mount does not fail, it hangs (``open()`` and writes never
return), and one locked by another process makes a write wait its busy timeout (60 s by
default). A cache hit is the cheap path, so its one ledger row (``add_reuse``) is written
by a daemon thread, ``wattwise-reuse``, that also opens the ledger when the hit has no run
to book to. :func:`book` hands the write over and waits for it:

* at most :data:`HIT_WAIT_S` while the ledger answers, so that a healthy ledger holds the
  hit when the cached function returns;
* not at all once a booking has not come back in time, until one does (the ledger hangs:
  said once, a :class:`~wattwise.exceptions.StoreWarning`);
* bookings waiting behind a slow one are queued, at most :data:`MAX_PENDING` (a hit beyond
  that is not booked, said once); at exit the queue gets at most :data:`EXIT_WAIT_S`
  (:data:`HIT_WAIT_S` once the ledger is known to hang), and the hits still pending are
  said not booked (a StoreWarning). A daemon thread stuck in a system call
  does not keep the process from exiting.

A booking that fails (the ledger refuses it) is logged, as before: the hit is good all the
same. The same path as the run's own writes (``wattwise.tracking``'s writer thread), for
one row that has no spool: a hit that could not be booked is said, not kept.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable

from wattwise.exceptions import StoreWarning, WattwiseError

logger = logging.getLogger("wattwise")

#: How long a hit waits for its booking while the ledger answers, in seconds (as long as a
#: run's final write: a slow but healthy ledger on a loaded machine is not taken for a hung one).
HIT_WAIT_S = 5.0
#: How long the process waits at exit for the bookings still pending, in seconds (as long
#: as a run's final write: ``WATTWISE_FINAL_WRITE_S``'s default).
EXIT_WAIT_S = 5.0
#: Bookings queued behind a ledger that does not answer; more are not booked.
MAX_PENDING = 10_000


@dataclasses.dataclass(eq=False)
class _Booking:
    write: Callable[[], None]
    what: str
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class Booker:
    """The process's hit-booking thread (started at the first hit).

    Args:
        hit_wait_s: How long :meth:`book` waits while the ledger answers.
        exit_wait_s: How long :meth:`drain` waits for what is pending.
        max_pending: Bookings queued at most; more are not booked.
    """

    def __init__(
        self, *, hit_wait_s: float = HIT_WAIT_S, exit_wait_s: float = EXIT_WAIT_S,
        max_pending: int = MAX_PENDING,
    ) -> None:  # fmt: skip
        self.hit_wait_s = hit_wait_s
        self.exit_wait_s = exit_wait_s
        self.max_pending = max_pending
        self._cond = threading.Condition()
        self._queue: collections.deque[_Booking] = collections.deque()
        self._busy: _Booking | None = None
        self._stuck = False
        self._thread: threading.Thread | None = None
        self._exit_hook = False
        self._said: set[str] = set()
        self._pid = os.getpid()

    def book(self, write: Callable[[], None], *, what: str) -> bool:
        """Hand ``write`` (one ledger write) to the thread; wait for it, bounded (above).

        Args:
            write: Opens the ledger if need be and writes; its failures are logged.
            what: The hit, for the warnings (e.g. ``"a hit of mod:fn"``).

        Returns:
            True when the booking was done before this returned.
        """
        job = _Booking(write, what)
        with self._cond:
            full = len(self._queue) >= self.max_pending
            said = full and "full" not in self._said
            if said:
                self._said.add("full")
            if not full:
                self._queue.append(job)
                try:
                    self._ensure_thread()
                except RuntimeError as err:  # no new thread (the interpreter shuts down)
                    self._queue.remove(job)
                    logger.warning("wattwise: a cache hit was not booked in the ledger: %s",
                                   err)  # fmt: skip
                    return False
                self._cond.notify_all()
            stuck = self._stuck
        if full:
            if said:
                warnings.warn(f"wattwise: {what} was not booked in the ledger: "
                              f"{self.max_pending} bookings already wait for a ledger that "
                              "does not answer; more hits are not booked until it does "
                              "(said once).", StoreWarning, stacklevel=5)  # fmt: skip
            return False
        if stuck:
            return False
        if job.done.wait(self.hit_wait_s):
            return True
        with self._cond:
            self._stuck = not job.done.is_set()
            said = self._stuck and "hung" not in self._said
            if said:
                self._said.add("hung")
        if said:
            warnings.warn(f"wattwise: the ledger did not take the booking of {what} "
                          f"within {self.hit_wait_s:g} s (a hung disk or network mount, or a "
                          "ledger locked by another process?). The hit is returned; its "
                          "booking goes on in the background, and later hits do not wait "
                          "until the ledger answers again (said once).", StoreWarning,
                          stacklevel=5)  # fmt: skip
        return job.done.is_set()

    def pending(self) -> int:
        """Bookings not done yet (queued, or being written)."""
        with self._cond:
            return len(self._queue) + (self._busy is not None)

    def drain(self, wait_s: float | None = None) -> int:
        """Wait at most ``wait_s`` (default ``exit_wait_s``) for the pending bookings.

        Returns:
            How many are still pending (said not booked when called at exit).
        """
        wait = self.exit_wait_s if wait_s is None else wait_s
        deadline = time.monotonic() + wait
        with self._cond:
            while self._queue or self._busy is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return len(self._queue) + (self._busy is not None)

    # -- the thread ---------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the thread unless it runs (called with the lock held; also after a fork)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._busy = None
        self._stuck = False
        thread = threading.Thread(target=self._loop, name="wattwise-reuse", daemon=True)
        thread.start()
        self._thread = thread
        if not self._exit_hook:
            self._exit_hook = True
            atexit.register(self._at_exit)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                job = self._busy = self._queue.popleft()
            try:
                job.write()
            except WattwiseError as err:  # the hit is still good; only its booking failed
                logger.warning("wattwise: could not record a cache hit in the ledger: %s", err)
            except Exception as err:  # a bug here never reaches the job: logged
                logger.warning("wattwise: could not record a cache hit in the ledger "
                               "(%s: %s)", type(err).__name__, err)  # fmt: skip
            with self._cond:
                self._busy = None
                self._stuck = False
                job.done.set()
                self._cond.notify_all()

    def _at_exit(self) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's bookings are not its own
            return
        with self._cond:
            wait = self.hit_wait_s if self._stuck else self.exit_wait_s
        left = self.drain(wait)
        if left:
            warnings.warn(f"wattwise: {left} cache hit(s) not booked in the ledger: it did "
                          f"not answer within {wait:g} s at exit. The hits' results were "
                          "returned all the same.", StoreWarning, stacklevel=1)  # fmt: skip


#: The process's booker (:func:`book`).
BOOKER = Booker()


def _after_fork() -> None:
    """A forked child starts with no booker thread and nothing pending (its parent's)."""
    global BOOKER
    BOOKER = Booker(hit_wait_s=BOOKER.hit_wait_s, exit_wait_s=BOOKER.exit_wait_s,
                    max_pending=BOOKER.max_pending)  # fmt: skip


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def book(write: Callable[[], None], *, what: str) -> bool:
    """Book a hit through the process's :data:`BOOKER` (see :meth:`Booker.book`)."""
    return BOOKER.book(write, what=what)
