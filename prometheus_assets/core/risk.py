"""The Portfolio & Risk model: what a book's weights *are exposed to*, measured point-in-time.

Given a book's weights on a day (fractions of its equity; ``sum|w|`` is the gross, the rest is
cash) this module answers four questions a risk manager asks every morning:

1. **How volatile is it?** :func:`ex_ante_volatility` — the annualised standard deviation of the
   portfolio's daily return predicted by a shrunk covariance matrix of past daily returns
   (:func:`shrunk_covariance`, Ledoit-Wolf shrinkage from scikit-learn).
2. **Where does the risk come from?** :func:`risk_contributions` — each name's marginal risk and
   its contribution to the volatility (Euler decomposition: the contributions add up exactly to
   the volatility).
3. **What is it exposed to?** :func:`factor_exposures` — market beta, betas to factor ETFs, net
   weight per sector and the usual gross / net / long / short figures.
4. **What would a crisis do to it?** :func:`stress_test` — replay named historical windows
   (:data:`STRESS_WINDOWS`) on today's weights as a buy-and-hold portfolio.

:func:`risk_reports` runs all four for every (date, book) of a positions table and returns one
long frame (``date, book, section, item, value``).

Conventions: "wide" frames are dates × symbols with a sorted ``DatetimeIndex``; returns are daily
simple returns (NaN = no price that day); volatilities are annualised with
``periods_per_year`` (252) trading days. Everything is point-in-time: a figure reported for day
``d`` uses only data dated ``<= d`` (the risk model even only data dated before ``d``'s month).

Pure pandas / numpy / scikit-learn: no Dagster, no I/O.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd
import sklearn
from sklearn.covariance import LedoitWolf

#: Named historical stress windows, ``name -> (first calendar day, last calendar day)``.
#: :func:`stress_test` replays each on today's weights once the window is over. The window's first
#: session is the base close its returns are measured from, so a calendar month starts on the last
#: session of the month before: a month's return runs from the previous month-end close (starting
#: on the month's first session left out its first day, +4.6% on 2 March 2020, and reported March
#: 2020 as -16.4% instead of -12.5%).
STRESS_WINDOWS: dict[str, tuple[str, str]] = {
    # LTCM / Russia: Russia defaults on its domestic debt (17 Aug 1998), spreads blow out and the
    # LTCM hedge fund collapses; the S&P 500 loses about 14% in the month.
    "1998-08": ("1998-07-31", "1998-08-31"),
    # Dot-com bust: the S&P 500 from its closing peak (24 Mar 2000) to its closing trough
    # (9 Oct 2002), about -49% over two and a half years.
    "2000-2002": ("2000-03-24", "2002-10-09"),
    # Lehman aftermath: the month after Lehman Brothers' bankruptcy (15 Sep 2008), credit markets
    # freeze and the S&P 500 falls about 17%, with several daily moves beyond 5%.
    "2008-10": ("2008-09-30", "2008-10-31"),
    # COVID crash: the fastest bear market on record; the S&P 500 falls about 12.5% in March 2020
    # with a -12% day on 16 March.
    "2020-03": ("2020-02-28", "2020-03-31"),
}

#: Columns of :func:`stress_test`'s result.
STRESS_COLUMNS: list[str] = ["window", "start", "end", "stress_return", "worst_day", "coverage"]
#: Columns of :func:`risk_reports`'s result.
RISK_REPORT_COLUMNS: list[str] = ["date", "book", "section", "item", "value"]
#: Sections of :func:`risk_reports`, in the order they appear in each (date, book) block.
RISK_SECTIONS: tuple[str, ...] = ("risk", "factor", "contribution", "marginal", "stress")
#: Sector label of a held name that ``sectors`` does not know.
UNKNOWN_SECTOR: str = "Unknown"
#: Observations a beta needs (dates where both the name and the factor have a return).
MIN_BETA_OBSERVATIONS: int = 20
#: Trading days per year used to annualise volatilities.
PERIODS_PER_YEAR: int = 252


# --------------------------------------------------------------------------- covariance


def shrunk_covariance(window_returns: pd.DataFrame, min_coverage: float = 0.8) -> pd.DataFrame:
    """Ledoit-Wolf shrunk covariance matrix of daily returns (symbols × symbols, daily units).

    ``window_returns`` is wide (dates × symbols), typically the last year of daily returns.

    - Only symbols with a return on at least ``min_coverage`` of the window's rows are kept; the
      others are simply absent from the result (callers see them as "not covered").
    - A kept symbol's missing returns are filled with its own mean over the window, so after
      de-meaning they contribute 0 to every covariance (they neither add nor remove co-movement).
    - The matrix is then estimated by :class:`sklearn.covariance.LedoitWolf`, which pulls the
      sample covariance towards a scaled identity. This keeps it well conditioned when there are
      not many more days than names. Like LedoitWolf, it divides by the number of rows (not rows-1).

    Needs at least 2 rows; otherwise (or when no symbol is covered) the result is an empty frame.
    """
    values = window_returns.to_numpy(dtype="float64", na_value=np.nan)
    keep, covariance = _shrunk_covariance_array(values, min_coverage)
    if covariance is None:
        return _empty_cov()
    names = pd.Index(window_returns.columns[keep])
    return pd.DataFrame(covariance, index=names, columns=names)


def _shrunk_covariance_array(values: np.ndarray, min_coverage: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Core of :func:`shrunk_covariance` on a (rows × names) array: (kept-names mask, matrix or None)."""
    n_rows = values.shape[0]
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    keep = (counts >= min_coverage * n_rows) & (counts > 0)
    if n_rows < 2 or not keep.any():
        return np.zeros(values.shape[1], dtype=bool), None
    x, finite = values[:, keep], finite[:, keep]
    means = np.where(finite, x, 0.0).sum(axis=0) / finite.sum(axis=0)
    x = np.where(finite, x, means)
    with sklearn.config_context(assume_finite=True):  # NaNs were filled just above
        covariance = LedoitWolf(store_precision=False).fit(x).covariance_
    return keep, covariance


def _empty_cov() -> pd.DataFrame:
    return pd.DataFrame(index=pd.Index([], dtype=object), columns=pd.Index([], dtype=object), dtype="float64")


def _aligned(weights: pd.Series, cov: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Weights (NaN → 0) and covariance restricted to the names present in both, in weights' order."""
    names = pd.Index([n for n in weights.index if n in cov.index])
    w = weights.reindex(names).astype("float64").fillna(0.0).to_numpy()
    sigma = cov.loc[names, names].to_numpy(dtype="float64")
    return w, sigma, names


def coverage(weights: pd.Series, cov: pd.DataFrame) -> float:
    """Share of the book's gross weight that the covariance matrix covers.

    ``sum|w_i|`` over names present in ``cov`` divided by ``sum|w_i|`` over all names. Names the risk
    model does not know (too little history) are ignored by :func:`ex_ante_volatility`; this tells
    how much of the book that is. 1.0 for a book with no weight at all (nothing is uncovered).
    """
    w = weights.astype("float64").fillna(0.0).abs()
    gross = float(w.sum())
    if gross == 0.0:
        return 1.0
    return float(w[w.index.isin(cov.index)].sum()) / gross


def ex_ante_volatility(weights: pd.Series, cov: pd.DataFrame, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Predicted annualised volatility of the book: ``sqrt(w' Σ w · periods_per_year)``.

    ``weights`` is a Series symbol -> weight, ``cov`` a daily covariance matrix (e.g. from
    :func:`shrunk_covariance`). Names missing from ``cov`` are ignored (see :func:`coverage`).
    """
    w, sigma, _ = _aligned(weights, cov)
    return float(_volatility(w[None, :], sigma, periods_per_year)[0])


def risk_contributions(weights: pd.Series, cov: pd.DataFrame, periods_per_year: int = PERIODS_PER_YEAR) -> pd.DataFrame:
    """Euler decomposition of the ex-ante volatility into per-name pieces.

    Index: the names in both ``weights`` and ``cov``. Columns:

    - ``marginal``: how much the annual volatility grows per unit of extra weight in the name,
      ``(Σw)_i / σ_daily · sqrt(periods_per_year)``;
    - ``contribution``: ``w_i · marginal_i``; contributions add up to :func:`ex_ante_volatility`
      (volatility is homogeneous of degree 1 in the weights, so Euler's theorem applies);
    - ``share``: ``contribution_i / σ_annual``; shares add up to 1. A negative share is a hedge.

    A book with zero predicted volatility gets 0 in every column.
    """
    w, sigma, names = _aligned(weights, cov)
    marginal, contribution, share = _euler(w[None, :], sigma, periods_per_year)
    return pd.DataFrame(
        {"marginal": marginal[0], "contribution": contribution[0], "share": share[0]},
        index=pd.Index(names, name="symbol"),
    )


def _rowwise_matmul(w: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``w @ m`` computed row by row (days × names times names × k).

    BLAS products can round differently depending on how many rows are multiplied at once; this
    broadcast-and-sum keeps each day's figures independent of which other days are computed with
    it, so reports on truncated inputs are bit-identical.
    """
    return (w[:, :, None] * m[None, :, :]).sum(axis=1)


def _rowwise_dot(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``w @ v`` for a (days × names) matrix and a (names,) vector, row by row (see :func:`_rowwise_matmul`)."""
    return (w * v[None, :]).sum(axis=1)


def _volatility(w: np.ndarray, sigma: np.ndarray, periods_per_year: int) -> np.ndarray:
    """Annualised ``sqrt(w' Σ w)`` of each row of a (days × names) weight matrix."""
    variance = (_rowwise_matmul(w, sigma) * w).sum(axis=1)
    return np.sqrt(np.maximum(variance, 0.0) * periods_per_year)


def _euler(w: np.ndarray, sigma: np.ndarray, periods_per_year: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise Euler decomposition for a (days × names) weight matrix; see :func:`risk_contributions`."""
    sw = _rowwise_matmul(w, sigma)
    variance = np.maximum((sw * w).sum(axis=1), 0.0)
    vol_daily = np.sqrt(variance)
    vol_annual = vol_daily * math.sqrt(periods_per_year)
    ok = vol_daily > 0
    safe_daily = np.where(ok, vol_daily, 1.0)[:, None]
    safe_annual = np.where(ok, vol_annual, 1.0)[:, None]
    marginal = np.where(ok[:, None], sw / safe_daily * math.sqrt(periods_per_year), 0.0)
    contribution = w * marginal
    share = np.where(ok[:, None], contribution / safe_annual, 0.0)
    return marginal, contribution, share


# --------------------------------------------------------------------------- betas & exposures


def _betas_array(r: np.ndarray, f: np.ndarray, min_observations: int) -> np.ndarray:
    """OLS slope of every column of ``r`` (rows × names) on ``f`` over the rows where both are finite.

    ``f`` is one factor (rows,) → result (names,), or several (rows × factors) → (factors × names).
    """
    single = f.ndim == 1
    fs = f[:, None, None] if single else f[:, :, None]  # rows × factors × 1
    rs = r[:, None, :]  # rows × 1 × names
    mask = np.isfinite(rs) & np.isfinite(fs)  # rows × factors × names
    n = mask.sum(axis=0)
    safe_n = np.maximum(n, 1)
    fm = np.where(mask, fs, 0.0)
    rm = np.where(mask, rs, 0.0)
    df = np.where(mask, fm - fm.sum(axis=0) / safe_n, 0.0)
    dr = np.where(mask, rm - rm.sum(axis=0) / safe_n, 0.0)
    var_f = (df * df).sum(axis=0)
    ok = (n >= min_observations) & (var_f > 0)
    slope = np.where(ok, (df * dr).sum(axis=0) / np.where(ok, var_f, 1.0), np.nan)
    return slope[0] if single else slope


def betas(window_returns: pd.DataFrame, factor: pd.Series, min_observations: int = MIN_BETA_OBSERVATIONS) -> pd.Series:
    """Each name's beta to ``factor``: the OLS slope ``cov(r_i, f) / var(f)``.

    For every column of ``window_returns`` (wide daily returns) the slope is estimated over the
    dates where both the name and the factor have a return (``factor`` is aligned on
    ``window_returns``' dates). Fewer than ``min_observations`` (20) such dates, or a factor that
    does not move, gives NaN.
    """
    f = factor.reindex(window_returns.index).to_numpy(dtype="float64", na_value=np.nan)
    r = window_returns.to_numpy(dtype="float64", na_value=np.nan)
    return pd.Series(_betas_array(r, f, min_observations), index=window_returns.columns, name="beta", dtype="float64")


def _sector_of(symbols: pd.Index | list[str], sectors: pd.Series) -> list[str]:
    """Sector label of each symbol (:data:`UNKNOWN_SECTOR` when ``sectors`` has none)."""
    mapped = sectors.reindex(pd.Index(symbols))
    return [UNKNOWN_SECTOR if pd.isna(s) else str(s) for s in mapped]


def factor_exposures(
    weights: pd.Series,
    window_returns: pd.DataFrame,
    market: pd.Series,
    factors: pd.DataFrame | None,
    sectors: pd.Series,
) -> dict[str, float]:
    """What the book's weights are exposed to, as a flat dict of named numbers.

    - ``market_beta``: ``Σ w_i β_i`` with ``β_i`` the name's beta to ``market`` (daily market
      returns) over ``window_returns``' dates (:func:`betas`).
    - ``factor:<name>``: the same with each column of ``factors`` (daily returns of factor ETFs),
      for the columns that have at least 20 returns on the window's dates. These are
      **univariate** betas (one regression per factor), not the coefficients of a multivariate
      regression on all factors at once, so correlated factors share the same co-movement.
    - ``sector:<name>``: net weight (``Σ w_i``) of the names in each sector the book holds
      (``sectors`` maps symbol -> sector; unknown symbols are in ``"Unknown"``).
    - ``gross`` (``Σ|w|``), ``net`` (``Σw``), ``long`` (``Σ`` of positive weights), ``short``
      (``Σ`` of negative weights, a number <= 0, so ``net = long + short``), ``n_positions``
      (names with a non-zero weight).

    Names without a beta (fewer than 20 observations) count 0 in the beta sums.
    """
    w = weights.astype("float64").fillna(0.0)
    w = w[w != 0]
    window = window_returns.reindex(columns=w.index)
    values = w.to_numpy()
    out: dict[str, float] = {"market_beta": float(np.nansum(values * betas(window, market).to_numpy()))}
    if factors is not None:
        aligned = factors.reindex(window_returns.index)
        for column in factors.columns:
            if int(aligned[column].notna().sum()) >= MIN_BETA_OBSERVATIONS:
                out[f"factor:{column}"] = float(np.nansum(values * betas(window, aligned[column]).to_numpy()))
    labels = np.array(_sector_of(w.index, sectors), dtype=object)
    for sector in sorted(set(labels)):
        out[f"sector:{sector}"] = float(values[labels == sector].sum())
    out.update({key: float(total[0]) for key, total in _book_totals(values[None, :]).items()})
    return out


def _book_totals(w: np.ndarray) -> dict[str, np.ndarray]:
    """gross / net / long / short / n_positions of each row of a (days × names) weight matrix."""
    return {
        "gross": np.abs(w).sum(axis=1),
        "net": w.sum(axis=1),
        "long": np.where(w > 0, w, 0.0).sum(axis=1),
        "short": np.where(w < 0, w, 0.0).sum(axis=1),
        "n_positions": (w != 0).sum(axis=1).astype("float64"),
    }


# --------------------------------------------------------------------------- stress tests


class _StressWindow:
    """One historical window prepared for replay on any weights of a fixed list of symbols.

    ``growth[t, i]`` is what 1 unit held in symbol i at the window's first session ``s0`` is worth
    at session t (``P_i(t) / P_i(s0)``, prices forward-filled inside the window, for names with a
    price at both ends; otherwise the proxy's compounded return since ``s0``, or 1 without proxy).
    ``own[i]`` says whether symbol i used its own prices.
    """

    def __init__(self, name: str, end: pd.Timestamp, sessions: pd.DatetimeIndex, growth: np.ndarray, own: np.ndarray) -> None:
        self.name = name
        self.end = end
        self.sessions = sessions
        self.growth = growth
        self.own = own

    @classmethod
    def build(
        cls,
        name: str,
        bounds: tuple[str | pd.Timestamp, str | pd.Timestamp],
        prices: pd.DataFrame,
        proxy: pd.Series | None,
        symbols: pd.Index,
    ) -> _StressWindow | None:
        start, end = pd.Timestamp(bounds[0]), pd.Timestamp(bounds[1])
        inside = (prices.index >= start) & (prices.index <= end)
        if not inside.any():
            return None
        window = prices.loc[inside].reindex(columns=symbols)
        sessions = pd.DatetimeIndex(window.index)
        p = window.to_numpy(dtype="float64", na_value=np.nan)
        first, last = p[0], p[-1]
        own = np.isfinite(first) & np.isfinite(last) & (first > 0)
        filled = window.ffill().to_numpy(dtype="float64", na_value=np.nan)
        own_growth = filled / np.where(own, first, 1.0)
        if proxy is None:
            proxy_growth = np.ones(len(sessions))
        else:
            m = proxy.reindex(sessions).to_numpy(dtype="float64", na_value=np.nan)
            m = np.where(np.isfinite(m), m, 0.0)
            m[0] = 0.0  # the first session is the base: its own move is not part of the window
            proxy_growth = np.cumprod(1.0 + m)
        growth = np.where(own[None, :], own_growth, proxy_growth[:, None])
        return cls(name, end, sessions, growth, own)

    def replay(self, w: np.ndarray, columns: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stress return, worst day and coverage of each row of a (days × names) weight matrix."""
        growth = self.growth[:, columns]
        own = self.own[columns]
        cash = 1.0 - w.sum(axis=1)
        # book value at each session, starting from 1; one product per row (see _rowwise_matmul)
        value = (cash[:, None] + np.stack([growth @ row for row in w])) if len(w) else np.empty((0, len(growth)))
        stress_return = _rowwise_dot(w, growth[-1] - 1.0)  # Σ w_i R_i (= value at s1 - 1)
        if value.shape[1] > 1:
            worst_day = (value[:, 1:] / value[:, :-1] - 1.0).min(axis=1)
        else:
            worst_day = np.full(len(w), np.nan)
        gross = np.abs(w).sum(axis=1)
        covered = np.abs(w[:, own]).sum(axis=1)
        cover = np.where(gross > 0, covered / np.where(gross > 0, gross, 1.0), 1.0)
        return stress_return, worst_day, cover


def stress_test(
    weights: pd.Series,
    prices: pd.DataFrame,
    windows: Mapping[str, tuple[str | pd.Timestamp, str | pd.Timestamp]],
    as_of: pd.Timestamp,
    proxy: pd.Series | None = None,
) -> pd.DataFrame:
    """Replay named historical windows on today's weights, as a buy-and-hold portfolio.

    For each window ``(start, end)`` that is over at ``as_of`` (``end <= as_of``; a window still
    running is omitted, so the test is point-in-time), let ``s0`` and ``s1`` be the first and last
    sessions of ``prices`` (wide adjusted closes) inside ``[start, end]``:

    - each name's return is ``R_i = P_i(s1) / P_i(s0) - 1``; a name without a price at both ends
      (not listed yet, delisted, unknown) gets the ``proxy``'s compounded return over the same
      sessions (``proxy`` = daily market returns; returns dated after ``s0`` up to ``s1``), or 0
      when there is no proxy;
    - ``stress_return = Σ w_i R_i`` (cash earns 0);
    - ``worst_day`` is the worst daily return of the buy-and-hold book over the window. The book
      starts at ``s0`` worth 1: cash ``1 - Σ w_i`` (short proceeds included) and holdings
      ``w_i``; at session t it is worth ``V(t) = 1 - Σ w_i + Σ w_i G_i(t)`` with
      ``G_i(t) = P_i(t) / P_i(s0)`` (price forward-filled inside the window) or the proxy's
      compounded growth since ``s0``. ``worst_day = min_t V(t) / V(t-1) - 1`` over the sessions
      after ``s0`` (NaN if the window has a single session). Note ``V(s1) - 1 = stress_return``;
    - ``coverage = Σ|w_i|`` of names priced at both ends ``/ Σ|w_i|`` (1 for an empty book).

    The window's first session is the base of the replay: its own move is not included.
    Windows with no session in ``prices`` are omitted. Columns: :data:`STRESS_COLUMNS`, with
    ``start`` / ``end`` the actual sessions ``s0`` / ``s1``.
    """
    as_of = pd.Timestamp(as_of)
    w = weights.astype("float64").fillna(0.0)
    prices = prices.sort_index()
    rows = []
    for name, bounds in windows.items():
        if pd.Timestamp(bounds[1]) > as_of:
            continue
        window = _StressWindow.build(name, bounds, prices, proxy, pd.Index(w.index))
        if window is None:
            continue
        stress_return, worst_day, cover = window.replay(w.to_numpy()[None, :])
        rows.append(
            {
                "window": name,
                "start": window.sessions[0],
                "end": window.sessions[-1],
                "stress_return": float(stress_return[0]),
                "worst_day": float(worst_day[0]),
                "coverage": float(cover[0]),
            }
        )
    if not rows:
        return pd.DataFrame(
            {
                "window": pd.Series(dtype="str"),
                "start": pd.Series(dtype="datetime64[ns]"),
                "end": pd.Series(dtype="datetime64[ns]"),
                **{c: pd.Series(dtype="float64") for c in ["stress_return", "worst_day", "coverage"]},
            }
        )
    return pd.DataFrame(rows, columns=STRESS_COLUMNS)


# --------------------------------------------------------------------------- daily risk reports


class _RiskModel:
    """A book's risk model for (part of) one month, over a sorted array of symbol codes ``names``.

    ``cov_index`` are the positions in ``names`` of the names the covariance covers and ``sigma``
    their daily covariance; ``market_beta`` and ``factor_betas`` hold one beta per name of
    ``names`` (a missing beta is stored as 0, i.e. it counts 0 in the exposure sums).
    """

    def __init__(self, cov_index: np.ndarray, sigma: np.ndarray, market_beta: np.ndarray, factor_betas: dict[str, np.ndarray]) -> None:
        self.cov_index = cov_index
        self.sigma = sigma
        self.market_beta = market_beta
        self.factor_betas = factor_betas


class _Report:
    """Accumulates the long report as integer-coded numpy chunks, decoded once at the end.

    Each row is (date code, book code, section code, item code within the section, value).
    """

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, int, int, np.ndarray, np.ndarray]] = []

    def add(self, days: np.ndarray, book: int, section: int, item: np.ndarray | int, value: np.ndarray) -> None:
        if len(days) == 0:
            return
        items = np.broadcast_to(np.asarray(item, dtype="int64"), (len(days),))
        self.chunks.append((np.asarray(days, dtype="int64"), book, section, items, np.asarray(value, dtype="float64")))

    def add_matrix(self, days: np.ndarray, book: int, section: int, items: np.ndarray, values: np.ndarray, mask: np.ndarray) -> None:
        """Add ``values[d, j]`` (item ``items[j]``) for every True cell of ``mask`` (days × items)."""
        rows, cols = np.nonzero(mask)
        self.add(days[rows], book, section, items[cols], values[rows, cols])


def risk_reports(
    positions: pd.DataFrame,
    returns: pd.DataFrame,
    prices: pd.DataFrame,
    market: pd.Series,
    factors: pd.DataFrame | None,
    sectors: pd.Series,
    windows: Mapping[str, tuple[str | pd.Timestamp, str | pd.Timestamp]] = STRESS_WINDOWS,
    covariance_window: int = 252,
    dates: pd.DatetimeIndex | None = None,
) -> pd.DataFrame:
    """Daily risk report of every book: volatility, exposures, risk decomposition and stress tests.

    ``positions`` is long with columns ``date, book, symbol, target_weight``: the weights each book
    holds at that day's close (a (date, book) whose weights are all 0 / NaN is a book in cash).
    ``returns`` (daily simple returns) and ``prices`` (adjusted closes) are wide; ``market`` is the
    daily market return (betas and the stress-test proxy); ``factors`` holds daily returns of
    factor ETFs (or None); ``sectors`` maps symbol -> sector. ``dates`` restricts the output to
    those dates (the figures reported for a date do not depend on it).

    Result: long, columns :data:`RISK_REPORT_COLUMNS`, one block per (date, book) of ``positions``,
    sorted by date, book, then section in the order of :data:`RISK_SECTIONS`:

    ============  ==========================  =================================================
    section       item                        value
    ============  ==========================  =================================================
    risk          ``ex_ante_volatility``      annualised (:func:`ex_ante_volatility`)
    risk          ``coverage``                share of the gross the model covers (:func:`coverage`)
    factor        keys of factor_exposures    :func:`factor_exposures` (sectors sorted by name)
    contribution  symbol                      ``share`` of the volatility (:func:`risk_contributions`)
    marginal      symbol                      ``marginal`` (:func:`risk_contributions`)
    stress        window name                 ``stress_return`` (:func:`stress_test`)
    stress        ``<window>:worst_day``      ``worst_day`` (:func:`stress_test`)
    ============  ==========================  =================================================

    ``contribution`` / ``marginal`` rows exist for the held names the covariance covers; ``stress``
    rows only for the windows over at that date (``market`` is the proxy). A book holding nothing
    gets only ``risk/ex_ante_volatility = 0`` and ``factor/gross = 0``.

    **Risk model refreshed monthly, point-in-time.** On the first session of each calendar month
    the covariance (:func:`shrunk_covariance`) and the betas are estimated from the last
    ``covariance_window`` rows of ``returns`` dated strictly before the month's first day, over
    the names the book holds, and reused for every day of the month. If the book buys a name
    mid-month, the model is re-estimated from the *same* window over the enlarged set of names,
    from that day on: a day never depends on positions taken later (earlier days keep their
    model). Inputs cut at any date t therefore give identical rows for the dates <= t.

    Cost is linear in the number of days: one model per book and month (plus one per mid-month
    addition), then a few matrix products per month.
    """
    pos = _clean_positions(positions)
    if pos.empty:
        return _assemble(_Report(), pd.DatetimeIndex([]), [], {s: [] for s in RISK_SECTIONS})

    # Integer codes for dates, books and held symbols (sorted, so code order = label order).
    date_code, all_dates = pd.factorize(pos["date"], sort=True)
    all_dates = pd.DatetimeIndex(all_dates).astype("datetime64[ns]")
    book_code, book_index = pd.factorize(pos["book"], sort=True)
    book_names = [str(b) for b in book_index]
    weight = pos["target_weight"].to_numpy()
    held = weight != 0
    symbol_code = np.full(len(pos), -1, dtype="int64")
    held_codes, symbol_index = pd.factorize(pos.loc[held, "symbol"], sort=True)
    symbol_code[held] = held_codes
    symbols = pd.Index([str(s) for s in symbol_index], dtype=object)
    key = (date_code[held].astype("int64") * len(book_names) + book_code[held]) * max(len(symbols), 1) + symbol_code[held]
    if (np.diff(np.sort(key)) == 0).any():
        raise ValueError("positions has duplicate (date, book, symbol) rows with a non-zero weight")
    keep_date = np.ones(len(all_dates), dtype=bool) if dates is None else all_dates.isin(pd.DatetimeIndex(dates).astype("datetime64[ns]"))

    # Returns, market and factors as arrays aligned on the returns' dates.
    returns = returns.sort_index()
    r_index = pd.DatetimeIndex(returns.index).astype("datetime64[ns]")
    r_values = returns.to_numpy(dtype="float64", na_value=np.nan)
    r_column = pd.Index([str(c) for c in returns.columns], dtype=object).get_indexer(symbols)
    market_values = market.reindex(r_index).to_numpy(dtype="float64", na_value=np.nan)
    factor_names = [str(c) for c in factors.columns] if factors is not None else []
    factor_values = (
        factors.reindex(r_index).to_numpy(dtype="float64", na_value=np.nan) if factors is not None else np.empty((len(r_index), 0))
    )

    # Stress windows, prepared once for every held symbol.
    prices = prices.sort_index()
    prices = prices.set_axis([str(c) for c in prices.columns], axis=1)
    stress_windows = [
        sw for name, bounds in windows.items() if (sw := _StressWindow.build(name, bounds, prices, market, symbols)) is not None
    ]

    # Every label of the report, per section, in report order.
    symbol_sector = _sector_of(symbols, sectors)
    sector_names = sorted(set(symbol_sector))
    vocab = {
        "risk": ["ex_ante_volatility", "coverage"],
        "factor": ["market_beta", *(f"factor:{f}" for f in factor_names), *(f"sector:{s}" for s in sector_names),
                   "gross", "net", "long", "short", "n_positions"],
        "contribution": list(symbols),
        "marginal": list(symbols),
        "stress": [label for sw in stress_windows for label in (sw.name, f"{sw.name}:worst_day")],
    }
    code = {section: {label: i for i, label in enumerate(labels)} for section, labels in vocab.items()}
    sector_code = np.array([code["factor"][f"sector:{s}"] for s in symbol_sector], dtype="int64")

    models: dict[tuple[np.datetime64, tuple[int, ...]], _RiskModel] = {}

    def model_for(month_start: np.datetime64, names: np.ndarray) -> _RiskModel:
        """The risk model of ``names`` (symbol codes) from the returns dated before ``month_start``."""
        key = (month_start, tuple(names.tolist()))
        if key not in models:
            end = int(r_index.searchsorted(month_start, side="left"))
            rows = slice(max(0, end - covariance_window), end)
            cols = r_column[names]
            block = np.where(cols[None, :] >= 0, r_values[rows][:, np.maximum(cols, 0)], np.nan)
            keep, sigma = _shrunk_covariance_array(block, 0.8)
            # market first, then the factors with enough returns in the window
            f_rows = factor_values[rows]
            qualified = [j for j in range(len(factor_names)) if int(np.isfinite(f_rows[:, j]).sum()) >= MIN_BETA_OBSERVATIONS]
            sources = np.column_stack([market_values[rows], f_rows[:, qualified]])
            all_betas = np.nan_to_num(_betas_array(block, sources, MIN_BETA_OBSERVATIONS))
            market_beta = all_betas[0]
            factor_betas = {factor_names[j]: all_betas[i + 1] for i, j in enumerate(qualified)}
            models[key] = _RiskModel(np.flatnonzero(keep), sigma if sigma is not None else np.zeros((0, 0)), market_beta, factor_betas)
        return models[key]

    report = _Report()
    for b in range(len(book_names)):
        rows_b = np.flatnonzero(book_code == b)
        book_days = np.flatnonzero(np.bincount(date_code[rows_b], minlength=len(all_dates)))  # date codes of the book, ascending
        held_b = rows_b[held[rows_b]]
        book_symbols = np.flatnonzero(np.bincount(symbol_code[held_b], minlength=len(symbols)))  # symbol codes, ascending
        w_book = np.zeros((len(book_days), len(book_symbols)))
        w_book[np.searchsorted(book_days, date_code[held_b]), np.searchsorted(book_symbols, symbol_code[held_b])] = weight[held_b]
        month_of = all_dates.to_numpy()[book_days].astype("datetime64[M]")
        bounds = np.flatnonzero(np.r_[True, month_of[1:] != month_of[:-1], True])
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            month_start = month_of[lo].astype("datetime64[ns]")
            month_w = w_book[lo:hi]
            nonzero = month_w != 0
            columns = np.flatnonzero(nonzero.any(axis=0))
            # The set of names known on day d grows as the book buys names during the month:
            # order the month's names by the first day they are held.
            first_day = nonzero[:, columns].argmax(axis=0)
            order = np.argsort(first_day, kind="stable")
            columns, first_day = columns[order], first_day[order]
            n_known = np.searchsorted(first_day, np.arange(hi - lo), side="right")
            wanted = keep_date[book_days[lo:hi]]
            for k in np.unique(n_known[wanted]):
                seg = (n_known == k) & wanted
                cols = np.sort(columns[:k])
                names = book_symbols[cols]
                _report_segment(
                    report, b, book_days[lo:hi][seg], month_w[np.ix_(seg, cols)], names,
                    model_for(month_start, names), sector_code, code, stress_windows, all_dates,
                )
    return _assemble(report, all_dates, book_names, vocab)


def _report_segment(
    report: _Report,
    book: int,
    days: np.ndarray,
    w: np.ndarray,
    names: np.ndarray,
    model: _RiskModel,
    sector_code: np.ndarray,
    code: dict[str, dict[str, int]],
    stress_windows: list[_StressWindow],
    all_dates: pd.DatetimeIndex,
) -> None:
    """Add the rows of some days of one book that share one risk model.

    ``days`` are date codes, ``w`` the (days × names) weights and ``names`` the symbol codes.
    """
    S_RISK, S_FACTOR, S_CONTRIB, S_MARGINAL, S_STRESS = range(len(RISK_SECTIONS))
    risk_code, factor_code, stress_code = code["risk"], code["factor"], code["stress"]
    invested = (w != 0).any(axis=1)
    empty = days[~invested]
    report.add(empty, book, S_RISK, risk_code["ex_ante_volatility"], np.zeros(len(empty)))
    report.add(empty, book, S_FACTOR, factor_code["gross"], np.zeros(len(empty)))
    if not invested.any():
        return
    w, days = w[invested], days[invested]

    # risk: volatility and coverage; contribution / marginal of the held names the model covers
    wc = w[:, model.cov_index]
    marginal, _, share = _euler(wc, model.sigma, PERIODS_PER_YEAR)
    vol = _volatility(wc, model.sigma, PERIODS_PER_YEAR)
    report.add(days, book, S_RISK, risk_code["ex_ante_volatility"], vol)
    report.add(days, book, S_RISK, risk_code["coverage"], np.abs(wc).sum(axis=1) / np.abs(w).sum(axis=1))
    covered = names[model.cov_index]  # symbol code = item code in these two sections
    report.add_matrix(days, book, S_CONTRIB, covered, share, wc != 0)
    report.add_matrix(days, book, S_MARGINAL, covered, marginal, wc != 0)

    # factor: betas, net weight of each sector held, book totals
    report.add(days, book, S_FACTOR, factor_code["market_beta"], _rowwise_dot(w, model.market_beta))
    for f, beta in model.factor_betas.items():
        report.add(days, book, S_FACTOR, factor_code[f"factor:{f}"], _rowwise_dot(w, beta))
    sector_items, member = np.unique(sector_code[names], return_inverse=True)
    onehot = np.zeros((len(names), len(sector_items)))
    onehot[np.arange(len(names)), member] = 1.0
    report.add_matrix(days, book, S_FACTOR, sector_items, _rowwise_matmul(w, onehot), _rowwise_matmul(np.abs(w), onehot) > 0)
    for total, values in _book_totals(w).items():
        report.add(days, book, S_FACTOR, factor_code[total], values)

    # stress: the windows over at each day
    stamps = all_dates.to_numpy()[days]
    for sw in stress_windows:
        over = stamps >= sw.end.to_datetime64()
        if not over.any():
            continue
        stress_return, worst_day, _ = sw.replay(w[over], names)
        report.add(days[over], book, S_STRESS, stress_code[sw.name], stress_return)
        report.add(days[over], book, S_STRESS, stress_code[f"{sw.name}:worst_day"], worst_day)


def _assemble(report: _Report, all_dates: pd.DatetimeIndex, book_names: list[str], vocab: dict[str, list[str]]) -> pd.DataFrame:
    """Sort the coded rows by (date, book, section, item) and decode them into the long frame."""
    if not report.chunks:
        return pd.DataFrame(
            {
                "date": pd.Series(dtype="datetime64[ns]"),
                "book": pd.Series(dtype="str"),
                "section": pd.Series(dtype="str"),
                "item": pd.Series(dtype="str"),
                "value": pd.Series(dtype="float64"),
            }
        )
    day = np.concatenate([c[0] for c in report.chunks])
    book = np.concatenate([np.full(len(c[0]), c[1], dtype="int64") for c in report.chunks])
    section = np.concatenate([np.full(len(c[0]), c[2], dtype="int64") for c in report.chunks])
    item = np.concatenate([c[3] for c in report.chunks])
    value = np.concatenate([c[4] for c in report.chunks])
    n_items = max(len(v) for v in vocab.values()) + 1
    order = np.argsort(((day * len(book_names) + book) * len(RISK_SECTIONS) + section) * n_items + item, kind="stable")
    day, book, section, item, value = day[order], book[order], section[order], item[order], value[order]
    offsets = np.cumsum([0] + [len(vocab[s]) for s in RISK_SECTIONS])[:-1]
    labels, label_code = np.unique(np.array([label for s in RISK_SECTIONS for label in vocab[s]], dtype=object), return_inverse=True)
    return pd.DataFrame(
        {
            "date": all_dates[day],
            "book": pd.Categorical.from_codes(book, categories=pd.Index(book_names, dtype=object)).astype("str"),
            "section": pd.Categorical.from_codes(section, categories=pd.Index(RISK_SECTIONS, dtype=object)).astype("str"),
            "item": pd.Categorical.from_codes(label_code[offsets[section] + item], categories=pd.Index(labels, dtype=object)).astype("str"),
            "value": value,
        }
    )


def _clean_positions(positions: pd.DataFrame) -> pd.DataFrame:
    """Positions with typed columns; a NaN weight (or a row without symbol) counts as weight 0."""
    missing = {"date", "book", "symbol", "target_weight"} - set(positions.columns)
    if missing:
        raise ValueError(f"positions lacks columns {sorted(missing)}")
    weight = pd.to_numeric(positions["target_weight"]).astype("float64").fillna(0.0)
    return pd.DataFrame(
        {
            "date": pd.to_datetime(positions["date"]).astype("datetime64[ns]").to_numpy(),
            "book": positions["book"].astype("str").array,
            "symbol": positions["symbol"].array,
            "target_weight": weight.where(positions["symbol"].notna(), 0.0).to_numpy(),
        }
    )
