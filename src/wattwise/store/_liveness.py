"""Is a run still alive? Its processes on this host; its heartbeat elsewhere.

A run records who writes it (the tracker: pid and process start time) and, for ``wattwise
run``, the command it measures (pid and start time). On the same host liveness is the
process: a pid is the same process only if its start time matches too (pids are reused).
On another host only the heartbeat can tell: a run is stale when its last flush is older
than three of its own flush intervals plus a margin.

Readers call :func:`effective_state` and never write what it says; writers persist
``crashed`` through ``BaseRunStore.reap``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

#: Flush interval assumed for runs whose record does not say (the settings' default).
DEFAULT_FLUSH_S = 5.0
#: A remote run is stale after this many of its own flush intervals (plus a margin).
STALE_FLUSHES = 3
#: Linux: start times come from /proc (exact clock ticks), elsewhere from psutil.
_PROC = os.path.exists("/proc/self/stat")


def start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since boot on Linux), or None if it is gone.

    A zombie (dead, not yet reaped) counts as gone.
    """
    if _PROC:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                text = handle.read()
        except OSError:
            return None
        fields = text[text.rfind(b")") + 2 :].split()
        if not fields or fields[0] in (b"Z", b"X"):
            return None
        # Field 22 of proc(5), the start time in clock ticks since boot; the split starts at
        # field 3 (state).
        return round(int(fields[19]) / os.sysconf("SC_CLK_TCK"), 2)
    try:  # pragma: no cover - other platforms
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return round(float(proc.create_time()), 1)
    except Exception:  # pragma: no cover - psutil.Error and platform gaps alike
        return None


def identity(pid: int | None = None) -> dict[str, Any]:
    """``{"pid", "start_time"}`` of a process (default: this one), for a run's record."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "start_time": start_time(pid)}


def is_alive(pid: int | None, started: float | None) -> bool:
    """True if process ``pid`` exists and (when ``started`` is known) is the same process."""
    if not pid or pid <= 0:
        return False
    now = start_time(pid)
    if now is None:
        return False
    if started is None:
        return True
    tolerance = 0.011 if _PROC else 1.0
    return abs(now - float(started)) < tolerance


@dataclasses.dataclass(frozen=True)
class Liveness:
    """What a reader should show for a run the ledger says is running.

    Attributes:
        alive: True to show it running, False to show it crashed.
        note: Why, when that is worth saying (``tracker lost; command still running as pid N``).
    """

    alive: bool
    note: str | None = None


def flush_interval_s(record: Mapping[str, Any]) -> float:
    """The run's own flush interval from its record (``sampler.flush_s``), else the default."""
    sampler = record.get("sampler")
    value = sampler.get("flush_s") if isinstance(sampler, Mapping) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_FLUSH_S


def effective_state(
    *, host: str, pid: int, heartbeat_at: float, record: Mapping[str, Any], now: float,
    this_host: str, margin_s: float,
) -> Liveness:  # fmt: skip
    """Alive or crashed, for a run whose status in the ledger is ``running``.

    Args:
        host: Host of the run's tracker.
        pid: Pid of the run's tracker (the ledger's ``pid`` column).
        heartbeat_at: The run's last flush (Unix seconds).
        record: The run's record (``liveness`` and ``sampler.flush_s`` are read).
        now: The time to judge at.
        this_host: The reader's host name.
        margin_s: Added to the stale window for runs on other hosts.
    """
    found = record.get("liveness")
    live: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if host != this_host:
        window = STALE_FLUSHES * flush_interval_s(record) + margin_s
        if now - heartbeat_at <= window:
            return Liveness(True)
        return Liveness(False, f"no heartbeat for {now - heartbeat_at:.0f} s (stale after "
                               f"{window:.0f} s, 3 flush intervals + margin)")  # fmt: skip
    given = live.get("tracker")
    tracker: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    if pid == os.getpid() and tracker.get("start_time") in (None, start_time(pid)):
        return Liveness(True)
    if is_alive(pid, tracker.get("start_time")):
        return Liveness(True)
    command = live.get("command")
    if isinstance(command, Mapping) and is_alive(command.get("pid"), command.get("start_time")):
        return Liveness(
            True, f"tracker lost; command still running as pid {command.get('pid')}"
        )
    return Liveness(False, "the tracker process is gone" + (
        " and so is its command" if command else ""))  # fmt: skip
