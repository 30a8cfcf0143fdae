"""Loading synthetic data into both warehouse flavours: counts, content, refusal, replace, atomicity."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.cli import main as cli_main
from include.segmentation.sources import contract, generate_chunk, generate_to_warehouse, synthetic
from include.segmentation.sources.synthetic import load as synthetic_load
from include.segmentation.store import WarehouseError, get_engine, read_sql

END = date(2026, 3, 31)
DAYS = 400
N = 300
CHUNK = 120  # three chunks: 120, 120, 60
TABLES = ("raw.customers", "raw.transactions", "raw.browsing_events", "evaluation.planted_types")


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}


def _load(engine, seed: int = 42, replace: bool = False, customers: int = N) -> dict:
    return generate_to_warehouse(engine, customers=customers, days=DAYS, end_date=END, seed=seed,
                                 chunk_customers=CHUNK, replace=replace)


def _expected(seed: int = 42, customers: int = N) -> dict[str, pd.DataFrame]:
    parts = [generate_chunk(i, 1 + i * CHUNK, min(CHUNK, customers - i * CHUNK), DAYS, END, seed)
             for i in range((customers + CHUNK - 1) // CHUNK)]
    return {name: pd.concat([p[name] for p in parts], ignore_index=True) for name in parts[0]}


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(df)))
    for col in df.columns:
        s = df[col].reset_index(drop=True)
        if col in {"created_at", "ordered_at", "occurred_at"}:
            out[col] = pd.to_datetime(s, utc=True).astype("datetime64[us, UTC]")
        elif col in {"unit_price", "discount", "dwell_seconds"}:
            out[col] = pd.to_numeric(s.astype(object).where(s.notna(), np.nan), errors="coerce").astype(float)
        elif col in {"line_number", "quantity", "birth_year"}:
            out[col] = pd.array(s.astype(object).where(s.notna(), None), dtype="Int64")
        elif col == "marketing_consent":
            out[col] = s.astype(bool)
        else:
            out[col] = s.astype(object).where(s.notna(), None)
    return out


def _db_frame(engine, table: str, order_by: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_sql(conn, f"SELECT * FROM {table} ORDER BY {order_by}")


@pytest.fixture
def fresh_engine(warehouse_url):
    """An engine on a warehouse where nothing exists yet (the generator creates the contract)."""
    eng = get_engine(warehouse_url)
    yield eng
    eng.dispose()


def test_load_counts_content_and_indexes(fresh_engine) -> None:
    stats = _load(fresh_engine)
    counts = _counts(fresh_engine)
    assert counts == {
        "raw.customers": stats["customers"],
        "raw.transactions": stats["transactions"],
        "raw.browsing_events": stats["browsing_events"],
        "evaluation.planted_types": stats["planted_types"],
    }
    assert stats["customers"] == N and stats["chunks"] == 3
    assert sum(stats["planted_type_counts"].values()) == N
    assert stats["transactions"] > 5 * N and stats["browsing_events"] > 15 * N
    assert stats["seconds"] > 0 and stats["snapshot_date"] == "2026-04-01"

    # exactly the rows generate_chunk produces, through COPY (PostgreSQL) or executemany (SQLite)
    exp = _expected()
    for table, key in (("raw.customers", "customer_id"), ("raw.transactions", "order_id, line_number"),
                       ("raw.browsing_events", "event_id"), ("evaluation.planted_types", "customer_id")):
        name = table.split(".")[1]
        got = _normalise(_db_frame(fresh_engine, table, key))
        want = _normalise(exp[name].sort_values([k.strip() for k in key.split(",")], kind="stable"))
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, obj=table)

    insp = sa.inspect(fresh_engine)
    names = {i["name"] for t in ("transactions", "browsing_events") for i in insp.get_indexes(t, schema="raw")}
    assert {ix.name for ix in contract.RAW_INDEXES} <= names


def test_second_load_refused_and_replace_works(fresh_engine) -> None:
    first = _load(fresh_engine)
    before = _counts(fresh_engine)
    with pytest.raises(WarehouseError, match="replace"):
        _load(fresh_engine, seed=7)
    assert _counts(fresh_engine) == before

    second = _load(fresh_engine, seed=7, replace=True, customers=150)
    after = _counts(fresh_engine)
    assert after["raw.customers"] == after["evaluation.planted_types"] == 150
    assert after["raw.transactions"] == second["transactions"] != first["transactions"]
    assert after["raw.browsing_events"] == second["browsing_events"]
    exp = _expected(seed=7, customers=150)
    got = _db_frame(fresh_engine, "raw.transactions", "order_id, line_number")
    assert got["order_id"].tolist() == exp["transactions"].sort_values(["order_id", "line_number"])["order_id"].tolist()


def test_planted_types_not_in_raw(fresh_engine) -> None:
    _load(fresh_engine, customers=60)
    insp = sa.inspect(fresh_engine)
    for table in contract.RAW_TABLES:
        assert not any("planted" in c["name"] for c in insp.get_columns(table, schema="raw"))
    with fresh_engine.connect() as conn:
        types = {r[0] for r in conn.execute(sa.text("SELECT DISTINCT planted_type FROM evaluation.planted_types"))}
    assert types <= set(synthetic.ALL_TYPES)


def _fail_on_second_chunk(monkeypatch) -> None:
    real = synthetic_load.build_chunk

    def broken(chunk_index, *args, **kwargs):
        if chunk_index == 1:
            raise RuntimeError("disk on fire")
        return real(chunk_index, *args, **kwargs)

    monkeypatch.setattr(synthetic_load, "build_chunk", broken)


def test_failed_load_leaves_empty_warehouse_empty(fresh_engine, monkeypatch) -> None:
    _fail_on_second_chunk(monkeypatch)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _load(fresh_engine)
    assert set(_counts(fresh_engine).values()) == {0}


def test_failed_replace_leaves_previous_data(fresh_engine, monkeypatch) -> None:
    _load(fresh_engine)
    before = _counts(fresh_engine)
    with fresh_engine.connect() as conn:
        sample = conn.execute(sa.text("SELECT order_id FROM raw.transactions ORDER BY order_id LIMIT 5")).scalars().all()
    _fail_on_second_chunk(monkeypatch)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _load(fresh_engine, seed=9, replace=True)
    assert _counts(fresh_engine) == before
    with fresh_engine.connect() as conn:
        again = conn.execute(sa.text("SELECT order_id FROM raw.transactions ORDER BY order_id LIMIT 5")).scalars().all()
    assert again == sample
    insp = sa.inspect(fresh_engine)
    names = {i["name"] for t in ("transactions", "browsing_events") for i in insp.get_indexes(t, schema="raw")}
    assert {ix.name for ix in contract.RAW_INDEXES} <= names  # the dropped indexes came back with the rollback


def test_duplicate_key_mid_load_rolls_back(fresh_engine, monkeypatch) -> None:
    """A chunk that collides with an earlier one (same customer ids) fails in the database itself."""
    real = synthetic_load.build_chunk

    def colliding(chunk_index, first_customer, *args, **kwargs):
        return real(chunk_index, 1 if chunk_index == 1 else first_customer, *args, **kwargs)

    monkeypatch.setattr(synthetic_load, "build_chunk", colliding)
    with pytest.raises(sa.exc.IntegrityError):
        _load(fresh_engine)
    assert set(_counts(fresh_engine).values()) == {0}


def test_bad_arguments_rejected_before_touching_warehouse(fresh_engine) -> None:
    with pytest.raises(ValueError, match="days"):
        generate_to_warehouse(fresh_engine, customers=10, days=5, end_date=END, seed=1)
    with pytest.raises(ValueError, match="future"):
        generate_to_warehouse(fresh_engine, customers=10, days=60, end_date=date(2999, 1, 1), seed=1)
    assert not sa.inspect(fresh_engine).has_table("customers", schema="raw")


def test_cli_generate(warehouse_url, capsys) -> None:
    args = ["--warehouse", warehouse_url, "generate", "--customers", "40", "--days", "60", "--end-date", "2026-01-31",
            "--chunk-customers", "25"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert '"customers": 40' in out
    assert cli_main(args) == 2
    assert "--replace" in capsys.readouterr().err
    assert cli_main(args + ["--replace", "--seed", "3"]) == 0
