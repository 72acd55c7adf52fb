"""IC machinery against direct computations (scipy's spearmanr, hand-compounded returns)."""

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st
from scipy.stats import spearmanr

from prometheus_assets.core.evaluation import forward_returns, ic_summary, rank_ic


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(5, 30), st.integers(1, 8))
def test_rank_ic_equals_direct_spearman(seed, n_names, n_dates):
    rng = np.random.default_rng(seed)
    rows = []
    for d in pd.bdate_range("2020-01-01", periods=n_dates):
        for s in range(n_names):
            rows.append((d, f"S{s}", float(rng.integers(0, 5)), float(rng.normal())))  # ties in scores
    frame = pd.DataFrame(rows, columns=["date", "symbol", "score", "forward_return"])
    ic = rank_ic(frame, frame)
    for d, g in frame.groupby("date"):
        if g["score"].nunique() > 1:
            assert abs(ic[d] - spearmanr(g["score"], g["forward_return"]).statistic) < 1e-12


def test_ic_summary_by_hand():
    s = ic_summary(pd.Series([0.1, 0.3, -0.1, 0.1]))
    assert abs(s["ic_mean"] - 0.1) < 1e-15 and s["hit_rate"] == 0.75 and s["n_dates"] == 4
    assert abs(s["t_stat"] - 0.1 / np.std([0.1, 0.3, -0.1, 0.1], ddof=1) * 2) < 1e-12


def test_forward_returns_compound_the_next_h_days():
    r = pd.DataFrame({"A": [0.1, 0.2, -0.1, 0.05]}, index=pd.bdate_range("2021-01-04", periods=4))
    out = forward_returns(r, 2).set_index("date")["forward_return"]
    assert np.isclose(out.iloc[0], 1.2 * 0.9 - 1) and np.isclose(out.iloc[1], 0.9 * 1.05 - 1)
    assert len(out) == 2  # the last two dates have no full horizon ahead


def test_forward_returns_are_bit_identical_when_the_history_is_cut():
    # The value at t may depend on r_{t+1} .. r_{t+H} only, not (by rounding) on later sessions:
    # a backwards rolling sum carried an error from the end of the data and moved 1990 values
    # when the bundled history was cut at 2010 (the look-ahead proof on sleeve_rolling_metrics).
    rng = np.random.default_rng(7)
    r = pd.DataFrame(rng.normal(0, 0.02, (3000, 6)), index=pd.bdate_range("2000-01-03", periods=3000), columns=list("ABCDEF"))
    r.iloc[100, 2] = np.nan
    for h in (1, 5, 20, 60):
        full = forward_returns(r, h).set_index(["date", "symbol"])["forward_return"]
        for cut in (400, 1777, 2999):
            short = forward_returns(r.iloc[:cut], h).set_index(["date", "symbol"])["forward_return"]
            assert len(short) > 0 and short.equals(full.loc[short.index]), (h, cut)
        # the definition: Π(1 + r_{t+k}) − 1 over the next h sessions, NaN across a missing return
        t = 10
        expected = np.prod(1 + r.iloc[t + 1 : t + 1 + h]["A"]) - 1
        assert abs(full.loc[(r.index[t], "A")] - expected) < 1e-14
        assert (r.index[100 - 1], "C") not in full.index


_cell = st.one_of(st.just(np.nan), st.sampled_from([-1.0, 0.0, 0.5, 2.0]), st.floats(-5, 5, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6).flatmap(lambda n: st.tuples(
    st.lists(st.lists(_cell, min_size=n, max_size=n), min_size=1, max_size=8),
    st.lists(st.lists(st.lists(_cell, min_size=n, max_size=n), min_size=1, max_size=8), min_size=1, max_size=4))))
def test_row_ranks_reuse_equals_ranking_again(case):
    """RowRanks under a sequence of partner panels (so of joint masks) gives, bit for bit, what ranking afresh gives."""
    from prometheus_assets.core.evaluation import RowRanks, rank_ic_wide

    rows, partners = case
    values = np.array(rows, dtype="float64")
    index = pd.RangeIndex(len(values))
    cached = RowRanks(values)
    for partner in partners:
        other = np.array((partner * len(values))[: len(values)], dtype="float64")  # a partner of the same shape
        mask = np.isfinite(values) & np.isfinite(other)
        fresh = pd.DataFrame(np.where(mask, values, np.nan)).rank(axis=1, method="average").to_numpy()
        assert np.array_equal(cached(mask), fresh, equal_nan=True)
        a = rank_ic_wide(values, other, index, min_names=2)
        b = rank_ic_wide(RowRanks(values), RowRanks(other), index, min_names=2)
        assert a.index.equals(b.index) and np.array_equal(a.to_numpy(), b.to_numpy())
