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
produced them), list columns are always stored with the child field name Parquet reads back
(``element``), and no wall-clock metadata is written, so re-materializing identical data gives
byte-identical files, whether the year file is new or rewritten.

The DuckDB catalog is replaced atomically too (see :class:`DuckDBCatalog`): no process ever opens
``prometheus.duckdb`` for writing, so readers (``duckdb -readonly``, ``prometheus sql``) never
conflict with a running build, and concurrent builds never fail on DuckDB's file lock.

Names become paths and SQL only after validation: table/view names by :func:`check_identifier`
(and quoted by :func:`sql_identifier`), other relative paths by :func:`resolve_under`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prometheus_assets.errors import PathEscapeError, StorageError

IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")  # matched whole (fullmatch: "$" lets a trailing newline through)
WHOLE_FILE = "data.parquet"
#: A zero-row file giving a dated table with no rows yet its schema (and so its view).
EMPTY_FILE = "empty.parquet"
_YEAR_FILE = re.compile(r"^(\d{4})\.parquet$")
_LOCAL_PROTOCOLS = {"file", "local"}


class ParquetReadCache:
    """Tables read from local Parquet files, kept while the file is provably the same file.

    A one-day run of the whole graph read 751 Parquet files, only 299 of them distinct (the
    newest returns year file 20 times): the 452 repeated reads were 0.63 of the 1.24 s of reading
    (measured at full bundled history). Arrow tables are immutable, so a repeated read can be
    answered with the table already read, as long as the file has not changed since.

    When a file counts as unchanged: its inode, size, modification and change times are the ones
    recorded when it was read, *and* it was already at least ``min_age_s`` old at that read. The
    second condition is what makes the first sufficient: the store replaces files by renaming a
    new file over the old one, and a file system stamps times at a coarse tick (a few ms), so a
    file rewritten within one tick of the first read, reusing the freed inode, with the same size,
    would otherwise look unchanged. A rewrite after the caching read is stamped with a later time
    than one more than ``min_age_s`` before that read, so it never matches. Writes and removals
    through the store also drop the file's entries at once.

    Bounded by ``max_bytes`` (least recently used first out); a table larger than a quarter of it
    is never kept. Process-local and thread-safe. Local files only (object stores are not cached).
    (Hand-written: pyarrow and fsspec have no validated cache of decoded tables.)
    """

    def __init__(self, max_bytes: int = 256 * 2**20, min_age_s: float = 2.0) -> None:
        self.max_bytes = max_bytes
        self.min_age_s = min_age_s
        self._tables: OrderedDict[tuple, tuple[tuple, pa.Table]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _identity(path: str) -> tuple | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def read(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """``pq.read_table(path, columns=columns)``, answered from the cache when the file is unchanged."""
        if self.max_bytes <= 0:  # turned off: a plain read, no stat calls
            return pq.read_table(path, columns=columns)
        path = os.path.abspath(path)
        key = (path, tuple(columns) if columns is not None else None)
        before = self._identity(path)
        with self._lock:
            hit = self._tables.get(key)
            whole = self._tables.get((path, None)) if hit is None and columns is not None else None
            if hit is not None and before is not None and hit[0] == before:
                self._tables.move_to_end(key)
                return hit[1]
            if whole is not None and before is not None and whole[0] == before and set(columns) <= set(whole[1].column_names):
                self._tables.move_to_end((path, None))
                return whole[1].select(list(columns))  # (what a projected read of the same file returns)
        read_at = time.time_ns()
        parquet = pq.ParquetFile(path)  # (one file: lighter than read_table's dataset set-up)
        if columns is not None and not set(columns) <= set(parquet.schema_arrow.names):
            # ParquetFile.read skips a column the file lacks; read_table names it (ArrowInvalid), as before the cache
            return pq.read_table(path, columns=columns)
        table = parquet.read(columns=columns)
        after = self._identity(path)
        old_enough = after is not None and read_at - max(after[2], after[3]) >= self.min_age_s * 1e9
        if before == after and old_enough and table.nbytes <= self.max_bytes // 4:
            with self._lock:
                self._drop(key)
                self._tables[key] = (after, table)
                self._bytes += table.nbytes
                while self._bytes > self.max_bytes:
                    self._drop(next(iter(self._tables)))
        return table

    def _drop(self, key: tuple) -> None:
        old = self._tables.pop(key, None)
        if old is not None:
            self._bytes -= old[1].nbytes

    def forget(self, path: str) -> None:
        """Drop every entry of ``path`` (the store wrote or removed it)."""
        path = os.path.abspath(path)
        with self._lock:
            for key in [k for k in self._tables if k[0] == path]:
                self._drop(key)


def read_cache_bytes(environ: dict[str, str] | None = None) -> int:
    """The read cache's bound: ``PROMETHEUS_READ_CACHE_MB`` MiB (default 256; 0 turns the cache off)."""
    raw = (os.environ if environ is None else environ).get("PROMETHEUS_READ_CACHE_MB", "").strip()
    if not raw:
        return 256 * 2**20
    try:
        mb = int(raw)
    except ValueError:
        mb = -1
    if mb < 0:
        raise StorageError(f"PROMETHEUS_READ_CACHE_MB must be a whole number of MiB (0 turns the read cache off), got {raw!r}")
    return mb * 2**20


#: The process's cache of local Parquet reads (see :class:`ParquetReadCache`).
READ_CACHE = ParquetReadCache(max_bytes=read_cache_bytes())


def year_of_file(path: str) -> int | None:
    """The year a dated table's file holds (``…/2020.parquet`` -> 2020); None for any other file."""
    m = _YEAR_FILE.match(path.rstrip("/").rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a safe table/view identifier (lower-case letters, digits, ``_``)."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise StorageError(f"invalid table name {name!r}: use lower-case letters, digits and '_' (max 63)")
    return name


def sql_identifier(name: str) -> str:
    """``name`` validated by :func:`check_identifier` and double-quoted, ready to splice into SQL.

    Every view/table name interpolated into a DuckDB statement goes through this: validation rules
    out quotes, spaces and ``;``, and quoting makes reserved words (``order``, ``select``) safe.
    """
    return f'"{check_identifier(name)}"'


def resolve_under(root: str, relative: str, local: bool = True) -> str:
    """The path of ``relative`` under ``root``, refusing any way out of ``root`` (``PathEscapeError``).

    ``relative`` must be a plain relative POSIX path: not absolute, no ``..``/``.``/empty parts, no
    backslash or NUL. On a local filesystem the result is also resolved through symlinks and must
    stay under the (resolved) root, so a symlink planted under the root cannot point reads or
    writes elsewhere. Object-store roots have no symlinks: the lexical checks suffice there.
    """
    parts = relative.split("/") if isinstance(relative, str) else []
    if (
        not isinstance(relative, str) or not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise PathEscapeError(f"path {relative!r} must be a plain relative path under {root} (no '..', no absolute path)")
    path = f"{root.rstrip('/')}/{relative}"
    if local:
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise PathEscapeError(f"path {relative!r} under {root} resolves to {real}, outside the root (a symlink?): refused")
    return path


def _is_date_column(name: str) -> bool:
    return name == "date" or name.endswith("_date")


def _canonical_type(dtype: pa.DataType) -> pa.DataType:
    """``dtype`` with every list's child field named ``element`` (what a Parquet read returns).

    pandas gives ``list<item: ...>``, a Parquet file read back gives ``list<element: ...>``; the
    name is stored in the file's Arrow schema, so without this a year file rewritten from (old rows
    + new rows) would differ in bytes from the same rows written fresh.
    """
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        value = dtype.value_field
        return pa.list_(pa.field("element", _canonical_type(value.type), value.nullable))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _canonical_type(f.type), f.nullable) for f in dtype])
    return dtype


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Arrow table for ``frame``: ``date`` / ``*_date`` columns as ``date32``, no pandas metadata.

    Strings are plain ``string`` and list columns ``list<element: ...>``, so the schema of what we
    write equals the schema of what we read back (see :func:`_canonical_type`).
    """
    if len(frame.columns) == 0:
        raise StorageError("refusing to store a frame with no columns: give an empty result its schema")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = []
    for field in table.schema:
        if _is_date_column(field.name) and (pa.types.is_timestamp(field.type) or pa.types.is_null(field.type)):
            fields.append(pa.field(field.name, pa.date32()))
        elif pa.types.is_null(field.type) and frame[field.name].dtype == object:
            # a text column without a value in this frame (a label before its model exists): still
            # text, as in a frame that has values, so a range of such days stores the same schema
            fields.append(pa.field(field.name, pa.string()))
        elif pa.types.is_large_string(field.type) or pa.types.is_string_view(field.type):
            fields.append(pa.field(field.name, pa.string()))
        else:
            fields.append(pa.field(field.name, _canonical_type(field.type), field.nullable))
    table = table.cast(pa.schema(fields))
    return table.replace_schema_metadata(None)


def concat_year_tables(tables: list[pa.Table], name: str, paths: Sequence[str] = ()) -> pa.Table:
    """``tables`` (year files of table ``name``, or a year file and the rows replacing some of its dates) as one table.

    Columns are matched by name and widened where Arrow can (``promote_options="permissive"``:
    a missing or null-typed column, int64 beside double). A column that holds no value in one part
    (every row null: e.g. a regime label during the models' warm-up, stored as double because the
    frame had only NaN there) takes the type of the parts where it has values. That happens when
    a backfill is split into ranges and the first range is all warm-up: one range would have
    typed it from its later rows. Two parts with values of different types raise
    :class:`StorageError` naming the table, the column and the files.
    """
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    valued: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for i, field in enumerate(table.schema):
            if table.column(i).null_count < table.num_rows:
                valued.setdefault(field.name, set()).add(field.type)
    clash = {col: types for col, types in valued.items() if len(types) > 1}
    if clash:
        col, types = next(iter(clash.items()))
        where = f" in {', '.join(paths)}" if paths else ""
        raise StorageError(f"table {name!r}: column {col!r} holds values of different types ({', '.join(sorted(map(str, types)))}){where}; "
                           f"rewrite the table's files with one type (re-materialize its partitions)")
    cast = []
    for table in tables:
        for i, field in enumerate(table.schema):
            types = valued.get(field.name)
            if types and field.type not in types:  # no value here: take the type of the parts with values
                (target,) = types
                table = table.set_column(i, pa.field(field.name, target, True), pa.nulls(table.num_rows, target))
        cast.append(table)
    return pa.concat_tables(cast, promote_options="permissive")


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
    """Pandas frame for ``table``: ``date32`` columns become ``datetime64[ns]`` (a zone-aware column keeps its zone, in ns)."""
    frame = table.to_pandas(date_as_object=False)
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].dt.as_unit("ns")  # (astype to a naive dtype raises for these)
        elif pd.api.types.is_datetime64_dtype(frame[col]):
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
        """Directory holding ``name``'s files (a symlink taking it outside a local root: ``PathEscapeError``)."""
        return resolve_under(self.root, f"parquet/{check_identifier(name)}", local=self.is_local)

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
        placeholder = [p for p in out if p.rstrip("/").rsplit("/", 1)[-1] == EMPTY_FILE]
        if placeholder and len(out) > 1:  # (a writer between its year file and the placeholder's removal)
            out.remove(placeholder[0])
        return sorted(out)

    def tables(self) -> list[str]:
        """Names of every table with at least one data file."""
        d = f"{self.root}/parquet"
        if not self.fs.exists(d):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(d, detail=False)]
        return sorted(n for n in names if IDENTIFIER.fullmatch(n) and self.files(n))

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
            READ_CACHE.forget(path)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _relative_path(self, relative: str) -> str:
        return resolve_under(self.root, relative, local=self.is_local)

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Atomically write a file at ``relative`` under the root; returns its URL.

        ``relative`` must stay under the root (:func:`resolve_under`: absolute paths, ``..`` and
        symlink escapes raise ``PathEscapeError``). Writers of one file take turns (a lock), so one
        never removes another's temporary file as a dead writer's leftover.
        """
        path = self._relative_path(relative)
        with self._locked(path):
            self._put_atomic(path, data)
        return self.url(path)

    def update_bytes(self, relative: str, update: Callable[[bytes | None], bytes]) -> str:
        """Read-modify-write of the file at ``relative`` under the root; returns its URL.

        ``update`` gets the current bytes (None if there is no file) and returns the new ones,
        all while holding the file's lock: concurrent updaters take turns, so none loses
        another's change (object stores have no locks: the last writer wins there). The file
        is rewritten atomically, and only when its bytes change.
        """
        path = self._relative_path(relative)
        with self._locked(path):
            old = self.fs.cat_file(path) if self.fs.exists(path) else None
            new = update(old)
            if new != old:
                self._put_atomic(path, new)
        return self.url(path)

    def write_text(self, relative: str, text: str) -> str:
        """Atomically write a text file (a report) at ``relative`` under the root; returns its URL."""
        return self.write_bytes(relative, text.encode("utf-8"))

    def remove(self, relative: str) -> None:
        """Delete the file at ``relative`` under the root, if there is one (under its lock)."""
        path = self._relative_path(relative)
        if not self.fs.exists(path):
            return
        with self._locked(path):
            if self.fs.exists(path):
                self.fs.rm(path)
                if self.is_local:
                    READ_CACHE.forget(path)

    def list_names(self, relative_dir: str) -> list[str]:
        """Names of the visible files (hidden temporary and lock files excluded) in ``relative_dir`` under the root, sorted."""
        directory = self._relative_path(relative_dir)
        if not self.fs.exists(directory):
            return []
        names = (p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(directory, detail=False))
        return sorted(n for n in names if not n.startswith("."))

    def read_bytes(self, relative: str) -> bytes | None:
        """The bytes of ``relative`` under the root, or None if there is no such file."""
        path = self._relative_path(relative)
        if not self.fs.exists(path):
            return None
        return self.fs.cat_file(path)

    def _read_file(self, path: str, columns: list[str] | None = None) -> pa.Table:
        if self.is_local:
            # a data file symlinked outside the root is refused (writes replace the link itself, reads would follow it)
            resolve_under(self.root, os.path.relpath(path, self.root).replace(os.sep, "/"), local=True)
            return READ_CACHE.read(path, columns)
        with self.fs.open(path, "rb") as handle:
            return pq.read_table(handle, columns=columns)

    def write_whole(self, name: str, frame: pd.DataFrame) -> list[str]:
        """Replace the whole table ``name`` with ``frame``. Returns the file written.

        Year files left by a version that wrote ``name`` by date are removed once the whole file
        is in place (read beside it they would repeat its rows; the whole file replaces them).
        """
        path = f"{self.table_dir(name)}/{WHOLE_FILE}"
        table = to_arrow(frame)
        with self._locked(path):
            self._write_atomic(path, table)
        for stale in self.files(name):
            if stale != path and self._is_dated_file(stale):
                with self._locked(stale):
                    self.fs.rm(stale)
        return [path]

    @staticmethod
    def _is_dated_file(path: str) -> bool:
        return year_of_file(path) is not None or path.rstrip("/").rsplit("/", 1)[-1] == EMPTY_FILE

    def _check_layout(self, name: str, files: Sequence[str]) -> None:
        """Raise :class:`StorageError` if ``name`` holds a whole-table file beside year files.

        Only a change of the table's layout between versions leaves both (written whole by one,
        by date by the other). Read together they would repeat rows, and a dated write would keep
        the whole file's rows beside its own, so reads and dated writes refuse them.
        """
        bases = {p.rstrip("/").rsplit("/", 1)[-1] for p in files}
        if WHOLE_FILE in bases and any(self._is_dated_file(b) for b in bases):
            raise StorageError(
                f"table {name!r} holds both a whole-table file ({WHOLE_FILE}) and year files under "
                f"{self.url(self.table_dir(name))}, as a change of the table's layout between versions leaves them; "
                f"read together they would repeat rows. Move away the kind the current asset does not write "
                f"and re-materialize the table"
            )

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
        if self.fs.exists(f"{self.table_dir(name)}/{WHOLE_FILE}"):
            raise StorageError(
                f"table {name!r} is written by date, but {self.url(self.table_dir(name))} holds a whole-table file "
                f"({WHOLE_FILE}) from a version that wrote it whole; year files beside it would repeat its rows. "
                f"Move {WHOLE_FILE} away and re-materialize the table's partitions"
            )
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
                merged = concat_year_tables(parts, name, [path]) if parts else None
                if merged is None or merged.num_rows == 0:
                    if self.fs.exists(path):
                        self.fs.rm(path)
                    continue
                merged = merged.take(pc.sort_indices(merged, sort_keys=[(date_column, "ascending")]))
                self._write_atomic(path, merged.combine_chunks())
                written.append(path)
        empty = f"{self.table_dir(name)}/{EMPTY_FILE}"
        # Both decisions under the placeholder's lock, after the year files are written: a writer
        # without rows that checked before another's first year file and wrote after that writer
        # looked for a placeholder left both files (a writer with rows now waits for it, then sees it).
        with self._locked(empty):
            if not self.files(name):
                # Keep the table (and its DuckDB view) queryable with its schema even with no rows.
                self._write_atomic(empty, new.slice(0, 0))
                written.append(empty)
            elif written and self.fs.exists(empty):
                # Rows have arrived: the placeholder goes. Its schema came from a frame with no rows
                # (columns typed double or null), so kept beside a year file it made a split backfill
                # whose first range had no rows (a warm-up year) unreadable ("Field raw_label has
                # incompatible types: string vs double") and left a file one range never writes.
                self.fs.rm(empty)
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
        columns: Sequence[str] | None = None,
        on: Sequence[pd.Timestamp] | None = None,
    ) -> pd.DataFrame:
        """Rows of ``name`` with ``start <= date <= end`` (bounds optional). Raises if the table is absent.

        ``columns``: read only these (in this order; Parquet reads just their column chunks).
        ``on``: only the rows dated on one of these days (dropped before the conversion to pandas,
        its largest cost for a long table read for a few of its dates).
        """
        files = self.files(name)
        if not files:
            raise StorageError(f"table {name!r} has no data under {self.url(self.table_dir(name))}: materialize it first")
        self._check_layout(name, files)
        lo = pd.Timestamp(start) if start is not None else None
        hi = pd.Timestamp(end) if end is not None else None
        chosen = []
        for path in files:
            year = year_of_file(path)
            if year is not None and ((lo is not None and year < lo.year) or (hi is not None and year > hi.year)):
                continue
            chosen.append(path)
        bounded = lo is not None or hi is not None or on is not None
        # (the date column is read too when it bounds the read, even if not asked for)
        read = (list(dict.fromkeys([*columns, date_column])) if bounded else list(columns)) if columns is not None else None
        tables = [self._read_file(p, read) for p in chosen]
        if not tables:
            return to_pandas(self._read_file(files[0], read).slice(0, 0))
        table = concat_year_tables(tables, name, chosen)
        if bounded:
            if date_column not in table.column_names:
                # (the bounds were ignored then: every row of the years kept, e.g. for date_column left at "date" on an as_of_date table)
                raise StorageError(f"table {name!r} has no column {date_column!r} to bound the read by date; its columns: {', '.join(table.column_names)}")
            day = _days_of(table, name, date_column)
            masks = []
            if lo is not None:
                masks.append(pc.greater_equal(day, pa.scalar(lo.date(), pa.date32())))
            if hi is not None:
                masks.append(pc.less_equal(day, pa.scalar(hi.date(), pa.date32())))
            if on is not None:
                masks.append(pc.is_in(day, value_set=pa.array([pd.Timestamp(d).date() for d in on], pa.date32())))
            table = table.filter(functools.reduce(pc.and_, masks))
        return to_pandas(table.select(list(columns)) if columns is not None else table)


def _days_of(table: pa.Table, name: str, date_column: str) -> pa.ChunkedArray:
    """The day of each row of ``table[date_column]`` as ``date32``, what :meth:`ParquetStore.read`'s bounds compare.

    A timestamp column is cut to its day (a zone-aware one: its day in its zone): compared as it is with a
    date, Arrow takes the date as midnight, so ``end`` dropped the rows later on that day and
    ``on`` matched only midnights, without an error.
    """
    column = table[date_column]
    if pa.types.is_date32(column.type):
        return column
    if pa.types.is_timestamp(column.type) or pa.types.is_date64(column.type):
        return pc.cast(column, pa.date32())
    raise StorageError(f"table {name!r}: column {date_column!r} is {column.type}, not a date or timestamp, so it cannot bound a read by date")


#: (catalog path, inode, size, mtime_ns) -> its views, see DuckDBCatalog._current.
_CATALOG_VIEWS: dict[tuple, dict[str, str]] = {}


class DuckDBCatalog:
    """A DuckDB database holding one view per table over the table's Parquet files.

    A view reads its file glob at query time (and DuckDB re-binds it when the files' columns
    change), so a view only has to be created once per table, not after every write.

    Nothing ever opens the catalog file for writing in place: DuckDB allows one read-write process
    *or* any number of read-only ones per file, so an in-place update would fail while a user has
    ``duckdb -readonly data/prometheus.duckdb`` open (and make that user's open fail during it).
    Instead :meth:`refresh` checks the views read-only and, only if one is missing or stale, copies
    the catalog to a hidden temporary file, adds the views there, checkpoints it and renames it over
    ``prometheus.duckdb`` (under a lock, so concurrent runs take turns and none loses another's
    view). Readers see the old catalog or the new one, never a partial one; a connection that is
    already open keeps the catalog it opened (the data it reads is current: views read the files).
    The catalog is derived data: ``prometheus catalog`` rebuilds it from the Parquet files.
    """

    def __init__(self, store: ParquetStore, path: str | None = None) -> None:
        self.store = store
        if path is None:
            path = f"{store.root}/prometheus.duckdb" if store.is_local else ":memory:"
        self.path = path

    def connect(self, read_only: bool = False, confined: bool = False):  # -> duckdb.DuckDBPyConnection
        """Open the catalog; non-local storage filesystems are registered so views resolve.

        Open a file catalog ``read_only=True``: a read-write connection would lock other readers
        out and be lost at the next :meth:`refresh` (which replaces the file). ``confined`` (for
        SQL typed by a user, ``prometheus sql``; local roots): DuckDB may touch files under the
        storage root only: no reading or writing other files (``read_csv('/etc/...')``,
        ``COPY ... TO``), no ``ATTACH``, no extension installs, and the settings are locked.
        """
        import duckdb

        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        con = duckdb.connect(self.path, read_only=read_only)
        # Keep each Parquet footer parsed once while the catalog is open: a view reads a table's ~33 yearly
        # files and, without the cache, re-reads and re-parses every footer on every query (about
        # half the time of a full read of the small tables, measured in bench/duckdb_reads.py).
        # DuckDB checks a cached footer against the file's modification time and drops it when the
        # file changed; our writes replace files by rename, so a rewritten year is read afresh.
        con.execute("SET parquet_metadata_cache = true")
        if not self.store.is_local:
            con.register_filesystem(self.store.fs)
        elif confined:
            con.execute("SET allowed_directories = ?", [[self.store.root.rstrip("/") + "/"]])
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        return con

    def _glob_literal(self, name: str) -> str:
        return "'" + self.store.glob_url(check_identifier(name)).replace("'", "''") + "'"

    def view_sql(self, name: str) -> str:
        """The ``CREATE VIEW`` statement for table ``name`` (validated and quoted).

        hive_partitioning off: a storage root under a ``key=value`` folder must not grow a column.
        """
        return (f"CREATE OR REPLACE VIEW {sql_identifier(name)} AS SELECT * FROM "
                f"read_parquet({self._glob_literal(name)}, union_by_name = true, hive_partitioning = false)")

    def _current(self, path: str) -> dict[str, str] | None:
        """``{view name: its SQL}`` of the catalog at ``path``, or None if it cannot be opened.

        Remembered in this process per file identity (inode, size, mtime): the catalog is only
        ever replaced by renaming a new file over it, which changes the inode, so a remembered
        listing is one of the file still there. (Opening DuckDB costs ~10 ms; every output of
        a run checks its view.)
        """
        import duckdb

        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {}
        identity = (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
        known = _CATALOG_VIEWS.get(identity)
        if known is not None:
            return dict(known)
        try:
            con = duckdb.connect(path, read_only=True)
        except duckdb.Error:
            return None
        try:
            views = {name: sql for name, sql in con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()}
        finally:
            con.close()
        _CATALOG_VIEWS.clear()  # one catalog file per process is the common case: keep the memo small
        _CATALOG_VIEWS[identity] = views
        return dict(views)

    def _stale(self, views: dict[str, str] | None, names: Sequence[str]) -> list[str]:
        """Names whose view is missing from ``views`` or reads other files (e.g. the root moved)."""
        if views is None:
            return list(names)
        return [n for n in names if self._glob_literal(n) not in views.get(n, "")]

    def refresh(self, names: Sequence[str] | None = None) -> list[str]:
        """Make sure the views of ``names`` exist (default: rebuild the catalog from every stored table).

        Returns the views of ``names`` that have data. See the class docstring for how the file is
        replaced. A ``:memory:`` catalog (object-store roots) holds nothing between connections:
        create views on a connection with :meth:`view_sql`.
        """
        wanted = [n for n in (names if names is not None else self.store.tables()) if self.store.exists(n)]
        if not wanted or self.path == ":memory:":
            return wanted
        rebuild = names is None
        if not rebuild and not self._stale(self._current(self.path), wanted):
            return wanted  # the common case: read-only, never blocks nor is blocked by a reader
        with self.store._locked(self.path):
            views = None if rebuild else self._current(self.path)
            if self._stale(views, wanted):
                # every stale view at once, not only the ones asked for: after the root moved (a copied
                # or renamed root) all views read the old path, and fixing them one output at a time
                # replaced the catalog file once per output of the next run (42 times in an EOD run)
                everything = sorted(set(self.store.tables()) | set(wanted))
                self._replace(self._stale(views, everything) if views is not None else everything, keep=views is not None)
        return wanted

    def _replace(self, names: Sequence[str], keep: bool) -> None:
        """Write a new catalog (a copy of the current one if ``keep``) with views for ``names``; rename it in place."""
        import duckdb

        directory, base = os.path.split(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        for stale in Path(directory).glob(f".{base}.tmp-*"):  # left by a killed refresh (we hold the lock)
            stale.unlink(missing_ok=True)
        tmp = os.path.join(directory, f".{base}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
        try:
            if keep and os.path.exists(self.path):
                shutil.copyfile(self.path, tmp)
            try:
                con = duckdb.connect(tmp)
            except duckdb.Error:  # an unreadable copy: start from an empty catalog with every table
                Path(tmp).unlink(missing_ok=True)
                names = sorted(set(self.store.tables()) | set(names))
                con = duckdb.connect(tmp)
            try:
                for name in names:
                    con.execute(self.view_sql(name))
                con.execute("CHECKPOINT")
            finally:
                con.close()
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except duckdb.Error as exc:
            raise StorageError(f"could not update DuckDB catalog {self.path}: {exc}") from exc
        finally:
            for leftover in (tmp, f"{tmp}.wal"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
