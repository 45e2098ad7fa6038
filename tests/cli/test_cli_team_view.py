"""A team's view: ``footprint --by user|host|tag|month`` and ``runs`` a page at a time."""

from __future__ import annotations

import json
import sqlite3
import uuid

import pytest
from cli_support import assert_one_line_error, call

from wattwise.store import (
    RunRecord,
    RunStatus,
    SQLiteRunStore,
    footprint_by,
    get_store,
    open_store,
    project_footprint,
    role_of,
    store_footprint,
)

T0 = 1_740_000_000.0  # 2025-02-19
MONTH = 31 * 86400.0


def _add(store: object, i: int, *, user: str | None, host: str, tags: list[str],
         status: RunStatus = RunStatus.FINISHED, role: str | None = None,
         kind: str = "python", parent: str | None = None) -> str:  # fmt: skip
    rid = uuid.uuid4().hex
    start = T0 + (i % 3) * MONTH + i
    store.insert_run(RunRecord(  # type: ignore[attr-defined]
        id=rid, name=f"r{i}", kind=kind, status=RunStatus.RUNNING, started_at=start,
        heartbeat_at=start, host=host, pid=1, tags=tags, user=user, role=role,
        parent_id=parent, region="FR",
    ))  # fmt: skip
    store.flush_run(rid, {  # type: ignore[attr-defined]
        "status": status, "ended_at": start + 10, "duration_s": 10.0, "energy_j": 100.0 * (i + 1),
        "energy_band_j": 10.0, "co2e_g": 0.5 * (i + 1), "heartbeat_at": start + 10,
    })  # fmt: skip
    return rid


def _team(store: object) -> list[str]:
    ids = [
        _add(store, 0, user="ana", host="h1", tags=["bert", "ablation"]),
        _add(store, 1, user="ana", host="h2", tags=["bert"], kind="trial", role="trial"),
        _add(store, 2, user="bo", host="h1", tags=[], status=RunStatus.FAILED),
        _add(store, 3, user="bo", host="h1", tags=["resnet"], role="cache-fill"),
        _add(store, 4, user="cy", host="h3", tags=[]),
    ]
    if isinstance(store, SQLiteRunStore):  # run 4 as a row from before users were recorded
        with sqlite3.connect(store.path) as conn:
            conn.execute('UPDATE runs SET "user" = NULL WHERE id = ?', (ids[4],))
        conn.close()
    _add(store, 5, user="ana", host="h1", tags=["bert"], parent=ids[0])  # nested: not counted
    return ids


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_footprint_from_the_store_matches_the_runs(backend: str, tmp_path: object) -> None:
    store = open_store() if backend == "sqlite" else get_store(f"memory://team-{uuid.uuid4()}")
    _team(store)
    in_python = project_footprint(store.list_runs(), saved_by_reuse=store.reuse_totals())
    assert store_footprint(store).to_dict() == in_python.to_dict()
    assert set(in_python.by_role) == {"final", "tuning", "failed", "cache-fill"}
    assert {role_of(r) for r in store.list_runs(top_level=True)} == set(in_python.by_role)
    by_user = {g.group: g for g in footprint_by(store, "user")}
    assert by_user["ana"].total.runs == 2 and by_user["ana"].total.energy_j == 300.0
    assert by_user["ana"].beyond_final_share == pytest.approx(200 / 300)
    if backend == "sqlite":
        assert by_user[None].total.runs == 1
        assert list(by_user)[-1] is None  # runs without a user come last
    else:
        assert by_user["cy"].total.runs == 1
    by_tag = {g.group: g.total.runs for g in footprint_by(store, "tag")}
    assert by_tag == {"bert": 2, "ablation": 1, "resnet": 1, None: 2}
    months = [g.group for g in footprint_by(store, "month")]
    assert months == sorted(months) and len(months) == 3


def test_footprint_by_on_the_command_line() -> None:
    _team(open_store())
    table = call("footprint", "--by", "user")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].split()[:3] == ["USER", "RUNS", "TIME"]
    assert lines[1].startswith("bo ") and lines[2].startswith("ana ")  # most energy first
    assert "(not recorded)" in table.out and "BEYOND FINAL" in lines[0]
    tags = call("footprint", "--by", "tag")
    assert "(untagged)" in tags.out and "counts under each" in tags.out
    data = json.loads(call("footprint", "--by", "host", "--json").out)
    assert data["by"] == "host"
    assert [g["group"] for g in data["groups"]] == ["h1", "h3", "h2"]
    assert data["groups"][0]["by_role"]["failed"]["runs"] == 1
    plain = json.loads(call("footprint", "--json").out)
    assert plain["total"]["runs"] == 5
    assert_one_line_error(call("footprint", "--by", "colour"), 2, "argument --by")


def test_runs_pages_newest_first() -> None:
    store = open_store()
    ids = [_add(store, i, user="ana", host="h", tags=[]) for i in range(25)]
    newest = sorted(store.list_runs(), key=lambda r: -r.started_at)
    page = call("runs")
    assert page.code == 0, page.err
    rows = page.out.splitlines()[1:-1]
    assert [r.split()[0] for r in rows] == [r.id[:8] for r in newest[:20]]
    assert page.out.splitlines()[-1] == "5 more run(s); use --limit N, --offset 20 or --all."
    second = call("runs", "--offset", "20")
    assert [r.split()[0] for r in second.out.splitlines()[1:]] == [r.id[:8] for r in newest[20:]]
    assert "more run" not in second.out
    everything = call("runs", "--all", "--json")
    assert len(json.loads(everything.out)) == 25 and everything.err == ""
    limited = call("runs", "--limit", "3", "--json")
    assert [r["id"] for r in json.loads(limited.out)] == [r.id for r in newest[:3]]
    assert "22 more run(s)" in limited.err  # the note stays off the JSON
    assert set(ids) == {r["id"] for r in json.loads(everything.out)}
    assert_one_line_error(call("runs", "--all", "--limit", "2"), 2, "not allowed with")
    assert_one_line_error(call("runs", "--offset", "x"), 2, "whole number >= 0")
    past = call("runs", "--offset", "40")
    assert "No runs past the newest 40 (25 in all)." in past.out
