"""A small ledger for CLI tests, with user text that a terminal would act on."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from wattwise.cli import main
from wattwise.store import ComponentEnergy, RunRecord, RunStatus, open_store

#: Text a terminal would interpret: colour and clear-screen escapes, a newline that would
#: fake a second line, a tab, DEL, a C1 control (CSI) and a right-to-left override.
HOSTILE = "\x1b[31mred\x1b[0m\x1b[2J\nfaked line\tTAB\x7fDEL\x9bC1\u202eRLO"
#: What must never reach a terminal from a run's text.
RAW = ("\x1b", "\x7f", "\x9b", "\u202e", "\nfaked line")

FAST = {"WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.3"}


def insert_run(
    name: str,
    *,
    tags: Sequence[str] = (),
    metrics: dict[str, float] | None = None,
    params: dict[str, object] | None = None,
    energy_j: float = 3600.0,
) -> str:
    """A finished run, as the tracker leaves it, in the project's ledger; returns its id."""
    store = open_store()
    try:
        run_id = uuid.uuid4().hex
        start = time.time() - 60.0
        record = {
            "intensity": {"g_per_kwh": 31.0, "zone": "FR", "scope": "lifecycle", "year": 2025,
                          "dataset": "test"},
            "location": {"zone": "FR", "display_name": "France", "how": "env"},
            "pue": {"value": 1.0, "source": "test", "applies_to": "own hardware"},
            "meters": {"cpu-model": {"method": "model", "source": "test", "assumptions": []}},
            "command": {"argv": ["python", name], "cwd": name},
            "warnings": [f"warning about {name}"],
            "error": f"error about {name}",
            "summary": dict(metrics or {}),
        }  # fmt: skip
        comp = ComponentEnergy(
            component="cpu", energy_j=energy_j, machine_energy_j=energy_j * 2,
            band_j=energy_j * 0.4, method="model", meter="cpu-model", source="test model",
        )  # fmt: skip
        store.insert_run(
            RunRecord(
                id=run_id, name=name, kind="python", status=RunStatus.RUNNING, started_at=start,
                heartbeat_at=start + 60.0, host="testhost", pid=999_999, region="FR",
                tags=list(tags), params=dict(params or {}), record=record, components=[comp],
            )
        )  # fmt: skip
        co2e = energy_j / 3.6e6 * 31.0
        store.flush_run(
            run_id,
            {"status": RunStatus.FINISHED, "ended_at": start + 60.0, "duration_s": 60.0,
             "energy_j": energy_j, "energy_band_j": energy_j * 0.4,
             "machine_energy_j": energy_j * 2, "co2e_g": co2e, "co2e_band_g": co2e * 0.4},
            samples=[(1.0, "cpu", 60.0, energy_j)],
            metrics=[(0, key, value, start + 60.0) for key, value in (metrics or {}).items()],
        )  # fmt: skip
    finally:
        store.close()
    return run_id


@dataclass
class Result:
    """What a command returned and printed."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()


def call(*argv: str) -> Result:
    """``wattwise ARGV`` in this process, its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return Result(code, out.getvalue(), err.getvalue())


def cli(*argv: str, env: dict[str, str] | None = None) -> Result:
    """``wattwise ARGV`` as a real subprocess."""
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", *argv],
        capture_output=True, text=True, env={**os.environ, **FAST, **(env or {})}, timeout=120,
    )  # fmt: skip
    return Result(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    """Exit ``code``, one line on stderr, no traceback, each needle in it."""
    assert result.code == code, (result.code, result.err)
    assert "Traceback" not in result.err, result.err
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith("wattwise: error: "), result.err
    for needle in needles:
        assert needle in result.err, (needle, result.err)
