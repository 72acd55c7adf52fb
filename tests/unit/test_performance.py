"""Sleeve evaluation against metrics.py applied to explicit slices / windows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from prometheus_assets.core import metrics
from prometheus_assets.core.evaluation import forward_returns, rank_ic
from prometheus_assets.core.performance import (
    ROLLING_COLUMNS,
    SLICE_EXTRA_METRICS,
    alpha_decay,
    alpha_ic,
    rolling_metrics,
    sliced_metrics,
)


def _close(a: float, b: float, tol: float = 1e-10) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(b))


def _returns(n: int, seed: int = 0, start: str = "2020-10-01", nan_share: float = 0.0) -> pd.Series:
    rng = np.random.default_rng(seed)
    r = pd.Series(rng.normal(0.0004, 0.01, n), index=pd.bdate_range(start, periods=n), name="returns")
    return r.mask(rng.random(n) < nan_share)


# --------------------------------------------------------------------------------------------
# sliced_metrics
# --------------------------------------------------------------------------------------------


def test_sliced_metrics_rows_equal_metric_vector_on_each_slice():
    r = _returns(400, seed=1, nan_share=0.05)  # 2020-10 .. 2022-04: three calendar years
    labels = np.where(np.arange(400) % 3 == 0, "CRISIS", "CARRY")
    regimes = pd.Series(labels, index=r.index).iloc[5:]  # first dates have no label
    turnover = pd.Series(np.linspace(0.0, 0.2, 400), index=r.index)
    trades = pd.DataFrame(
        {
            "exit_date": [r.index[10], r.index[20], r.index[300], pd.Timestamp("1999-01-01")],
            "holding_sessions": [3, 5, 8, 1],
            "return": [0.02, -0.01, 0.05, 0.1],
        }
    )
    out = sliced_metrics(r, regimes=regimes, turnover=turnover, trades=trades)
    keys = list(metrics.metric_vector([]).keys())
    assert list(out.columns) == ["scope", "slice", "start", "end", *keys, *SLICE_EXTRA_METRICS]
    assert list(zip(out["scope"], out["slice"])) == [
        ("overall", "all"),
        ("regime", "CARRY"),
        ("regime", "CRISIS"),
        ("period", "first_half"),
        ("period", "second_half"),
        ("year", "2020"),
        ("year", "2021"),
        ("year", "2022"),
    ]
    rows = out.set_index(["scope", "slice"])
    masks = {
        ("overall", "all"): np.ones(400, bool),
        # a day's return counts in the regime published the day before (in force when its positions were set)
        ("regime", "CRISIS"): np.array([i > 0 and regimes.get(r.index[i - 1]) == "CRISIS" for i in range(400)]),
        ("period", "first_half"): np.arange(400) < 200,
        ("period", "second_half"): np.arange(400) >= 200,
        ("year", "2021"): (r.index.year == 2021),
    }
    for key, mask in masks.items():
        expected = metrics.metric_vector(r[mask])
        row = rows.loc[key]
        for name, value in expected.items():
            assert _close(row[name], value), (key, name)
        assert row["start"] == r.index[mask][0] and row["end"] == r.index[mask][-1]
        assert row["n_days"] == r[mask].notna().sum()
        assert _close(row["turnover"], turnover[mask].mean() * 252)
    # trades count in the slice holding their exit date; the 1999 exit is in no slice
    overall = rows.loc[("overall", "all")]
    assert overall["average_holding_sessions"] == pytest.approx(16 / 3) and overall["trade_win_rate"] == pytest.approx(2 / 3)
    second = rows.loc[("period", "second_half")]
    assert second["average_holding_sessions"] == 8 and second["trade_win_rate"] == 1.0
    assert math.isnan(rows.loc[("year", "2022"), "average_holding_sessions"])


def test_sliced_metrics_without_optional_inputs():
    out = sliced_metrics(_returns(30, seed=2))
    assert set(out["scope"]) == {"overall", "period", "year"}
    assert out[["turnover", "average_holding_sessions", "trade_win_rate"]].isna().all().all()


# --------------------------------------------------------------------------------------------
# rolling_metrics
# --------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.1, 0.5]))
def test_rolling_metrics_equal_metrics_on_explicit_window(seed, nan_share):
    r = _returns(120, seed=seed, nan_share=nan_share)
    ic = pd.Series(np.random.default_rng(seed + 1).normal(0.02, 0.1, 120), index=r.index).mask(lambda s: s.index.day % 4 == 0)
    out = rolling_metrics(r, windows=(5, 40), ic=ic)
    assert list(out.columns) == list(ROLLING_COLUMNS)
    assert (out["window"] == 5).sum() == 116 and (out["window"] == 40).sum() == 81
    frame = out.set_index(["window", "date"])
    for window in (5, 40):
        for position in (window - 1, window + 7, 77, 119):
            date = r.index[position]
            chunk = r.iloc[position - window + 1 : position + 1]
            row = frame.loc[(window, date)]
            assert _close(row["sharpe_ratio"], metrics.sharpe_ratio(chunk))
            assert _close(row["annual_volatility"], metrics.annual_volatility(chunk))
            assert _close(row["total_return"], metrics.total_return(chunk))
            assert _close(row["max_drawdown"], metrics.max_drawdown(chunk))
            ic_chunk = ic.iloc[position - window + 1 : position + 1].dropna()
            assert _close(row["ic"], ic_chunk.mean() if len(ic_chunk) else math.nan)


def test_rolling_sharpe_of_a_flat_stretch_is_infinite_as_metrics_gives():
    """Regression: a window of equal returns had a Sharpe of ~1e16 (a std residue of ~1e-19) instead of ±inf."""
    values = [0.01, -0.02] + [0.001] * 30 + [np.nan] * 3 + [0.001] * 5
    r = pd.Series(values, index=pd.bdate_range("2021-01-04", periods=len(values)))
    out = rolling_metrics(r, windows=(5,)).set_index("date")
    for position in range(6, len(r)):  # every window here holds equal returns (and NaN)
        row = out.loc[r.index[position]]
        assert row["sharpe_ratio"] == np.inf and row["sharpe_ratio"] == metrics.sharpe_ratio(r.iloc[position - 4 : position + 1])


def test_rolling_metrics_first_row_is_first_full_window_and_short_series_is_empty():
    r = _returns(10, seed=3)
    out = rolling_metrics(r, windows=(4, 20))
    assert out["date"].iloc[0] == r.index[3] and set(out["window"]) == {4}
    assert out["ic"].isna().all()
    assert rolling_metrics(r, windows=(20,)).empty


# --------------------------------------------------------------------------------------------
# alpha IC
# --------------------------------------------------------------------------------------------


def _alpha_panel(seed: int = 0, n_days: int = 60, n_names: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_days)
    names = [f"S{k:02d}" for k in range(n_names)]
    returns = pd.DataFrame(rng.normal(0, 0.02, (n_days, n_names)), index=dates, columns=names)
    # alpha = next day's return + noise: predictive at horizon 1, fading after
    alpha = returns.shift(-1) + rng.normal(0, 0.02, (n_days, n_names))
    return alpha, returns


def test_alpha_ic_is_dated_when_known():
    alpha, returns = _alpha_panel()
    horizon = 5
    ic = alpha_ic(alpha, returns, horizon)
    scores = alpha.rename_axis(index="date", columns="symbol").stack().rename("score").reset_index()
    by_signal = rank_ic(scores, forward_returns(returns, horizon))
    assert len(ic) == len(by_signal) > 0
    positions = returns.index.get_indexer(by_signal.index)
    assert (ic.index == returns.index[positions + horizon]).all()
    assert np.allclose(ic.to_numpy(), by_signal.to_numpy())
    # the IC known at date d uses no return after d: truncating returns after d keeps it
    cut = returns.index[40]
    ic_cut = alpha_ic(alpha.loc[:cut], returns.loc[:cut], horizon)
    pd.testing.assert_series_equal(ic_cut, ic.loc[:cut])


def test_alpha_decay_means_per_horizon():
    alpha, returns = _alpha_panel(seed=4, n_days=120)
    decay = alpha_decay(alpha, returns, horizons=(1, 5, 20))
    assert list(decay.index) == [1, 5, 20] and decay.name == "ic_mean"
    assert decay.loc[1] > 0.3 and decay.loc[1] > decay.loc[20]
    assert _close(decay.loc[5], alpha_ic(alpha, returns, 5).mean())
