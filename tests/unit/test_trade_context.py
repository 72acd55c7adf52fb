"""Volatility buckets are start-invariant: the value at a session depends only on its own trailing window."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from prometheus_assets.core import trade_context
from prometheus_assets.core.trade_context import trailing_std, volatility_buckets


def _panel(seed: int, n_days: int, n_symbols: int, holes: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 0.02, size=(n_days, n_symbols)) * rng.uniform(0.2, 3.0, size=n_symbols)
    values[rng.random(values.shape) < holes] = np.nan
    return pd.DataFrame(values, index=pd.bdate_range("2020-01-01", periods=n_days), columns=[f"S{k}" for k in range(n_symbols)])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 120), st.integers(1, 6), st.sampled_from([0.0, 0.0, 0.01, 0.2]), st.integers(2, 30))
def test_trailing_std_at_a_row_ignores_everything_before_its_window(seed, cut, n_symbols, holes, window):
    returns = _panel(seed, 140, n_symbols, holes)
    full = trailing_std(returns, window)
    tail = trailing_std(returns.iloc[cut:], window)
    # rows whose window lies inside the truncated panel are the same bits
    pd.testing.assert_frame_equal(tail.iloc[window - 1 :], full.iloc[cut + window - 1 :], check_exact=True)
    assert tail.iloc[: window - 1].isna().all().all()
    # only some rows: the same bits as the all-rows computation
    some = returns.index[::7]
    pd.testing.assert_frame_equal(trailing_std(returns, window, dates=some), full.loc[some], check_exact=True)
    # what it computes: the sample std of the window (pandas' rolling std up to rounding, NaN alike)
    reference = returns.rolling(window, min_periods=window).std()
    np.testing.assert_allclose(full.to_numpy(), reference.to_numpy(), rtol=1e-9, atol=1e-15)


def _labels(frame: pd.DataFrame) -> list:
    return [[None if pd.isna(v) else str(v) for v in row] for row in frame.to_numpy(dtype=object)]


def test_volatility_buckets_of_some_dates_equal_the_full_panel_and_a_window_read():
    returns = _panel(3, 300, 12, 0.01)
    full = volatility_buckets(returns)
    days = returns.index[[59, 60, 150, 299]]
    assert _labels(volatility_buckets(returns, dates=days)) == _labels(full.loc[days])
    window = returns.iloc[150 - trade_context.VOLATILITY_WINDOW + 1 :]
    assert _labels(volatility_buckets(window, dates=days[2:])) == _labels(full.loc[days[2:]])
    assert set(_labels(full)[-1]) <= {"low", "mid", "high", None} and full.iloc[:59].isna().all().all()


def test_volatility_terciles_are_symmetric_and_ties_are_mid_whatever_their_number():
    """Regression: the percentile was rank / n, in (0, 1] not symmetric: one name was 'high', two equal names
    'high' and four 'mid', and 20 names split 6 / 7 / 7 (low / mid / high)."""
    from scipy.stats import rankdata

    days = pd.bdate_range("2020-01-01", periods=30)
    rng = np.random.default_rng(3)

    def buckets(columns):
        return volatility_buckets(pd.DataFrame(columns, index=days), window=20).iloc[-1]

    assert buckets({"A": rng.normal(0, 0.01, 30)}).tolist() == ["mid"]
    same = rng.normal(0, 0.01, 30)
    for n in (2, 4):
        assert set(buckets({f"S{k}": same for k in range(n)})) == {"mid"}
    wide = {f"S{k}": rng.normal(0, 0.01 * (k + 1), 30) for k in range(20)}
    got = buckets(wide)
    assert got.value_counts().to_dict() == {"low": 7, "mid": 6, "high": 7}
    # independent reference: (average rank - 1/2) / n against the tercile bounds
    vol = pd.DataFrame(wide, index=days).iloc[-20:].std()
    pct = (rankdata(vol.to_numpy()) - 0.5) / len(vol)
    want = np.select([pct <= 1 / 3, pct <= 2 / 3], ["low", "mid"], "high")
    assert got.tolist() == want.tolist()


def test_the_edge_scopes_terciles_are_symmetric_too():
    """Regression: the edge context's rank-position, size and liquidity buckets used rank / n like the volatility
    buckets did: one name was always 'top', four names split 1 / 1 / 2."""
    from prometheus_assets.core.edge.context import _terciles
    from prometheus_assets.core.frames import cross_sectional_percentile

    names = ("bottom", "middle", "top")
    day = pd.DatetimeIndex(["2024-01-02"])
    assert _terciles(pd.DataFrame({"A": [1.0]}, index=day), names).tolist() == [["middle"]]
    four = _terciles(pd.DataFrame([[1.0, 2.0, 3.0, 4.0]], index=day, columns=list("ABCD")), names)
    assert four.tolist() == [["bottom", "middle", "middle", "top"]]
    # the percentile itself against scipy's average ranks, NaN kept
    from scipy.stats import rankdata

    frame = pd.DataFrame([[3.0, np.nan, 1.0, 3.0, 2.0]], index=day)
    got = cross_sectional_percentile(frame)[0]
    present = ~np.isnan(frame.iloc[0].to_numpy())
    np.testing.assert_allclose(got[present], (rankdata(frame.iloc[0].to_numpy()[present]) - 0.5) / present.sum(), rtol=0, atol=1e-15)
    assert np.isnan(got[1])
