"""AllocatorStateV1: the daily state vector the risk allocator conditions on.

What this module does
---------------------
Every day the allocator looks at a handful of numbers describing how the portfolio and the
market behave *right now* (data up to and including that day only):

==============================  ==============================================================
``port_rvol_20d`` / ``_60d``    sample std (ddof=1) of the portfolio's daily returns over its
                                last 20 / 60 invested sessions, annualised (x sqrt(252));
                                0.15 = 15 %/year (NaN on a session in cash, see below)
``vol_accel``                   ``port_rvol_20d / port_rvol_60d`` (> 1: volatility is rising)
``dd_level``                    ``equity / running max of equity - 1`` (<= 0; the max runs
                                over all history up to the day)
``dd_slope_10d``                ``(dd_level_t - dd_level_{t-10}) / 10`` (10 rows earlier; < 0:
                                the drawdown is deepening)
``corr_20d`` / ``corr_60d``     average pairwise Pearson correlation of the assets' daily
                                returns over the last 20 / 60 rows (see below)
``corr_shock``                  ``corr_20d - corr_60d`` (> 0: assets move together more)
``trend_breadth_20d``           optional: share of trend units whose compounded 20-row return
                                ``prod(1 + r) - 1`` is positive
``sleeve_concentration_60d``    optional: Herfindahl index of the sleeves' summed returns
                                over the last 60 rows (1 = one sleeve drives everything)
==============================  ==============================================================

Two ways to compute it, with the same numbers (tested to 1e-10):

* **batch** -- :meth:`AllocatorStateV1.compute` takes whole histories and returns an
  :class:`AllocatorStateResult` (a frame indexed by ``date`` plus a ``meta`` dict);
* **online** -- :class:`AllocatorStateV1Online` is fed one day at a time and carries only a
  bounded state (the last 60 rows of everything, the running equity peak), so a new day costs
  the same whatever the length of the history. The state serialises to a JSON-safe dict
  (:meth:`AllocatorStateV1Online.to_dict` / :meth:`~AllocatorStateV1Online.from_dict`) so a
  daily run can persist it and resume bit-identically.

Conventions
-----------
* Returns are simple daily returns. Any non-finite value (NaN, +-inf) counts as *missing*.
* Windows count **rows** of the portfolio's index (all inputs are reindexed to it), not
  non-missing values: a window is *complete* when none of its rows is missing. Volatility,
  correlation and breadth use complete windows only (like pandas ``rolling(w,
  min_periods=w)``); the sleeve sums read missing sleeve returns as 0.
* Correlation uses, each day, the assets with a complete window and a non-constant one (a
  constant series has no correlation): ``N`` such assets, NaN when ``N < 2``.
* **Sessions in cash.** ``invested`` (optional, True on every row by default) marks the sessions
  the portfolio held positions. The volatility windows hold the last 20 / 60 *invested*
  sessions' returns: a session in cash is skipped (its volatilities are NaN, so the row is
  dropped) and does not enter the windows. Counted as 0 % returns, a cash spell made
  ``vol_accel`` exactly sqrt(60 / 20) = 1.73 on the first invested session after 60 in cash (one
  real return among zeros in both windows), and inflated it for weeks after.
* A constant portfolio-return window has volatility exactly 0 (as pandas); ``vol_accel`` is then
  0 / 0 = NaN.
* Equity must be positive where present (``ValueError`` otherwise).
* **Dropna rule**: a date is kept when the 8 required features are all non-missing; a missing
  optional feature never drops a row. An optional feature is *absent* (no column) when its
  input is None. Columns: :data:`REQUIRED_FEATURES` then the optional ones present, in the order
  of :data:`OPTIONAL_FEATURES`.
* ``meta`` holds no wall-clock time: ``generated_at`` is the caller's to add (core stays
  deterministic).

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "CORRELATION_WINDOWS",
    "DD_SLOPE_LAG",
    "FEATURES",
    "LOOKBACKS",
    "MAX_LOOKBACK",
    "OPTIONAL_FEATURES",
    "PORTFOLIO_WINDOW",
    "REQUIRED_FEATURES",
    "SLEEVE_WINDOW",
    "TRADING_DAYS_PER_YEAR",
    "TREND_WINDOW",
    "VERSION",
    "VOLATILITY_WINDOWS",
    "AllocatorStateResult",
    "AllocatorStateV1",
    "AllocatorStateV1Online",
    "rolling_average_correlation",
]

#: Version tag written into ``meta`` and into the online state.
VERSION: str = "allocator_state_v1"
#: What a carried state's portfolio-return window holds (states saved before it counted every
#: session, cash included, and are not continued: the run replays instead).
PORTFOLIO_WINDOW: str = "invested sessions"
#: Annualisation: volatilities are multiplied by sqrt(252).
TRADING_DAYS_PER_YEAR: int = 252
#: Windows (rows) of the two portfolio volatilities.
VOLATILITY_WINDOWS: tuple[int, int] = (20, 60)
#: ``dd_slope_10d`` compares today's drawdown with the one this many rows earlier.
DD_SLOPE_LAG: int = 10
#: Windows (rows) of the two average pairwise correlations.
CORRELATION_WINDOWS: tuple[int, int] = (20, 60)
#: Window (rows) of the trend-unit compounded returns.
TREND_WINDOW: int = 20
#: Window (rows) of the sleeve return sums.
SLEEVE_WINDOW: int = 60
#: The longest lookback: no row can be complete before this many rows were seen.
MAX_LOOKBACK: int = max(*VOLATILITY_WINDOWS, DD_SLOPE_LAG + 1, *CORRELATION_WINDOWS, TREND_WINDOW, SLEEVE_WINDOW)
#: Lookbacks as reported in ``meta["lookbacks"]``.
LOOKBACKS: dict[str, Any] = {
    "volatility": list(VOLATILITY_WINDOWS),
    "drawdown_slope": DD_SLOPE_LAG,
    "correlation": list(CORRELATION_WINDOWS),
    "trend_breadth": TREND_WINDOW,
    "sleeve_concentration": SLEEVE_WINDOW,
}
#: Features every output row has (a row missing any of them is dropped), in column order.
REQUIRED_FEATURES: tuple[str, ...] = (
    "port_rvol_20d",
    "port_rvol_60d",
    "vol_accel",
    "dd_level",
    "dd_slope_10d",
    "corr_20d",
    "corr_60d",
    "corr_shock",
)
#: Optional features, in column order: present only when their input is given.
OPTIONAL_FEATURES: tuple[str, ...] = ("trend_breadth_20d", "sleeve_concentration_60d")
#: All features, in column order.
FEATURES: tuple[str, ...] = REQUIRED_FEATURES + OPTIONAL_FEATURES

#: Memory budget of one block of correlation windows (days x window x assets float64 values).
_CORRELATION_BLOCK_BYTES: int = 4 * 1024 * 1024
_SQRT_YEAR: float = math.sqrt(TRADING_DAYS_PER_YEAR)


# =========================================================================== shared kernels
# Each kernel takes windows with the window axis in a fixed place and works for any number of
# leading "day" entries, so the batch (many days at once) and the online state (one day) run
# literally the same arithmetic.


def _annualised_std(windows: np.ndarray) -> np.ndarray:
    """Annualised sample std (ddof=1) of each window; ``windows`` is ``(days, W)``.

    Two-pass (mean first, then squared deviations): exact up to rounding, unlike a running
    update. NaN when the window has a missing value; exactly 0 when all its values are equal
    (a two-pass std of a constant can come out as 1e-19 instead of 0, because ``sum / W`` need
    not give back the constant).
    """
    width = windows.shape[-1]
    mean = windows.sum(axis=-1) / width
    dev = windows - mean[..., None]
    var = (dev * dev).sum(axis=-1) / (width - 1)
    constant = (windows == windows[..., :1]).all(axis=-1)  # False when the window has a NaN
    return np.sqrt(np.where(constant, 0.0, var)) * _SQRT_YEAR


def _average_correlation(windows: np.ndarray, usable: np.ndarray, work: np.ndarray | None = None) -> np.ndarray:
    """Average pairwise Pearson correlation of the usable columns of each window.

    Args:
        windows: ``(days, W, N)`` returns, finite everywhere (missing values already replaced
            by anything finite; those columns must be marked unusable).
        usable: ``(days, N)`` bool: the asset has a complete, non-constant window that day.
        work: optional ``(>= days, W, N)`` float64 scratch array (avoids one allocation).

    Returns ``(days,)``: the mean of the off-diagonal entries of the correlation matrix of the
    usable columns, NaN when fewer than 2 columns are usable.

    Why this is fast. Standardise each usable column over its window:
    ``z_i = (x_i - mean_i) / ||x_i - mean_i||`` (mean 0, Euclidean norm 1). Pearson's
    correlation is then a plain dot product, ``rho_ij = z_i . z_j``, so summing over all pairs

        sum_{i,j} rho_ij = sum_{i,j} z_i . z_j = ||sum_i z_i||^2 .

    The diagonal terms are ``rho_ii = z_i . z_i = 1``, N of them, hence

        sum_{i != j} rho_ij = ||sum_i z_i||^2 - N
        average             = (||sum_i z_i||^2 - N) / (N (N - 1)).

    ``sum_i z_i`` is a single length-W vector (a matrix-vector product of the centred window
    with the weights ``1 / ||x_i - mean_i||``, 0 for unusable columns), so one day costs
    O(N * W) instead of the O(N^2 * W) of the correlation matrix, which is never formed.
    No library offers the average pairwise correlation without the full matrix, hence this
    hand-written kernel.
    """
    days, width, _ = windows.shape
    mean = windows.sum(axis=1)
    mean /= width
    dev = np.subtract(windows, mean[:, None, :], out=None if work is None else work[:days])
    sum_sq = np.einsum("dwn,dwn->dn", dev, dev)  # ||x_i - mean_i||^2
    usable = usable & (sum_sq > 0.0)
    scale = np.zeros_like(sum_sq)
    np.divide(1.0, np.sqrt(sum_sq, where=usable, out=np.ones_like(sum_sq)), out=scale, where=usable)
    # The identity: sum_{i != j} rho_ij = ||sum_i z_i||^2 - N with z_i = scale_i * dev_i.
    # numpy's einsum loop, not a BLAS matmul: the matmul was ~20 % faster here, but its
    # rounding may depend on the BLAS thread count, and these numbers must be deterministic.
    total = np.einsum("dwn,dn->dw", dev, scale)  # sum_i z_i, shape (days, W)
    norm_sq = np.einsum("dw,dw->d", total, total)
    n = usable.sum(axis=1).astype(np.float64)
    out = np.full(days, np.nan)
    ok = n >= 2
    out[ok] = (norm_sq[ok] - n[ok]) / (n[ok] * (n[ok] - 1.0))
    return out


def _compounded_return(windows: np.ndarray) -> np.ndarray:
    """``prod(1 + r) - 1`` along the last axis, multiplied strictly in date order."""
    acc = 1.0 + windows[..., 0]
    for k in range(1, windows.shape[-1]):
        acc = acc * (1.0 + windows[..., k])
    return acc - 1.0


def _breadth(windows: np.ndarray) -> np.ndarray:
    """Share of columns with a positive compounded return; ``windows`` is ``(days, K, W)``.

    Only columns with a complete window (no NaN) count; NaN when there is none.
    """
    complete = np.isfinite(windows).all(axis=-1)
    with np.errstate(invalid="ignore"):
        up = complete & (_compounded_return(windows) > 0.0)
    n = complete.sum(axis=-1)
    out = np.full(n.shape, np.nan)
    np.divide(up.sum(axis=-1), n, out=out, where=n > 0)
    return out


def _concentration(windows: np.ndarray) -> np.ndarray:
    """Herfindahl index of the column sums; ``windows`` is ``(days, K, W)``, NaN read as 0.

    ``c_k = sum_t r_k,t`` (summed strictly in date order), ``s_k = |c_k| / sum_j |c_j|``,
    ``HHI = sum_k s_k^2`` in ``[1/K, 1]``; NaN when every ``c_k`` is 0.
    """
    clean = np.where(np.isfinite(windows), windows, 0.0)
    total = clean[..., 0].copy()
    for k in range(1, clean.shape[-1]):
        total += clean[..., k]
    size = np.abs(total)
    denom = size.sum(axis=-1)
    out = np.full(denom.shape, np.nan)
    ok = denom > 0.0
    share = size[ok] / denom[ok][..., None]
    out[ok] = (share * share).sum(axis=-1)
    return out


# =========================================================================== batch


def _cumulative_count(flags: np.ndarray) -> np.ndarray:
    """``out[j]`` = number of True flags in rows ``< j`` of each column (shape ``(T + 1, N)``)."""
    out = np.zeros((flags.shape[0] + 1, flags.shape[1]), dtype=np.int32)
    np.cumsum(flags, axis=0, dtype=np.int32, out=out[1:])
    return out


def rolling_average_correlation(
    asset_returns: pd.DataFrame | np.ndarray,
    windows: Sequence[int] = CORRELATION_WINDOWS,
    block_bytes: int = _CORRELATION_BLOCK_BYTES,
) -> dict[int, np.ndarray]:
    """Average pairwise correlation over trailing windows, for every row, in O(N * W) a row.

    Args:
        asset_returns: ``(T, N)`` daily returns, one column per asset, rows in date order;
            non-finite values are missing.
        windows: window lengths in rows (each >= 2).
        block_bytes: memory budget of one block of windows; the days are processed in blocks
            of ``block_bytes / (8 * W * N)`` days, so memory stays bounded whatever ``T``.

    Returns ``{window: values}``, ``values[t]`` being the mean off-diagonal correlation of the
    assets whose window ending at row ``t`` is complete and non-constant (NaN before the first
    full window and when fewer than 2 assets qualify). See :func:`_average_correlation` for the
    identity that avoids the N x N matrix.
    """
    return _rolling_average_correlation(_as_float_array(asset_returns), windows, block_bytes)


def _rolling_average_correlation(values: np.ndarray, windows: Sequence[int], block_bytes: int) -> dict[int, np.ndarray]:
    """:func:`rolling_average_correlation` on an array it may overwrite (no defensive copy)."""
    if values.ndim != 2:
        raise ValueError(f"asset_returns must be 2-D (dates x assets), got shape {values.shape}")
    n_rows, n_assets = values.shape
    valid = np.isfinite(values)
    values[~valid] = 0.0
    # Completeness and constancy of every (window, asset) from cumulative counts, O(T * N):
    # a window of rows [t - W + 1, t] is complete when it holds W valid values, and constant
    # when no value differs from the previous row's inside it (transitions t - W + 2 .. t).
    n_valid = _cumulative_count(valid)
    changed = np.zeros_like(valid)
    np.not_equal(values[1:], values[:-1], out=changed[1:])
    n_changed = _cumulative_count(changed)
    del valid, changed
    out: dict[int, np.ndarray] = {}
    for width in windows:
        width = int(width)
        if width < 2:
            raise ValueError(f"correlation windows need at least 2 rows, got {width}")
        result = np.full(n_rows, np.nan)
        out[width] = result
        if n_rows < width or n_assets < 2:
            continue
        block = max(1, min(n_rows, block_bytes // (8 * width * n_assets)))
        work = np.empty((block, width, n_assets))
        # windows_view[s] is the window of rows s .. s + W - 1, as (W, N) after the transpose.
        windows_view = sliding_window_view(values, width, axis=0).transpose(0, 2, 1)
        for first in range(width - 1, n_rows, block):
            last = min(first + block, n_rows)  # block of window *ends* first .. last - 1
            complete = n_valid[first + 1 : last + 1] - n_valid[first + 1 - width : last + 1 - width] == width
            moving = n_changed[first + 1 : last + 1] - n_changed[first + 2 - width : last + 2 - width] > 0
            block_windows = windows_view[first - width + 1 : last - width + 1]
            result[first:last] = _average_correlation(block_windows, complete & moving, work)
    return out


def _iso(ts: pd.Timestamp) -> str:
    """ISO text of a date: ``YYYY-MM-DD`` at midnight, the full timestamp otherwise."""
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def _as_float_array(values: Any) -> np.ndarray:
    """float64 C-ordered copy with every non-finite value turned into NaN (= missing).

    C order matters: a DataFrame's values come out column-major, and every kernel here walks
    rows (dates); on 5,040 x 3,000 the column-major layout made the correlations ~3x slower.
    """
    return _missing_as_nan(np.array(values, dtype=np.float64, order="C", copy=True))


def _missing_as_nan(values: np.ndarray) -> np.ndarray:
    """Turn every non-finite value of ``values`` (owned, float64) into NaN, in place."""
    values[~np.isfinite(values)] = np.nan
    return values


def _check_equity(equity: np.ndarray) -> None:
    if (equity <= 0.0).any():
        raise ValueError("equity_curve must be positive where present (drawdowns of a non-positive equity are meaningless)")


@dataclass(frozen=True)
class _Aligned:
    """All inputs on the portfolio's dates, as float arrays (NaN = missing)."""

    index: pd.DatetimeIndex
    portfolio: np.ndarray  # (T,)
    equity: np.ndarray  # (T,)
    assets: np.ndarray  # (T, N)
    asset_names: list[str]
    trend: np.ndarray | None  # (T, K)
    trend_names: list[str] | None
    sleeves: np.ndarray | None  # (T, S)
    sleeve_names: list[str] | None
    invested: np.ndarray  # (T,) bool


def _align(
    portfolio_returns: pd.Series,
    equity_curve: pd.Series,
    asset_returns: pd.DataFrame,
    trend_unit_returns: pd.DataFrame | None,
    sleeve_returns: pd.DataFrame | None,
    invested: pd.Series | None = None,
) -> _Aligned:
    """Reindex every input to ``portfolio_returns``' dates (which must be increasing, unique)."""
    index = portfolio_returns.index
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"portfolio_returns must be indexed by a DatetimeIndex, got {type(index).__name__}")
    if not index.is_unique or not index.is_monotonic_increasing:
        raise ValueError("portfolio_returns' dates must be unique and increasing")

    equity = _as_float_array(equity_curve.reindex(index).to_numpy(dtype=np.float64, na_value=np.nan))
    _check_equity(equity)
    assets, asset_names = _panel(asset_returns, index)
    trend, trend_names = _panel(trend_unit_returns, index) if trend_unit_returns is not None else (None, None)
    sleeves, sleeve_names = _panel(sleeve_returns, index) if sleeve_returns is not None else (None, None)
    return _Aligned(
        index=index,
        portfolio=_as_float_array(portfolio_returns.to_numpy(dtype=np.float64, na_value=np.nan)),
        equity=equity,
        assets=assets,
        asset_names=asset_names,
        trend=trend,
        trend_names=trend_names,
        sleeves=sleeves,
        sleeve_names=sleeve_names,
        invested=(np.ones(len(index), dtype=bool) if invested is None
                  else invested.reindex(index).fillna(True).to_numpy(dtype=bool)),
    )


def _panel(frame: pd.DataFrame, index: pd.DatetimeIndex) -> tuple[np.ndarray, list[str]]:
    """A wide frame on ``index`` as a float array, with its column names as unique strings."""
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise ValueError("column names must be unique (compared as strings)")
    return _as_float_array(frame.reindex(index).to_numpy(dtype=np.float64, na_value=np.nan)), names


def _rolling(values: np.ndarray, width: int, kernel: Any) -> np.ndarray:
    """Apply a window kernel to every trailing window of a ``(T,)`` or ``(T, K)`` array.

    The kernel receives ``(days,)`` + column shape + ``(W,)`` windows (window axis last); rows
    before the first full window get NaN.
    """
    out = np.full(values.shape[0], np.nan)
    if values.shape[0] >= width:
        out[width - 1 :] = kernel(sliding_window_view(values, width, axis=0))
    return out


@dataclass(frozen=True, eq=False)
class AllocatorStateResult:
    """What :meth:`AllocatorStateV1.compute` returns.

    ``frame``: one row per kept date (index named ``date``), float columns ``meta["features"]``.
    ``meta``: ``version``, ``lookbacks``, ``rows_before_dropna``, ``rows_after_dropna``,
    ``rows_dropped``, ``requested_start`` / ``requested_end`` (first / last input date, ISO),
    ``effective_start`` / ``effective_end`` (first / last output date, ISO, None if no row)
    and ``features``. No ``generated_at``: the caller adds it.
    """

    frame: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def _meta(index: pd.DatetimeIndex, frame: pd.DataFrame) -> dict[str, Any]:
    before, after = len(index), len(frame)
    return {
        "version": VERSION,
        "lookbacks": {k: list(v) if isinstance(v, list) else v for k, v in LOOKBACKS.items()},
        "rows_before_dropna": before,
        "rows_after_dropna": after,
        "rows_dropped": before - after,
        "requested_start": _iso(index[0]) if before else None,
        "requested_end": _iso(index[-1]) if before else None,
        "effective_start": _iso(frame.index[0]) if after else None,
        "effective_end": _iso(frame.index[-1]) if after else None,
        "features": list(frame.columns),
    }


def _feature_names(trend: bool, sleeves: bool) -> list[str]:
    names = list(REQUIRED_FEATURES)
    if trend:
        names.append("trend_breadth_20d")
    if sleeves:
        names.append("sleeve_concentration_60d")
    return names


class AllocatorStateV1:
    """Batch computation of the allocator state (see the module docstring for the features).

    Stateless; use the class method::

        result = AllocatorStateV1.compute(portfolio_returns, equity_curve, asset_returns)
        result.frame   # DataFrame indexed by "date"
        result.meta    # dict (version, lookbacks, row counts, date span, features)
    """

    version: str = VERSION

    @classmethod
    def compute(
        cls,
        portfolio_returns: pd.Series,
        equity_curve: pd.Series,
        asset_returns: pd.DataFrame,
        trend_unit_returns: pd.DataFrame | None = None,
        sleeve_returns: pd.DataFrame | None = None,
        invested: pd.Series | None = None,
    ) -> AllocatorStateResult:
        """Compute the state for every date of ``portfolio_returns``, then apply the dropna rule.

        Args:
            portfolio_returns: daily simple returns of the portfolio; its (increasing, unique)
                DatetimeIndex is the calendar: every other input is reindexed to it.
            equity_curve: the portfolio's equity (positive) on those dates.
            asset_returns: wide daily returns (dates x assets) for the correlations; NaN where
                an asset did not trade (not listed yet, delisted, missing bar).
            trend_unit_returns: optional wide daily returns (dates x trend units) for
                ``trend_breadth_20d``; None leaves that column out.
            sleeve_returns: optional wide daily returns (dates x sleeves) for
                ``sleeve_concentration_60d``; None leaves that column out.
            invested: optional bool per date, False on a session the portfolio held only
                cash (skipped by the volatility windows); None, or a date it lacks: invested.

        Returns:
            :class:`AllocatorStateResult`. Rows missing a required feature are dropped (the
            first ~60 rows always are: the lookbacks are not full yet).
        """
        data = _align(portfolio_returns, equity_curve, asset_returns, trend_unit_returns, sleeve_returns, invested)
        columns: dict[str, np.ndarray] = {}
        held = np.flatnonzero(data.invested)  # the volatility windows run over invested sessions only
        for width in VOLATILITY_WINDOWS:
            vol = np.full(len(data.index), np.nan)
            vol[held] = _rolling(data.portfolio[held], width, _annualised_std)
            columns[f"port_rvol_{width}d"] = vol
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["vol_accel"] = columns["port_rvol_20d"] / columns["port_rvol_60d"]
        peak = np.fmax.accumulate(data.equity) if len(data.equity) else data.equity  # NaN skipped
        dd = data.equity / peak - 1.0
        slope = np.full_like(dd, np.nan)
        slope[DD_SLOPE_LAG:] = (dd[DD_SLOPE_LAG:] - dd[:-DD_SLOPE_LAG]) / DD_SLOPE_LAG
        columns["dd_level"], columns["dd_slope_10d"] = dd, slope
        # data.assets is a private copy: the kernel may overwrite it (saves a 3,000 x 5,040 copy).
        corr = _rolling_average_correlation(data.assets, CORRELATION_WINDOWS, _CORRELATION_BLOCK_BYTES)
        columns["corr_20d"], columns["corr_60d"] = corr[20], corr[60]
        columns["corr_shock"] = corr[20] - corr[60]
        if data.trend is not None:
            columns["trend_breadth_20d"] = _rolling(data.trend, TREND_WINDOW, _breadth)
        if data.sleeves is not None:
            columns["sleeve_concentration_60d"] = _rolling(data.sleeves, SLEEVE_WINDOW, _concentration)
        names = _feature_names(data.trend is not None, data.sleeves is not None)
        index = pd.DatetimeIndex(data.index, name="date")
        full = pd.DataFrame({name: columns[name] for name in names}, index=index)
        frame = full.dropna(subset=list(REQUIRED_FEATURES))
        return AllocatorStateResult(frame=frame, meta=_meta(index, frame))


# =========================================================================== online


def _encode_floats(values: np.ndarray) -> list[Any]:
    """Nested lists of floats with NaN as None (strict JSON has no NaN). Floats round-trip
    exactly through ``json`` (it writes the shortest repr)."""
    if values.ndim == 1:
        return [None if v != v else v for v in values.tolist()]
    return [_encode_floats(row) for row in values]


def _decode_floats(values: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_encode_floats` (None -> NaN), checked against the expected shape."""
    return np.array(values, dtype=np.float64).reshape(shape)


class _RingPanel:
    """The last ``window`` rows of a panel whose columns are named entities that come and go.

    ``values`` is a ``(window, capacity)`` ring buffer: row ``head`` is the oldest and is the
    one the next :meth:`push` overwrites. Each entity (asset, trend unit, sleeve) owns a column
    *slot* through ``slot_of``. A new name takes the lowest free slot (the buffer grows by
    doubling when none is free); a name whose last valid value has left the window frees its
    slot -- its column is then all NaN, exactly what a new name needs. So the memory is bounded
    by the number of names that traded within the last ``window`` rows.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.values = np.full((window, 0), np.nan)
        self.head = 0
        self.pushes = 0  # rows pushed so far
        self.names: list[str | None] = []  # slot -> name (None = free)
        self.slot_of: dict[str, int] = {}
        self.last_valid = np.zeros(0, dtype=np.int64)  # slot -> push number of its last valid value, -1 = free
        # Pure speed-up, not state: the slots of the last ``names`` list seen (the same list
        # object comes back every day while the universe does not change), valid as long as
        # no slot was freed or taken since.
        self._slots_cache: tuple[Sequence[str], np.ndarray] | None = None

    def _grow(self, needed: int) -> None:
        capacity = self.values.shape[1]
        extra = max(needed, capacity, 8)
        self.values = np.concatenate([self.values, np.full((self.window, extra), np.nan)], axis=1)
        self.names.extend([None] * extra)
        self.last_valid = np.concatenate([self.last_valid, np.full(extra, -1, dtype=np.int64)])

    def push(self, names: Sequence[str], row: np.ndarray) -> None:
        """Append one row (``row[i]`` is the value of ``names[i]``; NaN = missing)."""
        self.pushes += 1
        now, target = self.pushes, self.head
        self.values[target] = np.nan
        finite = np.isfinite(row)
        slot_of = self.slot_of
        if self._slots_cache is not None and self._slots_cache[0] is names:
            slots = self._slots_cache[1]
        else:
            slots = np.fromiter((slot_of.get(n, -1) for n in names), dtype=np.int64, count=len(names))
        self._slots_cache = (names, slots)
        known = finite & (slots >= 0)
        self.values[target, slots[known]] = row[known]
        self.last_valid[slots[known]] = now
        # Free the slots whose last valid value is no longer in the window.
        stale = np.flatnonzero((self.last_valid >= 0) & (self.last_valid <= now - self.window))
        if len(stale):
            self._slots_cache = None
        for slot in stale.tolist():
            del slot_of[self.names[slot]]  # type: ignore[arg-type]
            self.names[slot] = None
            self.last_valid[slot] = -1
        new = np.flatnonzero(finite & (slots < 0))
        if len(new):
            self._slots_cache = None
            free = np.flatnonzero(self.last_valid < 0)
            if len(free) < len(new):
                self._grow(len(new) - len(free))
                free = np.flatnonzero(self.last_valid < 0)
            chosen = free[: len(new)]
            for i, slot in zip(new.tolist(), chosen.tolist()):
                slot_of[names[i]] = slot
                self.names[slot] = names[i]
            self.values[target, chosen] = row[new]
            self.last_valid[chosen] = now
        self.head = (target + 1) % self.window

    def chronological(self) -> np.ndarray:
        """``(window, capacity)`` copy of the buffer, oldest row first (unfilled rows are NaN)."""
        return np.roll(self.values, -self.head, axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "pushes": self.pushes,
            "names": list(self.names),
            "last_valid": self.last_valid.tolist(),
            "values": _encode_floats(self.chronological().T),  # one list per slot
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _RingPanel:
        panel = cls(int(d["window"]))
        panel.pushes = int(d["pushes"])
        panel.names = [None if n is None else str(n) for n in d["names"]]
        panel.slot_of = {n: i for i, n in enumerate(panel.names) if n is not None}
        panel.last_valid = np.array(d["last_valid"], dtype=np.int64).reshape(len(panel.names))
        panel.values = np.ascontiguousarray(_decode_floats(d["values"], (len(panel.names), panel.window)).T)
        return panel


def _index_names(index: pd.Index, what: str) -> list[str]:
    """The labels of a Series' index as unique strings."""
    names = [str(n) for n in index.tolist()]  # tolist: iterating a str Index is slow
    if len(set(names)) != len(names):
        raise ValueError(f"{what} has duplicate names (compared as strings)")
    return names


class AllocatorStateV1Online:
    """The allocator state computed one day at a time from a bounded carried state.

    Feed the days in increasing date order with :meth:`update`; each call returns that day's
    features (the numbers of :meth:`AllocatorStateV1.compute` up to rounding, ~1e-16) or None
    while warming up or when the day would be dropped (a required feature is missing).

    What is carried (nothing grows with the history): the last 60 invested sessions' portfolio returns, the
    running maximum of equity, the last 10 drawdown levels, and ring buffers of the last 60
    rows of asset returns, 20 rows of trend-unit returns and 60 rows of sleeve returns (see
    :class:`_RingPanel`: names may appear and disappear over time). One update costs
    O(N * W) in assets x window, independent of how many days came before.

    Which optional features are tracked is fixed at construction (``trend_breadth``,
    ``sleeve_concentration``), like the columns of a batch frame. On a day where a tracked
    input is None, that input is treated as missing for the day.

    Persist and resume::

        state = AllocatorStateV1Online()
        ...  # updates
        saved = json.dumps(state.to_dict())
        state = AllocatorStateV1Online.from_dict(json.loads(saved))  # continues bit-identically
    """

    def __init__(self, trend_breadth: bool = False, sleeve_concentration: bool = False) -> None:
        self.days_seen: int = 0
        self.last_date: pd.Timestamp | None = None
        self._portfolio = np.full(max(VOLATILITY_WINDOWS), np.nan)  # oldest first
        self._equity_peak: float = math.nan
        self._dd_history = np.full(DD_SLOPE_LAG, np.nan)  # the previous 10 dd levels, oldest first
        self._assets = _RingPanel(max(CORRELATION_WINDOWS))
        self._trend = _RingPanel(TREND_WINDOW) if trend_breadth else None
        self._sleeves = _RingPanel(SLEEVE_WINDOW) if sleeve_concentration else None
        # Pure speed-up, not state: the names of the last Index seen per input (Index objects
        # are immutable, so the same object means the same names).
        self._names_cache: dict[str, tuple[pd.Index, list[str]]] = {}

    # ------------------------------------------------------------------ properties
    @property
    def warming_up(self) -> bool:
        """True until the longest lookback (60 rows) has been seen: no row can be complete before."""
        return self.days_seen < MAX_LOOKBACK

    @property
    def features(self) -> list[str]:
        """Names of the features :meth:`update` returns, in column order."""
        return _feature_names(self._trend is not None, self._sleeves is not None)

    # ------------------------------------------------------------------ one day
    def update(
        self,
        date: Any,
        portfolio_return: float,
        equity: float,
        asset_returns: pd.Series,
        trend_unit_returns: pd.Series | None = None,
        sleeve_returns: pd.Series | None = None,
        invested: bool = True,
    ) -> dict[str, float] | None:
        """Add one day and return its features, or None (warming up / a required feature missing).

        Args:
            date: the day (anything ``pd.Timestamp`` accepts); strictly after the previous one.
            portfolio_return: the portfolio's simple return that day (NaN = missing).
            equity: the portfolio's equity that day (positive; NaN = missing).
            asset_returns: that day's returns by asset name (names compared as strings; an
                asset absent or NaN is missing that day).
            trend_unit_returns: that day's trend-unit returns (only if constructed with
                ``trend_breadth=True``).
            sleeve_returns: that day's sleeve returns (only if constructed with
                ``sleeve_concentration=True``).
            invested: False on a day the portfolio held only cash: its return does not enter
                the volatility windows, and the day gets no row (its volatilities are NaN).

        Returns:
            ``{feature: value}`` in :attr:`features` order (an optional feature may be NaN).
        """
        assets = self._names_and_values(asset_returns, "asset_returns")
        trend = self._names_and_values(trend_unit_returns, "trend_unit_returns")
        sleeves = self._names_and_values(sleeve_returns, "sleeve_returns")
        if trend_unit_returns is not None and self._trend is None:
            raise ValueError("trend_unit_returns given but this state was built with trend_breadth=False")
        if sleeve_returns is not None and self._sleeves is None:
            raise ValueError("sleeve_returns given but this state was built with sleeve_concentration=False")
        return self._update(pd.Timestamp(date), float(portfolio_return), float(equity), assets, trend, sleeves, bool(invested))

    def _names_and_values(self, row: pd.Series | None, what: str) -> tuple[list[str], np.ndarray]:
        """A Series (name -> value) as (names as str, float values with NaN for missing)."""
        if row is None:
            return [], np.zeros(0)
        cached = self._names_cache.get(what)
        if cached is not None and cached[0] is row.index:
            names = cached[1]
        else:
            names = _index_names(row.index, what)
            self._names_cache[what] = (row.index, names)
        return names, _as_float_array(row.to_numpy(dtype=np.float64, na_value=np.nan))

    def _update(
        self,
        date: pd.Timestamp,
        portfolio_return: float,
        equity: float,
        assets: tuple[Sequence[str], np.ndarray],
        trend: tuple[Sequence[str], np.ndarray],
        sleeves: tuple[Sequence[str], np.ndarray],
        invested: bool = True,
    ) -> dict[str, float] | None:
        if self.last_date is not None and not date > self.last_date:
            raise ValueError(f"dates must increase: {date} after {self.last_date}")
        if not math.isfinite(portfolio_return):
            portfolio_return = math.nan
        if not math.isfinite(equity):
            equity = math.nan
        _check_equity(np.array([equity]))
        self.last_date = date
        self.days_seen += 1

        # Portfolio volatility: the last 60 invested sessions' returns, oldest first.
        row: dict[str, float] = {}
        if invested:
            self._portfolio[:-1] = self._portfolio[1:]
            self._portfolio[-1] = portfolio_return
        for width in VOLATILITY_WINDOWS:
            row[f"port_rvol_{width}d"] = float(_annualised_std(self._portfolio[None, -width:])[0]) if invested else math.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            row["vol_accel"] = float(np.float64(row["port_rvol_20d"]) / np.float64(row["port_rvol_60d"]))

        # Drawdown: running peak (NaN equity skipped, as np.fmax) and the previous 10 levels.
        self._equity_peak = float(np.fmax(self._equity_peak, equity))
        dd = equity / self._equity_peak - 1.0
        row["dd_level"] = dd
        row["dd_slope_10d"] = (dd - float(self._dd_history[0])) / DD_SLOPE_LAG
        self._dd_history[:-1] = self._dd_history[1:]
        self._dd_history[-1] = dd

        # Correlations over the asset ring buffer.
        self._assets.push(*assets)
        history = self._assets.chronological()
        finite = np.isfinite(history)
        clean = np.where(finite, history, 0.0)
        for width in CORRELATION_WINDOWS:
            # Same usable rule as the batch: a complete window that is not constant.
            window = clean[-width:]
            usable = finite[-width:].all(axis=0) & (window != window[:1]).any(axis=0)
            row[f"corr_{width}d"] = float(_average_correlation(window[None], usable[None])[0])
        row["corr_shock"] = row["corr_20d"] - row["corr_60d"]

        if self._trend is not None:
            self._trend.push(*trend)
            breadth = _breadth(self._trend.chronological().T[None])[0] if self.days_seen >= TREND_WINDOW else math.nan
            row["trend_breadth_20d"] = float(breadth)
        if self._sleeves is not None:
            self._sleeves.push(*sleeves)
            hhi = _concentration(self._sleeves.chronological().T[None])[0] if self.days_seen >= SLEEVE_WINDOW else math.nan
            row["sleeve_concentration_60d"] = float(hhi)

        if any(math.isnan(row[name]) for name in REQUIRED_FEATURES):
            return None
        return row

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """The whole carried state as a JSON-safe dict (NaN written as None).

        Keys: ``version``, ``days_seen``, ``last_date`` (ISO), ``portfolio_returns`` (last 60,
        oldest first), ``equity_peak``, ``dd_levels`` (previous 10, oldest first), and one dict
        per ring buffer (``assets``, ``trend_units``, ``sleeves``; None when not tracked) with
        its ``window``, ``pushes``, slot ``names`` (None = free slot), ``last_valid`` push of
        each slot and ``values`` (one list per slot, oldest row first). With ~3,000 assets
        it is a few MB of JSON.
        """
        return {
            "version": VERSION,
            "portfolio_window": PORTFOLIO_WINDOW,
            "days_seen": self.days_seen,
            "last_date": None if self.last_date is None else self.last_date.isoformat(),
            "portfolio_returns": _encode_floats(self._portfolio),
            "equity_peak": None if math.isnan(self._equity_peak) else self._equity_peak,
            "dd_levels": _encode_floats(self._dd_history),
            "assets": self._assets.to_dict(),
            "trend_units": None if self._trend is None else self._trend.to_dict(),
            "sleeves": None if self._sleeves is None else self._sleeves.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AllocatorStateV1Online:
        """Rebuild a state saved by :meth:`to_dict` (after any JSON round trip)."""
        if d.get("version") != VERSION:
            raise ValueError(f"not an {VERSION} online state: version={d.get('version')!r}")
        if d.get("portfolio_window") != PORTFOLIO_WINDOW:
            raise ValueError(f"the state's volatility windows are not over {PORTFOLIO_WINDOW!r} (saved by an older version): replay")
        state = cls(trend_breadth=d["trend_units"] is not None, sleeve_concentration=d["sleeves"] is not None)
        state.days_seen = int(d["days_seen"])
        state.last_date = None if d["last_date"] is None else pd.Timestamp(d["last_date"])
        state._portfolio = _decode_floats(d["portfolio_returns"], (max(VOLATILITY_WINDOWS),))
        state._equity_peak = math.nan if d["equity_peak"] is None else float(d["equity_peak"])
        state._dd_history = _decode_floats(d["dd_levels"], (DD_SLOPE_LAG,))
        state._assets = _RingPanel.from_dict(d["assets"])
        if d["trend_units"] is not None:
            state._trend = _RingPanel.from_dict(d["trend_units"])
        if d["sleeves"] is not None:
            state._sleeves = _RingPanel.from_dict(d["sleeves"])
        return state

    # ------------------------------------------------------------------ replay
    def feed(
        self,
        portfolio_returns: pd.Series,
        equity_curve: pd.Series,
        asset_returns: pd.DataFrame,
        trend_unit_returns: pd.DataFrame | None = None,
        sleeve_returns: pd.DataFrame | None = None,
        invested: pd.Series | None = None,
    ) -> pd.DataFrame:
        """Feed every day of the inputs (aligned as in :meth:`AllocatorStateV1.compute`) in order
        and return the rows kept. Continuing a resumed state with the next days gives exactly the
        rows a single replay would (the daily run resumes from yesterday's saved state)."""
        data = _align(portfolio_returns, equity_curve, asset_returns, trend_unit_returns, sleeve_returns, invested)
        empty: tuple[list[str], np.ndarray] = ([], np.zeros(0))
        kept: list[int] = []
        rows: list[dict[str, float]] = []
        for t, date in enumerate(data.index):
            out = self._update(
                date,
                float(data.portfolio[t]),
                float(data.equity[t]),
                (data.asset_names, data.assets[t]),
                empty if data.trend is None else (data.trend_names, data.trend[t]),  # type: ignore[arg-type]
                empty if data.sleeves is None else (data.sleeve_names, data.sleeves[t]),  # type: ignore[arg-type]
                bool(data.invested[t]),
            )
            if out is not None:
                kept.append(t)
                rows.append(out)
        index = pd.DatetimeIndex(data.index[kept], name="date")
        return pd.DataFrame(rows, index=index, columns=self.features, dtype=np.float64)

    @classmethod
    def replay(
        cls,
        portfolio_returns: pd.Series,
        equity_curve: pd.Series,
        asset_returns: pd.DataFrame,
        trend_unit_returns: pd.DataFrame | None = None,
        sleeve_returns: pd.DataFrame | None = None,
        invested: pd.Series | None = None,
    ) -> pd.DataFrame:
        """The batch frame rebuilt by feeding the days one by one (same arguments and alignment
        as :meth:`AllocatorStateV1.compute`; returns only the frame)."""
        state = cls(trend_breadth=trend_unit_returns is not None, sleeve_concentration=sleeve_returns is not None)
        return state.feed(portfolio_returns, equity_curve, asset_returns, trend_unit_returns, sleeve_returns, invested)
