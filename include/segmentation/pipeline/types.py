"""What the stages hand each other: small, JSON-serialisable, typed records (never DataFrames).

They travel through Airflow's XCom as plain dicts, so they are TypedDicts: a type checker sees every
key, and Airflow needs no custom serialiser.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class RunContext(TypedDict):
    """Every stage's first argument: which attempt, which snapshot date, with which parameters."""

    run_id: str
    snapshot_date: str  # ISO date S: the run reads data before S 00:00 UTC
    params: dict[str, Any]  # resolved by include.segmentation.params.resolve_params


class ValidationResult(TypedDict):
    checks: int
    warnings: list[str]  # names of checks that failed with severity 'warning'


class ExtractResult(TypedDict):
    aggregates_table: str  # segmentation.stg_aggregates_<S>
    population: int
    excluded_guest_lines: int
    excluded_anonymous_events: int
    window_start: str
    cutoff: str


class FeaturesResult(TypedDict):
    features_table: str  # segmentation.stg_features_<S>
    population: int
    notes: NotRequired[list[str]]  # e.g. why the lifetime model was not fitted


class ClusterResult(TypedDict):
    assignments_table: str  # segmentation.stg_assignments_<S>
    features_table: str
    scores: dict[str, Any]  # silhouette, davies_bouldin, calinski_harabasz, k, algorithm, outliers, ...
    shares: dict[str, float]  # segment id -> share of customers
    names: dict[str, str]  # segment id -> name
    centroids: dict[str, dict[str, float]]  # segment id -> model feature -> centre (transformed, unscaled)
    name_fidelity: dict[str, float]  # segment id -> share of members meeting the definition of its name
    model_table: NotRequired[str]  # segmentation.stg_model_<S>: the fitted model as JSON (segment_models)
    stability: NotRequired[dict[str, float]]  # segment id -> mean bootstrap Jaccard (model/stability.py)
    notes: list[str]


class ExplainResult(TypedDict):
    staged: dict[str, str]  # kind (profiles, rules, transitions, drift, top_products) -> staging table
    notes: list[str]


class GateResult(TypedDict):
    passed: bool


class PublishResult(TypedDict):
    snapshot_date: str
    current: bool  # True when customer_segments now shows this snapshot
    rows: dict[str, int]  # published table -> rows written


class LiveResult(TypedDict):
    """One live assignment (``pipeline/live.py``): what it did, or why it did nothing."""

    status: str  # 'assigned', or 'skipped' (nothing published, a publish in progress, no activity)
    reason: str
    assigned_at: str  # ISO UTC: data up to this instant
    as_of_date: str | None  # D: features as the daily run of D would compute them
    model_snapshot_date: str | None
    customers: int  # rows written to customer_segments_live
    new_customers: int  # of those, customers customer_segments_now did not show before
    changed_segment: int  # of those, customers whose segment differs from what customer_segments_now showed
    changed_membership: int  # of those, new customers or a changed segment or outlier flag: audiences may change
    pruned: int  # live rows dropped because a daily snapshot has since superseded them
    outliers: int
    seconds: dict[str, float]
