"""Parquet store and DuckDB catalog: atomic, idempotent, replace-exactly-these-dates, any fsspec root."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from prometheus_assets.errors import StorageError
from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore, check_identifier


def frame(dates, symbols=("A", "B"), value=1.0):
    rows = [(pd.Timestamp(d), s, value + i) for i, d in enumerate(dates) for s in symbols]
    return pd.DataFrame(rows, columns=["date", "symbol", "close"])


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_write_and_read_back_across_years(home):
    store = ParquetStore(str(home))
    days = pd.to_datetime(["2019-12-30", "2019-12-31", "2020-01-02", "2020-01-03"])
    store.write_dated("prices", frame(days), days)
    assert [Path(p).name for p in store.files("prices")] == ["2019.parquet", "2020.parquet"]
    back = store.read("prices")
    pd.testing.assert_frame_equal(back.reset_index(drop=True), frame(days), check_dtype=False)
    assert back["date"].dtype == "datetime64[ns]"
    assert store.read("prices", "2020-01-01", "2020-01-02")["date"].unique().tolist() == [pd.Timestamp("2020-01-02")]


def test_rewrite_replaces_exactly_the_given_dates(home):
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-01-31")
    store.write_dated("t", frame(days), days)
    sub = days[5:8]
    store.write_dated("t", frame(sub, symbols=("C",), value=100.0), sub)
    back = store.read("t")
    assert back[back["date"].isin(sub)]["symbol"].unique().tolist() == ["C"]
    pd.testing.assert_frame_equal(
        back[~back["date"].isin(sub)].reset_index(drop=True),
        frame(days)[lambda f: ~f["date"].isin(sub)].reset_index(drop=True),
        check_dtype=False,
    )
    # A date written with no rows ends with no rows.
    store.write_dated("t", frame([]), days[:1])
    assert days[0] not in set(store.read("t")["date"])


def test_rerun_is_byte_identical(home):
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-06-01", "2021-02-01")
    store.write_dated("t", frame(days), days)
    before = {p: sha(p) for p in store.files("t")}
    store.write_dated("t", frame(days), days)
    store.write_dated("t", frame(days[10:20], value=99.0), days[10:20])  # change some days ...
    store.write_dated("t", frame(days)[lambda f: f["date"].isin(days[10:20])], days[10:20])  # ... and back
    assert {p: sha(p) for p in store.files("t")} == before


def test_rows_outside_the_partitions_are_refused(home):
    store = ParquetStore(str(home))
    with pytest.raises(StorageError, match="outside the partitions"):
        store.write_dated("t", frame(["2020-01-02", "2020-01-03"]), pd.to_datetime(["2020-01-02"]))
    assert store.files("t") == []


@pytest.mark.parametrize("bad", ["Prices", "drop table x", "a;b", "", "1abc", "x" * 64, "../etc"])
def test_identifiers_are_validated(bad):
    with pytest.raises(StorageError):
        check_identifier(bad)


def test_missing_table_read_names_it(home):
    with pytest.raises(StorageError, match="no_such_table"):
        ParquetStore(str(home)).read("no_such_table")


def test_empty_table_still_has_a_queryable_view(home):
    store = ParquetStore(str(home))
    store.write_dated("quarantine", frame([]), pd.to_datetime(["2020-01-02"]))
    DuckDBCatalog(store).refresh(["quarantine"])
    con = duckdb.connect(str(home / "prometheus.duckdb"), read_only=True)
    assert con.execute("select count(*) from quarantine").fetchone()[0] == 0
    assert [c[0] for c in con.execute("describe quarantine").fetchall()] == ["date", "symbol", "close"]


def test_duckdb_view_sees_replaced_files(home):
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-02-28")
    store.write_dated("t", frame(days), days)
    catalog = DuckDBCatalog(store)
    catalog.refresh()
    store.write_dated("t", frame(days[:3], symbols=("Z",)), days[:3])
    con = catalog.connect(read_only=True)
    assert con.execute("select count(*) from t where symbol = 'Z'").fetchone()[0] == 3
    assert con.execute("select count(*) from t").fetchone()[0] == 3 + 2 * (len(days) - 3)


def test_files_are_lz4_with_plain_floats_and_dictionary_keys(home):
    """The read-speed writer settings (README, Performance): LZ4, no dictionary for float columns."""
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-01-31")
    data = frame(days).assign(vec=lambda f: [[float(i), 0.5] for i in range(len(f))])
    (path,) = store.write_dated("t", data, days)
    meta = duckdb.sql(f"select path_in_schema, compression, encodings from parquet_metadata('{path}')").fetchall()
    enc = {p: (c, e) for p, c, e in meta}
    assert {c for c, _ in enc.values()} == {"LZ4_RAW"}
    assert "RLE_DICTIONARY" in enc["symbol"][1] and "RLE_DICTIONARY" in enc["date"][1]
    assert "RLE_DICTIONARY" not in enc["close"][1] and "RLE_DICTIONARY" not in enc["vec, list, element"][1]
    pd.testing.assert_frame_equal(store.read("t").reset_index(drop=True), data, check_dtype=False)


def test_view_ignores_key_value_folders_in_the_root(tmp_path):
    """A root under ``x=y/`` must not give the views a hive-partition column ``x``."""
    store = ParquetStore(str(tmp_path / "env=test" / "data"))
    days = pd.bdate_range("2020-01-01", "2020-01-10")
    store.write_dated("t", frame(days), days)
    con = DuckDBCatalog(store).connect()
    con.execute(DuckDBCatalog(store).view_sql("t"))
    assert [r[0] for r in con.execute("describe t").fetchall()] == ["date", "symbol", "close"]


def test_memory_filesystem_root():
    root = f"memory://prometheus-{uuid.uuid4().hex}"
    store = ParquetStore(root)
    assert not store.is_local
    days = pd.bdate_range("2020-12-28", "2021-01-05")
    store.write_dated("t", frame(days), days)
    store.write_whole("w", pd.DataFrame({"x": [1, 2]}))
    assert len(store.files("t")) == 2 and store.tables() == ["t", "w"]
    pd.testing.assert_frame_equal(store.read("t").reset_index(drop=True), frame(days), check_dtype=False)
    catalog = DuckDBCatalog(store)
    assert catalog.path == ":memory:"
    con = catalog.connect()
    con.execute(catalog.view_sql("t"))
    assert con.execute("select count(*) from t").fetchone()[0] == 2 * len(days)


WRITER = textwrap.dedent(
    """
    import sys, numpy as np, pandas as pd
    from prometheus_assets.resources.storage import ParquetStore
    store = ParquetStore(sys.argv[1])
    days = pd.bdate_range("2020-01-01", "2020-12-31")
    n = 400_000
    rng = np.random.default_rng(0)
    big = pd.DataFrame({"date": np.repeat(days.values, n // len(days) + 1)[:n], "symbol": "S", "close": rng.random(n)})
    print("ready", flush=True)
    while True:
        store.write_dated("t", big, days)
    """
)


def test_sigkill_mid_write_leaves_the_previous_file_intact(home):
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-12-31")
    store.write_dated("t", frame(days), days)
    original = sha(store.files("t")[0])
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(home)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        table_dir = Path(store.table_dir("t"))
        deadline = time.time() + 60
        while not list(table_dir.glob(".2020.parquet.tmp-*")) and time.time() < deadline:
            time.sleep(0.002)
        assert list(table_dir.glob(".2020.parquet.tmp-*")), "the writer never started a temporary file"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Readers see a whole file (the old one, or a completed new one), never a torn one.
    visible = store.files("t")
    assert [Path(p).name for p in visible] == ["2020.parquet"]
    back = store.read("t")
    assert len(back) in (2 * len(days), 400_000)
    if len(back) == 2 * len(days):
        assert sha(visible[0]) == original
    assert all(Path(p).name.startswith(".") for p in Path(store.table_dir("t")).iterdir() if "tmp" in p.name)
    # The next write completes and removes the dead writer's temp file.
    store.write_dated("t", frame(days), days)
    assert sha(store.files("t")[0]) == original
    assert not list(Path(store.table_dir("t")).glob(".*.tmp-*"))


def test_reports_are_written_under_the_root_only(home):
    store = ParquetStore(str(home))
    url = store.write_text("reports/x.md", "# hi")
    assert Path(url).read_text() == "# hi"
    for bad in ["/etc/passwd", "../x.md", "reports/../../x", "a//b"]:
        with pytest.raises(StorageError):
            store.write_text(bad, "no")
