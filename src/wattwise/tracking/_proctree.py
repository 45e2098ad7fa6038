"""CPU time and memory of a process tree, and the machine's busy CPU time.

These are the attribution inputs: a run's share of machine-wide CPU energy is its tree's
CPU seconds over the machine's busy CPU seconds in the same interval.
"""

from __future__ import annotations

import os
import resource
import time

import psutil

#: Within this many seconds, the tree's process list is reused rather than rebuilt.
_REUSE_S = 0.05


def _direct_children(pid: int) -> list[int] | None:
    """Children of ``pid`` from ``/proc/PID/task/*/children``, or None where unsupported.

    Reading a few small files is far cheaper than psutil's scan of every process on the
    machine, and it keeps the sampler from contending for the GIL with the user's code.
    """
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    found: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                found.extend(int(x) for x in handle.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None  # kernel built without CONFIG_PROC_CHILDREN
        except OSError:
            continue
    return found


def machine_busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine since boot (all CPUs; idle and iowait excluded)."""
    times = psutil.cpu_times()
    total = sum(times)
    return float(total - times.idle - getattr(times, "iowait", 0.0))


def total_memory_bytes() -> int:
    """Physical memory of the machine, in bytes."""
    return int(psutil.virtual_memory().total)


def _children_rusage_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ProcessTree:
    """A process and all its descendants, measured together.

    CPU seconds count every live process of the tree (all threads) plus the children each
    of them has already reaped, so short-lived grandchildren are not lost. When the root
    is our own child and has been reaped, its total arrives through our children's
    ``getrusage``; the figure never goes down.

    Public so that a :class:`~wattwise.tracking.RunKind` can attribute a different part of
    the machine to its runs: a subclass overrides :meth:`cpu_s` and :meth:`rss_bytes` (and
    :meth:`pids`, for GPU attribution) using :attr:`root` and :meth:`processes`.

    Args:
        root_pid: The tree's root process.
        is_child: True when ``root_pid`` is a child of this process (``wattwise run``).
    """

    def __init__(self, root_pid: int, *, is_child: bool = False) -> None:
        self.root_pid = root_pid
        self.is_child = is_child
        self._rusage0 = _children_rusage_s() if is_child else 0.0
        try:
            self._root: psutil.Process | None = psutil.Process(root_pid)
        except psutil.Error:
            self._root = None
        self._known: dict[int, psutil.Process] = {}
        self._cached: list[psutil.Process] = []
        self._cached_at = float("-inf")
        self._offset = 0.0 if is_child else self._live_cpu_s()
        self._last_cpu_s = 0.0
        self._last_rss = 0

    def _descendant_pids(self) -> list[int] | None:
        out: list[int] = []
        todo = [self.root_pid]
        while todo:
            kids = _direct_children(todo.pop())
            if kids is None:
                return None
            out.extend(kids)
            todo.extend(kids)
        return out

    @property
    def root(self) -> psutil.Process | None:
        """The root process, or None when it was gone before the tree was made."""
        return self._root

    def processes(self) -> list[psutil.Process]:
        """The live processes of the tree, root first (a listing is reused for 50 ms)."""
        now = time.monotonic()
        if now - self._cached_at < _REUSE_S:
            return self._cached
        procs: list[psutil.Process] = []
        if self._root is not None:
            pids = self._descendant_pids()
            try:
                if pids is None:
                    procs = [self._root, *self._root.children(recursive=True)]
                else:
                    known = {}
                    for pid in pids:
                        proc = self._known.get(pid)
                        if proc is None:
                            try:
                                proc = psutil.Process(pid)
                            except psutil.Error:
                                continue
                        known[pid] = proc
                    self._known = known
                    procs = [self._root, *known.values()]
            except psutil.Error:
                procs = []
        self._cached, self._cached_at = procs, now
        return procs

    def _live_cpu_s(self) -> float:
        total = 0.0
        for proc in self.processes():
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def cpu_s(self) -> float:
        """CPU seconds the tree used since it was first measured (monotonic)."""
        live = self._live_cpu_s() - self._offset
        reaped = _children_rusage_s() - self._rusage0 if self.is_child else 0.0
        self._last_cpu_s = max(self._last_cpu_s, live, reaped)
        return self._last_cpu_s

    def rss_bytes(self) -> int:
        """Resident memory of the live tree, in bytes (the last value once it is gone)."""
        procs = self.processes()
        if not procs:
            return self._last_rss
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        self._last_rss = total
        return total

    def pids(self) -> set[int]:
        """Pids of the live tree."""
        return {p.pid for p in self.processes()}


def current_process_tree() -> ProcessTree:
    """The tree rooted at this process."""
    return ProcessTree(os.getpid())
