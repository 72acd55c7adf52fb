"""sleeve_evaluation's yearly blocks (assets/sleeve_summary_state.py) against the whole-series computation.

The blocks hold each year's ("year", "YYYY") metric rows and rolling rows. Whatever years a run
computes together, a year's rows must be exactly those the whole-history computation gives
(performance.sliced_metrics over every slice, performance.rolling_metrics over the whole series).
"""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_assets.assets import sleeve_summary_state as summary
from prometheus_assets.core import calendar, performance


def _sleeve(seed: int, config_id: str, first: str, last: str, configured: bool, nan_share: float) -> summary.Sleeve:
    rng = np.random.default_rng(seed)
    dates = pd.DatetimeIndex(calendar.trading_sessions(pd.Timestamp(first), pd.Timestamp(last)))
    returns = rng.normal(0.0004, 0.01, len(dates))
    returns[rng.random(len(dates)) < nan_share] = np.nan
    series = pd.DataFrame({"return": returns, "turnover": rng.random(len(dates)) * 0.2}, index=dates)
    known = dates[5:][rng.random(len(dates) - 5) > 0.3]  # ICs dated when known, some days without
    ic = pd.Series(rng.normal(0.02, 0.1, len(known)), index=known)
    exits = pd.DatetimeIndex(sorted(rng.choice(dates, size=len(dates) // 10)))
    trades = pd.DataFrame({"exit_date": exits, "holding_sessions": rng.integers(1, 40, len(exits)).astype("float64"),
                           "return": rng.normal(0.0, 0.05, len(exits)), "book": "b"})
    return summary.Sleeve(config_id, "b", "equal", configured, False, series, ic, trades)


def _whole(sleeves: list[summary.Sleeve]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole-series computation: every slice's rows (year slices kept), every rolling row."""
    metric_parts, rolling_parts = [], []
    for s in sleeves:
        rows = summary.metric_rows(s, performance.slices(pd.DatetimeIndex(s.series.index), None), [])
        metric_parts.append(rows[rows["scope"] == "year"])
        if s.configured:
            rolling_parts.append(performance.rolling_metrics(s.series["return"], summary.ROLLING_WINDOWS, ic=s.ic).assign(config_id=s.config_id, book=s.book))
    return pd.concat(metric_parts, ignore_index=True), pd.concat(rolling_parts, ignore_index=True)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.2]), st.integers(0, 3))
def test_year_blocks_equal_the_whole_series_computation(seed, nan_share, split):
    sleeves = [
        _sleeve(seed, "a.equal", "2013-05-06", "2017-08-31", True, nan_share),
        _sleeve(seed + 1, "b.equal", "2014-02-03", "2017-08-31", False, nan_share),
        _sleeve(seed + 2, "c.equal", "2013-11-01", "2017-08-31", True, 0.0),
    ]
    years = list(range(2013, 2018))
    # the years computed together in a run: all of them, each alone, or a split in two
    groups = [years] if split == 0 else [[y] for y in years] if split == 1 else [years[:split], years[split:]]
    year_blocks: dict[int, pd.DataFrame] = {}
    rolling_blocks: dict[int, pd.DataFrame] = {}
    for group in groups:
        year_blocks.update(summary.year_rows(sleeves, group))
        rolling_blocks.update(summary.rolling_rows(sleeves, group))
    whole_years, whole_rolling = _whole(sleeves)

    by_year = pd.concat([year_blocks[y] for y in years], ignore_index=True)
    order = by_year.sort_values(["config_id"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(order, whole_years.reset_index(drop=True), check_exact=True)

    rolling = pd.concat([rolling_blocks[y] for y in years], ignore_index=True)
    rolling = rolling.sort_values(["config_id", "window"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(rolling, whole_rolling, check_exact=True)
    # a year's rolling block holds only rows dated in it
    for y in years:
        assert (pd.DatetimeIndex(rolling_blocks[y]["date"]).year == y).all()


def test_block_inputs_cover_the_lookback_and_the_alpha_blocks_of_its_ics():
    """A rolling block of year Y reads the returns files from 251 sessions before Y, and the alpha blocks of the ICs
    known over that span; a year block reads year Y's files only."""
    from prometheus_assets.assets.upstream_files import FileDigest

    sleeves = [_sleeve(1, "a.equal", "2013-01-02", "2016-12-30", True, 0.0)]
    firsts = summary._first_reads(sleeves, [2013, 2014, 2015, 2016])
    assert firsts[("years", 2015)] == pd.Timestamp("2015-01-01")
    assert firsts[("rolling", 2015)].year == 2014 and firsts[("rolling", 2013)] == pd.Timestamp("2013-01-02")
    listing = {t: [FileDigest(t, f"{y}.parquet", y, f"{t}{y}", "") for y in range(2013, 2017)] for t in (*summary.RETURN_TABLES, "closed_trades")}
    alpha = {f"alpha/{y}": {"sha256": f"alpha{y}"} for y in range(2013, 2017)}
    years_inputs = summary._block_inputs("years", 2015, firsts[("years", 2015)], listing, alpha, [], 60)
    assert [i[1] for i in years_inputs if not i[0].startswith("alpha")] == ["2015.parquet"] * 3
    assert [i[0] for i in years_inputs if i[0].startswith("alpha")] == ["alpha/2014", "alpha/2015"]
    rolling_inputs = summary._block_inputs("rolling", 2015, firsts[("rolling", 2015)], listing, alpha, [], 60)
    assert sorted({i[1] for i in rolling_inputs if not i[0].startswith("alpha")}) == ["2014.parquet", "2015.parquet"]
    assert [i[0] for i in rolling_inputs if i[0].startswith("alpha")] == ["alpha/2013", "alpha/2014", "alpha/2015"]
    assert "closed_trades" not in {i[0] for i in rolling_inputs}
    assert summary._block_inputs("rolling", 2015, None, listing, alpha, [], 60) is None


def test_the_ic_of_a_regime_slice_is_of_the_signals_made_in_that_regime():
    """Regression: the regime slices grouped each IC by the date it became known (signal date + H), so after a
    regime change the next H ICs of the old regime's signals were counted in the new one (a perfect alpha in
    CRISIS and noise after gave NEUTRAL an IC of 0.21 instead of ~0)."""
    dates = pd.DatetimeIndex(calendar.trading_sessions(pd.Timestamp("2020-01-02"), pd.Timestamp("2020-12-31")))
    horizon = 20
    signal_ic = pd.Series(np.where(np.arange(len(dates)) < 100, 1.0, 0.0), index=dates)[: len(dates) - horizon]
    known_ic = pd.Series(signal_ic.to_numpy(), index=dates[horizon:])
    regimes = pd.Series(np.where(np.arange(len(dates)) < 100, "CRISIS", "NEUTRAL"), index=dates)
    series = pd.DataFrame({"return": 0.001, "turnover": 0.0}, index=dates)
    sleeve = summary.Sleeve("a.equal", "a", "equal", True, False, series, known_ic, None, ic_by_signal=signal_ic)
    rows = summary.metric_rows(sleeve, performance.slices(dates, regimes), performance.regime_slices(dates, regimes, in_force=False))
    rows = rows.set_index(["scope", "slice"])["ic"]
    assert rows[("regime", "CRISIS")] == 1.0 and rows[("regime", "NEUTRAL")] == 0.0
    # the other slices keep the ICs by the date they were known (what a point-in-time year row can read)
    assert rows[("overall", "all")] == known_ic.mean()
    assert rows[("year", "2020")] == known_ic.mean()
