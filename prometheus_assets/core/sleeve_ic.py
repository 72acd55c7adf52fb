"""Per-date rank ICs of the book configs' alphas, so that the sleeve evaluation never recomputes history.

:func:`prometheus_assets.core.performance.alpha_ic` and :func:`~prometheus_assets.core.performance.alpha_decay`
summarise, per book config, the series of per-date rank ICs of the combined alpha on date s against
the forward return over s+1 … s+h. Such an IC is final once s+h is in the data and depends on
that date's alpha row and forward returns only: the forward return is a fixed-order sum of the h
log returns after s (:func:`evaluation.forward_returns_wide`), and :func:`evaluation.rank_ic_wide`
correlates average ranks (half-integers) whose centred products and their sums are exact in
float64, so neither the other dates nor all-NaN symbols change it. The alpha at s depends on data
dated <= s over a bounded lookback (the sources' trailing-IC confidences,
:func:`prometheus_assets.core.portfolio.book_lookback`).

So the per-date ICs of a window of dates can be computed from that window (plus its lookback
before and the ``max(h)`` sessions after it), kept, and summarised later: :func:`config_ic_by_date`
gives the rows, :func:`alpha_ic_from_rows` / :func:`alpha_decay_from_rows` give exactly what
``alpha_ic`` / ``alpha_decay`` give on the same alpha over the whole history (tested bit for bit).

Pure pandas / numpy: no Dagster, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from prometheus_assets.core import book_signals
from prometheus_assets.core.books import BookConfig
from prometheus_assets.core.evaluation import MIN_NAMES_PER_DATE, RowRanks, forward_returns_wide, ic_summary, rank_ic_wide
from prometheus_assets.core.performance import DECAY_HORIZONS

__all__ = [
    "KEY_COLUMNS",
    "alpha_decay_from_rows",
    "alpha_ic_by_date",
    "alpha_ic_from_rows",
    "block_columns",
    "config_ic_by_date",
    "decay_column",
    "forward_sessions",
]

#: The key columns of a row of :func:`config_ic_by_date`.
KEY_COLUMNS: tuple[str, ...] = ("book", "combination_method", "date")


def decay_column(h: int) -> str:
    """The column of the IC at decay horizon ``h`` (as the ``ic_<h>d`` columns of ``sleeve_metrics``)."""
    return f"ic_{int(h)}d"


def block_columns(horizons: Sequence[int] = DECAY_HORIZONS) -> dict[str, str]:
    """Column -> dtype of :func:`config_ic_by_date` rows (``ic`` / ``known_date``: at the book's own horizon)."""
    return {"book": "str", "combination_method": "str", "date": "datetime64[ns]", "known_date": "datetime64[ns]", "ic": "float64",
            **{decay_column(h): "float64" for h in horizons}}


def forward_sessions(books: Mapping[str, BookConfig], horizons: Sequence[int] = DECAY_HORIZONS) -> int:
    """Sessions after a window that its ICs read: the longest decay horizon or book horizon."""
    return max([int(h) for h in horizons] + [int(b.horizon_days) for b in books.values()])


def alpha_ic_by_date(
    alphas: Mapping[tuple[str, str], tuple[pd.DataFrame, int]],
    returns: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    horizons: Sequence[int] = DECAY_HORIZONS,
    min_names: int = MIN_NAMES_PER_DATE,
) -> pd.DataFrame:
    """Per key (book, method) and session s of ``returns`` with ``start <= s <= end``: the alpha's rank ICs.

    ``alphas``: (book, method) -> (wide alpha, the book's horizon H). Columns (:func:`block_columns`):
    ``ic`` = the rank IC at H and ``known_date`` = the session H sessions after s (the date that
    IC becomes known, NaT without an IC), then ``ic_<h>d`` per decay horizon. NaN where
    :func:`evaluation.rank_ic_wide` keeps no IC (too few names, a constant side, or a forward
    window not in ``returns``, which must hold the sessions of the window, the lookback before it
    and the ``max(H, h)`` sessions after it, or end where the history ends). Rows sorted by key
    (in ``alphas``' order), then date.
    """
    horizons = [int(h) for h in horizons]
    ordered = returns.sort_index()
    sessions = pd.DatetimeIndex(ordered.index)
    inside = (sessions >= pd.Timestamp(start)) & (sessions <= pd.Timestamp(end))
    dates = sessions[inside]
    positions = np.flatnonzero(inside)
    # horizon by horizon (one forward panel in memory at a time); each alpha's and each forward
    # panel's ranks are reused across the panels they meet (RowRanks)
    scores = {key: RowRanks(alpha.reindex(index=sessions, columns=ordered.columns).to_numpy(dtype=float)[inside])
              for key, (alpha, _) in alphas.items()}
    wanted = {key: set(horizons) | {int(horizon)} for key, (_, horizon) in alphas.items()}
    ics: dict[tuple[str, str], dict[int, np.ndarray]] = {key: {} for key in alphas}
    for h in sorted(set().union(*wanted.values())):
        fwd = RowRanks(forward_returns_wide(ordered, h).to_numpy()[inside])
        for key, s in scores.items():
            if h in wanted[key]:
                ics[key][h] = rank_ic_wide(s, fwd, dates, min_names).reindex(dates).to_numpy(dtype="float64")

    frames = []
    for (book, method), (_, horizon) in alphas.items():
        block: dict[str, object] = {"book": np.full(len(dates), book, dtype=object), "combination_method": np.full(len(dates), method, dtype=object),
                                    "date": dates.to_numpy(dtype="datetime64[ns]")}
        ic = ics[(book, method)][int(horizon)]
        after = positions + int(horizon)
        known = np.full(len(dates), np.datetime64("NaT"), dtype="datetime64[ns]")
        ok = ~np.isnan(ic) & (after < len(sessions))  # (an IC needs its whole forward window, so after < len)
        known[ok] = sessions.to_numpy(dtype="datetime64[ns]")[after[ok]]
        block["known_date"] = known
        block["ic"] = ic
        for h in horizons:
            block[decay_column(h)] = ics[(book, method)][h]
        frames.append(pd.DataFrame(block))
    columns = block_columns(horizons)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t if t != "str" else object) for c, t in columns.items()})
    return pd.concat(frames, ignore_index=True)[list(columns)]


def config_ic_by_date(
    configs: Mapping[str, tuple[BookConfig, str]],
    books: Mapping[str, BookConfig],
    assessment_scores: pd.DataFrame,
    strategy_signals: pd.DataFrame,
    returns: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    horizons: Sequence[int] = DECAY_HORIZONS,
) -> pd.DataFrame:
    """:func:`alpha_ic_by_date` of every config's combined alpha (:func:`book_signals.book_alpha`), on ``returns``' sessions.

    ``configs``: config id -> (book, method); each (book, method) is evaluated once, in sorted
    order. The source panels are built from ``books`` (every book, as the books assets build
    them) over ``returns``' sessions and symbols.
    """
    panels = book_signals.source_panels(dict(books), assessment_scores, strategy_signals, returns)
    keys = sorted({(book.name, method) for book, method in configs.values()})
    by_name = {book.name: book for book, _ in configs.values()}
    alphas = {(name, method): (book_signals.book_alpha(by_name[name], panels, method), by_name[name].horizon_days) for name, method in keys}
    return alpha_ic_by_date(alphas, returns, start, end, horizons)


def alpha_ic_from_rows(rows: pd.DataFrame, by: str = "known_date") -> pd.Series:
    """:func:`performance.alpha_ic` from one config's rows (every date, in date order): the ICs indexed by their known date.

    ``by="date"``: indexed by their signal date instead (what a regime slice groups by).
    """
    keep = (rows["ic"].notna() & rows["known_date"].notna()).to_numpy()
    return pd.Series(rows["ic"].to_numpy(dtype="float64")[keep], index=pd.DatetimeIndex(rows[by].to_numpy()[keep], name="date"), name="rank_ic")


def alpha_decay_from_rows(rows: pd.DataFrame, horizons: Sequence[int] = DECAY_HORIZONS) -> pd.Series:
    """:func:`performance.alpha_decay` from one config's rows (every date, in date order)."""
    means = []
    for h in horizons:
        values = rows[decay_column(h)].to_numpy(dtype="float64")
        means.append(ic_summary(pd.Series(values[~np.isnan(values)], dtype="float64"))["ic_mean"])
    return pd.Series(means, index=pd.Index([int(h) for h in horizons], name="horizon", dtype="int64"), name="ic_mean", dtype="float64")
