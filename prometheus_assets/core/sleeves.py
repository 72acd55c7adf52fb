"""Glue between a book's positions and the simulator: target frames and holdings.

``target_portfolios`` stores, per (date, book, symbol), the weight before and after trading. The
simulator (:func:`prometheus_assets.core.backtest.simulate`) wants a wide frame of targets on
rebalance days only; ``sleeve_positions`` wants shares and values per day. Both are derived here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_assets.core.evaluation import forward_returns

POSITION_COLUMNS: list[str] = ["date", "book", "symbol", "weight", "shares", "price", "market_value", "book_equity"]


def targets_wide(positions: pd.DataFrame, index: pd.Index, columns: pd.Index) -> pd.DataFrame:
    """Target weights on rebalance days (0 for names not held), all-NaN rows on other days."""
    reb = positions[positions["rebalance"]]
    days = pd.DatetimeIndex(reb["date"].unique())
    wide = reb.pivot_table(index="date", columns="symbol", values="target_weight", aggfunc="sum")
    wide = wide.reindex(index=days, columns=columns).fillna(0.0)
    return wide.reindex(index=index)


def holdings(positions: pd.DataFrame, equity: pd.Series, prices: pd.DataFrame, book: str) -> pd.DataFrame:
    """Per day and held symbol: weight, shares, price, market value and the book's equity.

    ``positions`` are one book's ``target_portfolios`` rows (``target_weight`` = weight at the
    close after trading), ``equity`` its simulated equity (starting at 1.0).
    """
    rows = positions[positions["target_weight"] != 0]
    eq = equity.reindex(pd.DatetimeIndex(rows["date"])).to_numpy(dtype=float)
    i = prices.index.get_indexer(pd.DatetimeIndex(rows["date"]))
    j = prices.columns.get_indexer(pd.Index(rows["symbol"]))
    valued = prices.ffill().to_numpy(dtype=float)
    px = np.where((i >= 0) & (j >= 0), valued[i, j], np.nan)
    weight = rows["target_weight"].to_numpy(dtype=float)
    value = weight * eq
    return pd.DataFrame({
        "date": rows["date"].to_numpy(),
        "book": book,
        "symbol": rows["symbol"].to_numpy(dtype=object),
        "weight": weight,
        "shares": value / px,
        "price": px,
        "market_value": value,
        "book_equity": eq,
    })[POSITION_COLUMNS]


def alpha_outcomes(positions: pd.DataFrame, returns: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Alpha of each name bought or held at a rebalance against the return it realised over ``horizon`` sessions.

    Rows whose forward window is not over yet are left out. Columns ``date, symbol, alpha, realised``.
    """
    picks = positions[positions["rebalance"] & (positions["target_weight"] != 0)][["date", "symbol", "alpha"]]
    fwd = forward_returns(returns, horizon).rename(columns={"forward_return": "realised"})
    out = picks.merge(fwd, on=["date", "symbol"], how="inner")
    return out.dropna(subset=["alpha", "realised"]).reset_index(drop=True)
