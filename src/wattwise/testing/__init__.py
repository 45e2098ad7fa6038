"""Test helpers that ship with wattwise: fakes for hardware this machine may lack.

``FakeMeter`` is a constant-power counter; ``wattwise.testing.fake_nvml`` follows the real
``pynvml`` API for machines without an NVIDIA GPU.
"""

from __future__ import annotations

from wattwise.testing._meters import FakeMeter

__all__ = ["FakeMeter"]
