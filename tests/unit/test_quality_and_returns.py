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


def test_a_bar_without_adj_close_is_compared_close_to_close():
    """Regression: the price fell back to close bar by bar, so a newest bar left unadjusted by the vendor (close
    100, previous adj_close 98) gave a return of 100 / 98 - 1 = 2% that was only the adjustment."""
    prices = long({"CCC": [100.0, 100.0, 100.0, 110.0]})
    prices["adj_close"] = [98.0, 98.0, np.nan, np.nan]
    out = daily_returns(prices, SESSIONS)
    np.testing.assert_allclose(out["return"], [0.0, 0.0, 0.1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(out["log_return"], np.log1p(out["return"]), atol=1e-15)


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


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), names=st.integers(20, 60), listed_later=st.sets(st.integers(0, 59), min_size=1, max_size=6))
def test_equal_weight_market_does_not_see_symbols_listed_later(seed, names, listed_later):
    # A symbol listed after day t is a column of NaN on day t in a longer read only: day t's market
    # return must be the same bits either way (the split-backfill and truncation identities).
    # With pandas' mean it was not, on most days (the test fails on the old code).
    from prometheus_assets.core.frames import equal_weight_market, to_wide

    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=504)
    symbols = [f"s{j:03d}" for j in range(names)]
    grid = pd.MultiIndex.from_product([dates, symbols], names=["date", "symbol"]).to_frame(index=False)
    grid = grid.assign(**{"return": rng.normal(0.0, 0.02, len(grid))})
    grid = grid[(grid["date"] >= dates[252]) | ~grid["symbol"].isin([f"s{j:03d}" for j in listed_later])]  # listed in year two
    short = equal_weight_market(to_wide(grid[grid["date"] < dates[252]], "return"))  # a run over year one
    longer = equal_weight_market(to_wide(grid, "return").loc[: dates[251]])  # year one of a run over both years
    assert np.array_equal(short.to_numpy(), longer.to_numpy(), equal_nan=True)
    # and it is the mean of the day's values (pandas' skipna mean, up to rounding)
    np.testing.assert_allclose(short.to_numpy(), to_wide(grid[grid["date"] < dates[252]], "return").mean(axis=1).to_numpy(), rtol=1e-12, atol=1e-15)
    assert short.name == "market_return"
