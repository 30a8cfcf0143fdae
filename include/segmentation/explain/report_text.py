"""Plain-text summary of the published segments, for terminals and the demo."""

from __future__ import annotations

import json

from sqlalchemy import Engine

from include.segmentation.explain.report_format import is_missing
from include.segmentation.store import read_sql, table_exists


def segments_summary(engine: Engine) -> str:
    """The current snapshot: run scores and one line per segment (size, share, key medians)."""
    if not table_exists(engine, "segmentation", "customer_segments"):
        return "no segments published yet"
    with engine.connect() as conn:
        current = read_sql(conn, "SELECT MAX(snapshot_date) AS s FROM segmentation.customer_segments")["s"].iloc[0]
        if current is None:
            return "no segments published yet"
        run = read_sql(
            conn,
            "SELECT * FROM segmentation.segment_runs WHERE status = 'published' AND snapshot_date = :s",
            {"s": current},
        ).iloc[0]
        profiles = read_sql(
            conn,
            "SELECT segment_id, segment_name, size, share, feature_medians, description "
            "FROM segmentation.segment_profiles WHERE snapshot_date = :s ORDER BY size DESC",
            {"s": current},
        )
    lines = [
        f"Snapshot {str(current)[:10]}  run {run['run_id']}  customers {int(run['population']):,}  "
        f"k={int(run['k'])} ({run['algorithm']})",
        f"silhouette {float(run['silhouette']):.3f} (sample {int(run['silhouette_sample_size']):,})  "
        f"Davies-Bouldin {float(run['davies_bouldin']):.3f}  Calinski-Harabasz {float(run['calinski_harabasz']):,.0f}"
        + (f"  stability {float(run['stability']):.2f}" if not is_missing(run.get("stability")) else ""),
        "",
        f"{'id':>3}  {'segment':<20} {'customers':>9} {'share':>6}  {'recency':>7} {'orders':>6} {'spend':>9} {'sessions':>8}",
    ]
    for row in profiles.itertuples(index=False):
        m = json.loads(row.feature_medians)
        lines.append(
            f"{int(row.segment_id):>3}  {row.segment_name:<20} {int(row.size):>9,} {float(row.share):>6.1%}  "
            f"{m['recency_days']:>6.0f}d {m['frequency']:>6.0f} {m['monetary']:>9,.0f} {m['sessions']:>8.0f}"
        )
        if row.description:
            lines.append(f"     {row.description}")
    return "\n".join(lines)
