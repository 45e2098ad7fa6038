"""Test helpers that ship with wattwise: fakes for hardware this machine may lack.

``FakeMeter`` is a constant-power counter; ``ReplayMeter`` replays a recorded energy
sequence (both go to a run as ``meters=[...]``); ``fake_nvml``, ``fake_amdsmi`` and
``fake_ioreport`` follow the real ``pynvml``, ``amdsmi`` and ``zeus_apple_silicon`` APIs for
machines without that hardware; ``meter_contract.MeterContract`` is the test suite every
meter must pass. ``MemoryRunStore`` is a ledger in memory (``get_store("memory://")``) and
``store_contract.RunStoreContract`` the test suite every ledger backend must pass.
"""

from __future__ import annotations

from wattwise.store import MemoryRunStore
from wattwise.testing._meters import FakeMeter, ManualClock
from wattwise.testing.replay import ReplayMeter

__all__ = ["FakeMeter", "ManualClock", "MemoryRunStore", "ReplayMeter"]
