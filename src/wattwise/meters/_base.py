"""The meter contract: every energy source answers ``probe()`` and ``read()``.

A meter reports *machine-wide cumulative* energy in joules for the domains it covers.
Keys of ``read()`` are ``"<component>"`` or ``"<component>:<index>"`` where component is
``cpu``, ``dram`` or ``gpu`` (``"cpu:0"`` = package 0, ``"gpu:1"`` = GPU 1). Attribution
to a process tree happens in :mod:`wattwise.tracking`, never here.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar, Literal

Component = Literal["cpu", "dram", "gpu"]
Method = Literal["counter", "sampled", "model", "user"]


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a meter can be used here, and if not, exactly why.

    Attributes:
        ok: True when ``read()`` will return figures.
        reason: One sentence: what was found (``ok``) or what is missing.
        hint: How to make it work (a command, a permission, an extra), or "".
    """

    ok: bool
    reason: str
    hint: str = ""


@dataclasses.dataclass(frozen=True)
class MeterInfo:
    """How a meter's figures are made, for the record and the docs.

    Attributes:
        name: Meter id, kebab-case (``cpu-rapl``).
        method: ``counter`` | ``sampled`` | ``model`` | ``user``.
        source: What was read or which table row was used, human readable.
        assumptions: Each constant and rule the figure rests on, with its source.
        band_fraction: Relative half-width of the uncertainty band (0.4 = ±40 %),
            or None when no band is known (counters: instrument error not quantified).
        band_source: Where the band comes from.
        details: Extra structured facts (matched CPU family, W per vCPU, …).
        band_meaning: What the band means, in one sentence ("90 % interval of host wall
            power, from 412 SPECpower_ssj2008 servers …, out of sample"), or "" when the
            band has no stated coverage.
    """

    name: str
    method: Method
    source: str
    assumptions: tuple[str, ...] = ()
    band_fraction: float | None = None
    band_source: str = ""
    details: dict[str, object] = dataclasses.field(default_factory=dict)
    band_meaning: str = ""


class BaseMeter(abc.ABC):
    """A source of machine-wide cumulative energy for one or more components.

    Thread-safety: one meter instance is read by one sampler thread at a time.
    """

    name: ClassVar[str]
    method: ClassVar[Method]

    @abc.abstractmethod
    def probe(self) -> Availability:
        """Say whether this meter works here. Cheap; never raises."""

    @abc.abstractmethod
    def components(self) -> tuple[Component, ...]:
        """The components this meter covers here (after a successful probe)."""

    @abc.abstractmethod
    def read(self) -> dict[str, float]:
        """Cumulative machine-wide energy in joules per domain key since an arbitrary origin.

        Counter wraparound is handled inside: values only grow. Sampled meters integrate
        power between successive calls. Raises MeterError if the meter broke mid-run.
        """

    @abc.abstractmethod
    def info(self) -> MeterInfo:
        """How the figures are made."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles (NVML shutdown). Default: nothing."""


def component_of(key: str) -> Component:
    """``"gpu:1"`` -> ``"gpu"``."""
    comp = key.split(":", 1)[0]
    if comp not in ("cpu", "dram", "gpu"):
        msg = f"Unknown energy domain key {key!r}; expected 'cpu', 'dram' or 'gpu' with an index."
        raise ValueError(msg)
    return comp  # type: ignore[return-value]
