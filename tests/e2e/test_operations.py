"""Operations end to end on real processes: GraphQL catalog, a one-run backfill, eod_sensor, a daemon restart.

Everything goes through a real ``dagster-webserver`` (GraphQL) and ``dagster-daemon`` (backfills,
sensor, run queue) on 127.0.0.1 with a temporary DAGSTER_HOME, storage root and files source.
"""


import dagster as dg
import duckdb
import pandas as pd
import pytest

from prometheus_assets.core import calendar
from prometheus_assets.operations import QUEUE_TAG, QUEUE_VALUE
from prometheus_assets.resources.storage import ParquetStore
from tests.assets.test_ui_catalog import REQUIRED_GROUPS, expected_tables
from tests.e2e.conftest import HISTORY_END, HISTORY_START, NEW_DAYS
from tests.e2e.processes import wait_for, write_atomically

pytestmark = pytest.mark.e2e

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def test_catalog_over_graphql(deployment):
    nodes = deployment.asset_nodes()
    groups = {n["groupName"] for n in nodes}
    assert REQUIRED_GROUPS <= groups
    names = {n["assetKey"]["path"][-1] for n in nodes}
    assert expected_tables(groups) <= names, f"design tables without an asset: {sorted(expected_tables(groups) - names)}"
    for node in nodes:
        name = node["assetKey"]["path"][-1]
        assert node["description"] and node["owners"] and node["opVersion"], name
        assert any(not t["key"].startswith("dagster/") for t in node["tags"]), name
    checks = {n["assetKey"]["path"][-1]: {c["name"] for c in n["assetChecksOrError"]["checks"]} for n in nodes}
    assert {"no_duplicate_bars", "positive_prices", "on_trading_days"} <= checks["prices_daily"]
    assert {"returns_within_50pct", "no_stale_prices"} <= checks["returns_daily"]


def add_day(deployment, day: str) -> None:
    write_atomically(deployment.root / "bars" / f"{day}.csv", (deployment.staging / f"{day}.csv").read_text())


def eod_runs(deployment) -> list[dict]:
    return [r for r in deployment.runs() if r["tags"].get("dagster/sensor_name") == "eod_sensor"]


def wait_runs_finished(deployment, runs_of, count: int, what: str, timeout: float = 300) -> list[dict]:
    def probe():
        runs = runs_of()
        return runs if len(runs) >= count and all(r["status"] in FINISHED for r in runs) else None

    runs = wait_for(what, probe, timeout=timeout, interval=2, on_timeout=deployment.run_failure_detail)
    failed = [r for r in runs if r["status"] != "SUCCESS"]
    assert not failed, deployment.run_failure_detail()
    return runs


def test_backfill_eod_sensor_and_daemon_restart(deployment):
    store = ParquetStore(str(deployment.home))
    # The sensor's first tick, before anything is built, starts after the source's newest day.
    wait_for("eod_sensor's first tick", lambda: deployment.sensor_state()["typeSpecificData"]["lastCursor"] == HISTORY_END,
             timeout=120, on_timeout=lambda: str(deployment.sensor_state()) + deployment.log_tail("daemon"))

    # 1. A backfill of the whole graph over the history, from GraphQL: one run.
    keys = [f"{d:%Y-%m-%d}" for d in calendar.trading_sessions(HISTORY_START, HISTORY_END)]
    backfill_id = deployment.launch_job_backfill("eod_job", keys)
    in_backfill = lambda: [r for r in deployment.runs() if r["tags"].get("dagster/backfill") == backfill_id]  # noqa: E731
    wait_for("the backfill's run to be created", in_backfill, timeout=120, on_timeout=lambda: deployment.log_tail("daemon"))

    # 2. A new day arrives while the backfill runs: eod_sensor requests it, the run queue holds it
    #    until the backfill's run is over (both carry the prometheus/queue=graph tag, limit 1).
    add_day(deployment, NEW_DAYS[0])
    (backfill_run,) = wait_runs_finished(deployment, in_backfill, 1, "the backfill run")
    wait_for("the backfill to complete", lambda: deployment.backfill_status(backfill_id) == "COMPLETED_SUCCESS", timeout=120)
    assert (backfill_run["tags"]["dagster/asset_partition_range_start"], backfill_run["tags"]["dagster/asset_partition_range_end"]) == (keys[0], keys[-1])
    assert backfill_run["tags"][QUEUE_TAG] == QUEUE_VALUE and len(in_backfill()) == 1

    (eod,) = wait_runs_finished(deployment, lambda: eod_runs(deployment), 1, f"the EOD run of {NEW_DAYS[0]}")
    assert eod["tags"]["dagster/partition"] == NEW_DAYS[0] and eod["jobName"] == "eod_job" and eod["tags"][QUEUE_TAG] == QUEUE_VALUE
    assert deployment.run_times(eod["runId"])["startTime"] >= deployment.run_times(backfill_run["runId"])["endTime"]

    # The checks ran inside the EOD run and their results are what the UI shows for the asset.
    executions = deployment.check_executions()
    assert {name: e["status"] for name, e in executions["prices_daily"].items()} == {name: "SUCCEEDED" for name in executions["prices_daily"]}
    assert {e["runId"] for e in executions["prices_daily"].values()} == {eod["runId"]}
    assert all(e and e["status"] in ("SUCCEEDED", "FAILED") for e in executions["returns_daily"].values())

    # 3. What the runs wrote: Parquet files, DuckDB views, the new day in the daily tables.
    with dg.DagsterInstance.from_config(str(deployment.dagster_home)) as instance:
        graph_groups = {n["groupName"] for n in deployment.asset_nodes()}
        for table in sorted(expected_tables(graph_groups)):
            assert store.files(table), f"{table}: no Parquet file"
        daily = [n["assetKey"]["path"][-1] for n in deployment.asset_nodes() if n["isPartitioned"]]
        for name in daily:
            built = instance.get_materialized_partitions(dg.AssetKey(name))
            assert set(keys) | {NEW_DAYS[0]} <= built, f"{name}: partitions missing"
    con = duckdb.connect(str(deployment.home / "prometheus.duckdb"), read_only=True)
    try:
        views = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
        assert expected_tables(graph_groups) <= views
        days = con.execute("select count(distinct date), max(date) from prices_daily").fetchone()
        assert days == (len(keys) + 1, pd.Timestamp(NEW_DAYS[0]).date())
        assert con.execute(f"select count(*) from returns_daily where date = '{NEW_DAYS[0]}'").fetchone()[0] >= 20
        assert con.execute(f"select count(*) from strategy_signals where date = '{NEW_DAYS[0]}'").fetchone()[0] > 0
    finally:
        con.close()

    # 4. Days arrive while the daemon is down; after the restart each is requested once, in order,
    #    and the day already run is never requested again.
    deployment.stop_process("daemon")
    for day in NEW_DAYS[1:]:
        add_day(deployment, day)
    ticks_before = len(deployment.sensor_state()["ticks"])
    deployment.start_daemon()
    runs = wait_runs_finished(deployment, lambda: eod_runs(deployment), len(NEW_DAYS), "the EOD runs of the skipped days")
    assert [r["tags"]["dagster/partition"] for r in runs] == NEW_DAYS  # oldest first, one each
    # Further ticks after the restart request nothing.
    wait_for("two more sensor ticks", lambda: len(deployment.sensor_state()["ticks"]) >= ticks_before + 3, timeout=120)
    state = deployment.sensor_state()
    assert state["typeSpecificData"]["lastCursor"] == NEW_DAYS[-1]
    assert [r["tags"]["dagster/partition"] for r in eod_runs(deployment)] == NEW_DAYS
    assert not [t for t in state["ticks"] if t["status"] == "FAILURE"], [t["error"] for t in state["ticks"] if t["error"]]
