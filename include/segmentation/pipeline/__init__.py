"""The daily segmentation run as plain functions, one per Airflow task, and ``run_pipeline`` for all.

Stages hand each other small typed records (``types``): run context, staging table names, scores;
so the DAG passes them through XCom and the same code runs without Airflow (CLI, tests). Each stage
records its failure in ``segmentation.segment_runs`` before re-raising, so a run that stops is
visible as failed_validation, rejected or failed, and nothing is published.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine

from include.segmentation.pipeline.explain import explain_stage, report_stage
from include.segmentation.pipeline.ingest import extract_stage, features_stage, validate_stage
from include.segmentation.pipeline.publish import gate_stage, publish_stage
from include.segmentation.pipeline.run import (
    EmptyWindowError,
    ModelRejectedError,
    make_run_id,
    pending_earlier_runs,
    start_run,
)
from include.segmentation.pipeline.segment import cluster_stage
from include.segmentation.pipeline.types import (
    ClusterResult,
    ExplainResult,
    ExtractResult,
    FeaturesResult,
    GateResult,
    PublishResult,
    RunContext,
    ValidationResult,
)


def run_pipeline(
    engine: Engine, snapshot_date: date, params: dict[str, Any] | None = None, validate: bool = True
) -> dict[str, Any]:
    """Run every stage in order for one snapshot date (what the DAG does, without Airflow)."""
    run = start_run(engine, snapshot_date, params)
    if validate:
        validate_stage(engine, run)
    extracted = extract_stage(engine, run)
    featured = features_stage(engine, run, extracted)
    clustered = cluster_stage(engine, run, featured)
    explained = explain_stage(engine, run, clustered)
    gate = gate_stage(engine, run, clustered)
    published = publish_stage(engine, run, clustered, explained, gate)
    return {
        "run_id": run["run_id"],
        **published,
        "scores": clustered["scores"],
        "shares": clustered["shares"],
        "names": clustered["names"],
    }


__all__ = [
    "ClusterResult",
    "EmptyWindowError",
    "ExplainResult",
    "ExtractResult",
    "FeaturesResult",
    "GateResult",
    "ModelRejectedError",
    "PublishResult",
    "RunContext",
    "ValidationResult",
    "cluster_stage",
    "explain_stage",
    "extract_stage",
    "features_stage",
    "gate_stage",
    "make_run_id",
    "pending_earlier_runs",
    "publish_stage",
    "report_stage",
    "run_pipeline",
    "start_run",
    "validate_stage",
]
