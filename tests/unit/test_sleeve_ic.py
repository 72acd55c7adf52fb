"""Per-date alpha ICs of the book configs kept per year summarise to the whole-history alpha_ic / alpha_decay, bit for bit."""

import numpy as np
import pandas as pd
import pytest

from prometheus_assets.core import book_signals, performance, portfolio
from prometheus_assets.core import sleeve_ic as SI
from prometheus_assets.core import strategies as S
from prometheus_assets.core.books import COMBINATION_METHODS, BookConfig
from prometheus_assets.core.synthetic import generate_market


@pytest.fixture(scope="module")
def market():
    """Four years of a synthetic market with listings / delistings, strategy signals and two assessment score kinds."""
    sessions = pd.bdate_range("2014-01-02", "2017-12-29").astype("datetime64[ns]")
    m = generate_market(sessions, 25, 4)
    px = m.bars.pivot(index="date", columns="symbol", values="adj_close").sort_index()
    px.index = pd.DatetimeIndex(px.index).astype("datetime64[ns]")
    returns = px.pct_change(fill_method=None)
    signals = S.all_signals(px)
    rng = np.random.default_rng(3)
    stacked = returns.rename_axis(index="as_of_date", columns="symbol").stack().reset_index()[["as_of_date", "symbol"]].assign(horizon=20)
    forward = returns.shift(-5).rename_axis(index="as_of_date", columns="symbol").stack(future_stack=True).rename("f").reset_index()
    stacked = stacked.merge(forward, on=["as_of_date", "symbol"], how="left")
    scores = pd.concat([stacked.assign(kind=kind, model_id=kind, score=stacked["f"].fillna(0.0) * 3 + rng.standard_normal(len(stacked)))
                        for kind in ("hgb", "ridge")], ignore_index=True).drop(columns="f")
    scores = scores[scores["as_of_date"] >= "2014-06-02"].reset_index(drop=True)
    return returns, signals, scores


def _books() -> dict[str, BookConfig]:
    strategy = BookConfig(name="STRAT", horizon_days=10, confidence_window=60, covariance_window=60, volatility_window=20,
                          alpha_sources=[{"name": "strategy:bollinger_mean_reversion", "weight": 1.0},
                                         {"name": "strategy:macd_rsi_confluence", "weight": 0.5}])
    scored = BookConfig(name="SCORED", horizon_days=20, confidence_window=60, covariance_window=60, volatility_window=20,
                        alpha_sources=[{"name": "assessment:20d:hgb", "weight": 1.0}, {"name": "assessment:20d:ridge", "weight": 0.5}],
                        combination="confidence_weighted")
    return {b.name: b for b in (strategy, scored)}


def test_ics_kept_per_year_on_their_own_windows_equal_the_whole_history_alpha_ic_and_decay(market):
    returns, signals, scores = market
    books = _books()
    configs = {b.config_id(m): (b, m) for b in books.values() for m in COMBINATION_METHODS}
    lookback = max(portfolio.book_lookback(b, 252) for b in books.values()) + 21
    forward = SI.forward_sessions(books)
    sessions = returns.index

    blocks = []
    for year in (2014, 2015, 2016, 2017):
        first, end = pd.Timestamp(f"{year}-01-01"), pd.Timestamp(f"{year}-12-31")
        start = sessions[max(int(sessions.searchsorted(first)) - lookback, 0)]
        after = sessions[sessions > end][:forward]
        window = returns[(sessions >= start) & (sessions <= (after[-1] if len(after) else end))]
        window = window.loc[:, window.notna().any()]  # the window's own symbols (as to_wide of its rows)
        sc = scores[(scores["as_of_date"] >= start) & (scores["as_of_date"] <= end)]
        sg = signals[(signals["date"] >= start) & (signals["date"] <= end)]
        blocks.append(SI.config_ic_by_date(configs, books, sc, sg, window, first, end))
    rows = pd.concat(blocks, ignore_index=True)
    assert list(rows.columns) == list(SI.block_columns())

    panels = book_signals.source_panels(books, scores, signals, returns)
    checked = 0
    for book, method in configs.values():
        alpha = book_signals.book_alpha(book, panels, method)
        mine = rows[(rows["book"] == book.name) & (rows["combination_method"] == method)]
        assert mine["date"].is_monotonic_increasing and len(mine) == len(sessions)
        expected = performance.alpha_ic(alpha, returns, book.horizon_days)
        pd.testing.assert_series_equal(SI.alpha_ic_from_rows(mine), expected, check_exact=True)
        pd.testing.assert_series_equal(SI.alpha_decay_from_rows(mine), performance.alpha_decay(alpha, returns), check_exact=True)
        checked += len(expected)
    assert checked > 4000  # ICs on both sides of every year boundary


def test_a_block_does_not_depend_on_what_follows_its_forward_windows(market):
    returns, signals, scores = market
    books = _books()
    configs = {b.config_id(): (b, b.combination) for b in books.values()}
    first, end = pd.Timestamp("2016-01-01"), pd.Timestamp("2016-12-31")
    forward = SI.forward_sessions(books)
    cut = returns.index[returns.index > end][forward - 1]
    short = SI.config_ic_by_date(configs, books, scores[scores["as_of_date"] <= end], signals[signals["date"] <= end], returns[returns.index <= cut], first, end)
    whole = SI.config_ic_by_date(configs, books, scores, signals, returns, first, end)
    pd.testing.assert_frame_equal(short, whole, check_exact=True)
    assert short["known_date"].max() > end and short["ic"].notna().sum() > 400
