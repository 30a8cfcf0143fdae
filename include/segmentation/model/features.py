"""Features: per-customer behaviour, value and profile, from the extract's aggregates.

``FEATURES`` is the one place that lists every feature, its unit, how it is transformed for
clustering and whether the model uses it. Missing values are handled explicitly and documented
per feature (``fill``): a customer who never bought has recency = the window length, zero orders,
zero rates; one who never browsed has zero sessions. Heavy-tailed features are ``log1p``-transformed
(signed for net monetary, which can be negative after returns) and every model feature is then
standardised. Demographics and geography are kept for profiles and consumers but are not model
inputs: segments describe behaviour, and profiles show who is in them. Model features are grouped
in families (value, timing, browsing) that are balanced against each other (``model_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

AGE_BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 24, "18-24"),
    (25, 34, "25-34"),
    (35, 44, "35-44"),
    (45, 54, "45-54"),
    (55, 64, "55-64"),
    (65, 200, "65+"),
)


@dataclass(frozen=True)
class Feature:
    """One feature: name, unit, transform before scaling, model input or not, how missing is filled."""

    name: str
    unit: str
    transform: str  # "log1p", "signed_log1p" or "none"
    model: bool
    fill: str
    description: str
    family: str = "profile"  # "value", "timing" or "browsing" for model features


FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", "days", "log1p", True, "window length when no purchase", "days from last purchase date to S", "timing"),
    Feature("frequency", "orders", "log1p", True, "0", "distinct purchase orders in the window", "value"),
    Feature("monetary", "currency", "signed_log1p", True, "0", "gross - returns - discounts in the window", "value"),
    Feature("avg_order_value", "currency", "log1p", True, "0", "gross revenue per order", "value"),
    Feature("items_per_order", "items", "log1p", True, "0", "units bought per order", "value"),
    Feature("return_rate", "share", "none", True, "0", "returned value / gross revenue (capped at 1)", "value"),
    Feature("discount_share", "share", "none", True, "0", "discounts / gross revenue", "value"),
    Feature("days_between_orders", "days", "log1p", True, "window length when < 2 orders", "mean gap between orders", "timing"),
    Feature("tenure_days", "days", "log1p", True, "first activity when created_at unknown", "days since sign-up", "timing"),
    Feature("category_breadth", "categories", "log1p", True, "0", "distinct categories bought", "value"),
    Feature("sessions", "sessions", "log1p", True, "0", "distinct browsing sessions", "browsing"),
    Feature("product_views", "views", "log1p", True, "0", "product_view events", "browsing"),
    Feature("searches", "searches", "log1p", True, "0", "search events", "browsing"),
    Feature("add_to_cart_rate", "share", "none", True, "0", "add_to_cart / product views (capped at 1)", "browsing"),
    Feature("cart_abandonment_rate", "share", "none", True, "0", "carts without checkout / carts", "browsing"),
    Feature("view_to_purchase", "share", "none", True, "0", "orders / product views (capped at 1)", "browsing"),
    Feature("avg_dwell_seconds", "seconds", "log1p", True, "0", "mean dwell time per event", "browsing"),
    Feature("age", "years", "none", False, "NaN (age band 'unknown')", "S year - birth year"),
    Feature("p_alive", "probability", "none", False, "empty: no purchase in the window or model not fitted",
            "BG/NBD probability that the customer is still active at S"),
    Feature("expected_purchases_90d", "purchase days", "none", False,
            "empty: no purchase in the window or model not fitted",
            "BG/NBD expected purchase occasions (distinct days) in the 90 days after S"),
    Feature("predicted_value_12m", "currency", "none", False, "empty: no purchase in the window or model not fitted",
            "BG/NBD expected occasions in the next 365 days x Gamma-Gamma expected spend per occasion"),
)
# Profile features that may be empty (NaN): not checked for finiteness, never model inputs.
NULLABLE_FEATURES: tuple[str, ...] = ("age", "p_alive", "expected_purchases_90d", "predicted_value_12m")
MODEL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.model)
# Family balance: after standardising, each model feature that varies in the run's population is
# weighted FAMILY_EMPHASIS[family] / sqrt(number of varying features of its family), so value, timing
# and browsing each contribute the same total variance to the distance, and browsing is further
# damped (x0.7) because it is noisier and optional in many warehouses. A feature that is constant in
# the run (absent from the source: no categories, discounts, returns or browsing) contributes nothing;
# its family's weight is spread over the family's varying features; a family with no varying feature
# drops out (``effective_weights``).
FAMILY_EMPHASIS: dict[str, float] = {"value": 1.0, "timing": 1.0, "browsing": 0.7}
# A feature "varies" when more than this share of customers differ from its most common value.
MIN_VARYING_SHARE = 0.005
# Weight passed to the model for a feature that does not vary: its standardised column is (almost)
# zero everywhere, so it contributes nothing; a tiny positive weight keeps centroids invertible.
_SILENT_WEIGHT = 1e-6


def model_weights() -> np.ndarray:
    """Per-model-feature weights when every feature varies (see ``FAMILY_EMPHASIS``)."""
    fams = [f.family for f in FEATURES if f.model]
    return np.array([FAMILY_EMPHASIS[fam] / np.sqrt(fams.count(fam)) for fam in fams])


def effective_weights(transformed: pd.DataFrame) -> tuple[dict[str, float], dict[str, str]]:
    """Weight of every model feature in this run's population, and why features/families were dropped.

    ``transformed`` is ``transform_for_model``'s output. Returns (feature -> effective weight,
    feature or ``family:<name>`` -> reason); a weight of 0 means the feature contributes nothing.
    """
    model = [f for f in FEATURES if f.model]
    varying: dict[str, bool] = {}
    dropped: dict[str, str] = {}
    n = len(transformed)
    for f in model:
        col = transformed[f.name].to_numpy("float64") if f.name in transformed else np.array([])
        if n == 0 or col.size == 0:
            varying[f.name] = False
            dropped[f.name] = "absent from the source"
            continue
        values, counts = np.unique(np.round(col, 12), return_counts=True)
        differ = 1.0 - counts.max() / n
        varying[f.name] = len(values) > 1 and differ > MIN_VARYING_SHARE
        if not varying[f.name]:
            dropped[f.name] = (f"constant ({values[counts.argmax()]:.4g} for every customer)" if len(values) == 1
                               else f"almost constant ({differ:.2%} of customers differ from the most common value)")
    weights: dict[str, float] = {}
    for fam in FAMILY_EMPHASIS:
        members = [f.name for f in model if f.family == fam]
        live = [m for m in members if varying[m]]
        if not live:
            dropped[f"family:{fam}"] = "no feature of the family varies in this population"
        for m in members:
            weights[m] = float(FAMILY_EMPHASIS[fam] / np.sqrt(len(live))) if m in live else 0.0
    return weights, dropped


def weights_array(weights: dict[str, float]) -> np.ndarray:
    """The weights in ``MODEL_FEATURES`` order, a zero replaced by a negligible positive weight."""
    return np.array([weights[name] if weights[name] > 0 else _SILENT_WEIGHT for name in MODEL_FEATURES])


NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CATEGORICAL_FEATURES: tuple[str, ...] = ("age_band", "gender", "country")


_ROUNDING: dict[str, int] = {
    "gross_revenue": 2,
    "returned_value": 2,
    "discount_total": 2,
    "dwell_seconds_total": 3,
}


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce").astype("float64").fillna(0.0)


def _ts(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_datetime(df[col], utc=True, errors="coerce", format="mixed")


def _safe_div(a: pd.Series, b: pd.Series) -> pd.Series:
    out = a / b.where(b > 0)
    return out.replace([np.inf, -np.inf], np.nan).fillna(0.0)


def build_features(aggregates: pd.DataFrame, snapshot_date: date, window_days: int) -> pd.DataFrame:
    """Turn extract aggregates (one row per customer) into the feature table, indexed by customer_id.

    Pure and deterministic: rows sorted by customer_id; every numeric feature finite.
    """
    if aggregates.empty:
        return pd.DataFrame(columns=[*NUMERIC_FEATURES, *CATEGORICAL_FEATURES], index=pd.Index([], name="customer_id"))
    agg = aggregates.sort_values("customer_id").reset_index(drop=True).copy()
    # Sums computed in float by the warehouse depend on summation order (hash or parallel
    # aggregation): round them to their natural precision so that re-running a date gives
    # bit-identical features, and therefore identical segments.
    for col, digits in _ROUNDING.items():
        if col in agg:
            agg[col] = pd.to_numeric(agg[col], errors="coerce").astype("float64").round(digits)
    s = pd.Timestamp(snapshot_date, tz="UTC")
    orders = _num(agg, "orders")
    gross = _num(agg, "gross_revenue")
    product_views = _num(agg, "product_views")
    carts = _num(agg, "add_to_carts")

    last_order = _ts(agg, "last_order_at")
    first_order = _ts(agg, "first_order_at")
    recency = (s - last_order.dt.normalize()).dt.days.astype("float64")
    gaps = (last_order - first_order).dt.total_seconds() / 86400.0 / (orders - 1).where(orders > 1)

    created = _ts(agg, "created_at")
    first_seen = pd.concat([first_order, _ts(agg, "last_tx_at"), _ts(agg, "last_event_at")], axis=1).min(axis=1)
    created = created.fillna(first_seen)
    tenure = (s - created.dt.normalize()).dt.days.astype("float64").clip(lower=0)

    birth_year = pd.to_numeric(agg["birth_year"], errors="coerce")
    age = (snapshot_date.year - birth_year).where((birth_year > 1900) & (birth_year <= snapshot_date.year))

    out = pd.DataFrame(
        {
            "recency_days": recency.fillna(float(window_days)).clip(0, window_days),
            "frequency": orders,
            "monetary": gross - _num(agg, "returned_value") - _num(agg, "discount_total"),
            "avg_order_value": _safe_div(gross, orders),
            "items_per_order": _safe_div(_num(agg, "items"), orders),
            "return_rate": _safe_div(_num(agg, "returned_value"), gross).clip(0, 1),
            "discount_share": _safe_div(_num(agg, "discount_total"), gross).clip(0, 1),
            "days_between_orders": gaps.fillna(float(window_days)).clip(0, window_days),
            "tenure_days": tenure.fillna(0.0),
            "category_breadth": _num(agg, "categories"),
            "sessions": _num(agg, "sessions"),
            "product_views": product_views,
            "searches": _num(agg, "searches"),
            "add_to_cart_rate": _safe_div(carts, product_views).clip(0, 1),
            "cart_abandonment_rate": _safe_div((carts - _num(agg, "checkouts")).clip(lower=0), carts).clip(0, 1),
            "view_to_purchase": _safe_div(orders, product_views).clip(0, 1),
            "avg_dwell_seconds": _safe_div(_num(agg, "dwell_seconds_total"), _num(agg, "dwell_events")),
            "age": age.astype("float64"),
            **{name: np.nan for name in ("p_alive", "expected_purchases_90d", "predicted_value_12m")},
            "age_band": _age_band(age),
            "gender": agg["gender"].fillna("unknown").astype(str),
            "country": agg["country"].fillna("unknown").astype(str),
        }
    )
    out.index = pd.Index(agg["customer_id"].astype(str), name="customer_id")
    return out


def _age_band(age: pd.Series) -> pd.Series:
    band = pd.Series("unknown", index=age.index, dtype=object)
    for lo, hi, label in AGE_BANDS:
        band[(age >= lo) & (age <= hi)] = label
    return band


def transform_for_model(features: pd.DataFrame) -> pd.DataFrame:
    """Model inputs before scaling: log1p on heavy-tailed features, in ``FEATURES`` order."""
    cols = {}
    for f in FEATURES:
        if not f.model:
            continue
        x = features[f.name].astype("float64")
        if f.transform == "log1p":
            x = np.log1p(x.clip(lower=0))
        elif f.transform == "signed_log1p":
            x = np.sign(x) * np.log1p(x.abs())
        cols[f.name] = x
    return pd.DataFrame(cols, index=features.index)
