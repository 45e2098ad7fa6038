"""``run.start()`` makes a run current until ``stop()``; ``stop()``/``finish()`` are
idempotent; the rich display escapes user text. The notebook tests run the same in a kernel."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

import wattwise
from wattwise.exceptions import RunStateError
from wattwise.store import RunStatus, open_store
from wattwise.testing import FakeMeter
from wattwise.tracking import Run, current_run


def fake() -> list[FakeMeter]:
    return [FakeMeter({"cpu:0": 20.0}, method="model", band_fraction=0.4)]


def metrics(run_id: str) -> list[tuple[int | None, str, float]]:
    return sorted((s, k, v) for s, k, v, _ in open_store().metrics(run_id))


def test_start_makes_the_run_current_everywhere_until_stop() -> None:
    run = wattwise.track("span", meters=fake())
    assert current_run() is None
    run.start()
    assert current_run() is run
    wattwise.log(step=1, loss=0.5)  # no run of its own: the started one
    seen: list[Run | None] = []
    worker = threading.Thread(target=lambda: (seen.append(current_run()),
                                              wattwise.log(step=2, loss=0.25)))  # fmt: skip
    worker.start()
    worker.join()
    assert seen == [run]  # a thread (a callback's, a loader's) finds it too
    # another context (an asyncio task, a cell run in a copied context) too
    assert contextvars.Context().run(current_run) is run
    with wattwise.track("inner", meters=fake()) as inner:  # a block nests inside it ...
        assert current_run() is inner and inner.parent_id == run.id
    assert current_run() is run  # ... and gives it back
    result = run.stop()
    assert current_run() is None
    assert result.status == "finished" and metrics(run.id) == [(1, "loss", 0.5),
                                                               (2, "loss", 0.25)]  # fmt: skip
    with pytest.raises(RunStateError, match="No active run"):
        wattwise.log(step=3, loss=0.1)


def test_stop_and_finish_are_idempotent() -> None:
    run = wattwise.track("twice", meters=fake())
    run.start()
    first = run.stop()
    time.sleep(0.05)
    assert run.stop() is first and run.finish(RunStatus.FAILED) is first  # nothing changes
    assert open_store().get_run(run.id).status is RunStatus.FINISHED
    with wattwise.track("inside", meters=fake()) as block:
        ended = block.finish()  # ended early inside its block: leaving the block is fine
    assert block.result is ended and ended.status == "finished"
    with pytest.raises(RunStateError, match="Start it first"):
        wattwise.track("never", meters=fake()).stop()


def test_stopping_in_another_context_releases_the_run() -> None:
    run = wattwise.track("cells", meters=fake())
    contextvars.Context().run(run.start)  # started in one cell's context ...
    assert current_run() is run
    run.stop()  # ... stopped in another's
    assert current_run() is None
    assert contextvars.Context().run(current_run) is None


def test_the_newest_started_run_is_current_and_stops_in_any_order() -> None:
    a = wattwise.track("a", meters=fake()).start()
    b = wattwise.track("b", meters=fake()).start()
    assert current_run() is b and b.parent_id == a.id
    a.stop()
    assert current_run() is b
    b.stop()
    assert current_run() is None


def test_a_block_run_is_current_in_its_own_context_only() -> None:
    seen: list[Run | None] = []
    with wattwise.track("block", meters=fake()) as run:
        assert current_run() is run
        worker = threading.Thread(target=lambda: seen.append(current_run()))
        worker.start()
        worker.join()
    assert seen == [None]  # as before: concurrent blocks in threads never mix


def test_tuning_and_command_runs_are_not_made_current() -> None:
    study = Run("study", kind="study", meters=fake()).start()
    command = Run(command=["python", "x.py"], kind="command", meters=fake()).start()
    try:
        assert current_run() is None
        trial = Run("trial", kind="trial", study_id=study.id, meters=fake())
        assert trial.parent_id is None  # a study's trials stay top-level runs
    finally:
        study.stop()
        command.stop()


HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>&'


def test_the_rich_display_escapes_user_text_and_has_no_script() -> None:
    run = wattwise.track(HOSTILE, meters=fake())
    created = run._repr_html_()
    assert "not started" in created.lower() or "Not started" in created
    run.start()
    time.sleep(0.05)
    running = run._repr_html_()
    assert "running" in running and "Energy so far" in running
    result = run.stop()
    for page in (created, running, result._repr_html_(), run._repr_html_()):
        assert "<script" not in page.lower() and "<img" not in page.lower()
        assert "&lt;script&gt;alert(2)&lt;/script&gt;&amp;" in page
    shown = result._repr_html_()
    assert run.id[:8] in shown and "finished" in shown
    assert "cpu" in shown and "estimated" in shown  # each component, with its method
    assert run._repr_html_() == shown
    assert repr(run) == f"<wattwise.Run {run.id[:8]} {HOSTILE!r} ended>"
