"""FLOP counting, now :mod:`wattwise.flops` (below the runs); this name keeps working."""

from __future__ import annotations

from wattwise.flops import METHOD, FlopCount, StepCounter, batch_size_of, count_flops

__all__ = ["METHOD", "FlopCount", "StepCounter", "batch_size_of", "count_flops"]
