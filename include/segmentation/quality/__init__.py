"""The quality subpackage."""

from include.segmentation.quality.checks import (
    CONTRACT_TYPES,
    QUALITY_CHECKS,
    resolve_checks,
)
from include.segmentation.quality.data_quality import (
    CheckResult,
    DataQualityError,
    data_docs_dir,
    mask_email,
    mask_example,
    mask_phone,
    mask_text,
    validate_features,
    validate_output,
    validate_raw_window,
)

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
