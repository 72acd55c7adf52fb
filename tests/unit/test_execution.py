"""core.execution.net_orders: netting the books' trades into firm-level orders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from prometheus_assets.core.execution import ORDER_COLUMNS, crossed_volume, net_orders

D1 = pd.Timestamp("2024-03-01")
D2 = pd.Timestamp("2024-03-04")


def book_rows(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["date", "book", "symbol", "current_weight", "target_weight"])


def hand_example() -> pd.DataFrame:
    return book_rows(
        [
            # X: A buys 0.10 of its equity (0.6 · 0.10 = +0.06), B sells 0.05 (0.4 · -0.05 = -0.02) → BUY 0.04
            (D1, "A", "X", 0.00, 0.10),
            (D1, "B", "X", 0.05, 0.00),
            # Y: only A sells 0.10 (0.6 · -0.10 = -0.06) → SELL 0.06, nothing crossed
            (D1, "A", "Y", 0.20, 0.10),
            # Z: nobody changes → no order
            (D1, "A", "Z", 0.10, 0.10),
            (D1, "B", "Z", 0.00, 0.00),
            # W: A buys 0.10 (+0.06), B sells 0.15 (-0.06) → nets to zero: no order
            (D1, "A", "W", 0.00, 0.10),
            (D1, "B", "W", 0.15, 0.00),
            # V: B buys without a price → quantity NaN
            (D2, "B", "V", 0.00, 0.05),
        ]
    )


PRICES = pd.DataFrame({"X": [50.0, 51.0], "Y": [20.0, 21.0], "W": [10.0, 10.0]}, index=pd.DatetimeIndex([D1, D2]))


def test_hand_example_side_quantity_and_crossing():
    orders = net_orders(hand_example(), {"A": 0.6, "B": 0.4}, PRICES, notional=10_000_000.0)
    assert list(orders.columns) == ORDER_COLUMNS
    assert list(zip(orders["date"], orders["symbol"])) == [(D1, "X"), (D1, "Y"), (D2, "V")]
    x, y, v = (orders.iloc[i] for i in range(3))

    assert x["side"] == "BUY"
    assert x["weight_change"] == pytest.approx(0.04, abs=1e-15)
    assert x["price"] == 50.0
    assert x["quantity"] == pytest.approx(0.04 * 10_000_000 / 50.0)  # 8,000 shares
    assert x["gross_book_trades"] == pytest.approx(0.08, abs=1e-15)
    assert x["crossed"] == pytest.approx(0.04, abs=1e-15)  # 0.02 bought by A from B internally, both ways
    assert x["books"] == "A,B"
    attribution = json.loads(x["attribution"])
    assert list(attribution) == ["A", "B"]
    assert attribution["A"] == pytest.approx(0.06, abs=1e-15) and attribution["B"] == pytest.approx(-0.02, abs=1e-15)

    assert y["side"] == "SELL"
    assert y["weight_change"] == pytest.approx(-0.06, abs=1e-15)
    assert y["quantity"] == pytest.approx(0.06 * 10_000_000 / 20.0)  # 30,000 shares, always positive
    assert y["crossed"] == 0.0
    assert y["books"] == "A"

    assert v["side"] == "BUY" and v["weight_change"] == pytest.approx(0.02)
    assert np.isnan(v["price"]) and np.isnan(v["quantity"])


def test_full_cross_gives_no_order_and_partial_cross_is_recorded():
    # one book buys 0.1 of X and the other sells 0.1 (same capital): nothing reaches the market
    full = book_rows([(D1, "A", "X", 0.0, 0.1), (D1, "B", "X", 0.1, 0.0)])
    assert net_orders(full, {"A": 0.5, "B": 0.5}).empty
    # the seller sells only 0.04: 0.03 net bought, 0.02 + 0.02 crossed
    partial = book_rows([(D1, "A", "X", 0.0, 0.1), (D1, "B", "X", 0.04, 0.0)])
    order = net_orders(partial, {"A": 0.5, "B": 0.5}).iloc[0]
    assert order["weight_change"] == pytest.approx(0.03, abs=1e-15)
    assert order["gross_book_trades"] == pytest.approx(0.07, abs=1e-15)
    assert order["crossed"] == pytest.approx(0.04, abs=1e-15)
    assert np.isnan(order["quantity"])  # no prices given


def test_the_crossed_total_counts_symbols_whose_trades_cancel_out_entirely():
    """Regression: the orders asset summed its rows' ``crossed``, and a full cross has no row, so its saving was lost
    (0.05 + 0.05 here never showed)."""
    both = book_rows([(D1, "A", "X", 0.0, 0.1), (D1, "B", "X", 0.1, 0.0), (D1, "A", "Y", 0.0, 0.1), (D1, "B", "Y", 0.04, 0.0)])
    capital = {"A": 0.5, "B": 0.5}
    orders = net_orders(both, capital)
    assert orders["symbol"].tolist() == ["Y"] and orders["crossed"].sum() == pytest.approx(0.04, abs=1e-15)
    assert crossed_volume(both, capital) == pytest.approx(0.1 + 0.04, abs=1e-15)
    assert crossed_volume(both.iloc[:0], capital) == 0.0
    with pytest.raises(ValueError, match="no capital for books: B"):
        crossed_volume(both, {"A": 1.0})


def test_missing_capital_names_the_books():
    with pytest.raises(ValueError, match="B"):
        net_orders(hand_example(), {"A": 0.6})


def test_duplicate_rows_are_rejected():
    rows = book_rows([(D1, "A", "X", 0.0, 0.1), (D1, "A", "X", 0.0, 0.2)])
    with pytest.raises(ValueError, match="duplicate"):
        net_orders(rows, {"A": 1.0})


def test_nan_weights_count_as_zero_and_empty_input():
    rows = book_rows([(D1, "A", "X", np.nan, 0.1), (D1, "A", "Y", 0.1, np.nan)])
    orders = net_orders(rows, {"A": 0.5})
    assert orders["weight_change"].tolist() == pytest.approx([0.05, -0.05])
    assert net_orders(rows.iloc[:0], {}).columns.tolist() == ORDER_COLUMNS


@st.composite
def random_books(draw):
    n_books = draw(st.integers(1, 4))
    names = [f"book{i}" for i in range(n_books)]
    capital = {b: draw(st.floats(0.0, 1.0)) for b in names}
    dates = pd.bdate_range("2024-01-01", periods=draw(st.integers(1, 3)))
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    weight = st.one_of(st.just(0.0), st.floats(-0.3, 0.3), st.sampled_from([0.1, -0.1, 0.05]))
    rows = []
    for d in dates:
        for b in names:
            for s in symbols:
                if draw(st.booleans()):
                    rows.append((d, b, s, draw(weight), draw(weight)))
    return book_rows(rows), capital


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_books(), st.sampled_from([1e-12, 1e-3]))
def test_orders_net_to_the_sum_of_book_trades(data, tolerance):
    books, capital = data
    orders = net_orders(books, capital, tolerance=tolerance)
    expected = (
        books.assign(change=books["book"].map(capital) * (books["target_weight"] - books["current_weight"]))
        .groupby(["date", "symbol"])["change"]
        .sum()
        .astype("float64")
    )
    got = orders.set_index(["date", "symbol"])["weight_change"]
    # every order is the capital-weighted sum of the books' changes ...
    assert np.allclose(got.to_numpy(), expected.reindex(got.index).to_numpy(), rtol=0, atol=1e-12)
    # ... every (date, symbol) whose net exceeds the tolerance has an order, and no other does
    assert set(got.index) == set(expected.index[expected.abs() > tolerance])
    assert (orders["weight_change"].abs() > tolerance).all()
    assert list(orders.index) == list(range(len(orders)))
    assert orders[["date", "symbol"]].equals(orders[["date", "symbol"]].sort_values(["date", "symbol"]).reset_index(drop=True))
    for _, order in orders.iterrows():
        attribution = json.loads(order["attribution"])
        assert sorted(attribution) == list(attribution) == order["books"].split(",")
        assert abs(sum(attribution.values()) - order["weight_change"]) <= 1e-12
        assert order["crossed"] >= 0
        assert order["crossed"] == pytest.approx(order["gross_book_trades"] - abs(order["weight_change"]), abs=1e-15)
        assert order["side"] == ("BUY" if order["weight_change"] > 0 else "SELL")


def test_order_quantities_are_at_the_days_unadjusted_close(tmp_path):
    """Regression: the orders asset sized quantities at the adjusted close; back-adjusted for a later 5:4
    split (adj 80 for a close of 100), a $400k buy came out at 5,000 shares instead of the 4,000 traded."""
    from prometheus_assets.assets.portfolio import order_prices
    from prometheus_assets.resources import StorageResource

    storage = StorageResource(home=str(tmp_path))
    bars = pd.DataFrame({"date": [D1], "symbol": ["X"], "close": [100.0], "adj_close": [80.0], "volume": [1e6]})
    storage.store().write_dated("prices_daily", bars, [D1])
    prices = order_prices(storage, D1, D1)
    orders = net_orders(book_rows([(D1, "A", "X", 0.0, 0.04)]), {"A": 1.0}, prices, notional=10_000_000.0)
    assert orders["price"].tolist() == [100.0]
    assert orders["quantity"].tolist() == [pytest.approx(4_000.0)]
