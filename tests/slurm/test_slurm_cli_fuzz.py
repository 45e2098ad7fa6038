"""Generated argv for ``wattwise job``: never a traceback, exit 0/1/2, an error is one line.

In process (``wattwise.cli.main``) on a ledger with SLURM jobs, with saved sacct output that
is good, garbled, hostile or missing, and a real ``sacct`` (where installed) pointed at a
SLURM configuration without accounting, so that it fails at once.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wattwise.cli import main
from wattwise.store import BaseRunStore, RunRecord, RunStatus, get_store

SACCT = """\
812|train|gpu[01-02]|01:02:03||billing=16,cpu=16,node=2|COMPLETED
812.batch|batch|gpu01|01:02:03|210345|cpu=8,node=1|COMPLETED
812.0|python|gpu[01-02]|00:40:00|1500000|cpu=16,node=2|COMPLETED
"""
FILES = {
    "good.txt": SACCT,
    "empty.txt": "",
    "short.txt": "812|x\n",
    "header.txt": "JobID|JobName|NodeList|Elapsed|ConsumedEnergyRaw|AllocTRES|State\n",
    "hostile.txt": "812.0|\x1b[31mred\x07|n1|\x00|1e9|cpu=\u202e|\x1b]0;x\x07\n",
    "binary.txt": "\udcff\udcfe",
}

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12
)
_REF = st.one_of(
    st.sampled_from(["812", "812.0", "slurm:812.0", "812.batch", "812.9", "700_3", "9",
                     "named-job", "slurm:", "812.", "-1", "", "99999999999999999999"]),
    _TEXT,
)  # fmt: skip
_FILE = st.sampled_from([*FILES, "missing.txt", "-", ".", "/proc/nope"])


@st.composite
def _argv(draw: st.DrawFn) -> list[str]:
    action = draw(st.sampled_from(["reconcile", "reconcile", "reconcile", "bogus", ""]))
    argv = ["job", action] if action else ["job"]
    if action == "reconcile" and draw(st.integers(0, 9)) > 0:
        argv.append(draw(_REF))
    for option in draw(st.lists(st.sampled_from(["--sacct-file", "--json", "--no-store"]),
                                max_size=3, unique=True)):  # fmt: skip
        argv.append(option)
        if option == "--sacct-file":
            argv.append(draw(_FILE))
    if draw(st.integers(0, 4)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(_TEXT))  # a stray token
    return argv


def _insert(
    store: BaseRunStore, job_id: str, energy_j: float, slurm: dict[str, str] | None
) -> None:
    run_id, now = uuid.uuid4().hex, time.time()
    job = {"id": job_id, "source": "slurm", **({"slurm": slurm} if slurm else {})}
    store.insert_run(RunRecord(
        id=run_id, name="train\x1b[2J", kind="command", status=RunStatus.RUNNING,
        started_at=now, heartbeat_at=now, host="gpu01", pid=999_999, record={"job": job},
    ))  # fmt: skip
    store.flush_run(run_id, {"status": RunStatus.FINISHED, "ended_at": now + 1,
                             "energy_j": energy_j})  # fmt: skip


@pytest.fixture
def project(isolated_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = get_store(str(isolated_project / ".wattwise" / "ledger.db"))
    _insert(store, "slurm:812.0", 1000.0, None)
    _insert(store, "slurm:812.batch", 10.0, None)
    _insert(store, "named-job", 5.0, {"job_id": "slurm:812.0"})
    store.close()
    for name, text in FILES.items():
        (isolated_project / name).write_text(text, encoding="utf-8", errors="surrogateescape")
    # A real sacct, if installed, on a cluster without accounting: it fails at once.
    conf = isolated_project / "slurm.conf"
    conf.write_text(
        "ClusterName=fuzz\nSlurmctldHost=localhost\n"
        "AccountingStorageType=accounting_storage/none\n"
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    return isolated_project


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(argv=_argv())
def test_any_job_argv_gets_an_answer_without_traceback(project: Path, argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    lines = err.getvalue().splitlines()
    assert code in (0, 1, 2), (argv, code, err.getvalue())
    assert "Traceback" not in err.getvalue(), (argv, err.getvalue())
    assert "unexpected" not in err.getvalue(), (argv, err.getvalue())
    if code != 0:
        assert len(lines) == 1, (argv, err.getvalue())
        assert lines[0].startswith("wattwise: error: "), (argv, lines)
    else:
        assert lines == [], (argv, lines)
    for raw in ("\x1b", "\x07", "\x00", "\u202e"):
        assert raw not in out.getvalue() or "--json" in argv, (argv, raw)
        assert raw not in err.getvalue(), (argv, raw)
