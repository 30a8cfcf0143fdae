"""The recommendation feed: each segment's top categories and products, and what profiles take from it.

``segment_top_products`` ranks items by revenue and by lift (the item's share of the segment's
revenue / its share of the whole population's revenue), computed in SQL over the raw transactions
of the staged segment members. Profiles get ``top_categories`` (JSON list of the segment's top
categories by revenue) and a one-line description that mentions the segment's most
over-represented category.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text

from include.segmentation.explain.common import InsightError
from include.segmentation.explain.profiles import describe_segment
from include.segmentation.model import NUMERIC_FEATURES
from include.segmentation.sources import Window
from include.segmentation.store import read_sql

DEFAULT_TOP_N = 10
DEFAULT_MIN_BUYERS = 3  # an item needs this many buyers in the segment to be ranked by lift
PROFILE_TOP_CATEGORIES = 5
FAVOURITE_MIN_LIFT = 1.3  # a category is mentioned in the description from this lift on
#: One customer's revenue on one item counts at most CONTRIBUTION_CAP_FACTOR x the 99th percentile
#: of all customer-item revenues of the window (see ``contribution_cap``), so that one extreme
#: customer (a unit price of 1e9, a quantity of 1e8) cannot make an item the segment's top lift.
CONTRIBUTION_CAP_QUANTILE = 0.99
CONTRIBUTION_CAP_FACTOR = 50.0

_ITEM_SQL = """
WITH a AS (SELECT customer_id, segment_id FROM {staged}),
lines AS (
    SELECT a.segment_id, t.customer_id, {item} AS item, t.category AS category,
           t.quantity * t.unit_price - t.discount AS net
    FROM raw.transactions t
    JOIN a ON a.customer_id = t.customer_id
    WHERE t.ordered_at >= :start AND t.ordered_at < :cutoff AND t.quantity > 0
),
per_customer AS (
    SELECT segment_id, customer_id, item, MAX(category) AS category, SUM(net) AS net
    FROM lines GROUP BY segment_id, customer_id, item
),
capped AS (
    SELECT segment_id, customer_id, item, category, CASE WHEN net > :cap THEN :cap ELSE net END AS net
    FROM per_customer
),
seg_size AS (SELECT segment_id, COUNT(*) AS n FROM a GROUP BY segment_id),
seg_rev AS (SELECT segment_id, SUM(net) AS total FROM capped GROUP BY segment_id),
seg_item AS (
    SELECT segment_id, item, MAX(category) AS category, SUM(net) AS revenue, COUNT(DISTINCT customer_id) AS buyers
    FROM capped WHERE item IS NOT NULL GROUP BY segment_id, item
),
pop_item AS (SELECT item, SUM(net) AS revenue FROM capped WHERE item IS NOT NULL GROUP BY item),
pop_rev AS (SELECT SUM(net) AS total FROM capped),
scored AS (
    SELECT s.segment_id, s.item, s.category, s.revenue, s.buyers,
           s.revenue * 1.0 / NULLIF(r.total, 0) AS revenue_share,
           s.buyers * 1.0 / z.n AS penetration,
           (s.revenue * 1.0 / NULLIF(r.total, 0)) / NULLIF(p.revenue * 1.0 / NULLIF(pop_rev.total, 0), 0) AS lift
    FROM seg_item s
    JOIN pop_item p ON p.item = s.item
    JOIN seg_size z ON z.segment_id = s.segment_id
    JOIN seg_rev r ON r.segment_id = s.segment_id
    CROSS JOIN pop_rev
),
ranked AS (
    SELECT scored.*,
           ROW_NUMBER() OVER (PARTITION BY segment_id ORDER BY revenue DESC, item) AS rank_revenue,
           ROW_NUMBER() OVER (
               PARTITION BY segment_id
               ORDER BY CASE WHEN buyers >= :min_buyers AND lift IS NOT NULL THEN 0 ELSE 1 END, lift DESC, revenue DESC, item
           ) AS rank_lift
    FROM scored
)
SELECT segment_id, item, category, revenue, revenue_share, buyers, penetration, lift, rank_revenue, rank_lift
FROM ranked
WHERE rank_revenue <= :top_n OR (rank_lift <= :top_n AND buyers >= :min_buyers AND lift IS NOT NULL)
"""

# Only these two fixed expressions ever reach the template (no configuration does).
_ITEM_EXPR = {"category": "t.category", "product": "t.product_id"}

_CONTRIBUTIONS_SQL = """
SELECT SUM(t.quantity * t.unit_price - t.discount) AS net
FROM raw.transactions t JOIN (SELECT customer_id FROM {staged}) a ON a.customer_id = t.customer_id
WHERE t.ordered_at >= :start AND t.ordered_at < :cutoff AND t.quantity > 0
GROUP BY t.customer_id, {item}
"""


def contribution_cap(conn: Any, staged: str, window: Window, item_type: str) -> float:
    """The most one customer's revenue on one item may count for in shares and lifts.

    ``CONTRIBUTION_CAP_FACTOR`` x the ``CONTRIBUTION_CAP_QUANTILE`` of the window's customer-item
    revenues (the data's own scale, so a normal customer is never capped), at least 1.
    """
    inner = _CONTRIBUTIONS_SQL.format(staged=staged, item=_ITEM_EXPR[item_type])
    params = window.params(conn)
    q = CONTRIBUTION_CAP_QUANTILE
    if conn.dialect.name == "postgresql":
        value = conn.execute(text(f"SELECT percentile_disc({q}) WITHIN GROUP (ORDER BY net) FROM ({inner}) c"),
                             params).scalar()
    else:
        n = int(conn.execute(text(f"SELECT COUNT(*) FROM ({inner}) c"), params).scalar() or 0)
        value = None if n == 0 else conn.execute(
            text(f"SELECT net FROM ({inner}) c ORDER BY net LIMIT 1 OFFSET {int(q * (n - 1))}"), params).scalar()
    scale = float(value) if value is not None and math.isfinite(float(value)) else 0.0
    return max(scale, 1.0) * CONTRIBUTION_CAP_FACTOR


def top_items(
    conn: Any,
    staged: str,
    window: Window,
    item_type: str,
    top_n: int = DEFAULT_TOP_N,
    min_buyers: int = DEFAULT_MIN_BUYERS,
) -> pd.DataFrame:
    """Each segment's top ``item_type`` (category or product) by revenue and by lift, ranked in SQL.

    Revenue is ``quantity * unit_price - discount`` of purchase lines (quantity > 0) in the window;
    shares are of the segment's (population's) whole revenue, lines without a category included.
    Lift = the item's share of the segment's revenue / its share of the whole population's revenue
    (1.0 = bought like everyone else; 2.0 = twice as much of the segment's spend goes to it), so a
    segment that buys more of everything does not over-index on everything. Only items with at
    least ``min_buyers`` buyers in the segment are ranked by lift; ``penetration`` (buyers / segment
    size) says how widespread the item is in the segment. Each customer's revenue on an item is
    capped at ``contribution_cap`` (50 x the 99th percentile of customer-item revenues) before
    revenues, shares and lifts are summed, so one implausible customer cannot dominate a ranking.
    """
    if item_type not in _ITEM_EXPR:
        raise InsightError(f"segment_top_products.item_type must be one of {sorted(_ITEM_EXPR)}, got {item_type!r}")
    sql = _ITEM_SQL.format(staged=staged, item=_ITEM_EXPR[item_type])
    cap = contribution_cap(conn, staged, window, item_type)
    df = read_sql(conn, sql, {**window.params(conn), "top_n": int(top_n), "min_buyers": int(min_buyers), "cap": cap})
    for col in ("revenue", "revenue_share", "penetration", "lift"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("segment_id", "buyers", "rank_revenue", "rank_lift"):
        df[col] = pd.to_numeric(df[col]).astype("int64")
    parts = []
    for ranking in ("revenue", "lift"):
        rank_col = f"rank_{ranking}"
        part = df[df[rank_col] <= top_n]
        if ranking == "lift":
            part = part[(part["buyers"] >= min_buyers) & part["lift"].notna()]
        part = part.assign(item_type=item_type, ranking=ranking, rank=part[rank_col])
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out = out.rename(columns={"item": "item_id"}).drop(columns=["rank_revenue", "rank_lift"])
    if item_type == "category":
        out["category"] = out["item_id"]
    return out.sort_values(["segment_id", "item_type", "ranking", "rank"]).reset_index(drop=True)


def enrich_profiles(
    profiles: pd.DataFrame,
    features: pd.DataFrame,
    segment_of: np.ndarray,
    categories: pd.DataFrame,
    window_days: int,
) -> pd.DataFrame:
    """``profiles`` with ``top_categories`` (JSON, by revenue) and a description naming the favourite category.

    ``categories`` is ``top_items(..., "category")``; the favourite is the segment's top category by
    lift when its lift reaches ``FAVOURITE_MIN_LIFT``.
    """
    enriched = profiles.copy()
    medians_all = features[list(NUMERIC_FEATURES)].median()
    by_rev = categories[categories["ranking"] == "revenue"].sort_values(["segment_id", "rank"])
    by_lift = categories[categories["ranking"] == "lift"].sort_values(["segment_id", "rank"])
    tops, descriptions = [], []
    seg_medians = features[list(NUMERIC_FEATURES)].groupby(segment_of).median()
    for row in enriched.itertuples(index=False):
        seg = int(row.segment_id)
        cats = by_rev.loc[by_rev["segment_id"] == seg, "item_id"].head(PROFILE_TOP_CATEGORIES).tolist()
        tops.append(json.dumps(cats))
        lifted = by_lift[(by_lift["segment_id"] == seg) & (by_lift["lift"] >= FAVOURITE_MIN_LIFT)].head(1)
        favourite = (str(lifted["item_id"].iloc[0]), float(lifted["lift"].iloc[0])) if len(lifted) else None
        descriptions.append(
            describe_segment(seg_medians.loc[seg], medians_all, window_days=window_days, favourite=favourite)
        )
    enriched["top_categories"] = tops
    enriched["description"] = descriptions
    return enriched[list(profiles.columns)]
