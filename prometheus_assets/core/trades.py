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

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

__all__ = ["TRADE_COLUMNS", "round_trips"]

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
    index = pd.DatetimeIndex(weights.index)
    if not index.is_monotonic_increasing:
        raise ValueError("weights must be indexed by sorted dates")
    if weights.empty:
        return _empty_trades(index)

    # Last known close on each weight session (prices may have extra dates / symbols).
    px_source = prices.sort_index()
    px = (
        px_source.reindex(px_source.index.union(index))
        .ffill()
        .reindex(index=index, columns=weights.columns)
        .to_numpy(dtype="float64")
    )
    w = weights.fillna(0.0).to_numpy(dtype="float64")
    n_days, n_symbols = w.shape

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
    if len(closed) == 0:
        return _empty_trades(index)
    sym = sym_of_change[closed]
    entry = day_of_change[closed]
    exit_ = day_of_change[closed + 1]

    # Max |weight| on [entry, exit): one reduceat over the flat |weights| cut at every change
    # point. Segments that start at a closed trade end at its exit (same symbol), so they never
    # run into another symbol.
    flat_abs = np.abs(w.T).ravel()
    starts = sym_of_change * n_days + day_of_change
    seg_max = np.maximum.reduceat(flat_abs, starts)[closed]

    side_sign = sign[sym, entry]
    entry_price = px[entry, sym]
    exit_price = px[exit_, sym]
    with np.errstate(divide="ignore", invalid="ignore"):
        trade_return = side_sign * (exit_price / entry_price - 1.0)

    out = pd.DataFrame(
        {
            "symbol": pd.Series(np.asarray(weights.columns)[sym], dtype="str"),
            "side": pd.Series(np.where(side_sign > 0, "long", "short"), dtype="str"),
            "entry_date": index[entry],
            "exit_date": index[exit_],
            "entry_price": entry_price,
            "exit_price": exit_price,
            "return": trade_return,
            "holding_sessions": (exit_ - entry).astype("int64"),
            "entry_weight": w[entry, sym],
            "max_abs_weight": seg_max,
        }
    )
    return out.reset_index(drop=True)
