"""The synthetic generator: determinism, the contract's columns, invariants and planted structure."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from include.segmentation.sources import contract
from include.segmentation.sources.synthetic import (
    ALL_TYPES,
    COLUMNS,
    PLANTED_TYPES,
    TYPE_SHARES,
    generate_chunk,
    validate_arguments,
)
from include.segmentation.sources.synthetic.chunk import build_chunk
from include.segmentation.sources.synthetic.encode import csv_payload, string_columns
from include.segmentation.sources.synthetic.payload import fast_events, fast_transactions

END = date(2026, 11, 25)
S = pd.Timestamp("2026-11-26", tz="UTC")
YEAR_AGO = S - pd.Timedelta(days=365)
DAYS = 730


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return generate_chunk(0, 1, 3000, DAYS, END, 42)


@pytest.fixture(scope="module")
def typed(frames) -> dict[str, pd.DataFrame]:
    """Transactions and identified events with their customer's planted type (test-side join only)."""
    p = frames["planted_types"]
    return {
        "transactions": frames["transactions"].merge(p, on="customer_id", how="inner"),
        "browsing_events": frames["browsing_events"].merge(p, on="customer_id", how="inner"),
        "customers": frames["customers"].merge(p, on="customer_id"),
    }


def test_planted_types_constant() -> None:
    assert PLANTED_TYPES == (
        "loyal_high_spender", "bargain_hunter", "one_time_buyer", "lapsed", "window_shopper", "new_customer",
    )
    assert abs(sum(TYPE_SHARES.values()) - 1) < 1e-9


def test_deterministic_for_same_arguments() -> None:
    a = generate_chunk(3, 1501, 500, DAYS, END, 7)
    b = generate_chunk(3, 1501, 500, DAYS, END, 7)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_seed_and_chunk_change_the_data() -> None:
    a = generate_chunk(0, 1, 300, DAYS, END, 1)
    b = generate_chunk(0, 1, 300, DAYS, END, 2)
    c = generate_chunk(1, 1, 300, DAYS, END, 1)
    assert not a["transactions"]["ordered_at"].equals(b["transactions"]["ordered_at"])
    assert not a["transactions"]["ordered_at"].equals(c["transactions"]["ordered_at"])


def test_columns_and_dtypes_match_contract(frames) -> None:
    tables = {"customers": contract.customers, "transactions": contract.transactions,
              "browsing_events": contract.browsing_events, "planted_types": contract.planted_types}
    for name, table in tables.items():
        df = frames[name]
        assert list(df.columns) == [c.name for c in table.columns] == COLUMNS[name], name
        for col in table.columns:
            s = df[col.name]
            py = col.type.python_type
            if py is str:
                assert pd.api.types.is_string_dtype(s.dtype), (name, col.name, s.dtype)
            elif col.name in {"created_at", "ordered_at", "occurred_at"}:
                assert str(s.dtype) == "datetime64[us, UTC]", (name, col.name, s.dtype)
            elif py is bool:
                assert s.dtype == bool
            elif py is int:
                assert pd.api.types.is_integer_dtype(s.dtype), (name, col.name, s.dtype)
            else:
                assert pd.api.types.is_float_dtype(s.dtype), (name, col.name, s.dtype)
            if not col.nullable:
                assert s.notna().all(), (name, col.name)


def test_no_planted_type_in_raw_frames(frames) -> None:
    for name in ("customers", "transactions", "browsing_events"):
        df = frames[name]
        assert not any("type" in c and c != "event_type" for c in df.columns)
        for col in df.columns:
            if pd.api.types.is_string_dtype(df[col].dtype):
                assert not df[col].isin(ALL_TYPES).any(), (name, col)


def test_keys_unique_and_line_numbers(frames) -> None:
    c, t, e = frames["customers"], frames["transactions"], frames["browsing_events"]
    assert c.customer_id.is_unique and e.event_id.is_unique
    assert not t.duplicated(["order_id", "line_number"]).any()
    ln = t.groupby("order_id").line_number.agg(["min", "max", "count"])
    assert (ln["min"] == 1).all() and (ln["max"] == ln["count"]).all()
    assert c.customer_id.str.fullmatch(r"C\d{7}").all()
    assert t.customer_id.dropna().isin(set(c.customer_id)).all()
    assert e.customer_id.dropna().isin(set(c.customer_id)).all()
    # one timestamp and one customer per order
    per_order = t.groupby("order_id").agg(ts=("ordered_at", "nunique"), cust=("customer_id", lambda s: s.nunique(dropna=False)))
    assert (per_order.ts == 1).all() and (per_order.cust == 1).all()


def test_ids_unique_across_chunks() -> None:
    a = generate_chunk(0, 1, 200, DAYS, END, 42)
    b = generate_chunk(1, 201, 200, DAYS, END, 42)
    for name, key in (("transactions", "order_id"), ("browsing_events", "event_id"), ("browsing_events", "session_id"),
                      ("customers", "customer_id")):
        assert not set(a[name][key]) & set(b[name][key]), (name, key)


def test_money_invariants(frames) -> None:
    t = frames["transactions"]
    assert (t.unit_price > 0).all()
    assert np.allclose(t.unit_price, t.unit_price.round(2)) and np.allclose(t.discount, t.discount.round(2))
    sale = t[t.quantity > 0]
    assert (sale.discount >= 0).all()
    assert (sale.discount <= sale.quantity * sale.unit_price + 1e-9).all()
    returns = t[t.quantity < 0]
    assert len(returns) > 0 and (returns.discount == 0).all()
    assert (t.quantity != 0).all()
    # heavy tail: the dearest lines are far above the median
    assert t.unit_price.quantile(0.99) > 8 * t.unit_price.median()


def test_returns_reference_earlier_purchases(frames) -> None:
    t = frames["transactions"]
    returns = t[t.quantity < 0]
    # return orders hold only return lines
    assert not set(returns.order_id) & set(t[t.quantity > 0].order_id)
    bought = t[t.quantity > 0]
    first_buy = bought.groupby(["customer_id", "product_id"], dropna=False).ordered_at.min()
    key = pd.MultiIndex.from_frame(returns[["customer_id", "product_id"]])
    ref = first_buy.reindex(key)
    assert ref.notna().all()
    assert (ref.to_numpy() < returns.ordered_at.to_numpy()).all()


def test_time_bounds(frames) -> None:
    start = S - pd.Timedelta(days=DAYS)
    for name, col in (("transactions", "ordered_at"), ("browsing_events", "occurred_at"), ("customers", "created_at")):
        ts = frames[name][col]
        assert (ts < S).all(), name
        if name != "customers":
            assert (ts >= start).all(), name


def test_created_at_not_after_first_activity(frames) -> None:
    c = frames["customers"].set_index("customer_id").created_at
    for name, col in (("transactions", "ordered_at"), ("browsing_events", "occurred_at")):
        first = frames[name].dropna(subset=["customer_id"]).groupby("customer_id")[col].min()
        assert (c.reindex(first.index) <= first).all(), name


def test_events(frames) -> None:
    e = frames["browsing_events"]
    assert set(e.event_type) == set(contract.EVENT_TYPES)
    productish = e.event_type.isin(["product_view", "add_to_cart", "remove_from_cart"])
    assert e.loc[productish, "product_id"].notna().all() and e.loc[productish, "category"].notna().all()
    assert e.loc[~productish, "product_id"].isna().all()
    assert e.loc[e.event_type == "search", "search_query"].notna().all()
    assert e.loc[e.event_type != "search", "search_query"].isna().all()
    q = e.loc[e.event_type == "search", "search_query"]
    assert q.str.fullmatch(r"[a-z0-9' -]+").all() and q.nunique() > 100
    assert (e.dwell_seconds.dropna() > 0).all() and 0 < e.dwell_seconds.isna().mean() < 0.05
    # sessions: one customer each, a visit of less than a few hours
    s = e.groupby("session_id").agg(cust=("customer_id", lambda x: x.nunique(dropna=False)), lo=("occurred_at", "min"),
                                    hi=("occurred_at", "max"))
    assert (s.cust == 1).all()
    assert ((s.hi - s.lo) < pd.Timedelta(hours=6)).all()


def test_shares(frames) -> None:
    c, t, e, p = frames["customers"], frames["transactions"], frames["browsing_events"], frames["planted_types"]
    share = p.planted_type.value_counts(normalize=True)
    for name, expected in TYPE_SHARES.items():
        assert abs(share[name] - expected * 0.97) < 0.03, name
    assert 0.015 < share["dormant"] < 0.05
    assert 0.45 < c.marketing_consent.mean() < 0.55
    assert 0.05 < t.customer_id.isna().mean() < 0.11  # guest checkouts ~8 %
    assert 0.21 < e.customer_id.isna().mean() < 0.29  # anonymous browsing ~25 %
    assert 0.03 < c.email.isna().mean() < 0.07
    assert 0.07 < c.phone.isna().mean() < 0.13
    assert 7 < len(t) / len(c) < 13  # ~10 order lines per customer
    assert 24 < len(e) / len(c) < 37  # ~30 events per customer
    assert set(c.gender.dropna()) == {"F", "M", "X"} and c.gender.isna().any()
    assert c.birth_year.isna().any() and c.birth_year.dropna().between(1920, END.year - 18).all()
    assert c.country.value_counts().index[0] == "United Kingdom"


def test_emails_and_phones(frames) -> None:
    c = frames["customers"]
    email = c.email.dropna()
    norm = email.str.strip().str.lower()
    assert norm.is_unique
    assert norm.str.fullmatch(r"[a-z0-9._]+@[a-z0-9.]+\.[a-z]+").all()
    assert (email != email.str.strip()).any() and (email != email.str.lower()).any()
    phones = c.phone.dropna()
    assert phones.str.fullmatch(r"[0-9+() .-]+").all()
    assert phones.str.startswith("+44 ").any() and phones.str.startswith("07").any() and phones.str.startswith("(").any()


def test_seasonality(frames) -> None:
    t = frames["transactions"]
    orders = t.drop_duplicates("order_id")
    dow = orders.ordered_at.dt.dayofweek.value_counts(normalize=True)
    assert dow[[5, 6]].mean() > dow[[0, 1, 2]].mean() * 1.2
    month = orders.ordered_at.dt.month.value_counts(normalize=True)
    assert month[12] > month[2] * 1.5 and month[11] > month[3] * 1.2


def _in_year(df: pd.DataFrame, col: str) -> pd.DataFrame:
    return df[df[col] >= YEAR_AGO]


def test_planted_behaviour(typed) -> None:
    t, e, c = typed["transactions"], typed["browsing_events"], typed["customers"]
    ty = t[(t.ordered_at >= YEAR_AGO) & (t.quantity > 0)]
    orders = ty.groupby(["planted_type", "customer_id"]).order_id.nunique()
    last = ty.groupby(["planted_type", "customer_id"]).ordered_at.max()
    types = c.set_index("customer_id").planted_type
    n = types.value_counts()

    loyal = orders["loyal_high_spender"]
    assert len(loyal) == n["loyal_high_spender"] and loyal.between(15, 40).all()
    assert (S - last["loyal_high_spender"] <= pd.Timedelta(days=14)).all()
    bargain = orders["bargain_hunter"]
    assert len(bargain) == n["bargain_hunter"] and bargain.between(5, 12).all()
    assert (S - last["bargain_hunter"] <= pd.Timedelta(days=60)).all()
    one = orders["one_time_buyer"]
    assert len(one) == n["one_time_buyer"] and (one == 1).all()
    age = S - last["one_time_buyer"]
    assert (age >= pd.Timedelta(days=100)).all() and (age <= pd.Timedelta(days=331)).all()
    lapsed = orders["lapsed"]
    assert len(lapsed) == n["lapsed"] and lapsed.between(3, 10).all()
    assert (S - last["lapsed"] >= pd.Timedelta(days=200)).all()
    assert "window_shopper" not in orders.index.get_level_values(0)
    assert "dormant" not in orders.index.get_level_values(0)
    new = orders["new_customer"]
    assert len(new) == n["new_customer"] and new.between(1, 3).all()

    created = c.set_index("customer_id").created_at
    tenure = S - created
    assert (tenure[types == "new_customer"] <= pd.Timedelta(days=45)).all()
    assert (tenure[types.isin(["loyal_high_spender", "lapsed"])] > pd.Timedelta(days=365)).all()

    # browsing: lapsed customers quiet for ~200 days, dormant ones for a year, window shoppers recent
    ey = _in_year(e, "occurred_at")
    assert ey.loc[ey.planted_type == "dormant"].empty
    assert t.loc[(t.planted_type == "dormant") & (t.ordered_at >= YEAR_AGO)].empty
    lapsed_ev = ey.loc[ey.planted_type == "lapsed", "occurred_at"]
    assert (lapsed_ev < S - pd.Timedelta(days=199)).all()
    recent_ws = ey.loc[(ey.planted_type == "window_shopper") & (ey.occurred_at >= S - pd.Timedelta(days=14)), "customer_id"]
    assert recent_ws.nunique() == n["window_shopper"]
    assert ey.loc[ey.planted_type == "window_shopper", "event_type"].ne("checkout").all()

    # every non-dormant customer is active in the trailing year
    active = set(ty.customer_id) | set(ey.customer_id)
    assert set(types[types != "dormant"].index) <= active


def test_types_are_distinct(typed) -> None:
    t, e = typed["transactions"], typed["browsing_events"]
    ty = t[(t.ordered_at >= YEAR_AGO)].assign(gross=lambda d: d.quantity.clip(lower=0) * d.unit_price)
    g = ty[ty.quantity > 0].groupby("planted_type")
    aov = g.gross.sum() / g.order_id.nunique()
    assert aov["loyal_high_spender"] > 1.5 * aov.drop("loyal_high_spender").max()
    disc = g.discount.sum() / g.gross.sum()
    assert 0.3 <= disc["bargain_hunter"] <= 0.6 and disc.drop("bargain_hunter").max() < 0.12
    ret = -ty[ty.quantity < 0].groupby("planted_type").quantity.sum() / g.quantity.sum()
    assert ret["bargain_hunter"] > 2 * ret["loyal_high_spender"]
    ey = _in_year(e, "occurred_at")
    per = ey.groupby("planted_type").event_type.value_counts().unstack(fill_value=0)
    searches = per["search"] / ey.groupby("planted_type").customer_id.nunique()
    assert searches["bargain_hunter"] == searches.max()
    atc_rate = per["add_to_cart"] / per["product_view"]
    assert atc_rate["window_shopper"] == atc_rate.max()
    dwell = ey.groupby("planted_type").dwell_seconds.median()
    assert dwell["window_shopper"] > 2 * dwell.drop("window_shopper").max()


def test_kmeans_recovers_planted_types() -> None:
    """The lead's requirement: k-means on per-customer features finds the planted types (ARI >= 0.8)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    f = generate_chunk(0, 1, 2500, DAYS, END, 11)
    x = _features(f)
    truth = f["planted_types"].set_index("customer_id").planted_type.reindex(x.index)
    keep = truth != "dormant"
    z = StandardScaler().fit_transform(x[keep])
    labels = KMeans(6, n_init=10, random_state=0).fit(z).labels_
    assert adjusted_rand_score(truth[keep], labels) >= 0.85


def _features(f: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-customer features over the trailing 365 days before S, as the brief lists them."""
    c = f["customers"]
    t = _in_year(f["transactions"], "ordered_at").dropna(subset=["customer_id"])
    e = _in_year(f["browsing_events"], "occurred_at").dropna(subset=["customer_id"])
    t = t.assign(gross=t.quantity * t.unit_price)
    pos = t[t.quantity > 0]
    g = pos.groupby("customer_id")
    out = pd.DataFrame(index=pd.Index(c.customer_id, name="customer_id"))
    out["orders"] = g.order_id.nunique()
    first, last = g.ordered_at.min(), g.ordered_at.max()
    out["recency"] = (S - last).dt.total_seconds() / 86400
    out["monetary"] = np.log1p(t.assign(net=t.gross - t.discount).groupby("customer_id").net.sum().clip(lower=0))
    out["aov"] = g.gross.sum() / out.orders
    out["items_per_order"] = g.quantity.sum() / out.orders
    out["return_rate"] = -t[t.quantity < 0].groupby("customer_id").quantity.sum() / g.quantity.sum()
    out["discount_share"] = g.discount.sum() / g.gross.sum()
    out["days_between"] = (last - first).dt.total_seconds() / 86400 / (out.orders - 1).where(out.orders > 1)
    out["tenure"] = (S - c.set_index("customer_id").created_at).dt.total_seconds() / 86400
    out["breadth"] = g.category.nunique()
    counts = pd.crosstab(e.customer_id, e.event_type)
    out["sessions"] = e.groupby("customer_id").session_id.nunique()
    out["views"] = counts["product_view"]
    out["searches"] = counts["search"]
    out["atc_rate"] = counts["add_to_cart"] / counts["product_view"].where(counts["product_view"] > 0)
    sess = e.assign(atc=e.event_type == "add_to_cart", co=e.event_type == "checkout").groupby(["customer_id", "session_id"])[["atc", "co"]].any()
    sess = sess[sess.atc]
    out["abandonment"] = 1 - sess.groupby("customer_id").co.mean()
    out["conversion"] = out.orders / counts["product_view"].where(counts["product_view"] > 0)
    out["dwell"] = e.groupby("customer_id").dwell_seconds.mean()
    out = out.fillna({"recency": 365, "days_between": 365}).fillna(0)
    for col in ("orders", "recency", "aov", "items_per_order", "days_between", "tenure", "breadth", "sessions", "views",
                "searches", "dwell"):
        out[col] = np.log1p(out[col])
    return out


def test_fast_payloads_equal_reference_formatting() -> None:
    ch = build_chunk(2, 1001, 400, DAYS, END, 5)
    cols = string_columns(ch)
    assert fast_transactions(ch) == csv_payload(cols["transactions"]).encode()
    assert fast_events(ch) == csv_payload(cols["browsing_events"]).encode()
    # the payload holds what the frames hold
    frames = generate_chunk(2, 1001, 400, DAYS, END, 5)
    lines = fast_events(ch).decode().splitlines()
    assert len(lines) == len(frames["browsing_events"])
    first = lines[0].split(",")
    row = frames["browsing_events"].iloc[0]
    assert first[0] == row.event_id and first[1] == row.session_id
    assert pd.Timestamp(first[3].replace("+00", ""), tz="UTC") == row.occurred_at


def test_short_windows_still_give_activity() -> None:
    for days in (30, 120):
        f = generate_chunk(0, 1, 400, days, END, 3)
        start = S - pd.Timedelta(days=days)
        assert (f["transactions"].ordered_at >= start).all() and (f["transactions"].ordered_at < S).all()
        assert (f["browsing_events"].occurred_at >= start).all()
        types = f["planted_types"].set_index("customer_id").planted_type
        active = set(f["transactions"].customer_id.dropna()) | set(f["browsing_events"].customer_id.dropna())
        assert set(types[types != "dormant"].index) <= active


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"customers": 0}, "customers must be at least 1"),
        ({"customers": 2.5}, "customers must be a whole number"),
        ({"days": 29}, "days of history must be at least 30"),
        ({"chunk_customers": 0}, "chunk_customers must be at least 1"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"end_date": date(2026, 11, 28)}, "is in the future"),
        ({"end_date": "2026-01-01"}, "must be a date"),
    ],
)
def test_bad_arguments_rejected(kwargs, message) -> None:
    args = {"customers": 10, "days": 30, "end_date": date(2026, 1, 1), "seed": 1, "chunk_customers": 5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        validate_arguments(**args, today=date(2026, 11, 26))


def test_end_date_tomorrow_is_allowed() -> None:
    today = date(2026, 11, 26)
    validate_arguments(10, 30, today + timedelta(days=1), 1, 5, today=today)


def test_generate_chunk_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_customers"):
        generate_chunk(0, 1, 0, DAYS, END, 1)
    with pytest.raises(ValueError, match="days"):
        generate_chunk(0, 1, 10, 10, END, 1)
