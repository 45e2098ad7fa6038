"""A real notebook on a real kernel: ``%load_ext wattwise``, the magics, ``start()``/``stop()``
across cells, the rich display, and the notebook as the recorded command."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from notebook_support import execute, outputs, use_test_kernel, write_notebook

from wattwise.store import RunStatus, open_store

pytestmark = pytest.mark.slow

CELLS = [
    "%load_ext wattwise",
    # 1: the cell is a run, named after the notebook; its value is still the cell's value
    "%%wattwise --tag nb\nimport wattwise\ntotal = sum(i * i for i in range(200_000))\n"
    "wattwise.log(step=1, acc=0.5)\ntotal",
    # 2-4: start() in one cell makes the run current for later cells and other threads
    "span = wattwise.track('span')\nspan.start()",
    "import threading\nwattwise.log(step=1, loss=0.3)\n"
    "t = threading.Thread(target=lambda: wattwise.log(step=2, loss=0.2))\nt.start(); t.join()",
    "first = span.stop()\nassert span.stop() is first and span.finish() is first\n"
    "assert wattwise.current_run() is None\nfirst",
    # 5-8: the line magics; a second stop shows the same result
    "%wattwise start magic-span",
    "wattwise.log(step=1, f1=0.9)\n%wattwise status",
    "%wattwise stop",
    "%wattwise stop",
]


def test_cells_and_spans_of_cells_are_runs(
    tmp_path: Path, isolated_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_test_kernel(monkeypatch, tmp_path)
    path = isolated_project / "analysis.ipynb"
    write_notebook(path, CELLS)
    saved = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setenv("JPY_SESSION_NAME", "analysis.ipynb")  # as Jupyter Server sets it
    nb = execute(path)

    store = open_store()
    runs = {r.name: r for r in store.list_runs()}
    assert sorted(runs) == ["analysis.ipynb", "magic-span", "span"]
    assert all(r.status is RunStatus.FINISHED and r.parent_id is None for r in runs.values())
    cell_run, span, magic = runs["analysis.ipynb"], runs["span"], runs["magic-span"]
    assert cell_run.tags == ["nb"]
    assert [(s, k, v) for s, k, v, _ in store.metrics(cell_run.id)] == [(1, "acc", 0.5)]
    # wattwise.log() in a later cell and in another thread went to the started run
    assert sorted((s, k, v) for s, k, v, _ in store.metrics(span.id)) == [
        (1, "loss", 0.3), (2, "loss", 0.2)
    ]  # fmt: skip
    assert [(s, k, v) for s, k, v, _ in store.metrics(magic.id)] == [(1, "f1", 0.9)]

    # The notebook, not ipykernel_launcher.py -f /tmp/…json, is the recorded command.
    for run in runs.values():
        command = run.record["command"]
        assert command["argv"] == [str(path.resolve())]
        assert command["notebook"]["how"] == "__session__"
        assert command["is_command"] is False
        assert "ipykernel" in " ".join(command["notebook"]["kernel_argv"])
    code = store.get_run(span.id).record["code"]
    assert code["script"] == {"path": str(path.resolve()), "sha256": saved}

    # The cell's own value is its output; the run's cost is shown after it, as a table.
    assert outputs(nb.cells[1], "text/plain")[-1] == str(sum(i * i for i in range(200_000)))
    table = outputs(nb.cells[1], "text/html")
    assert len(table) == 1 and cell_run.id[:8] in table[0] and "finished" in table[0]
    assert "<script" not in table[0].lower()
    assert span.id[:8] in outputs(nb.cells[4], "text/html")[0]
    status = outputs(nb.cells[6], "text/html")[0]
    assert magic.id[:8] in status and "running" in status and "Energy so far" in status
    stopped = outputs(nb.cells[7], "text/html")
    assert stopped and stopped == outputs(nb.cells[8], "text/html")  # idempotent stop
    assert magic.id[:8] in stopped[0] and "finished" in stopped[0]


def test_a_failing_cell_ends_its_run_failed_and_stops_the_notebook(
    tmp_path: Path, isolated_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbclient = pytest.importorskip("nbclient")
    use_test_kernel(monkeypatch, tmp_path)
    path = isolated_project / "boom.ipynb"
    write_notebook(path, [
        "%load_ext wattwise",
        "%%wattwise boom\nx = sum(range(100_000))\nraise ValueError('bad batch')",
        "open('after.txt', 'w').write('ran')",
    ])  # fmt: skip
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="bad batch"):
        execute(path)
    assert not (isolated_project / "after.txt").exists()  # "Run all" stopped, as without us
    (run,) = open_store().list_runs()
    assert run.name == "boom" and run.status is RunStatus.FAILED
    assert "ValueError: bad batch" in run.record["error"]
    # Without a notebook path from the front end (nbclient sets none), the record says so.
    command = run.record["command"]
    assert command["argv"] == ["notebook (unknown path)"]
    assert command["notebook"]["path"] is None and "not told" in command["notebook"]["note"]


def test_magic_usage_errors_are_one_line(
    tmp_path: Path, isolated_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_test_kernel(monkeypatch, tmp_path)
    path = isolated_project / "usage.ipynb"
    write_notebook(path, [
        "%load_ext wattwise",
        "%wattwise stop",
        "%wattwise launch",
        "%%wattwise --pue lots\npass",
        "%wattwise start one\n%wattwise start two",
        "%wattwise stop",
    ])  # fmt: skip
    nb = execute(path, allow_errors=True)
    # IPython shows a UsageError as one line on stderr, without a traceback.
    said = ["".join(outputs(cell, "stream")) for cell in nb.cells]
    assert said[0] == "" and said[5] == ""
    for i in (1, 2, 3, 4):
        assert said[i].startswith("UsageError: wattwise: ") and said[i].count("\n") == 1
    assert "start one with %wattwise start" in said[1]
    assert "unknown action 'launch'" in said[2]
    assert "--pue" in said[3] and "'lots'" in said[3]
    assert "still running" in said[4] and "%wattwise stop" in said[4]
    (run,) = open_store().list_runs()  # the second start made nothing; the first ended
    assert run.name == "one" and run.status is RunStatus.FINISHED

