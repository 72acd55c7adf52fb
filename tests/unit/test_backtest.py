"""core.backtest.simulate against a hand example and an independent day-by-day loop."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from prometheus_assets.core.backtest import SIMULATION_COLUMNS, simulate, simulate_with_state


def reference_loop(prices, target_weights, cost_bps=0.0, initial_equity=1.0):
    """Plain Python, one day at a time; costs by plain fixed-point iteration (a contraction)."""
    symbols = list(prices.columns)
    trades = {}
    for date, row in target_weights.iterrows():
        if not row.isna().all():
            trades[date] = {s: (0.0 if (s not in row.index or math.isnan(row[s])) else float(row[s])) for s in symbols}
    invested = [d for d, w in trades.items() if any(v != 0 for v in w.values())]
    if not invested:  # a book that never holds anything has no track record
        return pd.DataFrame(columns=SIMULATION_COLUMNS, index=prices.index[:0], dtype=float)
    first = min(invested)
    shares = {s: 0.0 for s in symbols}
    last = {s: 0.0 for s in symbols}
    cash = initial_equity
    rate = cost_bps / 10_000
    rows = []
    prev_equity = initial_equity
    for date, row in prices.iterrows():
        for s in symbols:
            if not math.isnan(row[s]):
                last[s] = float(row[s])
        if date < first:
            continue
        turnover = cost = 0.0
        if date in trades:
            w = trades[date]
            tradeable = [s for s in symbols if not math.isnan(row[s])]
            before = cash + sum(shares[s] * last[s] for s in symbols)
            after = before
            for _ in range(500):
                after = before - rate * sum(abs(w[s] * after - shares[s] * last[s]) for s in tradeable)
            traded = sum(abs(w[s] * after - shares[s] * last[s]) for s in tradeable)
            cost = before - after
            for s in tradeable:
                new_shares = w[s] * after / last[s]
                cash -= (new_shares - shares[s]) * last[s]
                shares[s] = new_shares
            cash -= cost
            turnover = traded / after
        equity = cash + sum(shares[s] * last[s] for s in symbols)
        gross = sum(abs(shares[s] * last[s]) for s in symbols)
        rows.append(
            {"equity": equity, "returns": equity / prev_equity - 1, "turnover": turnover, "costs": cost,
             "gross_exposure": gross / equity, "cash": cash}
        )
        prev_equity = equity
    return pd.DataFrame(rows, index=prices.index[prices.index >= first])


def test_hand_example_two_assets_one_rebalance():
    dates = pd.bdate_range("2024-01-01", periods=3)
    prices = pd.DataFrame({"A": [10.0, 11.0, 12.1], "B": [20.0, 18.0, 18.0]}, index=dates)
    weights = pd.DataFrame({"A": [0.5], "B": [0.25]}, index=dates[:1])
    out = simulate(prices, weights, initial_equity=100.0)
    # day 0: 5 shares A (50), 1.25 shares B (25), 25 cash
    # day 1: 55 + 22.5 + 25 = 102.5; day 2: 60.5 + 22.5 + 25 = 108
    np.testing.assert_allclose(out["equity"], [100.0, 102.5, 108.0])
    np.testing.assert_allclose(out["returns"], [0.0, 0.025, 108 / 102.5 - 1])
    np.testing.assert_allclose(out["turnover"], [0.75, 0, 0])
    np.testing.assert_allclose(out["cash"], [25.0, 25.0, 25.0])
    np.testing.assert_allclose(out["gross_exposure"], [0.75, 77.5 / 102.5, 83 / 108])
    assert list(out.columns) == SIMULATION_COLUMNS

    # with 10 bps: after = 100 - 0.001 * 0.75 * after  =>  after = 100 / 1.00075
    out = simulate(prices, weights, cost_bps=10.0, initial_equity=100.0)
    after = 100 / 1.00075
    assert out["equity"].iloc[0] == pytest.approx(after, rel=1e-14)
    assert out["costs"].iloc[0] == pytest.approx(100 - after, rel=1e-12)
    assert out["returns"].iloc[0] == pytest.approx(after / 100 - 1, rel=1e-12)
    a_shares, b_shares, cash = 0.5 * after / 10, 0.25 * after / 20, 0.25 * after
    assert out["equity"].iloc[2] == pytest.approx(a_shares * 12.1 + b_shares * 18 + cash, rel=1e-14)


def test_untradeable_and_delisted_symbols_keep_their_holding():
    dates = pd.bdate_range("2024-01-01", periods=4)
    prices = pd.DataFrame({"A": [10.0, 12.0, np.nan, np.nan], "B": [5.0, 5.0, 6.0, 6.0]}, index=dates)
    weights = pd.DataFrame({"A": [0.5, 0.0], "B": [0.5, 1.0]}, index=dates[[0, 2]])
    out = simulate(prices, weights)
    # day 2: A untradeable, still 0.05 shares valued at 12 = 0.6; B 0.1 shares at 6 = 0.6; equity 1.2
    # B target 1.0 * 1.2 -> 0.2 shares; cash = 1.2 - 1.2 - 0.6 = -0.6 ; A keeps its value
    assert out["equity"].iloc[2] == pytest.approx(1.2)
    assert out["cash"].iloc[2] == pytest.approx(-0.6)
    assert out["equity"].iloc[3] == pytest.approx(1.2)
    assert out["gross_exposure"].iloc[3] == pytest.approx(1.8 / 1.2)


def test_a_book_starts_on_its_first_trade_not_on_zero_rows_before_it():
    """Regression: all-zero target rows (rebalance dates before a book has candidates) started the output, so a
    book had months of 0.0 returns before its first trade, which counted as track record downstream."""
    dates = pd.bdate_range("2024-01-01", periods=6)
    prices = pd.DataFrame({"A": [10.0, 11, 12, 13, 14, 15], "B": 20.0}, index=dates)
    weights = pd.DataFrame({"A": [0.0, np.nan, 0.5, 0.0], "B": [0.0, 0.0, 0.0, 0.0]}, index=dates[[0, 1, 3, 4]])
    out, state = simulate_with_state(prices, weights)
    assert out.index[0] == dates[3] and out["returns"].iloc[0] == 0.0  # starts on the trade, no zeros before
    assert out.loc[dates[4], "gross_exposure"] == 0.0  # a later all-zero row is a real sale into cash
    none, no_state = simulate_with_state(prices, weights.iloc[:2])
    assert none.empty and no_state is None
    # split at the zero rows and continued: the same as one run
    tail, _ = simulate_with_state(prices.iloc[2:], weights[weights.index >= dates[2]], state=no_state)
    pd.testing.assert_frame_equal(tail, out, check_exact=True)


def test_empty_rows_skipped_and_bad_dates_rejected():
    dates = pd.bdate_range("2024-01-01", periods=5)
    prices = pd.DataFrame({"A": np.linspace(1, 2, 5)}, index=dates)
    weights = pd.DataFrame({"A": [np.nan, 1.0]}, index=dates[[0, 2]])
    out = simulate(prices, weights)
    assert out.index[0] == dates[2] and len(out) == 3
    with pytest.raises(ValueError):
        simulate(prices, pd.DataFrame({"A": [1.0]}, index=[pd.Timestamp("2030-01-01")]))
    with pytest.raises(ValueError):
        simulate(prices, pd.DataFrame({"Z": [1.0]}, index=dates[:1]))


@st.composite
def books(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_days = draw(st.integers(2, 40))
    n_sym = draw(st.integers(1, 5))
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=n_days)
    symbols = [f"S{i}" for i in range(n_sym)]
    px = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, (n_days, n_sym)), axis=0))
    px[rng.random(px.shape) < draw(st.sampled_from([0.0, 0.1, 0.3]))] = np.nan
    prices = pd.DataFrame(px, index=dates, columns=symbols)
    n_trades = draw(st.integers(1, n_days))
    trade_dates = np.sort(rng.choice(n_days, size=n_trades, replace=False))
    w = rng.uniform(-1 if draw(st.booleans()) else 0, 1, (n_trades, n_sym))
    w *= draw(st.floats(0.1, 1.5)) / np.maximum(np.abs(w).sum(axis=1, keepdims=True), 1e-12)
    w[rng.random(w.shape) < 0.15] = np.nan
    w[rng.random(n_trades) < 0.2] = np.nan  # some empty rows
    w[0, 0] = 0.0 if np.isnan(w[0]).all() else w[0, 0]  # at least one trade
    cols = symbols if n_sym == 1 or draw(st.booleans()) else symbols[:-1]
    weights = pd.DataFrame(w, index=dates[trade_dates], columns=symbols)[cols]
    if weights.isna().all(axis=None):
        weights.iloc[0, 0] = 0.0
    return prices, weights


@settings(max_examples=150, deadline=None)
@given(books(), st.sampled_from([0.0, 0.0, 1.0, 10.0, 50.0]), st.floats(0.5, 1e6))
def test_matches_independent_day_by_day_loop(book, cost_bps, initial_equity):
    prices, weights = book
    got = simulate(prices, weights, cost_bps=cost_bps, initial_equity=initial_equity)
    want = reference_loop(prices, weights, cost_bps=cost_bps, initial_equity=initial_equity)
    assert got.index.equals(want.index)
    for col in SIMULATION_COLUMNS:
        scale = initial_equity if col in ("equity", "costs", "cash") else 1.0
        np.testing.assert_allclose(got[col], want[col], rtol=1e-9, atol=1e-12 * scale, err_msg=col)


def test_a_days_equity_does_not_depend_on_how_much_history_follows():
    # the split-backfill invariance of sleeve_positions / sleeve_returns rests on this
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2020-01-01", periods=300)
    prices = pd.DataFrame(100 * np.cumprod(1 + rng.normal(0, 0.01, (300, 57)), axis=0), index=dates, columns=[f"S{i}" for i in range(57)])
    targets = pd.DataFrame(rng.dirichlet(np.ones(57), 3), index=dates[[0, 100, 200]], columns=prices.columns)
    whole = simulate(prices, targets, cost_bps=5.0)
    for cut in (101, 157, 233, 299):
        part = simulate(prices.iloc[:cut], targets.loc[: dates[cut - 1]], cost_bps=5.0)
        assert np.array_equal(part.to_numpy(), whole.iloc[:cut].to_numpy()), cut


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 70), cost_bps=st.sampled_from([0.0, 5.0, 25.0]))
def test_a_simulation_continued_from_its_state_is_the_tail_of_one_run(seed, cut, cost_bps):
    """What the daily run does: simulate up to t-1, keep the state, continue from it on t … — bit for bit."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-01", periods=80)
    names = list("ABCDEF")
    prices = pd.DataFrame(np.exp(np.cumsum(rng.normal(0, 0.02, (80, 6)), axis=0)) * 50, index=dates, columns=names)
    prices = prices.mask(rng.random(prices.shape) < 0.1)  # missing prices: held names valued at their last price
    prices.iloc[:10, 5] = np.nan  # a name without any price yet
    reb = dates[sorted(rng.choice(80, size=8, replace=False))]
    targets = pd.DataFrame(rng.uniform(-0.2, 0.4, (8, 6)), index=reb, columns=names)
    full, _ = simulate_with_state(prices, targets, cost_bps)
    head, state = simulate_with_state(prices.iloc[:cut], targets[targets.index < dates[cut]], cost_bps)
    tail, _ = simulate_with_state(prices.iloc[cut:], targets[targets.index >= dates[cut]], cost_bps, state=state)
    pd.testing.assert_frame_equal(pd.concat([head, tail]), full, check_exact=True)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), names=st.integers(9, 60), never_held=st.sets(st.integers(0, 60), min_size=1, max_size=8),
       cost_bps=st.sampled_from([0.0, 5.0]))
def test_a_days_equity_does_not_depend_on_symbols_the_book_never_holds(seed, names, never_held, cost_bps):
    # A longer read has price columns of names delisted before the range or listed after it (NaN
    # there, so never held). The split-backfill identity needs the same bits without them: with
    # ndarray.sum() (pairwise, grouped by position) a one-range and a split backfill differed.
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=120)
    columns = [f"S{i:03d}" for i in range(names)]
    prices = pd.DataFrame(100 * np.cumprod(1 + rng.normal(0, 0.01, (120, names)), axis=0), index=dates, columns=columns)
    targets = pd.DataFrame(rng.uniform(-0.05, 0.1, (4, names)), index=dates[[0, 30, 60, 90]], columns=columns)
    wider = prices.copy()
    for j in sorted(never_held):
        extra = np.full(120, np.nan)
        extra[rng.integers(91, 121):] = 20.0  # listed after the last rebalance (or not in this span)
        wider.insert(min(j, wider.shape[1]), f"S{j:03d}x", extra)
    plain = simulate(prices, targets, cost_bps=cost_bps)
    padded = simulate(wider, targets, cost_bps=cost_bps)
    assert np.array_equal(plain.to_numpy(), padded.to_numpy(), equal_nan=True)
