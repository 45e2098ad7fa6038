"""The meter contract suite: one set of tests every meter must pass, run over it with its fake.

Like Optuna's storage test case: subclass :class:`MeterContract` in a test module (its
name must start with ``Test`` for pytest to collect it), say how to build the meter and
how to let time pass, and every ``test_*`` method below runs against your meter::

    from wattwise.testing import ManualClock
    from wattwise.testing.meter_contract import MeterContract

    class TestAcmeMeter(MeterContract):
        def setup_method(self) -> None:
            self.clock = ManualClock()

        def make_meter(self) -> BaseMeter:
            return AcmeMeter(backend=FakeAcme(clock=self.clock), clock=self.clock)

        def advance(self, seconds: float) -> None:
            self.clock.t += seconds

        def make_unavailable(self) -> BaseMeter:
            return AcmeMeter(backend=FakeAcme(devices=[]))

        def make_broken(self) -> BaseMeter:
            return AcmeMeter(backend=FakeAcme(fail_with=RuntimeError("boom")))

What it checks (``docs/explanation/meters.md``, "write a meter"):

* ``probe()`` never raises; unavailable and broken meters say why (a sentence) and how
  to fix it (a hint); ``read()`` on them raises a :class:`wattwise.exceptions.WattwiseError`.
* readings never decrease, grow while time passes, and counter wraparound or reset
  (``make_wrapping``) is handled without a drop or a jump;
* per-device ids are stable: the same keys at every read and from a second instance,
  each a valid domain key whose component is in ``components()``;
* ``info().method`` and ``info().source`` are always set (before and after reading, and
  when unavailable), and ``info().name`` is the class's id;
* the class passes the registry's checks; ``describe()`` answers; ``close()`` twice is fine.
"""

from __future__ import annotations

import math

import pytest

from wattwise.exceptions import WattwiseError
from wattwise.meters import COMPONENTS, BaseMeter, check_meter_class, component_of

_METHODS = ("counter", "sampled", "model", "user")


class MeterContract:
    """Base class of a meter's contract tests. Subclasses implement the hooks."""

    #: Seconds :meth:`advance` is called with between reads.
    step_s: float = 2.0
    #: Reads taken in the monotonicity test.
    reads: int = 5

    # -- hooks -------------------------------------------------------------------------------

    def make_meter(self) -> BaseMeter:
        """A meter that works (on fakes where the hardware is missing)."""
        raise NotImplementedError

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the meter (move the fake clock, grow the counters)."""
        raise NotImplementedError

    def make_unavailable(self) -> BaseMeter | None:
        """A meter that cannot work (no device, no driver); None when not applicable."""
        return None

    def make_broken(self) -> BaseMeter | None:
        """A meter whose backend raises something unexpected; None when not applicable."""
        return None

    def make_wrapping(self) -> BaseMeter | None:
        """A meter whose counters wrap around or restart during the next ``advance`` calls
        (see :meth:`wrap_expected_j`); None when the meter has no counter."""
        return None

    def wrap_expected_j(self, seconds: float) -> float | None:
        """Joules the wrapping meter's keys should gain in total over ``seconds``, or None."""
        return None

    # -- helpers -----------------------------------------------------------------------------

    def _ready(self) -> BaseMeter:
        meter = self.make_meter()
        state = meter.probe()
        assert state.ok, f"make_meter() must give a working meter; probe said: {state}"
        return meter

    # -- the contract ------------------------------------------------------------------------

    def test_class_passes_the_registry_checks(self) -> None:
        meter = self.make_meter()
        try:
            assert check_meter_class(type(meter)) == ""
            assert type(meter).runs_on() in (True, False)
        finally:
            meter.close()

    def test_probe_of_a_working_meter_is_ok_with_a_sentence(self) -> None:
        meter = self._ready()
        try:
            state = meter.probe()
            assert state.ok
            assert state.reason.strip().endswith(".")
        finally:
            meter.close()

    def test_probe_never_raises_and_gives_a_reason_and_a_hint(self) -> None:
        variants = [m for m in (self.make_unavailable(), self.make_broken()) if m is not None]
        if not variants:
            pytest.skip("this meter has no unavailable or broken variant")
        for meter in variants:
            try:
                state = meter.probe()  # must not raise
                assert not state.ok
                assert state.reason.strip(), "an unavailable meter must say why"
                assert state.reason.strip().endswith((".", ")")), state.reason
                assert state.hint.strip(), f"an unavailable meter must say how: {state}"
                assert meter.probe() == state or not meter.probe().ok  # probing again is safe
                with pytest.raises(WattwiseError):
                    meter.read()
                info = meter.info()  # must not raise either
                assert info.method in _METHODS
                assert info.source.strip()
                assert meter.describe()["ok"] is False
            finally:
                meter.close()

    def test_readings_never_decrease_and_grow_with_time(self) -> None:
        meter = self._ready()
        try:
            previous = meter.read()
            grown = dict.fromkeys(previous, 0.0)
            for _ in range(self.reads):
                self.advance(self.step_s)
                reading = meter.read()
                for key, joules in reading.items():
                    assert math.isfinite(joules)
                    assert joules >= previous.get(key, 0.0) - 1e-9, (key, joules, previous)
                    grown[key] = joules - (previous.get(key, joules))
                previous = reading
            assert any(v > 0 for v in grown.values()), "energy must grow while time passes"
        finally:
            meter.close()

    def test_wraparound_or_reset_is_handled(self) -> None:
        meter = self.make_wrapping()
        if meter is None:
            pytest.skip("this meter has no counter that wraps or resets")
        try:
            assert meter.probe().ok
            first = meter.read()
            last = first
            for _ in range(self.reads):
                self.advance(self.step_s)
                reading = meter.read()
                for key, joules in reading.items():
                    assert joules >= last.get(key, 0.0) - 1e-9, (key, joules, last)
                last = reading
            expected = self.wrap_expected_j(self.step_s * self.reads)
            if expected is not None:
                gained = sum(last.values()) - sum(first.values())
                assert gained == pytest.approx(expected, rel=1e-3, abs=1e-3)
        finally:
            meter.close()

    def test_device_ids_are_stable_and_valid(self) -> None:
        meter = self._ready()
        other = self._ready()
        try:
            keys = set(meter.read())
            assert keys, "a working meter reads at least one domain"
            self.advance(self.step_s)
            assert set(meter.read()) == keys
            assert set(other.read()) == keys
            comps = set(meter.components())
            assert comps <= set(type(meter).covers)
            for key in keys:
                assert component_of(key) in comps
                assert component_of(key) in COMPONENTS
            assert {component_of(k) for k in keys} == comps
        finally:
            meter.close()
            other.close()

    def test_method_and_source_are_always_set(self) -> None:
        meter = self._ready()
        try:
            for _ in range(2):
                info = meter.info()
                assert info.name == type(meter).name
                assert info.method in _METHODS
                assert info.source.strip()
                assert info.band_fraction is None or info.band_fraction > 0
                if info.band_fraction is not None:
                    assert info.band_source.strip(), "a band needs its source"
                meter.read()
                self.advance(self.step_s)
            described = meter.describe()
            assert described["ok"] is True
            assert described["meter"] == type(meter).name
        finally:
            meter.close()

    def test_a_second_probe_after_reading_keeps_the_totals(self) -> None:
        meter = self._ready()
        try:
            meter.read()
            self.advance(self.step_s)
            before = meter.read()
            assert meter.probe().ok
            self.advance(self.step_s)
            after = meter.read()
            for key, joules in before.items():
                assert after[key] >= joules - 1e-9
        finally:
            meter.close()

    def test_close_twice_is_harmless(self) -> None:
        meter = self._ready()
        meter.read()
        meter.close()
        meter.close()
