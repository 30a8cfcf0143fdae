"""The report's HTML: one section per view of the snapshot, assembled by ``build_html`` into one page.

Self-contained: inline CSS and SVG only, no script, no external font, image or stylesheet, so the
file opens offline and can be mailed. Every value from the warehouse is escaped (``esc``) or
formatted as a number before it reaches the page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from include.segmentation.explain.common import as_date, has_text
from include.segmentation.explain.report_data import ReportData
from include.segmentation.explain.report_feeds import feeds_section
from include.segmentation.explain.report_format import esc, fmt_int, fmt_num, fmt_pct, is_missing
from include.segmentation.explain.svg import color_of, diverging, svg_bars, svg_line_chart, svg_scatter
from include.segmentation.model import FEATURES

# ---------------------------------------------------------------------------------------------
# Building blocks shared by the sections
# ---------------------------------------------------------------------------------------------


def _section(section_id: str, title: str, body: str) -> str:
    """``<section id=..><h2>title</h2>body</section>`` (``title`` and ``body`` are HTML already)."""
    return f'<section id="{section_id}"><h2>{title}</h2>{body}</section>'


def _table(head: str, body: Iterable[str], cls: str = "") -> str:
    """A table from header cells and body rows (HTML already); ``cls`` = the table's class."""
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _ths(*labels: str) -> str:
    """Plain header cells (labels are literal HTML)."""
    return "".join(f"<th>{label}</th>" for label in labels)


def _label(seg: Any, name: Any) -> str:
    """``"3 · Loyal"``: how every table names a segment (the name escaped)."""
    return f"{int(seg)} · {esc(name)}"


def _seg_cell(content: str, color: str | None = None) -> str:
    """The first cell of a segment's row, with the segment's colour swatch when ``color`` is given."""
    swatch = "" if color is None else f'<span class="sw" style="background:{color}"></span>'
    return f"<td class=seg>{swatch}{content}</td>"


def _json_list(value: Any) -> Any:
    """A JSON column's value decoded; an empty list when it is missing or not valid JSON."""
    try:
        return json.loads(value) if has_text(value) else []
    except ValueError:
        return []


def _fmt_feature(value: Any, unit: str) -> str:
    """A feature's value as the heat map prints it: shares as whole percentages, the rest with one decimal."""
    return fmt_pct(value, 0) if unit == "share" else fmt_num(value, 1)


def _drift_warnings(drift: pd.DataFrame) -> list[Any]:
    """Rows of ``segment_drift`` that carry a warning."""
    return [] if drift.empty else [r for r in drift.itertuples(index=False) if has_text(r.warning)]


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


def _k_section(data: ReportData) -> str:
    """How k was chosen: silhouette and Davies-Bouldin by k, chosen k highlighted, and the scores table."""
    k_scores = _json_list(data.run.get("k_scores"))
    k: Any = data.run.get("k")
    chosen = int(k) if not is_missing(k) else None
    sil = [(s["k"], s.get("silhouette")) for s in k_scores if "k" in s]
    dbi = [(s["k"], s.get("davies_bouldin")) for s in k_scores if "k" in s]
    charts = svg_line_chart(sil, "Silhouette by k", chosen, "higher") + svg_line_chart(
        dbi, "Davies-Bouldin by k", chosen, "lower"
    )
    rows = [
        f"<tr{' class=chosen-row' if s.get('k') == chosen else ''}><td>{esc(s.get('k'))}</td>"
        f"<td>{fmt_num(s.get('silhouette'), 4)}</td><td>{fmt_num(s.get('davies_bouldin'), 4)}</td>"
        f"<td>{fmt_num(s.get('calinski_harabasz'))}</td><td>{fmt_num(s.get('stability'), 3)}</td></tr>"
        for s in k_scores
    ]
    head = _ths("k", "silhouette", "Davies-Bouldin", "Calinski-Harabasz", "stability (bootstrap Jaccard)")
    table = _table(head, rows, "small") if rows else ""
    return _section(
        "k", "Choosing k",
        '<p class="muted">Among the k whose silhouette (on a sample when the population is large) is close to the '
        'best, the most stable under resampling is fitted on everyone; yesterday\'s k is kept while its model still '
        f'fits (the run\'s message says why k was kept or changed). Chosen k = <b>{esc(chosen)}</b>.</p><div class="row">{charts}</div>{table}',
    )


def _fidelity(r: Any) -> str:
    """Share of the segment's members who meet its name's definition ('–' before fidelity was recorded)."""
    value = getattr(r, "name_fidelity", None)
    return "–" if value is None or pd.isna(value) else fmt_pct(float(value), 0)


def _stability(r: Any) -> str:
    """The segment's mean bootstrap Jaccard ('–' before stability was recorded)."""
    value = getattr(r, "stability", None)
    return "–" if value is None or pd.isna(value) else fmt_num(float(value), 2)


def _lifetime(r: Any, feature: str, digits: int) -> str:
    """The segment's median of a lifetime-model output, '–' when the model was not fitted."""
    value = json.loads(r.feature_medians).get(feature)
    return "–" if value is None else fmt_num(float(value), digits)


def _segments_section(data: ReportData, colors: dict[int, str]) -> str:
    """Segment sizes as bars, then one row per segment: name, size, share, description, top categories."""
    p = data.profiles
    bars = svg_bars(
        [
            (f"{int(r.segment_id)} · {r.segment_name}", float(r.share), colors[int(r.segment_id)],
             f"{int(r.size):,} ({fmt_pct(r.share)})")
            for r in p.itertuples(index=False)
        ]
    )
    rows = [
        f"<tr>{_seg_cell(str(int(r.segment_id)), colors[int(r.segment_id)])}"
        f"<td><b>{esc(r.segment_name)}</b></td><td class=num>{int(r.size):,}</td><td class=num>{fmt_pct(r.share)}"
        f"</td><td class=num>{_fidelity(r)}</td><td class=num>{_stability(r)}</td>"
        f"<td class=num>{_lifetime(r, 'expected_purchases_90d', 2)}</td>"
        f"<td class=num>{_lifetime(r, 'predicted_value_12m', 0)}</td>"
        f"<td>{esc(r.description)}</td><td>{esc(', '.join(map(str, _json_list(r.top_categories))))}</td></tr>"
        for r in p.itertuples(index=False)
    ]
    head = _ths("id", "name", "customers", "share", "name fidelity", "stability (bootstrap Jaccard)",
                "expected purchases (90 days, median)",
                "predicted 12-month value (median)", "profile", "top categories (revenue)")
    return _section("segments", "Segments", bars + _table(head, rows))


def _heatmap_row(data: ReportData, feats: list[Any], r: Any) -> str:
    """One segment's row of the heat map: mean per feature, coloured by its z-score in the population."""
    means, medians = json.loads(r.feature_means), json.loads(r.feature_medians)
    cells = []
    for f in feats:
        mean, median = means.get(f.name), medians.get(f.name)
        pm, ps = data.population[f.name]
        z = (float(mean) - pm) / ps if mean is not None and ps > 0 else float("nan")
        ink = "color:#fff;" if math.isfinite(z) and abs(z) > 1.3 else ""
        cells.append(
            f'<td class="hm" style="{ink}background:{diverging(z)}" title="{esc(f.name)}: mean {fmt_num(mean, 3)}, '
            f'median {fmt_num(median, 3)} {esc(f.unit)}; {fmt_num(z, 2)} sd from the population">'
            f"{_fmt_feature(mean, f.unit)}</td>"
        )
    return f"<tr><th class=rowh>{_label(r.segment_id, r.segment_name)}</th>{''.join(cells)}</tr>"


def _heatmap_section(data: ReportData) -> str:
    """Feature profile: segment means in original units, coloured by distance from the population mean."""
    feats = [f for f in FEATURES if f.name in data.population]
    head = "".join(f'<th class="rot"><div title="{esc(f.description)} ({esc(f.unit)})">{esc(f.name)}</div></th>'
                   for f in feats)
    body = [_heatmap_row(data, feats, r) for r in data.profiles.itertuples(index=False)]
    pop = "".join(f"<td class=hm>{_fmt_feature(data.population[f.name][0], f.unit)}</td>" for f in feats)
    body.append(f'<tr class="pop"><th class=rowh>population</th>{pop}</tr>')
    return _section(
        "heatmap", "Feature profile",
        '<p class="muted">Segment means in original units (days, orders, currency, shares); colour = distance from '
        'the population mean in standard deviations (<span class="lo">below</span> / <span class="hi">above</span>, '
        "clipped at ±2). Hover a cell for the median.</p>"
        f'<div class="scroll">{_table("<th></th>" + head, body, "heat")}</div>',
    )


def _projection_section(data: ReportData, colors: dict[int, str], names: dict[int, str]) -> str:
    """The 2-D PCA picture of a customer sample, coloured by segment."""
    return _section(
        "projection", "Customers in two dimensions",
        '<p class="muted">PCA of the standardised (family-weighted) model features for a systematic sample of '
        f"{len(data.projection):,} customers; segments that overlap here may still be apart in the other dimensions."
        f"</p>{svg_scatter(data.projection, colors, names, data.explained)}",
    )


def _rules_section(data: ReportData, colors: dict[int, str]) -> str:
    """The rules with support, precision, coverage and the tree's fidelity; segments without a rule named."""
    run = data.run
    fidelity = (
        f"Tree fidelity to the clusters: accuracy <b>{fmt_pct(run.get('rules_accuracy'))}</b>, macro recall "
        f"<b>{fmt_pct(run.get('rules_macro_recall'))}</b>, macro F1 <b>{fmt_pct(run.get('rules_macro_f1'))}</b>."
    )
    if data.rules.empty:
        return _section("rules", "Rules", f'<p>{fidelity}</p><p class="empty">No rules published.</p>')
    rules = data.rules.sort_values(["segment_id", "rule_rank"])
    rows = [
        f"<tr>{_seg_cell(_label(r.segment_id, r.segment_name), colors.get(int(r.segment_id), '#999'))}"
        f"<td><code>{esc(r.rule)}</code></td><td class=num>{int(r.support):,}</td>"
        f"<td class=num>{fmt_pct(r.precision)}</td><td class=num>{fmt_pct(r.coverage)}</td></tr>"
        for r in rules.itertuples(index=False)
    ]
    covered = set(rules["segment_id"].astype(int))
    missing = [_label(r.segment_id, r.segment_name) for r in data.profiles.itertuples(index=False)
               if int(r.segment_id) not in covered]
    note = (
        f'<p class="warn">No leaf of the tree predicts: {", ".join(missing)} (the shallow tree cannot separate it '
        "from its neighbours).</p>"
        if missing
        else ""
    )
    return _section(
        "rules", "Why a customer is in a segment",
        f"<p>{fidelity} Each rule is a leaf of a shallow decision tree fitted on the features in original units; "
        "it is also a valid SQL condition on <code>segmentation.customer_features</code>. Support = customers the "
        "rule matches; precision = share of them in the segment; coverage = share of the segment it matches.</p>"
        f"{note}{_table(_ths('segment', 'rule', 'support', 'precision', 'coverage'), rows)}",
    )


def _drift_row(r: Any) -> str:
    """One segment's drift row: status, sizes, change, centroid shift and moves; highlighted on a warning."""
    cls = ' class="warnrow"' if has_text(r.warning) else ""
    change = "–" if is_missing(r.size_change) else f"{float(r.size_change):+.1%}"
    return (
        f"<tr{cls}>{_seg_cell(_label(r.segment_id, r.segment_name))}<td>{esc(r.status)}</td>"
        f"<td class=num>{fmt_int(r.previous_size)}</td><td class=num>{fmt_int(r.size)}</td>"
        f"<td class=num>{change}</td><td class=num>{fmt_num(r.centroid_shift, 2)}</td>"
        f"<td>{esc(r.top_shift_feature)}</td><td class=num>{fmt_int(r.moved_in)}</td>"
        f"<td class=num>{fmt_int(r.moved_out)}</td><td class=num>{fmt_pct(r.moved_out_share)}</td></tr>"
    )


def _drift_table(d: pd.DataFrame) -> str:
    """The drift table, one row per segment ('' without rows)."""
    if d.empty:
        return ""
    head = _ths("segment", "status", "previous size", "size", "change", "centroid shift (sd)", "moved most",
                "moved in", "moved out", "moved out %")
    return _table(head, [_drift_row(r) for r in d.sort_values("segment_id").itertuples(index=False)])


def _drift_section(data: ReportData) -> str:
    """Drift since the previous snapshot: warnings, per-segment table and transition matrix."""
    t, d = data.transitions, data.drift
    if t.empty and d.empty:
        return _section(
            "drift", "Drift and transitions",
            '<p class="muted">First published snapshot: there is no previous snapshot to compare with yet.</p>',
        )
    prev = as_date((d if not d.empty else t)["previous_snapshot_date"].iloc[0])
    warnings = _drift_warnings(d)
    banner = (
        '<div class="warnbox"><b>Drift warnings</b><ul>'
        + "".join(f"<li>{_label(r.segment_id, r.segment_name)}: {esc(r.warning)}</li>" for r in warnings)
        + "</ul></div>"
        if warnings
        else '<p class="ok">No drift above the thresholds.</p>'
    )
    return _section(
        "drift", f"Drift since {esc(prev)}", f"{banner}{_drift_table(d)}<h3>Transitions</h3>{_transition_matrix(t)}"
    )


def _matrix_cell(n: int, share: float, diag: bool) -> str:
    """One cell of the transition matrix: ``n`` customers, shaded by ``share`` of its row."""
    cls = "num diag" if diag else "num"
    if not n:
        return f'<td class="{cls} zero">·</td>'
    style = f"background:rgba(78,121,167,{0.08 + 0.8 * share:.2f})"
    return f'<td class="{cls}" style="{style}" title="{fmt_pct(share)} of row">{n:,}</td>'


def _transition_matrix(t: pd.DataFrame) -> str:
    """Customers from each previous segment (rows) to each current segment (columns), shaded by row share."""
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
    head = _ths("from \\ to", *("left the population" if j is None else _label(j, names_to[j]) for j in tos))
    body = []
    for i in froms:
        label = "new in the population" if i is None else _label(i, names_from[i])
        cells = []
        for j in tos:
            n = counts.get((i, j), 0)
            cells.append(_matrix_cell(n, n / totals[i] if totals.get(i) else 0.0, i is not None and i == j))
        body.append(f"<tr><th class=rowh>{label}</th>{''.join(cells)}</tr>")
    return (
        '<p class="muted">Rows: segment in the previous snapshot; columns: segment now. Shading = share of the row.</p>'
        f'<div class="scroll">{_table(head, body, "matrix")}</div>'
    )


def _feed_items(mine: pd.DataFrame, item_type: str, ranking: str, n: int = 3) -> str:
    """A segment's top ``n`` items of one type and ranking, each with its lift ('–' when none)."""
    part = mine[(mine["item_type"] == item_type) & (mine["ranking"] == ranking)].sort_values("rank").head(n)
    if part.empty:
        return "–"
    return ", ".join(
        f"{esc(x['item_id'])}{'' if item_type == 'category' else f' ({esc(x.category)})'} "
        f"<span class=muted>{fmt_num(x.lift, 1)}x</span>"
        for _, x in part.iterrows()
    )


def _feed_section(data: ReportData) -> str:
    """Per segment: top categories by revenue, over-indexed categories and products ( without a feed)."""
    tp = data.top_products
    if tp.empty:
        return ""
    rows = []
    for r in data.profiles.itertuples(index=False):
        mine = tp[tp["segment_id"].astype(int) == int(r.segment_id)]
        rows.append(
            f"<tr>{_seg_cell(_label(r.segment_id, r.segment_name))}<td>{_feed_items(mine, 'category', 'revenue')}</td>"
            f"<td>{_feed_items(mine, 'category', 'lift')}</td><td>{_feed_items(mine, 'product', 'lift')}</td></tr>"
        )
    head = _ths("segment", "top categories by revenue", "over-indexed categories", "over-indexed products")
    return _section(
        "feed", "Recommendation feed",
        '<p class="muted">From <code>segmentation.segment_top_products</code>: categories by revenue and by lift '
        "(the item's share of the segment's spend over its share of everyone's spend), products by lift. Figures "
        f"after each item = lift.</p>{_table(head, rows)}",
    )


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

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


def _kpis(data: ReportData) -> str:
    """The header's key figures: population, k, model and rule scores, outliers, drift warnings."""
    run, p = data.run, data.profiles
    kpis = [
        ("customers", f"{int(p['size'].sum()):,}"),
        ("segments", str(len(p))),
        ("silhouette", fmt_num(run.get("silhouette"), 3)),
        ("stability", fmt_num(run.get("stability"), 2)),
        ("Davies-Bouldin", fmt_num(run.get("davies_bouldin"), 3)),
        ("rules accuracy", fmt_pct(run.get("rules_accuracy"))),
        ("rules macro F1", fmt_pct(run.get("rules_macro_f1"))),
        ("outliers", fmt_int(run.get("outliers"))),
    ]
    if not is_missing(run.get("moved_customers")):
        kpis.append(("changed segment (own features moved)",
                     f"{fmt_int(run.get('moved_customers'))} ({fmt_int(run.get('moved_with_feature_change'))})"))
    if not is_missing(run.get("min_name_fidelity")):
        kpis.append(("lowest name fidelity", fmt_pct(run.get("min_name_fidelity"), 0)))
    lifetime = run.get("lifetime_model")
    if has_text(lifetime):
        model = json.loads(str(lifetime))
        kpis.append(("BG/NBD r · α · a · b", " · ".join(fmt_num(model.get(k), 3) for k in ("r", "alpha", "a", "b"))))
    n_warn = len(_drift_warnings(data.drift))
    if n_warn:
        kpis.append(("drift warnings", str(n_warn)))
    return "".join(f'<div class="kpi"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in kpis)


def build_html(data: ReportData) -> str:
    """The report as one HTML string (inline CSS and SVG, nothing external)."""
    run = data.run
    colors = color_of(data.profiles["segment_id"].astype(int))
    names = {int(r.segment_id): str(r.segment_name) for r in data.profiles.itertuples(index=False)}
    s = data.snapshot_date.isoformat()
    message = run.get("message")
    notes = f'<p class="muted">Run notes: {esc(message)}</p>' if has_text(message) else ""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        _segments_section(data, colors),
        _drift_section(data),
        _rules_section(data, colors),
        _heatmap_section(data),
        _projection_section(data, colors, names),
        _k_section(data),
        _feed_section(data),
        feeds_section(data),
    ]
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>Customer segments {s}</title><style>{_CSS}</style></head><body>'
        f"<header><h1>Customer segments · snapshot {s}</h1>"
        f'<div class="sub">run {esc(run.get("run_id"))} · {esc(run.get("algorithm"))} · k = {esc(run.get("k"))}'
        f"{'' if data.newest else ' · an older snapshot (a newer one is published)'}</div>"
        f'<div class="kpis">{_kpis(data)}</div></header><main>{notes}{"".join(sections)}</main>'
        f"<footer>Generated {generated} from the published tables of schema <code>segmentation</code>. "
        "Self-contained: opens offline.</footer></body></html>\n"
    )
