"""Range and lookback loads from the Parquet store, shared by the state-space assets.

An asset for partitions [A, B] may read data dated ≤ B only. Trailing windows read their lookback
from earlier partitions of the upstream table (``lookback_start``); walk-forward models read
upstream history from its first day (still ≤ B). The asset declares the upstream as a
dependency, so lineage and staleness are right in the UI.
"""

from __future__ import annotations

import pandas as pd

from prometheus_assets.core import calendar
from prometheus_assets.core.frames import to_wide
from prometheus_assets.resources import StorageResource


#: Calendar sessions a lookback read adds to the rows it needs, for sessions the source has no bars for.
LOOKBACK_SLACK = 21


def lookback_start(first: pd.Timestamp, sessions: int) -> pd.Timestamp:
    """The session ``sessions`` sessions before ``first`` (or the calendar floor)."""
    back = calendar.trading_sessions(calendar.CALENDAR_FLOOR, first)
    return pd.Timestamp(back[max(len(back) - 1 - sessions, 0)])


def shown_from(first: pd.Timestamp, last: pd.Timestamp, sessions: int) -> pd.Timestamp:
    """The first day a run's picture of ``first`` … ``last`` shows: ``first``, or earlier so that at least
    ``sessions`` sessions ending on ``last`` are shown (a daily run's own single day draws nothing useful)."""
    return min(first, lookback_start(last, sessions - 1))


def read(storage: StorageResource, table: str, start: pd.Timestamp | None, end: pd.Timestamp | None, date_column: str = "date",
         columns: list[str] | None = None, on: list[pd.Timestamp] | None = None) -> pd.DataFrame:
    """Rows of ``table`` dated ``start``…``end`` (``None``: unbounded on that side); ``columns``: only these; ``on``: only these days."""
    return storage.store().read(table, start, end, date_column=date_column, columns=columns, on=on)


def market_panels(storage: StorageResource, start: pd.Timestamp | None, end: pd.Timestamp, closes: bool = False) -> dict[str, pd.DataFrame | None]:
    """Wide ``returns``, ``prices`` and (when the source has them) ``volumes`` over ``start``…``end`` (``closes``: see :func:`price_panels`)."""
    return {"returns": to_wide(read(storage, "returns_daily", start, end), "return"), **price_panels(storage, start, end, closes=closes)}


def price_panels(storage: StorageResource, start: pd.Timestamp | None, end: pd.Timestamp, closes: bool = False) -> dict[str, pd.DataFrame | None]:
    """Wide ``prices`` (adjusted close, else close) and ``volumes`` (None without volumes) over ``start``…``end``.

    ``closes``: also the unadjusted ``closes`` (what traded that day: price floors, dollar volumes).
    """
    prices = read(storage, "prices_daily", start, end)
    price = prices["adj_close"].fillna(prices["close"])
    volumes = to_wide(prices, "volume") if prices["volume"].notna().any() else None
    out = {"prices": to_wide(prices.assign(price=price), "price"), "volumes": volumes}
    return {**out, "closes": to_wide(prices, "close")} if closes else out
