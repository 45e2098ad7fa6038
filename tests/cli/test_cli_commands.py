from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wattwise.cli import main
from wattwise.store import RunStatus, open_store

FAST = {"WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.3"}


def cli(
    *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattwise", *args],
        capture_output=True, text=True, env={**os.environ, **FAST, **(env or {})}, timeout=120,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_run_returns_the_command_exit_code_and_prints_a_summary() -> None:
    ok = cli("run", "--name", "hello", "--tag", "t1", "--", sys.executable, "-c", "print('hi')")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "hi"
    assert "wattwise: run" in ok.stderr and "'hello' finished" in ok.stderr
    assert "Energy" in ok.stderr and "estimated" in ok.stderr and "gCO2e/kWh" in ok.stderr
    bad = cli("run", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert bad.returncode == 3
    runs = open_store().list_runs()
    assert [r.status for r in runs] == [RunStatus.FINISHED, RunStatus.FAILED]
    assert runs[0].tags == ["t1"] and runs[1].exit_code == 3
    assert runs[0].record["command"]["argv"][-1] == "print('hi')"


def test_child_logs_metrics_into_the_wattwise_run() -> None:
    code = "import wattwise; wattwise.log(step=0, acc=0.5); wattwise.log(step=1, acc=0.9)"
    res = cli("run", "-q", "--", sys.executable, "-c", code)
    assert res.returncode == 0, res.stderr
    store = open_store()
    run = store.list_runs()[0]
    assert [(s, v) for s, k, v, _ in store.metrics(run.id)] == [(0, 0.5), (1, 0.9)]
    shown = json.loads(cli("show", run.id[:8], "--json").stdout)
    assert shown["metrics"]["acc"][-1]["value"] == 0.9


SLEEPER = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.mark.parametrize(("sig", "expected"), [(signal.SIGTERM, 7), (signal.SIGINT, 130)])
def test_signals_are_forwarded_to_the_command(sig: signal.Signals, expected: int) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "wattwise", "run", "-q", "--", sys.executable, "-c", SLEEPER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **FAST},
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(sig)
        proc.wait(30)
    # SIGINT raises KeyboardInterrupt in the child, which then dies of SIGINT: 128 + 2.
    assert proc.returncode == expected
    run = open_store().list_runs()[0]
    assert run.status is RunStatus.FAILED
    assert run.exit_code == expected


def _wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    """Wait until process ``pid`` no longer exists (it is not our child: poll it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} still exists {timeout_s} s after SIGKILL")


def test_killed_wattwise_leaves_a_crashed_run_with_its_energy() -> None:
    spin = "import os\nprint(os.getpid(), os.getpgid(0), flush=True)\nwhile True: pass"
    command_pid = command_group = None
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "wattwise", "run", "-q", "--", sys.executable, "-c", spin],
            stdout=subprocess.PIPE, text=True, env={**os.environ, **FAST},
        ) as proc:  # fmt: skip
            assert proc.stdout is not None
            command_pid, command_group = map(int, proc.stdout.readline().split())
            deadline = time.monotonic() + 120  # until the tracker has flushed some energy
            while not ((runs := open_store().list_runs()) and runs[0].energy_j):
                assert time.monotonic() < deadline, "no energy flushed within 120 s"
                time.sleep(0.2)
            proc.kill()
            proc.wait()
    finally:
        # Stop only the command this test started: its own process group, which wattwise
        # gives it (checked: the group is led by the command), or else the command alone.
        if command_pid is not None:
            if command_group == command_pid:
                os.killpg(command_group, signal.SIGKILL)
            else:
                os.kill(command_pid, signal.SIGKILL)
            _wait_gone(command_pid)
    assert command_group == command_pid, "wattwise run should start the command in its own group"
    # Tracker and command are both gone now: the run is crashed, with the energy it flushed.
    deadline = time.monotonic() + 120
    while (run := open_store().list_runs()[0]).status is not RunStatus.CRASHED:
        assert time.monotonic() < deadline, f"run still {run.status} 120 s after both died"
        time.sleep(0.2)
    assert run.energy_j > 0


def test_listing_commands_speak_json_with_the_api_field_names() -> None:
    assert cli("run", "-q", "--", sys.executable, "-c", "pass").returncode == 0
    runs = json.loads(cli("runs", "--json").stdout)
    assert len(runs) == 1
    keys = {"id", "name", "status", "exit_code", "started_at", "duration_s", "energy_j",
            "energy_band_j", "co2e_g", "region", "components"}  # fmt: skip
    assert keys <= set(runs[0])
    assert {"component", "energy_j", "method", "source"} <= set(runs[0]["components"][0])
    fp = json.loads(cli("footprint", "--json").stdout)
    assert fp["by_status"]["finished"]["runs"] == 1
    assert fp["by_role"] == {"final": fp["by_status"]["finished"]}
    assert fp["beyond_final_energy_share"] == 0
    assert fp["total"]["energy_j"] == pytest.approx(runs[0]["energy_j"])
    doctor = json.loads(cli("doctor", "--json").stdout)
    assert {m["meter"] for m in doctor["meters"]} >= {"cpu-rapl", "gpu-nvml"}
    assert doctor["location"]["zone"] == "FR"
    assert doctor["ledger"]["runs"] == 1


def test_human_listings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs"]) == 0
    assert "No runs yet" in capsys.readouterr().out
    assert cli("run", "-q", "--name", "listed", "--", sys.executable, "-c", "pass").returncode == 0
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "listed" in out and "finished" in out
    assert main(["footprint"]) == 0
    assert "all runs" in capsys.readouterr().out
    assert main(["doctor"]) == 0
    assert "Meters:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["run", "--region", "FRX", "--", "true"], 2, "Unknown region 'FRX'"),
        (["run"], 2, "no command given"),
        (["show", "deadbeef"], 1, "No run 'deadbeef'"),
        (["runs", "--bogus"], 2, "unrecognized arguments"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], code: int, needle: str) -> None:
    res = cli(*args)
    assert res.returncode == code
    assert needle in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_bad_config_and_corrupt_ledger_are_clear_errors(isolated_project: Path) -> None:
    (isolated_project / "pyproject.toml").write_text("[tool.wattwise]\ninterval_s = -1\n")
    res = cli("run", "--", "true")
    assert res.returncode == 2
    assert "pyproject.toml: interval_s = -1 is not valid" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    (isolated_project / "pyproject.toml").unlink()
    (isolated_project / ".wattwise" / "ledger.db").write_bytes(b"garbage" * 1000)
    res = cli("runs")
    assert res.returncode == 1
    assert "damaged or not a wattwise ledger" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback() -> None:
    res = cli("show", "deadbeef", "--debug")
    assert res.returncode == 1
    assert "Traceback" in res.stderr


def test_import_wattwise_stays_light() -> None:
    code = (
        "import sys, wattwise\n"
        "heavy = {'numpy', 'pandas', 'torch', 'sqlalchemy', 'requests', 'httpx', 'urllib3',"
        " 'ray', 'optuna', 'pynvml', 'psutil', 'sqlite3'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_sorted_and_complete() -> None:
    import ast
    import types

    import wattwise

    names = wattwise.__all__
    assert names == sorted(names, key=str.casefold)
    assert len(set(names)) == len(names)
    # Complete: every lazily loaded name, every name typed under TYPE_CHECKING and every
    # public name already in the namespace is listed, and nothing else is.
    lazy = set(vars(wattwise)["_LAZY"])
    tree = ast.parse(Path(wattwise.__file__).read_text(encoding="utf-8"))
    typed = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for stmt in node.body
        if isinstance(stmt, ast.ImportFrom)
        for alias in stmt.names
    }
    helpers = {"annotations", "logging", "TYPE_CHECKING", "Any"}
    # IPython's hooks for %load_ext wattwise: looked up by IPython, not the API
    helpers |= {"load_ipython_extension", "unload_ipython_extension"}
    present = {
        name
        for name, value in vars(wattwise).items()
        if not name.startswith("_") and name not in helpers
        and not isinstance(value, types.ModuleType)
    }  # fmt: skip
    assert set(names) == lazy | {"__version__"}
    assert typed == lazy
    assert present <= set(names)
    # Each name resolves, in a fresh interpreter, to the object its module defines.
    code = (
        "import importlib, wattwise\n"
        "from wattwise import *\n"
        "for name, module in wattwise._LAZY.items():\n"
        "    assert globals()[name] is getattr(importlib.import_module(module), name), name\n"
        "print(len(wattwise.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(len(names))


def test_store_file_is_wal_after_a_run(isolated_project: Path) -> None:
    assert cli("run", "-q", "--", "true").returncode == 0
    conn = sqlite3.connect(isolated_project / ".wattwise" / "ledger.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
