"""U_book(t): each book's candidate instruments per day, with an inclusion score and a tier.

Filters (all point-in-time, from data dated ≤ t):

- the instrument has a price on t and at least ``min_listing_sessions`` earlier sessions with a
  price (listing age);
- price ≥ ``min_price`` and, when the source has volumes, 63-session average dollar volume ≥
  ``min_dollar_volume``, averaged over the window's sessions with a volume (at least 42) (each
  filter is skipped when its floor is None);
- its soft-target class on t is not in ``exclude_classes`` (e.g. BREAKER); classes in
  ``deweight_classes`` keep the instrument but multiply its inclusion score (e.g. FRAGILE × 0.5).
  The class on t is the instrument's latest one dated within the last :data:`CLASS_CARRY_SESSIONS`
  sessions: one missing bar empties the stability layer's 63-session window, and its rows stop
  until the window is full again, which must not let a BREAKER back in at full weight. Without a
  class in that span (the stability layer still warming up) the instrument is kept at full
  weight;
- it has a score from the book's ranking source on t (the book cannot rank what it cannot see).

Ranking: the score's cross-sectional percentile among the day's candidates — for a long-only book
``inclusion_score = p × class_weight`` with p = rank / n ∈ (0, 1]; for a long/short book both tails
matter, ``inclusion_score = |2q − 1| × class_weight`` with the symmetric q = (rank − ½) / n, so the
k-th best long and the k-th best short score the same and the median name 0. ``rank`` 1 is the best inclusion score; ``tier``
is 1 for rank ≤ tier_sizes[0], 2 for rank ≤ tier_sizes[1], else 3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_assets.core.books import UniverseRules
from prometheus_assets.core.frames import cross_sectional_percentile, trailing_frame_moments

UNIVERSE_COLUMNS: list[str] = [
    "date", "symbol", "rank_score", "soft_target_class", "class_weight", "listing_sessions", "inclusion_score", "rank", "tier",
]
DOLLAR_VOLUME_WINDOW = 63
#: Sessions with a dollar volume the floor's window needs (two thirds): one missing volume must not
#: drop a liquid name for the next 63 sessions (a full window was required before).
DOLLAR_VOLUME_MIN_SESSIONS = 42
#: Sessions a soft-target class is carried over days without a stability row: twice the stability
#: window, so a gap left by one missing bar (a window's worth of sessions) is always bridged.
CLASS_CARRY_SESSIONS = 126


def listing_sessions(prices: pd.DataFrame) -> pd.DataFrame:
    """Per (date, symbol): how many earlier sessions had a price (listing age, point-in-time)."""
    has = prices.notna().astype(np.int64)
    return has.cumsum().shift(1, fill_value=0).where(prices.notna())


def universe_weights(universe: pd.DataFrame, index: pd.Index, columns: pd.Index) -> pd.DataFrame:
    """Wide class weights of a book's universe (NaN = not a candidate), for portfolio construction."""
    wide = universe.pivot(index="date", columns="symbol", values="class_weight") if len(universe) else pd.DataFrame()
    return wide.reindex(index=index, columns=columns)


def build_universe(
    rank_score: pd.DataFrame,
    prices: pd.DataFrame,
    classes: pd.DataFrame | None,
    rules: UniverseRules,
    long_only: bool = True,
    volumes: pd.DataFrame | None = None,
    since: pd.Timestamp | None = None,
    closes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The book's universe, long (:data:`UNIVERSE_COLUMNS`), one row per candidate and day.

    ``rank_score``, ``prices``, ``classes`` (soft-target class strings) and ``volumes`` are wide
    (dates × symbols); every frame is aligned to ``prices``. ``since``: only the days from it on
    are built (the listing age and dollar volume still read the earlier rows of ``prices``); each
    day's rows are the same as in a build of every day, since the filters and ranks are per day.

    ``classes`` may start before ``since`` (a run reads :data:`CLASS_CARRY_SESSIONS` sessions
    before it): a class is carried forward over ``prices``' sessions for that many sessions.

    ``closes``: the unadjusted closes (default ``prices``). The price and dollar-volume floors
    compare them, as traded that day: a vendor's back-adjusted history divides old prices by
    every later split, so floors on adjusted prices would exclude names by what happened after.
    """
    traded = (prices if closes is None else closes.reindex(index=prices.index, columns=prices.columns)).astype("float64")
    age_all = listing_sessions(prices)
    dollar_all = None
    if rules.min_dollar_volume is not None and volumes is not None:
        # fixed-order window sums: the same bits however much history precedes a day
        dollar_all = trailing_frame_moments(traded * volumes.reindex(index=prices.index, columns=prices.columns),
                                            DOLLAR_VOLUME_WINDOW, DOLLAR_VOLUME_MIN_SESSIONS)[0]
    carried = None
    if classes is not None:
        sessions = prices.index.union(pd.DatetimeIndex(classes.index)) if len(classes) else prices.index
        carried = classes.reindex(index=sessions, columns=prices.columns).ffill(limit=CLASS_CARRY_SESSIONS).reindex(index=prices.index)
    keep = slice(None) if since is None else prices.index >= since
    prices = prices.loc[keep]
    idx, cols = prices.index, prices.columns
    score = rank_score.reindex(index=idx, columns=cols).to_numpy(dtype=float)
    px = prices.to_numpy(dtype=float)
    age = age_all.loc[keep].to_numpy(dtype=float)
    ok = ~np.isnan(px) & ~np.isnan(score) & (age >= rules.min_listing_sessions)
    if rules.min_price is not None:
        ok &= traded.loc[keep].to_numpy(dtype=float) >= rules.min_price
    if dollar_all is not None:
        ok &= dollar_all.loc[keep].to_numpy(dtype=float) >= rules.min_dollar_volume
    cls = carried.loc[keep].to_numpy(dtype=object) if carried is not None else np.full(px.shape, None, dtype=object)
    cls = np.where(pd.isna(cls), None, cls)
    weight = np.ones(px.shape)
    for name in rules.exclude_classes:
        ok &= cls != name
    for name, factor in rules.deweight_classes.items():
        weight = np.where(cls == name, factor, weight)
    masked = pd.DataFrame(np.where(ok, score, np.nan), index=idx, columns=cols)
    if long_only:
        pct = masked.rank(axis=1, pct=True, method="average").to_numpy(dtype=float)
        inclusion = pct * weight
    else:
        # Both tails: the percentile must be symmetric, (rank − ½)/n. With rank/n the best long
        # scored 1 and the best short 1 − 2/n, so every short ranked one place below its long twin.
        inclusion = np.abs(2.0 * cross_sectional_percentile(masked) - 1.0) * weight
    inc_frame = pd.DataFrame(np.where(ok, inclusion, np.nan), index=idx, columns=cols)
    rank = inc_frame.rank(axis=1, ascending=False, method="first").to_numpy(dtype=float)
    rows, cols_i = np.nonzero(ok)
    r = rank[rows, cols_i]
    tier = np.where(r <= rules.tier_sizes[0], 1, np.where(r <= rules.tier_sizes[1], 2, 3))
    out = pd.DataFrame({
        "date": idx[rows],
        "symbol": cols[cols_i].astype(object),
        "rank_score": score[rows, cols_i],
        "soft_target_class": cls[rows, cols_i],
        "class_weight": weight[rows, cols_i],
        "listing_sessions": age[rows, cols_i].astype(np.int64),
        "inclusion_score": inclusion[rows, cols_i],
        "rank": r.astype(np.int64),
        "tier": tier.astype(np.int64),
    })
    return out[UNIVERSE_COLUMNS].sort_values(["date", "rank"], kind="stable").reset_index(drop=True)
