"""Small charts as inline SVG, written by hand: horizontal bars, grouped bars, lines.

No scripts and no fonts from anywhere: the report is one file that opens offline.
Every bar and point carries its value as text or a <title>, so nothing depends on
colour alone.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import NamedTuple

CHAR_PX = 6.8  # average width of a 12 px sans-serif character, for laying out labels
WIDTH = 720
BAR = 22  # a bar's height
GAP = 10
PALETTE = ("#2563a8", "#9aa5b1", "#d9822b", "#3f9d5a", "#8e5cc4", "#c2452d")
Format = Callable[[float], str]


class Bar(NamedTuple):
    label: str
    value: float
    colour: str
    text: str  # the value as written next to the bar


class Marker(NamedTuple):
    """A dashed vertical line across the bars, such as a target."""
    value: float
    text: str


def _fit(label: str, px: float) -> str:
    most = max(4, int((px - 8) / CHAR_PX))
    return label if len(label) <= most else label[: most - 1] + "…"


def _label_px(labels: Sequence[str]) -> float:
    return min(300.0, max((len(label) for label in labels), default=4) * CHAR_PX + 16)


def _svg(height: float, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {height:.0f}" '
            f'width="{WIDTH}" height="{height:.0f}" font-family="system-ui, sans-serif" '
            f'font-size="12"><title>{escape(title)}</title>{"".join(body)}</svg>')


def bars(rows: Sequence[Bar], title: str, markers: Sequence[Marker] = ()) -> str:
    """One horizontal bar per row, scaled to the largest value or marker."""
    left = _label_px([row.label for row in rows])
    text_px = max((len(row.text) for row in rows), default=0) * CHAR_PX + 12
    room = WIDTH - left - text_px
    top = 18 if markers else 4
    most = max([row.value for row in rows] + [m.value for m in markers] + [1e-12])
    bottom = top + len(rows) * (BAR + GAP) - GAP
    body: list[str] = []
    for marker in markers:  # first, so the bars' values are written over the line
        x = left + room * marker.value / most
        half = len(marker.text) * CHAR_PX / 2
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{bottom + 4}" '
                    f'stroke="#333" stroke-dasharray="4 3"/>'
                    f'<text x="{min(max(x, half + 2), WIDTH - half - 2):.1f}" y="12" '
                    f'text-anchor="middle">{escape(marker.text)}</text>')
    for index, row in enumerate(rows):
        y = top + index * (BAR + GAP)
        length = max(1.0, room * max(row.value, 0.0) / most)
        body.append(f'<text x="{left - 8:.0f}" y="{y + BAR * 0.7:.1f}" text-anchor="end">'
                    f'<title>{escape(row.label)}</title>{escape(_fit(row.label, left))}</text>'
                    f'<rect x="{left:.0f}" y="{y}" width="{length:.1f}" height="{BAR}" '
                    f'fill="{row.colour}"><title>{escape(row.label)}: {escape(row.text)}</title></rect>'
                    f'<rect x="{left + length + 3:.1f}" y="{y + 3}" height="{BAR - 6}" '
                    f'width="{len(row.text) * CHAR_PX + 6:.0f}" fill="#fff"/>'  # over a marker
                    f'<text x="{left + length + 6:.1f}" y="{y + BAR * 0.7:.1f}">'
                    f'{escape(row.text)}</text>')
    return _svg(bottom + 8, body, title)


def grouped_bars(groups: Sequence[tuple[str, Sequence[tuple[str, float]]]], fmt: Format,
                 title: str) -> str:
    """Per group (a route, a server), one thin bar per series (p50, p95, p99), with a legend."""
    series = list(dict.fromkeys(name for _, values in groups for name, _ in values))
    colours = dict(zip(series, PALETTE[2:] + PALETTE[:2]))
    left = _label_px([label for label, _ in groups])
    thin = 12
    longest = max((len(f"{name} {fmt(v)}") for _, values in groups for name, v in values),
                  default=0)
    room = WIDTH - left - longest * CHAR_PX - 12
    most = max([v for _, values in groups for _, v in values] + [1e-12])
    body = [_legend(series, colours, left)]
    y = 26.0
    for label, values in groups:
        block = len(values) * (thin + 2)
        body.append(f'<text x="{left - 8:.0f}" y="{y + block / 2 + 4:.1f}" text-anchor="end">'
                    f'<title>{escape(label)}</title>{escape(_fit(label, left))}</text>')
        for name, value in values:
            length = max(1.0, room * max(value, 0.0) / most)
            body.append(f'<rect x="{left:.0f}" y="{y:.1f}" width="{length:.1f}" height="{thin}" '
                        f'fill="{colours[name]}"><title>{escape(label)} {escape(name)}: '
                        f'{escape(fmt(value))}</title></rect>'
                        f'<text x="{left + length + 5:.1f}" y="{y + thin - 2:.1f}" font-size="11">'
                        f'{escape(name)} {escape(fmt(value))}</text>')
            y += thin + 2
        y += GAP
    return _svg(y, body, title)


def _legend(series: Sequence[str], colours: dict[str, str], left: float) -> str:
    parts, x = [], left
    for name in series:
        parts.append(f'<rect x="{x:.0f}" y="4" width="12" height="12" fill="{colours[name]}"/>'
                     f'<text x="{x + 16:.0f}" y="14">{escape(name)}</text>')
        x += 16 + len(name) * CHAR_PX + 18
    return "".join(parts)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering low..high."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(math.ceil((high - first) / step) + 1)]


def lines(series: dict[str, Sequence[Sequence[float]]], fmt: Format, x_label: str,
          title: str) -> str:
    """One line per series of (x, y) points on shared axes, with a legend."""
    points = [p for values in series.values() for p in values]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks = nice_ticks(min(xs), max(xs))
    y_ticks = nice_ticks(0.0, max(ys + [0.0]))
    longest = max(len(fmt(t)) for t in y_ticks)
    left, right, top, height = longest * CHAR_PX + 14, WIDTH - 16, 28.0, 220.0
    bottom = top + height

    def sx(x: float) -> float:
        return left + (x - x_ticks[0]) / (x_ticks[-1] - x_ticks[0]) * (right - left)

    def sy(y: float) -> float:
        return bottom - (y - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]) * height

    colours = dict(zip(series, PALETTE))
    body = [_legend(list(series), colours, left)]
    for tick in y_ticks:
        body.append(f'<line x1="{left:.0f}" x2="{right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" '
                    f'stroke="#e3e6ea"/><text x="{left - 6:.0f}" y="{sy(tick) + 4:.1f}" '
                    f'text-anchor="end">{escape(fmt(tick))}</text>')
    for tick in x_ticks:
        body.append(f'<text x="{sx(tick):.1f}" y="{bottom + 16:.0f}" text-anchor="middle">'
                    f'{tick:g}</text>')
    body.append(f'<line x1="{left:.0f}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#555"/>'
                f'<text x="{(left + right) / 2:.0f}" y="{bottom + 32:.0f}" text-anchor="middle">'
                f'{escape(x_label)}</text>')
    for name, values in series.items():
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colours[name]}" '
                    f'stroke-width="2"><title>{escape(name)}</title></polyline>')
        if len(values) <= 60:
            body.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colours[name]}">'
                        f'<title>{escape(name)} at {x:g} s: {escape(fmt(y))}</title></circle>'
                        for x, y in values)
    return _svg(bottom + 40, body, title)
