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
* bookings waiting behind a slow one are queued, at most :data:`MAX_PENDING`; at exit the
  queue gets at most :data:`EXIT_WAIT_S` (:data:`HIT_WAIT_S` once the ledger is known to
  hang). A daemon thread stuck in a system call does not keep the process from exiting.

A hit whose booking does not land in time is *kept*, not only said: a second daemon thread,
``wattwise-keep``, appends its row to this process's kept-hits file in the spool folder
(:class:`wattwise.store.HitSpool`: local disk first, JSON lines, ``fsync``'d), and so is a
hit beyond the queue's bound, one the ledger refused, and one still pending at exit (the
exit waits at most :data:`KEEP_WAIT_S` more for the file). The booking itself goes on: if it
lands after all, the hit is marked booked in the file (removed once all are). Otherwise
the next wattwise process that writes this ledger books it (:func:`wattwise.store.replay_hits`:
after its own first booking, a run's housekeeping, ``wattwise doctor --repair``), once: a
file is replayed only when its process is gone, and a hit the ledger already holds is not
booked again. A booking that fails for a bug (not the ledger's refusal) is logged, as before:
the hit is good all the same.
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
from pathlib import Path
from typing import TYPE_CHECKING

from wattwise.exceptions import StoreWarning, WattwiseError

if TYPE_CHECKING:
    from wattwise.store import BaseRunStore, HitSpool, ReuseEvent

logger = logging.getLogger("wattwise")

#: How long a hit waits for its booking while the ledger answers, in seconds (as long as a
#: run's final write: a slow but healthy ledger on a loaded machine is not taken for a hung one).
HIT_WAIT_S = 5.0
#: How long the process waits at exit for the bookings still pending, in seconds (as long
#: as a run's final write: ``WATTWISE_FINAL_WRITE_S``'s default).
EXIT_WAIT_S = 5.0
#: How long the exit waits, after that, for the hits not booked to be kept, in seconds (as
#: long as a run's emergency spool: ``wattwise.tracking``'s ``SPOOL_WAIT_S``).
KEEP_WAIT_S = 2.0
#: Bookings queued behind a ledger that does not answer; more are kept without a try.
MAX_PENDING = 10_000
#: A process replays the kept hits of a ledger at most this often, in seconds.
REPLAY_EVERY_S = 60.0


@dataclasses.dataclass(frozen=True)
class Keep:
    """How to keep a hit whose booking does not land in time.

    Attributes:
        event: The ledger row the booking writes.
        ledger: Returns the ledger's path (``store.path``: where its spool folder is); called
            on the keeper thread, so it may touch the file system.
    """

    event: ReuseEvent
    ledger: Callable[[], Path]


@dataclasses.dataclass(eq=False)
class _Booking:
    write: Callable[[], None]
    what: str
    keep: Keep | None = None
    after: Callable[[], None] | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    landed: bool = False  # the write succeeded
    keeping: bool = False  # handed to the keeper (once)
    kept: tuple[HitSpool, str, Path] | None = None  # kept: the spool, the hit's id, its file
    marked: bool = False  # kept, landed, and marked booked in the file
    kept_error: str | None = None  # why it could not be kept


class Booker:
    """The process's hit-booking thread and keeper thread (started at the first need).

    Args:
        hit_wait_s: How long :meth:`book` waits while the ledger answers.
        exit_wait_s: How long :meth:`drain` waits for what is pending.
        max_pending: Bookings queued at most; more are kept without a try.
        keep_wait_s: How long the exit waits for the hits not booked to be kept.
    """

    def __init__(
        self, *, hit_wait_s: float = HIT_WAIT_S, exit_wait_s: float = EXIT_WAIT_S,
        max_pending: int = MAX_PENDING, keep_wait_s: float = KEEP_WAIT_S,
    ) -> None:  # fmt: skip
        self.hit_wait_s = hit_wait_s
        self.exit_wait_s = exit_wait_s
        self.max_pending = max_pending
        self.keep_wait_s = keep_wait_s
        self._cond = threading.Condition()
        self._queue: collections.deque[_Booking] = collections.deque()
        self._busy: _Booking | None = None
        self._tidying = False  # a landed booking's ``after`` runs
        self._stuck = False
        self._thread: threading.Thread | None = None
        self._keep_queue: collections.deque[_Booking] = collections.deque()
        self._keeping: _Booking | None = None
        self._keeper: threading.Thread | None = None
        self._spools: dict[str, HitSpool] = {}  # the keeper thread's, by ledger
        self._exit_hook = False
        self._said: set[str] = set()
        self._pid = os.getpid()

    def book(
        self, write: Callable[[], None], *, what: str, keep: Keep | None = None,
        after: Callable[[], None] | None = None,
    ) -> bool:  # fmt: skip
        """Hand ``write`` (one ledger write) to the thread; wait for it, bounded (above).

        Args:
            write: Opens the ledger if need be and writes; its failures are logged.
            what: The hit, for the warnings (e.g. ``"a hit of mod:fn"``).
            keep: How to keep the hit when its booking does not land in time (None: said,
                not kept).
            after: Run on the thread once ``write`` landed, after the hit stopped waiting
                (the replay of other processes' kept hits); its failures are logged.

        Returns:
            True when the booking was done before this returned.
        """
        job = _Booking(write, what, keep, after)
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
            self._keep(job)
            if said:
                warnings.warn(f"wattwise: {what} was not booked in the ledger now: "
                              f"{self.max_pending} bookings already wait for a ledger that "
                              f"does not answer; {self._later(keep)} (said once).",
                              StoreWarning, stacklevel=5)  # fmt: skip
            return False
        if stuck:
            self._keep(job)
            return False
        if job.done.wait(self.hit_wait_s):
            return True
        with self._cond:
            self._stuck = not job.done.is_set()
            said = self._stuck and "hung" not in self._said
            if said:
                self._said.add("hung")
        self._keep(job)
        if said:
            warnings.warn(f"wattwise: the ledger did not take the booking of {what} "
                          f"within {self.hit_wait_s:g} s (a hung disk or network mount, or a "
                          "ledger locked by another process?). The hit is returned; "
                          f"{self._later(keep)}; later hits do not wait until the ledger "
                          "answers again (said once).", StoreWarning,
                          stacklevel=5)  # fmt: skip
        return job.done.is_set()

    @staticmethod
    def _later(keep: Keep | None) -> str:
        if keep is None:
            return "its booking goes on in the background"
        return ("its booking is kept in the spool and booked later, by this process once the "
                "ledger answers or else by the next wattwise process that writes it")  # fmt: skip

    def pending(self) -> int:
        """Bookings not done yet (queued, or being written)."""
        with self._cond:
            return len(self._queue) + (self._busy is not None)

    def drain(self, wait_s: float | None = None) -> int:
        """Wait at most ``wait_s`` (default ``exit_wait_s``) for the pending bookings (and
        the ``after`` step of the last one that landed).

        Returns:
            How many bookings are still pending.
        """
        wait = self.exit_wait_s if wait_s is None else wait_s
        deadline = time.monotonic() + wait
        with self._cond:
            while self._queue or self._busy is not None or self._tidying:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return len(self._queue) + (self._busy is not None)

    def settle(self, wait_s: float | None = None) -> int:
        """Wait at most ``wait_s`` (default ``keep_wait_s``) for the keeper's work.

        Returns:
            How many hits still wait to be kept or marked booked.
        """
        wait = self.keep_wait_s if wait_s is None else wait_s
        deadline = time.monotonic() + wait
        with self._cond:
            while self._keep_queue or self._keeping is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return len(self._keep_queue) + (self._keeping is not None)

    # -- the booking thread -------------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the thread unless it runs (called with the lock held; also after a fork)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._busy = None
        self._tidying = False
        self._stuck = False
        thread = threading.Thread(target=self._loop, name="wattwise-reuse", daemon=True)
        thread.start()
        self._thread = thread
        self._hook_exit()

    def _hook_exit(self) -> None:
        if not self._exit_hook:
            self._exit_hook = True
            atexit.register(self._at_exit)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                job = self._busy = self._queue.popleft()
            landed, refused = False, False
            try:
                job.write()
                landed = True
            except WattwiseError as err:  # the hit is still good; only its booking failed
                refused = True
                kept = "; it is kept and booked later" if job.keep is not None else ""
                logger.warning("wattwise: could not record a cache hit in the ledger: %s%s",
                               err, kept)  # fmt: skip
            except Exception as err:  # a bug here never reaches the job: logged
                logger.warning("wattwise: could not record a cache hit in the ledger "
                               "(%s: %s)", type(err).__name__, err)  # fmt: skip
            with self._cond:
                self._busy = None
                self._stuck = False
                job.landed = landed
                # Kept meanwhile: mark it booked (here, when no keeper can start).
                inline = landed and job.kept is not None and not self._to_keeper(job)
                self._tidying = landed and job.after is not None
                job.done.set()
                self._cond.notify_all()
            if inline:
                self._keep_one(job)
            if refused:
                self._keep(job)
            if landed and job.after is not None:
                try:
                    job.after()
                except Exception as err:  # never reaches the job: logged
                    logger.warning("wattwise: could not book the cache hits kept for later "
                                   "(%s: %s)", type(err).__name__, err)  # fmt: skip
                with self._cond:
                    self._tidying = False
                    self._cond.notify_all()

    # -- the keeper thread --------------------------------------------------------------

    def _keep(self, job: _Booking) -> None:
        """Hand a hit whose booking did not land to the keeper (once; not when it landed)."""
        with self._cond:
            if job.keep is None or job.keeping or job.landed:
                return
            job.keeping = True
            queued = self._to_keeper(job)
        if not queued:
            self._keep_one(job)

    def _to_keeper(self, job: _Booking) -> bool:
        """Queue ``job`` for the keeper (called with the lock held).

        Returns:
            False when no keeper thread can start (this late in the interpreter's shutdown):
            the caller keeps it itself, after releasing the lock.
        """
        self._keep_queue.append(job)
        if self._keeper is None or not self._keeper.is_alive():
            self._keeping = None
            thread = threading.Thread(target=self._keeper_loop, name="wattwise-keep",
                                      daemon=True)  # fmt: skip
            try:
                thread.start()
            except RuntimeError:
                self._keep_queue.remove(job)
                return False
            self._keeper = thread
            self._hook_exit()
        self._cond.notify_all()
        return True

    def _keeper_loop(self) -> None:
        while True:
            with self._cond:
                while not self._keep_queue:
                    self._cond.wait()
                job = self._keeping = self._keep_queue.popleft()
            try:
                self._keep_one(job)
            except Exception as err:  # a bug here never reaches the job: logged
                logger.warning("wattwise: could not keep a cache hit (%s: %s)",
                               type(err).__name__, err)  # fmt: skip
            with self._cond:
                self._keeping = None
                self._cond.notify_all()

    def _keep_one(self, job: _Booking) -> None:
        """Keep the hit in its ledger's spool, or mark it booked there once it landed."""
        from wattwise.store import HitSpool

        if job.kept is not None:
            with self._cond:
                mark = job.landed and not job.marked
                job.marked = job.marked or mark
            if mark:
                job.kept[0].booked(job.kept[1])
            return
        assert job.keep is not None
        if self._landed(job):
            return  # landed before it was kept: nothing to keep
        try:
            ledger = job.keep.ledger()
            key = os.path.abspath(ledger)
            found = self._spools.get(key)
            spool = found if found is not None else HitSpool(ledger)
            self._spools[key] = spool
            hit_id, path = spool.keep(job.keep.event, reason=(
                f"the ledger did not take the booking of {job.what} within "
                f"{self.hit_wait_s:g} s, or refused it"))  # fmt: skip
        except (WattwiseError, OSError) as err:
            job.kept_error = str(err)
            logger.warning("wattwise: could not keep a cache hit for a later booking: %s", err)
            return
        with self._cond:
            job.kept = (spool, hit_id, path)
            mark = job.landed  # it landed while being kept: mark it now
            job.marked = mark
        if mark:
            spool.booked(hit_id)

    def _landed(self, job: _Booking) -> bool:
        with self._cond:
            return job.landed

    def _at_exit(self) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's bookings are not its own
            return
        with self._cond:
            wait = self.hit_wait_s if self._stuck else self.exit_wait_s
        left = self.drain(wait)
        with self._cond:
            pending = [*self._queue, *([self._busy] if self._busy is not None else [])]
        for job in pending:
            self._keep(job)
        self.settle()
        with self._cond:
            kept = [j for j in pending if j.kept is not None and not j.landed]
            where = sorted({str(j.kept[2]) for j in kept if j.kept is not None})
            lost = [j for j in pending if j.kept is None and not j.landed]
        if not left:
            return
        text = (f"wattwise: {left} cache hit(s) not booked in the ledger yet: it did not "
                f"answer within {wait:g} s at exit.")  # fmt: skip
        if kept:
            text += (f" {len(kept)} kept in the spool {', '.join(where)} and "
                     "booked by the next wattwise process that writes the ledger (or: "
                     "wattwise doctor --repair).")  # fmt: skip
        if lost:
            why = next((j.kept_error for j in lost if j.kept_error), None)
            if any(j.keep is not None for j in lost):
                why = why or "the spool did not answer in time"
            text += f" {len(lost)} not kept{f' ({why})' if why else ''}: not booked."
        text += " The hits' results were returned all the same."
        warnings.warn(text, StoreWarning, stacklevel=1)


#: The process's booker (:func:`book`).
BOOKER = Booker()


def _after_fork() -> None:
    """A forked child starts with no booker thread and nothing pending (its parent's)."""
    global BOOKER
    BOOKER = Booker(hit_wait_s=BOOKER.hit_wait_s, exit_wait_s=BOOKER.exit_wait_s,
                    max_pending=BOOKER.max_pending,
                    keep_wait_s=BOOKER.keep_wait_s)  # fmt: skip


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def book(
    write: Callable[[], None], *, what: str, keep: Keep | None = None,
    after: Callable[[], None] | None = None,
) -> bool:  # fmt: skip
    """Book a hit through the process's :data:`BOOKER` (see :meth:`Booker.book`)."""
    return BOOKER.book(write, what=what, keep=keep, after=after)


_replayed: dict[str, float] = {}
_replayed_lock = threading.Lock()


def replay_kept(
    ledger: Path, open_ledger: Callable[[], BaseRunStore], *, close: bool,
) -> int:  # fmt: skip
    """Book the hits other processes kept for ``ledger``, if any (at most every
    :data:`REPLAY_EVERY_S` per ledger; run on the booking thread after a booking landed).

    Args:
        ledger: The ledger's path (``store.path``): a listing says whether there is work.
        open_ledger: Opens the store, only when there is.
        close: Close it afterwards (False for a run's own store).

    Returns:
        The hits booked now; a ledger that refuses them is logged, and they stay kept.
    """
    key = os.path.abspath(ledger)
    now = time.monotonic()
    with _replayed_lock:
        last = _replayed.get(key)
        if last is not None and now - last < REPLAY_EVERY_S:
            return 0
        _replayed[key] = now
    from wattwise.store import any_kept_hits, replay_hits

    if not any_kept_hits(ledger):
        return 0
    store = open_ledger()
    try:
        return replay_hits(store)
    except WattwiseError as err:
        logger.warning("wattwise: could not book the cache hits kept for the ledger %s "
                       "(they stay kept): %s", ledger, err)  # fmt: skip
        return 0
    finally:
        if close:
            store.close()
