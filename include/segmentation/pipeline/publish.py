"""The last stages: the quality gate refuses a weak model; publish makes the snapshot current atomically."""

from __future__ import annotations

import json
import logging

import pandas as pd
from sqlalchemy import Engine, text

from include.segmentation.model import quality_gate
from include.segmentation.model.clustering import ClusterResult as FittedSegments
from include.segmentation.model.persisted import PersistedModel, from_fit
from include.segmentation.pipeline.run import (
    ModelRejectedError,
    RunClosedError,
    drop_run_tables,
    guard,
    snapshot_of,
    staging_key,
)
from include.segmentation.pipeline.types import ClusterResult, ExplainResult, GateResult, PublishResult, RunContext
from include.segmentation.quality import validate_output
from include.segmentation.store import (
    drop_staging,
    mark_run,
    publish_snapshot,
    read_staging,
    staging_table,
    write_staging,
)
from include.segmentation.store.publish import PublishRefused
from include.segmentation.store.run_log import get_run
from include.segmentation.store.schema import segment_models
from include.segmentation.store.staging import qualified

log = logging.getLogger("include.segmentation")


def gate_stage(engine: Engine, run: RunContext, clustered: ClusterResult) -> GateResult:
    """Refuse to publish a weak model (recorded as 'rejected'), then check the staged output."""
    p = run["params"]
    shares = {int(k): v for k, v in clustered["shares"].items()}
    gate = quality_gate(clustered["scores"], shares, p["min_silhouette"], p["min_segment_share"])
    if not gate.passed:
        message = "model rejected: " + "; ".join(gate.reasons)
        mark_run(engine, run["run_id"], "rejected", message)
        drop_run_tables(engine, run["run_id"])
        raise ModelRejectedError(message)

    def output_checks() -> None:
        staged = read_staging(engine, clustered["assignments_table"], ["customer_id", "segment_id"])
        population = read_staging(engine, clustered["features_table"], ["customer_id"])["customer_id"]
        validate_output(
            engine,
            staged.set_index("customer_id")[["segment_id"]],
            pd.Index(population),
            snapshot_of(run),
            run["run_id"],
        )

    guard(engine, run, "gate", output_checks)
    return {"passed": True}


def staged_tables(clustered: ClusterResult, explained: ExplainResult) -> dict[str, str]:
    """Every staging table of the run by kind: what publish copies into the published tables."""
    model = {"model": clustered["model_table"]} if clustered.get("model_table") else {}
    return {
        "assignments": clustered["assignments_table"],
        "features": clustered["features_table"],
        **model,
        **explained["staged"],
    }


def stage_model(
    engine: Engine, run: RunContext, result: FittedSegments, ids: list[int], names: dict[int, str],
    weights: dict[str, float],
) -> str:
    """Stage the fitted model as JSON (``model/persisted.py``) for ``segment_models``; published with the
    snapshot, so anything can assign customers later without this run's Python state."""
    row = get_run(engine, run["run_id"]) or {}
    lifetime = row.get("lifetime_model")
    model = from_fit(
        result, ids, names, snapshot_date=run["snapshot_date"], run_id=run["run_id"],
        window_days=int(run["params"]["window_days"]), effective_weights=weights,
        lifetime_model=json.loads(lifetime) if isinstance(lifetime, str) and lifetime else None,
        outlier_method=str(run["params"].get("outlier_method", "distance")),
    )
    frame = pd.DataFrame(
        [{"snapshot_date": run["snapshot_date"], "run_id": run["run_id"], "k": model.k, "model": model.to_json()}]
    )
    return write_staging(engine, "model", snapshot_of(run), segment_models, frame, staging_key(run))


def published_model(engine: Engine) -> PersistedModel | None:
    """The model of the snapshot ``customer_segments`` shows (the newest published), or None."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT m.model FROM segmentation.segment_models m "
                "WHERE m.snapshot_date = (SELECT MAX(snapshot_date) FROM segmentation.customer_segments)"
            )
        ).first()
    return PersistedModel.from_json(str(row[0])) if row is not None else None


def publish_stage(
    engine: Engine, run: RunContext, clustered: ClusterResult, explained: ExplainResult, gate: GateResult
) -> PublishResult:
    """Publish the staged snapshot in one transaction, then drop the run's staging tables.

    Serialised per warehouse; the later-started attempt of a date wins: an earlier attempt that gets
    here after it ends 'superseded' (RunClosedError, not retried), its staging tables dropped."""

    def go() -> PublishResult:
        if not gate["passed"]:
            raise ModelRejectedError("the quality gate did not pass; nothing to publish")
        s = snapshot_of(run)
        staged = staged_tables(clustered, explained)
        message = "; ".join([*clustered["notes"], *explained["notes"]]) or None
        try:
            out = publish_snapshot(engine, s, run["run_id"], staged, {"message": message})
        except PublishRefused as exc:  # a newer attempt of the date wins (or this run was closed)
            if exc.status == "superseded":
                mark_run(engine, run["run_id"], "superseded", str(exc)[:4000])
            drop_run_tables(engine, run["run_id"])
            log.warning("publish refused: %s", exc)
            raise RunClosedError(str(exc)) from exc
        with engine.begin() as conn:
            drop_staging(conn, [*staged.values(), qualified(staging_table("aggregates", s, staging_key(run)))])
        drop_run_tables(engine, run["run_id"])  # and any other stg_*_<key> the run left
        log.info("publish: %s (current=%s) %s", out["snapshot_date"], out["current"], out["rows"])
        return PublishResult(snapshot_date=out["snapshot_date"], current=out["current"], rows=out["rows"])

    return guard(engine, run, "publish", go)
