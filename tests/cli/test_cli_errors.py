"""Every bad input gets one line: usage errors exit 2, failures exit 1, tracebacks only on ask."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest
from cli_support import HOSTILE, RAW, assert_one_line_error, call, cli, insert_run

import wattwise.cli.commands.runs as runs_verb
from wattwise.cli import main
from wattwise.cli._format import safe

# --debug before or after the verb ---------------------------------------------------------


@pytest.mark.parametrize("argv", [["--debug", "runs"], ["runs", "--debug"]])
def test_debug_works_before_and_after_the_verb(argv: list[str]) -> None:
    res = cli(*argv)
    assert res.code == 0, res.err
    assert "No runs yet" in res.out


@pytest.mark.parametrize(
    "argv", [["--debug", "show", "deadbeef"], ["show", "deadbeef", "--debug"]]
)
def test_debug_shows_the_traceback_then_the_line(argv: list[str]) -> None:
    insert_run("some run")
    res = cli(*argv)
    assert res.code == 1
    assert "Traceback (most recent call last)" in res.err
    assert res.err_lines[-1].startswith("wattwise: error: No run 'deadbeef'")


def test_without_debug_a_failure_is_one_line() -> None:
    insert_run("some run")
    assert_one_line_error(cli("show", "deadbeef"), 1, "No run 'deadbeef'")


@pytest.mark.parametrize("before", [True, False])
def test_store_option_before_and_after_the_verb(isolated_project: Path, before: bool) -> None:
    insert_run("listed")
    elsewhere = isolated_project.parent / "elsewhere"
    elsewhere.mkdir()
    for path in (isolated_project / ".wattwise").glob("ledger.db*"):
        path.rename(elsewhere / path.name)  # the project's own ledger is now empty
    store = ["--store", str(elsewhere / "ledger.db")]
    res = call(*store, "runs", "--json") if before else call("runs", "--json", *store)
    assert res.code == 0, res.err
    assert [r["name"] for r in json.loads(res.out)] == ["listed"]
    assert json.loads(call("runs", "--json").out) == []


def test_debug_after_the_double_dash_belongs_to_the_command() -> None:
    code = "import sys; print(sys.argv[1:])"
    res = cli("run", "-q", "--", sys.executable, "-c", code, "--debug")
    assert res.code == 0, res.err
    assert res.out.strip() == "['--debug']"


def test_bare_command_is_one_usage_line() -> None:
    assert_one_line_error(cli(), 2, "give a command: run, runs, show")


def test_help_and_version_exit_0_in_process() -> None:
    assert call("--version").code == 0
    res = call("runs", "--help")
    assert res.code == 0 and "--limit" in res.out


# A bug in a verb: one line naming it, the way to the traceback -------------------------------


def _buggy_verb(args: object) -> int:
    return {"a": 1}["b"]


def test_unexpected_exception_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs_verb, "main", _buggy_verb)
    res = call("runs")
    assert_one_line_error(res, 1, "unexpected KeyError: 'b'", "run with --debug for the traceback")
    res = call("runs", "--debug")
    assert res.code == 1
    assert "Traceback (most recent call last)" in res.err and "_buggy_verb" in res.err
    assert res.err_lines[-1].startswith("wattwise: error: unexpected KeyError")


# Usage and value errors: exit 2, before anything runs --------------------------------------


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["runs", "--limit", "0"], ["argument --limit: got '0'", "whole number >= 1"]),
        (["runs", "--limit", "-1"], ["argument --limit: got '-1'"]),
        (["runs", "--limit", "many"], ["argument --limit: got 'many'"]),
        (["show", "d7b"], ["run id 'd7b' is too short", "at least 4 characters"]),
        (["reproduce", "d7b"], ["at least 4 characters"]),
        (["report", "d7b"], ["at least 4 characters"]),
        (["report", "--study", "ab"], ["at least 4 characters"]),
        (["cache", "info", "abc"], ["cache key 'abc' is too short"]),
        (["runs", "--bogus"], ["unrecognized arguments: --bogus", "(see 'wattwise runs --help')"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str], needles: list[str]) -> None:
    insert_run("some run")
    assert_one_line_error(call(*argv), 2, *needles)


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--pue", "0.5"], "argument --pue: got '0.5', but PUE must be a finite number >= 1.0"),
        (["--pue", "nan"], "argument --pue: got 'nan'"),
        (["--pue", "inf"], "argument --pue: got 'inf'"),
        (["--pue", "abc"], "argument --pue: got 'abc'"),
        (["--meters", ","], "argument --meters: got ','"),
        (["--meters", "cpu-model,,"], "argument --meters: got 'cpu-model,,'"),
        (["--meters", ""], "argument --meters: got ''"),
    ],
)
def test_bad_run_options_exit_2_and_never_start_the_command(
    isolated_project: Path, option: list[str], needle: str
) -> None:
    marker = isolated_project / "ran"
    res = call("run", *option, "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert_one_line_error(res, 2, needle)
    assert not marker.exists()


def test_pue_errors_agree_between_values_and_words() -> None:
    """The issue: --pue 0.5 and nan exited 1 while --pue abc exited 2."""
    codes = {value: cli("run", "--pue", value, "--", "true").code for value in ("0.5", "abc")}
    assert codes == {"0.5": 2, "abc": 2}


# Config: one line naming the file and the key, exit 2 ---------------------------------------


@pytest.mark.parametrize(
    ("file", "content", "needles"),
    [
        (".wattwise/config.toml", b"pue = true\n", ["config.toml: pue = true is not valid"]),
        (".wattwise/config.toml", b"interval_s = true\n", ["interval_s = true is not valid"]),
        (".wattwise/config.toml", b"interval_s = 0.001\n", ["interval_s = 0.001 is not valid"]),
        (".wattwise/config.toml", b"region = 'FR'\n\xff\xfe\n", ["is not UTF-8 text"]),
        ("pyproject.toml", b'[tool]\nwattwise = "FR"\n', ["tool.wattwise = 'FR' is not valid"]),
        (".wattwise/config.toml", b"pue = [\n", ["is not valid TOML"]),
    ],
)
def test_bad_config_stops_run_with_one_line(
    isolated_project: Path, file: str, content: bytes, needles: list[str]
) -> None:
    (isolated_project / file).write_bytes(content)
    marker = isolated_project / "ran"
    res = cli("run", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert_one_line_error(res, 2, str(isolated_project / file), *needles)
    assert not marker.exists()


def test_config_directory_is_one_line(isolated_project: Path) -> None:
    (isolated_project / ".wattwise" / "config.toml").mkdir()
    assert_one_line_error(call("doctor"), 2, "config.toml is a directory")


def test_readers_do_not_need_the_settings(isolated_project: Path) -> None:
    insert_run("listed")
    (isolated_project / ".wattwise" / "config.toml").write_text("pue = true\n")
    res = call("runs")
    assert res.code == 0 and "listed" in res.out


# Output format follows -o's extension ------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "extra", "check"),
    [
        ("r.md", [], lambda text: text.startswith("# ")),
        ("r.MARKDOWN", [], lambda text: text.startswith("# ")),
        ("r.json", [], lambda text: json.loads(text)["scope"] == "project"),
        ("r.html", [], lambda text: text.lower().startswith("<!doctype html>")),
        ("r.htm", [], lambda text: text.lower().startswith("<!doctype html>")),
        ("r.txt", ["--format", "md"], lambda text: text.startswith("# ")),
        ("r.md", ["--format", "md"], lambda text: text.startswith("# ")),
    ],
)
def test_report_format_follows_the_extension(
    isolated_project: Path, target: str, extra: list[str], check: object
) -> None:
    insert_run("one")
    res = call("report", "-o", target, *extra)
    assert res.code == 0, res.err
    assert res.out.startswith(f"Wrote {(isolated_project / target).resolve()}")
    assert check((isolated_project / target).read_text(encoding="utf-8"))  # type: ignore[operator]


def test_report_default_and_stdout() -> None:
    insert_run("one")
    assert call("report").code == 0
    assert Path("report.html").read_text(encoding="utf-8").lower().startswith("<!doctype html>")
    res = call("report", "-o", "-", "--format", "json")
    assert res.code == 0 and json.loads(res.out)["scope"] == "project"


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["report", "-o", "r.md", "--format", "html"],
         ["-o 'r.md' is a .md file, which means --format md, but --format html was given"]),
        (["report", "-o", "r.txt"],
         ["cannot tell the format of -o 'r.txt' from its extension .txt", ".html (html)",
          ".md (md)", ".json (json)", "--format {html,md,json}"]),
        (["report", "-o", "report"], ["from its extension (none)"]),
        (["export", "-o", "e.csv", "--format", "hf-card"], ["means --format codecarbon-csv"]),
        (["export"], ["give --format {hf-card,codecarbon-csv,mlflow,boamps}, or -o with one",
                      "of .md"]),
        (["export", "-o", "x.txt"], ["cannot tell the format of -o 'x.txt'"]),
        (["export", "--format", "mlflow", "-o", "x.txt"], ["writes no file"]),
        (["export", "--format", "codecarbon-csv", "--into", "README.md"],
         ["--into merges a model card"]),
    ],
)  # fmt: skip
def test_format_conflicts_are_usage_errors(
    isolated_project: Path, argv: list[str], needles: list[str]
) -> None:
    insert_run("one")
    assert_one_line_error(call(*argv), 2, *needles)
    assert sorted(p.name for p in isolated_project.iterdir()) == [".wattwise"]  # nothing written


def test_export_format_follows_the_extension(isolated_project: Path) -> None:
    insert_run("one")
    assert call("export", "-o", "emissions.csv").code == 0
    header = (isolated_project / "emissions.csv").read_text(encoding="utf-8").splitlines()[0]
    assert "emissions" in header.split(",") and "project_name" in header.split(",")
    assert call("export", "-o", "card.md").code == 0
    assert "co2_eq_emissions:" in (isolated_project / "card.md").read_text(encoding="utf-8")


# User text is escaped on the terminal ------------------------------------------------------


VISIBLE = "\\x1b[31mred\\x1b[0m\\x1b[2J\\nfaked line\\tTAB\\x7fDEL\\x9bC1\\u202eRLO"


def _assert_shown_not_interpreted(text: str, visible: str = VISIBLE) -> None:
    for raw in RAW:
        assert raw not in text, (raw, text)
    assert visible in text, text


def test_control_characters_in_user_text_are_made_visible() -> None:
    run_id = insert_run(HOSTILE, tags=[HOSTILE], metrics={HOSTILE: 1.0}, params={HOSTILE: 1})
    res = call("runs")
    assert res.code == 0, res.err
    _assert_shown_not_interpreted(res.out, VISIBLE[:30])  # the NAME column shows 30 characters
    for argv in (["show", run_id[:8]], ["report", "-o", "r.md", "--title", HOSTILE]):
        res = call(*argv)
        assert res.code == 0, res.err
        _assert_shown_not_interpreted(res.out)
    shown = call("show", run_id[:8]).out
    for label in ("tags  ", "params  ", "metrics (last)  ", "warning: ", "error: ", "command  "):
        line = next(line for line in shown.splitlines() if line.strip().startswith(label.strip()))
        _assert_shown_not_interpreted(line)
    # JSON stays exact: the escapes are JSON's own, and the value round-trips.
    assert json.loads(call("runs", "--json").out)[0]["name"] == HOSTILE


def test_control_characters_in_errors_are_made_visible() -> None:
    insert_run("one")
    res = call("show", "\x1b[2Jgone\nwattwise: all good")
    assert_one_line_error(res, 1, "No run '\\x1b[2Jgone\\nwattwise: all good'")
    res = call("runs", "--limit", "\x1b[2J")
    assert_one_line_error(res, 2, "got '\\x1b[2J'")


def test_run_summary_escapes_the_name() -> None:
    res = cli("run", "--name", HOSTILE, "--", "true")
    assert res.code == 0, res.err
    summary = res.err[res.err.index("wattwise: run "):]
    _assert_shown_not_interpreted(summary)


def test_a_closed_pipe_ends_quietly() -> None:
    """``wattwise runs | head -0``: exit 1 without a word, no 'Exception ignored' at exit."""
    import os
    import subprocess

    insert_run("listed")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before wattwise writes
    try:
        # stdout block-buffered, as in a shell pipe: the write fails at the final flush
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        done = subprocess.run(
            [sys.executable, "-m", "wattwise", "runs"], stdout=write_end,
            stderr=subprocess.PIPE, text=True, timeout=60, env=env,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, "")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "argv",
    [["report", "--format", "md", "-o", "-"], ["report", "--format", "html", "-o", "-"],
     ["export", "--format", "codecarbon-csv"], ["export", "--format", "hf-card"]],
)  # fmt: skip
def test_documents_on_a_terminal_are_escaped_but_exact_in_a_pipe(argv: list[str]) -> None:
    insert_run(HOSTILE, tags=[HOSTILE], metrics={HOSTILE: 1.0})
    title = ["--title", HOSTILE] if argv[0] == "report" else ["--project-name", HOSTILE]
    piped = call(*argv, *title)
    assert piped.code == 0, piped.err
    terminal = _Terminal()
    with contextlib.redirect_stdout(terminal):
        assert main([*argv, *title]) == 0
    shown = terminal.getvalue()
    for raw in RAW[:-1]:
        assert raw not in shown
    # The same document, line for line: its control characters shown instead of sent; in a
    # pipe it is exact (the user's text as recorded).
    assert shown == "\n".join(safe(line) for line in piped.out.split("\n"))
    if argv[2] == "md":  # Markdown never carries raw controls: they are written as \xNN text
        assert "\x1b" not in piped.out and "x1b" in piped.out
    elif argv[-1] != "hf-card":  # the card carries no user text
        assert "\x1b" in piped.out and "\x1b" not in shown


def test_study_names_for_the_live_line_are_plain_text(isolated_project: Path) -> None:
    objective = isolated_project / "objective.py"
    objective.write_text("def objective(trial):\n    raise SystemExit('ran')\n")
    res = call("tune", str(objective), "--study-name", "a\x1b[2Jb", "--n-trials", "1")
    assert_one_line_error(res, 2, "argument --study-name: got 'a\\x1b[2Jb'", "plain text")


def _exits_with(code: object) -> object:
    def verb(args: object) -> int:
        raise SystemExit(code)

    return verb


@pytest.mark.parametrize(("code", "expected", "lines"), [(None, 0, 0), (0, 0, 0), (3, 3, 0),
                                                          ("bye\x1b[2J", 1, 1)])  # fmt: skip
def test_sys_exit_inside_a_verb_keeps_its_meaning(
    monkeypatch: pytest.MonkeyPatch, code: object, expected: int, lines: int
) -> None:
    """sys.exit() in a user's objective: its code, or Python's 1 and its message, one line."""
    monkeypatch.setattr(runs_verb, "main", _exits_with(code))
    res = call("runs")
    assert res.code == expected and len(res.err_lines) == lines
    if lines:
        assert res.err_lines == ["wattwise: error: bye\\x1b[2J"]


def test_broken_pipe_in_process_is_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def verb(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(runs_verb, "main", verb)
    res = call("runs")  # stdout here is a StringIO: no file to point at /dev/null
    assert (res.code, res.out, res.err) == (1, "", "")


def test_cache_listing_escapes_function_names() -> None:
    import wattwise

    def double(x: int) -> int:
        return x * 2

    double.__qualname__ = double.__name__ = HOSTILE
    assert wattwise.cached(double)(3) == 6
    listed = call("cache", "ls")
    assert listed.code == 0, listed.err
    _assert_shown_not_interpreted(listed.out, "\\x1b[31mred")
    key = listed.out.splitlines()[1].split()[0]
    info = call("cache", "info", key)
    assert info.code == 0, info.err
    _assert_shown_not_interpreted(info.out)
