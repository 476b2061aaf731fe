"""Charts as inline SVG strings, drawn in Python: learning curves, gradient profiles, scatter plots.

The site's pages must open from a plain file:// open with no request to another host and no
plotting library in the browser, and the committed site must be byte for byte what a build
writes; so each chart is a string made here with fixed-precision coordinates, escaped
labels and no randomness. Non-finite and non-positive values (on a log axis) are dropped
before anything is drawn, so a diverged run never stretches an axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from markupsafe import Markup, escape

# Colours a reader can tell apart on white (Okabe & Ito), each with its own dash so that
# colour is never the only cue.
COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#8c564b")
DASHES = ("", "6 3", "2 2", "8 3 2 3", "1 3", "10 4")
WIDTH, HEIGHT = 640, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 44
MAX_POINTS = 240  # a line keeps at most this many points: enough for the eye, light for the page

Points = list[tuple[float, float]]


@dataclass
class Line:
    label: str
    points: Points
    markers: bool = False  # dots only (a scatter), no line between them


@dataclass
class Chart:
    """What one chart shows; ``rules`` are labelled horizontal lines (target, baseline, published numbers)."""

    title: str
    x_label: str
    y_label: str
    lines: list[Line]
    x_log: bool = False
    y_log: bool = False
    rules: list[tuple[str, float]] = field(default_factory=list)
    legend: bool = True  # name each line under the chart (else each names itself on hover)


def _finite(points: Points, x_log: bool, y_log: bool) -> Points:
    keep = []
    for x, y in points:
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        if (x_log and x <= 0) or (y_log and y <= 0):
            continue
        keep.append((float(x), float(y)))
    return keep


def thin(points: Points, limit: int = MAX_POINTS) -> Points:
    """At most ``limit`` points, evenly spaced by index, the first and last always kept."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def _nice(span: float) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about five ticks over ``span``."""
    raw = span / 5 if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def ticks(low: float, high: float, log: bool) -> list[float]:
    """Tick positions inside [low, high]: on a log axis powers of ten, with 2 and 5 (or every digit) between
    them when the axis spans too few decades for two ticks; on a linear axis round steps."""
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        for mults in ((1,), (1, 2, 5), tuple(range(1, 10))):
            inside = [m * 10.0 ** e for e in range(first, last + 1) for m in mults
                      if low * (1 - 1e-9) <= m * 10.0 ** e <= high * (1 + 1e-9)]
            if len(inside) >= 3 or (len(inside) >= 2 and mults != (1,)):
                return inside
        return inside
    step = _nice(high - low)
    start = math.ceil(low / step - 1e-9) * step
    out, t = [], start
    while t <= high + step * 1e-9:
        out.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return out


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if 1000 <= abs(value) < 1e6 and float(value).is_integer():
        return f"{value:,.0f}"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    return f"{value:.3g}"


class _Scale:
    def __init__(self, low: float, high: float, log: bool, start: float, end: float) -> None:
        if log:
            low, high = math.log10(low), math.log10(high)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        self.low, self.high, self.log, self.start, self.end = low, high, log, start, end

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.start + (v - self.low) / (self.high - self.low) * (self.end - self.start)


def _bounds(values: list[float], log: bool, pad: float = 0.05) -> tuple[float, float]:
    low, high = min(values), max(values)
    if log:
        a, b = math.log10(low), math.log10(high)
        if b - a < 1e-9:  # one value: half a decade either side
            return 10 ** (a - 0.5), 10 ** (b + 0.5)
        return 10 ** (a - pad * (b - a)), 10 ** (b + pad * (b - a))
    span = (high - low) or (abs(high) or 1.0)
    return low - pad * span, high + pad * span


def _f(value: float) -> str:
    return f"{value:.1f}"


def render(chart: Chart) -> Markup:
    """The chart as an ``<svg>`` element (role img, its title and a text summary for screen readers)."""
    lines = [Line(l.label, thin(_finite(l.points, chart.x_log, chart.y_log)), l.markers) for l in chart.lines]
    lines = [l for l in lines if l.points]
    rules = [(label, y) for label, y in chart.rules
             if y is not None and math.isfinite(y) and not (chart.y_log and y <= 0)]
    if not lines:
        return Markup("")
    xs = [x for l in lines for x, _ in l.points]
    ys = [y for l in lines for _, y in l.points] + [y for _, y in rules]
    x_lo, x_hi = _bounds(xs, chart.x_log, 0.08 if all(l.markers for l in lines) else 0.02)
    y_lo, y_hi = _bounds(ys, chart.y_log)
    legend_rows = (len(lines) if chart.legend else 0) + len(rules)
    legend_h = 16 * legend_rows + (8 if legend_rows else 0)
    height = HEIGHT + legend_h
    plot_bottom = HEIGHT - MARGIN_BOTTOM
    sx = _Scale(x_lo, x_hi, chart.x_log, MARGIN_LEFT, WIDTH - MARGIN_RIGHT)
    sy = _Scale(y_lo, y_hi, chart.y_log, plot_bottom, MARGIN_TOP)
    desc = "; ".join(f"{l.label}: {len(l.points)} points" for l in lines)
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
           f'aria-label="{escape(chart.title)}">',
           f"<title>{escape(chart.title)}</title><desc>{escape(desc)}</desc>",
           f'<text class="chart-title" x="{MARGIN_LEFT}" y="18">{escape(chart.title)}</text>',
           f'<rect class="frame" x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{WIDTH - MARGIN_LEFT - MARGIN_RIGHT}" '
           f'height="{plot_bottom - MARGIN_TOP}"/>']
    for t in ticks(x_lo, x_hi, chart.x_log):
        x = _f(sx(t))
        out.append(f'<line class="grid" x1="{x}" y1="{MARGIN_TOP}" x2="{x}" y2="{plot_bottom}"/>'
                   f'<text class="tick" x="{x}" y="{plot_bottom + 14}" text-anchor="middle">{_label(t)}</text>')
    for t in ticks(y_lo, y_hi, chart.y_log):
        y = _f(sy(t))
        out.append(f'<line class="grid" x1="{MARGIN_LEFT}" y1="{y}" x2="{WIDTH - MARGIN_RIGHT}" y2="{y}"/>'
                   f'<text class="tick" x="{MARGIN_LEFT - 4}" y="{y}" dy="3" text-anchor="end">{_label(t)}</text>')
    out.append(f'<text class="axis" x="{(MARGIN_LEFT + WIDTH - MARGIN_RIGHT) / 2:.1f}" y="{plot_bottom + 32}" '
               f'text-anchor="middle">{escape(chart.x_label)}</text>')
    out.append(f'<text class="axis" transform="translate(14 {(MARGIN_TOP + plot_bottom) / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{escape(chart.y_label)}</text>')
    for i, (label, value) in enumerate(rules):
        y = _f(sy(value))
        out.append(f'<line class="rule" x1="{MARGIN_LEFT}" y1="{y}" x2="{WIDTH - MARGIN_RIGHT}" y2="{y}" '
                   f'stroke="#555" stroke-dasharray="{"4 4" if i % 2 == 0 else "1 3"}"><title>{escape(label)}</title>'
                   "</line>")
    for i, line in enumerate(lines):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        if line.markers:
            for x, y in line.points:
                out.append(f'<circle cx="{_f(sx(x))}" cy="{_f(sy(y))}" r="4" fill="{colour}">'
                           f"<title>{escape(line.label)}: {x:g}, {y:.4g}</title></circle>")
            continue
        path = " ".join(f"{_f(sx(x))},{_f(sy(y))}" for x, y in line.points)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"{dashed}>'
                   f"<title>{escape(line.label)}</title></polyline>")
    y = HEIGHT + 4
    entries = [] if not chart.legend else [(l.label, COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)], l.markers)
                                              for i, l in enumerate(lines)]
    entries += [(label, "#555", "4 4" if i % 2 == 0 else "1 3", False) for i, (label, _) in enumerate(rules)]
    for label, colour, dash, markers in entries:
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        mark = (f'<circle cx="{MARGIN_LEFT + 12}" cy="{y}" r="4" fill="{colour}"/>' if markers else
                f'<line x1="{MARGIN_LEFT}" y1="{y}" x2="{MARGIN_LEFT + 24}" y2="{y}" stroke="{colour}" '
                f'stroke-width="1.6"{dashed}/>')
        out.append(f'{mark}<text class="legend" x="{MARGIN_LEFT + 30}" y="{y}" dy="4">{escape(label)}</text>')
        y += 16
    out.append("</svg>")
    return Markup("".join(out))
