"""StabilityVector and SoftTargetState: how close is each instrument to breaking?

What this module computes
-------------------------
For every (date, instrument) with a full trailing window of data, a **StabilityVector** of six
components, each a number in [0, 1] where **1 means stable** and 0 means fragile:

=====================  ==========================================================  ===================================
component              raw metric (trailing ``window`` sessions, data <= date)      transform to [0, 1]
=====================  ==========================================================  ===================================
``volatility``         annualised realised vol ``sigma = std(r) * sqrt(252)``       ``half_life_score(sigma, VOL_HALF, VOL_POWER)``
``drawdown``           depth below the 252-session rolling max of price            ``half_life_score(dd, DRAWDOWN_HALF, DRAWDOWN_POWER)``
                       (the max of whatever is available when shorter)
``trend``              ``z = sum(log(1 + r)) / (std(log(1 + r)) * sqrt(window))``  ``logistic(z / TREND_Z_SCALE)`` (0.5 = flat)
                       (the window's log return measured in units of its noise)
``liquidity``          average dollar volume ``ADV`` (price x volume) and its       ``LIQUIDITY_LEVEL_WEIGHT * logistic((log10 ADV - LIQUIDITY_LOG10_MID) / LIQUIDITY_LOG10_SCALE)
                       coefficient of variation ``cv = std(dv) / ADV``              + (1 - LIQUIDITY_LEVEL_WEIGHT) * half_life_score(cv, LIQUIDITY_CV_HALF, 2)``
``tail_risk``          5 % historical expected shortfall: minus the mean of the     ``half_life_score(es, TAIL_ES_HALF, TAIL_POWER)``
                       ``round(TAIL_PROBABILITY * window)`` worst daily returns
``market_correlation`` correlation of daily returns with the market's              ``logistic((CORRELATION_MID - rho) / CORRELATION_SCALE)``
=====================  ==========================================================  ===================================

with ``half_life_score(x, h, p) = 1 / (1 + (x / h) ** p)`` for ``x >= 0``: 1 at ``x = 0``, exactly
0.5 at the "half-life" ``x = h``, falling towards 0 as ``x`` grows. ``logistic(u) = 1 / (1 + e^-u)``.
All transforms are **fixed and monotone** (no cross-sectional ranks), so a score means the same
thing in 1990 and in 2022, for 20 stocks or for 5,000.

Why these directions: high volatility, a deep drawdown, a falling price, thin or erratic
trading, fat left tails and a high correlation with the market (nowhere to hide in a selloff)
all make a name *less stable*.

**Liquidity without volumes.** When ``volumes is None`` (e.g. the bundled S&P 500 data, which
has prices only) the liquidity component is NaN and is simply left out of the fragility index
(the other weights are renormalised). The same holds for any single NaN component, e.g. a
liquidity window with a missing volume.

**Fragility index** = weighted mean of ``1 - component`` over the available components, with
weights :data:`COMPONENT_WEIGHTS`. It is in [0, 1]; 0 = every component perfectly stable.

SoftTargetState
---------------
:func:`soft_target_states` turns vectors into one of :data:`SOFT_TARGET_CLASSES`. The rules are
checked **in this order**; the first that fires wins (``f`` = fragility index, thresholds ``T``
taken from :data:`THRESHOLDS` for the day's regime label):

============  ==========================================================================  ==================================
class         rule                                                                        meaning
============  ==========================================================================  ==================================
BREAKER       ``drawdown <= T.breaker_drawdown`` or ``f >= T.breaker``                     already broken / breaking
TARGETABLE    ``f >= T.fragile`` and ``trend <= T.targetable_trend``                       fragile, falling and with fat left
              and ``tail_risk <= T.targetable_tail``                                       tails: vulnerable to being pushed over
FRAGILE       ``f >= T.fragile``                                                           fragile but not (yet) falling
WATCH         ``f >= T.watch``                                                             worth watching
STABLE        otherwise
============  ==========================================================================  ==================================

**Regime-dependent thresholds.** In CRISIS or RISK_OFF every stock's volatility, drawdown and
correlation worsen together; with fixed thresholds a market-wide selloff would classify the
whole market as BREAKER and the label would stop discriminating. So the thresholds *rise*
(and the breaker drawdown score falls) in stressed regimes and are slightly stricter in calm
CARRY markets. A date whose label is missing, NaN or unknown uses ``THRESHOLDS["DEFAULT"]``.
The label for date t must itself be known at t (it is looked up by exact date, never
forward-filled from the future).

Point in time
-------------
Every number for date t uses only rows dated <= t: trailing rolling windows, a running price
index and forward-only cumulative sums. Computing on history cut at t gives bit-identical rows
for every date <= t (tested).

Pure numpy + pandas; no Dagster, no I/O. Work is done in blocks of columns (every statistic is
per column). Measured on a 2-core machine: 3,000 instruments x 5,000 sessions with volumes take
~12 s for :func:`stability_vectors` (14.7 M rows, ~5.5 GB peak) and ~3 s for
:func:`soft_target_states`; the bundled 20 x 8,313 history takes ~0.1 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from prometheus_assets.core.regime import REGIME_LABELS

__all__ = [
    "COMPONENTS",
    "COMPONENT_WEIGHTS",
    "SOFT_TARGET_CLASSES",
    "THRESHOLDS",
    "drawdown_score",
    "half_life_score",
    "liquidity_score",
    "logistic",
    "market_correlation_score",
    "soft_target_states",
    "stability_vectors",
    "tail_risk_score",
    "trend_score",
    "volatility_score",
]

#: The StabilityVector components, in output column order.
COMPONENTS: Final[tuple[str, ...]] = ("volatility", "drawdown", "trend", "liquidity", "tail_risk", "market_correlation")
#: The SoftTargetState classes, from most to least stable.
SOFT_TARGET_CLASSES: Final[tuple[str, ...]] = ("STABLE", "WATCH", "FRAGILE", "TARGETABLE", "BREAKER")
#: Regime labels produced by the regime layer.

#: Weight of each component in the fragility index (renormalised over available components).
COMPONENT_WEIGHTS: Final[dict[str, float]] = {
    "volatility": 0.20,
    "drawdown": 0.25,
    "trend": 0.15,
    "liquidity": 0.10,
    "tail_risk": 0.20,
    "market_correlation": 0.10,
}

# ---- transform constants (see the module docstring table) -----------------------------------
#: Sessions per year, used to annualise.
TRADING_DAYS_PER_YEAR: Final[int] = 252
#: Annualised volatility that scores 0.5, and the steepness of the fall.
VOL_HALF: Final[float] = 0.40
VOL_POWER: Final[float] = 2.0
#: Rolling-max lookback (sessions) for the drawdown; shorter histories use what is available.
DRAWDOWN_LOOKBACK: Final[int] = 252
#: Drawdown depth (fraction below the rolling max) that scores 0.5, and the steepness.
DRAWDOWN_HALF: Final[float] = 0.20
DRAWDOWN_POWER: Final[float] = 2.0
#: Divisor of the trend z-score inside the logistic (z = -1 scores ~0.27 with 1.0).
TREND_Z_SCALE: Final[float] = 1.0
#: Returns are floored here before taking log(1 + r) (a -100 % day would give -inf).
LOG_RETURN_FLOOR: Final[float] = -0.99
#: log10 of the average daily dollar volume that scores 0.5 on the level part ($1M a day).
LIQUIDITY_LOG10_MID: Final[float] = 6.0
#: One unit of LIQUIDITY_LOG10_SCALE in log10 ADV moves the level logit by one.
LIQUIDITY_LOG10_SCALE: Final[float] = 0.5
#: Coefficient of variation of daily dollar volume that scores 0.5 on the stability part.
LIQUIDITY_CV_HALF: Final[float] = 1.0
#: Share of the level part in the liquidity score (the rest is dollar-volume stability).
LIQUIDITY_LEVEL_WEIGHT: Final[float] = 0.75
#: Tail probability of the historical expected shortfall.
TAIL_PROBABILITY: Final[float] = 0.05
#: Daily expected shortfall (a loss, as a positive fraction) that scores 0.5, and steepness.
TAIL_ES_HALF: Final[float] = 0.05
TAIL_POWER: Final[float] = 2.0
#: Correlation with the market that scores 0.5, and the logistic scale (0.3 -> ~0.92, 0.9 -> ~0.08).
CORRELATION_MID: Final[float] = 0.60
CORRELATION_SCALE: Final[float] = 0.12

#: Soft-target thresholds per regime label; "DEFAULT" is used for missing / unknown labels.
#: ``watch`` / ``fragile`` / ``breaker`` apply to the fragility index (>=), ``breaker_drawdown``
#: to the drawdown component (<=, 0.10 = a ~60 % drawdown with the constants above),
#: ``targetable_trend`` / ``targetable_tail`` to the trend and tail_risk components (<=).
THRESHOLDS: Final[dict[str, dict[str, float]]] = {
    "DEFAULT": {"watch": 0.35, "fragile": 0.50, "breaker": 0.70, "breaker_drawdown": 0.10, "targetable_trend": 0.30, "targetable_tail": 0.50},
    "NEUTRAL": {"watch": 0.35, "fragile": 0.50, "breaker": 0.70, "breaker_drawdown": 0.10, "targetable_trend": 0.30, "targetable_tail": 0.50},
    "CARRY": {"watch": 0.32, "fragile": 0.47, "breaker": 0.68, "breaker_drawdown": 0.12, "targetable_trend": 0.30, "targetable_tail": 0.55},
    "RISK_OFF": {"watch": 0.40, "fragile": 0.55, "breaker": 0.75, "breaker_drawdown": 0.08, "targetable_trend": 0.25, "targetable_tail": 0.45},
    "CRISIS": {"watch": 0.45, "fragile": 0.62, "breaker": 0.80, "breaker_drawdown": 0.05, "targetable_trend": 0.20, "targetable_tail": 0.40},
}

#: Columns of :func:`stability_vectors` output.
VECTOR_COLUMNS: Final[list[str]] = ["date", "entity_type", "entity_id", *COMPONENTS, "fragility_index"]
#: Extra columns added by :func:`soft_target_states`.
STATE_COLUMNS: Final[list[str]] = ["regime", "soft_target_class", "rule", *(f"contrib_{c}" for c in COMPONENTS)]

#: Cells (sessions x columns) per block of columns processed at a time (bounds temporaries).
_BLOCK_CELLS: Final[int] = 1 << 20
#: Cells per chunk of the expected-shortfall sliding window (window x rows x columns).
_ES_CHUNK_CELLS: Final[int] = 1 << 22


# --------------------------------------------------------------------------- transforms
def logistic(u: np.ndarray | float) -> np.ndarray:
    """``1 / (1 + exp(-u))``, computed without overflow warnings; NaN stays NaN."""
    u = np.asarray(u, dtype=float)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-u))


def half_life_score(x: np.ndarray | float, half: float, power: float) -> np.ndarray:
    """``1 / (1 + (max(x, 0) / half) ** power)``: 1 at 0, 0.5 at ``half``, decreasing; NaN stays NaN."""
    x = np.maximum(np.asarray(x, dtype=float), 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        return 1.0 / (1.0 + (x / half) ** power)


def volatility_score(annualised_vol: np.ndarray | float) -> np.ndarray:
    """Volatility component from annualised vol (0.40 -> 0.5; higher vol -> lower score)."""
    return half_life_score(annualised_vol, VOL_HALF, VOL_POWER)


def drawdown_score(depth: np.ndarray | float) -> np.ndarray:
    """Drawdown component from the depth below the rolling max (0.20 -> 0.5)."""
    return half_life_score(depth, DRAWDOWN_HALF, DRAWDOWN_POWER)


def trend_score(z: np.ndarray | float) -> np.ndarray:
    """Trend component from the window's log return in noise units (0 -> 0.5, rising in z)."""
    return logistic(np.asarray(z, dtype=float) / TREND_Z_SCALE)


def tail_risk_score(expected_shortfall: np.ndarray | float) -> np.ndarray:
    """Tail-risk component from the daily 5 % expected shortfall as a positive loss (0.05 -> 0.5)."""
    return half_life_score(expected_shortfall, TAIL_ES_HALF, TAIL_POWER)


def market_correlation_score(rho: np.ndarray | float) -> np.ndarray:
    """Market-correlation component (0.6 -> 0.5; more correlated -> lower score)."""
    return logistic((CORRELATION_MID - np.asarray(rho, dtype=float)) / CORRELATION_SCALE)


def liquidity_score(average_dollar_volume: np.ndarray | float, dollar_volume_cv: np.ndarray | float) -> np.ndarray:
    """Liquidity component from the average daily dollar volume and its coefficient of variation."""
    adv = np.asarray(average_dollar_volume, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = logistic((np.log10(np.maximum(adv, 0.0)) - LIQUIDITY_LOG10_MID) / LIQUIDITY_LOG10_SCALE)
    steadiness = half_life_score(dollar_volume_cv, LIQUIDITY_CV_HALF, 2.0)
    return LIQUIDITY_LEVEL_WEIGHT * level + (1.0 - LIQUIDITY_LEVEL_WEIGHT) * steadiness


# --------------------------------------------------------------------------- helpers
def _wide(frame: pd.DataFrame, index: pd.DatetimeIndex, columns: pd.Index) -> np.ndarray:
    """``frame`` aligned to (index, columns) as a float64 array, non-finite -> NaN."""
    f = frame.copy()
    f.index = pd.DatetimeIndex(f.index).astype("datetime64[ns]")
    values = f.reindex(index=index, columns=columns).to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isfinite(values), values, np.nan)


def _rolling(values: np.ndarray, window: int, how: str, min_periods: int | None = None) -> np.ndarray:
    """Trailing rolling statistic per column.

    ``mean`` / ``sum`` / ``std`` over full windows are computed from each window's own values,
    added oldest to newest, instead of pandas' online updates: an online running sum carries
    rounding from every earlier row, so the same day would get a slightly different value
    depending on where the loaded history starts (a backfill in two ranges would not be
    bit-identical to one range). NaN propagates. ``max`` is exact either way and uses pandas.

    Hand-written as ``window`` vectorised adds, not numpy's reduction over a sliding-window
    view: numpy sums such a view in row order when it holds several columns but pairwise when it
    holds one, so a column's last bits depended on how many columns shared its block (which
    depends on the history's length: a daily run and a backfill differed by an ulp).
    """
    if how == "max" or (min_periods is not None and min_periods != window):
        roll = pd.DataFrame(values, copy=False).rolling(window, min_periods=window if min_periods is None else min_periods)
        return getattr(roll, how)().to_numpy()
    if how not in ("sum", "mean", "std"):
        raise ValueError(f"unsupported rolling statistic {how!r}")
    t, n = values.shape
    out = np.full((t, n), np.nan)
    if t < window or n == 0:
        return out
    rows = t - window + 1  # windows; window w covers values[w : w + window]
    total = values[0:rows].copy()
    for k in range(1, window):
        total += values[k : k + rows]
    if how == "sum":
        out[window - 1 :] = total
        return out
    mean = total / window
    if how == "mean":
        out[window - 1 :] = mean
        return out
    deviation = values[0:rows] - mean
    squares = deviation * deviation
    for k in range(1, window):
        deviation = values[k : k + rows] - mean
        squares += deviation * deviation
    out[window - 1 :] = np.sqrt(squares / (window - 1))
    return out


def _trailing_count(valid: np.ndarray, window: int) -> np.ndarray:
    """Number of True cells in each trailing window (exact integer arithmetic)."""
    c = np.cumsum(valid, axis=0, dtype=np.int64)
    out = c.copy()
    out[window:] -= c[:-window]
    return out


def _expected_shortfall(returns: np.ndarray, window: int, k: int) -> np.ndarray:
    """Minus the mean of the ``k`` worst returns of each trailing window (NaN for the first rows).

    NaN cells are replaced by 0 here; callers mask windows that are not full. Each window is
    handled independently (and the k worst values are sorted before summing), so the result for
    a row never depends on other rows.
    """
    t, n = returns.shape
    out = np.full((t, n), np.nan)
    if t < window or n == 0:
        return out
    filled = np.where(np.isfinite(returns), returns, 0.0)
    step = max(1, _ES_CHUNK_CELLS // max(1, window * (t - window + 1)))
    for j in range(0, n, step):
        view = sliding_window_view(filled[:, j : j + step], window, axis=0)  # (t-w+1, cols, w)
        worst = np.sort(np.partition(view, k - 1, axis=-1)[..., :k], axis=-1)
        out[window - 1 :, j : j + step] = -worst.sum(axis=-1) / k
    return out


def _require_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise ValueError(f"window must be an integer >= 2, got {window!r}")


# --------------------------------------------------------------------------- vectors
def stability_vectors(
    returns: pd.DataFrame,
    market_returns: pd.Series,
    volumes: pd.DataFrame | None = None,
    prices: pd.DataFrame | None = None,
    window: int = 63,
    closes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """StabilityVectors for every (date, symbol) with a full trailing window.

    Args:
        returns: wide daily simple returns, index = dates (sorted), columns = symbols; NaN where
            a symbol does not trade.
        market_returns: the market's daily simple returns (e.g. the S&P 500 index), index = dates.
        volumes: wide share volumes like ``returns``; ``None`` -> liquidity is NaN and left out
            of the fragility index. Needs ``prices`` (dollar volume = price x volume).
        prices: wide (adjusted) prices like ``returns``, used for the drawdown and dollar volume.
            ``None`` -> a price index compounded from ``returns`` is used for the drawdown.
        closes: wide unadjusted closes like ``prices`` (default ``prices``): the dollar volume
            is close x volume as traded that day (a back-adjusted price divides by every later
            split, which would leak into the liquidity of earlier days).
        window: trailing sessions per window (>= 2). A row exists only when the symbol has a
            return on each of the last ``window`` sessions and so has the market.

    Returns:
        Long frame :data:`VECTOR_COLUMNS`: ``date`` (datetime64[ns]), ``entity_type``
        (``"instrument"``), ``entity_id`` (the symbol), one [0, 1] column per component
        (1 = stable; NaN = unavailable) and ``fragility_index`` in [0, 1]. Sorted by
        (date, entity_id).

    Raises:
        ValueError: a bad ``window``, or ``volumes`` without ``prices``.
    """
    _require_window(window)
    if volumes is not None and prices is None:
        raise ValueError("volumes need prices: liquidity is measured in dollar volume (price x volume)")
    index = pd.DatetimeIndex(returns.index).astype("datetime64[ns]")
    if not index.is_monotonic_increasing or not index.is_unique:
        raise ValueError("returns.index must be sorted, unique dates")
    columns = pd.Index(sorted(map(str, returns.columns)), dtype=object)
    m_series = market_returns.copy()
    m_series.index = pd.DatetimeIndex(m_series.index).astype("datetime64[ns]")
    m = m_series.reindex(index).to_numpy(dtype=float, na_value=np.nan)
    m = np.where(np.isfinite(m), m, np.nan)
    market = _MarketMoments(
        values=m,
        mean=_rolling(m[:, None], window, "mean")[:, 0],
        sd=_rolling(m[:, None], window, "std")[:, 0],
    )
    frames = {
        "returns": _str_columns(returns),
        "prices": None if prices is None else _str_columns(prices),
        "volumes": None if volumes is None else _str_columns(volumes),
        "closes": None if volumes is None else _str_columns(prices if closes is None else closes),
    }

    # Work on blocks of columns: every statistic is per column, so blocks give the same numbers
    # as the whole frame while keeping temporaries small (and cache / allocator friendly).
    t, n = len(index), len(columns)
    step = max(1, _BLOCK_CELLS // max(1, t))
    chunks: list[dict[str, np.ndarray]] = []
    for j in range(0, n, step):
        cols = columns[j : j + step]
        block = {k: None if f is None else _wide(f, index, cols) for k, f in frames.items()}
        dollar = None if block["volumes"] is None else block["closes"] * block["volumes"]
        chunks.append(_block_components(block["returns"], market, block["prices"], dollar, window))

    # Gather the rows with a full window in (date, symbol) order.
    full = np.concatenate([c["full"] for c in chunks], axis=1) if chunks else np.zeros((t, 0), dtype=bool)
    rows, cols_idx = np.nonzero(full)
    values = np.empty((len(COMPONENTS) + 1, len(rows)))
    for i, name in enumerate(COMPONENTS):
        if chunks:
            values[i] = np.concatenate([c[name] for c in chunks], axis=1)[full]
    del chunks, full
    values[-1] = _fragility(list(values[:-1]))
    # One float block, no copy; identifiers inserted in front.
    out = pd.DataFrame(values.T, columns=[*COMPONENTS, "fragility_index"], copy=False)
    out.insert(0, "entity_id", pd.Series(columns.to_numpy(dtype=object)[cols_idx], dtype=object))
    out.insert(0, "entity_type", pd.Series(np.array(["instrument"], dtype=object)[np.zeros(len(rows), dtype=np.intp)], dtype=object))
    out.insert(0, "date", pd.Series(index.values[rows], dtype="datetime64[ns]"))
    return out


@dataclass(frozen=True)
class _MarketMoments:
    """The market series and its trailing mean / standard deviation (computed once)."""

    values: np.ndarray
    mean: np.ndarray
    sd: np.ndarray


def _block_components(
    r: np.ndarray,
    market: _MarketMoments,
    p: np.ndarray | None,
    dollar_volume: np.ndarray | None,
    window: int,
) -> dict[str, np.ndarray]:
    """The six component scores (T x block) and the full-window mask for one block of columns
    (``dollar_volume``: unadjusted close x volume, None without volumes)."""
    m = market.values
    valid = np.isfinite(r) & np.isfinite(m)[:, None]
    full = _trailing_count(valid, window) == window
    rv = np.where(valid, r, np.nan)
    parts: dict[str, np.ndarray] = {"full": full}

    # volatility
    sd = _rolling(rv, window, "std")
    parts["volatility"] = volatility_score(sd * math.sqrt(TRADING_DAYS_PER_YEAR))

    # market correlation (inside a full window both series are complete, so the market's own
    # rolling moments are the pairwise ones; rows without a full window are dropped later)
    mean_rm = _rolling(rv * m[:, None], window, "mean")
    mean_r = _rolling(rv, window, "mean")
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = (mean_rm - mean_r * market.mean[:, None]) * (window / (window - 1))
        denom = sd * market.sd[:, None]
        rho = np.where(denom > 0, cov / denom, 0.0)
    rho = np.clip(np.where(np.isnan(cov), np.nan, rho), -1.0, 1.0)
    parts["market_correlation"] = market_correlation_score(rho)

    # tail risk: historical expected shortfall
    k = max(1, int(round(TAIL_PROBABILITY * window)))
    parts["tail_risk"] = tail_risk_score(np.maximum(_expected_shortfall(rv, window, k), 0.0))

    # trend: the window's log return in units of its own noise
    logr = np.log1p(np.maximum(rv, LOG_RETURN_FLOOR))
    log_sum = _rolling(logr, window, "sum")
    log_sd = _rolling(logr, window, "std")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(log_sd > 0, log_sum / (log_sd * math.sqrt(window)), np.where(log_sum == 0, 0.0, np.sign(log_sum) * np.inf))
    parts["trend"] = trend_score(np.where(np.isnan(log_sum), np.nan, z))

    # drawdown from the rolling max of price (or of a price index compounded from returns)
    if p is None:
        p = np.cumprod(np.where(np.isfinite(r), 1.0 + r, 1.0), axis=0)
        p[~np.isfinite(r)] = np.nan
    peak = _rolling(p, DRAWDOWN_LOOKBACK, "max", min_periods=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.clip(1.0 - p / peak, 0.0, 1.0)
    parts["drawdown"] = drawdown_score(depth)

    # liquidity: dollar-volume level and steadiness
    if dollar_volume is not None:
        dv = dollar_volume
        adv = _rolling(dv, window, "mean")
        dv_sd = _rolling(dv, window, "std")
        with np.errstate(divide="ignore", invalid="ignore"):
            cv = np.where(adv > 0, dv_sd / adv, np.inf)
        cv = np.where(np.isnan(adv) | np.isnan(dv_sd), np.nan, cv)
        parts["liquidity"] = liquidity_score(adv, cv)
    else:
        parts["liquidity"] = np.full(r.shape, np.nan)
    return parts


def _str_columns(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.copy()
    f.columns = f.columns.map(str)
    return f


def _fragility(components: list[np.ndarray]) -> np.ndarray:
    """Weighted mean of ``1 - component`` over available (finite) components, one value per row.

    ``components`` are 1-D arrays in :data:`COMPONENTS` order. Accumulates in place (one
    component at a time) to keep memory flat on 10^7 rows.
    """
    num = np.zeros(len(components[0]))
    den = np.zeros(len(components[0]))
    for name, values in zip(COMPONENTS, components):
        avail = np.isfinite(values)
        weight = COMPONENT_WEIGHTS[name]
        num += np.where(avail, (1.0 - values) * weight, 0.0)
        den += avail * weight
    with np.errstate(invalid="ignore", divide="ignore"):
        frag = num / den
    return np.clip(frag, 0.0, 1.0)


# --------------------------------------------------------------------------- soft targets
def _regime_codes(dates: pd.Series, regime_labels: pd.Series | None) -> np.ndarray:
    """Index into ``list(THRESHOLDS)`` per row: the date's label if known there, else "DEFAULT" (0)."""
    codes = np.zeros(len(dates), dtype=np.intp)
    if regime_labels is None or len(dates) == 0:
        return codes
    labels = regime_labels.copy()
    labels.index = pd.DatetimeIndex(labels.index).astype("datetime64[ns]")
    labels = labels[~labels.index.duplicated(keep="last")]
    date_code, uniques = pd.factorize(pd.Series(dates).astype("datetime64[ns]"))
    keys = list(THRESHOLDS)
    per_date = labels.reindex(pd.DatetimeIndex(uniques)).to_numpy(dtype=object)
    key_of_date = np.array([keys.index(x) if isinstance(x, str) and x in THRESHOLDS else 0 for x in per_date], dtype=np.intp)
    valid = date_code >= 0
    codes[valid] = key_of_date[date_code[valid]]
    return codes


def soft_target_states(vectors: pd.DataFrame, regime_labels: pd.Series | None = None) -> pd.DataFrame:
    """Classify StabilityVectors into SoftTargetStates (see the rule table in the module docstring).

    Args:
        vectors: output of :func:`stability_vectors` (needs ``date``, the component columns and
            ``fragility_index``).
        regime_labels: optional Series, index = dates, values = regime labels (CRISIS,
            RISK_OFF, CARRY, NEUTRAL). Each row uses the thresholds of its own date's label
            (exact date match, no filling); missing / unknown labels use ``THRESHOLDS["DEFAULT"]``.

    Returns:
        ``vectors`` plus ``regime`` (the THRESHOLDS key used), ``soft_target_class``, ``rule``
        (the rule that fired, with its thresholds and regime, e.g.
        ``"FRAGILE: fragility>=0.62 [CRISIS]"``) and ``contrib_<component>``: each available
        component's share ``w_c (1 - s_c) / sum_j w_j (1 - s_j)`` of the fragility index,
        summing to 1 over available components (NaN for unavailable ones). When every available
        component is exactly 1 (zero fragility) the shares are the weights' shares. A hand-made
        row with a NaN fragility index fires no rule and ends up STABLE (``stability_vectors``
        never emits one).
    """
    out = vectors.copy(deep=False)
    n = len(out)
    comp = {c: out[c].to_numpy(dtype=float, na_value=np.nan) for c in COMPONENTS}
    frag = out["fragility_index"].to_numpy(dtype=float, na_value=np.nan)
    keys = list(THRESHOLDS)
    key_code = _regime_codes(out["date"], regime_labels)

    # Rules in priority order: (class, rule text template, condition on scalar thresholds T).
    rules: list[tuple[str, str, object]] = [
        ("BREAKER", "drawdown<={breaker_drawdown:.2f}", lambda x, T: x["drawdown"] <= T["breaker_drawdown"]),
        ("BREAKER", "fragility>={breaker:.2f}", lambda x, T: x["frag"] >= T["breaker"]),
        (
            "TARGETABLE",
            "fragility>={fragile:.2f} & trend<={targetable_trend:.2f} & tail_risk<={targetable_tail:.2f}",
            lambda x, T: (x["frag"] >= T["fragile"]) & (x["trend"] <= T["targetable_trend"]) & (x["tail_risk"] <= T["targetable_tail"]),
        ),
        ("FRAGILE", "fragility>={fragile:.2f}", lambda x, T: x["frag"] >= T["fragile"]),
        ("WATCH", "fragility>={watch:.2f}", lambda x, T: x["frag"] >= T["watch"]),
    ]
    stable_code = len(rules)
    rule_code = np.full(n, stable_code, dtype=np.intp)
    for code in np.unique(key_code):
        # One pass per regime present, with that regime's thresholds as scalars.
        sel = slice(None) if np.all(key_code == code) else np.flatnonzero(key_code == code)
        x = {"frag": frag[sel], "drawdown": comp["drawdown"][sel], "trend": comp["trend"][sel], "tail_risk": comp["tail_risk"][sel]}
        codes = np.full(len(x["frag"]), stable_code, dtype=np.intp)
        for i in reversed(range(len(rules))):  # the highest-priority rule is written last
            codes[rules[i][2](x, THRESHOLDS[keys[code]])] = i
        rule_code[sel] = codes

    classes = np.array([r[0] for r in rules] + ["STABLE"], dtype=object)
    templates = [r[1] for r in rules] + ["fragility<{watch:.2f}"]
    texts = np.array([[f"{classes[i]}: {tpl.format(**THRESHOLDS[k])} [{k}]" for k in keys] for i, tpl in enumerate(templates)], dtype=object)
    out["regime"] = pd.Series(np.array(keys, dtype=object)[key_code], index=out.index, dtype=object)
    out["soft_target_class"] = pd.Series(classes[rule_code], index=out.index, dtype=object)
    out["rule"] = pd.Series(texts[rule_code, key_code], index=out.index, dtype=object)

    # Contributions: w_c (1 - s_c) / sum_j w_j (1 - s_j); NaN components stay NaN.
    total = np.zeros(n)
    for c in COMPONENTS:
        part = (1.0 - comp[c]) * COMPONENT_WEIGHTS[c]
        np.add(total, part, out=total, where=np.isfinite(part))
    zero = np.flatnonzero(~(total > 0))
    for c in COMPONENTS:
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (1.0 - comp[c]) * COMPONENT_WEIGHTS[c] / total
        if len(zero):  # zero fragility: shares of the available weights
            avail = np.vstack([np.isfinite(comp[j][zero]) for j in COMPONENTS])
            weight_total = (avail * np.array([COMPONENT_WEIGHTS[j] for j in COMPONENTS])[:, None]).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                share[zero] = np.where(np.isfinite(comp[c][zero]), COMPONENT_WEIGHTS[c] / weight_total, np.nan)
        out[f"contrib_{c}"] = share
    return out
