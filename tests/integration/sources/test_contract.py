"""The source contract exists exactly as documented, on PostgreSQL and on SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from include.segmentation.sources import create_source_contract

EXPECTED_PG = {
    "customers": {
        "customer_id": ("text", "NO"),
        "created_at": ("timestamp with time zone", "NO"),
        "birth_year": ("integer", "YES"),
        "gender": ("text", "YES"),
        "country": ("text", "YES"),
        "city": ("text", "YES"),
        "email": ("text", "YES"),
        "phone": ("text", "YES"),
        "marketing_consent": ("boolean", "NO"),
    },
    "transactions": {
        "order_id": ("text", "NO"),
        "line_number": ("integer", "NO"),
        "customer_id": ("text", "YES"),
        "ordered_at": ("timestamp with time zone", "NO"),
        "product_id": ("text", "NO"),
        "category": ("text", "YES"),
        "quantity": ("integer", "NO"),
        "unit_price": ("numeric", "NO"),
        "discount": ("numeric", "NO"),
    },
    "browsing_events": {
        "event_id": ("text", "NO"),
        "session_id": ("text", "NO"),
        "customer_id": ("text", "YES"),
        "occurred_at": ("timestamp with time zone", "NO"),
        "event_type": ("text", "NO"),
        "product_id": ("text", "YES"),
        "category": ("text", "YES"),
        "search_query": ("text", "YES"),
        "dwell_seconds": ("double precision", "YES"),
    },
}


def test_contract_columns_types_and_nullability(engine) -> None:
    insp = sa.inspect(engine)
    for table, cols in EXPECTED_PG.items():
        got = {c["name"]: c for c in insp.get_columns(table, schema="raw")}
        assert list(got) == list(cols), table
        for name, (_pg_type, nullable) in cols.items():
            assert got[name]["nullable"] == (nullable == "YES"), (table, name)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT table_name, column_name, data_type, is_nullable, numeric_precision, numeric_scale, "
                    "column_default FROM information_schema.columns WHERE table_schema = 'raw'"
                )
            ).all()
        seen = {(r.table_name, r.column_name): r for r in rows}
        for table, cols in EXPECTED_PG.items():
            for name, (pg_type, nullable) in cols.items():
                r = seen[(table, name)]
                assert (r.data_type, r.is_nullable) == (pg_type, nullable), (table, name)
        assert (seen[("transactions", "unit_price")].numeric_precision, seen[("transactions", "unit_price")].numeric_scale) == (12, 2)
        assert seen[("transactions", "discount")].column_default.startswith("0")


def test_contract_keys_and_indexes(engine) -> None:
    insp = sa.inspect(engine)
    assert insp.get_pk_constraint("customers", schema="raw")["constrained_columns"] == ["customer_id"]
    assert insp.get_pk_constraint("browsing_events", schema="raw")["constrained_columns"] == ["event_id"]
    uniques = insp.get_unique_constraints("transactions", schema="raw")
    assert any(u["column_names"] == ["order_id", "line_number"] for u in uniques)
    tx_ix = {tuple(i["column_names"]) for i in insp.get_indexes("transactions", schema="raw")}
    ev_ix = {tuple(i["column_names"]) for i in insp.get_indexes("browsing_events", schema="raw")}
    assert ("ordered_at",) in tx_ix and ("customer_id", "ordered_at") in tx_ix
    assert ("occurred_at",) in ev_ix and ("customer_id", "occurred_at") in ev_ix
    assert insp.get_pk_constraint("planted_types", schema="evaluation")["constrained_columns"] == ["customer_id"]


def test_contract_enforces_keys(engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO raw.transactions (order_id, line_number, customer_id, ordered_at, product_id, quantity, unit_price)"
                " VALUES ('o1', 1, NULL, '2024-01-01 10:00:00', 'p1', 1, 2.50)"
            )
        )
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO raw.transactions (order_id, line_number, customer_id, ordered_at, product_id, quantity, unit_price)"
                    " VALUES ('o1', 1, NULL, '2024-01-01 10:00:00', 'p1', 1, 2.50)"
                )
            )
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT discount FROM raw.transactions")).scalar_one() == 0


def test_contract_is_idempotent(engine) -> None:
    create_source_contract(engine)
    assert set(sa.inspect(engine).get_table_names(schema="raw")) == {"customers", "transactions", "browsing_events"}
