"""Every list the CLI prints is newest first, like ``git log``: ``runs``, ``cache ls`` and
``footprint --by month`` (text and ``--json``). Groupings that are not times (user, host,
tag) stay largest energy first."""

from __future__ import annotations

import json
import time
import uuid

from cli_support import call

import wattwise
from wattwise.cache import cached
from wattwise.store import RunRecord, RunStatus, open_store
from wattwise.testing import FakeMeter

T0 = 1_740_000_000.0  # 2025-02-19


def test_cache_ls_lists_the_newest_entry_first() -> None:
    @cached
    def stage(n: int) -> list[int]:
        return list(range(n))

    with wattwise.track("fill", meters=[FakeMeter({"cpu:0": 5.0})]):
        for n in (1, 2, 3):
            stage(n)
            time.sleep(0.05)  # distinct write times
    written = [stage.cache_key(n) for n in (1, 2, 3)]
    listed = json.loads(call("cache", "ls", "--json").out)["entries"]
    assert [e["key"] for e in listed] == written[::-1]
    rows = call("cache", "ls").out.splitlines()[1:4]
    assert [r.split()[0] for r in rows] == [k[:12] for k in written[::-1]]


def test_footprint_by_month_lists_the_newest_month_first() -> None:
    store = open_store()
    for month in range(3):  # Feb, Mar, Apr 2025, each a little more energy
        start = T0 + month * 31 * 86400.0
        rid = uuid.uuid4().hex
        store.insert_run(RunRecord(
            id=rid, name=f"m{month}", kind="python", status=RunStatus.RUNNING,
            started_at=start, heartbeat_at=start, host="h", pid=1, region="FR",
        ))  # fmt: skip
        store.flush_run(rid, {"status": RunStatus.FINISHED, "ended_at": start + 10,
                              "duration_s": 10.0, "energy_j": 100.0 * (month + 1),
                              "co2e_g": 1.0, "heartbeat_at": start + 10})  # fmt: skip
    store.close()
    data = json.loads(call("footprint", "--by", "month", "--json").out)
    assert [g["group"] for g in data["groups"]] == ["2025-04", "2025-03", "2025-02"]
    table = call("footprint", "--by", "month").out.splitlines()
    assert [line.split()[0] for line in table[1:4]] == ["2025-04", "2025-03", "2025-02"]
    users = json.loads(call("footprint", "--by", "host", "--json").out)["groups"]
    assert [g["group"] for g in users] == ["h"]  # not a time: unchanged
