"""The explain subpackage: profiles, rules, drift and the recommendation feed of each snapshot, and its report.

Modules: ``insight`` (the stage: ``build_insights``), ``rules``, ``drift``, ``top_items``, ``profiles``
and ``common``; the report in ``report_data`` (reading), ``report_format`` and ``svg`` (values and
charts), ``report_html`` (sections and page) and ``report`` (files); ``report_text`` for terminals.
"""

from include.segmentation.explain.drift import DriftThresholds
from include.segmentation.explain.insight import (
    InsightError,
    build_insights,
)
from include.segmentation.explain.profiles import (
    build_profiles,
    describe_segment,
    humanize_days,
)
from include.segmentation.explain.report import (
    list_reports,
    render_report,
    report_filename,
)
from include.segmentation.explain.report_data import ReportError
from include.segmentation.explain.report_text import (
    segments_summary,
)
from include.segmentation.settings import reports_dir
from include.segmentation.store import INSIGHT_TABLES

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
