"""Small server-rendered SVG charts (no JavaScript, no build step): a line over days, with its range labelled.
Only numbers and fixed words go into the markup, so it is safe to embed as is."""
from __future__ import annotations

import datetime as dt
from typing import Sequence

from markupsafe import Markup

WIDTH, HEIGHT, PAD = 280, 90, 18


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.2f}"


def line_chart(title: str, days: Sequence[dt.date], values: Sequence[float]) -> Markup:
    """A line of `values` over `days` (oldest first) in a WIDTH x HEIGHT box, with min/max and first/last day."""
    if not values:
        return Markup("")
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    n = len(values)
    step = (WIDTH - 2 * PAD) / max(1, n - 1)
    points = " ".join(
        f"{PAD + i * step:.1f},{HEIGHT - PAD - (v - lo) / span * (HEIGHT - 2 * PAD):.1f}" for i, v in enumerate(values)
    )
    dots = "" if n > 1 else f'<circle cx="{PAD}" cy="{HEIGHT / 2:.1f}" r="3" />'
    label = f"{title}: {_fmt(values[-1])} on {days[-1].isoformat()}" + (
        f", from {_fmt(values[0])} on {days[0].isoformat()}" if n > 1 else "")
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'aria-label="{label}"><title>{label}</title>'
        f'<text x="{PAD}" y="12" class="chart-title">{title}</text>'
        f'<text x="{WIDTH - PAD}" y="12" text-anchor="end" class="chart-axis">{_fmt(hi)}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 4}" text-anchor="end" class="chart-axis">{_fmt(lo)}</text>'
        f'<text x="{PAD}" y="{HEIGHT - 4}" class="chart-axis">{days[0].strftime("%b %d")}</text>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{points}" />{dots}</svg>'
    )


def minutes_chart(title: str, minutes: Sequence[dt.datetime], series: Sequence[tuple[str, Sequence[float | None]]],
                  unit: str = "", width: int = 600, height: int = 140) -> Markup:
    """Lines over the last minutes (oldest first, UTC), one per (name, values) of `series` (None: no value in that
    minute, the line breaks), from 0 to the highest value, with the first and last minute and the latest values
    labelled. `title`, names and `unit` are fixed words of the caller."""
    if not minutes:
        return Markup("")
    known = [v for _, values in series for v in values if v is not None]
    hi = max(known, default=0.0) or 1.0
    n = len(minutes)
    step = (width - 2 * PAD) / max(1, n - 1)
    top, bottom = PAD + 4, height - PAD
    lines = []
    for k, (name, values) in enumerate(series):
        runs: list[list[str]] = [[]]
        for i, v in enumerate(values):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(f"{PAD + i * step:.1f},{bottom - v / hi * (bottom - top):.1f}")
        for run in runs:
            if len(run) == 1:
                x, y = run[0].split(",")
                lines.append(f'<circle class="series-{k}" cx="{x}" cy="{y}" r="2.5" />')
            elif run:
                lines.append(f'<polyline class="series-{k}" fill="none" stroke-width="2" points="{" ".join(run)}" />')
    latest = ", ".join(f"{name} {_fmt(_last(values))}{unit}" for name, values in series)
    label = f"{title} per minute, {minutes[0]:%H:%M} to {minutes[-1]:%H:%M} UTC; last minute: {latest}"
    legend = "".join(
        f'<text x="{PAD + 110 + 45 * k}" y="12" class="chart-axis series-{k}-text">■ {name}</text>'
        for k, (name, _) in enumerate(series)) if len(series) > 1 else ""
    return Markup(
        f'<svg class="chart wide" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="{label}"><title>{label}</title>'
        f'<text x="{PAD}" y="12" class="chart-title">{title}</text>'
        f'<text x="{width - PAD}" y="12" text-anchor="end" class="chart-axis">max {_fmt(max(known, default=0.0))}{unit}</text>'
        f'<line class="chart-grid" x1="{PAD}" y1="{bottom}" x2="{width - PAD}" y2="{bottom}" />'
        f'<text x="{PAD}" y="{bottom + 11}" class="chart-axis">{minutes[0]:%H:%M}</text>'
        f'<text x="{width - PAD}" y="{bottom + 11}" text-anchor="end" class="chart-axis">{minutes[-1]:%H:%M} UTC</text>'
        f'{"".join(lines)}{legend}</svg>'
    )


def _last(values: Sequence[float | None]) -> float:
    value = values[-1] if values else None
    return 0.0 if value is None else value
