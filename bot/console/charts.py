"""Charts as inline SVG, drawn on the server: no JavaScript library, no CDN, works offline
and with a strict Content-Security-Policy. Every label is escaped; each mark carries a
<title> so hovering shows the exact number."""
from __future__ import annotations

import math
from html import escape
from typing import List, Sequence, Tuple

PALETTE = ("#1f6fb2", "#e07b39", "#3a9a5b", "#c23b3b", "#7b5ea7", "#8c6d31", "#4aa3a0", "#999999")
KIND_COLORS = {"answer": "#3a9a5b", "clarify": "#e0a030", "fallback": "#c23b3b", "handoff": "#7b5ea7",
               "out_of_scope": "#8c6d31", "chitchat": "#4aa3a0"}


def _e(value) -> str:
    return escape(str(value), quote=True)


def _nice_max(value: float) -> float:
    """A round axis maximum >= value; counts up to 40 get a multiple of 4 (integer ticks)."""
    if value <= 0:
        return 4.0
    if value <= 40 and float(value).is_integer():
        return float(4 * math.ceil(value / 4))
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= value:
            return m * exp
    return 10 * exp


def _empty(width: int, height: int, label: str) -> str:
    return (f'<svg class="chart chart-empty" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">'
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">暂无数据</text></svg>')


def line_chart(labels: Sequence[str], series: Sequence[Tuple[str, Sequence[float]]], label: str,
               width: int = 640, height: int = 240) -> str:
    """Days on the x axis, one polyline (with dots) per series, legend on top."""
    if not labels or not any(any(v for v in values) for _, values in series):
        return _empty(width, height, label)
    left, right, top, bottom = 40, 12, 28, 36
    pw, ph = width - left - right, height - top - bottom
    ymax = _nice_max(max(max(values) for _, values in series))
    n = len(labels)
    step = pw / max(1, n - 1)

    def xy(i: int, v: float) -> Tuple[float, float]:
        return left + (i * step if n > 1 else pw / 2), top + ph - (v / ymax) * ph

    parts = [f'<svg class="chart chart-line" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">',
             f'<title>{_e(label)}</title>']
    for k in range(5):
        v = ymax * k / 4
        y = top + ph - ph * k / 4
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    every = max(1, math.ceil(n / 10))
    for i, lab in enumerate(labels):
        if i % every == 0 or i == n - 1:
            x, _ = xy(i, 0)
            parts.append(f'<text class="axis" x="{x:.1f}" y="{height - 14}" text-anchor="middle">{_e(lab)}</text>')
    for s, (name, values) in enumerate(series):
        color = PALETTE[s % len(PALETTE)]
        points = " ".join("%.1f,%.1f" % xy(i, v) for i, v in enumerate(values))
        parts.append(f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        for i, v in enumerate(values):
            x, y = xy(i, v)
            parts.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                         f'<title>{_e(labels[i])} {_e(name)}：{v:g}</title></circle>')
        lx = left + s * 130
        parts.append(f'<rect x="{lx}" y="6" width="12" height="12" fill="{color}"/>'
                     f'<text class="legend" x="{lx + 16}" y="16">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(labels: Sequence[str], values: Sequence[float], label: str, width: int = 640,
              height: int = 220, color: str = PALETTE[0]) -> str:
    """Vertical bars (e.g. messages per hour of day)."""
    if not labels or not any(values):
        return _empty(width, height, label)
    left, right, top, bottom = 40, 8, 12, 30
    pw, ph = width - left - right, height - top - bottom
    ymax = _nice_max(max(values))
    n = len(labels)
    slot = pw / n
    bw = max(2.0, slot * 0.7)
    parts = [f'<svg class="chart chart-bar" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">',
             f'<title>{_e(label)}</title>']
    for k in range(5):
        y = top + ph - ph * k / 4
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{ymax * k / 4:g}</text>')
    for i, (lab, v) in enumerate(zip(labels, values)):
        h = (v / ymax) * ph
        x = left + i * slot + (slot - bw) / 2
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{top + ph - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                     f'fill="{color}"><title>{_e(lab)}：{v:g}</title></rect>')
        if n <= 12 or i % 2 == 0:
            parts.append(f'<text class="axis" x="{x + bw / 2:.1f}" y="{height - 12}" text-anchor="middle">{_e(lab)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(rows: Sequence[Tuple[str, float]], label: str, width: int = 640, color: str = PALETTE[0],
               label_width: int = 300) -> str:
    """Horizontal bars with the label on the left (top cited items, departments)."""
    if not rows:
        return _empty(width, 80, label)
    row_h = 24
    height = row_h * len(rows) + 8
    vmax = max(v for _, v in rows) or 1
    pw = width - label_width - 50
    parts = [f'<svg class="chart chart-hbar" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">',
             f'<title>{_e(label)}</title>']
    for i, (lab, v) in enumerate(rows):
        y = 4 + i * row_h
        w = max(1.0, v / vmax * pw)
        short = lab if len(lab) <= 22 else lab[:21] + "…"
        parts.append(f'<text class="axis" x="{label_width - 8}" y="{y + 16}" text-anchor="end">{_e(short)}'
                     f'<title>{_e(lab)}</title></text>')
        parts.append(f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                     f'fill="{color}"><title>{_e(lab)}：{v:g}</title></rect>')
        parts.append(f'<text class="value" x="{label_width + w + 6:.1f}" y="{y + 16}">{v:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def share_chart(rows: Sequence[Tuple[str, str, float]], label: str, width: int = 640) -> str:
    """One stacked 100% bar plus legend with counts and percentages: rows are (key, name, value)."""
    total = sum(v for _, _, v in rows)
    if total <= 0:
        return _empty(width, 80, label)
    height = 44 + 22 * math.ceil(len(rows) / 2)
    parts = [f'<svg class="chart chart-share" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">',
             f'<title>{_e(label)}</title>']
    x = 0.0
    for i, (key, name, v) in enumerate(rows):
        w = v / total * width
        color = KIND_COLORS.get(key, PALETTE[i % len(PALETTE)])
        if w > 0:
            parts.append(f'<rect class="bar" x="{x:.1f}" y="4" width="{w:.1f}" height="26" fill="{color}">'
                         f'<title>{_e(name)}：{v:g}（{v / total:.0%}）</title></rect>')
        x += w
    for i, (key, name, v) in enumerate(rows):
        color = KIND_COLORS.get(key, PALETTE[i % len(PALETTE)])
        lx, ly = (i % 2) * (width / 2), 44 + (i // 2) * 22
        parts.append(f'<rect x="{lx:.0f}" y="{ly}" width="12" height="12" fill="{color}"/>'
                     f'<text class="legend" x="{lx + 18:.0f}" y="{ly + 11}">{_e(name)}：{v:g}（{v / total:.1%}）</text>')
    parts.append("</svg>")
    return "".join(parts)


def rating_rows(ratings: List[int]) -> List[Tuple[str, float]]:
    return [(f"{n}分", float(sum(1 for r in ratings if r == n))) for n in (5, 4, 3, 2, 1)]
