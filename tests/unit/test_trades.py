"""Round trips against an independent day-by-day loop, plus a few hand examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from prometheus_assets.core import trade_context
from prometheus_assets.core.edge.context import listing_sessions
from prometheus_assets.core.frames import trailing_mean_std
from prometheus_assets.core.trades import OPEN_COLUMNS, TRADE_COLUMNS, round_trips, round_trips_with_open


def _loop_round_trips(weights: pd.DataFrame, prices: pd.DataFrame) -> list[dict]:
    """Plain reference: walk each symbol's weights day by day, opening/closing trades."""
    px = prices.reindex(prices.index.union(weights.index)).sort_index().ffill().reindex(weights.index)
    trades = []
    for symbol in weights.columns:
        open_trade = None
        for i, date in enumerate(weights.index):
            w = weights[symbol].iloc[i]
            w = 0.0 if pd.isna(w) else float(w)
            s = (w > 0) - (w < 0)
            if open_trade is not None and s != open_trade["sign"]:
                entry, exit_ = open_trade["entry_price"], float(px[symbol].iloc[i])
                trades.append(
                    {
                        "symbol": symbol,
                        "side": "long" if open_trade["sign"] > 0 else "short",
                        "entry_date": open_trade["entry_date"],
                        "exit_date": date,
                        "entry_price": entry,
                        "exit_price": exit_,
                        "return": open_trade["sign"] * (exit_ / entry - 1.0),
                        "holding_sessions": i - open_trade["i"],
                        "entry_weight": open_trade["entry_weight"],
                        "max_abs_weight": open_trade["max_abs"],
                    }
                )
                open_trade = None
            if open_trade is None and s != 0:
                open_trade = {"sign": s, "i": i, "entry_date": date, "entry_price": float(px[symbol].iloc[i]), "entry_weight": w, "max_abs": abs(w)}
            elif open_trade is not None:
                open_trade["max_abs"] = max(open_trade["max_abs"], abs(w))
    return trades


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-12 * max(1.0, abs(b))


weight_value = st.sampled_from([0.0, 0.0, 0.0, 0.1, 0.25, -0.1, -0.3, float("nan")])


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 25).flatmap(
        lambda n_days: st.tuples(
            st.just(n_days),
            st.lists(st.lists(weight_value, min_size=n_days, max_size=n_days), min_size=1, max_size=4),
            st.integers(0, 10_000),
        )
    )
)
def test_round_trips_match_a_plain_loop(case):
    n_days, columns, seed = case
    dates = pd.bdate_range("2022-01-03", periods=n_days)
    symbols = [f"S{k}" for k in range(len(columns))]
    weights = pd.DataFrame(np.array(columns).T, index=dates, columns=symbols)
    rng = np.random.default_rng(seed)
    prices = pd.DataFrame(np.exp(rng.normal(0, 0.1, size=(n_days, len(symbols))).cumsum(axis=0)) * 50, index=dates, columns=symbols)
    prices = prices.mask(rng.random(prices.shape) < 0.2)  # holes: forward-filled (leading holes stay NaN)

    got = round_trips(weights, prices)
    expected = _loop_round_trips(weights, prices)
    assert list(got.columns) == list(TRADE_COLUMNS)
    assert len(got) == len(expected)
    for (_, row), ref in zip(got.iterrows(), expected):
        for key in ("symbol", "side", "entry_date", "exit_date", "holding_sessions"):
            assert row[key] == ref[key], key
        for key in ("entry_price", "exit_price", "return", "entry_weight", "max_abs_weight"):
            assert _same(float(row[key]), float(ref[key])), key


def test_flip_resize_and_open_trade_by_hand():
    dates = pd.bdate_range("2023-03-01", periods=7)
    #            d0   d1   d2    d3    d4   d5   d6
    w = [0.0, 0.1, 0.3, -0.2, -0.2, 0.0, 0.5]
    p = [10.0, 10.0, 11.0, 12.0, np.nan, 9.0, 9.5]
    weights = pd.DataFrame({"AAA": w}, index=dates)
    # prices carry an extra symbol and an extra (earlier) date: a superset is allowed
    prices = pd.DataFrame({"AAA": [9.0] + p, "ZZZ": 1.0}, index=pd.DatetimeIndex([dates[0] - pd.Timedelta(days=1)]).append(dates))
    got = round_trips(weights, prices)
    assert got["side"].tolist() == ["long", "short"]  # the d6 long is still open: not reported
    long_, short = got.iloc[0], got.iloc[1]
    # long opened d1 at 10, resized d2 (no split), closed by the flip at d3's close at 12
    assert long_["entry_date"] == dates[1] and long_["exit_date"] == dates[3]
    assert long_["return"] == 12.0 / 10.0 - 1 and long_["holding_sessions"] == 2
    assert long_["entry_weight"] == 0.1 and long_["max_abs_weight"] == 0.3
    # short opened d3 at 12, closed d5 at 9: a 25% gain for the short
    assert short["entry_date"] == dates[3] and short["exit_date"] == dates[5]
    assert np.isclose(short["return"], 0.25) and short["holding_sessions"] == 2
    assert short["max_abs_weight"] == 0.2


def test_no_trades_gives_typed_empty_frame():
    dates = pd.bdate_range("2023-03-01", periods=3)
    got = round_trips(pd.DataFrame({"A": [0.0, 0.2, 0.2]}, index=dates), pd.DataFrame({"A": 1.0}, index=dates))
    assert got.empty and list(got.columns) == list(TRADE_COLUMNS)
    assert got["holding_sessions"].dtype == "int64"


# --------------------------------------------------------------------------- start-invariant windows
_values = arrays(np.float64, st.tuples(st.integers(1, 80), st.integers(1, 4)),
                 elements=st.one_of(st.floats(-0.2, 0.2, allow_subnormal=False), st.just(np.nan)))


def _direct_trailing_std(x: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """Sample std (ddof 1) of the non-NaN values of each trailing window, window by window."""
    out = np.full(x.shape, np.nan)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            values = x[max(i - window + 1, 0) : i + 1, j]
            values = values[~np.isnan(values)]
            if len(values) >= max(min_periods, 2):
                out[i, j] = np.sqrt(((values - values.mean()) ** 2).sum() / (len(values) - 1))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(np.array([[0.0], [0.0], [0.09375], [0.001953125], [0.0], [0.0], [0.0]]), 3, 1, 0)
@given(_values, st.integers(1, 30), st.integers(1, 30), st.integers(0, 40))
def test_trailing_moments_match_pandas_and_do_not_depend_on_where_history_starts(x, window, min_periods, start):
    min_periods = min(min_periods, window)
    mean, std = trailing_mean_std(x, window, min_periods)
    frame = pd.DataFrame(x)
    np.testing.assert_allclose(mean, frame.rolling(window, min_periods=min_periods).mean().to_numpy(), rtol=1e-9, atol=1e-15)
    # the std against a direct two-pass formula over each window's values (pandas' online rolling
    # std keeps a residue once large values leave the window: 6.7e-10 where [0, 0, 0] gives 0)
    np.testing.assert_allclose(std, _direct_trailing_std(x, window, min_periods), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(std, frame.rolling(window, min_periods=min_periods).std().to_numpy(), rtol=1e-6, atol=1e-8)
    # a window read that starts `start` rows later gives the same bits once it holds a full window
    later_mean, later_std = trailing_mean_std(x[start:], window, min_periods)
    full = slice(start + window - 1, None)
    np.testing.assert_array_equal(later_mean[window - 1 :], mean[full])
    np.testing.assert_array_equal(later_std[window - 1 :], std[full])


def test_volatility_buckets_of_a_window_equal_the_full_history_ones():
    rng = np.random.default_rng(3)
    returns = pd.DataFrame(rng.normal(0, 0.02, (400, 9)) * rng.uniform(0.5, 2, 9), index=pd.bdate_range("2020-01-01", periods=400))
    returns.iloc[50:70, 2] = np.nan
    full = trade_context.volatility_buckets(returns)
    window = trade_context.volatility_buckets(returns.iloc[150:])
    pd.testing.assert_frame_equal(window.iloc[trade_context.VOLATILITY_WINDOW :], full.iloc[150 + trade_context.VOLATILITY_WINDOW :])


def test_listing_sessions_carry_the_count_before_the_window():
    returns = pd.DataFrame({"A": [np.nan, 0.1, 0.2, np.nan, 0.1, 0.0], "B": [np.nan] * 4 + [0.1, 0.1]})
    full = listing_sessions(returns)
    assert full["A"].tolist() == [0, 1, 2, 2, 3, 4] and full["B"].tolist() == [0, 0, 0, 0, 1, 2]
    carried = full.iloc[2]  # counts through row 2
    pd.testing.assert_frame_equal(listing_sessions(returns.iloc[3:], carried), full.iloc[3:])
@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 25).flatmap(
        lambda n_days: st.tuples(
            st.just(n_days),
            st.lists(st.lists(weight_value, min_size=n_days, max_size=n_days), min_size=1, max_size=4),
            st.integers(0, 10_000),
            st.lists(st.integers(1, n_days - 1), min_size=1, max_size=3, unique=True),
        )
    )
)
def test_resumed_round_trips_equal_one_pass_over_the_whole_history(case):
    """Cut anywhere (several times): the trades closed in each part, continued from the open trades and last
    prices of the previous part, are bit for bit the one-pass trades; the final open trades are identical."""
    n_days, columns, seed, cuts = case
    dates = pd.bdate_range("2022-01-03", periods=n_days)
    symbols = [f"S{k}" for k in range(len(columns))]
    weights = pd.DataFrame(np.array(columns).T, index=dates, columns=symbols)
    rng = np.random.default_rng(seed)
    prices = pd.DataFrame(np.exp(rng.normal(0, 0.1, size=(n_days, len(symbols))).cumsum(axis=0)) * 50, index=dates, columns=symbols)
    prices = prices.mask(rng.random(prices.shape) < 0.3)

    full_closed, full_open = round_trips_with_open(weights, prices)
    pd.testing.assert_frame_equal(full_closed, round_trips(weights, prices), check_exact=True)
    bounds = [0, *sorted(cuts), n_days]
    parts, carried, last = [], None, None
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        # a part sees only its own prices (plus the carried last known prices)
        closed, carried = round_trips_with_open(weights.iloc[lo:hi], prices.iloc[lo:hi], carried, last)
        parts.append(closed)
        last = prices.iloc[:hi].ffill().iloc[-1].dropna()
    resumed = pd.concat(parts, ignore_index=True).sort_values(["symbol", "entry_date"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(resumed, full_closed.sort_values(["symbol", "entry_date"], kind="stable").reset_index(drop=True), check_exact=True)
    pd.testing.assert_frame_equal(carried, full_open, check_exact=True)
    assert list(full_open.columns) == list(OPEN_COLUMNS)


def test_open_trades_by_hand():
    dates = pd.bdate_range("2023-03-01", periods=4)
    weights = pd.DataFrame({"A": [0.1, 0.3, 0.2, 0.2], "B": [0.0, -0.2, 0.0, 0.0]}, index=dates)
    prices = pd.DataFrame({"A": [10.0, 11.0, 12.0, 13.0], "B": 5.0}, index=dates)
    closed, open_ = round_trips_with_open(weights, prices)
    assert closed["symbol"].tolist() == ["B"]
    row = open_.iloc[0]
    assert (row["symbol"], row["side"], row["entry_date"], row["entry_price"], row["entry_weight"], row["max_abs_weight"], row["held_sessions"]) == (
        "A", 1.0, dates[0], 10.0, 0.1, 0.3, 3)
