"""Entry context of closed trades: what was true when a round trip was opened.

The edge-sizing layer learns from trades by context, so each closed trade carries the state of
the world at its entry close, all known at that close: the market regime label, the
instrument's soft-target class, its sector, its volatility bucket (tercile of trailing
60-session volatility across the day's instruments) and the book's alpha for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_assets.core.frames import trailing_frame_moments

VOLATILITY_WINDOW = 60
VOLATILITY_BUCKETS: tuple[str, ...] = ("low", "mid", "high")


def volatility_buckets(returns: pd.DataFrame, window: int = VOLATILITY_WINDOW) -> pd.DataFrame:
    """Per (date, symbol): 'low' / 'mid' / 'high' tercile of trailing ``window``-session volatility.

    The volatility is :func:`~prometheus_assets.core.frames.trailing_frame_moments` (start-invariant:
    a run that reads a lookback window labels a day exactly as a full-history run does).
    """
    vol = trailing_frame_moments(returns, window, window)[1]
    pct = vol.rank(axis=1, pct=True).to_numpy(dtype=float)
    labels = np.select([pct <= 1 / 3, pct <= 2 / 3, pct <= 1.0], list(VOLATILITY_BUCKETS), default="")
    return pd.DataFrame(np.where(np.isnan(pct), None, labels), index=returns.index, columns=returns.columns)


def lookup(wide: pd.DataFrame | None, dates: pd.Series, symbols: pd.Series) -> np.ndarray:
    """Values of ``wide`` at (date, symbol) pairs; None/NaN where absent."""
    if wide is None or wide.empty or len(dates) == 0:
        return np.full(len(dates), None, dtype=object)
    i = wide.index.get_indexer(pd.DatetimeIndex(dates))
    j = wide.columns.get_indexer(pd.Index(symbols))
    values = wide.to_numpy(dtype=object)
    ok = (i >= 0) & (j >= 0)
    out = np.full(len(dates), None, dtype=object)
    out[ok] = values[i[ok], j[ok]]
    return out


def entry_context(
    trades: pd.DataFrame,
    regimes: pd.Series,
    classes: pd.DataFrame | None,
    sectors: pd.Series,
    vol_buckets: pd.DataFrame,
    alpha: pd.DataFrame | None,
) -> pd.DataFrame:
    """``trades`` (from :func:`prometheus_assets.core.trades.round_trips`) with entry-context columns."""
    entry, sym = trades["entry_date"], trades["symbol"]
    alpha_at = lookup(alpha, entry, sym)
    return trades.assign(
        regime_label=pd.Series(regimes.reindex(pd.DatetimeIndex(entry)).to_numpy(dtype=object), index=trades.index),
        soft_target_class=lookup(classes, entry, sym),
        sector=sym.map(sectors).to_numpy(dtype=object),
        vol_bucket=lookup(vol_buckets, entry, sym),
        entry_alpha=pd.to_numeric(pd.Series(alpha_at, index=trades.index), errors="coerce"),
    )
