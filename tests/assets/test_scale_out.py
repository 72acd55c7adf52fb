"""What can be tested locally of the scale-out set-up: parallel step processes and a non-local storage root.

* The multiprocess executor (a process per step, independent steps in parallel: what a k8s or
  celery executor does with pods/workers) gives the same bytes as one process.
* The whole graph on a ``memory://`` storage root (fsspec; the same code path as ``s3://``).
"""

import os
import uuid

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from prometheus_assets.definitions import build_definitions
from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore
from prometheus_assets.settings import Settings
from tests.assets.test_ui_catalog import expected_tables
from tests.conftest import QUIET, run_range, tree_hashes

pytestmark = pytest.mark.slow

START, SPLIT, NEXT, END = "2019-01-02", "2019-02-28", "2019-03-01", "2019-03-29"
#: Assets run as parallel step processes. Not the whole graph: every step process imports the code
#: location and rebuilds its source (~5 s each here), so 37 steps took ~4 minutes on 2 cores
#: against ~10 s in one process (see the README's scale-out section).
PARALLEL = ["instruments", "trading_calendar", "reference_prices", "prices_daily", "returns_daily", "strategy_signals"]


def settings_for(home) -> Settings:
    return Settings(home=str(home), source="synthetic", synthetic_assets=20, synthetic_seed=5, start=START, end=END)


def graph_job() -> dg.JobDefinition:
    """:data:`PARALLEL` on the multiprocess executor, for the settings in the environment (every
    step process rebuilds it this way)."""
    job = dg.define_asset_job("graph_multiprocess", selection=PARALLEL, executor_def=dg.multiprocess_executor)
    return dg.Definitions.merge(build_definitions(Settings.from_env()), dg.Definitions(jobs=[job])).resolve_job_def("graph_multiprocess")


def test_multiprocess_executor_gives_the_same_bytes_as_one_process(tmp_path, monkeypatch):
    one, many = tmp_path / "one" / "data", tmp_path / "many" / "data"
    # Same history first (in one process) in both roots, then the next range: in one process / a
    # process per step, two at a time.
    for home in (one, many):
        run_range(settings_for(home), START, SPLIT, selection=PARALLEL)
    run_range(settings_for(one), NEXT, END, selection=PARALLEL)

    dh = tmp_path / "dagster_home"
    dh.mkdir()
    (dh / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for key, value in {"PROMETHEUS_HOME": str(many), "PROMETHEUS_SOURCE": "synthetic", "PROMETHEUS_SYNTHETIC_ASSETS": "20",
                       "PROMETHEUS_SYNTHETIC_SEED": "5", "PROMETHEUS_START": START, "PROMETHEUS_END": END, "DAGSTER_HOME": str(dh)}.items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(graph_job),
            instance=instance,
            run_config={**QUIET, "execution": {"config": {"max_concurrent": 2}}},
            tags={ASSET_PARTITION_RANGE_START_TAG: NEXT, ASSET_PARTITION_RANGE_END_TAG: END},
        )
        assert result.success
        step_pids = {e.dagster_event.pid for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_START)}
    assert len(step_pids) == len(PARALLEL) and os.getpid() not in step_pids  # really a process per step
    a, b = tree_hashes(one), tree_hashes(many)
    assert a.keys() == b.keys()
    assert {k for k in a if a[k] != b[k]} == set()


def test_whole_graph_on_a_memory_storage_root():
    home = f"memory://prometheus-{uuid.uuid4().hex}"
    settings = settings_for(home)
    run_range(settings, START, END)
    store = ParquetStore(home)
    assert not store.is_local
    groups = {spec.group_name for spec in build_definitions(settings).resolve_all_asset_specs()}
    assert expected_tables(groups) <= set(store.tables())
    catalog = DuckDBCatalog(store)
    assert catalog.path == ":memory:"
    con = catalog.connect()
    try:
        for table in ("prices_daily", "strategy_signals", "sleeve_returns"):
            con.execute(catalog.view_sql(table))
        assert con.execute("select count(distinct date) from prices_daily").fetchone()[0] == 61
        assert con.execute("select count(*) from strategy_signals").fetchone()[0] > 0
        # no book trades in 61 sessions (its returns start on its first trade): the view is there, with its columns
        assert {"date", "config_id", "return"} <= {r[0] for r in con.execute("describe sleeve_returns").fetchall()}
    finally:
        con.close()
    assert store.fs.exists(f"{store.root}/reports/sleeves.html")  # reports land on the same root
