"""Per-date rank ICs of the alpha-score strategies, kept so that a summary never recomputes history.

:func:`strategies.strategy_ic` and :func:`strategies.alpha_decay` summarise, per strategy and
horizon h, the series of per-date rank ICs of ``alpha_score`` on date s against the forward
return over s+1 … s+h. Such an IC is final once s+h is in the data, and it depends on that
date's scores and forward returns only: :func:`evaluation.rank_ic_wide` correlates average ranks
(half-integers), whose centred products and their sums are exact in float64 for any realistic
number of names (< 2^17), so the value does not depend on which other dates or symbols are in
the panel, nor on their order. So the per-date ICs can be computed on a window of dates (with
the h sessions after it) and stored; :func:`summarise_strategy_ic` of the concatenated windows
equals :func:`strategies.strategy_ic` on the whole history, bit for bit (tested).

Pure pandas / numpy: no Dagster, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from prometheus_assets.core.evaluation import MIN_NAMES_PER_DATE, RowRanks, forward_returns_wide, ic_summary, rank_ic_wide
from prometheus_assets.core.strategies import _prepare_returns, _score_panels

#: The strategy_ic horizons and the alpha-decay horizons (the README's tables).
STRATEGY_IC_HORIZONS: tuple[int, ...] = (1, 5, 20, 60)
DECAY_HORIZONS: tuple[int, ...] = tuple(range(1, 61))
SUMMARY_COLUMNS: list[str] = ["strategy", "horizon", "ic_mean", "ic_std", "ic_ir", "t_stat", "hit_rate", "n_dates"]


def horizon_column(h: int) -> str:
    return f"ic_h{int(h):02d}"


def strategy_ic_by_date(
    signals: pd.DataFrame,
    returns_wide: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    horizons: Iterable[int] = DECAY_HORIZONS,
    min_names: int = MIN_NAMES_PER_DATE,
) -> pd.DataFrame:
    """Per (strategy, date) with ``start <= date <= end`` and a row in ``returns_wide``: the rank IC per horizon.

    Columns ``strategy, date, ic_h01, …`` (:func:`horizon_column`), NaN where
    :func:`evaluation.rank_ic_wide` keeps no IC (fewer than ``min_names`` names, a constant side,
    or a forward return not known in ``returns_wide``). ``returns_wide`` must hold the dates of the
    window and the ``max(horizons)`` sessions after it (or end where the history ends). Rows are
    sorted by strategy, then date. A strategy of ``signals`` gets its rows even without any IC.
    """
    horizons = [int(h) for h in horizons]
    r = _prepare_returns(returns_wide)
    panels = _score_panels(signals, r)
    inside = (r.index >= pd.Timestamp(start)) & (r.index <= pd.Timestamp(end))
    dates = r.index[inside]
    # horizon by horizon (one forward panel in memory at a time), every side's ranks reused
    # across the panels it meets (RowRanks)
    scores = {name: RowRanks(s[inside]) for name, s in panels.items()}
    blocks = {name: {"strategy": np.full(len(dates), name, dtype=object), "date": dates.to_numpy(dtype="datetime64[ns]")}
              for name in panels}
    for h in horizons:
        fwd = RowRanks(forward_returns_wide(r, h).to_numpy()[inside])
        for name, s in scores.items():
            blocks[name][horizon_column(h)] = rank_ic_wide(s, fwd, dates, min_names).reindex(dates).to_numpy(dtype="float64")
    frames = [pd.DataFrame(block) for block in blocks.values()]
    if not frames:
        return pd.DataFrame({"strategy": pd.Series(dtype=object), "date": pd.Series(dtype="datetime64[ns]"),
                             **{horizon_column(h): pd.Series(dtype="float64") for h in horizons}})
    return pd.concat(frames, ignore_index=True)


def summarise_strategy_ic(by_date: pd.DataFrame, horizons: Sequence[int]) -> pd.DataFrame:
    """:func:`strategies.strategy_ic` from per-date ICs (:func:`strategy_ic_by_date` rows of every date, in date order per strategy).

    Rows per horizon, then strategy (sorted): the :func:`evaluation.ic_summary` of the dates with an IC.
    """
    rows = []
    names = sorted(str(s) for s in pd.unique(by_date["strategy"])) if len(by_date) else []
    strategy = by_date["strategy"].to_numpy() if len(by_date) else np.empty(0, dtype=object)
    groups = {name: by_date[strategy == name].sort_values("date", kind="stable") for name in names}
    for h in horizons:
        for name in names:
            values = groups[name][horizon_column(h)].to_numpy(dtype="float64")
            rows.append({"strategy": name, "horizon": int(h), **ic_summary(pd.Series(values[~np.isnan(values)], dtype="float64"))})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def strategy_tables(by_date: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(:func:`strategies.strategy_ic` over :data:`STRATEGY_IC_HORIZONS`, :func:`strategies.alpha_decay`) from per-date ICs, summarised once."""
    decay_full = summarise_strategy_ic(by_date, DECAY_HORIZONS)
    pick = [decay_full[(decay_full["horizon"] == h)] for h in STRATEGY_IC_HORIZONS]
    table = pd.concat(pick, ignore_index=True) if len(decay_full) else pd.DataFrame(columns=SUMMARY_COLUMNS)
    decay = decay_full[["strategy", "horizon", "ic_mean", "n_dates"]].reset_index(drop=True)
    return table, decay
