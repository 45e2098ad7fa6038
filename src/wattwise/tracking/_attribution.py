"""Attribution: which part of the machine's energy belongs to a run's process tree.

CPU: the tree's share of the busy CPU seconds (:func:`cpu_share`); DRAM: its share of the
memory (:func:`dram_share`); GPU: below.

NVML reports energy per board, not per process. Where NVML lists the compute processes on
a device, a run gets the share of the board's energy equal to its processes' share of the
GPU memory in use (the proxy experiment-impact-tracker used was SM utilisation; memory is
what NVML reports on every driver). A device with no process of the run gets nothing, so
two runs on one GPU never count the same joule. Where the list is unavailable (vGPU, MIG,
old drivers) or names only processes this pid namespace cannot see (a container), the
whole device is attributed, and the record says so.
"""

from __future__ import annotations

from collections.abc import Mapping

import psutil

WHOLE_UNLISTED = "whole device: NVML cannot list the processes on this GPU"
WHOLE_FOREIGN = "whole device: the GPU's processes are in another pid namespace (container)"
SHARED = "GPU memory share of the run's processes (NVML compute processes)"
IDLE = "no process on the GPU: nothing attributed"
OTHERS = "the GPU is used only by other processes: nothing attributed"


def gpu_share(
    processes: Mapping[int, int] | None, tree_pids: set[int]
) -> tuple[float, str]:
    """Share of one GPU's energy for a process tree, and how it was decided.

    Args:
        processes: ``{pid: used GPU memory in bytes}`` from NVML, or None if unknown.
        tree_pids: Pids of the run's process tree.
    """
    if processes is None:
        return 1.0, WHOLE_UNLISTED
    if not processes:
        return 0.0, IDLE
    ours = {pid: mem for pid, mem in processes.items() if pid in tree_pids}
    if not ours:
        if not any(psutil.pid_exists(pid) for pid in processes):
            return 1.0, WHOLE_FOREIGN
        return 0.0, OTHERS
    total = sum(processes.values())
    if total <= 0:
        return len(ours) / len(processes), SHARED
    return sum(ours.values()) / total, SHARED


def cpu_share(d_proc_s: float, d_busy_s: float) -> float:
    """Share of the machine's CPU energy over an interval: the tree's CPU seconds over the
    machine's busy CPU seconds (all of it when the machine was idle but the tree was not)."""
    if d_busy_s <= 0:
        return 1.0 if d_proc_s > 0 else 0.0
    return min(1.0, max(0.0, d_proc_s / d_busy_s))


def dram_share(rss_bytes: int, total_bytes: int) -> float:
    """Share of the machine's DRAM energy: the tree's resident memory over all memory."""
    return min(1.0, rss_bytes / total_bytes) if total_bytes else 0.0
