"""Round trips: turning a book's daily weights into the list of its closed trades.

What a trade is
---------------
A book holds, at the close of every session, a weight per symbol (positive = long, negative =
short, 0 = flat). For one symbol, a *trade* (round trip) is a maximal run of sessions during
which the weight keeps the same nonzero sign:

- it **opens** at the close of the first session where the weight becomes nonzero — from 0, or
  right after a sign flip;
- it **closes** at the close of the first session where the weight becomes 0 or changes sign. A
  flip therefore closes one trade and opens the opposite one at the same close;
- resizing (the weight changes but keeps its sign) does **not** split a trade.

Trades still open on the last session are *not* reported: their exit is unknown at that date, so
the output is point-in-time (adding later sessions can only append trades, never change one).

Prices are closes; a price missing at an entry or exit is replaced by the last known price of
that symbol (forward fill). A trade whose entry or exit has no known price at all gets a NaN
return. A NaN weight means 0 (flat). "Nonzero" is exact (no tolerance).

Continuing from a previous close
--------------------------------
:func:`round_trips_with_open` also returns the trades still open on the last session (their
entry, entry price and weight, the largest ``|weight|`` so far and the sessions held so far). A
later call over the following sessions, given those open trades and the last known price of each
symbol at that close, returns exactly the trades (and open trades) one call over the whole
history returns for those sessions: every quantity is either copied from the carried trade or a
max / count over sessions (no rounding), so the split is invisible in the bits.

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

__all__ = ["OPEN_COLUMNS", "TRADE_COLUMNS", "empty_open", "round_trips", "round_trips_with_open"]

#: Columns of :func:`round_trips`, in order.
TRADE_COLUMNS: Final[tuple[str, ...]] = (
    "symbol",
    "side",
    "entry_date",
    "exit_date",
    "entry_price",
    "exit_price",
    "return",
    "holding_sessions",
    "entry_weight",
    "max_abs_weight",
)


#: Columns of the open trades of :func:`round_trips_with_open`, in order (``side`` is +1 / -1).
OPEN_COLUMNS: Final[tuple[str, ...]] = (
    "symbol",
    "side",
    "entry_date",
    "entry_price",
    "entry_weight",
    "max_abs_weight",
    "held_sessions",
)


def _empty_trades(index: pd.DatetimeIndex) -> pd.DataFrame:
    date_dtype = index.dtype if isinstance(index, pd.DatetimeIndex) else "datetime64[ns]"
    return pd.DataFrame(
        {
            "symbol": pd.Series(dtype="str"),
            "side": pd.Series(dtype="str"),
            "entry_date": pd.Series(dtype=date_dtype),
            "exit_date": pd.Series(dtype=date_dtype),
            "entry_price": pd.Series(dtype="float64"),
            "exit_price": pd.Series(dtype="float64"),
            "return": pd.Series(dtype="float64"),
            "holding_sessions": pd.Series(dtype="int64"),
            "entry_weight": pd.Series(dtype="float64"),
            "max_abs_weight": pd.Series(dtype="float64"),
        }
    )


def round_trips(weights: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """All closed round trips of one book (see the module docstring for the trade definition).

    Args:
        weights: wide end-of-day weights (sorted sessions × symbols), one row per session. NaN
            means 0.
        prices: wide closes with the same sessions and symbols, or a superset of them. Missing
            prices are forward-filled along the price frame's own (sorted) dates.

    Returns:
        One row per closed trade, ordered by symbol (``weights``' column order) then
        ``entry_date``, with columns
        :data:`TRADE_COLUMNS`:

        - ``side``: ``"long"`` or ``"short"``;
        - ``entry_date`` / ``exit_date``: sessions whose close opened / closed the trade;
        - ``entry_price`` / ``exit_price``: closes on those sessions (last known if missing);
        - ``return``: ``exit/entry - 1`` for a long, ``-(exit/entry - 1)`` for a short (the
          return of the position per unit of entry notional, ignoring resizing);
        - ``holding_sessions``: exit position minus entry position in ``weights``' index
          (a trade opened at one close and closed at the next has 1);
        - ``entry_weight``: the weight set at the entry close;
        - ``max_abs_weight``: the largest ``|weight|`` held from the entry close up to the
          session before the exit (at the exit close the position is already gone or flipped).
    """
    return round_trips_with_open(weights, prices)[0]


def empty_open(date_dtype: object = "datetime64[ns]") -> pd.DataFrame:
    """No open trades: an empty frame with :data:`OPEN_COLUMNS` and their dtypes."""
    return pd.DataFrame(
        {
            "symbol": pd.Series(dtype="str"),
            "side": pd.Series(dtype="float64"),
            "entry_date": pd.Series(dtype=date_dtype),
            "entry_price": pd.Series(dtype="float64"),
            "entry_weight": pd.Series(dtype="float64"),
            "max_abs_weight": pd.Series(dtype="float64"),
            "held_sessions": pd.Series(dtype="int64"),
        }
    )


def round_trips_with_open(
    weights: pd.DataFrame,
    prices: pd.DataFrame,
    carried: pd.DataFrame | None = None,
    last_prices: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`round_trips`, continued from the trades open at the previous close, and the trades open at the end.

    Args:
        weights / prices: as in :func:`round_trips`.
        carried: the trades open at the close before ``weights``' first session (the second
            result of a call over the sessions up to it, columns :data:`OPEN_COLUMNS`); None:
            nothing was open (the first session of history).
        last_prices: the last known price of each symbol at that close; a price missing in
            ``prices`` up to a session (after forward fill) is taken from it.

    Returns:
        ``(closed, open)``: the trades closed on ``weights``' sessions (as :func:`round_trips`;
        a carried trade keeps its entry date, price and weight, and its holding sessions and
        max ``|weight|`` count from its true entry), and the trades open at the last session
        (:data:`OPEN_COLUMNS`, ``side`` +1 / -1, ``max_abs_weight`` up to and including the
        last session, ``held_sessions`` = last position minus entry position), by symbol.
    """
    index = pd.DatetimeIndex(weights.index)
    if not index.is_monotonic_increasing:
        raise ValueError("weights must be indexed by sorted dates")
    carried = carried if carried is not None and len(carried) else None
    if weights.empty:
        return _empty_trades(index), (carried.reset_index(drop=True) if carried is not None else empty_open(index.dtype))

    # Last known close on each weight session (prices may have extra dates / symbols).
    px_source = prices.sort_index()
    px_frame = px_source.reindex(px_source.index.union(index)).ffill().reindex(index=index, columns=weights.columns)
    if last_prices is not None:
        px_frame = px_frame.fillna(last_prices.reindex(weights.columns).astype("float64"))
    px = px_frame.to_numpy(dtype="float64")
    w = weights.fillna(0.0).to_numpy(dtype="float64")
    n_symbols = w.shape[1]

    # A carried trade enters as a synthetic first row: weight side × max |weight| so far (its
    # sign opens the trade, its size seeds the running max); entry facts come from the carry.
    offset = 0
    carry_at: dict[int, int] = {}  # column -> row of ``carried``
    if carried is not None:
        columns = {str(c): j for j, c in enumerate(weights.columns)}
        missing = sorted(set(carried["symbol"].astype(str)) - set(columns))
        if missing:
            raise ValueError(f"carried trades of symbols missing from the weights: {missing}")
        first = np.zeros((1, n_symbols))
        for r, (symbol, side, peak) in enumerate(zip(carried["symbol"].astype(str), carried["side"], carried["max_abs_weight"], strict=True)):
            if side not in (1.0, -1.0) or not peak > 0:
                raise ValueError(f"carried trade of {symbol}: side must be +1/-1 and max_abs_weight > 0")
            first[0, columns[symbol]] = side * peak
            carry_at[columns[symbol]] = r
        w = np.vstack([first, w])
        px = np.vstack([np.full((1, n_symbols), np.nan), px])
        offset = 1
    n_days = w.shape[0]
    dates = index.as_unit("ns").asi8
    if offset:
        dates = np.concatenate([[np.iinfo(np.int64).min], dates])  # never read for carried trades

    # Work symbol by symbol in time order: transpose so a flat (C-order) array is column-major.
    sign = np.sign(w).T  # symbols × days
    previous = np.concatenate([np.zeros((n_symbols, 1)), sign[:, :-1]], axis=1)
    changed = sign != previous  # a trade opens and/or closes at this close
    sym_of_change, day_of_change = np.nonzero(changed)  # sorted by symbol, then day

    # Each change point that opens a position (nonzero sign) is closed by the symbol's next
    # change point; the last change point of a symbol that opens a position stays open.
    opens = sign[sym_of_change, day_of_change] != 0
    has_next = np.zeros(len(sym_of_change), dtype=bool)
    has_next[:-1] = sym_of_change[1:] == sym_of_change[:-1]
    closed = np.flatnonzero(opens & has_next)
    still_open = np.flatnonzero(opens & ~has_next)

    flat_abs = np.abs(w.T).ravel()
    entry_dates, entry_prices, entry_weights, held_before = _entry_facts(sym_of_change, day_of_change, dates, px, w, carried, carry_at)

    if len(closed):
        sym = sym_of_change[closed]
        entry = day_of_change[closed]
        exit_ = day_of_change[closed + 1]
        # Max |weight| on [entry, exit): one reduceat over the flat |weights| cut at every change
        # point. Segments that start at a closed trade end at its exit (same symbol), so they
        # never run into another symbol.
        starts = sym_of_change * n_days + day_of_change
        seg_max = np.maximum.reduceat(flat_abs, starts)[closed]
        side_sign = sign[sym, entry]
        entry_price = entry_prices[closed]
        exit_price = px[exit_, sym]
        with np.errstate(divide="ignore", invalid="ignore"):
            trade_return = side_sign * (exit_price / entry_price - 1.0)
        out = pd.DataFrame(
            {
                "symbol": pd.Series(np.asarray(weights.columns)[sym], dtype="str"),
                "side": pd.Series(np.where(side_sign > 0, "long", "short"), dtype="str"),
                "entry_date": pd.DatetimeIndex(entry_dates[closed]).astype(index.dtype),
                "exit_date": pd.DatetimeIndex(dates[exit_]).astype(index.dtype),
                "entry_price": entry_price,
                "exit_price": exit_price,
                "return": trade_return,
                "holding_sessions": (held_before[closed] + exit_ - entry).astype("int64"),
                "entry_weight": entry_weights[closed],
                "max_abs_weight": seg_max,
            }
        ).reset_index(drop=True)
    else:
        out = _empty_trades(index)

    if len(still_open):
        sym = sym_of_change[still_open]
        entry = day_of_change[still_open]
        peak = np.array([flat_abs[s * n_days + e : (s + 1) * n_days].max() for s, e in zip(sym, entry, strict=True)])
        now_open = pd.DataFrame(
            {
                "symbol": pd.Series(np.asarray(weights.columns)[sym], dtype="str"),
                "side": sign[sym, entry].astype("float64"),
                "entry_date": pd.DatetimeIndex(entry_dates[still_open]).astype(index.dtype),
                "entry_price": entry_prices[still_open],
                "entry_weight": entry_weights[still_open],
                "max_abs_weight": peak,
                "held_sessions": (held_before[still_open] + (n_days - 1) - entry).astype("int64"),
            }
        ).reset_index(drop=True)
    else:
        now_open = empty_open(index.dtype)
    return out, now_open


def _entry_facts(
    sym_of_change: np.ndarray, day_of_change: np.ndarray, dates: np.ndarray, px: np.ndarray, w: np.ndarray,
    carried: pd.DataFrame | None, carry_at: dict[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Entry date (ns), price, weight and sessions held before the first row, per change point."""
    entry_dates = dates[day_of_change].copy()
    entry_prices = px[day_of_change, sym_of_change].copy()
    entry_weights = w[day_of_change, sym_of_change].copy()
    held_before = np.zeros(len(day_of_change), dtype="int64")
    if carried is not None:
        c_dates = pd.DatetimeIndex(carried["entry_date"]).as_unit("ns").asi8
        c_prices = carried["entry_price"].to_numpy(dtype="float64")
        c_weights = carried["entry_weight"].to_numpy(dtype="float64")
        c_held = carried["held_sessions"].to_numpy(dtype="int64")
        for k in np.flatnonzero(day_of_change == 0):
            r = carry_at.get(int(sym_of_change[k]))
            if r is not None:
                entry_dates[k], entry_prices[k], entry_weights[k], held_before[k] = c_dates[r], c_prices[r], c_weights[r], c_held[r]
    return entry_dates, entry_prices, entry_weights, held_before
