"""A live status line while a study runs: trials, best value, energy and carbon vs budget.

Shown on stderr with ``rich`` when stderr is a terminal (or when asked), quiet otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from wattwise._units import carbon as _carbon
from wattwise._units import energy as _energy
from wattwise.tuning._budget import Budget, Spent


def status_line(
    *,
    counts: dict[str, int],
    running: int,
    best: tuple[int, float] | None,
    spent: Spent,
    budget: Budget,
    predictions: Mapping[int, Any] | None = None,
) -> str:
    """One line: ``trials 12/40 (5 complete, 6 pruned, 1 failed, 2 running) · best ...``.

    ``predictions`` maps running trials to their :class:`wattwise.tracking.EnergyPrediction`
    (None: none yet); each is shown as ``#7 ~1.2 kJ [1.0 kJ, 1.5 kJ]`` (at most three).
    """
    total = sum(counts.values())
    cap = f"/{budget.n_trials}" if budget.n_trials is not None else ""
    parts = [
        f"trials {total + running}{cap} ({counts.get('complete', 0)} complete, "
        f"{counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed, {running} running)",
        f"best {best[1]:.6g} (#{best[0]})" if best else "best -",
    ]
    energy = f"energy {_energy(spent.energy_j)}"
    if budget.energy_j is not None:
        energy += f" / {_energy(budget.energy_j)}"
    carbon = f"carbon {_carbon(spent.co2e_g)}"
    if budget.co2e_g is not None:
        carbon += f" / {_carbon(budget.co2e_g)}"
    time = f"{spent.duration_s:.0f} s"
    if budget.timeout_s is not None:
        time += f" / {budget.timeout_s:.0f} s"
    shown = [(n, p) for n, p in sorted((predictions or {}).items()) if p is not None][:3]
    if shown:
        parts.append(
            "predicted "
            + ", ".join(
                f"#{n} ~{_energy(p.total_j)} [{_energy(p.low_j)}, {_energy(p.high_j)}]"
                for n, p in shown
            )
        )
    return " · ".join([*parts, energy, carbon, time])


class Progress:
    """The live line. ``enabled=None`` shows it only when stderr is a terminal.

    Args:
        enabled: True, False, or None for "when stderr is a TTY".
        title: Shown before the status.
    """

    def __init__(self, enabled: bool | None, title: str) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.title = title
        self._live: Any = None
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text
        except ImportError:
            return
        self._text = Text
        self._console = Console(stderr=True)
        self._live = Live(
            Text(f"{title}: starting"), console=self._console, refresh_per_second=4,
            transient=False,
        )  # fmt: skip
        self._live.start()

    @property
    def enabled(self) -> bool:
        """Whether the line is shown."""
        return self._live is not None

    def update(self, line: str) -> None:
        """Replace the line."""
        if self._live is not None:
            self._live.update(self._text(f"{self.title}: {line}"))

    def close(self) -> None:
        """Leave the last line on screen and stop refreshing."""
        if self._live is not None:
            self._live.stop()
            if not self._console.is_terminal:  # a terminal ends the line itself
                self._console.line()
            self._live = None
