"""Security clauses of the hardening issue, one test (or a few) each.

* The UI binds to 127.0.0.1 unless told otherwise.
* Model artifacts are loaded only from our own storage root and verified by hash.
* Every SQL identifier built from a name (view names) is validated.
* User paths are resolved under their roots (``..``, absolute paths and symlink escapes refused).
"""

import hashlib
import os
import re
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from prometheus_assets.cli import DEFAULT_UI_HOST, build_parser, ui_argv
from prometheus_assets.errors import PathEscapeError, StorageError
from prometheus_assets.resources.baselines import BaselineError, freeze_baseline, load_baseline
from prometheus_assets.resources.files_source import FilesBarReader
from prometheus_assets.resources.models import ModelIntegrityError, ModelStore
from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore, resolve_under, sql_identifier

BAD_NAMES = ['x"; drop table prices_daily; --', "x'; select 1", "prices daily", "Prices", "../prices", "a/b", "", "1x", "x" * 64, "x\x00"]


def frame(days):
    return pd.DataFrame({"date": pd.to_datetime(days), "symbol": "A", "close": range(len(days))})


# --------------------------------------------------------------------------- the UI
def test_ui_listens_on_loopback_by_default():
    args = build_parser().parse_args(["ui"])
    argv = ui_argv(args.host, args.port)
    assert DEFAULT_UI_HOST == "127.0.0.1"
    assert argv[argv.index("-h") + 1] == "127.0.0.1"
    # ... unless told otherwise
    args = build_parser().parse_args(["ui", "--host", "0.0.0.0", "--port", "3333"])
    argv = ui_argv(args.host, args.port)
    assert argv[argv.index("-h") + 1] == "0.0.0.0" and argv[argv.index("-p") + 1] == "3333"


# --------------------------------------------------------------------------- model artifacts
def test_a_tampered_model_artifact_is_refused(home):
    store = ModelStore(str(home))
    manifest = store.save("numeric_encoder", "enc-1", {"weights": [1.0, 2.0]})
    assert store.load("numeric_encoder", "enc-1", sha256=manifest["sha256"]) == {"weights": [1.0, 2.0]}
    blob = home / "models" / "numeric_encoder" / "enc-1.joblib"
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one flipped bit
    with pytest.raises(ModelIntegrityError, match="refusing"):
        store.load("numeric_encoder", "enc-1")


def test_a_swapped_artifact_and_manifest_are_refused_against_the_recorded_hash(home):
    # Someone who can write the root replaces both the pickle and its manifest consistently:
    # the manifest check passes, the hash recorded at fit time (assessment_models.sha256) does not.
    store = ModelStore(str(home))
    recorded = store.save("assessment_model", "m-1", {"honest": True})["sha256"]
    ModelStore(str(home)).save("assessment_model", "m-1", {"honest": False})
    with pytest.raises(ModelIntegrityError, match="recorded hash"):
        store.load("assessment_model", "m-1", sha256=recorded)


def test_models_are_loaded_only_from_under_our_root(home, tmp_path):
    store = ModelStore(str(home))
    for bad in ["../evil", "/etc/passwd", "a/b", ".hidden", "..", ""]:
        with pytest.raises(StorageError):
            store.load("numeric_encoder", bad)
    with pytest.raises(StorageError):
        store.load("../models", "x")
    # A model directory that is a symlink to somewhere else is refused before anything is read.
    elsewhere = tmp_path / "elsewhere"
    ModelStore(str(elsewhere)).save("regime_model", "r-1", {"planted": True})
    (home / "models").mkdir(exist_ok=True)
    os.symlink(elsewhere / "models" / "regime_model", home / "models" / "regime_model")
    with pytest.raises(PathEscapeError, match="outside the root"):
        store.load("regime_model", "r-1")
    with pytest.raises(PathEscapeError):
        store.save("regime_model", "r-2", {"x": 1})
    assert not (elsewhere / "models" / "regime_model" / "r-2.joblib").exists()


def test_a_tampered_baseline_is_refused(home):
    store = ParquetStore(str(home))
    days = pd.bdate_range("2020-01-01", "2020-01-31")
    store.write_dated("allocator_risk_v1_applied", frame(days), days)
    freeze_baseline(store, "b1", ["allocator_risk_v1_applied"])
    assert len(load_baseline(store, "b1", "allocator_risk_v1_applied.parquet")) == len(days)
    path = home / "baselines" / "b1" / "allocator_risk_v1_applied.parquet"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(BaselineError, match="sha256"):
        load_baseline(store, "b1", "allocator_risk_v1_applied.parquet")
    for bad_id in ["../b1", "b1/..", "/tmp", ""]:
        with pytest.raises(BaselineError):
            load_baseline(store, bad_id, "allocator_risk_v1_applied.parquet")
    with pytest.raises(PathEscapeError):
        load_baseline(store, "b1", "../../parquet/allocator_risk_v1_applied/2020.parquet")


# --------------------------------------------------------------------------- SQL identifiers
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_a_view_name_that_is_not_an_identifier_is_refused(home, bad):
    with pytest.raises(StorageError):
        sql_identifier(bad)
    with pytest.raises(StorageError):
        DuckDBCatalog(ParquetStore(str(home))).view_sql(bad)
    with pytest.raises(StorageError):
        ParquetStore(str(home)).write_dated(bad, frame(["2020-01-02"]), pd.to_datetime(["2020-01-02"]))
    assert not (home / "prometheus.duckdb").exists() and not list(home.glob("**/*.parquet"))


def test_reserved_words_are_quoted_and_a_hostile_directory_never_becomes_a_view(home):
    store = ParquetStore(str(home))
    days = pd.to_datetime(["2020-01-02", "2020-01-03"])
    store.write_dated("order", frame(days), days)  # a valid identifier and an SQL keyword
    hostile = home / "parquet" / 'x"; drop view order; --'
    hostile.mkdir(parents=True)
    (hostile / "2020.parquet").write_bytes((home / "parquet" / "order" / "2020.parquet").read_bytes())
    assert store.tables() == ["order"]  # directories that are not identifiers are not tables
    assert DuckDBCatalog(store).refresh() == ["order"]
    con = duckdb.connect(str(home / "prometheus.duckdb"), read_only=True)
    try:
        assert {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()} == {"order"}
        assert con.execute(f"select count(*) from {sql_identifier('order')}").fetchone()[0] == 2
    finally:
        con.close()


def test_prometheus_sql_cannot_change_the_catalog_nor_touch_files_outside_the_root(home, tmp_path):
    store = ParquetStore(str(home))
    days = pd.to_datetime(["2020-01-02"])
    store.write_dated("prices_daily", frame(days), days)
    DuckDBCatalog(store).refresh(["prices_daily"])
    before = hashlib.sha256((home / "prometheus.duckdb").read_bytes()).hexdigest()
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n42\n")
    env = {**os.environ, "PROMETHEUS_HOME": str(home)}
    cli = [sys.executable, "-m", "prometheus_assets.cli", "sql"]
    ok = subprocess.run([*cli, "select count(*) as n from prices_daily"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "1" in ok.stdout
    refused = {
        "drop view prices_daily": "read-only",
        "create table t as select 1": "read-only",
        f"select * from read_csv('{secret}')": "disabled by configuration",
        f"copy (select 1) to '{tmp_path / 'out.csv'}'": "disabled by configuration",
        f"attach '{tmp_path / 'other.duckdb'}'": "disabled by configuration",
        "set enable_external_access = true": "locked",
    }
    for statement, why in refused.items():
        bad = subprocess.run([*cli, statement], env=env, capture_output=True, text=True, timeout=120)
        assert bad.returncode != 0 and why in (bad.stderr + bad.stdout).lower(), (statement, bad.stderr[-500:])
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()
    assert hashlib.sha256((home / "prometheus.duckdb").read_bytes()).hexdigest() == before


# --------------------------------------------------------------------------- paths under their roots
@pytest.mark.parametrize("bad", ["../x", "reports/../../x", "/etc/passwd", "a//b", "./a", "a\\..\\b", "a\x00b", ""])
def test_relative_paths_that_leave_the_root_are_refused(home, bad):
    store = ParquetStore(str(home))
    with pytest.raises(PathEscapeError):
        store.write_text(bad, "no")
    with pytest.raises(PathEscapeError):
        store.read_bytes(bad)
    with pytest.raises(PathEscapeError):
        resolve_under(str(home), bad)


def test_a_table_name_with_dot_dot_is_refused(home):
    store = ParquetStore(str(home))
    for bad in ["../prices_daily", "..", "parquet/../x"]:
        with pytest.raises(StorageError):
            store.table_dir(bad)
        with pytest.raises(StorageError):
            store.read(bad)


def test_symlinks_out_of_the_storage_root_are_refused(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, home / "reports")
    store = ParquetStore(str(home))
    with pytest.raises(PathEscapeError, match="outside the root"):
        store.read_bytes("reports/secret.txt")
    with pytest.raises(PathEscapeError):
        store.write_text("reports/sleeves.html", "overwrite")
    assert (outside / "secret.txt").read_text() == "secret" and not (outside / "sleeves.html").exists()
    # a symlink that stays inside the root is fine
    (home / "real").mkdir()
    os.symlink(home / "real", home / "alias")
    store.write_text("alias/x.md", "ok")
    assert (home / "real" / "x.md").read_text() == "ok"


def test_files_source_refuses_a_bar_file_linking_outside_its_directory(tmp_path):
    data = tmp_path / "bars"
    data.mkdir()
    (data / "2020-01-02.csv").write_text("date,symbol,close\n2020-01-02,A,1.0\n")
    outside = tmp_path / "outside.csv"
    outside.write_text("date,symbol,close\n2020-01-03,B,2.0\n")
    reader = FilesBarReader(str(data))
    assert len(reader.read_bars()) == 1
    os.symlink(outside, data / "2020-01-03.csv")
    with pytest.raises(PathEscapeError, match="2020-01-03.csv"):
        FilesBarReader(str(data)).read_bars()


def test_prometheus_sql_and_summary_in_a_copied_root_read_the_copy_not_the_original(tmp_path):
    """Views hold absolute paths: a copied root's catalog first pointed at the original's files
    (``sql`` refused them, ``summary`` silently described the original)."""
    import shutil

    original = tmp_path / "a" / "data"
    store = ParquetStore(str(original))
    days = pd.to_datetime(["2020-01-02", "2020-01-03"])
    store.write_dated("prices_daily", frame(days), days)
    DuckDBCatalog(store).refresh(["prices_daily"])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    store.write_dated("prices_daily", frame(days[:1]), days)  # the original changes after the copy: one row left
    cli = [sys.executable, "-m", "prometheus_assets.cli", "sql", "select count(*) as n from prices_daily"]
    for root, rows in ((tmp_path / "b" / "data", 2), (original, 1)):
        env = {**os.environ, "PROMETHEUS_HOME": str(root)}
        described = subprocess.run([*cli[:3], "summary"], env=env, capture_output=True, text=True, timeout=120)  # (first: sql would update the views)
        assert described.returncode == 0, described.stderr[-500:]
        assert re.findall(r"^prices_daily\s+(\d+)\s", described.stdout, re.M) == [str(rows)], described.stdout
        out = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-500:]
        assert re.findall(r"│\s+(\d+)\s+│", out.stdout) == [str(rows)], out.stdout
