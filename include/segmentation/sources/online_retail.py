"""Loader for the UCI "Online Retail" file (real transactions of a UK online retailer, 2010-12 .. 2011-12).

Reads the CSV (plain or gzip), validates it completely, maps it onto the ``raw`` source contract
and loads it in one transaction, so the pipeline can run on real data as well as synthetic data.

Mapping: InvoiceNo -> order_id; position of the line within its invoice (1-based, file order) ->
line_number; StockCode -> product_id; Quantity, UnitPrice as they are; CustomerID -> customer_id as
text (empty = guest checkout, NULL); InvoiceDate, taken as UTC -> ordered_at; category NULL,
discount 0. Exact duplicate lines stay distinct lines. One customer per CustomerID: created_at =
first invoice (cancellations included), country = the country of most of the customer's invoices,
a tie going to the country of the latest invoice; marketing_consent false, other columns NULL.
No browsing events exist in this data.

Prices with more decimals than ``raw.transactions.unit_price`` holds (the real file has four lines
at 0.001 against numeric(12,2)) are rounded half-up to the column's scale by the loader itself, so
PostgreSQL and SQLite store the same value, and the number of such lines and the resulting change of
the sales total are returned in the load statistics and logged.

The whole file is parsed and validated before the warehouse is touched; the load itself is one
transaction (on PostgreSQL the raw tables are locked against concurrent writers meanwhile).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
import time
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from include.segmentation.settings import online_retail_path
from include.segmentation.sources.contract import RAW_TABLES, analyze_raw, create_source_contract
from include.segmentation.sources.contract import customers as contract_customers
from include.segmentation.sources.contract import transactions as contract_transactions
from include.segmentation.store import (
    WarehouseError,
    bulk_insert,
    describe,
    is_sqlite,
    table_exists,
    validate_identifier,
)

log = logging.getLogger(__name__)

default_path = online_retail_path  # the file to load when none is given

DEFAULT_PATH: Path = default_path()

#: The columns the loader needs; Description and any other column are ignored.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)

#: Online Retail II (2009-12 .. 2011-12) names three columns differently; detected from the header.
ONLINE_RETAIL_II_COLUMNS: dict[str, str] = {"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"}


def _as_layout_one(columns: list[str]) -> list[str]:
    """Header columns with the Online Retail II names mapped to the original layout's names.

    The II layout is recognised when all three of its names are present and none of the originals.
    """
    if set(ONLINE_RETAIL_II_COLUMNS) <= set(columns) and not set(ONLINE_RETAIL_II_COLUMNS.values()) & set(columns):
        return [ONLINE_RETAIL_II_COLUMNS.get(c, c) for c in columns]
    return columns


CUSTOMER_COLUMNS: tuple[str, ...] = tuple(c.name for c in contract_customers.columns)
TRANSACTION_COLUMNS: tuple[str, ...] = tuple(c.name for c in contract_transactions.columns)

_OTHER_DELIMITERS = {";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?$")
_INT32_MAX = 2**31 - 1
_PRICE_LIMIT = 10**10  # numeric(12, 2) holds less than 10^10
_MAX_LISTED = 5


def _open_text(path: Path) -> io.TextIOBase:
    """Open ``path`` as UTF-8 text, gunzipping when it is gzip-compressed (by its magic bytes)."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _check_header(path: Path) -> int:
    """Fail early and clearly on an empty file, a wrong delimiter or missing columns; return the field count."""
    try:
        with _open_text(path) as fh:
            header = fh.readline()
            has_data = bool(fh.readline().strip())
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ValueError(f"online retail file {path}: cannot be read as UTF-8 CSV (plain or gzip): {exc}") from exc
    header = header.strip("\r\n")
    if not header.strip():
        raise ValueError(f"online retail file {path} is empty: expected a header line with {', '.join(REQUIRED_COLUMNS)}")
    columns = _as_layout_one([c.strip() for c in next(csv.reader([header]))])
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        for sep, name in _OTHER_DELIMITERS.items():
            parts = {c.strip().strip('"') for c in header.split(sep)}
            if sep in header and (len(parts & set(REQUIRED_COLUMNS)) >= 2 or "," not in header):
                raise ValueError(
                    f"online retail file {path}: the header is {name}-separated; the loader expects "
                    "comma-separated values (re-export the file as CSV with ',' as delimiter)"
                )
        raise ValueError(
            f"online retail file {path}: missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(columns) or 'none'}; required: {', '.join(REQUIRED_COLUMNS)})"
        )
    if not has_data:
        raise ValueError(f"online retail file {path} is empty: it has a header line but no data lines")
    return len(columns)


def _scan_records(path: Path, n_fields: int) -> np.ndarray | None:
    """Check every record has the header's number of fields (pandas silently pads short lines).

    Returns the file line on which each data record starts, or None when that is simply
    ``record index + 2`` (one line per record, no blank lines), which is the common case.
    """
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            next(reader, None)
            counts = Counter(map(len, reader))
            last_line = reader.line_num
        if set(counts) <= {n_fields} and last_line == sum(counts.values()) + 1:
            return None
        starts: list[int] = []
        bad: list[str] = []
        n_bad = 0
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            next(reader, None)
            end = reader.line_num
            for row in reader:
                start, end = end + 1, reader.line_num
                if not row:  # blank line: pandas skips it too
                    continue
                if len(row) != n_fields:
                    n_bad += 1
                    if len(bad) < _MAX_LISTED:
                        bad.append(f"line {start} has {len(row)}")
                starts.append(start)
    except (csv.Error, UnicodeDecodeError, EOFError, OSError) as exc:
        raise ValueError(f"online retail file {path}: not a well-formed UTF-8 CSV file: {exc}") from exc
    if n_bad:
        more = f" (and {n_bad - len(bad)} more)" if n_bad > len(bad) else ""
        raise ValueError(
            f"online retail file {path}: {n_bad} line(s) break the rule 'every line has the header's "
            f"{n_fields} comma-separated fields': {'; '.join(bad)}{more}"
        )
    return np.asarray(starts, dtype="int64")


def _bad_values(
    path: Path, lines: np.ndarray | None, column: str, values: pd.Series, bad: pd.Series | np.ndarray, rule: str
) -> None:
    """Raise a ValueError naming the file, column, rule and first offending lines if ``bad`` has any True."""
    bad = np.asarray(bad, dtype=bool)
    if not bad.any():
        return
    positions = np.flatnonzero(bad)

    def line(p: int) -> int:
        return int(lines[p]) if lines is not None else int(p) + 2  # line 1 is the header

    listed = "; ".join(f"line {line(p)}: {values.iloc[p]!r}" for p in positions[:_MAX_LISTED])
    more = f" (and {len(positions) - _MAX_LISTED} more)" if len(positions) > _MAX_LISTED else ""
    raise ValueError(
        f"online retail file {path}: column {column}: {len(positions)} value(s) break the rule "
        f"'{rule}': {listed}{more}"
    )


def read_online_retail(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Parse and validate an Online Retail CSV (or .csv.gz); raise ValueError naming column, rule and line.

    Both layouts are accepted, told apart by the header: the original (InvoiceNo, UnitPrice,
    CustomerID; 2010-2011) and Online Retail II (Invoice, Price, Customer ID; 2009-2011), whose
    columns are renamed to the original's.

    Returns one row per data line, in file order, with InvoiceNo, StockCode (str), Quantity (int64),
    InvoiceDate (datetime64, UTC: the file's local times are taken as UTC), UnitPrice (float64),
    CustomerID and Country (str, missing as NA). Integral float ids such as ``17850.0`` become ``17850``.
    Other columns (Description) are not returned.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"online retail file not found: {path} (pass a path or set ONLINE_RETAIL_CSV)")
    lines = _scan_records(path, _check_header(path))
    try:
        with _open_text(path) as fh:
            raw = pd.read_csv(fh, dtype=str, keep_default_na=False, na_filter=False, index_col=False)
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise ValueError(f"online retail file {path}: not a well-formed CSV file: {exc}") from exc
    raw.columns = _as_layout_one([str(c).strip() for c in raw.columns])
    raw = raw[list(REQUIRED_COLUMNS)]
    text = {c: raw[c].astype(str).str.strip() for c in REQUIRED_COLUMNS}

    def check(column: str, bad: pd.Series, rule: str) -> None:
        _bad_values(path, lines, column, raw[column], bad, rule)

    for col in ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice"):
        check(col, text[col] == "", "required, must not be empty")

    qty_text = text["Quantity"]
    check("Quantity", ~qty_text.str.match(_INTEGER), "must be a whole number")
    check("Quantity", qty_text.str.lstrip("+-").str.lstrip("0").str.len() > 10, f"must be within +-{_INT32_MAX}")
    quantity = qty_text.str.lstrip("+").astype("int64")
    check("Quantity", quantity.abs() > _INT32_MAX, f"must be within +-{_INT32_MAX}")

    price_text = text["UnitPrice"]
    check("UnitPrice", ~price_text.str.match(_DECIMAL), "must be a decimal number like 2.55")
    price = price_text.astype("float64")
    check("UnitPrice", price.abs() >= _PRICE_LIMIT, "must be below 10,000,000,000")

    date_text = text["InvoiceDate"]
    ordered_at = pd.to_datetime(date_text.where(date_text.str.match(_TIMESTAMP)), format="ISO8601", errors="coerce")
    check("InvoiceDate", ordered_at.isna(), "must be a date-time YYYY-MM-DD HH:MM[:SS]")

    customer = text["CustomerID"].str.replace(r"^(\d+)\.0*$", r"\1", regex=True)
    country = text["Country"]
    return pd.DataFrame(
        {
            "InvoiceNo": text["InvoiceNo"],
            "StockCode": text["StockCode"],
            "Quantity": quantity,
            "InvoiceDate": ordered_at.dt.tz_localize("UTC"),
            "UnitPrice": price,
            "CustomerID": customer.where(customer != ""),
            "Country": country.where(country != ""),
        }
    )


def excess_precision(prices: pd.Series, scale: int = 2) -> pd.Series:
    """True where a price has more decimals than ``scale`` (these cannot be stored unchanged)."""
    values = prices.to_numpy(dtype="float64")
    return pd.Series(np.round(values, scale) != values, index=prices.index)


def round_prices(prices: pd.Series, scale: int = 2) -> pd.Series:
    """Round prices half-up to ``scale`` decimals, exactly in decimal (not binary) arithmetic."""
    out = prices.astype("float64").copy()
    mask = excess_precision(out, scale)
    if mask.any():
        quantum = Decimal(1).scaleb(-scale)
        out[mask] = [float(Decimal(repr(float(v))).quantize(quantum, rounding=ROUND_HALF_UP)) for v in out[mask]]
    return out


def to_source_contract(df: pd.DataFrame, price_scale: int = 2) -> dict[str, pd.DataFrame]:
    """Map a frame from :func:`read_online_retail` onto the contract: ``{"customers", "transactions"}``.

    Pure (the input is not modified). Prices are rounded half-up to ``price_scale`` decimals, the
    scale of ``raw.transactions.unit_price``.
    """
    src = df.reset_index(drop=True)
    order_id = src["InvoiceNo"].astype(str)
    transactions = pd.DataFrame(
        {
            "order_id": order_id,
            "line_number": (order_id.groupby(order_id, sort=False).cumcount() + 1).astype("int64"),
            "customer_id": src["CustomerID"].astype(object).where(src["CustomerID"].notna(), None),
            "ordered_at": pd.to_datetime(src["InvoiceDate"], utc=True),
            "product_id": src["StockCode"].astype(str),
            "category": None,
            "quantity": src["Quantity"].astype("int64"),
            "unit_price": round_prices(src["UnitPrice"], price_scale),
            "discount": 0.0,
        }
    )
    return {"customers": _customers(df), "transactions": transactions[list(TRANSACTION_COLUMNS)]}


def _customers(df: pd.DataFrame) -> pd.DataFrame:
    """One row per CustomerID: first invoice time, and the country of most invoices (tie: latest invoice)."""
    known = df.loc[df["CustomerID"].notna(), ["CustomerID", "InvoiceNo", "InvoiceDate", "Country"]].copy()
    known["pos"] = np.arange(len(known))
    first = known.groupby("CustomerID", sort=True)["InvoiceDate"].min()
    with_country = known[known["Country"].notna()]
    per_country = with_country.groupby(["CustomerID", "Country"], sort=False).agg(
        invoices=("InvoiceNo", "nunique"), last_at=("InvoiceDate", "max"), last_pos=("pos", "max")
    )
    best = (
        per_country.reset_index()
        .sort_values(["CustomerID", "invoices", "last_at", "last_pos"], ascending=[True, False, False, False])
        .drop_duplicates("CustomerID")
        .set_index("CustomerID")["Country"]
    )
    out = pd.DataFrame({"customer_id": first.index.astype(str), "created_at": pd.to_datetime(first, utc=True)})
    out = out.reset_index(drop=True)
    out["birth_year"] = pd.array([pd.NA] * len(out), dtype="Int64")
    for col in ("gender", "city", "email", "phone"):
        out[col] = None
    country = best.reindex(first.index)
    out["country"] = country.astype(object).where(country.notna(), None).to_numpy()
    out["marketing_consent"] = False
    return out[list(CUSTOMER_COLUMNS)]


def _price_scale(conn: Connection) -> int:
    """The number of decimals ``raw.transactions.unit_price`` stores in this warehouse (reflected)."""
    for col in sa.inspect(conn).get_columns("transactions", schema="raw"):
        if col["name"] == "unit_price":
            scale = getattr(col["type"], "scale", None)
            if isinstance(scale, int):
                return scale
    contract_type = contract_transactions.c.unit_price.type
    assert isinstance(contract_type, sa.Numeric)  # the contract declares unit_price NUMERIC(12, 2)
    return int(contract_type.scale or 2)


def _row_counts(conn: Connection) -> dict[str, int]:
    """Rows in each raw contract table that exists."""
    return {
        t: int(conn.exec_driver_sql(f"SELECT count(*) FROM raw.{validate_identifier(t, 'table')}").scalar_one())
        for t in RAW_TABLES
        if table_exists(conn, "raw", t)
    }


def _refuse_if_filled(counts: dict[str, int], path: Path) -> None:
    if any(counts.values()):
        filled = ", ".join(f"raw.{t} has {n} rows" for t, n in counts.items() if n)
        raise WarehouseError(
            f"refusing to load {path.name} into a non-empty warehouse ({filled}); use replace=True "
            "(CLI: --replace) to empty raw.customers, raw.transactions and raw.browsing_events first"
        )


def load_online_retail(
    engine: Engine, path: str | os.PathLike[str] | None = None, replace: bool = False
) -> dict[str, Any]:
    """Load an Online Retail file into ``raw.customers``/``raw.transactions`` in one transaction.

    The file is validated completely before the warehouse is touched; the source contract is created
    if missing. Without ``replace`` the load is refused when any raw table already has rows; with it,
    the raw tables (browsing events included) are emptied first inside the same transaction.
    Returns counts (lines, customers, guest lines, rounded prices, seconds).
    """
    started = time.monotonic()
    path = Path(path) if path is not None else default_path()
    if not replace:  # fail fast; checked again under lock inside the load transaction
        with engine.connect() as conn:
            _refuse_if_filled(_row_counts(conn), path)
    df = read_online_retail(path)
    create_source_contract(engine)
    with engine.connect() as conn:
        scale = _price_scale(conn)
    frames = to_source_contract(df, price_scale=scale)
    rounded = excess_precision(df["UnitPrice"], scale)
    delta = _rounding_delta(df.loc[rounded, "Quantity"], df.loc[rounded, "UnitPrice"], scale)

    with engine.begin() as conn:
        sqlite = is_sqlite(conn)
        if not sqlite:
            conn.exec_driver_sql(
                "LOCK TABLE raw.customers, raw.transactions, raw.browsing_events IN SHARE ROW EXCLUSIVE MODE"
            )
        before = _row_counts(conn)
        if not replace:
            _refuse_if_filled(before, path)
        if replace and any(before.values()):
            if sqlite:
                for table in ("browsing_events", "transactions", "customers"):
                    conn.exec_driver_sql(f"DELETE FROM raw.{table}")
            else:
                conn.exec_driver_sql("TRUNCATE raw.browsing_events, raw.transactions, raw.customers")
        n_customers = bulk_insert(conn, "raw", "customers", frames["customers"], CUSTOMER_COLUMNS)
        n_lines = bulk_insert(conn, "raw", "transactions", frames["transactions"], TRANSACTION_COLUMNS)

    _analyze(engine)
    tx = frames["transactions"]
    stats: dict[str, Any] = {
        "file": str(path),
        "warehouse": describe(engine),
        "lines": n_lines,
        "customers": n_customers,
        "invoices": int(tx["order_id"].nunique()),
        "guest_lines": int(tx["customer_id"].isna().sum()),
        "cancellation_lines": int(tx["order_id"].str.startswith("C").sum()),
        "first_ordered_at": tx["ordered_at"].min().isoformat(),
        "last_ordered_at": tx["ordered_at"].max().isoformat(),
        "unit_price_scale": scale,
        "unit_price_rounded_lines": int(rounded.sum()),
        "unit_price_rounded_to_zero_lines": int((rounded.to_numpy() & (tx["unit_price"].to_numpy() == 0)).sum()),
        "rounding_change_of_total": str(delta),
        "replaced_rows": before if replace else {},
        "seconds": round(time.monotonic() - started, 2),
    }
    if stats["unit_price_rounded_lines"]:
        log.warning(
            "online retail: %d line(s) had a UnitPrice with more than %d decimals and were rounded half-up "
            "(%d to 0.00); the total of quantity x unit_price changed by %s",
            stats["unit_price_rounded_lines"], scale, stats["unit_price_rounded_to_zero_lines"], delta,
        )
    log.info("online retail: loaded %d lines and %d customers into %s in %.1fs",
             n_lines, n_customers, stats["warehouse"], stats["seconds"])
    return stats


def _rounding_delta(quantity: pd.Series, price: pd.Series, scale: int) -> Decimal:
    """Exact change of sum(quantity * unit_price) caused by rounding these prices to ``scale``."""
    quantum = Decimal(1).scaleb(-scale)
    total = Decimal(0)
    for q, p in zip(quantity, price, strict=True):
        exact = Decimal(repr(float(p)))
        total += int(q) * (exact.quantize(quantum, rounding=ROUND_HALF_UP) - exact)
    return total


def _analyze(engine: Engine) -> None:
    """Refresh planner statistics after the bulk load (after the commit; a failure only logs a warning)."""
    try:
        analyze_raw(engine, ("customers", "transactions"))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("online retail: ANALYZE after the load failed (data is loaded): %s", type(exc).__name__)
