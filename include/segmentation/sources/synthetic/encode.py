"""The text form of a chunk: every column as StringDType (``NULL`` = ``\\N``) in contract order, and
CSV payloads for ``COPY ... FROM STDIN``. The DataFrames and the COPY payloads use these same
strings, so both warehouse flavours hold the same values.
"""

from __future__ import annotations

import numpy as np

from include.segmentation.sources import contract
from include.segmentation.sources.synthetic.catalogue import ALL_TYPES, CATEGORIES, COLUMNS, NULL, STR
from include.segmentation.sources.synthetic.chunk import ChunkArrays


def with_null(values: np.ndarray | tuple[str, ...]) -> np.ndarray:
    """``values`` as StringDType plus a trailing ``NULL`` entry, so that code -1 (or len) reads NULL."""
    return np.append(np.asarray(values, dtype=STR), np.array([NULL], dtype=STR))


def zid(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Ids like ``C0000001``: ``prefix`` and the number zero-padded to ``width``."""
    return np.strings.add(prefix, np.strings.zfill(np.asarray(numbers, dtype=np.int64).astype(STR), width))


def _customer_ids(numbers: np.ndarray) -> np.ndarray:
    """``C0000001`` ids; ``NULL`` where the number is negative (guests, anonymous visitors)."""
    return _nullable(zid("C", np.maximum(numbers, 0), 7), numbers < 0)


def _ts_str(epoch: np.ndarray) -> np.ndarray:
    return np.strings.add(np.asarray(epoch, dtype=np.int64).astype("datetime64[s]").astype(STR), "+00")


def _money_str(cents: np.ndarray) -> np.ndarray:
    cents = np.asarray(cents, dtype=np.int64)
    return np.strings.add(np.strings.add((cents // 100).astype(STR), "."), np.strings.zfill((cents % 100).astype(STR), 2))


def _nullable(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, NULL, values)


def _customers(ch: ChunkArrays) -> dict[str, np.ndarray]:
    return {
        "customer_id": zid("C", ch.cust_number, 7),
        "created_at": _ts_str(ch.created),
        "birth_year": _nullable(ch.birth_year.astype(STR), ch.birth_year < 0),
        "gender": ch.gender,
        "country": ch.country,
        "city": ch.city,
        "email": ch.email,
        "phone": ch.phone,
        "marketing_consent": np.where(ch.consent, "true", "false").astype(STR),
    }


def _transactions(ch: ChunkArrays) -> dict[str, np.ndarray]:
    return {
        "order_id": zid(f"O{ch.chunk_index:05d}-", ch.ln_order + 1, 7),
        "line_number": ch.ln_number.astype(STR),
        "customer_id": _customer_ids(ch.ln_cust),
        "ordered_at": _ts_str(ch.ln_ts),
        "product_id": ch.catalogue.product_str[ch.ln_product],
        "category": with_null(CATEGORIES)[ch.ln_category],
        "quantity": ch.ln_qty.astype(STR),
        "unit_price": _money_str(ch.ln_price),
        "discount": _money_str(ch.ln_discount),
    }


def _browsing_events(ch: ChunkArrays) -> dict[str, np.ndarray]:
    dwell = np.maximum(ch.ev_dwell, 0)
    dwell_str = np.strings.add(np.strings.add((dwell // 10).astype(STR), "."), (dwell % 10).astype(STR))
    return {
        "event_id": zid(f"E{ch.chunk_index:05d}-", ch.ev_number + 1, 8),
        "session_id": zid(f"S{ch.chunk_index:05d}-", ch.ev_session + 1, 7),
        "customer_id": _customer_ids(ch.ev_cust),
        "occurred_at": _ts_str(ch.ev_ts),
        "event_type": np.array(contract.EVENT_TYPES, dtype=STR)[ch.ev_type],
        "product_id": with_null(ch.catalogue.product_str)[ch.ev_product],
        "category": with_null(CATEGORIES)[ch.ev_category],
        "search_query": with_null(ch.catalogue.query_str)[ch.ev_query],
        "dwell_seconds": _nullable(dwell_str, ch.ev_dwell < 0),
    }


def _planted_types(ch: ChunkArrays) -> dict[str, np.ndarray]:
    return {
        "customer_id": zid("C", ch.cust_number, 7),
        "planted_type": np.array(ALL_TYPES, dtype=STR)[ch.cust_type],
    }


_TABLES = {
    "customers": _customers,
    "transactions": _transactions,
    "browsing_events": _browsing_events,
    "planted_types": _planted_types,
}


def string_columns(ch: ChunkArrays, tables: tuple[str, ...] = tuple(COLUMNS)) -> dict[str, dict[str, np.ndarray]]:
    """The columns of ``tables`` as StringDType text (``\\N`` = NULL), in contract order."""
    return {name: _TABLES[name](ch) for name in tables}


def csv_payload(columns: dict[str, np.ndarray]) -> str:
    """CSV rows (no header, ``\\N`` = NULL, nothing needs quoting) for ``COPY ... FROM STDIN``."""
    cols = list(columns.values())
    if cols[0].size == 0:
        return ""
    row = cols[0]
    for c in cols[1:]:
        row = np.strings.add(np.strings.add(row, ","), c)
    return "\n".join(row.tolist()) + "\n"
