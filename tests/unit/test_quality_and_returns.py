"""Quality detectors and daily returns against hand-computed examples and direct formulas."""

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from prometheus_assets.core import calendar, quality
from prometheus_assets.core.returns import daily_returns

SESSIONS = calendar.trading_sessions("2021-01-04", "2021-03-31")


def long(closes: dict[str, list[float]], start: int = 0) -> pd.DataFrame:
    rows = []
    for sym, values in closes.items():
        for i, v in enumerate(values):
            if v is not None:
                rows.append((SESSIONS[start + i], sym, v))
    return pd.DataFrame(rows, columns=["date", "symbol", "close"]).assign(adj_close=np.nan)


def test_stale_runs_hand_example():
    prices = long({"AAA": [1, 2, 2, 2, 2, 2, 3], "BBB": [5, 5, 5, 5, 6, 6, 6]})
    runs = quality.stale_price_runs(prices)
    assert runs[["symbol", "sessions", "close"]].values.tolist() == [["AAA", 5, 2.0]]
    assert runs["start_date"].iloc[0] == SESSIONS[1] and runs["end_date"].iloc[0] == SESSIONS[5]


def test_return_jumps():
    r = pd.DataFrame({"date": SESSIONS[:4], "symbol": "A", "return": [0.1, -0.51, 0.5, 9.0]})
    assert quality.return_jumps(r)["return"].tolist() == [-0.51, 9.0]


def test_returns_hand_example_with_a_gap_and_adjusted_prices():
    prices = long({"AAA": [10, 11, None, 12.1], "BBB": [4, 2]})
    prices.loc[prices["symbol"] == "BBB", "adj_close"] = [8.0, 6.0]
    out = daily_returns(prices, SESSIONS)
    got = {(d.strftime("%m-%d"), s): (round(r, 12), e) for d, s, r, e in out[["date", "symbol", "return", "sessions_elapsed"]].values}
    assert got == {("01-05", "AAA"): (0.1, 1), ("01-07", "AAA"): (0.1, 2), ("01-05", "BBB"): (-0.25, 1)}
    np.testing.assert_allclose(out["log_return"], np.log1p(out["return"]))


def test_keep_from_drops_the_lookback():
    prices = long({"AAA": [10, 11, 12, 13]})
    out = daily_returns(prices, SESSIONS, keep_from=SESSIONS[2])
    assert out["date"].tolist() == [SESSIONS[2], SESSIONS[3]]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.5, 200), min_size=2, max_size=40))
def test_returns_equal_the_direct_formula(values):
    prices = long({"X": values})
    out = daily_returns(prices, SESSIONS)
    expected = np.array(values[1:]) / np.array(values[:-1]) - 1
    np.testing.assert_allclose(out["return"].to_numpy(), expected, rtol=1e-12)


def test_empty_prices_give_empty_returns():
    assert daily_returns(long({}), SESSIONS).empty
