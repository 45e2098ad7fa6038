"""``wattwise run``'s live status line: on a terminal only, never in the command's bytes.

Real subprocesses on a real pseudo-terminal (``pty.openpty()``): the command's stdout and
stderr are the terminal, as in an interactive shell, and what the terminal receives is read
from the master side.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from wattwise.cli import _live
from wattwise.store import open_store

FAST = {"WATTWISE_INTERVAL_S": "0.1", "WATTWISE_FLUSH_S": "0.2"}

#: The command: known bytes on stdout and stderr, steps logged into the wattwise run.
SCRIPT = r"""
import sys, time, wattwise
for step in range(6):
    sys.stdout.write(f"out line {step} " + "x" * 40 + "\n"); sys.stdout.flush()
    sys.stderr.write(f"err line {step}\n"); sys.stderr.flush()
    wattwise.log(step=step, loss=1.0 / (step + 1))
    end = time.monotonic() + 0.8
    while time.monotonic() < end:
        pass
sys.stdout.write("no newline at the end"); sys.stdout.flush()
"""

#: One draw or set-up of the line: the cursor is saved, then restored (apt's sequences).
DRAW = re.compile(rb"\x1b7.*?\x1b8(?:\x1b\[1A)?", re.S)


def _run_on_pty(
    args: list[str], env: dict[str, str], *, rows: int = 24, cols: int = 120
) -> tuple[int, bytes]:
    """``wattwise ARGS`` with stdin, stdout and stderr on a new terminal; what it showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # no \n -> \r\n translation: the bytes as written
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattwise", *args], stdin=slave, stdout=slave, stderr=slave,
        env=env, close_fds=True, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave end is closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(master)
    return code, b"".join(chunks)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "WATTWISE_LIVE")}
    return {**env, **FAST, "TERM": "xterm", **extra}


def _command_bytes(shown: bytes) -> bytes:
    """What the terminal got, less the line's own draws, less wattwise's summary."""
    rest = DRAW.sub(b"", shown)
    return rest[: rest.index(b"wattwise: run ")] if b"wattwise: run " in rest else rest


def test_line_on_a_terminal_leaves_the_command_bytes_whole(tmp_path: Path) -> None:
    code, shown = _run_on_pty(
        ["run", "--total-steps", "6", "--", sys.executable, "-c", SCRIPT], _env()
    )
    assert code == 0, shown
    draws = DRAW.findall(shown)
    assert len(draws) >= 3, shown  # set-up, at least one redraw, the release
    # the line is drawn on the last row, reserved by a scroll region, and given back
    assert b"\x1b[1;23r" in shown and b"\x1b[1;24r" in shown
    texts = [d for d in draws if b"\x1b[24;1H\x1b[2K\x1b[7m" in d]
    assert texts, draws
    assert any(re.search(rb"wattwise \d+:\d\d \xc2\xb7 .+ \xc2\xb1 .+ W", t) for t in texts)
    # with total steps given and steps logged: the step count, then a predicted total
    assert any(b"step " in t and b"/6" in t for t in texts), texts
    assert any(re.search(rb"total ~.+ \[.+, .+\]", t) for t in texts), texts
    # every byte the command wrote reached the terminal, in order and unchanged
    body = _command_bytes(shown)
    expected_out = b"".join(f"out line {i} ".encode() + b"x" * 40 + b"\n" for i in range(6))
    out_only = b"".join(re.findall(rb"out line \d x+\n", body))
    assert out_only == expected_out, body
    assert re.findall(rb"err line \d\n", body) == [f"err line {i}\n".encode() for i in range(6)]
    assert b"no newline at the end" in body
    # outside the line's draws, no escape sequence reached the terminal
    assert b"\x1b" not in body, body
    # the summary comes once the line is released
    assert shown.index(b"wattwise: run ") > shown.rindex(b"\x1b[1;24r")


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--quiet"], {}),
        ([], {"WATTWISE_LIVE": "0"}),
        ([], {"CI": "true"}),
        ([], {"TERM": "dumb"}),
    ],
    ids=["quiet", "WATTWISE_LIVE=0", "CI", "TERM=dumb"],
)
def test_no_line_when_opted_out_or_in_ci(args: list[str], env: dict[str, str]) -> None:
    code, shown = _run_on_pty(
        ["run", *args, "--", sys.executable, "-c", "print('hello')"], _env(**env)
    )
    assert code == 0, shown
    assert b"\x1b" not in shown, shown
    assert b"hello\n" in shown


def test_no_line_in_a_pipe() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", "run", "--total-steps", "3", "--", sys.executable,
         "-c", "import sys; sys.stdout.write('abc'); sys.stderr.write('def')"],
        capture_output=True, env=_env(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"abc"
    assert done.stderr.startswith(b"def")
    assert b"\x1b" not in done.stderr


def test_a_bad_total_steps_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wattwise", "run", "--", "true"],
        capture_output=True, text=True, env=_env(WATTWISE_TOTAL_STEPS="ten"), timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "WATTWISE_TOTAL_STEPS='ten'" in lines[0] and "int >= 1" in lines[0]
    assert open_store().list_runs() == []  # refused before anything ran


def test_wanted_only_on_a_terminal() -> None:
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as tty:
            assert _live.live_wanted(tty, environ={"TERM": "xterm"})
            assert not _live.live_wanted(tty, environ={"TERM": "xterm", "CI": "1"})
            assert not _live.live_wanted(tty, environ={"TERM": "dumb"})
            assert not _live.live_wanted(tty, environ={"WATTWISE_LIVE": "0"})
            assert not _live.live_wanted(tty, quiet=True, environ={})
        assert not _live.live_wanted(io.StringIO(), environ={"TERM": "xterm"})
    finally:
        os.close(master)
        os.close(slave)


class _BrokenRun:
    """A run whose snapshot fails (a meter gone wrong): the line must stop, nothing else."""

    def __init__(self) -> None:
        self.calls = 0

    def snapshot(self) -> dict[str, float]:
        self.calls += 1
        msg = "meter exploded"
        raise RuntimeError(msg)


def test_a_failure_to_draw_turns_the_line_off_quietly() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 10, 80, 0, 0))
    try:
        run = _BrokenRun()
        line = _live.LiveLine(run, slave, refresh_s=0.01).start()
        deadline = time.monotonic() + 60
        while not line.failed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert line.failed and run.calls == 1  # tried once, then gave up
        line.stop()
        shown = b""
        while select.select([master], [], [], 0.2)[0]:
            shown += os.read(master, 65536)
        assert shown.startswith(b"\r\n\x1b7\x1b[1;9r")  # the row was reserved ...
        release = b"\x1b7\x1b[1;10r\x1b[10;1H\x1b[2K\x1b8"
        assert shown.endswith(release) and shown.count(release) == 1  # ... given back once
    finally:
        os.close(master)
        os.close(slave)


def test_no_line_on_a_terminal_of_two_rows() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 2, 80, 0, 0))
    try:
        line = _live.LiveLine(_BrokenRun(), slave).start()
        assert line.failed
        line.stop()
        ready, _, _ = select.select([master], [], [], 0.1)
        assert not ready  # nothing written
    finally:
        os.close(master)
        os.close(slave)


def test_status_text() -> None:
    text = _live.status_text(elapsed_s=83.0, energy_j=1234.0, band_j=150.0, power_w=14.2)
    assert text == "wattwise 1:23 · 1.23 kJ ± 150 J · 14.2 W"
    text = _live.status_text(elapsed_s=3725.0, energy_j=1.0, band_j=0.1, power_w=None,
                             step=1, total_steps=10)  # fmt: skip
    assert text == "wattwise 1:02:05 · 1.00 J ± 100 mJ · - W · step 2/10 · total: after 3 steps"
