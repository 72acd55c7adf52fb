"""Apply the risk scalar to the portfolio, with a one-rebalance lag, and scale its returns.

What this module does
---------------------
The risk scalar (:mod:`prometheus_assets.core.allocator.risk`) is computed daily, but the
portfolio only changes its exposure on **rebalance dates** (by default the first session of
each month, :func:`monthly_rebalance_dates`). :class:`ExposureApplierV1` turns the daily scalar
into the scalar actually **in force** on each date, and :func:`scale_returns` computes what the
scaled portfolio earns.

The one-rebalance lag
---------------------
Let the rebalance dates be ``R_0 < R_1 < ... ``. From rebalance ``R_k`` (inclusive) until the
next one (exclusive), the applied scalar is the risk scalar **computed on the previous
rebalance date** ``R_{k-1}``::

    dates:          ... R_0 ....... R_1 ....... R_2 ....... R_3 ...
    applied:   miss  |    miss     | s(R_0)    | s(R_1)    | s(R_2)

* dates before ``R_0``, and from ``R_0`` until ``R_1`` (there is no ``R_{-1}``), get
  ``apply_missing_scalar_as`` (default 1.0: unscaled, like the baseline);
* if the scalar on ``R_{k-1}`` is missing (NaN, or ``R_{k-1}`` absent from the scalar series:
  the lookup is *exact*, there is no forward fill), the period from ``R_k`` also gets
  ``apply_missing_scalar_as``.

Why lag a full period: the scalar on ``R_{k-1}`` uses data up to that day's close, and it is
only put on a whole period later. This is deliberately conservative: it leaves a full period to
compute, review and trade the change, and makes look-ahead impossible by construction (the
return of date ``t`` is multiplied by a scalar computed strictly before ``t``). The cost is
reacting up to two months late to a fast crash; the audit
(:mod:`prometheus_assets.core.allocator.audit`) measures whether it still helps.

Returns convention (:func:`scale_returns`): the scaled return of date ``t`` is
``applied_scalar_t * r_t``, the remaining ``1 - applied_scalar_t`` sits in cash earning 0 %.

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_MISSING_SCALAR",
    "ExposureApplierV1",
    "monthly_rebalance_dates",
    "scale_returns",
]

#: Scalar used where no lagged scalar exists (1.0 = unscaled).
DEFAULT_MISSING_SCALAR: float = 1.0


def monthly_rebalance_dates(dates: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """First session of each calendar month present in ``dates`` (the default schedule).

    ``dates`` are the sessions (any order, duplicates allowed); the result is sorted and unique,
    named ``"date"``. A month's first session is its earliest date in ``dates`` (a partial first
    month counts: its first available session is a rebalance date).
    """
    idx = pd.DatetimeIndex(dates).dropna().unique().sort_values()
    if len(idx) == 0:
        return pd.DatetimeIndex([], name="date")
    months = idx.to_period("M")
    first = ~pd.Index(months).duplicated()
    return pd.DatetimeIndex(idx[first], name="date")


class ExposureApplierV1:
    """Turn a daily risk scalar into the scalar in force on each date (one-rebalance lag).

    Usage::

        applier = ExposureApplierV1()
        applied = applier.apply(risk["risk_scalar"], monthly_rebalance_dates(dates), dates)
        out = scale_returns(portfolio_returns, applied["applied_scalar"])

    Args:
        apply_missing_scalar_as: scalar used where no lagged scalar is available (before the
            second rebalance date, or where the scalar on the previous rebalance date is
            missing). Default 1.0 (unscaled). Must be finite.
    """

    def __init__(self, apply_missing_scalar_as: float = DEFAULT_MISSING_SCALAR) -> None:
        self.apply_missing_scalar_as = float(apply_missing_scalar_as)
        if not np.isfinite(self.apply_missing_scalar_as):
            raise ValueError("apply_missing_scalar_as must be finite")

    def __repr__(self) -> str:
        return f"ExposureApplierV1(apply_missing_scalar_as={self.apply_missing_scalar_as!r})"

    def apply(self, risk: pd.Series, rebalance_dates: pd.DatetimeIndex, dates: pd.DatetimeIndex) -> pd.DataFrame:
        """The scalar in force on each of ``dates``.

        Args:
            risk: the daily risk scalar (``risk_scalar``) indexed by date (unique).
            rebalance_dates: when exposure may change (sorted and de-duplicated here); they need
                not be in ``dates`` (a rebalance takes effect from the first date >= it).
            dates: the sessions to report, increasing and unique.

        Returns:
            Indexed by ``dates`` (name ``"date"``), columns:

            * ``applied_scalar``: the scalar in force (see the module docstring);
            * ``rebalance_date``: the rebalance ``R_k`` whose period contains the date (NaT
              before the first rebalance);
            * ``computed_on``: ``R_{k-1}``, the date the scalar in force was computed; NaT
              where ``apply_missing_scalar_as`` is used instead.

        Raises:
            ValueError: ``dates`` not increasing and unique, or ``risk``'s index not unique.
        """
        dates = pd.DatetimeIndex(dates)
        if not (dates.is_monotonic_increasing and dates.is_unique):
            raise ValueError("dates must be increasing and unique")
        if not risk.index.is_unique:
            raise ValueError("risk must have a unique date index")
        rebal = pd.DatetimeIndex(rebalance_dates).dropna().unique().sort_values()

        # k = position of the last rebalance <= date (-1 before the first one)
        k = rebal.searchsorted(dates, side="right") - 1
        prev = np.where(k >= 1, k - 1, -1)  # position of R_{k-1} (-1: none)
        # exact lookup of the scalar computed on each rebalance date (NaN if absent or missing)
        on_rebal = np.append(risk.astype(float).reindex(rebal).to_numpy(dtype=float), np.nan)
        lagged = on_rebal[prev]  # position -1 reads the trailing NaN
        found = ~np.isnan(lagged)
        applied = np.where(found, lagged, self.apply_missing_scalar_as)
        rebalance_date = rebal.take(k, allow_fill=True, fill_value=pd.NaT)
        computed_on = rebal.take(np.where(found, prev, -1), allow_fill=True, fill_value=pd.NaT)
        return pd.DataFrame(
            {"applied_scalar": applied, "rebalance_date": rebalance_date, "computed_on": computed_on},
            index=pd.DatetimeIndex(dates, name="date"),
        )


def scale_returns(portfolio_returns: pd.Series, applied: pd.Series) -> pd.DataFrame:
    """Returns, equity curve and drawdown of the scaled portfolio.

    Args:
        portfolio_returns: daily simple returns of the unscaled portfolio, indexed by date.
        applied: the scalar in force per date (e.g. ``apply(...)["applied_scalar"]``); it must
            cover every date of ``portfolio_returns`` with a finite value.

    Returns:
        ``portfolio_returns``' index, columns:

        * ``return``: ``applied_scalar * r`` (the rest is cash at 0 %); NaN where ``r`` is NaN;
        * ``equity``: ``cumprod(1 + return)`` starting from 1 (a NaN return counts as a flat
          day), so ``equity`` on the first date is ``1 + return`` of that date;
        * ``drawdown``: ``equity / running peak - 1`` (<= 0), the starting value 1 counting as a
          peak, so its minimum equals :func:`prometheus_assets.core.metrics.max_drawdown` of
          ``return``.

    Raises:
        ValueError: ``applied`` is missing or non-finite on some date of ``portfolio_returns``.
    """
    scalar = pd.Series(applied, dtype=float).reindex(portfolio_returns.index)
    bad = ~np.isfinite(scalar.to_numpy())
    if bad.any():
        first = portfolio_returns.index[np.flatnonzero(bad)[0]]
        raise ValueError(f"applied scalar missing or non-finite on {bad.sum()} dates (first: {first})")
    ret = pd.Series(portfolio_returns, dtype=float) * scalar
    equity = (1.0 + ret.fillna(0.0)).cumprod()
    peak = np.maximum(equity.cummax(), 1.0)
    drawdown = equity / peak - 1.0
    return pd.DataFrame({"return": ret, "equity": equity, "drawdown": drawdown}, index=portfolio_returns.index)
