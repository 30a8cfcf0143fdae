"""A chunk as pandas DataFrames in the contract's columns: ``generate_chunk`` (pure) and the frames
the SQLite load inserts.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from include.segmentation.sources.synthetic.catalogue import NULL
from include.segmentation.sources.synthetic.chunk import ChunkArrays, build_chunk
from include.segmentation.sources.synthetic.encode import string_columns


def _text_series(values: np.ndarray) -> pd.Series:
    obj = values.astype(object)
    obj[values == NULL] = None
    return pd.Series(obj, dtype="str")


def _utc(epoch: np.ndarray) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(np.asarray(epoch, dtype=np.int64).astype("datetime64[s]").astype("datetime64[us]")).tz_localize("UTC"))


def _texts(columns: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, pd.Series]:
    return {name: _text_series(columns[name]) for name in names}


def _customers(ch: ChunkArrays, s: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": _text_series(s["customer_id"]),
            "created_at": _utc(ch.created),
            "birth_year": pd.Series(ch.birth_year, dtype="Int64").mask(ch.birth_year < 0),
            "gender": _text_series(ch.gender),
            "country": _text_series(ch.country),
            "city": _text_series(ch.city),
            "email": _text_series(ch.email),
            "phone": _text_series(ch.phone),
            "marketing_consent": ch.consent.astype(bool),
        }
    )


def _transactions(ch: ChunkArrays, s: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            **_texts(s, ("order_id",)),
            "line_number": ch.ln_number.astype(np.int64),
            **_texts(s, ("customer_id",)),
            "ordered_at": _utc(ch.ln_ts),
            **_texts(s, ("product_id", "category")),
            "quantity": ch.ln_qty.astype(np.int64),
            "unit_price": ch.ln_price / 100.0,
            "discount": ch.ln_discount / 100.0,
        }
    )


def _browsing_events(ch: ChunkArrays, s: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            **_texts(s, ("event_id", "session_id", "customer_id")),
            "occurred_at": _utc(ch.ev_ts),
            **_texts(s, ("event_type", "product_id", "category", "search_query")),
            "dwell_seconds": np.where(ch.ev_dwell < 0, np.nan, ch.ev_dwell / 10.0),
        }
    )


def frames(ch: ChunkArrays) -> dict[str, pd.DataFrame]:
    """``customers``, ``transactions``, ``browsing_events`` and ``planted_types`` of a chunk."""
    s = string_columns(ch)
    return {
        "customers": _customers(ch, s["customers"]),
        "transactions": _transactions(ch, s["transactions"]),
        "browsing_events": _browsing_events(ch, s["browsing_events"]),
        "planted_types": pd.DataFrame(_texts(s["planted_types"], ("customer_id", "planted_type"))),
    }


def generate_chunk(
    chunk_index: int, first_customer: int, n_customers: int, days: int, end_date: date, seed: int,
    price_response: bool = False,
) -> dict[str, pd.DataFrame]:
    """The rows of one chunk: customers ``first_customer .. first_customer + n_customers - 1``.

    Pure and deterministic. Returns ``customers``, ``transactions``, ``browsing_events`` (exactly
    the contract's columns, in its order) and ``planted_types`` (``customer_id``, ``planted_type``;
    ground truth that belongs in ``evaluation.planted_types`` only). Text columns use pandas' str
    dtype (missing = NaN), timestamps are UTC, money is float rounded to cents,
    ``birth_year`` is nullable Int64. ``price_response``: see ``pricing`` (off by default).
    """
    return frames(build_chunk(chunk_index, first_customer, n_customers, days, end_date, seed, price_response))
