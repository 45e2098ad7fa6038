"""``wattwise doctor --repair``: merges what was spooled, says what it did, and is idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FAST = {"WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.3"}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattwise", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


def test_repair_merges_once_the_ledger_can_be_written(tmp_path: Path) -> None:
    env = {**os.environ, **FAST, "XDG_STATE_HOME": str(tmp_path / "state")}
    ledger = Path(".wattwise") / "ledger.db"
    ledger.write_bytes(os.urandom(2048))
    job = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    ran = cli("run", "--", sys.executable, "-c", job, env=env)
    assert ran.returncode == 0, ran.stderr
    assert "this run is spooled in" in ran.stderr
    (spooled,) = (Path(".wattwise") / "spool").iterdir()

    still = cli("doctor", "--repair", env=env)  # the ledger is still damaged
    assert still.returncode == 1
    assert len(still.stderr.strip().splitlines()) == 1 and "damaged" in still.stderr
    assert spooled.exists()  # kept for later

    ledger.rename(ledger.with_name("ledger.db.bad"))
    fixed = cli("doctor", "--repair", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert "merged run" in fixed.stdout and spooled.name in fixed.stdout
    assert not spooled.exists()
    again = cli("doctor", "--repair", "--json", env=env)
    assert json.loads(again.stdout)["merged"] == []
    runs = json.loads(cli("runs", "--json", env=env).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "finished" and runs[0]["energy_j"] > 0
    assert "spool files wait" not in cli("doctor", env=env).stdout
