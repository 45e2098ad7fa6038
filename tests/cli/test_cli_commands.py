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


def test_killed_wattwise_leaves_a_crashed_run_with_its_energy() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "wattwise", "run", "-q", "--", sys.executable, "-c",
         "print('go', flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, **FAST},
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "go"
        time.sleep(1.5)
        proc.kill()
        proc.wait()
    store = open_store()
    run = store.list_runs()[0]
    assert run.status is RunStatus.CRASHED
    assert run.energy_j > 0
    # The orphaned command is still spinning in its own process group: stop it.
    pids = subprocess.run(["pgrep", "-f", "while True: pass"], capture_output=True, text=True)
    for pid in pids.stdout.split():
        os.kill(int(pid), signal.SIGKILL)


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
        (["run", "--", "/no/such/program"], 2, "Cannot start"),
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
    assert res.returncode == 1
    assert "'interval_s' parameter" in res.stderr and "Traceback" not in res.stderr
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
    import wattwise

    assert wattwise.__all__ == sorted(wattwise.__all__, key=str.casefold)
    for name in wattwise.__all__:
        assert getattr(wattwise, name) is not None


def test_store_file_is_wal_after_a_run(isolated_project: Path) -> None:
    assert cli("run", "-q", "--", "true").returncode == 0
    conn = sqlite3.connect(isolated_project / ".wattwise" / "ledger.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
