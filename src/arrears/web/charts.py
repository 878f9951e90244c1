"""Bar charts as inline SVG, drawn on the server (no script, no front-end build).

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` listing every value, and every
bar has its own ``<title>`` (a tooltip and a text for screen readers); pages also show the numbers in a
table next to the chart. Text is escaped; sizes scale with the width of the page (``viewBox``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 260
PAD_LEFT = 64
PAD_RIGHT = 12
PAD_TOP = 16
PAD_BOTTOM = 48
COLOURS = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0891b2")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[int]


def _nice_top(peak: int) -> int:
    """A round upper bound for the axis (1, 2 or 5 times a power of ten) at or above ``peak``."""
    if peak <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= peak:
                return step * m
        step *= 10


def bar_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    show: Callable[[int], str] = str,
    label_every: int = 1,
    test_id: str = "chart",
) -> Markup:
    """Grouped vertical bars: one group per label, one bar per series; ``show`` formats a value."""
    top = _nice_top(max((v for s in series for v in s.values), default=0))
    # room for the longest axis label (about 7 units a character at the axis font size)
    pad_left = max(PAD_LEFT, 12 + 7 * max(len(show(top * k // 4)) for k in range(5)))
    inner_w = WIDTH - pad_left - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    groups = max(len(labels), 1)
    group_w = inner_w / groups
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1.0)
    parts: list[str] = []
    desc = "; ".join(
        f"{label}: " + ", ".join(f"{s.name} {show(s.values[i])}" for s in series)
        for i, label in enumerate(labels)
    )
    parts.append(
        f'<svg class="chart" data-testid="{escape(test_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(test_id)}-t {escape(test_id)}-d" preserveAspectRatio="xMidYMid meet">'
    )
    parts.append(f'<title id="{escape(test_id)}-t">{escape(title)}</title>')
    parts.append(f'<desc id="{escape(test_id)}-d">{escape(desc)}</desc>')
    for k in range(5):  # grid lines and the axis scale
        value = top * k // 4
        y = PAD_TOP + inner_h - inner_h * k / 4
        parts.append(
            f'<line class="grid" x1="{pad_left}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{pad_left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(show(value))}</text>'
        )
    for i, label in enumerate(labels):
        x0 = pad_left + group_w * i + group_w * 0.1
        for j, s in enumerate(series):
            value = s.values[i]
            h = inner_h * value / top
            x = x0 + bar_w * j
            y = PAD_TOP + inner_h - h
            colour = COLOURS[j % len(COLOURS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w * 0.92:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(label)} · {escape(s.name)}: {escape(show(value))}</title></rect>"
            )
        if (len(labels) - 1 - i) % label_every == 0:  # counted from the last, so the latest is labelled
            cx = pad_left + group_w * (i + 0.5)
            parts.append(
                f'<text class="label" x="{cx:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    if len(series) > 1:  # legend
        for j, s in enumerate(series):
            x = pad_left + j * 130
            y = HEIGHT - 12
            colour = COLOURS[j % len(COLOURS)]
            parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
            parts.append(f'<text class="legend" x="{x + 14}" y="{y}">{escape(s.name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
