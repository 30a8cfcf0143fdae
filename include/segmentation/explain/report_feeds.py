"""The report's pricing and inventory section, from the published feeds of one snapshot.

``read_feeds`` reads ``segment_price_response`` and ``segment_demand_forecast`` (empty frames when
the tables do not exist yet); ``feeds_section`` renders one row per segment: discount share and
depth, the pooled elasticity with its standard error, and the expected 4-week demand with its top
categories. Every value is escaped or formatted as a number.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Engine

from include.segmentation.explain.pricing import ALL_CATEGORIES
from include.segmentation.explain.report_format import esc, fmt_int, fmt_num, fmt_pct, is_missing
from include.segmentation.store import read_sql, table_exists
from include.segmentation.store.schema import FEED_TABLES

if TYPE_CHECKING:
    from include.segmentation.explain.report_data import ReportData

TOP_CATEGORIES = 3


def read_feeds(engine: Engine, snapshot_date: date) -> dict[str, pd.DataFrame]:
    """The snapshot's rows of both feed tables by kind (``price_response``, ``demand_forecast``)."""
    out: dict[str, pd.DataFrame] = {}
    with engine.connect() as conn:
        for kind, table in FEED_TABLES.items():
            if not table_exists(conn, "segmentation", table.name):
                out[kind] = pd.DataFrame()
                continue
            out[kind] = read_sql(conn, f"SELECT * FROM segmentation.{table.name} WHERE snapshot_date = :s",
                                 {"s": snapshot_date})
    return out


def _elasticity(row: Any) -> str:
    """'-1.93 ± 0.05 (n 4,120)', or why there is none."""
    if row is None:
        return "–"
    n = fmt_int(row["n_observations"])
    if is_missing(row["elasticity"]):
        return f'<span class="muted">too little price variation (n {n})</span>'
    return f"{fmt_num(row['elasticity'], 2)} ± {fmt_num(row['elasticity_se'], 2)} <span class=muted>(n {n})</span>"


def _top_demand(mine: pd.DataFrame) -> str:
    """The segment's top categories by expected revenue, with expected units."""
    if mine.empty or mine["expected_revenue"].isna().all():
        return "–"
    top = mine.sort_values("expected_revenue", ascending=False).head(TOP_CATEGORIES)
    return ", ".join(f"{esc(r.category)} <span class=muted>{fmt_num(r.expected_units, 1)} u</span>"
                     for r in top.itertuples(index=False))


def feeds_section(data: ReportData) -> str:
    """The 'Pricing and inventory feeds' section ('' when neither feed has rows for the snapshot)."""
    feeds = getattr(data, "feeds", None) or {}
    price = feeds.get("price_response", pd.DataFrame())
    demand = feeds.get("demand_forecast", pd.DataFrame())
    if price.empty and demand.empty:
        return ""
    rows = []
    for p in data.profiles.itertuples(index=False):
        seg = int(p.segment_id)
        pooled = price[(price["segment_id"].astype(int) == seg) & (price["category"] == ALL_CATEGORIES)] if len(price) else price
        r = pooled.iloc[0] if len(pooled) else None
        mine = demand[demand["segment_id"].astype(int) == seg] if len(demand) else demand
        occasions = mine["expected_occasions"].iloc[0] if len(mine) else None
        revenue = mine["expected_revenue"].sum(min_count=1) if len(mine) else None
        rows.append(
            f"<tr><td class=seg>{seg} · {esc(p.segment_name)}</td>"
            f"<td class=num>{fmt_pct(None if r is None else r['discounted_revenue_share'])}</td>"
            f"<td class=num>{fmt_pct(None if r is None else r['avg_discount_depth'])}</td>"
            f"<td class=num>{_elasticity(r)}</td><td class=num>{fmt_num(occasions, 1)}</td>"
            f"<td class=num>{fmt_num(revenue, 0)}</td><td>{_top_demand(mine)}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in (
        "segment", "revenue sold on discount", "average discount depth", "price elasticity ± SE",
        "expected purchase days (4 weeks)", "expected revenue (4 weeks)", "top categories by expected revenue"))
    return (
        '<section id="feeds"><h2>Pricing and inventory feeds</h2>'
        '<p class="muted">From <code>segmentation.segment_price_response</code> (all categories pooled) and '
        "<code>segmentation.segment_demand_forecast</code>. The elasticity is observational (log quantity on log "
        "price paid, within products): promotions, seasonality and volume pricing confound it; see docs/feeds.md. "
        "The forecast covers today's buyers only (no new customers).</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )
