"""The pricing feed: per segment and category, how much is sold on discount and how quantity responds to price.

``segment_price_response`` has one row per (segment, category) and one pooled row per segment
(category ``'*'``), from the purchase lines (quantity > 0) of the segment's members in the run's window:

- ``discounted_revenue_share``: net revenue of lines with a discount / the net revenue;
- ``avg_discount_depth``: discount / gross value (quantity x unit price), over the discounted lines;
- ``elasticity``: own-price elasticity, the slope of ``log(quantity)`` on ``log(price paid per unit)``
  with product fixed effects (within-product demeaning), one observation per line, using only products
  the segment bought at two or more prices; with its OLS standard error, the number of those lines
  and products, and the within-product standard deviation of log price.

The warehouse aggregates lines to cells (segment x category x product x price level, price rounded
to the cent; SQLite also splits by quantity since it has no ``LN``); the regression runs in numpy on
those cells, which give exactly the line-level estimate. The estimate is NULL when it cannot say
anything: fewer than ``MIN_OBSERVATIONS`` lines with price variation, or a within-product log-price
standard deviation under ``MIN_LOG_PRICE_SD`` (prices varying by less than about 2 %). It is
observational: see docs/feeds.md for what it can and cannot claim.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from include.segmentation.sources import Window
from include.segmentation.store import read_sql

ALL_CATEGORIES = "*"
NO_CATEGORY = "(none)"
MIN_OBSERVATIONS = 30
MIN_LOG_PRICE_SD = 0.02

_LINES = """
WITH a AS (SELECT customer_id, segment_id FROM {staged}),
lines AS (
    SELECT a.segment_id, COALESCE(t.category, '(none)') AS category, t.product_id, t.quantity AS q,
           t.quantity * t.unit_price AS gross, t.discount AS disc
    FROM raw.transactions t JOIN a ON a.customer_id = t.customer_id
    WHERE t.ordered_at >= :start AND t.ordered_at < :cutoff AND t.quantity > 0
)
"""

_DISCOUNTS_SQL = _LINES + """
SELECT segment_id, category,
       SUM(gross - disc) AS revenue,
       SUM(CASE WHEN disc > 0 THEN gross - disc ELSE 0 END) AS discounted_revenue,
       SUM(CASE WHEN disc > 0 THEN disc ELSE 0 END) AS discount,
       SUM(CASE WHEN disc > 0 THEN gross ELSE 0 END) AS discounted_gross
FROM lines GROUP BY segment_id, category
"""

# Price cells: one row per (segment, category, product, price level) with n, sum log q, sum (log q)^2.
_CELLS_PG = _LINES + """,
priced AS (
    SELECT segment_id, category, product_id, ROUND((gross - disc) * 1.0 / q, 2) AS price,
           LN(CAST(q AS DOUBLE PRECISION)) AS y
    FROM lines
)
SELECT segment_id, category, product_id, price, COUNT(*) AS n, SUM(y) AS sy, SUM(y * y) AS syy
FROM priced WHERE price > 0 GROUP BY segment_id, category, product_id, price
"""
_CELLS_SQLITE = _LINES + """
SELECT segment_id, category, product_id, ROUND((gross - disc) * 1.0 / q, 2) AS price, q, COUNT(*) AS n
FROM lines WHERE (gross - disc) > 0 GROUP BY segment_id, category, product_id, price, q
"""


def price_cells(conn: Any, staged: str, window: Window) -> pd.DataFrame:
    """Price cells of the segments' purchase lines in ``window``: segment_id, category, product_id,
    price, n (lines), sy (sum of log quantity), syy (sum of squared log quantity)."""
    if conn.dialect.name == "postgresql":
        cells = read_sql(conn, _CELLS_PG.format(staged=staged), window.params(conn))
    else:
        cells = read_sql(conn, _CELLS_SQLITE.format(staged=staged), window.params(conn))
        y = np.log(pd.to_numeric(cells["q"]).astype("float64"))
        n = pd.to_numeric(cells["n"]).astype("float64")
        cells = cells.assign(sy=n * y, syy=n * y * y).drop(columns=["q"])
        cells = cells.groupby(["segment_id", "category", "product_id", "price"], as_index=False)[["n", "sy", "syy"]].sum()
    for col in ("price", "n", "sy", "syy"):
        cells[col] = pd.to_numeric(cells[col]).astype("float64")
    cells["segment_id"] = pd.to_numeric(cells["segment_id"]).astype("int64")
    return cells[cells["price"] > 0].reset_index(drop=True)


def fixed_effects_slope(cells: pd.DataFrame) -> dict[str, float | int | None]:
    """Within-product OLS of log quantity on log price from one group's cells (product_id, price, n, sy, syy).

    Only products with two or more price levels count. Returns elasticity, elasticity_se (None when
    the variation is too small, see the module docstring), n_observations, n_products, log_price_sd.
    """
    levels = cells.groupby("product_id")["price"].transform("nunique")
    c = cells[levels >= 2]
    out: dict[str, float | int | None] = {"elasticity": None, "elasticity_se": None, "n_observations": int(c["n"].sum()),
                                          "n_products": int(c["product_id"].nunique()), "log_price_sd": None}
    if c.empty:
        return out
    x = np.log(c["price"].to_numpy("float64"))
    n = c["n"].to_numpy("float64")
    sy = c["sy"].to_numpy("float64")
    product = c["product_id"].to_numpy()
    n_p = pd.Series(n).groupby(product).transform("sum").to_numpy()
    x_bar = pd.Series(n * x).groupby(product).transform("sum").to_numpy() / n_p
    y_bar = pd.Series(sy).groupby(product).transform("sum").to_numpy() / n_p
    dx = x - x_bar
    N = float(n.sum())
    sxx = float(np.sum(n * dx * dx))
    sxy = float(np.sum(dx * sy))
    # within-product sum of squares of y: sum of y^2 minus each product's n_p * ybar_p^2 (once per product)
    first = ~pd.Series(product).duplicated().to_numpy()
    syy = float(c["syy"].sum() - np.sum((n_p * y_bar * y_bar)[first]))
    out["log_price_sd"] = float(np.sqrt(sxx / N)) if N > 0 else None
    df = N - out["n_products"] - 1  # type: ignore[operator]
    if N < MIN_OBSERVATIONS or sxx <= 0 or df < 1 or (out["log_price_sd"] or 0.0) < MIN_LOG_PRICE_SD:
        return out
    beta = sxy / sxx
    ssr = max(syy - beta * sxy, 0.0)
    out["elasticity"] = float(beta)
    out["elasticity_se"] = float(np.sqrt(ssr / df / sxx))
    return out


def _discount_rows(discounts: pd.DataFrame) -> pd.DataFrame:
    """Revenue, discounted revenue share and depth per (segment, category), plus the pooled '*' rows."""
    d = discounts.copy()
    for col in ("revenue", "discounted_revenue", "discount", "discounted_gross"):
        d[col] = pd.to_numeric(d[col]).astype("float64").fillna(0.0)
    d["segment_id"] = pd.to_numeric(d["segment_id"]).astype("int64")
    pooled = d.groupby("segment_id", as_index=False)[["revenue", "discounted_revenue", "discount", "discounted_gross"]].sum()
    d = pd.concat([d, pooled.assign(category=ALL_CATEGORIES)], ignore_index=True)
    d["discounted_revenue_share"] = d["discounted_revenue"] / d["revenue"].where(d["revenue"] != 0)
    d["avg_discount_depth"] = d["discount"] / d["discounted_gross"].where(d["discounted_gross"] > 0)
    return d[["segment_id", "category", "revenue", "discounted_revenue_share", "avg_discount_depth"]]


def price_response(conn: Any, staged: str, window: Window) -> pd.DataFrame:
    """One row per (segment, category) and per segment pooled (category '*'): discount share and
    depth, elasticity with its standard error (columns of ``segment_price_response`` without the stamps)."""
    discounts = _discount_rows(read_sql(conn, _DISCOUNTS_SQL.format(staged=staged), window.params(conn)))
    cells = price_cells(conn, staged, window)
    pooled = cells.groupby(["segment_id", "product_id", "price"], as_index=False)[["n", "sy", "syy"]].sum()
    groups = [cells, pooled.assign(category=ALL_CATEGORIES)]
    fits = [
        {"segment_id": int(seg), "category": str(cat), **fixed_effects_slope(g)}
        for part in groups for (seg, cat), g in part.groupby(["segment_id", "category"])
    ]
    fitted = pd.DataFrame(fits, columns=["segment_id", "category", "elasticity", "elasticity_se", "n_observations",
                                         "n_products", "log_price_sd"])
    out = discounts.merge(fitted, on=["segment_id", "category"], how="left")
    out[["n_observations", "n_products"]] = out[["n_observations", "n_products"]].fillna(0).astype("int64")
    for col in ("elasticity", "elasticity_se", "log_price_sd"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    return out.sort_values(["segment_id", "category"]).reset_index(drop=True)
