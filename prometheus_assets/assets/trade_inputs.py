"""``closed_trades``' carried state: each book's open trades at the last close, and the loads of one run.

A trade closed on day t was opened on some earlier day, possibly years before. Instead of
rebuilding every round trip from the first day, a run over ``[A, B]`` continues from the trades
open at the close before ``A`` (:class:`TradeState`, ``state/closed_trades/<day>.json``): each
with its entry date, price and weight, the largest ``|weight|`` so far, the sessions held so far
and the entry context recorded when it was opened (regime label, soft-target class, volatility
bucket, alpha). It reads its inputs from ``A`` on, plus the trailing 60 sessions of returns that
the volatility buckets of trades opened in the range need
(:func:`prometheus_assets.core.trade_context.volatility_buckets` is start-invariant), and the
last known price of every symbol at that close (missing prices are forward-filled).

Without a usable state (first run, a range that does not follow the stored close, a book added)
the run replays from the first day; both paths give the same rows and the same state
(:func:`prometheus_assets.core.trades.round_trips_with_open`; tests/unit/test_trades.py and the
split / EOD graph tests).
"""

import json
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prometheus_assets.assets import book_inputs, carried_state, history
from prometheus_assets.core import trade_context, trades
from prometheus_assets.core.books import BookConfig
from prometheus_assets.core.frames import to_wide
from prometheus_assets.resources import StorageResource

ASSET = "closed_trades"
#: Bump when the trade or context arithmetic changes: older stored states are then ignored.
#: 2: the volatility buckets of the context use (rank − ½)/n (7aae210); open trades carried in a version-1
#: state kept buckets of the old formula and passed them on to the trades they closed.
TRADE_STATE_VERSION = 2
_OPEN = (*trades.OPEN_COLUMNS, *trade_context.CONTEXT_COLUMNS)

_log = logging.getLogger(__name__)


def _float(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _empty_open() -> pd.DataFrame:
    frame = trades.empty_open()
    for column in trade_context.CONTEXT_COLUMNS:
        frame[column] = pd.Series(dtype=object)
    return frame


@dataclass
class TradeState:
    """The open trades of every book at the close ``date``, the panel symbols and the last known prices."""

    date: pd.Timestamp
    symbols: list[str]
    last_prices: pd.Series
    books: dict[str, pd.DataFrame] = field(default_factory=dict)

    def to_json(self) -> bytes:
        books = {}
        for name, frame in sorted(self.books.items()):
            rows = []
            for r in frame[list(_OPEN)].itertuples(index=False):
                rows.append([str(r.symbol), float(r.side), f"{pd.Timestamp(r.entry_date):%Y-%m-%d}", _float(r.entry_price), _float(r.entry_weight),
                             _float(r.max_abs_weight), int(r.held_sessions), r.regime_label, r.soft_target_class, r.vol_bucket, _float(r.entry_alpha)])
            books[name] = rows
        prices = {str(k): float(v) for k, v in self.last_prices.items() if pd.notna(v)}
        return json.dumps({"version": TRADE_STATE_VERSION, "date": f"{self.date:%Y-%m-%d}", "symbols": list(self.symbols), "last_prices": prices,
                           "columns": list(_OPEN), "books": books}, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "TradeState":
        raw = json.loads(data)
        if raw.get("version") != TRADE_STATE_VERSION or raw.get("columns") != list(_OPEN):
            raise ValueError(f"trade state version {raw.get('version')!r} is not {TRADE_STATE_VERSION}")
        out = cls(pd.Timestamp(raw["date"]), [str(s) for s in raw["symbols"]], pd.Series(raw["last_prices"], dtype="float64"))
        for name, rows in raw["books"].items():
            frame = _empty_open()
            if rows:
                columns = list(zip(*rows, strict=True))
                frame = pd.DataFrame({
                    "symbol": pd.Series(columns[0], dtype="str"),
                    "side": np.asarray(columns[1], dtype="float64"),
                    "entry_date": pd.DatetimeIndex(columns[2]).astype("datetime64[ns]"),
                    **{c: np.asarray([np.nan if v is None else v for v in columns[k]], dtype="float64") for k, c in ((3, "entry_price"), (4, "entry_weight"), (5, "max_abs_weight"))},
                    "held_sessions": np.asarray(columns[6], dtype="int64"),
                    **{c: np.asarray(columns[k], dtype=object) for k, c in ((7, "regime_label"), (8, "soft_target_class"), (9, "vol_bucket"), (10, "entry_alpha"))},
                })
            out.books[name] = frame
        return out


def stored_state(storage: StorageResource, first_day: pd.Timestamp, names: list[str]) -> TradeState | None:
    """The state stored at the latest close before ``first_day`` if it has every book of ``names`` (else None: replay)."""
    state = carried_state.load_latest_before(storage, ASSET, first_day, TradeState.from_json)
    return state if state is not None and set(names) <= set(state.books) else None


@dataclass
class TradeInputs:
    """What one ``closed_trades`` run reads: panels from its window start, and the state it continues (None: from day one)."""

    returns: pd.DataFrame
    prices: pd.DataFrame
    positions: pd.DataFrame
    classes: pd.DataFrame | None
    regimes: pd.Series
    state: TradeState | None
    sessions: pd.DatetimeIndex  # the sessions whose weights are walked (all of history, or the range)


def load(storage: StorageResource, dates: list[pd.Timestamp], names: list[str]) -> TradeInputs:
    """A lookback window after a stored state at the session before ``dates[0]``, else the whole history."""
    first, end = dates[0], dates[-1]
    state = stored_state(storage, first, names)
    if state is not None:
        panels = history.market_panels(storage, history.lookback_start(first, trade_context.VOLATILITY_WINDOW + history.LOOKBACK_SLACK), end)
        returns = panels["returns"]
        returns = returns.reindex(columns=pd.Index(sorted(set(returns.columns) | set(state.symbols))))
        before = returns.index[returns.index < first]
        if len(before) >= trade_context.VOLATILITY_WINDOW - 1 and before[-1] == state.date and (returns.index >= first).any():
            return TradeInputs(
                returns=returns,
                prices=panels["prices"].reindex_like(returns),
                positions=history.read(storage, "target_portfolios", first, end),
                classes=book_inputs.soft_target_class_panel(storage, first, end),
                regimes=book_inputs.regime_labels(storage, end, first),
                state=state,
                sessions=returns.index[returns.index >= first],
            )
        _log.info("closed_trades: stored state of %s is not the session before %s; replaying from the first day", state.date.date(), first.date())
    panels = history.market_panels(storage, None, end)
    returns = panels["returns"]
    return TradeInputs(returns, panels["prices"].reindex_like(returns), history.read(storage, "target_portfolios", None, end),
                       book_inputs.soft_target_class_panel(storage, None, end), book_inputs.regime_labels(storage, end), None, returns.index)


def closed_and_open(inputs: TradeInputs, books: dict[str, BookConfig], sectors: pd.Series) -> tuple[pd.DataFrame, TradeState]:
    """Every book's trades closed on ``inputs.sessions`` (with entry context) and the state at their last close."""
    returns, state = inputs.returns, inputs.state
    last_prices = None if state is None else state.last_prices
    walked = {}
    for name in books:
        mine = inputs.positions[inputs.positions["book"] == name]
        weights = book_inputs.wide_weights(mine, name, inputs.sessions, returns.columns)
        carried = None if state is None else state.books[name]
        closed, still_open = trades.round_trips_with_open(weights, inputs.prices, carried, last_prices)
        walked[name] = (mine, carried, closed, still_open)

    # the volatility buckets of the sessions on which a walked trade was opened (not carried ones)
    entries = [f["entry_date"] for _, _, closed, still_open in walked.values() for f in (closed, still_open)]
    needed = pd.DatetimeIndex(sorted(set(pd.concat(entries)))) if entries else pd.DatetimeIndex([])
    needed = needed[needed.isin(inputs.sessions)]
    buckets = trade_context.volatility_buckets(returns, dates=needed)

    parts, new = [], TradeState(inputs.sessions[-1], [str(c) for c in returns.columns], _last_prices(inputs, last_prices))
    for name, book in books.items():
        mine, carried, closed, still_open = walked[name]
        alpha = to_wide(mine, "alpha") if len(mine) else None
        closed_ctx = trade_context.entry_context(closed, inputs.regimes, inputs.classes, sectors, buckets, alpha, _known(closed, carried))
        parts.append(closed_ctx.assign(book=name, config_id=book.config_id(), pattern_key=book.pattern_key))
        values = trade_context.context_values(still_open, inputs.regimes, inputs.classes, buckets, alpha, _known(still_open, carried))
        new.books[name] = still_open.assign(**values)[list(_OPEN)]
    return pd.concat(parts, ignore_index=True), new


def _known(found: pd.DataFrame, carried: pd.DataFrame | None) -> dict[str, np.ndarray] | None:
    """The recorded context of the trades of ``found`` that were carried in (same symbol and entry date)."""
    if carried is None or not len(carried) or not len(found):
        return None
    keyed = carried.set_index(["symbol", "entry_date"])
    at = keyed.index.get_indexer(pd.MultiIndex.from_arrays([found["symbol"].astype(str), pd.DatetimeIndex(found["entry_date"])]))
    mask = at >= 0
    out: dict[str, np.ndarray] = {"mask": mask}
    for column in trade_context.CONTEXT_COLUMNS:
        values = np.full(len(found), None, dtype=object)
        values[mask] = keyed[column].to_numpy(dtype=object)[at[mask]]
        out[column] = values
    return out


def _last_prices(inputs: TradeInputs, carried: pd.Series | None) -> pd.Series:
    """The last known price of every symbol at the last session (forward fill over the read prices, then the carried ones)."""
    prices = inputs.prices[inputs.prices.index <= inputs.sessions[-1]]
    last = prices.ffill().iloc[-1] if len(prices) else pd.Series(dtype="float64")
    if carried is not None:
        last = last.fillna(carried.reindex(last.index))
        last = pd.concat([last, carried[~carried.index.isin(last.index)]])
    return last.dropna().sort_index()


def save(storage: StorageResource, dates: list[pd.Timestamp], state: TradeState) -> None:
    carried_state.save(storage, ASSET, dates, state.date, state.to_json())
