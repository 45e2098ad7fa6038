"""Jupyter and IPython: ``%load_ext wattwise``, then a cell or a span of cells is a run.

* ``%%wattwise [NAME] [OPTIONS]`` at the top of a cell: the cell is one run. Its output
  is untouched; the run's cost is shown after it (``--quiet``: not shown). An exception
  in the cell ends the run ``failed`` and is raised as it would be without the magic, so
  "Run all" stops where it would have stopped.
* ``%wattwise start [NAME] [OPTIONS]`` ... ``%wattwise stop``: a run over several cells.
  It is the current run in between (``wattwise.log()`` and the callbacks use it, in
  every cell and thread); ``stop`` shows its cost and is harmless when repeated.
* ``%wattwise`` (or ``%wattwise status``): the run in progress, with its cost so far.

OPTIONS: ``--region ZONE``, ``--tag TAG`` (repeatable), ``--meters ID,ID``, ``--pue
N``, ``--quiet``; a bad one (a meter this machine lacks, a PUE below 1) is a usage error
of one line, in the options' spelling (``--pue 1.2``), and the cell does not run. NAME
defaults to the notebook's file name (``notebook`` when the kernel
does not know it); the run's record names the notebook as its command
(:func:`wattwise.environment.notebook`).

The same runs without magics: ``run = wattwise.track("prep"); run.start()`` in one cell,
``run.stop()`` in a later one; a ``Run`` or ``RunResult`` as a cell's value shows as a
table. IPython is imported only when the extension is loaded.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import shlex
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from wattwise._spelling import cli_spelling
from wattwise.exceptions import WattwiseError
from wattwise.tracking import Run, RunResult, RunState

_T = TypeVar("_T")

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

_USAGE = "%wattwise [start [NAME] [OPTIONS] | stop | status]   or   %%wattwise [NAME] [OPTIONS]"


class _State:
    """The run ``%wattwise start`` started in this kernel (one at a time)."""

    run: Run | None = None


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are IPython usage errors (one line, no exit)."""

    def error(self, message: str) -> NoReturn:
        _usage(f"{message}. Usage: {_USAGE}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        _usage(message.strip() if message else f"Usage: {_USAGE}")


def _usage(message: str) -> NoReturn:
    from IPython.core.error import UsageError

    msg = f"wattwise: {message}"
    raise UsageError(msg)


def _parser(prog: str) -> _Parser:
    parser = _Parser(prog=prog, add_help=False)
    parser.add_argument("name", nargs="?", default=None)
    parser.add_argument("--region", default=None)
    parser.add_argument("--tag", action="append", default=[])
    parser.add_argument("--meters", default=None)
    parser.add_argument("--pue", type=float, default=None)
    parser.add_argument("-q", "--quiet", action="store_true")
    return parser


def _make_run(words: list[str], prog: str) -> tuple[Run, bool]:
    """A run (not started) from the magic's words, and whether to stay quiet."""
    import wattwise
    from wattwise.environment import notebook

    args = _parser(prog).parse_args(words)
    found = notebook()
    name = args.name or (found["name"] if found and found.get("path") else "notebook")
    meters = [m.strip() for m in args.meters.split(",") if m.strip()] if args.meters else None
    run = _options_checked(lambda: wattwise.track(
        name, region=args.region, tags=args.tag, meters=meters, pue=args.pue,
    ))  # fmt: skip
    return run, bool(args.quiet)


def _options_checked(action: Callable[[], _T]) -> _T:
    """``action()`` (making or starting a run): an error of wattwise's there is a bad option
    (a meter this machine lacks, a PUE below 1, an unknown region), said as a usage error
    in the magic's spelling (``--pue 1.2``, not ``pue=1.2``): one line, no traceback."""
    try:
        return action()
    except WattwiseError as err:
        message = cli_spelling(str(err))
    _usage(message)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as err:
        _usage(f"cannot read {line!r} ({err}); quote names with spaces")


def _show(value: Any) -> None:
    from IPython.display import display

    display(value)


def _line(shell: Any, line: str) -> Run | RunResult | None:
    """``%wattwise start|stop|status``."""
    words = _split(line)
    verb = words[0] if words else "status"
    if verb == "start":
        running = _State.run
        if running is not None and running.state is RunState.RUNNING:
            _usage(f"run {running.id[:8]} '{running.name}' is still running; "
                   "end it first with %wattwise stop")  # fmt: skip
        run, _ = _make_run(words[1:], "%wattwise start")
        _options_checked(run.start)
        _State.run = run
        return None
    if verb == "stop":
        started = _State.run
        if started is None:
            _usage("no run was started with %wattwise start in this kernel; "
                   "start one with %wattwise start [NAME]")  # fmt: skip
        return started.stop()  # idempotent: a second stop shows the same result
    if verb == "status":
        from wattwise.tracking import current_run

        found = current_run() or _State.run
        if found is None:
            _usage("no run in progress; start one with %wattwise start [NAME]")
        return found
    _usage(f"unknown action {verb!r}; the actions are start, stop and status. "
           f"Usage: {_USAGE}")  # fmt: skip


def _cell(shell: Any, line: str, cell: str) -> Any:
    """``%%wattwise``: the cell's code runs inside a run; its last expression is the value."""
    run, quiet = _make_run(_split(line), "%%wattwise")
    body, last = _compile(shell, cell)
    namespace = shell.user_ns
    value = None
    try:
        with contextlib.ExitStack() as block:
            _options_checked(lambda: block.enter_context(run))  # the cell's own errors pass
            exec(body, namespace)  # the user's own cell, as IPython runs it
            if last is not None:
                value = eval(last, namespace)  # the cell's last expression
    finally:
        if not quiet and run.state is RunState.ENDED:
            _show(run.result)
    return value


def _compile(shell: Any, cell: str) -> tuple[Any, Any]:
    """The cell as IPython would run it (its transforms applied), split into its body and
    its last expression (None when the cell does not end with one)."""
    source = shell.transform_cell(cell)
    tree = shell.transform_ast(ast.parse(source))
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    try:
        filename = shell.compile.cache(source)
    except Exception:  # an IPython without the cache: tracebacks lose the source lines
        filename = "<wattwise cell>"
    body = compile(tree, filename, "exec")
    return body, compile(last, filename, "eval") if last is not None else None


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%wattwise`` and ``%%wattwise`` (``%load_ext wattwise`` calls this)."""

    def wattwise_magic(line: str, cell: str | None = None) -> Any:
        if cell is None:
            return _line(ipython, line)
        return _cell(ipython, line, cell)

    wattwise_magic.__doc__ = __doc__
    ipython.register_magic_function(wattwise_magic, magic_kind="line_cell",
                                    magic_name="wattwise")  # fmt: skip


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext wattwise``: a run started by ``%wattwise start`` is stopped."""
    run = _State.run
    if run is not None and run.state is RunState.RUNNING:
        run.stop()
