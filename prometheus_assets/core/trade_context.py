"""Entry context of closed trades: what was true when a round trip was opened.

The edge-sizing layer learns from trades by context, so each closed trade carries the state of
the world at its entry close, all known at that close: the market regime label, the
instrument's soft-target class, its sector, its volatility bucket (tercile of trailing
60-session volatility across the day's instruments) and the book's alpha for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_assets.core.frames import cross_sectional_percentile, trailing_mean_std

VOLATILITY_WINDOW = 60
VOLATILITY_BUCKETS: tuple[str, ...] = ("low", "mid", "high")


def trailing_std(returns: pd.DataFrame, window: int = VOLATILITY_WINDOW, dates: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """Sample standard deviation (ddof 1) of each column over the trailing ``window`` rows, per row.

    NaN where the ``window`` rows ending at a row are not all present (fewer rows before it, or a
    NaN among them), as ``rolling(window, min_periods=window).std()``. The value at a row comes
    from exactly its own ``window`` rows in a fixed order
    (:func:`~prometheus_assets.core.frames.trailing_mean_std`), so it does not depend on how many
    rows precede the window: a run that reads only a lookback window gives the bits a
    full-history run gives. ``dates``: only these rows (each must be in ``returns``' index).
    """
    if window < 2:
        raise ValueError("window must be >= 2")
    index = pd.DatetimeIndex(returns.index)
    rows = np.arange(len(index)) if dates is None else index.get_indexer(pd.DatetimeIndex(dates))
    if (rows < 0).any():
        raise KeyError("dates must be rows of returns")
    std = trailing_mean_std(returns.to_numpy(dtype="float64"), window, window)[1]
    return pd.DataFrame(std[rows], index=index[rows], columns=returns.columns)


def volatility_buckets(returns: pd.DataFrame, window: int = VOLATILITY_WINDOW, dates: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """Per (date, symbol): 'low' / 'mid' / 'high' tercile of trailing ``window``-session volatility.

    The volatility is :func:`trailing_std` (start-invariant: a row's bucket depends only on the
    ``window`` rows ending at it and the symbols present that day); ``dates``: only these rows.
    A name's percentile is (average rank − ½) / n, symmetric in (0, 1) like the assessment labels':
    one name, or names with equal volatility, are 'mid' whatever their number (rank / n put one
    name in 'high', two equal names in 'high' and four in 'mid', and over-filled the top tercile).
    """
    vol = trailing_std(returns, window, dates)
    pct = cross_sectional_percentile(vol)
    labels = np.select([pct <= 1 / 3, pct <= 2 / 3, pct <= 1.0], list(VOLATILITY_BUCKETS), default="")
    return pd.DataFrame(np.where(np.isnan(pct), None, labels), index=vol.index, columns=returns.columns)


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


#: The entry-context columns :func:`entry_context` adds besides ``sector`` (what a carried open trade keeps).
CONTEXT_COLUMNS: tuple[str, ...] = ("regime_label", "soft_target_class", "vol_bucket", "entry_alpha")


def _missing_as_none(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=object).copy()
    out[pd.isna(out)] = None
    return out


def context_values(
    trades: pd.DataFrame,
    regimes: pd.Series,
    classes: pd.DataFrame | None,
    vol_buckets: pd.DataFrame,
    alpha: pd.DataFrame | None,
    known: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The :data:`CONTEXT_COLUMNS` of each trade at its ``entry_date`` (object arrays, None where unknown).

    ``known``: context values already fixed for some trades (object arrays over ``trades``' rows,
    with a boolean array under ``"mask"``): those rows take them instead of a lookup (an open
    trade carried from an earlier run keeps the context recorded when it was opened).
    """
    entry, sym = trades["entry_date"], trades["symbol"]
    values = {
        "regime_label": _missing_as_none(regimes.reindex(pd.DatetimeIndex(entry)).to_numpy(dtype=object)),
        "soft_target_class": _missing_as_none(lookup(classes, entry, sym)),
        "vol_bucket": _missing_as_none(lookup(vol_buckets, entry, sym)),
        "entry_alpha": _missing_as_none(lookup(alpha, entry, sym)),
    }
    if known is not None:
        mask = np.asarray(known["mask"], dtype=bool)
        for column in CONTEXT_COLUMNS:
            values[column][mask] = np.asarray(known[column], dtype=object)[mask]
    return values


def entry_context(
    trades: pd.DataFrame,
    regimes: pd.Series,
    classes: pd.DataFrame | None,
    sectors: pd.Series,
    vol_buckets: pd.DataFrame,
    alpha: pd.DataFrame | None,
    known: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """``trades`` (from :func:`prometheus_assets.core.trades.round_trips`) with entry-context columns
    (:func:`context_values`, ``known`` included) and the sector of each symbol."""
    values = context_values(trades, regimes, classes, vol_buckets, alpha, known)
    return trades.assign(
        regime_label=pd.Series(values["regime_label"], index=trades.index, dtype=object),
        soft_target_class=values["soft_target_class"],
        sector=trades["symbol"].map(sectors).to_numpy(dtype=object),
        vol_bucket=values["vol_bucket"],
        entry_alpha=pd.to_numeric(pd.Series(values["entry_alpha"], index=trades.index, dtype=object), errors="coerce"),
    )
