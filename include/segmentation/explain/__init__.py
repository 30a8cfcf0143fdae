"""The explain subpackage."""

from include.segmentation.explain.insight import (
    INSIGHT_TABLES,
    DriftThresholds,
    InsightError,
    build_insights,
)
from include.segmentation.explain.profiles import (
    build_profiles,
    describe_segment,
    humanize_days,
)
from include.segmentation.explain.report import (
    ReportError,
    list_reports,
    render_report,
    report_filename,
    reports_dir,
)
from include.segmentation.explain.report_text import (
    segments_summary,
)

__all__ = [
    "DriftThresholds",
    "INSIGHT_TABLES",
    "InsightError",
    "ReportError",
    "build_insights",
    "build_profiles",
    "describe_segment",
    "humanize_days",
    "list_reports",
    "render_report",
    "report_filename",
    "reports_dir",
    "segments_summary",
]
