"""The explain stage: profiles, rules, drift and transitions, top products of the clustered segments.

It runs between clustering and the quality gate, reads only the run's staging tables, and stages
its own tables for the same atomic publish.
"""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
from sqlalchemy import Engine

from include.segmentation.explain import build_insights, build_profiles, render_report
from include.segmentation.explain.feeds import build_feeds, stage_feeds
from include.segmentation.pipeline.run import guard, snapshot_of, staging_key
from include.segmentation.pipeline.segment import load_features
from include.segmentation.pipeline.types import ClusterResult, ExplainResult, PublishResult, RunContext
from include.segmentation.store import INSIGHT_TABLES, mark_run, read_staging, segment_profiles, write_staging

log = logging.getLogger("include.segmentation")


def explain_stage(engine: Engine, run: RunContext, clustered: ClusterResult) -> ExplainResult:
    """Describe each segment and how it relates to the previous snapshot; stage the results."""

    def go() -> ExplainResult:
        s = snapshot_of(run)
        features = load_features(engine, clustered["features_table"])
        assigned = read_staging(engine, clustered["assignments_table"], ["customer_id", "segment_id"])
        segment_of = (
            assigned.set_index("customer_id")["segment_id"].reindex(features.index.astype(str)).to_numpy().astype(int)
        )
        names = {int(k): v for k, v in clustered["names"].items()}
        centroids = {int(k): v for k, v in clustered["centroids"].items()}
        profiles = build_profiles(
            features, segment_of, names, centroids, s, run["run_id"], window_days=run["params"]["window_days"],
            name_fidelity={int(k): float(v) for k, v in clustered.get("name_fidelity", {}).items()},
            stability={int(k): float(v) for k, v in clustered.get("stability", {}).items()},
        )
        insights = build_insights(
            engine, s, run["run_id"], run["params"]["window_days"], features, np.asarray(segment_of), names, profiles,
            clustered["assignments_table"],
        )
        staged = {kind: write_staging(engine, kind, s, INSIGHT_TABLES[kind], frame, staging_key(run)) for kind, frame in insights.tables.items()}
        staged["profiles"] = write_staging(engine, "profiles", s, segment_profiles, insights.profiles, staging_key(run))
        feeds = build_feeds(engine, s, run["run_id"], run["params"]["window_days"], clustered["assignments_table"], names)
        staged.update(stage_feeds(engine, s, feeds, staging_key(run)))
        mark_run(engine, run["run_id"], "running", **dict(insights.run_fields))
        return {"staged": staged, "notes": list(insights.warnings)}

    return guard(engine, run, "explain", go)


def report_stage(engine: Engine, run: RunContext, published: PublishResult) -> str:
    """Render the published snapshot's self-contained HTML report; returns its path."""
    path = render_report(engine, date.fromisoformat(published["snapshot_date"]))
    log.info("segment report: %s", path)
    return str(path)
