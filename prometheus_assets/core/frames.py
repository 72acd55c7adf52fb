"""Small, pure helpers shared by the layers: long ⇄ wide, the equal-weight market, row sums, trailing sums."""

from __future__ import annotations

import numpy as np
import pandas as pd


def to_wide(long: pd.DataFrame, value: str, index: str = "date", columns: str = "symbol") -> pd.DataFrame:
    """Pivot a long frame to dates × symbols (NaN where a symbol has no row), sorted both ways."""
    if long.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name=index), dtype="float64")
    wide = long.pivot(index=index, columns=columns, values=value).sort_index()
    wide.index = pd.DatetimeIndex(wide.index).astype("datetime64[ns]")
    wide.columns = [str(c) for c in wide.columns]
    return wide.reindex(sorted(wide.columns), axis=1).astype("float64")


def equal_weight_market(returns: pd.DataFrame) -> pd.Series:
    """The equal-weight market return of the symbols trading each day (a point-in-time index).

    :func:`equal_weight_market_values` of the frame: each row's finite values summed in column
    order, so a day's market return does not depend on which other symbols the frame has. With
    pandas' mean, a symbol listed years later (a column of NaN on the earlier days, present only
    in a longer read) moved earlier days' market in the last bits, and with it every stability
    vector, beta and profile built on it: a backfill split at a year differed from one range, and
    so did a build on truncated history from the full one (found when the scale benchmark built a
    60-name synthetic history year by year).
    """
    values = returns.to_numpy(dtype="float64", na_value=np.nan)
    return pd.Series(equal_weight_market_values(values), index=returns.index, name="market_return")


def equal_weight_market_values(returns: np.ndarray) -> np.ndarray:
    """Mean of the finite values of each row of a dates × symbols array (NaN on a day nobody trades)."""
    count = np.isfinite(returns).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, finite_row_sums(returns) / np.maximum(count, 1), np.nan)


def finite_row_sums(values: np.ndarray) -> np.ndarray:
    """Sum of the finite values of each row, added left to right in column order (:func:`row_sums`):
    a column without a value adds an exact 0.0, so the sum is the same whichever value-less
    columns the frame has."""
    x = np.asarray(values, dtype="float64")
    return row_sums(np.where(np.isfinite(x), x, 0.0))


def row_sums(values: np.ndarray) -> np.ndarray:
    """Sum of each row (axis 1), adding the columns left to right in column order. NaN propagates.

    Hand-written on purpose: NumPy sums a row pairwise, grouping values by their *positions*, so
    an extra column (e.g. a symbol without a value that day, present in a longer read only, as an
    exact 0.0) or another number of rows can change the last bits of a row's sum. Here a row's sum
    depends on its own values in column order only.
    """
    x = np.asarray(values, dtype="float64")
    out = np.zeros(x.shape[0])
    for column in np.ascontiguousarray(x.T):
        out += column
    return out


def trailing_sums(values: np.ndarray, window: int) -> np.ndarray:
    """``out[t] = values[t] + values[t-1] + … + values[t-window+1]`` along axis 0, in that order.

    Rows before the first are absent (the first ``window - 1`` rows sum what there is). NaN
    propagates; pass zeros where a value should not count.

    Hand-written on purpose: ``pandas.rolling().sum()`` and cumulative-sum differences carry
    rounding from every earlier row, so their value at t changes in the last bits with where the
    data starts. Here the value at t is the same sum of the same ``window`` rows in the same
    order however much history precedes them, which is what lets a daily run that reads only a
    lookback window reproduce a full-history run bit for bit. Cost: ``window`` vectorised adds.
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    x = np.asarray(values, dtype=float)
    out = x.copy()
    for k in range(1, min(window, len(x))):
        out[k:] += x[:-k]
    return out


def trailing_mean_std(values: np.ndarray, window: int, min_periods: int, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the non-NaN values in each trailing ``window`` along axis 0.

    The same definition as ``pandas.rolling(window, min_periods).mean()`` / ``.std(ddof)``: NaN
    values are skipped, and a window with fewer than ``min_periods`` of them (or, for the std, no
    more than ``ddof``) gives NaN. Hand-written for the reason :func:`trailing_sums` gives: pandas'
    online rolling moments carry rounding from every earlier row, so a value at t changes in the
    last bits with where the data starts; here it is a two-pass sum over the window's rows in a
    fixed order, the same however much history precedes them. Cost: ``2 × window`` vectorised
    adds.
    """
    if min_periods < 1 or min_periods > window:
        raise ValueError("min_periods must lie in 1 … window")
    x = np.asarray(values, dtype=float)
    present = ~np.isnan(x)
    filled = np.where(present, x, 0.0)
    count = trailing_sums(present.astype(float), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = trailing_sums(filled, window) / count
    mean[count < min_periods] = np.nan
    squares = np.where(present, (filled - mean) ** 2, 0.0)
    for k in range(1, min(window, len(x))):
        d = filled[:-k] - mean[k:]
        squares[k:] += np.where(present[:-k], d * d, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(squares / (count - ddof))
    std[(count < min_periods) | (count <= ddof)] = np.nan
    return mean, std


def trailing_frame_moments(frame: pd.DataFrame, window: int, min_periods: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`trailing_mean_std` of a dates × symbols frame, as frames (ddof 1, like pandas)."""
    mean, std = trailing_mean_std(frame.to_numpy(dtype=float), window, min_periods)
    return pd.DataFrame(mean, index=frame.index, columns=frame.columns), pd.DataFrame(std, index=frame.index, columns=frame.columns)


def cross_sectional_percentile(frame: pd.DataFrame) -> np.ndarray:
    """Per row (date), each value's (average rank − ½) / n among the row's values; NaN stays NaN.

    Symmetric in (0, 1): one value, or equal values, sit at ½ whatever their number, and terciles
    cut at 1/3 and 2/3 split n names evenly. (``rank(pct=True)``, rank / n, lies in (0, 1]: one
    name was always in the top tercile and the top bucket was over-filled.)
    """
    ranks = frame.rank(axis=1, method="average")
    return ((ranks - 0.5).div(ranks.count(axis=1), axis=0)).to_numpy(dtype=float)


def labels_in_force(labels: pd.Series, index: pd.Index) -> pd.Series:
    """For each date of ``index``, the label (e.g. the market regime) published at the date before it.

    A return dated t is earned on positions set at the close of t−1, with the label known then:
    slicing performance by regime, and budgeting by regime, both use that label. (The label of t
    itself is published at t's close, after the return, and on the day the regime changes it
    credits the return to the new regime the book was not yet positioned for.) The first date
    has none (NaN).
    """
    return labels.reindex(index).shift(1)
