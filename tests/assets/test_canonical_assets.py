"""The canonical layer materialized in-process on real Parquet, a real DuckDB file and real Dagster instances."""

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from prometheus_assets.core import calendar
from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore
from prometheus_assets.settings import Settings
from tests.conftest import bundled_wide, check_results, run_range, tree_hashes, write_day_files

CANONICAL = ["instruments", "trading_calendar", "reference_prices", "prices_daily", "returns_daily"]
VIEWS = {*CANONICAL, "quarantine"}


def test_bundled_range_builds_every_view(home, persistent_instance):
    settings = Settings(home=str(home))
    result = run_range(settings, "2020-02-03", "2020-04-30", instance=persistent_instance, selection=CANONICAL)
    assert result.success
    con = duckdb.connect(str(home / "prometheus.duckdb"), read_only=True)
    assert {r[0] for r in con.execute("show tables").fetchall()} == VIEWS
    n, lo, hi = con.execute("select count(distinct symbol), min(date), max(date) from prices_daily").fetchone()
    assert (n, str(lo), str(hi)) == (20, "2020-02-03", "2020-04-30")
    # Returns on the first day of the range need the day before, which was never built: none.
    assert str(con.execute("select min(date) from returns_daily").fetchone()[0]) == "2020-02-04"
    # Every check ran and passed on clean bundled data except real 2020 warnings, which are warnings only.
    checks = check_results(result)
    assert {k for k, v in checks.items() if not v.passed} <= {"returns_within_50pct", "no_stale_prices"}
    assert len(checks) == 8
    # One materialization per (asset, partition) on the persistent instance.
    days = len(calendar.trading_sessions("2020-02-03", "2020-04-30"))  # Presidents Day, Good Friday excluded
    assert days == 62
    mats = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert len(mats) == 2 * days + 3


def test_rerun_is_byte_identical_and_touches_only_its_dates(home):
    settings = Settings(home=str(home))
    run_range(settings, "2019-12-02", "2020-01-31", selection=CANONICAL)
    first = tree_hashes(home / "parquet")
    run_range(settings, "2019-12-02", "2020-01-31", selection=CANONICAL)
    assert tree_hashes(home / "parquet") == first
    # Re-materializing one January week rewrites only 2020 files, with identical content.
    run_range(settings, "2020-01-06", "2020-01-10", selection=["prices_daily", "returns_daily"])
    assert tree_hashes(home / "parquet") == first


def test_split_ranges_equal_one_range_thanks_to_the_lookback(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_range(Settings(home=str(one)), "2008-09-02", "2008-10-31", selection=CANONICAL)
    run_range(Settings(home=str(two)), "2008-09-02", "2008-09-30", selection=CANONICAL)
    run_range(Settings(home=str(two)), "2008-10-01", "2008-10-31", selection=CANONICAL)  # loads 4 September sessions back
    for table in ("prices_daily", "returns_daily"):
        a = ParquetStore(str(one)).read(table)
        b = ParquetStore(str(two)).read(table)
        pd.testing.assert_frame_equal(a, b)
    oct1 = ParquetStore(str(two)).read("returns_daily", "2008-10-01", "2008-10-01")
    assert len(oct1) == 20 and (oct1["sessions_elapsed"] == 1).all()


def test_memory_storage_root():
    import uuid

    home = f"memory://prom-{uuid.uuid4().hex}"
    result = run_range(Settings(home=home), "2021-06-01", "2021-06-30", selection=CANONICAL)
    assert result.success
    store = ParquetStore(home)
    assert set(store.tables()) >= {"prices_daily", "returns_daily", "instruments"}
    catalog = DuckDBCatalog(store)
    con = catalog.connect()
    con.execute(catalog.view_sql("prices_daily"))
    assert con.execute("select count(*) from prices_daily").fetchone()[0] == 20 * len(calendar.trading_sessions("2021-06-01", "2021-06-30"))


def test_synthetic_source_builds(home):
    settings = Settings(home=str(home), source="synthetic", synthetic_assets=30, synthetic_seed=1, start="2019-01-02", end="2019-06-28")
    run_range(settings, "2019-01-02", "2019-06-28", selection=CANONICAL)
    prices = ParquetStore(str(home)).read("prices_daily")
    assert prices["volume"].notna().all() and prices["symbol"].nunique() >= 20
    assert ParquetStore(str(home)).read("instruments")["sector"].nunique() == 11


# --------------------------------------------------------------------------- defects caught by checks
DEFECT_ROWS = [
    # (file, date, symbol, close): each a defect a check must catch
    ("dup.csv", "2021-03-03", "AAPL", 1.0),          # conflicting duplicate of the day file's AAPL bar
    ("new.csv", "2021-03-04", "NEWCO", 5.0),         # unknown symbol
    ("nan.csv", "2021-03-04", "KO", None),           # missing close (KO's good bar is in its day file)
    ("sat.csv", "2021-03-06", "MSFT", 230.0),        # Saturday
    ("zero.csv", "2021-03-05", "XOM", 0.0),          # non-positive (XOM's good bar is in its day file)
]


@pytest.fixture
def defective_source(tmp_path) -> Path:
    root = tmp_path / "bars"
    wide = bundled_wide("2021-02-22", "2021-03-31").copy()
    wide.loc["2021-03-10", "BAC"] = wide.loc["2021-03-09", "BAC"] * 12  # a 1000% jump
    for day in ["2021-03-15", "2021-03-16", "2021-03-17", "2021-03-18", "2021-03-19"]:  # stale run
        wide.loc[day, "PFE"] = wide.loc["2021-03-12", "PFE"]
    write_day_files(root, wide)
    for name, date, symbol, close in DEFECT_ROWS:
        pd.DataFrame({"date": [date], "symbol": [symbol], "close": [close]}).to_csv(root / name, index=False)
    registry = pd.DataFrame({"symbol": wide.columns, "name": wide.columns, "sector": "X", "industry": "Y", "currency": "USD"})
    registry.to_csv(root / "instruments.csv", index=False)
    return root


def test_every_check_catches_its_defect(home, defective_source):
    settings = Settings(home=str(home), source=str(defective_source))
    result = run_range(settings, "2021-02-22", "2021-03-31", selection=CANONICAL)
    checks = check_results(result)
    failed = {k for k, v in checks.items() if not v.passed}
    assert failed == {"no_duplicate_bars", "positive_prices", "no_missing_prices", "on_trading_days", "known_symbols", "returns_within_50pct", "no_stale_prices"}
    meta = {k: {m: v.value for m, v in checks[k].metadata.items()} for k in checks}
    assert meta["no_duplicate_bars"]["quarantined"] == 2  # both conflicting AAPL bars of 2021-03-03
    assert meta["known_symbols"]["quarantined"] == 1
    assert meta["on_trading_days"]["quarantined"] == 1
    assert meta["returns_within_50pct"]["count"] == 2  # the jump up and the fall back
    assert meta["no_stale_prices"]["examples"][0]["symbol"] == "PFE"
    for name in ("no_duplicate_bars", "positive_prices", "no_missing_prices", "on_trading_days", "known_symbols"):
        assert meta[name]["in_output"] == 0, name
    # Nothing was lost: every quarantined row is in the quarantine table with file, row and reason.
    q = ParquetStore(str(home)).read("quarantine", date_column="partition_date")
    assert sorted(q["reason"]) == sorted(
        ["conflicting_duplicate", "conflicting_duplicate", "unknown_symbol", "missing_price", "non_trading_day", "non_positive_price"]
    )
    assert set(q["source_file"]) >= {"dup.csv", "new.csv", "nan.csv", "sat.csv", "zero.csv", "2021-03-03.csv"}
    prices = ParquetStore(str(home)).read("prices_daily")
    assert not prices.duplicated(["date", "symbol"]).any()
    assert len(prices[(prices["date"] == "2021-03-03") & (prices["symbol"] == "AAPL")]) == 0


def test_range_runs_log_heavy_metadata_once(home):
    result = run_range(Settings(home=str(home)), "2021-01-04", "2021-02-26", selection=CANONICAL)
    mats = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.path == ["prices_daily"]]
    assert len(mats) == len(calendar.trading_sessions("2021-01-04", "2021-02-26"))
    for event in mats:  # every partition's event carries numbers only
        assert "preview" not in event.materialization.metadata and "range_rows" in event.materialization.metadata
    observations = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION" and e.asset_key.path == ["prices_daily"]]
    assert len(observations) == 1 and "preview" in observations[0].event_specific_data.asset_observation.metadata
    single = run_range(Settings(home=str(home)), "2021-03-01", "2021-03-01", selection=["prices_daily"])
    [mat] = [e for e in single.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert {"preview", "dagster/row_count", "dagster/column_schema"} <= set(mat.materialization.metadata)


def test_instruments_of_a_files_source_reads_only_the_new_day_files(tmp_path):
    """A day's run reads that day's bar files for the registry, not every file of the history (carried spans)."""
    import json
    import time

    from prometheus_assets.assets.canonical import SPAN_STATE
    from prometheus_assets.assets.upstream_files import SETTLED_SECONDS

    root = tmp_path / "bars"
    wide = bundled_wide("2021-01-04", "2021-02-26")
    write_day_files(root, wide.iloc[:-1])
    time.sleep(SETTLED_SECONDS + 0.1)  # (the files were delivered a while before the run reads them)
    settings = Settings(home=str(tmp_path / "data"), source=str(root))
    first = f"{wide.index[0]:%Y-%m-%d}"

    def files_read(result) -> int:
        [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "instruments"]
        return event.materialization.metadata["bar_files_read"].value

    assert files_read(run_range(settings, first, f"{wide.index[-2]:%Y-%m-%d}", selection=["instruments"])) == len(wide) - 1
    write_day_files(root, wide.iloc[-1:])
    time.sleep(SETTLED_SECONDS + 0.1)
    last = f"{wide.index[-1]:%Y-%m-%d}"
    assert files_read(run_range(settings, last, last, selection=["instruments"])) == 1
    stored = ParquetStore(settings.home).read("instruments")
    assert stored["last_trading_date"].max() == wide.index[-1] and stored["first_trading_date"].min() == wide.index[0]
    assert set(json.loads((tmp_path / "data" / SPAN_STATE).read_text())["files"]) == {f"{d:%Y-%m-%d}.csv" for d in wide.index}
    (tmp_path / "data" / SPAN_STATE).write_text("{damaged")  # a damaged cache: every file is read again, same table
    assert files_read(run_range(settings, last, last, selection=["instruments"])) == len(wide)
    assert ParquetStore(settings.home).read("instruments").equals(stored)


def test_a_row_dated_unlike_its_day_file_is_quarantined_once_by_that_day_alone_or_in_a_range(tmp_path):
    """Regression: a row of ``<day>.csv`` dated another day was read only by a run whose window held its date *and*
    opened its file, so daily runs of past days never quarantined it. It now belongs to its file's day: the
    quarantine holds it once, under that day, whether the days were built one at a time or in one range."""
    root = tmp_path / "bars"
    wide = bundled_wide("2021-03-01", "2021-03-09")  # 7 sessions; the runs below stop before the newest
    write_day_files(root, wide)
    days = [f"{d:%Y-%m-%d}" for d in wide.index[1:4]]
    with open(root / f"{days[0]}.csv", "a") as f:
        f.write(f"{days[2]},AAPL,123.0\n")  # a row of a later day in an earlier day's file
    one, daily = Settings(home=str(tmp_path / "one"), source=str(root)), Settings(home=str(tmp_path / "daily"), source=str(root))
    assert run_range(one, days[0], days[-1], selection=["instruments", "prices_daily"]).success
    for day in days:
        assert run_range(daily, day, day, selection=["instruments", "prices_daily"]).success
    quarantines = [ParquetStore(s.home).read("quarantine", date_column="partition_date") for s in (one, daily)]
    pd.testing.assert_frame_equal(quarantines[0], quarantines[1])
    [row] = quarantines[0].to_dict("records")
    assert (row["partition_date"], row["date"], row["source_file"], row["reason"]) == (pd.Timestamp(days[0]), pd.Timestamp(days[2]), f"{days[0]}.csv", "parse_error")
    for settings in (one, daily):  # the bar of that day from its own file is kept
        prices = ParquetStore(settings.home).read("prices_daily", days[2], days[2])
        assert prices.loc[prices["symbol"] == "AAPL", "close"].item() == wide.loc[days[2], "AAPL"]


def test_a_return_after_a_gap_longer_than_the_lookback_is_kept_in_a_split_run(tmp_path):
    """Regression: a partition reads 4 sessions of prices before it, so a symbol back from a longer gap (a halt,
    missing source rows) had no previous bar there and lost its first return in daily or split runs, while one
    range kept it (``sessions_elapsed`` 7). The previous bar is now looked up in storage."""
    root = tmp_path / "bars"
    wide = bundled_wide("2021-03-01", "2021-03-19")  # 15 sessions
    write_day_files(root, wide)
    gap = wide.index[3:9]  # AAPL has no bar on 6 sessions; it trades again on wide.index[9]
    for day in gap:
        path = root / f"{day:%Y-%m-%d}.csv"
        rows = pd.read_csv(path)
        rows[rows["symbol"] != "AAPL"].to_csv(path, index=False)
    days = [f"{d:%Y-%m-%d}" for d in wide.index]
    one, split = Settings(home=str(tmp_path / "one"), source=str(root)), Settings(home=str(tmp_path / "split"), source=str(root))
    assert run_range(one, days[0], days[-2], selection=CANONICAL).success
    assert run_range(split, days[0], days[8], selection=CANONICAL).success
    assert run_range(split, days[9], days[9], selection=CANONICAL).success  # the day AAPL is back, on its own
    assert run_range(split, days[10], days[-2], selection=CANONICAL).success
    a, b = (ParquetStore(s.home).read("returns_daily") for s in (one, split))
    pd.testing.assert_frame_equal(a, b)
    back = b[(b["date"] == wide.index[9]) & (b["symbol"] == "AAPL")]
    assert back["sessions_elapsed"].tolist() == [7]
    assert back["return"].item() == pytest.approx(wide["AAPL"].iloc[9] / wide["AAPL"].iloc[2] - 1, rel=1e-12)
