"""Portfolio construction: from alpha scores to the target weights of one book, day by day.

What this module does
---------------------
A *book* (see :mod:`prometheus_assets.core.books`) is run by a portfolio manager that, on every
rebalance day, turns a combined alpha into target weights that respect hard risk limits. The
steps, each a public function here:

1. **Signal combination.** Every alpha source is put on a common scale
   (:func:`normalise_scores`: a cross-sectional z-score per date), each source gets a
   point-in-time *confidence* (:func:`source_confidence`: its trailing realised rank IC), and
   :func:`combine_signals` blends the sources into one alpha with one of the
   :data:`~prometheus_assets.core.books.COMBINATION_METHODS`.
2. **Selection.** On a rebalance day the candidates are the names in the book's universe with an
   alpha (and a positive alpha for a long-only book); the ``max_positions`` strongest are kept.
3. **Raw weights.** :func:`raw_weights` sizes the selected names with one of the
   :data:`~prometheus_assets.core.books.ALLOCATION_METHODS`: proportional to alpha, Kelly
   fractions (:func:`kelly_fractions`), risk parity (:func:`risk_parity_weights`) or inverse
   volatility (:func:`inverse_volatility_weights`).
4. **Hard limits.** :func:`apply_constraints` scales the raw weights to the gross target, caps
   positions and sectors by water-filling, enforces the breadth rule and limits turnover (see
   its docstring for the exact precedence). :func:`check_constraints` lists violations.
5. **The daily loop.** :func:`construct_book` drifts yesterday's weights with today's returns,
   rebalances on :func:`rebalance_dates` and on regime-size changes, and returns a
   :class:`BookPlan` that :func:`prometheus_assets.core.backtest.simulate` can replay. An
   optional :class:`Sizer` (e.g. :class:`prometheus_assets.core.edge.sizing.EdgeSizer`) can
   scale the raw weights and tighten the position cap name by name on every rebalance.

Conventions
-----------
* *Wide* frames are dates × symbols with an ascending :class:`~pandas.DatetimeIndex`.
* Returns are daily simple returns; NaN means the name has no price that day (it cannot be
  traded that day, and a holding keeps its last value — the convention of
  :func:`~prometheus_assets.core.backtest.simulate`). A return after a missing day is taken
  against the last known price.
* Weights are fractions of the book's equity; ``sum(|w|)`` is the gross exposure and
  ``1 - sum(w)`` is cash (earning 0%).
* *Point in time*: every quantity dated t uses only returns dated <= t. A forward return over
  the ``horizon`` sessions after s is only *known* at session position ``pos(s) + horizon``, so
  anything built from realised forward returns (confidence, Kelly fractions) is shifted by
  ``horizon`` sessions before it is used.

Pure: no Dagster, no I/O, deterministic.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from prometheus_assets.core.books import ALLOCATION_METHODS, COMBINATION_METHODS, BookConfig, Constraints
from prometheus_assets.core.evaluation import MIN_NAMES_PER_DATE, rank_ic_wide
from prometheus_assets.core.frames import row_sums, trailing_sums

#: Sector label of a name whose sector is missing.
UNKNOWN_SECTOR = "UNKNOWN"

#: Absolute tolerance of :func:`check_constraints` ("a hard limit holds exactly").
CONSTRAINT_TOLERANCE = 1e-12

#: Tolerance the turnover step uses when it tests whether a partial move keeps the hard limits.
#: It is stricter than :data:`CONSTRAINT_TOLERANCE` so the result always passes
#: :func:`check_constraints`. A gross limit of exactly 0 (size multiplier 0) gets no tolerance:
#: "flat" means flat, not a dust of 1e-14 weights.
FEASIBILITY_TOLERANCE = 1e-13

#: Bisection steps that find the smallest feasible move fraction in the turnover step.
_BISECTION_STEPS = 60

#: A name needs observations on at least this share of the covariance window for risk parity.
RISK_PARITY_MIN_COVERAGE = 0.8

#: Columns of :attr:`BookPlan.positions`.
POSITION_COLUMNS: list[str] = ["date", "symbol", "current_weight", "target_weight", "trade_weight", "alpha", "rebalance", "size_multiplier"]

REBALANCE_FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly", "quarterly")


# ---------------------------------------------------------------------------------------------
# 1. Signal combination
# ---------------------------------------------------------------------------------------------


def normalise_scores(score: pd.DataFrame) -> pd.DataFrame:
    """Cross-sectional z-score of a wide score frame, one date (row) at a time.

    ``z = (x - mean) / std`` over the names with a value that day, with the population standard
    deviation (ddof = 0). A row whose values are all equal (including a row with one value) has
    no spread: its names get 0. NaN stays NaN. The result has ``score``'s index and columns.
    """
    x = score.to_numpy(dtype=float, copy=True)
    out = np.full_like(x, np.nan)
    has = ~np.isnan(x)
    rows = has.any(axis=1)
    if rows.any():
        xr = x[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # row sums in column order (frames.row_sums), not np.nanmean / np.nanstd: NumPy groups a
            # row's values by position, so a name without a value that day (present in a longer
            # read only, e.g. one delisted before the range) changed the other names' z-scores in
            # the last bits, and a backfill split into ranges differed from one range
            valid = ~np.isnan(xr)
            count = valid.sum(axis=1, keepdims=True)
            mean = row_sums(np.where(valid, xr, 0.0))[:, None] / count
            std = np.sqrt(row_sums(np.where(valid, (xr - mean) ** 2, 0.0))[:, None] / count)
            # "constant" is decided on the values themselves: the mean of equal numbers is not
            # always bit-equal to them, so a rounding-size std must not blow up into ±1.
            flat = np.nanmax(xr, axis=1, keepdims=True) == np.nanmin(xr, axis=1, keepdims=True)
            z = np.where(flat, 0.0, (xr - mean) / np.where(flat, 1.0, std))
        out[rows] = np.where(np.isnan(xr), np.nan, z)
    return pd.DataFrame(out, index=score.index, columns=score.columns)


def _signed_percentile_rank(score: pd.DataFrame) -> pd.DataFrame:
    """Cross-sectional rank per date mapped linearly onto [-1, 1]: lowest -1, highest +1.

    ``2 (rank - 1) / (n - 1) - 1`` with average ranks for ties and n the number of names with a
    value that day (the mapping of the momentum-rank strategy); a date with one name gives 0.
    NaN stays NaN.
    """
    rank = score.rank(axis=1, method="average").to_numpy(dtype=float)
    n = score.notna().sum(axis=1).to_numpy(dtype=float)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mapped = np.where(n > 1, 2.0 * (rank - 1.0) / np.where(n > 1, n - 1.0, 1.0) - 1.0, 0.0)
    return pd.DataFrame(np.where(np.isnan(rank), np.nan, mapped), index=score.index, columns=score.columns)


def _forward_compounded(returns: np.ndarray, horizon: int) -> np.ndarray:
    """``Π_{k=1..H} (1 + r_{t+k}) - 1`` for every row t of a (dates × symbols) array.

    NaN when any of those sessions is missing or lies beyond the data (the formula of
    :func:`prometheus_assets.core.evaluation.forward_returns`). Computed as an explicit product in
    a fixed order, so the value at t depends on rows t+1..t+H only, bit for bit: cutting the data
    after t+H changes nothing at t (running-sum implementations do not have that property).
    """
    n = returns.shape[0]
    out = np.full(returns.shape, np.nan)
    if horizon < 1 or n <= horizon:
        return out
    growth = 1.0 + returns
    acc = growth[1 : n - horizon + 1].copy()
    for k in range(2, horizon + 1):
        acc *= growth[k : n - horizon + k]
    out[: n - horizon] = acc - 1.0
    return out


def source_confidence(
    score: pd.DataFrame,
    returns: pd.DataFrame,
    horizon: int,
    window: int = 252,
    min_periods: int = 60,
    min_names: int = MIN_NAMES_PER_DATE,
) -> pd.Series:
    """Point-in-time confidence of one alpha source: its trailing mean daily rank IC, in [0, 1].

    For every session s, ``IC_s`` is the rank IC (:func:`~prometheus_assets.core.evaluation.rank_ic`,
    dates with fewer than ``min_names`` names give none) between the score dated s and the
    forward return over the ``horizon`` sessions after s, compounded from ``returns`` on the
    returns' session index. ``IC_s`` is only known at session position ``pos(s) + horizon``, so
    the IC series is shifted by ``horizon`` sessions, then averaged over a rolling ``window`` of
    sessions that needs at least ``min_periods`` known ICs, clipped to [0, 1] (a source that
    predicts backwards has no confidence), and 0 where there is not enough history.

    Score dates that are not sessions of ``returns`` get no IC; the result is indexed by
    ``score``'s dates, each taking the value of the latest session on or before it.
    The value at t uses no return dated after t.
    """
    if horizon < 1 or window < 1 or min_periods < 1:
        raise ValueError("horizon, window and min_periods must be >= 1")
    sessions = returns.index
    symbols = returns.columns.intersection(score.columns, sort=False)
    on_sessions = score.reindex(index=sessions, columns=symbols)
    forward = pd.DataFrame(
        _forward_compounded(returns.reindex(columns=symbols).to_numpy(dtype=float), horizon), index=sessions, columns=symbols
    )
    ic = rank_ic_wide(on_sessions.to_numpy(dtype=float), forward.to_numpy(dtype=float), sessions, min_names=min_names)
    known = pd.Series(ic.to_numpy(dtype=float), index=pd.DatetimeIndex(ic.index)).reindex(sessions).shift(horizon).to_numpy()
    # a trailing mean over the window alone (not pandas' running rolling mean): start-invariant
    present = ~np.isnan(known)
    count = trailing_sums(present.astype(float), window)
    total = trailing_sums(np.where(present, known, 0.0), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count >= min_periods, total / count, np.nan)
    confidence = pd.Series(mean, index=sessions).clip(0.0, 1.0)
    out = confidence.reindex(score.index, method="ffill") if len(sessions) else pd.Series(np.nan, index=score.index)
    return pd.Series(out.fillna(0.0).to_numpy(dtype=float), index=score.index, name="confidence")


def combine_signals(
    scores: Mapping[str, pd.DataFrame],
    confidences: Mapping[str, pd.DataFrame | pd.Series],
    weights: Mapping[str, float],
    method: str,
) -> pd.DataFrame:
    """Blend several alpha sources into one combined alpha (wide, dates × symbols).

    Every source is first put on a common scale per date: its z-score (:func:`normalise_scores`)
    or, for ``rank_average``, its cross-sectional rank mapped onto [-1, 1]
    (``2 (rank - 1)/(n - 1) - 1``, average ranks for ties, 0 for a lone name). All sources are
    aligned on the union of their dates and symbols. With ``w_k`` the source weights, ``z_k`` the
    normalised scores and ``c_k`` the confidences, per (date, symbol) and over the sources with a
    value there:

    * ``weighted_average``: ``Σ w_k z_k / Σ w_k``;
    * ``confidence_weighted``: ``Σ w_k c_k z_k / Σ w_k c_k``; where ``Σ w_k c_k = 0`` (no source
      is trusted yet) it falls back to the weighted average;
    * ``rank_average``: the weighted average of the [-1, 1] ranks;
    * ``best_strategy``: the ``z`` of the source with the highest confidence (ties go to the
      first source in ``scores``' order).

    NaN where no source has a value. ``confidences[k]`` is either wide (same layout as the
    scores) or a Series per date (the output of :func:`source_confidence`, applied to every
    symbol); values are in [0, 1] and a missing value or a missing source counts as 0. Only
    ``confidence_weighted`` and ``best_strategy`` read them. ``weights`` must give every source a
    positive weight.
    """
    if method not in COMBINATION_METHODS:
        raise ValueError(f"unknown combination method {method!r}; known: {', '.join(COMBINATION_METHODS)}")
    if not scores:
        raise ValueError("combine_signals needs at least one alpha source")
    names = list(scores)
    for k in names:
        w = weights.get(k)
        if w is None or not math.isfinite(float(w)) or float(w) <= 0:
            raise ValueError(f"alpha source {k!r} needs a positive finite weight, got {w!r}")
    dates = scores[names[0]].index
    symbols = scores[names[0]].columns
    for k in names[1:]:
        dates = dates.union(scores[k].index)
        symbols = symbols.union(scores[k].columns)
    if not dates.is_monotonic_increasing:
        dates = dates.sort_values()

    normalise = _signed_percentile_rank if method == "rank_average" else normalise_scores
    z = np.stack([normalise(scores[k]).reindex(index=dates, columns=symbols).to_numpy(dtype=float) for k in names])
    w = np.array([float(weights[k]) for k in names]).reshape(-1, 1, 1)
    available = ~np.isnan(z)
    z0 = np.where(available, z, 0.0)
    any_source = available.any(axis=0)

    with np.errstate(invalid="ignore", divide="ignore"):
        den = (w * available).sum(axis=0)
        average = np.where(any_source, (w * z0).sum(axis=0) / np.where(den > 0, den, 1.0), np.nan)
        if method in ("weighted_average", "rank_average"):
            combined = average
        else:
            c = np.stack([_confidence_array(confidences.get(k), dates, symbols, k) for k in names])
            if method == "confidence_weighted":
                wc = w * c * available
                den_c = wc.sum(axis=0)
                combined = np.where(den_c > 0, (wc * z0).sum(axis=0) / np.where(den_c > 0, den_c, 1.0), average)
            else:  # best_strategy
                best = np.argmax(np.where(available, c, -np.inf), axis=0)
                combined = np.take_along_axis(z, best[None], axis=0)[0]
    combined = np.where(any_source, combined, np.nan)
    return pd.DataFrame(combined, index=dates, columns=symbols)


def _confidence_array(conf: pd.DataFrame | pd.Series | None, dates: pd.Index, symbols: pd.Index, name: str) -> np.ndarray:
    """A source's confidences as a (dates × symbols) array in [0, 1], missing -> 0."""
    if conf is None:
        return np.zeros((len(dates), len(symbols)))
    if isinstance(conf, pd.Series):
        col = conf.reindex(dates).to_numpy(dtype=float)
        arr = np.repeat(col[:, None], len(symbols), axis=1)
    else:
        arr = conf.reindex(index=dates, columns=symbols).to_numpy(dtype=float)
    if np.any(arr[~np.isnan(arr)] < 0) or np.any(arr[~np.isnan(arr)] > 1):
        raise ValueError(f"confidences of {name!r} must lie in [0, 1]")
    return np.nan_to_num(arr, nan=0.0)


# ---------------------------------------------------------------------------------------------
# 2. Sizing: Kelly fractions, inverse volatility, risk parity, raw weights
# ---------------------------------------------------------------------------------------------


def kelly_fractions(
    alpha: pd.DataFrame,
    returns: pd.DataFrame,
    horizon: int,
    window: int = 252,
    cap: float = 0.25,
    min_picks: int = 20,
) -> pd.DataFrame:
    """Point-in-time Kelly fraction of every name from the outcomes of its own past picks.

    A *pick* of a name is a session s where ``alpha > 0``; its *outcome* is the name's forward
    return over the ``horizon`` sessions after s (compounded from ``returns``), known only at
    session position ``pos(s) + horizon``. Over the picks whose outcome became known during the
    trailing ``window`` sessions (the day itself included)::

        p = wins / (wins + losses)              win: outcome > 0, loss: outcome < 0 (0 is neither)
        b = mean win / mean |loss|              the win/loss ratio
        f = p - (1 - p) / b                     clipped to [0, cap]

    Degenerate histories: fewer than ``min_picks`` known picks (flat outcomes count as picks)
    -> NaN (callers treat NaN as "no Kelly size", i.e. 0); no wins -> 0; wins but no losses ->
    ``cap`` (the limit of f as losses vanish). The result is indexed by ``returns``' sessions
    with ``alpha``'s symbols; alpha dated off-session is ignored. The value at t uses no return
    dated after t.
    """
    if horizon < 1 or window < 1 or min_picks < 1:
        raise ValueError("horizon, window and min_picks must be >= 1")
    if not 0 < cap <= 1:
        raise ValueError("cap must be in (0, 1]")
    sessions, symbols = returns.index, alpha.columns
    a = alpha.reindex(index=sessions, columns=symbols).to_numpy(dtype=float)
    forward = _forward_compounded(returns.reindex(columns=symbols).to_numpy(dtype=float), horizon)
    outcome = np.where(a > 0, forward, np.nan)
    known = ~np.isnan(outcome)
    win = known & (outcome > 0)
    loss = known & (outcome < 0)
    parts = {
        "picks": known.astype(float),
        "wins": win.astype(float),
        "losses": loss.astype(float),
        "win_sum": np.where(win, outcome, 0.0),
        "loss_sum": np.where(loss, -outcome, 0.0),
    }
    sums = {}
    for key, x in parts.items():
        # The outcome of the pick at s is known at pos(s) + horizon.
        shifted = np.zeros_like(x)
        if horizon < len(x):
            shifted[horizon:] = x[: len(x) - horizon]
        sums[key] = trailing_sums(shifted, window)  # the window alone, in a fixed order (start-invariant)
    wins, losses = sums["wins"], sums["losses"]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = wins / (wins + losses)
        b = (sums["win_sum"] / wins) / (sums["loss_sum"] / losses)
        f = np.clip(p - (1.0 - p) / b, 0.0, cap)
    f = np.where(wins == 0, 0.0, np.where(losses == 0, cap, f))
    f = np.where(sums["picks"] < min_picks, np.nan, f)
    return pd.DataFrame(f, index=sessions, columns=symbols)


def inverse_volatility_weights(window_returns: pd.DataFrame) -> pd.Series:
    """Weights ∝ 1/σ_i (sample standard deviation of each name's returns in the window), summing to 1.

    NaN returns are skipped. A name whose σ is 0 or undefined (fewer than two returns) gets 0;
    if no name has a usable σ every weight is 0.
    """
    sigma = window_returns.std(ddof=1).to_numpy(dtype=float)
    usable = np.isfinite(sigma) & (sigma > 0)
    inv = np.where(usable, 1.0 / np.where(usable, sigma, 1.0), 0.0)
    total = inv.sum()
    return pd.Series(inv / total if total > 0 else inv, index=window_returns.columns, name="weight")


def _polish_equal_risk(cov: np.ndarray, start: np.ndarray, steps: int = 100) -> np.ndarray:
    """Equal-risk-contribution weights for ``cov`` by damped Newton steps from ``start``.

    Minimises the strictly convex ``n/2 · y'Σy − Σ log y`` (Σ scaled to unit mean variance) over
    y > 0, whose minimiser satisfies ``y_i (Σy)_i = 1/n`` for every i: equal risk contributions.
    The function is self-concordant, so the damped step ``1/(1 + decrement)`` stays inside y > 0
    and converges from any positive start; near the solution the steps are full Newton steps
    (quadratic convergence). Returns ``y / Σy``.
    """
    n = len(start)
    sigma = cov / np.mean(np.diag(cov))
    y = np.maximum(np.asarray(start, dtype=float), 1e-6 * max(float(np.max(start)), 1e-300))
    y = y / math.sqrt(float(y @ sigma @ y))
    for _ in range(steps):
        sy = sigma @ y
        contributions = y * sy * n
        if np.max(np.abs(contributions - 1.0)) < 1e-14:
            break
        grad = n * sy - 1.0 / y
        hess = n * sigma + np.diag(1.0 / (y * y))
        step = np.linalg.solve(hess, grad)
        decrement = math.sqrt(max(float(grad @ step), 0.0))
        y = y - (step if decrement < 0.25 else step / (1.0 + decrement))
    return y / y.sum()


def risk_parity_weights(window_returns: pd.DataFrame) -> pd.Series:
    """Equal-risk-contribution (risk parity) weights on a Ledoit-Wolf shrunk covariance, summing to 1.

    Names observed on fewer than 80% of the window's sessions, or with no variation in it, get 0;
    the remaining NaN returns are read as 0. The covariance is estimated and the risk-budgeting
    problem solved with skfolio (``RiskBudgeting`` with variance as risk measure and a Ledoit-Wolf
    ``EmpiricalPrior``); because its conic solver stops at ~1e-4 relative accuracy, a few Newton
    steps on the same covariance then polish the weights so every name's risk contribution
    ``w_i (Σw)_i`` is equal to ~1e-12 (if the solver fails, Newton starts from inverse-volatility
    weights instead). One usable name gets weight 1; none (or fewer than two sessions) gives all 0.
    """
    out = pd.Series(0.0, index=window_returns.columns, name="weight")
    n_rows = len(window_returns)
    if n_rows < 2 or window_returns.shape[1] == 0:
        return out
    coverage = window_returns.notna().sum() / n_rows
    x = window_returns.loc[:, (coverage >= RISK_PARITY_MIN_COVERAGE).to_numpy()].fillna(0.0)
    x = x.loc[:, (x.std(ddof=1) > 0).to_numpy()]
    if x.shape[1] == 0:
        return out
    if x.shape[1] == 1:
        out[x.columns[0]] = 1.0
        return out

    from skfolio import RiskMeasure
    from skfolio.exceptions import OptimizationError
    from skfolio.moments import LedoitWolf
    from skfolio.optimization import RiskBudgeting
    from skfolio.prior import EmpiricalPrior

    model = RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, prior_estimator=EmpiricalPrior(covariance_estimator=LedoitWolf()))
    values = x.to_numpy(dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "solution may be inaccurate": polished below
            model.fit(values)
        cov = np.asarray(model.prior_estimator_.return_distribution_.covariance, dtype=float)
        start = np.asarray(model.weights_, dtype=float)
    except OptimizationError:
        from sklearn.covariance import LedoitWolf as SkLedoitWolf

        cov = SkLedoitWolf().fit(values).covariance_
        start = 1.0 / np.sqrt(np.diag(cov))
    out[x.columns] = _polish_equal_risk(cov, start)
    return out


#: Bump when :func:`risk_parity_weights` changes its answer: stored memo entries of the old code
#: then no longer match (:func:`risk_parity_memo_key`).
RISK_PARITY_VERSION = "1"

#: A memo of risk-parity solutions: :func:`risk_parity_memo_key` -> weights aligned with the
#: window's columns. Any mutable mapping works (a dict, or one backed by storage).
RiskParityMemo = MutableMapping[str, np.ndarray]


def risk_parity_memo_key(window_returns: pd.DataFrame) -> str:
    """Content address of a risk-parity problem: sha256 of the window's values and shape.

    The answer of :func:`risk_parity_weights` depends on the window's numbers only (the column
    labels just name the output), so equal windows share one solution. The key also carries
    :data:`RISK_PARITY_VERSION` and the versions of the libraries that solve it (skfolio, cvxpy,
    scikit-learn, numpy): a memo filled by other code never answers for this code.
    """
    values = np.ascontiguousarray(window_returns.to_numpy(dtype=float))
    values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
    digest = hashlib.sha256(_solver_versions().encode())
    digest.update(np.asarray(values.shape, dtype=np.int64).tobytes())
    digest.update(values.tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _solver_versions() -> str:
    import cvxpy
    import skfolio
    import sklearn

    return f"risk_parity {RISK_PARITY_VERSION}|skfolio {skfolio.__version__}|cvxpy {cvxpy.__version__}|scikit-learn {sklearn.__version__}|numpy {np.__version__}"


def memoised_risk_parity_weights(window_returns: pd.DataFrame, memo: RiskParityMemo | None) -> pd.Series:
    """:func:`risk_parity_weights`, looked up in ``memo`` first and stored there when solved.

    A book replays every rebalance of its history on each run (it is path-dependent), and the
    conic solve is ~0.04 s each: ~900 solves, most of a daily run's time, for answers that never
    change. With a memo kept between runs only new windows are solved. The answer is the same
    bits either way (the memo stores exactly what was solved).
    """
    if memo is None:
        return risk_parity_weights(window_returns)
    key = risk_parity_memo_key(window_returns)
    found = memo.get(key)
    if found is None or len(found) != window_returns.shape[1]:
        found = risk_parity_weights(window_returns).to_numpy(dtype=float)
        memo[key] = found
    return pd.Series(np.asarray(found, dtype=float), index=window_returns.columns, name="weight")


def _raw_weights_array(method: str, alpha: np.ndarray, long_only: bool, kelly: np.ndarray | None) -> np.ndarray:
    """Raw weights for the alpha-only methods (``proportional``, ``kelly``) on plain arrays."""
    if method == "proportional":
        return np.clip(alpha, 0.0, None) if long_only else alpha.astype(float, copy=True)
    if method == "kelly":
        if kelly is None:
            raise ValueError("allocation 'kelly' needs Kelly fractions")
        return np.where(alpha > 0, np.clip(np.nan_to_num(kelly, nan=0.0), 0.0, None), 0.0)
    raise ValueError(f"{method!r} is not an alpha-only allocation")


def raw_weights(
    method: str, alpha: pd.Series, window_returns: pd.DataFrame, kelly: pd.Series | None, long_only: bool, memo: RiskParityMemo | None = None
) -> pd.Series:
    """Raw (unconstrained, unscaled) weights of the selected names, indexed like ``alpha``.

    * ``proportional``: the alpha itself, floored at 0 for a long-only book (signed otherwise);
    * ``kelly``: each name's Kelly fraction (NaN -> 0), for names with a positive alpha;
    * ``risk_parity``: :func:`risk_parity_weights` over the names with a positive alpha;
    * ``inverse_volatility``: :func:`inverse_volatility_weights` over the names with a nonzero
      alpha, signed by the alpha in a long-short book (positive alpha only when long-only).

    ``window_returns`` (dates × symbols) is read only by the covariance methods; ``kelly`` only by
    ``kelly``. Only the relative sizes matter (:func:`apply_constraints` rescales to the gross
    target); a name with raw weight 0 is not held. ``kelly`` and ``risk_parity`` are long-only.
    ``memo``: solved risk-parity problems (:func:`memoised_risk_parity_weights`).
    """
    if method not in ALLOCATION_METHODS:
        raise ValueError(f"unknown allocation method {method!r}; known: {', '.join(ALLOCATION_METHODS)}")
    if method in ("kelly", "risk_parity") and not long_only:
        raise ValueError(f"allocation {method!r} is long-only")
    a = alpha.to_numpy(dtype=float)
    if method in ("proportional", "kelly"):
        k = None if kelly is None else kelly.reindex(alpha.index).to_numpy(dtype=float)
        return pd.Series(_raw_weights_array(method, np.nan_to_num(a, nan=0.0), long_only, k), index=alpha.index, name="raw_weight")
    chosen = (a > 0) if (long_only or method == "risk_parity") else (np.nan_to_num(a, nan=0.0) != 0)
    names = alpha.index[chosen]
    window = window_returns.reindex(columns=names)
    sized = memoised_risk_parity_weights(window, memo) if method == "risk_parity" else inverse_volatility_weights(window)
    out = pd.Series(0.0, index=alpha.index, name="raw_weight")
    out[names] = sized.to_numpy() * np.sign(a[chosen])
    return out


# ---------------------------------------------------------------------------------------------
# 3. Hard limits
# ---------------------------------------------------------------------------------------------


def _name_caps(name_cap: float | np.ndarray, n: int) -> float | np.ndarray:
    """``name_cap`` of :func:`_water_fill` as one float (all names share it) or a per-name array.

    An array whose entries are all equal collapses to a float, so per-name caps that happen to
    be equal give bit-for-bit the result of the scalar cap (the scalar path multiplies the cap by
    a count where the array path sums the caps, and the two can differ in the last bit).
    """
    caps = np.asarray(name_cap, dtype=float)
    if caps.ndim == 0:
        value = float(caps)
        if math.isnan(value) or value < 0:
            raise ValueError(f"a name cap must be >= 0, got {value}")
        return value
    if caps.shape != (n,):
        raise ValueError(f"name caps must be a float or one per name ({n}), got shape {caps.shape}")
    if np.isnan(caps).any() or (caps < 0).any():
        raise ValueError("name caps must be >= 0 (inf: no cap of its own)")
    if n == 0 or np.all(caps == caps[0]):
        return float(caps[0]) if n else math.inf
    return caps


def _water_fill(size: np.ndarray, sector: np.ndarray, name_cap: float | np.ndarray, sector_caps: np.ndarray, total: float) -> np.ndarray:
    """Split ``total`` over names in proportion to ``size`` under a per-name and per-sector cap.

    The result is ``v_i = min(θ_s · size_i, cap_i)`` with one common level θ for every sector
    below its cap, and a lower level θ_s for a sector that would exceed ``sector_caps[s]`` (set so
    that the sector sums exactly to its cap). θ is as large as needed to reach ``total``; if the
    caps do not allow ``total`` every name / sector ends at its cap and the sum stays below it.
    ``name_cap`` is either one cap for every name (a float) or one cap per name (an array like
    ``size``); an array of equal caps gives exactly the result of that float.

    Procedure ("water-filling"): spread the budget left over after the frozen names and sectors
    over the free names in proportion to size; freeze every name above its cap at the cap
    and every sector above its cap at its cap; repeat until nothing is violated. The common level
    only rises from one round to the next (a name is frozen only when ``θ · size_i > cap_i``, so
    freezing it leaves more budget per unit of remaining size), so whatever is frozen stays
    binding in the final solution and at most names + sectors rounds are needed. The names of a
    frozen sector are then filled to exactly the sector cap the same way (with the name caps
    alone).
    """
    n = len(size)
    n_sectors = len(sector_caps)
    cap = _name_caps(name_cap, n)
    uniform = isinstance(cap, float)
    capped = np.zeros(n, dtype=bool)
    saturated = np.zeros(n_sectors, dtype=bool)
    level = 0.0
    # Each round caps a name or saturates a sector, and neither happens twice to the same one (a
    # name of a saturated sector never returns to the common pool): n + S + 1 rounds suffice.
    for _ in range(n + n_sectors + 1):
        in_open = ~saturated[sector]
        free = in_open & ~capped
        mass = float(size[free].sum())
        if uniform:
            n_frozen = np.count_nonzero(capped & in_open)
            frozen_names = cap * n_frozen if n_frozen else 0.0  # (an infinite cap freezes no name)
        else:
            frozen_names = float(cap[capped & in_open].sum())
        frozen = frozen_names + float(sector_caps[saturated].sum())
        if mass <= 0:
            break
        level = max(total - frozen, 0.0) / mass
        tentative = np.where(capped, cap, np.minimum(level * size, cap))
        sector_sum = np.bincount(sector[in_open], weights=tentative[in_open], minlength=n_sectors)
        new_saturated = ~saturated & (sector_sum > sector_caps)
        new_capped = free & (level * size > cap)
        if not new_saturated.any() and not new_capped.any():
            break
        saturated |= new_saturated
        capped |= new_capped
        capped &= ~saturated[sector]
    v = np.where(capped, cap, level * size)
    for s in np.flatnonzero(saturated):
        members = sector == s
        member_cap = cap if uniform else cap[members]
        v[members] = _water_fill(size[members], np.zeros(int(members.sum()), dtype=np.intp), member_cap, np.array([np.inf]), float(sector_caps[s]))
    return np.minimum(v, cap)


def _breadth_ok(n_held: int, min_positions: int) -> bool:
    return n_held == 0 or n_held >= min_positions


def _constrain(
    raw: np.ndarray,
    current: np.ndarray,
    sector: np.ndarray,
    locked: np.ndarray,
    constraints: Constraints,
    size_multiplier: float,
    n_sectors: int,
    name_caps: np.ndarray | None = None,
) -> np.ndarray:
    """Array core of :func:`apply_constraints` (``sector`` = integer codes 0..n_sectors-1).

    ``name_caps`` (optional, one per name, ``inf`` = none of its own) tightens the position cap
    name by name: name i may hold at most ``min(max_position, name_caps[i])``. The free names are
    water-filled under these limits, and the turnover step's partial move must keep them too
    (like ``max_position``, a name's limit is loosened only where the target itself exceeds it,
    i.e. a locked name). Without ``name_caps`` (or with every cap >= ``max_position``) the result
    is bit-for-bit that of ``max_position`` alone.
    """
    c = constraints
    limit: float | np.ndarray = c.max_position
    if name_caps is not None:
        caps = np.asarray(name_caps, dtype=float)
        if caps.shape != raw.shape:
            raise ValueError(f"name_caps must have one cap per name ({raw.shape[0]}), got shape {caps.shape}")
        if np.isnan(caps).any() or (caps < 0).any():
            raise ValueError("name_caps must be >= 0 (inf: no cap of its own)")
        if caps.size:
            limit = _name_caps(np.minimum(c.max_position, caps), caps.size)
    gross_target = c.gross_leverage * size_multiplier
    target = np.where(locked, current, 0.0)
    locked_abs = np.abs(target)
    free = ~locked & (raw != 0)
    budget = max(gross_target - float(locked_abs.sum()), 0.0)
    if free.any() and budget > 0:
        sector_room = np.maximum(c.max_sector - np.bincount(sector, weights=locked_abs, minlength=n_sectors), 0.0)
        free_limit = limit if isinstance(limit, float) else limit[free]
        fill = _water_fill(np.abs(raw[free]), sector[free], free_limit, sector_room, budget)
        target[free] = np.sign(raw[free]) * fill
    if not _breadth_ok(np.count_nonzero(target), c.min_positions):
        target = np.where(locked, current, 0.0)  # insufficient breadth: hold nothing new

    move = target - current
    turnover = float(np.abs(move).sum())
    if turnover <= c.max_turnover:
        return target
    # Limits the partial move must keep: the hard limits, loosened only where the target itself
    # cannot meet them (positions that cannot trade today).
    abs_target = np.abs(target)
    name_cap = np.maximum(limit, abs_target)
    sector_cap = np.maximum(c.max_sector, np.bincount(sector, weights=abs_target, minlength=n_sectors))
    gross_cap = max(gross_target, float(abs_target.sum()))
    name_limit = name_cap + FEASIBILITY_TOLERANCE
    sector_limit = sector_cap + FEASIBILITY_TOLERANCE
    gross_limit = gross_cap + (FEASIBILITY_TOLERANCE if gross_cap > 0 else 0.0)
    need_breadth = _breadth_ok(np.count_nonzero(target), c.min_positions)

    def feasible(weights: np.ndarray) -> bool:
        a = np.abs(weights)
        return bool(
            np.all(a <= name_limit)
            and np.all(np.bincount(sector, weights=a, minlength=n_sectors) <= sector_limit)
            and a.sum() <= gross_limit
            and (not need_breadth or _breadth_ok(np.count_nonzero(a), c.min_positions))
        )

    lo = c.max_turnover / turnover
    if feasible(current + lo * move):
        return _close_dust(current + lo * move, target, locked, c)
    # The current book breaks a limit (a drifted name above its cap, a sector or the gross above
    # its limit after a regime cut). On the line from it to the target the limits then hold only
    # near the target: a drift of 1e-4 over a cap forced a near-full rebalance (turnover 1.0
    # against 0.5). Instead trim it into the limits first, which costs just the overage, and spend
    # what the turnover limit leaves moving towards the target: both ends meet the caps and the
    # gross limit, so every point between them does (they are convex).
    # (trimmed to the limits themselves: the tolerance the check allows is left for rounding)
    trimmed = _trim_into_limits(current, locked, name_cap, sector, sector_cap, gross_cap, n_sectors)
    rest = target - trimmed
    rest_turnover = float(np.abs(rest).sum())
    left = c.max_turnover - float(np.abs(trimmed - current).sum())
    step = min(max(left / rest_turnover, 0.0), 1.0) if rest_turnover > 0 else 1.0
    candidate = trimmed + step * rest
    if step < 1.0 and feasible(candidate):
        return _close_dust(candidate, target, locked, c)
    # (the breadth rule can still fail there, e.g. a book of fewer than min_positions names that
    # the target sells out: the smallest feasible move along the line to the target, by bisection)
    hi = 1.0  # the target itself: feasible by construction
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if feasible(current + mid * move):
            hi = mid
        else:
            lo = mid
    return target if hi == 1.0 else _close_dust(current + hi * move, target, locked, c)


def _trim_into_limits(
    weights: np.ndarray,
    locked: np.ndarray,
    name_limit: np.ndarray | float,
    sector: np.ndarray,
    sector_limit: np.ndarray,
    gross_limit: float,
    n_sectors: int,
) -> np.ndarray:
    """``weights`` cut back into the position, sector and gross limits, tradable names only, at the least turnover.

    Positions are clipped to their limit, then each sector over its limit is scaled down over
    its tradable names, then the whole book if its gross is over. Each cut only shrinks |w| (signs
    kept, no name closed unless its limit is 0), so it keeps the limits met before it, and it
    costs exactly the overage it removes: any cut of a sum by s moves at least s. Locked names
    are never cut; the limits given already allow what they hold (they are the target's).
    """
    free = ~locked
    sign, a = np.sign(weights), np.abs(weights)
    a = np.where(free, np.minimum(a, name_limit), a)
    over = np.bincount(sector, weights=a, minlength=n_sectors) - sector_limit
    if (over > 0).any():
        tradable = np.bincount(sector, weights=np.where(free, a, 0.0), minlength=n_sectors)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # (a subnormal tradable gross: keep 0)
            keep = np.where((over > 0) & (tradable > 0), np.clip(1.0 - over / tradable, 0.0, 1.0), 1.0)
        a = np.where(free, a * keep[sector], a)
    over_gross = float(a.sum()) - gross_limit
    tradable_gross = float(a[free].sum())
    if over_gross > 0 and tradable_gross > 0:
        a = np.where(free, a * min(max(1.0 - over_gross / tradable_gross, 0.0), 1.0), a)
    return sign * a


def _close_dust(weights: np.ndarray, target: np.ndarray, locked: np.ndarray, c: Constraints) -> np.ndarray:
    """Close leftovers of names the target no longer holds once they are below ``min_weight``.

    Without this a turnover-limited book never quite exits a name (each rebalance only shrinks
    it by a factor) and accumulates hundreds of tiny positions. Closing a leftover only lowers
    |w|, so the caps and the gross limit still hold; the turnover limit may be exceeded by at most
    the dust closed (each piece < ``min_weight``). If closing would leave between 1 and
    ``min_positions`` − 1 names, the leftovers are kept (the breadth rule wins).
    """
    dust = (target == 0) & ~locked & (weights != 0) & (np.abs(weights) < c.min_weight)
    if not dust.any():
        return weights
    cleaned = np.where(dust, 0.0, weights)
    return cleaned if _breadth_ok(np.count_nonzero(cleaned), c.min_positions) else weights


def _sector_codes(names: pd.Index, sectors: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer sector code per name (missing / NaN sector -> :data:`UNKNOWN_SECTOR`) and the labels."""
    labels = sectors.reindex(names).astype(object).where(lambda s: s.notna(), UNKNOWN_SECTOR)
    codes, uniques = pd.factorize(labels.to_numpy(dtype=object))
    return codes.astype(np.intp), np.asarray(uniques, dtype=object)


def apply_constraints(
    raw: pd.Series,
    sectors: pd.Series,
    current: pd.Series,
    constraints: Constraints,
    size_multiplier: float = 1.0,
    *,
    locked: Iterable[object] | None = None,
) -> pd.Series:
    """New target weights from raw weights, the current weights and the book's hard limits.

    Returns a Series over ``raw.index ∪ current.index`` (sorted; 0 for names not held). In order:

    1. **Breadth.** Names with raw weight 0 (or NaN) are dropped. If fewer than
       ``min_positions`` names remain the target is empty: a book holds either nothing or at
       least ``min_positions`` names (insufficient breadth -> cash).
    2. **Gross and caps.** The gross target is ``G = gross_leverage × size_multiplier``. The raw
       weights are scaled so ``Σ|w| = G`` and then water-filled under the caps
       ``|w_i| <= max_position`` and ``Σ_{i in sector}|w_i| <= max_sector`` (a missing sector
       counts as ``"UNKNOWN"``): violating names / sectors are frozen at their cap and the rest
       of the budget is spread over the free names in proportion to raw (see
       :func:`_water_fill`). When the caps cannot absorb G the gross stays below G (the rest is
       cash). Each weight has the sign of its raw weight.
    3. **Turnover.** With ``T = Σ|target − current|``: if ``T > max_turnover`` the book moves only
       part of the way, ``w(λ) = current + λ (target − current)`` with ``λ = max_turnover / T``.
       **Hard limits take precedence over the turnover limit**: if ``w(λ)`` breaks a position
       cap, a sector cap or the gross limit G (the current book itself does: a drifted name
       above its cap, a book too big after a regime cut), the current book is first trimmed into
       them at the least turnover (each cut costs exactly the overage it removes:
       :func:`_trim_into_limits`), and the rest of the turnover limit moves it towards the
       target, ``w = trimmed + μ (target − trimmed)``; every such point meets the limits (they
       are convex). The turnover is then ``max_turnover``, or the trim's when that alone is more.
       Only if that point breaks the breadth rule is λ raised instead to the smallest value in
       ``[max_turnover / T, 1]`` for which ``w(λ)`` meets every limit (bisection). A long-only
       mix of the current book and a target of at least ``min_positions`` names holds the
       union of both, so breadth holds along the way; when the target is empty, breadth forces
       either staying at ≥ ``min_positions`` names or selling out completely.

    ``locked`` names cannot trade today (no price): their weight stays at ``current``, their
    gross is taken out of G and of their sector's cap before the others are filled, and a limit
    they already break by themselves cannot be repaired (:func:`check_constraints` reports it).
    Selection breadth (``max_positions``) is the caller's job: every nonzero raw weight is used.
    """
    if not (math.isfinite(size_multiplier) and size_multiplier >= 0):
        raise ValueError(f"size_multiplier must be a finite number >= 0, got {size_multiplier}")
    names = raw.index.union(current.index)
    raw_arr = np.nan_to_num(raw.reindex(names).to_numpy(dtype=float), nan=0.0)
    cur_arr = np.nan_to_num(current.reindex(names).to_numpy(dtype=float), nan=0.0)
    codes, labels = _sector_codes(names, sectors)
    locked_mask = names.isin(list(locked)) if locked is not None else np.zeros(len(names), dtype=bool)
    target = _constrain(raw_arr, cur_arr, codes, np.asarray(locked_mask, dtype=bool), constraints, float(size_multiplier), len(labels))
    return pd.Series(target, index=names, name="target_weight")


def check_constraints(
    weights: pd.Series,
    sectors: pd.Series,
    constraints: Constraints,
    size_multiplier: float = 1.0,
    *,
    tol: float = CONSTRAINT_TOLERANCE,
) -> list[str]:
    """Every hard limit that ``weights`` break (empty list: all hold), within ``tol``.

    Checks ``|w_i| <= max_position``, per-sector gross ``<= max_sector`` (missing sector ->
    ``"UNKNOWN"``), ``Σ|w| <= gross_leverage × size_multiplier`` and the breadth rule (0 or at
    least ``min_positions`` names with a nonzero weight). ``max_positions`` bounds the names
    *selected* at a rebalance, not the names held while a turnover-limited book migrates, so it is
    not checked.
    """
    c = constraints
    w = weights.fillna(0.0)
    problems: list[str] = []
    a = w.abs()
    for name, value in a[a > c.max_position + tol].items():
        problems.append(f"position {name}: |w| = {value:.12g} > max_position {c.max_position:g}")
    codes, labels = _sector_codes(w.index, sectors)
    by_sector = np.bincount(codes, weights=a.to_numpy(dtype=float), minlength=len(labels))
    for label, value in zip(labels, by_sector):
        if value > c.max_sector + tol:
            problems.append(f"sector {label}: gross {value:.12g} > max_sector {c.max_sector:g}")
    gross_limit = c.gross_leverage * size_multiplier
    if a.sum() > gross_limit + tol:
        problems.append(f"gross {a.sum():.12g} > gross limit {gross_limit:g}")
    held = int((a > 0).sum())
    if not _breadth_ok(held, c.min_positions):
        problems.append(f"{held} names held: a book holds 0 or at least min_positions = {c.min_positions}")
    return problems


# ---------------------------------------------------------------------------------------------
# 4. The daily loop
# ---------------------------------------------------------------------------------------------


def rebalance_dates(sessions: pd.DatetimeIndex, frequency: str) -> pd.DatetimeIndex:
    """The sessions on which a book with this rebalance ``frequency`` trades.

    ``daily``: every session. ``weekly`` / ``monthly`` / ``quarterly``: the first session in
    ``sessions`` of each ISO week / calendar month / calendar quarter. The periods are calendar
    periods, so the dates do not depend on where the history starts — except that the first
    session of ``sessions`` is always a rebalance (the first, possibly partial, period starts
    there).
    """
    if frequency not in REBALANCE_FREQUENCIES:
        raise ValueError(f"unknown rebalance frequency {frequency!r}; known: {', '.join(REBALANCE_FREQUENCIES)}")
    sessions = pd.DatetimeIndex(sessions)
    if not sessions.is_monotonic_increasing or sessions.has_duplicates:
        raise ValueError("sessions must be strictly increasing")
    if frequency == "daily" or len(sessions) == 0:
        return sessions.copy()
    if frequency == "weekly":
        iso = sessions.isocalendar()
        key = iso["year"].to_numpy(dtype=np.int64) * 100 + iso["week"].to_numpy(dtype=np.int64)
    elif frequency == "monthly":
        key = sessions.year.to_numpy(dtype=np.int64) * 12 + sessions.month.to_numpy(dtype=np.int64)
    else:
        key = sessions.year.to_numpy(dtype=np.int64) * 4 + sessions.quarter.to_numpy(dtype=np.int64)
    first = np.concatenate([[True], key[1:] != key[:-1]])
    return sessions[first]


class Sizer(Protocol):
    """A hook of :func:`construct_book` that resizes the selected names on every rebalance.

    Called once per rebalance day, after the raw weights are known and before the hard limits::

        multipliers, caps = sizer(day_index, date, selected, raw, current)

    * ``day_index``: position of ``date`` in the sessions of ``returns``;
    * ``selected``: the column indices (into ``returns``' columns, ascending) of the names
      selected today (may be empty);
    * ``raw``: their raw weights (allocation method × universe weight), aligned with ``selected``;
    * ``current``: the book's current (drifted) weights of *every* column.

    It returns two arrays aligned with ``selected``: ``multipliers`` (finite, >= 0; each raw
    weight is multiplied by its multiplier, 0 drops the name) and ``caps`` (>= 0, ``inf`` = no
    cap of its own; the name may then hold at most ``min(max_position, cap)``). The arrays
    passed in are copies: the sizer cannot change the book by writing into them.

    A sizer may also define ``record(day_index, date, selected, final)``; if it does,
    :func:`construct_book` calls it right after the hard limits with the final target weights of
    the same ``selected`` names (telemetry: what the sized weight became). ``record`` is optional
    and therefore not part of this protocol (see :class:`RecordingSizer`).
    """

    def __call__(
        self, day_index: int, date: pd.Timestamp, selected: np.ndarray, raw: np.ndarray, current: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...


class RecordingSizer(Sizer, Protocol):
    """A :class:`Sizer` that is also told the final target weights of the names it sized."""

    def record(self, day_index: int, date: pd.Timestamp, selected: np.ndarray, final: np.ndarray) -> None: ...


def _sizer_output(out: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate what a :class:`Sizer` returned for ``n`` selected names."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise ValueError("a sizer returns a tuple (multipliers, caps)")
    multipliers = np.asarray(out[0], dtype=float)
    caps = np.asarray(out[1], dtype=float)
    if multipliers.shape != (n,) or caps.shape != (n,):
        raise ValueError(f"a sizer returns one multiplier and one cap per selected name ({n}), got shapes {multipliers.shape} and {caps.shape}")
    if not np.all(np.isfinite(multipliers)) or (multipliers < 0).any():
        raise ValueError("sizer multipliers must be finite and >= 0")
    if np.isnan(caps).any() or (caps < 0).any():
        raise ValueError("sizer caps must be >= 0 (inf: no cap of its own)")
    return multipliers, caps


@dataclass(frozen=True, eq=False)
class BookPlan:
    """What the portfolio manager of one book decided, day by day.

    * ``positions``: long frame (:data:`POSITION_COLUMNS`), one row per (date, symbol) where the
      current (drifted, start-of-decision) or the target weight is nonzero, sorted by date and
      symbol. ``trade_weight = target_weight − current_weight``; ``rebalance`` flags rebalance
      days (on other days target = current).
    * ``targets``: wide target weights on rebalance days only (rows = rebalance dates, columns =
      every symbol): the input of :func:`prometheus_assets.core.backtest.simulate`.
    * ``weights``: wide end-of-day weights on every session (the target on rebalance days, the
      drifted weights otherwise).
    """

    positions: pd.DataFrame
    targets: pd.DataFrame
    weights: pd.DataFrame


@dataclass(frozen=True)
class BookStart:
    """Where a resumed book picks up: the first session to plan and the weights held before it.

    ``weights`` are the end-of-day weights of the session before ``date`` (symbol -> weight;
    names not listed hold nothing), exactly as a run over the earlier sessions left them
    (:attr:`BookPlan.weights`). The inputs given to :func:`construct_book` must then cover
    enough sessions before ``date`` for every trailing window the book reads (see
    :func:`book_lookback`); those sessions are read, never planned.
    """

    date: pd.Timestamp
    weights: pd.Series


def book_lookback(config: BookConfig, source_horizon: int) -> int:
    """Sessions of history a resumed book needs before its first planned day.

    The longest chain of trailing windows behind one day's decision: a source's confidence
    averages ``confidence_window`` daily ICs, each needing ``source_horizon`` sessions of
    forward returns; Kelly fractions count ``kelly_window`` picks of that alpha, each known
    ``horizon_days`` sessions later; sizing reads ``covariance_window`` / ``volatility_window``
    sessions of returns. Two sessions of slack cover the shift by one and yesterday's
    multiplier.
    """
    alpha = config.confidence_window + source_horizon
    if config.allocation == "kelly":
        alpha += config.kelly_window + config.horizon_days
    return max(alpha, config.covariance_window, config.volatility_window) + 2


def construct_book(
    config: BookConfig,
    alpha: pd.DataFrame,
    universe_weight: pd.DataFrame,
    returns: pd.DataFrame,
    sectors: pd.Series,
    size_multiplier: pd.Series,
    kelly: pd.DataFrame | None = None,
    sizer: Sizer | None = None,
    risk_parity_memo: RiskParityMemo | None = None,
    start: BookStart | None = None,
) -> BookPlan:
    """Run a book's portfolio manager over every session of ``returns`` (from ``start``, if given).

    Inputs (wide frames are dates × symbols; the symbols are ``returns``' columns, other columns
    are ignored):

    * ``alpha``: the combined alpha (e.g. :func:`combine_signals`), NaN = no view;
    * ``universe_weight``: NaN = not in the book's universe that day, else a multiplier in
      (0, 1] applied to the raw weight (de-weighting of fragile names);
    * ``returns``: daily simple returns; NaN = no price (cannot trade that day);
    * ``sectors``: symbol -> sector (missing -> ``"UNKNOWN"``);
    * ``size_multiplier``: per date, the regime rules' size multiplier in [0, 1] (missing -> 1);
    * ``kelly``: Kelly fractions for ``allocation: kelly`` (computed with
      :func:`kelly_fractions` from the config's horizon, ``kelly_window`` and ``kelly_cap`` when
      not given);
    * ``sizer``: an optional :class:`Sizer` (edge sizing); without one the book is sized by its
      allocation method and hard limits alone;
    * ``risk_parity_memo``: solved risk-parity problems, read and filled
      (:func:`memoised_risk_parity_weights`); the plan is the same with or without it;
    * ``start``: resume a book (:class:`BookStart`): plan only the sessions from ``start.date``,
      holding ``start.weights`` at the close before it; earlier sessions are lookback. Every
      input of a session is local to a trailing window, so with enough lookback the resumed plan
      is bit-for-bit the tail of the plan over the whole history (tested).

    Each session t:

    1. **Drift.** Yesterday's end-of-day weights move with today's returns,
       ``w_i ← w_i g_i / (1 + Σ_j w_j (g_j − 1))`` with ``g = 1 + r`` (``g = 1`` when r is NaN:
       the holding keeps its last value; cash earns 0). This is ``current_weight``.
    2. **Rebalance?** On :func:`rebalance_dates` of ``config.rebalance`` and on every session
       whose size multiplier differs from the previous session's (a regime change resizes the
       book at once). Otherwise target = current.
    3. **Selection.** Candidates have a return today (tradeable), a universe weight and an alpha
       (> 0 for a long-only book, ≠ 0 otherwise); the ``max_positions`` with the largest alpha
       (|alpha| long-short) are kept, ties to the earlier column.
    4. **Sizing.** ``raw = raw_weights(config.allocation, ...) × universe_weight``, with the
       returns of the last ``covariance_window`` (risk parity) or ``volatility_window`` (inverse
       volatility) sessions up to and including today.
    5. **Sizer hook (only with ``sizer``).** ``multipliers, caps = sizer(i, date, selected,
       raw of selected, current)``; then ``raw_selected *= multipliers`` and each selected name's
       position cap becomes ``min(max_position, cap)``. Held names that are not selected keep
       ``max_position``. The hook runs on every rebalance day, also when nothing is selected.
    6. **Limits.** ``target = apply_constraints(raw, sectors, current, config.constraints,
       size multiplier today)``, where with a sizer each selected name's ``max_position`` is the
       tighter cap of step 5 (it binds in the water-filling and in the turnover step's partial
       move exactly like ``max_position``); held names without a price today are locked at their
       current weight (they cannot trade, exactly as
       :func:`~prometheus_assets.core.backtest.simulate` keeps them).
    7. **Record (only with a sizer that has ``record``).** ``sizer.record(i, date, selected,
       target of selected)``: the final weights of the names it sized, for telemetry.

    Without a sizer the result is bit-for-bit the plain book's; a sizer that returns
    multipliers 1 and caps >= ``max_position`` gives the same plan too.

    With zero costs, replaying :attr:`BookPlan.targets` through ``simulate`` on prices
    compounded from ``returns`` reproduces :attr:`BookPlan.weights` (the tests check it).
    Raises ``ValueError`` if the book's equity would fall to zero or below.
    """
    sessions = pd.DatetimeIndex(returns.index)
    if not sessions.is_monotonic_increasing or sessions.has_duplicates:
        raise ValueError("returns index must be strictly increasing")
    symbols = returns.columns
    n_days, n_names = len(sessions), len(symbols)
    c = config.constraints
    R = returns.to_numpy(dtype=float)
    A = alpha.reindex(index=sessions, columns=symbols).to_numpy(dtype=float)
    U = universe_weight.reindex(index=sessions, columns=symbols).to_numpy(dtype=float)
    u_values = U[~np.isnan(U)]
    if u_values.size and (u_values.min() <= 0 or u_values.max() > 1):
        raise ValueError("universe_weight must be NaN (not in the universe) or in (0, 1]")
    mult = size_multiplier.reindex(sessions).fillna(1.0).to_numpy(dtype=float) if len(size_multiplier) else np.ones(n_days)
    if np.any(~np.isfinite(mult)) or np.any(mult < 0) or np.any(mult > 1):
        raise ValueError("size_multiplier must lie in [0, 1]")
    sector_code, sector_labels = _sector_codes(symbols, sectors)
    n_sectors = len(sector_labels)
    rebalance = sessions.isin(rebalance_dates(sessions, config.rebalance))
    rebalance[1:] |= mult[1:] != mult[:-1]

    method = config.allocation
    K = None
    if method == "kelly":
        kelly_frame = kelly if kelly is not None else kelly_fractions(alpha, returns, config.horizon_days, window=config.kelly_window, cap=config.kelly_cap)
        K = kelly_frame.reindex(index=sessions, columns=symbols).to_numpy(dtype=float)
    lookback = config.covariance_window if method == "risk_parity" else config.volatility_window

    record = getattr(sizer, "record", None) if sizer is not None else None
    if record is not None and not callable(record):
        raise TypeError("sizer.record must be callable")

    weights_out = np.zeros((n_days, n_names))
    targets_out = np.zeros((int(rebalance.sum()), n_names))
    rows_day: list[np.ndarray] = []
    rows_name: list[np.ndarray] = []
    rows_current: list[np.ndarray] = []
    rows_target: list[np.ndarray] = []

    w = np.zeros(n_names)
    first = 0
    if start is not None:
        first = int(sessions.get_indexer([pd.Timestamp(start.date)])[0])
        if first < 1:
            raise ValueError(f"book {config.name}: resuming on {pd.Timestamp(start.date).date()} needs that session and the one before it in returns")
        held_before = start.weights[start.weights != 0]
        unknown = held_before.index.difference(symbols)
        if len(unknown):
            raise ValueError(f"book {config.name}: resumed holdings {list(unknown)[:5]} are not columns of returns")
        w[symbols.get_indexer(held_before.index)] = held_before.to_numpy(dtype=float)
        rebalance[:first] = False
        weights_out = weights_out[first:]
        targets_out = targets_out[: int(rebalance.sum())]
    k_reb = 0
    for i in range(first, n_days):
        held = np.flatnonzero(w)
        if held.size:
            r = R[i, held]
            g = np.where(np.isnan(r), 1.0, 1.0 + r)
            denom = 1.0 + float(w[held] @ (g - 1.0))
            if denom <= 0:
                raise ValueError(f"book {config.name}: equity falls to zero or below on {sessions[i].date()}")
            w[held] = w[held] * g / denom
        if rebalance[i]:
            current = w.copy()
            tradeable = ~np.isnan(R[i])
            a_today = A[i]
            with np.errstate(invalid="ignore"):
                wanted = (a_today > 0) if config.long_only else (a_today != 0)
            candidates = np.flatnonzero(tradeable & ~np.isnan(U[i]) & ~np.isnan(a_today) & wanted)
            if candidates.size > c.max_positions:
                key = a_today[candidates] if config.long_only else np.abs(a_today[candidates])
                candidates = candidates[np.argsort(-key, kind="stable")[: c.max_positions]]
            selected = np.sort(candidates)
            involved = current != 0
            involved[selected] = True
            names = np.flatnonzero(involved)
            raw = np.zeros(len(names))
            at = np.searchsorted(names, selected)
            if selected.size:
                a_sel = a_today[selected]
                if method in ("proportional", "kelly"):
                    sized = _raw_weights_array(method, a_sel, config.long_only, None if K is None else K[i, selected])
                else:
                    window = returns.iloc[max(0, i - lookback + 1) : i + 1, selected]
                    sized = raw_weights(method, pd.Series(a_sel, index=symbols[selected]), window, None, config.long_only, risk_parity_memo).to_numpy()
                raw[at] = sized * U[i, selected]
            name_caps = None
            if sizer is not None:
                multipliers, caps = _sizer_output(sizer(i, sessions[i], selected.copy(), raw[at].copy(), current.copy()), selected.size)
                raw[at] = raw[at] * multipliers
                name_caps = np.full(len(names), np.inf)
                name_caps[at] = caps
            locked = ~tradeable[names] & (current[names] != 0)
            w[names] = _constrain(raw, current[names], sector_code[names], locked, c, float(mult[i]), n_sectors, name_caps)
            if record is not None:
                record(i, sessions[i], selected.copy(), w[selected].copy())
            targets_out[k_reb] = w
            k_reb += 1
            shown = np.flatnonzero((current != 0) | (w != 0))
            rows_current.append(current[shown])
        else:
            shown = np.flatnonzero(w)
            rows_current.append(w[shown])
        weights_out[i - first] = w
        rows_day.append(np.full(shown.size, i, dtype=np.intp))
        rows_name.append(shown)
        rows_target.append(w[shown])

    day = np.concatenate(rows_day) if rows_day else np.zeros(0, dtype=np.intp)
    name = np.concatenate(rows_name) if rows_name else np.zeros(0, dtype=np.intp)
    cur = np.concatenate(rows_current) if rows_current else np.zeros(0)
    tgt = np.concatenate(rows_target) if rows_target else np.zeros(0)
    symbol_rank = np.argsort(np.argsort(np.asarray(symbols, dtype=object), kind="stable"), kind="stable")
    order = np.lexsort((symbol_rank[name], day))
    day, name, cur, tgt = day[order], name[order], cur[order], tgt[order]
    positions = pd.DataFrame(
        {
            "date": sessions[day],
            "symbol": symbols[name],
            "current_weight": cur,
            "target_weight": tgt,
            "trade_weight": tgt - cur,
            "alpha": A[day, name],
            "rebalance": rebalance[day],
            "size_multiplier": mult[day],
        },
        columns=POSITION_COLUMNS,
    )
    return BookPlan(
        positions=positions,
        targets=pd.DataFrame(targets_out, index=sessions[rebalance], columns=symbols),
        weights=pd.DataFrame(weights_out, index=sessions[first:], columns=symbols),
    )
