"""Information-coefficient machinery shared by the assessment models and the alpha-score strategies.

Conventions: a *score* frame is long ``date, symbol, score``; a *forward* frame is long ``date,
symbol, forward_return`` where ``forward_return`` on date t is the return realised over the
horizon *after* t (known only later: evaluation is done after the fact, never used to trade).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Dates with fewer names than this get no IC (a rank correlation of 2 points is meaningless).
MIN_NAMES_PER_DATE = 5


def rank_ic(scores: pd.DataFrame, forward: pd.DataFrame, min_names: int = MIN_NAMES_PER_DATE) -> pd.Series:
    """Spearman rank correlation between score and forward return, per date.

    Rows with a missing score or forward return are ignored; ties get average ranks (as
    ``scipy.stats.spearmanr``). Returns a Series indexed by date (dates with fewer than
    ``min_names`` usable names, or with a constant score or return, are omitted).
    """
    merged = scores[["date", "symbol", "score"]].merge(forward[["date", "symbol", "forward_return"]], on=["date", "symbol"])
    merged = merged.dropna(subset=["score", "forward_return"])
    if merged.empty:
        return pd.Series(dtype="float64", name="rank_ic")
    grouped = merged.groupby("date")
    x = grouped["score"].rank(method="average")
    y = grouped["forward_return"].rank(method="average")
    # Pearson correlation of the ranks from per-date sums (one vectorised groupby instead of a
    # Python-level correlation per date: ~10x faster). Ranks are small numbers, so the
    # sum-of-squares form loses nothing measurable (checked against scipy to 1e-12).
    sums = pd.DataFrame({"date": merged["date"], "x": x, "y": y, "xx": x * x, "yy": y * y, "xy": x * y}).groupby("date").sum()
    n = grouped.size()
    cov = sums["xy"] - sums["x"] * sums["y"] / n
    var_x = sums["xx"] - sums["x"] ** 2 / n
    var_y = sums["yy"] - sums["y"] ** 2 / n
    denom = np.sqrt(var_x * var_y)
    # a constant score or return on a date has no rank correlation (var ~ 0 up to rounding)
    defined = (var_x > 1e-9 * n**3) & (var_y > 1e-9 * n**3)
    corr = (cov / denom).where(defined)
    ic = corr[(n >= min_names) & corr.notna()]
    return ic.rename("rank_ic").sort_index()


def _rank_rows(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average ranks (1 = smallest, ties averaged) along each row of ``values`` where ``mask``, NaN elsewhere."""
    return pd.DataFrame(np.where(mask, values, np.nan)).rank(axis=1, method="average").to_numpy()


class RowRanks:
    """The row-wise average ranks of one dates × symbols panel under a changing mask, reusing unchanged rows.

    :func:`rank_ic_wide` ranks each side on the cells where *both* sides are finite, so one panel is
    ranked again for every panel it meets (a strategy's scores against 60 forward horizons, a
    horizon's forward returns against every strategy): ~70% of a from-scratch evaluation's time
    at 600 names. A row's ranks depend only on that row's values and mask, so the rows whose mask
    is the same as at the previous call keep their ranks, and the result is bit for bit what
    ranking the whole panel again gives (tested). Only the changed rows are ranked (pandas).
    """

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype="float64")
        self._mask: np.ndarray | None = None
        self._ranks: np.ndarray | None = None

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        if self._mask is None or self._ranks is None:
            ranks = _rank_rows(self.values, mask)
        else:
            changed = np.flatnonzero((mask != self._mask).any(axis=1))
            ranks = self._ranks.copy() if len(changed) else self._ranks
            if len(changed):
                ranks[changed] = _rank_rows(self.values[changed], mask[changed])
        self._mask, self._ranks = mask, ranks
        return ranks


def rank_ic_wide(
    scores: np.ndarray | RowRanks, forward: np.ndarray | RowRanks, index: pd.Index, min_names: int = MIN_NAMES_PER_DATE
) -> pd.Series:
    """:func:`rank_ic` on two aligned dates × symbols arrays: per-row Spearman correlation.

    Same rules as :func:`rank_ic` (a cell needs both values; average ranks for ties; rows with
    fewer than ``min_names`` names or a constant score or return are omitted), without the long
    frames, the merge and the per-date groupby (several times faster on a whole history). Returns
    a Series indexed by the kept entries of ``index`` (one per row). Either side may be a
    :class:`RowRanks` of its panel, to reuse the ranks of rows whose joint mask did not change.
    """
    s_values = scores.values if isinstance(scores, RowRanks) else scores
    f_values = forward.values if isinstance(forward, RowRanks) else forward
    mask = np.isfinite(s_values) & np.isfinite(f_values)
    s = scores(mask) if isinstance(scores, RowRanks) else _rank_rows(s_values, mask)
    f = forward(mask) if isinstance(forward, RowRanks) else _rank_rows(f_values, mask)
    n = mask.sum(axis=1)
    centre = ((n + 1) / 2.0)[:, None]  # the mean of average ranks 1..n is exactly (n + 1)/2
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.nan_to_num(s - centre)
        f = np.nan_to_num(f - centre)
        ic = (s * f).sum(axis=1) / np.sqrt((s * s).sum(axis=1) * (f * f).sum(axis=1))
    keep = (n >= min_names) & np.isfinite(ic)
    return pd.Series(ic[keep], index=index[keep], name="rank_ic")


def ic_summary(ic: pd.Series) -> dict[str, float]:
    """Mean IC, its standard deviation, IC IR (mean / std), t-stat (IR × √n), hit rate (IC > 0), n dates."""
    values = ic.dropna().to_numpy(dtype="float64")
    n = len(values)
    if n == 0:
        return {"ic_mean": math.nan, "ic_std": math.nan, "ic_ir": math.nan, "t_stat": math.nan, "hit_rate": math.nan, "n_dates": 0}
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    ir = mean / std if std and std > 0 else math.nan
    return {
        "ic_mean": mean,
        "ic_std": std,
        "ic_ir": ir,
        "t_stat": ir * math.sqrt(n) if not math.isnan(ir) else math.nan,
        "hit_rate": float((values > 0).mean()),
        "n_dates": n,
    }


def forward_returns_wide(returns: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Compounded simple return over the ``horizon`` sessions after each date, wide (dates × symbols).

    The value at t is Π_{k=1..H}(1 + r_{t+k}) − 1, computed as expm1 of log1p(r_{t+1}) + ... +
    log1p(r_{t+H}) summed in that order: NaN when any of those sessions is missing or beyond the
    data. The fixed order makes the value at t depend on those H returns only, bit for bit. (A
    pandas rolling sum run backwards from the end of the data, as before, carries a rounding
    error from every later session: on the bundled history a 1990 value moved when the history
    was cut at 2010, which reordered tied ranks and changed the rolling rank IC of
    ``sleeve_rolling_metrics``.)
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1 session")
    logs = np.log1p(returns.to_numpy(dtype="float64"))
    t, n = logs.shape
    acc = np.full((t, n), np.nan)
    if t > horizon:
        acc[: t - horizon] = 0.0
        for k in range(1, horizon + 1):
            acc[: t - horizon] += logs[k : t - horizon + k]
    return pd.DataFrame(np.expm1(acc), index=returns.index, columns=returns.columns)


def forward_returns(returns: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """:func:`forward_returns_wide` of wide daily ``returns`` in long form ``date, symbol, forward_return`` (no NaN rows)."""
    fwd = forward_returns_wide(returns, horizon)
    out = fwd.rename_axis(index="date", columns="symbol").stack(future_stack=True).rename("forward_return").reset_index()
    return out.dropna(subset=["forward_return"]).reset_index(drop=True)
