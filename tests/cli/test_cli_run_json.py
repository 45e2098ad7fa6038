"""``wattwise run --json`` / ``--json-file``: the summary as JSON, the command's stdout and
stderr untouched, the exit code the command's own."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_support import assert_one_line_error, cli

from wattwise.store import open_store

#: A command that writes to both streams (binary-safe bytes on stdout) and exits 3.
NOISY = (
    "import sys\n"
    "sys.stdout.buffer.write(b'row 1\\nrow 2 \\xe2\\x82\\xac\\n')\n"
    "print('progress 50%', file=sys.stderr)\n"
    "sys.exit(3)\n"
)


def test_json_goes_to_stderr_after_the_commands_output_and_stdout_is_untouched() -> None:
    res = cli("run", "--json", "--", sys.executable, "-c", NOISY)
    assert res.code == 3  # the command's own exit code
    assert res.out == "row 1\nrow 2 €\n"  # byte for byte what the command printed
    lines = res.err_lines
    assert "progress 50%" in lines[:-1]  # the command's stderr, then ours
    summary = json.loads(lines[-1])  # one object on one line, in place of the text summary
    assert "wattwise: run" not in res.err
    stored = open_store().get_run(summary["id"])
    assert summary["status"] == "failed" == stored.status.value and summary["exit_code"] == 3
    assert summary["energy_j"] == stored.energy_j > 0
    assert summary["co2e_g"] == stored.co2e_g and summary["region"] == "FR"
    assert summary["name"] == stored.name == "python -c"
    assert summary["command"] == [sys.executable, "-c", NOISY]
    parts = {c["component"] for c in summary["components"]}
    assert parts == {c.component for c in stored.components}
    assert summary["intensity"]["zone"] == "FR" and summary["intensity"]["dataset"]
    assert summary["recorded_in"] == "ledger" and summary["spooled_to"] is None
    assert summary["ledger"] == str(Path(".wattwise/ledger.db").resolve())


def test_json_file_holds_the_summary_and_the_text_summary_stays(tmp_path: Path) -> None:
    target = tmp_path / "out" / "run.json"
    target.parent.mkdir()
    target.write_text("stale")
    res = cli("run", "--json-file", str(target), "--", sys.executable, "-c", "print('ok')")
    assert res.code == 0 and res.out == "ok\n"
    assert "wattwise: run" in res.err and "Energy" in res.err  # the text summary as before
    summary = json.loads(target.read_text())  # replaced, not appended to
    assert summary["status"] == "finished" and summary["exit_code"] == 0
    assert open_store().get_run(summary["id"]).energy_j == summary["energy_j"]
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind
    quiet = cli("run", "-q", "--json-file", str(target), "--", sys.executable, "-c", "pass")
    assert quiet.code == 0 and "wattwise: run" not in quiet.err and "{" not in quiet.err
    assert json.loads(target.read_text())["id"] != summary["id"]


def test_a_command_that_cannot_start_still_has_its_json() -> None:
    res = cli("run", "--json", "--", "./no-such-program")
    assert res.code == 127
    assert res.err_lines[0].startswith("wattwise: error: Cannot start './no-such-program'")
    summary = json.loads(res.err_lines[-1])
    assert summary["status"] == "failed" and summary["exit_code"] == 127


def test_a_json_file_that_cannot_be_written_is_refused_before_the_command_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    touch = f"open({str(marker)!r}, 'w').close()"
    res = cli("run", "--json-file", str(tmp_path / "nope" / "s.json"), "--",
              sys.executable, "-c", touch)  # fmt: skip
    assert_one_line_error(res, 2, "--json-file", "does not exist")
    res = cli("run", "--json-file", str(tmp_path), "--", sys.executable, "-c", touch)
    assert_one_line_error(res, 2, "is a folder")
    assert not marker.exists() and open_store().list_runs() == []


def test_with_json_the_warnings_are_in_the_object_not_lines_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no region and a time zone that names no country: the run warns that it uses the world
    monkeypatch.delenv("WATTWISE_REGION", raising=False)
    monkeypatch.setenv("TZ", "Etc/UTC")
    res = cli("run", "--json", "--", sys.executable, "-c", "print('ok')")
    assert res.code == 0 and res.out == "ok\n"
    (line,) = res.err_lines  # stderr is the JSON object alone: `2>&1 >/dev/null | jq` works
    summary = json.loads(line)
    assert summary["region"] == "WORLD"
    assert any("Location unknown" in w for w in summary["warnings"]), summary["warnings"]
    text = cli("run", "--", sys.executable, "-c", "pass")  # without --json: the warning line
    assert text.code == 0 and "wattwise: warning: Location unknown" in text.err
