"""Performance metrics of a daily simple-returns series, following empyrical-reloaded's conventions.

Every function takes a Series (or array) of daily simple returns, drops NaN first, and assumes
``periods_per_year`` = 252 periods a year. Risk-free / required returns are per period (0 by
default). Where empyrical defines the metric (``cum_returns_final``, ``annual_return``,
``annual_volatility``, ``sharpe_ratio``, ``sortino_ratio``, ``max_drawdown``, ``calmar_ratio``,
``value_at_risk``) the result equals empyrical's on the NaN-dropped series, including its NaN/inf
edge cases (too few observations -> NaN). ``win_rate``, ``profit_factor`` and
``average_win_loss_ratio`` are period statistics empyrical lacks; a zero return is neither a win
nor a loss.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PERIODS_PER_YEAR = 252


def _clean(returns) -> np.ndarray:
    r = np.asarray(returns, dtype=float).ravel()
    return r[~np.isnan(r)]


def total_return(returns) -> float:
    """Compounded return over the whole series: prod(1 + r) - 1 (empyrical ``cum_returns_final``)."""
    r = _clean(returns)
    return float(np.prod(1.0 + r) - 1.0) if len(r) else float("nan")


def cagr(returns, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Compound annual growth rate, (prod(1 + r)) ** (periods_per_year / n) - 1 (``annual_return``)."""
    r = _clean(returns)
    if len(r) < 1:
        return float("nan")
    with np.errstate(invalid="ignore"):
        return float(np.power(np.prod(1.0 + r), 1.0 / (len(r) / periods_per_year)) - 1.0)


def annual_volatility(returns, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Sample standard deviation (ddof=1) times sqrt(periods_per_year)."""
    r = _clean(returns)
    if len(r) < 2:
        return float("nan")
    return float(np.std(r, ddof=1) * periods_per_year**0.5)


def sharpe_ratio(returns, risk_free: float = 0.0, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods_per_year); ``risk_free`` is per period."""
    r = _clean(returns)
    if len(r) < 2:
        return float("nan")
    adj = r - risk_free
    # Equal values have a std of exactly 0 (as empyrical's ``_zero_dispersion_std``): the two-pass
    # std of a constant can leave ~1e-19, which turned an infinite ratio into ~1e17.
    std = 0.0 if adj.max() == adj.min() else np.std(adj, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(adj) / std * np.sqrt(periods_per_year))


def downside_risk(returns, required_return: float = 0.0, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """sqrt(mean(min(r - required_return, 0) ** 2)) * sqrt(periods_per_year) (empyrical's)."""
    r = _clean(returns)
    if len(r) < 1:
        return float("nan")
    downside = np.clip(r - required_return, -np.inf, 0.0)
    return float(np.sqrt(np.mean(np.square(downside))) * np.sqrt(periods_per_year))


def sortino_ratio(returns, required_return: float = 0.0, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Annualised mean excess return over :func:`downside_risk` (inf when there is no downside)."""
    r = _clean(returns)
    if len(r) < 2:
        return float("nan")
    annual_excess = np.mean(r - required_return) * periods_per_year
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(annual_excess / downside_risk(r, required_return, periods_per_year))


def max_drawdown(returns) -> float:
    """Largest peak-to-trough fall (<= 0) of the compounded curve starting at 1 (the start counts as a peak)."""
    r = _clean(returns)
    if len(r) < 1:
        return float("nan")
    curve = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    peak = np.fmax.accumulate(curve)
    return float(np.min((curve - peak) / peak))


def calmar_ratio(returns, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """:func:`cagr` / |:func:`max_drawdown`|; NaN when there is no drawdown (as empyrical)."""
    mdd = max_drawdown(returns)
    if not mdd < 0:
        return float("nan")
    ratio = cagr(returns, periods_per_year) / abs(mdd)
    return float("nan") if np.isinf(ratio) else float(ratio)


def value_at_risk(returns, cutoff: float = 0.05) -> float:
    """Historical VaR: the ``cutoff`` quantile of returns, np.percentile(r, 100 * cutoff) (linear)."""
    r = _clean(returns)
    return float(np.percentile(r, 100 * cutoff)) if len(r) else float("nan")


def win_rate(returns) -> float:
    """Share of periods with a strictly positive return."""
    r = _clean(returns)
    return float(np.mean(r > 0)) if len(r) else float("nan")


def profit_factor(returns) -> float:
    """Sum of positive returns / |sum of negative returns| (inf with gains and no losses, NaN with neither)."""
    r = _clean(returns)
    gains, losses = r[r > 0].sum(), -r[r < 0].sum()
    if losses == 0:
        return float("inf") if gains > 0 else float("nan")
    return float(gains / losses)


def average_win_loss_ratio(returns) -> float:
    """Mean positive return / |mean negative return| (NaN if there are no wins or no losses)."""
    r = _clean(returns)
    wins, losses = r[r > 0], r[r < 0]
    if not len(wins) or not len(losses):
        return float("nan")
    return float(wins.mean() / -losses.mean())


def metric_vector(returns, risk_free: float = 0.0, periods_per_year: int = PERIODS_PER_YEAR) -> dict[str, float]:
    """All metrics of this module as one flat dict (name -> float)."""
    return {
        "total_return": total_return(returns),
        "cagr": cagr(returns, periods_per_year),
        "annual_volatility": annual_volatility(returns, periods_per_year),
        "sharpe_ratio": sharpe_ratio(returns, risk_free, periods_per_year),
        "sortino_ratio": sortino_ratio(returns, risk_free, periods_per_year),
        "max_drawdown": max_drawdown(returns),
        "calmar_ratio": calmar_ratio(returns, periods_per_year),
        "value_at_risk": value_at_risk(returns),
        "win_rate": win_rate(returns),
        "profit_factor": profit_factor(returns),
        "average_win_loss_ratio": average_win_loss_ratio(returns),
    }
