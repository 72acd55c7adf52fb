"""closed_trades' carried state: the JSON round trip is exact, so a resumed run sees the bits it stored."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prometheus_assets.assets.trade_inputs import TradeState
from prometheus_assets.core import trades


def test_trade_state_json_round_trip_is_exact():
    dates = pd.bdate_range("2023-03-01", periods=5).as_unit("ns")
    weights = pd.DataFrame({"A": [0.1, 0.3, 0.2, 0.2, 0.2], "B": [0.0, -1 / 3, -0.2, -0.2, -0.1], "C": 0.0}, index=dates)
    prices = pd.DataFrame({"A": [10.0, 11.1, np.nan, 13.0, 13.5], "B": [np.nan, np.nan, 5.0, 5.1, 5.2], "C": 1.0}, index=dates)
    _, still_open = trades.round_trips_with_open(weights, prices)
    still_open = still_open.assign(regime_label=np.array(["CARRY", None], dtype=object), soft_target_class=np.array([None, "STABLE"], dtype=object),
                                   vol_bucket=np.array(["low", None], dtype=object), entry_alpha=np.array([0.1 + 0.2, None], dtype=object))
    state = TradeState(dates[-1], ["A", "B", "C"], pd.Series({"A": 13.5, "B": 5.2, "C": 1.0 / 3}), {"X": still_open, "Y": still_open.iloc[0:0]})
    data = state.to_json()
    back = TradeState.from_json(data)
    assert back.to_json() == data
    assert back.date == state.date and back.symbols == state.symbols
    pd.testing.assert_series_equal(back.last_prices, state.last_prices, check_exact=True)
    got = back.books["X"]
    for column in trades.OPEN_COLUMNS:
        pd.testing.assert_series_equal(got[column], still_open[column], check_exact=True, check_dtype=True)
    assert got["entry_alpha"].tolist()[0] == 0.1 + 0.2 and got["entry_alpha"].tolist()[1] is None
    assert len(back.books["Y"]) == 0 and list(back.books["Y"].columns) == list(got.columns)


def test_a_state_from_before_the_symmetric_volatility_buckets_is_not_continued():
    """Version-1 states carried open trades whose volatility buckets used rank / n; the current
    context uses (rank − ½) / n (7aae210). Continued, those trades closed with old-formula buckets
    where a replay gives the new ones, so such a state must be refused (the run then replays)."""
    import json

    import pytest

    state = TradeState(pd.Timestamp("2022-12-27"), ["A"], pd.Series({"A": 10.0}))
    raw = json.loads(state.to_json())
    assert TradeState.from_json(json.dumps(raw).encode()).date == state.date
    with pytest.raises(ValueError, match="version"):
        TradeState.from_json(json.dumps({**raw, "version": 1}).encode())
