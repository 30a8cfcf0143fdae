"""The segmentation report: one self-contained HTML file per published snapshot.

``render_report`` reads ONLY published tables (``segment_runs``, ``segment_profiles``,
``segment_rules``, ``segment_drift``, ``segment_transitions``, ``segment_top_products``,
``customer_features`` and ``customer_segments_history``) and writes
``<artifacts>/reports/report_<S>.html``; ``latest.html`` is replaced too when S is the newest
published snapshot (a backfill never hides newer segments). ``<artifacts>`` is
``SEGMENTATION_ARTIFACTS_DIR`` or ``<project>/artifacts``.

Self-contained: inline CSS and SVG only, no script, no external font, image or stylesheet, so the
file opens offline and can be mailed. It holds aggregates and an anonymous 2-D projection of a
sample of customers: no customer id, e-mail or phone ever reaches it.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.segmentation.errors import PermanentError
from include.segmentation.settings import reports_dir

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy import Engine

PROJECTION_SAMPLE = 2_000
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#79706e",
)


class ReportError(PermanentError, ValueError):
    """The report cannot be rendered (no published run for the date, bad output folder)."""


def report_filename(snapshot_date: date) -> str:
    """``report_YYYY-MM-DD.html``."""
    return f"report_{snapshot_date.isoformat()}.html"


# ---------------------------------------------------------------------------------------------
# Reading the published tables
# ---------------------------------------------------------------------------------------------


@dataclass
class ReportData:
    """Everything the report shows, read from the published tables of one snapshot."""

    snapshot_date: date
    run: dict[str, Any]
    profiles: pd.DataFrame
    rules: pd.DataFrame
    drift: pd.DataFrame
    transitions: pd.DataFrame
    top_products: pd.DataFrame
    population: dict[str, tuple[float, float]]  # feature -> (mean, std) over the snapshot
    projection: pd.DataFrame  # x, y, segment_id for a sample of customers
    explained: tuple[float, float]  # variance explained by the two projection axes
    newest: bool  # the newest published snapshot


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _read_if_exists(conn: Any, table: str, snapshot_date: date) -> pd.DataFrame:
    from include.segmentation.store import read_sql, table_exists

    if not table_exists(conn, "segmentation", table):
        return pd.DataFrame()
    return read_sql(conn, f"SELECT * FROM segmentation.{table} WHERE snapshot_date = :s", {"s": snapshot_date})


def load_report_data(engine: Engine, snapshot_date: date, sample_size: int = PROJECTION_SAMPLE) -> ReportData:
    """Read one published snapshot for the report (raises ReportError if it is not published)."""
    from include.segmentation.model import MODEL_FEATURES, NUMERIC_FEATURES, transform_for_model
    from include.segmentation.store import read_sql, table_exists

    with engine.connect() as conn:
        if not table_exists(conn, "segmentation", "segment_runs"):
            raise ReportError("segmentation.segment_runs does not exist: no run was ever published")
        runs = read_sql(
            conn,
            "SELECT * FROM segmentation.segment_runs WHERE snapshot_date = :s AND status = 'published' "
            "ORDER BY finished_at DESC",
            {"s": snapshot_date},
        )
        if runs.empty:
            raise ReportError(
                f"segmentation.segment_runs: no run with status 'published' for snapshot_date {snapshot_date}"
            )
        newest = _as_date(
            read_sql(conn, "SELECT MAX(snapshot_date) AS m FROM segmentation.segment_runs WHERE status = 'published'")[
                "m"
            ].iloc[0]
        )
        profiles = _read_if_exists(conn, "segment_profiles", snapshot_date)
        if profiles.empty:
            raise ReportError(f"segmentation.segment_profiles: no rows for snapshot_date {snapshot_date}")
        rules = _read_if_exists(conn, "segment_rules", snapshot_date)
        drift = _read_if_exists(conn, "segment_drift", snapshot_date)
        transitions = _read_if_exists(conn, "segment_transitions", snapshot_date)
        top_products = _read_if_exists(conn, "segment_top_products", snapshot_date)

        features = list(NUMERIC_FEATURES)
        agg = ", ".join(f"AVG({f}) AS m_{f}, AVG({f} * {f}) AS q_{f}" for f in features)
        stats = read_sql(conn, f"SELECT COUNT(*) AS n, {agg} FROM segmentation.customer_features WHERE snapshot_date = :s",
                         {"s": snapshot_date})
        n = int(stats["n"].iloc[0] or 0)
        population: dict[str, tuple[float, float]] = {}
        for f in features:
            m, q = stats[f"m_{f}"].iloc[0], stats[f"q_{f}"].iloc[0]
            if m is None or pd.isna(m):
                continue
            m, q = float(m), float(q)
            population[f] = (m, math.sqrt(max(q - m * m, 0.0)))
        step = max(1, math.ceil(n / sample_size)) if n else 1
        cols = ", ".join(f"f.{c}" for c in MODEL_FEATURES)
        sample = read_sql(
            conn,
            f"SELECT * FROM (SELECT {cols}, h.segment_id, ROW_NUMBER() OVER (ORDER BY f.customer_id) AS rn "
            "FROM segmentation.customer_features f JOIN segmentation.customer_segments_history h "
            "ON h.snapshot_date = f.snapshot_date AND h.customer_id = f.customer_id "
            "WHERE f.snapshot_date = :s) x WHERE (rn - 1) % :step = 0",
            {"s": snapshot_date, "step": step},
        )

    projection = pd.DataFrame(columns=["x", "y", "segment_id"])
    explained = (float("nan"), float("nan"))
    if len(sample) >= 3:
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        for c in MODEL_FEATURES:
            sample[c] = pd.to_numeric(sample[c], errors="coerce").astype("float64")
        X = np.nan_to_num(transform_for_model(sample).to_numpy())
        Z = StandardScaler().fit_transform(X) * _model_weights(len(MODEL_FEATURES))
        pca = PCA(n_components=2, random_state=0).fit(Z)
        xy = pca.transform(Z)
        projection = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "segment_id": sample["segment_id"].astype(int)})
        explained = (float(pca.explained_variance_ratio_[0]), float(pca.explained_variance_ratio_[1]))
    run = runs.iloc[0].to_dict()
    return ReportData(
        snapshot_date=snapshot_date,
        run=run,
        profiles=profiles.sort_values("segment_id").reset_index(drop=True),
        rules=rules,
        drift=drift,
        transitions=transitions,
        top_products=top_products,
        population=population,
        projection=projection,
        explained=explained,
        newest=newest is None or snapshot_date >= newest,
    )


def _model_weights(n: int) -> np.ndarray:
    """The clustering's feature weights (the projection shows the space k-means saw); ones if absent."""
    try:
        from include.segmentation.model import model_weights
    except ImportError:  # pragma: no cover - older feature module
        return np.ones(n)
    w = np.asarray(model_weights(), dtype="float64")
    return w if w.shape == (n,) else np.ones(n)


# ---------------------------------------------------------------------------------------------
# Formatting and SVG helpers
# ---------------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    """HTML-escape anything (None/NaN -> empty)."""
    return "" if _missing(value) else html.escape(str(value), quote=True)


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def fmt_num(v: Any, digits: int = 2) -> str:
    """Compact number: 1,234 / 12.3 / 0.123; '–' when missing."""
    if _missing(v):
        return "–"
    x = float(v)
    if not math.isfinite(x):
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def fmt_int(v: Any) -> str:
    """A count: 1,234; '–' when missing."""
    if _missing(v):
        return "–"
    return f"{round(float(v)):,}"


def fmt_pct(v: Any, digits: int = 1) -> str:
    """0.1234 -> '12.3%'."""
    if _missing(v):
        return "–"
    return f"{float(v) * 100:.{digits}f}%"


def _color_of(seg_ids: Iterable[int]) -> dict[int, str]:
    return {int(s): PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted({int(x) for x in seg_ids}))}


def _diverging(z: float) -> str:
    """Blue (below the population) - white - red (above), clipped at 2 standard deviations."""
    if not math.isfinite(z):
        return "#eeeeee"
    t = max(-1.0, min(1.0, z / 2.0))
    lo, hi, mid = (33, 102, 172), (178, 24, 43), (247, 247, 247)
    end = hi if t > 0 else lo
    a = abs(t)
    rgb = tuple(round(mid[i] + (end[i] - mid[i]) * a) for i in range(3))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
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

    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{esc(title)}">',
           f'<text x="{left}" y="16" class="ctitle">{esc(title)} <tspan class="muted">({esc(better)} is better)</tspan>'
           "</text>"]
    for t in _nice_ticks(y0, y1):
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
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           'aria-label="Segment sizes">']
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


def svg_scatter(df: pd.DataFrame, colors: dict[int, str], names: dict[int, str], explained: tuple[float, float],
                width: int = 620, height: int = 440) -> str:
    """The 2-D projection: one dot per sampled customer, coloured by segment."""
    if df.empty:
        return '<div class="empty">Not enough customers for a projection.</div>'
    left, right, top, bottom = 40, 170, 12, 36
    pw, ph = width - left - right, height - top - bottom
    xs, ys = df["x"].to_numpy(dtype="float64"), df["y"].to_numpy(dtype="float64")
    # Robust limits: a few extreme customers must not squash the picture (they are drawn on the edge).
    lo_x, hi_x = _q(xs, 0.005), _q(xs, 0.995)
    lo_y, hi_y = _q(ys, 0.005), _q(ys, 0.995)
    if hi_x <= lo_x:
        lo_x, hi_x = lo_x - 1, hi_x + 1
    if hi_y <= lo_y:
        lo_y, hi_y = lo_y - 1, hi_y + 1
    px, py = (hi_x - lo_x) * 0.05, (hi_y - lo_y) * 0.05
    lo_x, hi_x, lo_y, hi_y = lo_x - px, hi_x + px, lo_y - py, hi_y + py
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           'aria-label="2-D projection of a sample of customers">',
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


def _q(values: Any, q: float) -> float:
    return float(np.quantile(values, q))


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


def _k_section(data: ReportData) -> str:
    try:
        k_scores = json.loads(data.run.get("k_scores") or "[]")
    except ValueError:
        k_scores = []
    chosen = data.run.get("k")
    chosen = int(chosen) if not _missing(chosen) else None
    sil = [(s["k"], s.get("silhouette")) for s in k_scores if "k" in s]
    dbi = [(s["k"], s.get("davies_bouldin")) for s in k_scores if "k" in s]
    charts = svg_line_chart(sil, "Silhouette by k", chosen, "higher") + svg_line_chart(
        dbi, "Davies-Bouldin by k", chosen, "lower"
    )
    rows = "".join(
        f"<tr{' class=chosen-row' if s.get('k') == chosen else ''}><td>{esc(s.get('k'))}</td>"
        f"<td>{fmt_num(s.get('silhouette'), 4)}</td><td>{fmt_num(s.get('davies_bouldin'), 4)}</td>"
        f"<td>{fmt_num(s.get('calinski_harabasz'))}</td></tr>"
        for s in k_scores
    )
    table = (
        '<table class="small"><thead><tr><th>k</th><th>silhouette</th><th>Davies-Bouldin</th>'
        f"<th>Calinski-Harabasz</th></tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else ""
    )
    return (
        '<section id="k"><h2>Choosing k</h2><p class="muted">k with the best silhouette (on a sample when the '
        f"population is large) is fitted on everyone; chosen k = <b>{esc(chosen)}</b>.</p>"
        f'<div class="row">{charts}</div>{table}</section>'
    )


def _segments_section(data: ReportData, colors: dict[int, str]) -> str:
    p = data.profiles
    bars = svg_bars(
        [
            (f"{int(r.segment_id)} · {r.segment_name}", float(r.share), colors[int(r.segment_id)],
             f"{int(r.size):,} ({fmt_pct(r.share)})")
            for r in p.itertuples(index=False)
        ]
    )
    rows = []
    for r in p.itertuples(index=False):
        try:
            cats = json.loads(r.top_categories) if isinstance(r.top_categories, str) else []
        except ValueError:
            cats = []
        rows.append(
            f'<tr><td class=seg><span class="sw" style="background:{colors[int(r.segment_id)]}"></span>{int(r.segment_id)}</td>'
            f"<td><b>{esc(r.segment_name)}</b></td><td class=num>{int(r.size):,}</td><td class=num>{fmt_pct(r.share)}"
            f"</td><td>{esc(r.description)}</td><td>{esc(', '.join(map(str, cats)))}</td></tr>"
        )
    return (
        '<section id="segments"><h2>Segments</h2>'
        f"{bars}"
        '<table><thead><tr><th>id</th><th>name</th><th>customers</th><th>share</th><th>profile</th>'
        f"<th>top categories (revenue)</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _heatmap_section(data: ReportData) -> str:
    from include.segmentation.model import FEATURES

    p = data.profiles
    feats = [f for f in FEATURES if f.name in data.population]
    means = {int(r.segment_id): json.loads(r.feature_means) for r in p.itertuples(index=False)}
    medians = {int(r.segment_id): json.loads(r.feature_medians) for r in p.itertuples(index=False)}
    head = "".join(f'<th class="rot"><div title="{esc(f.description)} ({esc(f.unit)})">{esc(f.name)}</div></th>'
                   for f in feats)
    body = []
    for r in p.itertuples(index=False):
        seg = int(r.segment_id)
        cells = []
        for f in feats:
            mean = means[seg].get(f.name)
            median = medians[seg].get(f.name)
            pm, ps = data.population[f.name]
            z = (float(mean) - pm) / ps if mean is not None and ps > 0 else float("nan")
            shown = fmt_pct(mean, 0) if f.unit == "share" else fmt_num(mean, 1)
            ink = "color:#fff;" if math.isfinite(z) and abs(z) > 1.3 else ""
            cells.append(
                f'<td class="hm" style="{ink}background:{_diverging(z)}" title="{esc(f.name)}: mean {fmt_num(mean, 3)}, '
                f'median {fmt_num(median, 3)} {esc(f.unit)}; {fmt_num(z, 2)} sd from the population">{shown}</td>'
            )
        body.append(f"<tr><th class=rowh>{seg} · {esc(r.segment_name)}</th>{''.join(cells)}</tr>")
    pop = "".join(
        f"<td class=hm>{fmt_pct(data.population[f.name][0], 0) if f.unit == 'share' else fmt_num(data.population[f.name][0], 1)}"
        "</td>"
        for f in feats
    )
    return (
        '<section id="heatmap"><h2>Feature profile</h2><p class="muted">Segment means in original units (days, orders, '
        "currency, shares); colour = distance from the population mean in standard deviations "
        '(<span class="lo">below</span> / <span class="hi">above</span>, clipped at ±2). Hover a cell for the '
        "median.</p>"
        f'<div class="scroll"><table class="heat"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}'
        f'<tr class="pop"><th class=rowh>population</th>{pop}</tr></tbody></table></div></section>'
    )


def _projection_section(data: ReportData, colors: dict[int, str], names: dict[int, str]) -> str:
    n = len(data.projection)
    return (
        '<section id="projection"><h2>Customers in two dimensions</h2>'
        f'<p class="muted">PCA of the standardised (family-weighted) model features for a systematic sample of {n:,} customers; '
        "segments that overlap here may still be apart in the other dimensions.</p>"
        f"{svg_scatter(data.projection, colors, names, data.explained)}</section>"
    )


def _rules_section(data: ReportData, colors: dict[int, str]) -> str:
    run = data.run
    fidelity = (
        f"Tree fidelity to the clusters: accuracy <b>{fmt_pct(run.get('rules_accuracy'))}</b>, macro recall "
        f"<b>{fmt_pct(run.get('rules_macro_recall'))}</b>, macro F1 <b>{fmt_pct(run.get('rules_macro_f1'))}</b>."
    )
    if data.rules.empty:
        return f'<section id="rules"><h2>Rules</h2><p>{fidelity}</p><p class="empty">No rules published.</p></section>'
    rules = data.rules.sort_values(["segment_id", "rule_rank"])
    rows = []
    for r in rules.itertuples(index=False):
        rows.append(
            f'<tr><td class=seg><span class="sw" style="background:{colors.get(int(r.segment_id), "#999")}"></span>'
            f"{int(r.segment_id)} · {esc(r.segment_name)}</td><td><code>{esc(r.rule)}</code></td>"
            f"<td class=num>{int(r.support):,}</td><td class=num>{fmt_pct(r.precision)}</td>"
            f"<td class=num>{fmt_pct(r.coverage)}</td></tr>"
        )
    missing = [
        f"{int(r.segment_id)} · {esc(r.segment_name)}"
        for r in data.profiles.itertuples(index=False)
        if int(r.segment_id) not in set(rules["segment_id"].astype(int))
    ]
    note = (
        f'<p class="warn">No leaf of the tree predicts: {", ".join(missing)} (the shallow tree cannot separate it '
        "from its neighbours).</p>"
        if missing
        else ""
    )
    return (
        '<section id="rules"><h2>Why a customer is in a segment</h2>'
        f"<p>{fidelity} Each rule is a leaf of a shallow decision tree fitted on the features in original units; "
        "it is also a valid SQL condition on <code>segmentation.customer_features</code>. Support = customers the "
        "rule matches; precision = share of them in the segment; coverage = share of the segment it matches.</p>"
        f"{note}<table><thead><tr><th>segment</th><th>rule</th><th>support</th><th>precision</th><th>coverage</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _drift_section(data: ReportData, colors: dict[int, str]) -> str:
    t, d = data.transitions, data.drift
    if t.empty and d.empty:
        return (
            '<section id="drift"><h2>Drift and transitions</h2><p class="muted">First published snapshot: there is no '
            "previous snapshot to compare with yet.</p></section>"
        )
    prev = _as_date((d if not d.empty else t)["previous_snapshot_date"].iloc[0])
    warnings = [r for r in d.itertuples(index=False) if isinstance(r.warning, str) and r.warning]
    banner = (
        '<div class="warnbox"><b>Drift warnings</b><ul>'
        + "".join(f"<li>{int(r.segment_id)} · {esc(r.segment_name)}: {esc(r.warning)}</li>" for r in warnings)
        + "</ul></div>"
        if warnings
        else '<p class="ok">No drift above the thresholds.</p>'
    )
    drows = []
    for r in d.sort_values("segment_id").itertuples(index=False):
        cls = ' class="warnrow"' if isinstance(r.warning, str) and r.warning else ""
        drows.append(
            f"<tr{cls}><td class=seg>{int(r.segment_id)} · {esc(r.segment_name)}</td><td>{esc(r.status)}</td>"
            f"<td class=num>{fmt_int(r.previous_size)}</td><td class=num>{fmt_int(r.size)}</td>"
            f"<td class=num>{'–' if _missing(r.size_change) else f'{float(r.size_change):+.1%}'}</td>"
            f"<td class=num>{fmt_num(r.centroid_shift, 2)}</td><td>{esc(r.top_shift_feature)}</td>"
            f"<td class=num>{fmt_int(r.moved_in)}</td><td class=num>{fmt_int(r.moved_out)}</td>"
            f"<td class=num>{fmt_pct(r.moved_out_share)}</td></tr>"
        )
    drift_table = (
        "<table><thead><tr><th>segment</th><th>status</th><th>previous size</th><th>size</th><th>change</th>"
        "<th>centroid shift (sd)</th><th>moved most</th><th>moved in</th><th>moved out</th><th>moved out %</th></tr>"
        f"</thead><tbody>{''.join(drows)}</tbody></table>"
        if drows
        else ""
    )
    return (
        f'<section id="drift"><h2>Drift since {esc(prev)}</h2>{banner}{drift_table}'
        f"<h3>Transitions</h3>{_transition_matrix(t, colors)}</section>"
    )


def _transition_matrix(t: pd.DataFrame, colors: dict[int, str]) -> str:
    if t.empty:
        return '<p class="muted">No transitions recorded.</p>'

    def key(v: Any) -> int | None:
        return None if v is None or pd.isna(v) else int(v)

    names_from = {key(r.from_segment_id): r.from_segment_name for r in t.itertuples(index=False)}
    names_to = {key(r.to_segment_id): r.to_segment_name for r in t.itertuples(index=False)}
    froms = sorted(k for k in names_from if k is not None) + ([None] if None in names_from else [])
    tos = sorted(k for k in names_to if k is not None) + ([None] if None in names_to else [])
    counts = {(key(r.from_segment_id), key(r.to_segment_id)): int(r.customers) for r in t.itertuples(index=False)}
    totals = {f: sum(v for (a, _), v in counts.items() if a == f) for f in froms}
    head = "".join(
        f"<th>{'left the population' if j is None else f'{j} · {esc(names_to[j])}'}</th>" for j in tos
    )
    body = []
    for i in froms:
        label = "new in the population" if i is None else f"{i} · {esc(names_from[i])}"
        cells = []
        for j in tos:
            n = counts.get((i, j), 0)
            share = n / totals[i] if totals.get(i) else 0.0
            alpha = 0.08 + 0.8 * share if n else 0.0
            style = f"background:rgba(78,121,167,{alpha:.2f})" if n else ""
            diag = " diag" if i is not None and i == j else ""
            cells.append(f'<td class="num{diag}" style="{style}" title="{fmt_pct(share)} of row">{n:,}</td>' if n
                         else f'<td class="num{diag} zero">·</td>')
        body.append(f"<tr><th class=rowh>{label}</th>{''.join(cells)}</tr>")
    return (
        '<p class="muted">Rows: segment in the previous snapshot; columns: segment now. Shading = share of the row.</p>'
        f'<div class="scroll"><table class="matrix"><thead><tr><th>from \\ to</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _feed_section(data: ReportData, colors: dict[int, str]) -> str:
    tp = data.top_products
    if tp.empty:
        return ""
    rows = []
    for r in data.profiles.itertuples(index=False):
        seg = int(r.segment_id)
        mine = tp[tp["segment_id"].astype(int) == seg]

        def items(item_type: str, ranking: str, n: int, mine: pd.DataFrame = mine) -> str:
            part = mine[(mine["item_type"] == item_type) & (mine["ranking"] == ranking)].sort_values("rank").head(n)
            if part.empty:
                return "–"
            return ", ".join(
                f"{esc(x['item_id'])}{'' if item_type == 'category' else f' ({esc(x.category)})'} "
                f"<span class=muted>{fmt_num(x.lift, 1)}x</span>"
                for _, x in part.iterrows()
            )

        rows.append(
            f"<tr><td class=seg>{seg} · {esc(r.segment_name)}</td><td>{items('category', 'revenue', 3)}</td>"
            f"<td>{items('category', 'lift', 3)}</td><td>{items('product', 'lift', 3)}</td></tr>"
        )
    return (
        '<section id="feed"><h2>Recommendation feed</h2><p class="muted">From '
        "<code>segmentation.segment_top_products</code>: categories by revenue and by lift (the item's share of the "
        "segment's spend over its share of everyone's spend), products by lift. Figures after each item = lift."
        "</p><table><thead><tr><th>segment</th><th>top categories by revenue</th><th>over-indexed categories</th>"
        f"<th>over-indexed products</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


_CSS = """
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0;color:#1f2933;background:#f7f8fa;font-size:14px;line-height:1.45}
header{background:#1f3a5f;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header .sub{opacity:.85}main{padding:8px 28px 40px;max-width:1400px}
section{background:#fff;border:1px solid #e3e7ee;border-radius:8px;padding:14px 18px;margin:16px 0}
h2{font-size:17px;margin:2px 0 10px}h3{font-size:15px;margin:14px 0 6px}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin-top:12px}.kpi{background:rgba(255,255,255,.12);border-radius:6px;
padding:6px 12px}.kpi b{display:block;font-size:17px}.muted{color:#6b7785}.row{display:flex;flex-wrap:wrap;gap:18px}
table{border-collapse:collapse;width:100%;margin-top:8px}th,td{border-bottom:1px solid #edf0f4;padding:5px 8px;
text-align:left;vertical-align:top}thead th{background:#f1f4f8;font-weight:600}td.num{text-align:right;
white-space:nowrap}table.small{width:auto}tr.chosen-row td{font-weight:700;background:#fff7e0}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
code{background:#f1f4f8;padding:1px 4px;border-radius:3px;font-size:12.5px}
.heat td.hm{text-align:center;font-size:12px;white-space:nowrap;border:1px solid #fff;min-width:54px}
.heat th.rot{height:150px;white-space:nowrap;vertical-align:bottom;padding:0 2px}
.heat th.rot div{transform:rotate(-55deg);transform-origin:left bottom;width:24px;margin-left:22px;font-weight:500}
th.rowh,td.seg{white-space:nowrap;background:#fafbfc}tr.pop td{font-style:italic;color:#52606d}
.scroll{overflow-x:auto}.lo{color:#2166ac;font-weight:600}.hi{color:#b2182b;font-weight:600}
.matrix td{min-width:60px}.matrix td.diag{font-weight:700}.matrix td.zero{color:#c0c7d0;text-align:center}
.warnbox{background:#fff4e5;border:1px solid #f0b46a;border-radius:6px;padding:8px 14px;margin:6px 0}
.warnbox ul{margin:4px 0 0 18px;padding:0}.warn{color:#9a5b00}.ok{color:#2f7d32}tr.warnrow td{background:#fff4e5}
.empty{color:#6b7785;font-style:italic;padding:8px}
svg.chart{background:#fff;margin:4px 0}svg .grid{stroke:#e6e9ee}svg .line{fill:none;stroke:#1f3a5f;stroke-width:2}
svg .dot{fill:#1f3a5f}svg .chosen-dot{fill:#e15759}svg .chosen{stroke:#e15759;stroke-dasharray:4 3}
svg .tick{font-size:11px;fill:#6b7785}svg .lbl{font-size:12px;fill:#1f2933}svg .ctitle{font-size:13px;font-weight:600;
fill:#1f2933}svg .ctitle .muted{font-weight:400;fill:#6b7785}svg .frame{fill:none;stroke:#e3e7ee}
footer{color:#6b7785;font-size:12px;padding:0 28px 24px}
"""


def build_html(data: ReportData) -> str:
    """The report as one HTML string (inline CSS and SVG, nothing external)."""
    run = data.run
    p = data.profiles
    colors = _color_of(p["segment_id"].astype(int))
    names = {int(r.segment_id): str(r.segment_name) for r in p.itertuples(index=False)}
    s = data.snapshot_date.isoformat()
    kpis = [
        ("customers", f"{int(p['size'].sum()):,}"),
        ("segments", str(len(p))),
        ("silhouette", fmt_num(run.get("silhouette"), 3)),
        ("Davies-Bouldin", fmt_num(run.get("davies_bouldin"), 3)),
        ("rules accuracy", fmt_pct(run.get("rules_accuracy"))),
        ("rules macro F1", fmt_pct(run.get("rules_macro_f1"))),
        ("outliers", fmt_int(run.get("outliers"))),
    ]
    n_warn = 0 if data.drift.empty else int(data.drift["warning"].map(lambda w: isinstance(w, str) and bool(w)).sum())
    if n_warn:
        kpis.append(("drift warnings", str(n_warn)))
    kpi_html = "".join(f'<div class="kpi"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in kpis)
    message = run.get("message")
    notes = f'<p class="muted">Run notes: {esc(message)}</p>' if isinstance(message, str) and message else ""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        _segments_section(data, colors),
        _drift_section(data, colors),
        _rules_section(data, colors),
        _heatmap_section(data),
        _projection_section(data, colors, names),
        _k_section(data),
        _feed_section(data, colors),
    ]
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>Customer segments {s}</title><style>{_CSS}</style></head><body>'
        f"<header><h1>Customer segments · snapshot {s}</h1>"
        f'<div class="sub">run {esc(run.get("run_id"))} · {esc(run.get("algorithm"))} · k = {esc(run.get("k"))}'
        f"{'' if data.newest else ' · an older snapshot (a newer one is published)'}</div>"
        f'<div class="kpis">{kpi_html}</div></header><main>{notes}{"".join(sections)}</main>'
        f"<footer>Generated {generated} from the published tables of schema <code>segmentation</code>. "
        "Self-contained: opens offline.</footer></body></html>\n"
    )


def _write_atomic(path: Path, content: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_report(engine: Engine, snapshot_date: date, out_dir: Path | None = None) -> Path:
    """Render the published snapshot ``snapshot_date`` to ``report_<S>.html`` and return its path.

    ``latest.html`` next to it is replaced when S is the newest published snapshot. Files are
    written atomically (temporary file + rename), so a reader never sees half a report.
    """
    data = load_report_data(engine, snapshot_date)
    folder = Path(out_dir) if out_dir is not None else reports_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the report folder {folder}: {exc.strerror}") from exc
    content = build_html(data)
    path = folder / report_filename(snapshot_date)
    _write_atomic(path, content)
    if data.newest:
        _write_atomic(folder / "latest.html", content)
    return path


def list_reports(folder: Path | None = None) -> list[date]:
    """Snapshot dates with a report in ``folder`` (newest first)."""
    folder = Path(folder) if folder is not None else reports_dir()
    out = []
    for p in folder.glob("report_*.html"):
        try:
            out.append(date.fromisoformat(p.stem.removeprefix("report_")))
        except ValueError:
            continue
    return sorted(out, reverse=True)
