"""Incremental evaluation state: per-date IC rows in yearly blocks under the storage root.

Used by ``assessment_evaluation`` (the layout below) and ``sleeve_evaluation``
(``state/sleeve_evaluation/alpha/<YYYY>.parquet``, see ``assets/backtest.py``): a :class:`BlockStore`
per asset (its directory, state version and date columns) and :func:`refresh_blocks`, which keeps
the blocks whose recorded inputs are unchanged and recomputes the others. The assessment layout::

    <home>/state/assessment_evaluation/assessment/<YYYY>.parquet   evaluate_daily rows of the year (all horizons)
    <home>/state/assessment_evaluation/strategy/<YYYY>.parquet     strategy_ic_by_date rows of the year
    <home>/state/assessment_evaluation/manifest.json              per block: the upstream files it was computed from

A block of year Y is a deterministic function of a few upstream year files (:func:`block_inputs`):
the scores / regime files of Y and the latest earlier one (the previous scored date's top quintile,
the latest regime row), the dataset and signal files of Y, the returns file of Y and the returns
of the sessions after Y that its forward windows read (``FORWARD_SESSIONS``). The manifest records
the sha256 of each of those files' bytes (and, for the returns after Y, a digest of just the rows
used, so that appending a day to the newest year does not invalidate the year before once its
forward windows are complete). A block is reused only while every recorded input is unchanged;
any re-materialized upstream partition that changed a byte of a file a block read makes it
recomputed. Blocks are written before the manifest, so a killed run leaves blocks the manifest
does not vouch for (recomputed next time), never a manifest entry for a block not written.

Tails (:class:`Tail`, used by ``assessment_evaluation``): a block is final except for its newest
rows, whose forward windows a new session reaches. When a block's only changed inputs are year
files of its own year that gained rows after the dates the block was computed from (the rows
before are verified unchanged by a digest recorded with the block, never assumed), only the rows
from :data:`FORWARD_SESSIONS` (+ a margin) sessions before the first new date are recomputed and
the older rows are kept: the daily run's cost no longer grows through the year (~250 sessions of
rows recomputed every day in December before, ~60 now). Anything else (an older row changed, a
file of another year, a config, the returns after the year) recomputes the whole block as before.

Every file is a deterministic function of the upstream data (sorted JSON, the store's Parquet
writer), so a state built in one run and a state built day by day are byte-identical.
"""

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prometheus_assets.assets.upstream_files import FileDigest
from prometheus_assets.resources.storage import ParquetStore, parquet_write_options, to_arrow, to_pandas

STATE_DIR = "state/assessment_evaluation"
MANIFEST = f"{STATE_DIR}/manifest.json"
#: Bump when a block's content definition changes: every block is then recomputed once.
STATE_VERSION = 1
#: The longest forward window read after a date (assessment horizon 60, alpha decay up to 60).
FORWARD_SESSIONS = 60
SECTIONS = ("assessment", "strategy")


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's columns, dtypes and values (row order included)."""
    h = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def previous_file(files: list[FileDigest], year: int) -> FileDigest | None:
    """The latest year file dated before ``year`` (None if there is none)."""
    earlier = [f for f in files if f.year is not None and f.year < year]
    return max(earlier, key=lambda f: f.year) if earlier else None


def year_file(files: list[FileDigest], year: int) -> FileDigest | None:
    return next((f for f in files if f.year == year), None)


@dataclass
class Following:
    """The returns rows after year Y that Y's forward windows read: per file (name, sha256, sessions used, digest of those rows)."""

    parts: list[list]
    complete: bool


def following_returns(store: ParquetStore, returns: list[FileDigest], year: int, known: dict[str, tuple[str, list]] | None = None,
                      sessions: int = FORWARD_SESSIONS) -> Following:
    """Walk the returns year files after ``year`` until ``sessions`` sessions are covered (or the files end).

    ``known``: file name -> (sha256, recorded part) from the manifest; a file whose bytes are
    unchanged is not decoded (its part is the recorded one).
    """
    parts: list[list] = []
    needed = sessions
    for f in sorted((f for f in returns if f.year is not None and f.year > year), key=lambda f: f.year):
        if needed <= 0:
            break
        recorded = (known or {}).get(f.name)
        if recorded is not None and recorded[0] == f.sha256 and recorded[1][2] == needed:
            part = recorded[1]
        else:
            frame = to_pandas(pq.read_table(f.path) if store.is_local else pq.read_table(io.BytesIO(store.fs.cat_file(f.path))))
            dates = pd.DatetimeIndex(sorted(frame["date"].unique()))
            used = dates[:needed]
            rows = frame[frame["date"].isin(used)].reset_index(drop=True)
            part = [f.name, f.sha256, needed, int(len(used)), frame_digest(rows)]
        # (the sha256 only lets an unchanged file skip decoding; validity compares the rest)
        parts.append(part)
        needed -= part[3]
    return Following(parts, needed <= 0)


def block_inputs(section: str, year: int, listing: dict[str, list[FileDigest]]) -> list[list[str]] | None:
    """The upstream files (table, name, sha256) a block of ``year`` reads besides the returns after it; None if it has no block."""
    def key(f: FileDigest | None) -> list[str] | None:
        return [f.table, f.name, f.sha256] if f is not None else None

    returns = year_file(listing["returns_daily"], year)
    if section == "assessment":
        scores = year_file(listing["assessment_scores"], year)
        if scores is None or returns is None:
            return None
        files = [scores, previous_file(listing["assessment_scores"], year), returns,
                 year_file(listing["regime_states"], year), previous_file(listing["regime_states"], year)]
        files += [year_file(listing[t], year) for t in sorted(listing) if t.startswith("assessment_dataset_")]
    else:
        signals = year_file(listing["strategy_signals"], year)
        if signals is None or returns is None:
            return None
        files = [signals, returns]
    return [k for k in (key(f) for f in files) if k is not None]


def same_following(a: list[list], b: list[list]) -> bool:
    """Whether two recorded lists of following-returns parts read the same rows (file sha256s aside)."""
    return [[p[0], *p[2:]] for p in a] == [[p[0], *p[2:]] for p in b]


def verified_table(data: bytes | None, sha256: str, columns: list[str] | None = None) -> pa.Table | None:
    """The Parquet rows in ``data`` (only ``columns`` if given), or None when there are no bytes or their sha256 is not ``sha256``.

    Parsed from the one buffer already in memory with ``ParquetFile.read``: ~half the time of
    ``read_table``'s dataset set-up.
    """
    if data is None or hashlib.sha256(data).hexdigest() != sha256:
        return None
    return pq.ParquetFile(pa.BufferReader(data)).read(columns=columns)


@dataclass
class Tail:
    """How the blocks of an asset may be extended instead of recomputed (see the module docstring).

    ``listing``: the upstream files by table (as :func:`block_inputs` lists them); ``date_columns``:
    each upstream table's date column; ``block_dates``: each section's date column; ``groups``: each
    section's group columns (a block's rows are its groups in order, each group's rows by date);
    ``sessions``: the longest forward window a row reads (sessions), ``margin``: extra sessions
    recomputed on top of it; ``columns``: per table, the only columns the blocks read (the digests
    cover just those, so e.g. the signals' metadata text is neither decoded nor re-encoded).
    """

    listing: dict[str, list[FileDigest]]
    date_columns: dict[str, str]
    block_dates: dict[str, str]
    groups: dict[str, list[str]]
    sessions: int = FORWARD_SESSIONS
    margin: int = 2
    columns: dict[str, list[str]] = field(default_factory=dict)
    _tables: dict[str, pa.Table | None] = field(default_factory=dict, repr=False)

    def _file(self, table: str, name: str) -> FileDigest | None:
        return next((f for f in self.listing.get(table, []) if f.name == name), None)

    def _read(self, store: ParquetStore, f: FileDigest) -> pa.Table | None:
        """The file's rows, or None if its bytes are no longer those of ``f.sha256`` (another run rewrote it since the listing)."""
        if f.path not in self._tables:
            data = store.fs.cat_file(f.path)
            columns = self.columns.get(f.table)
            if columns is not None:
                columns = list(dict.fromkeys([*columns, self.date_columns[f.table]]))
            self._tables[f.path] = verified_table(data, f.sha256, columns)
        return self._tables[f.path]

    def _dates(self, table: pa.Table, f: FileDigest) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(table.column(self.date_columns[f.table]).to_numpy()).astype("datetime64[ns]")

    def _digest(self, table: pa.Table, f: FileDigest, last: str) -> str:
        """sha256 of the rows dated up to ``last`` as the store writes them (Parquet: the same rows give the same
        bytes, whatever the in-memory layout, e.g. a validity bitmap without nulls)."""
        column = table.column(self.date_columns[f.table])
        rows = table.filter(pc.less_equal(column, pa.scalar(pd.Timestamp(last).date(), column.type)))
        sink = io.BytesIO()
        pq.write_table(rows, sink, **parquet_write_options(rows.schema))
        return hashlib.sha256(sink.getvalue()).hexdigest()

    def prefix(self, store: ParquetStore, year: int, inputs: list) -> dict[str, list[str]]:
        """Per upstream file of ``year`` among ``inputs``: its last date and the digest of its rows (recorded with the block).

        A file whose bytes are no longer the listed ones gets no mark (the block is then recomputed whole next time).
        """
        out = {}
        for entry in inputs:
            f = self._file(entry[0], entry[1]) if entry[0] in self.date_columns else None
            table = self._read(store, f) if f is not None and f.year == year else None
            if table is not None and table.num_rows:
                last = f"{self._dates(table, f).max():%Y-%m-%d}"
                out[f"{f.table}/{f.name}"] = [last, self._digest(table, f, last)]
        return out

    def since(self, store: ParquetStore, year: int, old: dict, inputs: list, returns: list[FileDigest]) -> pd.Timestamp | None:
        """The first date whose rows must be recomputed, if the block of ``year`` can be extended; else None.

        Every input must equal the recorded one, except files of ``year`` with a recorded prefix
        whose rows up to the recorded last date are those recorded (same digest) and that have
        rows after it. The rows of dates from ``sessions + margin`` returns dates before the first
        new date on are recomputed; None when that falls before ``year`` (the whole block then).
        """
        recorded = old.get("prefix")
        if not recorded:
            return None
        before = {tuple(e[:2]): e for e in old["inputs"]}
        now = {tuple(e[:2]): e for e in inputs}
        if before.keys() != now.keys():
            return None
        first_new = None
        for key, entry in now.items():
            if entry == before[key]:
                continue
            mark = recorded.get(f"{key[0]}/{key[1]}")
            f = self._file(key[0], key[1])
            table = self._read(store, f) if mark is not None and f is not None else None
            if table is None:
                return None
            dates = self._dates(table, f)
            later = dates[dates > pd.Timestamp(mark[0])]
            if not len(later) or self._digest(table, f, mark[0]) != mark[1]:
                return None  # no new rows (yet other bytes), or an older row changed
            first_new = later.min() if first_new is None else min(first_new, later.min())
        if first_new is None:
            return None
        known: set[pd.Timestamp] = set()
        for f in returns:
            if f.year is None or not year - 1 <= f.year <= year:
                continue
            table = self._read(store, f)
            if table is None:
                return None
            dates = self._dates(table, f)
            known.update(dates[dates < first_new])
        sessions = sorted(known)
        back = len(sessions) - self.sessions - self.margin
        if back < 0 or sessions[back].year != year:
            return None
        return pd.Timestamp(sessions[back])

    def merge(self, section: str, old: pd.DataFrame, new: pd.DataFrame, since: pd.Timestamp) -> pd.DataFrame | None:
        """The block's rows: each group's old rows before ``since``, then its new rows; None if the groups differ (recompute)."""
        date, groups = self.block_dates[section], self.groups[section]
        kept = old[(old[date] < since).to_numpy()]
        keys_new = list(dict.fromkeys(new[groups].itertuples(index=False, name=None)))
        if set(keys_new) != set(old[groups].itertuples(index=False, name=None)) or (new[date] < since).any():
            return None

        def rows_of(frame: pd.DataFrame, key: tuple) -> pd.DataFrame:
            mask = np.ones(len(frame), dtype=bool)
            for column, value in zip(groups, key):
                mask &= (frame[column] == value).to_numpy()
            return frame[mask]

        return pd.concat([part for key in keys_new for part in (rows_of(kept, key), rows_of(new, key))], ignore_index=True)


class BlockStore:
    """Read and write the blocks and the manifest (atomic writes through the store).

    ``state_dir``: the asset's state directory; ``version``: bump when a block's content definition
    changes (every block is then recomputed once); ``date_columns``: per section, the date columns a
    read block gets back as datetime64[ns]. The defaults are ``assessment_evaluation``'s.
    """

    def __init__(self, store: ParquetStore, state_dir: str = STATE_DIR, version: int = STATE_VERSION,
                 date_columns: dict[str, tuple[str, ...]] | None = None) -> None:
        self.store = store
        self.state_dir = state_dir
        self.version = version
        self.date_columns = date_columns if date_columns is not None else {"assessment": ("as_of_date",), "strategy": ("date",)}

    @property
    def manifest_path(self) -> str:
        return f"{self.state_dir}/manifest.json"

    def manifest(self) -> dict:
        raw = self.store.read_bytes(self.manifest_path)
        data = json.loads(raw) if raw else {}
        return data if data.get("version") == self.version else {"version": self.version, "blocks": {}}

    def write_manifest(self, manifest: dict) -> None:
        data = json.dumps(manifest, sort_keys=True, indent=1).encode()
        if self.store.read_bytes(self.manifest_path) != data:
            self.store.write_bytes(self.manifest_path, data)

    def path(self, section: str, year: int) -> str:
        return f"{self.state_dir}/{section}/{year:04d}.parquet"

    def write(self, section: str, year: int, frame: pd.DataFrame) -> str:
        """Write a block; returns the sha256 of its bytes."""
        table = to_arrow(frame)
        sink = io.BytesIO()
        pq.write_table(table, sink, **parquet_write_options(table.schema))
        data = sink.getvalue()
        self.store.write_bytes(self.path(section, year), data)
        return hashlib.sha256(data).hexdigest()

    def read(self, section: str, year: int, sha256: str) -> pd.DataFrame | None:
        """A block's rows, or None if it is missing or its bytes are not the recorded ones."""
        table = self.read_table(section, year, sha256)
        return self.to_frame(section, table) if table is not None else None

    def read_table(self, section: str, year: int, sha256: str) -> pa.Table | None:
        """:meth:`read` as an Arrow table (blocks read together are converted to pandas once)."""
        return verified_table(self.store.read_bytes(self.path(section, year)), sha256)

    def to_frame(self, section: str, table: pa.Table) -> pd.DataFrame:
        """Block rows as pandas, the date columns as datetime64[ns] (what storage.to_pandas does for them)."""
        frame = table.to_pandas(date_as_object=False)
        for date in self.date_columns.get(section, ()):
            frame[date] = frame[date].astype("datetime64[ns]")
        return frame

    def remove(self, section: str, year: int) -> None:
        self.store.remove(self.path(section, year))


def refresh_blocks(
    blocks: BlockStore,
    years: list[int],
    sections: tuple[str, ...],
    returns_files: list[FileDigest],
    inputs: Callable[[str, int], list | None],
    compute: Callable[..., dict[int, pd.DataFrame]],
    sessions: int = FORWARD_SESSIONS,
    tail: Tail | None = None,
) -> tuple[dict[str, pd.DataFrame | None], int]:
    """The blocks of every year and section, recomputing only those whose recorded inputs changed.

    ``inputs(section, year)``: what the block reads besides the returns after its year (upstream
    files as (table, name, sha256), anything else that shapes it, JSON-serialisable), None if the
    year has no block. The returns after ``year`` it reads are the first ``sessions`` sessions
    (:func:`following_returns`). A block is kept while its inputs, those following rows and their
    completeness equal the manifest's and its file has the recorded bytes; the others are passed
    to ``compute(section, stale_years, reach)`` (``reach[year]``: the last year of returns its
    forward windows read), which returns their frames by year. Blocks are written first, then the
    manifest that vouches for them; blocks no longer listed are removed.

    With a ``tail`` (:class:`Tail`), a stale block that only its own year's files gained rows for
    is extended: ``compute(section, stale_years, reach, since)`` then gets ``since[year]``, the
    first date whose rows it must return for that year (its other years: whole blocks), and the
    block is the old rows before that date merged with the new ones (:meth:`Tail.merge`; bytes
    equal to a whole recompute, tested). The manifest then records each block's prefix marks.

    Returns the blocks of each section concatenated in year order, each as read back from its
    stored bytes (None for a section without any), and how many blocks were recomputed (whole or
    extended).
    """
    recorded = blocks.manifest()["blocks"]
    new: dict[str, dict] = {}
    stale: dict[str, list[int]] = {section: [] for section in sections}
    reach: dict[int, int] = {}
    kept: dict[tuple[str, int], pa.Table] = {}
    extend: dict[tuple[str, int], tuple[pd.Timestamp, pd.DataFrame]] = {}
    for year in years:
        known = {}
        for section in sections:
            old = recorded.get(f"{section}/{year:04d}")
            if old:
                known.update({p[0]: (p[1], p) for p in old["following"]})
        following = following_returns(blocks.store, returns_files, year, known, sessions)
        reach[year] = max([year] + [int(p[0][:4]) for p in following.parts])
        for section in sections:
            needs = inputs(section, year)
            if needs is None:
                continue
            name = f"{section}/{year:04d}"
            old = recorded.get(name)
            frame = None
            following_same = bool(old) and old["complete"] == following.complete and same_following(old["following"], following.parts)
            if following_same and old["inputs"] == needs:
                frame = blocks.read_table(section, year, old["sha256"])
            new[name] = {"inputs": needs, "following": following.parts, "complete": following.complete, "sha256": old["sha256"] if frame is not None else None}
            if tail is not None and frame is not None and "prefix" in old:
                new[name]["prefix"] = old["prefix"]
            if frame is None:
                stale[section].append(year)
                if tail is not None and following_same:
                    since = tail.since(blocks.store, year, old, needs, returns_files)
                    old_rows = blocks.read_table(section, year, old["sha256"]) if since is not None else None
                    if old_rows is not None:
                        extend[(section, year)] = (since, blocks.to_frame(section, old_rows))
            else:
                kept[(section, year)] = frame
    for section, todo in stale.items():
        if not todo:
            continue
        if tail is None:
            frames = compute(section, todo, reach)
        else:
            since = {year: extend[(section, year)][0] for year in todo if (section, year) in extend}
            frames = compute(section, todo, reach, since)
            for year in since:
                merged = tail.merge(section, extend[(section, year)][1], frames[year], since[year])
                frames[year] = merged if merged is not None else compute(section, [year], reach, {})[year]
        for year in todo:
            name = f"{section}/{year:04d}"
            new[name]["sha256"] = blocks.write(section, year, frames[year])
            kept[(section, year)] = blocks.read_table(section, year, new[name]["sha256"])  # what later runs read: the stored bytes
            if tail is not None:
                new[name]["prefix"] = tail.prefix(blocks.store, year, new[name]["inputs"])
    blocks.write_manifest({"version": blocks.version, "blocks": new})
    for name in sorted(set(recorded) - set(new)):
        section, year = name.split("/")
        blocks.remove(section, int(year))
    out: dict[str, pd.DataFrame | None] = {}
    for section in sections:
        # one conversion to pandas for all the blocks (33 separate ones cost ~5 ms each)
        parts = [kept[(section, year)] for year in years if (section, year) in kept]
        out[section] = blocks.to_frame(section, pa.concat_tables(parts, promote_options="permissive")) if parts else None
    return out, sum(len(v) for v in stale.values())
