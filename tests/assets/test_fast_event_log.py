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
    }


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
