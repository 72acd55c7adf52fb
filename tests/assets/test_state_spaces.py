"""The shared state spaces built by the graph: walk-forward provenance, truncation invariance, views."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from prometheus_assets import lookahead
from prometheus_assets.definitions import build_definitions
from prometheus_assets.resources.models import ModelStore
from prometheus_assets.resources.storage import ParquetStore
from tests.conftest import run_range, synthetic

#: Every point-in-time table of the graph and its date column, from the Definitions: each
#: daily-partitioned asset and each unpartitioned one declaring ``point_in_time_column``.
POINT_IN_TIME = lookahead.point_in_time_tables(build_definitions(synthetic("/tmp/unused", "2017-03-31")))

STATE_VIEWS = {"numeric_embeddings", "regime_states", "regime_transitions", "stability_vectors", "soft_target_classes", "profile_snapshots"}


def test_every_state_space_is_a_duckdb_view(full_build):
    con = duckdb.connect(str(full_build / "prometheus.duckdb"), read_only=True)
    views = {r[0] for r in con.execute("show tables").fetchall()}
    assert STATE_VIEWS <= views
    # Every stability class exists somewhere is a core test; here: the classes are the documented ones.
    classes = {r[0] for r in con.execute("select distinct soft_target_class from soft_target_classes").fetchall()}
    assert classes <= {"STABLE", "WATCH", "FRAGILE", "TARGETABLE", "BREAKER"} and len(classes) >= 3
    labels = {r[0] for r in con.execute("select distinct regime_label from regime_states where regime_label is not null").fetchall()}
    assert labels <= {"CRISIS", "RISK_OFF", "CARRY", "NEUTRAL"} and labels
    dims = {r[0] for r in con.execute("select distinct len(z_numeric) from numeric_embeddings").fetchall()}
    assert dims == {16}
    n_fund = con.execute("select count(*) from profile_snapshots where leverage is not null").fetchone()[0]
    assert n_fund > 0  # synthetic fundamentals reach the profiles


def test_models_are_walk_forward_and_stored(full_build):
    store = ModelStore(str(full_build))
    emb = ParquetStore(str(full_build)).read("numeric_embeddings", date_column="as_of_date")
    assert not emb.empty
    for model_id, rows in emb.groupby("model_id"):
        manifest = store.manifest("numeric_encoder", model_id)
        assert pd.Timestamp(manifest["train_end"]) < rows["as_of_date"].min(), model_id
        assert pd.Timestamp(manifest["fit_date"]) <= rows["as_of_date"].min()
    regimes = ParquetStore(str(full_build)).read("regime_states", date_column="as_of_date")
    assert (pd.to_datetime(regimes["train_end"]) < regimes["as_of_date"]).all()
    for model_id in regimes["regime_model_id"].unique():
        store.load("regime_model", model_id)  # integrity-checked load works


def test_every_daily_asset_is_a_point_in_time_table():
    defs = build_definitions(synthetic("/tmp/unused", "2017-03-31"))
    daily = {spec.key.path[-1] for spec in defs.resolve_all_asset_specs() if spec.partitions_def is not None}
    assert len(daily) >= 21 and daily <= set(POINT_IN_TIME)
    assert POINT_IN_TIME["closed_trades"] == "exit_date" and POINT_IN_TIME["numeric_embeddings"] == "as_of_date"
    # unpartitioned tables whose rows are final on their date declare it; whole-history summaries do not
    assert {"allocator_risk_v1_applied", "edge_history", "pm_sizing", "assessment_models"} <= set(POINT_IN_TIME)
    assert not {"sleeve_metrics", "assessment_evaluation", "meta_orchestrator", "instruments"} & set(POINT_IN_TIME)


@pytest.mark.slow
def test_truncated_history_gives_identical_rows(full_build, tmp_path):
    # The same function `prometheus lookahead` runs (on the full bundled history: see the README).
    comparisons = lookahead.run(synthetic(full_build, "2017-03-31"), "2016-06-30", str(tmp_path), full_home=str(full_build))
    report = "\n".join(lookahead.report(comparisons))
    assert {c.table for c in comparisons} == set(POINT_IN_TIME)
    assert all(c.ok for c in comparisons), report
    assert all(c.rows > 0 for c in comparisons), report  # nothing passes by being empty


def test_split_backfill_equals_one_backfill(full_build, tmp_path):
    split = tmp_path / "split"
    # The first range is all warm-up (no regime label, no model score yet: columns without a value,
    # tables without rows), which broke the next ranges' reads before (bench/scale.py builds so).
    run_range(synthetic(split, "2017-03-31"), "2014-01-02", "2014-12-31")
    run_range(synthetic(split, "2017-03-31"), "2015-01-02", "2016-01-15")
    second = run_range(synthetic(split, "2017-03-31"), "2016-01-19", "2017-03-31")
    comparisons = lookahead.compare(str(full_build), str(split), "2017-03-31", POINT_IN_TIME)
    assert all(c.ok for c in comparisons), "\n".join(lookahead.report(comparisons))
    # the second run's books continued from the state the first run stored at its last close
    for asset in ("target_portfolios", "sleeve_returns", "sleeve_positions", "closed_trades", "portfolio_returns"):
        assert (split / "state" / asset / "2016-01-15.json").exists()
        assert _materialization_metadata(second, asset, partition="2016-01-19")["resumed_from_state"] is True
    # so did the (unpartitioned) edge layer: its statistics, sized books and listing ages
    assert (split / "state" / "edge_layer" / "2016-01-15.json").exists()
    assert _materialization_metadata(second, "pattern_scope_stats")["resumed_from_state"] is True
    # the carried states at the last close and the whole-table meta selection are the same bytes too
    from tests.conftest import tree_hashes

    watched = ("state/closed_trades/2017-03-31.json", "state/portfolio_returns/2017-03-31.json", "state/meta_orchestrator/manifest.json",
               "parquet/meta_orchestrator/data.parquet")
    one, two = tree_hashes(full_build, "**/*"), tree_hashes(split, "**/*")
    assert {k: two.get(k) for k in watched} == {k: one[k] for k in watched}
    meta = _materialization_metadata(second, "meta_orchestrator")
    assert 0 < meta["reused"] and meta["reused"] + meta["computed_this_run"] == meta["selections"]


# --------------------------------------------------------------------------- assessment layer (same build)
ASSESSMENT_VIEWS = {
    "assessment_dataset_5d", "assessment_dataset_20d", "assessment_dataset_60d",
    "assessment_models", "assessment_scores", "assessment_evaluation", "strategy_signals",
}


def test_assessment_views_and_report(full_build):
    con = duckdb.connect(str(full_build / "prometheus.duckdb"), read_only=True)
    assert ASSESSMENT_VIEWS <= {r[0] for r in con.execute("show tables").fetchall()}
    labels = {r[0] for r in con.execute("select distinct label from assessment_scores").fetchall()}
    assert labels <= {"strong_buy", "buy", "hold", "sell", "short"} and len(labels) == 5
    lo, hi = con.execute("select min(alpha_score), max(alpha_score) from strategy_signals").fetchone()
    assert -1 <= lo <= hi <= 1
    clo, chi = con.execute("select min(confidence), max(confidence) from strategy_signals").fetchone()
    assert 0 <= clo <= chi <= 1
    sections = {r[0] for r in con.execute("select distinct section from assessment_evaluation").fetchall()}
    assert {"overall", "by_regime", "by_period", "strategy_ic", "alpha_decay"} <= sections
    report = (full_build / "reports" / "assessment_ic.md").read_text()
    assert "By regime label" in report and "Alpha-score strategies" in report


def test_assessment_models_are_purged_walk_forward_and_verified(full_build):
    from prometheus_assets.core import calendar

    models = ParquetStore(str(full_build)).read("assessment_models")
    assert set(models["horizon"]) == {5, 20, 60} and set(models["kind"]) == {"hgb", "ridge"}
    sessions = calendar.trading_sessions("2014-01-02", "2017-12-29")
    for row in models.itertuples():
        # the last training row's target window (t+1 … t+H) plus the 5-session embargo ends before the fit date
        assert sessions.get_loc(row.train_end) + row.horizon + 5 < sessions.get_loc(row.fit_date), row.model_id
        assert ModelStore(str(full_build)).load("assessment_model", row.model_id).model_id == row.model_id
    scores = ParquetStore(str(full_build)).read("assessment_scores", date_column="as_of_date")
    fit_of = models.set_index("model_id")["fit_date"]
    assert (scores["model_id"].map(fit_of) <= scores["as_of_date"]).all()


def _materialization_metadata(result, key: str, partition: str | None = None) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    (event,) = [e for e in events if partition is None or e.partition == partition]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_daily_run_reuses_stored_models_and_refits_only_a_changed_one(full_build, tmp_path):
    """The models of a second run are reused when their training data is unchanged (no refit), bit for bit."""
    import json
    import shutil

    from tests.conftest import tree_hashes

    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    before = tree_hashes(home, "**/*")
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=["assessment_models"])
    meta = _materialization_metadata(result, "assessment_models")
    assert meta["fitted_this_run"] == 0 and meta["reused"] == meta["models"] > 0
    after = tree_hashes(home, "**/*")
    assert {k: v for k, v in after.items() if k.startswith(("models/", "parquet/assessment_models"))} == {
        k: v for k, v in before.items() if k.startswith(("models/", "parquet/assessment_models"))}
    # a model whose recorded training data differs (e.g. upstream rows were corrected) is refitted — to the same model
    models = ParquetStore(str(home)).read("assessment_models")
    victim = models["model_id"].iloc[0]
    old_model = ModelStore(str(home)).load("assessment_model", victim)
    manifest_path = home / "models" / "assessment_model" / f"{victim}.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["training_fingerprint"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest, sort_keys=True))
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=["assessment_models"])
    assert _materialization_metadata(result, "assessment_models")["fitted_this_run"] == 1
    new_model = ModelStore(str(home)).load("assessment_model", victim)
    data = ParquetStore(str(home)).read(f"assessment_dataset_{old_model.horizon}d", date_column="as_of_date")
    np.testing.assert_array_equal(new_model.predict(data), old_model.predict(data))
    again = ParquetStore(str(home)).read("assessment_models")
    pd.testing.assert_frame_equal(again.drop(columns="sha256"), models.drop(columns="sha256"), check_exact=True)


def test_daily_regime_run_carries_the_stored_state_and_reuses_the_model(full_build, tmp_path):
    """The EOD run of regime_states loads the model in force and carries the hysteresis from the
    previous session's stored row; a stale previous row makes it replay, with the same bytes."""
    import json
    import shutil

    from tests.conftest import tree_hashes

    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    store = ParquetStore(str(home))
    states = store.read("regime_states", date_column="as_of_date")
    day = states["as_of_date"].iloc[-1].strftime("%Y-%m-%d")
    watched = lambda: {k: v for k, v in tree_hashes(home, "**/*").items() if k.startswith(("models/regime_model", "parquet/regime_states"))}  # noqa: E731
    before = watched()

    result = run_range(synthetic(home, "2017-03-31"), day, day, selection=["regime_states"])
    meta = _materialization_metadata(result, "regime_states")
    assert meta["carried_from_stored_row"] == 1 and meta["models_fitted_this_run"] == 0
    assert watched() == before

    # a previous row that no longer matches what the model gives is not carried: the day is replayed
    previous = states.iloc[[-2]].copy()
    previous["confidence"] = previous["confidence"] * 0.5
    store.write_dated("regime_states", previous, [previous["as_of_date"].iloc[0]], date_column="as_of_date")
    result = run_range(synthetic(home, "2017-03-31"), day, day, selection=["regime_states"])
    assert _materialization_metadata(result, "regime_states")["carried_from_stored_row"] == 0
    again = store.read("regime_states", date_column="as_of_date")
    pd.testing.assert_frame_equal(again.iloc[[-1]], states.iloc[[-1]], check_exact=True)

    # a model whose recorded training data differs is refitted, to the same bytes
    model_id = states["regime_model_id"].iloc[-1]
    manifest_path = home / "models" / "regime_model" / f"{model_id}.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["training_fingerprint"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest, sort_keys=True))
    store.write_dated("regime_states", states.iloc[[-2]], [states["as_of_date"].iloc[-2]], date_column="as_of_date")
    result = run_range(synthetic(home, "2017-03-31"), day, day, selection=["regime_states"])
    meta = _materialization_metadata(result, "regime_states")
    assert meta["models_fitted_this_run"] == 1 and meta["carried_from_stored_row"] == 1
    assert watched() == before


def test_daily_run_reads_no_dataset_row_and_refits_only_the_models_a_changed_file_feeds(full_build, tmp_path):
    """Reuse is decided from the sha256 of the year files before each fit date; a changed file is seen and its models refitted."""
    import shutil

    from tests.conftest import tree_hashes

    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=["assessment_models"])
    meta = _materialization_metadata(result, "assessment_models")
    assert meta["checked_from_data"] == 0 and meta["fitted_this_run"] == 0 and meta["reused"] == meta["models"] > 0
    # a corrected upstream partition: one feature value of 2015 in the 5-day dataset changes
    store = ParquetStore(str(home))
    frame = store.read("assessment_dataset_5d", "2015-01-01", "2015-12-31", date_column="as_of_date")
    frame.loc[frame["px_ret_5"].notna().idxmax(), "px_ret_5"] += 0.5
    store.write_dated("assessment_dataset_5d", frame, pd.DatetimeIndex(frame["as_of_date"].unique()), date_column="as_of_date")
    before = tree_hashes(home, "models/**/*")
    models = store.read("assessment_models")
    affected = models[(models["horizon"] == 5) & (pd.to_datetime(models["fit_date"]) > "2015-12-31")]
    assert len(affected) == 4  # the 2016 and 2017 fits of both kinds train on that row
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=["assessment_models"])
    meta = _materialization_metadata(result, "assessment_models")
    assert meta["checked_from_data"] == 4 and meta["fitted_this_run"] == 4
    incremental = tree_hashes(home, "models/**/*")
    changed = {k for k, v in incremental.items() if before.get(k) != v}
    assert changed == {f"models/assessment_model/{m}.{ext}" for m in affected["model_id"] for ext in ("joblib", "json")}
    # the refitted models and their manifests are those a run without any stored model writes
    shutil.rmtree(home / "models" / "assessment_model")
    run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=["assessment_models"])
    assert {k: v for k, v in tree_hashes(home, "models/**/*").items() if "assessment_model/" in k} == {
        k: v for k, v in incremental.items() if "assessment_model/" in k}


def test_evaluation_state_incremental_run_equals_a_from_scratch_run(full_build, tmp_path):
    """assessment_evaluation keeps per-date rows in yearly blocks: a run after an upstream change recomputes only the
    blocks that read the changed file, and gives the bytes a run without any state gives."""
    import shutil

    from tests.conftest import tree_hashes

    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    output = "parquet/assessment_evaluation/data.parquet"
    built = tree_hashes(home, "**/*")
    assert any(k.startswith("state/assessment_evaluation/assessment/") for k in built)
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=["assessment_evaluation"])
    assert _materialization_metadata(result, "assessment_evaluation")["blocks_recomputed"] == 0
    after = tree_hashes(home, "**/*")
    assert {k: v for k, v in after.items() if k.startswith(("state/", "parquet/assessment_evaluation", "reports/"))} == {
        k: v for k, v in built.items() if k.startswith(("state/", "parquet/assessment_evaluation", "reports/"))}
    # a re-materialized upstream partition with other content: the regime label of some 2016 days changes
    store = ParquetStore(str(home))
    regimes = store.read("regime_states", "2016-01-01", "2016-12-31", date_column="as_of_date")
    days = regimes["as_of_date"].isin(regimes["as_of_date"].unique()[100:140])
    assert days.sum() > 0
    regimes.loc[days, "regime_label"] = np.where(regimes.loc[days, "regime_label"] == "CRISIS", "NEUTRAL", "CRISIS")
    store.write_dated("regime_states", regimes, pd.DatetimeIndex(regimes["as_of_date"].unique()), date_column="as_of_date")
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=["assessment_evaluation"])
    # the 2016 block reads that file, the 2017 block too (the latest regime row before its first date)
    assert _materialization_metadata(result, "assessment_evaluation")["blocks_recomputed"] == 2
    incremental = tree_hashes(home, "**/*")
    assert incremental[output] != built[output]  # the change reached the by-regime tables
    shutil.rmtree(home / "state")
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=["assessment_evaluation"])
    assert _materialization_metadata(result, "assessment_evaluation")["blocks_recomputed"] > 2
    scratch = tree_hashes(home, "**/*")
    keys = [k for k in scratch if k.startswith(("state/", "parquet/assessment_evaluation", "reports/"))]
    assert {k: scratch[k] for k in keys} == {k: incremental.get(k) for k in keys}


SLEEVE_EVALUATION = ["sleeve_metrics", "sleeve_rolling_metrics", "combination_comparison"]


def test_sleeve_evaluation_state_incremental_run_equals_a_from_scratch_run(full_build, tmp_path):
    """sleeve_evaluation keeps the per-date alpha ICs, and its year-slice and rolling rows, in yearly blocks: a run after
    an upstream change recomputes only the blocks whose window reads the changed file, and gives the bytes a run without
    any state gives."""
    import shutil

    from tests.conftest import tree_hashes

    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    outputs = tuple(f"parquet/{t}/" for t in SLEEVE_EVALUATION)
    mine = ("state/sleeve_evaluation/", *outputs)
    built = tree_hashes(home, "**/*")
    assert {f"state/sleeve_evaluation/alpha/{y}.parquet" for y in range(2014, 2018)} <= set(built)
    assert {f"state/sleeve_evaluation/summary/{s}/2017.parquet" for s in ("years", "rolling")} <= set(built)
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=SLEEVE_EVALUATION)
    assert _materialization_metadata(result, "sleeve_metrics")["ic_blocks_recomputed"] == 0
    assert _materialization_metadata(result, "sleeve_metrics")["summary_blocks_recomputed"] == 0
    after = tree_hashes(home, "**/*")
    assert {k: v for k, v in after.items() if k.startswith(mine)} == {k: v for k, v in built.items() if k.startswith(mine)}
    # a re-materialized upstream partition with other content: the 2016 alpha scores of one strategy move
    store = ParquetStore(str(home))
    signals = store.read("strategy_signals", "2016-01-01", "2016-12-31")
    days = signals["date"].isin(signals["date"].unique()[100:140]) & (signals["strategy"] == "momentum_rank")
    assert days.sum() > 0
    signals.loc[days, "alpha_score"] = -signals.loc[days, "alpha_score"]
    store.write_dated("strategy_signals", signals, pd.DatetimeIndex(signals["date"].unique()))
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=SLEEVE_EVALUATION)
    # the 2016 block reads that file, and so does the 2017 block (its lookback reaches back into 2016)
    assert _materialization_metadata(result, "sleeve_metrics")["ic_blocks_recomputed"] == 2
    # the year and rolling rows of 2016 and 2017 read ICs of the 2016 block; earlier years' do not
    assert _materialization_metadata(result, "sleeve_metrics")["summary_blocks_recomputed"] == 4
    incremental = tree_hashes(home, "**/*")
    assert incremental["state/sleeve_evaluation/summary/years/2015.parquet"] == built["state/sleeve_evaluation/summary/years/2015.parquet"]
    assert incremental["parquet/sleeve_metrics/data.parquet"] != built["parquet/sleeve_metrics/data.parquet"]
    assert incremental["state/sleeve_evaluation/alpha/2015.parquet"] == built["state/sleeve_evaluation/alpha/2015.parquet"]
    shutil.rmtree(home / "state" / "sleeve_evaluation")
    result = run_range(synthetic(home, "2017-03-31"), "2017-03-31", "2017-03-31", selection=SLEEVE_EVALUATION)
    assert _materialization_metadata(result, "sleeve_metrics")["ic_blocks_recomputed"] == 4
    # every summary block again: two sections per year in which a book has returns (from its first trade)
    blocks = [k for k in built if k.startswith("state/sleeve_evaluation/summary/") and k.endswith(".parquet")]
    assert len(blocks) >= 6 and _materialization_metadata(result, "sleeve_metrics")["summary_blocks_recomputed"] == len(blocks)
    scratch = tree_hashes(home, "**/*")
    keys = [k for k in scratch if k.startswith(mine)]
    assert {k: scratch[k] for k in keys} == {k: incremental.get(k) for k in keys}


def test_daily_embedding_run_resumes_from_a_window_and_reuses_the_encoders(full_build, tmp_path):
    """The EOD run of numeric_embeddings reads a lookback window, continues from the state carried out
    of the previous session and loads the encoders in force: the same bytes as the full build. A state
    or an encoder that no longer matches its inputs is not used (the run reads from the first day)."""
    import json
    import shutil

    from tests.conftest import tree_hashes

    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    store = ParquetStore(str(home))
    days = store.read("numeric_embeddings", date_column="as_of_date")["as_of_date"].drop_duplicates().sort_values()
    day, previous = days.iloc[-1].strftime("%Y-%m-%d"), days.iloc[-2].strftime("%Y-%m-%d")
    state_of = lambda d: home / "state" / "numeric_embeddings" / f"{d}.json"  # noqa: E731
    assert state_of(day).exists()  # the one-run build carried its state out of its last day
    full_state = state_of(day).read_bytes()
    watched = lambda: {k: v for k, v in tree_hashes(home, "**/*").items() if k.startswith(("models/numeric_encoder", "parquet/numeric_embeddings"))}  # noqa: E731
    before = watched()

    # a run of the previous day alone (no state before it: from the first day) leaves its state
    meta = _materialization_metadata(run_range(synthetic(home, "2017-03-31"), previous, previous, selection=["numeric_embeddings"]), "numeric_embeddings")
    assert meta["resumed_from_state"] == 0 and meta["encoders_fitted_this_run"] > 0
    assert watched() == before and state_of(previous).exists()

    # the EOD run: resumed, nothing fitted, the same rows, models and carried state
    meta = _materialization_metadata(run_range(synthetic(home, "2017-03-31"), day, day, selection=["numeric_embeddings"]), "numeric_embeddings")
    assert meta["resumed_from_state"] == 1 and meta["encoders_fitted_this_run"] == 0 and meta["encoders_used"] == 6
    assert watched() == before and state_of(day).read_bytes() == full_state

    # an encoder whose recorded training inputs differ is not reused: the day is recomputed from the first day, to the same bytes
    model_id = store.read("numeric_embeddings", date_column="as_of_date").query("entity_type == 'market'")["model_id"].iloc[-1]
    manifest_path = home / "models" / "numeric_encoder" / f"{model_id}.json"
    original = manifest_path.read_text()
    manifest_path.write_text(json.dumps({**json.loads(original), "training_inputs": "0" * 64}, sort_keys=True))
    meta = _materialization_metadata(run_range(synthetic(home, "2017-03-31"), day, day, selection=["numeric_embeddings"]), "numeric_embeddings")
    assert meta["resumed_from_state"] == 0 and meta["encoders_fitted_this_run"] == 6
    assert manifest_path.read_text() == original and watched() == before

    # an edited carried state is refused too
    state = json.loads(state_of(previous).read_text())
    state_of(previous).write_text(json.dumps({**state, "market_peak": (float.fromhex(state["market_peak"]) + 1e-9).hex()}, sort_keys=True))
    meta = _materialization_metadata(run_range(synthetic(home, "2017-03-31"), day, day, selection=["numeric_embeddings"]), "numeric_embeddings")
    assert meta["resumed_from_state"] == 0 and watched() == before and state_of(day).read_bytes() == full_state
