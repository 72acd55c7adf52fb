"""Tests for the local-directory bar reader (``prometheus_assets.resources.files_source``)."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prometheus_assets.core.schema import BAR_COLUMNS
from prometheus_assets.errors import (
    CorruptSourceFileError,
    DuplicateColumnError,
    EmptySourceFileError,
    MissingColumnError,
    SourceConfigError,
    SourceEncodingError,
    SourceFileError,
)
from prometheus_assets.resources import files_source
from prometheus_assets.resources.files_source import OUTPUT_COLUMNS, FilesBarReader

# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_prices() -> pd.DataFrame:
    """~60 days x 20 symbols of real S&P 500 closes, long format (date, symbol, close)."""
    from skfolio.datasets import load_sp500_dataset

    wide = load_sp500_dataset().iloc[-60:]
    long = wide.rename_axis(index="date", columns="symbol").stack().rename("close").reset_index()
    long["date"] = pd.to_datetime(long["date"]).astype("datetime64[ns]")
    long["symbol"] = long["symbol"].astype(object)
    assert long["symbol"].nunique() == 20 and long["date"].nunique() == 60
    return long


def _triples(bars: pd.DataFrame) -> set[tuple]:
    return set(zip(bars["date"], bars["symbol"], bars["close"]))


def _write(path, text: str | bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(text, bytes) else "w"
    kwargs = {} if isinstance(text, bytes) else {"encoding": "utf-8", "newline": ""}
    with open(path, mode, **kwargs) as fh:
        fh.write(text)
    return str(path)


def _per_day_csv(root, long: pd.DataFrame, gz: bool = False) -> None:
    """One CSV per day, nested in one folder per month to exercise the recursive search."""
    for day, group in long.groupby("date"):
        folder = root / day.strftime("%Y-%m")
        folder.mkdir(parents=True, exist_ok=True)
        out = group.assign(date=day.strftime("%Y-%m-%d"), volume=1000.0)
        name = f"{day:%Y-%m-%d}.csv" + (".gz" if gz else "")
        out.to_csv(folder / name, index=False, compression="gzip" if gz else None)


def _per_symbol_parquet(root, long: pd.DataFrame) -> None:
    for symbol, group in long.groupby("symbol"):
        group.reset_index(drop=True).to_parquet(root / f"{symbol}.parquet", index=False)


def _one_csv(tmp_path, text: str, name: str = "bars.csv") -> FilesBarReader:
    _write(tmp_path / name, text)
    return FilesBarReader(str(tmp_path))


# ----------------------------------------------------------------------------------------------
# Round trips on real data
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_per_day_csv_round_trip(tmp_path, long_prices, gz):
    _per_day_csv(tmp_path, long_prices, gz=gz)
    reader = FilesBarReader(str(tmp_path))
    assert len(reader.bar_files()) == 60
    bars = reader.read_bars()
    assert list(bars.columns) == OUTPUT_COLUMNS
    assert len(bars) == len(long_prices)
    assert _triples(bars) == _triples(long_prices)
    assert bars["parse_error"].isna().all()
    assert (bars["volume"] == 1000.0).all()
    assert bars["open"].isna().all()  # absent optional column -> NaN
    assert reader.first_day() == long_prices["date"].min()
    assert reader.last_day() == long_prices["date"].max()


def test_per_symbol_parquet_round_trip(tmp_path, long_prices):
    _per_symbol_parquet(tmp_path, long_prices)
    reader = FilesBarReader(str(tmp_path))
    assert reader.bar_files() == sorted(f"{s}.parquet" for s in long_prices["symbol"].unique())
    bars = reader.read_bars()
    assert _triples(bars) == _triples(long_prices)
    assert len(bars) == len(long_prices)
    assert reader.first_day() == long_prices["date"].min()
    assert reader.last_day() == long_prices["date"].max()
    # Window on non-date-named files: rows are filtered after reading.
    days = sorted(long_prices["date"].unique())
    window = reader.read_bars(days[10], days[19])
    expected = long_prices[long_prices["date"].between(days[10], days[19])]
    assert _triples(window) == _triples(expected)


def test_output_dtypes_and_provenance(tmp_path, long_prices):
    _per_symbol_parquet(tmp_path, long_prices)
    bars = FilesBarReader(str(tmp_path)).read_bars()
    assert str(bars["date"].dtype) == "datetime64[ns]"
    assert bars["symbol"].dtype == object
    for col in ["open", "high", "low", "close", "adj_close", "volume"]:
        assert bars[col].dtype == np.float64
    assert bars["source_file"].dtype == object
    assert bars["source_row"].dtype == np.int64
    assert bars["parse_error"].dtype == object
    aapl = bars[bars["symbol"] == "AAPL"]
    assert set(aapl["source_file"]) == {"AAPL.parquet"}
    assert sorted(aapl["source_row"]) == list(range(1, 61))
    assert isinstance(bars["source_file"].iloc[0], str)


# ----------------------------------------------------------------------------------------------
# Pruning by file name
# ----------------------------------------------------------------------------------------------


def test_window_skips_date_named_files_without_opening(tmp_path, long_prices, monkeypatch):
    _per_day_csv(tmp_path, long_prices)
    # A corrupt file named for a date before the data: only readable by never opening it.
    _write(tmp_path / "old" / "2001-01-02.parquet", b"this is not parquet at all")
    reader = FilesBarReader(str(tmp_path))

    opened: list[str] = []
    real = files_source._read_table

    def spy(path, *args, **kwargs):
        opened.append(os.path.relpath(path, tmp_path).replace(os.sep, "/"))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(files_source, "_read_table", spy)
    real_open = open

    def guarded_open(file, *args, **kwargs):
        assert "2001-01-02" not in str(file), "out-of-window file was opened"
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded_open)

    days = sorted(long_prices["date"].unique())
    start, end = days[5], days[9]
    window = reader.read_bars(start, end)
    assert sorted(window["date"].unique()) == days[5:10]
    assert len(window) == 5 * 20
    assert sorted(opened) == sorted(f"{d:%Y-%m}/{d:%Y-%m-%d}.csv" for d in days[5:10])

    # The span uses the names too, so the corrupt file is still not opened.
    assert reader.first_day() == pd.Timestamp("2001-01-02")
    assert reader.last_day() == days[-1]
    monkeypatch.setattr("builtins.open", real_open)

    # Without a window the corrupt file is read and named in the error.
    with pytest.raises(CorruptSourceFileError, match="2001-01-02.parquet") as info:
        reader.read_bars()
    assert info.value.path.endswith(os.path.join("old", "2001-01-02.parquet"))


def test_window_bounds_are_inclusive_and_validated(tmp_path, long_prices):
    _per_day_csv(tmp_path, long_prices)
    reader = FilesBarReader(str(tmp_path))
    days = sorted(long_prices["date"].unique())
    assert set(reader.read_bars(days[3], days[3])["date"]) == {days[3]}
    assert set(reader.read_bars(start=days[-1])["date"]) == {days[-1]}
    assert set(reader.read_bars(end=days[0])["date"]) == {days[0]}
    empty = reader.read_bars(pd.Timestamp("1980-01-01"), pd.Timestamp("1980-12-31"))
    assert empty.empty and list(empty.columns) == OUTPUT_COLUMNS
    assert str(empty["date"].dtype) == "datetime64[ns]"
    with pytest.raises(ValueError):
        reader.read_bars(days[5], days[1])


def test_row_dated_unlike_its_file_name_is_flagged(tmp_path):
    reader = _one_csv(
        tmp_path, "date,symbol,close\n2020-03-02,AAA,1\n2020-03-03,BBB,2\n", name="2020-03-02.csv"
    )
    bars = reader.read_bars()
    assert bars["parse_error"].tolist() == [None, "date: 2020-03-03 in a file named for 2020-03-02"]
    assert bars["date"].iloc[1] == pd.Timestamp("2020-03-03")  # kept as read


def test_row_dated_unlike_its_file_name_is_read_with_its_file_not_with_its_date(tmp_path):
    """Regression: the flagged row was windowed by its own date, so a daily read of its file's day left it out and
    a read of its own day never opened the file: no daily run ever saw it (nor quarantined it)."""
    _write(tmp_path / "2020-03-02.csv", "date,symbol,close\n2020-03-02,AAA,1\n2020-03-05,BBB,2\n2020-02-20,CCC,3\n")
    _write(tmp_path / "2020-03-05.csv", "date,symbol,close\n2020-03-05,AAA,4\n")
    reader = FilesBarReader(str(tmp_path))
    day = reader.read_bars(pd.Timestamp("2020-03-02"), pd.Timestamp("2020-03-02"))
    assert day["symbol"].tolist() == ["CCC", "AAA", "BBB"] and day["parse_error"].notna().tolist() == [True, False, True]
    assert reader.read_bars(pd.Timestamp("2020-03-05"), pd.Timestamp("2020-03-05"))["symbol"].tolist() == ["AAA"]
    assert len(reader.read_bars(pd.Timestamp("2020-03-01"), pd.Timestamp("2020-03-05"))) == 4  # each row once
    owners = FilesBarReader.owning_days(day["source_file"])
    assert (owners == pd.Timestamp("2020-03-02")).all()
    assert FilesBarReader.owning_days(pd.Series(["bars.csv", None, "2020/2020-03-05.parquet"])).tolist()[1:] == [pd.NaT, pd.Timestamp("2020-03-05")]


# ----------------------------------------------------------------------------------------------
# File-level errors
# ----------------------------------------------------------------------------------------------


def test_missing_required_column_csv(tmp_path):
    _write(tmp_path / "ok.csv", "date,symbol,close\n2020-01-02,A,1\n")
    _write(tmp_path / "sub" / "bad.csv", "Date,Symbol,Open\n2020-01-02,A,1\n")
    reader = FilesBarReader(str(tmp_path))
    with pytest.raises(MissingColumnError, match=r"bad\.csv.*close") as info:
        reader.read_bars()
    assert info.value.path.endswith(os.path.join("sub", "bad.csv"))
    assert info.value.row is None


def test_missing_required_columns_parquet(tmp_path):
    pd.DataFrame({"date": pd.to_datetime(["2020-01-02"]), "close": [1.0]}).to_parquet(
        tmp_path / "p.parquet"
    )
    with pytest.raises(MissingColumnError, match=r"p\.parquet.*symbol"):
        FilesBarReader(str(tmp_path)).read_bars()
    with pytest.raises(MissingColumnError, match=r"p\.parquet"):
        FilesBarReader(str(tmp_path)).first_day()


def test_duplicate_columns(tmp_path):
    reader = _one_csv(tmp_path, "date,symbol,Close,close \n2020-01-02,A,1,2\n")
    with pytest.raises(DuplicateColumnError, match=r"bars\.csv.*close"):
        reader.read_bars()


@pytest.mark.parametrize(
    "name, content",
    [
        ("zero.csv", b""),
        ("zero.parquet", b""),
        ("header_only.csv", b"date,symbol,close\n"),
        ("header_blank_lines.csv", b"date,symbol,close\n\n\r\n"),
        ("blank.csv", b"\n \n"),
        ("bom_header_only.csv", b"\xef\xbb\xbfdate,symbol,close\r\n"),
        ("zero_inside.csv.gz", gzip.compress(b"")),
        ("header_only.csv.gz", gzip.compress(b"date,symbol,close\n")),
    ],
)
def test_empty_files(tmp_path, name, content):
    _write(tmp_path / name, content)
    reader = FilesBarReader(str(tmp_path))
    with pytest.raises(EmptySourceFileError, match=name.replace(".", r"\.")) as info:
        reader.read_bars()
    assert os.path.basename(info.value.path) == name


def test_empty_parquet(tmp_path):
    pd.DataFrame(
        {"date": pd.Series([], dtype="datetime64[ns]"), "symbol": pd.Series([], dtype=object), "close": []}
    ).to_parquet(tmp_path / "none.parquet")
    with pytest.raises(EmptySourceFileError, match=r"none\.parquet"):
        FilesBarReader(str(tmp_path)).read_bars()


def _valid_parquet_bytes(tmp_path) -> bytes:
    frame = pd.DataFrame(
        {"date": pd.date_range("2020-01-01", periods=500), "symbol": "A", "close": np.arange(500.0)}
    )
    frame.to_parquet(tmp_path / "scratch.parquet")
    data = (tmp_path / "scratch.parquet").read_bytes()
    os.remove(tmp_path / "scratch.parquet")
    return data


def test_corrupt_files(tmp_path):
    parquet = _valid_parquet_bytes(tmp_path)
    cases = {
        "truncated.parquet": parquet[: len(parquet) // 2],
        "no_footer.parquet": parquet[:-20],
        "text.parquet": b"date,symbol,close\n2020-01-02,A,1\n",
        "garbage_middle.parquet": parquet[:4] + b"\xff" * (len(parquet) - 8) + parquet[-4:],
        "is_parquet.csv": parquet,
        "is_gzip.csv": gzip.compress(b"date,symbol,close\n2020-01-02,A,1\n"),
        "not_gzip.csv.gz": b"date,symbol,close\n2020-01-02,A,1\n",
        "truncated.csv.gz": gzip.compress(b"date,symbol,close\n" * 1000)[:40],
        "binary.csv": b"date,symbol,close\n2020-01-02,A,\x00\x01\n",
    }
    for name, content in cases.items():
        sub = tmp_path / name.replace(".", "_")
        _write(sub / name, content)
        reader = FilesBarReader(str(sub))
        with pytest.raises(CorruptSourceFileError, match=name.replace(".", r"\.")) as info:
            reader.read_bars()
        assert os.path.basename(info.value.path) == name, name


def test_encoding_error_names_file_and_line(tmp_path):
    content = "date,symbol,close\n2020-01-02,AAA,1\n2020-01-03,CAFÉ,2\n".encode("latin-1")
    reader = _one_csv(tmp_path, content)
    with pytest.raises(SourceEncodingError, match=r"bars\.csv.*line 3") as info:
        reader.read_bars()
    assert info.value.line == 3
    assert os.path.basename(info.value.path) == "bars.csv"
    assert isinstance(info.value, SourceFileError)


def test_encoding_error_in_gzip_and_span(tmp_path):
    content = gzip.compress("date,symbol,close\n\xe9\n".encode("latin-1"))
    reader = _one_csv(tmp_path, content, name="x.csv.gz")
    with pytest.raises(SourceEncodingError, match=r"x\.csv\.gz.*line 2"):
        reader.first_day()


def test_utf8_bom_is_stripped(tmp_path):
    reader = _one_csv(tmp_path, "\ufeffDate,Symbol,Close\r\n2020-01-02,ÉTÉ,1.5\r\n".encode("utf-8"))
    bars = reader.read_bars()
    assert bars["symbol"].tolist() == ["ÉTÉ"]
    assert bars["close"].tolist() == [1.5]
    assert bars["parse_error"].tolist() == [None]


# ----------------------------------------------------------------------------------------------
# Row-level problems are kept and flagged
# ----------------------------------------------------------------------------------------------


def test_text_in_price_keeps_row_with_parse_error(tmp_path):
    reader = _one_csv(
        tmp_path,
        "date,symbol,open,high,low,close,adj_close,volume\n"
        "2020-01-02,AAA,1,2,0.5,1.5,1.5,100\n"
        "2020-01-02,BBB,1,2,0.5,abc,1.5,100\n"
        "2020-01-02,CCC,N/A,2,0.5,1.5,,\n"
        "2020-01-02,DDD,1,2,0.5,1.5,1.5,lots\n"
        "2020-01-02,EEE,1,2,0.5,inf,1.5,1e3\n",
    )
    bars = reader.read_bars().set_index("symbol")
    assert len(bars) == 5
    assert bars.loc["AAA", "parse_error"] is None
    assert bars.loc["BBB", "parse_error"] == "close: non-numeric value 'abc'"
    assert np.isnan(bars.loc["BBB", "close"])
    assert bars.loc["BBB", "open"] == 1.0
    # Empty cells are missing values, not parse errors.
    assert bars.loc["CCC", "parse_error"] == "open: non-numeric value 'N/A'"
    assert np.isnan(bars.loc["CCC", "adj_close"]) and np.isnan(bars.loc["CCC", "volume"])
    assert bars.loc["DDD", "parse_error"] == "volume: non-numeric value 'lots'"
    assert bars.loc["EEE", "parse_error"] == "close: non-numeric value 'inf'"
    assert bars.loc["EEE", "volume"] == 1000.0


def test_parse_error_column_always_present(tmp_path):
    bars = _one_csv(tmp_path, "date,symbol,close\n2020-01-02,A,1\n").read_bars()
    assert "parse_error" in bars.columns
    assert bars["parse_error"].tolist() == [None]


def test_bad_dates_and_symbols_keep_row(tmp_path):
    reader = _one_csv(
        tmp_path,
        "date,symbol,close\n"
        "xyz,AAA,1\n"
        "03/02/2020,BBB,2\n"
        "2020-02-30,CCC,3\n"
        ",DDD,4\n"
        "2020-01-02,   ,5\n"
        "2020-01-02,eee ,6\n",
    )
    bars = reader.read_bars()
    assert len(bars) == 6
    by_close = bars.set_index("close")
    assert by_close.loc[1.0, "parse_error"] == "date: unparseable 'xyz'"
    assert by_close.loc[2.0, "parse_error"] == "date: unparseable '03/02/2020'"
    assert by_close.loc[3.0, "parse_error"] == "date: unparseable '2020-02-30'"
    assert by_close.loc[4.0, "parse_error"] == "date: empty"
    for close in [1.0, 2.0, 3.0, 4.0]:
        assert pd.isna(by_close.loc[close, "date"])
    assert by_close.loc[5.0, "symbol"] is None
    assert by_close.loc[5.0, "parse_error"] == "symbol: empty"
    assert by_close.loc[6.0, "symbol"] == "EEE"
    assert by_close.loc[6.0, "parse_error"] is None
    # Rows with an unparseable date are returned with any window, since they fit none.
    windowed = reader.read_bars(pd.Timestamp("2021-01-01"), pd.Timestamp("2021-12-31"))
    assert sorted(windowed["close"]) == [1.0, 2.0, 3.0, 4.0]


def test_a_date_before_the_calendar_is_a_bad_row_not_the_span_start(tmp_path):
    """Regression: a typo ``1924-01-02`` in a bar file became the span's first day, before the exchange
    calendar's first session: the code location failed to load and every run failed with a bare ValueError."""
    _write(tmp_path / "bars.csv", "date,symbol,close\n2024-01-02,AAA,10\n1924-01-03,AAA,12\n2024-01-03,AAA,11\n")
    pq.write_table(pa.table({"date": pa.array([dt.date(1970, 1, 2), dt.date(2024, 1, 4)]), "symbol": ["BBB", "BBB"], "close": [1.0, 2.0]}),
                   tmp_path / "more.parquet")
    reader = FilesBarReader(str(tmp_path))
    assert reader.span() == (pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-04"))
    bars = reader.read_bars()
    bad = bars[bars["parse_error"].notna()].sort_values("source_file")
    assert bad["parse_error"].tolist() == [
        "date: 1924-01-03 is before 1980-01-02, the exchange calendar's first session",
        "date: 1970-01-02 is before 1980-01-02, the exchange calendar's first session"]
    assert bad["date"].isna().all() and bad["source_row"].tolist() == [2, 1]


def test_ragged_rows_are_flagged(tmp_path):
    reader = _one_csv(
        tmp_path,
        "date,symbol,close,volume\n"
        "2020-01-02,A,1,10\n"
        "2020-01-02,B,1\n"
        "2020-01-02,C,1,10,\n"
        "2020-01-02,D,1,0,5\n",
    )
    bars = reader.read_bars().set_index("symbol")
    assert bars.loc["A", "parse_error"] is None
    assert bars.loc["B", "parse_error"] == "row: has 3 fields, header has 4"
    assert bars.loc["C", "parse_error"] is None  # a trailing comma is harmless
    assert bars.loc["D", "parse_error"] == "row: has 5 fields, header has 4"


def test_source_row_counts_data_rows(tmp_path):
    reader = _one_csv(tmp_path, "\n date , symbol,close\n\n2020-01-03,B,2\n\n2020-01-02,A,1\n")
    bars = reader.read_bars()
    assert bars[["symbol", "source_row"]].values.tolist() == [["A", 2], ["B", 1]]


# ----------------------------------------------------------------------------------------------
# Dates and time zones
# ----------------------------------------------------------------------------------------------


def test_tz_aware_text_timestamps(tmp_path):
    reader = _one_csv(
        tmp_path,
        "date,symbol,close\n"
        "2020-03-02T00:00:00-05:00,A,1\n"  # NY midnight
        "2020-03-02 05:00:00+00:00,B,2\n"  # NY midnight, written in UTC
        "2020-03-02T21:00:00Z,C,3\n"  # NY 16:00 close, written in UTC
        "2020-07-01 20:00:00+0000,D,4\n"  # NY 16:00 (summer time)
        "2020-03-02 00:00:00+00:00,E,5\n"  # NY 19:00 on 1 March: would shift a day
        "2020-03-03T01:00:00Z,F,6\n"  # NY 20:00 on 2 March: would shift a day
        "2020-03-02,G,7\n"
        "2020-03-02 16:00:00,H,8\n"  # naive with a time: date as written
        "20200302,I,9\n"
        "2020/03/02,J,10\n",
    )
    bars = reader.read_bars().set_index("symbol")
    march2 = pd.Timestamp("2020-03-02")
    for sym in "ABCGHIJ":
        assert bars.loc[sym, "date"] == march2, sym
        assert bars.loc[sym, "parse_error"] is None, sym
    assert bars.loc["D", "date"] == pd.Timestamp("2020-07-01")
    for sym in "EF":
        assert pd.isna(bars.loc[sym, "date"]), sym
        assert "America/New_York" in bars.loc[sym, "parse_error"]
        assert bars.loc[sym, "parse_error"].startswith("date: ")
    assert "2020-03-01" in bars.loc["E", "parse_error"]


def test_tz_aware_parquet_timestamps(tmp_path):
    stamps = pd.to_datetime(
        ["2020-03-02 21:00", "2020-03-03 21:00", "2020-03-04 00:00"]
    ).tz_localize("UTC")
    pd.DataFrame({"date": stamps, "symbol": ["a", "a", "a"], "close": [1.0, 2.0, 3.0]}).to_parquet(
        tmp_path / "a.parquet"
    )
    bars = FilesBarReader(str(tmp_path)).read_bars()
    assert bars["date"].tolist()[:2] == [pd.Timestamp("2020-03-02"), pd.Timestamp("2020-03-03")]
    assert bars["parse_error"].tolist()[:2] == [None, None]
    assert pd.isna(bars["date"].iloc[2]) and "America/New_York" in bars["parse_error"].iloc[2]
    assert bars["symbol"].tolist() == ["A", "A", "A"]


def test_parquet_naive_timestamps_and_out_of_range(tmp_path):
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2020-01-02 16:00", "2020-01-03 00:00"]).as_unit("us"),
            "symbol": ["a", "b"],
            "close": [1.0, 2.0],
        }
    )
    frame.to_parquet(tmp_path / "n.parquet")
    far = pa.table(
        {
            "date": pa.array(
                [dt.datetime(2020, 1, 6), None, dt.datetime(2500, 1, 1)], pa.timestamp("us")
            ),
            "symbol": ["c", "c", "c"],
            "close": [3.0, 4.0, 5.0],
        }
    )
    pq.write_table(far, tmp_path / "far.parquet")
    bars = FilesBarReader(str(tmp_path)).read_bars()
    assert bars["date"].tolist()[:3] == [
        pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03"), pd.Timestamp("2020-01-06")
    ]
    assert bars["parse_error"].tolist() == [
        None, None, None, "date: empty", "date: out of range '2500-01-01 00:00:00'"
    ]


def test_parquet_date32_and_string_dates(tmp_path):
    table = pa.table(
        {
            "DATE": pa.array([dt.date(2020, 1, 2), dt.date(2020, 1, 3)], pa.date32()),
            "Symbol": pa.array(["x", "y"]).dictionary_encode(),
            "Close": pa.array(["1.5", "bad"]),
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    table2 = pa.table({"date": ["2020-01-06", "nope"], "symbol": ["z", "z"], "close": [1.0, float("inf")]})
    pq.write_table(table2, tmp_path / "s.parquet")
    bars = FilesBarReader(str(tmp_path)).read_bars()
    got = bars[["date", "symbol", "close", "parse_error"]].astype(object).where(bars.notna(), None)
    assert got.values.tolist() == [
        [pd.Timestamp("2020-01-02"), "X", 1.5, None],
        [pd.Timestamp("2020-01-03"), "Y", None, "close: non-numeric value 'bad'"],
        [pd.Timestamp("2020-01-06"), "Z", 1.0, None],
        [None, "Z", None, "date: unparseable 'nope'; close: non-finite value inf"],
    ]


# ----------------------------------------------------------------------------------------------
# Headers, discovery, registry
# ----------------------------------------------------------------------------------------------


def test_case_insensitive_headers(tmp_path):
    reader = _one_csv(
        tmp_path,
        " DATE ,SyMbOl, Open ,HIGH,low,Close,Adj Close,VOLUME,Comment\n"
        "2020-01-02,aapl,1,2,0.5,1.5,1.4,100,ignored\n",
    )
    bars = reader.read_bars()
    assert list(bars.columns) == OUTPUT_COLUMNS
    row = bars.iloc[0]
    assert (row["date"], row["symbol"]) == (pd.Timestamp("2020-01-02"), "AAPL")
    assert [row[c] for c in ["open", "high", "low", "close", "adj_close", "volume"]] == [
        1.0, 2.0, 0.5, 1.5, 1.4, 100.0,
    ]


@pytest.mark.parametrize("header", ["Adj. Close", "AdjClose", "Adjusted Close", "adj.close"])
def test_vendor_spellings_of_the_adjusted_close_are_read(tmp_path, header):
    """Regression: ``Adj. Close`` or ``AdjClose`` was ignored as an unknown column, so adj_close was missing and
    the returns silently used the unadjusted close."""
    reader = _one_csv(tmp_path, f"date,symbol,close,{header}\n2020-01-02,AAA,10,9.5\n")
    assert reader.read_bars()["adj_close"].tolist() == [9.5]


def test_instruments_csv_is_registry_not_bars(tmp_path):
    _write(tmp_path / "bars.csv", "date,symbol,close\n2020-01-02,aaa,1\n2020-01-02,BBB,2\n")
    _write(tmp_path / "instruments.csv", "Symbol, Name ,SECTOR\n aaa ,Aaa Inc,Tech\nBBB,,\n")
    reader = FilesBarReader(str(tmp_path))
    assert reader.bar_files() == ["bars.csv"]
    assert set(reader.read_bars()["source_file"]) == {"bars.csv"}
    reg = reader.read_instruments()
    assert list(reg.columns) == ["symbol", "name", "sector", "industry", "currency"]
    assert reg.values.tolist() == [
        ["AAA", "Aaa Inc", "Tech", None, None],
        ["BBB", None, None, None, None],
    ]


def test_instruments_parquet_and_absent(tmp_path):
    _write(tmp_path / "bars.csv", "date,symbol,close\n2020-01-02,A,1\n")
    reader = FilesBarReader(str(tmp_path))
    assert reader.read_instruments() is None
    pd.DataFrame({"symbol": ["a"], "currency": ["USD"], "extra": [1]}).to_parquet(
        tmp_path / "instruments.parquet"
    )
    assert reader.bar_files() == ["bars.csv"]
    assert reader.read_instruments().values.tolist() == [["A", None, None, None, "USD"]]
    _write(tmp_path / "instruments.csv", "symbol\nB\n")
    with pytest.raises(SourceConfigError, match="instruments"):
        reader.read_instruments()


def test_instruments_errors_name_the_file(tmp_path):
    _write(tmp_path / "bars.csv", "date,symbol,close\n2020-01-02,A,1\n")
    _write(tmp_path / "instruments.csv", "ticker,name\nA,a\n")
    with pytest.raises(MissingColumnError, match=r"instruments\.csv.*symbol"):
        FilesBarReader(str(tmp_path)).read_instruments()


def test_a_registry_with_a_repeated_or_missing_symbol_is_a_named_error(tmp_path):
    """Regression: two rows for one symbol (``AAPL`` and ``aapl ``) with different sectors, and a row without a
    symbol, were accepted: later joins kept one row silently, and one of them failed on a non-unique index."""
    _write(tmp_path / "bars.csv", "date,symbol,close\n2020-01-02,AAPL,1\n")
    _write(tmp_path / "instruments.csv", "symbol,sector\nAAPL,Information Technology\nMSFT,Information Technology\naapl ,Energy\n")
    with pytest.raises(SourceConfigError, match=r"instruments\.csv: symbol 'AAPL' is listed in data rows \[1, 3\]"):
        FilesBarReader(str(tmp_path)).read_instruments()
    _write(tmp_path / "instruments.csv", "symbol,sector\nAAPL,Information Technology\n ,Energy\n")
    with pytest.raises(SourceConfigError, match=r"instruments\.csv: data row\(s\) \[2\] have no symbol"):
        FilesBarReader(str(tmp_path)).read_instruments()


def test_hidden_and_foreign_files_ignored(tmp_path):
    _write(tmp_path / "bars.csv", "date,symbol,close\n2020-01-02,A,1\n")
    _write(tmp_path / ".hidden.csv", b"\x00 garbage")
    _write(tmp_path / ".ipynb_checkpoints" / "bars-checkpoint.csv", "date,symbol,close\n2020-01-02,A,1\n")
    _write(tmp_path / "README.txt", "notes")
    _write(tmp_path / "sub" / "More.CSV", "date,symbol,close\n2020-01-03,B,2\n")
    reader = FilesBarReader(str(tmp_path))
    assert reader.bar_files() == ["bars.csv", "sub/More.CSV"]
    assert reader.read_bars()["symbol"].tolist() == ["A", "B"]


def test_constructor_rejects_unusable_roots(tmp_path):
    with pytest.raises(SourceConfigError, match="does not exist"):
        FilesBarReader(str(tmp_path / "nope"))
    _write(tmp_path / "file.csv", "date,symbol,close\n2020-01-02,A,1\n")
    with pytest.raises(SourceConfigError, match="not a directory"):
        FilesBarReader(str(tmp_path / "file.csv"))
    empty = tmp_path / "empty"
    _write(empty / "instruments.csv", "symbol\nA\n")
    _write(empty / ".x.csv", "date,symbol,close\n")
    _write(empty / "notes.txt", "x")
    with pytest.raises(SourceConfigError, match="no bar files"):
        FilesBarReader(str(empty))
    with pytest.raises(SourceConfigError):
        FilesBarReader("s3://bucket/bars")


def test_last_day_not_after_ignores_future_bars_and_future_day_files(tmp_path):
    # A typo (2204 for 2024) in a multi-day file, and a file named for a future day.
    _write(tmp_path / "bars.csv", "date,symbol,close\n2024-01-02,A,1\n2204-01-02,A,2\n2024-01-03,B,3\n")
    _write(tmp_path / "2199-03-04.csv", "date,symbol,close\n2199-03-04,A,1\n")
    reader = FilesBarReader(str(tmp_path))
    assert reader.last_day() == pd.Timestamp("2204-01-02")
    assert reader.last_day(not_after="2030-01-01") == pd.Timestamp("2024-01-03")
    assert reader.last_day(not_after="2024-01-02") == pd.Timestamp("2024-01-02")
    assert reader.first_day() == pd.Timestamp("2024-01-02")
    with pytest.raises(SourceConfigError, match="no bar dated on or before 2024-01-01"):
        reader.last_day(not_after="2024-01-01")
    # Editing the file invalidates the cached dates.
    _write(tmp_path / "bars.csv", "date,symbol,close\n2024-01-02,A,1\n2024-01-05,B,3.25\n")
    assert reader.last_day(not_after="2030-01-01") == pd.Timestamp("2024-01-05")


def test_a_same_size_rewrite_with_its_old_mtime_is_seen(tmp_path):
    """Regression: the cached dates of a file were keyed by (mtime, size), so a rewrite of the same size that
    restored the mtime (``cp -p``, ``rsync -t``) left the span at the old file's last day."""
    path = tmp_path / "bars.csv"
    _write(path, "date,symbol,close\n2024-01-02,A,1\n2024-01-03,A,2\n")
    reader = FilesBarReader(str(tmp_path))
    assert reader.last_day() == pd.Timestamp("2024-01-03")
    before = os.stat(path)
    time.sleep(0.05)  # (a later change time than the first write's, on any file system clock)
    _write(path, "date,symbol,close\n2024-01-02,A,1\n2024-01-04,A,2\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert reader.last_day() == pd.Timestamp("2024-01-04")


def test_span_without_any_parseable_date(tmp_path):
    reader = _one_csv(tmp_path, "date,symbol,close\nxyz,A,1\n")
    with pytest.raises(SourceConfigError, match="parseable date"):
        reader.first_day()


# ----------------------------------------------------------------------------------------------
# Determinism
# ----------------------------------------------------------------------------------------------


def test_ordering_is_deterministic(tmp_path, long_prices):
    shuffled = long_prices.sample(frac=1.0, random_state=7).reset_index(drop=True)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    # Same rows, split differently and written in a different order.
    chunks = [shuffled.iloc[i::3] for i in range(3)]
    for i, chunk in enumerate(chunks):
        chunk.to_csv(a / f"part{i}.csv", index=False)
    for i, chunk in reversed(list(enumerate(chunks))):
        chunk.to_csv(b / f"part{i}.csv", index=False)
    # A duplicate (date, symbol) across files: tie broken by source_file then source_row.
    long_prices.head(3).to_csv(a / "dup.csv", index=False)
    long_prices.head(3).to_csv(b / "dup.csv", index=False)

    bars_a = FilesBarReader(str(a)).read_bars()
    bars_b = FilesBarReader(str(b)).read_bars()
    pd.testing.assert_frame_equal(bars_a, bars_b)
    pd.testing.assert_frame_equal(bars_a, FilesBarReader(str(a)).read_bars())
    assert bars_a.index.equals(pd.RangeIndex(len(bars_a)))
    keys = list(zip(bars_a["date"], bars_a["symbol"], bars_a["source_file"], bars_a["source_row"]))
    assert keys == sorted(keys)
    assert len(bars_a) == len(long_prices) + 3
    first = bars_a.iloc[:2]
    assert first["date"].nunique() == 1 and first["symbol"].nunique() == 1
    assert first["source_file"].iloc[0] == "dup.csv"
    assert first["source_file"].iloc[1].startswith("part")


def test_columns_contract(tmp_path):
    bars = _one_csv(tmp_path, "date,symbol,close\n2020-01-02,A,1\n").read_bars()
    assert list(bars.columns)[: len(BAR_COLUMNS)] == BAR_COLUMNS
    assert list(bars.columns)[len(BAR_COLUMNS):] == ["source_file", "source_row", "parse_error"]
