"""Bounds on a run's energy under a constant-power fake meter, from the run's own records.

A tracked run reads its meters first when it starts (after its start time), then at each
sample, last when it ends (before its end time). A meter of constant power ``P`` thus
measures ``P`` times the time between the first and the last read:

    P x (last sample's t - first sample's t)  <=  machine energy  <=  P x duration

where the samples are the ledger's (``t`` from the sampler's start; the first read comes
before the first sample) and the duration is the run's own (from its start to its end).
A fake GPU lists no processes, so the run owns the whole device: its energy is all of
that machine energy. How long a loaded machine takes to start or end the run widens the
gap between the two bounds; it never moves the energy outside them. Comparing the energy
with ``P x duration`` within a fixed tolerance instead assumes that start-up and wrap-up
are quick.
"""

from __future__ import annotations

import pytest

from wattwise.store import BaseRunStore, RunRecord

#: Sample times are stored in milliseconds (rounded): two of them, half a millisecond each.
SAMPLE_T_ROUNDING_S = 1e-3
#: The duration is wall time, the samples' times monotonic time: the two clocks may drift
#: apart by NTP's slew (at most 500 ppm) during a run.
CLOCKS_DRIFT = 5e-4


def whole_device_energy_bounds(
    store: BaseRunStore, run: RunRecord, power_w: float
) -> tuple[float, float]:
    """``(low, high)`` for the energy of ``run``, measured by one constant-power meter."""
    times = sorted({t_s for t_s, _, _, _ in store.samples(run.id)})
    measured_s = times[-1] - times[0] if len(times) > 1 else 0.0
    low = power_w * max(0.0, measured_s - SAMPLE_T_ROUNDING_S)
    high = power_w * run.duration_s * (1 + CLOCKS_DRIFT)
    return low, high


def assert_whole_device_energy(store: BaseRunStore, run: RunRecord, power_w: float) -> None:
    """``run``'s energy is all of ``power_w`` over the time its meter was read (see the
    module's docstring)."""
    assert run.energy_j == pytest.approx(run.machine_energy_j, rel=1e-9)  # the whole device
    low, high = whole_device_energy_bounds(store, run, power_w)
    assert low <= run.energy_j <= high, (
        f"run {run.name!r}: {run.energy_j} J is outside [{low}, {high}] J, {power_w} W over "
        f"its samples' span and over its duration ({run.duration_s} s)"
    )
