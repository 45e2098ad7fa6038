"""The study driver's own cost: its process tree minus the work its trials did.

Every trial is a run metered on its own process tree. The driver is a run too, and its
tree would contain the trials' work: inline trials run in the driver's process, worker
processes and a local Ray cluster are its descendants. :class:`StudyTree` removes that
work, so a joule is counted once in the study:

* while an inline trial runs, the driver's figure is frozen; the CPU seconds the whole
  tree spent during the trial are subtracted afterwards;
* a worker process (and its descendants) counts for the driver only outside its trials:
  the worker measures its own CPU seconds when a trial starts and ends, with the same
  formula, and tells the driver;
* everything else under the driver (Ray's raylet, GCS and helper processes, idle
  prestarted workers, worker start-up and imports) is study overhead: the driver's.

GPU energy is attributed whole-device (NVML cannot split it per process), so the driver
run drops its GPU meters: GPU energy belongs to the trials.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

import psutil

from wattwise.tracking import ProcessTree, Run, RunKind, register_run_kind


def _cpu_of(proc: psutil.Process, *, with_children: bool = True) -> float:
    t = proc.cpu_times()
    total = t.user + t.system
    if with_children:
        total += t.children_user + t.children_system
    return float(total)


def _subtree(pid: int) -> list[psutil.Process]:
    """``pid`` and its live descendants, root first ([] when it is gone).

    Listed from the kernel's per-process children lists (:class:`ProcessTree`), not by
    psutil's scan of every process on the machine: that scan cost a trial tens of
    milliseconds of CPU on a busy host. ``is_child=True`` only skips the CPU baseline a
    tree reads when it is made: the listing is all that is used here.
    """
    return ProcessTree(pid, is_child=True).processes()


def subtree_cpu_s(pid: int | None = None) -> float:
    """CPU seconds of a process and its live descendants (reaped children included), in s.

    Workers call this at the start and the end of each trial; the driver uses the same
    formula to leave trial work out of its own figure.
    """
    procs = _subtree(pid or os.getpid())
    total = 0.0
    for proc in procs:
        try:
            total += _cpu_of(proc)
        except psutil.Error:
            continue
    return total


@dataclasses.dataclass
class _WorkerBook:
    """Trial work of one worker process, in CPU seconds of its subtree."""

    in_trials_s: float = 0.0
    running_since_s: float | None = None
    last_contribution_s: float = 0.0

    def contribution(self, subtree_s: float) -> float:
        if self.running_since_s is not None:
            value = self.running_since_s - self.in_trials_s
        else:
            value = subtree_s - self.in_trials_s
        self.last_contribution_s = max(self.last_contribution_s, value, 0.0)
        return self.last_contribution_s


class StudyTree(ProcessTree):
    """The driver's process tree without the work done inside trials (see module doc).

    Thread-safe: the driver's sampler thread reads it while the study loop updates it.

    Args:
        root_pid: The driver's process (default: this one).
    """

    def __init__(self, root_pid: int | None = None) -> None:
        super().__init__(root_pid or os.getpid())
        self._guard = threading.Lock()
        self._workers: dict[int, _WorkerBook] = {}
        self._seen: dict[int, float] = {}
        self._gone_s = 0.0
        self._inline_since: float | None = None
        self._inline_s = 0.0
        self._study_last = 0.0
        self._base = self._raw()

    # -- study events -------------------------------------------------------------

    def add_worker(self, pid: int) -> None:
        """Count ``pid``'s subtree for the driver only outside the trials it runs."""
        with self._guard:
            self._workers.setdefault(pid, _WorkerBook())

    def worker_trial_started(self, pid: int, cpu_s: float) -> None:
        """A worker started a trial when its subtree had used ``cpu_s`` CPU seconds."""
        with self._guard:
            book = self._workers.setdefault(pid, _WorkerBook())
            book.running_since_s = cpu_s

    def worker_trial_ended(self, pid: int, cpu_s: float | None) -> None:
        """A worker's trial ended at ``cpu_s`` CPU seconds (None: the worker died)."""
        with self._guard:
            book = self._workers.get(pid)
            if book is None or book.running_since_s is None:
                return
            if cpu_s is not None:
                book.in_trials_s += max(0.0, cpu_s - book.running_since_s)
            book.running_since_s = None

    def inline_trial_started(self) -> None:
        """An in-process trial starts: freeze the driver's figure."""
        with self._guard:
            self._inline_since = self._raw()

    def inline_trial_ended(self) -> None:
        """The in-process trial ended: leave its CPU seconds out from now on."""
        with self._guard:
            if self._inline_since is None:
                return
            self._inline_s += max(0.0, self._raw() - self._inline_since)
            self._inline_since = None

    # -- ProcessTree interface -------------------------------------------------------

    def _raw(self) -> float:
        root = self.root
        if root is None:
            return self._gone_s + sum(self._seen.values())
        try:
            own = _cpu_of(root, with_children=False)
        except psutil.Error:
            return self._gone_s + sum(self._seen.values())
        descendants = [p for p in self.processes() if p.pid != self.root_pid]
        inside_workers: set[int] = set()
        for proc in descendants:
            if proc.pid in self._workers:
                inside_workers.update(c.pid for c in _subtree(proc.pid)[1:])
        contributions: dict[int, float] = {}
        for proc in descendants:
            if proc.pid in inside_workers:
                continue
            try:
                if proc.pid in self._workers:
                    value = self._workers[proc.pid].contribution(subtree_cpu_s(proc.pid))
                else:
                    value = _cpu_of(proc)
            except psutil.Error:
                continue
            contributions[proc.pid] = max(value, self._seen.get(proc.pid, 0.0))
        for pid, value in self._seen.items():
            if pid not in contributions:
                self._gone_s += value  # it ended: keep what it had used
        self._seen = contributions
        return own + sum(contributions.values()) + self._gone_s

    def cpu_s(self) -> float:
        """CPU seconds of the study's own work since the tree was created (monotonic)."""
        with self._guard:
            if self._inline_since is not None:
                value = self._inline_since - self._inline_s - self._base
            else:
                value = self._raw() - self._inline_s - self._base
            self._study_last = max(self._study_last, value)
            return self._study_last

    def rss_bytes(self) -> int:
        """Resident memory of the driver and its non-worker helpers (0 during inline trials)."""
        with self._guard:
            if self._inline_since is not None:
                return 0
            workers = set(self._workers)
        procs = self.processes()
        total = 0
        for proc in procs:
            if proc.pid in workers:
                continue
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total


def _study_tree(root_pid: int, is_child: bool) -> StudyTree:
    return StudyTree(root_pid)


#: The study driver's kind: measured on a :class:`StudyTree`, without GPU meters.
STUDY = register_run_kind(
    RunKind(
        "study",
        role="study",
        excluded_components=("gpu",),
        attribution_note=(
            "driver process tree minus trial work (inline trials' CPU seconds and worker "
            "processes while they run trials); GPU energy belongs to the trials"
        ),
        make_tree=_study_tree,
    )
)


class StudyRun(Run):
    """The driver's run: a run of kind :data:`STUDY` (whatever ``kind`` it is given)."""

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        kwargs["kind"] = STUDY
        super().__init__(name, **kwargs)

    @property
    def tree(self) -> StudyTree:
        """The driver's :class:`StudyTree` (after start)."""
        tree = super().tree
        assert isinstance(tree, StudyTree)
        return tree
