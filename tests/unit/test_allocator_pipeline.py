"""core.allocator: regime rules + hysteresis, risk scalars, the one-rebalance lag, scaled returns
and the two-pass audit (its numbers recomputed here independently)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_assets.core.allocator.apply import ExposureApplierV1, monthly_rebalance_dates, scale_returns
from prometheus_assets.core.allocator.audit import (
    CHECKS,
    KNOWN_STRESS_PERIODS,
    SUMMARY_COLUMNS,
    derisk_events,
    turnover_impact,
    two_pass_audit,
)
from prometheus_assets.core.allocator.regime import (
    CRISIS,
    ELEVATED,
    NORMAL,
    REGIME_LEVEL,
    REGIMES,
    STRESS,
    RegimeClassifierV1,
    transitions,
)
from prometheus_assets.core.allocator.risk import RiskTransformerV1
from prometheus_assets.core import metrics


# --------------------------------------------------------------------------- helpers
def row(**overrides: float) -> dict[str, float]:
    """A calm state row (raw NORMAL), with some columns overridden."""
    base = {
        "port_rvol_20d": 0.10,
        "port_rvol_60d": 0.10,
        "vol_accel": 1.0,
        "dd_level": -0.01,
        "dd_slope_10d": 0.0,
        "corr_20d": 0.30,
        "corr_60d": 0.30,
        "corr_shock": 0.0,
    }
    base.update(overrides)
    return base


#: One state row per raw level (volatility alone decides).
LEVEL_ROW = {
    NORMAL: row(),
    ELEVATED: row(port_rvol_20d=0.20),
    STRESS: row(port_rvol_20d=0.30),
    CRISIS: row(port_rvol_20d=0.40),
}


def frame(rows: list[dict[str, float]], start: str = "2021-01-04") -> pd.DataFrame:
    return pd.DataFrame(rows, index=pd.bdate_range(start, periods=len(rows)))


def state_from_labels(labels: list[str]) -> pd.DataFrame:
    return frame([LEVEL_ROW[label] for label in labels])


def labels_series(labels: list[str | None], start: str = "2021-01-04") -> pd.Series:
    return pd.Series(labels, index=pd.bdate_range(start, periods=len(labels)), dtype=object)


def noisy_state(n: int = 756, seed: int = 7) -> pd.DataFrame:
    """Features jittering around the ELEVATED thresholds every day (the raw regime flickers)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "port_rvol_20d": 0.16 + 0.04 * rng.standard_normal(n),
            "port_rvol_60d": 0.16,
            "vol_accel": 1.0 + 0.2 * rng.standard_normal(n),
            "dd_level": -np.abs(0.04 * rng.standard_normal(n)),
            "dd_slope_10d": 0.0,
            "corr_20d": 0.4 + 0.1 * rng.standard_normal(n),
            "corr_60d": 0.4,
            "corr_shock": 0.1 * rng.standard_normal(n),
        },
        index=pd.bdate_range("2015-01-01", periods=n),
    )


# --------------------------------------------------------------------------- regime: thresholds
@pytest.mark.parametrize(
    ("overrides", "expected", "rule"),
    [
        ({}, NORMAL, "none"),
        ({"port_rvol_20d": 0.1799}, NORMAL, "none"),
        ({"port_rvol_20d": 0.18}, ELEVATED, "port_rvol_20d >= 0.18"),
        ({"dd_level": -0.06}, ELEVATED, "dd_level <= -0.06"),
        ({"vol_accel": 1.3}, ELEVATED, "vol_accel >= 1.3"),
        ({"port_rvol_20d": 0.25}, STRESS, "port_rvol_20d >= 0.25"),
        ({"dd_level": -0.12}, STRESS, "dd_level <= -0.12"),
        ({"corr_shock": 0.15, "vol_accel": 1.3}, STRESS, "corr_shock >= 0.15 and vol_accel >= 1.3"),
        ({"corr_shock": 0.15, "vol_accel": 1.29}, NORMAL, "none"),  # needs both legs
        ({"port_rvol_20d": 0.3499}, STRESS, "port_rvol_20d >= 0.25"),
        ({"port_rvol_20d": 0.35}, CRISIS, "port_rvol_20d >= 0.35"),
        ({"dd_level": -0.20}, CRISIS, "dd_level <= -0.2"),
        ({"corr_20d": 0.70, "vol_accel": 1.5}, CRISIS, "corr_20d >= 0.7 and vol_accel >= 1.5"),
        # high correlation with vol_accel 1.4: not CRISIS, but vol_accel >= 1.3 alone is ELEVATED
        ({"corr_20d": 0.80, "vol_accel": 1.4}, ELEVATED, "vol_accel >= 1.3"),
        # several rules of the winning level: all reported, in table order
        ({"port_rvol_20d": 0.4, "dd_level": -0.25}, CRISIS, "port_rvol_20d >= 0.35 | dd_level <= -0.2"),
        # a CRISIS rule beats lower-level rules firing on the same row
        ({"port_rvol_20d": 0.2, "dd_level": -0.21}, CRISIS, "dd_level <= -0.2"),
    ],
)
def test_raw_regime_thresholds_on_hand_made_rows(overrides, expected, rule):
    out = RegimeClassifierV1().classify(frame([row(**overrides)]))
    assert out["raw_regime"].iloc[0] == expected
    assert out["regime"].iloc[0] == expected  # first labelled day: published = raw
    assert out["rule"].iloc[0] == rule


def test_custom_thresholds_move_the_boundary():
    rows = frame([row(port_rvol_20d=0.20)])
    assert RegimeClassifierV1().classify(rows)["raw_regime"].iloc[0] == ELEVATED
    assert RegimeClassifierV1(elevated_vol=0.22).classify(rows)["raw_regime"].iloc[0] == NORMAL


def test_missing_data_rows_have_no_regime_and_do_not_move_the_state_machine():
    rows = [row(port_rvol_20d=np.nan), LEVEL_ROW[CRISIS], row(corr_shock=np.nan), LEVEL_ROW[NORMAL]]
    out = RegimeClassifierV1(min_dwell=2).classify(frame(rows))
    assert out["raw_regime"].isna().tolist() == [True, False, True, False]
    assert out["rule"].tolist()[0] == out["rule"].tolist()[2] == "missing data"
    assert np.isnan(out["score"].iloc[0])
    # warm-up: no published label; the NaN row keeps CRISIS and does not count as a calm day
    assert pd.isna(out["regime"].iloc[0])
    assert out["regime"].iloc[1:].tolist() == [CRISIS, CRISIS, CRISIS]


def test_classifier_validates_inputs():
    with pytest.raises(KeyError, match="corr_shock"):
        RegimeClassifierV1().classify(frame([row()]).drop(columns="corr_shock"))
    with pytest.raises(ValueError):
        RegimeClassifierV1(elevated_vol=0.3)  # above stress_vol
    with pytest.raises(ValueError):
        RegimeClassifierV1(elevated_drawdown=0.05)  # drawdown thresholds are <= 0
    with pytest.raises(ValueError):
        RegimeClassifierV1(min_dwell=0)
    with pytest.raises(ValueError):
        RegimeClassifierV1().smooth(labels_series(["NORMAL", "PANIC"]))
    with pytest.raises(ValueError, match="increasing"):
        RegimeClassifierV1().classify(frame([row(), row()]).iloc[::-1])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 0.8),
            st.floats(-0.5, 0.0),
            st.floats(-1.0, 1.0),
            st.floats(0.2, 3.0),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_score_reaches_one_exactly_when_crisis_fires(values):
    rows = [row(port_rvol_20d=v, dd_level=d, corr_20d=c, vol_accel=a) for v, d, c, a in values]
    out = RegimeClassifierV1().raw_classify(frame(rows))
    assert ((out["score"] >= 1.0) == (out["raw_regime"] == CRISIS)).all()


# --------------------------------------------------------------------------- regime: hysteresis
def test_one_day_spike_escalates_at_once_and_steps_down_one_level_per_dwell():
    labels = [NORMAL] * 5 + [CRISIS] + [NORMAL] * 40
    out = RegimeClassifierV1(min_dwell=10).classify(state_from_labels(labels))
    published = out["regime"].tolist()
    assert published[:5] == [NORMAL] * 5
    # spike on day 5: CRISIS the same day; the 10th consecutive calm day (day 15) steps down once
    assert published[5:15] == [CRISIS] * 10
    assert published[15:25] == [STRESS] * 10
    assert published[25:35] == [ELEVATED] * 10
    assert published[35:] == [NORMAL] * 11
    t = transitions(out["regime"])
    assert list(t.columns) == ["date", "from", "to"]
    assert list(zip(t["from"], t["to"])) == [(NORMAL, CRISIS), (CRISIS, STRESS), (STRESS, ELEVATED), (ELEVATED, NORMAL)]
    assert list(t["date"]) == [out.index[i] for i in (5, 15, 25, 35)]


def test_de_escalation_counter_restarts_when_raw_is_not_below():
    clf = RegimeClassifierV1(min_dwell=5)
    # STRESS, 4 calm days, STRESS again (counter reset), 4 calm days: still STRESS
    labels = [STRESS] + [ELEVATED] * 4 + [STRESS] + [ELEVATED] * 4
    assert clf.smooth(labels_series(labels)).tolist() == [STRESS] * 10
    # a 5th consecutive calm day steps down
    assert clf.smooth(labels_series(labels + [ELEVATED])).tolist()[-1] == ELEVATED
    # a raw escalation above the published level interrupts too (and publishes immediately)
    labels = [ELEVATED] + [NORMAL] * 4 + [CRISIS] + [NORMAL] * 4
    assert clf.smooth(labels_series(labels)).tolist() == [ELEVATED] * 5 + [CRISIS] * 5


def test_transitions_skip_missing_labels():
    s = labels_series([None, None, NORMAL, NORMAL, None, ELEVATED, ELEVATED, NORMAL])
    t = transitions(s)
    assert list(zip(t["from"], t["to"])) == [(NORMAL, ELEVATED), (ELEVATED, NORMAL)]
    assert list(t["date"]) == [s.index[5], s.index[7]]
    assert transitions(labels_series([None, None])).empty


def test_transitions_sparse_on_noisy_data():
    state = noisy_state()
    out = RegimeClassifierV1().classify(state)
    raw = out["raw_regime"]
    raw_changes = int((raw != raw.shift()).iloc[1:].sum())
    n_published = len(transitions(out["regime"]))
    years = len(state) / 252
    assert raw_changes > 150  # the raw label really flickers
    assert n_published * 8 < raw_changes
    assert n_published / years <= 12


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.sampled_from([None, *REGIMES]), min_size=1, max_size=150),
    st.integers(1, 12),
)
def test_hysteresis_properties(labels, min_dwell):
    s = labels_series(labels)
    published = RegimeClassifierV1(min_dwell=min_dwell).smooth(s)
    raw_lv = [None if x is None else REGIME_LEVEL[x] for x in labels]
    pub_lv = [None if pd.isna(x) else REGIME_LEVEL[x] for x in published]
    prev = None
    for i, (r, p) in enumerate(zip(raw_lv, pub_lv)):
        if r is not None:
            assert p is not None and p >= r  # escalation is immediate: never below the raw level
        else:
            assert p == prev  # a missing day holds the label
        if prev is not None and p != prev:
            if p > prev:
                assert p == r
            else:
                assert prev - p == 1  # one level at a time
                # the last min_dwell labelled days (ending today) were all below the old level
                recent = [x for x in raw_lv[: i + 1] if x is not None][-min_dwell:]
                assert len(recent) == min_dwell and all(x < prev for x in recent)
        prev = p
    n_changes = len(transitions(published))
    assert n_changes <= 2 * len(labels) / min_dwell + 3


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 300))
def test_classification_is_point_in_time(k):
    state = noisy_state(300, seed=3)
    clf = RegimeClassifierV1()
    full = clf.classify(state)
    pd.testing.assert_frame_equal(clf.classify(state.iloc[:k]), full.iloc[:k])


# --------------------------------------------------------------------------- risk scalars
def test_risk_scalar_mapping_and_bounds():
    labels = labels_series([NORMAL, ELEVATED, STRESS, CRISIS])
    out = RiskTransformerV1().transform(labels)
    assert out["target_scalar"].tolist() == [1.0, 0.85, 0.6, 0.35]
    assert out["risk_scalar"].tolist() == [1.0, 0.85, 0.6, 0.35]  # all moves are down: immediate
    custom = RiskTransformerV1(scalars={NORMAL: 1.3, ELEVATED: 0.9, STRESS: 0.5, CRISIS: 0.1})
    out = custom.transform(labels)
    assert out["target_scalar"].tolist() == [1.0, 0.9, 0.5, 0.25]  # clipped to [0.25, 1.0]
    # a DataFrame with a "regime" column works too
    frame_in = pd.DataFrame({"regime": labels, "other": 1})
    pd.testing.assert_frame_equal(RiskTransformerV1().transform(frame_in), RiskTransformerV1().transform(labels))


def test_risk_transformer_validates_inputs():
    with pytest.raises(ValueError, match="missing regimes"):
        RiskTransformerV1(scalars={NORMAL: 1.0})
    with pytest.raises(ValueError):
        RiskTransformerV1(min_scalar=0.8, max_scalar=0.5)
    with pytest.raises(ValueError):
        RiskTransformerV1(smoothing=0.5)
    with pytest.raises(ValueError, match="unknown"):
        RiskTransformerV1().transform(labels_series([NORMAL, "PANIC"]))


def test_upward_moves_follow_an_ema_and_downward_moves_are_immediate():
    labels = [NORMAL, CRISIS] + [NORMAL] * 30 + [STRESS]
    out = RiskTransformerV1(smoothing=5).transform(labels_series(labels))
    s = out["risk_scalar"].to_numpy()
    assert s[0] == 1.0 and s[1] == 0.35  # down: immediate
    # up: pandas' EMA (adjust=False, span 5, alpha 1/3) of the target from the CRISIS day on
    ema = pd.Series([0.35] + [1.0] * 30).ewm(span=5, adjust=False).mean().to_numpy()
    snapped = np.flatnonzero(s[1:32] == 1.0)[0] + 1  # first day the scalar reached 1 exactly
    np.testing.assert_allclose(s[1:snapped], ema[: snapped - 1], rtol=0, atol=1e-12)
    assert 1.0 - ema[snapped - 1] <= 1e-3 < 1.0 - ema[snapped - 2]  # snapped once within tolerance
    assert (s[snapped:32] == 1.0).all()
    assert s[32] == 0.6  # down again: immediate
    # a larger span re-risks more slowly
    slow = RiskTransformerV1(smoothing=20).transform(labels_series(labels))["risk_scalar"].to_numpy()
    assert (slow[2:10] < s[2:10]).all()
    # span 1 = no smoothing
    fast = RiskTransformerV1(smoothing=1).transform(labels_series(labels))
    assert fast["risk_scalar"].tolist() == fast["target_scalar"].tolist()


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.sampled_from([None, *REGIMES]), min_size=1, max_size=80),
    st.floats(1.0, 30.0),
    st.floats(0.0, 0.5),
    st.floats(0.5, 1.0),
)
def test_risk_scalar_bounded_and_directional(labels, span, lo, hi):
    rt = RiskTransformerV1(scalars={NORMAL: 1.2, ELEVATED: 0.8, STRESS: 0.4, CRISIS: 0.05}, smoothing=span, min_scalar=lo, max_scalar=hi)
    out = rt.transform(labels_series(labels))
    s, t = out["risk_scalar"].to_numpy(), out["target_scalar"].to_numpy()
    assert (np.isnan(s) == np.isnan(t)).all() and (np.isnan(t) == [x is None for x in labels]).all()
    ok = ~np.isnan(s)
    assert ((s[ok] >= lo - 1e-12) & (s[ok] <= hi + 1e-12)).all()
    prev = np.nan
    for si, ti in zip(s, t):
        if np.isnan(ti):
            continue
        if np.isnan(prev) or ti <= prev:
            assert si == ti  # de-risking (or first day) is immediate
        else:
            assert prev < si <= ti  # re-risking moves up, never overshoots
        prev = si


def test_missing_regimes_carry_the_smoothing_state_over_gaps():
    out = RiskTransformerV1(smoothing=5).transform(labels_series([None, CRISIS, None, NORMAL]))
    s = out["risk_scalar"].to_numpy()
    assert np.isnan(s[0]) and np.isnan(s[2])
    assert s[1] == 0.35
    assert s[3] == pytest.approx(0.35 + (1 / 3) * 0.65)


def test_defensive_sleeves_keep_a_floor():
    rt = RiskTransformerV1(defensive_sleeves=["bonds"], defensive_floor=0.8)
    out = rt.transform_sleeves(labels_series([None, NORMAL, STRESS, CRISIS]), ["equity", "bonds"])
    assert list(out.columns) == ["equity", "bonds"]
    assert out["equity"].tolist()[1:] == [1.0, 0.6, 0.35]
    assert out["bonds"].tolist()[1:] == [1.0, 0.8, 0.8]
    assert out.iloc[0].isna().all()


# --------------------------------------------------------------------------- apply: the one-rebalance lag
def test_monthly_rebalance_dates_are_first_sessions_of_each_month():
    dates = pd.DatetimeIndex(["2021-01-05", "2021-01-04", "2021-01-29", "2021-02-02", "2021-02-01", "2021-04-15"])
    out = monthly_rebalance_dates(dates)
    assert list(out) == list(pd.DatetimeIndex(["2021-01-04", "2021-02-01", "2021-04-15"]))
    assert monthly_rebalance_dates(pd.DatetimeIndex([])).empty


def test_one_rebalance_lag_on_a_hand_example():
    dates = pd.bdate_range("2021-01-04", "2021-04-30")
    # every session has a distinct scalar, so we can tell which date's scalar is in force
    risk = pd.Series(np.linspace(0.30, 0.99, len(dates)), index=dates)
    rebal = pd.DatetimeIndex(["2021-01-15", "2021-02-01", "2021-03-01", "2021-04-01"])
    risk.loc["2021-02-01"] = np.nan  # the scalar computed on R_1 is missing
    out = ExposureApplierV1(apply_missing_scalar_as=0.5).apply(risk, rebal, dates)
    assert out.index.equals(dates)

    def at(day: str) -> pd.Series:
        return out.loc[pd.Timestamp(day)]

    # before the first rebalance: missing value, no rebalance in force
    assert at("2021-01-14")["applied_scalar"] == 0.5
    assert pd.isna(at("2021-01-14")["rebalance_date"]) and pd.isna(at("2021-01-14")["computed_on"])
    # from R_0 until R_1: no R_{-1} -> missing value
    assert at("2021-01-15")["applied_scalar"] == 0.5 and at("2021-01-29")["applied_scalar"] == 0.5
    assert at("2021-01-15")["rebalance_date"] == pd.Timestamp("2021-01-15")
    # from R_1 (Feb 1) until R_2: the scalar computed on R_0 (Jan 15), not the one on Feb 1
    feb = out.loc["2021-02-01":"2021-02-26"]
    assert (feb["applied_scalar"] == risk.loc["2021-01-15"]).all()
    assert (feb["computed_on"] == pd.Timestamp("2021-01-15")).all()
    assert (feb["rebalance_date"] == pd.Timestamp("2021-02-01")).all()
    # from R_2 (Mar 1): the scalar on R_1 is missing -> missing value, computed_on NaT
    mar = out.loc["2021-03-01":"2021-03-31"]
    assert (mar["applied_scalar"] == 0.5).all() and mar["computed_on"].isna().all()
    # from R_3 (Apr 1): the scalar computed on Mar 1
    apr = out.loc["2021-04-01":]
    assert (apr["applied_scalar"] == risk.loc["2021-03-01"]).all()
    assert (apr["computed_on"] == pd.Timestamp("2021-03-01")).all()
    # default missing value is 1.0 (unscaled)
    assert ExposureApplierV1().apply(risk, rebal, dates).loc["2021-01-20", "applied_scalar"] == 1.0


def test_rebalance_dates_off_the_session_calendar_and_absent_scalars():
    dates = pd.bdate_range("2021-01-04", "2021-03-31")
    risk = pd.Series(0.7, index=dates)
    # Jan 2 (a Saturday, before the first session) and Feb 6 (a Saturday): take effect on the next sessions
    rebal = pd.DatetimeIndex(["2021-02-06", "2021-01-02", "2021-03-01"])
    out = ExposureApplierV1().apply(risk, rebal, dates)
    # the scalar on R_0 = Jan 2 is absent from risk (exact lookup) -> 1.0 from Feb 8
    assert (out.loc["2021-02-08":"2021-02-26", "applied_scalar"] == 1.0).all()
    assert (out.loc["2021-02-08":"2021-02-26", "rebalance_date"] == pd.Timestamp("2021-02-06")).all()
    # the scalar on Feb 6 is absent as well -> 1.0 in March
    assert (out.loc["2021-03-01":, "applied_scalar"] == 1.0).all()
    rebal = pd.DatetimeIndex(["2021-01-04", "2021-02-01", "2021-03-01"])
    out = ExposureApplierV1().apply(risk, rebal, dates)
    assert (out.loc["2021-02-01":, "applied_scalar"] == 0.7).all()
    assert (out.loc[:"2021-01-29", "applied_scalar"] == 1.0).all()
    with pytest.raises(ValueError):
        ExposureApplierV1().apply(risk, rebal, dates[::-1])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 120), st.integers(0, 2**31 - 1))
def test_applied_scalar_never_reads_the_future(cut, seed):
    dates = pd.bdate_range("2020-01-01", periods=121)
    rng = np.random.default_rng(seed)
    risk = pd.Series(rng.uniform(0.25, 1.0, len(dates)), index=dates)
    changed = risk.copy()
    changed.iloc[cut:] = rng.uniform(0.25, 1.0, len(dates) - cut)  # rewrite the "future" from dates[cut]
    rebal = monthly_rebalance_dates(dates)
    a = ExposureApplierV1().apply(risk, rebal, dates)
    b = ExposureApplierV1().apply(changed, rebal, dates)
    # the scalar in force on dates[cut] was computed strictly before it
    pd.testing.assert_frame_equal(a.iloc[: cut + 1], b.iloc[: cut + 1])


def test_scale_returns_arithmetic():
    idx = pd.bdate_range("2021-01-04", periods=4)
    r = pd.Series([-0.10, 0.20, -0.20, 0.05], index=idx)
    applied = pd.Series([1.0, 1.0, 0.5, 0.5], index=idx)
    out = scale_returns(r, applied)
    np.testing.assert_allclose(out["return"], [-0.10, 0.20, -0.10, 0.025])
    np.testing.assert_allclose(out["equity"], [0.9, 1.08, 0.972, 0.9963])
    # the start (1.0) is a peak: day 1's drawdown is -10 %
    np.testing.assert_allclose(out["drawdown"], [-0.10, 0.0, 0.972 / 1.08 - 1, 0.9963 / 1.08 - 1])
    assert out["drawdown"].min() == pytest.approx(metrics.max_drawdown(out["return"]))
    # a NaN return is a flat day for the equity curve
    r2 = r.copy()
    r2.iloc[1] = np.nan
    out2 = scale_returns(r2, applied)
    assert np.isnan(out2["return"].iloc[1]) and out2["equity"].iloc[1] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="applied scalar missing"):
        scale_returns(r, applied.iloc[:3])


# --------------------------------------------------------------------------- audit
def plain_max_drawdown(returns: pd.Series) -> float:
    equity, peak, worst = 1.0, 1.0, 0.0
    for x in returns.dropna():
        equity *= 1.0 + x
        peak = max(peak, equity)
        worst = min(worst, equity / peak - 1.0)
    return worst


def crash_returns(start: str = "2008-01-01", end: str = "2009-06-30", seed: int = 1) -> pd.Series:
    """Calm drift with a crash (high vol, negative drift) from mid-Sept to late Nov 2008."""
    idx = pd.bdate_range(start, end)
    rng = np.random.default_rng(seed)
    r = pd.Series(rng.normal(0.0004, 0.008, len(idx)), index=idx)
    crash = (idx >= "2008-09-15") & (idx <= "2008-11-28")
    r[crash] = rng.normal(-0.004, 0.035, crash.sum())
    return r


def state_from_returns(r: pd.Series) -> pd.DataFrame:
    vol20 = r.rolling(20).std() * np.sqrt(252)
    vol60 = r.rolling(60).std() * np.sqrt(252)
    equity = (1 + r).cumprod()
    dd = equity / equity.cummax().clip(lower=1.0) - 1
    return pd.DataFrame(
        {
            "port_rvol_20d": vol20,
            "port_rvol_60d": vol60,
            "vol_accel": vol20 / vol60,
            "dd_level": dd,
            "dd_slope_10d": dd.diff(10),
            "corr_20d": 0.3,
            "corr_60d": 0.3,
            "corr_shock": 0.0,
        }
    )


def run_pipeline(r: pd.Series):
    state = state_from_returns(r)
    regimes = RegimeClassifierV1().classify(state)
    risk = RiskTransformerV1().transform(regimes)
    applied = ExposureApplierV1().apply(risk["risk_scalar"], monthly_rebalance_dates(r.index), r.index)
    scaled = scale_returns(r, applied["applied_scalar"])
    return state, regimes, applied, scaled


def test_audit_numbers_recomputed_independently():
    r = crash_returns()
    state, regimes, applied, scaled = run_pipeline(r)
    res = two_pass_audit(r, scaled["return"], applied["applied_scalar"], regimes["regime"], state=state)
    assert list(res.summary.index) == ["baseline", "scaled"]
    assert list(res.summary.columns) == list(SUMMARY_COLUMNS)
    for name, series in (("baseline", r), ("scaled", scaled["return"])):
        got = res.summary.loc[name]
        assert got["max_drawdown"] == pytest.approx(plain_max_drawdown(series), abs=1e-12)
        monthly = (1 + series).resample("ME").prod() - 1
        assert got["worst_month"] == pytest.approx(monthly.min(), abs=1e-12)
        quarterly = (1 + series).groupby([series.index.year, series.index.quarter]).prod() - 1
        assert got["worst_quarter"] == pytest.approx(quarterly.min(), abs=1e-12)
        assert got["sharpe_ratio"] == pytest.approx(series.mean() / series.std() * math.sqrt(252), rel=1e-10)
        assert got["annual_volatility"] == pytest.approx(series.std() * math.sqrt(252), rel=1e-10)
        assert got["cagr"] == pytest.approx((1 + series).prod() ** (252 / len(series)) - 1, rel=1e-10)
    base_dd, scaled_dd = plain_max_drawdown(r), plain_max_drawdown(scaled["return"])
    assert res.max_drawdown_reduction == pytest.approx(abs(base_dd) - abs(scaled_dd), abs=1e-12)
    assert res.max_drawdown_reduction_relative == pytest.approx((abs(base_dd) - abs(scaled_dd)) / abs(base_dd), abs=1e-12)
    assert res.max_drawdown_reduction > 0  # the allocator cut exposure during the crash
    a = applied["applied_scalar"].to_list()
    by_hand = sum(abs(a[i] - a[i - 1]) for i in range(1, len(a))) / (len(a) / 252)
    assert res.turnover_impact == pytest.approx(by_hand, abs=1e-12)
    assert res.turnover_impact > 0
    assert res.passed, res.checklist.to_string()
    assert list(res.checklist["check"]) == list(CHECKS)


def test_turnover_impact_by_hand():
    idx = pd.bdate_range("2021-01-04", periods=5)
    assert turnover_impact(pd.Series([1.0, 1.0, 0.6, 0.6, 1.0], index=idx)) == pytest.approx(0.8 / (5 / 252))
    assert math.isnan(turnover_impact(pd.Series([1.0], index=idx[:1])))


def test_derisk_events_are_the_largest_falls():
    idx = pd.DatetimeIndex(["2008-09-30", "2008-10-01", "2008-10-02", "2008-11-03", "2009-01-02", "2009-02-02", "2009-03-02"])
    applied = pd.Series([1.0, 0.85, 0.85, 0.35, 0.6, 0.5, 0.4], index=idx)
    regimes = pd.Series([NORMAL, ELEVATED, ELEVATED, CRISIS, STRESS, STRESS, None], index=idx, dtype=object)
    ev = derisk_events(applied, regimes, KNOWN_STRESS_PERIODS, top_n=3)
    assert list(ev.columns) == ["date", "scalar_before", "scalar_after", "change", "regime", "in_stress_period"]
    assert list(ev["date"]) == list(pd.DatetimeIndex(["2008-11-03", "2008-10-01", "2009-02-02"]))
    np.testing.assert_allclose(ev["change"], [-0.5, -0.15, -0.1])
    np.testing.assert_allclose(ev["scalar_before"], [0.85, 1.0, 0.6])
    assert list(ev["regime"]) == [CRISIS, ELEVATED, STRESS]
    assert list(ev["in_stress_period"]) == ["2008-10", "2008-10", None]
    # only falls are events (the rise on 2009-01-02 never is), however large top_n is
    assert len(derisk_events(applied, regimes, top_n=10)) == 4
    assert derisk_events(applied, regimes, top_n=10)["regime"].iloc[-1] is None


def simple_inputs(start: str = "2008-01-01", end: str = "2009-06-30"):
    """Hand-made audit inputs: scalar 1 except 0.6 during Oct 2008, one transition pair."""
    idx = pd.bdate_range(start, end)
    r = pd.Series(0.0005, index=idx)
    applied = pd.Series(1.0, index=idx)
    applied[(idx >= "2008-10-01") & (idx <= "2008-10-31")] = 0.6
    regimes = pd.Series(NORMAL, index=idx, dtype=object)
    regimes[(idx >= "2008-09-15") & (idx <= "2008-10-31")] = STRESS
    state = frame([row()] * len(idx), start=start)
    return r, applied, regimes, state


def checklist(res) -> dict[str, bool]:
    return dict(zip(res.checklist["check"], res.checklist["passed"]))


def test_checklist_pass_case():
    r, applied, regimes, state = simple_inputs()
    res = two_pass_audit(r, r * applied, applied, regimes, state=state)
    assert checklist(res) == dict.fromkeys(CHECKS, True)
    assert res.checklist["passed"].dtype == bool
    detail = dict(zip(res.checklist["check"], res.checklist["detail"]))
    assert "2008-10" in detail["de-risk events in known stress"]


def test_checklist_fail_transitions_too_frequent():
    r, applied, regimes, state = simple_inputs()
    flicker = pd.Series([NORMAL, ELEVATED] * (len(r) // 2) + [NORMAL] * (len(r) % 2), index=r.index, dtype=object)
    res = two_pass_audit(r, r * applied, applied, flicker, state=state)
    assert checklist(res)["regime transitions sparse"] is False
    assert not res.passed
    # 12 changes a year is the edge: still sparse
    idx = pd.bdate_range("2010-01-01", periods=252)
    edge = pd.Series([NORMAL if (i // 21) % 2 == 0 else ELEVATED for i in range(252)], index=idx, dtype=object)
    assert len(transitions(edge)) == 11
    res = two_pass_audit(pd.Series(0.0, index=idx), pd.Series(0.0, index=idx), pd.Series(1.0, index=idx), edge)
    assert checklist(res)["regime transitions sparse"] is True


def test_checklist_fail_no_derisking_in_known_stress():
    r, applied, regimes, state = simple_inputs()
    flat = pd.Series(1.0, index=r.index)
    res = two_pass_audit(r, r, flat, regimes, state=state)
    assert checklist(res)["de-risk events in known stress"] is False
    # de-risking outside the stress window does not count either
    late = flat.copy()
    late["2009-03-01":"2009-03-31"] = 0.5
    assert checklist(two_pass_audit(r, r * late, late, regimes, state=state))["de-risk events in known stress"] is False
    # a period only partly inside the data is not checked (data starting 2008-10-15)
    r2, a2, g2, s2 = simple_inputs(start="2008-10-15")
    flat2 = pd.Series(1.0, index=r2.index)
    res2 = two_pass_audit(r2, r2, flat2, g2, state=s2)
    assert checklist(res2)["de-risk events in known stress"] is True
    assert "nothing to check" in res2.checklist.set_index("check").loc["de-risk events in known stress", "detail"]


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda s: s.assign(port_rvol_20d=s["port_rvol_20d"].where(s.index != s.index[50], np.inf)),
        lambda s: s.assign(sleeve_concentration_60d=np.where(np.arange(len(s)) == 7, -np.inf, 0.3)),  # inf in an optional column
        lambda s: s.assign(corr_shock=s["corr_shock"].where(s.index != s.index[100], np.nan)),  # a hole after the start
        lambda s: s.assign(port_rvol_60d=s["port_rvol_60d"].where(s.index != s.index[10], -0.01)),
        lambda s: s.assign(dd_level=s["dd_level"].where(s.index != s.index[10], 0.02)),
        lambda s: s.assign(corr_20d=s["corr_20d"].where(s.index != s.index[10], 1.2)),
        lambda s: s.drop(columns="corr_60d"),
    ],
)
def test_checklist_fail_data_problems(corrupt):
    r, applied, regimes, state = simple_inputs()
    res = two_pass_audit(r, r * applied, applied, regimes, state=corrupt(state))
    assert checklist(res)["features free of data problems"] is False
    assert checklist(res)["regime transitions sparse"] is True  # the other checks are unaffected


def test_checklist_effective_start():
    r, applied, regimes, state = simple_inputs()
    warm = state.copy()
    warm.iloc[:60, :] = np.nan  # a 60-session warm-up is fine (leading NaN rows are allowed)
    res = two_pass_audit(r, r * applied, applied, regimes, state=warm)
    assert checklist(res)["effective start reasonable"] is True
    assert checklist(res)["features free of data problems"] is True
    late = state.iloc[91:]  # first state row 91 sessions after the first return
    assert checklist(two_pass_audit(r, r * applied, applied, regimes, state=late))["effective start reasonable"] is False
    edge = state.iloc[90:]
    assert checklist(two_pass_audit(r, r * applied, applied, regimes, state=edge))["effective start reasonable"] is True
    # without a state frame, checks 3 and 4 fail as "not checked"
    res = two_pass_audit(r, r * applied, applied, regimes)
    assert checklist(res)["features free of data problems"] is False
    assert checklist(res)["effective start reasonable"] is False
    assert res.checklist["detail"].str.contains("not checked").sum() == 2
