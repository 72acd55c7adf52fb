"""Loads shared by the universe, portfolio, backtest and meta assets (no maths here).

Books are path-dependent (today's holdings are yesterday's drifted). A book asset resumes from
the state it stored at the close before its range (:class:`BookStates`: the end-of-day weights
and, for simulated books, the shares, cash and equity) and reads its inputs over a lookback
window only (:func:`prometheus_assets.core.portfolio.book_lookback`), so the daily run costs the
same with one year or thirty years behind it. Without a usable state (first run, a range that
does not follow a stored one, a changed book configuration) it replays from the first day of
history. Both paths give identical rows (the split-backfill and EOD tests check it).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prometheus_assets.assets import carried_state, history
from prometheus_assets.core import book_signals, portfolio, sleeves
from prometheus_assets.core.backtest import SimulationState, simulate_with_state
from prometheus_assets.core.books import COMBINATION_METHODS, BookConfig
from prometheus_assets.core.frames import to_wide
from prometheus_assets.core.universe import universe_weights
from prometheus_assets.resources import StorageResource


#: Solved risk-parity problems, kept under the storage root between runs
#: (:func:`prometheus_assets.core.portfolio.memoised_risk_parity_weights`). Deleting it is safe:
#: the next run solves again (slower) and writes it back.
RISK_PARITY_MEMO_FILE = "cache/risk_parity_memo.json"
#: Bump when the book or simulation arithmetic changes: older stored states are then ignored.
BOOK_STATE_VERSION = 3  # 2: symbol-order z-scores and held-name sums (split backfills bit-identical); 3: a book starts on its first trade
#: Upper bound of an alpha source's horizon (books allow up to 252 sessions).
MAX_SOURCE_HORIZON = 252
#: Sessions of rebalances the alpha-vs-realised scatters show (sleeve_evaluation, sleeve_report): the
#: recent three years, so drawing them costs the same whatever the length of the history.
ALPHA_POINTS_SESSIONS = 756

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
    #: unadjusted close × share volume (as traded that day; None without volumes)
    dollar_volumes: pd.DataFrame | None
    panels: dict[str, book_signals.SourcePanel]
    regimes: pd.Series
    sectors: pd.Series
    risk_parity_memo: dict = field(default_factory=dict)


def sectors(instruments: pd.DataFrame) -> pd.Series:
    """symbol -> sector (the registry's)."""
    return instruments.set_index("symbol")["sector"]


def regime_labels(storage: StorageResource, end: pd.Timestamp, start: pd.Timestamp | None = None) -> pd.Series:
    """as_of_date -> regime label, ``start`` (default: history start) … ``end`` (empty while the regime layer warms up)."""
    if not storage.store().exists("regime_states"):
        return pd.Series(dtype=object)
    states = history.read(storage, "regime_states", start, end, date_column="as_of_date", columns=["as_of_date", "regime_label"])
    return states.set_index("as_of_date")["regime_label"]


def soft_target_class_panel(storage: StorageResource, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame | None:
    """Wide as_of_date × symbol stability classes over ``start`` … ``end`` (None when there are none)."""
    states = history.read(storage, "soft_target_classes", start, end, date_column="as_of_date")
    return states.pivot(index="as_of_date", columns="entity_id", values="soft_target_class") if len(states) else None


def load_context(
    storage: StorageResource, books: dict[str, BookConfig], instruments: pd.DataFrame, end: pd.Timestamp,
    start: pd.Timestamp | None = None, symbols: pd.Index | None = None,
) -> BookContext:
    """Everything the books need, from ``start`` (default: the first day of history) to ``end``.

    ``symbols`` adds columns to the panels (a resumed run passes the symbols of the run it
    resumes, so its panels have exactly the columns a full-history read would have).
    """
    panels = history.market_panels(storage, start, end, closes=True)
    returns = panels["returns"]
    if symbols is not None:
        columns = pd.Index(sorted(set(returns.columns) | set(symbols)))
        returns = returns.reindex(columns=columns)
    scores = history.read(storage, "assessment_scores", start, end, date_column="as_of_date", columns=book_signals.SCORE_INPUT_COLUMNS)
    signals = history.read(storage, "strategy_signals", start, end, columns=book_signals.SIGNAL_INPUT_COLUMNS)
    dollar = panels["closes"] * panels["volumes"] if panels["volumes"] is not None else None
    return BookContext(
        returns=returns,
        prices=panels["prices"].reindex(index=returns.index, columns=returns.columns),
        dollar_volumes=dollar.reindex(columns=returns.columns) if dollar is not None and symbols is not None else dollar,
        panels=book_signals.source_panels(books, scores, signals, returns),
        regimes=regime_labels(storage, end, start),
        sectors=sectors(instruments),
        risk_parity_memo=StoredRiskParityMemo(storage),
    )


def plan(ctx: BookContext, book: BookConfig, universe: pd.DataFrame, method: str | None = None, sizer: portfolio.Sizer | None = None,
         start: portfolio.BookStart | None = None) -> portfolio.BookPlan:
    """The portfolio manager's plan of ``book`` (combination ``method``, default the book's; ``sizer``: edge sizing;
    ``start``: resume from stored weights, see :func:`prometheus_assets.core.portfolio.construct_book`)."""
    alpha = book_signals.book_alpha(book, ctx.panels, method)
    kelly = None
    if book.allocation == "kelly":
        kelly = portfolio.kelly_fractions(alpha, ctx.returns, book.horizon_days, book.kelly_window, book.kelly_cap)
    weights = universe_weights(universe[universe["book"] == book.name], ctx.returns.index, ctx.returns.columns)
    multipliers = book_signals.size_multipliers(book, ctx.regimes, ctx.returns.index)
    return portfolio.construct_book(book, alpha, weights, ctx.returns, ctx.sectors, multipliers, kelly, sizer=sizer,
                                    risk_parity_memo=ctx.risk_parity_memo, start=start)


def save_memo(ctx: BookContext) -> int:
    """Store the risk-parity problems solved while planning (see :class:`StoredRiskParityMemo`)."""
    memo = ctx.risk_parity_memo
    return memo.save() if isinstance(memo, StoredRiskParityMemo) else 0


def simulated_returns(prices: pd.DataFrame, targets: pd.DataFrame, cost_bps: float) -> pd.DataFrame:
    """Daily book returns (``date``, ``return``, ``equity``, ``turnover``, ``costs``, ...) from rebalance targets."""
    return simulated_returns_with_state(prices, targets, cost_bps)[0]


def simulated_returns_with_state(prices: pd.DataFrame, targets: pd.DataFrame, cost_bps: float, state: SimulationState | None = None) -> tuple[pd.DataFrame, SimulationState | None]:
    """:func:`simulated_returns` continued from ``state`` (``prices`` then start the session after it), and the final state."""
    sim, final = simulate_with_state(prices, targets.dropna(how="all"), cost_bps, state=state)
    return sim.rename(columns={"returns": "return"}).rename_axis("date").reset_index(), final


def configured_configs(books: dict[str, BookConfig]) -> dict[str, tuple[BookConfig, str]]:
    """Every book under its own combination method: config id -> (book, method)."""
    return {book.config_id(): (book, book.combination) for book in books.values()}


def all_configs(books: dict[str, BookConfig]) -> dict[str, tuple[BookConfig, str]]:
    """Every book under every combination method (the comparison): config id -> (book, method)."""
    return {book.config_id(m): (book, m) for book in books.values() for m in COMBINATION_METHODS}


# --------------------------------------------------------------------------------------------
# Carried book state
# --------------------------------------------------------------------------------------------


def config_fingerprint(book: BookConfig, method: str) -> str:
    """sha256 of everything that shapes a config's path: the book's settings, the method, the state version."""
    text = json.dumps({"book": json.loads(book.model_dump_json()), "method": method, "version": BOOK_STATE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _series_to_json(values: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in values.items()}


@dataclass
class BookStates:
    """The end-of-day state of a set of book configs at one close, kept under ``state/<asset>/``.

    ``symbols`` are the panel columns of the run that wrote it; each config has its
    ``fingerprint`` (:func:`config_fingerprint`), its end-of-day ``weights`` (nonzero only) and,
    for simulated books, its :class:`~prometheus_assets.core.backtest.SimulationState` (None
    before its first trade). JSON with exact float reprs: a stored state reads back bit for bit.
    """

    date: pd.Timestamp
    symbols: pd.Index
    weights: dict[str, pd.Series] = field(default_factory=dict)
    simulations: dict[str, SimulationState | None] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_configs(cls, date: pd.Timestamp, symbols: pd.Index, configs: dict[str, tuple[BookConfig, str]]) -> "BookStates":
        """An empty state at the close ``date`` of a run over ``symbols``, fingerprinted for ``configs``."""
        return cls(date, symbols, fingerprints={cid: config_fingerprint(book, m) for cid, (book, m) in configs.items()})

    def keep_plan(self, config_id: str, plan: portfolio.BookPlan) -> None:
        """Keep the plan's end-of-day weights at its last session (the names held)."""
        last = plan.weights.iloc[-1]
        self.weights[config_id] = last[last != 0]

    def to_json(self) -> bytes:
        configs = {}
        for cid, fp in sorted(self.fingerprints.items()):
            sim = self.simulations.get(cid)
            configs[cid] = {"fingerprint": fp, "weights": _series_to_json(self.weights.get(cid, pd.Series(dtype=float))), "simulation": None if sim is None else {
                "shares": _series_to_json(sim.shares[sim.shares != 0]),
                "valuation_prices": _series_to_json(sim.valuation_prices[sim.shares != 0]),
                "cash": float(sim.cash), "equity": float(sim.equity)}}
        return json.dumps({"version": BOOK_STATE_VERSION, "date": f"{self.date:%Y-%m-%d}", "symbols": [str(s) for s in self.symbols],
                           "configs": configs}, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "BookStates":
        raw = json.loads(data)
        if raw.get("version") != BOOK_STATE_VERSION:
            raise ValueError(f"book state version {raw.get('version')!r} is not {BOOK_STATE_VERSION}")
        out = cls(date=pd.Timestamp(raw["date"]), symbols=pd.Index(raw["symbols"]))
        for cid, c in raw["configs"].items():
            out.fingerprints[cid] = c["fingerprint"]
            out.weights[cid] = pd.Series(c["weights"], dtype=float)
            sim = c["simulation"]
            out.simulations[cid] = None if sim is None else SimulationState(
                shares=pd.Series(sim["shares"], dtype=float), valuation_prices=pd.Series(sim["valuation_prices"], dtype=float),
                cash=float(sim["cash"]), equity=float(sim["equity"]))
        return out


def stored_states(storage: StorageResource, asset: str, first_day: pd.Timestamp, configs: dict[str, tuple[BookConfig, str]]) -> BookStates | None:
    """The state ``asset`` stored at the latest close before ``first_day``, if it serves every config in ``configs``.

    None (replay from the first day) when there is none, it is unreadable, or any config's
    fingerprint differs (the book was changed or overridden for this run). Whether it is the
    close right before ``first_day`` is checked by the caller against the sessions it reads.
    """
    states = carried_state.load_latest_before(storage, asset, first_day, BookStates.from_json)
    if states is None:
        return None
    for cid, (book, method) in configs.items():
        if states.fingerprints.get(cid) != config_fingerprint(book, method):
            return None
    return states


def save_states(storage: StorageResource, asset: str, dates: list[pd.Timestamp], states: BookStates) -> None:
    """Store ``states`` (dated the range's last day) and drop older states dated inside the range (they may be stale)."""
    carried_state.save(storage, asset, dates, states.date, states.to_json())


@dataclass
class BookRun:
    """The inputs of one book asset run: its context, and where each config resumes (None: from day one)."""

    ctx: BookContext
    configs: dict[str, tuple[BookConfig, str]]
    starts: dict[str, portfolio.BookStart] | None
    simulations: dict[str, SimulationState | None] | None

    @property
    def window_start(self) -> pd.Timestamp | None:
        """The first session read (None: the first day of history)."""
        return None if self.starts is None else self.ctx.returns.index[0]

    @property
    def first_day(self) -> pd.Timestamp | None:
        """The first session planned (None: the first day of history)."""
        return None if self.starts is None else next(iter(self.starts.values())).date

    def start(self, config_id: str) -> portfolio.BookStart | None:
        return None if self.starts is None else self.starts[config_id]

    def simulate(self, config_id: str, targets: pd.DataFrame, cost_bps: float) -> tuple[pd.DataFrame, SimulationState | None]:
        """Daily returns of the config's targets, continued from its stored simulation when resuming."""
        prices = self.ctx.prices
        if self.starts is None:
            return simulated_returns_with_state(prices, targets, cost_bps)
        return simulated_returns_with_state(prices[prices.index >= self.first_day], targets, cost_bps, self.simulations.get(config_id))

    def new_states(self) -> BookStates:
        """An empty :class:`BookStates` at this run's last close, for the configs of this run."""
        return BookStates.for_configs(self.ctx.returns.index[-1], self.ctx.returns.columns, self.configs)


def book_run(storage: StorageResource, asset: str, configs: dict[str, tuple[BookConfig, str]], instruments: pd.DataFrame, dates: list[pd.Timestamp]) -> BookRun:
    """Load what ``asset``'s run over ``dates`` needs: a lookback window after a stored state, else the whole history."""
    first, end = dates[0], dates[-1]
    books = {book.name: book for book, _ in configs.values()}
    states = stored_states(storage, asset, first, configs)
    if states is not None:
        lookback = max(portfolio.book_lookback(book, MAX_SOURCE_HORIZON) for book in books.values()) + history.LOOKBACK_SLACK
        ctx = load_context(storage, books, instruments, end, history.lookback_start(first, lookback), states.symbols)
        before = ctx.returns.index[ctx.returns.index < first]
        if len(before) and before[-1] == states.date and first in ctx.returns.index:
            return BookRun(ctx, configs, {cid: portfolio.BookStart(first, states.weights[cid]) for cid in configs}, states.simulations)
        _log.info("%s: stored state of %s is not the session before %s; replaying from the first day", asset, states.date.date(), first.date())
    return BookRun(load_context(storage, books, instruments, end), configs, None, None)


def read_universe(storage: StorageResource, end: pd.Timestamp, start: pd.Timestamp | None = None) -> pd.DataFrame:
    """The universes table, ``start`` (default: history start) … ``end``."""
    return history.read(storage, "universes", start, end)


def wide_weights(positions: pd.DataFrame, book: str, index: pd.Index, columns: pd.Index, value: str = "target_weight") -> pd.DataFrame:
    """One book's weights from the long ``target_portfolios`` rows, 0 where it holds nothing."""
    rows = positions[positions["book"] == book]
    return to_wide(rows, value).reindex(index=index, columns=columns).fillna(0.0)


def alpha_points(positions: pd.DataFrame, returns: pd.DataFrame, books: dict[str, BookConfig]) -> pd.DataFrame:
    """Every configured book's alpha at its rebalances against the realised return over its horizon."""
    parts = [sleeves.alpha_outcomes(positions[positions["book"] == n], returns, b.horizon_days).assign(book=n) for n, b in books.items()]
    return pd.concat(parts, ignore_index=True)


def resumed_prices(storage: StorageResource, asset: str, configs: dict[str, tuple[BookConfig, str]], dates: list[pd.Timestamp]) -> tuple[pd.DataFrame, BookStates | None]:
    """Prices a simulated book asset needs for ``dates``, and the state it continues from.

    After a stored state at the session right before ``dates[0]``: the prices of ``dates`` only,
    with the columns a full-history read would have. Otherwise every price from the first day
    of history, and None.
    """
    states = stored_states(storage, asset, dates[0], configs)
    if states is not None:
        prices = history.market_panels(storage, states.date, dates[-1])["prices"]
        prices = prices.reindex(columns=pd.Index(sorted(set(prices.columns) | set(states.symbols))))
        between = prices.index[prices.index < dates[0]]
        if len(between) == 1 and between[0] == states.date and (prices.index >= dates[0]).any():
            return prices[prices.index >= dates[0]], states
        _log.info("%s: stored state of %s is not the session before %s; replaying from the first day", asset, states.date.date(), dates[0].date())
    return history.market_panels(storage, None, dates[-1])["prices"], None

