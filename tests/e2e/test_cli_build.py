"""`prometheus build` (what `make run` runs) as a real process on a persistent instance, then the DuckDB CLI."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import bundled_wide, write_day_files

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def build(env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "DAGSTER_HOME"))}
    env.update({"PROMETHEUS_HOME": str(tmp_path / "data"), **env_extra})
    return subprocess.run([str(BIN / "prometheus"), "build"], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


def duckdb_cli(db: Path, sql: str) -> str:
    out = subprocess.run([str(BIN / "duckdb"), "-readonly", "-csv", "-noheader", str(db), sql], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_synthetic_build_then_duckdb_cli(tmp_path):
    proc = build({"PROMETHEUS_SOURCE": "synthetic", "PROMETHEUS_SYNTHETIC_ASSETS": "25", "PROMETHEUS_START": "2018-01-02", "PROMETHEUS_END": "2018-03-29"}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Built 41 assets over 2018-01-02 … 2018-03-29" in proc.stdout
    assert "Dagster bookkeeping" in proc.stdout and "prices_daily" in proc.stdout
    db = tmp_path / "data" / "prometheus.duckdb"
    n, lo, hi = duckdb_cli(db, "select count(distinct symbol), min(date), max(date) from prices_daily").split(",")
    assert 18 <= int(n) <= 25 and (lo, hi) == ("2018-01-02", "2018-03-29")
    # The instance is persistent and lives inside the storage root, so `make ui` shows this run.
    dagster_home = tmp_path / "data" / "dagster_home"
    # The build closed its instance: the event log's write-ahead logs are in the databases, not
    # left for the next run's first connection to copy (~1 s after a full history).
    assert not list((dagster_home / "history").rglob("*.db-wal"))
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].is_success
        partitions = instance.get_materialized_partitions(dg.AssetKey("prices_daily"))
        assert len(partitions) == 61
        # one planned event per asset carrying the range (not one per partition), one materialization per partition
        planned = instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=100_000).records
        assert len(planned) == 41 and all(r.event_log_entry.dagster_event.event_specific_data.partition is None for r in planned)
        ranged = [r for r in planned if r.event_log_entry.dagster_event.asset_key == dg.AssetKey("prices_daily")][0]
        assert len(ranged.event_log_entry.dagster_event.event_specific_data.partitions_subset.get_partition_keys()) == 61


def test_files_directory_made_from_bundled_data(tmp_path):
    write_day_files(tmp_path / "bars", bundled_wide("2022-10-03", "2022-12-28"))
    proc = build({"PROMETHEUS_SOURCE": str(tmp_path / "bars")}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    db = tmp_path / "data" / "prometheus.duckdb"
    assert duckdb_cli(db, "select count(distinct symbol), min(date), max(date) from prices_daily") == "20,2022-10-03,2022-12-28"
    assert duckdb_cli(db, "select count(*) from quarantine") == "0"


def test_bad_configuration_is_a_clear_error(tmp_path):
    proc = build({"PROMETHEUS_SOURCE": str(tmp_path / "missing")}, tmp_path)
    assert proc.returncode == 2
    assert "prometheus: error: PROMETHEUS_SOURCE=" in proc.stderr and "missing" in proc.stderr
    assert "Traceback" not in proc.stderr
