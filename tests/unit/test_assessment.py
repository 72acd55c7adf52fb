"""Assessment engine: point-in-time dataset, purged walk-forward fits, scoring labels, OOS evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import spearmanr

from prometheus_assets.core import assessment as A
from prometheus_assets.core.evaluation import forward_returns
from prometheus_assets.core.synthetic import generate_market

H = 20


# --------------------------------------------------------------------------- fixtures
def _inputs(n_sessions: int, n_assets: int = 15, seed: int = 3, all_sessions: pd.DatetimeIndex | None = None):
    """Synthetic market returns plus hand-made profile / regime / stability frames (documented columns)."""
    sessions = (all_sessions if all_sessions is not None else pd.bdate_range("2015-01-02", periods=n_sessions))[:n_sessions]
    sessions = pd.DatetimeIndex(sessions).astype("datetime64[ns]")
    m = generate_market(sessions, n_assets, seed)
    px = m.bars.pivot(index="date", columns="symbol", values="adj_close").sort_index()
    px.index = pd.DatetimeIndex(px.index).astype("datetime64[ns]")
    rets = px.reindex(sessions).pct_change(fill_method=None).rename_axis(index="date", columns="symbol")
    syms = list(rets.columns)
    cal = pd.DatetimeIndex(all_sessions if all_sessions is not None else sessions).astype("datetime64[ns]")
    month_ends = pd.Series(cal, index=cal).groupby([cal.year, cal.month]).max()
    month_ends = month_ends[month_ends <= sessions[-1]].to_numpy()  # real month ends only (none "so far" in a partial month)
    profiles = pd.DataFrame(
        [(f"I{s}", s, d, "x", list(np.sin(np.arange(4) * (i + 1) + k * 0.1))) for k, d in enumerate(month_ends) for i, s in enumerate(syms)],
        columns=["issuer_id", "symbol", "as_of_date", "sector", "profile_embedding"],
    )
    labs = np.array(["CRISIS", "RISK_OFF", "CARRY", "NEUTRAL", None], dtype=object)
    pos = np.arange(len(sessions))
    regimes = pd.DataFrame(
        {
            "as_of_date": sessions,
            "regime_label": labs[(pos // 30) % 5],
            "confidence": 0.5 + 0.4 * np.cos(pos / 9.0) ** 2,
            "regime_embedding": [[0.1, 0.2, float(i % 7)] for i in pos],
        }
    )
    vol = rets.rolling(21).std().rank(axis=1, pct=True)
    stab = vol.stack().dropna().rename("volatility").reset_index().rename(columns={"date": "as_of_date", "symbol": "entity_id"})
    for c in ["drawdown", "trend", "tail_risk", "market_correlation"]:
        stab[c] = stab["volatility"] * 0.5
    stab["liquidity"] = np.where(np.arange(len(stab)) % 7 == 0, np.nan, 0.3)
    stab["fragility_index"] = stab["volatility"]
    stab["soft_target_class"] = np.array(A.SOFT_TARGET_CLASSES)[np.minimum((stab["volatility"] * 5).astype(int), 4)]
    return sessions, rets, profiles, regimes, stab, m.instruments[["symbol", "sector"]]


@pytest.fixture(scope="module")
def market():
    return _inputs(420)


@pytest.fixture(scope="module")
def dataset(market):
    sessions, rets, prof, reg, stab, ins = market
    return A.build_dataset(H, rets, prof, reg, stab, ins, sessions[260], sessions[-1])


def _leaky_dataset(n_blocks: int = 8, block: int = 50, n_names: int = 20, seed: int = 0):
    """Targets constant within (symbol, block), pure noise across blocks.

    Features: ``px_time`` (session position) and ``px_key`` (a per-symbol constant). A model can
    predict block b's targets only by having trained on rows of block b. Fit dates sit 25 sessions
    into each block, so with H=20 and embargo=5 the purge excludes every row of the fit date's
    block; without it the 25 earlier rows of the block leak the targets of the rest of it (as
    overlapping forward windows do in real data).
    """
    sessions = pd.bdate_range("2010-01-04", periods=n_blocks * block).astype("datetime64[ns]")
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_blocks, n_names))
    pos = np.repeat(np.arange(len(sessions)), n_names)
    sym = np.tile(np.arange(n_names), len(sessions))
    target = z[pos // block, sym]
    ds = pd.DataFrame(
        {
            "as_of_date": sessions[pos],
            "symbol": [f"S{i:02d}" for i in sym],
            "horizon": H,
            "px_time": pos.astype(float),
            "px_key": sym / n_names,
            "target_raw": target,
            "target_excess": target,
        }
    )
    fit_dates = sessions[[b * block + block // 2 for b in range(3, n_blocks)]]
    return ds, sessions, fit_dates, block


# --------------------------------------------------------------------------- dataset
def test_dataset_columns_and_rows(market, dataset):
    sessions, rets, *_ = market
    feats = A.feature_columns(dataset)
    assert list(dataset.columns[:3]) == ["as_of_date", "symbol", "horizon"]
    assert list(dataset.columns[-2:]) == ["target_raw", "target_excess"]
    assert {"prof_00", "prof_03", "regime_CRISIS", "regime_NEUTRAL", "regime_confidence", "regime_emb_2", "stab_liquidity",
            "stab_fragility_index", "stab_class_BREAKER", "px_ret_5", "px_ret_252", "px_vol_63", "px_mdd_21", "px_mom_252_21"} <= set(feats)
    sector_cols = [c for c in feats if c.startswith("sector_")]
    assert sector_cols == sorted(sector_cols) and len(sector_cols) == 11
    # one row per (symbol, date) that has a return, inside the emit window
    window = rets.loc[sessions[260]:]
    assert len(dataset) == int(window.notna().sum().sum())
    assert not dataset.duplicated(["as_of_date", "symbol"]).any()
    # regime label None -> NaN one-hot; known label -> exactly one 1
    onehot = dataset[[f"regime_{r}" for r in A.REGIME_LABELS]]
    known = onehot.notna().all(axis=1)
    assert (onehot[known].sum(axis=1) == 1).all() and onehot[~known].isna().all(axis=None) and (~known).any()
    # profile as-of: a row dated mid-month uses the previous month-end snapshot
    prof = market[2]
    row = dataset.iloc[len(dataset) // 2]
    snap = prof[(prof["symbol"] == row["symbol"]) & (prof["as_of_date"] <= row["as_of_date"])].iloc[-1]
    assert row["prof_01"] == snap["profile_embedding"][1]


def test_targets_match_forward_returns_and_are_nan_at_the_end(market, dataset):
    sessions, rets, *_ = market
    dates = pd.DatetimeIndex(sorted(dataset["as_of_date"].unique()))
    tail = dataset["as_of_date"].isin(dates[-H:])
    assert dataset.loc[tail, ["target_raw", "target_excess"]].isna().all(axis=None)
    assert dataset.loc[dataset["as_of_date"] == dates[-H - 1], "target_raw"].notna().all()
    # inside the 1/99 % bounds, target_raw is exactly the compounded forward return
    fwd = forward_returns(rets, H).rename(columns={"date": "as_of_date"})
    merged = dataset.merge(fwd, on=["as_of_date", "symbol"], how="left")
    q = merged.groupby("as_of_date")["forward_return"]
    lo, hi = q.transform(lambda s: s.quantile(0.01)), q.transform(lambda s: s.quantile(0.99))
    ok = merged["forward_return"].notna()
    assert ((merged.loc[ok, "target_raw"] >= lo[ok] - 1e-15) & (merged.loc[ok, "target_raw"] <= hi[ok] + 1e-15)).all()
    inside = ok & (merged["forward_return"] > lo) & (merged["forward_return"] < hi)
    np.testing.assert_allclose(merged.loc[inside, "target_raw"], merged.loc[inside, "forward_return"], rtol=1e-12)
    # excess is (winsorised) de-meaned: mean ~ 0 per date
    g = dataset.dropna(subset=["target_excess"]).groupby("as_of_date")["target_excess"]
    assert (g.mean().abs() < 0.1 * g.std()).all()


def test_forward_returns_exact_matches_evaluation():
    rng = np.random.default_rng(0)
    r = pd.DataFrame(rng.normal(0, 0.02, (200, 4)), index=pd.bdate_range("2020-01-01", periods=200), columns=list("ABCD"))
    r.iloc[50, 1] = np.nan
    for h in (1, 5, 20):
        a, b = A.forward_returns_exact(r, h), forward_returns(r, h)
        assert a[["date", "symbol"]].equals(b[["date", "symbol"]])
        np.testing.assert_allclose(a["forward_return"], b["forward_return"], rtol=1e-12, atol=1e-15)
        short = A.forward_returns_exact(r.iloc[:150], h)
        assert short.equals(a.iloc[: len(short)])  # bit-identical under truncation


def test_winsorize_cross_section_bounds():
    dates = pd.Series(np.repeat(pd.bdate_range("2020-01-01", periods=2), 101))
    values = pd.Series(np.tile(np.arange(101.0), 2))
    values.iloc[100] = 1e9
    values.iloc[101] = -1e9
    values.iloc[5] = np.nan
    out = A.winsorize_cross_section(values, dates)
    for d in dates.unique():
        v, w = values[dates == d], out[dates == d]
        assert w.min() >= v.quantile(0.01) and w.max() <= v.quantile(0.99)
    assert out.iloc[100] == values.iloc[:101].quantile(0.99) and np.isnan(out.iloc[5]) and out.iloc[50] == 50.0


def test_dataset_is_point_in_time_under_truncation():
    all_sessions = pd.bdate_range("2015-01-02", periods=420)
    full_in = _inputs(420, all_sessions=all_sessions)
    cut = 330
    short_in = _inputs(cut + 1, all_sessions=all_sessions)  # everything regenerated on sessions[:cut+1]
    c = full_in[0][cut]
    full = A.build_dataset(H, *full_in[1:], full_in[0][260], full_in[0][-1])
    short = A.build_dataset(H, *short_in[1:], short_in[0][260], c)
    full = full[full["as_of_date"] <= c].reset_index(drop=True)
    assert len(short) == len(full) and short.columns.equals(full.columns)
    feats = ["as_of_date", "symbol", "horizon", *A.feature_columns(full)]
    pd.testing.assert_frame_equal(short[feats], full[feats], check_exact=True)
    for t in A.TARGETS:
        both = short[t].notna() & full[t].notna()
        assert (short.loc[both, t] == full.loc[both, t]).all()
        # the truncated build knows exactly the targets whose window ends by c
        assert set(short.loc[short[t].isna(), "as_of_date"]) >= set(short_in[0][cut - H + 1 : cut + 1])
        assert short.loc[short["as_of_date"] <= short_in[0][cut - H], t].notna().all()


def test_price_features_by_hand():
    rng = np.random.default_rng(1)
    r = pd.DataFrame({"A": rng.normal(0, 0.03, 300)}, index=pd.bdate_range("2020-01-01", periods=300))
    f = A.price_features(r)
    t = 290
    np.testing.assert_allclose(f["px_ret_5"]["A"].iloc[t], np.prod(1 + r["A"].iloc[t - 4 : t + 1]) - 1, rtol=1e-10)
    np.testing.assert_allclose(f["px_mom_252_21"]["A"].iloc[t], np.prod(1 + r["A"].iloc[t - 251 : t - 20]) - 1, rtol=1e-10)
    wealth = np.concatenate([[1.0], np.cumprod(1 + r["A"].iloc[t - 20 : t + 1].to_numpy())])
    mdd = np.max(1 - wealth / np.maximum.accumulate(wealth))
    np.testing.assert_allclose(f["px_mdd_21"]["A"].iloc[t], mdd, rtol=1e-10)
    assert np.isnan(f["px_ret_252"]["A"].iloc[100])


# --------------------------------------------------------------------------- walk-forward + purge
def test_training_rows_end_before_fit_date_minus_horizon_and_embargo(market, dataset):
    sessions = market[0]
    fit_dates = sessions[[330, 360, 400]]
    models = A.fit_walk_forward(dataset, H, fit_dates, sessions, kind="ridge", embargo=5, min_train_rows=200)
    assert [m.fit_date for m in models] == list(fit_dates)
    for m in models:
        assert sessions.get_loc(m.train_end) + H + 5 < sessions.get_loc(m.fit_date)
        mask = A.training_mask(dataset, H, m.fit_date, sessions, embargo=5)
        pos = sessions.get_indexer(dataset.loc[mask, "as_of_date"])
        assert pos.max() + H + 5 < sessions.get_loc(m.fit_date)
        assert m.n_train == int((mask & dataset["target_excess"].notna()).sum())
        assert m.model_id == f"Assessment_US_EQ_20d-ridge-{m.fit_date:%Y%m%d}" and len(m.config_id) == 12
    # too few rows -> skipped (at sessions[290] only rows up to 264 qualify)
    assert A.fit_walk_forward(dataset, H, [sessions[290]], sessions, kind="ridge", min_train_rows=500) == []


def test_purge_removes_the_leak():
    ds, sessions, fit_dates, block = _leaky_dataset()
    feats = ["px_time", "px_key"]
    ics = {}
    for purge in (True, False):
        models = A.fit_walk_forward(ds, H, fit_dates, sessions, kind="hgb", embargo=5, min_train_rows=100, purge=purge, features=feats)
        assert len(models) == len(fit_dates)
        sc = A.score(ds, models)
        pos = sessions.get_indexer(sc["as_of_date"])
        same_block = sc[pos % block >= block // 2]  # rows scored by the model fit in their own block
        daily = A.daily_metrics(same_block, ds)
        ics[purge] = daily["rank_ic"].mean()
    assert ics[False] > 0.8  # leaked: the model has seen this block's targets
    assert abs(ics[True]) < 0.3  # purged: nothing to learn across blocks


def test_same_seed_same_predictions(dataset, market):
    sessions = market[0]
    for kind in ("hgb", "ridge"):
        a = A.score(dataset, A.fit_walk_forward(dataset, H, [sessions[330]], sessions, kind=kind, min_train_rows=200, random_state=7))
        b = A.score(dataset, A.fit_walk_forward(dataset, H, [sessions[330]], sessions, kind=kind, min_train_rows=200, random_state=7))
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_fit_dates_yearly():
    dates = pd.bdate_range("2019-12-20", "2022-01-10")
    out = A.fit_dates_yearly(dates)
    assert list(out) == [pd.Timestamp("2019-12-20"), pd.Timestamp("2020-01-01"), pd.Timestamp("2021-01-01"), pd.Timestamp("2022-01-03")]


# --------------------------------------------------------------------------- scoring
class _Echo:
    """A stand-in estimator: predicts its single feature."""

    def predict(self, X):
        return X[:, 0]


def _model(fit_date, tag="m"):
    d = pd.Timestamp(fit_date)
    return A.AssessmentModel(f"{tag}-{d:%Y%m%d}", "US_EQ", H, "echo", d, d, d, 1, _Echo(), ("px_x",), "cfg")


def test_score_uses_model_in_force_and_labels_by_documented_quantiles():
    dates = pd.bdate_range("2021-01-04", periods=6).astype("datetime64[ns]")
    rng = np.random.default_rng(0)
    ds = pd.DataFrame(
        [(d, f"S{i:02d}", H, rng.normal()) for d in dates for i in range(20)], columns=["as_of_date", "symbol", "horizon", "px_x"]
    )
    models = [_model(dates[1]), _model(dates[4])]
    sc = A.score(ds, models)
    assert sc["as_of_date"].min() == dates[1]  # rows before the first model dropped
    assert set(sc.loc[sc["as_of_date"] < dates[4], "model_id"]) == {models[0].model_id}
    assert set(sc.loc[sc["as_of_date"] >= dates[4], "model_id"]) == {models[1].model_id}
    for _, g in sc.groupby("as_of_date"):
        np.testing.assert_allclose(g["score"].mean(), 0, atol=1e-12)
        np.testing.assert_allclose(g["score"].std(ddof=0), 1, rtol=1e-12)
        counts = g["label"].value_counts()
        assert counts.to_dict() == {"hold": 8, "buy": 4, "sell": 4, "strong_buy": 2, "short": 2}
        order = g.sort_values("score")["label"].tolist()
        assert order == ["short"] * 2 + ["sell"] * 4 + ["hold"] * 8 + ["buy"] * 4 + ["strong_buy"] * 2


def test_labels_small_and_tied_universes():
    d = pd.Series([pd.Timestamp("2021-01-04")] * 5 + [pd.Timestamp("2021-01-05")])
    labels = A.assign_labels(pd.Series([1.0, 1.0, 1.0, 1.0, 1.0, 3.0]), d)
    assert labels.tolist() == ["hold"] * 6  # all tied -> all hold; a single name -> hold


# --------------------------------------------------------------------------- evaluation
def test_evaluate_rank_ic_equals_direct_spearman(market, dataset):
    sessions = market[0]
    models = A.fit_walk_forward(dataset, H, sessions[[330, 370]], sessions, kind="ridge", min_train_rows=200)
    sc = A.score(dataset, models)
    ev = A.evaluate(sc, dataset, market[3])
    daily = ev["daily"]
    merged = sc.merge(dataset[["as_of_date", "symbol", "target_excess"]], on=["as_of_date", "symbol"]).dropna(subset=["target_excess"])
    direct = {d: spearmanr(g["score"], g["target_excess"]).statistic for d, g in merged.groupby("as_of_date")}
    got = daily.set_index("as_of_date")["rank_ic"].dropna()
    assert len(got) == len(direct) > 0
    for d, v in direct.items():
        assert abs(got[d] - v) < 1e-12
    ov = ev["overall"].iloc[0]
    assert abs(ov["ic_mean"] - np.mean(list(direct.values()))) < 1e-12 and ov["n_dates"] == len(direct)
    assert sc["as_of_date"].min() == sessions[330]  # out of sample only
    # by_regime partitions the evaluated dates; by_period splits them in two halves
    assert ev["by_regime"]["n_dates"].sum() == ov["n_dates"]
    bp = ev["by_period"]
    assert bp["period"].tolist() == ["first_half", "second_half"] and bp["n_dates"].sum() == ov["n_dates"]
    assert bp["period_end"].iloc[0] < bp["period_start"].iloc[1]
    assert 0 <= ov["top_turnover"] <= 1 and np.isfinite(ov["quintile_spread"])
    assert ov["n_dates_nonoverlap"] == len(range(0, len(direct), H))


def test_quintile_spread_and_turnover_by_hand():
    dates = pd.bdate_range("2021-01-04", periods=2).astype("datetime64[ns]")
    syms = [f"S{i}" for i in range(10)]
    sc = pd.DataFrame({"as_of_date": np.repeat(dates, 10), "symbol": syms * 2, "horizon": H, "model_id": "m", "kind": "k",
                       "expected_return": 0.0, "score": list(range(10)) + list(range(10))[::-1], "label": "hold"})
    ds = sc[["as_of_date", "symbol", "horizon"]].assign(target_excess=list(range(10)) * 2)
    daily = A.daily_metrics(sc, ds)
    # date 1: top quintile S8,S9 (targets 8,9), bottom S0,S1 (0,1) -> spread 8; date 2 reversed -> -8
    assert daily["quintile_spread"].tolist() == [8.0, -8.0]
    assert np.isnan(daily["top_turnover"].iloc[0]) and daily["top_turnover"].iloc[1] == 1.0
    assert daily["rank_ic"].tolist() == pytest.approx([1.0, -1.0])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300))
def test_label_bands_are_symmetric_and_near_documented_shares(n):
    labels = A.assign_labels(pd.Series(np.arange(n, dtype=float)), pd.Series([pd.Timestamp("2021-01-04")] * n))
    c = labels.value_counts().reindex(list(A.LABELS), fill_value=0)
    assert c["strong_buy"] == c["short"] and c["buy"] == c["sell"] and c.sum() == n
    assert abs(c["strong_buy"] - 0.1 * n) <= 1 and abs(c["strong_buy"] + c["buy"] - 0.3 * n) <= 1
    # monotone in score
    order = {lab: i for i, lab in enumerate(reversed(A.LABELS))}
    assert (np.diff(labels.map(order).to_numpy()) >= 0).all()


def test_a_feature_without_any_value_is_left_out_not_fatal():
    from prometheus_assets.core import assessment as A

    rng = np.random.default_rng(3)
    sessions = pd.bdate_range("2019-01-01", periods=700)
    rows = [(d, f"S{s}", rng.normal(), np.nan, rng.normal()) for d in sessions for s in range(8)]
    data = pd.DataFrame(rows, columns=["as_of_date", "symbol", "px_ret_5", "stab_liquidity", "target_excess"])
    data["horizon"] = 5
    models = A.fit_walk_forward(data, 5, [sessions[600]], pd.DatetimeIndex(sessions), kind="hgb", features=["px_ret_5", "stab_liquidity"])
    assert len(models) == 1 and models[0].feature_columns == ("px_ret_5",)
    assert np.isfinite(models[0].predict(data.head(10))).all()


def test_parallel_fits_equal_sequential_fits():
    from prometheus_assets.core import assessment as A

    rng = np.random.default_rng(5)
    sessions = pd.bdate_range("2019-01-01", periods=600)
    rows = [(d, f"S{s}", rng.normal(), rng.normal(), rng.normal()) for d in sessions for s in range(6)]
    data = pd.DataFrame(rows, columns=["as_of_date", "symbol", "px_ret_5", "px_ret_21", "target_excess"]).assign(horizon=5)
    fits = [sessions[300], sessions[450]]
    one = A.fit_walk_forward(data, 5, fits, pd.DatetimeIndex(sessions), kind="hgb", features=["px_ret_5", "px_ret_21"], n_jobs=1)
    two = A.fit_walk_forward(data, 5, fits, pd.DatetimeIndex(sessions), kind="hgb", features=["px_ret_5", "px_ret_21"], n_jobs=2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a.predict(data), b.predict(data))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.integers(1, 40), st.integers(1, 6))
def test_winsorize_matches_per_date_series_quantiles(seed, n, days):
    from prometheus_assets.core import assessment as A

    rng = np.random.default_rng(seed)
    dates = pd.Series(np.repeat(pd.bdate_range("2020-01-01", periods=days), n))
    values = pd.Series(rng.standard_t(2, size=len(dates)))
    values[rng.random(len(values)) < 0.1] = np.nan
    got = A.winsorize_cross_section(values, dates)
    for d in dates.unique():
        m = (dates == d).to_numpy()
        s = values[m]
        pd.testing.assert_series_equal(got[m], s.clip(s.quantile(A.WINSOR_LOWER), s.quantile(A.WINSOR_UPPER)), check_names=False, check_exact=False, rtol=1e-12, atol=0)


def test_a_rows_prediction_does_not_depend_on_the_batch():
    # BLAS blocks X @ coef by batch size; predictions must be bit-identical row by row
    from prometheus_assets.core.assessment import AssessmentModel, make_estimator

    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 37))
    y = X @ rng.normal(size=37) + rng.normal(size=2000)
    cols = tuple(f"f{i}" for i in range(37))
    frame = pd.DataFrame(X, columns=cols)
    for kind in ("ridge", "hgb"):
        est = make_estimator(kind).fit(X, y)
        model = AssessmentModel("m", "US_EQ", 5, kind, pd.Timestamp("2020-01-02"), pd.Timestamp("2019-01-02"), pd.Timestamp("2019-12-01"), 2000, est, cols, "c")
        whole = model.predict(frame)
        for n in (1, 7, 333, 1999):
            assert np.array_equal(model.predict(frame.iloc[:n]), whole[:n]), (kind, n)
            assert np.array_equal(model.predict(frame.iloc[-n:]), whole[-n:]), (kind, n)
        if kind == "ridge":
            np.testing.assert_allclose(whole, est.predict(X), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- model reuse (fingerprints)
def _fingerprint_data(n_days: int = 400, seed: int = 5) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2019-01-01", periods=n_days)
    rows = [(d, f"S{s}", rng.normal(), rng.normal(), rng.normal()) for d in sessions for s in range(6)]
    data = pd.DataFrame(rows, columns=["as_of_date", "symbol", "px_ret_5", "px_ret_21", "target_excess"]).assign(horizon=5)
    return data, pd.DatetimeIndex(sessions)


def _prints(data: pd.DataFrame, sessions: pd.DatetimeIndex, fits) -> dict[str, str]:
    walk = A.plan_walk_forward(data, 5, fits, sessions, kind="ridge", features=["px_ret_5", "px_ret_21"], min_train_rows=100)
    return {p.model_id: p.fingerprint for p in walk.plans}


def test_fingerprint_of_a_past_fit_ignores_later_rows_and_sees_any_change_in_its_training_rows():
    data, sessions = _fingerprint_data()
    fits = [sessions[150], sessions[300]]
    full = _prints(data, sessions, fits)
    assert len(full) == 2 and len(set(full.values())) == 2
    # history that ends earlier (the daily run of an earlier day) gives the same fingerprint to the earlier fit
    shorter = data[data["as_of_date"] <= sessions[200]]
    early = min(full)
    assert _prints(shorter, sessions[:201], [sessions[150]])[early] == full[early]
    # the same rows in another order are another fit (float sums depend on the order)
    assert _prints(data.sample(frac=1.0, random_state=1).reset_index(drop=True), sessions, fits) != full
    # one training row of the first fit changed: both fits change (the second trains on it too)
    changed = data.copy()
    changed.loc[10, "px_ret_5"] += 1e-12
    assert all(_prints(changed, sessions, fits)[k] != v for k, v in full.items())
    # a row after both training windows changed: nothing changes
    late = data.copy()
    late.loc[late.index[-1], "target_excess"] += 1.0
    assert _prints(late, sessions, fits) == full
    # a different seed is a different model
    walk = A.plan_walk_forward(data, 5, fits, sessions, kind="ridge", features=["px_ret_5", "px_ret_21"], min_train_rows=100, random_state=1)
    assert {p.fingerprint for p in walk.plans}.isdisjoint(full.values())


def test_planned_fits_equal_fit_walk_forward():
    data, sessions = _fingerprint_data(300)
    fits = [sessions[120], sessions[250]]
    direct = A.fit_walk_forward(data, 5, fits, sessions, kind="hgb", features=["px_ret_5", "px_ret_21"], min_train_rows=100)
    walk = A.plan_walk_forward(data, 5, fits, sessions, kind="hgb", features=["px_ret_5", "px_ret_21"], min_train_rows=100)
    planned = A.fit_planned(walk, walk.plans[1:]) + A.fit_planned(walk, walk.plans[:1])
    planned = sorted(planned, key=lambda m: m.fit_date)
    for a, b in zip(direct, planned, strict=True):
        assert (a.model_id, a.train_start, a.train_end, a.n_train, a.feature_columns) == (b.model_id, b.train_start, b.train_end, b.n_train, b.feature_columns)
        np.testing.assert_array_equal(a.predict(data), b.predict(data))


def test_models_in_force_are_exactly_the_models_score_uses():
    fits = pd.to_datetime(["2020-01-02", "2021-01-04", "2022-01-03"])
    models = [_model(d, tag) for d in fits for tag in ("a",)]
    table = pd.DataFrame({"model_id": [m.model_id for m in models], "kind": "echo", "fit_date": fits})
    days = pd.bdate_range("2019-12-20", "2022-06-30")
    data = pd.DataFrame({"as_of_date": days.repeat(3), "symbol": np.tile(["A", "B", "C"], len(days)), "horizon": H, "px_x": np.arange(3 * len(days), dtype=float)})
    for start, end in [("2021-06-01", "2021-06-01"), ("2020-12-30", "2021-01-05"), ("2019-12-20", "2019-12-31"), ("2022-01-03", "2022-06-30"), ("2019-12-20", "2022-06-30")]:
        in_range = data[(data["as_of_date"] >= start) & (data["as_of_date"] <= end)]
        used = set(A.score(in_range, models)["model_id"])
        chosen = A.models_in_force(table, pd.Timestamp(start), pd.Timestamp(end))
        assert set(chosen["model_id"]) == used, (start, end)
        pd.testing.assert_frame_equal(A.score(in_range, [m for m in models if m.model_id in set(chosen["model_id"])]), A.score(in_range, models))


def test_headline_ic_on_short_histories():
    # what `evaluate` gives before any model has scored (no columns) and with some horizons only
    assert np.isnan(A.headline_ic(pd.DataFrame([])))
    assert np.isnan(A.headline_ic(None))
    some = pd.DataFrame({"horizon": [5, 5], "kind": ["hgb", "ridge"], "ic_mean": [0.1, 0.2]})
    assert np.isnan(A.headline_ic(some, horizon=20, kind="hgb"))
    assert A.headline_ic(some, horizon=5, kind="ridge") == 0.2


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.floats(-5, 5)), min_size=1, max_size=40),
       st.integers(0, 40), st.integers(0, 10), st.booleans())
def test_asof_candidates_change_no_as_of_pick(rows, start, span, by_symbol):
    # the rows the dataset keeps before its as-of joins (bounded work per day) give the same joined
    # values as all rows, for every emitted date >= emit_from, ties on a date included
    day0 = pd.Timestamp("2020-01-01")
    right = pd.DataFrame({"symbol": [f"S{s}" for s, _, _ in rows], "as_of_date": [day0 + pd.Timedelta(days=d) for _, d, _ in rows],
                          "value": [v for _, _, v in rows]}, columns=["symbol", "as_of_date", "value"])
    right["as_of_date"] = right["as_of_date"].astype("datetime64[ns]")
    emit_from = day0 + pd.Timedelta(days=start)
    dates = pd.date_range(emit_from, periods=span + 1, freq="D").as_unit("ns")
    left = pd.DataFrame([(d, f"S{s}") for d in dates for s in range(4)], columns=["as_of_date", "symbol"])
    by = "symbol" if by_symbol else None
    cut = A._asof_candidates(right, emit_from, by)
    if by is None:
        right, cut, left = right.drop(columns="symbol"), cut.drop(columns="symbol"), left[["as_of_date"]]
    pd.testing.assert_frame_equal(A._asof(left, cut, by), A._asof(left, right, by))


def _pandas_price_features(returns: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The price features written with pandas' rolling windows and a cumulative-sum drawdown (the
    formulation before the fixed-order one): an independent reference for the values."""
    import math

    r = returns.astype("float64")
    logs = np.log1p(r)
    traded = r.notna().astype("float64")
    out = {}

    def enough(k):
        return traded.rolling(k, min_periods=1).sum() >= math.ceil(0.8 * k)

    for k in (5, 21, 63, 252):
        out[f"px_ret_{k}"] = np.expm1(logs.rolling(k, min_periods=1).sum()).where(enough(k))
    for k in (21, 63):
        out[f"px_vol_{k}"] = r.rolling(k, min_periods=math.ceil(0.8 * k)).std()
    k = 21
    wealth = logs.fillna(0.0).cumsum().to_numpy()
    t, n = wealth.shape
    q = np.vstack([np.full((k, n), np.nan), np.zeros((1, n)), wealth])
    running, worst = np.full((t, n), np.nan), np.zeros((t, n))
    for j in range(k + 1):
        level = q[j + 1: j + 1 + t]
        running = np.fmax(running, level)
        worst = np.fmin(worst, level - running)
    out["px_mdd_21"] = pd.DataFrame(-np.expm1(worst), index=r.index, columns=r.columns).where(enough(k))
    span = 231
    out["px_mom_252_21"] = np.expm1(logs.rolling(span, min_periods=1).sum().shift(21)).where(
        traded.rolling(span, min_periods=1).sum().shift(21) >= math.ceil(0.8 * span))
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.integers(0, 120), st.floats(0.0, 0.3))
def test_price_features_match_pandas_and_do_not_depend_on_where_the_data_starts(seed, cut, missing):
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2010-01-04", periods=420)
    returns = pd.DataFrame(rng.normal(0.0005, 0.02, size=(len(days), 4)), index=days, columns=list("ABCD"))
    returns = returns.mask(rng.random(returns.shape) < missing)
    full = A.price_features(returns)
    reference = _pandas_price_features(returns)
    assert list(full) == list(reference)
    for name in full:
        pd.testing.assert_frame_equal(full[name], reference[name], check_exact=False, rtol=1e-9, atol=1e-12, check_freq=False)
    # a frame starting `cut` rows later gives the same bits on every row with PRICE_FEATURE_LOOKBACK rows before it
    later = A.price_features(returns.iloc[cut:])
    keep = returns.index[cut + A.PRICE_FEATURE_LOOKBACK:]
    for name in full:
        pd.testing.assert_frame_equal(later[name].loc[keep], full[name].loc[keep], check_exact=True, check_freq=False)


def test_dataset_asof_inputs_are_read_from_a_window_unless_a_latest_row_is_older(home):
    """The dataset asset reads profile snapshots / regime rows from ASOF_LOOKBACK sessions before its first day when
    that window holds every symbol's latest row on or before that day; otherwise the whole history (same joins)."""
    from prometheus_assets.assets.assessment import ASOF_LOOKBACK, _asof_rows
    from prometheus_assets.assets.history import lookback_start
    from prometheus_assets.resources import StorageResource
    from prometheus_assets.resources.storage import ParquetStore

    store, storage = ParquetStore(str(home)), StorageResource(home=str(home))
    month_ends = pd.DatetimeIndex(["2019-10-31", "2019-11-29", "2019-12-31", "2020-01-31", "2020-02-28", "2020-03-31"])
    rows = pd.DataFrame({"as_of_date": month_ends.repeat(2), "symbol": ["A", "B"] * len(month_ends), "profile_embedding": [[0.1, 0.2]] * 12})
    rows = rows[~((rows["symbol"] == "B") & (rows["as_of_date"] > "2019-11-30"))]  # B's last snapshot is old
    store.write_dated("profile_snapshots", rows, month_ends, date_column="as_of_date")
    first, last = pd.Timestamp("2020-03-16"), pd.Timestamp("2020-03-31")
    start = lookback_start(first, ASOF_LOOKBACK)
    assert start > pd.Timestamp("2019-11-29")
    windowed = _asof_rows(storage, "profile_snapshots", first, last, {"A"})
    assert windowed["as_of_date"].min() >= start and set(windowed["symbol"]) == {"A"}
    # B's latest snapshot before the first day is older than the window: everything is read
    whole = _asof_rows(storage, "profile_snapshots", first, last, {"A", "B"})
    assert len(whole) == len(rows) and whole["as_of_date"].min() == month_ends[0]
    # market-level rows (no symbol): a window with no row on or before the first day reads everything
    regimes = pd.DataFrame({"as_of_date": pd.DatetimeIndex(["2019-06-03", "2020-03-20"]), "regime_label": ["CARRY", "NEUTRAL"]})
    store.write_dated("regime_states", regimes, pd.DatetimeIndex(regimes["as_of_date"]), date_column="as_of_date")
    assert len(_asof_rows(storage, "regime_states", first, last, None)) == 2
    assert len(_asof_rows(storage, "regime_states", pd.Timestamp("2020-03-23"), last, None)) == 1


def test_dataset_of_one_day_takes_an_older_stability_row_as_the_whole_history_does(home, market):
    """A symbol without a stability row on the run's day gets its latest earlier row, in a one-day run as in a backfill.

    Regression: the dataset asset read ``soft_target_classes`` for its own dates only, so where a
    symbol's row was missing on the day (the as-of join then takes an earlier one) a daily run
    stored NaN stability features and a whole-history build stored the earlier row's values.
    """
    from prometheus_assets.assets.assessment import _asof_rows
    from prometheus_assets.resources import StorageResource
    from prometheus_assets.resources.storage import ParquetStore

    sessions, rets, prof, reg, stab, ins = market
    day, gap_symbol = sessions[300], str(rets.columns[0])
    stab = stab[~((stab["entity_id"] == gap_symbol) & stab["as_of_date"].isin(sessions[296:301]))].reset_index(drop=True)
    ParquetStore(str(home)).write_dated("soft_target_classes", stab, sessions, date_column="as_of_date")
    read = _asof_rows(StorageResource(home=str(home)), "soft_target_classes", day, day, {str(c) for c in rets.columns}, key="entity_id")
    assert read["as_of_date"].min() < day  # the gap symbol's latest row before the day is read

    stab_cols = [c for c in A.feature_columns(A.build_dataset(H, rets, prof, reg, stab, ins, day, day)) if c.startswith("stab_")]
    whole = A.build_dataset(H, rets, prof, reg, stab, ins, sessions[260], sessions[-1])
    whole = whole[whole["as_of_date"] == day].reset_index(drop=True)
    one_day = A.build_dataset(H, rets, prof, reg, read, ins, day, day)
    assert whole.loc[whole["symbol"] == gap_symbol, "stab_volatility"].notna().all()  # the earlier row's values
    pd.testing.assert_frame_equal(one_day[["symbol", *stab_cols]], whole[["symbol", *stab_cols]], check_exact=True)
    # what the asset read before: only the day's own rows, and NaN for the gap symbol
    own_day = A.build_dataset(H, rets, prof, reg, stab[stab["as_of_date"] == day], ins, day, day)
    assert own_day.loc[own_day["symbol"] == gap_symbol, stab_cols].isna().all().all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=300), st.integers(1, 120), st.integers(0, 200), st.integers(0, 3))
def test_training_row_cap_samples_point_in_time_and_reproducibly(mask, cap, later, seed):
    """At most ``cap`` of the set rows, all of them below it, the same rows again, and the same rows
    when rows are appended after the window (a longer history): the sample does not look ahead."""
    mask = np.array(mask, dtype=bool)
    day = pd.Timestamp("2015-01-02")
    capped = A.cap_training_rows(mask, cap, day, 5, seed)
    assert capped.sum() == min(mask.sum(), cap) and not (capped & ~mask).any()
    assert np.array_equal(capped, A.cap_training_rows(mask, cap, day, 5, seed))
    longer = np.concatenate([mask, np.zeros(later, dtype=bool)])  # rows dated after the window are never training rows
    assert np.array_equal(A.cap_training_rows(longer, cap, day, 5, seed)[: len(mask)], capped)
    assert A.cap_training_rows(mask, None, day, 5, seed) is mask


def test_a_capped_window_trains_on_a_seeded_sample():
    data, sessions = _fingerprint_data()
    fits = [sessions[150], sessions[300]]
    features = ["px_ret_5", "px_ret_21"]
    whole = A.plan_walk_forward(data, 5, fits, sessions, kind="ridge", features=features, min_train_rows=100, max_train_rows=None)
    capped = A.plan_walk_forward(data, 5, fits, sessions, kind="ridge", features=features, min_train_rows=100, max_train_rows=300)
    assert all(p.n_train > 300 for p in whole.plans) and [p.n_train for p in capped.plans] == [300, 300]
    assert all(not (c.mask & ~w.mask).any() for c, w in zip(capped.plans, whole.plans))
    assert {p.fingerprint for p in capped.plans}.isdisjoint(p.fingerprint for p in whole.plans)  # another model, refitted
    again = A.plan_walk_forward(data, 5, fits, sessions, kind="ridge", features=features, min_train_rows=100, max_train_rows=300)
    assert [p.fingerprint for p in again.plans] == [p.fingerprint for p in capped.plans]
    # the default cap is far above this window: the default plan is the uncapped one
    default = A.plan_walk_forward(data, 5, fits, sessions, kind="ridge", features=features, min_train_rows=100)
    assert [p.fingerprint for p in default.plans] == [p.fingerprint for p in whole.plans]
    assert A.walk_forward_header("ridge", 5, features)["max_train_rows"] == A.MAX_TRAIN_ROWS
