"""Pictures for asset metadata: matplotlib figures embedded as base64 PNG in Markdown.

Dagster has no image metadata type; a ``data:`` URI inside ``MetadataValue.md`` renders in the UI.
"""

from __future__ import annotations

import base64
import io

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REGIME_COLOURS = {"CRISIS": "#c0392b", "RISK_OFF": "#e67e22", "NEUTRAL": "#95a5a6", "CARRY": "#27ae60"}
#: Most points a time-series line or area is drawn with: about a year of daily points, so a curve
#: over 33 years costs what one over a year costs to render (a 33-year daily stack plot took ~1 s;
#: the EOD run draws several). That is a point every ~6 weeks over the bundled history, with each
#: drawdown bucket drawn at its trough.
MAX_PLOT_POINTS = 300


def thin(frame: pd.DataFrame, how: str = "last", max_points: int = MAX_PLOT_POINTS) -> pd.DataFrame:
    """At most ``max_points`` rows of a date-indexed frame, for drawing.

    The rows are cut into equal consecutive buckets; each bucket is drawn as its last row
    (``how="last"``: levels such as equity or cumulative sums, exact at the dates kept) or as
    its column-wise minimum dated at its last row (``how="min"``: drawdowns, so no trough is
    lost). The last row is always kept. A frame with no more rows than ``max_points`` is
    returned unchanged. (Hand-written: matplotlib draws every vertex it is given and pandas
    has no count-based downsampler.)
    """
    n = len(frame)
    if n <= max_points:
        return frame
    step = -(-n // max_points)
    from_end = (n - 1 - np.arange(n)) // step  # buckets counted from the end, so the last row closes one
    ends = np.flatnonzero((n - 1 - np.arange(n)) % step == 0)
    if how == "last":
        return frame.iloc[ends]
    if how == "min":
        return frame.groupby(from_end.max() - from_end, sort=True).min().set_axis(frame.index[ends])
    raise ValueError(f"how must be 'last' or 'min', not {how!r}")


#: Margins (inches) around the axes of a figure saved with fixed margins: room for the tick
#: labels and axis label on the left and at the bottom, the title on top, and on the right the
#: ticks and label of a twin axis when there is one.
MARGINS_IN = {"left": 0.85, "bottom": 0.5, "top": 0.4, "right": 0.25, "right_twin": 0.9}


def fixed_margins(fig) -> None:
    """Place ``fig``'s axes inside :data:`MARGINS_IN` and their titles at a fixed height (no draw needed, unlike ``bbox_inches="tight"``)."""
    width, height = fig.get_size_inches()
    twin = any(ax.yaxis.get_label_position() == "right" for ax in fig.axes)
    right = MARGINS_IN["right_twin"] if twin else MARGINS_IN["right"]
    fig.subplots_adjust(left=MARGINS_IN["left"] / width, right=1 - right / width,
                        bottom=MARGINS_IN["bottom"] / height, top=1 - MARGINS_IN["top"] / height)
    for ax in fig.axes:
        if ax.get_title():
            # The title at a fixed height above the axes (y=1.0 is where matplotlib starts). Left to
            # itself it measures the bounding box of every tick label of the axes and its twins to
            # lift the title over any drawn above the axes (none are here): ~40% of the sleeve
            # report's drawing time (profiled).
            ax.set_title(ax.get_title(), y=1.0)


def png_base64(fig) -> str:
    """Render ``fig`` as a base64 PNG (and close it), its axes placed with fixed margins (:func:`fixed_margins`).

    Fixed margins, not ``bbox_inches="tight"``: that crops to what is drawn by drawing the figure
    twice, ~0.2 s more per figure here (measured: 0.49 s against 0.27 s for a 33-year equity
    figure), and an end-of-day run saves 13 figures. So every figure keeps its labels within the
    margins (tested on realistic data).
    """
    buffer = io.BytesIO()
    fixed_margins(fig)
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def png_markdown(fig, title: str) -> dg.MetadataValue:
    """Render ``fig`` as an embedded PNG in Markdown metadata (and close it)."""
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/png;base64,{png_base64(fig)})")


def log_y(ax) -> None:
    """A log-scaled y axis with its major (labelled) ticks only.

    The minor ticks of a log axis are ~8 per decade, each a matplotlib tick object (two lines and
    two texts, the costliest artists to build): 32 of the 66 ticks of the equity figure.
    """
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(mticker.NullLocator())


def label_bands(labels: pd.Series) -> pd.DataFrame:
    """The runs of equal consecutive labels of a date-indexed series: start, end, label.

    A run ends where the next one starts (the last run at the last date), so the bands tile the
    span without gaps.
    """
    labels = labels.sort_index(kind="stable")
    starts = labels[labels != labels.shift()]
    ends = list(starts.index[1:]) + [labels.index[-1]] if len(starts) else []
    return pd.DataFrame({"start": pd.DatetimeIndex(starts.index), "end": pd.DatetimeIndex(ends), "label": starts.to_numpy()})


def shade_bands(ax, labels: pd.Series, colours: dict[str, str], alpha: float, skip: tuple[str, ...] = ()) -> None:
    """Shade the full height of ``ax`` in each label's colour over its runs (:func:`label_bands`).

    One collection per label rather than a patch per run: 33 years hold ~140 runs, which drew
    as ~140 separate patches.
    """
    ax.xaxis_date()  # (dates on the axis even when no other artist draws dates)
    bands = label_bands(labels)
    for label, runs in bands.groupby("label", sort=True):
        if label in skip:
            continue
        left = mdates.date2num(runs["start"])
        ax.broken_barh(list(zip(left, mdates.date2num(runs["end"]) - left)), (0, 1), transform=ax.get_xaxis_transform(),
                       color=colours.get(label, "#dddddd"), alpha=alpha, lw=0)


def regime_timeline(dates: pd.Series, labels: pd.Series, market_index: pd.Series | None = None) -> dg.MetadataValue:
    """Coloured bands of the regime label over time, with the market index on top when given."""
    fig, ax = plt.subplots(figsize=(11, 3))
    frame = pd.DataFrame({"date": pd.to_datetime(dates), "label": labels}).dropna().sort_values("date")
    if not frame.empty:
        shade_bands(ax, frame.set_index("date")["label"], REGIME_COLOURS, alpha=0.55)
    if market_index is not None and len(market_index):
        ax2 = ax.twinx()
        ax2.plot(market_index.index, market_index.values, color="black", lw=0.8)
        log_y(ax2)
        ax2.set_ylabel("market (log)")
    ax.set_yticks([])
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.55) for c in REGIME_COLOURS.values()]
    ax.legend(handles, list(REGIME_COLOURS), loc="upper left", ncol=4, fontsize=8)
    return png_markdown(fig, "Regime timeline")


def stacked_counts(counts: pd.DataFrame, title: str) -> dg.MetadataValue:
    """A stacked area chart of category counts over time (index dates, one column per category)."""
    fig, ax = plt.subplots(figsize=(11, 3))
    if not counts.empty:
        ax.stackplot(counts.index, counts.T.values, labels=list(counts.columns), alpha=0.8)
        ax.legend(loc="upper left", ncol=len(counts.columns), fontsize=8)
    ax.set_title(title)
    return png_markdown(fig, title)


def grouped_bar_chart(values: pd.DataFrame, title: str, ylabel: str) -> dg.MetadataValue:
    """Bars grouped by row label (on the x axis), one bar per column side by side, named in the legend.

    E.g. the IC of each model (columns) in each regime (rows). The row labels are drawn level, so
    they must be short (category names): the figure is saved with fixed margins.
    """
    fig, ax = plt.subplots(figsize=(9, 3.2))
    values.plot.bar(ax=ax, rot=0, width=0.8)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.3 * (high - low))  # headroom: the legend's row sits above the tallest bar
    ax.legend(fontsize=7, ncol=min(max(len(values.columns), 1), 6), loc="upper left")
    return png_markdown(fig, title)


def equity_drawdown_figure(equity: pd.DataFrame, title: str = "Equity and drawdown"):
    """Equity curves (log scale) above their drawdowns; ``equity`` is dates × books."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for name in equity.columns:
        curve = equity[name].dropna()
        if curve.empty:
            continue
        drawn = thin(curve.to_frame())[name]
        top.plot(drawn.index, drawn.values, lw=0.9, label=name)
        drawdown = thin((curve / curve.cummax() - 1).to_frame(), how="min")[name]
        bottom.plot(drawdown.index, drawdown.values, lw=0.7)
    log_y(top)
    top.set_title(title)
    if top.get_legend_handles_labels()[1]:  # (no legend while no book has a return yet)
        top.legend(loc="upper left", fontsize=8, ncol=4)
    bottom.set_ylabel("drawdown")
    return fig


def allocation_figure(held: pd.DataFrame, title: str = "Allocation by sector over time (month-end gross weight)"):
    """One panel per book: gross weight by sector at each month end (``held``: target_portfolios rows)."""
    books = sorted(held["book"].unique()) if len(held) else []
    fig, axes = plt.subplots(max(len(books), 1), 1, figsize=(11, 2.2 * max(len(books), 1)), sharex=True, squeeze=False)
    if len(held):
        # only each book's last held date of each month is drawn: cut to those rows before pivoting
        days = held[["book", "date"]].drop_duplicates()
        month_ends = days.groupby([days["book"], pd.DatetimeIndex(days["date"]).to_period("M")])["date"].max()
        held = held.merge(pd.DataFrame({"book": month_ends.index.get_level_values(0), "date": month_ends.to_numpy()}), on=["book", "date"])
    # one sector list for every panel: a sector has the same colour in each, and the legend names them all
    held = held.assign(gross=held["target_weight"].abs(), sector=held["sector"].fillna("UNKNOWN"))
    sectors = sorted(held["sector"].unique())
    for ax, book in zip(axes[:, 0], books):
        rows = held[held["book"] == book]
        wide = rows.pivot_table(index="date", columns="sector", values="gross", aggfunc="sum").reindex(columns=sectors).fillna(0.0)
        monthly = wide.resample("ME").last().fillna(0.0)
        ax.stackplot(monthly.index, monthly.T.values, labels=list(monthly.columns), alpha=0.85)
        ax.set_ylabel(book, fontsize=8)
    if books:
        axes[0, 0].legend(loc="upper left", fontsize=7, ncol=6)
    axes[0, 0].set_title(title)
    return fig


def contribution_figure(contributions: pd.DataFrame, title: str = "Contribution to the combined book (cumulative)"):
    """Cumulative sum of each sleeve's budget-weighted daily return (dates × config)."""
    fig, ax = plt.subplots(figsize=(11, 3.5))
    cumulative = contributions.fillna(0.0).cumsum()
    cumulative = thin(cumulative.loc[:, (cumulative != 0).any()])
    if not cumulative.empty:
        ax.stackplot(cumulative.index, cumulative.clip(lower=0).T.values, labels=list(cumulative.columns), alpha=0.8)
        ax.stackplot(cumulative.index, cumulative.clip(upper=0).T.values, alpha=0.8)
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    ax.set_title(title)
    return fig


def alpha_scatter_figure(points: pd.DataFrame, title: str = "Alpha at rebalance vs realised forward return"):
    """Scatter of a book's alpha against the realised return that followed (columns alpha, realised, book)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for book, rows in points.groupby("book"):
        ax.scatter(rows["alpha"], rows["realised"], s=4, alpha=0.35, label=str(book))
    ax.axhline(0, color="black", lw=0.5)
    ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel("combined alpha")
    ax.set_ylabel("realised forward return")
    if len(points):  # (no book has a point yet early in a history: a legend of nothing warned)
        ax.legend(fontsize=7, markerscale=3)
    ax.set_title(title)
    return fig


def allocation_over_time(held: pd.DataFrame) -> dg.MetadataValue:
    return png_markdown(allocation_figure(held), "Allocation over time")


def html_report(title: str, sections: list[tuple[str, str, object]]) -> str:
    """A static HTML page: ``sections`` are (heading, html text, figure or None)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>", f"<h1>{title}</h1>"]
    for heading, text, fig in sections:
        parts.append(f"<h2>{heading}</h2>{text}")
        if fig is not None:
            parts.append(f"<img alt='{heading}' src='data:image/png;base64,{png_base64(fig)}'/>")
    parts.append("</body></html>")
    return "\n".join(parts)


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> dg.MetadataValue:
    """A small frame as a Markdown table (floats rounded)."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return dg.MetadataValue.md("\n".join(lines))


ALLOCATOR_COLOURS = {"NORMAL": "#ffffff", "ELEVATED": "#f9e79f", "STRESS": "#f0b27a", "CRISIS": "#e74c3c"}


def regime_shaded_equity_figure(equity: pd.DataFrame, regimes: pd.Series, title: str = "Baseline vs scaled"):
    """Equity curves (log scale) over bands of the allocator regime."""
    fig, ax = plt.subplots(figsize=(11, 3.5))
    labels = regimes.dropna()
    if len(labels):
        shade_bands(ax, labels, ALLOCATOR_COLOURS, alpha=0.6, skip=("NORMAL",))
    drawn = thin(equity)
    for name in equity.columns:
        ax.plot(drawn.index, drawn[name].values, lw=0.9, label=name)
    log_y(ax)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title)
    return fig


def quantile_bands(frame: pd.DataFrame, columns: list[str], title: str, freq: str = "QE") -> dg.MetadataValue:
    """Per column, the 10–90% band and median of its values per period (``frame`` has a ``date`` column)."""
    fig, axes = plt.subplots(len(columns), 1, figsize=(11, 2.2 * len(columns)), sharex=True, squeeze=False)
    data = frame.assign(date=pd.to_datetime(frame["date"])).set_index("date") if len(frame) else None
    for ax, col in zip(axes[:, 0], columns):
        if data is not None:
            # numeric even when every value is missing (an all-None column is object dtype)
            grouped = pd.to_numeric(data[col], errors="coerce").astype("float64").resample(freq)
            q = pd.DataFrame({"p10": grouped.quantile(0.1), "p50": grouped.median(), "p90": grouped.quantile(0.9)}).dropna()
            ax.fill_between(q.index, q["p10"], q["p90"], alpha=0.3, lw=0)
            ax.plot(q.index, q["p50"], lw=1.0)
        ax.set_ylabel(col, fontsize=8)
    axes[0, 0].set_title(title)
    return png_markdown(fig, title)
