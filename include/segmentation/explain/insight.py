"""Segment insight: explainable rules, drift against the previous snapshot, a recommendation feed.

Runs inside the cluster stage, after segment ids and names are fixed and the assignments are staged,
and returns DataFrames the publish stage writes in the SAME transaction as the snapshot:

- ``segment_rules``: a shallow decision tree (features in original units -> segment id) turned into
  one readable rule per leaf, e.g. ``recency_days <= 21 and frequency >= 6``. Thresholds are snapped
  to the roundest number that splits the data exactly like the tree, so every rule is also a valid
  SQL predicate on ``segmentation.customer_features`` that selects exactly the customers the tree
  sends to that leaf. The tree's fidelity to the clusters (accuracy, macro recall, macro F1) goes to
  ``segment_runs``.
- ``segment_transitions``: how many customers moved from segment i (previous published snapshot)
  to segment j (this one); NULL ``from_segment_id``/``to_segment_id`` = entered/left the population.
- ``segment_drift``: per segment, size change, centroid shift (in standard deviations of the model
  features) and moved-out share; above ``DriftThresholds`` it is a warning (logged, returned in
  ``Insights.warnings`` and stored in the row).
- ``segment_top_products``: each segment's top categories and products by revenue and by lift
  (the item's share of the segment's revenue / its share of the whole population's revenue),
  computed in SQL.

It also enriches the profiles: ``top_categories`` (JSON list of the segment's top categories by
revenue) and a one-line description that mentions the segment's most over-represented category.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from include.segmentation.errors import PermanentError
from include.segmentation.model import MODEL_FEATURES, NUMERIC_FEATURES, transform_for_model
from include.segmentation.sources import Window
from include.segmentation.store import INSIGHT_TABLES, StagingNameError, WarehouseError, qualified_staging, read_sql

log = logging.getLogger("include.segmentation")

COLUMNS: dict[str, list[str]] = {kind: [c.name for c in t.columns] for kind, t in INSIGHT_TABLES.items()}

RULE_FEATURES: tuple[str, ...] = MODEL_FEATURES
DEFAULT_MAX_DEPTH = 4
DEFAULT_TOP_N = 10
DEFAULT_MIN_BUYERS = 3  # an item needs this many buyers in the segment to be ranked by lift
PROFILE_TOP_CATEGORIES = 5
FAVOURITE_MIN_LIFT = 1.3  # a category is mentioned in the description from this lift on
MAX_DEPTH_ENV = "SEGMENTATION_RULES_MAX_DEPTH"


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class InsightError(PermanentError, ValueError):
    """Input the insight stage cannot work with (names the table, column and rule)."""


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftThresholds:
    """Above these, a segment's drift is a warning. Override with ``SEGMENTATION_DRIFT_MAX_*`` variables."""

    max_size_change: float = 0.25  # relative change of the segment's size
    max_centroid_shift: float = 0.5  # standard deviations of the transformed model features
    max_moved_out: float = 0.20  # share of the segment's previous members now in another segment

    ENV = {
        "max_size_change": "SEGMENTATION_DRIFT_MAX_SIZE_CHANGE",
        "max_centroid_shift": "SEGMENTATION_DRIFT_MAX_CENTROID_SHIFT",
        "max_moved_out": "SEGMENTATION_DRIFT_MAX_MOVED_OUT",
    }

    def __post_init__(self) -> None:
        for name in self.ENV:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise InsightError(f"drift threshold {name} must be a positive number, got {value!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DriftThresholds:
        """Defaults overridden by ``SEGMENTATION_DRIFT_MAX_SIZE_CHANGE`` / ``_CENTROID_SHIFT`` / ``_MOVED_OUT``."""
        env = os.environ if env is None else env
        values: dict[str, float] = {}
        for name, var in cls.ENV.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[name] = float(raw)
            except ValueError as exc:
                raise InsightError(f"environment variable {var} must be a number, got {raw!r}") from exc
            if not math.isfinite(values[name]) or values[name] <= 0:
                raise InsightError(f"environment variable {var} must be a positive number, got {raw!r}")
        return cls(**values)


@dataclass
class Insights:
    """What the insight stage hands the pipeline: staged tables by kind, enriched profiles, run fields."""

    tables: dict[str, pd.DataFrame]
    profiles: pd.DataFrame
    run_fields: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Explainable rules
# ---------------------------------------------------------------------------------------------


@dataclass
class RuleSet:
    """Rules of one fitted tree (one row per leaf) and the tree's fidelity to the clusters."""

    rules: pd.DataFrame  # segment_id, rule_rank, rule, conditions, support, precision, coverage
    accuracy: float
    macro_recall: float
    macro_f1: float
    predicted: np.ndarray


def nice_threshold(lo: float, hi: float) -> float:
    """The roundest number r with ``lo <= r < hi``: ``x <= r`` splits the data like any threshold in [lo, hi)."""
    if not lo < hi:
        raise ValueError(f"empty threshold interval [{lo}, {hi})")
    top = int(math.ceil(math.log10(max(abs(lo), abs(hi), 1e-12)))) + 1
    for exp in range(top, -10, -1):
        step = 10.0**exp
        r = math.ceil(lo / step) * step
        r = round(r, max(0, -exp))
        if lo <= r < hi:
            return float(r)
    return float(lo)


def _fmt_value(v: float) -> str:
    """Shortest text that parses back to exactly ``v`` (so the SQL rule selects the same rows)."""
    v = float(v)
    if v.is_integer():
        return str(int(v))
    text = f"{v:.10f}".rstrip("0").rstrip(".")
    return text if float(text) == v else repr(v)


def _integer_valued(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and bool(np.all(finite == np.floor(finite)))


def _path_conditions(path: list[tuple[str, str, float]], integer_cols: set[str]) -> list[dict[str, Any]]:
    """Merge a root-to-leaf path into at most one lower and one upper bound per feature, root order."""
    bounds: dict[str, dict[str, float]] = {}
    for feat, op, value in path:
        b = bounds.setdefault(feat, {})
        if op == "<=":
            b["<="] = min(b.get("<=", math.inf), value)
        else:
            b[">"] = max(b.get(">", -math.inf), value)
    out: list[dict[str, Any]] = []
    for feat, b in bounds.items():
        if ">" in b:
            v = b[">"]
            if feat in integer_cols and float(v).is_integer():
                out.append({"feature": feat, "op": ">=", "value": float(v + 1)})
            else:
                out.append({"feature": feat, "op": ">", "value": float(v)})
        if "<=" in b:
            out.append({"feature": feat, "op": "<=", "value": float(b["<="])})
    return out


def format_rule(conditions: list[dict[str, Any]]) -> str:
    """``[{"feature": "recency_days", "op": "<=", "value": 21}]`` -> ``"recency_days <= 21"``."""
    if not conditions:
        return "all customers"
    return " and ".join(f"{c['feature']} {c['op']} {_fmt_value(c['value'])}" for c in conditions)


def rule_mask(features: pd.DataFrame, conditions: list[dict[str, Any]]) -> np.ndarray:
    """Which rows of ``features`` a rule's conditions match (the same test SQL would apply)."""
    mask = np.ones(len(features), dtype=bool)
    for c in conditions:
        x = features[c["feature"]].to_numpy(dtype="float64")
        v = float(c["value"])
        if c["op"] == "<=":
            mask &= x <= v
        elif c["op"] == ">":
            mask &= x > v
        elif c["op"] == ">=":
            mask &= x >= v
        else:
            raise InsightError(f"segment_rules.conditions: unknown operator {c['op']!r}")
    return mask


def rules_max_depth(env: Mapping[str, str] | None = None) -> int:
    """Depth of the rules tree: ``SEGMENTATION_RULES_MAX_DEPTH`` (1..8), default 4."""
    env = os.environ if env is None else env
    raw = env.get(MAX_DEPTH_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_DEPTH
    try:
        depth = int(raw)
    except ValueError as exc:
        raise InsightError(f"environment variable {MAX_DEPTH_ENV} must be a whole number, got {raw!r}") from exc
    if not 1 <= depth <= 8:
        raise InsightError(f"environment variable {MAX_DEPTH_ENV} must be within 1..8, got {depth}")
    return depth


def fit_rules(
    features: pd.DataFrame,
    segment_of: np.ndarray,
    max_depth: int = DEFAULT_MAX_DEPTH,
    random_state: int = 0,
) -> RuleSet:
    """Fit a shallow decision tree (original units) to the segment ids and turn its leaves into rules.

    Each leaf is one rule for the segment the tree predicts there. Thresholds are snapped to round
    numbers that split the data exactly as the tree does, so the rules reproduce the tree's
    predictions and the fidelity figures describe the published rules.
    """
    from sklearn.metrics import accuracy_score, f1_score, recall_score
    from sklearn.tree import DecisionTreeClassifier

    if not 1 <= max_depth <= 8:
        raise InsightError(f"rules: max_depth must be within 1..8, got {max_depth}")
    X = features[list(RULE_FEATURES)].astype("float64")
    y = np.asarray(segment_of).astype(int)
    n = len(X)
    # Entropy splits at depth 4 gave 0.97-1.0 accuracy and a rule for every segment on four synthetic
    # warehouses, where gini or class_weight="balanced" left segments without any leaf (docs/insight.md).
    clf = DecisionTreeClassifier(
        criterion="entropy",
        max_depth=max_depth,
        min_samples_leaf=max(5, n // 200),
        random_state=random_state,
    ).fit(X.to_numpy(), y)
    tree = clf.tree_
    values = {f: X[f].to_numpy() for f in RULE_FEATURES}
    integer_cols = {f for f in RULE_FEATURES if _integer_valued(values[f])}

    leaves: dict[int, list[tuple[str, str, float]]] = {}

    def walk(node: int, path: list[tuple[str, str, float]]) -> None:
        left, right = tree.children_left[node], tree.children_right[node]
        if left == right:  # leaf
            leaves[node] = path
            return
        feat = RULE_FEATURES[tree.feature[node]]
        t = float(tree.threshold[node])
        col = values[feat]
        below, above = col[col <= t], col[col > t]
        r = nice_threshold(float(below.max()), float(above.min())) if len(below) and len(above) else t
        walk(left, [*path, (feat, "<=", r)])
        walk(right, [*path, (feat, ">", r)])

    walk(0, [])
    leaf_of = clf.apply(X.to_numpy())
    predicted = clf.predict(X.to_numpy()).astype(int)
    seg_sizes = pd.Series(y).value_counts()
    rows = []
    for node, path in leaves.items():
        members = leaf_of == node
        support = int(members.sum())
        if support == 0:
            continue
        seg = int(predicted[members][0])
        conditions = _path_conditions(path, integer_cols)
        hits = int((y[members] == seg).sum())
        rows.append(
            {
                "segment_id": seg,
                "rule": format_rule(conditions),
                "conditions": json.dumps(conditions),
                "support": support,
                "precision": hits / support,
                "coverage": hits / int(seg_sizes.get(seg, 1)),
            }
        )
    rules = pd.DataFrame(rows, columns=["segment_id", "rule", "conditions", "support", "precision", "coverage"])
    rules = rules.sort_values(["segment_id", "support", "rule"], ascending=[True, False, True], kind="stable")
    rules["rule_rank"] = rules.groupby("segment_id").cumcount() + 1
    return RuleSet(
        rules=rules.reset_index(drop=True),
        accuracy=float(accuracy_score(y, predicted)),
        macro_recall=float(recall_score(y, predicted, average="macro", zero_division=0)),
        macro_f1=float(f1_score(y, predicted, average="macro", zero_division=0)),
        predicted=predicted,
    )


# ---------------------------------------------------------------------------------------------
# Drift
# ---------------------------------------------------------------------------------------------


def _as_date(value: Any) -> date | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def previous_snapshot(conn: Any, snapshot_date: date) -> date | None:
    """The latest published snapshot before ``snapshot_date``, or None on the first run."""
    df = read_sql(
        conn,
        "SELECT MAX(snapshot_date) AS prev FROM segmentation.segment_runs "
        "WHERE status = 'published' AND snapshot_date < :s",
        {"s": snapshot_date},
    )
    return _as_date(df["prev"].iloc[0]) if len(df) else None


def _staged_name(assignments_table: str) -> str:
    try:
        return qualified_staging(assignments_table)
    except (StagingNameError, WarehouseError) as exc:
        raise InsightError(
            f"assignments table {assignments_table!r}: must be a staging table segmentation.stg_* "
            "(columns of customer_segments_history)"
        ) from exc


def count_transitions(conn: Any, previous: date, staged: str) -> pd.DataFrame:
    """Customers per (previous segment, current segment), in SQL; NULL = not in that population."""
    sql = f"""
    SELECT p.segment_id AS from_segment_id, c.segment_id AS to_segment_id, COUNT(*) AS customers
    FROM segmentation.customer_segments_history p
    LEFT JOIN {staged} c ON c.customer_id = p.customer_id
    WHERE p.snapshot_date = :prev
    GROUP BY p.segment_id, c.segment_id
    UNION ALL
    SELECT NULL AS from_segment_id, c.segment_id AS to_segment_id, COUNT(*) AS customers
    FROM {staged} c
    WHERE NOT EXISTS (
        SELECT 1 FROM segmentation.customer_segments_history p
        WHERE p.snapshot_date = :prev AND p.customer_id = c.customer_id
    )
    GROUP BY c.segment_id
    """
    df = read_sql(conn, sql, {"prev": previous})
    for col in ("from_segment_id", "to_segment_id"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    df["customers"] = pd.to_numeric(df["customers"]).astype("int64")
    return df.sort_values(["from_segment_id", "to_segment_id"], na_position="first").reset_index(drop=True)


def _centroid(raw: Any) -> np.ndarray | None:
    try:
        c = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if not isinstance(c, dict) or set(c) != set(MODEL_FEATURES):
        return None
    return np.array([float(c[f]) for f in MODEL_FEATURES])


def compute_drift(
    current: pd.DataFrame,
    previous: pd.DataFrame,
    transitions: pd.DataFrame,
    scale: np.ndarray,
    thresholds: DriftThresholds,
) -> pd.DataFrame:
    """Per segment: size change, centroid shift, moves in/out, status and warning text.

    ``current``/``previous``: profile rows (segment_id, segment_name, size, share, centroid JSON);
    ``transitions``: from/to/customers counts; ``scale``: per-feature standard deviation used to
    express the centroid shift in standard deviations.
    """
    cur = current.set_index("segment_id")
    prev = previous.set_index("segment_id")
    t = transitions
    both = t["from_segment_id"].notna() & t["to_segment_id"].notna()
    rows = []
    for seg in sorted(set(cur.index.astype(int)) | set(prev.index.astype(int))):
        in_cur, in_prev = seg in cur.index, seg in prev.index
        name = str(cur.loc[seg, "segment_name"] if in_cur else prev.loc[seg, "segment_name"])
        size = int(cur.loc[seg, "size"]) if in_cur else 0
        share = float(cur.loc[seg, "share"]) if in_cur else 0.0
        prev_size = int(prev.loc[seg, "size"]) if in_prev else None
        prev_share = float(prev.loc[seg, "share"]) if in_prev else None
        stayed = int(t.loc[both & (t["from_segment_id"] == seg) & (t["to_segment_id"] == seg), "customers"].sum())
        moved_in = int(t.loc[both & (t["to_segment_id"] == seg) & (t["from_segment_id"] != seg), "customers"].sum())
        moved_out = int(t.loc[both & (t["from_segment_id"] == seg) & (t["to_segment_id"] != seg), "customers"].sum())
        size_change = (size - prev_size) / prev_size if prev_size else None
        moved_out_share = moved_out / prev_size if prev_size else None
        shift, top_feature = None, None
        if in_cur and in_prev:
            a, b = _centroid(cur.loc[seg, "centroid"]), _centroid(prev.loc[seg, "centroid"])
            if a is not None and b is not None:
                d = (a - b) / scale
                shift = float(np.sqrt((d**2).sum()))
                top_feature = MODEL_FEATURES[int(np.argmax(np.abs(d)))]
        reasons: list[str] = []
        if not in_prev:
            status = "new"
            reasons.append("new segment: no match in the previous snapshot")
        elif not in_cur:
            status = "gone"
            reasons.append("segment no longer present")
        else:
            if size_change is not None and abs(size_change) > thresholds.max_size_change:
                reasons.append(f"size {size_change:+.0%} (limit ±{thresholds.max_size_change:.0%})")
            if shift is not None and shift > thresholds.max_centroid_shift:
                reasons.append(
                    f"centroid moved {shift:.2f} sd, mostly {top_feature} (limit {thresholds.max_centroid_shift:.2f})"
                )
            if moved_out_share is not None and moved_out_share > thresholds.max_moved_out:
                reasons.append(f"{moved_out_share:.0%} of members moved out (limit {thresholds.max_moved_out:.0%})")
            status = "drift" if reasons else "stable"
        rows.append(
            {
                "segment_id": seg,
                "segment_name": name,
                "status": status,
                "previous_size": prev_size,
                "size": size,
                "size_change": size_change,
                "previous_share": prev_share,
                "share": share,
                "centroid_shift": shift,
                "top_shift_feature": top_feature,
                "stayed": stayed,
                "moved_in": moved_in,
                "moved_out": moved_out,
                "moved_out_share": moved_out_share,
                "warning": "; ".join(reasons) or None,
            }
        )
    out = pd.DataFrame(rows)
    if not out.empty:
        out["previous_size"] = out["previous_size"].astype("Int64")
    return out


# ---------------------------------------------------------------------------------------------
# Recommendation feed (in SQL)
# ---------------------------------------------------------------------------------------------

_ITEM_SQL = """
WITH a AS (SELECT customer_id, segment_id FROM {staged}),
lines AS (
    SELECT a.segment_id, t.customer_id, {item} AS item, t.category AS category,
           t.quantity * t.unit_price - t.discount AS net
    FROM raw.transactions t
    JOIN a ON a.customer_id = t.customer_id
    WHERE t.ordered_at >= :start AND t.ordered_at < :cutoff AND t.quantity > 0
),
seg_size AS (SELECT segment_id, COUNT(*) AS n FROM a GROUP BY segment_id),
seg_rev AS (SELECT segment_id, SUM(net) AS total FROM lines GROUP BY segment_id),
seg_item AS (
    SELECT segment_id, item, MAX(category) AS category, SUM(net) AS revenue, COUNT(DISTINCT customer_id) AS buyers
    FROM lines WHERE item IS NOT NULL GROUP BY segment_id, item
),
pop_item AS (SELECT item, SUM(net) AS revenue FROM lines WHERE item IS NOT NULL GROUP BY item),
pop_rev AS (SELECT SUM(net) AS total FROM lines),
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
    size) says how widespread the item is in the segment.
    """
    if item_type not in _ITEM_EXPR:
        raise InsightError(f"segment_top_products.item_type must be one of {sorted(_ITEM_EXPR)}, got {item_type!r}")
    sql = _ITEM_SQL.format(staged=staged, item=_ITEM_EXPR[item_type])
    df = read_sql(conn, sql, {**window.params(conn), "top_n": int(top_n), "min_buyers": int(min_buyers)})
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


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------


def _check_inputs(features: pd.DataFrame, segment_of: np.ndarray, names: dict[int, str], profiles: pd.DataFrame) -> None:
    missing = [c for c in NUMERIC_FEATURES if c not in features.columns]
    if missing:
        raise InsightError(f"features: missing column(s) {', '.join(missing)} (rule: every NUMERIC_FEATURES column)")
    if len(segment_of) != len(features):
        raise InsightError(
            f"segment_of: {len(segment_of)} ids for {len(features)} feature rows (rule: one segment id per customer)"
        )
    for col in RULE_FEATURES:
        x = features[col].to_numpy(dtype="float64")
        if not np.isfinite(x).all():
            raise InsightError(f"features.{col}: {int((~np.isfinite(x)).sum())} NaN/infinite value(s) (rule: finite)")
    unknown = sorted({int(i) for i in np.unique(segment_of)} - set(names))
    if unknown:
        raise InsightError(f"segment_of: segment id(s) {unknown} have no name (rule: every id in names)")
    if set(profiles["segment_id"].astype(int)) != set(names):
        raise InsightError("segment_profiles.segment_id: profiles and names disagree (rule: one profile per segment)")


def build_insights(
    engine: Engine,
    snapshot_date: date,
    run_id: str,
    window_days: int,
    features: pd.DataFrame,
    segment_of: np.ndarray,
    names: dict[int, str],
    profiles: pd.DataFrame,
    assignments_table: str,
    drift_thresholds: DriftThresholds | None = None,
    max_depth: int | None = None,
) -> Insights:
    """Rules with fidelity, transitions and drift against the previous published snapshot, the
    recommendation feed, and enriched profiles for one snapshot (see the module docstring)."""
    from include.segmentation.explain.profiles import describe_segment

    _check_inputs(features, segment_of, names, profiles)
    thresholds = drift_thresholds or DriftThresholds.from_env()
    max_depth = max_depth if max_depth is not None else rules_max_depth()
    staged = _staged_name(assignments_table)
    s_iso = snapshot_date.isoformat()
    segment_of = np.asarray(segment_of).astype(int)

    # Rules
    ruleset = fit_rules(features, segment_of, max_depth=max_depth)
    rules = ruleset.rules.assign(
        snapshot_date=s_iso, segment_name=ruleset.rules["segment_id"].map(names), run_id=run_id
    )[COLUMNS["rules"]]
    uncovered = sorted(set(names) - set(rules["segment_id"]))
    warnings: list[str] = []
    if uncovered:
        log.info("rules: no leaf of the depth-%s tree predicts segment(s) %s", max_depth, uncovered)

    window = Window(snapshot_date, window_days)
    with engine.connect() as conn:
        previous = previous_snapshot(conn, snapshot_date)
        categories = top_items(conn, staged, window, "category")
        products = top_items(conn, staged, window, "product")
        if previous is not None:
            moves = count_transitions(conn, previous, staged)
            prev_profiles = read_sql(
                conn,
                "SELECT segment_id, segment_name, size, share, centroid FROM segmentation.segment_profiles "
                "WHERE snapshot_date = :p",
                {"p": previous},
            )
            prev_names = read_sql(
                conn,
                "SELECT DISTINCT segment_id, segment_name FROM segmentation.customer_segments_history "
                "WHERE snapshot_date = :p",
                {"p": previous},
            )

    # Recommendation feed
    top = pd.concat([categories, products], ignore_index=True)
    top = top.assign(snapshot_date=s_iso, segment_name=top["segment_id"].map(names), run_id=run_id)[
        COLUMNS["top_products"]
    ]

    # Transitions and drift
    if previous is None:
        transitions = pd.DataFrame(columns=COLUMNS["transitions"])
        drift = pd.DataFrame(columns=COLUMNS["drift"])
    else:
        prev_name_of = {int(r.segment_id): str(r.segment_name) for r in prev_names.itertuples(index=False)}
        prev_name_of.update({int(r.segment_id): str(r.segment_name) for r in prev_profiles.itertuples(index=False)})
        prev_size_of = {int(r.segment_id): int(r.size) for r in prev_profiles.itertuples(index=False)}
        transitions = moves.assign(
            snapshot_date=s_iso,
            previous_snapshot_date=previous.isoformat(),
            from_segment_name=moves["from_segment_id"].map(lambda i: None if pd.isna(i) else prev_name_of.get(int(i))),
            to_segment_name=moves["to_segment_id"].map(lambda i: None if pd.isna(i) else names.get(int(i))),
            share_of_from=[
                None if pd.isna(f) or not prev_size_of.get(int(f)) else n / prev_size_of[int(f)]
                for f, n in zip(moves["from_segment_id"], moves["customers"], strict=True)
            ],
            run_id=run_id,
        )[COLUMNS["transitions"]]
        transitions["share_of_from"] = transitions["share_of_from"].astype("float64")
        scale = transform_for_model(features).std(ddof=0).to_numpy()
        scale = np.where(scale > 0, scale, 1.0)
        prev_profiles["size"] = pd.to_numeric(prev_profiles["size"]).astype("int64")
        prev_profiles["share"] = pd.to_numeric(prev_profiles["share"]).astype("float64")
        drift = compute_drift(profiles, prev_profiles, moves, scale, thresholds)
        drift = drift.assign(snapshot_date=s_iso, previous_snapshot_date=previous.isoformat(), run_id=run_id)[
            COLUMNS["drift"]
        ]
        for row in drift.itertuples(index=False):
            if isinstance(row.warning, str) and row.warning:
                msg = f"drift in segment {row.segment_id} ({row.segment_name}) since {previous}: {row.warning}"
                warnings.append(msg)
                log.warning(msg)
        moved = int(drift["moved_out"].sum())
        log.info("drift: %s customers changed segment since %s; %s warning(s)", moved, previous, len(warnings))

    # Profiles: top categories and a description that uses them
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

    run_fields = {
        "rules_accuracy": round(ruleset.accuracy, 6),
        "rules_macro_recall": round(ruleset.macro_recall, 6),
        "rules_macro_f1": round(ruleset.macro_f1, 6),
    }
    log.info(
        "rules: %s rules, fidelity accuracy %.3f, macro recall %.3f, macro F1 %.3f",
        len(rules), ruleset.accuracy, ruleset.macro_recall, ruleset.macro_f1,
    )
    tables = {"rules": rules, "transitions": transitions, "drift": drift, "top_products": top}
    return Insights(tables=tables, profiles=enriched[list(profiles.columns)], run_fields=run_fields, warnings=warnings)
