"""The watch the callbacks put on a framework's methods: the training's exception goes on
unchanged, whatever wattwise does while it passes."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from wattwise.exceptions import StoreWarning
from wattwise.integrations._guard import FailureWatch


class Loop:
    """A training loop's object: methods looked up on the instance at each call."""

    def __init__(self) -> None:
        self.steps = 0

    def step(self, fail: BaseException | None = None) -> int:
        if fail is not None:
            raise fail
        self.steps += 1
        return self.steps

    def epoch(self, fail_at: int | None = None) -> int:
        for i in range(3):
            self.step(ValueError(f"step {i}") if i == fail_at else None)
        return self.steps


class Callback:
    """The owner of the watch (warnings are said once per owner)."""


def test_results_pass_through_and_restore_puts_the_methods_back() -> None:
    loop, seen = Loop(), []
    watch = FailureWatch(Callback(), seen.append)
    assert watch.wrap(loop, ["epoch", "step", "absent"]) == ["epoch", "step"]
    assert loop.epoch() == 3 and watch.active and seen == []
    watch.restore()
    assert not watch.active and vars(loop) == {"steps": 3}


def test_the_first_wrapper_an_exception_passes_through_calls_back_once() -> None:
    loop, seen = Loop(), []
    watch = FailureWatch(Callback(), seen.append)
    watch.wrap(loop, ["epoch", "step"])
    with pytest.raises(ValueError, match="step 1") as caught:
        loop.epoch(fail_at=1)
    assert seen == [caught.value] and watch.failure is caught.value  # once, not per wrapper
    assert vars(loop) == {"steps": 1} and not watch.active  # restored at the failure
    tb = caught.value.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None and tb.tb_frame.f_code.co_name == "step"  # raised where it was


def test_an_error_of_ours_never_replaces_the_users_even_strict_under_w_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATTWISE_STRICT", "1")

    def ours(error: BaseException) -> None:
        msg = "the ledger is locked"
        raise OSError(msg)

    loop = Loop()
    watch = FailureWatch(Callback(), ours)
    watch.wrap(loop, ["step"])
    theirs = KeyError("user's")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(KeyError) as caught:
            loop.step(theirs)
    assert caught.value is theirs and caught.value.__context__ is None
    watch2 = FailureWatch(Callback(), ours)
    watch2.wrap(loop, ["step"])
    with pytest.warns(StoreWarning, match="the ledger is locked"), pytest.raises(KeyError):
        loop.step(theirs)  # where warnings can be said, ours is one warning


def test_control_flow_is_no_failure_and_the_watch_goes_on() -> None:
    loop, seen = Loop(), []
    watch = FailureWatch(Callback(), seen.append,
                         control_flow=lambda err: isinstance(err, StopIteration))  # fmt: skip
    watch.wrap(loop, ["step"])
    with pytest.raises(StopIteration):
        loop.step(StopIteration())
    assert seen == [] and watch.active
    with pytest.raises(ZeroDivisionError):
        loop.step(ZeroDivisionError())
    assert [type(e) for e in seen] == [ZeroDivisionError] and not watch.active


def test_a_method_someone_else_set_since_is_left_alone() -> None:
    loop = Loop()
    mine = loop.step
    loop.step = mine  # type: ignore[method-assign]  # the user's own, on the instance
    watch = FailureWatch(Callback(), lambda err: None)
    watch.wrap(loop, ["step", "epoch"])
    assert loop.step is not mine
    watch.restore()
    assert loop.step is mine and "epoch" not in vars(loop)  # theirs back, ours gone

    def later(*args: Any) -> int:
        return -1

    watch = FailureWatch(Callback(), lambda err: None)
    watch.wrap(loop, ["epoch"])
    loop.epoch = later  # type: ignore[method-assign]  # another library, during training
    watch.restore()
    assert loop.epoch is later


def test_watching_keeps_one_watch_a_training_and_calls_back_once_a_failure() -> None:
    from wattwise.integrations._guard import Watching

    loop, other, seen = Loop(), Loop(), []
    watching = Watching(Callback(), seen.append)
    watching.start([(loop, ["epoch", "step"]), (other, ["step"])])
    assert set(vars(loop)) == {"steps", "epoch", "step"} and "step" in vars(other)
    watching.start([(other, ["step"])])  # the next training: the last watch is over
    assert vars(loop) == {"steps": 0} and "step" in vars(other)
    with pytest.raises(ValueError, match="step 0"):
        other.epoch(fail_at=0)
    assert [str(e) for e in seen] == ["step 0"] and vars(other) == {"steps": 0}
    watching.stop()  # at the end of a training that failed: nothing left to put back
    assert len(seen) == 1 and vars(other) == {"steps": 0}


def test_watching_puts_back_what_it_wrapped_when_wrapping_fails() -> None:
    from wattwise.integrations._guard import Watching

    class Frozen:
        """A target whose attributes cannot be set (wrapping it raises)."""

        def step(self) -> None:
            return None

        def __setattr__(self, name: str, value: Any) -> None:
            msg = f"{name} is frozen"
            raise AttributeError(msg)

    loop = Loop()
    watching = Watching(Callback(), lambda err: None)
    with pytest.raises(AttributeError, match="step is frozen"):
        watching.start([(loop, ["step"]), (Frozen(), ["step"])])
    assert vars(loop) == {"steps": 0}  # the first target's method is its own again
    watching.stop()
    assert vars(loop) == {"steps": 0}
