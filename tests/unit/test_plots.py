"""Metadata plots on the inputs a short history gives them."""

import numpy as np
import pandas as pd
import pytest

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


def _drawn_past_edges(fig) -> list[str]:
    """The figure edges its drawn content (as ``bbox_inches="tight"`` measures it) reaches past."""
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches; only what is drawn (ticks in view)
    width, height = fig.get_size_inches()
    slack = 1 / fig.dpi
    edges = {"left": box.x0 < -slack, "bottom": box.y0 < -slack, "right": box.x1 > width + slack, "top": box.y1 > height + slack}
    return [edge for edge, past in edges.items() if past]


def test_fixed_margins_keep_every_label_of_every_figure_inside():
    # the figures are saved with fixed margins instead of bbox_inches="tight" (one draw, not two):
    # on realistic data no tick label, axis label, title or legend may be cut off
    import matplotlib.pyplot as plt

    days = pd.bdate_range("1990-01-02", "2022-12-28")
    rng = np.random.default_rng(2)
    equity = pd.DataFrame((1 + rng.normal(0.0004, 0.012, size=(len(days), 4))).cumprod(axis=0), index=days,
                          columns=["momentum_us", "value_us", "quality_us", "COMBINED"])
    month_ends = pd.DatetimeIndex(pd.Series(days).groupby(days.to_period("M")).max().to_numpy())
    held = pd.DataFrame([(d, b, f"S{i}", w, sector) for d in month_ends for b in ("momentum_us", "value_us")
                         for i, (w, sector) in enumerate([(0.1, "Energy"), (-0.05, "Information Technology"), (0.2, "Health Care")])],
                        columns=["date", "book", "symbol", "target_weight", "sector"])
    labels = pd.Series(np.array(["CRISIS", "RISK_OFF", "NEUTRAL", "CARRY"])[(np.arange(len(days)) // 300) % 4])
    allocator = pd.Series(np.array(["NORMAL", "ELEVATED", "STRESS", "CRISIS"])[(np.arange(len(days)) // 200) % 4], index=days)
    quarterly = pd.DataFrame({"date": days, "pm_strength_applied": rng.uniform(0.5, 1.5, len(days)), "max_alloc": rng.uniform(0, 0.1, len(days))})
    figures = {
        "equity": plots.equity_drawdown_figure(equity),
        "allocation": plots.allocation_figure(held),
        "contribution": plots.contribution_figure(equity.pct_change()),
        "scatter": plots.alpha_scatter_figure(pd.DataFrame({"alpha": rng.normal(size=500), "realised": rng.normal(0, 0.05, 500), "book": "momentum_us"})),
        "allocator": plots.regime_shaded_equity_figure(equity[["momentum_us", "COMBINED"]], allocator),
    }
    # the builders that render themselves: catch the figure they save
    saved = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "png_base64", lambda fig: saved.append(fig) or "")
        plots.regime_timeline(pd.Series(days), labels, pd.Series(equity["COMBINED"].to_numpy() * 300, index=days))
        plots.quantile_bands(quarterly, ["pm_strength_applied", "max_alloc"], "Sizing multipliers per quarter")
        plots.stacked_counts(pd.DataFrame({"A": 100.0, "B": 200.0, "C": 150.0}, index=month_ends), "Soft-target classes")
        ic = pd.DataFrame(rng.normal(0, 0.05, size=(5, 6)), index=["CARRY", "CRISIS", "NEUTRAL", "RISK_OFF", "UNKNOWN"],
                          columns=[f"{h}d {k}" for h in (5, 20, 60) for k in ("hgb", "ridge")])
        plots.grouped_bar_chart(ic, "Out-of-sample rank IC by regime", "mean rank IC")
    figures.update({f"self-rendered {i}": fig for i, fig in enumerate(saved)})
    assert len(figures) == 9
    for name, fig in figures.items():
        plots.fixed_margins(fig)
        assert _drawn_past_edges(fig) == [], name
        plt.close(fig)


def test_label_bands_tile_the_span_and_shade_one_collection_per_label():
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    days = pd.bdate_range("2020-03-02", periods=7)
    labels = pd.Series(["NORMAL", "STRESS", "STRESS", "NORMAL", "CRISIS", "STRESS", "STRESS"], index=days)
    bands = plots.label_bands(labels.iloc[::-1])  # (any order: sorted by date first)
    assert bands["label"].tolist() == ["NORMAL", "STRESS", "NORMAL", "CRISIS", "STRESS"]
    assert bands["start"].tolist() == [days[0], days[1], days[3], days[4], days[5]]
    assert bands["end"].tolist() == [days[1], days[3], days[4], days[5], days[6]]  # each run ends where the next starts
    fig, ax = plt.subplots()
    plots.shade_bands(ax, labels, plots.ALLOCATOR_COLOURS, alpha=0.6, skip=("NORMAL",))
    shaded = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(shaded) == 2  # CRISIS and STRESS, NORMAL left clear
    widths = sorted(round(float(np.ptp(p.vertices[:, 0])), 6) for c in shaded for p in c.get_paths())
    assert widths == [1.0, 2.0, 3.0]  # in days: STRESS Mon→Tue, STRESS Tue→Thu, CRISIS Fri→Mon
    plt.close(fig)


def test_allocation_panels_give_a_sector_one_colour_and_the_legend_names_every_sector():
    """Books holding different sectors: every panel stacks the same sector list, so a colour means one sector throughout."""
    import matplotlib.pyplot as plt

    month_ends = pd.DatetimeIndex(["2022-01-31", "2022-02-28", "2022-03-31"])
    held = pd.DataFrame([(d, "A", "X", 0.3, "Energy") for d in month_ends]
                        + [(d, "B", f"S{i}", 0.2, sector) for d in month_ends for i, sector in enumerate(["Financials", "Utilities"])],
                        columns=["date", "book", "symbol", "target_weight", "sector"])
    fig = plots.allocation_figure(held)
    colours = []
    for ax in fig.axes:
        stacks = ax.collections
        assert len(stacks) == 3  # Energy, Financials, Utilities in each panel (zero where the book holds none)
        colours.append([tuple(c.get_facecolor()[0]) for c in stacks])
    assert colours[0] == colours[1]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["Energy", "Financials", "Utilities"]
    plt.close(fig)


def test_alpha_scatter_without_points_draws_no_legend_and_no_warning():
    """Early in a history no book has a scored rebalance yet: the figure is empty, without a warning."""
    import warnings

    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.alpha_scatter_figure(pd.DataFrame({"alpha": [], "realised": [], "book": []}))
    assert fig.axes[0].get_legend() is None
    plt.close(fig)
    fig = plots.alpha_scatter_figure(pd.DataFrame({"alpha": [0.1, -0.2], "realised": [0.01, 0.0], "book": ["a", "b"]}))
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b"]
    plt.close(fig)


def test_equity_figure_without_a_curve_draws_no_legend_and_no_warning():
    """Before any book trades (its returns start on its first trade) the equity figure has no curve to name."""
    import warnings

    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.equity_drawdown_figure(pd.DataFrame({"a": [float("nan")] * 3}, index=pd.bdate_range("2024-01-01", periods=3)))
    assert fig.axes[0].get_legend() is None
    plt.close(fig)
