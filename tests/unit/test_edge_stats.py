"""Edge statistics from closed trades (prometheus_assets.core.edge.stats)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prometheus_assets.core.edge.config import EdgeConfig
from prometheus_assets.core.edge.decay import INSUFFICIENT_HISTORY, fit_decay
from prometheus_assets.core.edge.scope import DIMENSION_NAMES, mask_of, scope_key
from prometheus_assets.core.edge.stats import (
    COMPONENT_NAMES,
    HISTORY_COLUMNS,
    STATS_COLUMNS,
    EdgeAggregator,
    EdgeTimeline,
    MaskStats,
    edge_components,
    edge_statistics,
)

INTENT = mask_of(["intent"])
SECTOR_INTENT = mask_of(["sector", "intent"])
SMALL = EdgeConfig(masks=(INTENT, SECTOR_INTENT))
D1, D2, D3 = pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-04")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def trades_frame(rows: list[dict]) -> pd.DataFrame:
    """A trades frame with every scope dimension (unknown unless given)."""
    base = {"pattern_key": "mom", "action_category": "open", "duration_hours": 24.0}
    records = [{**base, **{d: None for d in DIMENSION_NAMES}, **row} for row in rows]
    frame = pd.DataFrame.from_records(records)
    if len(frame):
        frame["exit_date"] = pd.to_datetime(frame["exit_date"], format="ISO8601").astype("datetime64[ns]")
    else:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in ("pattern_key", "action_category", *DIMENSION_NAMES)})
        frame["exit_date"] = pd.Series(dtype="datetime64[ns]")
        frame["rr"] = pd.Series(dtype=float)
        frame["duration_hours"] = pd.Series(dtype=float)
    return frame


def feed_by_day(trades: pd.DataFrame, config: EdgeConfig) -> EdgeAggregator:
    agg = EdgeAggregator(config)
    for day, group in trades.groupby(trades["exit_date"].dt.normalize(), sort=True):
        agg.update(day, group)
    return agg


# --------------------------------------------------------------------------- components
def test_edge_components_hand_computed():
    # n=4, Σrr=2, Σrr²=3 -> avg 0.5, variance 3/4 - 1/4 = 0.5; baseline 0.25 -> delta 0.25
    # duration e - 1 -> ln(1 + d) = 1 -> time 0.5; volatility 1 -> stability 0.5; k = 4 -> support 1 - e^-1
    c = edge_components(4, 2.0, 3.0, 0.4, math.e - 1.0, 0.25, 1.0, EdgeConfig(support_k=4.0))
    assert list(c) == list(COMPONENT_NAMES)
    assert c["avg_rr"] == 0.5
    assert c["variance_rr"] == 0.5
    assert c["delta_rr"] == 0.25
    assert c["ev_score"] == pytest.approx(0.5621765008857981, rel=1e-14)  # 1 / (1 + e^-0.25)
    assert c["reliability_score"] == pytest.approx(2 / 3, rel=1e-14)  # 1 / 1.5
    assert c["support_score"] == pytest.approx(0.6321205588285577, rel=1e-14)  # 1 - e^-1
    assert c["magnitude_score"] == pytest.approx(0.598687660112452, rel=1e-14)  # 1 / (1 + e^-0.4)
    assert c["time_score"] == pytest.approx(0.5, rel=1e-14)
    assert c["stability_score"] == 0.5
    # integral = 0.63212 + 0.59869 + 0.5 + 0.5 = 2.23081; edge_raw = 0.25 × 2/3 × 2.23081
    assert c["edge_raw"] == pytest.approx(0.37180136982350165, rel=1e-14)


def test_edge_components_scales_and_edge_cases():
    c = edge_components(1, -2.0, 4.0, -2.0, 0.0, 0.0, 0.0, EdgeConfig(ev_scale=2.0, magnitude_scale=4.0, support_k=1.0))
    assert c["variance_rr"] == 0.0 and c["reliability_score"] == 1.0
    assert c["ev_score"] == pytest.approx(sigmoid(-1.0), rel=1e-14)
    assert c["magnitude_score"] == pytest.approx(sigmoid(-0.5), rel=1e-14)
    assert c["support_score"] == pytest.approx(1 - math.exp(-1.0), rel=1e-14)
    assert c["time_score"] == 1.0 and c["stability_score"] == 1.0
    assert c["edge_raw"] == pytest.approx(-2.0 * 1.0 * (1 - math.exp(-1.0) + sigmoid(-0.5) + 1 + 1), rel=1e-14)
    # rounding never makes the variance negative (Σrr²/n slightly below avg²)
    assert edge_components(3, 0.3, 0.03, 0.1, 1.0, 0.0, 0.0, EdgeConfig())["variance_rr"] >= 0.0
    # huge arguments do not overflow the sigmoids
    big = edge_components(1, 1e6, 1e12, -1e6, 0.0, 0.0, 0.0, EdgeConfig())
    assert big["ev_score"] == 1.0 and big["magnitude_score"] == 0.0
    with pytest.raises(ValueError):
        edge_components(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, EdgeConfig())


# --------------------------------------------------------------------------- a hand-checked example
def _three_trades() -> pd.DataFrame:
    return trades_frame(
        [
            {"exit_date": "2024-01-02", "intent": "long", "sector": "tech", "rr": 1.0, "duration_hours": 24.0},
            {"exit_date": "2024-01-02", "intent": "short", "sector": "tech", "rr": -0.5, "duration_hours": 48.0},
            {"exit_date": "2024-01-03", "intent": "long", "sector": "energy", "rr": 2.0, "duration_hours": 72.0},
        ]
    )


def test_three_trades_by_hand():
    trades = _three_trades()
    agg = EdgeAggregator(SMALL)
    assert math.isnan(agg.baseline_rr)
    agg.update(D1, trades.iloc[:2])
    assert agg.baseline_rr == 0.25  # (1 - 0.5) / 2
    agg.update(D2, trades.iloc[2:])
    assert agg.baseline_rr == pytest.approx(2.5 / 3, rel=1e-15)

    long_ = agg.lookup("mom", "open", INTENT, "intent=long")
    assert isinstance(long_, MaskStats)
    assert (long_.n, long_.sum_rr, long_.sum_rr2) == (2, 3.0, 5.0)
    assert long_.avg_rr == 1.5
    assert long_.variance_rr == 0.25  # 5/2 - 1.5²
    assert long_.median_rr == 1.5  # (1 + 2) / 2
    assert long_.avg_duration_hours == 48.0  # (24 + 72) / 2
    assert long_.baseline_rr == pytest.approx(2.5 / 3, rel=1e-15)
    assert long_.delta_rr == pytest.approx(1.5 - 2.5 / 3, rel=1e-14)
    assert long_.as_of_date == D2 and long_.snapshots == 2
    assert long_.edge_volatility == 0.0  # only one earlier snapshot
    # delta 2/3, reliability 1/1.25, support 1 - e^(-2/12), magnitude sigmoid(1.5), time 1/(1 + ln 49), stability 1
    expected = (2 / 3) * 0.8 * ((1 - math.exp(-2 / 12)) + sigmoid(1.5) + 1 / (1 + math.log(49)) + 1.0)
    assert long_.edge_raw == pytest.approx(expected, rel=1e-13)
    assert long_.edge_raw == pytest.approx(1.1602750040395113, rel=1e-13)
    assert long_.decay_state == INSUFFICIENT_HISTORY and long_.decay_mult == 1.0
    assert math.isnan(long_.decay_slope_per_hour)

    # the short key was not touched on day 2: it keeps its day-1 statistics and baseline
    short = agg.lookup("mom", "open", INTENT, "intent=short")
    assert (short.n, short.avg_rr, short.variance_rr, short.median_rr) == (1, -0.5, 0.0, -0.5)
    assert short.baseline_rr == 0.25 and short.as_of_date == D1 and short.snapshots == 1
    assert short.delta_rr == -0.75

    # the two-dimension mask splits the long trades by sector; keys are in table order
    assert scope_key({"intent": "long", "sector": "energy"}, SECTOR_INTENT) == "sector=energy|intent=long"
    energy = agg.lookup("mom", "open", SECTOR_INTENT, "sector=energy|intent=long")
    assert (energy.n, energy.avg_rr, energy.as_of_date) == (1, 2.0, D2)
    assert agg.lookup("mom", "open", SECTOR_INTENT, "sector=tech|intent=long").n == 1
    assert agg.lookup("mom", "open", INTENT, "intent=flat") is None
    assert agg.lookup("other", "open", INTENT, "intent=long") is None

    stats = agg.stats_frame()
    assert list(stats.columns) == list(STATS_COLUMNS)
    assert stats["scope_mask"].dtype == np.int32
    assert list(stats["scope_key"]) == [
        "intent=long",
        "intent=short",
        "sector=energy|intent=long",
        "sector=tech|intent=long",
        "sector=tech|intent=short",
    ]
    assert list(stats["dimensions"]) == ["intent", "intent", "sector+intent", "sector+intent", "sector+intent"]
    assert stats.iloc[0]["edge_raw"] == long_.edge_raw

    history = agg.history_frame()
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert history["scope_mask"].dtype == np.int32
    assert list(history["ts"]) == [D1] * 4 + [D2] * 2
    assert list(history["scope_key"]) == [
        "intent=long",
        "intent=short",
        "sector=tech|intent=long",
        "sector=tech|intent=short",
        "intent=long",
        "sector=energy|intent=long",
    ]
    assert list(history["hours"]) == [0.0, 0.0, 0.0, 0.0, 24.0, 0.0]
    assert list(history["n"]) == [1, 1, 1, 1, 2, 1]
    assert history.iloc[4]["edge_raw"] == long_.edge_raw

    # the batch entry point gives the same frames
    batch_stats, batch_history = edge_statistics(trades, SMALL)
    pd.testing.assert_frame_equal(batch_stats, stats)
    pd.testing.assert_frame_equal(batch_history, history)


def test_one_history_row_per_touched_key_per_day():
    trades = trades_frame(
        [{"exit_date": "2024-01-02", "intent": "long", "rr": r} for r in (1.0, 2.0, 3.0)]
        + [{"exit_date": "2024-01-02 16:30", "intent": "long", "rr": 4.0}]
        + [{"exit_date": "2024-01-05", "intent": "long", "rr": 0.5}]
    )
    stats, history = edge_statistics(trades, EdgeConfig(masks=(INTENT,)))
    assert len(stats) == 1 and stats.iloc[0]["n"] == 5 and stats.iloc[0]["snapshots"] == 2
    assert list(history["ts"]) == [D1, pd.Timestamp("2024-01-05")]
    assert list(history["n"]) == [4, 5]
    assert list(history["hours"]) == [0.0, 72.0]


# --------------------------------------------------------------------------- point in time
def test_before_excludes_trades_of_that_day_and_includes_the_day_before():
    trades = trades_frame(
        [
            {"exit_date": "2024-01-02", "intent": "long", "rr": 1.0},
            {"exit_date": "2024-01-03 15:30", "intent": "long", "rr": 3.0},
            {"exit_date": "2024-01-03", "intent": "short", "rr": -1.0},
        ]
    )
    timeline = EdgeTimeline(trades, SMALL)
    assert list(timeline.days) == [D1, D2]
    agg = timeline.before(D1)
    assert len(agg) == 0 and math.isnan(agg.baseline_rr)
    agg = timeline.before(D2)
    assert agg.lookup("mom", "open", INTENT, "intent=long").n == 1  # the trade of the day before
    assert agg.lookup("mom", "open", INTENT, "intent=short") is None  # exits on D2: not yet known
    assert agg.baseline_rr == 1.0
    assert timeline.before(D2) is agg  # same day again: unchanged
    assert agg.lookup("mom", "open", INTENT, "intent=long").n == 1
    later = timeline.before(D3)
    assert later is agg
    assert agg.lookup("mom", "open", INTENT, "intent=long").n == 2
    assert agg.lookup("mom", "open", INTENT, "intent=short").n == 1
    assert agg.baseline_rr == 1.0
    with pytest.raises(ValueError, match="non-decreasing"):
        timeline.before(D2)
    with pytest.raises(ValueError, match="calendar day"):
        timeline.before(pd.Timestamp("2024-01-05 12:00"))


def test_before_equals_an_aggregator_fed_with_the_earlier_trades():
    rng = np.random.default_rng(5)
    n = 200
    trades = trades_frame(
        [
            {
                "exit_date": pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 40))),
                "pattern_key": str(rng.choice(["a", "b"])),
                "intent": str(rng.choice(["long", "short"])),
                "sector": rng.choice(["tech", "energy", None]),
                "rr": float(rng.normal(0.1, 1.0)),
                "duration_hours": float(rng.uniform(0, 100)),
            }
            for _ in range(n)
        ]
    )
    timeline = EdgeTimeline(trades, SMALL)
    for cut in ("2024-01-01", "2024-01-10", "2024-01-10", "2024-01-25", "2024-03-01"):
        day = pd.Timestamp(cut)
        expected = feed_by_day(trades[trades["exit_date"] < day], SMALL)
        got = timeline.before(day)
        pd.testing.assert_frame_equal(got.stats_frame(), expected.stats_frame())
        pd.testing.assert_frame_equal(got.history_frame(), expected.history_frame())


# --------------------------------------------------------------------------- incremental == batch
_dims = ("intent", "sector", "vol_bucket")
PROPERTY_CONFIG = EdgeConfig(masks=(mask_of(["intent"]), mask_of(["sector", "intent"]), mask_of(_dims)), stability_window=3, decay_min_snapshots=3)

_rr = st.one_of(
    st.floats(min_value=-5.0, max_value=5.0, allow_nan=False, allow_subnormal=False),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
_trade = st.fixed_dictionaries(
    {
        "day": st.integers(min_value=0, max_value=8),
        "pattern_key": st.sampled_from(["p1", "p2"]),
        "action_category": st.sampled_from(["open", "flip"]),
        "intent": st.sampled_from(["long", "short", None]),
        "sector": st.sampled_from(["tech", "energy", None, float("nan")]),
        "vol_bucket": st.sampled_from(["low", "high"]),
        "rr": _rr,
        "duration_hours": st.floats(min_value=0.0, max_value=1000.0, allow_nan=False),
    }
)


def _random_trades(rows: list[dict]) -> pd.DataFrame:
    start = pd.Timestamp("2023-06-01")
    return trades_frame([{**{k: v for k, v in r.items() if k != "day"}, "exit_date": start + pd.Timedelta(days=r["day"])} for r in rows])


def _naive_stats(trades: pd.DataFrame, config: EdgeConfig) -> pd.DataFrame:
    """Recompute n / avg / variance / median / duration / as-of / baseline with pandas over all trades."""
    ok = trades[np.isfinite(trades["rr"].to_numpy(dtype=float))]
    parts = []
    for mask in config.masks:
        keyed = ok.assign(
            scope_mask=mask,
            scope_key=[scope_key(row, mask) for row in ok.to_dict("records")],  # the reference formatter
            day=ok["exit_date"].dt.normalize(),
        )
        parts.append(keyed)
    allrows = pd.concat(parts, ignore_index=True)
    g = allrows.groupby(["pattern_key", "action_category", "scope_mask", "scope_key"], sort=True)
    naive = g.agg(
        n=("rr", "size"),
        avg_rr=("rr", "mean"),
        variance_rr=("rr", lambda s: float(np.var(s.to_numpy()))),
        median_rr=("rr", "median"),
        avg_duration_hours=("duration_hours", "mean"),
        as_of_date=("day", "max"),
        snapshots=("day", "nunique"),
    ).reset_index()
    day = ok["exit_date"].dt.normalize()
    naive["baseline_rr"] = [ok.loc[day <= d, "rr"].mean() for d in naive["as_of_date"]]
    return naive


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_trade, min_size=0, max_size=40))
def test_incremental_equals_naive_recomputation(rows):
    trades = _random_trades(rows)
    config = PROPERTY_CONFIG
    stats, history = edge_statistics(trades, config)
    skipped = int((~np.isfinite(trades["rr"].to_numpy(dtype=float))).sum()) if len(trades) else 0
    assert EdgeTimeline(trades, config).skipped == skipped
    if skipped == len(trades):
        assert stats.empty and history.empty
        assert list(stats.columns) == list(STATS_COLUMNS) and list(history.columns) == list(HISTORY_COLUMNS)
        return
    naive = _naive_stats(trades, config)
    assert list(stats["scope_key"]) == list(naive["scope_key"])  # same keys, same order
    assert list(stats["pattern_key"]) == list(naive["pattern_key"])
    assert list(stats["scope_mask"]) == list(naive["scope_mask"])
    np.testing.assert_array_equal(stats["n"].to_numpy(), naive["n"].to_numpy())
    np.testing.assert_array_equal(stats["snapshots"].to_numpy(), naive["snapshots"].to_numpy())
    np.testing.assert_array_equal(stats["as_of_date"].to_numpy(), naive["as_of_date"].to_numpy())
    for col in ("avg_rr", "median_rr", "avg_duration_hours", "baseline_rr"):
        np.testing.assert_allclose(stats[col].to_numpy(), naive[col].to_numpy(), rtol=1e-9, atol=1e-12, err_msg=col)
    # Σrr²/n - avg² loses ~eps·avg² to cancellation
    np.testing.assert_allclose(stats["variance_rr"].to_numpy(), naive["variance_rr"].to_numpy(), rtol=1e-9, atol=1e-12 * (1 + 25))

    # edge_history: one row per (key, day with a trade of the key)
    assert len(history) == int(naive["snapshots"].sum())
    assert not history.duplicated(["pattern_key", "action_category", "scope_mask", "scope_key", "ts"]).any()
    key_cols = ["ts", "pattern_key", "action_category", "scope_mask", "scope_key"]
    assert history.equals(history.sort_values(key_cols, kind="stable").reset_index(drop=True))

    # the same result from day-by-day updates (the incremental API)
    agg = feed_by_day(trades, config)
    assert agg.skipped == skipped
    pd.testing.assert_frame_equal(agg.stats_frame(), stats)
    pd.testing.assert_frame_equal(agg.history_frame(), history)


def test_volatility_components_and_decay_are_consistent_with_the_history():
    rng = np.random.default_rng(8)
    days = pd.bdate_range("2024-01-01", periods=45)
    rows = []
    for i, day in enumerate(days):
        for _ in range(1 + i % 3):
            rows.append({"exit_date": day, "intent": "long", "rr": float(rng.normal(0.3 - 0.01 * i, 0.5)), "duration_hours": float(rng.uniform(1, 50))})
    trades = trades_frame(rows)
    config = EdgeConfig(masks=(INTENT,), stability_window=5)
    stats, history = edge_statistics(trades, config)
    s = stats.iloc[0]
    edges = history["edge_raw"].to_numpy()
    hours = history["hours"].to_numpy()
    assert s["snapshots"] == len(edges) == 45
    # hours since the key's first snapshot (business days: weekends are 72 hours)
    np.testing.assert_array_equal(hours, ((days - days[0]) / pd.Timedelta(hours=1)).to_numpy())
    # volatility = population std of the 5 snapshots before the last one
    assert s["edge_volatility"] == pytest.approx(float(np.std(edges[-6:-1])), rel=1e-12)
    # every component follows from the stored statistics
    c = edge_components(int(s["n"]), s["sum_rr"], s["sum_rr2"], s["median_rr"], s["avg_duration_hours"], s["baseline_rr"], s["edge_volatility"], config)
    for name in COMPONENT_NAMES:
        assert s[name] == pytest.approx(c[name], rel=1e-15, abs=1e-15), name
    assert s["edge_raw"] == edges[-1]
    ok = trades
    assert s["median_rr"] == ok["rr"].median()
    assert s["baseline_rr"] == pytest.approx(ok["rr"].mean(), rel=1e-12)
    # the decay fields are fit_decay of the key's edge_history
    fit = fit_decay(hours, edges, config)
    assert s["decay_state"] == fit.state
    assert s["decay_slope_per_hour"] == pytest.approx(fit.slope_per_hour, rel=1e-9)
    assert s["decay_mult"] == pytest.approx(fit.decay_mult, rel=1e-9)
    assert (math.isnan(s["decay_rate_per_hour"]) and math.isnan(fit.rate_per_hour)) or s["decay_rate_per_hour"] == pytest.approx(fit.rate_per_hour, rel=1e-9)
    # every snapshot's volatility input was the std of the (up to) 5 snapshots before it
    for k in (1, 2, 3, 10, 30):
        prev = edges[max(0, k - 5) : k]
        sub = edge_statistics(trades[trades["exit_date"] <= days[k]], config)[0].iloc[0]
        assert sub["edge_volatility"] == pytest.approx(float(np.std(prev)) if len(prev) >= 2 else 0.0, rel=1e-12, abs=0.0)


def test_row_order_within_the_frame_does_not_matter():
    rng = np.random.default_rng(1)
    trades = trades_frame(
        [
            {"exit_date": pd.Timestamp("2024-02-01") + pd.Timedelta(days=int(rng.integers(0, 20))), "intent": str(rng.choice(["long", "short"])), "sector": str(rng.choice(["x", "y"])), "rr": float(rng.normal())}
            for _ in range(120)
        ]
    )
    a, ha = edge_statistics(trades, SMALL)
    b, hb = edge_statistics(trades.sample(frac=1.0, random_state=3), SMALL)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-10)
    pd.testing.assert_frame_equal(ha, hb, check_exact=False, rtol=1e-10)
    c, hc = edge_statistics(trades, SMALL)  # deterministic
    pd.testing.assert_frame_equal(a, c, check_exact=True)
    pd.testing.assert_frame_equal(ha, hc, check_exact=True)


# --------------------------------------------------------------------------- input handling
def test_non_finite_rr_is_skipped_and_counted():
    trades = trades_frame(
        [
            {"exit_date": "2024-01-02", "intent": "long", "rr": 1.0},
            {"exit_date": "2024-01-02", "intent": "long", "rr": float("nan")},
            {"exit_date": "2024-01-02", "intent": "long", "rr": float("inf")},
            {"exit_date": None, "intent": "long", "rr": float("nan"), "duration_hours": float("nan")},  # skipped before validation
            {"exit_date": "2024-01-03", "intent": "long", "rr": 3.0},
        ]
    )
    timeline = EdgeTimeline(trades, SMALL)
    assert timeline.skipped == 3
    agg = timeline.before(D3)
    assert agg.lookup("mom", "open", INTENT, "intent=long").n == 2
    assert agg.baseline_rr == 2.0

    agg = EdgeAggregator(SMALL)
    agg.update(D1, trades.iloc[:3])
    assert agg.skipped == 2
    assert agg.lookup("mom", "open", INTENT, "intent=long").n == 1
    assert agg.baseline_rr == 1.0


def test_days_must_be_strictly_increasing():
    trades = _three_trades()
    agg = EdgeAggregator(SMALL)
    agg.update(D2, trades.iloc[2:])
    with pytest.raises(ValueError, match="strictly increasing"):
        agg.update(D1, trades.iloc[:2])
    with pytest.raises(ValueError, match="strictly increasing"):
        agg.update(D2, trades.iloc[2:0])
    # nothing changed by the rejected calls
    assert agg.lookup("mom", "open", INTENT, "intent=long").n == 1 and agg.baseline_rr == 2.0
    assert agg.last_day == D2
    agg.update(D3, trades.iloc[0:0])  # an empty day only advances the clock
    assert agg.last_day == D3 and len(agg.history_frame()) == 2


def test_update_rejects_invalid_input():
    trades = _three_trades()
    agg = EdgeAggregator(SMALL)
    with pytest.raises(ValueError, match="other days"):
        agg.update(D1, trades)  # the third trade closed on D2
    with pytest.raises(ValueError, match="calendar day"):
        agg.update(pd.Timestamp("2024-01-02 09:00"), trades.iloc[:2])
    with pytest.raises(ValueError, match="lacks columns"):
        agg.update(D1, trades.iloc[:2].drop(columns=["sector"]))
    with pytest.raises(ValueError, match="duration_hours"):
        agg.update(D1, trades.iloc[:2].assign(duration_hours=-1.0))
    with pytest.raises(ValueError, match="pattern_key"):
        agg.update(D1, trades.iloc[:2].assign(pattern_key=None))
    assert agg.last_day is None and len(agg) == 0
    agg.update(D1, trades.iloc[:2])  # still usable
    assert len(agg) == 4


def test_dimensions_not_used_by_the_masks_may_be_absent():
    trades = _three_trades()[["pattern_key", "action_category", "exit_date", "rr", "duration_hours", "intent", "sector"]]
    stats, _ = edge_statistics(trades, SMALL)
    assert len(stats) == 5


def test_empty_trades_give_empty_frames():
    stats, history = edge_statistics(trades_frame([]), EdgeConfig())
    assert stats.empty and history.empty
    assert list(stats.columns) == list(STATS_COLUMNS)
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert stats["scope_mask"].dtype == np.int32 and history["scope_mask"].dtype == np.int32


def test_unknown_dimension_values_share_one_key():
    trades = trades_frame(
        [
            {"exit_date": "2024-01-02", "intent": None, "rr": 1.0},
            {"exit_date": "2024-01-02", "intent": float("nan"), "rr": 2.0},
            {"exit_date": "2024-01-02", "intent": "unknown", "rr": 3.0},
        ]
    )
    stats, _ = edge_statistics(trades, EdgeConfig(masks=(INTENT,)))
    assert list(stats["scope_key"]) == ["intent=unknown"] and stats.iloc[0]["n"] == 3


def test_default_masks_cover_every_dimension_and_run():
    trades = _three_trades()
    stats, history = edge_statistics(trades, EdgeConfig())
    assert set(stats["scope_mask"]) == set(EdgeConfig().masks)
    full = stats[stats["scope_mask"] == mask_of(DIMENSION_NAMES)]
    assert len(full) == 3  # every trade has its own full scope
    assert full.iloc[0]["dimensions"] == "+".join(DIMENSION_NAMES)
    assert len(history) == int(stats["snapshots"].sum())


# --------------------------------------------------------------------------- carried between runs
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_trade, min_size=0, max_size=40), st.integers(min_value=0, max_value=9))
def test_a_carried_aggregator_continues_exactly_like_one_timeline(rows, cut_day):
    """What the edge layer stores at a close (statistics without history rows, pickled) and resumes from
    gives, after the later trades, the statistics of one pass over every trade, and the history rows
    of the later days: bit for bit."""
    import pickle

    trades = _random_trades(rows)
    cut = pd.Timestamp("2023-06-01") + pd.Timedelta(days=cut_day)
    whole = EdgeTimeline(trades, PROPERTY_CONFIG).through_end()
    earlier = EdgeTimeline(trades[trades["exit_date"] < cut], PROPERTY_CONFIG).through_end()
    earlier.stats_frame()  # a stored aggregator has its statistics cached; the resumed one must not depend on that
    carried = pickle.loads(pickle.dumps(earlier.without_history()))
    # a reader that must add trades copies the carried aggregator first, leaving it as stored
    reader = EdgeTimeline(trades[trades["exit_date"] >= cut], PROPERTY_CONFIG, start=carried, copy_on_write=True).through_end()
    pd.testing.assert_frame_equal(reader.stats_frame(), whole.stats_frame())
    pd.testing.assert_frame_equal(carried.stats_frame(), earlier.stats_frame())
    resumed = EdgeTimeline(trades[trades["exit_date"] >= cut], PROPERTY_CONFIG, start=carried).through_end()
    pd.testing.assert_frame_equal(resumed.stats_frame(), whole.stats_frame())
    tail = whole.history_frame()
    tail = tail[tail["ts"] >= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(resumed.history_frame(), tail)
    assert len(earlier.history_frame()) + len(resumed.history_frame()) == len(whole.history_frame())


def test_a_carried_aggregator_refuses_earlier_trades_and_another_config():
    trades = trades_frame([{"exit_date": D1, "intent": "long", "rr": 1.0}, {"exit_date": D2, "intent": "long", "rr": 0.5}])
    carried = EdgeTimeline(trades, SMALL).through_end()
    with pytest.raises(ValueError, match="not after the carried aggregator"):
        EdgeTimeline(trades[trades["exit_date"] == D2], SMALL, start=carried)
    with pytest.raises(ValueError, match="another edge config"):
        EdgeTimeline(trades.iloc[:0], EdgeConfig(masks=(INTENT,)), start=carried)


def test_a_flip_is_seen_when_the_reversed_trade_closed_before_the_resume_point():
    """Regression: a resumed edge run learns only trades closed after its state, but a trade opened by
    reversing one that closed before the state is still a flip (the split-backfill test found it)."""
    from prometheus_assets.core.edge.context import entry_modes

    d = pd.to_datetime(["2016-01-04", "2016-01-11", "2016-02-08", "2016-02-09"])
    trades = pd.DataFrame({
        "book": ["B", "B", "B", "C"], "symbol": ["X", "X", "Y", "X"], "side": ["long", "short", "short", "short"],
        "entry_date": [d[0], d[1], d[1], d[1]], "exit_date": [d[1], d[2], d[3], d[3]],
    })
    # one pass over every trade: the short in X opened at the long's exit close (same book) is a flip;
    # Y (another symbol) and book C (another book) are fresh
    assert entry_modes(trades).tolist() == ["fresh", "flip", "fresh", "fresh"]
    resumed = trades.iloc[1:].reset_index(drop=True)  # state after 2016-01-11: the long's exit is not learnt again
    assert entry_modes(resumed).tolist() == ["fresh", "fresh", "fresh"]  # what the resumed run used to record
    assert entry_modes(resumed, exits=trades[trades["exit_date"] >= resumed["entry_date"].min()]).tolist() == ["flip", "fresh", "fresh"]
