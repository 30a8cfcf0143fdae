"""The audiences subpackage."""

from include.segmentation.audiences.config import (
    AUDIENCES,
    Audience,
    AudienceConfigError,
    audience_from_dict,
    load_audiences,
    select_audiences,
    validate_audience,
)
from include.segmentation.audiences.credentials import (
    CredentialsError,
    google_ads_credentials,
    meta_credentials,
)
from include.segmentation.audiences.destinations import (
    DestinationError,
    FileDestination,
    GoogleAdsDestination,
    MetaDestination,
    RetryPolicy,
)
from include.segmentation.audiences.identifiers import (
    IdentifierError,
    country_code,
    hash_identifier,
    is_blank,
    is_sha256_hex,
    normalize_email,
    normalize_phone,
    sha256_hex,
)
from include.segmentation.audiences.membership import (
    AudienceSyncError,
    NothingPublished,
)
from include.segmentation.audiences.plan import (
    Diff,
    plan_batches,
    plan_diff,
)
from include.segmentation.audiences.sync import (
    summarize,
    sync_audience,
    sync_history,
)

__all__ = [
    "AUDIENCES",
    "Audience",
    "AudienceConfigError",
    "AudienceSyncError",
    "CredentialsError",
    "DestinationError",
    "Diff",
    "FileDestination",
    "GoogleAdsDestination",
    "IdentifierError",
    "MetaDestination",
    "NothingPublished",
    "RetryPolicy",
    "audience_from_dict",
    "country_code",
    "google_ads_credentials",
    "hash_identifier",
    "is_blank",
    "is_sha256_hex",
    "load_audiences",
    "meta_credentials",
    "normalize_email",
    "normalize_phone",
    "plan_batches",
    "plan_diff",
    "select_audiences",
    "sha256_hex",
    "summarize",
    "sync_audience",
    "sync_history",
    "validate_audience",
]
