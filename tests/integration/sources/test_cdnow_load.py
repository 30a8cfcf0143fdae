"""CDNOW through the bring-your-own-data route: ``cli load-cdnow FILE``, then ``cli run``, on SQLite and PostgreSQL.

CDNOW is a purchases-only source (no categories, discounts, returns or browsing). The load is checked
against the file read independently with the standard library; the run at S = 1997-10-01 (the
paper's calibration end) is checked with the same name assertions as the Online Retail run
(tests/integration/model/test_real_data_names.py).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.cli import main as cli_main
from include.segmentation.store import get_engine, read_sql
from tests.integration.model.test_real_data_names import check_names, check_run

CDNOW = "cdnow_sample/CDNOW_sample.txt"
S = date(1997, 10, 1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    """An empty warehouse of this test's own, on each flavour."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _file_lines(path: Path) -> pd.DataFrame:
    """The file's purchase lines, read with the standard library: customer, day, CDs, value (as Decimal)."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame({
        "order_id": [f"cdnow-{i}" for i in range(len(rows))],
        "customer_id": [r[1] for r in rows],
        "day": [f"{r[2][:4]}-{r[2][4:6]}-{r[2][6:]}" for r in rows],
        "cds": [int(r[3]) for r in rows],
        "value": [Decimal(r[4]) for r in rows],
    })


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM raw.{t}").scalar_one())
                for t in ("customers", "transactions", "browsing_events")}


def test_load_cdnow_cli_loads_the_file_as_the_contract(url: str, shared_data, capsys, tmp_path: Path) -> None:
    path = shared_data(CDNOW)
    lines = _file_lines(path)
    assert (len(lines), lines["customer_id"].nunique()) == (6919, 2357)  # the data set's README
    code, out, err = _cli(capsys, "--warehouse", url, "load-cdnow", str(path))
    assert code == 0, err
    stats = json.loads(out)
    assert (stats["lines"], stats["customers"]) == (len(lines), lines["customer_id"].nunique())
    assert (stats["first_day"], stats["last_day"]) == (lines["day"].min(), lines["day"].max())

    engine = get_engine(url)
    try:
        assert _counts(engine) == {"customers": 2357, "transactions": 6919, "browsing_events": 0}
        with engine.connect() as conn:
            tx = read_sql(conn, "SELECT order_id, line_number, customer_id, ordered_at, product_id, category, quantity, "
                                "unit_price, discount FROM raw.transactions ORDER BY order_id")
            customers = read_sql(conn, "SELECT customer_id, created_at, marketing_consent FROM raw.customers")
        got = tx.set_index("order_id").loc[lines["order_id"]]
        assert list(got["customer_id"]) == list(lines["customer_id"])
        assert [str(t)[:10] for t in got["ordered_at"]] == list(lines["day"])
        assert (got["line_number"].astype(int) == 1).all() and (got["product_id"] == "cd").all()
        assert got["category"].isna().all() and (got["discount"].astype(float) == 0).all()
        qty = got["quantity"].astype(int).to_numpy()
        assert (qty == np.where(lines["cds"] > 0, lines["cds"], 1)).all()
        # unit price = value / CDs in cents: each line's value is kept to half a cent per CD
        stored = qty * got["unit_price"].astype(float).to_numpy()
        assert (np.abs(stored - lines["value"].astype(float).to_numpy()) <= 0.005 * qty + 1e-9).all()
        first = lines.groupby("customer_id")["day"].min()
        created = pd.Series([str(t)[:10] for t in customers["created_at"]], index=customers["customer_id"])
        assert created.sort_index().equals(first.sort_index().rename(None))  # created at the first purchase
        assert not customers["marketing_consent"].astype(bool).any()

        # Without --replace a loaded warehouse is refused and left as it was; --replace reloads it.
        code, _out, err = _cli(capsys, "--warehouse", url, "load-cdnow", str(path))
        assert code == 2 and "non-empty" in err
        assert _counts(engine)["transactions"] == 6919
        code, out, err = _cli(capsys, "--warehouse", url, "load-cdnow", str(path), "--replace")
        assert code == 0, err
        assert _counts(engine) == {"customers": 2357, "transactions": 6919, "browsing_events": 0}

        # A malformed file is refused naming the line and value; nothing changes.
        bad = tmp_path / "bad.txt"
        bad.write_text(" 00004 0001 19970101  2   29.33\n 00004 0001 1997-01-18  2   29.73\n")
        code, _out, err = _cli(capsys, "--warehouse", url, "load-cdnow", str(bad), "--replace")
        assert code == 2 and "data line 2" in err and "1997-01-18" in err, err
        code, _out, err = _cli(capsys, "--warehouse", url, "load-cdnow", str(tmp_path / "missing.txt"))
        assert code == 2 and "not found" in err, err
        assert _counts(engine)["transactions"] == 6919
    finally:
        engine.dispose()


@pytest.mark.slow
def test_cdnow_names_are_true_through_the_cli(url: str, shared_data, capsys) -> None:
    code, _out, err = _cli(capsys, "--warehouse", url, "load-cdnow", str(shared_data(CDNOW)))
    assert code == 0, err
    code, out, err = _cli(capsys, "--warehouse", url, "run", "--date", S.isoformat())
    assert code == 0, err
    result = json.loads(out)
    engine = get_engine(url)
    try:
        check_names(check_run(engine, result["run_id"], S))
        with engine.connect() as conn:
            weights = json.loads(str(read_sql(conn, "SELECT effective_weights FROM segmentation.segment_runs "
                                                    "WHERE run_id = :r", {"r": result["run_id"]})
                                     ["effective_weights"].iloc[0]))
        # purchases only: the constant value features weigh nothing, the varying ones share the family
        assert weights["return_rate"] == weights["discount_share"] == weights["category_breadth"] == 0
        value = [weights[f] for f in ("frequency", "monetary", "avg_order_value", "items_per_order")]
        assert sum(w * w for w in value) == pytest.approx(1.0, abs=1e-4)
    finally:
        engine.dispose()
