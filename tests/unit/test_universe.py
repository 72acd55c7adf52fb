"""core.universe: a build from a given day on equals the whole build's rows from that day."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_assets.core.books import UniverseRules
from prometheus_assets.core.universe import build_universe


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 119), st.booleans())
def test_a_build_from_a_day_equals_the_whole_builds_rows_from_that_day(seed, cut, with_volumes):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=120)
    symbols = [f"S{i}" for i in range(12)]
    prices = pd.DataFrame(rng.lognormal(3.0, 0.5, (120, 12)), index=dates, columns=symbols)
    listed = rng.integers(0, 80, 12)  # later listings: no price before their first day
    for j, first in enumerate(listed):
        prices.iloc[:first, j] = np.nan
    score = pd.DataFrame(rng.normal(size=(120, 12)), index=dates, columns=symbols).where(rng.random((120, 12)) > 0.1)
    classes = pd.DataFrame(rng.choice(["STABLE", "FRAGILE", "BREAKER"], (120, 12)), index=dates, columns=symbols)
    volumes = pd.DataFrame(rng.lognormal(10.0, 1.0, (120, 12)), index=dates, columns=symbols) if with_volumes else None
    rules = UniverseRules(min_listing_sessions=20, min_price=15.0, min_dollar_volume=5e5, tier_sizes=(3, 6))
    whole = build_universe(score, prices, classes, rules, True, volumes)
    since = dates[cut]
    part = build_universe(score, prices, classes, rules, True, volumes, since=since)
    expected = whole[whole["date"] >= since].reset_index(drop=True)
    assert len(part) > 0 or len(expected) == 0
    pd.testing.assert_frame_equal(part, expected, check_exact=True)


def test_the_price_and_dollar_volume_floors_compare_the_unadjusted_closes():
    """Regression: the floors compared adjusted prices. A vendor's back-adjusted history divides the prices
    before a later 10:1 split by 10, so a $60 stock fell under a $15 floor for the years before its split."""
    dates = pd.bdate_range("2020-01-01", periods=80)
    closes = pd.DataFrame({"A": 60.0, "B": 20.0}, index=dates)
    adjusted = closes.assign(A=6.0)  # A splits 10:1 after these dates: its history, back-adjusted
    volumes = pd.DataFrame({"A": 10_000.0, "B": 10_000.0}, index=dates)
    score = pd.DataFrame({"A": 1.0, "B": 0.5}, index=dates)
    rules = UniverseRules(min_listing_sessions=1, min_price=15.0, min_dollar_volume=3e5)
    out = build_universe(score, adjusted, None, rules, True, volumes, closes=closes)
    last = out[out["date"] == dates[-1]]
    assert sorted(last["symbol"]) == ["A"]  # A: $60 x 10,000 = $600k >= $300k; B: $200k < $300k
    # the same universe without the unadjusted closes compares the adjusted prices (the old behaviour)
    assert build_universe(score, adjusted, None, rules, True, volumes).empty


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 30), st.integers(0, 10_000))
def test_a_long_short_universe_ranks_both_tails_alike(n, seed):
    """Long/short inclusion is symmetric: the k-th best and the k-th worst score tie, the median scores 0.

    Regression: with p = rank / n the best long scored 1 and the best short 1 − 2/n, so every short
    ranked one place below its long twin (scores 1…5: E 1.0, D 0.6, A 0.6 instead of A = E = 0.8).
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=2)
    symbols = [f"S{i}" for i in range(n)]
    values = rng.permutation(n).astype(float)
    score = pd.DataFrame([values, values], index=dates, columns=symbols)
    prices = pd.DataFrame(10.0, index=dates, columns=symbols)
    out = build_universe(score, prices, None, UniverseRules(min_listing_sessions=0), long_only=False)
    day = out[out["date"] == dates[-1]].set_index("symbol")["inclusion_score"]
    by_score = day.reindex(np.array(symbols)[np.argsort(values)]).to_numpy()  # worst … best
    np.testing.assert_allclose(by_score, by_score[::-1], rtol=0, atol=1e-15)  # k-th worst = k-th best
    expected = np.abs(2 * (np.arange(1, n + 1) - 0.5) / n - 1)  # |2q − 1|, q = (rank − ½)/n
    np.testing.assert_allclose(by_score, expected, rtol=0, atol=1e-15)
    if n == 5:
        assert by_score.tolist()[2] == 0.0 and by_score[0] == by_score[-1] == 0.8


def test_a_class_is_carried_over_a_gap_in_the_stability_rows():
    """Regression: one missing bar empties the stability layer's 63-session window, so a BREAKER had no
    class for 63 sessions and the universe took it back in at full weight as if it were unclassified."""
    from prometheus_assets.core.universe import CLASS_CARRY_SESSIONS

    dates = pd.bdate_range("2020-01-01", periods=400)
    prices = pd.DataFrame({"A": 50.0, "B": 50.0}, index=dates)
    score = pd.DataFrame({"A": 1.0, "B": 0.5}, index=dates)
    classes = pd.DataFrame({"A": "BREAKER", "B": "STABLE"}, index=dates, dtype=object)
    classes.iloc[100:163, 0] = np.nan  # a 63-session gap after a missing bar
    classes.iloc[200:, 0] = np.nan  # no class again from session 200 on, for good
    rules = UniverseRules(min_listing_sessions=0, exclude_classes=("BREAKER",))
    out = build_universe(score, prices, classes, rules)
    a_days = pd.DatetimeIndex(out.loc[out["symbol"] == "A", "date"])
    assert not a_days.isin(dates[:200 + CLASS_CARRY_SESSIONS]).any()  # the gap and the next 126 sessions: still excluded
    assert (a_days == dates[200 + CLASS_CARRY_SESSIONS :]).all()  # afterwards unclassified: kept at full weight
    assert (out.loc[out["symbol"] == "A", "class_weight"] == 1.0).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(130, 239))
def test_a_run_reading_classes_from_its_carry_window_equals_the_whole_build(seed, cut):
    """What the asset does for a run from ``cut``: classes read from CLASS_CARRY_SESSIONS sessions before it."""
    from prometheus_assets.core.universe import CLASS_CARRY_SESSIONS

    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=240)
    symbols = [f"S{i}" for i in range(6)]
    prices = pd.DataFrame(rng.lognormal(3.0, 0.3, (240, 6)), index=dates, columns=symbols)
    score = pd.DataFrame(rng.normal(size=(240, 6)), index=dates, columns=symbols)
    classes = pd.DataFrame(rng.choice(["STABLE", "FRAGILE", "BREAKER"], (240, 6)), index=dates, columns=symbols)
    classes = classes.where(rng.random((240, 6)) > 0.6)  # many gaps, some long
    rules = UniverseRules(min_listing_sessions=5)
    whole = build_universe(score, prices, classes, rules)
    since = dates[cut]
    window = classes.iloc[cut - CLASS_CARRY_SESSIONS :]
    part = build_universe(score, prices, window, rules, since=since)
    pd.testing.assert_frame_equal(part, whole[whole["date"] >= since].reset_index(drop=True), check_exact=True)


def test_one_missing_volume_does_not_drop_a_liquid_name_for_a_quarter():
    """Regression: the 63-session dollar-volume average needed all 63 volumes, so one missing volume excluded
    a liquid name for the next 63 sessions. It now averages the sessions with a volume (at least 42)."""
    dates = pd.bdate_range("2020-01-01", periods=150)
    prices = pd.DataFrame({"A": 50.0}, index=dates)
    volumes = pd.DataFrame({"A": 100_000.0}, index=dates)
    volumes.iloc[80, 0] = np.nan
    score = pd.DataFrame({"A": 1.0}, index=dates)
    out = build_universe(score, prices, None, UniverseRules(min_listing_sessions=0, min_dollar_volume=1e6), True, volumes)
    days = pd.DatetimeIndex(out["date"])
    assert days.equals(dates[41:])  # from the 42nd session with a volume on, the gap included
    few = volumes.copy()
    few.iloc[60:100, 0] = np.nan  # 40 missing: fewer than 42 in the windows that hold most of them
    out = build_universe(score, prices, None, UniverseRules(min_listing_sessions=0, min_dollar_volume=1e6), True, few)
    assert not pd.DatetimeIndex(out["date"]).isin(dates[100:122]).any()
