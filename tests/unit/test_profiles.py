"""ProfileSnapshots and month ends (prometheus_assets.core.profiles)."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pandas as pd
import pytest
import yaml

from prometheus_assets.core import calendar
from prometheus_assets.core import profiles as prof
from prometheus_assets.core.profiles import (
    PROFILE_COLUMNS,
    REGIME_LABELS,
    STRUCTURED_FIELDS,
    month_end_dates,
    profile_snapshots,
    text_embeddings,
)
from prometheus_assets.core.synthetic import generate_market

SYN_START, SYN_END = "2012-01-01", "2015-12-31"
STATE_TO_LABEL = {"calm": "CARRY", "volatile": "RISK_OFF", "crash": "CRISIS"}


# --------------------------------------------------------------------------- data
def crude_labels(market: pd.Series, level: pd.Series) -> pd.Series:
    """A crude regime series from the market alone (trailing data only)."""
    vol = market.rolling(21).std() * np.sqrt(252)
    dd = 1 - level / level.rolling(252, min_periods=1).max()
    labels = pd.Series("NEUTRAL", index=market.index, dtype=object)
    labels[vol < 0.12] = "CARRY"
    labels[(vol > 0.22) | (dd > 0.10)] = "RISK_OFF"
    labels[(vol > 0.35) | (dd > 0.25)] = "CRISIS"
    return labels


@pytest.fixture(scope="module")
def bundled():
    from skfolio.datasets import load_sp500_dataset, load_sp500_index

    prices = load_sp500_dataset()
    level = load_sp500_index()["SP500"]
    returns, market = prices.pct_change(), level.pct_change()
    path = importlib.resources.files("prometheus_assets").joinpath("configs/bundled_instruments.yaml")
    registry = pd.DataFrame(yaml.safe_load(path.read_text())["instruments"])
    registry["issuer_id"] = registry["symbol"]
    return dict(prices=prices, returns=returns, market=market, instruments=registry, labels=crude_labels(market, level))


def synthetic_frames(sessions: pd.DatetimeIndex, n_assets: int = 80) -> dict:
    market = generate_market(sessions, n_assets=n_assets, seed=11)
    bars = market.bars
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")
    states = market.market_states.set_index("date")
    return dict(
        prices=prices,
        volumes=bars.pivot(index="date", columns="symbol", values="volume"),
        returns=prices.pct_change(fill_method=None),
        market=states["market_return"],
        labels=states["state"].map(STATE_TO_LABEL),
        instruments=market.instruments,
        fundamentals=market.fundamentals,
        texts=market.descriptions,
    )


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_frames(calendar.trading_sessions(SYN_START, SYN_END))


def run(frames: dict, as_of=None, **kwargs) -> pd.DataFrame:
    dates = month_end_dates(frames["prices"].index) if as_of is None else as_of
    return profile_snapshots(
        dates,
        frames["instruments"],
        frames["returns"],
        frames["market"],
        frames["prices"],
        frames.get("volumes"),
        frames.get("fundamentals"),
        frames.get("texts"),
        frames.get("labels"),
        **kwargs,
    )


@pytest.fixture(scope="module")
def synthetic_profiles(synthetic):
    return run(synthetic)


@pytest.fixture(scope="module")
def bundled_profiles(bundled):
    return run(bundled)


# --------------------------------------------------------------------------- month ends
def test_month_ends_hand_examples():
    sessions = calendar.trading_sessions("2025-06-01", "2025-09-30")
    # data through a Friday that is the month's last weekday: August is complete
    assert month_end_dates(sessions[sessions <= "2025-08-29"])[-1] == pd.Timestamp("2025-08-29")
    # data stopping mid-month: that month is not (yet) a month end
    assert month_end_dates(sessions[sessions <= "2025-08-27"])[-1] == pd.Timestamp("2025-07-31")
    # a full calendar (future sessions known) cut by complete_through
    ends = month_end_dates(sessions, complete_through=pd.Timestamp("2025-08-29"))
    assert list(ends) == [pd.Timestamp(d) for d in ("2025-06-30", "2025-07-31", "2025-08-29")]
    assert month_end_dates(sessions, complete_through=pd.Timestamp("2025-08-28"))[-1] == pd.Timestamp("2025-07-31")
    assert month_end_dates(sessions)[-1] == pd.Timestamp("2025-09-30")
    assert month_end_dates(pd.DatetimeIndex([])).empty
    assert month_end_dates(sessions).dtype == "datetime64[ns]"


def test_month_ends_are_point_in_time():
    sessions = calendar.trading_sessions("2019-01-01", "2021-12-31")
    full = month_end_dates(sessions)
    for k in range(100, len(sessions), 37):
        part = month_end_dates(sessions[:k])
        assert list(part) == list(full[full <= sessions[k - 1]])


def test_bundled_month_ends_drop_the_unfinished_december(bundled):
    ends = month_end_dates(bundled["prices"].index)
    assert ends[0] == pd.Timestamp("1990-01-31") and ends[-1] == pd.Timestamp("2022-11-30")
    assert len(ends) == 395


# --------------------------------------------------------------------------- shape
def test_one_row_per_trading_issuer_and_date(synthetic, synthetic_profiles):
    out = synthetic_profiles
    assert list(out.columns) == PROFILE_COLUMNS
    assert not out.duplicated(["issuer_id", "as_of_date"]).any()
    prices = synthetic["prices"]
    for date in out["as_of_date"].unique()[::9]:
        trading = set(prices.columns[prices.loc[date].notna()])
        assert set(out.loc[out["as_of_date"] == date, "symbol"]) == trading
    assert out["as_of_date"].dtype == "datetime64[ns]"


def test_issuer_with_two_share_classes_gets_one_row(bundled):
    frames = dict(bundled)
    reg = frames["instruments"].copy()
    reg.loc[reg["symbol"].isin(["PEP", "KO"]), "issuer_id"] = "BEVERAGES"
    frames["instruments"] = reg
    dates = month_end_dates(frames["prices"].index)[-3:]
    out = run(frames, as_of=dates)
    rows = out[out["issuer_id"] == "BEVERAGES"]
    assert len(rows) == 3 and set(rows["symbol"]) == {"KO"}  # same history length: alphabetical
    assert out.groupby("as_of_date").size().eq(19).all()


# --------------------------------------------------------------------------- fundamentals
def test_fundamentals_are_used_only_from_available_date(synthetic):
    frames = dict(synthetic)
    ends = month_end_dates(frames["prices"].index)
    me, next_me = ends[20], ends[21]
    sessions = frames["prices"].index
    day_after = sessions[sessions.get_loc(me) + 1]
    fund = frames["fundamentals"].copy()
    issuer = fund["issuer_id"].iloc[0]
    symbol = fund.loc[fund["issuer_id"] == issuer, "symbol"].iloc[0]
    planted = {
        "issuer_id": issuer,
        "symbol": symbol,
        "period_end": me,  # newer than anything else public at me
        "available_date": day_after,  # ... but published the session after
        "market_cap": 123_456_789.0,
        "leverage": 0.91,
        "profitability": -0.42,
        "book_to_market": 9.99,
    }
    fund = pd.concat([fund[fund["available_date"] != day_after], pd.DataFrame([planted])], ignore_index=True)
    frames["fundamentals"] = fund
    out = run(frames, as_of=pd.DatetimeIndex([me, next_me])).set_index(["as_of_date", "issuer_id"])
    at_me, later = out.loc[(me, issuer)], out.loc[(next_me, issuer)]
    assert at_me["market_cap"] != planted["market_cap"] and at_me["fundamentals_period_end"] < me
    assert at_me["fundamentals_available_date"] <= me
    assert later["market_cap"] == planted["market_cap"] and later["fundamentals_period_end"] == me
    assert later["fundamentals_available_date"] == day_after
    assert later["size"] == pytest.approx(np.log10(planted["market_cap"]))
    assert "high_leverage" in later["risk_flags"] and "unprofitable" in later["risk_flags"]


def test_fundamentals_match_a_direct_point_in_time_lookup(synthetic, synthetic_profiles):
    fund = synthetic["fundamentals"]
    out = synthetic_profiles
    for date in out["as_of_date"].unique()[::7]:
        public = fund[fund["available_date"] <= date].sort_values(["issuer_id", "period_end", "available_date"])
        latest = public.groupby("issuer_id").tail(1).set_index("issuer_id")
        rows = out[out["as_of_date"] == date].set_index("issuer_id")
        has = rows.index.intersection(latest.index)
        assert rows.loc[rows.index.difference(latest.index), "market_cap"].isna().all()
        np.testing.assert_array_equal(rows.loc[has, "market_cap"], latest.loc[has, "market_cap"])
        np.testing.assert_array_equal(rows.loc[has, "fundamentals_period_end"], latest.loc[has, "period_end"])
        assert (rows["fundamentals_available_date"].dropna() <= date).all()
        assert rows.loc[has, "size_source"].eq("market_cap").all()


# --------------------------------------------------------------------------- price-only data
def test_profiles_from_price_only_bundled_data(bundled_profiles):
    out = bundled_profiles
    assert out["issuer_id"].nunique() == 20 and out["as_of_date"].nunique() == 395
    for col in ("market_cap", "size", "leverage", "profitability", "book_to_market", "quality", "liquidity"):
        assert out[col].isna().all(), col
    assert out["fundamentals_period_end"].isna().all() and out["size_source"].isna().all()
    later = out[out["as_of_date"] >= "1991-03-01"]
    for col in ("beta", "volatility", "max_drawdown", "momentum_12_1"):
        assert later[col].notna().all(), col
    assert later["volatility"].between(0.05, 2.0).all() and later["max_drawdown"].between(0, 1).all()
    assert (out["text_source"] == "generated").all()
    apple = out.loc[out["symbol"] == "AAPL", "text_ref"].iloc[0]
    assert apple == "Apple Inc. (AAPL) is a company in the Technology Hardware, Storage & Peripherals industry of the Information Technology sector."
    # risk flags follow their thresholds
    high_beta = out["risk_flags"].map(lambda f: "high_beta" in f)
    assert high_beta.equals(out["beta"] >= prof.HIGH_BETA)
    assert not out["risk_flags"].map(lambda f: "stale_fundamentals" in f or "missing_fundamentals" in f).any()


def test_price_traits_against_direct_computation(bundled, bundled_profiles):
    date = pd.Timestamp("2008-12-31")
    row = bundled_profiles[(bundled_profiles["as_of_date"] == date) & (bundled_profiles["symbol"] == "JPM")].iloc[0]
    r = bundled["returns"]["JPM"].loc[:date].iloc[-252:]
    m = bundled["market"].loc[:date].iloc[-252:]
    p = bundled["prices"]["JPM"].loc[:date]
    assert row["beta"] == pytest.approx(np.cov(r, m)[0, 1] / np.var(m, ddof=1), rel=1e-10)
    assert row["volatility"] == pytest.approx(r.std() * np.sqrt(252), rel=1e-10)
    window = p.iloc[-252:]
    assert row["max_drawdown"] == pytest.approx((1 - window / window.cummax()).max(), rel=1e-12)
    assert row["momentum_12_1"] == pytest.approx(p.iloc[-22] / p.iloc[-253] - 1, rel=1e-12)


# --------------------------------------------------------------------------- embeddings
def test_embeddings_have_fixed_length_and_are_deterministic(synthetic, synthetic_profiles):
    lengths = synthetic_profiles["profile_embedding"].map(len)
    assert (lengths == len(STRUCTURED_FIELDS) + 8).all()
    again = run(synthetic)
    pd.testing.assert_frame_equal(again, synthetic_profiles, check_exact=True)
    values = np.vstack(synthetic_profiles["profile_embedding"].to_numpy())
    assert np.isfinite(values).all()
    assert np.abs(values[:, len(STRUCTURED_FIELDS) :]).sum(axis=1).min() > 0  # text part used
    small = run(synthetic, as_of=month_end_dates(synthetic["prices"].index)[-2:], text_components=3)
    assert (small["profile_embedding"].map(len) == len(STRUCTURED_FIELDS) + 3).all()


def test_structured_embedding_is_a_cross_sectional_zscore(synthetic_profiles):
    one = synthetic_profiles[synthetic_profiles["as_of_date"] == synthetic_profiles["as_of_date"].max()]
    values = np.vstack(one["profile_embedding"].to_numpy())
    for j, field in enumerate(STRUCTURED_FIELDS):
        x = one[field].to_numpy(dtype=float)
        ok = np.isfinite(x)
        z = (x[ok] - x[ok].mean()) / x[ok].std()
        np.testing.assert_allclose(values[ok, j], np.clip(z, -prof.Z_CLIP, prof.Z_CLIP), rtol=1e-12, atol=1e-12)
        assert (values[~ok, j] == 0).all()


def test_text_embeddings_zero_pad_when_few_texts():
    two = text_embeddings(["Banks lend money to firms.", "Miners dig copper and gold ore."], 8)
    assert two.shape == (2, 8) and (two[:, 1:] == 0).all() and np.abs(two[:, 0]).sum() > 0
    assert (text_embeddings(["Only one issuer here."], 4) == 0).all()
    assert (text_embeddings(["the and of", "and the of"], 4) == 0).all()  # only stop words
    texts = [f"Company {i} makes {w} products." for i, w in enumerate(["steel", "paper", "glass", "steel", "paper"])]
    np.testing.assert_array_equal(text_embeddings(texts, 3), text_embeddings(texts, 3))


def test_source_texts_are_used(synthetic, synthetic_profiles):
    described = set(synthetic["texts"]["issuer_id"])
    out = synthetic_profiles
    assert (out["text_source"] == np.where(out["issuer_id"].isin(described), "source", "generated")).all()
    first = synthetic["texts"].iloc[0]
    assert out.loc[out["issuer_id"] == first["issuer_id"], "text_ref"].eq(first["description"]).all()


# --------------------------------------------------------------------------- point in time
def test_truncation_invariance_on_bundled(bundled, bundled_profiles):
    t = pd.Timestamp("2003-07-15")
    frames = dict(bundled)
    for key in ("prices", "returns", "market", "labels"):
        frames[key] = bundled[key].loc[:t]
    part = run(frames)
    expected = bundled_profiles[bundled_profiles["as_of_date"] <= t].reset_index(drop=True)
    assert part["as_of_date"].max() == pd.Timestamp("2003-06-30")
    pd.testing.assert_frame_equal(part, expected, check_exact=True)


def test_truncation_invariance_on_regenerated_synthetic(synthetic_profiles):
    """Regenerate the market on sessions cut at t (its own, shorter, world) and compare."""
    sessions = calendar.trading_sessions(SYN_START, SYN_END)
    t = sessions[700]
    part = run(synthetic_frames(sessions[: 700 + 1]))
    expected = synthetic_profiles[synthetic_profiles["as_of_date"] <= t].reset_index(drop=True)
    assert len(part) and part["as_of_date"].max() <= t
    pd.testing.assert_frame_equal(part, expected, check_exact=True)


def test_regime_traits_against_direct_computation(bundled, bundled_profiles):
    labels, returns, market = bundled["labels"], bundled["returns"], bundled["market"]
    out = bundled_profiles.set_index(["as_of_date", "symbol"])
    for date, symbol in [("1994-06-30", "GE"), ("2008-12-31", "BAC"), ("2020-04-30", "XOM"), ("2022-11-30", "AAPL")]:
        date = pd.Timestamp(date)
        row = out.loc[(date, symbol)]
        for label in REGIME_LABELS:
            on = (labels == label) & (labels.index <= date)
            r = returns[symbol][on]
            m = market[on]
            ok = r.notna() & m.notna()
            if r.notna().sum() < prof.MIN_REGIME_DAYS:
                assert np.isnan(row[f"avg_return_{label}"])
            else:
                assert row[f"avg_return_{label}"] == pytest.approx(r.mean() * 252, rel=1e-9)
            if ok.sum() < prof.MIN_REGIME_DAYS:
                assert np.isnan(row[f"beta_{label}"])
            else:
                beta = np.cov(r[ok], m[ok])[0, 1] / np.var(m[ok], ddof=1)
                assert row[f"beta_{label}"] == pytest.approx(beta, rel=1e-8)
    # the earliest month ends have too few crisis days
    assert np.isnan(out.loc[(pd.Timestamp("1990-01-31"), "GE"), "beta_CRISIS"])


def test_regime_traits_ignore_later_labels(bundled):
    frames = dict(bundled)
    dates = pd.DatetimeIndex(["2005-06-30", "2007-06-29"])
    base = run(frames, as_of=dates)
    relabelled = frames["labels"].copy()
    relabelled[relabelled.index > dates[0]] = "CRISIS"
    frames["labels"] = relabelled
    changed = run(frames, as_of=dates)
    first = base["as_of_date"] == dates[0]
    pd.testing.assert_frame_equal(changed[first], base[first], check_exact=True)
    assert not changed[~first].equals(base[~first])


def test_no_regime_labels_gives_nan_traits(bundled):
    frames = dict(bundled, labels=None)
    out = run(frames, as_of=pd.DatetimeIndex(["2010-12-31"]))
    for label in REGIME_LABELS:
        assert out[f"avg_return_{label}"].isna().all() and out[f"beta_{label}"].isna().all()


def test_as_of_dates_must_be_sessions(bundled):
    with pytest.raises(ValueError, match="sessions"):
        run(bundled, as_of=pd.DatetimeIndex(["2010-12-25"]))


def test_no_snapshot_date_gives_exactly_empty_profiles(bundled):
    """The asset skips reading the history on a day without a snapshot and writes empty_profiles(): the same frame."""
    out = run(bundled, as_of=pd.DatetimeIndex([]))
    pd.testing.assert_frame_equal(out, prof.empty_profiles(), check_exact=True)
    assert list(out.columns) == list(prof.PROFILE_COLUMNS)


def test_profile_liquidity_is_measured_on_the_traded_close(synthetic):
    """Regression: the dollar volume was adjusted price × volume, so a name back-adjusted for a later 10:1 split
    looked ten times less liquid (log10 one lower) before the split, and could be flagged ``illiquid``."""
    frames = dict(synthetic)
    name = str(frames["prices"].columns[0])
    as_of = month_end_dates(frames["prices"].index)[-3:]
    reference = run(frames, as_of=as_of)
    adjusted = dict(frames, prices=frames["prices"].assign(**{name: frames["prices"][name] / 10.0}))
    fixed = run(adjusted, as_of=as_of, closes=frames["prices"])
    old = run(adjusted, as_of=as_of)
    mine = reference["symbol"] == name
    np.testing.assert_array_equal(fixed["liquidity"].to_numpy(), reference["liquidity"].to_numpy())
    np.testing.assert_allclose(old.loc[mine, "liquidity"].to_numpy(), reference.loc[mine, "liquidity"].to_numpy() - 1.0, rtol=0, atol=1e-12)


def test_a_report_without_a_period_end_is_not_taken_as_the_latest(synthetic):
    """Regression: a fundamentals row with a missing period_end sorted last and won as the issuer's latest
    report (an old, small market cap replaced the current one)."""
    frames = dict(synthetic)
    ends = month_end_dates(frames["prices"].index)
    me = ends[-2]
    fund = frames["fundamentals"].copy()
    issuer = fund["issuer_id"].iloc[0]
    reference = run(frames, as_of=pd.DatetimeIndex([me])).set_index("issuer_id").loc[issuer]
    planted = fund[fund["issuer_id"] == issuer].iloc[[0]].assign(period_end=pd.NaT, market_cap=1e3)
    frames["fundamentals"] = pd.concat([fund, planted], ignore_index=True)
    out = run(frames, as_of=pd.DatetimeIndex([me])).set_index("issuer_id").loc[issuer]
    assert out["market_cap"] == reference["market_cap"] != 1e3
    assert out["fundamentals_period_end"] == reference["fundamentals_period_end"]
