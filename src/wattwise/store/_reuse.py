"""Cache hits in the ledger: each one, and what they avoided in total."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ReuseEvent:
    """One cache hit: an artifact reused instead of recomputed. Units in the names.

    Attributes:
        at: When, Unix seconds.
        cache_key: The entry's key (64 hex).
        function: ``module:qualname`` of the cached function.
        producer_run_id: The run whose energy produced the entry (maybe in another ledger).
        consumer_run_id: The run that reused it, or None outside any run.
        energy_avoided_j: Energy the entry cost to produce, so not spent again, in J.
        co2e_avoided_g: Emissions avoided, in gCO2e (see ``basis``).
        duration_avoided_s: Time the entry took to produce, in s.
        method: How the producing energy was measured (``measured`` / ``estimated`` and
            the meters, and whether from a dedicated run or the enclosing run).
        basis: Which grid intensity and PUE turned the energy into ``co2e_avoided_g``.
        cache_url: Where the entry was read.
        user: Who saved it: the consuming run's user, filled in by the ledger when the hit
            is recorded (None outside any run, and for hits recorded before schema 5).
    """

    at: float
    cache_key: str
    function: str
    producer_run_id: str | None
    consumer_run_id: str | None
    energy_avoided_j: float
    co2e_avoided_g: float
    duration_avoided_s: float
    method: str
    basis: str
    cache_url: str
    user: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ReuseTotals:
    """Sums over cache hits: the energy and carbon reuse saved. Units in the names."""

    hits: int = 0
    energy_j: float = 0.0
    co2e_g: float = 0.0
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``{"energy_j", "co2e_g", "hits", "duration_s"}``."""
        return {
            "energy_j": self.energy_j,
            "co2e_g": self.co2e_g,
            "hits": self.hits,
            "duration_s": self.duration_s,
        }
