"""The fitted model as data: everything needed to assign a customer, as JSON, without the fitting run.

A daily run stores its model in ``segmentation.segment_models`` (one row per snapshot). From that
JSON alone, ``PersistedModel.assign`` gives any customer's segment exactly as the run did:

1. the model features (``features``) of ``build_features``' output, transformed as named in
   ``transforms`` (``log1p``, ``signed_log1p``, ``none``: the definitions of ``model.features``;
   a model whose features or transforms differ from this code's is refused, never reinterpreted);
2. standardised with the run's scaler (``scaler.mean``, ``scaler.scale``) and multiplied by the
   run's effective weights (``weights``);
3. nearest centroid in that model space (``segments[].center_model``), Euclidean; the segment's
   stable id and name come with it;
4. confidence: softmax over ``-d^2 / (2 * bandwidth)`` across all centroids (the run's Gaussian
   kernel, ``confidence.bandwidth`` = the training population's mean squared distance to its own
   centroid);
5. outlier: distance to the nearest centroid above that segment's ``outlier_threshold`` (Q3 + 3 IQR
   of the training members' distances). The run also flags members of micro-segments it set aside
   (and DBSCAN noise with ``outlier_method="dbscan"``); a new customer is judged by the distance
   rule alone (``outliers.rule``).

Ties between two equally near centroids go to the first in ``segments`` order (the run's cluster
order), as in k-means. ``centers_raw`` (transformed, unscaled) is stored for reading only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from include.segmentation.model.clustering import ClusterResult, soft_membership
from include.segmentation.model.features import FEATURES, MODEL_FEATURES, transform_for_model

FORMAT_VERSION = 1
OUTLIER_IQR_FACTOR = 3.0


class ModelMismatchError(ValueError):
    """The stored model uses features or transforms this code does not define the same way."""


@dataclass(frozen=True)
class PersistedModel:
    """A fitted segmentation model, complete enough to assign customers; ``to_json``/``from_json`` round-trip it."""

    snapshot_date: str
    run_id: str
    features: tuple[str, ...]
    transforms: dict[str, str]
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    weights: np.ndarray
    centers_model: np.ndarray  # k x d, standardised and weighted space
    centers_raw: np.ndarray  # k x d, transformed but unscaled space
    segment_ids: tuple[int, ...]
    segment_names: tuple[str, ...]
    outlier_thresholds: np.ndarray  # per segment, distance in model space
    bandwidth: float
    window_days: int
    algorithm: str = "kmeans"
    outlier_method: str = "distance"
    effective_weights: dict[str, float] = field(default_factory=dict)
    lifetime_model: dict[str, Any] | None = None

    @property
    def k(self) -> int:
        return len(self.segment_ids)

    def to_json(self) -> str:
        """The model as a JSON document (floats written exactly: ``json`` round-trips float64).

        Only what the data determines: the run id lives in the row beside it, so re-running a date
        writes the same document."""
        doc = {
            "format": FORMAT_VERSION,
            "snapshot_date": self.snapshot_date,
            "algorithm": self.algorithm,
            "window_days": self.window_days,
            "features": list(self.features),
            "transforms": dict(self.transforms),
            "scaler": {"mean": _floats(self.scaler_mean), "scale": _floats(self.scaler_scale)},
            "weights": _floats(self.weights),
            "effective_weights": dict(self.effective_weights),
            "confidence": {"method": "gaussian_softmax", "bandwidth": float(self.bandwidth)},
            "outliers": {
                "method": self.outlier_method,
                "rule": f"distance to the nearest centroid > Q3 + {OUTLIER_IQR_FACTOR:g} IQR of that segment's "
                        "training distances (outlier_threshold)",
            },
            "segments": [
                {
                    "segment_id": int(self.segment_ids[c]),
                    "segment_name": self.segment_names[c],
                    "center_model": _floats(self.centers_model[c]),
                    "center_raw": _floats(self.centers_raw[c]),
                    "outlier_threshold": float(self.outlier_thresholds[c]),
                }
                for c in range(self.k)
            ],
            "lifetime_model": self.lifetime_model,
        }
        return json.dumps(doc, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> PersistedModel:
        """Read a model written by ``to_json``; raises ``ModelMismatchError`` for an unknown format."""
        doc = json.loads(text) if isinstance(text, str) else text
        if doc.get("format") != FORMAT_VERSION:
            raise ModelMismatchError(f"segment model format {doc.get('format')!r} is not {FORMAT_VERSION}")
        segs = doc["segments"]
        return cls(
            snapshot_date=str(doc["snapshot_date"]),
            run_id=str(doc.get("run_id", "")),
            features=tuple(doc["features"]),
            transforms=dict(doc["transforms"]),
            scaler_mean=np.array(doc["scaler"]["mean"], dtype="float64"),
            scaler_scale=np.array(doc["scaler"]["scale"], dtype="float64"),
            weights=np.array(doc["weights"], dtype="float64"),
            centers_model=np.array([s["center_model"] for s in segs], dtype="float64"),
            centers_raw=np.array([s["center_raw"] for s in segs], dtype="float64"),
            segment_ids=tuple(int(s["segment_id"]) for s in segs),
            segment_names=tuple(str(s["segment_name"]) for s in segs),
            outlier_thresholds=np.array([s["outlier_threshold"] for s in segs], dtype="float64"),
            bandwidth=float(doc["confidence"]["bandwidth"]),
            window_days=int(doc["window_days"]),
            algorithm=str(doc.get("algorithm", "kmeans")),
            outlier_method=str(doc["outliers"]["method"]),
            effective_weights={str(k): float(v) for k, v in (doc.get("effective_weights") or {}).items()},
            lifetime_model=doc.get("lifetime_model"),
        )

    def check_definitions(self) -> None:
        """Refuse a model whose features or transforms are not this code's (a release changed them)."""
        current = {f.name: f.transform for f in FEATURES if f.model}
        unknown = [f for f in self.features if f not in current]
        changed = [f for f in self.features if f in current and current[f] != self.transforms.get(f)]
        if unknown or changed:
            raise ModelMismatchError(
                f"model of {self.snapshot_date} was fitted with other feature definitions (unknown: {unknown}, "
                f"transform changed: {changed}); the next daily run publishes a model this code can apply"
            )

    def model_space(self, features: pd.DataFrame) -> np.ndarray:
        """Customers' position in model space: transformed, standardised, weighted (rows = ``features``' rows)."""
        self.check_definitions()
        X = transform_for_model(features)[list(self.features)].to_numpy(dtype="float64")
        if not np.isfinite(X).all():
            bad = [f for i, f in enumerate(self.features) if not np.isfinite(X[:, i]).all()]
            raise ValueError(f"features contain NaN or infinite values: {', '.join(bad)}")
        return (X - self.scaler_mean) / self.scaler_scale * self.weights

    def assign(self, features: pd.DataFrame) -> pd.DataFrame:
        """Segment, distance, confidence and outlier flag for each row of ``features`` (``build_features`` output).

        Returns a frame with ``features``' index and columns segment_id, segment_name, distance,
        confidence, is_outlier.
        """
        if features.empty:
            return pd.DataFrame(
                {"segment_id": pd.Series(dtype="int64"), "segment_name": pd.Series(dtype=object),
                 "distance": pd.Series(dtype="float64"), "confidence": pd.Series(dtype="float64"),
                 "is_outlier": pd.Series(dtype=bool)},
                index=features.index,
            )
        Z = self.model_space(features)
        sq = np.zeros((len(Z), self.k))
        for c in range(self.k):  # one centroid at a time: memory stays O(rows x k)
            sq[:, c] = ((Z - self.centers_model[c]) ** 2).sum(axis=1)
        label = sq.argmin(axis=1)
        rows = np.arange(len(Z))
        distance = np.sqrt(sq[rows, label])
        p = soft_membership(sq, self.bandwidth)
        ids = np.asarray(self.segment_ids, dtype="int64")
        names = np.asarray(self.segment_names, dtype=object)
        return pd.DataFrame(
            {
                "segment_id": ids[label],
                "segment_name": names[label],
                "distance": distance,
                "confidence": p[rows, label],
                "is_outlier": distance > self.outlier_thresholds[label],
            },
            index=features.index,
        )


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype="float64").ravel()]


def outlier_thresholds(distance: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per cluster: Q3 + 3 IQR of its members' distances (the run's distance outlier rule)."""
    out = np.full(k, np.inf)
    for c in range(k):
        d = distance[labels == c]
        if len(d):
            q1, q3 = np.percentile(d, [25, 75])
            out[c] = q3 + OUTLIER_IQR_FACTOR * (q3 - q1)
    return out


def from_fit(
    result: ClusterResult,
    ids: list[int],
    names: dict[int, str],
    *,
    snapshot_date: str,
    run_id: str,
    window_days: int,
    effective_weights: dict[str, float] | None = None,
    lifetime_model: dict[str, Any] | None = None,
    outlier_method: str = "distance",
    features: tuple[str, ...] = MODEL_FEATURES,
) -> PersistedModel:
    """The persisted form of a fit: ``ids[c]`` is cluster c's stable id, ``names`` id -> name."""
    own_sq = result.distance**2
    transforms = {f.name: f.transform for f in FEATURES if f.model}
    return PersistedModel(
        snapshot_date=snapshot_date,
        run_id=run_id,
        features=tuple(features),
        transforms={f: transforms[f] for f in features},
        scaler_mean=np.asarray(result.scaler_mean, dtype="float64"),
        scaler_scale=np.asarray(result.scaler_scale, dtype="float64"),
        weights=np.asarray(result.weights, dtype="float64"),
        centers_model=np.asarray(result.centers_scaled, dtype="float64"),
        centers_raw=np.asarray(result.centers_raw, dtype="float64"),
        segment_ids=tuple(int(i) for i in ids),
        segment_names=tuple(names[int(i)] for i in ids),
        outlier_thresholds=outlier_thresholds(result.distance, result.labels, result.k),
        bandwidth=max(float(own_sq.mean()), 1e-9) if len(own_sq) else 1e-9,
        window_days=int(window_days),
        algorithm=result.algorithm,
        outlier_method=outlier_method,
        effective_weights={str(k): float(v) for k, v in (effective_weights or {}).items()},
        lifetime_model=lifetime_model,
    )
