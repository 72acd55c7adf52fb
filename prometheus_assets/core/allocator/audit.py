"""Two-pass audit of the allocator: does scaling exposure in stress actually help?

What "two-pass" means
---------------------
The same portfolio is evaluated twice over the same dates:

* **pass 1, baseline**: the portfolio's daily returns as they are (scalar 1 every day);
* **pass 2, scaled**: the same returns multiplied by the applied risk scalar
  (:func:`prometheus_assets.core.allocator.apply.scale_returns`).

:func:`two_pass_audit` compares the two and checks that the allocator behaves as designed. It
returns an :class:`AuditResult` with:

* ``summary``: one row per pass (``baseline``, ``scaled``), columns ``max_drawdown``,
  ``worst_month``, ``worst_quarter``, ``sharpe_ratio``, ``annual_volatility``, ``cagr``. The
  metrics come from :mod:`prometheus_assets.core.metrics` (empyrical conventions, 252 days a
  year, NaN dropped). ``worst_month`` / ``worst_quarter`` are the lowest *compounded* return
  of a calendar month / quarter, ``prod(1 + r) - 1`` over the days of that month / quarter
  present in the data (partial first and last periods included);
* ``max_drawdown_reduction``: ``|baseline MaxDD| - |scaled MaxDD|`` (positive = the allocator
  made the worst drawdown shallower), and ``max_drawdown_reduction_relative``: the same divided
  by ``|baseline MaxDD|``;
* ``turnover_impact``: ``sum(|applied_t - applied_{t-1}|)`` per year (the sum over consecutive
  dates divided by ``n_dates / 252``): the extra one-way trading, as a fraction of NAV per year,
  the scalar adds on top of the portfolio's own rebalancing;
* ``derisk_events``: the ``top_n`` dates where the applied scalar fell the most;
* ``checklist``: computed pass/fail checks (``check``, ``passed``, ``detail``):

  1. ``regime transitions sparse``: published regime changes per year (changes divided by
     ``labelled days / 252``) at most ``max_transitions_per_year`` (12, about one a month);
  2. ``de-risk events in known stress``: for every known stress period lying entirely inside
     the audited dates, the applied scalar is below 1 on at least one date of the period
     (passes with "nothing to check" if no period lies inside the data);
  3. ``features free of data problems``: the state frame has the required columns, no inf in
     any numeric column, no NaN in a required column after its first complete row (leading
     warm-up rows are allowed, check 4 judges their length), vols and ``vol_accel`` >= 0,
     ``dd_level`` <= 0, ``corr_20d`` / ``corr_60d`` in [-1, 1] and ``corr_shock`` in [-2, 2];
  4. ``effective start reasonable``: the first complete state row comes at most
     ``max_start_lag_sessions`` (90) sessions after the first portfolio return (sessions =
     the baseline's dates).

  Checks 3 and 4 need the ``state`` frame; without it they fail with "not checked".

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prometheus_assets.core import metrics
from prometheus_assets.core.allocator.regime import REQUIRED_STATE_COLUMNS, transitions

__all__ = [
    "CHECKS",
    "KNOWN_STRESS_PERIODS",
    "SUMMARY_COLUMNS",
    "AuditResult",
    "derisk_events",
    "state_problems",
    "turnover_impact",
    "two_pass_audit",
    "worst_period_return",
]

#: Market stress episodes a working allocator should have reacted to (inclusive date ranges):
#: the Lehman collapse and its aftermath (Sept-Nov 2008), the US downgrade / euro-debt sell-off
#: (Aug-Sept 2011) and the COVID crash (late Feb - April 2020). With the one-rebalance lag the
#: scalar reacts late, so the windows extend a little past the market trough.
KNOWN_STRESS_PERIODS: dict[str, tuple[str, str]] = {
    "2008-10": ("2008-09-15", "2008-11-30"),
    "2011-08": ("2011-08-01", "2011-09-30"),
    "2020-03": ("2020-02-24", "2020-04-30"),
}

#: Columns of :attr:`AuditResult.summary`.
SUMMARY_COLUMNS: tuple[str, ...] = ("max_drawdown", "worst_month", "worst_quarter", "sharpe_ratio", "annual_volatility", "cagr")
#: Names of the checklist rows, in order.
CHECKS: tuple[str, str, str, str] = (
    "regime transitions sparse",
    "de-risk events in known stress",
    "features free of data problems",
    "effective start reasonable",
)
DERISK_COLUMNS: tuple[str, ...] = ("date", "scalar_before", "scalar_after", "change", "regime", "in_stress_period")

#: Columns that are annualised volatilities or ratios of them (must be >= 0).
_NONNEGATIVE = ("port_rvol_20d", "port_rvol_60d", "vol_accel")
#: Columns that must lie in [-1, 1] (correlations) and [-2, 2] (a difference of correlations).
_CORRELATIONS = ("corr_20d", "corr_60d")
_TOL = 1e-12


@dataclass(frozen=True, eq=False)
class AuditResult:
    """Everything :func:`two_pass_audit` computed (see the module docstring for definitions)."""

    summary: pd.DataFrame
    max_drawdown_reduction: float
    max_drawdown_reduction_relative: float
    turnover_impact: float
    derisk_events: pd.DataFrame
    checklist: pd.DataFrame

    @property
    def passed(self) -> bool:
        """True when every checklist row passed."""
        return bool(self.checklist["passed"].all())


# ---------------------------------------------------------------------- building blocks
def worst_period_return(returns: pd.Series, freq: str) -> float:
    """Lowest compounded return of a calendar period (``freq`` "M" = month, "Q" = quarter).

    Each period's return is ``prod(1 + r) - 1`` over its dates in ``returns`` (NaN dropped);
    NaN when there is no data.
    """
    r = pd.Series(returns, dtype=float).dropna()
    if r.empty:
        return float("nan")
    compounded = (1.0 + r).groupby(pd.DatetimeIndex(r.index).to_period(freq)).prod() - 1.0
    return float(compounded.min())


def _summary_row(returns: pd.Series) -> dict[str, float]:
    return {
        "max_drawdown": metrics.max_drawdown(returns),
        "worst_month": worst_period_return(returns, "M"),
        "worst_quarter": worst_period_return(returns, "Q"),
        "sharpe_ratio": metrics.sharpe_ratio(returns),
        "annual_volatility": metrics.annual_volatility(returns),
        "cagr": metrics.cagr(returns),
    }


def turnover_impact(applied_scalar: pd.Series, periods_per_year: int = metrics.PERIODS_PER_YEAR) -> float:
    """Sum of ``|change of the applied scalar|`` between consecutive dates, per year.

    NaN dropped first; the number of years is ``n_dates / periods_per_year``. NaN with fewer
    than two dates.
    """
    s = pd.Series(applied_scalar, dtype=float).dropna()
    if len(s) < 2:
        return float("nan")
    return float(s.diff().abs().sum() / (len(s) / periods_per_year))


def _period_of(date: pd.Timestamp, stress_periods: Mapping[str, tuple[str, str]]) -> str | None:
    for name, (start, end) in stress_periods.items():
        if pd.Timestamp(start) <= date <= pd.Timestamp(end):
            return name
    return None


def derisk_events(
    applied_scalar: pd.Series,
    regimes: pd.Series,
    stress_periods: Mapping[str, tuple[str, str]] = KNOWN_STRESS_PERIODS,
    top_n: int = 10,
) -> pd.DataFrame:
    """The ``top_n`` dates where the applied scalar fell the most (largest cut first).

    Only falls count (``change < 0``), so there may be fewer than ``top_n`` rows; ties are
    broken by date. Columns: ``date``, ``scalar_before`` (previous date's scalar),
    ``scalar_after``, ``change`` (after - before, < 0), ``regime`` (the published regime on that
    date, None if unknown) and ``in_stress_period`` (name of the known stress period containing
    the date, or None).
    """
    s = pd.Series(applied_scalar, dtype=float).dropna()
    change = s.diff()
    falls = pd.DataFrame({"date": s.index, "scalar_before": s.shift(1).to_numpy(), "scalar_after": s.to_numpy(), "change": change.to_numpy()})
    falls = falls[falls["change"] < 0].sort_values(["change", "date"], kind="stable").head(max(int(top_n), 0))
    reg = regimes.reindex(pd.DatetimeIndex(falls["date"])).to_numpy(dtype=object)
    falls["regime"] = pd.Series([None if pd.isna(v) else str(v) for v in reg], index=falls.index, dtype=object)
    falls["in_stress_period"] = pd.Series([_period_of(d, stress_periods) for d in falls["date"]], index=falls.index, dtype=object)
    return falls[list(DERISK_COLUMNS)].reset_index(drop=True)


def state_problems(state: pd.DataFrame) -> list[str]:
    """Data problems of a state frame (empty list = clean); see check 3 in the module docstring."""
    missing = [c for c in REQUIRED_STATE_COLUMNS if c not in state.columns]
    if missing:
        return [f"missing required columns {missing}"]
    problems: list[str] = []
    numeric = state.select_dtypes(include="number")
    n_inf = int(np.isinf(numeric.to_numpy(dtype=float)).sum()) if numeric.shape[1] else 0
    if n_inf:
        problems.append(f"{n_inf} inf values")
    required = state[list(REQUIRED_STATE_COLUMNS)].astype(float)
    complete = required.notna().all(axis=1).to_numpy()
    if not complete.any():
        return problems + ["no complete row"]
    after = required.iloc[int(np.argmax(complete)) :]
    n_nan = int(after.isna().to_numpy().sum())
    if n_nan:
        problems.append(f"{n_nan} NaN values in required columns after the first complete row")

    def count(mask: pd.DataFrame | pd.Series) -> int:
        return int(np.asarray(mask).sum())

    if n := count(required[list(_NONNEGATIVE)] < -_TOL):
        problems.append(f"{n} negative volatilities")
    if n := count(required["dd_level"] > _TOL):
        problems.append(f"{n} positive dd_level values")
    if n := count(required[list(_CORRELATIONS)].abs() > 1.0 + _TOL):
        problems.append(f"{n} correlations outside [-1, 1]")
    if n := count(required["corr_shock"].abs() > 2.0 + _TOL):
        problems.append(f"{n} corr_shock values outside [-2, 2]")
    return problems


# ---------------------------------------------------------------------- the audit
def two_pass_audit(
    baseline: pd.Series,
    scaled: pd.Series,
    applied_scalar: pd.Series,
    regimes: pd.Series,
    stress_periods: Mapping[str, tuple[str, str]] = KNOWN_STRESS_PERIODS,
    top_n: int = 10,
    *,
    state: pd.DataFrame | None = None,
    max_transitions_per_year: float = 12.0,
    max_start_lag_sessions: int = 90,
) -> AuditResult:
    """Compare the baseline and scaled portfolios and run the checklist.

    Args:
        baseline: daily simple returns of the unscaled portfolio (pass 1), indexed by date.
        scaled: daily simple returns with the applied scalar (pass 2), same dates.
        applied_scalar: the scalar in force per date (``ExposureApplierV1.apply``).
        regimes: the published regime per date (``RegimeClassifierV1.classify(...)["regime"]``).
        stress_periods: name -> (start, end) inclusive date strings of known stress episodes.
        top_n: number of de-risk events to list.
        state: the risk-state frame the regimes came from (checks 3 and 4).
        max_transitions_per_year: threshold of check 1.
        max_start_lag_sessions: threshold of check 4.

    Returns:
        An :class:`AuditResult` (all definitions in the module docstring).
    """
    summary = pd.DataFrame([_summary_row(baseline), _summary_row(scaled)], index=pd.Index(["baseline", "scaled"], name="pass"))
    summary = summary[list(SUMMARY_COLUMNS)]
    base_mdd, scaled_mdd = abs(summary.at["baseline", "max_drawdown"]), abs(summary.at["scaled", "max_drawdown"])
    reduction = float(base_mdd - scaled_mdd)
    relative = float(reduction / base_mdd) if base_mdd > 0 else float("nan")

    checks = [
        _check_transitions(regimes, max_transitions_per_year),
        _check_stress_coverage(applied_scalar, stress_periods),
        _check_state(state),
        _check_start(state, baseline, max_start_lag_sessions),
    ]
    checklist = pd.DataFrame(checks, columns=["check", "passed", "detail"])
    checklist["passed"] = checklist["passed"].astype(bool)
    return AuditResult(
        summary=summary,
        max_drawdown_reduction=reduction,
        max_drawdown_reduction_relative=relative,
        turnover_impact=turnover_impact(applied_scalar),
        derisk_events=derisk_events(applied_scalar, regimes, stress_periods, top_n),
        checklist=checklist,
    )


def _check_transitions(regimes: pd.Series, max_per_year: float) -> tuple[str, bool, str]:
    name = CHECKS[0]
    n_days = int(regimes.notna().sum())
    if n_days == 0:
        return name, False, "no published regime"
    n = len(transitions(regimes))
    per_year = n / (n_days / metrics.PERIODS_PER_YEAR)
    return name, per_year <= max_per_year, f"{n} transitions over {n_days} labelled days = {per_year:.2f}/year (max {max_per_year:g})"


def _check_stress_coverage(applied_scalar: pd.Series, stress_periods: Mapping[str, tuple[str, str]]) -> tuple[str, bool, str]:
    name = CHECKS[1]
    s = pd.Series(applied_scalar, dtype=float).dropna()
    if s.empty:
        return name, False, "no applied scalar"
    first, last = s.index.min(), s.index.max()
    inside = {k: (pd.Timestamp(a), pd.Timestamp(b)) for k, (a, b) in stress_periods.items() if first <= pd.Timestamp(a) and pd.Timestamp(b) <= last}
    if not inside:
        return name, True, "no known stress period lies inside the data: nothing to check"
    parts, ok = [], True
    for k, (a, b) in inside.items():
        window = s.loc[a:b]
        hit = bool((window < 1.0).any())
        ok &= hit
        parts.append(f"{k}: {'min scalar ' + format(window.min(), '.2f') if hit else 'no de-risking'}")
    return name, ok, "; ".join(parts)


def _check_state(state: pd.DataFrame | None) -> tuple[str, bool, str]:
    name = CHECKS[2]
    if state is None:
        return name, False, "not checked: no state frame given"
    problems = state_problems(state)
    return name, not problems, "; ".join(problems) if problems else f"{len(state)} rows clean"


def _check_start(state: pd.DataFrame | None, baseline: pd.Series, max_lag: int) -> tuple[str, bool, str]:
    name = CHECKS[3]
    if state is None:
        return name, False, "not checked: no state frame given"
    if any(c not in state.columns for c in REQUIRED_STATE_COLUMNS):
        return name, False, "state lacks required columns"
    complete = state[list(REQUIRED_STATE_COLUMNS)].notna().all(axis=1)
    b = pd.Series(baseline, dtype=float).dropna()
    if not complete.any() or b.empty:
        return name, False, "no complete state row" if b.size else "no portfolio return"
    first_state = complete.index[complete.to_numpy()].min()
    first_port = b.index.min()
    sessions = b.index[(b.index >= first_port) & (b.index < first_state)]
    lag = len(sessions)
    return name, lag <= max_lag, f"first state {first_state.date()} is {lag} sessions after first return {first_port.date()} (max {max_lag})"
