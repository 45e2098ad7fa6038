"""The live status line of ``wattwise run`` on a terminal.

One line on the terminal's last row: elapsed time, energy so far ± band, mean power over
the last refresh, and, when the command's total number of steps is known
(``--total-steps`` or ``WATTWISE_TOTAL_STEPS``) and it logs steps (``wattwise.log(step=...)``),
the predicted total energy with its interval.

The line never mixes into the command's output: like apt's progress bar, it reserves the
terminal's last row (a scroll region, DECSTBM, set to the rows above it), so the command's
output scrolls above the line and each redraw saves the cursor, writes the last row and
restores the cursor in one write. The command's stdout and stderr are never read or
changed by wattwise. The line is shown only when stderr is a terminal of at least three
rows, not in CI (``CI`` set), not with ``TERM=dumb``, not with ``--quiet`` or
``WATTWISE_LIVE=0``; any failure to draw turns it off silently (never harm the job).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from wattwise._units import energy as fmt_energy

#: Environment variable that turns the line off (``0``).
LIVE_ENV = "WATTWISE_LIVE"
#: Environment variable giving the command's total number of steps.
TOTAL_STEPS_ENV = "WATTWISE_TOTAL_STEPS"


def live_wanted(
    stream: TextIO, *, quiet: bool = False, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether to show the live line on ``stream``: a terminal, not CI, not dumb, not off."""
    env = os.environ if environ is None else environ
    if quiet or env.get(LIVE_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    if env.get("CI", "").strip() or env.get("TERM", "") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def total_steps_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """``WATTWISE_TOTAL_STEPS`` as a positive int, or None when unset.

    Raises:
        ValueError: It is set but not an int >= 1 (the message says how to fix it).
    """
    env = os.environ if environ is None else environ
    text = env.get(TOTAL_STEPS_ENV, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = (
            f"{TOTAL_STEPS_ENV}={text!r} is not a number of steps: it must be an int >= 1 "
            f"(the steps the command logs, e.g. epochs); unset it or fix it."
        )
        raise ValueError(msg)
    return value


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def status_text(
    *,
    elapsed_s: float,
    energy_j: float,
    band_j: float,
    power_w: float | None,
    step: int | None = None,
    total_steps: int | None = None,
    prediction: Any = None,
) -> str:
    """The line's text: ``wattwise 1:23 · 1.2 kJ ± 150 J · 14.2 W · step 3/10 · ...``."""
    parts = [f"wattwise {_duration(elapsed_s)}", f"{fmt_energy(energy_j)} ± {fmt_energy(band_j)}"]
    parts.append(f"{power_w:.3g} W" if power_w is not None else "- W")
    if total_steps is not None:
        parts.append(f"step {'-' if step is None else step + 1}/{total_steps}")
        if prediction is not None:
            parts.append(
                f"total ~{fmt_energy(prediction.total_j)} "
                f"[{fmt_energy(prediction.low_j)}, {fmt_energy(prediction.high_j)}]"
            )
        else:
            parts.append("total: after 3 steps")
    return " · ".join(parts)


class LiveLine:
    """Draws the status of a running run on a terminal's last row until :meth:`stop`.

    Args:
        run: The running :class:`wattwise.Run` (its ``snapshot()`` gives the figures).
        fd: The terminal's file descriptor (stderr's).
        total_steps: The command's total steps, or None.
        steps: Returns the last step the command logged (or None); called from the line's
            thread, at most once per refresh.
        refresh_s: Time between two redraws (default: the run's sampling interval, at
            least 0.5 s, so the line adds no more samples than the run takes).
        clock: Monotonic clock (tests may script it).
    """

    def __init__(
        self,
        run: Any,
        fd: int,
        *,
        total_steps: int | None = None,
        steps: Callable[[], int | None] | None = None,
        refresh_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run = run
        self.fd = fd
        self.total_steps = total_steps
        self._steps = steps
        self.refresh_s = refresh_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rows = 0
        self._t0 = clock()
        self._last: tuple[float, float] | None = None
        self.reports: list[tuple[int, float]] = []
        self.prediction: Any = None
        self.failed = False
        self._released = False

    def _write(self, text: str) -> None:
        os.write(self.fd, text.encode("utf-8", "replace"))

    def start(self) -> LiveLine:
        """Reserve the last row and start redrawing (no-op on a terminal too small)."""
        try:
            self._rows = os.get_terminal_size(self.fd).lines
        except OSError:
            self._rows = 0
        if self._rows < 3:
            self.failed = True
            return self
        # room for the line, then the scroll region above it (apt's sequence)
        self._write(f"\n\x1b7\x1b[1;{self._rows - 1}r\x1b8\x1b[1A")
        self._thread = threading.Thread(target=self._loop, name="wattwise-live", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        from wattwise.exceptions import RunStateError

        try:
            while True:
                try:
                    self.draw()
                except RunStateError:  # not started yet, or already finished: nothing to show
                    pass
                except Exception:  # never harm the job: stop drawing, leave the command alone
                    self.failed = True
                    self._release()
                    return
                if self._stop.wait(self._refresh()):
                    return
        finally:
            close = getattr(self._steps, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _refresh(self) -> float:
        if self.refresh_s is not None:
            return self.refresh_s
        try:
            return max(0.5, float(self.run.settings.interval_s))
        except Exception:  # not started yet
            return 0.5

    def line(self) -> str:
        """Take a snapshot of the run and make the line's text."""
        snap = self.run.snapshot()
        now = self._clock()
        energy, band = float(snap["energy_j"]), float(snap.get("energy_band_j", 0.0))
        power = None
        if self._last is not None and now > self._last[0]:
            power = max(0.0, (energy - self._last[1]) / (now - self._last[0]))
        self._last = (now, energy)
        step = None
        if self.total_steps is not None and self._steps is not None:
            step = self._steps()
            if step is not None and (not self.reports or step > self.reports[-1][0]):
                from wattwise.tracking import predict_energy

                self.reports.append((step, energy))
                self.prediction = predict_energy(self.reports, end_step=self.total_steps - 1)
        return status_text(
            elapsed_s=now - self._t0, energy_j=energy, band_j=band, power_w=power, step=step,
            total_steps=self.total_steps, prediction=self.prediction,
        )  # fmt: skip

    def draw(self) -> None:
        """Redraw the last row, cursor saved and restored, in one write."""
        text = self.line()
        try:
            cols = os.get_terminal_size(self.fd).columns
        except OSError:
            cols = 80
        text = text[: max(1, cols - 1)]
        self._write(f"\x1b7\x1b[{self._rows};1H\x1b[2K\x1b[7m{text}\x1b[0m\x1b8")

    def stop(self) -> None:
        """Stop redrawing, give the row back to the terminal and clear it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            self._release()

    def _release(self) -> None:
        """Give the last row back (once): the whole screen scrolls again, the row cleared."""
        if self._released:
            return
        self._released = True
        with contextlib.suppress(OSError):
            self._write(f"\x1b7\x1b[1;{self._rows}r\x1b[{self._rows};1H\x1b[2K\x1b8")


class LedgerSteps:
    """The last step a run's command logged, read from the run's ledger (own connection).

    Args:
        run: The run (its ledger is known once it has started).
    """

    def __init__(self, run: Any) -> None:
        self.run = run
        self._store: Any = None
        self._broken = False

    def __call__(self) -> int | None:
        from wattwise.exceptions import RunStateError

        if self._broken:
            return None
        try:
            if self._store is None:
                from wattwise.store import open_store

                self._store = open_store(self.run.store.url)
            steps = [m[0] for m in self._store.metrics(self.run.id) if m[0] is not None]
        except RunStateError:  # not started yet
            return None
        except Exception:  # a locked or missing ledger: no step, no prediction
            self._broken = True
            return None
        return max(steps) if steps else None

    def close(self) -> None:
        """Close the ledger connection, if one was opened (from the thread that used it)."""
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None


def start_for(
    run: Any, *, quiet: bool, total_steps: int | None, stream: TextIO | None = None
) -> LiveLine | None:
    """Start the live line for ``run`` on ``stream`` (stderr) when it is wanted there.

    Returns:
        The line (call ``stop()`` once the command ends), or None when not shown.
    """
    import sys

    out = sys.stderr if stream is None else stream
    if not live_wanted(out, quiet=quiet):
        return None
    try:
        fd = out.fileno()
        steps = LedgerSteps(run) if total_steps is not None else None
        line = LiveLine(run, fd, total_steps=total_steps, steps=steps).start()
    except Exception:  # never harm the job: no line
        return None
    return None if line.failed else line
