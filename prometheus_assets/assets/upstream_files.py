"""What an incremental asset can learn about an upstream dated table without reading its rows.

A dated table is one Parquet file per calendar year (``resources/storage.py``). The incremental
assessment assets (``assessment_models``, ``assessment_evaluation``) decide what to recompute by
comparing the content hashes of the year files their stored results were computed from with the
current ones, so a re-materialized upstream partition that changed anything is always seen:

* :func:`file_digests` — sha256 of each year file's bytes (equal bytes ⇒ equal rows, by the
  storage layer's deterministic writer). Reading and hashing raw bytes is far cheaper than
  decoding rows (~0.1 s for the 60 MB of the three datasets and returns over 33 years). The hash
  of an unchanged local file is reused, within a process and across runs (:class:`DigestCache`).
* :func:`describe` — those digests, the first date of each year file (Parquet column statistics)
  and the columns a whole-table read returns (file footers).

No Dagster here: plain helpers over :class:`~prometheus_assets.resources.storage.ParquetStore`.
"""

import hashlib
import json
import os
import time
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prometheus_assets.resources.storage import ParquetStore, to_pandas, year_of_file

#: (path, size, mtime_ns, ctime_ns, inode) -> sha256, for local files, in this process.
_DIGESTS: dict[tuple, str] = {}
#: Where a local root keeps the digests of its files between runs (relative to the root).
CACHE_FILE = "cache/file_digests.json"
#: A digest is kept between runs only for a file whose status changed at least this long before
#: it was hashed (see :class:`DigestCache`).
SETTLED_SECONDS = 2.0


class DigestCache:
    """sha256 of a root's local files kept between runs, so an EOD run hashes only what changed.

    An entry is reused only while the file's (size, mtime_ns, ctime_ns, inode) are exactly the
    recorded ones. Like git's index, it guards against a file rewritten within the timestamp
    granularity ("racy" entries): a digest is recorded only if the file's ctime was at least
    :data:`SETTLED_SECONDS` old when it was hashed. Any later write, and any new file that reuses
    the inode number (every store write is a new file renamed into place), gets a ctime after the
    hash was taken, which no process can set back, so it never matches a recorded entry. (A system
    clock set back by more than that margin would defeat this: the entries are then stale until
    the cache file is deleted.) Only change detection uses these digests; a stored model is still
    verified against the sha256 of its bytes when loaded.

    The file is a cache: unreadable or missing, it is rebuilt; concurrent runs merge their entries
    into it under the store's file lock (:meth:`ParquetStore.update_bytes`).
    """

    def __init__(self, store: ParquetStore) -> None:
        self.store = store
        self.entries: dict[str, list] = {}
        self.changed = False
        try:
            raw = store.read_bytes(CACHE_FILE)
            loaded = json.loads(raw) if raw else {}
            self.entries = loaded if isinstance(loaded, dict) else {}
        except (ValueError, UnicodeDecodeError):
            self.entries = {}

    def sha256(self, path: str) -> str:
        st = os.stat(path)
        status = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        key = os.path.relpath(path, self.store.root)
        known = self.entries.get(key)
        if isinstance(known, list) and len(known) == 5 and known[:4] == status:
            return str(known[4])
        cache_key = (path, *status)
        digest = _DIGESTS.get(cache_key)
        if digest is None:
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            _DIGESTS[cache_key] = digest
        if time.time_ns() - st.st_ctime_ns >= SETTLED_SECONDS * 1e9:
            self.entries[key] = [*status, digest]
            self.changed = True
        return digest

    def save(self, table_dir: str, present: set[str]) -> None:
        """Merge the new entries into the file, dropping those of files of ``table_dir`` no longer ``present``."""
        if not self.changed and all(k in present for k in self.entries if os.path.dirname(k) == table_dir):
            return
        added = {k: v for k, v in self.entries.items() if k in present}

        def merge(old: bytes | None) -> bytes:
            try:
                current = json.loads(old) if old else {}
            except (ValueError, UnicodeDecodeError):
                current = {}
            current = current if isinstance(current, dict) else {}
            current = {k: v for k, v in current.items() if os.path.dirname(k) != table_dir or k in present}
            current.update(added)
            return json.dumps(current, sort_keys=True, separators=(",", ":")).encode()

        self.store.update_bytes(CACHE_FILE, merge)
        self.changed = False


@dataclass(frozen=True)
class FileDigest:
    """One visible data file of a table: its name, its year (None for a non-year file) and the sha256 of its bytes."""

    table: str
    name: str
    year: int | None
    sha256: str
    path: str

    def key(self) -> tuple[str, str, str]:
        return (self.table, self.name, self.sha256)


def file_digests(store: ParquetStore, table: str) -> list[FileDigest]:
    """Every visible data file of ``table`` (none if the table is absent), sorted by name."""
    paths = store.files(table)
    cache = DigestCache(store) if store.is_local else None
    out = []
    for path in paths:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        digest = cache.sha256(path) if cache is not None else hashlib.sha256(store.fs.cat_file(path)).hexdigest()
        out.append(FileDigest(table, name, year_of_file(path), digest, path))
    if cache is not None:
        cache.save(os.path.relpath(store.table_dir(table), store.root), {os.path.relpath(p, store.root) for p in paths})
    return out


def _parquet_file(store: ParquetStore, path: str) -> pq.ParquetFile:
    return pq.ParquetFile(path) if store.is_local else pq.ParquetFile(store.fs.open(path, "rb"))


@dataclass(frozen=True)
class TableFiles:
    """A dated table's files as seen from their bytes and footers: digests, first date per year file, columns of a whole read."""

    files: tuple[FileDigest, ...]
    first_dates: dict[int, pd.Timestamp]
    columns: tuple[str, ...]


def describe(store: ParquetStore, table: str, date_column: str) -> TableFiles:
    """:class:`TableFiles` of ``table`` (empty if absent), opening each file's footer once.

    ``first_dates``: the earliest ``date_column`` value of each non-empty year file, from the
    Parquet column statistics (the column itself when they are missing). ``columns``: the column
    names, in order, of :meth:`ParquetStore.read` over the whole table (the same permissive
    concatenation, of empty tables).
    """
    files = file_digests(store, table)
    first: dict[int, pd.Timestamp] = {}
    empties = []
    for f in files:
        pf = _parquet_file(store, f.path)
        schema = pf.schema_arrow
        empties.append(schema.empty_table())
        meta = pf.metadata
        if f.year is None or meta.num_rows == 0:
            continue
        idx = schema.get_field_index(date_column)
        mins = []
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            if rg.num_rows:
                stats = rg.column(idx).statistics
                mins.append(stats.min if stats is not None and stats.has_min_max else None)
        value = pc.min(pf.read(columns=[date_column]).column(0)).as_py() if any(m is None for m in mins) else min(mins)
        if value is not None:
            first[f.year] = pd.Timestamp(value).as_unit("ns")
    columns = tuple(str(c) for c in to_pandas(pa.concat_tables(empties, promote_options="permissive")).columns) if empties else ()
    return TableFiles(tuple(files), first, columns)
