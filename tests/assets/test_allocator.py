"""Allocator v1 on the built graph: views and meta JSON, incremental state, modes, frozen baselines, audit."""

import json
import shutil

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from prometheus_assets.core.allocator.apply import ExposureApplierV1, monthly_rebalance_dates, scale_returns
from prometheus_assets.core.allocator.state import AllocatorStateV1
from prometheus_assets.definitions import build_definitions
from prometheus_assets.resources.baselines import BaselineError
from prometheus_assets.resources.storage import ParquetStore
from tests.conftest import QUIET, run_range, synthetic

ALLOCATOR_VIEWS = {"allocator_state_v1", "allocator_regime_v1", "allocator_risk_v1", "allocator_risk_v1_applied", "portfolio_returns_scaled", "allocator_two_pass_audit"}
APPLIED = ["allocator_risk_v1_applied", "portfolio_returns_scaled"]


def read(home, table):
    return ParquetStore(str(home)).read(table)


def test_views_meta_json_and_all_ten_features(full_build):
    con = duckdb.connect(str(full_build / "prometheus.duckdb"), read_only=True)
    assert ALLOCATOR_VIEWS <= {r[0] for r in con.execute("show tables").fetchall()}
    meta = json.loads((full_build / "allocator_state_v1_meta.json").read_text())
    assert meta["version"] == "allocator_state_v1" and len(meta["features"]) == 10
    assert meta["lookbacks"] == {"volatility": [20, 60], "drawdown_slope": 10, "correlation": [20, 60], "trend_breadth": 20, "sleeve_concentration": 60}
    assert meta["rows_before_dropna"] - meta["rows_after_dropna"] == meta["rows_dropped"]
    assert {"generated_at", "requested_start", "requested_end", "effective_start", "effective_end"} <= set(meta)
    state = read(full_build, "allocator_state_v1")
    assert list(state.columns[1:]) == meta["features"]


def test_stored_state_equals_the_batch_definition(full_build):
    # the asset runs the incremental state; the batch definition must agree to 1e-10
    combined = read(full_build, "portfolio_returns").set_index("date")
    returns = read(full_build, "returns_daily").pivot(index="date", columns="symbol", values="return")
    sleeves = read(full_build, "sleeve_returns")
    sleeves = sleeves[sleeves["configured"]].pivot(index="date", columns="book", values="return")
    invested = (combined["live_sleeves"] > 0) & (combined["return"] != 0.0)  # sessions in cash are skipped
    batch = AllocatorStateV1.compute(combined["return"], combined["equity"], returns, returns, sleeves, invested).frame
    stored = read(full_build, "allocator_state_v1").set_index("date")
    assert len(stored) > 100
    pd.testing.assert_frame_equal(stored, batch.reindex(columns=stored.columns), check_exact=False, rtol=1e-10, atol=1e-10, check_freq=False, check_names=False)


def test_applied_scalars_have_the_one_rebalance_lag(full_build):
    risk = read(full_build, "allocator_risk_v1").set_index("date")["risk_scalar"]
    applied = read(full_build, "allocator_risk_v1_applied").set_index("date")
    dates = pd.DatetimeIndex(read(full_build, "portfolio_returns")["date"])
    rebalances = monthly_rebalance_dates(dates)
    for k in range(1, len(rebalances)):
        day, prior = rebalances[k], rebalances[k - 1]
        expected = risk.get(prior, np.nan)
        got = applied.loc[day, "applied_scalar"]
        assert got == (expected if np.isfinite(expected) else 1.0), day
    independent = ExposureApplierV1().apply(risk, rebalances, dates)
    np.testing.assert_array_equal(applied["applied_scalar"].to_numpy(), independent["applied_scalar"].reindex(applied.index).to_numpy())


def test_mode_off_applies_nothing(full_build):
    scaled = read(full_build, "portfolio_returns_scaled")
    base = read(full_build, "portfolio_returns")
    assert (scaled["mode"] == "off").all() and (scaled["applied_scalar"] == 1.0).all()
    np.testing.assert_array_equal(scaled["return"].to_numpy(), base["return"].fillna(0.0).to_numpy())


def test_audit_numbers_recomputed_independently(full_build):
    audit = read(full_build, "allocator_two_pass_audit")
    base = read(full_build, "portfolio_returns").set_index("date")["return"]
    base = base.loc[base.ne(0).idxmax():]
    applied = read(full_build, "allocator_risk_v1_applied").set_index("date")["applied_scalar"].reindex(base.index).fillna(1.0)
    scaled = base.fillna(0.0) * applied

    def max_drawdown(r):
        equity, peak, worst = 1.0, 1.0, 0.0
        for x in r:
            equity *= 1 + x
            peak = max(peak, equity)
            worst = min(worst, equity / peak - 1)
        return worst

    got = audit[(audit["section"] == "summary") & (audit["metric"] == "max_drawdown")].set_index("item")["value"]
    np.testing.assert_allclose(got["baseline"], max_drawdown(base.fillna(0.0)), rtol=1e-12)
    np.testing.assert_allclose(got["scaled"], max_drawdown(scaled), rtol=1e-12)
    assert set(audit.loc[audit["section"] == "checklist", "item"]) == {
        "regime transitions sparse", "de-risk events in known stress", "features free of data problems", "effective start reasonable"}


@pytest.mark.slow
def test_precomputed_mode_is_deterministic_and_refuses_a_tampered_baseline(full_build, tmp_path):
    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    settings = synthetic(home, "2017-03-31")
    defs = build_definitions(settings)
    job = defs.get_job_def("freeze_allocator_baseline")
    job.execute_in_process(run_config={**QUIET, "ops": {"freeze_allocator_baseline_op": {"config": {"baseline_id": "b1"}}}}, instance=dg.DagsterInstance.ephemeral())
    manifest = json.loads((home / "baselines" / "b1" / "manifest.json").read_text())
    assert set(manifest["files"]) == {f"{t}.parquet" for t in ("allocator_state_v1", "allocator_regime_v1", "allocator_risk_v1", "allocator_risk_v1_applied")}
    with pytest.raises(Exception, match="already frozen"):
        job.execute_in_process(run_config={**QUIET, "ops": {"freeze_allocator_baseline_op": {"config": {"baseline_id": "b1"}}}}, instance=dg.DagsterInstance.ephemeral())

    precomputed = {"resources": {"allocator": {"config": {"mode": "precomputed", "precomputed_run_id": "b1"}}}}
    hashes = []
    for _ in range(2):
        run_range(settings, "2014-01-02", "2017-03-31", selection=APPLIED, run_config=precomputed)
        scaled = read(home, "portfolio_returns_scaled")
        hashes.append(pd.util.hash_pandas_object(scaled, index=False).sum())
    assert hashes[0] == hashes[1]
    scaled = read(home, "portfolio_returns_scaled").set_index("date")
    frozen = read(home, "allocator_risk_v1_applied").set_index("date")
    assert (scaled["mode"] == "precomputed").all()
    np.testing.assert_array_equal(scaled["applied_scalar"].reindex(frozen.index).to_numpy(), frozen["applied_scalar"].to_numpy())
    base = read(home, "portfolio_returns").set_index("date")["return"]
    np.testing.assert_allclose(scaled["return"].to_numpy(), scale_returns(base, scaled["applied_scalar"])["return"].to_numpy(), rtol=0, atol=0)

    target = home / "baselines" / "b1" / "allocator_risk_v1_applied.parquet"
    target.write_bytes(target.read_bytes()[:-7] + b"tamper!")
    with pytest.raises(Exception) as err:
        run_range(settings, "2017-03-01", "2017-03-31", selection=APPLIED, run_config=precomputed)
    assert "sha256" in str(err.value) or isinstance(err.value, BaselineError)
