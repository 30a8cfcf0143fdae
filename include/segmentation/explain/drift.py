"""Transitions and drift: how this snapshot's segments compare with the previous published snapshot.

- ``segment_transitions``: how many customers moved from segment i (previous snapshot) to segment
  j (this one), counted in SQL; NULL ``from_segment_id``/``to_segment_id`` = entered/left the
  population.
- ``segment_drift``: per segment, size change, centroid shift (in standard deviations of the model
  features) and moved-out share; above ``DriftThresholds`` it is a warning (logged, returned by
  ``drift_warnings`` and stored in the row).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from include.segmentation.explain.common import InsightError, as_date, has_text
from include.segmentation.model import MODEL_FEATURES, transform_for_model
from include.segmentation.store import read_sql

log = logging.getLogger("include.segmentation")


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

    def breaches(
        self, size_change: float | None, shift: float | None, top_feature: str | None, moved_out_share: float | None
    ) -> list[str]:
        """Why a segment present in both snapshots drifted (empty: stable), one phrase per threshold crossed."""
        reasons: list[str] = []
        if size_change is not None and abs(size_change) > self.max_size_change:
            reasons.append(f"size {size_change:+.0%} (limit ±{self.max_size_change:.0%})")
        if shift is not None and shift > self.max_centroid_shift:
            reasons.append(f"centroid moved {shift:.2f} sd, mostly {top_feature} (limit {self.max_centroid_shift:.2f})")
        if moved_out_share is not None and moved_out_share > self.max_moved_out:
            reasons.append(f"{moved_out_share:.0%} of members moved out (limit {self.max_moved_out:.0%})")
        return reasons


@dataclass
class PreviousSnapshot:
    """The previous published snapshot, as drift and transitions need it."""

    snapshot_date: date
    moves: pd.DataFrame  # from_segment_id, to_segment_id, customers (see ``count_transitions``)
    profiles: pd.DataFrame  # segment_id, segment_name, size, share, centroid
    names: dict[int, str]  # segment id -> name in that snapshot


def previous_snapshot(conn: Any, snapshot_date: date) -> date | None:
    """The latest published snapshot before ``snapshot_date``, or None on the first run."""
    df = read_sql(
        conn,
        "SELECT MAX(snapshot_date) AS prev FROM segmentation.segment_runs "
        "WHERE status = 'published' AND snapshot_date < :s",
        {"s": snapshot_date},
    )
    return as_date(df["prev"].iloc[0]) if len(df) else None


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


def read_previous(conn: Any, previous: date, staged: str) -> PreviousSnapshot:
    """Moves since ``previous`` (to the staged assignments), its profiles and its segment names."""
    moves = count_transitions(conn, previous, staged)
    profiles = read_sql(
        conn,
        "SELECT segment_id, segment_name, size, share, centroid FROM segmentation.segment_profiles "
        "WHERE snapshot_date = :p",
        {"p": previous},
    )
    history = read_sql(
        conn,
        "SELECT DISTINCT segment_id, segment_name FROM segmentation.customer_segments_history "
        "WHERE snapshot_date = :p",
        {"p": previous},
    )
    names = {int(r.segment_id): str(r.segment_name) for r in history.itertuples(index=False)}
    names.update({int(r.segment_id): str(r.segment_name) for r in profiles.itertuples(index=False)})
    profiles["size"] = pd.to_numeric(profiles["size"]).astype("int64")
    profiles["share"] = pd.to_numeric(profiles["share"]).astype("float64")
    return PreviousSnapshot(snapshot_date=previous, moves=moves, profiles=profiles, names=names)


def name_transitions(previous: PreviousSnapshot, names: dict[int, str]) -> pd.DataFrame:
    """The moves with segment names on both sides and ``share_of_from`` (share of the previous segment)."""
    moves = previous.moves
    size_of = {int(r.segment_id): int(r.size) for r in previous.profiles.itertuples(index=False)}
    out = moves.assign(
        from_segment_name=moves["from_segment_id"].map(lambda i: None if pd.isna(i) else previous.names.get(int(i))),
        to_segment_name=moves["to_segment_id"].map(lambda i: None if pd.isna(i) else names.get(int(i))),
        share_of_from=[
            None if pd.isna(f) or not size_of.get(int(f)) else n / size_of[int(f)]
            for f, n in zip(moves["from_segment_id"], moves["customers"], strict=True)
        ],
    )
    out["share_of_from"] = out["share_of_from"].astype("float64")
    return out


def feature_scale(features: pd.DataFrame) -> np.ndarray:
    """Per model feature, the population's standard deviation (1 where constant): the unit of centroid shift."""
    scale = transform_for_model(features).std(ddof=0).to_numpy()
    return np.where(scale > 0, scale, 1.0)


def _centroid(raw: Any) -> np.ndarray | None:
    """A profile's centroid JSON as a vector in ``MODEL_FEATURES`` order; None if unreadable."""
    try:
        c = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if not isinstance(c, dict) or set(c) != set(MODEL_FEATURES):
        return None
    return np.array([float(c[f]) for f in MODEL_FEATURES])


def _centroid_shift(a_raw: Any, b_raw: Any, scale: np.ndarray) -> tuple[float | None, str | None]:
    """Distance between two centroids in standard deviations, and the feature that moved most."""
    a, b = _centroid(a_raw), _centroid(b_raw)
    if a is None or b is None:
        return None, None
    d = (a - b) / scale
    return float(np.sqrt((d**2).sum())), MODEL_FEATURES[int(np.argmax(np.abs(d)))]


def _moves(known: pd.DataFrame, seg: int) -> tuple[int, int, int]:
    """Customers who stayed in, moved into and moved out of ``seg`` (``known``: both ends set)."""
    src, dst, n = known["from_segment_id"], known["to_segment_id"], known["customers"]
    stayed = int(n[(src == seg) & (dst == seg)].sum())
    moved_in = int(n[(dst == seg) & (src != seg)].sum())
    moved_out = int(n[(src == seg) & (dst != seg)].sum())
    return stayed, moved_in, moved_out


def _drift_row(
    seg: int, cur: pd.DataFrame, prev: pd.DataFrame, known: pd.DataFrame, scale: np.ndarray, thresholds: DriftThresholds
) -> dict[str, Any]:
    """One ``segment_drift`` row (without snapshot and run columns) for segment ``seg``."""
    in_cur, in_prev = seg in cur.index, seg in prev.index
    size = int(cur.loc[seg, "size"]) if in_cur else 0
    prev_size = int(prev.loc[seg, "size"]) if in_prev else None
    stayed, moved_in, moved_out = _moves(known, seg)
    size_change = (size - prev_size) / prev_size if prev_size else None
    moved_out_share = moved_out / prev_size if prev_size else None
    shift, top_feature = None, None
    if in_cur and in_prev:
        shift, top_feature = _centroid_shift(cur.loc[seg, "centroid"], prev.loc[seg, "centroid"], scale)
    if not in_prev:
        status, reasons = "new", ["new segment: no match in the previous snapshot"]
    elif not in_cur:
        status, reasons = "gone", ["segment no longer present"]
    else:
        reasons = thresholds.breaches(size_change, shift, top_feature, moved_out_share)
        status = "drift" if reasons else "stable"
    return {
        "segment_id": seg,
        "segment_name": str(cur.loc[seg, "segment_name"] if in_cur else prev.loc[seg, "segment_name"]),
        "status": status,
        "previous_size": prev_size,
        "size": size,
        "size_change": size_change,
        "previous_share": float(prev.loc[seg, "share"]) if in_prev else None,
        "share": float(cur.loc[seg, "share"]) if in_cur else 0.0,
        "centroid_shift": shift,
        "top_shift_feature": top_feature,
        "stayed": stayed,
        "moved_in": moved_in,
        "moved_out": moved_out,
        "moved_out_share": moved_out_share,
        "warning": "; ".join(reasons) or None,
    }


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
    known = t[t["from_segment_id"].notna() & t["to_segment_id"].notna()]
    segments = sorted(set(cur.index.astype(int)) | set(prev.index.astype(int)))
    out = pd.DataFrame([_drift_row(seg, cur, prev, known, scale, thresholds) for seg in segments])
    if not out.empty:
        out["previous_size"] = out["previous_size"].astype("Int64")
    return out


def drift_warnings(drift: pd.DataFrame, previous: date) -> list[str]:
    """One message per segment whose drift is a warning, each logged; the moves are logged too."""
    warnings: list[str] = []
    for row in drift.itertuples(index=False):
        if has_text(row.warning):
            msg = f"drift in segment {row.segment_id} ({row.segment_name}) since {previous}: {row.warning}"
            warnings.append(msg)
            log.warning(msg)
    moved = int(drift["moved_out"].sum())
    log.info("drift: %s customers changed segment since %s; %s warning(s)", moved, previous, len(warnings))
    return warnings
