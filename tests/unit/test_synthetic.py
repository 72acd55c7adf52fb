"""Tests of the seeded synthetic market generator (prometheus_assets.core.synthetic)."""

from __future__ import annotations

import re

import exchange_calendars as xc
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prometheus_assets.core import synthetic
from prometheus_assets.core.schema import BAR_COLUMNS, FUNDAMENTAL_COLUMNS, INSTRUMENT_COLUMNS
from prometheus_assets.core.synthetic import (
    MARKET_STATES,
    SECTORS,
    SyntheticMarket,
    SyntheticMarketParams,
    generate_market,
)

FRAMES = ("bars", "instruments", "fundamentals", "descriptions", "market_states")
DEFAULT_SEED = 7  # the seed the synthetic source uses by default

#: Parameters that make listing events frequent inside short spans, to exercise them.
EVENTFUL = SyntheticMarketParams(listing_horizon=400, late_listing_prob=0.4, delisting_prob=0.4, min_listed_sessions=5)


def xnys(start: str, end: str) -> pd.DatetimeIndex:
    return xc.get_calendar("XNYS", start=start, end=end).sessions


def assert_markets_equal(left: SyntheticMarket, right: SyntheticMarket) -> None:
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(left, name), getattr(right, name), check_exact=True)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sessions() -> pd.DatetimeIndex:
    # Ends mid-quarter so that some reports become available after the last session.
    return xnys("2005-01-01", "2007-11-15")


@pytest.fixture(scope="module")
def market(sessions) -> SyntheticMarket:
    return generate_market(sessions, n_assets=60, seed=DEFAULT_SEED, params=EVENTFUL)


@pytest.fixture(scope="module")
def default_market(sessions) -> SyntheticMarket:
    return generate_market(sessions, n_assets=60, seed=DEFAULT_SEED)


@pytest.fixture(scope="module")
def twenty_years() -> SyntheticMarket:
    return generate_market(xnys("2003-01-01", "2022-12-31"), n_assets=40, seed=DEFAULT_SEED)


@pytest.fixture(scope="module")
def prefix_sessions() -> pd.DatetimeIndex:
    # Covers 2024-03-28, the last session of 2024 Q1 (Good Friday 2024-03-29 ends the quarter).
    return xnys("2023-10-01", "2024-12-31")


@pytest.fixture(scope="module")
def prefix_full(prefix_sessions) -> dict[str, SyntheticMarket]:
    return {
        "eventful": generate_market(prefix_sessions, n_assets=30, seed=3, params=EVENTFUL),
        "default": generate_market(prefix_sessions, n_assets=30, seed=3),
    }


# --------------------------------------------------------------------------- determinism
def test_same_inputs_give_identical_frames(sessions, market):
    assert_markets_equal(market, generate_market(sessions, n_assets=60, seed=DEFAULT_SEED, params=EVENTFUL))


def test_different_seed_gives_different_data(sessions, market):
    other = generate_market(sessions, n_assets=60, seed=DEFAULT_SEED + 1, params=EVENTFUL)
    assert not np.array_equal(market.market_states["market_return"], other.market_states["market_return"])
    common = market.bars.merge(other.bars, on=["date", "symbol"], suffixes=("", "_other"))
    assert len(common) > 0
    assert not np.allclose(common["close"], common["close_other"])


def test_chunking_is_an_implementation_detail(sessions, default_market, monkeypatch):
    """Processing a handful of days at a time must give the very same frames."""
    monkeypatch.setattr(synthetic, "_CHUNK_CELLS", 60 * 7)  # 7 days per chunk
    assert_markets_equal(default_market, generate_market(sessions, n_assets=60, seed=DEFAULT_SEED))


# --------------------------------------------------------------------------- prefix stability
def _assert_prefix_of(full: SyntheticMarket, prefix: SyntheticMarket, cut: pd.Timestamp) -> None:
    def head(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        return frame[frame[column] <= cut].reset_index(drop=True)

    pd.testing.assert_frame_equal(prefix.bars, head(full.bars, "date"), check_exact=True)
    pd.testing.assert_frame_equal(prefix.market_states, head(full.market_states, "date"), check_exact=True)
    pd.testing.assert_frame_equal(prefix.fundamentals, head(full.fundamentals, "period_end"), check_exact=True)

    expected = head(full.instruments, "listing_date")
    expected["delisting_date"] = expected["delisting_date"].where(expected["delisting_date"] <= cut)  # not yet
    pd.testing.assert_frame_equal(prefix.instruments, expected, check_exact=True)
    listed = full.descriptions["symbol"].isin(expected["symbol"])
    pd.testing.assert_frame_equal(prefix.descriptions, full.descriptions[listed].reset_index(drop=True), check_exact=True)


@pytest.mark.parametrize("kind", ["eventful", "default"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(min_value=0.0, max_value=1.0))
@example(fraction=0.0)
@example(fraction=1.0)
def test_prefix_generation_is_a_prefix_of_full_generation(prefix_sessions, prefix_full, kind, fraction):
    k = max(1, round(fraction * len(prefix_sessions)))
    full = prefix_full[kind]
    params = EVENTFUL if kind == "eventful" else None
    prefix = generate_market(prefix_sessions[:k], n_assets=30, seed=3, params=params)
    _assert_prefix_of(full, prefix, prefix_sessions[k - 1])


@pytest.mark.parametrize(
    "cut",
    [
        "2023-12-28",  # the session before the last session of Q4
        "2023-12-29",  # last session of Q4 2023
        "2024-03-27",
        "2024-03-28",  # last session of Q1 2024: Good Friday 2024-03-29 is a holiday
        "2024-06-28",  # last session of Q2 2024, a Friday
        "2024-07-01",
    ],
)
def test_prefix_stability_around_quarter_ends(prefix_sessions, prefix_full, cut):
    cut = pd.Timestamp(cut)
    k = int(prefix_sessions.get_loc(cut)) + 1
    prefix = generate_market(prefix_sessions[:k], n_assets=30, seed=3, params=EVENTFUL)
    _assert_prefix_of(prefix_full["eventful"], prefix, cut)


def test_quarter_closed_by_good_friday_is_reported(prefix_sessions):
    upto_thursday = generate_market(prefix_sessions[prefix_sessions <= "2024-03-28"], n_assets=5, seed=1)
    upto_wednesday = generate_market(prefix_sessions[prefix_sessions <= "2024-03-27"], n_assets=5, seed=1)
    assert pd.Timestamp("2024-03-28") in set(upto_thursday.fundamentals["period_end"])
    assert upto_wednesday.fundamentals["period_end"].max() == pd.Timestamp("2023-12-29")


def test_eventful_fixture_really_has_events_inside_the_span(prefix_full, prefix_sessions):
    inst = prefix_full["eventful"].instruments
    assert (inst["listing_date"] > prefix_sessions[0]).any()
    assert inst["delisting_date"].notna().any()


# --------------------------------------------------------------------------- bars sanity
@pytest.mark.parametrize("which", ["market", "default_market", "twenty_years"])
def test_bars_are_sane(which, request):
    m: SyntheticMarket = request.getfixturevalue(which)
    bars = m.bars
    assert list(bars.columns) == BAR_COLUMNS
    assert bars["date"].dtype == "datetime64[ns]"
    assert bars["symbol"].dtype == object
    assert not bars.isna().any().any()
    assert bars.index.equals(pd.RangeIndex(len(bars)))
    assert not bars.duplicated(["date", "symbol"]).any()
    assert bars.equals(bars.sort_values(["date", "symbol"]).reset_index(drop=True))

    o, h, lo, c = (bars[col].to_numpy() for col in ("open", "high", "low", "close"))
    assert (lo > 0).all()
    assert (lo <= np.minimum(o, c)).all()
    assert (np.maximum(o, c) <= h).all()
    assert (bars["adj_close"] == bars["close"]).all()
    assert (bars["volume"] > 0).all()


def test_bars_exist_exactly_while_listed(sessions, market):
    bars, inst = market.bars, market.instruments
    assert set(bars["symbol"]) == set(inst["symbol"])  # every instrument has at least one bar
    span = bars.groupby("symbol")["date"].agg(["min", "max", "count"])
    inst = inst.set_index("symbol").join(span)
    assert (inst["listing_date"] == inst["min"]).all()

    delisted = inst[inst["delisting_date"].notna()]
    assert len(delisted) > 0
    assert (delisted["max"] < delisted["delisting_date"]).all()  # no bar on or after delisting_date
    pos = sessions.get_indexer(delisted["delisting_date"])
    assert (sessions[pos - 1] == delisted["max"]).all()  # ... and its last bar is the session before

    still_listed = inst[inst["delisting_date"].isna()]
    assert (still_listed["max"] == sessions[-1]).all()
    # No gaps: one bar per session between first and last bar.
    expected_count = sessions.get_indexer(inst["max"]) - sessions.get_indexer(inst["min"]) + 1
    assert (inst["count"].to_numpy() == expected_count).all()


def test_listing_and_delisting_rates_are_plausible():
    m = generate_market(xnys("2003-01-01", "2022-12-31"), n_assets=400, seed=DEFAULT_SEED)
    inst = m.instruments
    late = (inst["listing_date"] > inst["listing_date"].min()).mean()
    delisted = inst["delisting_date"].notna().mean()
    assert 0.08 <= late <= 0.22
    assert 0.05 <= delisted <= 0.15
    assert len(inst) <= 400


def test_prices_and_volumes_relate_to_the_model(twenty_years):
    bars = twenty_years.bars.copy()
    bars["ret"] = bars.groupby("symbol")["close"].pct_change()
    bars = bars.dropna()
    # Bigger moves trade more shares (per symbol, then averaged).
    rank_corr = bars.groupby("symbol")[["ret", "volume"]].apply(lambda g: g["ret"].abs().corr(g["volume"], method="spearman"))
    assert rank_corr.mean() > 0.1
    # Fat tails: pooled excess kurtosis of daily returns well above a normal's 0.
    assert bars["ret"].kurt() > 3


# --------------------------------------------------------------------------- market regimes
def test_regimes_are_sensible_over_twenty_years(twenty_years):
    ms = twenty_years.market_states
    assert list(ms.columns) == ["date", "state", "market_return"]
    assert set(ms["state"]) <= set(MARKET_STATES)
    counts = ms["state"].value_counts()
    assert counts.get("crash", 0) > 0
    assert counts["calm"] > counts.get("volatile", 0) > counts.get("crash", 0)

    crash = (ms["state"] == "crash").to_numpy()
    run_id = np.cumsum(np.r_[True, crash[1:] != crash[:-1]])
    crash_runs = ms[crash].groupby(run_id[crash])["market_return"].apply(lambda r: (1 + r).prod() - 1)
    assert len(crash_runs) >= 2
    assert crash_runs.mean() < 0

    vol = ms.groupby("state")["market_return"].std()
    assert vol["calm"] < vol["volatile"] < vol["crash"]


def test_market_states_cover_every_session(sessions, market):
    assert (market.market_states["date"].to_numpy() == sessions.to_numpy()).all()


# --------------------------------------------------------------------------- instruments & text
@settings(max_examples=8, deadline=None)
@given(n_assets=st.integers(min_value=11, max_value=80), seed=st.integers(min_value=0, max_value=2**32))
def test_all_eleven_sectors_present(n_assets, seed):
    m = generate_market(pd.bdate_range("2020-01-01", periods=3), n_assets=n_assets, seed=seed)
    assert m.instruments["sector"].nunique() == len(SECTORS) == 11
    industries = {s.name: {ind for ind, _ in s.industries} for s in SECTORS}
    assert all(row.industry in industries[row.sector] for row in m.instruments.itertuples())
    assert all(2 <= len(s.industries) <= 4 for s in SECTORS)


def test_instrument_registry(market):
    inst = market.instruments
    assert list(inst.columns) == INSTRUMENT_COLUMNS + ["listing_date", "delisting_date"]
    assert inst["symbol"].is_unique and inst["issuer_id"].is_unique and inst["name"].is_unique
    assert inst["symbol"].str.fullmatch(r"SYN\d{4}").all()
    assert (inst["symbol"].str[3:] == inst["issuer_id"].str[3:]).all()
    assert inst["issuer_id"].str.fullmatch(r"ISS\d{4}").all()
    assert (inst["currency"] == "USD").all() and (inst["exchange"] == "XNYS").all()
    assert (inst["asset_class"] == "equity").all()
    assert inst["listing_date"].dtype == inst["delisting_date"].dtype == "datetime64[ns]"
    assert (inst["delisting_date"].isna() | (inst["delisting_date"] > inst["listing_date"])).all()


@pytest.mark.parametrize(("n_assets", "width"), [(1, 4), (9999, 4), (10000, 5), (123456, 6)])
def test_symbols_are_zero_padded_to_the_universe_width(n_assets, width):
    m = generate_market(pd.bdate_range("2021-01-04", periods=1), n_assets=n_assets, seed=0)
    assert m.instruments["symbol"].str.fullmatch(rf"SYN\d{{{width}}}").all()
    assert m.instruments["symbol"].iloc[0] == "SYN" + "1".zfill(width)


def test_descriptions(market):
    desc, inst = market.descriptions, market.instruments
    assert list(desc.columns) == ["issuer_id", "symbol", "description"]
    assert desc[["issuer_id", "symbol"]].equals(inst[["issuer_id", "symbol"]])
    joined = desc.merge(inst, on=["issuer_id", "symbol"])
    for row in joined.itertuples():
        text = row.description.replace("Inc.", "Inc").replace("Corp.", "Corp").replace("Co.", "Co")
        sentences = re.findall(r"[^.]+?\.(?:\s|$)", text)
        assert 2 <= len(sentences) <= 3, row.description
        assert row.sector in row.description and row.industry in row.description
        assert row.name in row.description
        assert re.search(r"\b(mega|large|mid|small|micro)-cap\b", row.description)
        assert re.search(r"\b(growth|value)\b", row.description)


# --------------------------------------------------------------------------- fundamentals
def test_fundamentals_columns_and_timing(sessions, market):
    f = market.fundamentals
    assert list(f.columns) == FUNDAMENTAL_COLUMNS
    assert f["period_end"].dtype == f["available_date"].dtype == "datetime64[ns]"
    assert not f.isna().any().any()
    assert (f["available_date"] > f["period_end"]).all()
    lag = (f["available_date"] - f["period_end"]).dt.days
    assert lag.between(30, 60 + 7).all()
    inside = f["available_date"] <= sessions[-1]
    assert f.loc[inside, "available_date"].isin(sessions).all()  # rolled onto sessions
    assert (~inside).any()  # reports not yet public at the end of the span are still included
    assert f.equals(f.sort_values(["period_end", "symbol"], kind="stable").reset_index(drop=True))


def test_one_fundamental_row_per_listed_issuer_quarter(sessions, market):
    f, bars = market.fundamentals, market.bars
    quarter = sessions.to_period("Q")
    quarter_ends = sessions[np.r_[quarter[1:] != quarter[:-1], False]]  # last span session is mid-quarter
    expected = bars[bars["date"].isin(quarter_ends)][["symbol", "date"]]
    got = f[["symbol", "period_end"]].rename(columns={"period_end": "date"})
    assert not got.duplicated().any()
    pd.testing.assert_frame_equal(
        got.sort_values(["date", "symbol"]).reset_index(drop=True),
        expected.sort_values(["date", "symbol"]).reset_index(drop=True),
    )
    assert (f["issuer_id"].str[3:] == f["symbol"].str[3:]).all()


def test_fundamental_values_are_plausible(market):
    f = market.fundamentals.merge(market.bars, left_on=["symbol", "period_end"], right_on=["symbol", "date"])
    shares = f["market_cap"] / f["close"]  # constant: no corporate actions
    assert np.allclose(shares, shares.groupby(f["symbol"]).transform("first"), rtol=1e-12)
    assert (f["market_cap"] > 0).all() and (f["book_to_market"] > 0).all()
    assert f["leverage"].between(0, 1).all()
    assert f["profitability"].between(-1, 1).all()
    # Slow dynamics: quarter-on-quarter changes are small next to the cross-section.
    g = f.sort_values(["symbol", "period_end"]).groupby("symbol")
    assert g["leverage"].diff().abs().median() < 0.5 * f["leverage"].std()
    assert g["profitability"].diff().abs().median() < 0.5 * f["profitability"].std()


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("n_assets", [0, -1, -100])
def test_n_assets_below_one_is_rejected(n_assets):
    with pytest.raises(ValueError, match="n_assets must be >= 1"):
        generate_market(pd.bdate_range("2020-01-01", periods=5), n_assets=n_assets, seed=0)


def test_non_integer_n_assets_is_rejected():
    with pytest.raises(ValueError, match="n_assets"):
        generate_market(pd.bdate_range("2020-01-01", periods=5), n_assets=2.5, seed=0)  # type: ignore[arg-type]


def test_empty_sessions_are_rejected():
    with pytest.raises(ValueError, match="sessions is empty"):
        generate_market(pd.DatetimeIndex([]), n_assets=5, seed=0)


def test_unsorted_sessions_are_rejected():
    days = pd.bdate_range("2020-01-01", periods=5)
    with pytest.raises(ValueError, match="strictly increasing"):
        generate_market(days[::-1], n_assets=5, seed=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        generate_market(days.append(days[-1:]), n_assets=5, seed=0)


def test_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        generate_market(pd.bdate_range("2020-01-01", periods=5), n_assets=5, seed=-1)


def test_invalid_params_are_rejected():
    with pytest.raises(ValueError, match="transition"):
        SyntheticMarketParams(transition=((0.5, 0.5, 0.5), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))


def test_single_session_and_single_asset_work():
    m = generate_market(pd.bdate_range("2021-06-30", periods=1), n_assets=1, seed=0)
    assert len(m.bars) == 1 and len(m.instruments) == 1 and len(m.market_states) == 1
    assert len(m.fundamentals) == 1  # 2021-06-30 is the last weekday of Q2
    assert m.bars["date"].iloc[0] == pd.Timestamp("2021-06-30")
