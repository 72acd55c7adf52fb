"""Two runs on different partition ranges at the same time, on one storage root and one Dagster
instance, each with the multiprocess executor (a process per step), while the DuckDB views are read.

Proves: no lost writes (both ranges write the same 2019 year files, under the per-file lock), every
partition of both ranges is there and byte-identical to a sequential single-process build, the
instance records every partition, and a reader of the DuckDB catalog never fails (the catalog is
replaced by rename, never locked for writing) and never sees a partial partition.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from prometheus_assets.core import calendar
from prometheus_assets.resources.storage import ParquetStore
from prometheus_assets.settings import Settings
from tests.assets.concurrent_run import CANONICAL
from tests.conftest import run_range, tree_hashes

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
START, END = "2019-01-02", "2019-06-28"
#: Two ranges of one year (so they rewrite the same files), more than returns_daily's 4-session
#: lookback apart (so neither reads what the other writes).
RANGES = [("2019-01-02", "2019-02-28"), ("2019-04-01", "2019-06-28")]
DAILY = ["prices_daily", "returns_daily"]


def settings_for(home: Path) -> Settings:
    return Settings(home=str(home), source="synthetic", synthetic_assets=12, synthetic_seed=5, start=START, end=END)


def env_for(home: Path, dagster_home: Path) -> dict[str, str]:
    s = settings_for(home)
    return {**os.environ, "PROMETHEUS_HOME": s.home, "PROMETHEUS_SOURCE": s.source, "PROMETHEUS_SYNTHETIC_ASSETS": str(s.synthetic_assets),
            "PROMETHEUS_SYNTHETIC_SEED": str(s.synthetic_seed), "PROMETHEUS_START": START, "PROMETHEUS_END": END,
            "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(REPO)}


def rows_per_date(frame: pd.DataFrame) -> dict[pd.Timestamp, int]:
    return {pd.Timestamp(d): int(n) for d, n in frame.groupby("date").size().items()}


class Reader:
    """Reads the DuckDB views and the store the way a user would, checking every answer."""

    def __init__(self, home: Path, expected: dict[str, dict[pd.Timestamp, int]]):
        self.home, self.expected = home, expected
        self.catalog = home / "prometheus.duckdb"
        self.seen_views: set[str] = set()
        self.seen_dates = {t: set() for t in DAILY}
        self.reads = 0

    def check(self, table: str, counts: dict[pd.Timestamp, int]) -> None:
        for day, n in counts.items():  # every visible partition is whole ...
            assert n == self.expected[table][day], (table, day, n)
        assert self.seen_dates[table] <= set(counts), f"{table}: partitions disappeared"  # ... and none is lost
        self.seen_dates[table] = set(counts)

    def read(self) -> None:
        if not self.catalog.exists():  # before the first view is created
            return
        con = duckdb.connect(str(self.catalog), read_only=True)  # must never fail on a lock
        try:
            views = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
            assert self.seen_views <= views, "a view disappeared"
            self.seen_views = views
            for table in sorted(views & set(DAILY)):
                rows = con.execute(f'select date, count(*) from "{table}" group by date').fetchall()
                self.check(table, {pd.Timestamp(d): n for d, n in rows})
                self.reads += 1
        finally:
            con.close()
        store = ParquetStore(str(self.home))
        for table in DAILY:
            if store.exists(table):
                self.check(table, rows_per_date(store.read(table)))


def test_two_ranges_at_once_on_one_root_and_instance(tmp_path, monkeypatch):
    # The reference: the same two ranges one after the other, in one process.
    sequential = tmp_path / "sequential" / "data"
    for first, last in RANGES:
        run_range(settings_for(sequential), first, last, selection=CANONICAL)
    reference = ParquetStore(str(sequential))
    expected = {t: rows_per_date(reference.read(t)) for t in DAILY}
    sessions = calendar.trading_sessions(START, END)
    wanted = sorted(d for first, last in RANGES for d in sessions[(sessions >= first) & (sessions <= last)])
    assert sorted(expected["prices_daily"]) == wanted

    # Two real processes on one root and one persistent instance (Prometheus' own dagster.yaml).
    concurrent, dagster_home = tmp_path / "concurrent" / "data", tmp_path / "dagster_home"
    # Both processes start on a brand-new DAGSTER_HOME (each prepares it, as `prometheus` does).
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    env = env_for(concurrent, dagster_home)
    logs = [tmp_path / f"run{i}.log" for i in range(len(RANGES))]  # files, not pipes: nobody has to drain them
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.assets.concurrent_run", first, last], cwd=REPO, env=env,
                         stdout=log.open("w"), stderr=subprocess.STDOUT)
        for (first, last), log in zip(RANGES, logs)
    ]
    reader = Reader(concurrent, expected)
    try:
        deadline = time.time() + 900
        while any(p.poll() is None for p in procs) and time.time() < deadline:
            reader.read()
            time.sleep(0.2)  # a user querying now and then; the reads must not starve the writers of CPU
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=60)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)
    assert reader.reads > 0  # the views were read while the runs wrote

    # Nothing lost: every partition of both ranges, the same bytes as the sequential build.
    reader.read()
    assert sorted(reader.seen_dates["prices_daily"]) == wanted
    assert reader.seen_dates["returns_daily"] == set(expected["returns_daily"])  # (no return on each range's first day)
    a, b = tree_hashes(sequential), tree_hashes(concurrent)
    assert a.keys() == b.keys() and {k for k in a if a[k] != b[k]} == set()
    assert set(CANONICAL) | {"quarantine"} <= reader.seen_views
    # ... and the instance recorded every partition of both runs.
    with dg.DagsterInstance.get() as instance:
        keys = {d.strftime("%Y-%m-%d") for d in wanted}
        for table in DAILY:
            assert instance.get_materialized_partitions(dg.AssetKey(table)) == keys, table
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        step_pids = {e.dagster_event.pid for r in runs for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_START)}
    assert len(step_pids) == 2 * len(CANONICAL)  # a process per step
