"""The execution service: turn every book's rebalance into one set of firm-level orders.

Each book (sleeve) decides its own target weights, as fractions of *its* equity. The firm does
not send one order per book: it nets them. A book that sells 2% of its equity in a name while
another buys 3% of its equity in the same name results in one order, for the difference, at
firm level. The volume that cancels out ("crosses") is recorded, so the saving is visible: on
each order (its ``crossed``), and in total by :func:`crossed_volume`, which also counts a symbol
whose trades cancel out entirely (it sends no order, so it has no row).

Book ``b`` runs ``capital_b`` of the firm's capital (a fraction, e.g. 0.25). The firm-level
trade of symbol i on date d, as a fraction of firm capital, is::

    weight_change(d, i) = Σ_b capital_b · (target_w(b, d, i) - current_w(b, d, i))

Pure pandas: no Dagster, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

#: Columns of :func:`net_orders`' result.
ORDER_COLUMNS: list[str] = [
    "date",
    "symbol",
    "side",
    "weight_change",
    "quantity",
    "price",
    "gross_book_trades",
    "crossed",
    "books",
    "attribution",
]


def _empty_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.Series(dtype="datetime64[ns]"),
            "symbol": pd.Series(dtype="str"),
            "side": pd.Series(dtype="str"),
            "weight_change": pd.Series(dtype="float64"),
            "quantity": pd.Series(dtype="float64"),
            "price": pd.Series(dtype="float64"),
            "gross_book_trades": pd.Series(dtype="float64"),
            "crossed": pd.Series(dtype="float64"),
            "books": pd.Series(dtype="str"),
            "attribution": pd.Series(dtype="str"),
        }
    )[ORDER_COLUMNS]


def _book_changes(books: pd.DataFrame, capital: Mapping[str, float]) -> pd.DataFrame:
    """Each (date, book, symbol)'s firm-level change ``capital_b · Δw`` and its absolute value (validated input)."""
    required = {"date", "book", "symbol", "current_weight", "target_weight"}
    missing_columns = required - set(books.columns)
    if missing_columns:
        raise ValueError(f"books lacks columns {sorted(missing_columns)}")
    missing = sorted({str(b) for b in books["book"].unique()} - {str(b) for b in capital})
    if missing:
        raise ValueError(f"no capital for books: {', '.join(missing)}")
    trades = pd.DataFrame(
        {
            "date": pd.to_datetime(books["date"]).astype("datetime64[ns]").to_numpy(),
            "book": books["book"].astype("str").to_numpy(dtype=object),
            "symbol": books["symbol"].astype("str").to_numpy(dtype=object),
        }
    )
    duplicated = trades.duplicated(["date", "book", "symbol"])
    if duplicated.any():
        raise ValueError(f"books has {int(duplicated.sum())} duplicate (date, book, symbol) rows")
    book_capital = trades["book"].map({str(b): float(c) for b, c in capital.items()}).to_numpy(dtype="float64")
    delta_w = (
        pd.to_numeric(books["target_weight"]).astype("float64").fillna(0.0).to_numpy()
        - pd.to_numeric(books["current_weight"]).astype("float64").fillna(0.0).to_numpy()
    )
    trades["change"] = book_capital * delta_w
    trades["abs_change"] = np.abs(trades["change"].to_numpy())
    return trades


def crossed_volume(books: pd.DataFrame, capital: Mapping[str, float]) -> float:
    """The firm-level weight the books' trades cancel internally, over every (date, symbol).

    ``Σ (gross_book_trades - |weight_change|)`` of :func:`net_orders`, *including* the (date,
    symbol) pairs whose trades cancel out entirely: those send no order, so they have no row in
    the order list and its ``crossed`` column alone undercounts the saving.
    """
    if books.empty:
        return 0.0
    trades = _book_changes(books, capital)
    grouped = trades.groupby(["date", "symbol"], sort=True)
    net, gross = grouped["change"].sum().abs(), grouped["abs_change"].sum()
    return float(np.maximum(gross - net, 0.0).sum())


def net_orders(
    books: pd.DataFrame,
    capital: dict[str, float],
    prices: pd.DataFrame | None = None,
    notional: float = 10_000_000.0,
    tolerance: float = 1e-12,
) -> pd.DataFrame:
    """Net the books' trades into one firm-level order per (date, symbol).

    ``books`` is long with columns ``date, book, symbol, current_weight, target_weight``: for each
    book, its weights (fractions of the book's equity) held at the close before trading (after
    the prices drifted them) and the weights it wants after trading. A missing (NaN) weight
    counts as 0. ``capital`` maps every book to its share of firm capital; a book absent from it
    raises ``ValueError`` naming it. ``prices`` is wide (dates × symbols) trade prices, used only
    to turn weights into share quantities; ``notional`` is the firm's capital in currency.

    One row per (date, symbol) whose net change exceeds ``tolerance`` in absolute value, sorted
    by date then symbol, with columns :data:`ORDER_COLUMNS`:

    - ``side``: ``"BUY"`` if the net change is positive, else ``"SELL"``;
    - ``weight_change``: signed net change as a fraction of firm capital,
      ``Σ_b capital_b · (target_w - current_w)``;
    - ``quantity``: shares to trade, ``|weight_change| · notional / price`` (NaN without a positive
      price for that date and symbol); ``price``: the price used (NaN if none);
    - ``gross_book_trades``: what the books would trade on their own, ``Σ_b capital_b · |Δw_b|``;
    - ``crossed``: ``gross_book_trades - |weight_change|``, the volume netted internally between
      books (0 when all books trade the same way; a rounding-level negative is clipped to 0);
    - ``books``: comma-separated, sorted names of the books whose weight changes;
    - ``attribution``: a JSON object ``book -> capital_b · Δw_b`` for those books (keys sorted,
      floats written with full ``repr`` precision); its values add up to ``weight_change``.

    A (date, book, symbol) may appear only once.
    """
    if books.empty:
        _book_changes(books, capital)  # (validates the columns and capital)
        return _empty_orders()
    trades = _book_changes(books, capital)

    grouped = trades.groupby(["date", "symbol"], sort=True)
    orders = grouped.agg(weight_change=("change", "sum"), gross_book_trades=("abs_change", "sum")).reset_index()
    orders = orders[orders["weight_change"].abs() > tolerance].reset_index(drop=True)
    if orders.empty:
        return _empty_orders()

    # Books that traded each ordered (date, symbol), sorted by book, to build `books` and `attribution`.
    traded = trades[trades["change"] != 0].merge(orders[["date", "symbol"]], on=["date", "symbol"], how="inner")
    traded = traded.sort_values(["date", "symbol", "book"], kind="stable").reset_index(drop=True)
    starts = np.flatnonzero(
        np.r_[True, (traded["date"].to_numpy()[1:] != traded["date"].to_numpy()[:-1]) | (traded["symbol"].to_numpy()[1:] != traded["symbol"].to_numpy()[:-1])]
    )
    ends = np.r_[starts[1:], len(traded)]
    book_names = traded["book"].tolist()
    changes = traded["change"].tolist()
    # Every order has at least one book with a non-zero change, so groups line up with `orders`.
    if len(starts) != len(orders) or not (
        (traded["date"].to_numpy()[starts] == orders["date"].to_numpy()).all()
        and (traded["symbol"].to_numpy()[starts] == orders["symbol"].to_numpy()).all()
    ):
        raise AssertionError("internal error: traded books do not line up with the orders")
    orders["books"] = [",".join(book_names[a:b]) for a, b in zip(starts, ends)]
    orders["attribution"] = [json.dumps(dict(zip(book_names[a:b], changes[a:b])), sort_keys=True) for a, b in zip(starts, ends)]

    orders["side"] = np.where(orders["weight_change"].to_numpy() > 0, "BUY", "SELL")
    orders["price"] = _lookup_prices(prices, orders["date"], orders["symbol"])
    price = orders["price"].to_numpy()
    valid = np.isfinite(price) & (price > 0)
    orders["quantity"] = np.where(valid, orders["weight_change"].abs().to_numpy() * notional / np.where(valid, price, 1.0), np.nan)
    orders["crossed"] = np.maximum(orders["gross_book_trades"].to_numpy() - orders["weight_change"].abs().to_numpy(), 0.0)
    orders["symbol"] = orders["symbol"].astype("str")
    orders["books"] = orders["books"].astype("str")
    orders["attribution"] = orders["attribution"].astype("str")
    orders["side"] = orders["side"].astype("str")
    return orders[ORDER_COLUMNS]


def _lookup_prices(prices: pd.DataFrame | None, dates: pd.Series, symbols: pd.Series) -> np.ndarray:
    """``prices[date, symbol]`` for each pair (NaN when the date or the symbol is absent)."""
    out = np.full(len(dates), np.nan)
    if prices is None or prices.empty:
        return out
    index = pd.DatetimeIndex(prices.index).astype("datetime64[ns]")
    columns = pd.Index([str(c) for c in prices.columns], dtype=object)
    rows = index.get_indexer(pd.DatetimeIndex(dates))
    cols = columns.get_indexer(pd.Index(symbols.astype(object), dtype=object))
    found = (rows >= 0) & (cols >= 0)
    values = prices.to_numpy(dtype="float64", na_value=np.nan)
    out[found] = values[rows[found], cols[found]]
    return out
