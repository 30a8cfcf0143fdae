"""Parsing, validation and contract mapping of the UCI Online Retail file (no database)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from include.segmentation.sources import (
    CUSTOMER_COLUMNS,
    REQUIRED_COLUMNS,
    TRANSACTION_COLUMNS,
    default_path,
    excess_precision,
    read_online_retail,
    round_prices,
    to_source_contract,
)

ROOT = Path(__file__).resolve().parents[3]
SMALL = ROOT / "tests" / "fixtures" / "online_retail_small.csv"
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
GOOD_LINE = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom"


def _write(tmp_path: Path, text: str, name: str = "retail.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- reading ------------------------------------------------------------------------------------


def test_read_parses_types_and_keeps_file_order() -> None:
    df = read_online_retail(SMALL)
    assert list(df.columns) == list(REQUIRED_COLUMNS)
    assert len(df) == 20
    assert df["Quantity"].dtype == "int64" and df["UnitPrice"].dtype == "float64"
    assert str(df["InvoiceDate"].dt.tz) == "UTC"
    first = df.iloc[0]
    assert (first["InvoiceNo"], first["StockCode"], first["Quantity"], first["UnitPrice"]) == ("536365", "85123A", 6, 2.55)
    assert first["InvoiceDate"] == pd.Timestamp("2010-12-01 08:26:00", tz="UTC")
    assert first["CustomerID"] == "17850"
    guests = df[df["CustomerID"].isna()]
    assert list(guests["InvoiceNo"]) == ["536544", "536544", "A563186"]
    assert df.loc[df["InvoiceNo"] == "A563186", "UnitPrice"].item() == -11062.06


def test_read_gzip_and_float_customer_ids(tmp_path: Path) -> None:
    text = f"{HEADER}\n536365,85123A,X,6,2010-12-01 08:26,2.55,17850.0,United Kingdom\n536366,1,Y,1,2010-12-01T08:27:00,1,,\n"
    path = tmp_path / "retail.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    df = read_online_retail(path)
    assert df["CustomerID"].iloc[0] == "17850"
    assert pd.isna(df["CustomerID"].iloc[1]) and pd.isna(df["Country"].iloc[1])
    assert list(df["InvoiceDate"]) == [pd.Timestamp("2010-12-01 08:26", tz="UTC"), pd.Timestamp("2010-12-01 08:27", tz="UTC")]


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER.replace(",Country", "") + "\n" + GOOD_LINE.rsplit(",", 1)[0] + "\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) Country"):
        read_online_retail(path)


@pytest.mark.parametrize(("sep", "name"), [(";", "semicolon"), ("\t", "tab")])
def test_wrong_delimiter_is_detected(tmp_path: Path, sep: str, name: str) -> None:
    path = _write(tmp_path, HEADER.replace(",", sep) + "\n" + GOOD_LINE.replace(",", sep) + "\n")
    with pytest.raises(ValueError, match=rf"{name}.*separated.*expects comma-separated"):
        read_online_retail(path)


def test_unparseable_date_names_line_and_value(tmp_path: Path) -> None:
    bad = GOOD_LINE.replace("2010-12-01 08:26:00", "2010-13-45 08:26:00")
    path = _write(tmp_path, f"{HEADER}\n{GOOD_LINE}\n{bad}\n{GOOD_LINE}\n")
    with pytest.raises(ValueError, match=r"column InvoiceDate.*line 3: '2010-13-45 08:26:00'") as info:
        read_online_retail(path)
    assert "line 2" not in str(info.value) and "line 4" not in str(info.value)


def test_non_iso_date_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\n{GOOD_LINE.replace('2010-12-01 08:26:00', '12/1/2010 8:26')}\n")
    with pytest.raises(ValueError, match=r"InvoiceDate.*line 2: '12/1/2010 8:26'"):
        read_online_retail(path)


@pytest.mark.parametrize(
    ("column", "good", "bad"),
    [("Quantity", ",6,", ",six,"), ("Quantity", ",6,", ",1.5,"), ("UnitPrice", ",2.55,", ",abc,"), ("UnitPrice", ",2.55,", ',"2,55",')],
)
def test_non_numeric_quantity_or_price(tmp_path: Path, column: str, good: str, bad: str) -> None:
    path = _write(tmp_path, f"{HEADER}\n{GOOD_LINE}\n{GOOD_LINE}\n{GOOD_LINE.replace(good, bad, 1)}\n")
    value = bad.strip(",").strip('"')
    with pytest.raises(ValueError, match=rf"column {column}.*line 4: '{value}'"):
        read_online_retail(path)


def test_required_value_missing(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\n{GOOD_LINE.replace(',85123A,', ',,')}\n")
    with pytest.raises(ValueError, match=r"column StockCode.*must not be empty.*line 2"):
        read_online_retail(path)


def test_quantity_out_of_integer_range(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\n{GOOD_LINE.replace(',6,', ',3000000000,')}\n")
    with pytest.raises(ValueError, match=r"column Quantity.*line 2: '3000000000'"):
        read_online_retail(path)


@pytest.mark.parametrize("content", [b"", HEADER.encode() + b"\n", gzip.compress(b"")], ids=["zero-bytes", "header-only", "empty-gzip"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "retail.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="is empty"):
        read_online_retail(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ONLINE_RETAIL_CSV"):
        read_online_retail(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("body", "line", "fields"),
    [
        (f"{GOOD_LINE},extra\n{GOOD_LINE}\n", 2, 9),  # pandas would silently drop the extra field here
        (f"{GOOD_LINE}\n{GOOD_LINE},extra,fields\n", 3, 10),
        (f"{GOOD_LINE}\n{GOOD_LINE.rsplit(',', 1)[0]}\n", 3, 7),  # short line: pandas would pad Country
    ],
    ids=["long-first", "long-later", "short"],
)
def test_ragged_lines_are_rejected(tmp_path: Path, body: str, line: int, fields: int) -> None:
    path = _write(tmp_path, f"{HEADER}\n{body}")
    with pytest.raises(ValueError, match=rf"header's 8 comma-separated fields': line {line} has {fields}$"):
        read_online_retail(path)


def test_line_numbers_stay_exact_with_blank_lines_and_multiline_fields(tmp_path: Path) -> None:
    multiline = GOOD_LINE.replace("WHITE HANGING HEART T-LIGHT HOLDER", '"TWO\nLINES"')
    bad = GOOD_LINE.replace("2010-12-01 08:26:00", "yesterday")
    path = _write(tmp_path, f"{HEADER}\n{multiline}\n\n{GOOD_LINE}\n{bad}\n")
    # header 1, record on lines 2-3, blank line 4, good line 5, bad line 6
    with pytest.raises(ValueError, match=r"InvoiceDate.*line 6: 'yesterday'$"):
        read_online_retail(path)


# --- default path -------------------------------------------------------------------------------


def test_default_path_is_beside_the_project_and_overridable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ONLINE_RETAIL_CSV", raising=False)
    assert default_path() == ROOT.parent / "shared/data/online_retail/online_retail.csv.gz"
    monkeypatch.setenv("ONLINE_RETAIL_CSV", str(tmp_path / "mine.csv"))
    assert default_path() == tmp_path / "mine.csv"
    # DEFAULT_PATH (what the CLI uses) follows the environment of the process that imports it.
    env = {**os.environ, "ONLINE_RETAIL_CSV": str(tmp_path / "mine.csv")}
    out = subprocess.run(
        [sys.executable, "-c", "from include.segmentation.sources.online_retail import DEFAULT_PATH; print(DEFAULT_PATH)"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == str(tmp_path / "mine.csv")


# --- prices -------------------------------------------------------------------------------------


def test_excess_precision_and_half_up_rounding() -> None:
    prices = pd.Series([2.55, 0.001, 2.675, 0.005, -0.005, 1.0, -11062.06, 38970.0])
    assert list(excess_precision(prices, 2)) == [False, True, True, True, True, False, False, False]
    # Decimal half-up: 2.675 -> 2.68 although the binary float 2.675 is slightly below it.
    assert list(round_prices(prices, 2)) == [2.55, 0.0, 2.68, 0.01, -0.01, 1.0, -11062.06, 38970.0]
    assert list(excess_precision(prices, 3)) == [False] * len(prices)
    assert list(round_prices(prices, 3)) == list(prices)


# --- mapping ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mapped() -> dict[str, pd.DataFrame]:
    return to_source_contract(read_online_retail(SMALL))


def test_transactions_mapping(mapped: dict[str, pd.DataFrame]) -> None:
    tx = mapped["transactions"]
    assert list(tx.columns) == list(TRANSACTION_COLUMNS)
    assert len(tx) == 20
    inv = tx[tx["order_id"] == "536365"]
    # File order within the invoice, the exact duplicate kept, and the late line of the same invoice numbered 4.
    assert list(inv["line_number"]) == [1, 2, 3, 4]
    assert list(inv["product_id"]) == ["85123A", "71053", "71053", "84406B"]
    assert not tx.duplicated(["order_id", "line_number"]).any()
    assert tx["category"].isna().all() and (tx["discount"] == 0).all()
    cancel = tx[tx["order_id"] == "C536379"].iloc[0]
    assert (cancel["quantity"], cancel["unit_price"], cancel["customer_id"]) == (-1, 27.5, "14527")
    assert tx.loc[tx["order_id"] == "536544", "customer_id"].isna().all()
    assert tx.loc[tx["product_id"] == "PADS", "unit_price"].item() == 0.0  # 0.001 at scale 2
    assert tx["ordered_at"].iloc[0] == pd.Timestamp("2010-12-01 08:26:00", tz="UTC")


def test_customers_mapping(mapped: dict[str, pd.DataFrame]) -> None:
    cu = mapped["customers"].set_index("customer_id")
    assert list(mapped["customers"].columns) == list(CUSTOMER_COLUMNS)
    assert sorted(cu.index) == ["12370", "12394", "13952", "14527", "17850"]
    # created_at is the first invoice, a cancellation included.
    assert cu.loc["14527", "created_at"] == pd.Timestamp("2010-12-01 09:41:00", tz="UTC")
    assert cu.loc["17850", "created_at"] == pd.Timestamp("2010-12-01 08:26:00", tz="UTC")
    # 12370: Cyprus on 2 invoices beats Austria on 1 invoice, although Austria has more lines and is latest.
    assert cu.loc["12370", "country"] == "Cyprus"
    # 12394: one invoice each (Belgium with more lines); the tie goes to the latest invoice, Denmark.
    assert cu.loc["12394", "country"] == "Denmark"
    assert (~cu["marketing_consent"]).all()
    for col in ("birth_year", "gender", "city", "email", "phone"):
        assert cu[col].isna().all(), col


def test_mapping_keeps_sub_cent_price_at_wider_scale_and_is_pure() -> None:
    df = read_online_retail(SMALL)
    before = df.copy()
    tx = to_source_contract(df, price_scale=3)["transactions"]
    assert tx.loc[tx["product_id"] == "PADS", "unit_price"].item() == 0.001
    pd.testing.assert_frame_equal(df, before)


def test_total_changes_only_by_the_rounded_prices() -> None:
    df = read_online_retail(SMALL)
    tx = to_source_contract(df)["transactions"]
    exact = sum(Decimal(int(q)) * Decimal(repr(p)) for q, p in zip(df["Quantity"], df["UnitPrice"], strict=True))
    loaded = sum(Decimal(int(q)) * Decimal(repr(p)) for q, p in zip(tx["quantity"], tx["unit_price"], strict=True))
    assert exact - loaded == Decimal("0.001")


def test_online_retail_ii_layout_is_detected_from_the_header(tmp_path: Path) -> None:
    """Online Retail II: Invoice, Price and Customer ID instead of InvoiceNo, UnitPrice and CustomerID."""
    path = _write(tmp_path, (
        "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
        "489434,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom\n"
        "C489449,22087,PAPER BUNTING WHITE LACE,-12,2009-12-01 10:33:00,2.95,16321.0,Australia\n"
        "489464,21733,85123a mixed,-96,2009-12-01 10:52:00,0.00,,United Kingdom\n"
    ), "online_retail_II.csv")
    df = read_online_retail(path)
    assert list(df["InvoiceNo"]) == ["489434", "C489449", "489464"]
    assert list(df["UnitPrice"]) == [6.95, 2.95, 0.0]
    assert df["CustomerID"].iloc[0] == "13085" and pd.isna(df["CustomerID"].iloc[2])
    assert df["InvoiceDate"].iloc[0] == pd.Timestamp("2009-12-01 07:45:00", tz="UTC")
    frames = to_source_contract(df)
    assert frames["transactions"]["order_id"].tolist() == ["489434", "C489449", "489464"]
    assert set(frames["customers"]["customer_id"]) == {"13085", "16321"}


def test_online_retail_ii_missing_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "Invoice,StockCode,Quantity,InvoiceDate,Customer ID,Country\n1,A,1,2010-01-01 10:00:00,1,UK\n")
    with pytest.raises(ValueError, match="missing column"):
        read_online_retail(path)
