"""PostgreSQL binary COPY payloads: encode DataFrames for ``COPY FROM``, decode fixed-width ``COPY TO`` output.

Format: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4. Pure numpy/pandas,
no database access: :mod:`include.segmentation.store.tableio` runs the COPY statements. Encoding
only takes frames it can write exactly as the CSV path would (``binary_payloads`` returns None
otherwise); decoding reads rows whose every field is fixed-width, so numpy reads them unparsed.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from include.segmentation.store.identifiers import WarehouseError

# --- encoding -----------------------------------------------------------------------------------

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, header extension length
_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH_DAY = 10_957  # 2000-01-01 in days since 1970-01-01: PostgreSQL's binary date/timestamp epoch
_PG_EPOCH_US = _PG_EPOCH_DAY * 86_400_000_000
_BINARY_FIXED = {"bool": ">u1", "int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8",
                 "date": ">i4", "timestamp": ">i8", "timestamptz": ">i8"}
_BINARY_TEXT = {"text", "varchar", "json"}
_INT_RANGE = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
_BINARY_CHUNK_ROWS = 250_000


class _NotBinary(Exception):
    """A column that the binary encoder does not handle exactly like the CSV path: use CSV."""


def _binary_column(s: pd.Series, typ: str) -> tuple[np.ndarray, Any]:
    """(null mask, encoded values of the non-null rows) of one column for binary COPY.

    Raises ``_NotBinary`` wherever the CSV path would behave differently (e.g. floats into an
    integer column, which PostgreSQL rejects, or dates not in ISO form): such frames go as CSV.
    """
    null = s.isna().to_numpy()
    present = s[~null]
    kind = present.to_numpy().dtype.kind if not isinstance(s.dtype, pd.api.extensions.ExtensionDtype) else ""
    if typ in ("float4", "float8"):
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
            raise _NotBinary
        try:
            values = pd.to_numeric(present, errors="raise").to_numpy(dtype="float64")
        except (TypeError, ValueError) as exc:
            raise _NotBinary from exc
        return null, values.astype(_BINARY_FIXED[typ])
    if typ in _INT_RANGE:
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_float_dtype(s.dtype):
            raise _NotBinary  # CSV would send 'True' / '3.0', which PostgreSQL rejects for integers
        if kind == "O" and not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in present):
            raise _NotBinary
        if not (pd.api.types.is_integer_dtype(s.dtype) or kind == "O"):
            raise _NotBinary
        values = present.to_numpy(dtype="int64") if len(present) else np.zeros(0, dtype="int64")
        limit = _INT_RANGE[typ]
        if len(values) and (values.min() < -limit or values.max() >= limit):
            raise _NotBinary
        return null, values.astype(_BINARY_FIXED[typ])
    if typ == "bool":
        if not pd.api.types.is_bool_dtype(s.dtype) and not all(isinstance(v, bool | np.bool_) for v in present):
            raise _NotBinary
        return null, present.to_numpy(dtype=bool).astype(">u1")
    if typ in ("timestamp", "timestamptz"):
        if not pd.api.types.is_datetime64_any_dtype(s.dtype):
            raise _NotBinary
        ts = pd.to_datetime(present, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[us]").astype("int64")
        ts = ts // 1_000_000 * 1_000_000  # whole seconds, as the CSV path writes them
        return null, (ts - _PG_EPOCH_US).astype(">i8")
    if typ == "date":
        return null, _binary_dates(present)
    if typ in _BINARY_TEXT:
        return null, _binary_texts(present, isinstance(s.dtype, pd.StringDtype))
    raise _NotBinary


def _binary_texts(present: pd.Series, known_str: bool) -> tuple[np.ndarray, np.ndarray]:
    """(byte length of each value, all values' UTF-8 bytes concatenated) of a text column.

    Each distinct value is encoded once (a run id or a country repeats a million times) and the
    concatenation is one numpy gather.
    """
    codes, uniques = pd.factorize(present.to_numpy(dtype=object))
    if not known_str and not all(isinstance(v, str) for v in uniques):
        raise _NotBinary  # CSV formats numbers, dates... its own way
    encoded = [v.encode("utf-8") for v in uniques]
    unique_len = np.fromiter(map(len, encoded), dtype="int64", count=len(encoded))
    unique_blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    unique_start = np.zeros(len(encoded), dtype="int64")
    np.cumsum(unique_len[:-1], out=unique_start[1:])
    lengths = unique_len[codes]
    first = np.zeros(len(codes), dtype="int64")
    np.cumsum(lengths[:-1], out=first[1:])
    total = int(lengths.sum())
    source = np.repeat(unique_start[codes] - first, lengths) + np.arange(total, dtype="int64")
    return lengths, unique_blob[source]


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _binary_dates(present: pd.Series) -> np.ndarray:
    """Days since 2000-01-01 (big-endian int32) of ISO date strings, ``date`` objects or midnight datetimes."""
    if isinstance(present.dtype, pd.DatetimeTZDtype):
        raise _NotBinary
    if pd.api.types.is_datetime64_any_dtype(present.dtype):
        stamps = present.to_numpy(dtype="datetime64[us]")
    else:
        codes, uniques = pd.factorize(present)  # a snapshot date column holds one value a million times
        parsed = []
        for v in uniques:
            if isinstance(v, str) and _ISO_DATE.match(v):
                parsed.append(np.datetime64(v, "us"))
            elif isinstance(v, date) and not isinstance(v, datetime):
                parsed.append(np.datetime64(v, "us"))
            else:
                raise _NotBinary
        stamps = np.array(parsed, dtype="datetime64[us]")[codes] if len(codes) else np.zeros(0, "datetime64[us]")
    days = stamps.astype("datetime64[D]")
    if np.any(days.astype("datetime64[us]") != stamps):
        raise _NotBinary  # a time of day: let PostgreSQL decide, as with CSV
    return (days.astype("int64") - _PG_EPOCH_DAY).astype(">i4")


def binary_payloads(df: pd.DataFrame, types: list[str]) -> list[bytes] | None:
    """The frame as binary COPY payloads of at most ``_BINARY_CHUNK_ROWS`` rows, or None to use CSV."""
    if any(t not in _BINARY_FIXED and t not in _BINARY_TEXT for t in types):
        return None
    payloads = []
    for start in range(0, len(df), _BINARY_CHUNK_ROWS):
        chunk = df.iloc[start:start + _BINARY_CHUNK_ROWS]
        try:
            encoded = [_binary_column(chunk.iloc[:, i], typ) for i, typ in enumerate(types)]
        except _NotBinary:
            return None
        payloads.append(_binary_payload(len(chunk), encoded))
    return payloads


def _scatter(buf: np.ndarray, pos: np.ndarray, raw: np.ndarray) -> None:
    """Write row ``i`` of the uint8 matrix ``raw`` into ``buf`` at byte offset ``pos[i]``."""
    width = raw.shape[1]
    buf[(pos[:, None] + np.arange(width)).ravel()] = raw.ravel()


def _with_length(values: np.ndarray) -> np.ndarray:
    """Fixed-width big-endian values prefixed with their int32 length: one (n, 4 + width) uint8 matrix."""
    width = values.dtype.itemsize
    rec = np.empty(len(values), dtype=[("len", ">i4"), ("val", values.dtype)])
    rec["len"] = width
    rec["val"] = values
    return rec.view(np.uint8).reshape(len(values), 4 + width)


_NULL_FIELD = np.frombuffer(b"\xff\xff\xff\xff", dtype=np.uint8).reshape(1, 4)


def _binary_payload(n: int, encoded: list[tuple[np.ndarray, Any]]) -> bytes:
    """Assemble one binary COPY payload (header, n tuples, trailer) from encoded columns, vectorised."""
    field_len = []
    for null, values in encoded:
        size = np.zeros(n, dtype="int64")
        size[~null] = values[0] if isinstance(values, tuple) else values.dtype.itemsize
        field_len.append(size)
    # An array: sum() would give its int start 0 only for a row without columns, which no table has.
    row_len = cast(np.ndarray, 2 + sum(4 + size for size in field_len))
    start = np.zeros(n, dtype="int64")
    np.cumsum(row_len[:-1], out=start[1:])
    start += len(_COPY_SIGNATURE)
    total = len(_COPY_SIGNATURE) + int(row_len.sum()) + len(_COPY_TRAILER)
    buf = np.empty(total, dtype=np.uint8)
    buf[: len(_COPY_SIGNATURE)] = np.frombuffer(_COPY_SIGNATURE, dtype=np.uint8)
    buf[total - len(_COPY_TRAILER):] = np.frombuffer(_COPY_TRAILER, dtype=np.uint8)
    count = np.array([len(encoded)], dtype=">i2").view(np.uint8)
    _scatter(buf, start, np.broadcast_to(count, (n, 2)))
    pos = start + 2
    for (null, values), size in zip(encoded, field_len, strict=True):
        if null.any():
            _scatter(buf, pos[null], np.broadcast_to(_NULL_FIELD, (int(null.sum()), 4)))
        present = pos[~null]
        if isinstance(values, tuple):
            lengths, blob = values
            _scatter(buf, present, lengths.astype(">i4").view(np.uint8).reshape(-1, 4))
            if len(blob):
                first = np.zeros(len(lengths), dtype="int64")
                np.cumsum(lengths[:-1], out=first[1:])
                buf[np.repeat(present + 4 - first, lengths) + np.arange(len(blob))] = blob
        elif len(values):
            _scatter(buf, present, _with_length(values))
        pos = pos + 4 + size
    return buf.tobytes()


# --- decoding -----------------------------------------------------------------------------------

# Binary read: the types sent as fixed-width binary fields. NULLs become a placeholder value plus
# a one-byte IS NULL flag, so every row has the same size (floats use NaN, as pandas does).
READ_FIXED = ("int2", "int4", "int8", "float4", "float8", "numeric", "bool", "date", "timestamp", "timestamptz")
_READ_BINARY = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8", "numeric": ">f8",
                "bool": "u1", "date": ">i4", "timestamp": ">i8", "timestamptz": ">i8"}
_READ_PLACEHOLDER = {"int2": "0", "int4": "0", "int8": "0", "bool": "false", "date": "DATE '2000-01-01'",
                     "timestamp": "TIMESTAMP '2000-01-01'", "timestamptz": "TIMESTAMPTZ '2000-01-01 00:00:00+00'"}


def _read_fields(name: str, typ: str) -> list[tuple[str, str]]:
    """(SQL expression, numpy type) of the binary fields sent for one column."""
    if typ in ("float4", "float8", "numeric"):
        value = f"{name}::float8" if typ == "numeric" else name
        return [(f"COALESCE({value}, 'NaN')", _READ_BINARY[typ])]
    return [(f"COALESCE({name}, {_READ_PLACEHOLDER[typ]})", _READ_BINARY[typ]), (f"({name} IS NULL)", "u1")]


def fixed_select(types: dict[str, str]) -> str:
    """The SELECT list that sends ``types``' columns (all in ``READ_FIXED``) as fixed-width binary fields."""
    return ", ".join(expr for name, typ in types.items() for expr, _ in _read_fields(name, typ))


def decode_fixed(payload: bytes, types: dict[str, str], what: str) -> dict[str, Any]:
    """Decode the binary COPY output of ``fixed_select(types)`` into one array or Series per column.

    ``what`` names the source (``table s.t``) in errors.
    """
    fields = {name: _read_fields(name, typ) for name, typ in types.items()}
    if payload[:11] != _COPY_SIGNATURE[:11] or payload[-2:] != _COPY_TRAILER:
        raise WarehouseError(f"{what}: unexpected binary COPY output")
    layout: list[tuple[str, str]] = [("count", ">i2")]
    for name, parts in fields.items():
        for i, (_, kind) in enumerate(parts):
            layout += [(f"{name}.{i}.len", ">i4"), (f"{name}.{i}", kind)]
    dtype = np.dtype(layout)
    header = 19 + int.from_bytes(payload[15:19], "big")
    body = len(payload) - header - 2
    if body % dtype.itemsize:
        raise WarehouseError(f"{what}: binary COPY rows are not of the expected size")
    rec = np.frombuffer(payload, dtype=dtype, offset=header, count=body // dtype.itemsize)
    out: dict[str, Any] = {}
    for name, typ in types.items():
        value = rec[f"{name}.0"]
        null = rec[f"{name}.1"].astype(bool) if len(fields[name]) > 1 else np.zeros(len(rec), dtype=bool)
        has_null = bool(null.any())
        if typ in ("float4", "float8", "numeric"):
            out[name] = value.astype("float64")
        elif typ == "bool":
            flags = value.astype(bool)
            if has_null:  # True/False objects with None for NULL (numpy's stubs reject None in np.where)
                flags = flags.astype(object)
                flags[null] = None
            out[name] = flags
        elif typ == "date":
            days = value.astype("int64") + _PG_EPOCH_DAY
            out[name] = days_to_dates(pd.Series(np.where(null, np.nan, days.astype("float64")))).to_numpy()
        elif typ in ("timestamp", "timestamptz"):
            stamps = (value.astype("int64") + _PG_EPOCH_US).astype("datetime64[us]")
            if has_null:
                stamps[null] = np.datetime64("NaT")
            series = pd.Series(stamps)
            out[name] = series.dt.tz_localize("UTC") if typ == "timestamptz" else series
        else:
            ints = value.astype("int64")
            out[name] = np.where(null, np.nan, ints) if has_null else ints
    return out


def days_to_dates(col: pd.Series) -> pd.Series:
    """Days since 1970-01-01 (NaN for NULL) -> ``datetime.date`` objects (None for NULL)."""
    values = col.to_numpy(dtype="float64")
    out = np.full(len(values), None, dtype=object)
    ok = ~np.isnan(values)
    out[ok] = values[ok].astype("int64").astype("datetime64[D]").astype(object)
    return pd.Series(out, index=col.index, name=col.name)
