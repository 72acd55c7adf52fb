"""The numeric embedding space: features against direct formulas, the O(N*W) correlation,
the fixed-size encoder, and walk-forward fitting with truncation invariance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from prometheus_assets.core.encoders import (
    INSTRUMENT_FEATURE_COLUMNS,
    MARKET_FEATURE_COLUMNS,
    TRADING_DAYS_PER_YEAR,
    WINDOW_SPECS,
    SHORT_RETURN_DAYS,
    FittedEncoder,
    NumericEncoder,
    embed_walk_forward,
    fit_walk_forward,
    instrument_features,
    market_features,
    refit_dates,
)
from prometheus_assets.core.synthetic import generate_market

ANN = TRADING_DAYS_PER_YEAR
CUT = "2012-06-29"  # truncation date for the bundled-data invariance test


def random_returns(seed: int, n_dates: int = 80, n_symbols: int = 6, holes: bool = True) -> pd.DataFrame:
    """Correlated random returns with late listings, an early delisting and a missing bar."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0003, 0.012, (n_dates, n_symbols)) + rng.normal(0, 0.01, (n_dates, 1))
    frame = pd.DataFrame(r, index=pd.bdate_range("2021-01-04", periods=n_dates), columns=[f"S{i}" for i in range(n_symbols)])
    if holes:
        frame.iloc[:30, 1] = np.nan  # lists late
        frame.iloc[50:, 2] = np.nan  # delists
        frame.iloc[40, 3] = np.nan  # one missing bar
    return frame


@pytest.fixture(scope="module")
def bundled_returns() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset().pct_change(fill_method=None)


# --------------------------------------------------------------------------- instrument features
def test_instrument_features_match_direct_formulas():
    W = 20
    r = random_returns(1)
    feats = instrument_features(r, W)
    assert list(feats.columns) == ["date", "entity_id"] + INSTRUMENT_FEATURE_COLUMNS
    assert feats["date"].dtype == "datetime64[ns]"
    market = r.mean(axis=1)  # equal weight of the symbols trading that day (NaN skipped)
    checked = 0
    for _, row in feats.sample(25, random_state=0).iterrows():
        t = r.index.get_loc(row["date"])
        x = r[row["entity_id"]].iloc[t - W + 1 : t + 1].to_numpy()
        m = market.iloc[t - W + 1 : t + 1].to_numpy()
        assert np.isfinite(x).all()
        price = np.concatenate([[1.0], np.cumprod(1 + x)])
        expected = {
            "mean_return": x.mean() * ANN,
            "vol": x.std(ddof=1) * np.sqrt(ANN),
            "max_drawdown": (price / np.maximum.accumulate(price) - 1).min(),
            "trend": np.polyfit(np.arange(W), np.log(price[1:]), 1)[0] * ANN,
            "downside_vol": np.sqrt(np.mean(np.minimum(x, 0) ** 2)) * np.sqrt(ANN),
            "skew": pd.Series(x).skew(),
            "beta": np.cov(x, m)[0, 1] / np.var(m, ddof=1),
            "correlation": np.corrcoef(x, m)[0, 1],
            "return_5d": np.prod(1 + x[-5:]) - 1,
        }
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, rel=1e-8, abs=1e-10), name
        checked += 1
    assert checked == 25


def test_instrument_rows_exist_exactly_for_full_windows():
    W = 20
    r = random_returns(2)
    feats = instrument_features(r, W)
    full = r.rolling(W).count() == W
    expected = {(d, s) for d, s in full.stack().loc[lambda x: x].index}
    assert set(zip(feats["date"], feats["entity_id"])) == expected
    # S1 lists on row 30, so its first feature row is W-1 sessions later; S3's hole blocks W rows.
    s1 = feats.loc[feats["entity_id"] == "S1", "date"]
    assert s1.min() == r.index[30 + W - 1]
    s3 = set(feats.loc[feats["entity_id"] == "S3", "date"])
    assert not any(r.index[k] in s3 for k in range(40, 40 + W))
    assert feats.groupby("date")["entity_id"].apply(list).map(lambda v: v == sorted(v)).all()


def test_instrument_features_on_synthetic_market_with_listings():
    sessions = pd.bdate_range("2015-01-01", periods=300)
    bars = generate_market(sessions, 40, seed=3).bars
    wide = bars.pivot(index="date", columns="symbol", values="close").pct_change(fill_method=None)
    feats = instrument_features(wide, WINDOW_SPECS["63d"])
    assert len(feats) == int((wide.rolling(63).count() == 63).to_numpy().sum())
    assert (feats["max_drawdown"] <= 0).all() and (feats["vol"] > 0).all()
    assert feats["correlation"].between(-1, 1).all()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="window"):
        instrument_features(random_returns(0), 1)
    with pytest.raises(ValueError, match="increasing"):
        market_features(random_returns(0).iloc[::-1], 10)


# --------------------------------------------------------------------------- market features
def test_market_features_match_direct_formulas():
    W = 15
    r = random_returns(3)
    mf = market_features(r, W)
    assert list(mf.columns) == ["date"] + MARKET_FEATURE_COLUMNS + ["n_symbols"]
    market = r.mean(axis=1)
    level = np.cumprod(1 + market.to_numpy())  # market level, 1.0 before the first row
    assert mf["date"].iloc[0] == r.index[W - 1]
    for _, row in mf.iloc[::7].iterrows():
        t = r.index.get_loc(row["date"])
        m = market.iloc[t - W + 1 : t + 1].to_numpy()
        win = r.iloc[t - W + 1 : t + 1].dropna(axis=1)
        path = np.concatenate([[level[t - W] if t >= W else 1.0], level[t - W + 1 : t + 1]])
        expected = {
            "mean_return": m.mean() * ANN,
            "vol": m.std(ddof=1) * np.sqrt(ANN),
            "drawdown": level[t] / path.max() - 1,
            "drawdown_from_peak": level[t] / max(1.0, level[: t + 1].max()) - 1,
            "trend": np.polyfit(np.arange(W), np.log(level[t - W + 1 : t + 1]), 1)[0] * ANN,
            "dispersion": r.iloc[t - W + 1 : t + 1].std(axis=1, ddof=1).mean(),
            "breadth": ((1 + win).prod() > 1).mean(),
            "n_symbols": win.shape[1],
        }
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, rel=1e-8, abs=1e-12), name
        assert row["drawdown"] <= 0 and row["drawdown_from_peak"] <= row["drawdown"] + 1e-15


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_symbols=st.integers(2, 12),
    window=st.integers(3, 30),
    extra=st.integers(0, 25),
    hole_prob=st.floats(0.0, 0.1),
    common=st.floats(0.0, 2.0),
)
def test_average_correlation_equals_corrcoef(seed, n_symbols, window, extra, hole_prob, common):
    """(||sum z||^2 - N) / (N(N-1)) equals the mean off-diagonal of np.corrcoef, symbol sets varying."""
    rng = np.random.default_rng(seed)
    n_dates = window + extra
    r = rng.normal(0, 0.01, (n_dates, n_symbols)) + common * rng.normal(0, 0.01, (n_dates, 1))
    r[rng.random(r.shape) < hole_prob] = np.nan
    frame = pd.DataFrame(r, index=pd.bdate_range("2020-01-01", periods=n_dates))
    mf = market_features(frame, window).set_index("date")
    for date, row in mf.iterrows():
        t = frame.index.get_loc(date)
        win = frame.iloc[t - window + 1 : t + 1].dropna(axis=1)
        assert row["n_symbols"] == win.shape[1]
        if win.shape[1] < 2:
            assert np.isnan(row["correlation"])
            continue
        c = np.corrcoef(win.to_numpy().T)
        n = c.shape[0]
        expected = (c.sum() - n) / (n * (n - 1))
        assert abs(row["correlation"] - expected) < 1e-10


# --------------------------------------------------------------------------- encoder
def test_encoder_dimension_is_fixed_and_padded():
    X = np.random.default_rng(0).normal(size=(40, 5))
    enc = NumericEncoder(n_components=16).fit(X)
    Z = enc.transform(X)
    assert Z.shape == (40, 16)
    assert np.all(Z[:, 5:] == 0) and np.all(np.abs(Z[:, :5]).sum(axis=0) > 0)
    assert enc.explained_variance_ratio_.shape == (16,)
    assert enc.explained_variance_ratio_[:5].sum() == pytest.approx(1.0)
    few = NumericEncoder(n_components=8).fit(X[:3])  # fewer samples than components
    assert few.transform(X).shape == (40, 8) and np.all(few.transform(X)[:, 3:] == 0)
    np.testing.assert_array_equal(NumericEncoder(4).fit(X).transform(X), NumericEncoder(4).fit(X).transform(X))
    assert clone(enc).get_params() == {"n_components": 16, "random_state": 0}


def test_encoder_refuses_nan_and_inf():
    X = np.random.default_rng(0).normal(size=(20, 3))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        NumericEncoder().fit(bad)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        NumericEncoder().fit(X).transform(bad)
    with pytest.raises(ValueError, match="not fitted"):
        NumericEncoder().transform(X)


# --------------------------------------------------------------------------- walk-forward
def test_refit_dates():
    dates = pd.DatetimeIndex(["2020-01-03", "2020-01-06", "2020-02-03", "2020-12-31", "2021-01-04", "2021-03-01"])
    assert list(refit_dates(dates)) == list(pd.DatetimeIndex(["2020-01-03", "2021-01-04"]))
    assert list(refit_dates(dates, "MS")) == list(pd.DatetimeIndex(["2020-01-03", "2020-02-03", "2020-12-31", "2021-01-04", "2021-03-01"]))
    assert list(refit_dates(dates[:3])) == list(refit_dates(dates)[:1])  # prefix of the full answer
    with pytest.raises(ValueError):
        refit_dates(dates, "W")


def _toy_features() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2019-01-01", "2021-12-31")
    rows = pd.DataFrame({"date": np.repeat(dates, 2), "entity_id": np.tile(["A", "B"], len(dates))})
    for col in ["f1", "f2", "f3"]:
        rows[col] = rng.normal(size=len(rows))
    return rows


def test_fit_walk_forward_never_sees_its_fit_date_or_later():
    feats = _toy_features()
    fit_at = refit_dates(pd.DatetimeIndex(feats["date"]))
    models = fit_walk_forward(feats, ["f1", "f2", "f3"], fit_at, min_train_rows=300, n_components=2, prefix="x-")
    # 2019-01-01 has no history; 2020-01-01 has 2 x 261 rows; 2021-01-01 has more.
    assert [m.model_id for m in models] == ["x-enc-20200101", "x-enc-20210101"]
    for m in models:
        assert isinstance(m, FittedEncoder)
        assert m.train_end < m.fit_date and m.train_start == feats["date"].min()
        assert m.n_train == int((feats["date"] < m.fit_date).sum())
    # Same data before the fit date -> same model, whatever comes after.
    later = feats.copy()
    later.loc[later["date"] >= "2020-01-01", "f1"] = 99.0
    again = fit_walk_forward(later, ["f1", "f2", "f3"], fit_at[:2], min_train_rows=300, n_components=2)
    np.testing.assert_array_equal(again[0].encoder.pca_.components_, models[0].encoder.pca_.components_)


def test_embed_walk_forward_uses_the_model_in_force():
    feats = _toy_features()
    cols = ["f1", "f2", "f3"]
    models = fit_walk_forward(feats, cols, refit_dates(pd.DatetimeIndex(feats["date"])), min_train_rows=300, n_components=5)
    z = embed_walk_forward(feats, cols, models, keep_features=True)
    warm = int((feats["date"] < "2020-01-01").sum())
    assert z.attrs["warmup_rows"] == warm and len(z) == len(feats) - warm
    assert list(z.columns) == ["date", "entity_id", "model_id", "z_numeric"] + cols
    assert z.loc[z["date"] < "2021-01-01", "model_id"].eq("enc-20200101").all()
    assert z.loc[z["date"] >= "2021-01-01", "model_id"].eq("enc-20210101").all()
    assert all(isinstance(v, list) and len(v) == 5 and isinstance(v[0], float) for v in z["z_numeric"])
    row = z.iloc[-1]
    direct = models[1].encoder.transform(np.array([[row[c] for c in cols]]))[0]
    np.testing.assert_array_equal(row["z_numeric"], direct)
    assert embed_walk_forward(feats, cols, []).attrs["warmup_rows"] == len(feats)
    arrow = embed_walk_forward(feats, cols, models, z_format="arrow")
    assert str(arrow["z_numeric"].dtype).startswith("fixed_size_list<item: double>[5]")
    assert arrow["z_numeric"].tolist() == z["z_numeric"].tolist()


def test_features_models_and_embeddings_are_truncation_invariant(bundled_returns):
    """History cut at CUT gives exactly the full-history rows for dates <= CUT."""
    W = WINDOW_SPECS["63d"]
    short = bundled_returns.loc[:CUT]

    def pipeline(returns: pd.DataFrame):
        inst = instrument_features(returns, W)
        mkt = market_features(returns, W)
        fit_at = refit_dates(pd.DatetimeIndex(mkt["date"]))
        inst_models = fit_walk_forward(inst, INSTRUMENT_FEATURE_COLUMNS, fit_at, prefix="inst-")
        mkt_models = fit_walk_forward(mkt, MARKET_FEATURE_COLUMNS, fit_at, prefix="mkt-")
        return (
            inst,
            mkt,
            embed_walk_forward(inst, INSTRUMENT_FEATURE_COLUMNS, inst_models),
            embed_walk_forward(mkt, MARKET_FEATURE_COLUMNS, mkt_models),
        )

    full, cut = pipeline(bundled_returns), pipeline(short)
    for whole, part in zip(full, cut):
        head = whole.loc[whole["date"] <= CUT].reset_index(drop=True)
        assert len(head) == len(part) > 0
        pd.testing.assert_frame_equal(head, part.reset_index(drop=True), check_exact=True)


def test_embedding_space_of_a_range_equals_that_range_of_the_full_space(bundled_returns):
    """Fitting only the encoders in force on a range (the daily run) gives the full computation's rows and models."""
    from prometheus_assets.core.embedding_space import fits_in_force, numeric_embedding_space

    returns = bundled_returns.loc[:"2014-12-31"]
    dates = returns.index
    full = numeric_embedding_space(returns, dates[0], dates[-1])
    ids = {e.model_id: e for e in full.encoders}
    for start, end in [(dates[-1], dates[-1]), ("2013-12-20", "2014-01-10"), ("2012-01-03", "2012-01-03"), (dates[0], "2011-03-01")]:
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        part = numeric_embedding_space(returns, start, end)
        expected = full.embeddings[(full.embeddings["as_of_date"] >= start) & (full.embeddings["as_of_date"] <= end)].reset_index(drop=True)
        pd.testing.assert_frame_equal(part.embeddings, expected, check_exact=True)
        assert {e.model_id for e in part.encoders} == set(expected["model_id"])
        for e in part.encoders:  # the same fit (training span and size) as in the full computation
            assert (e.fit_date, e.train_start, e.train_end, e.n_train) == (ids[e.model_id].fit_date, ids[e.model_id].train_start, ids[e.model_id].train_end, ids[e.model_id].n_train)
    fits = pd.DatetimeIndex(["2011-01-03", "2012-01-03", "2013-01-02"])
    assert list(fits_in_force(fits, pd.Timestamp("2012-06-01"), pd.Timestamp("2013-01-02"))) == list(fits[1:])
    assert list(fits_in_force(fits, pd.Timestamp("2010-06-01"), pd.Timestamp("2011-02-01"))) == list(fits[:1])
    assert list(fits_in_force(fits, pd.Timestamp("2013-06-01"), pd.Timestamp("2013-07-01"))) == list(fits[2:])


def test_a_rows_embedding_does_not_depend_on_the_batch():
    """transform(X)[i] == transform(X[i:i+1]) bit for bit (the daily run embeds one day, a backfill years)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 8))
    enc = NumericEncoder(n_components=16).fit(X)
    whole = enc.transform(X)
    for i in (0, 1, 777, 4999):
        np.testing.assert_array_equal(enc.transform(X[i : i + 1])[0], whole[i])
    np.testing.assert_array_equal(enc.transform(X[100:300]), whole[100:300])
    # the same projection as scikit-learn's PCA up to rounding
    np.testing.assert_allclose(whole[:, : enc.n_fitted_components_], enc.pca_.transform(enc.scaler_.transform(X)), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- start invariance (the daily run's lookback window)
def _window(returns: pd.DataFrame, first: int) -> pd.DataFrame:
    """The rows from position ``first`` on, without the symbols that have no value there (as a window read pivots them)."""
    part = returns.iloc[first:]
    return part.loc[:, part.notna().any()]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), window=st.sampled_from([3, 5, 21]), lead=st.integers(0, 60), scale=st.sampled_from([1.0, 1e-3, 50.0]))
def test_window_features_equal_the_full_history_features(seed, window, lead, scale):
    """Features of the rows after a lookback of window - 1 rows are the full history's, bit for bit,
    whatever comes before the lookback (including symbols that delisted before it)."""
    from prometheus_assets.core.encoders import MarketLevel, market_level_at

    rng = np.random.default_rng(seed)
    returns = random_returns(seed, n_dates=160, n_symbols=9) * scale
    returns.iloc[: rng.integers(1, 80), 5] = np.nan  # lists late
    returns.iloc[rng.integers(20, 100):, 6] = np.nan  # delists (maybe before the window)
    returns.iloc[:, 7] = 0.001  # a constant symbol (skew 0, correlation undefined)
    cut = 80 + lead // 2  # the carry's row
    first = cut - (max(window, SHORT_RETURN_DAYS) - 1) - lead % 7  # the lookback: at least the longest window - 1 rows
    carry_date = returns.index[cut]
    part = _window(returns, first)

    full_inst = instrument_features(returns, window)
    win_inst = instrument_features(part, window)
    expected = full_inst[full_inst["date"] > carry_date].reset_index(drop=True)
    got = win_inst[win_inst["date"] > carry_date].reset_index(drop=True)
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True)

    start = market_level_at(returns, carry_date)
    full_mkt = market_features(returns, window)
    got = market_features(part, window, start)
    expected = full_mkt[full_mkt["date"] > carry_date].reset_index(drop=True)
    assert len(got) > 0 and got["date"].min() > carry_date
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # the level carried on from the window equals the one cumulated from the first day
    assert market_level_at(part, returns.index[-1], start) == market_level_at(returns, returns.index[-1])
    assert market_level_at(returns, returns.index[0] - pd.Timedelta(days=1)) == MarketLevel(returns.index[0] - pd.Timedelta(days=1))


def test_pandas_rolling_moments_were_not_start_invariant():
    """Why the features do not use pandas: its rolling mean at t changes with where the data starts."""
    x = pd.Series(np.random.default_rng(0).normal(0, 1, 3000) * np.r_[np.full(1500, 1e4), np.ones(1500)])
    whole = x.rolling(21).mean().iloc[-1]
    window = x.iloc[-21:].rolling(21).mean().iloc[-1]
    assert whole != window  # a few ulps apart
    from prometheus_assets.core.frames import trailing_mean_std

    assert trailing_mean_std(x.to_numpy(), 21, 21)[0][-1] == trailing_mean_std(x.to_numpy()[-21:], 21, 21)[0][-1]


def test_resumed_space_equals_the_full_space():
    """A plan resumed from the carry of the previous session and a lookback window, given the stored
    encoders, emits the full computation's rows and carries out the same state."""
    from prometheus_assets.core.embedding_space import (
        EmbeddingCarry,
        embed_planned,
        fit_planned_encoders,
        lookback_rows_missing,
        numeric_embedding_space,
        plan_embedding_space,
    )

    returns = random_returns(5, n_dates=900, n_symbols=7)
    returns.iloc[300:, 2] = np.nan
    returns = returns.loc[:, returns.notna().any()]
    specs = ("21d", "63d")
    index = returns.index
    for d0, d1 in [(index[-1], index[-1]), (pd.Timestamp("2023-01-02"), pd.Timestamp("2023-01-03")), (index[700], index[760])]:
        pos = index.get_loc(d0)
        full_plan = plan_embedding_space(returns.loc[:d1], d0, d1, window_specs=specs)
        encoders = fit_planned_encoders(full_plan)
        full = embed_planned(full_plan, encoders)
        carry = plan_embedding_space(returns, index[pos - 1], index[pos - 1], window_specs=specs).carry
        carry = EmbeddingCarry.from_payload(carry.payload())  # as stored
        part = _window(returns.loc[:d1], pos - 70)
        assert lookback_rows_missing(part, carry, specs) == 0 and lookback_rows_missing(part.iloc[10:], carry, specs) > 0
        plan = plan_embedding_space(part, d0, d1, carry, window_specs=specs)
        needed = {f.model_id(d) for f, d in plan.needed()}
        assert needed == {e.model_id for e in full.encoders}
        resumed = embed_planned(plan, {k: encoders[k] for k in needed})
        pd.testing.assert_frame_equal(resumed.embeddings, full.embeddings, check_exact=True)
        assert len(resumed.embeddings) > 0 and resumed.carry == full.carry
        assert resumed.warmup_rows == full.warmup_rows
        with pytest.raises(ValueError, match="resumed"):
            fit_planned_encoders(plan)
    whole = numeric_embedding_space(returns, index[0], index[-1], window_specs=specs)
    assert whole.carry.last_fits == {"instrument/21d": pd.Timestamp("2024-01-01"), "market/21d": pd.Timestamp("2024-01-01"),
                                     "instrument/63d": pd.Timestamp("2024-01-01"), "market/63d": pd.Timestamp("2024-01-01")}
