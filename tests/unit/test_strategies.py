"""Alpha-score strategies: documented ranges, point in time, hand-checked values, normalisation, IC."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings, strategies as st
from skfolio.datasets import load_sp500_dataset

from prometheus_assets.core import strategies as S
from prometheus_assets.core.evaluation import forward_returns, ic_summary, rank_ic


@pytest.fixture(scope="module")
def sp500():
    return load_sp500_dataset()


@pytest.fixture(scope="module")
def sp500_signals(sp500):
    return S.all_signals(sp500)


def assert_documented_ranges(sig: pd.DataFrame) -> None:
    assert list(sig.columns) == S.SIGNAL_COLUMNS
    assert sig["alpha_score"].between(-1, 1).all() and np.isfinite(sig["alpha_score"]).all()
    assert sig["confidence"].between(0, 1).all() and np.isfinite(sig["confidence"]).all()
    assert sig["horizon_days"].dtype == np.int64 and (sig["horizon_days"] > 0).all()
    assert sig["volatility_adjusted"].dtype == bool
    step = max(1, len(sig) // 20_000)  # parse a spread-out sample of large frames
    assert all(isinstance(json.loads(m), dict) for m in sig["metadata"].iloc[::step])
    assert not sig.duplicated(["date", "symbol", "strategy"]).any()
    assert sig.equals(sig.sort_values(["date", "symbol", "strategy"], kind="stable").reset_index(drop=True))


def random_prices(seed: int, n_days: int, n_names: int, gap_prob: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    logs = rng.normal(0.0003, rng.uniform(0.002, 0.04), size=(n_days, n_names)).cumsum(axis=0)
    prices = pd.DataFrame(50 * np.exp(logs), index=pd.bdate_range("2001-01-01", periods=n_days), columns=[f"S{i}" for i in range(n_names)])
    prices = prices.mask(rng.random(prices.shape) < gap_prob)  # days a name does not trade
    if n_names > 1:
        prices.iloc[: n_days // 3, 0] = np.nan  # a late listing
        prices.iloc[n_days // 4 : n_days // 4 + 10, -1] = prices.iloc[n_days // 4, -1]  # a flat stretch
    return prices


# ------------------------------------------------------------------ documented ranges


def test_ranges_on_bundled_data(sp500_signals):
    assert_documented_ranges(sp500_signals)
    assert set(sp500_signals["strategy"]) == set(S.STRATEGIES)
    by = sp500_signals.groupby("strategy")
    assert by["horizon_days"].first().to_dict() == {"bollinger_mean_reversion": 5, "macd_rsi_confluence": 10, "momentum_rank": 20}
    assert by["volatility_adjusted"].first().to_dict() == {"bollinger_mean_reversion": True, "macd_rsi_confluence": False, "momentum_rank": False}
    # lookbacks: the first signal date of each strategy (20 names, all trading from day one)
    first = by["date"].min()
    dates = load_sp500_dataset().index
    assert first["bollinger_mean_reversion"] == dates[19]
    assert first["macd_rsi_confluence"] == dates[26 + 9 - 2]
    assert first["momentum_rank"] == dates[252]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6), st.sampled_from([0.0, 0.05, 0.3]))
def test_ranges_on_random_paths(seed, n_names, gap_prob):
    sig = S.all_signals(random_prices(seed, 300, n_names, gap_prob))
    assert_documented_ranges(sig)
    mom = sig[sig["strategy"] == "momentum_rank"]
    single = mom.groupby("date")["symbol"].transform("size") == 1
    assert (mom.loc[single, "alpha_score"] == 0).all()


def test_records_round_trip(sp500_signals):
    rows = sp500_signals.iloc[[0, 200_000, len(sp500_signals) - 1]]
    records = S.signals_to_records(rows)
    for rec, (_, row) in zip(records, rows.iterrows()):
        assert isinstance(rec, S.StrategySignal)
        assert rec.timestamp == row["date"] and rec.symbol == row["symbol"] and rec.strategy == row["strategy"]
        assert rec.alpha_score == row["alpha_score"] and isinstance(rec.horizon_days, int)
        assert rec.metadata == json.loads(row["metadata"])


# ------------------------------------------------------------------ point in time


def assert_point_in_time(prices: pd.DataFrame, cut: pd.Timestamp) -> None:
    full = S.all_signals(prices)
    part = S.all_signals(prices.loc[:cut])
    expected = full[full["date"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected, check_exact=True)


def test_point_in_time_on_bundled_data(sp500):
    prices = sp500.iloc[:800]
    for cut in (prices.index[300], prices.index[555]):
        assert_point_in_time(prices, cut)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(200, 299))
def test_point_in_time_on_random_paths(seed, n_names, cut_pos):
    prices = random_prices(seed, 300, n_names, 0.1)
    assert_point_in_time(prices, prices.index[cut_pos])


# ------------------------------------------------------------------ hand-checked examples


def test_price_far_below_its_band_gives_positive_bollinger_alpha():
    dates = pd.bdate_range("2020-01-01", periods=20)
    prices = pd.DataFrame({"X": [100.0] * 19 + [80.0], "Y": [100.0 + (i % 2) for i in range(19)] + [100.8]}, index=dates)
    sig = S.bollinger_mean_reversion(prices).set_index("symbol")
    assert len(sig) == 2 and (sig["date"] == dates[-1]).all()  # one full window only
    # X: mean 99, population σ = √19, z = −19/√19 ≈ −4.36 → below the lower band → alpha = +1
    assert sig.loc["X", "alpha_score"] == 1.0 and sig.loc["X", "confidence"] == 1.0
    meta = json.loads(sig.loc["X", "metadata"])
    assert np.isclose(meta["z"], -19 / np.sqrt(19)) and meta["price"] < meta["lower"] and meta["k"] == 2.0
    # Y: inside the band → alpha = −z/k exactly as computed by hand
    y = prices["Y"].to_numpy()
    z = (y[-1] - y.mean()) / y.std()
    assert np.isclose(sig.loc["Y", "alpha_score"], -z / 2) and np.isclose(sig.loc["Y", "confidence"], abs(z) / 2)
    # far above the band → −1
    up = S.bollinger_mean_reversion(pd.DataFrame({"X": [100.0] * 19 + [130.0]}, index=dates))
    assert up["alpha_score"].iloc[0] == -1.0


def test_rsi_on_a_monotone_rising_series_is_100_and_alpha_negative():
    dates = pd.bdate_range("2020-01-01", periods=60)
    prices = pd.DataFrame({"UP": 100 * 1.01 ** np.arange(60)}, index=dates)
    assert (S.rsi(prices["UP"]).iloc[1:] == 100).all()
    sig = S.macd_rsi_confluence(prices)
    meta = sig["metadata"].map(json.loads)
    assert (meta.map(lambda m: m["rsi"]) == 100).all()
    assert (sig["alpha_score"] < 0).all()
    # MACD histogram is positive on a rising series: it disagrees with the RSI sell → damped
    assert (meta.map(lambda m: m["agreement"]) < 0).all()
    assert (sig["alpha_score"] > -1).all() and (sig["confidence"] < 0.5).all()


def test_rsi_matches_the_wilder_recurrence():
    p = pd.Series([10.0, 10.5, 10.2, 10.9, 11.0, 10.4, 10.6, 10.1, 10.3, 10.8])
    n = 3
    d = np.diff(p.to_numpy())
    g, lo = max(d[0], 0), max(-d[0], 0)
    expected = [np.nan, 100 - 100 / (1 + g / lo) if lo > 0 else 100.0]
    for x in d[1:]:
        g = g + (max(x, 0) - g) / n
        lo = lo + (max(-x, 0) - lo) / n
        expected.append(100 - 100 / (1 + g / lo))
    np.testing.assert_allclose(S.rsi(p, n).to_numpy(), expected, rtol=1e-12)


def test_rsi_alpha_mapping():
    np.testing.assert_allclose(S.rsi_alpha(np.array([0.0, 15.0, 30.0, 50.0, 70.0, 85.0, 100.0])), [1, 0.5, 0, 0, 0, -0.5, -1])


def test_confluence_agreement_strengthens_and_follows_the_documented_formula():
    # a steady fall (RSI = 0 → buy call of 1) ending in a small rebound: the MACD histogram
    # turns up and confirms the buy while RSI is still below 30
    prices_list = list(100 * 0.99 ** np.arange(60)) + [0.0] * 4
    for i in range(60, 64):
        prices_list[i] = prices_list[i - 1] * 1.004
    prices = pd.DataFrame({"F": prices_list}, index=pd.bdate_range("2020-01-01", periods=64))
    sig = S.macd_rsi_confluence(prices)
    meta = sig["metadata"].map(json.loads)
    rsi_alpha = meta.map(lambda m: m["rsi_alpha"])
    agree = meta.map(lambda m: m["agreement"])
    np.testing.assert_allclose(sig["alpha_score"], np.clip(rsi_alpha * (1 + 0.5 * agree), -1, 1))
    np.testing.assert_allclose(sig["confidence"], rsi_alpha.abs() * (1 + agree) / 2)
    rebound = sig.tail(4)
    assert (meta.tail(4).map(lambda m: 0 < m["rsi"] < 30)).all()
    assert (agree.tail(4) > 0).all() and (rebound["alpha_score"] > rsi_alpha.tail(4)).all()


def test_momentum_rank_of_three_names():
    dates = pd.bdate_range("2019-01-01", periods=253)
    base = np.full(253, 100.0)

    def path(at_skip: float) -> np.ndarray:
        p = base.copy()
        p[253 - 1 - 21] = at_skip  # the price 21 sessions before the last date
        p[-1] = 500.0  # the latest month is skipped: must not matter
        return p

    prices = pd.DataFrame({"LOSER": path(90.0), "MIDDLE": path(100.0), "WINNER": path(110.0)}, index=dates)
    prices.loc[dates[-1], "LOSER"] = 1000.0  # best last month, still the worst 12-1
    sig = S.momentum_rank(prices)
    assert (sig["date"] == dates[-1]).all() and len(sig) == 3
    alpha = sig.set_index("symbol")["alpha_score"]
    assert alpha.to_dict() == {"LOSER": -1.0, "MIDDLE": 0.0, "WINNER": 1.0}
    meta = json.loads(sig.set_index("symbol").loc["WINNER", "metadata"])
    assert np.isclose(meta["momentum"], 0.10) and meta["n_names"] == 3 and meta["lookback"] == 252 and meta["skip"] == 21


def test_momentum_rank_ties_and_single_name():
    dates = pd.bdate_range("2019-01-01", periods=8)
    prices = pd.DataFrame({"A": np.arange(1.0, 9.0), "B": np.arange(1.0, 9.0), "C": np.full(8, 3.0)}, index=dates)
    sig = S.momentum_rank(prices, lookback=5, skip=1)
    last = sig[sig["date"] == dates[-1]].set_index("symbol")["alpha_score"]
    assert last.to_dict() == {"A": 0.5, "B": 0.5, "C": -1.0}  # average ranks 2.5, 2.5, 1
    alone = S.momentum_rank(prices[["A"]], lookback=5, skip=1)
    assert (alone["alpha_score"] == 0).all() and (alone["confidence"] == 0).all()


# ------------------------------------------------------------------ normalisation


@st.composite
def cross_sections(draw):
    n_dates = draw(st.integers(1, 4))
    rows = []
    for d in pd.bdate_range("2022-01-03", periods=n_dates):
        n = draw(st.integers(1, 8))
        values = draw(st.lists(st.integers(-50, 50).map(float) | st.just(np.nan), min_size=n, max_size=n))
        rows += [(d, f"S{i}", v) for i, v in enumerate(values)]
    frame = pd.DataFrame(rows, columns=["date", "symbol", "value"])
    frame.index = np.arange(len(frame)) * 3 + 7  # a non-default index: outputs must align to it
    return frame.sample(frac=1.0, random_state=draw(st.integers(0, 1000)))


NORMALISERS = [S.zscore, S.minmax, S.rank_normalise]


@settings(max_examples=80, deadline=None)
@given(cross_sections())
def test_normalisers_ranges_alignment_and_constant_sections(frame):
    for norm in NORMALISERS:
        out = norm(frame, "value")
        assert out.index.equals(frame.index)
        assert (out.isna() == frame["value"].isna()).all()
        if norm is not S.zscore:
            assert out.dropna().between(-1, 1).all()
        for _, idx in frame.groupby("date").groups.items():
            x, y = frame.loc[idx, "value"].dropna(), out.loc[idx].dropna()
            if x.nunique() <= 1:
                assert (y == 0).all()
            else:
                if norm is S.zscore:
                    assert abs(y.mean()) < 1e-12 and abs(y.std(ddof=0) - 1) < 1e-12
                elif norm is S.minmax:
                    assert y.max() == 1 and y.min() == -1
                else:  # ranks reach ±1 only when the extreme is not tied
                    assert y.max() > y.min()
                    assert (y.max() == 1) == ((x == x.max()).sum() == 1)
                    assert (y.min() == -1) == ((x == x.min()).sum() == 1)


@settings(max_examples=80, deadline=None)
@given(cross_sections())
def test_normalisers_are_monotone_within_a_date(frame):
    for norm in NORMALISERS:
        out = norm(frame, "value")
        for _, idx in frame.groupby("date").groups.items():
            x, y = frame.loc[idx, "value"].to_numpy(), out.loc[idx].to_numpy()
            ok = ~np.isnan(x)
            x, y = x[ok], y[ok]
            less = x[:, None] < x[None, :]
            assert (y[:, None] < y[None, :])[less].all()
            assert (y[:, None] == y[None, :])[x[:, None] == x[None, :]].all()


@settings(max_examples=80, deadline=None)
@given(cross_sections(), st.integers(-5, 5).filter(lambda a: a != 0), st.integers(-100, 100))
def test_normalisers_under_affine_transforms(frame, a, b):
    moved = frame.assign(value=a * frame["value"] + b)
    sign = 1.0 if a > 0 else -1.0
    for norm in NORMALISERS:
        before, after = norm(frame, "value"), norm(moved, "value")
        # z-score and min-max are invariant to a positive affine map and flip sign under a
        # negative one; ranks too (ties are kept by an integer affine map on integers)
        np.testing.assert_allclose(after.to_numpy(), sign * before.to_numpy() + 0.0, atol=1e-12)


def test_rank_normalise_by_hand():
    frame = pd.DataFrame({"date": ["d1"] * 4 + ["d2"], "value": [3.0, 1.0, 2.0, 2.0, 7.0]})
    assert S.rank_normalise(frame, "value").tolist() == [1.0, -1.0, 0.0, 0.0, 0.0]
    assert S.minmax(frame, "value").tolist() == [1.0, -1.0, 0.0, 0.0, 0.0]


# ------------------------------------------------------------------ IC by strategy and horizon


def test_wide_forward_returns_match_the_shared_machinery(sp500):
    r = sp500.iloc[:400].pct_change(fill_method=None)
    r.iloc[50:53, 2] = np.nan
    for h in (1, 7):
        wide = S._forward_wide(r, h).rename_axis(index="date", columns="symbol")
        long = wide.stack(future_stack=True).rename("forward_return").reset_index().dropna().reset_index(drop=True)
        pd.testing.assert_frame_equal(long, forward_returns(r, h), check_exact=True)


def test_alpha_decay_shape_and_agreement_with_rank_ic(sp500, sp500_signals):
    prices = sp500.iloc[-1500:]
    returns = prices.pct_change(fill_method=None)
    signals = sp500_signals[sp500_signals["date"] >= prices.index[0]]
    decay = S.alpha_decay(signals, returns, horizons=range(1, 11))
    assert list(decay.columns) == ["strategy", "horizon", "ic_mean", "n_dates"]
    assert len(decay) == 3 * 10 and decay.groupby("strategy")["horizon"].apply(list).map(lambda h: h == list(range(1, 11))).all()
    assert decay["ic_mean"].between(-1, 1).all()
    h = 5
    for name, g in signals.groupby("strategy"):
        direct = rank_ic(g.rename(columns={"alpha_score": "score"}), forward_returns(returns, h))
        row = decay[(decay["strategy"] == name) & (decay["horizon"] == h)].iloc[0]
        assert abs(row["ic_mean"] - ic_summary(direct)["ic_mean"]) < 1e-12 and row["n_dates"] == len(direct)
    table = S.strategy_ic(signals, returns, horizons=(h,))
    assert list(table.columns) == ["strategy", "horizon", "ic_mean", "ic_std", "ic_ir", "t_stat", "hit_rate", "n_dates"]
    merged = table.merge(decay, on=["strategy", "horizon"])
    np.testing.assert_allclose(merged["ic_mean_x"], merged["ic_mean_y"], rtol=0, atol=0)


def test_alpha_decay_on_full_history(sp500, sp500_signals):
    # (timings belong in bench/, not in tests)
    decay = S.alpha_decay(sp500_signals, sp500.pct_change(fill_method=None))
    assert len(decay) == 3 * 60 and decay["ic_mean"].notna().all()


# ------------------------------------------------------------------ incremental state (code version 2)
#
# The daily run continues from the state carried out of the previous session instead of replaying
# from the first day. These tests pin the acceptance gate: the same floats (and bytes) whether a
# history is computed in one pass, in several, or up to t − 1 and then one day.


def ewm_inputs():
    """Arrays with repeats (w == x branches), NaNs inside and at the start, and ±0."""
    values = st.one_of(st.sampled_from([0.0, -0.0, 1.0, 1.5, np.nan]), st.floats(-1e6, 1e6, allow_nan=False))
    return st.lists(values, min_size=1, max_size=60).map(lambda v: np.array(v, dtype="float64"))


@settings(max_examples=200, deadline=None)
@given(ewm_inputs(), st.sampled_from([("span", 12), ("span", 26), ("span", 9), ("alpha", 1 / 14), ("alpha", 1 / 3)]), st.data())
def test_ewm_kernel_is_pandas_ewm_adjust_false_bit_for_bit_also_when_continued(values, how, data):
    kind, value = how
    expected = pd.Series(values).ewm(adjust=False, **{kind: value}).mean().to_numpy()
    com = S.ewm_com(**{kind: value})
    whole, _ = S.ewm_adjust_false(values, com)
    np.testing.assert_array_equal(whole, expected)
    # in pieces, carrying the state (w, ow) across each cut (through JSON, as the asset stores it)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=3)))
    state, parts = S.EWM_FRESH, []
    for a, b in zip([0, *cuts], [*cuts, len(values)]):
        out, state = S.ewm_adjust_false(values[a:b], com, state)
        state = tuple(json.loads(json.dumps(list(state))))
        parts.append(out)
    np.testing.assert_array_equal(np.concatenate(parts), expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=80), st.integers(1, 25), st.integers(0, 40))
@example(values=[3435.5, 80.0, 0.0, 0.0, 0.0], window=3, start=0)  # (failed against pandas' rolling std)
def test_window_statistics_depend_only_on_their_window(values, window, start):
    # the value at i computed from x[start:] equals the one from the whole x: not true of pandas'
    # online rolling mean/std (code version 1), whose rounding carries everything before the window
    x = np.array(values)
    start = min(start, len(x))
    full_sum, part_sum = S.window_sum(x, window), S.window_sum(x[start:], window)
    (full_mean, full_std), (part_mean, part_std) = S.window_mean_std(x, window), S.window_mean_std(x[start:], window)
    for full, part in ((full_sum, part_sum), (full_mean, part_mean), (full_std, part_std)):
        np.testing.assert_array_equal(full[start + window - 1 :], part[window - 1 :])
        assert np.isnan(part[: window - 1]).all()
    # the reference: numpy's mean and std of each window taken on its own (not pandas' rolling std,
    # whose online rounding left 1.8e-05 for the window [0, 0, 0] after [3435.5, 80.0]: a CI failure)
    ref_mean, ref_std = np.full(len(x), np.nan), np.full(len(x), np.nan)
    if len(x) >= window:
        windows = np.lib.stride_tricks.sliding_window_view(x, window)
        ref_mean[window - 1 :], ref_std[window - 1 :] = windows.mean(axis=1), windows.std(axis=1)
    np.testing.assert_allclose(full_mean, ref_mean, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(full_std, ref_std, rtol=1e-9, atol=1e-6)


def test_row_std_ignores_absent_columns():
    rows = np.array([[1.0, np.nan, 2.5, 4.0], [np.nan, np.nan, 3.0, np.nan], [np.nan] * 4])
    out = S.row_std(rows)
    assert out[0] == S.row_std(np.array([[1.0, 2.5, 4.0]]))[0] and np.isclose(out[0], np.std([1.0, 2.5, 4.0]))
    assert out[1] == 0.0 and np.isnan(out[2])


def run_in_pieces(prices: pd.DataFrame, cuts: list[int]) -> tuple[pd.DataFrame, str]:
    """Signals of ``prices`` computed piece by piece (state through JSON between pieces), and the last state."""
    state, parts = None, []
    for a, b in zip([0, *cuts], [*cuts, len(prices)]):
        piece = prices.iloc[a:b]
        sig, after = S.advance_signals(piece, state)
        parts.append(sig)
        state = S.SignalState.from_json(after.to_json())
        assert state.to_json() == after.to_json()  # (NaN states: compare the bytes, not ==)
    parts = [p for p in parts if len(p)]
    return (pd.concat(parts, ignore_index=True) if parts else S._empty()), state.to_json()


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.sampled_from([0.0, 0.1, 0.4]), st.data())
def test_pieces_with_carried_state_equal_one_pass(seed, n_names, gap_prob, data):
    prices = random_prices(seed, 330, n_names, gap_prob)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, 329), min_size=1, max_size=3))))
    one_pass, one_state = S.advance_signals(prices)
    pieces, piece_state = run_in_pieces(prices, cuts)
    pd.testing.assert_frame_equal(pieces, one_pass, check_exact=True)
    assert piece_state == one_state.to_json()
    assert one_pass.equals(S.all_signals(prices))


def test_one_eod_day_from_the_carried_state_equals_the_full_replay(sp500):
    prices = sp500.iloc[:1400]
    full = S.all_signals(prices)
    for t in (prices.index[300], prices.index[1399]):
        _, state = S.advance_signals(prices.loc[prices.index < t])
        day, after = S.advance_signals(prices.loc[[t]], state, since=t)
        expected = full[full["date"] == t].reset_index(drop=True)
        assert len(expected) == 60
        pd.testing.assert_frame_equal(day, expected, check_exact=True)
        # the state is bounded: the last `tail` prices per symbol, whatever the history length
        assert all(len(s.tail) == state.params.tail and s.bars == prices.index.get_loc(t) + 1 for s in after.symbols.values())
        # the full replay restricted to the day's rows, as the asset does without a state
        replay, replay_state = S.advance_signals(prices.loc[:t], None, since=t)
        pd.testing.assert_frame_equal(replay, expected, check_exact=True)
        assert replay_state.to_json() == after.to_json()


def test_days_without_bars_carry_the_state_unchanged():
    prices = random_prices(3, 60, 3, 0.0)
    _, state = S.advance_signals(prices)
    empty = pd.DataFrame(index=pd.DatetimeIndex([], name="date"), dtype="float64")
    sig, after = S.advance_signals(empty, state)
    assert sig.empty and list(sig.columns) == S.SIGNAL_COLUMNS and after.to_json() == state.to_json()
    # a symbol absent from a piece keeps its state; a new symbol starts fresh
    later = pd.DataFrame({"S0": [55.0], "NEW": [10.0]}, index=[prices.index[-1] + pd.Timedelta(days=1)])
    _, after = S.advance_signals(later, state)
    assert after.symbols["S1"] is state.symbols["S1"] and after.symbols["NEW"].bars == 1
    assert after.symbols["S0"].bars == state.symbols["S0"].bars + 1


def test_a_state_of_another_version_is_ignored():
    _, state = S.advance_signals(random_prices(1, 40, 2, 0.0))
    payload = json.loads(state.to_json())
    payload["version"] = S.STATE_VERSION + 1
    assert S.SignalState.from_json(json.dumps(payload)) is None
    with pytest.raises(ValueError):
        S.indicators(random_prices(1, 5, 2, 0.0), state, S.IndicatorParams(window=10))


def test_window_statistics_are_start_invariant_in_the_strategies():
    # Bollinger rows (20-bar windows) of a history started 137 sessions later are the same bytes
    prices = random_prices(7, 400, 4, 0.1)
    full = S.bollinger_mean_reversion(prices)
    late = S.bollinger_mean_reversion(prices.iloc[137:])
    merged = late.merge(full, on=["date", "symbol"], suffixes=("", "_full"))
    assert len(merged) == len(late) > 0
    for col in ("alpha_score", "confidence", "metadata"):
        assert (merged[col] == merged[f"{col}_full"]).all(), col


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=40), st.integers(-5, 5))
def test_metadata_json_reads_back_as_the_same_floats(values, scalar):
    """The Arrow-built metadata text equals, once parsed, ``json.dumps`` of each row's dict: same floats, floats stay floats."""
    index = pd.RangeIndex(len(values))
    fields = {"a": pd.Series(values, index=index, dtype="float64"), "window": scalar,
              "b": pd.Series(values[::-1], index=index, dtype="float64"), "k": 2.0}
    column = S._json_column(fields)
    assert str(column.dtype) == "str" and column.index.equals(index)
    # built in chunks of rows (Arrow strings hold at most 2 GiB: 3,000 names x 20 years overflowed one array): same text
    for chunk_rows in (1, 2, 7):
        assert S._json_column(fields, chunk_rows=chunk_rows).equals(column)
    for i, text in enumerate(column):
        parsed = json.loads(text)
        expected = json.loads(json.dumps({"a": values[i], "window": scalar, "b": values[::-1][i], "k": 2.0}))
        assert list(parsed) == ["a", "window", "b", "k"]
        assert parsed == expected
        assert all(type(parsed[k]) is type(expected[k]) for k in parsed)
        assert all(np.float64(parsed[k]).tobytes() == np.float64(expected[k]).tobytes() for k in ("a", "b"))  # -0.0 too
