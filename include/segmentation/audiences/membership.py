"""Audience membership: who an audience should contain now, from the published segments and consent.

Reads the latest published snapshot (``segmentation.customer_segments``) joined to
``raw.customers`` for consent and identifiers. Only customers with ``marketing_consent`` true
count; their e-mails/phones are normalised by the destination platform's rules and hashed
(:mod:`include.segmentation.audiences.identifiers`). Invalid identifiers are counted, not sent.
No clear-text identifier leaves this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Integer, Text, bindparam, text

from include.segmentation.audiences.config import Audience
from include.segmentation.audiences.identifiers import hash_identifier, is_blank
from include.segmentation.errors import SegmentationError
from include.segmentation.store import table_exists

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (id_type, hashed_id)


class AudienceSyncError(SegmentationError, RuntimeError):
    """The sync cannot go on; the message names the audience, table, column and rule."""


class NothingPublished(AudienceSyncError):
    """No published segments to sync yet."""


@dataclass
class Membership:
    """Who the audience should contain now, and the counts behind it."""

    snapshot_date: str
    members: set[Key] = field(default_factory=set)
    in_segments: int = 0
    no_consent: int = 0
    eligible: int = 0
    invalid: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)


def latest_snapshot(conn: Connection) -> str:
    """Snapshot date of ``segmentation.customer_segments`` (the latest published one)."""
    if not table_exists(conn, "segmentation", "customer_segments"):
        raise NothingPublished("table segmentation.customer_segments does not exist: no segments published yet")
    if not table_exists(conn, "raw", "customers"):
        raise AudienceSyncError("table raw.customers does not exist: consent and identifiers come from it")
    value = conn.execute(text("SELECT MAX(snapshot_date) FROM segmentation.customer_segments")).scalar()
    if value is None:
        raise NothingPublished("table segmentation.customer_segments is empty: no segments published yet")
    return str(value)[:10]


def _segment_filter(conn: Connection, audience: Audience) -> tuple[list[int], list[str]]:
    """Configured segment ids and names, checked against the published snapshot."""
    if audience.all_segments:
        return [], []
    ids = [s for s in audience.segments if isinstance(s, int)]
    names = [s for s in audience.segments if isinstance(s, str)]
    rows = conn.execute(text("SELECT DISTINCT segment_id, segment_name FROM segmentation.customer_segments")).all()
    present_ids = {int(r[0]) for r in rows}
    present_names = {str(r[1]) for r in rows}
    found = [i for i in ids if i in present_ids] + [n for n in names if n in present_names]
    if not found:
        published = ", ".join(f"{int(r[0])} {r[1]!r}" for r in sorted(rows, key=lambda r: int(r[0])))
        raise AudienceSyncError(
            f"audience {audience.name!r}: none of segments {list(audience.segments)} matches "
            f"segmentation.customer_segments.segment_id or segment_name (published: {published or 'none'}); "
            "refusing to sync an empty audience"
        )
    lost = [s for s in audience.segments if s not in found]
    if lost:
        log.warning("audience %s: configured segments %s are not in the published snapshot", audience.name, lost)
    return ids, names


def build_membership(conn: Connection, audience: Audience) -> Membership:
    """Hash the identifiers of the audience's consenting customers in the latest snapshot."""
    snapshot = latest_snapshot(conn)
    ids, names = _segment_filter(conn, audience)
    where = []
    if not audience.all_segments:
        where.append("(s.segment_id IN :ids OR s.segment_name IN :names)")
    if not audience.include_outliers:
        where.append("s.is_outlier = :no")
    sql = (
        "SELECT c.email, c.phone, c.country, c.marketing_consent "
        "FROM segmentation.customer_segments s LEFT JOIN raw.customers c ON c.customer_id = s.customer_id"
        + (" WHERE " + " AND ".join(where) if where else "")
    )
    stmt = text(sql)
    params: dict[str, Any] = {}
    if not audience.all_segments:
        # Typed, so that an empty list still compares with the right column type on PostgreSQL.
        stmt = stmt.bindparams(bindparam("ids", expanding=True, type_=Integer),
                               bindparam("names", expanding=True, type_=Text))
        params.update(ids=ids, names=names)
    if not audience.include_outliers:
        params["no"] = False
    m = Membership(snapshot_date=snapshot, invalid=dict.fromkeys(audience.identifiers, 0),
                   missing=dict.fromkeys(audience.identifiers, 0))
    for email, phone, country, consent in conn.execute(stmt, params):
        m.in_segments += 1
        if not consent:
            m.no_consent += 1
            continue
        got = False
        for kind in audience.identifiers:
            raw = email if kind == "email" else phone
            if is_blank(raw):
                m.missing[kind] += 1
                continue
            hashed = hash_identifier(kind, raw, country, audience.platform)
            if hashed is None:
                m.invalid[kind] += 1
                continue
            m.members.add((kind, hashed))
            got = True
        if got:
            m.eligible += 1
    return m


def withdrawn_consent(conn: Connection, audience: Audience) -> set[Key]:
    """Hashes of customers without marketing consent (removed even in add-only mode)."""
    out: set[Key] = set()
    rows = conn.execute(
        text("SELECT email, phone, country FROM raw.customers WHERE marketing_consent = :no"), {"no": False}
    )
    for email, phone, country in rows:
        for kind in audience.identifiers:
            raw = email if kind == "email" else phone
            if not is_blank(raw):
                hashed = hash_identifier(kind, raw, country, audience.platform)
                if hashed is not None:
                    out.add((kind, hashed))
    return out

