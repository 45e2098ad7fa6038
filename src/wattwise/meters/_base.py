"""The meter contract: every energy source answers ``probe()`` and ``read()``.

A meter reports *machine-wide cumulative* energy in joules for the domains it covers.
Keys of ``read()`` are ``"<component>"`` or ``"<component>:<index>"`` where component is one
of :data:`COMPONENTS` (``"cpu:0"`` = package 0, ``"gpu:1"`` = GPU 1, ``"npu:0"`` = the neural
engine of a system-on-chip). Attribution to a process tree happens in
:mod:`wattwise.tracking`, never here.

A meter class states what it covers (``covers``), where it ranks (``preference``: lower is
tried first for a component), the way out when it is unavailable (``way_out``) and, through
``describe()``, what ``wattwise doctor`` and the hardware record show. ``probe()`` is a
template: subclasses write ``_probe()``, and ``probe()`` turns any exception into an
unavailable answer and keeps the first answer once ``read()`` has started counting.
"""

from __future__ import annotations

import abc
import dataclasses
import sys
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

Component = Literal["cpu", "dram", "gpu", "npu"]
Method = Literal["counter", "sampled", "model", "user"]

#: Every component a meter may report, in the order selection fills them.
COMPONENTS: tuple[Component, ...] = ("cpu", "dram", "gpu", "npu")

#: Report and CLI labels per component (the report and ``wattwise show`` read these).
COMPONENT_LABELS: dict[str, str] = {
    "cpu": "CPU",
    "dram": "Memory (DRAM)",
    "gpu": "GPU",
    "npu": "Neural engine (NPU)",
}

#: How each component's machine-wide energy is attributed to a run's process tree; the
#: rules of ``wattwise.tracking`` for cpu, dram and gpu, and the whole-device rule for a
#: neural engine, which no operating system lists per process.
COMPONENT_ATTRIBUTION: dict[str, str] = {
    "cpu": "process-tree CPU time / machine busy CPU time, per sampling interval, "
    "times machine-wide CPU energy (idle power shared among busy processes)",
    "dram": "process-tree resident memory / physical memory, times machine-wide DRAM energy",
    "gpu": "GPU memory share of the run's processes among the GPU's compute processes "
    "(NVML, amdsmi); whole device where the driver cannot list them (see record "
    "gpu_attribution); a system-on-chip GPU (Apple) has no process list: whole device",
    "npu": "whole device: no driver lists neural-engine use per process, so the run is "
    "charged the engine's whole energy over its lifetime (an upper bound when other "
    "programs use it)",
}


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


def clause(reason: str) -> str:
    """A reason sentence as a clause: no final period, lower-case first word."""
    text = reason.strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text


class BaseMeter(abc.ABC):
    """A source of machine-wide cumulative energy for one or more components.

    Subclasses set the class attributes and write ``_probe()``, ``components()``,
    ``read()`` and ``info()``; everything else has a default. Thread-safety: one meter
    instance is read by one sampler thread at a time.

    Class attributes:
        name: Meter id, kebab-case, unique in the registry (``gpu-amdsmi``).
        method: The preferred method (``counter`` … ``user``); ``info().method`` is the
            effective one.
        covers: Components this meter can measure; the first is its main one.
        optional_covers: Components it can leave out when another meter measures them
            (default: all but the main one; a system-on-chip meter: all).
        preference: Rank among meters for the same component: lower is tried first.
        way_out: What to do when it is unavailable, for error messages ("leave
            'gpu-amdsmi' out of meters to run without GPU energy").
        platforms: ``sys.platform`` prefixes where the meter can work (``("linux",)``);
            empty means anywhere. Default selection skips it elsewhere (doctor still lists
            it with its reason).
    """

    name: ClassVar[str]
    method: ClassVar[Method]
    covers: ClassVar[tuple[Component, ...]] = ()
    optional_covers: ClassVar[tuple[Component, ...] | None] = None
    preference: ClassVar[int] = 50
    way_out: ClassVar[str] = ""
    platforms: ClassVar[tuple[str, ...]] = ()

    _availability: Availability | None = None
    _started: bool = False

    @classmethod
    def from_context(cls, context: Any) -> BaseMeter:
        """Build the meter for selection (``context`` is a ``MeterContext``).

        The default calls the class without arguments; meters that need the powercap root,
        an injected vendor module or the components to leave out override this.
        """
        return cls()

    @classmethod
    def optional(cls) -> tuple[Component, ...]:
        """The components this meter can leave out (``optional_covers`` or all but the main)."""
        return cls.optional_covers if cls.optional_covers is not None else cls.covers[1:]

    @classmethod
    def runs_on(cls, platform: str | None = None) -> bool:
        """True when the meter can work on ``platform`` (default ``sys.platform``)."""
        platform = sys.platform if platform is None else platform
        return not cls.platforms or any(platform.startswith(p) for p in cls.platforms)

    def probe(self) -> Availability:
        """Say whether this meter works here. Cheap; never raises.

        Once ``read()`` has started counting (``self._started``), returns the first answer
        again, so that a second probe never resets cumulative totals.
        """
        if self._availability is not None and self._started:
            return self._availability
        try:
            answer = self._probe()
        except Exception as err:  # probe() must never raise
            answer = Availability(
                False,
                f"Probing the {self.name} meter failed unexpectedly: {err!r}.",
                "Run 'wattwise doctor --debug' and report the output.",
            )
        self._availability = answer
        return answer

    def _probe(self) -> Availability:
        """The check itself; may raise (``probe()`` turns that into an answer)."""
        return Availability(
            False,
            f"The {type(self).__name__} meter implements neither probe() nor _probe().",
            "Write _probe() in the meter class (see 'write a meter' in the meters docs).",
        )

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

    # -- selection and doctor hooks -------------------------------------------------------

    @property
    def permission_denied(self) -> bool:
        """True when the last probe failed only for lack of permission."""
        return False

    def absence(self, component: str, availability: Availability) -> str:
        """A clause saying why this meter gives no figure for ``component`` here.

        Used in selection fallback sentences ("cpu: <absence>; estimated with ...").
        """
        if availability.ok:
            return f"the {self.name} meter here has no {component} domain"
        return f"no {self.name} figure ({clause(availability.reason)})"

    def selection_note(self) -> str:
        """Extra words after "estimated with the <name> meter" (e.g. the matched rule)."""
        return ""

    def unavailable_error(self, availability: Availability) -> Exception:
        """The exception a caller that asked for this meter by name gets."""
        from wattwise.exceptions import MeterPermissionError, MeterUnavailableError

        hint = f" {availability.hint}" if availability.hint else ""
        way_out = self.way_out or f"leave {self.name!r} out of meters"
        msg = (
            f"Cannot use the {self.name} meter: {clause(availability.reason)}.{hint} Run "
            f"'wattwise doctor' for details, or {way_out}."
        )
        if self.permission_denied:
            return MeterPermissionError(msg)
        return MeterUnavailableError(msg)

    def describe(self) -> dict[str, object]:
        """What doctor and the hardware record show: id, covers, method, state, reason."""
        state = self.probe()
        out: dict[str, object] = {
            "meter": self.name,
            "covers": list(self.covers),
            "method": self.method,
            "ok": state.ok,
            "reason": state.reason,
            "hint": state.hint,
        }
        if state.ok:
            out["components"] = list(self.components())
            out["method"] = self.info().method
        return out


@runtime_checkable
class GpuMeter(Protocol):
    """What a GPU meter adds for attribution and the hardware record.

    ``wattwise.tracking`` calls ``device_processes()`` at each sample to charge a run its
    share of each board; ``describe_hardware()`` lists ``devices()``.
    """

    def device_processes(self) -> Mapping[str, Mapping[int, int] | None]:
        """Domain key (``gpu:0``) -> ``{pid: used device memory in bytes}``, or None for a
        device whose processes cannot be listed (whole-device attribution)."""
        ...

    def devices(self) -> list[dict[str, object]]:
        """One JSON-ready dict per metered device: ``index``, ``key``, ``name``,
        ``memory_mib``, ``power_limit_w``, ``driver``, ``vendor``, ``method``."""
        ...


def component_of(key: str) -> Component:
    """``"gpu:1"`` -> ``"gpu"``."""
    comp = key.split(":", 1)[0]
    if comp not in COMPONENTS:
        valid = ", ".join(repr(c) for c in COMPONENTS)
        msg = f"Unknown energy domain key {key!r}; expected one of {valid} with an index."
        raise ValueError(msg)
    return comp  # type: ignore[return-value,unused-ignore]
