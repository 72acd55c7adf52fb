"""The numeric embedding space: rolling-window features and walk-forward PCA encoders.

What this module does
---------------------
Every entity (a stock, or the equal-weight *market*) gets, on every date, a handful of
economically meaningful numbers computed over a trailing window of daily returns ending **at**
that date (data ``<= date`` only). A :class:`NumericEncoder` (standardise, then PCA) turns those
numbers into a fixed-length vector ``z_numeric``. Encoders are fitted *walk-forward*: the encoder
used on day ``t`` was fitted only on rows dated strictly before its ``fit_date <= t``.

The pieces, in the order a pipeline uses them::

    feats  = instrument_features(returns_wide, window=63)      # or market_features(...)
    models = fit_walk_forward(feats, INSTRUMENT_FEATURE_COLUMNS, refit_dates(dates))
    z      = embed_walk_forward(feats, INSTRUMENT_FEATURE_COLUMNS, models)

Conventions
-----------
* ``returns`` are *wide*: a ``DatetimeIndex`` of sessions, one column per symbol, simple daily
  returns, ``NaN`` where the symbol did not trade (not listed yet, delisted, missing bar).
* A (date, symbol) gets a feature row only when the symbol has a **full** window: ``window``
  non-missing returns on the ``window`` sessions ending at the date (``min_periods=window``).
* Annualisation uses :data:`TRADING_DAYS_PER_YEAR` (252): means and slopes ``x 252``,
  volatilities ``x sqrt(252)``.
* Everything is computed with shifted array operations over the whole history at once; the
  Python loops run over the offsets *inside* one window (at most ``window`` iterations) or over
  the symbols of a row, never over dates.

Truncation and start invariance
-------------------------------
Every number for date ``t`` depends only on rows ``<= t`` and is computed by the same
floating-point operations whatever comes after ``t``. So features, encoders and embeddings
computed on a history cut at ``t`` equal the full-history ones for dates ``<= t`` exactly
(tested with ``check_exact=True``).

The window features of ``t`` are also the same bits whatever comes *before* the window: every
window statistic is a fixed-order sum over the window's own rows (:func:`~prometheus_assets.core.frames.trailing_sums`,
:func:`~prometheus_assets.core.frames.trailing_mean_std`, the offset loops here), never a
pandas rolling or cumulative operation (those carry rounding from every earlier row); and every
cross-sectional sum adds the symbols of a row left to right
(:func:`~prometheus_assets.core.frames.finite_row_sums`), so a symbol without a value that day (listed later, delisted before: present in one read, absent from a
shorter one) changes nothing. Hence a daily run can compute them from a lookback window. The
one expanding feature, the market's ``drawdown_from_peak``, continues from an exact carried
:class:`MarketLevel` instead (see :func:`market_features`).

Pure numpy / pandas / scikit-learn: no Dagster, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from prometheus_assets.core.frames import equal_weight_market_values, finite_row_sums, trailing_mean_std, trailing_sums

__all__ = [
    "DEFAULT_MIN_TRAIN_ROWS",
    "DEFAULT_N_COMPONENTS",
    "INSTRUMENT_FEATURE_COLUMNS",
    "MARKET_FEATURE_COLUMNS",
    "SHORT_RETURN_DAYS",
    "TRADING_DAYS_PER_YEAR",
    "WINDOW_SPECS",
    "FEATURE_VERSION",
    "FittedEncoder",
    "MarketLevel",
    "NumericEncoder",
    "embed_walk_forward",
    "encoder_model_id",
    "fit_walk_forward",
    "instrument_features",
    "market_features",
    "market_level_at",
    "model_index_for_dates",
    "refit_dates",
]

#: Version of the feature definitions and of their floating-point evaluation. Part of what a stored
#: encoder is bound to (``embedding_space.encoder_header``): a new version never reuses an old fit.
#: 2: start-invariant window sums and width-invariant cross-sectional sums.
FEATURE_VERSION: str = "2"
#: Named trailing windows (in trading sessions) used across the embedding layer.
WINDOW_SPECS: dict[str, int] = {"21d": 21, "63d": 63, "252d": 252}
#: Sessions per year, for annualising daily figures.
TRADING_DAYS_PER_YEAR: int = 252
#: Length (sessions) of the short "last days" return feature.
SHORT_RETURN_DAYS: int = 5
#: Default embedding dimension.
DEFAULT_N_COMPONENTS: int = 16
#: Default minimum number of training rows before a walk-forward encoder is fitted.
DEFAULT_MIN_TRAIN_ROWS: int = 250

#: Feature columns of :func:`instrument_features`, in output order.
INSTRUMENT_FEATURE_COLUMNS: list[str] = [
    "mean_return",  # mean daily return x 252
    "vol",  # sample std of daily returns x sqrt(252)
    "max_drawdown",  # worst peak-to-trough fall of the price path inside the window (<= 0)
    "trend",  # OLS slope of log price per session x 252
    "downside_vol",  # sqrt(mean(min(r, 0)^2)) x sqrt(252)
    "skew",  # sample skewness of daily returns (pandas' bias-corrected estimator)
    "beta",  # cov(r, market) / var(market) over the window
    "correlation",  # corr(r, market) over the window
    "return_5d",  # compounded return of the last 5 sessions
]

#: Feature columns of :func:`market_features`, in output order (``n_symbols`` is informative
#: only and not an encoder input).
MARKET_FEATURE_COLUMNS: list[str] = [
    "mean_return",  # market mean daily return x 252
    "vol",  # market realised vol x sqrt(252)
    "drawdown",  # market level vs its highest level inside the window (<= 0)
    "drawdown_from_peak",  # market level vs its highest level over all history so far (<= 0)
    "trend",  # OLS slope of market log level per session x 252
    "dispersion",  # mean over the window of the daily cross-sectional std of returns
    "correlation",  # average pairwise correlation of full-window symbols
    "breadth",  # fraction of full-window symbols with a positive window return
]


# --------------------------------------------------------------------------- small helpers
def _as_wide_returns(returns: pd.DataFrame, window: int) -> pd.DataFrame:
    """Validate ``returns`` and return it as a float64 frame with a ``datetime64[ns]`` index."""
    if not isinstance(returns, pd.DataFrame):
        raise TypeError(f"returns must be a wide DataFrame (dates x symbols), got {type(returns).__name__}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise ValueError(f"window must be an integer >= 2, got {window!r}")
    index = pd.DatetimeIndex(returns.index).astype("datetime64[ns]")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError("returns index must be increasing, unique dates")
    out = returns.astype("float64")
    out.index = index
    return out


def _trend_weights(window: int) -> np.ndarray:
    """Weights ``w`` such that ``sum(w * r)`` over a window of log returns is the OLS slope of log price.

    With log price ``y_k = sum_{m <= k} r_m`` at the window's sessions ``k = 0 .. W-1``, the OLS
    slope ``sum_k (k - kbar) y_k / sum_k (k - kbar)^2`` rearranges to ``sum_m w_m r_m`` with
    ``w_m = sum_{k >= m} (k - kbar) / sum_k (k - kbar)^2``. (``w_0 = 0``: the first return only
    shifts the whole line.) Writing it on returns avoids a cumulative price and its rounding.
    """
    k = np.arange(window, dtype="float64")
    centred = k - k.mean()
    tail_sums = np.cumsum(centred[::-1])[::-1]
    return tail_sums / np.sum(centred**2)


def _rolling_weighted_sum(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``out[t] = sum_k weights[k] * values[t - W + 1 + k]`` along axis 0 (NaN for ``t < W - 1``).

    A loop over the ``W`` window offsets, each a whole-history array operation. Any NaN inside
    a window makes that window's result NaN.
    """
    window = len(weights)
    n_rows = values.shape[0]
    out = np.full(values.shape, np.nan)
    if n_rows < window:
        return out
    acc = np.zeros((n_rows - window + 1,) + values.shape[1:])
    for k, w in enumerate(weights):
        acc += w * values[k : n_rows - window + 1 + k]
    out[window - 1 :] = acc
    return out


def _rolling_drawdowns(log_returns: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Worst and current peak-to-trough log fall of the price path inside each trailing window (<= 0).

    The path starts at the level *before* the window's first return (so a loss on the first
    day counts) and compounds the ``window`` log returns. A loop over window offsets carries
    the cumulative log return, its running peak and the worst fall so far, for all window ends
    at once. Returns ``(worst, current)``: the deepest fall inside the window and the fall of
    its last level from the window's peak. NaN for the first ``window - 1`` rows.
    """
    n_rows = log_returns.shape[0]
    worst_out = np.full(log_returns.shape, np.nan)
    current_out = np.full(log_returns.shape, np.nan)
    if n_rows < window:
        return worst_out, current_out
    shape = (n_rows - window + 1,) + log_returns.shape[1:]
    cum = np.zeros(shape)
    peak = np.zeros(shape)
    worst = np.zeros(shape)
    fall = np.empty(shape)
    for k in range(window):
        np.add(cum, log_returns[k : n_rows - window + 1 + k], out=cum)
        np.maximum(peak, cum, out=peak)
        np.subtract(cum, peak, out=fall)
        np.minimum(worst, fall, out=worst)
    worst_out[window - 1 :] = worst
    current_out[window - 1 :] = fall
    # NaN inputs make np.maximum/np.minimum propagate NaN, which is what we want.
    return worst_out, current_out


def _full_windows(values: np.ndarray, window: int) -> np.ndarray:
    """True where the ``window`` rows ending at a row are all non-NaN."""
    return trailing_sums((~np.isnan(values)).astype("float64"), window) == window


def _window_central_sums(x: np.ndarray, mean: np.ndarray, m: np.ndarray, m_mean: np.ndarray, window: int) -> tuple[np.ndarray, ...]:
    """Per trailing window of ``x`` (dates × symbols) and ``m`` (dates): sums of ``d**2``, ``d**3``
    and ``d * dm`` with ``d = x - mean`` and ``dm = m - m_mean`` (the window's means, at its last
    row), and whether all ``x`` of the window equal its last one.

    Two-pass moments over the window's own rows, oldest first (a fixed order, so the same bits
    however much history precedes the window). NaN for the first ``window - 1`` rows.
    """
    n_rows = x.shape[0]
    shape = x.shape
    s2, s3, sxm = (np.full(shape, np.nan) for _ in range(3))
    same = np.zeros(shape, dtype=bool)
    if n_rows < window:
        return s2, s3, sxm, same
    ends = slice(window - 1, None)
    mu, mu_m, last = mean[ends], m_mean[ends][:, None], x[ends]
    a2, a3, axm = (np.zeros((n_rows - window + 1,) + shape[1:]) for _ in range(3))
    equal = np.ones(a2.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for k in range(window):
            rows = slice(k, n_rows - window + 1 + k)
            d = x[rows] - mu
            d2 = d * d
            a2 += d2
            a3 += d2 * d
            axm += d * (m[rows][:, None] - mu_m)
            equal &= x[rows] == last
    s2[ends], s3[ends], sxm[ends], same[ends] = a2, a3, axm, equal
    return s2, s3, sxm, same


# --------------------------------------------------------------------------- instrument features
def instrument_features(returns: pd.DataFrame, window: int) -> pd.DataFrame:
    """Trailing-window features of every symbol on every date with a full window.

    Args:
        returns: wide simple daily returns (index: dates, columns: symbols, NaN = not trading).
        window: window length in sessions (see :data:`WINDOW_SPECS`).

    Returns:
        Long frame ``date, entity_id, *INSTRUMENT_FEATURE_COLUMNS`` sorted by (date, column
        order of ``returns``), one row per (date, symbol) whose last ``window`` returns are all
        present. The market for ``beta`` / ``correlation`` is the equal-weight mean of the
        symbols trading each day. A feature can be NaN when undefined (e.g. ``correlation`` of
        a symbol whose returns were constant over the window). ``skew`` is the bias-corrected
        sample skewness (pandas' estimator; 0 for a constant window). Each value depends on the
        window's rows only (and the market on each day's cross-section only): see the module's
        "start invariance".
    """
    wide = _as_wide_returns(returns, window)
    r = wide.to_numpy(dtype="float64", copy=True)
    ann, sqrt_ann = float(TRADING_DAYS_PER_YEAR), float(np.sqrt(TRADING_DAYS_PER_YEAR))
    with np.errstate(invalid="ignore", divide="ignore"):
        log_r = np.log1p(r)
    market = equal_weight_market_values(r)

    full = _full_windows(r, window)
    mean, std = trailing_mean_std(r, window, window)
    m_mean, m_std = trailing_mean_std(market, window, window)
    s2, s3, sxm, constant = _window_central_sums(r, mean, market, m_mean, window)
    downside = trailing_sums(np.minimum(r, 0.0) ** 2, window) / window
    n = float(window)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxm / (n - 1.0)
        beta = cov / (m_std * m_std)[:, None]
        corr = cov / (std * m_std[:, None])
        skew = np.sqrt(n * (n - 1.0)) / (n - 2.0) * (s3 / n) / (s2 / n) ** 1.5 if window >= 3 else np.full(r.shape, np.nan)
    skew = np.where(constant, 0.0, skew)
    short = trailing_sums(log_r, SHORT_RETURN_DAYS)
    short[: SHORT_RETURN_DAYS - 1] = np.nan

    columns = {
        "mean_return": mean * ann,
        "vol": std * sqrt_ann,
        "max_drawdown": np.expm1(_rolling_drawdowns(log_r, window)[0]),
        "trend": _rolling_weighted_sum(log_r, _trend_weights(window)) * ann,
        "downside_vol": np.sqrt(downside) * sqrt_ann,
        "skew": skew,
        "beta": beta,
        "correlation": corr,
        "return_5d": np.expm1(short),
    }
    rows, cols = np.nonzero(full)
    dates = wide.index.to_numpy()[rows]
    symbols = np.asarray(wide.columns, dtype=object)[cols]
    data: dict[str, object] = {"date": pd.Series(dates, dtype="datetime64[ns]"), "entity_id": pd.Series(symbols, dtype=object)}
    data.update({name: columns[name][full] for name in INSTRUMENT_FEATURE_COLUMNS})
    return pd.DataFrame(data, copy=False)


# --------------------------------------------------------------------------- market features
def _average_pairwise_correlation(r: np.ndarray, window: int, full: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average off-diagonal correlation of the full-window symbols on each date, in O(N*W) per date.

    The trick: standardise each symbol's window, ``z_i = (r_i - mean_i) / ||r_i - mean_i||``
    (mean 0, Euclidean norm 1 over the window). Then ``rho_ij = <z_i, z_j>`` and

        sum_{i,j} rho_ij = <sum_i z_i, sum_j z_j> = ||sum_i z_i||^2 ,

    whose diagonal part is ``sum_i rho_ii = N``. Hence the mean off-diagonal correlation is

        rho_bar = (||sum_i z_i||^2 - N) / (N (N - 1)).

    ``sum_i z_i`` is a length-W vector: its k-th entry is ``sum_i a_i r_{i,k} - sum_i a_i mean_i``
    with ``a_i = 1 / ||r_i - mean_i||`` (``||r_i - mean_i|| = std_i sqrt(W - 1)``). We build it
    one window offset k at a time for all dates at once (the sums over symbols with
    :func:`~prometheus_assets.core.frames.finite_row_sums`, so absent symbols change nothing), so
    the cost is O(N*W) per date instead of the O(N^2 * W) of a correlation matrix. Symbols without a full window, or with constant
    returns over it, are left out (``a_i = 0``) and not counted in ``N``.

    Returns ``(rho_bar, n_used)``; ``rho_bar`` is NaN where fewer than two symbols qualify.
    """
    n_dates = r.shape[0]
    rho = np.full(n_dates, np.nan)
    n_used = np.zeros(n_dates, dtype="int64")
    if n_dates < window:
        return rho, n_used
    with np.errstate(invalid="ignore"):
        norm = std * np.sqrt(window - 1.0)
    usable = full & np.isfinite(norm) & (norm > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(usable, 1.0 / norm, 0.0)
    centre = finite_row_sums(np.where(usable, a * mean, 0.0))
    r0 = np.where(np.isfinite(r), r, 0.0)
    ends = slice(window - 1, None)
    a_end = a[ends]
    sq = np.zeros(n_dates - window + 1)
    for k in range(window):
        u_k = finite_row_sums(a_end * r0[k : n_dates - window + 1 + k]) - centre[ends]
        sq += u_k * u_k
    n = usable.sum(axis=1)[ends].astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        rho[ends] = np.where(n >= 2, (sq - n) / (n * (n - 1.0)), np.nan)
    n_used[ends] = usable.sum(axis=1)[ends]
    return rho, n_used


@dataclass(frozen=True)
class MarketLevel:
    """The equal-weight market's log level and its highest level so far, after the session ``date``.

    The level is the sum of the market's daily log returns from the first day of the history (a
    day without a market return adds nothing), added one day at a time; ``peak`` is the highest
    of 0 and every level up to ``date``. ``date=None``: before the first day (both 0). Carried
    from one run to the next, it lets :func:`market_features` continue ``drawdown_from_peak``
    from a lookback window with the bits of a whole-history computation.
    """

    date: pd.Timestamp | None = None
    level: float = 0.0
    peak: float = 0.0


def _market_levels(index: pd.DatetimeIndex, m_log: np.ndarray, start: MarketLevel) -> tuple[np.ndarray, np.ndarray]:
    """Level and peak on each row after ``start.date`` (NaN on and before it), continuing ``start``.

    ``np.cumsum`` / ``np.maximum.accumulate`` run left to right, one element at a time, so the
    value on a row is ``previous + step`` exactly as a run from the first day computes it.
    """
    after = np.ones(len(index), dtype=bool) if start.date is None else np.asarray(index > pd.Timestamp(start.date))
    level = np.full(len(index), np.nan)
    peak = np.full(len(index), np.nan)
    steps = m_log[after]
    steps = np.where(np.isfinite(steps), steps, 0.0)
    level[after] = np.cumsum(np.concatenate([[float(start.level)], steps]))[1:]
    peak[after] = np.maximum.accumulate(np.concatenate([[float(start.peak)], level[after]]))[1:]
    return level, peak


def market_level_at(returns: pd.DataFrame, date: pd.Timestamp, start: MarketLevel = MarketLevel()) -> MarketLevel:
    """The :class:`MarketLevel` after ``date``, continuing ``start`` over the rows of ``returns`` after it.

    ``returns`` must hold every row dated after ``start.date`` up to ``date`` (from the first day
    when ``start`` is the default).
    """
    wide = returns.loc[: pd.Timestamp(date)]
    index = pd.DatetimeIndex(wide.index)
    with np.errstate(invalid="ignore", divide="ignore"):
        m_log = np.log1p(equal_weight_market_values(wide.to_numpy(dtype="float64")))
    level, peak = _market_levels(index, m_log, start)
    done = ~np.isnan(level)
    if not done.any():
        return MarketLevel(pd.Timestamp(date), start.level, start.peak)
    last = int(np.flatnonzero(done)[-1])
    return MarketLevel(pd.Timestamp(date), float(level[last]), float(peak[last]))


def market_features(returns: pd.DataFrame, window: int, start: MarketLevel = MarketLevel()) -> pd.DataFrame:
    """Trailing-window features of the equal-weight market, one row per date.

    The market return on a day is the mean return of the symbols trading that day. A date gets
    a row once the market has ``window`` returns ending at it.

    Returns:
        ``date, *MARKET_FEATURE_COLUMNS, n_symbols`` where ``n_symbols`` counts the symbols
        with a full window (the ones used by ``correlation`` and ``breadth``). ``drawdown``
        compares the market level with its highest level inside the window (including the
        level just before the window's first return); ``drawdown_from_peak`` with its highest
        level over all history up to the date (expanding, still point-in-time). ``dispersion``
        is the window mean of each day's cross-sectional sample std of returns (all symbols
        trading that day). ``correlation`` / ``dispersion`` are NaN when fewer than two symbols
        qualify; ``breadth`` is NaN when none does.

    ``start``: where ``drawdown_from_peak`` continues from. By default ``returns`` starts at the
    first day of the history. Else ``returns`` is a lookback window: only rows dated after
    ``start.date`` are returned, and they equal a whole-history computation's rows provided
    ``start`` is the exact level after ``start.date`` (:func:`market_level_at`) and ``window - 1``
    rows dated up to ``start.date`` precede them (every other feature is a window statistic).
    """
    wide = _as_wide_returns(returns, window)
    r = wide.to_numpy(dtype="float64", copy=True)
    ann, sqrt_ann = float(TRADING_DAYS_PER_YEAR), float(np.sqrt(TRADING_DAYS_PER_YEAR))
    market = equal_weight_market_values(r)
    with np.errstate(invalid="ignore"):
        m_log = np.log1p(market)
        log_r = np.log1p(r)

    m_mean, m_std = trailing_mean_std(market, window, window)
    has_row = _full_windows(market, window)
    if start.date is not None:
        has_row &= np.asarray(wide.index > pd.Timestamp(start.date))
    level, all_time_peak = _market_levels(wide.index, m_log, start)

    valid = np.isfinite(r)
    n_trading = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xs_mean = finite_row_sums(r) / n_trading
        xs_var = finite_row_sums(np.where(valid, (r - xs_mean[:, None]) ** 2, np.nan)) / (n_trading - 1.0)
    xs_std = np.where(n_trading >= 2, np.sqrt(xs_var), np.nan)

    full = _full_windows(r, window)
    mean, std = trailing_mean_std(r, window, window)
    rho, n_used = _average_pairwise_correlation(r, window, full, mean, std)
    window_log_return = trailing_sums(log_r, window)
    n_full = full.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        breadth = np.where(n_full > 0, ((window_log_return > 0) & full).sum(axis=1) / n_full, np.nan)

    out = pd.DataFrame(
        {
            "date": pd.Series(wide.index.to_numpy(), dtype="datetime64[ns]"),
            "mean_return": m_mean * ann,
            "vol": m_std * sqrt_ann,
            "drawdown": np.expm1(_rolling_drawdowns(m_log, window)[1]),
            "drawdown_from_peak": np.expm1(level - all_time_peak),
            "trend": _rolling_weighted_sum(m_log, _trend_weights(window)) * ann,
            "dispersion": trailing_mean_std(xs_std, window, window)[0],
            "correlation": rho,
            "breadth": breadth,
            "n_symbols": n_full.astype("int64"),
        }
    )
    return out.loc[has_row].reset_index(drop=True)


# --------------------------------------------------------------------------- the encoder
def _check_finite(X: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(X, dtype="float64")
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array (rows x features), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"{what}: input contains NaN or infinite values in {bad} row(s); drop or impute them first")
    return arr


#: Rows projected at a time by :meth:`NumericEncoder.transform` (memory bound, no effect on values).
_TRANSFORM_CHUNK = 32_768


class NumericEncoder(BaseEstimator, TransformerMixin):
    """Standardise features, then project them on principal components: a fixed-size embedding.

    ``fit`` learns a :class:`~sklearn.preprocessing.StandardScaler` and a
    :class:`~sklearn.decomposition.PCA` with ``min(n_components, n_features, n_samples)``
    components (``svd_solver="full"``: exact and deterministic). ``transform`` always returns
    ``n_components`` columns, padding with zeros when fewer components could be fitted, so
    every embedding of a given spec has the same length. ``explained_variance_ratio_`` is padded
    the same way.
    """

    def __init__(self, n_components: int = DEFAULT_N_COMPONENTS, random_state: int = 0) -> None:
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X, y=None) -> "NumericEncoder":
        arr = _check_finite(X, "NumericEncoder.fit")
        if isinstance(self.n_components, bool) or not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {self.n_components!r}")
        if arr.shape[0] < 1:
            raise ValueError("NumericEncoder.fit: no rows to fit on")
        self.n_features_in_ = arr.shape[1]
        self.scaler_ = StandardScaler().fit(arr)
        fitted = int(min(self.n_components, arr.shape[1], arr.shape[0]))
        self.pca_ = PCA(n_components=fitted, svd_solver="full", random_state=self.random_state).fit(self.scaler_.transform(arr))
        self.n_fitted_components_ = fitted
        ratio = np.zeros(self.n_components)
        ratio[:fitted] = self.pca_.explained_variance_ratio_
        self.explained_variance_ratio_ = ratio
        return self

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "pca_"):
            raise ValueError("NumericEncoder is not fitted yet; call fit first")
        arr = _check_finite(X, "NumericEncoder.transform")
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(f"NumericEncoder.transform: expected {self.n_features_in_} features, got {arr.shape[1]}")
        out = np.zeros((arr.shape[0], self.n_components))
        centered = self.scaler_.transform(arr) - self.pca_.mean_
        components = self.pca_.components_
        # PCA.transform is ``centered @ components.T``, but BLAS blocks rows by batch size, so the
        # last bit of a row's embedding depended on how many rows were embedded with it (the daily
        # run embeds one day, a backfill years). Each row is projected on its own here
        # (elementwise products summed along the row), in chunks to bound memory.
        for lo in range(0, arr.shape[0], _TRANSFORM_CHUNK):
            block = centered[lo : lo + _TRANSFORM_CHUNK]
            out[lo : lo + len(block), : self.n_fitted_components_] = (block[:, None, :] * components[None, :, :]).sum(axis=2)
        return out


# --------------------------------------------------------------------------- walk-forward fitting
_PERIOD_OF_FREQUENCY: dict[str, str] = {"YS": "Y", "QS": "Q", "MS": "M"}


def refit_dates(dates: pd.DatetimeIndex, frequency: str = "YS") -> pd.DatetimeIndex:
    """The first of ``dates`` in each year (``"YS"``), quarter (``"QS"``) or month (``"MS"``).

    These are the walk-forward refit days: a model fitted on day D (on data before D) serves
    from D until the next refit day. Only dates present in ``dates`` are returned, so a
    truncated history yields a prefix of the full history's refit dates.
    """
    if frequency not in _PERIOD_OF_FREQUENCY:
        raise ValueError(f"frequency must be one of {sorted(_PERIOD_OF_FREQUENCY)}, got {frequency!r}")
    idx = pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(dates))).sort_values().astype("datetime64[ns]")
    if len(idx) == 0:
        return idx
    periods = idx.to_period(_PERIOD_OF_FREQUENCY[frequency])
    first = pd.Series(idx, index=periods).groupby(level=0, sort=True).min()
    return pd.DatetimeIndex(first.to_numpy(), name=None).astype("datetime64[ns]")


@dataclass(frozen=True)
class FittedEncoder:
    """One walk-forward encoder and its provenance.

    ``fit_date`` is the first day it may be used; it was trained on rows dated from
    ``train_start`` to ``train_end`` (``train_end < fit_date``), ``n_train`` rows in all.
    """

    model_id: str
    fit_date: pd.Timestamp
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    n_train: int
    encoder: NumericEncoder


def _dates_of(features: pd.DataFrame) -> pd.Series:
    if "date" not in features.columns:
        raise ValueError("features must have a 'date' column")
    return pd.to_datetime(features["date"]).astype("datetime64[ns]")


def encoder_model_id(prefix: str, fit_date: pd.Timestamp) -> str:
    """The model id of the encoder fitted on ``fit_date``: ``f"{prefix}enc-{fit_date:%Y%m%d}"``."""
    return f"{prefix}enc-{pd.Timestamp(fit_date):%Y%m%d}"


def fit_walk_forward(
    features: pd.DataFrame,
    feature_cols: list[str],
    fit_dates: pd.DatetimeIndex,
    min_train_rows: int = DEFAULT_MIN_TRAIN_ROWS,
    n_components: int = DEFAULT_N_COMPONENTS,
    prefix: str = "",
) -> list[FittedEncoder]:
    """Fit one :class:`NumericEncoder` per fit date D on all rows dated strictly before D.

    Fit dates with fewer than ``min_train_rows`` training rows are skipped (so the first
    model appears once enough history exists). Rows with a NaN in ``feature_cols`` are left
    out of training. Model ids are :func:`encoder_model_id`.
    """
    dates = _dates_of(features)
    X_all = features[list(feature_cols)].to_numpy(dtype="float64")
    finite = np.isfinite(X_all).all(axis=1)
    models: list[FittedEncoder] = []
    for fit_date in pd.DatetimeIndex(fit_dates).sort_values():
        fit_date = pd.Timestamp(fit_date)
        train = (dates < fit_date).to_numpy() & finite
        n_train = int(train.sum())
        if n_train < min_train_rows or n_train == 0:
            continue
        encoder = NumericEncoder(n_components=n_components).fit(X_all[train])
        train_dates = dates[train]
        models.append(
            FittedEncoder(
                model_id=encoder_model_id(prefix, fit_date),
                fit_date=fit_date,
                train_start=pd.Timestamp(train_dates.min()),
                train_end=pd.Timestamp(train_dates.max()),
                n_train=n_train,
                encoder=encoder,
            )
        )
    return models


def model_index_for_dates(dates: pd.Series | pd.DatetimeIndex, fit_dates: pd.DatetimeIndex | list[pd.Timestamp]) -> np.ndarray:
    """Index of the model (sorted by fit date) in force on each date: latest ``fit_date <= date``; -1 before the first."""
    fd = pd.DatetimeIndex(fit_dates).astype("datetime64[ns]").to_numpy()
    d = pd.DatetimeIndex(dates).astype("datetime64[ns]").to_numpy()
    return np.searchsorted(fd, d, side="right") - 1


def embed_walk_forward(
    features: pd.DataFrame,
    feature_cols: list[str],
    models: list[FittedEncoder],
    keep_features: bool = False,
    z_format: str = "list",
) -> pd.DataFrame:
    """Embed every row with the encoder in force on its date (latest ``fit_date <= date``).

    Rows dated before the first model (the warm-up) are dropped; their count is in
    ``result.attrs["warmup_rows"]``. Output columns: ``date``, ``entity_id`` (when present),
    ``model_id``, ``z_numeric`` (a Python list of ``n_components`` floats per row), then the
    feature columns when ``keep_features``. Rows keep their input order. A NaN feature in a
    row that needs embedding raises ``ValueError`` (see :class:`NumericEncoder`): drop or
    impute such rows first.

    ``z_format="arrow"`` stores ``z_numeric`` as an Arrow ``fixed_size_list<double>`` column
    instead of Python lists: the same values and Parquet type, at a fraction of the memory
    (Python lists cost ~0.5 KB per 16-float row, which matters for millions of rows).
    """
    if z_format not in ("list", "arrow"):
        raise ValueError(f"z_format must be 'list' or 'arrow', got {z_format!r}")
    models = sorted(models, key=lambda m: m.fit_date)
    dates = _dates_of(features)
    which = model_index_for_dates(dates, [m.fit_date for m in models]) if models else np.full(len(features), -1)
    keep = which >= 0
    base_cols = ["date"] + (["entity_id"] if "entity_id" in features.columns else [])
    out = features.loc[keep, base_cols].copy()
    out["date"] = dates[keep].to_numpy()
    used = which[keep]
    X = features.loc[keep, list(feature_cols)].to_numpy(dtype="float64")
    n_comp = models[0].encoder.n_components if models else 0
    Z = np.zeros((len(out), n_comp))
    ids = np.empty(len(out), dtype=object)
    for i in np.unique(used):
        rows = used == i
        Z[rows] = models[i].encoder.transform(X[rows])
        ids[rows] = models[i].model_id
    out["model_id"] = pd.Series(ids, index=out.index, dtype=object)
    if z_format == "arrow":
        import pyarrow as pa

        z_array = pa.FixedSizeListArray.from_arrays(pa.array(Z.ravel(), type=pa.float64()), n_comp)
        out["z_numeric"] = pd.Series(pd.arrays.ArrowExtensionArray(z_array), index=out.index)
    else:
        out["z_numeric"] = pd.Series(Z.tolist(), index=out.index, dtype=object)
    if keep_features:
        for col in feature_cols:
            out[col] = features.loc[keep, col].to_numpy()
    out = out.reset_index(drop=True)
    out.attrs["warmup_rows"] = int((~keep).sum())
    return out
