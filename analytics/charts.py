"""Charts for the dashboard as server-rendered SVG.

Written here rather than taken from a chart library: the dashboard's CSP allows no script and no inline
style, and the page must be readable without JavaScript. The JavaScript chart libraries (Chart.js, uPlot)
draw on a canvas from a script; the Python ones that emit SVG (pygal) put styles and scripts inside it. What
is needed is small: a few lines over days, with axes, drawn with presentation attributes and CSS classes,
and a <title> on every point so a pointer shows the number. Every chart has its numbers in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

from .reports import Series

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28
WEEKLY_AFTER_DAYS = 92  # longer ranges are drawn per week (the sum of the week's day cells)
MAX_SERIES = 6


def buckets(days: Sequence[date], series: Sequence[Series]) -> tuple[list[date], list[Series]]:
    """Days, or weeks (starting on the range's first day) for long ranges, and the series summed to them."""
    if len(days) <= WEEKLY_AFTER_DAYS:
        return list(days), list(series)
    # Whole weeks only: a last week of a day or two drawn as one would look like a fall (found by a helper:
    # 12 months are 52 weeks and a day). The days left over are in the table beside the chart.
    whole = len(days) - len(days) % 7
    starts = list(days[:whole:7])
    summed = [Series(s.name, [sum(s.values[n : n + 7]) for n in range(0, whole, 7)]) for s in series]
    return starts, summed


def per(days: Sequence[date]) -> str:
    """What one point of a chart over ``days`` is: a day, or a week."""
    return "week" if len(days) > WEEKLY_AFTER_DAYS else "day"


def _nice_top(value: int) -> int:
    """The top of the axis: four equal whole steps of 1, 2, 2.5 or 5 times a power of ten, at or above
    ``value`` (found by a helper: a top of 25 labelled its lines 6, 12 and 18)."""
    power = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            step = factor * power
            if step == int(step) and 4 * step >= value:
                return int(4 * step)
        power *= 10


def line_chart(days: Sequence[date], series: Sequence[Series], label: str) -> Markup:
    """An SVG line chart of ``series`` (at most six) over ``days``; ``label`` describes it to screen
    readers, who get the numbers from the table next to it."""
    points, lines = buckets(days, series[:MAX_SERIES])
    weekly = len(points) != len(days)
    top = _nice_top(max((max(s.values, default=0) for s in lines), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points) - 1, 1)

    def x(n: int) -> float:
        return round(LEFT + n * step, 1)

    def y(value: int) -> float:
        return round(TOP + plot_h - value / top * plot_h, 1)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        'preserveAspectRatio="none" focusable="false">'
    ]
    for n in range(5):  # horizontal grid lines with their values
        value = top * n // 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value)}" y2="{y(value)}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y(value) + 4}" text-anchor="end">{value:,}</text>'
        )
    positions = _label_positions(len(points))
    for n in positions:
        anchor = "start" if n == 0 and len(positions) > 1 else "end" if n == positions[-1] else "middle"
        parts.append(
            f'<text class="axis" x="{x(n)}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
            f"{_day_label(points[n], weekly)}</text>"
        )
    for index, line in enumerate(lines):
        path = " ".join(f"{x(n)},{y(v)}" for n, v in enumerate(line.values))
        parts.append(f'<polyline class="line s{index}" points="{path}"/>')
        if len(points) <= 62:  # a point with its number for pointers; too crowded beyond two months
            for n, value in enumerate(line.values):
                when = points[n].isoformat() + (" (week)" if weekly else "")
                parts.append(
                    f'<circle class="dot s{index}" cx="{x(n)}" cy="{y(value)}" r="3">'
                    f"<title>{escape(line.name or '(no topic)')}, {when}: {value:,}</title></circle>"
                )
    parts.append("</svg>")
    # Safe: every text that is not a number or a date went through escape() above.
    return Markup("".join(parts))  # noqa: S704


def _label_positions(count: int) -> list[int]:
    if count <= 1:
        return [0] if count else []
    wanted = min(count, 7)
    return sorted({round(n * (count - 1) / (wanted - 1)) for n in range(wanted)})


# English month names, whatever locale the site's process set (strftime's %b and %B follow it).
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def long_date(day: date) -> str:
    """``7 December 2026``."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _day_label(day: date, weekly: bool) -> str:
    short = f"{day.day} {MONTHS[day.month - 1][:3]}"
    return f"{short} {day.year}" if weekly else short
