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

from prometheus_assets.errors import PathEscapeError, StorageError
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


@pytest.mark.parametrize("bad", ["Prices", "drop table x", "a;b", "", "1abc", "x" * 64, "../etc", "prices_daily\n"])  # (a trailing newline passed a "$" match)
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



def test_rows_after_an_empty_range_replace_its_placeholder(home, tmp_path):
    # A split backfill whose first range is a warm-up year: that run stores no rows (the
    # placeholder, its empty columns typed double), the next one stores labels (strings). Found by
    # bench/scale.py building year by year: the placeholder stayed beside the year file and every
    # later read failed with "Field raw_label has incompatible types: string vs double".
    store = ParquetStore(str(home))
    warm_up = pd.DataFrame({"date": pd.Series([], dtype="datetime64[ns]"), "raw_label": pd.Series([], dtype="float64")})
    store.write_dated("regimes", warm_up, pd.to_datetime(["2020-01-02", "2020-01-03"]))
    assert [Path(p).name for p in store.files("regimes")] == ["empty.parquet"]
    placeholder = (home / "parquet" / "regimes" / "empty.parquet").read_bytes()
    days = pd.to_datetime(["2021-01-04", "2021-01-05"])
    labelled = pd.DataFrame({"date": days, "raw_label": ["CARRY", "CRISIS"]})
    store.write_dated("regimes", labelled, days)
    assert [Path(p).name for p in store.files("regimes")] == ["2021.parquet"]
    assert not (home / "parquet" / "regimes" / "empty.parquet").exists()
    assert store.read("regimes")["raw_label"].tolist() == ["CARRY", "CRISIS"]
    # the same file tree and bytes as one range writing the same rows
    one = ParquetStore(str(tmp_path / "one"))
    one.write_dated("regimes", labelled, pd.to_datetime(["2020-01-02", "2020-01-03", *days]))
    assert sha(home / "parquet" / "regimes" / "2021.parquet") == sha(tmp_path / "one" / "parquet" / "regimes" / "2021.parquet")
    assert [Path(p).name for p in one.files("regimes")] == ["2021.parquet"]
    # a root written before this fix (placeholder left beside a year file) still reads
    (home / "parquet" / "regimes" / "empty.parquet").write_bytes(placeholder)
    assert [Path(p).name for p in store.files("regimes")] == ["2021.parquet"]
    assert store.read("regimes")["raw_label"].tolist() == ["CARRY", "CRISIS"]

def test_a_warm_up_writer_and_a_writer_with_rows_at_once_leave_no_placeholder(home, monkeypatch):
    """Regression: a writer without rows that found no year file, then wrote its placeholder only after another
    writer had stored rows and looked for a placeholder, left both files (DuckDB's glob reads the placeholder)."""
    import threading

    store = ParquetStore(str(home))
    inside, release = threading.Event(), threading.Event()
    write = ParquetStore._write_atomic

    def paused(self, path, table):  # the warm-up writer stops while writing its placeholder
        if path.endswith("/empty.parquet") and threading.current_thread().name == "warm-up":
            inside.set()
            release.wait(30)
        return write(self, path, table)

    monkeypatch.setattr(ParquetStore, "_write_atomic", paused)
    warm_up = pd.DataFrame({"date": pd.Series([], dtype="datetime64[ns]"), "close": pd.Series([], dtype="float64")})
    first = threading.Thread(target=store.write_dated, args=("t", warm_up, pd.to_datetime(["2021-03-01"])), name="warm-up")
    first.start()
    assert inside.wait(30)
    days = pd.to_datetime(["2021-03-02"])
    second = threading.Thread(target=store.write_dated, args=("t", frame(days), days))
    second.start()
    second.join(1.0)  # (it now waits for the placeholder's lock; before, it finished here without looking again)
    release.set()
    first.join(30)
    second.join(30)
    assert sorted(p.name for p in (home / "parquet" / "t").glob("*.parquet")) == ["2021.parquet"]
    assert len(store.read("t")) == 2


def test_a_year_without_values_takes_the_type_of_the_years_with_values(home):
    # Rows exist, but a column holds no value in that year (a regime label before the first regime
    # model: NaN, so double). One range over both years types it from the later strings; a
    # backfill split at the year failed on every read ("regime_label ... double vs string"), and
    # so did an EOD run writing a labelled day into that year's file.
    store = ParquetStore(str(home))
    early = pd.to_datetime(["2021-12-30", "2021-12-31"])
    store.write_dated("books", pd.DataFrame({"date": early, "weight": [0.5, 0.5], "regime_label": [np.nan, np.nan]}), early)
    late = pd.to_datetime(["2022-01-03"])
    store.write_dated("books", pd.DataFrame({"date": late, "weight": [0.4], "regime_label": ["CARRY"]}), late)
    back = store.read("books")
    assert back["regime_label"].isna().tolist() == [True, True, False] and back["regime_label"].iloc[2] == "CARRY"
    assert back["weight"].tolist() == [0.5, 0.5, 0.4]
    # a labelled day written into the year whose file holds only nulls there
    day = pd.to_datetime(["2021-12-31"])
    store.write_dated("books", pd.DataFrame({"date": day, "weight": [0.3], "regime_label": ["CRISIS"]}), day)
    year = store.read("books", "2021-01-01", "2021-12-31")
    assert year["regime_label"].isna().tolist() == [True, False] and year["regime_label"].iloc[1] == "CRISIS"
    # values of two types in one column are a named error, not a silent cast
    other = pd.to_datetime(["2023-01-03"])
    store.write_dated("books", pd.DataFrame({"date": other, "weight": [0.1], "regime_label": [3.0]}), other)
    with pytest.raises(StorageError, match=r"'books': column 'regime_label' holds values of different types \(double, string\)"):
        store.read("books")


def test_columns_without_values_keep_their_kind():
    # Text columns with no value (labels before their model exists) are text, and date columns
    # of a frame without rows are dates, as in a frame with values: an empty or warm-up range
    # stores the schema a longer range stores (a null-typed `date` broke date filters on the read).
    from prometheus_assets.resources.storage import to_arrow

    empty = to_arrow(pd.DataFrame(columns=["date", "book", "exit_date"]))
    assert [str(f.type) for f in empty.schema] == ["date32[day]", "string", "date32[day]"]
    warm_up = to_arrow(pd.DataFrame({"date": pd.to_datetime(["2020-01-02"]), "regime_label": [None], "z": [[1.0]]}))
    assert [str(f.type) for f in warm_up.schema] == ["date32[day]", "string", "list<element: double>"]


def two_months_with_a_view(home):
    """A store holding table ``t`` (2 symbols, Jan–Feb 2020) and a catalog with its view: (store, days, catalog)."""
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-02-28")
    store.write_dated("t", frame(days), days)
    catalog = DuckDBCatalog(store)
    catalog.refresh()
    return store, days, catalog


def test_duckdb_view_sees_replaced_files(home):
    store, days, catalog = two_months_with_a_view(home)
    store.write_dated("t", frame(days[:3], symbols=("Z",)), days[:3])
    con = catalog.connect(read_only=True)
    assert con.execute("select count(*) from t where symbol = 'Z'").fetchone()[0] == 3
    assert con.execute("select count(*) from t").fetchone()[0] == 3 + 2 * (len(days) - 3)


def test_an_open_connection_reads_a_rewritten_year_despite_its_footer_cache(home):
    """The catalog's connections cache Parquet footers; a year rewritten meanwhile is read afresh."""
    store, days, catalog = two_months_with_a_view(home)
    con = catalog.connect(read_only=True)
    assert con.execute("select current_setting('parquet_metadata_cache')").fetchone()[0] is True
    assert con.execute("select count(*), count(distinct symbol) from t").fetchone() == (2 * len(days), 2)
    # Same file, same year, more rows and a new symbol: a stale footer would read 2 symbols' rows
    # at the old offsets, or fail.
    store.write_dated("t", frame(days, symbols=("A", "B", "Z")), days)
    assert con.execute("select count(*), count(distinct symbol) from t").fetchone() == (3 * len(days), 3)
    con.close()


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


def view_count(home, table="t"):
    """Rows of ``table`` through the DuckDB view, on a fresh read-only connection (a reader's view)."""
    con = duckdb.connect(str(home / "prometheus.duckdb"), read_only=True)
    try:
        return con.execute(f"select count(*) from {table}").fetchone()[0]
    finally:
        con.close()


def _sigkill_mid_write(script: str, home: Path, directory: Path, temp_glob: str, never_started: str) -> None:
    """Run ``script`` (it prints "ready", then writes in a loop) and SIGKILL it while one of its
    hidden temporary files matching ``temp_glob`` exists in ``directory``."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(home)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 60
        while not list(directory.glob(temp_glob)) and time.time() < deadline:
            time.sleep(0.001)
        assert list(directory.glob(temp_glob)), never_started
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigkill_mid_write_leaves_the_previous_file_intact(home):
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-12-31")
    store.write_dated("t", frame(days), days)
    DuckDBCatalog(store).refresh(["t"])
    original = sha(store.files("t")[0])
    table_dir = Path(store.table_dir("t"))
    _sigkill_mid_write(WRITER, home, table_dir, ".2020.parquet.tmp-*", "the writer never started a temporary file")
    # The dead writer's temporary file is there, hidden ...
    assert list(table_dir.glob(".2020.parquet.tmp-*"))
    # ... and no reader sees it: the store, DuckDB's glob and the view list the one whole file,
    # the old one or a completed new one, never a torn one.
    visible = store.files("t")
    assert [Path(p).name for p in visible] == ["2020.parquet"]
    con = duckdb.connect(str(home / "prometheus.duckdb"), read_only=True)
    try:
        globbed = [r[0] for r in con.execute(f"select file from glob('{store.glob_url('t')}')").fetchall()]
    finally:
        con.close()
    assert [Path(p).name for p in globbed] == ["2020.parquet"]
    back = store.read("t")
    assert len(back) in (2 * len(days), 400_000)
    assert view_count(home) == len(back)
    if len(back) == 2 * len(days):
        assert sha(visible[0]) == original
    # The rerun completes (the dead writer's lock died with it) and removes its temp file.
    store.write_dated("t", frame(days), days)
    assert sha(store.files("t")[0]) == original
    assert not list(table_dir.glob(".*.tmp-*"))
    assert view_count(home) == 2 * len(days)


CATALOG_REFRESHER = textwrap.dedent(
    """
    import sys
    from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore
    catalog = DuckDBCatalog(ParquetStore(sys.argv[1]))
    print("ready", flush=True)
    while True:
        catalog.refresh()  # no names: rebuild the whole catalog every time
    """
)


def test_sigkill_mid_catalog_refresh_leaves_a_readable_catalog(home):
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-03-31")
    for name in ("a", "b", "c"):
        store.write_dated(name, frame(days), days)
    DuckDBCatalog(store).refresh()
    _sigkill_mid_write(CATALOG_REFRESHER, home, home, ".prometheus.duckdb.tmp-*", "the refresher never started a temporary catalog")
    for name in ("a", "b", "c"):
        assert view_count(home, name) == 2 * len(days)
    store.write_dated("d", frame(days), days)
    assert DuckDBCatalog(store).refresh(["d"]) == ["d"]
    assert view_count(home, "d") == 2 * len(days)
    assert not list(home.glob(".prometheus.duckdb.tmp-*"))


HOLD_CATALOG = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print(con.execute("select count(*) from t").fetchone()[0], flush=True)
    sys.stdin.readline()  # keep the connection open until told
    print(con.execute("select count(*) from t").fetchone()[0], flush=True)
    """
)


def test_a_reader_holding_the_catalog_blocks_no_writer_and_is_blocked_by_none(home):
    # `duckdb -readonly data/prometheus.duckdb` left open by a user: DuckDB would refuse a
    # read-write open of the file; the catalog is replaced by rename instead, so builds go on.
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-01-31")
    store.write_dated("t", frame(days), days)
    catalog = DuckDBCatalog(store)
    catalog.refresh(["t"])
    reader = subprocess.Popen([sys.executable, "-c", HOLD_CATALOG, catalog.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == str(2 * len(days))
        store.write_dated("new_table", frame(days[:3]), days[:3])
        assert catalog.refresh(["new_table"]) == ["new_table"]  # would fail on DuckDB's lock in place
        assert view_count(home, "new_table") == 6 and view_count(home, "t") == 2 * len(days)
        store.write_dated("t", frame(days[:1], symbols=("Z",)), days[:1])
        reader.stdin.write("go\n")
        reader.stdin.flush()
        # the open connection keeps working and reads the current files
        assert reader.stdout.readline().strip() == str(2 * len(days) - 1)
        assert reader.wait(timeout=60) == 0
    finally:
        if reader.poll() is None:
            reader.kill()


def test_a_current_catalog_is_not_rewritten(home):
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-01-31")
    store.write_dated("t", frame(days), days)
    catalog = DuckDBCatalog(store)
    catalog.refresh(["t"])
    before = (os.stat(catalog.path).st_ino, sha(catalog.path))
    store.write_dated("t", frame(days, value=5.0), days)
    catalog.refresh(["t"])
    assert (os.stat(catalog.path).st_ino, sha(catalog.path)) == before
    assert view_count(home) == 2 * len(days)


def test_a_catalog_copied_from_another_root_is_repointed(home, tmp_path):
    # e.g. a storage root copied or moved: its views name the old root's files
    old_root = ParquetStore(str(tmp_path / "old"))
    old_root.write_dated("t", frame(pd.bdate_range("2020-01-01", "2020-01-10")), pd.bdate_range("2020-01-01", "2020-01-10"))
    DuckDBCatalog(old_root).refresh(["t"])
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-01-31")
    store.write_dated("t", frame(days), days)
    (home / "prometheus.duckdb").write_bytes((tmp_path / "old" / "prometheus.duckdb").read_bytes())
    assert view_count(home) == 2 * 8  # still reading the old root
    DuckDBCatalog(store).refresh(["t"])
    assert view_count(home) == 2 * len(days)


def test_a_moved_root_repoints_every_view_at_the_first_refresh(tmp_path):
    # a run after the root was copied or moved refreshes one table's view per output: the first
    # refresh must repoint them all, else the catalog file was replaced once per output (42 times)
    days = pd.bdate_range("2020-01-01", "2020-01-10")
    old = ParquetStore(str(tmp_path / "old"))
    for name in ("a", "b", "c"):
        old.write_dated(name, frame(days), days)
    DuckDBCatalog(old).refresh()
    os.rename(tmp_path / "old", tmp_path / "new")
    store = ParquetStore(str(tmp_path / "new"))
    catalog = DuckDBCatalog(store)
    catalog.refresh(["a"])
    con = duckdb.connect(catalog.path, read_only=True)  # b and c were repointed by the first refresh
    try:
        for name in ("a", "b", "c"):
            assert con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] == 2 * len(days)
    finally:
        con.close()


def test_reports_are_written_under_the_root_only(home):
    store = ParquetStore(str(home))
    url = store.write_text("reports/x.md", "# hi")
    assert Path(url).read_text() == "# hi"
    for bad in ["/etc/passwd", "../x.md", "reports/../../x", "a//b"]:
        with pytest.raises(StorageError):
            store.write_text(bad, "no")


def test_a_rewritten_year_file_equals_a_fresh_one_with_list_columns(tmp_path):
    # numeric_embeddings / profile_snapshots hold list columns: pandas gives Arrow list<item>, a
    # Parquet read gives list<element>; a rewrite (old rows + new rows) must still give the bytes a
    # fresh write gives.
    days = pd.bdate_range("2020-01-01", "2020-03-31")
    emb = pd.DataFrame({"as_of_date": days, "entity_id": "A", "z": [np.arange(3, dtype=float) + i for i in range(len(days))]})
    fresh, rewritten = ParquetStore(str(tmp_path / "fresh")), ParquetStore(str(tmp_path / "rewritten"))
    fresh.write_dated("e", emb, days, date_column="as_of_date")
    rewritten.write_dated("e", emb, days, date_column="as_of_date")
    rewritten.write_dated("e", emb, days, date_column="as_of_date")  # every date replaced
    rewritten.write_dated("e", emb[emb["as_of_date"].isin(days[5:9])], days[5:9], date_column="as_of_date")  # some
    assert sha(fresh.files("e")[0]) == sha(rewritten.files("e")[0])
    back = rewritten.read("e", date_column="as_of_date")
    assert back["z"].iloc[4].tolist() == [4.0, 5.0, 6.0]


def test_update_bytes_merges_concurrent_updates_under_the_lock(home):
    """Four processes each add 25 entries to one JSON file by read-modify-write: none is lost."""
    script = textwrap.dedent(
        """
        import json, sys
        from prometheus_assets.resources.storage import ParquetStore
        store, who = ParquetStore(sys.argv[1]), sys.argv[2]
        for k in range(25):
            def add(old, k=k):
                entries = json.loads(old) if old else {}
                entries[f"{who}-{k}"] = k
                return json.dumps(entries, sort_keys=True).encode()
            store.update_bytes("cache/memo.json", add)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(home), f"p{i}"]) for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    store = ParquetStore(str(home))
    import json

    entries = json.loads(store.read_bytes("cache/memo.json"))
    assert len(entries) == 100
    assert not [p for p in (Path(home) / "cache").iterdir() if ".tmp-" in p.name]
    before = (Path(home) / "cache" / "memo.json").stat().st_mtime_ns
    store.update_bytes("cache/memo.json", lambda old: old)  # unchanged bytes: not rewritten
    assert (Path(home) / "cache" / "memo.json").stat().st_mtime_ns == before


def test_remove_and_list_names_stay_under_the_root(home):
    """The small file API the carried states use: list a directory's visible files, remove one; paths are confined."""
    store = ParquetStore(str(home))
    assert store.list_names("state/x") == []
    store.write_bytes("state/x/2024-01-03.json", b"{}")
    store.write_bytes("state/x/2024-01-02.json", b"{}")
    assert store.list_names("state/x") == ["2024-01-02.json", "2024-01-03.json"]  # sorted, lock files hidden
    store.remove("state/x/2024-01-02.json")
    store.remove("state/x/never-written.json")  # absent: nothing to do
    assert store.list_names("state/x") == ["2024-01-03.json"]
    with pytest.raises(PathEscapeError):
        store.remove("../outside.json")
    with pytest.raises(PathEscapeError):
        store.list_names("../")


def test_a_table_or_data_file_symlinked_outside_the_root_is_refused(home, tmp_path):
    """Regression: table paths were never checked against the root: a symlinked table directory took the writes
    (and their lock files) outside it, and a year file symlinked to a planted file was read."""
    store = ParquetStore(str(home))
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "parquet").mkdir(parents=True, exist_ok=True)
    os.symlink(outside, home / "parquet" / "prices_daily")
    days = pd.to_datetime(["2020-01-02"])
    with pytest.raises(PathEscapeError, match="outside the root"):
        store.write_dated("prices_daily", frame(days), days)
    assert list(outside.iterdir()) == []
    store.write_dated("t", frame(days), days)
    planted = tmp_path / "planted.parquet"
    planted.write_bytes((home / "parquet" / "t" / "2020.parquet").read_bytes())
    os.remove(home / "parquet" / "t" / "2020.parquet")
    os.symlink(planted, home / "parquet" / "t" / "2020.parquet")
    with pytest.raises(PathEscapeError, match="outside the root"):
        store.read("t")


def test_a_catalog_replaced_behind_the_process_is_seen(home):
    # refresh remembers the views it read per catalog file identity; a catalog replaced by another
    # process (here: deleted and created anew without views) must be read again, not trusted
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-01-31")
    store.write_dated("t", frame(days), days)
    catalog = DuckDBCatalog(store)
    catalog.refresh(["t"])
    assert catalog.refresh(["t"]) == ["t"] and view_count(home, "t") == 2 * len(days)
    os.remove(catalog.path)
    duckdb.connect(catalog.path).close()  # an empty catalog at the same path
    catalog.refresh(["t"])
    assert view_count(home, "t") == 2 * len(days)


def test_read_only_some_columns_equals_the_whole_read_cut_to_them(home):
    """``columns`` reads just those columns, in that order, with the same rows and bounds (the date column filters
    even when it is not asked for)."""
    store = ParquetStore(str(home))
    dates = pd.DatetimeIndex(["2019-12-30", "2019-12-31", "2020-01-02", "2020-01-03"])
    frame = pd.DataFrame({"date": dates.repeat(2), "symbol": ["A", "B"] * 4, "close": np.arange(8.0), "tag": list("abcdefgh")})
    store.write_dated("prices", frame, dates)
    whole = store.read("prices", "2019-12-31", "2020-01-02")
    part = store.read("prices", "2019-12-31", "2020-01-02", columns=["tag", "symbol"])
    pd.testing.assert_frame_equal(part, whole[["tag", "symbol"]])
    assert list(store.read("prices", columns=["close"])["close"]) == list(np.arange(8.0))


def test_read_on_some_days_equals_the_whole_read_filtered_to_them(home):
    """``on`` keeps the rows of those days only (with the bounds and columns as usual); a day without rows adds none."""
    store = ParquetStore(str(home))
    dates = pd.DatetimeIndex(["2019-12-30", "2019-12-31", "2020-01-02", "2020-01-03"])
    frame = pd.DataFrame({"date": dates.repeat(2), "symbol": ["A", "B"] * 4, "close": np.arange(8.0)})
    store.write_dated("prices", frame, dates)
    whole = store.read("prices")
    days = [pd.Timestamp("2019-12-31"), pd.Timestamp("2020-01-03"), pd.Timestamp("2020-01-01")]
    expected = whole[whole["date"].isin(days)].reset_index(drop=True)
    pd.testing.assert_frame_equal(store.read("prices", on=days), expected)
    pd.testing.assert_frame_equal(store.read("prices", "2020-01-01", None, columns=["close"], on=days), expected.loc[expected["date"] >= "2020-01-01", ["close"]].reset_index(drop=True))
    assert store.read("prices", on=[]).empty


def test_read_bounds_a_timestamp_column_by_its_day(home):
    """Regression: a timestamp date column (``edge_history.ts``, a user's own table) compared with the date
    bounds as midnight, so ``end`` dropped that day's later rows and ``on`` matched only midnights, silently."""
    store = ParquetStore(str(home))
    stamps = pd.to_datetime(["2020-01-01 00:00", "2020-01-02 00:00", "2020-01-02 15:30", "2020-01-03 09:00"])
    store.write_whole("ticks", pd.DataFrame({"ts": stamps, "x": [1, 2, 3, 4]}))
    assert list(store.read("ticks", "2020-01-02", "2020-01-02", date_column="ts")["x"]) == [2, 3]
    assert list(store.read("ticks", None, "2020-01-02", date_column="ts")["x"]) == [1, 2, 3]
    assert list(store.read("ticks", "2020-01-03", None, date_column="ts")["x"]) == [4]
    assert list(store.read("ticks", on=[pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")], date_column="ts")["x"]) == [2, 3, 4]


def test_read_keeps_a_zone_aware_column_and_bounds_it_by_its_local_day(home):
    """A zone-aware timestamp reads back with its zone (converting it to naive ns raised), and bounds by its day in that zone."""
    store = ParquetStore(str(home))
    stamps = pd.to_datetime(["2020-01-01 23:00", "2020-01-02 23:00"]).tz_localize("America/New_York")  # 04:00 UTC the next day
    store.write_whole("ticks", pd.DataFrame({"ts": stamps, "x": [1, 2]}))
    whole = store.read("ticks")
    assert str(whole["ts"].dtype) == "datetime64[ns, America/New_York]" and list(whole["ts"]) == list(stamps)
    assert list(store.read("ticks", "2020-01-02", "2020-01-02", date_column="ts")["x"]) == [2]


def test_read_by_date_on_a_column_that_holds_no_dates_is_a_named_error(home):
    store = ParquetStore(str(home))
    store.write_whole("plain", pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(StorageError, match="'x' is int64, not a date or timestamp"):
        store.read("plain", "2020-01-02", None, date_column="x")
    assert list(store.read("plain")["x"]) == [1, 2]  # without bounds the column is not used


def test_read_bounded_by_a_column_the_table_lacks_is_a_named_error(home):
    """Regression: bounds on a missing date column (left at "date" for an ``as_of_date`` table) were ignored, so
    every row of the years kept came back; and ``columns`` on a table without a date column failed in Arrow."""
    store = ParquetStore(str(home))
    days = pd.DatetimeIndex(["2024-01-02", "2024-01-03"])
    store.write_dated("scores", pd.DataFrame({"as_of_date": days, "x": [1, 2]}), days, date_column="as_of_date")
    for bounds in ({"start": "2024-01-03", "end": "2024-01-03"}, {"on": [pd.Timestamp("2024-01-03")]}):
        with pytest.raises(StorageError, match="no column 'date' to bound the read by date; its columns: as_of_date, x"):
            store.read("scores", **bounds)
        assert list(store.read("scores", date_column="as_of_date", **bounds)["x"]) == [2]
    store.write_whole("registry", pd.DataFrame({"symbol": ["A", "B"], "sector": ["X", "Y"]}))
    assert list(store.read("registry", columns=["sector"])["sector"]) == ["X", "Y"]


def test_a_table_whose_layout_changed_never_repeats_its_rows(home):
    """Regression: a table written by date by one version and whole by another kept both kinds of file,
    and every read (and the DuckDB view's glob) returned its rows twice, without an error."""
    store = ParquetStore(str(home))
    days = pd.to_datetime(["2019-12-31", "2020-01-02"])
    store.write_dated("t", frame(days), days)
    assert [Path(p).name for p in store.files("t")] == ["2019.parquet", "2020.parquet"]
    # now written whole: the whole file replaces the year files
    store.write_whole("t", frame(days[:1]))
    assert [Path(p).name for p in store.files("t")] == ["data.parquet"]
    pd.testing.assert_frame_equal(store.read("t"), frame(days[:1]), check_dtype=False)
    # and back to dated: the whole file's rows would stay beside the year files, so the write refuses
    with pytest.raises(StorageError, match=r"table 't' is written by date, but .* holds a whole-table file \(data.parquet\)"):
        store.write_dated("t", frame(days[1:]), days[1:])
    assert [Path(p).name for p in store.files("t")] == ["data.parquet"]  # nothing written
    # both kinds left behind (e.g. by an older version): a read is a named error, not doubled rows
    store.write_whole("u", frame(days))
    Path(home, "parquet", "u", "2020.parquet").write_bytes(Path(home, "parquet", "u", "data.parquet").read_bytes())
    with pytest.raises(StorageError, match=r"table 'u' holds both a whole-table file \(data.parquet\) and year files"):
        store.read("u")


# ---- the read cache (storage.ParquetReadCache) --------------------------------------------------
def _parquet(path, values):
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = f"{path}.new"
    pq.write_table(pa.table({"date": pa.array([pd.Timestamp("2020-01-02").date()] * len(values)), "close": values,
                             "symbol": ["A"] * len(values)}), tmp)
    os.replace(tmp, path)  # as the store writes: a new file renamed over the old one


def test_read_cache_answers_repeated_reads_of_an_unchanged_file(tmp_path):
    import pyarrow.parquet as pq

    from prometheus_assets.resources.storage import ParquetReadCache

    cache, path = ParquetReadCache(min_age_s=0.05), str(tmp_path / "2020.parquet")
    _parquet(path, [1.0, 2.0])
    time.sleep(0.1)
    first = cache.read(path)
    assert first.equals(pq.read_table(path)) and cache.read(path) is first
    # a projection of a kept whole table equals a projected read of the file
    projected = cache.read(path, ["symbol", "close"])
    assert projected.equals(pq.read_table(path, columns=["symbol", "close"])) and projected.column_names == ["symbol", "close"]


def test_read_cache_never_answers_for_a_changed_file(tmp_path):
    from prometheus_assets.resources.storage import ParquetReadCache

    cache, path = ParquetReadCache(min_age_s=0.05), str(tmp_path / "2020.parquet")
    _parquet(path, [1.0, 2.0])
    time.sleep(0.1)
    assert cache.read(path).column("close").to_pylist() == [1.0, 2.0]
    _parquet(path, [3.0, 4.0])  # same size, rewritten outside the store: a new file (inode, times)
    assert cache.read(path).column("close").to_pylist() == [3.0, 4.0]
    os.remove(path)
    with pytest.raises(FileNotFoundError):
        cache.read(path)


def test_read_cache_keeps_no_file_younger_than_its_minimum_age(tmp_path):
    """A file read within a time-stamp tick of its writing could be rewritten with the same stamps: never kept."""
    from prometheus_assets.resources.storage import ParquetReadCache

    cache, path = ParquetReadCache(min_age_s=60.0), str(tmp_path / "2020.parquet")
    _parquet(path, [1.0])
    first = cache.read(path)
    assert cache.read(path) is not first and not cache._tables


def test_read_cache_is_bounded(tmp_path):
    from prometheus_assets.resources.storage import ParquetReadCache

    paths = [str(tmp_path / f"{y}.parquet") for y in range(2000, 2006)]
    for p in paths:
        _parquet(p, list(np.arange(1000.0)))
    time.sleep(0.1)
    one = ParquetReadCache(min_age_s=0.05).read(paths[0]).nbytes
    cache = ParquetReadCache(max_bytes=4 * one + 10, min_age_s=0.05)
    for p in paths:
        cache.read(p)
    assert cache._bytes <= cache.max_bytes and len(cache._tables) == 4  # the least recently used went first
    assert [k[0] for k in cache._tables] == [os.path.abspath(p) for p in paths[2:]]
    small = ParquetReadCache(max_bytes=2 * one, min_age_s=0.05)
    small.read(paths[0])
    assert not small._tables  # larger than a quarter of the bound: never kept


def test_store_reads_see_the_stores_own_rewrites_at_once(home, monkeypatch):
    """The store's cache is dropped for a file it rewrites: a read right after a write returns the new rows."""
    from prometheus_assets.resources import storage

    monkeypatch.setattr(storage, "READ_CACHE", storage.ParquetReadCache(min_age_s=0.0))
    store = ParquetStore(str(home))
    days = pd.to_datetime(["2020-01-02", "2020-01-03"])
    store.write_dated("prices", frame(days, value=1.0), days)
    assert store.read("prices")["close"].tolist() == [1.0, 1.0, 2.0, 2.0]
    assert storage.READ_CACHE._tables  # kept (no minimum age here)
    store.write_dated("prices", frame(days[1:], value=5.0), days[1:])
    assert store.read("prices")["close"].tolist() == [1.0, 1.0, 5.0, 5.0]
    store.write_dated("prices", frame(days[:1], value=7.0), days[:1])
    assert store.read("prices", columns=["close"])["close"].tolist() == [7.0, 7.0, 5.0, 5.0]


def test_read_cache_bound_comes_from_the_environment(tmp_path):
    from prometheus_assets.resources.storage import ParquetReadCache, read_cache_bytes

    assert read_cache_bytes({}) == 256 * 2**20
    assert read_cache_bytes({"PROMETHEUS_READ_CACHE_MB": " 64 "}) == 64 * 2**20
    for bad in ("-1", "lots", "1.5"):
        with pytest.raises(StorageError, match="PROMETHEUS_READ_CACHE_MB"):
            read_cache_bytes({"PROMETHEUS_READ_CACHE_MB": bad})
    off, path = ParquetReadCache(max_bytes=read_cache_bytes({"PROMETHEUS_READ_CACHE_MB": "0"}), min_age_s=0.0), str(tmp_path / "2020.parquet")
    _parquet(path, [1.0])
    off.read(path)
    assert not off._tables  # 0: nothing is ever kept


def test_read_cache_names_a_column_the_file_lacks_as_pyarrow_does(tmp_path):
    import pyarrow as pa

    from prometheus_assets.resources.storage import ParquetReadCache

    cache, path = ParquetReadCache(min_age_s=0.0), str(tmp_path / "2020.parquet")
    _parquet(path, [1.0])
    cache.read(path)
    with pytest.raises(pa.ArrowInvalid, match="missing"):
        cache.read(path, ["close", "missing"])  # neither skipped nor served from the kept whole table
