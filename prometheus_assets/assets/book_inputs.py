"""Loads shared by the universe, portfolio, backtest and meta assets (no maths here).

Books are path-dependent (today's holdings are yesterday's drifted), so every book asset reads
its inputs from the first day of history up to the last day of its range and keeps the rows of
its range: a range run, a split backfill and the daily run all give identical rows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prometheus_assets.assets import history
from prometheus_assets.core import book_signals, portfolio, sleeves
from prometheus_assets.core.backtest import simulate
from prometheus_assets.core.books import COMBINATION_METHODS, BookConfig
from prometheus_assets.core.frames import to_wide
from prometheus_assets.core.universe import universe_weights
from prometheus_assets.resources import StorageResource


#: Solved risk-parity problems, kept under the storage root between runs
#: (:func:`prometheus_assets.core.portfolio.memoised_risk_parity_weights`). Deleting it is safe:
#: the next run solves again (slower) and writes it back.
RISK_PARITY_MEMO_FILE = "cache/risk_parity_memo.json"

_log = logging.getLogger(__name__)


class StoredRiskParityMemo(dict):
    """The risk-parity memo of the storage root: a dict loaded from :data:`RISK_PARITY_MEMO_FILE`.

    Entries added during a run are merged back by :meth:`save` under the file's lock, so two
    runs at once never drop each other's entries. The file is JSON with sorted keys and exact
    float reprs: the same entries always give the same bytes. An unreadable file is a lost
    cache, not lost data: it is logged and rebuilt.
    """

    def __init__(self, storage: StorageResource) -> None:
        super().__init__()
        self._storage = storage
        self._added: dict[str, np.ndarray] = {}
        self.update(self._decode(storage.store().read_bytes(RISK_PARITY_MEMO_FILE)))

    @staticmethod
    def _decode(data: bytes | None) -> dict[str, np.ndarray]:
        if not data:
            return {}
        try:
            return {k: np.asarray(v, dtype=float) for k, v in json.loads(data)["entries"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            _log.warning("ignoring unreadable risk-parity memo %s (%s); it will be rebuilt", RISK_PARITY_MEMO_FILE, exc)
            return {}

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        super().__setitem__(key, value)
        self._added[key] = value

    def save(self) -> int:
        """Merge the entries added since loading into the stored file; returns how many were added."""
        added = dict(self._added)
        if added:
            def merge(old: bytes | None) -> bytes:
                entries = {k: v.tolist() for k, v in self._decode(old).items()}
                entries.update({k: np.asarray(v, dtype=float).tolist() for k, v in added.items()})
                return json.dumps({"entries": entries}, sort_keys=True, separators=(",", ":")).encode()

            self._storage.store().update_bytes(RISK_PARITY_MEMO_FILE, merge)
            self._added.clear()
        return len(added)


@dataclass(frozen=True)
class BookContext:
    """Market panels, alpha panels, regimes and sectors up to one day, and the risk-parity memo."""

    returns: pd.DataFrame
    prices: pd.DataFrame
    volumes: pd.DataFrame | None
    panels: dict[str, book_signals.SourcePanel]
    regimes: pd.Series
    sectors: pd.Series
    risk_parity_memo: dict = field(default_factory=dict)


def sectors(instruments: pd.DataFrame) -> pd.Series:
    """symbol -> sector (the registry's)."""
    return instruments.set_index("symbol")["sector"]


def regime_labels(storage: StorageResource, end: pd.Timestamp) -> pd.Series:
    """as_of_date -> regime label, history start … ``end`` (empty while the regime layer warms up)."""
    if not storage.store().exists("regime_states"):
        return pd.Series(dtype=object)
    states = history.read(storage, "regime_states", None, end, date_column="as_of_date")
    return states.set_index("as_of_date")["regime_label"]


def soft_target_class_panel(storage: StorageResource, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame | None:
    """Wide as_of_date × symbol stability classes over ``start`` … ``end`` (None when there are none)."""
    states = history.read(storage, "soft_target_classes", start, end, date_column="as_of_date")
    return states.pivot(index="as_of_date", columns="entity_id", values="soft_target_class") if len(states) else None


def load_context(storage: StorageResource, books: dict[str, BookConfig], instruments: pd.DataFrame, end: pd.Timestamp) -> BookContext:
    """Everything the books need, from the first day of history to ``end``."""
    panels = history.market_panels(storage, None, end)
    returns = panels["returns"]
    scores = history.read(storage, "assessment_scores", None, end, date_column="as_of_date")
    signals = history.read(storage, "strategy_signals", None, end)
    return BookContext(
        returns=returns,
        prices=panels["prices"].reindex(index=returns.index, columns=returns.columns),
        volumes=panels["volumes"],
        panels=book_signals.source_panels(books, scores, signals, returns),
        regimes=regime_labels(storage, end),
        sectors=sectors(instruments),
        risk_parity_memo=StoredRiskParityMemo(storage),
    )


def plan(ctx: BookContext, book: BookConfig, universe: pd.DataFrame, method: str | None = None, sizer: portfolio.Sizer | None = None) -> portfolio.BookPlan:
    """The portfolio manager's plan of ``book`` (combination ``method``, default the book's; ``sizer``: edge sizing)."""
    alpha = book_signals.book_alpha(book, ctx.panels, method)
    kelly = None
    if book.allocation == "kelly":
        kelly = portfolio.kelly_fractions(alpha, ctx.returns, book.horizon_days, book.kelly_window, book.kelly_cap)
    weights = universe_weights(universe[universe["book"] == book.name], ctx.returns.index, ctx.returns.columns)
    multipliers = book_signals.size_multipliers(book, ctx.regimes, ctx.returns.index)
    return portfolio.construct_book(book, alpha, weights, ctx.returns, ctx.sectors, multipliers, kelly, sizer=sizer, risk_parity_memo=ctx.risk_parity_memo)


def save_memo(ctx: BookContext) -> int:
    """Store the risk-parity problems solved while planning (see :class:`StoredRiskParityMemo`)."""
    memo = ctx.risk_parity_memo
    return memo.save() if isinstance(memo, StoredRiskParityMemo) else 0


def simulated_returns(prices: pd.DataFrame, targets: pd.DataFrame, cost_bps: float) -> pd.DataFrame:
    """Daily book returns (``date``, ``return``, ``equity``, ``turnover``, ``costs``, ...) from rebalance targets."""
    sim = simulate(prices, targets.dropna(how="all"), cost_bps) if targets.notna().any().any() else simulate(prices, targets.iloc[:0], cost_bps)
    return sim.rename(columns={"returns": "return"}).rename_axis("date").reset_index()


def all_plans(ctx: BookContext, books: dict[str, BookConfig], universe: pd.DataFrame) -> dict[tuple[str, str], portfolio.BookPlan]:
    """Plans of every book under every combination method (the comparison), keyed (book, method)."""
    return {(name, m): plan(ctx, book, universe, m) for name, book in books.items() for m in COMBINATION_METHODS}


def read_universe(storage: StorageResource, end: pd.Timestamp) -> pd.DataFrame:
    """The universes table, history start … ``end``."""
    return history.read(storage, "universes", None, end)


def wide_weights(positions: pd.DataFrame, book: str, index: pd.Index, columns: pd.Index, value: str = "target_weight") -> pd.DataFrame:
    """One book's weights from the long ``target_portfolios`` rows, 0 where it holds nothing."""
    rows = positions[positions["book"] == book]
    return to_wide(rows, value).reindex(index=index, columns=columns).fillna(0.0)


def alpha_points(positions: pd.DataFrame, returns: pd.DataFrame, books: dict[str, BookConfig]) -> pd.DataFrame:
    """Every configured book's alpha at its rebalances against the realised return over its horizon."""
    parts = [sleeves.alpha_outcomes(positions[positions["book"] == n], returns, b.horizon_days).assign(book=n) for n, b in books.items()]
    return pd.concat(parts, ignore_index=True)
