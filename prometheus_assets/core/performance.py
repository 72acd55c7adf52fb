"""Sleeve evaluation: metrics of a book's daily returns by slice, over rolling windows, and alpha IC.

A *book* (sleeve) earns a daily simple-returns series. This module answers three questions:

1. **How good is it, and where?** :func:`sliced_metrics` computes the metric vector — every
   metric of :func:`prometheus_assets.core.metrics.metric_vector` plus turnover, holding period
   and trade win rate — over the whole history and over slices of it: each market regime, each
   half of the history, each calendar year. A book that only works in one slice is fragile.
2. **How does it evolve?** :func:`rolling_metrics` gives Sharpe, volatility, total return, max
   drawdown (and optionally the mean IC) over trailing windows, for charts and monitoring.
3. **Does its alpha predict?** :func:`alpha_ic` is the daily rank IC of the book's alpha against
   forward returns, dated when it becomes *known*; :func:`alpha_decay` is the mean IC per horizon.

Conventions are those of :mod:`prometheus_assets.core.metrics` (empyrical's): NaN returns are
dropped before any metric, 252 sessions a year, Sharpe = mean / std (ddof=1) × √252, drawdowns
are ≤ 0 and measured on the compounded curve starting at 1 (the start counts as a peak).

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from prometheus_assets.core import metrics
from prometheus_assets.core.evaluation import forward_returns_wide, ic_summary, rank_ic_wide
from prometheus_assets.core.frames import labels_in_force

__all__ = [
    "DECAY_HORIZONS",
    "ROLLING_COLUMNS",
    "ROLLING_WINDOWS",
    "SLICE_EXTRA_METRICS",
    "alpha_decay",
    "alpha_ic",
    "regime_slices",
    "rolling_metrics",
    "sliced_metrics",
    "slices",
]

#: Metrics :func:`sliced_metrics` adds to :func:`metrics.metric_vector`'s keys, in order.
SLICE_EXTRA_METRICS: Final[tuple[str, ...]] = ("turnover", "average_holding_sessions", "trade_win_rate", "n_days")

#: Columns of :func:`rolling_metrics`, in order.
ROLLING_COLUMNS: Final[tuple[str, ...]] = ("date", "window", "sharpe_ratio", "annual_volatility", "total_return", "max_drawdown", "ic")

#: Default trailing windows (sessions) of :func:`rolling_metrics`.
ROLLING_WINDOWS: Final[tuple[int, ...]] = (63, 252)

#: Default forward horizons (sessions) of :func:`alpha_decay`.
DECAY_HORIZONS: Final[tuple[int, ...]] = (1, 5, 10, 20, 40, 60)


# --------------------------------------------------------------------------------------------
# Sliced metrics
# --------------------------------------------------------------------------------------------


def regime_slices(index: pd.DatetimeIndex, regimes: pd.Series, in_force: bool = True) -> list[tuple[str, str, np.ndarray]]:
    """("regime", label, boolean mask over ``index``) for every label present, in label order.

    ``in_force``: a date's label is the one in force (:func:`~prometheus_assets.core.frames.labels_in_force`:
    the previous date's), as for returns earned on positions set the day before; ``False``: each
    date's own label (values dated when they were decided, such as a signal's IC by its signal date).
    """
    labels = labels_in_force(regimes, index) if in_force else regimes.reindex(index)
    present = sorted({str(v) for v in labels.dropna().unique()})
    label_str = labels.astype("str")
    known = labels.notna().to_numpy()
    return [("regime", label, (label_str == label).to_numpy() & known) for label in present]


def slices(index: pd.DatetimeIndex, regimes: pd.Series | None) -> list[tuple[str, str, np.ndarray]]:
    """(scope, slice, boolean mask over ``index``) for every slice of :func:`sliced_metrics`.

    Pass the result to :func:`sliced_metrics` / :func:`slice_means` to reuse it for several series
    on the same dates (it is what they compute themselves otherwise). The regime slices are by the
    label in force (:func:`regime_slices`).
    """
    n = len(index)
    out: list[tuple[str, str, np.ndarray]] = [("overall", "all", np.ones(n, dtype=bool))]
    if regimes is not None:
        out.extend(regime_slices(index, regimes))
    positions = np.arange(n)
    middle = n // 2
    out.append(("period", "first_half", positions < middle))
    out.append(("period", "second_half", positions >= middle))
    years = index.year
    for year in sorted(set(years)):
        out.append(("year", f"{year:04d}", np.asarray(years == year)))
    return out


def sliced_metrics(
    returns: pd.Series,
    regimes: pd.Series | None = None,
    turnover: pd.Series | None = None,
    trades: pd.DataFrame | None = None,
    risk_free: float = 0.0,
    precomputed: list[tuple[str, str, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """The metric vector m(config) of one book, overall and per slice.

    Args:
        returns: daily simple returns of the book, indexed by sorted dates.
        regimes: optional regime label per date (e.g. CRISIS / RISK_OFF / NEUTRAL / CARRY); it is
            aligned to ``returns``' dates (dates without a label belong to no regime slice).
        turnover: optional daily turnover of the book (e.g. ``sum |Δw|`` per session), indexed by
            date; aligned to ``returns``' dates.
        trades: optional closed round trips of the book (:func:`prometheus_assets.core.trades.round_trips`).
        risk_free: per-period risk-free rate for the Sharpe / Sortino ratios.
        precomputed: :func:`slices` of ``returns``' dates and ``regimes``, if already at hand.

    Returns:
        One row per slice with columns ``scope, slice, start, end``, every key of
        :func:`metrics.metric_vector`, then :data:`SLICE_EXTRA_METRICS`. Slices, in order:

        - ``("overall", "all")``;
        - ``("regime", <label>)`` for every label present on ``returns``' dates (sorted);
        - ``("period", "first_half")`` / ``("period", "second_half")``: the first ``n // 2``
          dates and the rest (with an odd count the middle date is in the second half);
        - ``("year", "YYYY")`` per calendar year.

        Slices without dates are left out (the overall row is always there).

        ``start`` / ``end`` are the slice's first and last dates (a regime slice need not be
        contiguous). Extra metrics over the slice's dates:

        - ``turnover``: mean daily turnover × 252 (NaN without a turnover series);
        - ``average_holding_sessions``: mean ``holding_sessions`` of the trades whose
          ``exit_date`` is one of the slice's dates (NaN if there are none);
        - ``trade_win_rate``: share of those trades with ``return > 0`` (NaN if none);
        - ``n_days``: number of dates in the slice with a (non-NaN) return.
    """
    index = pd.DatetimeIndex(returns.index)
    if not index.is_monotonic_increasing:
        raise ValueError("returns must be indexed by sorted dates")
    values = returns.to_numpy(dtype="float64")
    turnover_values = turnover.reindex(index).to_numpy(dtype="float64") if turnover is not None else None

    # Trades as arrays, each with the position of its exit date in ``index`` (-1: not a date of the
    # series, so in no slice): a slice's trades are then a mask lookup, not a date-set filter.
    if trades is not None and len(trades):
        trade_at = index.get_indexer(pd.DatetimeIndex(trades["exit_date"]))
        holding = trades["holding_sessions"].to_numpy(dtype="float64")
        winning = (trades["return"] > 0).to_numpy()
    else:
        trade_at = None

    rows = []
    for scope, name, mask in precomputed if precomputed is not None else slices(index, regimes):
        at = np.flatnonzero(mask)
        if scope != "overall" and not len(at):
            continue  # e.g. the first half of a one-day series
        row: dict[str, object] = {
            "scope": scope,
            "slice": name,
            "start": index[at[0]] if len(at) else pd.NaT,
            "end": index[at[-1]] if len(at) else pd.NaT,
        }
        row.update(metrics.metric_vector(values[mask], risk_free=risk_free))
        if turnover_values is not None and np.isfinite(turnover_values[mask]).any():
            row["turnover"] = float(np.nanmean(turnover_values[mask]) * metrics.PERIODS_PER_YEAR)
        else:
            row["turnover"] = np.nan
        in_slice = (trade_at >= 0) & mask[trade_at] if trade_at is not None else None
        if in_slice is not None and in_slice.any():
            row["average_holding_sessions"] = _nan_mean(holding[in_slice])
            row["trade_win_rate"] = float(np.count_nonzero(winning[in_slice]) / np.count_nonzero(in_slice))
        else:
            row["average_holding_sessions"] = np.nan
            row["trade_win_rate"] = np.nan
        row["n_days"] = int(np.isfinite(values[mask]).sum())
        rows.append(row)

    columns = ["scope", "slice", "start", "end", *metrics.metric_vector([]).keys(), *SLICE_EXTRA_METRICS]
    out = pd.DataFrame(rows, columns=columns)
    out["n_days"] = out["n_days"].astype("int64")
    return out


# --------------------------------------------------------------------------------------------
# Rolling metrics
# --------------------------------------------------------------------------------------------


def _window_metrics(values: np.ndarray, window: int) -> dict[str, np.ndarray]:
    """Sharpe, volatility, total return, max drawdown over every full trailing window.

    ``values`` are daily returns with NaN; row k of the result covers ``values[k : k + window]``.
    NaN returns are skipped exactly as :mod:`metrics` drops them: they add nothing to sums and
    leave the compounded curve flat (so they cannot create or deepen a drawdown).
    """
    x = sliding_window_view(values, window)  # (n - window + 1) × window, a view
    valid = ~np.isnan(x)
    count = valid.sum(axis=1)
    filled = np.where(valid, x, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = filled.sum(axis=1) / count
        deviation = np.where(valid, x - mean[:, None], 0.0)
        std = np.sqrt((deviation**2).sum(axis=1) / (count - 1))
        # equal values: std exactly 0, so the Sharpe is ±inf (or NaN) as in metrics.sharpe_ratio, not ~1e17
        constant = np.where(valid, x, np.inf).min(axis=1) == np.where(valid, x, -np.inf).max(axis=1)
        sharpe = mean / np.where(constant, 0.0, std) * np.sqrt(metrics.PERIODS_PER_YEAR)
    two_or_more = count >= 2
    sharpe = np.where(two_or_more, sharpe, np.nan)
    volatility = np.where(two_or_more, std * metrics.PERIODS_PER_YEAR**0.5, np.nan)

    curve = np.cumprod(np.where(valid, 1.0 + x, 1.0), axis=1)
    total = np.where(count >= 1, curve[:, -1] - 1.0, np.nan)
    peak = np.maximum(np.maximum.accumulate(curve, axis=1), 1.0)  # the start (1) is a peak
    drawdown = np.minimum(((curve - peak) / peak).min(axis=1), 0.0)
    drawdown = np.where(count >= 1, drawdown, np.nan)
    return {"sharpe_ratio": sharpe, "annual_volatility": volatility, "total_return": total, "max_drawdown": drawdown}


def rolling_metrics(
    returns: pd.Series,
    windows: tuple[int, ...] = ROLLING_WINDOWS,
    ic: pd.Series | None = None,
) -> pd.DataFrame:
    """Trailing-window metrics of a book, per date and window.

    For each ``window`` (in sessions) and each date from the first one with a full window of
    dates behind it (inclusive of the date itself), the metrics of the ``window`` returns ending
    on that date, with :mod:`metrics`' conventions: ``sharpe_ratio`` (mean / std ddof=1 × √252),
    ``annual_volatility``, ``total_return`` (compounded), ``max_drawdown`` (of the window's own
    compounded curve starting at 1, the start counting as a peak). NaN returns inside a window
    are dropped, as :mod:`metrics` does.

    ``ic`` is an optional daily IC series (e.g. :func:`alpha_ic`, which is dated when the IC is
    known); the ``ic`` column is its mean over the window's dates, ignoring NaN (NaN when the
    window has no IC, or without ``ic``).

    Returns a long frame with columns :data:`ROLLING_COLUMNS`, ordered by window (as given) then
    date.
    """
    index = pd.DatetimeIndex(returns.index)
    if not index.is_monotonic_increasing:
        raise ValueError("returns must be indexed by sorted dates")
    values = returns.to_numpy(dtype="float64")
    ic_values = ic.reindex(index).to_numpy(dtype="float64") if ic is not None else None

    frames = []
    for window in windows:
        if window < 1:
            raise ValueError("windows must be positive session counts")
        if len(values) < window:
            continue
        block: dict[str, object] = {"date": index[window - 1 :], "window": np.full(len(values) - window + 1, window, dtype="int64")}
        block.update(_window_metrics(values, window))
        if ic_values is not None:
            ic_window = sliding_window_view(ic_values, window)
            ic_count = (~np.isnan(ic_window)).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                block["ic"] = np.where(ic_count > 0, np.nansum(ic_window, axis=1) / ic_count, np.nan)
        else:
            block["ic"] = np.full(len(values) - window + 1, np.nan)
        frames.append(pd.DataFrame(block, columns=list(ROLLING_COLUMNS)))
    if not frames:
        empty = {c: pd.Series(dtype="float64") for c in ROLLING_COLUMNS}
        empty["date"] = pd.Series(dtype=index.dtype)
        empty["window"] = pd.Series(dtype="int64")
        return pd.DataFrame(empty, columns=list(ROLLING_COLUMNS))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Alpha IC
# --------------------------------------------------------------------------------------------


def _signal_ic(alpha: pd.DataFrame, returns: pd.DataFrame, horizon: int) -> pd.Series:
    """Rank IC per signal date: alpha on t against the compounded return over t+1 .. t+horizon."""
    if horizon < 1:
        raise ValueError("horizon must be >= 1 session")
    # Wide arrays (rank_ic_wide), not the long merge of rank_ic: same ICs, and the evaluation of
    # every config at every decay horizon was most of sleeve_evaluation's time on the full history.
    ordered = returns.sort_index()
    forward = forward_returns_wide(ordered, horizon).to_numpy()
    scores = alpha.reindex(index=ordered.index, columns=ordered.columns).to_numpy(dtype=float)
    return rank_ic_wide(scores, forward, pd.DatetimeIndex(ordered.index, name="date"))


def alpha_ic(alpha: pd.DataFrame, returns: pd.DataFrame, horizon: int) -> pd.Series:
    """Daily rank IC of a book's alpha against the forward return over ``horizon`` sessions.

    ``alpha`` is wide (signal dates × symbols), ``returns`` wide daily simple returns. The IC of
    the signal set at the close of t compares it with the compounded return over sessions
    t+1 .. t+horizon (:func:`evaluation.forward_returns`, :func:`evaluation.rank_ic`: dates with
    too few names are omitted). That IC is only **known at the close of t+horizon**, so the
    result is indexed by that date (the signal date shifted forward by ``horizon`` sessions of
    ``returns``' index): a rolling mean over it up to any date uses only information available
    then.
    """
    ic = _signal_ic(alpha, returns, horizon)
    sessions = pd.DatetimeIndex(returns.sort_index().index)
    known = sessions[sessions.get_indexer(pd.DatetimeIndex(ic.index)) + horizon]
    return pd.Series(ic.to_numpy(), index=pd.DatetimeIndex(known, name="date"), name="rank_ic")


def alpha_decay(
    alpha: pd.DataFrame,
    returns: pd.DataFrame,
    horizons: tuple[int, ...] = DECAY_HORIZONS,
) -> pd.Series:
    """Mean rank IC of the alpha per forward horizon (how fast its predictive power fades).

    A summary over the whole history (IC per signal date, not lagged): index ``horizon``
    (sessions), name ``ic_mean``; NaN for a horizon with no IC at all.
    """
    means = [ic_summary(_signal_ic(alpha, returns, h))["ic_mean"] for h in horizons]
    return pd.Series(means, index=pd.Index(list(horizons), name="horizon", dtype="int64"), name="ic_mean", dtype="float64")


def slice_means(values: pd.Series, index: pd.DatetimeIndex, regimes: pd.Series | None = None,
                precomputed: list[tuple[str, str, np.ndarray]] | None = None) -> pd.DataFrame:
    """Mean of a daily series (e.g. a book's rank IC) over the same slices as :func:`sliced_metrics`.

    Columns ``scope, slice, value``; a slice with no values gets NaN. Merge on (scope, slice).
    ``precomputed``: :func:`slices` of ``index`` and ``regimes``, if already at hand.
    """
    aligned = values.reindex(index).to_numpy(dtype="float64")
    parts = precomputed if precomputed is not None else slices(index, regimes)
    rows = [(scope, name, _nan_mean(aligned[mask])) for scope, name, mask in parts]
    return pd.DataFrame(rows, columns=["scope", "slice", "value"])


def _nan_mean(values: np.ndarray) -> float:
    """Mean of the non-NaN values (NaN if none), computed as pandas' ``Series.mean`` does (NaN set
    to 0, one pairwise sum, divided by the count), so it gives the same bits as that without the
    cost of building a Series for each slice (hand-written for that reason)."""
    valid = ~np.isnan(values)
    count = int(np.count_nonzero(valid))
    return float(np.where(valid, values, 0.0).sum() / count) if count else float("nan")


COMPARISON_COLUMNS: list[str] = [
    "book", "combination_method", "configured", "sharpe_ratio", "cagr", "total_return", "max_drawdown", "annual_volatility", "turnover", "ic",
]


def comparison_table(metrics_table: pd.DataFrame) -> pd.DataFrame:
    """Each book under each combination method side by side: the overall rows, best Sharpe first per book."""
    overall = metrics_table[metrics_table["scope"] == "overall"]
    cols = [c for c in COMPARISON_COLUMNS if c in overall.columns]
    return overall[cols].sort_values(["book", "sharpe_ratio"], ascending=[True, False], kind="stable").reset_index(drop=True)


EDGE_COMPARISON_METRICS: list[str] = ["sharpe_ratio", "cagr", "max_drawdown", "annual_volatility", "turnover"]


def edge_sizing_comparison(metrics_table: pd.DataFrame) -> pd.DataFrame:
    """Each edge-sized book beside its plain configured twin (overall rows), one row per book.

    Columns: ``book``, ``<metric>_plain``, ``<metric>_edge`` and ``<metric>_change`` (edge − plain)
    for :data:`EDGE_COMPARISON_METRICS`. Empty when no book is edge-sized.
    """
    overall = metrics_table[metrics_table["scope"] == "overall"]
    if "edge_sizing" not in overall.columns or not overall["edge_sizing"].any():
        return pd.DataFrame(columns=["book"])
    plain = overall[overall["configured"] & ~overall["edge_sizing"]].set_index("book")[EDGE_COMPARISON_METRICS]
    sized = overall[overall["edge_sizing"]].set_index("book")[EDGE_COMPARISON_METRICS]
    both = plain.join(sized, lsuffix="_plain", rsuffix="_edge", how="inner")
    for metric in EDGE_COMPARISON_METRICS:
        both[f"{metric}_change"] = both[f"{metric}_edge"] - both[f"{metric}_plain"]
    return both.reset_index()
