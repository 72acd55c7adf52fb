"""Pictures for asset metadata: matplotlib figures embedded as base64 PNG in Markdown.

Dagster has no image metadata type; a ``data:`` URI inside ``MetadataValue.md`` renders in the UI.
"""

from __future__ import annotations

import base64
import io

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

REGIME_COLOURS = {"CRISIS": "#c0392b", "RISK_OFF": "#e67e22", "NEUTRAL": "#95a5a6", "CARRY": "#27ae60"}


def png_markdown(fig, title: str) -> dg.MetadataValue:
    """Render ``fig`` as an embedded PNG (and close it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/png;base64,{data})")


def regime_timeline(dates: pd.Series, labels: pd.Series, market_index: pd.Series | None = None) -> dg.MetadataValue:
    """Coloured bands of the regime label over time, with the market index on top when given."""
    fig, ax = plt.subplots(figsize=(11, 3))
    frame = pd.DataFrame({"date": pd.to_datetime(dates), "label": labels}).dropna().sort_values("date")
    if not frame.empty:
        change = frame["label"] != frame["label"].shift()
        starts = frame.loc[change, ["date", "label"]].reset_index(drop=True)
        ends = list(starts["date"].iloc[1:]) + [frame["date"].iloc[-1]]
        for (start, label), end in zip(starts.itertuples(index=False), ends):
            ax.axvspan(start, end, color=REGIME_COLOURS.get(label, "#dddddd"), alpha=0.55, lw=0)
    if market_index is not None and len(market_index):
        ax2 = ax.twinx()
        ax2.plot(market_index.index, market_index.values, color="black", lw=0.8)
        ax2.set_yscale("log")
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


def bar_chart(values: pd.Series, title: str) -> dg.MetadataValue:
    """A bar chart of a labelled series."""
    fig, ax = plt.subplots(figsize=(7, 3))
    values.plot.bar(ax=ax)
    ax.set_title(title)
    return png_markdown(fig, title)
