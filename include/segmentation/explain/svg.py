"""Inline SVG charts for the report: k-selection line charts, segment-size bars, the 2-D projection.

Plain strings, no plotting library and no script, so the report stays one self-contained file.
Also the report's colours: one palette colour per segment and a diverging scale for z-scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from include.segmentation.explain.report_format import esc, fmt_num, fmt_pct

PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#79706e",
)


def color_of(seg_ids: Iterable[int]) -> dict[int, str]:
    """One palette colour per segment id, in id order (the same segment keeps its colour in every chart)."""
    return {int(s): PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted({int(x) for x in seg_ids}))}


def diverging(z: float) -> str:
    """Blue (below the population) - white - red (above), clipped at 2 standard deviations."""
    if not math.isfinite(z):
        return "#eeeeee"
    t = max(-1.0, min(1.0, z / 2.0))
    lo, hi, mid = (33, 102, 172), (178, 24, 43), (247, 247, 247)
    end = hi if t > 0 else lo
    a = abs(t)
    rgb = tuple(round(mid[i] + (end[i] - mid[i]) * a) for i in range(3))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2, 2.5 or 5 x 10^k) within [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + 1e-12:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _svg_open(width: int, height: int, label: str) -> str:
    """The opening ``<svg>`` tag every chart starts with (fixed size, accessible label)."""
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{label}">'
    )


def svg_line_chart(
    points: Sequence[tuple[float, float]],
    title: str,
    highlight_x: float | None = None,
    better: str = "higher",
    width: int = 360,
    height: int = 220,
) -> str:
    """A small line chart (x = k) with the chosen k highlighted."""
    pts = [(float(x), float(y)) for x, y in points if y is not None and math.isfinite(float(y))]
    if not pts:
        return f'<div class="empty">{esc(title)}: no scores recorded</div>'
    left, right, top, bottom = 48, 12, 28, 34
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (y1 - y0) * 0.1 or abs(y1) * 0.1 or 0.1
    y0, y1 = y0 - pad, y1 + pad
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [_svg_open(width, height, esc(title)),
           f'<text x="{left}" y="16" class="ctitle">{esc(title)} <tspan class="muted">({esc(better)} is better)</tspan>'
           "</text>"]
    for t in nice_ticks(y0, y1):
        y = sy(t)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{fmt_num(t)}</text>')
    for x in sorted(set(xs)):
        out.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" class="tick" text-anchor="middle">{x:g}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 4}" class="tick" text-anchor="middle">k</text>')
    if highlight_x is not None and x0 <= highlight_x <= x1:
        hx = sx(highlight_x)
        out.append(f'<line x1="{hx:.1f}" x2="{hx:.1f}" y1="{top}" y2="{top + ph}" class="chosen"/>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(pts))
    out.append(f'<path d="{path}" class="line"/>')
    for x, y in pts:
        cls = "dot chosen-dot" if highlight_x is not None and x == highlight_x else "dot"
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" class="{cls}"><title>k={x:g}: {y:.4f}</title>'
                   "</circle>")
    out.append("</svg>")
    return "".join(out)


def svg_bars(rows: Sequence[tuple[str, float, str, str]], width: int = 560) -> str:
    """Horizontal bars: (label, value 0..1, colour, value text)."""
    bar_h, gap, label_w = 22, 6, 170
    height = len(rows) * (bar_h + gap) + gap
    out = [_svg_open(width, height, "Segment sizes")]
    vmax = max((v for _, v, _, _ in rows), default=1.0) or 1.0
    span = width - label_w - 120
    for i, (label, value, color, text) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(1.0, value / vmax * span)
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" class="lbl" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3" fill="{color}"/>')
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="lbl">{esc(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def _q(values: Any, q: float) -> float:
    """The ``q`` quantile of ``values`` as a float."""
    return float(np.quantile(values, q))


def _robust_limits(values: np.ndarray) -> tuple[float, float]:
    """Axis limits from the 0.5% and 99.5% quantiles plus 5% padding (never an empty range)."""
    lo, hi = _q(values, 0.005), _q(values, 0.995)
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def svg_scatter(df: pd.DataFrame, colors: dict[int, str], names: dict[int, str], explained: tuple[float, float],
                width: int = 620, height: int = 440) -> str:
    """The 2-D projection: one dot per sampled customer, coloured by segment."""
    if df.empty:
        return '<div class="empty">Not enough customers for a projection.</div>'
    left, right, top, bottom = 40, 170, 12, 36
    pw, ph = width - left - right, height - top - bottom
    xs, ys = df["x"].to_numpy(dtype="float64"), df["y"].to_numpy(dtype="float64")
    # Robust limits: a few extreme customers must not squash the picture (they are drawn on the edge).
    (lo_x, hi_x), (lo_y, hi_y) = _robust_limits(xs), _robust_limits(ys)
    out = [_svg_open(width, height, "2-D projection of a sample of customers"),
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>']
    for x, y, seg in zip(xs, ys, df["segment_id"].astype(int), strict=True):
        cx = left + (min(max(x, lo_x), hi_x) - lo_x) / (hi_x - lo_x) * pw
        cy = top + (1 - (min(max(y, lo_y), hi_y) - lo_y) / (hi_y - lo_y)) * ph
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.4" fill="{colors.get(int(seg), "#999")}" '
                   'fill-opacity="0.7"/>')
    ex, ey = explained
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 10}" class="tick" text-anchor="middle">'
               f"component 1 ({fmt_pct(ex, 0)} of variance)</text>")
    out.append(f'<text x="12" y="{top + ph / 2:.1f}" class="tick" text-anchor="middle" '
               f'transform="rotate(-90 12 {top + ph / 2:.1f})">component 2 ({fmt_pct(ey, 0)})</text>')
    for i, seg in enumerate(sorted(colors)):
        y = top + 10 + i * 20
        out.append(f'<circle cx="{width - right + 18}" cy="{y}" r="6" fill="{colors[seg]}"/>')
        out.append(f'<text x="{width - right + 30}" y="{y + 4}" class="lbl">{esc(names.get(seg, seg))}</text>')
    out.append("</svg>")
    return "".join(out)
