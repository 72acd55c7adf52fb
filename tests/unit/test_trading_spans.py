"""The registry's trading spans carried between runs: a files source reads only new day files, with the same registry.

The directory tests compare every carried result with a fresh read of every bar file of the same
directory (the reference), after appends and after each change that must force a full read.
"""

import os
import time

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prometheus_assets.assets.upstream_files import SETTLED_SECONDS
from prometheus_assets.core import trading_spans
from prometheus_assets.core.trading_spans import SpanState, appended_files
from prometheus_assets.resources.sources import FilesSource, finish_registry
from tests.conftest import bundled_wide, write_day_files

WINDOW = ("2022-01-03", None)


def state(files=None, future=0, as_of="2022-03-01") -> SpanState:
    files = files if files is not None else {"2022-01-03.csv": [1, 2, 3, 4], "2022-01-04.csv": [5, 6, 7, 8]}
    return SpanState(source="/bars", window=WINDOW, as_of=as_of, files=files, seen=("A",),
                     spans={"A": ("2022-01-03", "2022-01-04")}, future_rows=future)


def test_appended_files_only_when_the_result_is_exact():
    old = state()
    now = {**old.files, "2022-01-05.csv": [9, 9, 9, 9]}
    stems = {rel: rel[:10] for rel in now}
    assert appended_files(old, "/bars", now, stems, WINDOW, "2022-03-01") == ["2022-01-05.csv"]
    assert appended_files(old, "/bars", old.files, {rel: rel[:10] for rel in old.files}, WINDOW, "2022-03-02") == []  # nothing new, a later day
    assert appended_files(None, "/bars", now, stems, WINDOW, "2022-03-01") is None
    assert appended_files(old, "/other", now, stems, WINDOW, "2022-03-01") is None  # another directory
    assert appended_files(old, "/bars", now, stems, ("2021-01-04", None), "2022-03-01") is None  # another window
    changed = {**now, "2022-01-03.csv": [1, 2, 3, 99]}
    assert appended_files(old, "/bars", changed, stems, WINDOW, "2022-03-01") is None
    removed = {k: v for k, v in now.items() if k != "2022-01-04.csv"}
    assert appended_files(old, "/bars", removed, stems, WINDOW, "2022-03-01") is None
    same_day = {**now, "more/2022-01-04.parquet": [1, 1, 1, 1]}  # could hold duplicates of read rows
    assert appended_files(old, "/bars", same_day, {rel: rel[-18:-8] if "/" in rel else rel[:10] for rel in same_day}, WINDOW, "2022-03-01") is None
    undated = {**now, "history.csv": [1, 1, 1, 1]}
    assert appended_files(old, "/bars", undated, {**stems, "history.csv": None}, WINDOW, "2022-03-01") is None
    unsettled = state(files={"2022-01-03.csv": None})
    assert appended_files(unsettled, "/bars", {"2022-01-03.csv": [1, 2, 3, 4]}, {"2022-01-03.csv": "2022-01-03"}, WINDOW, "2022-03-01") is None
    # a row dated after as_of may be accepted on a later day: only the same day may carry it
    future = state(future=1)
    assert appended_files(future, "/bars", now, stems, WINDOW, "2022-03-01") == ["2022-01-05.csv"]
    assert appended_files(future, "/bars", now, stems, WINDOW, "2022-03-02") is None


@given(st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 30), st.integers(0, 30)), max_size=8),
       st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 30), st.integers(0, 30)), max_size=8))
def test_extending_a_state_equals_the_spans_of_all_rows(first, second):
    def rows(spec):
        days = [pd.Timestamp("2022-01-03") + pd.Timedelta(days=d) for s, a, b in spec for d in (a, b)]
        return pd.DataFrame({"symbol": [s for s, _, _ in spec for _ in (0, 1)], "date": days})

    a, b = rows(first), rows(second)
    empty = SpanState(source="/bars", window=WINDOW, as_of="2022-03-01")
    carried = empty.extended({}, set(a["symbol"]), trading_spans.spans_of(a), 0).extended({}, set(b["symbol"]), trading_spans.spans_of(b), 0)
    assert carried.spans == trading_spans.spans_of(pd.concat([a, b], ignore_index=True))
    assert carried.seen == tuple(sorted(set(a["symbol"]) | set(b["symbol"])))
    assert SpanState.from_json(carried.to_json()) == carried


def test_a_state_of_another_version_or_shape_is_not_used():
    good = state().to_json()
    assert SpanState.from_json(good) == state()
    assert SpanState.from_json({**good, "version": trading_spans.STATE_VERSION + 1}) is None
    assert SpanState.from_json({k: v for k, v in good.items() if k != "spans"}) is None
    assert SpanState.from_json(["not", "a", "state"]) is None


def settle():
    time.sleep(SETTLED_SECONDS + 0.1)  # (a file's status is trusted once unchanged that long)


def fresh(root) -> pd.DataFrame:
    """The reference: every bar file read (no carried state)."""
    registry, _, files_read = FilesSource(str(root)).registry(None)
    assert files_read == len(FilesSource(str(root)).reader.bar_files())
    return registry


@pytest.mark.parametrize("with_registry_file", [False, True])
def test_a_new_day_reads_only_its_files_and_gives_the_registry_of_a_full_read(tmp_path, with_registry_file):
    root = tmp_path / "bars"
    wide = bundled_wide("2022-01-03", "2022-02-28")
    write_day_files(root, wide.iloc[:30])
    if with_registry_file:
        pd.DataFrame({"symbol": list(wide.columns) + ["NEVER"], "name": "x"}).to_csv(root / "instruments.csv", index=False)
    settle()
    registry, carried, read = FilesSource(str(root)).registry(None)
    assert read == 30 and registry.equals(fresh(root))
    # the full read is the registry built from every bar by finish_registry (what instruments stored before)
    source = FilesSource(str(root))
    if with_registry_file:
        assert registry.equals(source.instruments())
    else:
        bars = source.load_bars(source.span()[0], None)
        assert registry.equals(finish_registry(pd.DataFrame({"symbol": sorted(bars["symbol"].dropna().unique())}), bars))

    write_day_files(root, wide.iloc[30:32])  # two new sessions (delivered a while before the run reads them)
    settle()
    registry, carried, read = FilesSource(str(root)).registry(carried)
    assert read == 2 and registry.equals(fresh(root))
    assert registry["last_trading_date"].max() == wide.index[31]
    registry, carried, read = FilesSource(str(root)).registry(carried)  # nothing new: no bar file read
    assert read == 0 and registry.equals(fresh(root))

    # An old file rewritten (a symbol's first bar now rejected): every file is read again, and the span moves.
    first = root / f"{wide.index[0]:%Y-%m-%d}.csv"
    day = pd.read_csv(first)
    day.loc[day["symbol"] == "AAPL", ["close", "adj_close"]] = -1.0
    day.to_csv(first, index=False)
    registry, carried, read = FilesSource(str(root)).registry(carried)
    assert read == 32 and registry.equals(fresh(root))
    assert registry.set_index("symbol").loc["AAPL", "first_trading_date"] == wide.index[1]

    # A second file for a date already read, with a conflicting bar: read again (it rejects both copies).
    settle()
    (root / "late").mkdir()
    other = pd.read_csv(root / f"{wide.index[31]:%Y-%m-%d}.csv")
    other["close"] = other["close"] * 2
    other.to_csv(root / "late" / f"{wide.index[31]:%Y-%m-%d}.csv", index=False)
    registry, carried, read = FilesSource(str(root)).registry(carried)
    assert read == 33 and registry.equals(fresh(root))
    assert registry["last_trading_date"].max() == wide.index[30]

    # A file removed: read again.
    settle()
    os.remove(root / "late" / f"{wide.index[31]:%Y-%m-%d}.csv")
    registry, carried, read = FilesSource(str(root)).registry(carried)
    assert read == 32 and registry.equals(fresh(root))
    assert registry["last_trading_date"].max() == wide.index[31]


def test_a_file_not_named_after_a_date_makes_every_run_read_every_file(tmp_path):
    root = tmp_path / "bars"
    wide = bundled_wide("2022-01-03", "2022-01-31")
    write_day_files(root, wide.iloc[:10])
    long = wide.iloc[10:15].rename_axis(index="date", columns="symbol").stack().rename("close").reset_index()
    long.to_csv(root / "more.csv", index=False)
    settle()
    _, carried, read = FilesSource(str(root)).registry(None)
    assert read == 11
    write_day_files(root, wide.iloc[15:16])
    registry, carried, read = FilesSource(str(root)).registry(carried)
    assert read == 12 and registry.equals(fresh(root))


def test_a_file_still_being_written_is_read_again_next_time(tmp_path):
    root = tmp_path / "bars"
    wide = bundled_wide("2022-01-03", "2022-01-31")
    write_day_files(root, wide.iloc[:5])  # not settled: their status is not trusted
    _, carried, read = FilesSource(str(root)).registry(None)
    assert read == 5 and all(v is None for v in carried.files.values())
    settle()
    _, carried, read = FilesSource(str(root)).registry(carried)
    assert read == 5 and all(v is not None for v in carried.files.values())
    _, _, read = FilesSource(str(root)).registry(carried)
    assert read == 0
