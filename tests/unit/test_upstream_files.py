"""upstream_files: the digests of a table's year files, and the cache that keeps them between runs."""

import hashlib
import json
import os
import time

import pandas as pd
import pytest

from prometheus_assets.assets import upstream_files
from prometheus_assets.resources.storage import ParquetStore

SETTLED = 0.3  # seconds: the tests shorten the settling margin (the product uses SETTLED_SECONDS)


@pytest.fixture
def store(home, monkeypatch):
    monkeypatch.setattr(upstream_files, "SETTLED_SECONDS", SETTLED)
    monkeypatch.setattr(upstream_files, "_DIGESTS", {})  # a new process: nothing hashed yet
    return ParquetStore(str(home))


def _write(store: ParquetStore, years: list[int], value: float = 1.0) -> None:
    for year in years:
        dates = pd.DatetimeIndex([f"{year}-03-02"])
        store.write_dated("returns_daily", pd.DataFrame({"date": dates, "symbol": ["A"], "return": [value]}), dates)


def _truth(store: ParquetStore) -> dict[str, str]:
    return {os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest() for p in store.files("returns_daily")}


def _cached(store: ParquetStore) -> dict:
    raw = store.read_bytes(upstream_files.CACHE_FILE)
    return json.loads(raw) if raw else {}


def test_digests_are_recorded_once_settled_and_reused_only_while_the_file_is_unchanged(store, monkeypatch):
    _write(store, [2020, 2021])
    digests = {f.name: f.sha256 for f in upstream_files.file_digests(store, "returns_daily")}
    assert digests == _truth(store)
    assert _cached(store) == {}  # just written: too recent to vouch for (a rewrite within the clock tick could look the same)
    time.sleep(SETTLED + 0.05)
    upstream_files.file_digests(store, "returns_daily")
    assert sorted(_cached(store)) == ["parquet/returns_daily/2020.parquet", "parquet/returns_daily/2021.parquet"]

    # a later run reads the recorded digests: no file is opened to hash it
    monkeypatch.setattr(upstream_files, "_DIGESTS", {})
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
    assert {f.name: f.sha256 for f in upstream_files.file_digests(store, "returns_daily")} == digests
    assert not [p for p in opened if str(p).endswith(".parquet")]
    monkeypatch.setattr("builtins.open", real_open)

    # a file rewritten with other bytes of the same size, its mtime set back: its ctime moved, so it is hashed again
    path = store.files("returns_daily")[0]
    before = os.stat(path)
    _write(store, [2020], value=2.0)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.path.getsize(path) == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns
    after = {f.name: f.sha256 for f in upstream_files.file_digests(store, "returns_daily")}
    assert after == _truth(store) and after["2020.parquet"] != digests["2020.parquet"]


def test_a_removed_file_leaves_the_cache_and_a_corrupt_cache_is_rebuilt(store):
    _write(store, [2019, 2020])
    time.sleep(SETTLED + 0.05)
    upstream_files.file_digests(store, "returns_daily")
    assert len(_cached(store)) == 2
    os.remove(store.files("returns_daily")[0])
    upstream_files.file_digests(store, "returns_daily")
    assert sorted(_cached(store)) == ["parquet/returns_daily/2020.parquet"]

    store.write_bytes(upstream_files.CACHE_FILE, b"{not json")
    assert {f.name: f.sha256 for f in upstream_files.file_digests(store, "returns_daily")} == _truth(store)
    assert sorted(_cached(store)) == ["parquet/returns_daily/2020.parquet"]


def test_other_tables_entries_are_kept(store):
    _write(store, [2020])
    dates = pd.DatetimeIndex(["2020-03-02"])
    store.write_dated("strategy_signals", pd.DataFrame({"date": dates, "symbol": ["A"], "alpha_score": [0.5]}), dates)
    time.sleep(SETTLED + 0.05)
    upstream_files.file_digests(store, "returns_daily")
    upstream_files.file_digests(store, "strategy_signals")
    assert sorted(_cached(store)) == ["parquet/returns_daily/2020.parquet", "parquet/strategy_signals/2020.parquet"]
