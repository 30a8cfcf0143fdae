"""Fast warehouse I/O: binary COPY in ``bulk_insert`` and COPY-based ``read_table``, on real databases.

Both must give exactly what the row-by-row paths give: the binary COPY writes the same rows as
the CSV COPY, and ``read_table`` returns the same values as ``read_sql``.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import psycopg2.errors
import pytest
from sqlalchemy import Boolean, Column, Date, DateTime, Float, Integer, MetaData, Table, Text

from include.segmentation.store import pgcopy
from include.segmentation.store.engine import get_engine
from include.segmentation.store.pgcopy import binary_payloads
from include.segmentation.store.tableio import (
    _prepare_frame,
    bulk_insert,
    copy_csv,
    pg_column_types,
    read_sql,
    read_table,
)

pytestmark = pytest.mark.postgres

TEXTS = ["plain", "", "tab\there", "new\nline", "back\\slash", "\\N", "quote \"x\" and 'y'", "ünïcødé €", None, "a,b"]


def _table(name: str) -> Table:
    md = MetaData(schema="segmentation")
    return Table(
        name,
        md,
        Column("id", Integer),
        Column("label", Text),
        Column("score", Float),
        Column("n", Integer),
        Column("flag", Boolean),
        Column("day", Date),
        Column("at", DateTime(timezone=True)),
    )


def _frame(n: int = 40, texts: list[str | None] = TEXTS) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    score = rng.normal(size=n) * 1e3
    score[[1, 5]] = np.nan
    score[2] = np.inf
    score[3] = -0.0
    score[4] = 1e-300
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "label": pd.Series([texts[i % len(texts)] for i in range(n)], dtype="str"),
            "score": score,
            "n": pd.array([None if i % 7 == 0 else i * 1000 for i in range(n)], dtype="Int64"),
            "flag": [None if i == 3 else bool(v) for i, v in enumerate(rng.random(n) > 0.5)],
            "day": ["2026-11-26" if i % 3 else date(2011, 12, 9 + i % 2) for i in range(n)],
            "at": pd.to_datetime(
                [None if i % 11 == 0 else datetime(2026, 1, 1, 12, i % 60, 30, 999_999, tzinfo=timezone.utc) for i in range(n)],
                utc=True,
            ),
        }
    )


def test_binary_copy_writes_what_csv_copy_writes(pg_engine) -> None:
    texts = [t for t in TEXTS if t != "\\N"]  # CSV cannot tell the text '\N' from its NULL marker; binary can
    df = _frame(texts=texts)
    binary, csv = _table("via_binary"), _table("via_csv")
    with pg_engine.begin() as conn:
        binary.create(conn)
        csv.create(conn)
        types = pg_column_types(conn, "segmentation", "via_binary")
        assert list(types) == list(df.columns)
        assert binary_payloads(df, list(types.values())) is not None  # the fast path is really taken
        assert bulk_insert(conn, "segmentation", "via_binary", df) == len(df)
        payload = _prepare_frame(df, False).to_csv(index=False, header=False, na_rep="\\N", lineterminator="\n")
        copy_csv(conn, "segmentation", "via_csv", list(df.columns), payload)
    with pg_engine.connect() as conn:
        a = read_sql(conn, "SELECT * FROM segmentation.via_binary ORDER BY id")
        b = read_sql(conn, "SELECT * FROM segmentation.via_csv ORDER BY id")
    pd.testing.assert_frame_equal(a, b)
    assert a["label"].tolist()[: len(texts)] == [t if t is not None else a["label"].iloc[7] for t in texts]
    assert pd.isna(a["label"].iloc[7])
    assert math.isnan(a["score"].iloc[1]) and a["score"].iloc[2] == math.inf
    assert a["at"].iloc[1] == pd.Timestamp("2026-01-01 12:01:30", tz="UTC")  # whole seconds, like CSV


def test_bulk_insert_falls_back_to_csv_and_postgres_names_the_bad_value(pg_engine) -> None:
    table = _table("fallback")
    with pg_engine.begin() as conn:
        table.create(conn)
    bad = pd.DataFrame({"id": [1.5]})  # a float into an integer column: PostgreSQL must refuse it
    with pytest.raises(psycopg2.errors.InvalidTextRepresentation, match='integer: "1.5"'):
        with pg_engine.begin() as conn:
            bulk_insert(conn, "segmentation", "fallback", bad)
    odd = pd.DataFrame({"id": [1], "day": ["11/26/2026"], "label": [42]})  # not ISO, not text: CSV path
    assert binary_payloads(odd, ["int4", "date", "text"]) is None
    with pg_engine.begin() as conn:
        bulk_insert(conn, "segmentation", "fallback", odd)
    with pg_engine.connect() as conn:
        got = read_sql(conn, "SELECT id, day, label FROM segmentation.fallback")
    assert got.to_dict("records") == [{"id": 1, "day": date(2026, 11, 26), "label": "42"}]


def test_binary_copy_chunks_large_frames(pg_engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgcopy, "_BINARY_CHUNK_ROWS", 7)
    df = _frame(50)
    table = _table("chunked")
    with pg_engine.begin() as conn:
        table.create(conn)
        assert bulk_insert(conn, "segmentation", "chunked", df) == 50
    with pg_engine.connect() as conn:
        assert read_sql(conn, "SELECT COUNT(DISTINCT id) AS n FROM segmentation.chunked")["n"].iloc[0] == 50


def test_read_table_matches_read_sql(pg_engine) -> None:
    df = _frame()
    table = _table("readback")
    with pg_engine.begin() as conn:
        table.create(conn)
        bulk_insert(conn, "segmentation", "readback", df)
    with pg_engine.connect() as conn:
        fast = read_table(conn, "segmentation", "readback")  # binary + text COPY in its own snapshot
        assert not conn.in_transaction()
        some = read_table(conn, "segmentation", "readback", ["label", "id"])
        numbers = read_table(conn, "segmentation", "readback", ["n", "flag", "day", "at", "score"])
    with pg_engine.connect() as conn:
        slow = read_sql(conn, "SELECT * FROM segmentation.readback")
        inside = read_table(conn, "segmentation", "readback")  # inside the caller's transaction: text COPY only
        label_inside = read_table(conn, "segmentation", "readback", ["label"])  # '' rows are blank lines
    pd.testing.assert_frame_equal(fast, slow)
    pd.testing.assert_frame_equal(label_inside, slow[["label"]])
    pd.testing.assert_frame_equal(inside, slow)
    pd.testing.assert_frame_equal(some, slow[["label", "id"]])
    pd.testing.assert_frame_equal(numbers, slow[["n", "flag", "day", "at", "score"]])
    assert fast["label"].tolist()[:8] == TEXTS[:8]  # including the text '\\N', which binary COPY keeps


def test_read_table_empty_missing_and_sqlite(pg_engine, sqlite_url: str) -> None:
    table = _table("empty")
    with pg_engine.begin() as conn:
        table.create(conn)
    with pg_engine.connect() as conn:
        empty = read_table(conn, "segmentation", "empty")
        assert empty.empty and list(empty.columns) == [c.name for c in table.columns]
        with pytest.raises(Exception, match="segmentation.nope does not exist"):
            read_table(conn, "segmentation", "nope")
        with pytest.raises(Exception, match="no column"):
            read_table(conn, "segmentation", "empty", ["ghost"])
    lite = get_engine(sqlite_url)
    try:
        with lite.begin() as conn:
            _table("readback").create(conn)
            bulk_insert(conn, "segmentation", "readback", _frame(10))
        with lite.connect() as conn:
            pd.testing.assert_frame_equal(
                read_table(conn, "segmentation", "readback"), read_sql(conn, "SELECT * FROM segmentation.readback")
            )
    finally:
        lite.dispose()
