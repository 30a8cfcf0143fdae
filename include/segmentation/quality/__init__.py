"""Data quality with Great Expectations 1.x: nothing bad is published, and the user is told why.

Three stages, each a function the pipeline calls:

- ``validate_raw_window`` (``raw_window``): schema and data suites on the raw source tables, run
  inside the warehouse in one scan of the window per table (SQL plan: ``raw_plan``, ``raw_sql``).
- ``validate_features`` (``frames``): the feature frame: one row per customer, every numeric
  feature finite.
- ``validate_output`` (``frames``): every population customer has exactly one segment, nobody else
  has one (the model's thresholds are the quality gate's, ``model.scoring.quality_gate``).

Every check's result is stored in ``segmentation.quality_results`` (``results``); GX Data Docs
are written under ``data_docs_dir(snapshot_date, run_id, stage)`` (``gx``) and the log says where.
An error-severity failure raises ``DataQualityError``, whose message lists each failed check with
table, column, rule, observed value and up to five example rows (e-mails and phones masked:
``masking``). Severities and thresholds: ``checks.QUALITY_CHECKS``.
"""

from include.segmentation.quality.checks import (
    CONTRACT_TYPES,
    QUALITY_CHECKS,
    resolve_checks,
)
from include.segmentation.quality.frames import validate_features, validate_output
from include.segmentation.quality.gx import data_docs_dir
from include.segmentation.quality.masking import mask_email, mask_example, mask_phone, mask_text
from include.segmentation.quality.raw_window import validate_raw_window
from include.segmentation.quality.results import CheckResult, DataQualityError

__all__ = [
    "CONTRACT_TYPES",
    "CheckResult",
    "DataQualityError",
    "QUALITY_CHECKS",
    "data_docs_dir",
    "mask_email",
    "mask_example",
    "mask_phone",
    "mask_text",
    "resolve_checks",
    "validate_features",
    "validate_output",
    "validate_raw_window",
]
