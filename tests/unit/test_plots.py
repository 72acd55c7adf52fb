"""Metadata plots on the inputs a short history gives them."""

import pandas as pd

from prometheus_assets.assets import plots


def test_quantile_bands_with_a_column_of_missing_values():
    # edge_layer on a few months of synthetic data: max_alloc had no value yet (an object column of None)
    days = pd.bdate_range("2018-01-01", "2018-06-29")
    frame = pd.DataFrame({"date": days, "pm_strength_applied": 1.0, "max_alloc": [None] * len(days)})
    assert frame["max_alloc"].dtype == object
    value = plots.quantile_bands(frame, ["pm_strength_applied", "max_alloc"], "bands")
    assert "data:image/png;base64," in value.value
