"""The ledger contract suite: the tests every run store must pass, over a real backend.

Like Optuna's ``StorageTestCase``: subclass :class:`RunStoreContract` in a test module (the
class name must start with ``Test``) and give it a ``store_url`` fixture that returns the
URL of a fresh, empty ledger; every ``test_*`` method below then runs on your backend::

    import pytest
    from wattwise.testing.store_contract import RunStoreContract

    class TestAcmeStore(RunStoreContract):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"acme://{tmp_path}/ledger"

Optional hooks say what a backend can do; a test whose hook is missing is skipped with
the reason:

* :attr:`shared_between_processes` (default True): other processes open the same ledger
  by URL, so the concurrency and reaping tests start real processes (16 writers);
  otherwise they use 16 threads.
* :meth:`old_ledger_url`: a ledger written by an earlier release (migrations).
* :meth:`blocked`: a context in which writes to the ledger fail (issue 8's faults).

What it checks (``docs/explanation/ledger.md``): the run lifecycle, metrics, samples,
annotations, artifacts, cache hits, paging, counting and aggregation, ``user`` and
``role``, read-only stores and readers that never write, explicit reaping (by exactly one
of several concurrent reapers), at least 16 concurrent writer processes losing no run and
no metric row, migrations of an old ledger, spooled writes merged once, and a store kept
open for long seeing what other writers commit later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wattwise.exceptions import InvalidParameterError, RunNotFoundError, StoreError
from wattwise.store import (
    GROUP_BY,
    SCHEMA_VERSION,
    BaseRunStore,
    ComponentEnergy,
    ReuseEvent,
    RunRecord,
    RunStatus,
    get_store,
    identity,
    login_name,
)

#: What the v0.1 ledger fixture holds (``tests/store/fixtures/ledger_v0_1.db``, written by
#: the v0.1 release's own store code: ``tests/store/fixtures/make_ledger_v0_1.py``). A
#: backend's :meth:`RunStoreContract.old_ledger_url` builds the same runs at schema 2.
OLD_LEDGER: dict[str, Any] = {
    "runs": [
        {"id": "0b5e1d3c9a7f4e2d8c6b4a2e0f1d3c5b", "name": "prepare-data", "kind": "command",
         "status": "finished", "study_id": None, "energy_j": 120.5, "co2e_g": 0.75,
         "metrics": [(0, "rows", 1000.0, 1764000001.0)]},
        {"id": "1c6f2e4d0b8a5f3e9d7c5b3f1a2e4d6c", "name": "train", "kind": "python",
         "status": "finished", "study_id": None, "energy_j": 3600.0, "co2e_g": 22.5,
         "metrics": [(0, "loss", 2.0, 1764000061.0), (1, "loss", 1.25, 1764000062.0),
                     (None, "accuracy", 0.9, 1764000063.0)]},
        {"id": "2d7a3f5e1c9b6a4f0e8d6c4a2b3f5e7d", "name": "trial-0", "kind": "trial",
         "status": "finished", "study_id": "study-1", "energy_j": 900.0, "co2e_g": 5.625,
         "metrics": [(0, "objective", 0.5, 1764000121.0)]},
        {"id": "3e8b4a6f2d0c7b5a1f9e7d5b3c4a6f8e", "name": "lost", "kind": "command",
         "status": "crashed", "study_id": None, "energy_j": 42.0, "co2e_g": 0.25,
         "metrics": []},
    ],
    "start": 1764000000.0,  # the runs start a minute apart from here, on host "v01-host"
    "diff": b"diff --git a/train.py b/train.py\n+lr = 0.1\n",
    "reuse_energy_j": 250.0,
}

#: Concurrent writers in :meth:`RunStoreContract.test_concurrent_writers_lose_nothing`.
WRITERS = 16

_WRITER = r"""
import os, socket, sys, time, uuid
from wattwise.store import RunRecord, RunStatus, get_store
url, go = sys.argv[1], sys.argv[5]
worker, runs, points = (int(a) for a in sys.argv[2:5])
while not os.path.exists(go):
    time.sleep(0.005)
store = get_store(url, busy_timeout_s=120)
for i in range(runs):
    now = time.time()
    rid = uuid.uuid4().hex
    store.insert_run(RunRecord(id=rid, name=f"w{worker}-{i}", kind="python",
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now,
        host=socket.gethostname(), pid=os.getpid(), tags=[f"w{worker}"]))
    store.flush_run(rid, {"status": "finished", "ended_at": now, "energy_j": 1.0,
                          "heartbeat_at": now},
                    metrics=[(k, "loss", float(k), now) for k in range(points)],
                    samples=[(0.5, "cpu", 10.0, 5.0)])
    store.annotate_run(rid, "notes", f"from worker {worker}", append=True)
store.close()
print("done", worker, flush=True)
"""

_LATER = r"""
import sys
from wattwise.testing.store_contract import _commit_later
print(_commit_later(sys.argv[1], sys.argv[2]), flush=True)
"""

_REAPER = r"""
import json, os, sys, time
from wattwise.store import get_store
url, go = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.005)
store = get_store(url, busy_timeout_s=120)
print(json.dumps(store.reap()), flush=True)
store.close()
"""


def make_run(
    *, name: str = "run", started_at: float | None = None, kind: str = "python",
    status: RunStatus = RunStatus.RUNNING, **fields: Any,
) -> RunRecord:  # fmt: skip
    """A run as a tracker inserts it: this host and process, alive unless told otherwise."""
    now = time.time() if started_at is None else started_at
    fields.setdefault("heartbeat_at", now)
    fields.setdefault("host", socket.gethostname())
    fields.setdefault("pid", os.getpid())
    fields.setdefault("record", {"liveness": {"tracker": identity()}})
    return RunRecord(id=uuid.uuid4().hex, name=name, kind=kind, status=status,
                     started_at=now, **fields)  # fmt: skip


def _commit_later(url: str, name: str) -> str:
    """Open the ledger at ``url`` afresh, add a finished run (5 J, one metric point) in two
    writes, close it; the run's id (another writer, for the long-lived reader test)."""
    store = get_store(url, busy_timeout_s=120)
    try:
        run = make_run(name=name)
        store.insert_run(run)
        now = time.time()
        store.flush_run(run.id, {"status": RunStatus.FINISHED, "ended_at": now,
                                 "heartbeat_at": now, "energy_j": 5.0},
                        metrics=[(0, "loss", 0.5, now)])  # fmt: skip
    finally:
        store.close()
    return run.id


def _finish(store: BaseRunStore, run: RunRecord, **fields: Any) -> None:
    values = {"status": RunStatus.FINISHED, "ended_at": run.started_at + 10,
              "heartbeat_at": run.started_at + 10, **fields}  # fmt: skip
    store.flush_run(run.id, values)


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip


def _finish_all(procs: list[subprocess.Popen[str]], timeout_s: float) -> list[str]:
    """Each process's stdout; kills (by their own handles) any still running at the end."""
    outputs = []
    deadline = time.monotonic() + timeout_s
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.returncode == 0, err[-2000:]
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


class RunStoreContract:
    """Base class of a backend's contract tests; subclasses give a ``store_url`` fixture."""

    #: Other processes can open the same ledger by URL.
    shared_between_processes: bool = True
    #: The subclass overrides :meth:`blocked` (the fault tests run).
    can_block: bool = False

    # -- hooks -------------------------------------------------------------------------

    @pytest.fixture
    def store_url(self) -> str:  # pragma: no cover - every subclass overrides it
        """The URL of a fresh, empty ledger (override as a fixture)."""
        pytest.skip("the subclass gives no store_url fixture")

    def old_ledger_url(self, tmp_path: Path) -> str | None:
        """The URL of a ledger written by the v0.1 release (schema 2) holding
        :data:`OLD_LEDGER` (None: the backend has no ledgers that old)."""
        return None

    @contextlib.contextmanager
    def blocked(self, store_url: str) -> Iterator[None]:
        """Within this context every write to the ledger fails (another process holds it).

        The default has no way to block: the fault tests skip.
        """
        if not self.can_block:
            pytest.skip("this backend gives no way to block its writes (blocked hook)")
        yield

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[BaseRunStore]:
        """An open store on the fresh ledger, closed after the test."""
        opened = get_store(store_url)
        yield opened
        opened.close()

    # -- identity ----------------------------------------------------------------------

    def test_url_opens_the_same_ledger(self, store: BaseRunStore) -> None:
        run = make_run(name="one")
        store.insert_run(run)
        again = get_store(store.url)
        try:
            assert again.get_run(run.id).name == "one"
            assert again.url == store.url
        finally:
            again.close()
        reopened = store.reopen()
        assert reopened.get_run(run.id).id == run.id
        reopened.close()

    def test_url_holds_no_password(self, store: BaseRunStore) -> None:
        scheme, _, rest = store.url.partition("://")
        assert scheme
        userinfo = rest.split("@", 1)[0] if "@" in rest else ""
        assert ":" not in userinfo

    def test_schema_is_current_after_a_write(self, store: BaseRunStore) -> None:
        store.insert_run(make_run())
        assert store.schema_version() == SCHEMA_VERSION

    # -- lifecycle ---------------------------------------------------------------------

    def test_lifecycle_round_trips_every_field(self, store: BaseRunStore) -> None:
        parts = [
            ComponentEnergy("cpu", 10.0, 40.0, 1.5, "counter", "cpu-rapl", "rapl", {"n": 1}),
            ComponentEnergy("gpu", 20.0, 20.0, None, "sampled", "gpu-nvml", "nvml"),
        ]
        run = make_run(name="train", kind="command", tags=["a", "b"], params={"lr": 0.1},
                       region="FR", study_id=None, components=parts, role="final")  # fmt: skip
        run.record["command"] = ["python", "train.py"]
        store.insert_run(run)
        got = store.get_run(run.id)
        assert got.status is RunStatus.RUNNING
        assert (got.name, got.kind, got.tags, got.params) == ("train", "command", ["a", "b"],
                                                               {"lr": 0.1})  # fmt: skip
        assert (got.host, got.pid, got.region, got.role) == (run.host, run.pid, "FR", "final")
        assert got.record["command"] == ["python", "train.py"]
        assert [c.component for c in got.components] == ["cpu", "gpu"]
        assert got.components[0] == parts[0]
        assert got.components[1].band_j is None
        store.flush_run(
            run.id,
            {"status": RunStatus.FINISHED, "ended_at": run.started_at + 5, "duration_s": 5.0,
             "energy_j": 30.0, "energy_band_j": 1.5, "co2e_g": 0.25, "exit_code": 0,
             "heartbeat_at": run.started_at + 5},
            components=[ComponentEnergy("cpu", 11.0, 41.0, 1.0, "counter", "cpu-rapl", "rapl")],
        )  # fmt: skip
        done = store.get_run(run.id)
        assert done.status is RunStatus.FINISHED
        assert (done.energy_j, done.co2e_g) == (30.0, 0.25)
        assert (done.duration_s, done.exit_code) == (5.0, 0)
        assert [(c.component, c.energy_j) for c in done.components] == [("cpu", 11.0),
                                                                        ("gpu", 20.0)]  # fmt: skip

    def test_values_are_copies(self, store: BaseRunStore) -> None:
        run = make_run(tags=["a"], params={"lr": 0.1})
        store.insert_run(run)
        run.tags.append("changed after the insert")
        run.params["lr"] = 9.0
        got = store.get_run(run.id)
        assert (got.tags, got.params) == (["a"], {"lr": 0.1})
        got.tags.append("changed by a reader")
        got.record["mine"] = True
        store.flush_run(run.id, {"energy_j": 3.0})
        assert got.energy_j == 0.0  # a later write does not reach a record already read
        again = store.get_run(run.id)
        assert (again.tags, "mine" in again.record, again.energy_j) == (["a"], False, 3.0)

    def test_every_run_records_its_user_and_host(self, store: BaseRunStore) -> None:
        mine = make_run()
        store.insert_run(mine)
        theirs = make_run(user="colleague", host="gpu-box-2")
        store.insert_run(theirs)
        assert store.get_run(mine.id).user == login_name()
        assert store.get_run(theirs.id).user == "colleague"
        assert store.get_run(theirs.id).host == "gpu-box-2"
        assert store.get_run(mine.id).to_dict()["user"] == login_name()

    def test_identity_columns_cannot_change(self, store: BaseRunStore) -> None:
        run = make_run()
        store.insert_run(run)
        for column in ("id", "started_at", "host", "pid", "user", "no_such_column"):
            with pytest.raises(StoreError):
                store.flush_run(run.id, {column: "x"})
        assert store.get_run(run.id).host == run.host

    def test_a_run_id_is_inserted_once(self, store: BaseRunStore) -> None:
        run = make_run()
        store.insert_run(run)
        with pytest.raises(StoreError):
            store.insert_run(dataclasses.replace(run, name="again"))
        assert store.get_run(run.id).name == run.name

    def test_unknown_runs_and_prefixes(self, store: BaseRunStore) -> None:
        store.insert_run(make_run())
        with pytest.raises(RunNotFoundError):
            store.get_run("doesnotexist")
        with pytest.raises(RunNotFoundError):
            store.flush_run("doesnotexist", {"energy_j": 1.0})
        with pytest.raises(RunNotFoundError):
            store.annotate_run("doesnotexist", "note", 1)
        a = make_run()
        a.id = "abcd" + "1" * 28
        b = make_run()
        b.id = "abcd" + "2" * 28
        store.insert_run(a)
        store.insert_run(b)
        assert store.get_run("abcd1").id == a.id
        with pytest.raises(RunNotFoundError, match="ambiguous"):
            store.get_run("abcd")
        with pytest.raises(RunNotFoundError):
            store.get_run("ab")  # under 4 characters: exact ids only

    # -- what runs carry ---------------------------------------------------------------

    def test_metrics_keep_logging_order(self, store: BaseRunStore) -> None:
        run, other = make_run(), make_run()
        store.insert_run(run)
        store.insert_run(other)
        first = [(0, "loss", 2.0, 1.0), (None, "acc", 0.5, 1.5)]
        second = [(1, "loss", 1.0, 2.0), (2, "loss", 0.5, 3.0)]
        store.flush_run(run.id, {}, metrics=first)
        store.flush_run(other.id, {}, metrics=[(0, "x", 9.0, 0.0)])
        store.flush_run(run.id, {}, metrics=second)
        assert store.metrics(run.id) == first + second
        assert store.metrics("nobody") == []
        everything = list(store.iter_metrics())
        expected = [(run.id, *m) for m in first + second] + [(other.id, 0, "x", 9.0, 0.0)]
        assert everything == sorted(expected, key=lambda point: point[0])  # by run, in order
        assert list(store.iter_metrics([run.id])) == [(run.id, *m) for m in first + second]

    def test_samples_by_time(self, store: BaseRunStore) -> None:
        run = make_run()
        store.insert_run(run)
        store.flush_run(run.id, {}, samples=[(2.0, "cpu", 10.0, 20.0), (1.0, "gpu", 5.0, 5.0)])
        store.flush_run(run.id, {}, samples=[(1.0, "cpu", 9.0, 9.0)])
        assert store.samples(run.id) == [(1.0, "cpu", 9.0, 9.0), (1.0, "gpu", 5.0, 5.0),
                                         (2.0, "cpu", 10.0, 20.0)]  # fmt: skip

    def test_annotations_merge_into_the_record(self, store: BaseRunStore) -> None:
        run = make_run()
        store.insert_run(run)
        store.annotate_run(run.id, "seeds", {"python": 1})
        store.annotate_run(run.id, "seeds", {"python": 2})
        store.annotate_run(run.id, "data", {"sha256": "ab"}, append=True)
        store.annotate_run(run.id, "data", {"sha256": "cd"}, append=True)
        store.flush_run(run.id, {"record": {"command": ["x"]}})  # the owner rewrites record
        record = store.get_run(run.id).record
        assert record["seeds"] == {"python": 2}
        assert record["data"] == [{"sha256": "ab"}, {"sha256": "cd"}]
        assert record["command"] == ["x"]

    def test_artifacts_are_checked_and_shared(self, store: BaseRunStore) -> None:
        a, b = make_run(), make_run()
        store.insert_run(a)
        store.insert_run(b)
        content = b"diff --git a b\n\x00\xff"
        digest = store.put_artifact(a.id, "git.diff", content)
        assert store.put_artifact(b.id, "git.diff", content) == digest
        assert store.get_artifact(a.id, "git.diff") == content
        assert store.get_artifact(a.id, "missing") is None
        store.put_artifact(a.id, "git.diff", b"new", created_at=123.0)
        assert store.get_artifact(a.id, "git.diff") == b"new"
        assert store.get_artifact(b.id, "git.diff") == content
        listed = store.artifacts(a.id)
        assert [(x["name"], x["size_bytes"], x["created_at"]) for x in listed] == [
            ("git.diff", 3, 123.0)
        ]
        store.put_artifact(a.id, "empty", b"")
        assert store.get_artifact(a.id, "empty") == b""
        assert [x["name"] for x in store.artifacts(a.id)] == ["empty", "git.diff"]

    def test_reuse_records(self, store: BaseRunStore) -> None:
        consumer = make_run(user="ana")
        store.insert_run(consumer)
        events = [
            ReuseEvent(1.0, "k" * 64, "m:f", "p1", consumer.id, 100.0, 2.0, 10.0, "measured",
                       "FR 2024", "file:///c"),
            ReuseEvent(2.0, "j" * 64, "m:g", None, None, 50.0, 1.0, 5.0, "estimated",
                       "FR 2024", "s3://b/c"),
            ReuseEvent(3.0, "k" * 64, "m:f", "p1", consumer.id, 100.0, 2.0, 10.0, "measured",
                       "FR 2024", "file:///c", user="bo"),
        ]  # fmt: skip
        for event in events:
            store.add_reuse(event)
        # A hit without a user is booked to the consuming run's user; one outside any run
        # has none; a user given is kept.
        saved = [dataclasses.replace(events[0], user="ana"), events[1], events[2]]
        assert store.reuse_events() == saved
        assert store.reuse_events(cache_key="j" * 64) == saved[1:2]
        assert store.reuse_events(consumer_run_id=consumer.id) == [saved[0], saved[2]]
        totals = store.reuse_totals()
        assert (totals.hits, totals.energy_j) == (3, 250.0)
        assert (totals.co2e_g, totals.duration_s) == (5.0, 25.0)
        by_user = {u: (t.hits, t.energy_j, t.co2e_g, t.duration_s)
                   for u, t in store.reuse_by_user().items()}  # fmt: skip
        assert by_user == {"ana": (1, 100.0, 2.0, 10.0), None: (1, 50.0, 1.0, 5.0),
                           "bo": (1, 100.0, 2.0, 10.0)}  # fmt: skip

    def test_text_that_is_not_valid_unicode_is_recorded_escaped(
        self, store: BaseRunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # os.fsdecode(b"a\xff") is "a\udcff" (a lone surrogate, as for a filename that is
        # not UTF-8): no SQL ledger can hold it, yet the run is recorded with it written
        # as the escape a reader can see: a\xff (the byte), \ud800 (any other surrogate).
        from wattwise.store import Spool, read_spool

        odd, shown = "a\udcff", "a\\xff"
        part = ComponentEnergy(odd, 1.0, 1.0, None, "counter", odd, odd, {odd: [odd]})
        run = make_run(name=odd, tags=[odd, "ok"], params={odd: odd}, region=odd,
                       components=[part])  # fmt: skip
        run.record["command"] = ["python", odd, "\ud800x", "é\U0001f600"]
        run.record["job"] = {"id": odd}
        store.insert_run(run)
        assert run.name == odd  # the caller's record is left as it is
        got = store.get_run(run.id)
        assert (got.name, got.tags, got.params, got.region) == (shown, [shown, "ok"],
                                                                {shown: shown}, shown)
        assert got.record["command"] == ["python", shown, "\\ud800x", "é\U0001f600"]
        assert got.job_id == shown
        assert [(c.component, c.meter, c.source, c.info) for c in got.components] == [
            (shown, shown, shown, {shown: [shown]})]  # fmt: skip
        assert [r.id for r in store.list_runs(job_id=shown)] == [run.id]
        assert [r.group for r in store.aggregate(group_by="tag")] == sorted([shown, "ok"])

        store.flush_run(run.id, {"name": odd + "2", "tags": [odd]},
                        samples=[(0.5, odd, 10.0, 5.0)], metrics=[(0, odd, 1.0, 2.0)])  # fmt: skip
        store.annotate_run(run.id, odd, [odd])
        assert store.put_artifact(run.id, odd, b"diff") == store.artifacts(run.id)[0]["sha256"]
        store.add_reuse(ReuseEvent(1.0, "k" * 64, odd, odd, run.id, 1.0, 0.1, 1.0, "measured",
                                   odd, odd))  # fmt: skip
        got = store.get_run(run.id)
        assert (got.name, got.tags, got.record[shown]) == (shown + "2", [shown], [shown])
        assert store.samples(run.id) == [(0.5, shown, 10.0, 5.0)]
        assert store.metrics(run.id) == [(0, shown, 1.0, 2.0)]
        assert [a["name"] for a in store.artifacts(run.id)] == [shown]
        assert store.get_artifact(run.id, shown) == b"diff"
        (hit,) = store.reuse_events()
        assert (hit.function, hit.producer_run_id, hit.basis, hit.cache_url) == (
            shown, shown, shown, shown)  # fmt: skip

        # A spooled run (the spool is JSON, which keeps the surrogate) merges the same way.
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        later = make_run(name=odd)
        spool = Spool(store.path, later.id, dataclasses.asdict(later), prefer_local=True)
        path = spool.append({"fields": {"name": odd, "heartbeat_at": later.started_at + 1},
                             "metrics": [[1, odd, 3.0, 4.0]]}, reason=odd)  # fmt: skip
        spool.close()
        spooled = read_spool(path)
        assert spooled is not None
        assert store.merge_spooled(spooled) == 1
        assert store.get_run(later.id).name == shown
        assert store.metrics(later.id) == [(1, shown, 3.0, 4.0)]

        # A read with such text finds nothing, or says so in one line: it never crashes.
        found: list[RunRecord] | str
        try:
            found = store.list_runs(user=odd)
        except StoreError as err:
            found = str(err)
        assert found == [] or (isinstance(found, str) and "\n" not in found), found

    # -- listing, paging, aggregation --------------------------------------------------

    def _team(self, store: BaseRunStore) -> list[RunRecord]:
        """Six finished top-level runs by two users on two hosts, and one nested run."""
        base = 1_700_000_000.0  # 2023-11-14
        month = 31 * 86400.0
        specs = [
            ("ana", "h1", ["a"], "final", None, 0.0, 10.0),
            ("ana", "h1", ["a", "b"], "tuning", "s1", 1.0, 20.0),
            ("bo", "h2", [], "trial", "s1", 2.0, 40.0),
            ("bo", "h2", ["b"], None, None, month, 80.0),
            ("bo", "h1", [], "cache-fill", None, month + 1, 160.0),
            ("ana", "h2", [], None, "s2", month + 2, 320.0),
        ]
        runs = []
        for user, host, tags, role, study, offset, energy in specs:
            run = make_run(
                name=f"{user}-{energy:g}", started_at=base + offset, user=user, host=host,
                tags=tags, role=role, study_id=study, region="FR",
            )  # fmt: skip
            store.insert_run(run)
            _finish(store, run, energy_j=energy, co2e_g=energy / 10, duration_s=1.0,
                    energy_band_j=1.0)  # fmt: skip
            runs.append(run)
        child = make_run(name="nested", started_at=base + 3, user="ana", parent_id=runs[0].id)
        store.insert_run(child)
        _finish(store, child, energy_j=5.0)
        failed = make_run(name="failed", started_at=base + 4, user="bo", host="h2")
        store.insert_run(failed)
        store.flush_run(failed.id, {"status": RunStatus.FAILED, "energy_j": 640.0})
        return [*runs, child, failed]

    def test_listing_pages_from_the_newest(self, store: BaseRunStore) -> None:
        runs = self._team(store)
        by_start = sorted(runs, key=lambda r: r.started_at)
        assert [r.id for r in store.list_runs()] == [r.id for r in by_start]
        assert store.count_runs() == len(runs)
        page = store.list_runs(limit=3)
        assert [r.id for r in page] == [r.id for r in by_start[-3:]]
        newest = store.list_runs(limit=3, newest_first=True)
        assert [r.id for r in newest] == [r.id for r in reversed(by_start[-3:])]
        second = store.list_runs(limit=3, offset=3, newest_first=True)
        assert [r.id for r in second] == [r.id for r in reversed(by_start[-6:-3])]
        assert store.list_runs(limit=3, offset=100) == []
        assert store.list_runs(limit=0) == []

    def test_listing_filters_and_counts(self, store: BaseRunStore) -> None:
        self._team(store)
        cases: list[dict[str, Any]] = [
            {"user": "ana"}, {"host": "h2"}, {"study_id": "s1"}, {"top_level": True},
            {"status": "failed"}, {"status": "finished", "user": "bo"},
            {"user": "nobody"},
        ]  # fmt: skip
        everything = store.list_runs()
        for filters in cases:
            expected = [
                r.id for r in everything
                if all((r.status.value if k == "status" else getattr(r, k)) == v
                       for k, v in filters.items() if k != "top_level")
                and not (filters.get("top_level") and r.parent_id is not None)
            ]  # fmt: skip
            assert [r.id for r in store.list_runs(**filters)] == expected, filters
            assert store.count_runs(**filters) == len(expected), filters

    def test_aggregate_matches_the_runs(self, store: BaseRunStore) -> None:
        self._team(store)
        runs = [r for r in store.list_runs() if r.parent_id is None]
        for group_by in GROUP_BY:
            rows = store.aggregate(group_by)
            assert sum(row.runs for row in rows) >= len(runs), group_by
            if group_by != "tag":  # a run counts once per tag
                assert sum(row.runs for row in rows) == len(runs), group_by
                assert sum(row.energy_j for row in rows) == pytest.approx(
                    sum(r.energy_j for r in runs)
                ), group_by
        by_user: dict[str | None, float] = {}
        for row in store.aggregate("user"):
            by_user[row.group] = by_user.get(row.group, 0.0) + row.energy_j
        assert by_user == {"ana": 10.0 + 20.0 + 320.0, "bo": 40.0 + 80.0 + 160.0 + 640.0}
        months = {row.group for row in store.aggregate("month")}
        assert months == {"2023-11", "2023-12"}
        tags: dict[str | None, int] = {}
        for row in store.aggregate("tag"):
            tags[row.group] = tags.get(row.group, 0) + row.runs
        assert tags == {"a": 2, "b": 2, None: 4}
        roles = {(row.role, row.status): row.runs for row in store.aggregate("none")}
        # Declared roles kept; older rows (no role) inferred: a study's run is tuning.
        assert roles == {("final", "finished"): 2, ("tuning", "finished"): 2,
                         ("trial", "finished"): 1, ("cache-fill", "finished"): 1,
                         ("final", "failed"): 1}  # fmt: skip
        failed = [row for row in store.aggregate("none") if row.status == "failed"]
        assert failed[0].footprint_role == "failed"
        nested = sum(row.runs for row in store.aggregate("none", top_level=False))
        assert nested == len(runs) + 1
        only_ana = store.aggregate("host", user="ana")
        assert sum(row.runs for row in only_ana) == 3
        first = store.aggregate("none")
        assert min(row.first_started_at or 0 for row in first) == min(r.started_at for r in runs)
        with pytest.raises(InvalidParameterError):
            store.aggregate("colour")

    # -- what the project report reads in bulk ------------------------------------------

    def test_record_groups_count_every_run_once(self, store: BaseRunStore) -> None:
        base = 1_700_000_000.0
        hw = {"cpu": {"model_name": "EPYC", "sockets": 1}, "ram_gb": 64}
        cpu = ComponentEnergy("cpu", 1.0, 2.0, None, "model", "cpu-model", "table")
        gpu = ComponentEnergy("gpu", 1.0, 2.0, 0.1, "counter", "gpu-nvml", "nvml")
        specs: list[tuple[str, list[ComponentEnergy], Any, Any, dict[str, Any]]] = [
            # host, components, hardware, pue, extra record
            ("h1", [cpu], hw, {"value": 1.0}, {}),
            ("h1", [cpu], hw, {"value": 1.0}, {"command": ["a"]}),  # same group
            ("h1", [cpu, gpu], hw, {"value": 1.0}, {}),
            ("h2", [cpu], None, {"value": 1.5, "source": "site"}, {}),
            ("h2", [], None, None, {"loss": float("nan")}),  # not strict JSON
        ]
        for i, (host, parts, hardware, pue, extra) in enumerate(specs):
            record: dict[str, Any] = {"liveness": {"tracker": identity()}, **extra}
            if hardware is not None:
                record["hardware"] = hardware
            if pue is not None:
                record["pue"] = pue
            run = make_run(name=f"r{i}", started_at=base + i, host=host, components=parts,
                           record=record)  # fmt: skip
            store.insert_run(run)
        annotated = make_run(name="annotated", started_at=base + 9, host="h2", components=[cpu])
        store.insert_run(annotated)
        store.annotate_run(annotated.id, "pue", {"value": 2.0})  # merged on read
        groups = store.record_groups(["hardware", "pue"])
        assert sum(g.runs for g in groups) == len(specs) + 1
        found = {(g.host, g.components, json.dumps(g.values, sort_keys=True)): g.runs
                 for g in groups}  # fmt: skip
        assert found == {
            ("h1", ("cpu",), json.dumps({"hardware": hw, "pue": {"value": 1.0}},
                                        sort_keys=True)): 2,
            ("h1", ("cpu", "gpu"), json.dumps({"hardware": hw, "pue": {"value": 1.0}},
                                              sort_keys=True)): 1,
            ("h2", ("cpu",), json.dumps({"hardware": None, "pue": {"source": "site",
                                                                   "value": 1.5}},
                                        sort_keys=True)): 1,
            ("h2", (), json.dumps({"hardware": None, "pue": None})): 1,
            ("h2", ("cpu",), json.dumps({"hardware": None, "pue": {"value": 2.0}})): 1,
        }  # fmt: skip
        assert groups[0].first_started_at == base  # oldest group first
        assert groups == BaseRunStore.record_groups(store, ["hardware", "pue"])  # the default
        first = next(g for g in groups if g.host == "h1" and g.components == ("cpu",))
        assert (first.first_started_at, first.last_started_at) == (base, base + 1)
        first.values["pue"]["value"] = 9.0  # a copy
        assert store.record_groups(["pue"])[0].values["pue"] == {"value": 1.0}
        with pytest.raises(InvalidParameterError):
            store.record_groups(['a"b'])

    def test_last_metrics_keep_each_keys_last_point(self, store: BaseRunStore) -> None:
        a, b, quiet = make_run(), make_run(), make_run()
        for run in (a, b, quiet):
            store.insert_run(run)
        store.flush_run(a.id, {}, metrics=[(0, "loss", 2.0, 1.0), (None, "acc", 0.5, 1.5)])
        store.flush_run(b.id, {}, metrics=[(0, "loss", 9.0, 0.0)])
        store.flush_run(a.id, {}, metrics=[(1, "loss", 1.0, 2.0)])
        last = store.last_metrics([a.id, b.id, quiet.id, a.id])
        assert last == {a.id: {"acc": 0.5, "loss": 1.0}, b.id: {"loss": 9.0}}
        assert list(last[a.id]) == ["acc", "loss"]  # in the order of their last points
        assert last == BaseRunStore.last_metrics(store, [a.id, b.id, quiet.id])
        assert store.last_metrics([]) == {}

    def test_record_mentions_search_records_and_facts(self, store: BaseRunStore) -> None:
        run = make_run(record={"intensity": {"file": "carbon/ember_2024.csv"},
                               "loss": float("nan")})  # fmt: skip
        store.insert_run(run)
        store.annotate_run(run.id, "data", {"path": "/data/train_set.parquet"}, append=True)
        needles = ["ember_2024.csv", "carbon/ember_2024.csv", "train_set.parquet", "absent.csv"]
        assert store.record_mentions(needles) == set(needles[:3])
        assert BaseRunStore.record_mentions(store, needles) == set(needles[:3])
        assert store.record_mentions([]) == set()

    # -- jobs (issue 11) ---------------------------------------------------------------

    def test_runs_are_found_by_their_job(self, store: BaseRunStore) -> None:
        base = 1_700_000_000.0
        ranks = []
        for rank in range(3):
            run = make_run(name=f"rank{rank}", started_at=base + rank, user="ana")
            run.record["job"] = {"id": "job-7", "rank": rank}
            store.insert_run(run)
            _finish(store, run, energy_j=10.0 * (rank + 1))
            ranks.append(run)
        other = make_run(name="other-job", started_at=base + 5)
        other.record["job"] = {"id": "job-8"}
        store.insert_run(other)
        for record in ({"job": "not a dict"}, {"job": {"id": 7}}, {}):  # no job: NULL
            loose = make_run(name="no-job", started_at=base + 6, record=record)
            store.insert_run(loose)
            assert store.get_run(loose.id).job_id is None
        assert store.get_run(ranks[0].id).job_id == "job-7"
        assert [r.name for r in store.list_runs(job_id="job-7")] == ["rank0", "rank1", "rank2"]
        assert [r.id for r in store.list_runs(job_id="job-7", limit=1, newest_first=True)] == [
            ranks[2].id
        ]
        assert store.count_runs(job_id="job-7") == 3
        assert store.count_runs(job_id="job-7", status="finished") == 3
        assert store.count_runs(job_id="job-8") == 1
        assert store.list_runs(job_id="no-such-job") == []
        rows = store.aggregate("none", job_id="job-7")
        assert (sum(r.runs for r in rows), sum(r.energy_j for r in rows)) == (3, 60.0)
        by_job = {row.group: row.runs for row in store.aggregate("job")}
        assert by_job == {"job-7": 3, "job-8": 1, None: 3}

    def test_a_job_set_later_is_indexed(self, store: BaseRunStore) -> None:
        flushed = make_run(name="flushed")
        store.insert_run(flushed)
        assert store.count_runs(job_id="job-9") == 0
        store.flush_run(flushed.id, {"record": {**flushed.record, "job": {"id": "job-9"}}})
        annotated = make_run(name="annotated")
        store.insert_run(annotated)
        store.annotate_run(annotated.id, "job", {"id": "job-9", "rank": 1})  # another process
        resynced = make_run(name="resynced")
        resynced.record["job"] = {"id": "job-9"}
        store.resync_run(resynced, {"record": resynced.record}, components=[], metrics=[])
        assert sorted(r.name for r in store.list_runs(job_id="job-9")) == [
            "annotated", "flushed", "resynced"
        ]
        # A record rewritten without its job keeps the run in its job (a job never changes).
        store.flush_run(flushed.id, {"record": {"command": ["x"]}})
        assert store.count_runs(job_id="job-9") == 3
        assert store.get_run(annotated.id).job_id == "job-9"

    # -- readers never write; read-only stores -----------------------------------------

    def test_readers_never_write(self, store_url: str) -> None:
        reader = get_store(store_url, readonly=True)
        try:
            before = reader.schema_version()
            with contextlib.suppress(StoreError):  # a ledger named but not created yet
                assert reader.list_runs() == []
            assert reader.schema_version() == before  # reading created nothing
            writer = get_store(store_url)
            run = make_run()
            writer.insert_run(run)
            writer.flush_run(run.id, {}, metrics=[(0, "loss", 1.0, 0.0)])
            writer.close()
            assert [r.id for r in reader.list_runs()] == [run.id]
            assert reader.count_runs() == 1
            assert sum(row.runs for row in reader.aggregate("user")) == 1
            assert reader.reuse_totals().hits == 0
            assert list(reader.iter_metrics()) == [(run.id, 0, "loss", 1.0, 0.0)]
            with pytest.raises(StoreError, match="read-only"):
                reader.insert_run(make_run())
            with pytest.raises(StoreError, match="read-only"):
                reader.annotate_run(run.id, "note", 1)
            with pytest.raises(StoreError, match="read-only"):
                reader.reap()
        finally:
            reader.close()

    def test_reads_show_a_dead_run_crashed_without_writing(self, store: BaseRunStore) -> None:
        stale = make_run(host="another-host", heartbeat_at=time.time() - 3600)
        store.insert_run(stale)
        for _ in range(2):  # reading twice changes nothing
            shown = store.get_run(stale.id)
            assert shown.status is RunStatus.CRASHED
            assert "no heartbeat" in shown.record["liveness"]["note"]
            assert "marked crashed" not in str(shown.record.get("notes"))
        assert store.count_runs(status="crashed") == 1
        assert store.count_runs(status="running") == 0
        assert [r.id for r in store.list_runs(status="crashed")] == [stale.id]
        assert [row.status for row in store.aggregate("none")] == ["crashed"]
        assert store.reap() == [stale.id]  # still running in the ledger until reaped

    # -- reaping -----------------------------------------------------------------------

    def test_reap_marks_only_dead_runs_once(self, store: BaseRunStore) -> None:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        gone = make_run(pid=int(dead.stdout), record={"liveness": {"tracker": {
            "pid": int(dead.stdout), "start_time": 1.0}}})  # fmt: skip
        stale = make_run(host="another-host", heartbeat_at=time.time() - 3600)
        fresh = make_run(host="another-host")
        alive = make_run()
        for run in (gone, stale, fresh, alive):
            store.insert_run(run)
        assert sorted(store.reap()) == sorted([gone.id, stale.id])
        assert store.reap() == []
        reaped = store.get_run(gone.id)
        assert reaped.status is RunStatus.CRASHED
        assert reaped.ended_at == reaped.heartbeat_at
        assert any("marked crashed" in note for note in reaped.record["notes"])
        assert store.get_run(fresh.id).status is RunStatus.RUNNING
        assert store.get_run(alive.id).status is RunStatus.RUNNING

    def test_concurrent_reapers_reap_each_run_once(
        self, store: BaseRunStore, store_url: str, tmp_path: Path
    ) -> None:
        stale = [make_run(host="another-host", heartbeat_at=time.time() - 3600)
                 for _ in range(10)]  # fmt: skip
        for run in stale:
            store.insert_run(run)
        if self.shared_between_processes:
            go = tmp_path / "go-reap"
            procs = [_start([_REAPER, store.url, str(go)]) for _ in range(4)]
            go.touch()
            reaped = [i for out in _finish_all(procs, 120) for i in json.loads(out)]
        else:
            results: list[list[str]] = []
            threads = [threading.Thread(target=lambda: results.append(store.reopen().reap()))
                       for _ in range(4)]  # fmt: skip
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            reaped = [i for ids in results for i in ids]
        assert sorted(reaped) == sorted(r.id for r in stale)

    # -- long-lived readers ------------------------------------------------------------

    def _commit_elsewhere(
        self, store_url: str, name: str
    ) -> tuple[Callable[[], bool], Callable[[], str]]:
        """Start another writer (a process where the backend is shared, else a thread with
        its own store) that commits a finished run named ``name``: (is it done?, its id)."""
        if self.shared_between_processes:
            proc = _start([_LATER, store_url, name])
            return (lambda: proc.poll() is not None,
                    lambda: _finish_all([proc], 120)[0].strip())  # fmt: skip
        outcome: list[Any] = []

        def write() -> None:
            try:
                outcome.append(_commit_later(store_url, name))
            except BaseException as err:  # handed to the test's thread
                outcome.append(err)

        thread = threading.Thread(target=write)
        thread.start()

        def result() -> str:
            thread.join(120)
            assert outcome, "the other writer did not finish within 120 s"
            if isinstance(outcome[0], BaseException):
                raise outcome[0]
            return str(outcome[0])

        return (lambda: not thread.is_alive(), result)

    def test_a_store_open_for_long_sees_runs_committed_later_by_others(
        self, store_url: str
    ) -> None:
        """A store kept open (a dashboard, the exporter, a tuning driver, a notebook) sees
        each run another writer committed before its read began: it is opened before the
        ledger exists and reads all along while the other writer (another process, where
        the backend is shared) creates the ledger and then adds more runs."""
        reader = get_store(store_url, readonly=True)
        written: list[str] = []
        try:
            for name in ("creates the ledger", "second", "third"):
                done, run_id = self._commit_elsewhere(store_url, name)
                deadline = time.monotonic() + 120
                reads = 0
                while not done():  # what a dashboard does while others write
                    assert time.monotonic() < deadline, "the other writer never finished"
                    with contextlib.suppress(StoreError):  # a ledger not created yet
                        reader.count_runs()
                        reader.list_runs(limit=5)
                        reads += 1
                    time.sleep(0.001)
                written.append(run_id())
                # The writer has committed and is gone: this read began after its commits.
                assert sorted(r.id for r in reader.list_runs()) == sorted(written), (name, reads)
                assert reader.count_runs() == len(written)
                got = reader.get_run(written[-1])
                assert (got.name, got.status, got.energy_j) == (name, RunStatus.FINISHED, 5.0)
                assert got.user == login_name()
                assert [m[:3] for m in reader.metrics(got.id)] == [(0, "loss", 0.5)]
                assert sum(row.energy_j for row in reader.aggregate()) == 5.0 * len(written)
        finally:
            reader.close()

    # -- concurrency -------------------------------------------------------------------

    def test_concurrent_writers_lose_nothing(self, store: BaseRunStore, tmp_path: Path) -> None:
        runs_each, points = 4, 25
        if self.shared_between_processes:
            go = tmp_path / "go-write"
            procs = [_start([_WRITER, store.url, str(w), str(runs_each), str(points), str(go)])
                     for w in range(WRITERS)]  # fmt: skip
            go.touch()
            outputs = _finish_all(procs, 300)
            assert all(out.startswith("done") for out in outputs)
        else:
            errors: list[BaseException] = []

            def write(worker: int) -> None:
                try:
                    other = store.reopen()
                    for i in range(runs_each):
                        run = make_run(name=f"w{worker}-{i}", tags=[f"w{worker}"])
                        other.insert_run(run)
                        other.flush_run(run.id, {"status": RunStatus.FINISHED, "energy_j": 1.0},
                                        metrics=[(k, "loss", float(k), 0.0)
                                                 for k in range(points)],
                                        samples=[(0.5, "cpu", 10.0, 5.0)])  # fmt: skip
                        other.annotate_run(run.id, "notes", f"from worker {worker}", append=True)
                except BaseException as err:  # reported below
                    errors.append(err)

            threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
        total = WRITERS * runs_each
        runs = store.list_runs()
        assert len(runs) == store.count_runs() == total
        assert len({r.name for r in runs}) == total
        assert all(r.status is RunStatus.FINISHED and r.energy_j == 1.0 for r in runs)
        assert sum(1 for _ in store.iter_metrics()) == total * points
        for run in runs[:: max(1, total // 8)]:
            assert [m[0] for m in store.metrics(run.id)] == list(range(points))
            assert len(store.samples(run.id)) == 1
            assert len(run.record["notes"]) == 1
        tags = {row.group: row.runs for row in store.aggregate("tag")}
        assert tags == {f"w{w}": runs_each for w in range(WRITERS)}

    # -- migrations --------------------------------------------------------------------

    def test_an_old_ledger_reads_then_migrates_on_first_write(self, tmp_path: Path) -> None:
        url = self.old_ledger_url(tmp_path)
        if url is None:
            pytest.skip("this backend has no ledgers from an earlier release")
        expected = OLD_LEDGER
        store = get_store(url)
        try:
            old_version = store.schema_version()
            assert 0 < old_version < SCHEMA_VERSION
            runs = store.list_runs()
            assert [r.name for r in runs] == [r["name"] for r in expected["runs"]]
            for run, want in zip(runs, expected["runs"], strict=True):
                assert (run.id, run.kind, run.study_id) == (want["id"], want["kind"],
                                                            want["study_id"])  # fmt: skip
                assert (run.status.value, run.energy_j) == (want["status"], want["energy_j"])
                assert run.user is None and run.role is None  # not recorded back then
                assert store.metrics(run.id) == [tuple(m) for m in want["metrics"]]
            assert store.get_artifact(runs[0].id, "git-diff") == expected["diff"]
            assert store.reuse_totals().energy_j == expected["reuse_energy_j"]
            assert sum(row.runs for row in store.aggregate("role")) == len(runs)
            assert store.schema_version() == old_version  # reading did not migrate
            store.annotate_run(runs[0].id, "note", "a write migrates the ledger")
            assert store.schema_version() == SCHEMA_VERSION
            again = store.list_runs()
            assert [r.id for r in again] == [r.id for r in runs]
            assert again[0].record["note"] == "a write migrates the ledger"
            new = make_run()
            store.insert_run(new)
            assert store.get_run(new.id).user == login_name()
        finally:
            store.close()

    # -- faults (issue 8) --------------------------------------------------------------

    def test_a_blocked_ledger_fails_in_one_line_and_spooled_writes_merge_once(
        self, store: BaseRunStore, store_url: str
    ) -> None:
        from wattwise.store import Spool, read_spool

        store.insert_run(make_run(name="before"))  # the ledger exists
        run = make_run(name="spooled")
        with self.blocked(store_url):
            writer = get_store(store_url, busy_timeout_s=0.2)
            try:
                with pytest.raises(StoreError) as caught:
                    writer.insert_run(run)
                assert "\n" not in str(caught.value)
            finally:
                writer.close()
            spool = Spool(store.path, run.id, dataclasses.asdict(run))
            path = spool.append({"fields": {"status": "finished", "energy_j": 7.0,
                                            "heartbeat_at": run.started_at + 1},
                                 "metrics": [[0, "loss", 1.0, 0.0]]},
                                reason="ledger blocked")  # fmt: skip
            spool.close()
        assert [r.name for r in store.list_runs()] == ["before"]  # nothing half-written
        spooled = read_spool(path)
        assert spooled is not None
        try:
            assert store.merge_spooled(spooled) == 1
            assert store.merge_spooled(spooled) == 0  # idempotent
        finally:
            path.unlink()
        merged = store.get_run(run.id)
        assert (merged.status, merged.energy_j) == (RunStatus.FINISHED, 7.0)
        assert store.metrics(run.id) == [(0, "loss", 1.0, 0.0)]
        assert any("spooled" in note for note in merged.record["notes"])
