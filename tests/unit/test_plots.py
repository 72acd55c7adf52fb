"""Metadata plots on the inputs a short history gives them."""

import pandas as pd

from prometheus_assets.assets import plots


def test_quantile_bands_with_a_column_of_missing_values():
    # edge_layer on a few months of synthetic data: max_alloc had no value yet (an object column of None)
    days = pd.bdate_range("2018-01-01", "2018-06-29")
    frame = pd.DataFrame({"date": days, "pm_strength_applied": 1.0, "max_alloc": [None] * len(days)})
    assert frame["max_alloc"].dtype == object
    value = plots.quantile_bands(frame, ["pm_strength_applied", "max_alloc"], "bands")
    assert "data:image/png;base64," in value.value


from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), max_points=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_thin_keeps_bucket_ends_and_troughs(n, max_points, seed):
    # reference: the buckets cut from the end by a plain loop
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)}, index=pd.bdate_range("2000-01-03", periods=n))
    last, low = plots.thin(frame, max_points=max_points), plots.thin(frame, "min", max_points=max_points)
    if n <= max_points:
        assert last is frame and low is frame
        return
    step = -(-n // max_points)
    buckets, stop = [], n
    while stop > 0:
        buckets.insert(0, (max(stop - step, 0), stop))
        stop -= step
    assert len(last) == len(buckets) <= max_points
    ends = [frame.index[b - 1] for _, b in buckets]
    pd.testing.assert_frame_equal(last, frame.loc[ends], check_freq=False)
    expected = pd.DataFrame([frame.iloc[a:b].min() for a, b in buckets], index=pd.DatetimeIndex(ends, freq=None))
    pd.testing.assert_frame_equal(low, expected, check_freq=False)
    assert last.index[-1] == frame.index[-1] and low["a"].min() == frame["a"].min()


def test_report_figures_draw_a_long_history():
    # 33 years of daily equity and contributions: thinned for drawing, the figures still render
    days = pd.bdate_range("1990-01-02", "2022-12-28")
    rng = np.random.default_rng(1)
    equity = pd.DataFrame((1 + rng.normal(0, 0.01, size=(len(days), 3))).cumprod(axis=0), index=days, columns=["A", "B", "C"])
    for fig in (plots.equity_drawdown_figure(equity), plots.contribution_figure(equity.pct_change())):
        assert plots.png_base64(fig)
    top = plots.equity_drawdown_figure(equity).axes[0]
    assert all(len(line.get_xdata()) <= plots.MAX_PLOT_POINTS for line in top.get_lines())
