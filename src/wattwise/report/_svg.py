"""Small inline-SVG charts for the HTML report: no JavaScript, no external assets.

Charts scale with their container (``viewBox``); colours come from CSS classes the report's
stylesheet defines (``s-<key>`` strokes, ``f-<key>`` fills), so light and dark themes work
without touching the SVG. Every text is escaped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Sequence
from html import escape

W, H = 720, 300
ML, MR, MT, MB = 70, 20, 16, 48
MAX_POINTS = 600

Fmt = Callable[[float], str]


@dataclasses.dataclass(frozen=True)
class Series:
    """A named series of ``(x, y)`` points; ``key`` picks the CSS colour class."""

    name: str
    key: str
    points: list[tuple[float, float]]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = [round(start, 12)]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round(start + len(ticks) * step, 12))
    if len(ticks) < 2:
        ticks.append(round(start + step, 12))
    return ticks


def _downsample(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    size = math.ceil(len(points) / MAX_POINTS)
    out = []
    for i in range(0, len(points), size):
        chunk = points[i : i + size]
        out.append((chunk[-1][0], sum(p[1] for p in chunk) / len(chunk)))
    return out


class _Frame:
    """Maps data to the plot area (a ``width`` × ``height`` viewBox) and draws axes."""

    def __init__(self, x_range: tuple[float, float], y_ticks: list[float],
                 x_ticks: list[float], *, width: int = W, height: int = H) -> None:  # fmt: skip
        self.w, self.h = width, height
        self.x0, self.x1 = x_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        self.y_ticks = y_ticks
        self.x_ticks = [t for t in x_ticks if self.x0 <= t <= self.x1]
        self.y0, self.y1 = y_ticks[0], y_ticks[-1]

    def x(self, value: float) -> float:
        return ML + (value - self.x0) / (self.x1 - self.x0) * (self.w - ML - MR)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.h - MB - (value - self.y0) / span * (self.h - MT - MB)

    def axes(self, x_fmt: Fmt, y_fmt: Fmt, x_label: str, y_label: str) -> list[str]:
        W, H = self.w, self.h  # noqa: N806
        parts = []
        for t in self.y_ticks:
            y = self.y(t)
            parts.append(f'<line class="grid" x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}"/>')
            parts.append(
                f'<text class="tick" x="{ML - 8}" y="{y + 4:.1f}" text-anchor="end">'
                f"{escape(y_fmt(t))}</text>"
            )
        for t in self.x_ticks:
            x = self.x(t)
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{H - MB + 18}" text-anchor="middle">'
                f"{escape(x_fmt(t))}</text>"
            )
        parts.append(f'<line class="axis" x1="{ML}" x2="{W - MR}" y1="{H - MB}" y2="{H - MB}"/>')
        parts.append(
            f'<text class="label" x="{(ML + W - MR) / 2:.0f}" y="{H - 8}" '
            f'text-anchor="middle">{escape(x_label)}</text>'
        )
        parts.append(
            f'<text class="label" x="14" y="{(MT + H - MB) / 2:.0f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(MT + H - MB) / 2:.0f})">{escape(y_label)}</text>'
        )
        return parts


def _svg(title: str, desc: str, body: list[str], *, width: int = W, height: int = H) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>" + "".join(body) + "</svg>"
    )


def _empty(title: str, text: str, *, width: int = W, height: int = H) -> str:
    body = [
        f'<text class="label" x="{width / 2}" y="{height / 2}" text-anchor="middle">'
        f"{escape(text)}</text>"
    ]
    return _svg(title, text, body, width=width, height=height)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_fmt: Fmt,
    y_fmt: Fmt,
    fill: bool = True,
    stacked: bool = False,
    step: bool = False,
    x_ticks: list[float] | None = None,
    width: int = W,
    height: int = H,
    from_zero: bool = True,
) -> str:
    """Lines (optionally filled or stacked areas) of several series on one plot.

    Args:
        series: The series; each point is ``(x, y)``.
        title: Accessible title (also shown on hover).
        x_label: Axis label with unit.
        y_label: Axis label with unit.
        x_fmt: Tick formatter for x.
        y_fmt: Tick formatter for y.
        fill: Shade the area under each line.
        stacked: Stack the series (y values are added, in order).
        step: Draw steps (value holds until the next point) instead of straight lines.
        x_ticks: Tick positions for x (default: round numbers).
        width: viewBox width (text keeps its size relative to this).
        height: viewBox height.
        from_zero: Start the y axis at 0 (else at the data's low end, padded: for metrics
            such as an accuracy between 0.8 and 0.95, or a negative score).

    Returns:
        An ``<svg>`` element.
    """
    data = [Series(s.name, s.key, _downsample(s.points)) for s in series if s.points]
    if not data:
        return _empty(title, "no data", width=width, height=height)
    xs = sorted({x for s in data for x, _ in s.points})
    if stacked:
        data = _stack(data, xs, step=step)
    y_max = max(max(y for _, y in s.points) for s in data)
    if from_zero:
        y_ticks = nice_ticks(0.0, y_max * 1.05 if y_max > 0 else 1.0)
    else:
        y_min = min(min(y for _, y in s.points) for s in data)
        pad = (y_max - y_min) * 0.06 or abs(y_max) * 0.05 or 1.0
        y_ticks = nice_ticks(y_min - pad, y_max + pad)
    frame = _Frame((xs[0], xs[-1]), y_ticks, x_ticks or nice_ticks(xs[0], xs[-1], 6),
                   width=width, height=height)  # fmt: skip
    body = frame.axes(x_fmt, y_fmt, x_label, y_label)
    base_coords = [(frame.x(xs[0]), frame.y(y_ticks[0])), (frame.x(xs[-1]), frame.y(y_ticks[0]))]
    below: list[tuple[float, float]] = base_coords
    for s in data:
        coords = _coords(s.points, frame, step=step)
        path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        if not from_zero and len(s.points) == 1:
            x, y = coords[0]
            body.append(f'<circle class="f-{escape(s.key)}" cx="{x:.1f}" cy="{y:.1f}" r="4"/>')
        if fill:
            lower = below if stacked else base_coords
            back = " L".join(f"{x:.1f},{y:.1f}" for x, y in reversed(lower))
            area = f"{path} L{back} Z"
            opacity = "solid" if stacked else "soft"
            body.append(f'<path class="f-{escape(s.key)} {opacity}" d="{area}"/>')
            below = coords
        if not stacked:
            body.append(
                f'<path class="line s-{escape(s.key)}" d="{path}"><title>{escape(s.name)}'
                "</title></path>"
            )
    desc = f"{title}: {', '.join(s.name for s in data)}"
    return _svg(title, desc, body, width=width, height=height)


def _coords(
    points: Sequence[tuple[float, float]], frame: _Frame, *, step: bool
) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for i, (x, y) in enumerate(points):
        if step and i > 0:
            out.append((frame.x(x), frame.y(points[i - 1][1])))
        out.append((frame.x(x), frame.y(y)))
    if len(out) == 1:
        out.append((out[0][0] + 1, out[0][1]))
    return out


def _value_at(points: Sequence[tuple[float, float]], x: float, *, step: bool) -> float:
    """The series' value at ``x``: held (step) or interpolated; 0 before its start."""
    if not points or x < points[0][0]:
        return 0.0
    for i in range(len(points) - 1):
        (xa, ya), (xb, yb) = points[i], points[i + 1]
        if xa <= x < xb:
            if step or xb == xa:
                return ya
            return ya + (yb - ya) * (x - xa) / (xb - xa)
    return points[-1][1]


def _stack(data: list[Series], xs: list[float], *, step: bool) -> list[Series]:
    out = []
    below = [0.0] * len(xs)
    for s in data:
        values = [_value_at(s.points, x, step=step) + b for x, b in zip(xs, below, strict=True)]
        out.append(Series(s.name, s.key, list(zip(xs, values, strict=True))))
        below = values
    return out


def scatter_chart(
    points: Sequence[tuple[float, float, str, bool, bool, bool]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_fmt: Fmt,
    y_fmt: Fmt,
    maximize: bool,
    width: int = W,
    height: int = H,
) -> str:
    """Accuracy versus energy: every trial, the Pareto front joined by a line.

    Args:
        points: ``(x, y, label, on_front, is_best, finished)`` per trial.
        title: Accessible title.
        x_label: Axis label with unit.
        y_label: Axis label.
        x_fmt: Tick formatter for x.
        y_fmt: Tick formatter for y.
        maximize: Whether higher y is better (the front steps up or down).
        width: viewBox width.
        height: viewBox height.

    Returns:
        An ``<svg>`` element.
    """
    if not points:
        return _empty(title, "no trial logged the objective", width=width, height=height)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    y_lo, y_hi = min(ys), max(ys)
    pad = (y_hi - y_lo) * 0.08 or abs(y_hi) * 0.05 or 1.0
    low, high = y_lo - pad, y_hi + pad
    if y_lo >= 0.0 and y_hi <= 1.0:  # a score in [0, 1]: keep the axis inside it
        low, high = max(0.0, low), min(1.0, high)
    y_ticks = nice_ticks(low, high)
    x_pad = (max(xs) - min(xs)) * 0.05 or max(xs) * 0.05 or 1.0
    x_lo, x_hi = max(0.0, min(xs) - x_pad), max(xs) + x_pad
    frame = _Frame((x_lo, x_hi), y_ticks, nice_ticks(x_lo, x_hi, 5), width=width,
                   height=height)  # fmt: skip
    body = frame.axes(x_fmt, y_fmt, x_label, y_label)
    front = sorted((p for p in points if p[3]), key=lambda p: (p[0], -p[1] if maximize else p[1]))
    if len(front) > 1:
        coords = []
        for i, p in enumerate(front):
            if i > 0:
                coords.append((frame.x(p[0]), frame.y(front[i - 1][1])))
            coords.append((frame.x(p[0]), frame.y(p[1])))
        path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        body.append(f'<path class="line s-front" d="{path}"/>')
    for x, y, label, on_front, is_best, finished in sorted(points, key=lambda p: p[3]):
        cls = "pt front" if on_front else "pt"
        if not finished:
            cls += " hollow"
        tip = f"{label}: {x_fmt(x)}, {y_fmt(y)}" + (" (best)" if is_best else "")
        cx, cy = frame.x(x), frame.y(y)
        body.append(
            f'<circle class="{cls}" cx="{cx:.1f}" cy="{cy:.1f}" r="{6 if on_front else 4.5}">'
            f"<title>{escape(tip)}</title></circle>"
        )
        if is_best:
            body.append(f'<circle class="best" cx="{cx:.1f}" cy="{cy:.1f}" r="11"/>')
            right = cx > width - MR - 60
            anchor = "end" if right else "start"
            tx = cx - 14 if right else cx + 14
            body.append(
                f'<text class="tick strong" x="{tx:.1f}" y="{cy - 10:.1f}" '
                f'text-anchor="{anchor}">best</text>'
            )
    desc = f"{title}: {len(points)} trials, {len(front)} on the front"
    return _svg(title, desc, body, width=width, height=height)


def time_ticks(lo: float, hi: float, n: int = 5) -> tuple[list[float], Fmt]:
    """Tick positions and a formatter for Unix-time axes (clock time or dates)."""
    span = max(hi - lo, 1.0)
    steps = (60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
    step = next((s for s in steps if span / s <= n), 30 * 86400)
    if span < 120:
        step = max(1, int(span / n) or 1)
    first = math.ceil(lo / step) * step
    ticks = [float(first + i * step) for i in range(int((hi - first) // step) + 1)]
    if not ticks:
        ticks = [lo]

    def fmt(t: float) -> str:
        moment = dt.datetime.fromtimestamp(t, tz=dt.timezone.utc)
        if span < 120:
            return moment.strftime("%H:%M:%S")
        if span < 2 * 86400:
            return moment.strftime("%H:%M")
        return moment.strftime("%d %b")

    return ticks, fmt
