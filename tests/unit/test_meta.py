"""The Meta-Orchestrator: hand examples for the rules, properties for budgets, loops for the book."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from prometheus_assets.core import metrics
from prometheus_assets.core.meta import (
    BUDGET_REGIME_LABELS,
    OBJECTIVES,
    PORTFOLIO_COLUMNS,
    SELECTION_COLUMNS,
    assess_configs,
    combine_portfolio,
    contributions,
    pareto_efficient,
    regime_budgets,
    risk_budgets,
    walk_forward_selection,
)

# --------------------------------------------------------------------------------------------
# Pareto efficiency
# --------------------------------------------------------------------------------------------

#: Hand example on the default objectives (Sharpe max, drawdown max, volatility min, turnover min):
#:
#: | config | sharpe | max_dd | vol  | turnover | efficient? why                                  |
#: |--------|--------|--------|------|----------|-------------------------------------------------|
#: | A      | 1.0    | -0.10  | 0.10 | 2.0      | yes: nobody beats it everywhere                 |
#: | A_copy | 1.0    | -0.10  | 0.10 | 2.0      | yes: an identical row is not *strictly* better  |
#: | B      | 0.8    | -0.15  | 0.12 | 2.5      | no: A is better on all four                     |
#: | C      | 1.2    | -0.20  | 0.15 | 3.0      | yes: best Sharpe                                |
#: | D      | 0.9    | -0.10  | 0.10 | 2.0      | no: ties A on three, A has the higher Sharpe    |
#: | E      | 0.5    | -0.05  | 0.20 | 1.0      | yes: best drawdown and turnover                 |
#: | F      | NaN    | -0.01  | 0.01 | 0.1      | no: NaN objective (and it dominates nobody)     |
#: | G      | 0.5    | -0.05  | 0.20 | 1.5      | no: E is as good on three, lower turnover       |
PARETO_EXAMPLE = pd.DataFrame(
    {
        "sharpe_ratio": [1.0, 1.0, 0.8, 1.2, 0.9, 0.5, np.nan, 0.5],
        "max_drawdown": [-0.10, -0.10, -0.15, -0.20, -0.10, -0.05, -0.01, -0.05],
        "annual_volatility": [0.10, 0.10, 0.12, 0.15, 0.10, 0.20, 0.01, 0.20],
        "turnover": [2.0, 2.0, 2.5, 3.0, 2.0, 1.0, 0.1, 1.5],
    },
    index=pd.Index(["A", "A_copy", "B", "C", "D", "E", "F", "G"], name="config_id"),
)


def test_pareto_hand_example():
    got = pareto_efficient(PARETO_EXAMPLE, OBJECTIVES)
    assert got.to_dict() == {"A": True, "A_copy": True, "B": False, "C": True, "D": False, "E": True, "F": False, "G": False}
    # a single "min" objective: only the lowest volatility rows (F has NaN Sharpe but that
    # objective is not used here) are efficient
    assert pareto_efficient(PARETO_EXAMPLE, {"annual_volatility": "min"}).loc[lambda s: s].index.tolist() == ["F"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[st.sampled_from([0.0, 1.0, 2.0, np.nan]) for _ in range(3)]), min_size=1, max_size=12))
def test_pareto_matches_pairwise_loop(rows):
    frame = pd.DataFrame(rows, columns=["a", "b", "c"])
    objectives = {"a": "max", "b": "min", "c": "max"}
    got = pareto_efficient(frame, objectives)
    sign = np.array([1.0, -1.0, 1.0])
    for i, ri in enumerate(frame.to_numpy() * sign):
        if np.isnan(ri).any():
            assert not got.iloc[i]
            continue
        dominated = any(
            not np.isnan(rj).any() and (rj >= ri).all() and (rj > ri).any() for j, rj in enumerate(frame.to_numpy() * sign) if j != i
        )
        assert got.iloc[i] == (not dominated)


# --------------------------------------------------------------------------------------------
# assess_configs
# --------------------------------------------------------------------------------------------


def _assess_example() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Five configs, all Pareto-efficient: same volatility and turnover, and the lower the Sharpe
    the shallower the drawdown (so each is best on some trade-off and only the other rules act)."""
    ids = ["eq.weighted_average", "mid.rank_average", "ml.confidence_weighted", "big.best_strategy", "carry.rank_average"]
    frame = pd.DataFrame(
        {
            "sharpe_ratio": [0.95, 1.30, 1.00, 1.25, 1.40],
            "max_drawdown": [-0.05, -0.10, -0.06, -0.09, -0.12],
            "annual_volatility": [0.10, 0.10, 0.10, 0.10, 0.10],
            "turnover": [1.0, 1.0, 1.0, 1.0, 1.0],
        },
        index=ids,
    )
    regime_sharpe = pd.DataFrame(
        {"CRISIS": [0.2, -0.5, 0.1, 0.3, -1.5], "CARRY": [1.2, 2.0, 1.5, 1.4, 2.5], "NEUTRAL": [np.nan] * 5},
        index=ids,
    )
    complexity = pd.Series([1, 2, 3, 4, 2], index=ids)
    return frame, regime_sharpe, complexity


def test_simpler_alternative_and_narrow_slice_examples():
    frame, regime_sharpe, complexity = _assess_example()
    out = assess_configs(frame, regime_sharpe, complexity)
    assert out["pareto_efficient"].all()  # by construction of the example
    alt = out["simpler_alternative"]
    # ml (complexity 3, Sharpe 1.00): eq (complexity 1, 0.95 >= 0.90) is simpler and nearly as good
    assert alt["ml.confidence_weighted"] == "eq.weighted_average"
    # big (4, 1.25): mid (2, 1.30) and carry (2, 1.40) qualify; eq (0.95 < 1.15) does not;
    # equally simple -> the higher Sharpe wins
    assert alt["big.best_strategy"] == "carry.rank_average"
    # mid (2, 1.30): only eq is simpler and 0.95 < 1.20
    assert pd.isna(alt["mid.rank_average"]) and pd.isna(alt["eq.weighted_average"]) and pd.isna(alt["carry.rank_average"])
    # carry: great in CARRY (2.5 >= 1) and catastrophic in CRISIS (-1.5 <= -1): narrow; mid's
    # -0.5 is not catastrophic
    assert out["narrow_slice"].to_dict() == {
        "eq.weighted_average": False,
        "mid.rank_average": False,
        "ml.confidence_weighted": False,
        "big.best_strategy": False,
        "carry.rank_average": True,
    }
    assert out.loc[lambda f: f["selected"]].index.tolist() == ["eq.weighted_average", "mid.rank_average"]
    assert out.loc["carry.rank_average", "best_regime_sharpe"] == 2.5 and out.loc["carry.rank_average", "worst_regime_sharpe"] == -1.5


def test_simplest_alternative_is_chosen_and_nothing_selected_means_cash():
    frame, regime_sharpe, complexity = _assess_example()
    frame.loc["big.best_strategy", "sharpe_ratio"] = 0.9  # now eq (complexity 1) qualifies too
    out = assess_configs(frame, regime_sharpe, complexity)
    assert out.loc["big.best_strategy", "simpler_alternative"] == "eq.weighted_average"
    # every Sharpe <= min_sharpe: nothing selected, every budget 0 (cash)
    out = assess_configs(frame, regime_sharpe, complexity, min_sharpe=5.0)
    assert not out["selected"].any()
    assert (risk_budgets(out["annual_volatility"], out["selected"]) == 0).all()


def test_a_dominated_simpler_config_replaces_the_complex_one():
    # complex: Sharpe 1.00, better on every objective; simple: Sharpe 0.95, dominated but within 0.1
    frame = pd.DataFrame(
        {"sharpe_ratio": [1.00, 0.95], "max_drawdown": [-0.10, -0.12], "annual_volatility": [0.10, 0.11], "turnover": [1.0, 1.2]},
        index=["complex.best_strategy", "simple.weighted_average"],
    )
    out = assess_configs(frame, pd.DataFrame(index=frame.index), pd.Series({"complex.best_strategy": 4, "simple.weighted_average": 1}))
    assert out["pareto_efficient"].tolist() == [True, False]
    assert out.loc["complex.best_strategy", "simpler_alternative"] == "simple.weighted_average"
    assert out["selected"].tolist() == [False, True]


# --------------------------------------------------------------------------------------------
# Budgets
# --------------------------------------------------------------------------------------------


def test_risk_budgets_by_hand():
    vol = pd.Series([0.1, 0.2, 0.4, 0.05], index=list("abcd"))
    selected = pd.Series([True, True, True, False], index=list("abcd"))
    uncapped = risk_budgets(vol, selected, max_budget=1.0)
    assert np.allclose(uncapped.to_numpy(), [4 / 7, 2 / 7, 1 / 7, 0.0])
    capped = risk_budgets(vol, selected, max_budget=0.5)  # a: 0.5, the other 0.5 split 2:1
    assert np.allclose(capped.to_numpy(), [0.5, 1 / 3, 1 / 6, 0.0])
    short = risk_budgets(vol, selected.where(vol > 0.15, False), max_budget=0.4)  # 2 configs x 0.4
    assert np.allclose(short.to_numpy(), [0.0, 0.4, 0.4, 0.0])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.01, 1.0), st.booleans()), min_size=1, max_size=10),
    st.floats(0.05, 1.0),
)
def test_risk_budgets_sum_and_caps(rows, cap):
    vol = pd.Series([v for v, _ in rows])
    selected = pd.Series([s for _, s in rows])
    budgets = risk_budgets(vol, selected, max_budget=cap)
    n = int(selected.sum())
    assert (budgets[~selected] == 0).all()
    assert (budgets <= cap + 1e-15).all() and (budgets >= 0).all()
    assert budgets.sum() == pytest.approx(min(1.0, n * cap), abs=1e-12)
    # calmer configs never get less; uncapped budgets are proportional to 1 / vol
    chosen = budgets[selected]
    order = vol[selected].sort_values(kind="stable").index
    assert (np.diff(chosen[order].to_numpy()) <= 1e-12).all()
    free = chosen[chosen < cap - 1e-12]
    if len(free) > 1:
        ratio = free * vol[free.index]
        assert np.allclose(ratio, ratio.iloc[0])


def test_regime_budgets_penalise_losing_regimes_without_renormalising():
    budgets = pd.Series([0.6, 0.4], index=["a", "b"])
    regime_sharpe = pd.DataFrame({"CRISIS": [-0.2, 0.5], "CARRY": [1.0, np.nan]}, index=["a", "b"])
    out = regime_budgets(budgets, regime_sharpe, penalty=0.5)
    assert out.to_dict() == {"CRISIS": {"a": 0.3, "b": 0.4}, "CARRY": {"a": 0.6, "b": 0.4}}


# --------------------------------------------------------------------------------------------
# Walk-forward selection
# --------------------------------------------------------------------------------------------


def _sleeves(n_days: int = 330, seed: int = 7) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_days)
    ids = ["eq.weighted_average", "eq.rank_average", "ml.confidence_weighted", "mom.best_strategy"]
    drift = np.array([0.0004, 0.0005, 0.0006, 0.0001])
    vol = np.array([0.008, 0.010, 0.015, 0.012])
    returns = pd.DataFrame(rng.normal(drift, vol, size=(n_days, 4)), index=dates, columns=ids)
    returns.iloc[:90, 3] = np.nan  # mom starts later
    regimes = pd.Series(np.array(["CARRY", "NEUTRAL", "RISK_OFF", "CRISIS"])[(np.arange(n_days) // 15) % 4], index=dates)
    turnover = pd.DataFrame(rng.uniform(0.0, 0.1, size=(n_days, 4)), index=dates, columns=ids)
    complexity = pd.Series([1, 2, 3, 2], index=ids)
    return returns, complexity, regimes, turnover


def test_walk_forward_selection_shape_and_budgets():
    returns, complexity, regimes, turnover = _sleeves()
    sel = walk_forward_selection(returns, complexity, regimes, turnover, lookback=120, min_history=60)
    assert list(sel.columns) == list(SELECTION_COLUMNS)
    month_ends = returns.index.to_series().groupby(returns.index.to_period("M")).max()
    expected_as_of = [d for d in month_ends if returns.index.get_loc(d) + 1 >= 60]
    assert sorted(sel["as_of_date"].unique()) == expected_as_of
    assert (sel.groupby("as_of_date").size() == 4).all()
    for as_of, eff in zip(sel["as_of_date"], sel["effective_from"]):
        pos = returns.index.get_loc(as_of)
        assert (pd.isna(eff) and pos == len(returns) - 1) or eff == returns.index[pos + 1]
    # a row's metrics are metrics.py on the trailing window
    row = sel.iloc[-3]
    pos = returns.index.get_loc(row["as_of_date"])
    window = returns[row["config_id"]].iloc[pos + 1 - 120 : pos + 1]
    assert row["sharpe_ratio"] == pytest.approx(metrics.sharpe_ratio(window), abs=1e-12)
    assert row["max_drawdown"] == pytest.approx(metrics.max_drawdown(window), abs=1e-12)
    assert row["turnover"] == pytest.approx(turnover[row["config_id"]].iloc[pos + 1 - 120 : pos + 1].mean() * 252, abs=1e-12)
    # mom has < 60 returns at the first as-of dates: NaN metrics, never selected
    mom = sel[sel["config_id"] == "mom.best_strategy"].iloc[0]
    assert math.isnan(mom["sharpe_ratio"]) and not mom["selected"]
    # budgets: only selected configs, at most 1 per date, regime budgets never above the budget
    assert (sel.loc[~sel["selected"], "risk_budget"] == 0).all()
    assert (sel.groupby("as_of_date")["risk_budget"].sum() <= 1 + 1e-12).all()
    for label in BUDGET_REGIME_LABELS:
        assert (sel[f"budget_{label}"] <= sel["risk_budget"] + 1e-15).all()


def test_walk_forward_selection_is_point_in_time():
    returns, complexity, regimes, turnover = _sleeves()
    kwargs = {"lookback": 120, "min_history": 60}
    full = walk_forward_selection(returns, complexity, regimes, turnover, **kwargs)
    month_ends = set(full["as_of_date"])
    cuts = [returns.index[150], returns.index[200], *sorted(month_ends)[2:4]]  # mid-month and month ends
    for cut in cuts:
        part = walk_forward_selection(returns.loc[:cut], complexity, regimes.loc[:cut], turnover.loc[:cut], **kwargs)
        before = part[part["as_of_date"] < cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(before, full[full["as_of_date"] < cut].reset_index(drop=True))
        # the cut date itself: same decision; its next session is unknown in the cut data
        last = part[part["as_of_date"] == cut].reset_index(drop=True)
        assert last["effective_from"].isna().all()
        if cut in month_ends:
            same_day = full[full["as_of_date"] == cut].reset_index(drop=True)
            pd.testing.assert_frame_equal(last.drop(columns="effective_from"), same_day.drop(columns="effective_from"))


# --------------------------------------------------------------------------------------------
# The combined book
# --------------------------------------------------------------------------------------------


def _small_book():
    dates = pd.bdate_range("2022-03-28", periods=8)
    returns = pd.DataFrame(
        {
            "a.weighted_average": [0.01, -0.02, 0.03, np.nan, 0.01, -0.01, 0.02, 0.00],
            "b.rank_average": [0.00, 0.01, -0.01, 0.02, -0.03, 0.01, 0.01, 0.02],
            "c.best_strategy": [0.02, 0.02, 0.02, -0.05, 0.01, 0.00, -0.01, 0.01],
        },
        index=dates,
    )
    rows = []
    # as of dates[2] (effective dates[3]): a 0.6 / b 0.4; CRISIS halves a
    for cfg, budget, crisis in (("a.weighted_average", 0.6, 0.3), ("b.rank_average", 0.4, 0.4), ("c.best_strategy", 0.0, 0.0)):
        rows.append({"as_of_date": dates[2], "effective_from": dates[3], "config_id": cfg, "risk_budget": budget, "budget_CRISIS": crisis, "budget_CARRY": budget})
    # as of dates[5] (effective dates[6]): only c
    for cfg, budget in (("a.weighted_average", 0.0), ("b.rank_average", 0.0), ("c.best_strategy", 0.5)):
        rows.append({"as_of_date": dates[5], "effective_from": dates[6], "config_id": cfg, "risk_budget": budget, "budget_CRISIS": budget / 2, "budget_CARRY": budget})
    # a provisional selection (no next session): never applied
    rows.append({"as_of_date": dates[7], "effective_from": pd.NaT, "config_id": "a.weighted_average", "risk_budget": 1.0, "budget_CRISIS": 1.0, "budget_CARRY": 1.0})
    selection = pd.DataFrame(rows)
    regimes = pd.Series(["CARRY", "CARRY", "CARRY", "CRISIS", "CRISIS", "NEUTRAL", "CRISIS", "CARRY"], index=dates)
    return returns, selection, regimes


def _loop_book(returns, selection, defaults, regimes, regime_dependent):
    """Plain reference: for each day find the selection in force and sum budget × return."""
    out = []
    for i, date in enumerate(returns.index):
        live = selection[selection["effective_from"].notna() & (selection["effective_from"] <= date)]
        budgets = {}
        if live.empty:
            budgets = {c: 1 / len(defaults) for c in defaults}
            as_of = pd.NaT
        else:
            as_of = live["as_of_date"].max()
            column = "risk_budget"
            if regime_dependent and i > 0 and f"budget_{regimes.iloc[i - 1]}" in selection.columns:
                column = f"budget_{regimes.iloc[i - 1]}"
            for _, row in live[live["as_of_date"] == as_of].iterrows():
                budgets[row["config_id"]] = row[column]
        total = 0.0
        for cfg, budget in budgets.items():
            r = returns[cfg].iloc[i]
            total += budget * (0.0 if pd.isna(r) else r)
        out.append((date, total, as_of, sum(b > 0 for b in budgets.values()), sum(budgets.values())))
    return out


@pytest.mark.parametrize("regime_dependent", [False, True])
def test_combine_portfolio_equals_a_plain_loop(regime_dependent):
    returns, selection, regimes = _small_book()
    defaults = ["a.weighted_average", "b.rank_average"]
    book = combine_portfolio(returns, selection, defaults, regimes=regimes, regime_dependent=regime_dependent)
    assert list(book.columns) == list(PORTFOLIO_COLUMNS)
    expected = _loop_book(returns, selection, defaults, regimes, regime_dependent)
    equity = 1.0
    for (_, row), (date, ret, as_of, live, gross) in zip(book.iterrows(), expected):
        equity *= 1 + ret
        assert row["date"] == date
        assert row["return"] == pytest.approx(ret, abs=1e-15)
        assert row["equity"] == pytest.approx(equity, rel=1e-14)
        assert (pd.isna(row["selection_as_of"]) and pd.isna(as_of)) or row["selection_as_of"] == as_of
        assert row["live_sleeves"] == live and row["gross_budget"] == pytest.approx(gross, abs=1e-15)
    assert book["drawdown"].min() == pytest.approx(metrics.max_drawdown(book["return"]), abs=1e-15)
    if regime_dependent:  # dates[4] follows a CRISIS day: a is held at 0.3 instead of 0.6
        assert book["return"].iloc[4] == pytest.approx(0.3 * 0.01 + 0.4 * -0.03)


@pytest.mark.parametrize("regime_dependent", [False, True])
def test_contributions_sum_to_the_portfolio_return(regime_dependent):
    returns, selection, regimes = _small_book()
    defaults = ["c.best_strategy"]
    parts = contributions(returns, selection, defaults, regimes=regimes, regime_dependent=regime_dependent)
    book = combine_portfolio(returns, selection, defaults, regimes=regimes, regime_dependent=regime_dependent)
    assert list(parts.columns) == list(returns.columns) and (parts.index == returns.index).all()
    assert np.allclose(parts.sum(axis=1).to_numpy(), book["return"].to_numpy(), atol=1e-15)
    assert parts.iloc[0].to_dict() == {"a.weighted_average": 0.0, "b.rank_average": 0.0, "c.best_strategy": 0.02}


def test_walk_forward_feeds_combine_portfolio():
    returns, complexity, regimes, turnover = _sleeves()
    sel = walk_forward_selection(returns, complexity, regimes, turnover, lookback=120, min_history=60)
    book = combine_portfolio(returns, sel, ["eq.weighted_average", "eq.rank_average"], regimes=regimes, regime_dependent=True)
    first_effective = sel["effective_from"].min()
    assert book.loc[book["date"] < first_effective, "selection_as_of"].isna().all()
    assert book.loc[book["date"] >= first_effective, "selection_as_of"].notna().all()
    assert (book["gross_budget"] <= 1 + 1e-12).all() and np.isfinite(book["equity"]).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(61, 320), st.integers(1, 40), st.integers(1, 3), st.booleans())
def test_combine_portfolio_carried_from_a_previous_close_equals_the_full_replay(seed, cut, lookback, days, regime_dependent):
    """A run over a few sessions that reads only a window (starting ``lookback`` sessions before) and carries the
    equity and peak of the previous close gives the full replay's rows bit for bit, also with many configs
    (the budgets are summed in a fixed order, whatever the number of rows)."""
    from prometheus_assets.core.meta import portfolio_carry

    returns, complexity, regimes, turnover = _sleeves(n_days=330, seed=seed % 50)
    rng = np.random.default_rng(seed)
    extra = pd.DataFrame(rng.normal(0.0003, 0.01, size=(len(returns), 13)), index=returns.index, columns=[f"x{k:02d}.weighted_average" for k in range(13)])
    returns = pd.concat([returns, extra], axis=1)
    selection = walk_forward_selection(returns, complexity.reindex(returns.columns).fillna(2.0), regimes, None, lookback=120, min_history=60)
    defaults = ["eq.weighted_average", "eq.rank_average"]
    full = combine_portfolio(returns, selection, defaults, regimes=regimes, regime_dependent=regime_dependent)
    carry = portfolio_carry(full.iloc[:cut])
    assert carry.peak == max(1.0, full["equity"].iloc[:cut].max())
    end = min(cut + days, len(returns))
    window = returns.iloc[max(cut - lookback, 0) : end]
    part = combine_portfolio(window, selection, defaults, regimes=regimes.loc[window.index], regime_dependent=regime_dependent, carry=carry)
    pd.testing.assert_frame_equal(part, full.iloc[cut:end].reset_index(drop=True), check_exact=True)
    # the carry after the part continues the same way
    after = portfolio_carry(part, carry)
    assert after == portfolio_carry(full.iloc[:end])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 49), st.integers(0, 6), st.integers(0, 3))
def test_walk_forward_continued_from_an_anchor_equals_the_full_history(seed, which, extra_rows):
    """Continuing after a stored re-selection date with its anchor (sessions and non-NaN counts) over a window of
    ``lookback - 1`` sessions before it gives the full run's rows for every later date, bit for bit."""
    from prometheus_assets.core.meta import selection_anchors

    returns, complexity, regimes, turnover = _sleeves(n_days=420, seed=seed)
    returns.iloc[:200, 2] = np.nan  # a config whose history count matters (< min_history inside some windows)
    kwargs = {"lookback": 120, "min_history": 150}
    full = walk_forward_selection(returns, complexity, regimes, turnover, **kwargs)
    dates = sorted(full["as_of_date"].unique())
    at = dates[min(which, len(dates) - 2)]
    (anchor,) = selection_anchors(returns, [at])
    pos = returns.index.get_loc(at)
    window = returns.iloc[pos + 1 - (kwargs["lookback"] - 1) - extra_rows :]
    part = walk_forward_selection(window, complexity, regimes.loc[window.index], turnover.loc[window.index], anchor=anchor, **kwargs)
    pd.testing.assert_frame_equal(part, full[full["as_of_date"] > at].reset_index(drop=True), check_exact=True)
    # anchors continue too
    later = [d for d in dates if d > at]
    assert selection_anchors(window, later, anchor) == selection_anchors(returns, later)
    with pytest.raises(ValueError, match="needs"):
        walk_forward_selection(returns.iloc[pos - 10 :], complexity, regimes, turnover, anchor=anchor, **kwargs)


@pytest.mark.parametrize("regime_dependent", [False, True])
def test_sleeve_report_contributions_use_the_combined_books_budget_setting(home, regime_dependent):
    """The report's contribution chart sums to the stored combined book under either budget setting.

    Regression: the report always used the regime-independent budgets, so with
    ``regime_dependent_budgets`` its contributions did not add up to ``portfolio_returns``.
    """
    from prometheus_assets.assets import meta as meta_assets
    from prometheus_assets.assets import portfolio_state
    from prometheus_assets.core.meta import portfolio_carry
    from prometheus_assets.resources import StorageResource

    storage = StorageResource(home=str(home))
    returns, selection, regimes = _small_book()
    defaults = ["a.weighted_average", "b.rank_average"]
    storage.store().write_dated("regime_states", pd.DataFrame({"as_of_date": regimes.index, "regime_label": regimes.to_numpy()}),
                                regimes.index, date_column="as_of_date")
    book = combine_portfolio(returns, selection, defaults, regimes=regimes, regime_dependent=regime_dependent)
    portfolio_state.save(storage, list(returns.index), portfolio_state.PortfolioState(
        portfolio_carry(book, None), list(returns.columns), defaults, regime_dependent))
    parts = meta_assets._report_contributions(storage, returns, selection, defaults)
    np.testing.assert_allclose(parts.sum(axis=1).to_numpy(), book["return"].to_numpy(), rtol=0, atol=1e-15)
    if regime_dependent:  # the other setting's contributions would not add up
        other = contributions(returns, selection, defaults)
        assert not np.allclose(other.sum(axis=1).to_numpy(), book["return"].to_numpy(), atol=1e-15)


def test_regime_sharpes_count_a_return_under_the_label_in_force_when_it_was_earned():
    """A day's return is earned on positions set at the previous close, under the label known then (the label
    the regime budgets are applied with). Regression: the selection's regime Sharpes sliced by each day's own
    label, so with labels alternating daily a config that earns on the days after CRISIS and loses a little on
    the days after CARRY had its CRISIS budget cut and its CARRY budget kept: the wrong way round."""
    dates = pd.bdate_range("2021-01-04", periods=200)
    labels = pd.Series(np.where(np.arange(200) % 2 == 0, "CRISIS", "CARRY"), index=dates)
    after_crisis = (labels.shift(1) == "CRISIS").to_numpy()
    wiggle = 0.01 * np.where((np.arange(200) // 2) % 2 == 0, 1.0, -1.0)
    returns = pd.DataFrame({"a.equal": np.where(after_crisis, 0.003, -0.0005) + wiggle, "b.equal": 0.0001 + 0.5 * wiggle}, index=dates)
    sel = walk_forward_selection(returns, pd.Series({"a.equal": 1.0, "b.equal": 1.0}), labels, None, lookback=120, min_history=60)
    a = sel[sel["as_of_date"] == sel["as_of_date"].max()].set_index("config_id").loc["a.equal"]
    assert a["selected"] and not a["narrow_slice"]
    assert a["budget_CRISIS"] == a["risk_budget"] > 0  # it earns after CRISIS: full budget there
    assert a["budget_CARRY"] == pytest.approx(0.5 * a["risk_budget"])  # and loses after CARRY: halved
    window = returns["a.equal"].iloc[-120:]
    in_force = labels.shift(1).reindex(window.index)
    assert a["best_regime_sharpe"] == pytest.approx(metrics.sharpe_ratio(window[in_force == "CRISIS"]), rel=1e-12)


def test_a_regime_spent_in_cash_does_not_make_a_config_a_narrow_slice():
    """A config in cash through a regime has only its exit costs there: no evidence about that regime.
    Regression: their Sharpe (a few -0.035% days among zeros, about -2) counted as "catastrophic" and, with a
    Sharpe above 1 elsewhere, flagged the best book (ALPHA_COMBO in CRISIS) a narrow slice."""
    dates = pd.bdate_range("2021-01-04", periods=200)
    labels = pd.Series(np.where((np.arange(200) // 25) % 2 == 0, "CARRY", "CRISIS"), index=dates)
    in_force = labels.shift(1)
    wiggle = 0.01 * np.where(np.arange(200) % 2 == 0, 1.0, -1.0)
    a = np.where(in_force == "CRISIS", 0.0, 0.002 + wiggle)  # in cash in CRISIS ...
    a[((in_force == "CRISIS") & (in_force.shift(1) != "CRISIS")).to_numpy()] = -0.00035  # ... but for the exit's costs
    returns = pd.DataFrame({"a.equal": a, "b.equal": 0.0001 + 0.5 * wiggle}, index=dates)
    sel = walk_forward_selection(returns, pd.Series({"a.equal": 1.0, "b.equal": 1.0}), labels, None, lookback=120, min_history=60)
    row = sel[sel["as_of_date"] == sel["as_of_date"].max()].set_index("config_id").loc["a.equal"]
    window = pd.Series(a, index=dates).iloc[-120:]
    crisis = window[in_force.reindex(window.index) == "CRISIS"]
    assert len(crisis) >= 20 and (crisis != 0).sum() < 20 and metrics.sharpe_ratio(crisis) < -1  # the cost-only Sharpe
    assert row["worst_regime_sharpe"] > 1 and not row["narrow_slice"] and row["selected"]
    assert row["budget_CRISIS"] == row["risk_budget"]  # not a losing regime: no cut
