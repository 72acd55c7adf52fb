"""Daily returns from validated daily bars."""

from __future__ import annotations

import numpy as np
import pandas as pd

RETURN_COLUMNS: list[str] = ["date", "symbol", "return", "log_return", "sessions_elapsed"]


def daily_returns(prices: pd.DataFrame, sessions: pd.DatetimeIndex, keep_from: pd.Timestamp | None = None) -> pd.DataFrame:
    """Simple and log returns per (date, symbol) from a window of long ``prices``.

    A return compares one kind of price on both bars: ``adj_close`` when both bars have it, else
    ``close``. (Falling back bar by bar instead would divide today's close by yesterday's adjusted
    close when a vendor leaves the newest bar unadjusted, a return that is only the adjustment.)
    A symbol's return on session t is taken against its previous bar inside the window;
    ``sessions_elapsed`` counts the sessions between the two bars (1 normally, more after a
    missing bar). The first bar of each symbol in the window has no return and yields no row.
    ``keep_from`` drops rows dated before it (the lookback part of a window loaded only to
    compute the first returns).

    ``sessions`` are the exchange sessions covering the window, used to count sessions elapsed.
    """
    if prices.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(RETURN_COLUMNS, ["datetime64[ns]", object, float, float, "int64"])})
    p = prices[["date", "symbol", "close"]].copy()
    p["adj"] = prices["adj_close"] if "adj_close" in prices else np.nan
    p = p.sort_values(["symbol", "date"], kind="stable")
    previous = p.groupby("symbol", sort=False)[["date", "close", "adj"]].shift(1)
    adjusted = p["adj"].notna() & previous["adj"].notna()
    ratio = np.where(adjusted, p["adj"] / previous["adj"], p["close"] / previous["close"])
    pos = pd.Series(np.arange(len(sessions)), index=pd.DatetimeIndex(sessions))
    out = p[["date", "symbol"]].assign(
        **{
            "return": ratio - 1.0,
            "log_return": np.log(ratio),
            "sessions_elapsed": (p["date"].map(pos) - previous["date"].map(pos)),
        }
    )
    out = out[previous["close"].notna().to_numpy()]
    if keep_from is not None:
        out = out[out["date"] >= pd.Timestamp(keep_from)]
    out = out.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    out["sessions_elapsed"] = out["sessions_elapsed"].astype("int64")
    return out[RETURN_COLUMNS]
