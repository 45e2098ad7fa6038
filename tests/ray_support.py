"""Starting the small local Ray cluster of the Ray tests, robust to a loaded machine.

``ray.init`` waits a fixed 30 s for its raylet to register (``ray._private.node``: no
parameter, no environment variable lengthens it), and a loaded 2-core CI machine can take
longer. :func:`start_local_ray` then shuts down what that attempt started (the processes this
process spawned during it, by PID: never by name) and tries once more.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import psutil

#: The cluster of every Ray test: 2 CPUs, no dashboard, workers' logs not forwarded.
LOCAL_CLUSTER: dict[str, Any] = {
    "num_cpus": 2, "include_dashboard": False, "log_to_driver": False,
    "logging_level": "ERROR", "object_store_memory": 100 * 1024**2,
    "ignore_reinit_error": True,
}  # fmt: skip


def _descendants() -> set[tuple[int, float]]:
    """This process's descendants, as (PID, creation time): a reused PID is another process."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            found.add((child.pid, child.create_time()))
    return found


def _end(started: set[tuple[int, float]], timeout_s: float = 30.0) -> None:
    """Terminate, then kill, the processes ``started`` (those still the same processes)."""
    procs = []
    for pid, created in started:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.create_time() == created:
                procs.append(proc)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout_s)


def start_local_ray(ray: Any, **options: Any) -> None:
    """``ray.init`` the local test cluster (:data:`LOCAL_CLUSTER`, updated by ``options``).

    If the start fails (a raylet slow to register under load), what it started is shut down
    and it is tried once more; a second failure is raised, with the first as its context.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = {**LOCAL_CLUSTER, **options}
    before = _descendants()
    try:
        ray.init(**kwargs)
    except Exception:
        with contextlib.suppress(Exception):  # what a failed start left registered
            ray.shutdown()
        _end(_descendants() - before)
        ray.init(**kwargs)
