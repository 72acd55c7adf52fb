"""FastSqliteEventLogStorage records exactly what Dagster's SQLite storage records, readable by other processes."""

import os
import subprocess
import sys

import dagster as dg
import pytest

from prometheus_assets.settings import Settings
from tests.conftest import check_results, run_range

CANONICAL = ["instruments", "trading_calendar", "reference_prices", "prices_daily", "returns_daily"]


def fast_overrides(home) -> dict:
    return {
        "telemetry": {"enabled": False},
        "event_log_storage": {
            "module": "prometheus_assets.instance",
            "class": "FastSqliteEventLogStorage",
            "config": {"base_dir": str(home / "history" / "runs")},
        },
    }


def summary(instance: dg.DagsterInstance, result) -> dict:
    keys = [dg.AssetKey(k) for k in CANONICAL]
    counts: dict[str, int] = {}
    for rec in instance.all_logs(result.run_id):
        if rec.dagster_event is not None:
            counts[rec.dagster_event.event_type_value] = counts.get(rec.dagster_event.event_type_value, 0) + 1
    return {
        "partitions": {k.to_user_string(): sorted(instance.get_materialized_partitions(k)) for k in keys},
        "latest_has_metadata": {
            k.to_user_string(): sorted(instance.get_latest_materialization_event(k).asset_materialization.metadata) for k in keys
        },
        "checks": {name: ev.passed for name, ev in check_results(result).items()},
        "event_counts": counts,
        "check_execution_rows": check_execution_rows(instance),
    }


def check_execution_rows(instance: dg.DagsterInstance) -> list[tuple]:
    """The asset-check execution rows (one per planned partition), without ids and timestamps."""
    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable as T

    from dagster._serdes import deserialize_value

    with instance.event_log_storage.index_connection() as conn:
        rows = conn.execute(db.select(T.c.asset_key, T.c.check_name, T.c.partition, T.c.execution_status, T.c.evaluation_event)).fetchall()
    return sorted((r[0], r[1], r[2], r[3], type(deserialize_value(r[4])).__name__ if r[4] else None) for r in rows)


@pytest.mark.parametrize("batch", ["0", "1000"])
def test_same_records_as_stock_sqlite(tmp_path, monkeypatch, batch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch)
    settings = Settings(home=str(tmp_path / "data"))
    (tmp_path / "stock").mkdir()
    (tmp_path / "fast").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "stock")) as stock:
        expected = summary(stock, run_range(settings, "2021-01-04", "2021-03-31", instance=stock, selection=CANONICAL))
    with dg.instance_for_test(temp_dir=str(tmp_path / "fast"), overrides=fast_overrides(tmp_path / "fast")) as fast:
        assert type(fast.event_log_storage).__name__ == "FastSqliteEventLogStorage"
        got = summary(fast, run_range(settings, "2021-01-04", "2021-03-31", instance=fast, selection=CANONICAL))
    assert got == expected
    assert len(got["partitions"]["prices_daily"]) == 61  # sessions 2021-01-04 … 2021-03-31

    # Another process (as the webserver or daemon would) reads the same instance directory.
    code = (
        "import dagster as dg\n"
        f"i = dg.DagsterInstance.from_config({str(tmp_path / 'fast')!r})\n"
        "print(len(i.get_materialized_partitions(dg.AssetKey('returns_daily'))), len(i.get_runs()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "DAGSTER_HOME": str(tmp_path / "fast")}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["61", "1"]


def test_planned_check_rows_over_a_partition_range_equal_the_stock_rows(tmp_path):
    """A check planned over a range writes one row per partition, as the stock storage does (serialised once)."""
    import time

    from dagster._core.events import AssetCheckEvaluationPlanned, DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry

    daily = dg.DailyPartitionsDefinition(start_date="2020-01-01", end_date="2020-03-01")
    subset = daily.get_partition_subset_in_time_window(dg.TimeWindow(daily.start, daily.end)).to_serializable_subset()
    planned = AssetCheckEvaluationPlanned(asset_key=dg.AssetKey("prices_daily"), check_name="no_gaps", partitions_subset=subset)
    event = EventLogEntry(
        error_info=None, level=10, user_message="", run_id="r1", timestamp=time.time(),
        dagster_event=DagsterEvent(DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value, "job", event_specific_data=planned),
    )
    rows = {}
    for name, overrides in (("stock", None), ("fast", fast_overrides(tmp_path / "fast"))):
        (tmp_path / name).mkdir(exist_ok=True)
        with dg.instance_for_test(temp_dir=str(tmp_path / name), overrides=overrides) as instance:
            instance.event_log_storage.store_event(event)
            rows[name] = check_execution_rows(instance)
    assert rows["fast"] == rows["stock"]
    assert [r[2] for r in rows["fast"]] == sorted(subset.get_partition_keys()) and len(rows["fast"]) == 60


def test_wal_pragmas_and_a_closed_instance_leaves_no_write_ahead_log(tmp_path):
    """Each pooled connection gets the configured auto-checkpoint; disposing checkpoints the log into the database.

    A commit that takes the log past the auto-checkpoint size copies it into the database inside a
    step (SQLite's 1,000 pages did that several times per end-of-day run at full history); the
    copy happens instead when the process's connections close, as a run worker's do at its end.
    """
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME

    overrides = fast_overrides(tmp_path)
    overrides["event_log_storage"]["config"]["wal_autocheckpoint"] = 5000
    settings = Settings(home=str(tmp_path / "data"))
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        storage = instance.event_log_storage
        run_range(settings, "2021-01-04", "2021-01-29", instance=instance, selection=CANONICAL)
        with storage._engine(INDEX_SHARD_NAME).connect() as conn:
            pragmas = [conn.exec_driver_sql(f"PRAGMA {p}").fetchone()[0] for p in ("journal_mode", "synchronous", "wal_autocheckpoint")]
        assert pragmas == ["wal", 1, 5000]  # synchronous 1 = NORMAL
        index = tmp_path / "history" / "runs" / "index.db"
        assert (tmp_path / "history" / "runs" / "index.db-wal").exists()  # open connections: the log is still there
    assert index.exists() and not (tmp_path / "history" / "runs" / "index.db-wal").exists()
