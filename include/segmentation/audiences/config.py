"""Audience definitions: the one place that says which segments go to which ad-platform audience.

Each :class:`Audience` names the segments it contains (by ``segment_id`` or ``segment_name`` of
``segmentation.customer_segments``; ``"*"`` = every segment), the destination (``file``,
``meta`` or ``google_ads``), the destination's audience id, the identifiers to send
(``email``, ``phone``) and the mode: ``mirror`` (adds and removes) or ``add_only``.

The definitions used are :data:`AUDIENCES` below, unless the environment variable
``SEGMENTATION_AUDIENCES_FILE`` names a JSON file holding a list of objects with the same fields,
which then replaces them (so a deployment changes audiences without a code change). Every
definition is validated up front; errors name the audience and the field.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from include.segmentation.audiences.identifiers import IDENTIFIER_KINDS
from include.segmentation.errors import PermanentError
from include.segmentation.store import WarehouseError, validate_identifier

DESTINATIONS: tuple[str, ...] = ("file", "meta", "google_ads")
MODES: tuple[str, ...] = ("mirror", "add_only")
FILE_LAYOUTS: tuple[str, ...] = ("meta", "google_ads")
DEFAULT_CONNECTIONS: dict[str, str] = {"meta": "meta_ads", "google_ads": "google_ads"}
# Documented per-request limits: Meta 10,000 records; Google 100,000 identifiers per
# AddOfflineUserDataJobOperations request (10,000 recommended).
MAX_BATCH: dict[str, int] = {"file": 1_000_000, "meta": 10_000, "google_ads": 100_000}
DEFAULT_BATCH: dict[str, int] = {"file": 100_000, "meta": 10_000, "google_ads": 10_000}
ALL_SEGMENTS = "*"
ENV_FILE = "SEGMENTATION_AUDIENCES_FILE"

_DIGITS = re.compile(r"^\d{1,20}$")
_GOOGLE_LIST = re.compile(r"^customers/(\d{1,20})/userLists/(\d{1,20})$")
_GOOGLE_CUSTOMER = re.compile(r"^\d{3}-?\d{3}-?\d{4}$")


class AudienceConfigError(PermanentError, ValueError):
    """An audience definition is wrong; the message names the audience and the field."""


@dataclass(frozen=True)
class Audience:
    """One audience kept in step with a destination."""

    name: str
    segments: tuple[int | str, ...]
    destination: str = "file"
    audience_id: str | None = None
    identifiers: tuple[str, ...] = ("email", "phone")
    mode: str = "mirror"
    connection_id: str | None = None
    account_id: str | None = None
    file_layout: str = "google_ads"
    folder: str | None = None
    include_outliers: bool = True
    batch_size: int | None = None
    max_removal_fraction: float | None = 0.5
    enabled: bool = True
    description: str = field(default="", compare=False)

    @property
    def platform(self) -> str:
        """Whose normalisation rules apply: the destination's, or the file layout's."""
        return self.file_layout if self.destination == "file" else self.destination

    @property
    def target(self) -> str:
        """Where the audience lives (destination + its id); sync state is kept per target."""
        return f"{self.destination}:{self.audience_id or self.name}"

    @property
    def effective_batch_size(self) -> int:
        """Records per request: configured, else the destination's default."""
        return self.batch_size or DEFAULT_BATCH[self.destination]

    @property
    def effective_connection_id(self) -> str | None:
        """Airflow connection holding the destination's credentials (None for ``file``)."""
        if self.destination == "file":
            return None
        return self.connection_id or DEFAULT_CONNECTIONS[self.destination]

    @property
    def all_segments(self) -> bool:
        """True when the audience takes every segment."""
        return ALL_SEGMENTS in self.segments

    def google_list_resource(self, customer_id: str | None = None) -> tuple[str, str]:
        """(customer id, user list resource name) for a Google Ads audience."""
        aid = self.audience_id or ""
        m = _GOOGLE_LIST.match(aid)
        if m:
            return m.group(1), aid
        cid = (self.account_id or customer_id or "").replace("-", "")
        if not _DIGITS.match(cid):
            raise AudienceConfigError(
                f"audience {self.name!r}: field 'account_id': Google Ads customer id needed (in the audience "
                "or the connection extra 'customer_id') when audience_id is a bare user list id"
            )
        return cid, f"customers/{cid}/userLists/{aid}"


def _err(name: str, fld: str, rule: str) -> AudienceConfigError:
    return AudienceConfigError(f"audience {name!r}: field {fld!r}: {rule}")


def validate_audience(a: Audience) -> Audience:
    """Check one definition; raise :class:`AudienceConfigError` naming audience and field."""
    try:
        validate_identifier(a.name, "audience name")
    except WarehouseError as exc:
        raise AudienceConfigError(f"audience {a.name!r}: field 'name': {exc}") from None
    name = a.name
    if a.destination not in DESTINATIONS:
        raise _err(name, "destination", f"must be one of {', '.join(DESTINATIONS)}, got {a.destination!r}")
    if a.mode not in MODES:
        raise _err(name, "mode", f"must be one of {', '.join(MODES)}, got {a.mode!r}")
    if not a.segments:
        raise _err(name, "segments", "list at least one segment id or name, or '*' for all")
    for seg in a.segments:
        if isinstance(seg, bool) or not isinstance(seg, int | str) or (isinstance(seg, str) and not seg.strip()):
            raise _err(name, "segments", f"each entry is a segment id (integer) or name (text), got {seg!r}")
    if ALL_SEGMENTS in a.segments and len(a.segments) > 1:
        raise _err(name, "segments", "'*' (all segments) cannot be combined with other entries")
    if not a.identifiers or len(set(a.identifiers)) != len(a.identifiers):
        raise _err(name, "identifiers", f"list one or more distinct kinds of {', '.join(IDENTIFIER_KINDS)}")
    for kind in a.identifiers:
        if kind not in IDENTIFIER_KINDS:
            raise _err(name, "identifiers", f"unknown kind {kind!r}: use {', '.join(IDENTIFIER_KINDS)}")
    if a.file_layout not in FILE_LAYOUTS:
        raise _err(name, "file_layout", f"must be one of {', '.join(FILE_LAYOUTS)}, got {a.file_layout!r}")
    if a.batch_size is not None:
        if isinstance(a.batch_size, bool) or not isinstance(a.batch_size, int) or a.batch_size < 1:
            raise _err(name, "batch_size", f"must be a positive integer, got {a.batch_size!r}")
        if a.batch_size > MAX_BATCH[a.destination]:
            raise _err(
                name, "batch_size",
                f"{a.destination} accepts at most {MAX_BATCH[a.destination]:,} records a request, got {a.batch_size:,}",
            )
    if a.max_removal_fraction is not None and not (
        isinstance(a.max_removal_fraction, int | float) and 0 < a.max_removal_fraction <= 1
    ):
        raise _err(name, "max_removal_fraction", f"must be in (0, 1] or null, got {a.max_removal_fraction!r}")
    if a.destination == "meta":
        if not a.audience_id or not _DIGITS.match(str(a.audience_id)):
            raise _err(name, "audience_id", "the Meta custom audience id (digits) is required")
    if a.destination == "google_ads":
        aid = str(a.audience_id or "")
        if not (_DIGITS.match(aid) or _GOOGLE_LIST.match(aid)):
            raise _err(name, "audience_id", "the Google Ads user list id or 'customers/<id>/userLists/<id>' is required")
        if a.account_id is not None and not _GOOGLE_CUSTOMER.match(str(a.account_id)):
            raise _err(name, "account_id", "a Google Ads customer id is 10 digits, e.g. 123-456-7890")
    if a.destination == "file" and a.audience_id is not None:
        try:
            validate_identifier(str(a.audience_id), "file audience id")
        except WarehouseError as exc:
            raise _err(name, "audience_id", str(exc)) from None
    if a.connection_id is not None and not re.match(r"^[A-Za-z0-9_.-]{1,250}$", a.connection_id):
        raise _err(name, "connection_id", "letters, digits, '_', '-', '.' only")
    return a


# The segment names a snapshot can publish (the naming vocabulary of model/identity.py, in its order;
# audiences may not import model, a unit test keeps the two lists equal). Segments that fit no
# vocabulary name get a composite name ("High value · active · repeat buyers"): target those by
# segment id or name in your own definitions.
SEGMENT_NAMES: tuple[str, ...] = (
    "Window shoppers", "Champions", "Loyal", "New customers", "Bargain hunters", "Lapsing",
    "One-time buyers", "Active",
)


def audience_name_for(segment_name: str) -> str:
    """The default audience name of a segment: ``"One-time buyers"`` -> ``one_time_buyers_file``."""
    return re.sub(r"[^a-z0-9]+", "_", segment_name.lower()).strip("_") + "_file"


def per_segment_audiences(segment_names: Iterable[str] = SEGMENT_NAMES, enabled: bool = False) -> tuple[Audience, ...]:
    """One ``file`` audience per segment name (Customer Match layout, mirror mode)."""
    return tuple(
        Audience(
            name=audience_name_for(seg),
            segments=(seg,),
            destination="file",
            identifiers=("email", "phone"),
            mode="mirror",
            file_layout="google_ads",
            enabled=enabled,
            description=f"Segment {seg!r}, hashed, as Customer Match upload files",
        )
        for seg in segment_names
    )


# The audiences this deployment keeps in step. The defaults need no account: they write hashed
# members to files (artifacts/audiences/). `all_segments_file` (every segment) syncs after every
# publish. The per-segment audiences (`champions_file`, `lapsing_file`, ... one per segment name)
# are ready to target one segment: name them in the audience_sync trigger form's `audiences`
# field or `cli sync-audiences --audiences champions_file`. They are not synced on every publish
# (`enabled=False`) because a snapshot publishes only the names its segments earn, and an audience
# whose segment is not in the snapshot fails its sync rather than empty the audience; enable the
# ones you rely on in $SEGMENTATION_AUDIENCES_FILE. See docs/audience_sync.md for Meta and Google Ads.
AUDIENCES: tuple[Audience, ...] = (
    Audience(
        name="all_segments_file",
        segments=(ALL_SEGMENTS,),
        destination="file",
        identifiers=("email", "phone"),
        mode="mirror",
        file_layout="google_ads",
        description="Every published segment, hashed, as Customer Match upload files",
    ),
    *per_segment_audiences(),
)

_FIELDS = {f.name for f in fields(Audience)}


def audience_from_dict(data: Mapping[str, Any]) -> Audience:
    """Build and validate one :class:`Audience` from a JSON-like mapping."""
    if not isinstance(data, Mapping):
        raise AudienceConfigError(f"each audience must be an object, got {type(data).__name__}")
    name = data.get("name", "?")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise _err(str(name), unknown[0], f"unknown field; known fields: {', '.join(sorted(_FIELDS))}")
    if "name" not in data or "segments" not in data:
        raise _err(str(name), "name" if "name" not in data else "segments", "required")
    kwargs = dict(data)
    for key in ("segments", "identifiers"):
        if key in kwargs:
            value = kwargs[key]
            if isinstance(value, str | int):
                value = [value]
            if not isinstance(value, list | tuple):
                raise _err(str(name), key, "must be a list")
            kwargs[key] = tuple(value)
    for key in ("audience_id", "account_id"):
        if kwargs.get(key) is not None:
            kwargs[key] = str(kwargs[key])
    return validate_audience(Audience(**kwargs))


def validate_audiences(audiences: Iterable[Audience]) -> tuple[Audience, ...]:
    """Validate each definition and that names are unique."""
    out = tuple(validate_audience(a) for a in audiences)
    seen: set[str] = set()
    for a in out:
        if a.name in seen:
            raise _err(a.name, "name", "defined twice; audience names must be unique")
        seen.add(a.name)
    return out


def load_audiences(path: str | Path | None = None) -> tuple[Audience, ...]:
    """The validated audience definitions: ``path``, else ``$SEGMENTATION_AUDIENCES_FILE``, else :data:`AUDIENCES`."""
    source = path or os.environ.get(ENV_FILE)
    if not source:
        return validate_audiences(AUDIENCES)
    p = Path(source)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AudienceConfigError(f"audience file {p} does not exist") from None
    except json.JSONDecodeError as exc:
        raise AudienceConfigError(f"audience file {p} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    if isinstance(raw, Mapping) and "audiences" in raw:
        raw = raw["audiences"]
    if not isinstance(raw, list):
        raise AudienceConfigError(f"audience file {p} must hold a list of audience objects")
    return validate_audiences(audience_from_dict(item) for item in raw)


def select_audiences(audiences: Sequence[Audience], names: str | Sequence[str] | None = None) -> list[Audience]:
    """The enabled audiences, or only those named (comma-separated text or a list); unknown names raise."""
    wanted: list[str] = []
    if isinstance(names, str):
        wanted = [n.strip() for n in names.split(",") if n.strip()]
    elif names:
        wanted = [str(n).strip() for n in names if str(n).strip()]
    if not wanted:
        return [a for a in audiences if a.enabled]
    known = {a.name: a for a in audiences}
    missing = [n for n in wanted if n not in known]
    if missing:
        raise AudienceConfigError(
            f"unknown audience(s) {', '.join(missing)}; defined: {', '.join(sorted(known)) or '(none)'}"
        )
    return [known[n] for n in wanted]
