"""A signal the kernel hands to one of wattwise's threads still reaches the command.

A process-directed signal goes to any thread that does not block it; wattwise run has
several (sampler, writer, ...). Python runs handlers only in the main thread, and a signal
taken by another thread does not interrupt the main thread's ``waitpid()``: a blocking wait
kept a forwarded SIGTERM until the command ended by itself (seen once in CI: 30 s timeout).
Here the signal is sent to a helper thread on purpose, so the case is not left to chance.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from wattwise.store import RunStatus, open_store

DRIVER = r"""
import signal, sys, threading, time
from pathlib import Path

ready = Path(sys.argv[1])

def hand_signal_to_this_thread() -> None:
    deadline = time.monotonic() + 120
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # this thread, not main

threading.Thread(target=hand_signal_to_this_thread, daemon=True).start()
from wattwise.cli import main
sys.exit(main(["run", "-q", "--", sys.executable, "-c", sys.argv[2], sys.argv[1]]))
"""

SLEEPER = (
    "import signal, sys, time\n"
    "from pathlib import Path\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
    "Path(sys.argv[1]).touch()\n"
    "time.sleep(120)\n"
)


def test_a_signal_taken_by_another_thread_is_forwarded_at_once(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", DRIVER, str(ready), SLEEPER],
                          capture_output=True, text=True, timeout=100,
                          check=False)  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 7, done.stderr[-2000:]
    assert took < 90, f"the signal was held until the command ended ({took:.0f} s)"
    run = open_store().list_runs()[0]
    assert (run.status, run.exit_code) == (RunStatus.FAILED, 7)
