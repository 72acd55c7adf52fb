"""assets.book_inputs.load_context: the panels the books and the edge layer read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_assets.assets import book_inputs
from prometheus_assets.core.edge import context as scope_context
from prometheus_assets.resources import StorageResource


def test_dollar_volumes_are_the_traded_close_times_volume_and_drive_the_size_terciles(tmp_path):
    """Regression: the edge layer's size and liquidity terciles multiplied the adjusted close by the volume.
    Back-adjusted for a later 10:1 split, the largest name (A) looked the smallest until its split."""
    storage = StorageResource(home=str(tmp_path))
    store = storage.store()
    dates = pd.bdate_range("2021-01-04", periods=80)
    rng = np.random.default_rng(0)
    rows = []
    for symbol, close, volume in (("A", 100.0, 50_000.0), ("B", 40.0, 50_000.0), ("C", 20.0, 50_000.0)):
        path = close * np.cumprod(1 + rng.normal(0, 0.01, len(dates)))
        adjusted = path / 10.0 if symbol == "A" else path
        rows.append(pd.DataFrame({"date": dates, "symbol": symbol, "close": path, "adj_close": adjusted, "volume": volume}))
    bars = pd.concat(rows, ignore_index=True)
    store.write_dated("prices_daily", bars, dates)
    returns = bars.assign(**{"return": bars.groupby("symbol")["adj_close"].pct_change()})[["date", "symbol", "return"]]
    store.write_dated("returns_daily", returns, dates)
    store.write_dated("assessment_scores", pd.DataFrame({"as_of_date": pd.Series(dtype="datetime64[ns]"), "symbol": pd.Series(dtype=str),
                      "horizon": pd.Series(dtype="int64"), "kind": pd.Series(dtype=str), "score": pd.Series(dtype=float)}), dates, date_column="as_of_date")
    store.write_dated("strategy_signals", pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "symbol": pd.Series(dtype=str),
                      "strategy": pd.Series(dtype=str), "alpha_score": pd.Series(dtype=float), "confidence": pd.Series(dtype=float),
                      "horizon_days": pd.Series(dtype="int64")}), dates)
    instruments = pd.DataFrame({"symbol": ["A", "B", "C"], "sector": ["X", "Y", "Z"], "asset_class": "equity"})

    ctx = book_inputs.load_context(storage, {}, instruments, dates[-1])
    traded = bars.pivot(index="date", columns="symbol", values="close") * 50_000.0
    np.testing.assert_allclose(ctx.dollar_volumes.to_numpy(), traded.to_numpy(), rtol=0, atol=0)
    panels = scope_context.scope_panels(ctx.returns, ctx.prices, ctx.dollar_volumes, instruments, pd.Series(dtype=object),
                                        pd.Series(dtype=object), None)
    size = pd.DataFrame(panels.per_symbol["size_bucket"], index=panels.dates, columns=panels.symbols)
    assert size.loc[dates[-1]].to_dict() == {"A": "large", "B": "mid", "C": "small"}
