"""Fast COPY payloads for the two big tables (transactions, browsing events).

Every field is rendered into a fixed-width uint8 matrix (digits computed arithmetically, text looked
up in padded byte tables); NUL bytes mark padding and are squeezed out at the end. The result is
byte-identical to ``csv_payload(string_columns(...))`` and several times faster.
"""

from __future__ import annotations

import numpy as np

from include.segmentation.sources import contract
from include.segmentation.sources.synthetic.catalogue import CATEGORIES
from include.segmentation.sources.synthetic.chunk import ChunkArrays
from include.segmentation.sources.synthetic.encode import with_null


class _Rows:
    """CSV rows under construction: a list of ``(n, width)`` uint8 blocks, one per field piece.

    The public methods each add one field (with the comma before it, except the first); the
    ``_`` methods are the pieces they are made of.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.parts: list[np.ndarray] = []

    # ----- pieces
    def _const(self, value: str) -> None:
        """The same ASCII text on every row."""
        b = np.frombuffer(value.encode("ascii"), dtype=np.uint8)
        self.parts.append(np.broadcast_to(b, (self.n, b.size)))

    def _digits(self, values: np.ndarray, min_digits: int = 1, negative: bool = False) -> None:
        """Decimal digits, zero-padded to ``min_digits``."""
        v = np.asarray(values, dtype=np.int64)
        if negative:
            self.parts.append(np.where(v < 0, ord("-"), 0).astype(np.uint8)[:, None])
            v = np.abs(v)
        top = int(v.max()) if v.size else 0
        width = max(min_digits, len(str(top)))
        rest: np.ndarray = v.astype(np.uint32 if top < 2**32 else np.uint64)
        cols = np.empty((width, v.size), dtype=np.uint8)  # one contiguous row per digit
        for j in range(width - 1, -1, -1):
            q = rest // 10
            cols[j] = rest - q * 10
            rest = q
        cols += ord("0")
        if width > min_digits:  # leading zeros beyond min_digits are padding
            lead = np.logical_and.accumulate(cols[: width - min_digits] == ord("0"), axis=0)
            cols[: width - min_digits][lead] = 0
        self.parts.append(cols.T)

    def _null_unless(self, present: np.ndarray, first_part: int) -> None:
        """Make the pieces added since part ``first_part`` read ``\\N`` where not ``present``."""
        absent = ~np.asarray(present, dtype=bool)
        for i in range(first_part, len(self.parts)):
            part = np.array(self.parts[i], copy=True)
            part[absent] = 0
            self.parts[i] = part
        marker = np.zeros((self.n, 2), dtype=np.uint8)
        marker[absent] = np.frombuffer(b"\\N", dtype=np.uint8)
        self.parts.insert(first_part, marker)

    def _field(self) -> int:
        """Start a field: a comma unless it is the first; returns the part where its value begins."""
        if self.parts:
            self._const(",")
        return len(self.parts)

    # ----- fields
    def ident(self, prefix: str, numbers: np.ndarray, width: int) -> None:
        """Ids like ``O00000-0000001``: a prefix and a zero-padded number."""
        self._field()
        self._const(prefix)
        self._digits(numbers, width)

    def number(self, values: np.ndarray, negative: bool = False) -> None:
        """Whole numbers (``negative``: they may be below zero)."""
        self._field()
        self._digits(values, negative=negative)

    def decimal(self, values: np.ndarray, scale: int, places: int, nullable: bool = False) -> None:
        """``values / scale`` with ``places`` decimals (``nullable``: ``\\N`` where negative)."""
        start = self._field()
        v = np.maximum(values, 0) if nullable else values
        self._digits(v // scale)
        self._const(".")
        self._digits(v % scale, places)
        if nullable:
            self._null_unless(values >= 0, start)

    def customer_id(self, numbers: np.ndarray) -> None:
        """``C0000001`` ids; ``\\N`` where the number is negative (guests, anonymous visitors)."""
        start = self._field()
        self._const("C")
        self._digits(np.maximum(numbers, 0), 7)
        self._null_unless(numbers >= 0, start)

    def text(self, table: np.ndarray, codes: np.ndarray) -> None:
        """Strings of ``table`` (StringDType or str) by ``codes``."""
        self._field()
        t = np.asarray([str(x).encode("utf-8") for x in table.tolist()], dtype=bytes)
        w = max(t.dtype.itemsize, 1)
        mat = np.frombuffer(t.astype(f"S{w}").tobytes(), dtype=np.uint8).reshape(-1, w)
        self.parts.append(mat[codes])

    def timestamp(self, epoch: np.ndarray) -> None:
        """``YYYY-MM-DDTHH:MM:SS+00`` of epoch seconds."""
        self._field()
        t = np.asarray(epoch, dtype=np.int64).astype("datetime64[s]")
        day = t.astype("datetime64[D]")
        month = day.astype("datetime64[M]")
        year = month.astype("datetime64[Y]")
        sod = (t - day).astype(np.int64)
        for sep, value, width in (
            ("", year.astype(np.int64) + 1970, 4),
            ("-", (month - year).astype(np.int64) + 1, 2),
            ("-", (day - month).astype(np.int64) + 1, 2),
            ("T", sod // 3600, 2),
            (":", sod // 60 % 60, 2),
            (":", sod % 60, 2),
        ):
            if sep:
                self._const(sep)
            self._digits(value, width)
        self._const("+00")

    def payload(self) -> bytes:
        """The CSV bytes: all rows, each ending in a newline, padding removed."""
        if self.n == 0:
            return b""
        self._const("\n")
        mat = np.hstack(self.parts)
        flat = mat.ravel()
        return flat[flat != 0].tobytes()


def fast_transactions(ch: ChunkArrays) -> bytes:
    """The ``raw.transactions`` COPY payload of a chunk (columns in contract order)."""
    r = _Rows(ch.ln_order.size)
    r.ident(f"O{ch.chunk_index:05d}-", ch.ln_order + 1, 7)
    r.number(ch.ln_number)
    r.customer_id(ch.ln_cust)
    r.timestamp(ch.ln_ts)
    r.text(ch.catalogue.product_str, ch.ln_product)
    r.text(with_null(CATEGORIES), ch.ln_category)  # code -1 picks the trailing NULL
    r.number(ch.ln_qty, negative=True)
    r.decimal(ch.ln_price, 100, 2)
    r.decimal(ch.ln_discount, 100, 2)
    return r.payload()


def fast_events(ch: ChunkArrays) -> bytes:
    """The ``raw.browsing_events`` COPY payload of a chunk (columns in contract order)."""
    cat = ch.catalogue
    r = _Rows(ch.ev_number.size)
    r.ident(f"E{ch.chunk_index:05d}-", ch.ev_number + 1, 8)
    r.ident(f"S{ch.chunk_index:05d}-", ch.ev_session + 1, 7)
    r.customer_id(ch.ev_cust)
    r.timestamp(ch.ev_ts)
    r.text(np.array(contract.EVENT_TYPES), ch.ev_type)
    for table, codes in ((cat.product_str, ch.ev_product), (CATEGORIES, ch.ev_category), (cat.query_str, ch.ev_query)):
        r.text(with_null(table), codes)  # code -1 picks the trailing NULL
    r.decimal(ch.ev_dwell, 10, 1, nullable=True)
    return r.payload()
