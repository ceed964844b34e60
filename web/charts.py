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
