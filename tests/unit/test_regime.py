"""The regime space: economic naming of clusters (permutation invariant), the hysteresis state
machine (resumable), transitions, and the walk-forward regime history on the bundled data."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_assets.core import regime as rg
from prometheus_assets.core.regime import (
    ECONOMIC_COLUMNS,
    REGIME_LABELS,
    NumericRegimeModel,
    RegimeMemory,
    label_clusters,
    regime_history,
    smooth_regimes,
    transitions,
)

CUT = "2015-06-30"
STRESSED = {"CRISIS", "RISK_OFF"}
CALM = {"CARRY", "NEUTRAL"}


# --------------------------------------------------------------------------- naming clusters
def test_label_clusters_by_economic_meaning():
    means = pd.DataFrame(
        {
            "vol": [0.12, 0.45, 0.22, 0.14],
            "drawdown": [-0.01, -0.25, -0.06, -0.02],
            "correlation": [0.25, 0.70, 0.45, 0.30],
            "trend": [0.05, -0.60, -0.05, 0.30],
        }
    )
    assert label_clusters(means) == ["NEUTRAL", "CRISIS", "RISK_OFF", "CARRY"]
    with pytest.raises(ValueError, match="at least 4"):
        label_clusters(means.iloc[:3])
    six = pd.concat([means, means.iloc[[0, 3]] * 1.01], ignore_index=True)
    labels = label_clusters(six)
    assert sorted(set(labels)) == sorted(REGIME_LABELS) and labels.count("NEUTRAL") == 3


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 8), ties=st.booleans())
def test_label_clusters_is_permutation_invariant(seed, n, ties):
    rng = np.random.default_rng(seed)
    means = pd.DataFrame(rng.normal(size=(n, 4)), columns=list(ECONOMIC_COLUMNS))
    if ties:
        means.iloc[1] = means.iloc[0]
    perm = rng.permutation(n)
    labels = np.array(label_clusters(means), dtype=object)
    permuted = np.array(label_clusters(means.iloc[perm].reset_index(drop=True)), dtype=object)
    if ties:  # identical clusters may swap their names with each other, nothing else
        assert sorted(permuted) == sorted(labels)
        same = [i for i in range(n) if not (means.iloc[i] == means.iloc[0]).all()]
        assert all(permuted[list(perm).index(i)] == labels[i] for i in same)
    else:
        np.testing.assert_array_equal(permuted, labels[perm])


# --------------------------------------------------------------------------- the raw model
def _blobs(seed: int = 0, n: int = 150):
    """Four well-separated clusters in 3-D with economics typical of each regime."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8]], dtype=float)
    econ_of = {  # vol, drawdown, correlation, trend
        0: (0.12, -0.01, 0.25, 0.05),  # NEUTRAL
        1: (0.45, -0.25, 0.70, -0.60),  # CRISIS
        2: (0.22, -0.06, 0.45, -0.05),  # RISK_OFF
        3: (0.14, -0.02, 0.30, 0.30),  # CARRY
    }
    which = np.repeat(np.arange(4), n)
    X = centres[which] + rng.normal(0, 0.5, (len(which), 3))
    econ = pd.DataFrame([econ_of[k] for k in which], columns=list(ECONOMIC_COLUMNS)) + rng.normal(0, 0.005, (len(which), 4))
    truth = np.array(["NEUTRAL", "CRISIS", "RISK_OFF", "CARRY"], dtype=object)[which]
    return X, econ, truth


def _permuted_copy(model: NumericRegimeModel, perm: np.ndarray, X: np.ndarray, econ: pd.DataFrame) -> NumericRegimeModel:
    """The same mixture with its components renumbered, named again from its statistics."""
    other = copy.deepcopy(model)
    gm = other.mixture_
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        setattr(gm, attr, getattr(gm, attr)[perm])
    other._name_clusters(X, econ[list(ECONOMIC_COLUMNS)].to_numpy())
    return other


def test_regime_model_names_clusters_and_predicts():
    X, econ, truth = _blobs()
    model = NumericRegimeModel(random_state=0).fit(X, econ)
    pred = model.predict(X)
    assert list(pred.columns) == ["raw_label", "confidence"] + [f"dist_{lab}" for lab in REGIME_LABELS]
    assert (pred["raw_label"].to_numpy() == truth).mean() > 0.99
    assert pred["confidence"].between(0, 1).all()
    assert model.prototypes_.shape == (4, 3)
    np.testing.assert_allclose(pred["dist_CRISIS"], np.linalg.norm(X - model.prototypes_[0], axis=1))
    np.testing.assert_allclose(model.prototypes_[0], [8, 0, 0], atol=0.2)  # the CRISIS blob
    nearest = pred[[f"dist_{lab}" for lab in REGIME_LABELS]].to_numpy().argmin(axis=1)
    assert (np.asarray(REGIME_LABELS, dtype=object)[nearest] == truth).mean() > 0.99
    assert sorted(model.label_of_cluster_) == sorted(REGIME_LABELS)


def test_permuting_clusters_gives_the_same_labels():
    X, econ, _ = _blobs(1)
    model = NumericRegimeModel(random_state=0).fit(X, econ)
    base = model.predict(X)
    for perm in ([3, 2, 1, 0], [1, 0, 3, 2], [2, 3, 0, 1]):
        other = _permuted_copy(model, np.array(perm), X, econ)
        np.testing.assert_array_equal(other.label_of_cluster_, model.label_of_cluster_[perm])
        np.testing.assert_array_equal(other.prototypes_, model.prototypes_)
        pd.testing.assert_frame_equal(other.predict(X), base)


def test_different_seeds_number_clusters_differently_but_agree_on_labels():
    X, econ, _ = _blobs(2)
    models = [NumericRegimeModel(random_state=s).fit(X, econ) for s in range(6)]
    orders = {tuple(m.label_of_cluster_) for m in models}
    assert len(orders) > 1  # the seeds really do number the clusters differently ...
    labels = [m.predict(X) for m in models]
    for other in labels[1:]:  # ... yet every day gets the same label
        pd.testing.assert_series_equal(other["raw_label"], labels[0]["raw_label"])
        np.testing.assert_allclose(other["confidence"], labels[0]["confidence"], atol=1e-6)


def test_regime_model_refuses_bad_input():
    X, econ, _ = _blobs(3, n=10)
    with pytest.raises(ValueError, match="n_clusters"):
        NumericRegimeModel(n_clusters=3).fit(X, econ)
    with pytest.raises(ValueError, match="missing"):
        NumericRegimeModel().fit(X, econ.drop(columns="trend"))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        NumericRegimeModel().fit(bad, econ)


# --------------------------------------------------------------------------- hysteresis
def _raw(labels: list[str], conf: list[float] | None = None) -> pd.DataFrame:
    idx = pd.bdate_range("2020-01-01", periods=len(labels))
    return pd.DataFrame({"raw_label": labels, "confidence": conf if conf is not None else [0.9] * len(labels)}, index=idx)


def test_hysteresis_hand_example():
    seq = ["NEUTRAL"] * 5 + ["RISK_OFF"] * 3 + ["NEUTRAL"] + ["RISK_OFF"] * 5 + ["CRISIS"] * 2 + ["NEUTRAL"] * 4 + ["CARRY"] * 5
    out, mem = smooth_regimes(_raw(seq), min_dwell=5, crisis_fast_track=2)
    labels = out["regime_label"].tolist()
    assert labels[:4] == [None] * 4 and labels[4] == "NEUTRAL"  # the first label needs the dwell too
    assert labels[5:13] == ["NEUTRAL"] * 8  # 3 RISK_OFF days broken by a NEUTRAL day, then 5 more
    assert labels[13] == "RISK_OFF" and out["days_in_regime"].iloc[13] == 1
    assert labels[14] == "RISK_OFF" and labels[15] == "CRISIS"  # fast track: 2 days
    assert labels[16:24] == ["CRISIS"] * 8  # leaving CRISIS needs the full dwell:
    assert (out["candidate_label"].iloc[19], out["candidate_days"].iloc[19]) == ("NEUTRAL", 4)  # 4 is not enough
    assert (out["candidate_label"].iloc[23], out["candidate_days"].iloc[23]) == ("CARRY", 4)
    assert labels[24] == "CARRY" and out["days_in_regime"].iloc[23] == 9
    assert mem == RegimeMemory(label="CARRY", candidate=None, candidate_days=0, days_in_regime=1)


def test_low_confidence_days_do_not_count():
    seq = ["NEUTRAL"] * 5 + ["RISK_OFF"] * 6
    conf = [0.9] * 5 + [0.9, 0.9, 0.3, 0.9, 0.9, 0.9]
    out, _ = smooth_regimes(_raw(seq, conf), min_dwell=3)
    assert out["regime_label"].tolist()[-1] == "RISK_OFF"
    assert out["regime_label"].tolist()[:10].count("RISK_OFF") == 0  # streak broken on day 7
    assert out["candidate_days"].tolist()[5:] == [1, 2, 0, 1, 2, 0]


@settings(max_examples=150, deadline=None)
@given(
    labels=st.lists(st.sampled_from(REGIME_LABELS), min_size=1, max_size=80),
    split=st.integers(0, 80),
    seed=st.integers(0, 1000),
    min_dwell=st.integers(1, 6),
    fast=st.integers(1, 4),
)
def test_resuming_from_memory_equals_one_run(labels, split, seed, min_dwell, fast):
    conf = np.random.default_rng(seed).uniform(0.2, 1.0, len(labels)).tolist()
    raw = _raw(labels, conf)
    split = min(split, len(raw))
    kwargs = dict(min_dwell=min_dwell, crisis_fast_track=fast, enter_confidence=0.5)
    whole, mem_whole = smooth_regimes(raw, **kwargs)
    first, mem = smooth_regimes(raw.iloc[:split], **kwargs)
    second, mem_end = smooth_regimes(raw.iloc[split:], memory=mem, **kwargs)
    pd.testing.assert_frame_equal(pd.concat([first, second]), whole, check_exact=True)
    assert mem_end == mem_whole
    # The published label only changes after a qualifying streak.
    changed = whole["regime_label"].ne(whole["regime_label"].shift()) & whole["regime_label"].notna()
    for i in np.flatnonzero(changed.to_numpy()):
        new = whole["regime_label"].iloc[i]
        need = fast if new == "CRISIS" else min_dwell
        assert i + 1 >= need and all(labels[k] == new and conf[k] >= 0.5 for k in range(i - need + 1, i + 1))


def test_transitions():
    states = pd.DataFrame(
        {
            "date": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-06", "2020-01-01", "2020-01-02", "2020-01-03"]),
            "region": ["US", "US", "US", "US", "EU", "EU", "EU"],
            "regime_label": [None, "NEUTRAL", "CRISIS", "CRISIS", "CARRY", "CARRY", "RISK_OFF"],
            "confidence": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
        }
    )
    tr = transitions(states.sample(frac=1, random_state=0))
    assert list(tr.columns) == ["region", "date", "from_label", "to_label", "confidence"]
    assert tr.values.tolist() == [
        ["EU", pd.Timestamp("2020-01-03"), "CARRY", "RISK_OFF", 0.99],
        ["US", pd.Timestamp("2020-01-03"), "NEUTRAL", "CRISIS", 0.7],
    ]


# --------------------------------------------------------------------------- bundled data
@pytest.fixture(scope="module")
def bundled_returns() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset().pct_change(fill_method=None)


@pytest.fixture(scope="module")
def history(bundled_returns) -> pd.DataFrame:
    return regime_history(bundled_returns)


def test_regimes_make_economic_sense_on_bundled_data(history):
    h = history.set_index("date")
    label = h["regime_label"]
    for event in ("2008-09-15", "2020-03-09"):  # Lehman; the COVID crash
        after = label.loc[event:].iloc[1:16]
        assert len(after) == 15 and after.isin(STRESSED).all(), (event, after.value_counts().to_dict())
    assert label.loc["2017"].isin(CALM).mean() >= 0.70
    labelled = label.dropna()
    years = (labelled.index[-1] - labelled.index[0]).days / 365.25
    n_transitions = len(transitions(history))
    assert n_transitions / years < 8
    assert set(labelled.unique()) == set(REGIME_LABELS)


def test_regime_history_is_walk_forward(history):
    assert (history["train_end"] < history["date"]).all()
    fit_dates = pd.to_datetime(history["regime_model_id"].str[-8:], format="%Y%m%d")
    assert (fit_dates <= history["date"]).all()
    enc_fit = pd.to_datetime(history["encoder_id"].str[-8:], format="%Y%m%d")
    assert (enc_fit == fit_dates).all()
    assert history["date"].is_monotonic_increasing and not history["date"].duplicated().any()


def test_regime_history_is_truncation_invariant(bundled_returns, history):
    cut = regime_history(bundled_returns.loc[:CUT])
    head = history.loc[history["date"] <= CUT].reset_index(drop=True)
    assert len(head) == len(cut) > 0
    pd.testing.assert_frame_equal(head, cut, check_exact=True)


# --------------------------------------------------------------------------- incremental pieces (the daily run)
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), cuts=st.lists(st.integers(1, 399), max_size=6))
def test_predict_is_batch_invariant(seed, cuts):
    """A day's raw regime does not depend on how many days are predicted with it (the daily run predicts one)."""
    X, econ, _ = _blobs(seed % 7, n=100)
    model = NumericRegimeModel(random_state=0).fit(X, econ)
    rng = np.random.default_rng(seed)
    Z = rng.normal(0, 4, (400, 3))
    whole = model.predict(Z)
    bounds = [0, *sorted(set(cuts)), 400]
    parts = pd.concat([model.predict(Z[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a], ignore_index=True)
    pd.testing.assert_frame_equal(parts, whole, check_exact=True)
    singles = pd.concat([model.predict(Z[i : i + 1]) for i in range(0, 400, 37)], ignore_index=True)
    pd.testing.assert_frame_equal(singles, whole.iloc[::37].reset_index(drop=True), check_exact=True)
    # the same formula as scikit-learn, to rounding
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        reference = model.mixture_.predict_proba(Z) @ model.membership_
    np.testing.assert_allclose(model.predict_proba(Z), reference, rtol=0, atol=1e-12)


def test_memory_of_row_reads_missing_labels_as_none():
    row = pd.Series({"regime_label": np.nan, "candidate_label": "CRISIS", "candidate_days": np.int64(1), "days_in_regime": np.int64(0)})
    assert rg.memory_of_row(row) == RegimeMemory(label=None, candidate="CRISIS", candidate_days=1, days_in_regime=0)
    row = pd.Series({"regime_label": "CARRY", "candidate_label": None, "candidate_days": 0, "days_in_regime": 12})
    assert rg.memory_of_row(row) == RegimeMemory(label="CARRY", candidate=None, candidate_days=0, days_in_regime=12)


@pytest.fixture(scope="module")
def pieces(bundled_returns):
    features = rg.regime_features(bundled_returns)
    plans = rg.plan_regime_fits(features)
    models = [rg.fit_planned(features, p) for p in plans]
    return features, plans, models


def test_fit_planned_equals_walk_forward(bundled_returns, pieces):
    """One planned fit gives the model the walk-forward loop fits on that date (same bytes), and the plan's span is its span."""
    from prometheus_assets.core.encoders import fit_walk_forward, refit_dates
    from prometheus_assets.core.regime import REGIME_FEATURE_COLUMNS, fit_regime_walk_forward
    from prometheus_assets.resources.models import model_bytes

    features, plans, models = pieces
    spec = rg.RegimeSpec()
    encoders = fit_walk_forward(features, REGIME_FEATURE_COLUMNS, refit_dates(pd.DatetimeIndex(features["date"])), n_components=spec.n_components, prefix=spec.prefix)
    reference = fit_regime_walk_forward(features, REGIME_FEATURE_COLUMNS, encoders, prefix=spec.prefix)
    assert [m.model_id for m in reference] == [p.model_id for p in plans] == [m.model_id for m in models]
    for plan, ref, model in zip(plans, reference, models):
        assert model_bytes(model) == model_bytes(ref), plan.model_id
        assert (plan.fit_date, plan.train_start, plan.train_end, plan.n_train) == (ref.fit_date, ref.train_start, ref.train_end, ref.n_train)


def test_fingerprint_sees_training_rows_only(bundled_returns, pieces):
    features, plans, _ = pieces
    prints = [rg.training_fingerprint(features, p) for p in plans]
    assert len(set(prints)) == len(prints)
    cut = features[features["date"] <= "2010-06-30"]
    assert [rg.training_fingerprint(cut, p) for p in rg.plan_regime_fits(cut)] == prints[:19]  # later rows: same fits
    changed = features.copy()
    row = changed.index[changed["date"] == pd.Timestamp("2009-03-10")][0]
    changed.loc[row, "vol"] = np.nextafter(changed.loc[row, "vol"], np.inf)  # one ulp on one training row
    moved = [rg.training_fingerprint(changed, p) for p in rg.plan_regime_fits(changed)]
    assert [a == b for a, b in zip(prints, moved)] == [p.fit_date.year <= 2009 for p in plans]
    assert rg.training_fingerprint(features, plans[0], rg.RegimeSpec(random_state=1)) != prints[0]


def _stored(states: pd.DataFrame) -> pd.DataFrame:
    """States as a reader may give them back (a missing label as NaN rather than None)."""
    out = states.copy()
    for col in ("regime_label", "candidate_label"):
        out[col] = out[col].astype(object).where(out[col].notna(), np.nan)
    return out


@settings(max_examples=25, deadline=None)
@given(first=st.integers(0, 7700), length=st.integers(1, 300))
def test_resuming_from_the_previous_row_equals_the_full_history(bundled_returns, history, pieces, first, length):
    """Rows from the models in force and the stored previous row equal the one-shot history, bit for bit."""
    features, plans, models = pieces
    start = history["date"].iloc[first]
    end = history["date"].iloc[min(first + length, len(history) - 1)]
    expected = history[(history["date"] >= start) & (history["date"] <= end)].reset_index(drop=True)
    if first == 0:
        got, _ = rg.regime_states(features, models, None, end)
    else:
        previous = _stored(history).iloc[first - 1]
        in_force = {p.model_id for p in rg.plans_in_force(plans, previous["date"], end)}
        assert len(in_force) <= 1 + (end.year - previous["date"].year)
        got = rg.resume_regime_states(features, [m for m in models if m.model_id in in_force], previous, start, end)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_a_stale_previous_row_is_refused(history, pieces):
    features, plans, models = pieces
    i = 5000
    previous = history.iloc[i - 1].copy()
    start = end = history["date"].iloc[i]
    assert rg.resume_regime_states(features, models, previous, start, end) is not None
    for col, value in (("confidence", np.nextafter(previous["confidence"], 0)), ("regime_model_id", "US-market-63d-regime-19990104"),
                       ("z_numeric", [*previous["z_numeric"][:2], 0.0])):
        stale = previous.copy()
        stale[col] = value
        assert rg.resume_regime_states(features, models, stale, start, end) is None, col


def test_regime_pipeline_rows_start_at_the_first_model(history, pieces):
    features, plans, _ = pieces
    dates = rg.regime_row_dates(features, plans)
    assert list(dates) == list(history["date"])
    assert rg.plans_in_force(plans, None, dates[-1]) == plans
    assert [p.model_id for p in rg.plans_in_force(plans, pd.Timestamp("2008-01-02"), pd.Timestamp("2008-12-31"))] == ["US-market-63d-regime-20080102"]
    assert [p.model_id for p in rg.plans_in_force(plans, pd.Timestamp("2007-12-31"), pd.Timestamp("2008-01-02"))] == [
        "US-market-63d-regime-20070103", "US-market-63d-regime-20080102"]


def test_a_daily_runs_timeline_shows_the_stored_last_year(home):
    """The regime timeline of a one-day run shows the stored labels of the year before it (252 sessions in all); a run
    as long as that, or a root without stored labels, shows its own rows only."""
    from prometheus_assets.assets.regime import TIMELINE_SESSIONS, timeline_labels
    from prometheus_assets.core import calendar
    from prometheus_assets.resources import StorageResource
    from prometheus_assets.resources.storage import ParquetStore

    sessions = pd.DatetimeIndex(calendar.trading_sessions(pd.Timestamp("2020-01-02"), pd.Timestamp("2021-12-31")))
    storage = StorageResource(home=str(home))
    day = sessions[-1]
    own = pd.DataFrame({"as_of_date": [day], "regime_label": ["CARRY"]})
    shown, first = timeline_labels(storage, own, day, day)
    assert shown.equals(own)  # nothing stored yet
    stored = pd.DataFrame({"as_of_date": sessions[:-1], "region": "US", "regime_label": "NEUTRAL", "confidence": 0.5})
    ParquetStore(str(home)).write_dated("regime_states", stored, sessions[:-1], date_column="as_of_date")
    shown, first = timeline_labels(storage, own, day, day)
    assert list(shown.columns) == ["as_of_date", "regime_label"]
    assert len(shown) == TIMELINE_SESSIONS and shown["as_of_date"].is_monotonic_increasing
    assert first == shown["as_of_date"].iloc[0] and shown.iloc[-1].tolist() == [day, "CARRY"]
    # a run of a year or more shows exactly its own rows
    run = pd.DataFrame({"as_of_date": sessions[-300:], "regime_label": "RISK_OFF"})
    shown, first = timeline_labels(storage, run, sessions[-300], day)
    assert shown.equals(run) and first == sessions[-300]


def test_the_transitions_a_run_reports_are_label_changes_in_its_range():
    """Regression: the regime_states metadata counted None -> None and None -> first label as transitions, and a
    daily run (one row) always reported 0, even on a day its label changed from the stored one."""
    from prometheus_assets.assets.regime import transitions_from

    days = pd.bdate_range("2024-01-01", periods=6)
    labels = pd.DataFrame({"as_of_date": days, "regime_label": [None, None, "CARRY", "CARRY", "RISK_OFF", "RISK_OFF"]})
    assert transitions_from(labels, days[0]) == 1
    assert transitions_from(labels.iloc[:4], days[0]) == 0  # warm-up then a first label: no change
    assert transitions_from(labels, days[4]) == 1  # a daily run of days[4] beside the stored labels before it
    assert transitions_from(labels, days[5]) == 0
