"""Audience membership: who an audience should contain now, from the published segments and consent.

Reads each customer's current segment joined to ``raw.customers`` for consent and identifiers:
``segmentation.customer_segments_now`` (the live assignment's view: a customer's live row when it saw
newer data than the daily snapshot, else the daily row) when it exists, else the latest published
snapshot (``segmentation.customer_segments``). So after a live run changed a customer's segment, the
sync's diff against what the destination accepted sends exactly that customer's change. Only customers with ``marketing_consent`` true
count; their e-mails/phones are normalised by the destination platform's rules and hashed
(:mod:`include.segmentation.audiences.identifiers`). Invalid identifiers are counted, not sent.
No clear-text identifier leaves this module.

What is read is validated, not trusted: ``raw.customers`` may be a bring-your-own-data view with no
primary key. A customer id that appears more than once is one customer (counted once); if its rows
disagree on consent (or consent is NULL) the consent is ambiguous and ambiguous consent is no
consent; if they agree on consent but carry different identifiers, none of them is sent (we cannot
tell which is the customer's). Both are counted (``duplicate_customers``, ``ambiguous_consent``,
``ambiguous_identifiers``) and reported in the sync run's message.
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
    source: str = "customer_segments"  # the table or view membership was read from (SOURCES)
    members: set[Key] = field(default_factory=set)
    in_segments: int = 0
    no_consent: int = 0
    eligible: int = 0
    invalid: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    duplicate_customers: int = 0  # customer ids with more than one row in raw.customers
    ambiguous_consent: int = 0  # of those, rows disagreeing on consent: treated as no consent
    ambiguous_identifiers: int = 0  # consenting, but rows disagreeing on e-mail/phone/country: not sent

    def data_notes(self) -> str | None:
        """What was wrong with the input, for the sync run's message (None when nothing was)."""
        if not self.duplicate_customers:
            return None
        return (
            f"raw.customers: {self.duplicate_customers} customer id(s) appear more than once; "
            f"{self.ambiguous_consent} with conflicting or missing consent were treated as not consenting, "
            f"{self.ambiguous_identifiers} with conflicting identifiers were not sent"
        )


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


#: Where current membership is read from: the first of these that exists (both in schema ``segmentation``).
SOURCES = ("customer_segments_now", "customer_segments")


def membership_source(conn: Connection) -> str:
    """``customer_segments_now`` when the live view exists (live assignments count), else ``customer_segments``."""
    return SOURCES[0] if table_exists(conn, "segmentation", SOURCES[0]) else SOURCES[1]


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
    """Hash the identifiers of the audience's consenting customers in their current segments (live or daily)."""
    snapshot = latest_snapshot(conn)
    ids, names = _segment_filter(conn, audience)  # live rows use the snapshot's model: same ids and names
    source = membership_source(conn)  # one of SOURCES: an identifier of ours, never from config
    where = []
    if not audience.all_segments:
        where.append("(s.segment_id IN :ids OR s.segment_name IN :names)")
    if not audience.include_outliers:
        where.append("s.is_outlier = :no")
    sql = (
        "SELECT s.customer_id, c.email, c.phone, c.country, c.marketing_consent "
        f"FROM segmentation.{source} s LEFT JOIN raw.customers c ON c.customer_id = s.customer_id"
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
    m = Membership(snapshot_date=snapshot, source=source, invalid=dict.fromkeys(audience.identifiers, 0),
                   missing=dict.fromkeys(audience.identifiers, 0))
    rows_of: dict[Any, list[tuple[Any, Any, Any, Any]]] = {}
    for customer_id, email, phone, country, consent in conn.execute(stmt, params):
        rows_of.setdefault(customer_id, []).append((email, phone, country, consent))
    for rows in rows_of.values():
        m.in_segments += 1
        if len(rows) > 1:
            m.duplicate_customers += 1
            if len({_consent(r[3]) for r in rows}) > 1 or any(r[3] is None for r in rows):
                m.ambiguous_consent += 1
                m.no_consent += 1
                continue
            if len(set(rows)) > 1 and _consent(rows[0][3]):
                m.ambiguous_identifiers += 1
                continue
        email, phone, country, consent = rows[0]
        if not _consent(consent):
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
    if m.duplicate_customers:
        log.warning("audience %s: %s", audience.name, m.data_notes())
    return m


def _consent(value: Any) -> bool:
    """Only an explicit true is consent (NULL, false, 0 are not)."""
    return value is True or (isinstance(value, int) and not isinstance(value, bool) and value == 1)


def withdrawn_consent(conn: Connection, audience: Audience) -> set[Key]:
    """Hashes of customers without marketing consent (removed even in add-only mode)."""
    out: set[Key] = set()
    rows = conn.execute(
        # NULL consent (a view without NOT NULL) is no consent either; a duplicated customer id with one
        # non-consenting row is withdrawn as well (ambiguous consent is no consent).
        text("SELECT email, phone, country FROM raw.customers WHERE COALESCE(marketing_consent, :no) = :no"),
        {"no": False},
    )
    for email, phone, country in rows:
        for kind in audience.identifiers:
            raw = email if kind == "email" else phone
            if not is_blank(raw):
                hashed = hash_identifier(kind, raw, country, audience.platform)
                if hashed is not None:
                    out.add((kind, hashed))
    return out

