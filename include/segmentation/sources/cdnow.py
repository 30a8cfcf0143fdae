"""Load the CDNOW sample (Fader & Hardie's CD buyers, 1997-01..1998-06) into the ``raw`` contract.

The file has no header, whitespace-separated: master id, sample customer id, date YYYYMMDD, number
of CDs, dollar value. Each line becomes one order of one line (``quantity`` = CDs, ``unit_price`` =
value / CDs rounded to cents, or the value with quantity 1 when the CD count is 0); customers are
created at their first purchase (no demographics, no consent); there is no browsing. This is the
"bring your own data" route: the pipeline then reads ``raw.*`` as for any warehouse.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from include.segmentation.sources.contract import create_source_contract
from include.segmentation.sources.online_retail import CUSTOMER_COLUMNS, TRANSACTION_COLUMNS
from include.segmentation.store import bulk_insert, is_sqlite

log = logging.getLogger(__name__)


COLUMNS = ("master_id", "customer_id", "day", "cds", "value")


def read_cdnow(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The file as a frame: customer_id (text), ordered_at (UTC noon of the day), cds, value.

    A file that is not in the CDNOW layout is refused with the file, data line and value (nothing is
    loaded), instead of loading zeros.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CDNOW file not found: {path}")
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, names=list(COLUMNS), dtype=str)
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: not the CDNOW layout (5 whitespace-separated columns): {exc}") from exc
    if df.empty:
        raise ValueError(f"{path}: no purchase lines")
    parsed = {
        "customer_id": df["customer_id"],
        "day": pd.to_datetime(df["day"], format="%Y%m%d", utc=True, errors="coerce"),
        "cds": pd.to_numeric(df["cds"], errors="coerce"),
        "value": pd.to_numeric(df["value"], errors="coerce"),
    }
    for col, values in parsed.items():
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            line = int(bad[0])
            raise ValueError(f"{path}, data line {line + 1}: {col} {df[col].iloc[line]!r} is missing or not valid "
                             f"(expected: master id, customer id, YYYYMMDD, number of CDs, dollar value)")
    df["ordered_at"] = parsed["day"] + pd.Timedelta(hours=12)
    df["cds"], df["value"] = parsed["cds"], parsed["value"]
    return df


def to_source_contract(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``{"customers", "transactions"}`` frames in the contract's columns."""
    cds = pd.to_numeric(df["cds"], errors="coerce").fillna(0).astype("int64")
    value = pd.to_numeric(df["value"], errors="coerce").fillna(0.0)
    quantity = np.where(cds > 0, cds, 1)
    transactions = pd.DataFrame({
        "order_id": [f"cdnow-{i}" for i in range(len(df))],
        "line_number": 1,
        "customer_id": df["customer_id"].astype(str),
        "ordered_at": df["ordered_at"],
        "product_id": "cd",
        "category": None,
        "quantity": quantity.astype("int64"),
        "unit_price": (value / quantity).round(2),
        "discount": 0.0,
    })
    first = df.groupby("customer_id")["ordered_at"].min()
    customers = pd.DataFrame({"customer_id": first.index.astype(str), "created_at": first.to_numpy()})
    customers["birth_year"] = pd.array([pd.NA] * len(customers), dtype="Int64")
    for col in ("gender", "country", "city", "email", "phone"):
        customers[col] = None
    customers["marketing_consent"] = False
    return {"customers": customers[list(CUSTOMER_COLUMNS)], "transactions": transactions[list(TRANSACTION_COLUMNS)]}


def load_cdnow(engine: Engine, path: str | os.PathLike[str], replace: bool = False) -> dict[str, Any]:
    """Load the CDNOW sample into ``raw.customers`` / ``raw.transactions`` in one transaction."""
    frames = to_source_contract(read_cdnow(path))
    create_source_contract(engine)
    with engine.begin() as conn:
        tables = ("browsing_events", "transactions", "customers")
        if replace:
            for table in tables:
                conn.exec_driver_sql(f"DELETE FROM raw.{table}")
        elif any(conn.exec_driver_sql(f"SELECT count(*) FROM raw.{t}").scalar_one() for t in tables):
            raise ValueError("refusing to load CDNOW into a non-empty warehouse; pass replace=True (--replace)")
        n_customers = bulk_insert(conn, "raw", "customers", frames["customers"], CUSTOMER_COLUMNS)
        n_lines = bulk_insert(conn, "raw", "transactions", frames["transactions"], TRANSACTION_COLUMNS)
    if not is_sqlite(engine):
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE raw.transactions")
    log.info("cdnow: loaded %d lines and %d customers", n_lines, n_customers)
    tx = frames["transactions"]
    return {
        "lines": n_lines,
        "customers": n_customers,
        "first_day": tx["ordered_at"].min().date().isoformat(),
        "last_day": tx["ordered_at"].max().date().isoformat(),
    }
