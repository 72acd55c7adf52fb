"""Small, pure reshaping helpers shared by the layers (long ⇄ wide, the equal-weight market)."""

from __future__ import annotations

import pandas as pd


def to_wide(long: pd.DataFrame, value: str, index: str = "date", columns: str = "symbol") -> pd.DataFrame:
    """Pivot a long frame to dates × symbols (NaN where a symbol has no row), sorted both ways."""
    if long.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name=index), dtype="float64")
    wide = long.pivot(index=index, columns=columns, values=value).sort_index()
    wide.index = pd.DatetimeIndex(wide.index).astype("datetime64[ns]")
    wide.columns = [str(c) for c in wide.columns]
    return wide.reindex(sorted(wide.columns), axis=1).astype("float64")


def equal_weight_market(returns: pd.DataFrame) -> pd.Series:
    """The equal-weight market return of the symbols trading each day (a point-in-time index)."""
    return returns.mean(axis=1, skipna=True).rename("market_return")
