"""The one-statement reference of the extract (the portable SQL), for the extract tests of both flavours."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, text

from include.segmentation.sources import extract as ex
from include.segmentation.store import read_sql


def reference_aggregates(conn: Connection, window: ex.Window) -> tuple[pd.DataFrame, int, int]:
    """The window's aggregates by the one-statement SQL, and its guest-line and anonymous-event counts."""
    params = window.params(conn)
    ref = read_sql(conn, f"WITH tx AS ({ex._TX_AGG}), ev AS ({ex._EV_AGG}) {ex._JOIN}", params)
    guests = conn.execute(
        text("SELECT COUNT(*) FROM raw.transactions WHERE ordered_at >= :start AND ordered_at < :cutoff "
             "AND customer_id IS NULL"), params).scalar_one()
    anonymous = conn.execute(
        text("SELECT COUNT(*) FROM raw.browsing_events WHERE occurred_at >= :start AND occurred_at < :cutoff "
             "AND customer_id IS NULL"), params).scalar_one()
    return ref, int(guests), int(anonymous)
