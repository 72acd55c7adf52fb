"""Column contracts shared by sources, validation and assets.

Daily bars travel in *long* format: one row per (date, symbol). ``date`` is a timezone-naive
``datetime64[ns]`` at midnight of the trading session.
"""

from __future__ import annotations

import pandas as pd

#: Every column a daily bar may carry, in canonical order.
BAR_COLUMNS: list[str] = ["date", "symbol", "open", "high", "low", "close", "adj_close", "volume"]
#: The columns without which a bar is meaningless.
REQUIRED_BAR_COLUMNS: list[str] = ["date", "symbol", "close"]
#: Numeric bar columns (prices and volume).
PRICE_COLUMNS: list[str] = ["open", "high", "low", "close", "adj_close"]
#: Provenance columns attached by sources so a bad row can be traced to its file and row.
PROVENANCE_COLUMNS: list[str] = ["source_file", "source_row"]

#: The instrument / issuer registry.
INSTRUMENT_COLUMNS: list[str] = [
    "symbol",
    "issuer_id",
    "name",
    "sector",
    "industry",
    "currency",
    "exchange",
    "asset_class",
]

#: Quarterly fundamentals (only sources that have them).
FUNDAMENTAL_COLUMNS: list[str] = [
    "issuer_id",
    "symbol",
    "period_end",
    "available_date",
    "market_cap",
    "leverage",
    "profitability",
    "book_to_market",
]


def empty_bars() -> pd.DataFrame:
    """An empty bar frame with the canonical columns and dtypes."""
    return normalise_bars(pd.DataFrame({c: [] for c in BAR_COLUMNS}))


def normalise_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Return ``bars`` with every canonical column present, in canonical order, with canonical dtypes.

    Missing optional columns are added as NaN; extra columns (e.g. provenance) are kept after
    the canonical ones. ``date`` becomes ``datetime64[ns]``, ``symbol`` a plain ``object`` string
    column, prices ``float64`` and ``volume`` ``float64`` (NaN where unknown).
    """
    out = bars.copy()
    for col in BAR_COLUMNS:
        if col not in out.columns:
            out[col] = float("nan")
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["symbol"] = out["symbol"].astype(object)
    for col in PRICE_COLUMNS + ["volume"]:
        out[col] = out[col].astype("float64")
    extra = [c for c in out.columns if c not in BAR_COLUMNS]
    return out[BAR_COLUMNS + extra]
