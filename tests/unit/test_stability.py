"""StabilityVector and SoftTargetState (prometheus_assets.core.stability)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_assets.core import calendar
from prometheus_assets.core import stability as stab
from prometheus_assets.core.stability import (
    COMPONENT_WEIGHTS,
    COMPONENTS,
    SOFT_TARGET_CLASSES,
    THRESHOLDS,
    VECTOR_COLUMNS,
    soft_target_states,
    stability_vectors,
)
from prometheus_assets.core.synthetic import generate_market

CONTRIBS = [f"contrib_{c}" for c in COMPONENTS]


# --------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def bundled():
    from skfolio.datasets import load_sp500_dataset, load_sp500_index

    prices = load_sp500_dataset()
    index = load_sp500_index()["SP500"]
    return prices, prices.pct_change().iloc[1:], index.pct_change().iloc[1:]


@pytest.fixture(scope="module")
def synthetic():
    """A small synthetic market over 2006-2009 (includes crash regimes), with volumes."""
    market = generate_market(calendar.trading_sessions("2006-01-01", "2009-12-31"), n_assets=120, seed=7)
    bars = market.bars
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")
    volumes = bars.pivot(index="date", columns="symbol", values="volume")
    states = market.market_states.set_index("date")
    labels = states["state"].map({"calm": "CARRY", "volatile": "RISK_OFF", "crash": "CRISIS"})
    return prices, volumes, prices.pct_change(fill_method=None), states["market_return"], labels


def hand_made() -> tuple[pd.DataFrame, pd.Series]:
    """Five names built to land in the five classes on the last date (seeded, deterministic)."""
    t = 300
    idx = pd.bdate_range("2020-01-01", periods=t)
    rng = np.random.default_rng(1)
    m = rng.standard_normal(t) * 0.01
    e = rng.standard_normal((t, 5))
    r = pd.DataFrame(index=idx)
    r["STABLE"] = 0.0004 + 0.005 * e[:, 0]  # quiet, rising, unrelated to the market
    r["WATCH"] = 0.0003 + 1.0 * m + 0.012 * e[:, 1]  # ordinary stock
    r["FRAGILE"] = 0.003 + 1.6 * m + 0.025 * e[:, 2]  # wild and market-bound, but rising
    targetable = 0.0006 + 1.0 * m + 0.025 * e[:, 3]
    targetable[-63:] -= 0.006  # a steady slide over the last window
    r["TARGETABLE"] = targetable
    breaker = 0.0004 + 1.0 * m + 0.012 * e[:, 4]
    breaker[-40:] = -0.04 + 0.01 * e[-40:, 4]  # a crash of ~80 %
    r["BREAKER"] = breaker
    return r, pd.Series(m, index=idx)


# --------------------------------------------------------------------------- shape and ranges
def test_output_shape_and_ranges_on_bundled(bundled):
    prices, returns, market = bundled
    v = stability_vectors(returns, market, prices=prices)
    assert list(v.columns) == VECTOR_COLUMNS
    assert v["date"].dtype == "datetime64[ns]"
    assert (v["entity_type"] == "instrument").all()
    assert not v.duplicated(["date", "entity_id"]).any()
    assert v.sort_values(["date", "entity_id"]).index.equals(v.index)
    # 20 stocks, the first row of each after a full 63-return window
    assert v["date"].min() == returns.index[62]
    assert len(v) == 20 * (len(returns) - 62)
    for c in [c for c in COMPONENTS if c != "liquidity"] + ["fragility_index"]:
        assert v[c].between(0, 1).all(), c
    assert v["liquidity"].isna().all()


def test_components_in_unit_interval_and_contributions_sum_to_one_with_volumes(synthetic):
    prices, volumes, returns, market, labels = synthetic
    s = soft_target_states(stability_vectors(returns, market, volumes, prices), labels)
    values = s[list(COMPONENTS) + ["fragility_index"]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    np.testing.assert_allclose(s[CONTRIBS].sum(axis=1), 1.0, rtol=1e-12)
    assert (s[CONTRIBS] >= 0).all().all()
    # contributions are the components' shares of the weighted fragility
    w = np.array([COMPONENT_WEIGHTS[c] for c in COMPONENTS])
    raw = (1 - s[list(COMPONENTS)].to_numpy()) * w
    np.testing.assert_allclose(raw.sum(axis=1) / w.sum(), s["fragility_index"], rtol=1e-12)
    np.testing.assert_allclose(raw / raw.sum(axis=1, keepdims=True), s[CONTRIBS], rtol=1e-12)


def test_only_full_windows_and_trailing_data():
    r, m = hand_made()
    r.iloc[100, 0] = np.nan  # STABLE misses one day: no rows for the next 63 sessions
    v = stability_vectors(r, m, window=63)
    dates = v.loc[v["entity_id"] == "STABLE", "date"]
    missing = r.index[100:163]
    assert not dates.isin(missing).any()
    assert r.index[163] in set(dates)


# --------------------------------------------------------------------------- classes
def test_every_class_reachable_hand_made():
    r, m = hand_made()
    s = soft_target_states(stability_vectors(r, m))
    last = s[s["date"] == r.index[-1]].set_index("entity_id")["soft_target_class"]
    assert last.to_dict() == {name: name for name in SOFT_TARGET_CLASSES}


def test_every_class_reachable_on_synthetic(synthetic):
    prices, volumes, returns, market, labels = synthetic
    v = stability_vectors(returns, market, volumes, prices)
    for regimes in (None, labels):
        classes = set(soft_target_states(v, regimes)["soft_target_class"])
        assert classes == set(SOFT_TARGET_CLASSES)


def test_rules_fire_in_order_on_hand_vectors():
    """Hand-made vectors: each rule fires exactly where the table says (default thresholds)."""
    row = dict(volatility=0.5, drawdown=0.5, trend=0.5, liquidity=np.nan, tail_risk=0.5, market_correlation=0.5)
    cases = [
        (dict(drawdown=0.05), 0.40, "BREAKER", "drawdown<="),  # deep drawdown beats everything
        ({}, 0.75, "BREAKER", "fragility>="),
        (dict(trend=0.1, tail_risk=0.3), 0.55, "TARGETABLE", "trend<="),
        (dict(trend=0.1, tail_risk=0.9), 0.55, "FRAGILE", "fragility>="),  # tails not fat
        (dict(trend=0.9, tail_risk=0.3), 0.55, "FRAGILE", "fragility>="),  # not falling
        ({}, 0.40, "WATCH", "fragility>="),
        ({}, 0.10, "STABLE", "fragility<"),
    ]
    frame = pd.DataFrame(
        [{"date": pd.Timestamp("2020-01-02"), "entity_type": "instrument", "entity_id": f"X{i}", **row, **over, "fragility_index": f} for i, (over, f, _, _) in enumerate(cases)]
    )
    s = soft_target_states(frame)
    assert s["soft_target_class"].tolist() == [c[2] for c in cases]
    for rule, (_, _, cls, text) in zip(s["rule"], cases):
        assert rule.startswith(cls + ":") and text in rule and rule.endswith("[DEFAULT]")


def test_regime_thresholds_change_the_class_of_a_borderline_name():
    comps = dict(volatility=0.4, drawdown=0.5, trend=0.5, liquidity=np.nan, tail_risk=0.6, market_correlation=0.3)
    d1, d2, d3 = pd.Timestamp("2020-03-16"), pd.Timestamp("2020-03-17"), pd.Timestamp("2020-03-18")
    frame = pd.DataFrame([{"date": d, "entity_type": "instrument", "entity_id": "X", **comps, "fragility_index": 0.56} for d in (d1, d2, d3)])
    assert THRESHOLDS["DEFAULT"]["fragile"] <= 0.56 < THRESHOLDS["CRISIS"]["fragile"]
    plain = soft_target_states(frame)
    assert plain["soft_target_class"].tolist() == ["FRAGILE"] * 3
    labels = pd.Series({d1: "CRISIS", d2: "NEUTRAL", pd.Timestamp("2020-03-19"): "CRISIS"})  # d3 unlabelled
    regimed = soft_target_states(frame, labels)
    assert regimed["soft_target_class"].tolist() == ["WATCH", "FRAGILE", "FRAGILE"]
    assert regimed["regime"].tolist() == ["CRISIS", "NEUTRAL", "DEFAULT"]
    assert regimed["rule"].iloc[0] == "WATCH: fragility>=0.45 [CRISIS]"


def test_unknown_or_missing_labels_use_default_thresholds(bundled):
    prices, returns, market = bundled
    v = stability_vectors(returns.iloc[:400], market.iloc[:400], prices=prices.iloc[:401])
    plain = soft_target_states(v)
    junk = pd.Series(["SIDEWAYS", None] * 200, index=returns.index[:400])
    pd.testing.assert_frame_equal(plain, soft_target_states(v, junk), check_exact=True)


def test_crisis_thresholds_keep_a_market_wide_selloff_from_being_all_breakers(bundled):
    prices, returns, market = bundled
    v = stability_vectors(returns, market, prices=prices)
    crash = v[(v["date"] >= "2008-10-01") & (v["date"] <= "2009-03-31")]
    labels = pd.Series("CRISIS", index=pd.DatetimeIndex(crash["date"].unique()))
    plain = (soft_target_states(crash)["soft_target_class"] == "BREAKER").mean()
    regimed = (soft_target_states(crash, labels)["soft_target_class"] == "BREAKER").mean()
    assert regimed < plain


def test_zero_fragility_contributions_are_weight_shares():
    frame = pd.DataFrame(
        [{"date": pd.Timestamp("2020-01-02"), "entity_type": "instrument", "entity_id": "X", **{c: 1.0 for c in COMPONENTS}, "liquidity": np.nan, "fragility_index": 0.0}]
    )
    s = soft_target_states(frame)
    w = {c: COMPONENT_WEIGHTS[c] for c in COMPONENTS if c != "liquidity"}
    for c, weight in w.items():
        assert s[f"contrib_{c}"].iloc[0] == pytest.approx(weight / sum(w.values()))
    assert np.isnan(s["contrib_liquidity"].iloc[0])
    assert s["soft_target_class"].iloc[0] == "STABLE"


# --------------------------------------------------------------------------- liquidity
def test_missing_volumes_make_liquidity_nan_and_excluded(synthetic):
    prices, volumes, returns, market, _ = synthetic
    without = stability_vectors(returns, market, None, prices)
    with_v = stability_vectors(returns, market, volumes, prices)
    assert without["liquidity"].isna().all() and with_v["liquidity"].notna().all()
    others = [c for c in COMPONENTS if c != "liquidity"]
    pd.testing.assert_frame_equal(without[["date", "entity_id", *others]], with_v[["date", "entity_id", *others]], check_exact=True)
    w = np.array([COMPONENT_WEIGHTS[c] for c in others])
    expected = ((1 - without[others].to_numpy()) * w).sum(axis=1) / w.sum()
    np.testing.assert_allclose(without["fragility_index"], expected, rtol=1e-12)
    s = soft_target_states(without)
    assert s["contrib_liquidity"].isna().all()
    np.testing.assert_allclose(s[[f"contrib_{c}" for c in others]].sum(axis=1), 1.0, rtol=1e-12)


def test_volumes_without_prices_are_rejected(synthetic):
    _, volumes, returns, market, _ = synthetic
    with pytest.raises(ValueError, match="prices"):
        stability_vectors(returns, market, volumes=volumes)


def test_thinner_trading_scores_lower_liquidity(synthetic):
    prices, volumes, returns, market, _ = synthetic
    full = stability_vectors(returns, market, volumes, prices)
    thin = stability_vectors(returns, market, volumes / 100.0, prices)
    assert (thin["liquidity"] < full["liquidity"]).all()


# --------------------------------------------------------------------------- point in time
def test_truncation_invariance_on_bundled(bundled):
    prices, returns, market = bundled
    full = soft_target_states(stability_vectors(returns, market, prices=prices))
    for cut in ("2001-06-15", "2008-10-10"):
        t = pd.Timestamp(cut)
        part = soft_target_states(stability_vectors(returns.loc[:t], market.loc[:t], prices=prices.loc[:t]))
        expected = full[full["date"] <= t].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, expected, check_exact=True)


def test_truncation_invariance_with_volumes_and_listings(synthetic):
    prices, volumes, returns, market, labels = synthetic
    full = soft_target_states(stability_vectors(returns, market, volumes, prices), labels)
    t = returns.index[700]
    # a cut universe: symbols that have not listed yet are absent altogether
    listed = returns.loc[:t].columns[returns.loc[:t].notna().any()]
    part = soft_target_states(
        stability_vectors(returns.loc[:t, listed], market.loc[:t], volumes.loc[:t, listed], prices.loc[:t, listed]),
        labels.loc[:t],
    )
    pd.testing.assert_frame_equal(part, full[full["date"] <= t].reset_index(drop=True), check_exact=True)


def test_future_data_cannot_change_the_past(bundled):
    prices, returns, market = bundled
    r, m, p = returns.iloc[:1500], market.iloc[:1500], prices.loc[: returns.index[1499]]
    shocked_r = r.copy()
    shocked_r.iloc[1200:] *= 5.0
    shocked_m = m.copy()
    shocked_m.iloc[1200:] = -shocked_m.iloc[1200:]
    shocked_p = p.copy()
    shocked_p.loc[r.index[1200] :] *= 0.1
    cut = r.index[1199]
    for kwargs, shocked_kwargs in (({}, {}), ({"prices": p}, {"prices": shocked_p})):  # price index from returns / real prices
        base = stability_vectors(r, m, **kwargs)
        shocked = stability_vectors(shocked_r, shocked_m, **shocked_kwargs)
        assert not base.equals(shocked)
        pd.testing.assert_frame_equal(shocked[shocked["date"] <= cut], base[base["date"] <= cut], check_exact=True)


# --------------------------------------------------------------------------- transforms
unit_pairs = st.tuples(st.floats(0, 5, allow_nan=False), st.floats(0, 5, allow_nan=False)).map(sorted)


@settings(max_examples=60, deadline=None)
@given(unit_pairs)
def test_risk_transforms_are_decreasing(pair):
    lo, hi = pair
    for f in (stab.volatility_score, stab.drawdown_score, stab.tail_risk_score):
        assert 0 <= f(hi) <= f(lo) <= 1
    assert stab.market_correlation_score(min(hi, 1.0)) <= stab.market_correlation_score(min(lo, 1.0))
    assert stab.trend_score(lo) <= stab.trend_score(hi)


@settings(max_examples=60, deadline=None)
@given(st.floats(1e3, 1e11), st.floats(1.0, 100.0), st.floats(0, 3), st.floats(0, 3))
def test_liquidity_transform_is_monotone(adv, factor, cv_lo, cv_extra):
    assert stab.liquidity_score(adv * factor, cv_lo) >= stab.liquidity_score(adv, cv_lo)
    assert stab.liquidity_score(adv, cv_lo + cv_extra) <= stab.liquidity_score(adv, cv_lo)


def test_transform_anchor_points():
    assert stab.volatility_score(stab.VOL_HALF) == pytest.approx(0.5)
    assert stab.drawdown_score(stab.DRAWDOWN_HALF) == pytest.approx(0.5)
    assert stab.tail_risk_score(stab.TAIL_ES_HALF) == pytest.approx(0.5)
    assert stab.market_correlation_score(stab.CORRELATION_MID) == pytest.approx(0.5)
    assert stab.trend_score(0.0) == pytest.approx(0.5)
    assert stab.volatility_score(0.0) == 1.0 and stab.drawdown_score(0.0) == 1.0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(1.05, 4.0))
def test_higher_vol_gives_lower_volatility_score_end_to_end(seed, scale):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2021-01-01", periods=90)
    base = rng.standard_normal(90) * 0.01
    r = pd.DataFrame({"A": base, "B": base * scale}, index=idx)
    v = stability_vectors(r, pd.Series(rng.standard_normal(90) * 0.01, index=idx))
    a = v[v["entity_id"] == "A"]["volatility"].to_numpy()
    b = v[v["entity_id"] == "B"]["volatility"].to_numpy()
    assert (b < a).all()
    # the same scaling leaves the market correlation unchanged (up to rounding)
    np.testing.assert_allclose(v[v["entity_id"] == "A"]["market_correlation"], v[v["entity_id"] == "B"]["market_correlation"], atol=1e-9)


def test_bad_window_is_rejected(bundled):
    _, returns, market = bundled
    with pytest.raises(ValueError, match="window"):
        stability_vectors(returns, market, window=1)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 9), st.integers(2, 70), st.sampled_from(["sum", "mean", "std"]))
def test_a_columns_rolling_statistic_does_not_depend_on_the_columns_beside_it(seed, n, window, how):
    """Each column's trailing sum / mean / std has the same bits alone as beside other columns, and matches pandas.

    Regression: numpy reduced a sliding-window view of one column pairwise and of several in row
    order, so a symbol alone in the last column block (whose width depends on the history's
    length) differed by an ulp between a daily run and a backfill.
    """
    from prometheus_assets.core.stability import _rolling

    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 0.02, (window + 60, n))
    values[rng.random(values.shape) < 0.02] = np.nan
    together = _rolling(values, window, how)
    for j in range(n):
        alone = _rolling(values[:, j : j + 1], window, how)[:, 0]
        assert np.array_equal(alone, together[:, j], equal_nan=True)
    reference = getattr(pd.DataFrame(values).rolling(window, min_periods=window), how)().to_numpy()
    np.testing.assert_allclose(together, reference, rtol=1e-9, atol=1e-15, equal_nan=True)


def test_liquidity_is_measured_on_the_traded_close_not_a_back_adjusted_one(synthetic):
    """Regression: the dollar volume was adjusted price × volume; back-adjusted for a later 10:1 split, a name's
    earlier dollar volume looked ten times smaller. With the unadjusted closes given, the liquidity is that of
    the traded prices; the other components (returns, drawdown: the adjusted series) are unchanged."""
    prices, volumes, returns, market, _ = synthetic
    cols = list(prices.columns[:6])
    traded, vol, ret = prices[cols], volumes[cols], returns[cols]
    adjusted = traded.copy()
    adjusted[cols[0]] = traded[cols[0]] / 10.0  # split 10:1 after the sample: its history, back-adjusted
    reference = stability_vectors(ret, market, vol, traded)
    fixed = stability_vectors(ret, market, vol, adjusted, closes=traded)
    np.testing.assert_array_equal(fixed["liquidity"].to_numpy(), reference["liquidity"].to_numpy())
    pd.testing.assert_frame_equal(fixed, reference, rtol=1e-12)  # the drawdown of p / 10: the same up to rounding
    old = stability_vectors(ret, market, vol, adjusted)  # what the asset computed before
    first = old["entity_id"] == cols[0]
    assert (old.loc[first, "liquidity"] < reference.loc[first, "liquidity"]).all()
