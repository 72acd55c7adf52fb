"""core.metrics against empyrical-reloaded, plus hand-computed values for the non-empyrical stats."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from prometheus_assets.core import metrics as M

ep = pytest.importorskip("empyrical")


def same(a, b, rtol=1e-10, atol=1e-12):
    if np.isnan(a) or np.isnan(b):
        return np.isnan(a) and np.isnan(b)
    if np.isinf(a) or np.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


@st.composite
def return_series(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 400))
    drift = draw(st.sampled_from([-0.003, -0.0005, 0.0, 0.0005, 0.002]))
    vol = draw(st.sampled_from([0.001, 0.01, 0.03]))
    r = rng.normal(drift, vol, n)
    if draw(st.booleans()):
        r[rng.random(n) < 0.05] = np.nan
    return pd.Series(r, index=pd.bdate_range("2020-01-01", periods=n))


@settings(max_examples=200, deadline=None)
@given(return_series(), st.sampled_from([0.0, 0.0001]))
def test_equals_empyrical(r, rf):
    clean = r.dropna()
    pairs = {
        "total_return": (M.total_return(r), ep.cum_returns_final(clean)),
        "cagr": (M.cagr(r), ep.annual_return(clean)),
        "annual_volatility": (M.annual_volatility(r), ep.annual_volatility(clean)),
        "sharpe_ratio": (M.sharpe_ratio(r, rf), ep.sharpe_ratio(clean, risk_free=rf)),
        "sortino_ratio": (M.sortino_ratio(r, rf), ep.sortino_ratio(clean, required_return=rf)),
        "downside_risk": (M.downside_risk(r, rf), ep.downside_risk(clean, required_return=rf)),
        "max_drawdown": (M.max_drawdown(r), ep.max_drawdown(clean)),
        "calmar_ratio": (M.calmar_ratio(r), ep.calmar_ratio(clean)),
        "value_at_risk": (M.value_at_risk(r), ep.value_at_risk(clean, cutoff=0.05)),
    }
    for name, (mine, theirs) in pairs.items():
        assert same(mine, float(theirs)), (name, mine, theirs)


@settings(max_examples=100, deadline=None)
@given(st.floats(-0.05, 0.05, allow_nan=False), st.integers(2, 400), st.sampled_from([0.0, 0.0002]))
def test_sharpe_of_equal_returns_is_infinite_or_undefined_as_in_empyrical(value, n, rf):
    """Regression: the std of equal values can come out as ~1e-19, and the Sharpe of a constant series was ~1e17."""
    r = pd.Series([value] * n)
    mine = M.sharpe_ratio(r, rf)
    assert np.isinf(mine) or np.isnan(mine)
    assert same(mine, float(ep.sharpe_ratio(r, risk_free=rf)))
    assert np.sign(mine) == np.sign(value - rf) if value != rf else np.isnan(mine)


def test_hand_computed_period_stats():
    r = pd.Series([0.02, -0.01, 0.0, 0.03, np.nan, -0.02])
    assert M.win_rate(r) == pytest.approx(2 / 5)
    assert M.profit_factor(r) == pytest.approx(0.05 / 0.03)
    assert M.average_win_loss_ratio(r) == pytest.approx(0.025 / 0.015)
    assert M.total_return(r) == pytest.approx(1.02 * 0.99 * 1.03 * 0.98 - 1)
    # curve 1, 1.02, 1.0098, 1.0098, 1.040094, 1.01929212 -> trough after the peak 1.040094
    assert M.max_drawdown(r) == pytest.approx(-0.02)
    assert M.max_drawdown([-0.1, 0.05]) == pytest.approx(-0.1)


def test_edge_cases():
    assert np.isinf(M.profit_factor([0.01, 0.02]))
    assert np.isnan(M.profit_factor([0.0, np.nan]))
    assert np.isnan(M.average_win_loss_ratio([0.01, 0.02]))
    assert np.isnan(M.sharpe_ratio([0.01]))
    assert np.isnan(M.calmar_ratio([0.01, 0.02]))
    assert np.isnan(M.total_return([]))


def test_metric_vector_keys_and_values():
    r = pd.Series(np.random.default_rng(1).normal(0.0005, 0.01, 500))
    v = M.metric_vector(r)
    assert list(v) == ["total_return", "cagr", "annual_volatility", "sharpe_ratio", "sortino_ratio", "max_drawdown",
                       "calmar_ratio", "value_at_risk", "win_rate", "profit_factor", "average_win_loss_ratio"]
    assert v["sharpe_ratio"] == M.sharpe_ratio(r) and all(isinstance(x, float) for x in v.values())
