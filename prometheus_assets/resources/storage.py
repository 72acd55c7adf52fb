"""Parquet storage (the source of truth) and the DuckDB catalog over it.

Layout under the storage root ``PROMETHEUS_HOME`` (a local path or any fsspec URL)::

    <home>/parquet/<table>/<YYYY>.parquet    date-keyed tables: one file per calendar year
    <home>/parquet/<table>/data.parquet      whole tables (registries, fitted summaries)
    <home>/prometheus.duckdb                 one view per table, named as the table

Why yearly files: one file per day costs ~50x the disk and ~100x the read time (DESIGN.md), yet
a daily partition must still be replaceable on its own. A write of dates D therefore rewrites
each touched year file as (old rows whose date is not in D) + (new rows), under a per-file lock,
into a hidden temporary file that is atomically renamed over the old one. Readers (and DuckDB's
``*.parquet`` glob) never see a half-written file; a killed writer leaves only a hidden temp file
that the next writer of that file removes.

Determinism: rows are ordered by date (stable, keeping each date's rows in the order the asset
produced them) and no wall-clock metadata is written, so re-materializing identical data gives
byte-identical files.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prometheus_assets.errors import StorageError

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
WHOLE_FILE = "data.parquet"
#: A zero-row file giving a dated table with no rows yet its schema (and so its view).
EMPTY_FILE = "empty.parquet"
_YEAR_FILE = re.compile(r"^(\d{4})\.parquet$")
_LOCAL_PROTOCOLS = {"file", "local"}


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a safe table/view identifier (lower-case letters, digits, ``_``)."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise StorageError(f"invalid table name {name!r}: use lower-case letters, digits and '_' (max 63)")
    return name


def _is_date_column(name: str) -> bool:
    return name == "date" or name.endswith("_date")


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Arrow table for ``frame``: ``date`` / ``*_date`` columns as ``date32``, no pandas metadata."""
    if len(frame.columns) == 0:
        raise StorageError("refusing to store a frame with no columns: give an empty result its schema")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = []
    for field in table.schema:
        if _is_date_column(field.name) and pa.types.is_timestamp(field.type):
            fields.append(pa.field(field.name, pa.date32()))
        elif pa.types.is_large_string(field.type) or pa.types.is_string_view(field.type):
            fields.append(pa.field(field.name, pa.string()))
        else:
            fields.append(field)
    table = table.cast(pa.schema(fields))
    return table.replace_schema_metadata(None)


def _is_float_valued(dtype: pa.DataType) -> bool:
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
        return _is_float_valued(dtype.value_type)
    return pa.types.is_floating(dtype)


def parquet_write_options(schema: pa.Schema) -> dict:
    """``pyarrow.parquet.write_table`` options of every data file (chosen for full-read speed).

    * LZ4 (``LZ4_RAW``) instead of zstd: decompression is several times cheaper, which is most of
      a full scan of a numeric table; files are ~1.3x larger.
    * Dictionary encoding only for non-float columns (strings, flags, small integers, which repeat):
      a float column of measurements is nearly all distinct, and since a yearly file is far below
      the 1 MB dictionary-page limit pyarrow would otherwise dictionary-encode it whole, so every
      read paid a gather per value for no size gain.

    Measured with ``bench/duckdb_reads.py`` (README, Performance). Both are plain Parquet
    features every reader (DuckDB, pyarrow, pandas, polars) decodes.
    """
    return {
        "compression": "lz4",
        "use_dictionary": [f.name for f in schema if not _is_float_valued(f.type)],
    }


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Pandas frame for ``table``: ``date32`` columns become ``datetime64[ns]``."""
    frame = table.to_pandas(date_as_object=False)
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].astype("datetime64[ns]")
    return frame


class ParquetStore:
    """Read and write tables of Parquet files under one storage root."""

    def __init__(self, home: str) -> None:
        if not home:
            raise StorageError("the storage root (PROMETHEUS_HOME) is empty")
        self.home = str(home).rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.home)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.protocol = protocol
        self.is_local = protocol in _LOCAL_PROTOCOLS
        self.root = os.path.abspath(root) if self.is_local else root.rstrip("/")

    # ------------------------------------------------------------------ paths
    def table_dir(self, name: str) -> str:
        """Directory holding ``name``'s files."""
        return f"{self.root}/parquet/{check_identifier(name)}"

    def url(self, path: str) -> str:
        """A URL for ``path`` that DuckDB and fsspec understand."""
        return path if self.is_local else f"{self.protocol}://{path.lstrip('/')}"

    def glob_url(self, name: str) -> str:
        """The glob matching every visible data file of ``name``."""
        return self.url(f"{self.table_dir(name)}/*.parquet")

    def files(self, name: str) -> list[str]:
        """Visible data files of ``name`` (hidden temp and lock files excluded), sorted."""
        d = self.table_dir(name)
        if not self.fs.exists(d):
            return []
        out = []
        for p in self.fs.ls(d, detail=False):
            base = p.rstrip("/").rsplit("/", 1)[-1]
            if base.endswith(".parquet") and not base.startswith("."):
                out.append(p)
        return sorted(out)

    def tables(self) -> list[str]:
        """Names of every table with at least one data file."""
        d = f"{self.root}/parquet"
        if not self.fs.exists(d):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(d, detail=False)]
        return sorted(n for n in names if IDENTIFIER.match(n) and self.files(n))

    # ------------------------------------------------------------------ writes
    @contextlib.contextmanager
    def _locked(self, path: str) -> Iterator[None]:
        """Exclusive lock on ``path`` across processes (local roots; object stores have no locks)."""
        if not self.is_local:
            yield
            return
        import fcntl

        directory, base = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f".{base}.lock"), "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _write_atomic(self, path: str, table: pa.Table) -> None:
        """Write ``table`` to ``path`` so that readers see the old file or the new one, never a part."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **parquet_write_options(table.schema))
        self._put_atomic(path, sink.getvalue().to_pybytes())

    def _put_atomic(self, path: str, data: bytes) -> None:
        """Put ``data`` at ``path`` atomically: a hidden temp file, fsync, rename, fsync of the folder.

        Object stores: a single PUT of the whole object is atomic; fsspec's pipe does one.
        """
        if not self.is_local:
            self.fs.mkdirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(path, data)
            return
        directory, base = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        for stale in Path(directory).glob(f".{base}.tmp-*"):  # left by a killed writer of this file
            stale.unlink(missing_ok=True)
        tmp = os.path.join(directory, f".{base}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _relative_path(self, relative: str) -> str:
        parts = relative.split("/")
        if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise StorageError(f"path {relative!r} must be a plain relative path under the storage root")
        return f"{self.root}/{relative}"

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Atomically write a file at ``relative`` under the root; returns its URL.

        ``relative`` must stay under the root: absolute paths and ``..`` are refused.
        """
        path = self._relative_path(relative)
        self._put_atomic(path, data)
        return self.url(path)

    def write_text(self, relative: str, text: str) -> str:
        """Atomically write a text file (a report) at ``relative`` under the root; returns its URL."""
        return self.write_bytes(relative, text.encode("utf-8"))

    def read_bytes(self, relative: str) -> bytes | None:
        """The bytes of ``relative`` under the root, or None if there is no such file."""
        path = self._relative_path(relative)
        if not self.fs.exists(path):
            return None
        return self.fs.cat_file(path)

    def _read_file(self, path: str) -> pa.Table:
        if self.is_local:
            return pq.read_table(path)
        with self.fs.open(path, "rb") as handle:
            return pq.read_table(handle)

    def write_whole(self, name: str, frame: pd.DataFrame) -> list[str]:
        """Replace the whole table ``name`` with ``frame``. Returns the file written."""
        path = f"{self.table_dir(name)}/{WHOLE_FILE}"
        table = to_arrow(frame)
        with self._locked(path):
            self._write_atomic(path, table)
        return [path]

    def write_dated(
        self, name: str, frame: pd.DataFrame, dates: Sequence[pd.Timestamp], date_column: str = "date"
    ) -> list[str]:
        """Replace exactly the rows of ``dates`` in table ``name`` by ``frame``'s rows.

        Every row of ``frame`` must have its ``date_column`` in ``dates`` (else ``StorageError``:
        an asset wrote outside the partitions it owns). Dates in ``dates`` without rows in
        ``frame`` end up with no rows. Rows of other dates are untouched. Returns the files written.
        """
        replace = pd.DatetimeIndex(pd.to_datetime(list(dates))).astype("datetime64[ns]").unique()
        if len(replace) == 0:
            return []
        col = pd.to_datetime(frame[date_column]).astype("datetime64[ns]") if len(frame) else pd.Series([], dtype="datetime64[ns]")
        outside = ~col.isin(replace)
        if outside.any():
            bad = col[outside].iloc[0]
            raise StorageError(
                f"{name}: {int(outside.sum())} row(s) dated outside the partitions being written (e.g. {bad}); "
                f"an asset may only write the dates of its own partitions"
            )
        new = to_arrow(frame)
        years = sorted(set(replace.year))
        written: list[str] = []
        for year in years:
            path = f"{self.table_dir(name)}/{year:04d}.parquet"
            year_dates = replace[replace.year == year]
            new_part = new.filter(pc.equal(pc.year(new[date_column]), year)) if len(frame) else new
            with self._locked(path):
                parts = []
                if self.fs.exists(path):
                    old = self._read_file(path)
                    keep = pc.invert(pc.is_in(old[date_column], value_set=pa.array(year_dates.date, pa.date32())))
                    parts.append(old.filter(keep))
                if new_part.num_rows:
                    parts.append(new_part)
                merged = pa.concat_tables(parts, promote_options="permissive") if parts else None
                if merged is None or merged.num_rows == 0:
                    if self.fs.exists(path):
                        self.fs.rm(path)
                    continue
                merged = merged.take(pc.sort_indices(merged, sort_keys=[(date_column, "ascending")]))
                self._write_atomic(path, merged.combine_chunks())
                written.append(path)
        if not self.files(name):
            # Keep the table (and its DuckDB view) queryable with its schema even with no rows.
            empty = f"{self.table_dir(name)}/{EMPTY_FILE}"
            with self._locked(empty):
                self._write_atomic(empty, new.slice(0, 0))
            written.append(empty)
        return written

    # ------------------------------------------------------------------ reads
    def exists(self, name: str) -> bool:
        """Whether ``name`` has at least one data file."""
        return bool(self.files(name))

    def read(
        self,
        name: str,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
        date_column: str = "date",
    ) -> pd.DataFrame:
        """Rows of ``name`` with ``start <= date <= end`` (bounds optional). Raises if the table is absent."""
        files = self.files(name)
        if not files:
            raise StorageError(f"table {name!r} has no data under {self.url(self.table_dir(name))}: materialize it first")
        lo = pd.Timestamp(start) if start is not None else None
        hi = pd.Timestamp(end) if end is not None else None
        chosen = []
        for path in files:
            m = _YEAR_FILE.match(path.rsplit("/", 1)[-1])
            if m and ((lo is not None and int(m.group(1)) < lo.year) or (hi is not None and int(m.group(1)) > hi.year)):
                continue
            chosen.append(path)
        tables = [self._read_file(p) for p in chosen]
        if not tables:
            return to_pandas(self._read_file(files[0]).slice(0, 0))
        table = pa.concat_tables(tables, promote_options="permissive")
        if (lo is not None or hi is not None) and date_column in table.column_names:
            mask = None
            if lo is not None:
                mask = pc.greater_equal(table[date_column], pa.scalar(lo.date(), pa.date32()))
            if hi is not None:
                upper = pc.less_equal(table[date_column], pa.scalar(hi.date(), pa.date32()))
                mask = upper if mask is None else pc.and_(mask, upper)
            table = table.filter(mask)
        return to_pandas(table)


class DuckDBCatalog:
    """A DuckDB database holding one view per table over the table's Parquet files.

    The view reads the file glob at query time, so it stays current as files are replaced; it is
    (re)created after each materialization so new tables and schema changes appear at once.
    """

    def __init__(self, store: ParquetStore, path: str | None = None) -> None:
        self.store = store
        if path is None:
            path = f"{store.root}/prometheus.duckdb" if store.is_local else ":memory:"
        self.path = path

    def connect(self, read_only: bool = False):  # -> duckdb.DuckDBPyConnection
        """Open the catalog; non-local storage filesystems are registered so views resolve."""
        import duckdb

        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        con = duckdb.connect(self.path, read_only=read_only)
        if not self.store.is_local:
            con.register_filesystem(self.store.fs)
        return con

    def view_sql(self, name: str) -> str:
        """The ``CREATE VIEW`` statement for table ``name``."""
        glob = self.store.glob_url(check_identifier(name)).replace("'", "''")
        # hive_partitioning off: a storage root under a ``key=value`` folder must not grow a column.
        return (f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM "
                f"read_parquet('{glob}', union_by_name = true, hive_partitioning = false)")

    def refresh(self, names: Sequence[str] | None = None, attempts: int = 40) -> list[str]:
        """(Re)create the views of ``names`` (default: every stored table). Returns the views made.

        DuckDB allows one writer per database file: if another process holds it, retry for a few
        seconds before giving up with ``StorageError`` (the Parquet files are already safe).
        """
        wanted = [n for n in (names if names is not None else self.store.tables()) if self.store.exists(n)]
        if not wanted:
            return []
        delay = 0.05
        for attempt in range(attempts):
            try:
                con = self.connect()
                try:
                    for name in wanted:
                        con.execute(self.view_sql(name))
                finally:
                    con.close()
                return wanted
            except Exception as exc:  # duckdb.IOException on a held lock
                if "lock" not in str(exc).lower() or attempt == attempts - 1:
                    raise StorageError(f"could not update DuckDB catalog {self.path}: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        return wanted
