"""core.universe: a build from a given day on equals the whole build's rows from that day."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_assets.core.books import UniverseRules
from prometheus_assets.core.universe import build_universe


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 119), st.booleans())
def test_a_build_from_a_day_equals_the_whole_builds_rows_from_that_day(seed, cut, with_volumes):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=120)
    symbols = [f"S{i}" for i in range(12)]
    prices = pd.DataFrame(rng.lognormal(3.0, 0.5, (120, 12)), index=dates, columns=symbols)
    listed = rng.integers(0, 80, 12)  # later listings: no price before their first day
    for j, first in enumerate(listed):
        prices.iloc[:first, j] = np.nan
    score = pd.DataFrame(rng.normal(size=(120, 12)), index=dates, columns=symbols).where(rng.random((120, 12)) > 0.1)
    classes = pd.DataFrame(rng.choice(["STABLE", "FRAGILE", "BREAKER"], (120, 12)), index=dates, columns=symbols)
    volumes = pd.DataFrame(rng.lognormal(10.0, 1.0, (120, 12)), index=dates, columns=symbols) if with_volumes else None
    rules = UniverseRules(min_listing_sessions=20, min_price=15.0, min_dollar_volume=5e5, tier_sizes=(3, 6))
    whole = build_universe(score, prices, classes, rules, True, volumes)
    since = dates[cut]
    part = build_universe(score, prices, classes, rules, True, volumes, since=since)
    expected = whole[whole["date"] >= since].reset_index(drop=True)
    assert len(part) > 0 or len(expected) == 0
    pd.testing.assert_frame_equal(part, expected, check_exact=True)
