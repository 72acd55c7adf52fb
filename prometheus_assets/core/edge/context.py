"""Unified scope extraction: the value of every scope dimension for a trade or a candidate.

Everything here is known at the close of the day it describes (point in time): trailing
windows end at that close, regime labels are the ones published that day. The same panels
describe closed trades (at their entry close) and candidates being sized (at the rebalance
close), so edge and exposure speak one language (:mod:`.scope`).

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import pandas as pd

from prometheus_assets.core.edge.scope import DIMENSION_NAMES, UNKNOWN
from prometheus_assets.core.frames import cross_sectional_percentile, trailing_frame_moments
from prometheus_assets.core.trade_context import trailing_std, volatility_buckets

__all__ = [
    "ACTION_CATEGORY",
    "BookTraits",
    "ScopePanels",
    "scope_panels",
    "scope_at",
    "trade_scopes",
    "entry_modes",
    "risk_multiples",
    "duration_hours",
]

#: The PM action edge statistics inform: sizing a position the book enters.
ACTION_CATEGORY: Final[str] = "entry"
TRAILING_RETURN_WINDOW: Final[int] = 60
SIZE_WINDOW: Final[int] = 252
LIQUIDITY_WINDOW: Final[int] = 60
LEADER_QUANTILE: Final[float] = 0.8
NEW_LISTING_SESSIONS: Final[int] = 252
YOUNG_LISTING_SESSIONS: Final[int] = 1260
#: Sessions of history every panel value reads before its own session (the longest trailing window).
PANEL_LOOKBACK: Final[int] = SIZE_WINDOW


class BookTraits(Protocol):
    """What scope extraction needs from a book config (``core.books.BookConfig`` satisfies it)."""

    name: str
    horizon_days: int
    rebalance: str


@dataclass(frozen=True)
class ScopePanels:
    """Per (date, symbol) and per date values of the market-dependent scope dimensions."""

    dates: pd.DatetimeIndex
    symbols: pd.Index
    per_symbol: dict[str, np.ndarray]  # dimension -> object array (dates × symbols)
    per_date: dict[str, np.ndarray]  # dimension -> object array (dates,)
    static: dict[str, np.ndarray]  # dimension -> object array (symbols,)

    def row(self, date: pd.Timestamp) -> int:
        """Index of ``date`` in the panels (``KeyError`` if it is not a session of them)."""
        i = self.dates.get_indexer([pd.Timestamp(date)])[0]
        if i < 0:
            raise KeyError(f"{pd.Timestamp(date).date()} is not a session of the scope panels")
        return int(i)


def listing_sessions(returns: pd.DataFrame, seen_before: pd.Series | None = None) -> pd.DataFrame:
    """Per (date, symbol): sessions with a return up to and including the date (the listing age).

    ``seen_before`` (symbol -> count) carries the sessions before the frame's first row; integer
    counts, so a window plus its carried count equals the count from the first day exactly.
    """
    seen = returns.notna().cumsum()
    if seen_before is not None:
        seen = seen + seen_before.reindex(returns.columns).fillna(0).to_numpy(dtype=np.int64)
    return seen


def _labels(values: np.ndarray, edges: tuple[float, ...], names: tuple[str, ...]) -> np.ndarray:
    """Bucket a float array: ``values <= edges[k]`` → ``names[k]``, above the last edge → last name; NaN → unknown."""
    out = np.full(values.shape, UNKNOWN, dtype=object)
    ok = ~np.isnan(values)
    idx = np.searchsorted(np.asarray(edges), values[ok], side="left")
    out[ok] = np.asarray(names, dtype=object)[idx]
    return out


def _terciles(frame: pd.DataFrame, names: tuple[str, str, str]) -> np.ndarray:
    """Cross-sectional tercile per date (symmetric percentile ≤ 1/3, ≤ 2/3, else: one name, or ties, in the middle); NaN → unknown."""
    return _labels(cross_sectional_percentile(frame), (1 / 3, 2 / 3), names)


def scope_panels(
    returns: pd.DataFrame,
    prices: pd.DataFrame,
    dollar_volumes: pd.DataFrame | None,
    instruments: pd.DataFrame,
    market_regimes: pd.Series,
    allocator_regimes: pd.Series,
    soft_target_classes: pd.DataFrame | None,
    seen_before: pd.Series | None = None,
) -> ScopePanels:
    """Scope panels over ``returns``' sessions and symbols.

    Every value on a session is a function of a trailing window ending there (fixed-order window
    sums, :func:`~prometheus_assets.core.frames.trailing_frame_moments`), so panels built over a
    lookback window equal, row for row, panels built over the whole history, provided the window
    holds :data:`PANEL_LOOKBACK` sessions before the first row used and ``seen_before`` gives the
    listing age carried into the window.

    Args:
        returns / prices / dollar_volumes: wide daily panels; the dollar volumes are the unadjusted
            close × volume, as traded that day (a back-adjusted price divides by every later split,
            which would move a name's size and liquidity terciles before it); None: size and
            liquidity buckets are ``unknown``.
        instruments: the registry (``symbol``, ``sector``, ``asset_class``).
        market_regimes: date -> regime layer label; allocator_regimes: date -> Allocator v1 regime.
        soft_target_classes: wide date × symbol stability classes (or None).
        seen_before: symbol -> sessions with a return before the panels' first row (None: the
            panels start at the beginning of history). The listing age counts them.
    """
    dates = pd.DatetimeIndex(returns.index)
    symbols = returns.columns
    px = prices.reindex(index=dates, columns=symbols)
    trailing = px / px.shift(TRAILING_RETURN_WINDOW) - 1.0
    per_symbol: dict[str, np.ndarray] = {
        "vol_bucket": volatility_buckets(returns).to_numpy(dtype=object),
        "rank_position_bucket": _terciles(trailing, ("bottom", "middle", "top")),
    }
    per_symbol["vol_bucket"] = np.where(pd.isna(per_symbol["vol_bucket"]), UNKNOWN, per_symbol["vol_bucket"])
    seen = listing_sessions(returns, seen_before).to_numpy(dtype=float)
    first_seen = seen > 0
    per_symbol["listing_age_bucket"] = np.where(
        first_seen, _labels(seen, (NEW_LISTING_SESSIONS - 0.5, YOUNG_LISTING_SESSIONS - 0.5), ("new", "young", "seasoned")), UNKNOWN
    )
    registry = instruments.drop_duplicates("symbol", keep="last").set_index("symbol")
    sector = registry["sector"].reindex(symbols) if "sector" in registry else pd.Series(np.nan, index=symbols)
    sector = sector.astype(object).where(sector.notna(), UNKNOWN)
    # Sector leaders: top LEADER_QUANTILE of the sector by trailing return (percentile within the sector).
    leader = np.full(trailing.shape, UNKNOWN, dtype=object)
    values = trailing.to_numpy(dtype=float)
    for label in pd.unique(sector.to_numpy(dtype=object)):
        cols = np.flatnonzero(sector.to_numpy(dtype=object) == label)
        pct = pd.DataFrame(values[:, cols]).rank(axis=1, pct=True).to_numpy(dtype=float)
        block = np.where(np.isnan(pct), UNKNOWN, np.where(pct > LEADER_QUANTILE, "leader", "member"))
        leader[:, cols] = block
    per_symbol["sector_leader"] = leader
    if dollar_volumes is not None and dollar_volumes.notna().any().any():
        dollar = dollar_volumes.reindex(index=dates, columns=symbols).where(lambda f: f > 0)
        size = trailing_frame_moments(dollar, SIZE_WINDOW, LIQUIDITY_WINDOW)[0]
        amihud = trailing_frame_moments(returns.abs() / dollar, LIQUIDITY_WINDOW, LIQUIDITY_WINDOW // 2)[0]
        per_symbol["size_bucket"] = _terciles(size, ("small", "mid", "large"))
        per_symbol["liquidity_bucket"] = _terciles(amihud, ("liquid", "average", "illiquid"))
    else:
        per_symbol["size_bucket"] = np.full(returns.shape, UNKNOWN, dtype=object)
        per_symbol["liquidity_bucket"] = np.full(returns.shape, UNKNOWN, dtype=object)
    if soft_target_classes is not None and not soft_target_classes.empty:
        classes = soft_target_classes.reindex(index=dates, columns=symbols).to_numpy(dtype=object)
        per_symbol["soft_target_class"] = np.where(pd.isna(classes), UNKNOWN, classes)
    else:
        per_symbol["soft_target_class"] = np.full(returns.shape, UNKNOWN, dtype=object)

    def by_date(series: pd.Series) -> np.ndarray:
        s = series[~series.index.duplicated(keep="last")].reindex(dates) if len(series) else pd.Series(np.nan, index=dates)
        return s.astype(object).where(s.notna(), UNKNOWN).to_numpy(dtype=object)

    asset_class = registry["asset_class"].reindex(symbols) if "asset_class" in registry else pd.Series(np.nan, index=symbols)
    return ScopePanels(
        dates=dates,
        symbols=symbols,
        per_symbol=per_symbol,
        per_date={"market_regime": by_date(market_regimes), "allocator_regime": by_date(allocator_regimes)},
        static={
            "sector": sector.to_numpy(dtype=object),
            "asset_class": asset_class.astype(object).where(asset_class.notna(), UNKNOWN).map(lambda v: str(v).lower() if v != UNKNOWN else v).to_numpy(dtype=object),
        },
    )


def _confidence(alpha: float) -> str:
    if alpha is None or not np.isfinite(alpha):
        return UNKNOWN
    a = abs(float(alpha))
    return "low" if a < 1 / 3 else "mid" if a < 2 / 3 else "high"


def scope_at(panels: ScopePanels, i: int, j: int, book: BookTraits, intent: str, alpha: float, entry_mode: str) -> dict[str, str]:
    """The full unified scope of symbol column ``j`` at session row ``i`` for ``book``."""
    scope = {
        "book": book.name,
        "intent": intent,
        "signal_confidence_bucket": _confidence(alpha),
        "horizon": f"{book.horizon_days}d",
        "entry_mode": entry_mode,
        "exit_mode": f"{book.rebalance}_rebalance",
    }
    for name, panel in panels.per_symbol.items():
        scope[name] = panel[i, j]
    for name, values in panels.per_date.items():
        scope[name] = values[i]
    for name, values in panels.static.items():
        scope[name] = values[j]
    return {name: scope[name] for name in DIMENSION_NAMES}


def entry_modes(trades: pd.DataFrame, exits: pd.DataFrame | None = None) -> np.ndarray:
    """``flip`` when a trade opened at the close that closed the same book's opposite trade in the symbol, else ``fresh``.

    ``exits``: the closed trades whose exits can make a trade of ``trades`` a flip (default:
    ``trades`` themselves). A run that learns only the trades closed after its state must pass the
    trades that exited since the earliest entry among them: the trade a flip reversed may have
    closed before the state.
    """
    if trades.empty:
        return np.zeros(0, dtype=object)
    exits = trades if exits is None else exits
    exits = set(zip(exits["book"], exits["symbol"], pd.DatetimeIndex(exits["exit_date"]), exits["side"]))
    opposite = {"long": "short", "short": "long"}
    keys = zip(trades["book"], trades["symbol"], pd.DatetimeIndex(trades["entry_date"]), trades["side"])
    return np.array(["flip" if (b, s, d, opposite[side]) in exits else "fresh" for b, s, d, side in keys], dtype=object)


def trade_scopes(trades: pd.DataFrame, panels: ScopePanels, books: Mapping[str, BookTraits], exits: pd.DataFrame | None = None) -> pd.DataFrame:
    """One column per scope dimension for every trade, at its entry close (rows aligned with ``trades``).

    ``trades`` needs ``book``, ``symbol``, ``side``, ``entry_date`` and ``entry_alpha``; a book
    missing from ``books`` raises ``KeyError`` naming it. ``exits``: see :func:`entry_modes`.
    """
    missing = sorted(set(trades["book"]) - set(books))
    if missing:
        raise KeyError(f"closed trades of books that are not configured: {missing}")
    i = panels.dates.get_indexer(pd.DatetimeIndex(trades["entry_date"]))
    j = panels.symbols.get_indexer(pd.Index(trades["symbol"]))
    if (i < 0).any() or (j < 0).any():
        raise KeyError("closed trades with an entry date or symbol outside the scope panels")
    modes = entry_modes(trades, exits)
    rows = [
        scope_at(panels, int(a), int(b), books[bk], side, alpha, mode)
        for a, b, bk, side, alpha, mode in zip(i, j, trades["book"], trades["side"], trades["entry_alpha"], modes)
    ]
    return pd.DataFrame(rows, columns=list(DIMENSION_NAMES), index=trades.index)


def risk_multiples(trades: pd.DataFrame, returns: pd.DataFrame, window: int) -> np.ndarray:
    """``rr`` of each trade: its return in units of the risk it was expected to take.

    rr = return / (σ × √holding_sessions), σ = standard deviation of the symbol's daily returns
    over the ``window`` sessions up to and including the entry close (known at entry; fixed-order
    window sums, so ``returns`` may start anywhere ``window`` sessions before it). NaN when
    σ is unknown or zero (the statistics skip such trades and count them).
    """
    if trades.empty:
        return np.zeros(0)
    sigma = trailing_std(returns, window)
    i = sigma.index.get_indexer(pd.DatetimeIndex(trades["entry_date"]))
    j = sigma.columns.get_indexer(pd.Index(trades["symbol"]))
    s = np.full(len(trades), np.nan)
    ok = (i >= 0) & (j >= 0)
    s[ok] = sigma.to_numpy(dtype=float)[i[ok], j[ok]]
    holding = np.maximum(trades["holding_sessions"].to_numpy(dtype=float), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = trades["return"].to_numpy(dtype=float) / (s * np.sqrt(holding))
    return np.where(np.isfinite(rr), rr, np.nan)


def duration_hours(trades: pd.DataFrame) -> np.ndarray:
    """Calendar hours from the entry close to the exit close."""
    delta = pd.DatetimeIndex(trades["exit_date"]) - pd.DatetimeIndex(trades["entry_date"])
    return (delta / pd.Timedelta(hours=1)).to_numpy(dtype=float)
