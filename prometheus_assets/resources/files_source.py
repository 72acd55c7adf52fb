"""Read a user's directory of daily bars ("files" source).

Layout
------
``root`` is a local directory, searched recursively. Every file named ``*.csv``, ``*.csv.gz`` or
``*.parquet`` (extension matched case-insensitively) is a *bar file*, except:

* hidden files and anything under a hidden directory (a name starting with ``.``, e.g.
  ``.ipynb_checkpoints/``), which are ignored;
* the optional *instrument registry* ``instruments.csv``, ``instruments.csv.gz`` or
  ``instruments.parquet`` at the top of ``root`` (not in a subdirectory; name matched
  case-insensitively). At most one of them may exist.

Other files (``README.txt``, ...) are ignored. Bars may be split across files in any way: one
file per day, per symbol, per year, or a single file. Symlinked directories are not descended
into, and a file is read only if its real path is under ``root``: a symlink pointing outside it
raises ``PathEscapeError`` naming the file.

Bar files
---------
Long format, one row per (date, symbol), columns::

    date, symbol, open, high, low, close, adj_close, volume

Only ``date``, ``symbol`` and ``close`` are required; other columns are optional and unknown
columns are ignored. Column names are matched case-insensitively, with surrounding whitespace
stripped and inner runs of whitespace read as ``_`` (so ``Adj Close`` is ``adj_close``). Two
columns that map to the same name are an error.

* CSV: UTF-8 (a byte-order mark is allowed), comma-separated, first non-blank line is the header,
  blank lines are skipped. ``.csv.gz`` is gzip-compressed CSV.
* Parquet: any Parquet file; ``date`` may be a date, a timestamp (naive or tz-aware) or text.

Values:

* ``date``: ``YYYY-MM-DD`` (recommended), ``YYYYMMDD`` or ``YYYY/MM/DD``, optionally followed by
  a time (``T`` or space separated) and a UTC offset (``Z``, ``UTC``, ``+HH:MM``, ``-HHMM``).
  Other spellings (``03/02/2020``, ``2 Mar 2020``) are refused rather than guessed. A naive
  value means the session date as written (a time part is dropped). A tz-aware value is
  converted to America/New_York and its local date is the session date -- but only when that
  is the same calendar date as the value shows at its own offset; otherwise (e.g.
  ``2020-03-02T00:00:00Z``, which is the evening of 1 March in New York) the row is flagged
  instead of being silently moved by a day.
* ``symbol``: whitespace stripped, upper-cased.
* prices and ``volume``: plain decimal numbers (``12``, ``-1.5``, ``1e6``). An empty cell is a
  missing value. Anything else (``N/A``, ``nan``, ``inf``, ``1,234.5``) is flagged.
* A file whose name (before the extension) is a date ``YYYY-MM-DD`` must only hold bars of that
  date: the name is trusted to skip the file when reading another window, and rows dated
  otherwise are flagged and read with the file (they belong to the day it is named for).

Instrument registry
-------------------
Columns ``symbol, name, sector, industry, currency``; only ``symbol`` is required (same
header and encoding rules as bar files). Symbols are stripped and upper-cased, empty cells read
as ``None``.

Errors and flagged rows
-----------------------
A file that cannot be read as a whole raises a named error (see ``prometheus_assets.errors``)
naming the file: :class:`MissingColumnError`, :class:`DuplicateColumnError`,
:class:`EmptySourceFileError` (0 bytes, or no data rows), :class:`CorruptSourceFileError`
(broken gzip or Parquet, a file that is not what its extension says, binary data in a CSV) and
:class:`SourceEncodingError` (not UTF-8; the message gives the 1-based line of the first bad
byte, also available as ``err.line``).

A bad *row* is never dropped: it is returned with the offending value as NaN / NaT / ``None``
and a human-readable reason in the ``parse_error`` column (several reasons are joined with
``"; "``), e.g. ``"close: non-numeric value 'abc'"``, ``"date: unparseable 'xyz'"``,
``"symbol: empty"``, ``"row: has 6 fields, header has 8"``. Downstream validation must
quarantine every row whose ``parse_error`` is not ``None``. The reader does not check
duplicates, price sanity, calendars or symbols.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import io
import logging
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prometheus_assets.core.calendar import CALENDAR_FLOOR
from prometheus_assets.core.schema import (
    BAR_COLUMNS,
    PRICE_COLUMNS,
    REQUIRED_BAR_COLUMNS,
    normalise_bars,
)
from prometheus_assets.errors import (
    CorruptSourceFileError,
    DuplicateColumnError,
    EmptySourceFileError,
    MissingColumnError,
    SourceConfigError,
    SourceEncodingError,
    SourceFileError,
)

_log = logging.getLogger(__name__)

__all__ = ["FilesBarReader", "SESSION_TZ", "INSTRUMENT_FILE_COLUMNS", "OUTPUT_COLUMNS"]

#: The exchange time zone whose local date is the session date of a tz-aware timestamp.
SESSION_TZ = "America/New_York"
#: Columns returned by :meth:`FilesBarReader.read_instruments`.
INSTRUMENT_FILE_COLUMNS: list[str] = ["symbol", "name", "sector", "industry", "currency"]
#: Columns returned by :meth:`FilesBarReader.read_bars`, in order.
OUTPUT_COLUMNS: list[str] = BAR_COLUMNS + ["source_file", "source_row", "parse_error"]

_NUMERIC_COLUMNS = PRICE_COLUMNS + ["volume"]
_INSTRUMENT_NAMES = {"instruments.csv", "instruments.csv.gz", "instruments.parquet"}
_DATE_STEM = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_DATE_TEXT = re.compile(
    r"^(?P<y>\d{4})(?P<sep>-|/|)(?P<m>\d{2})(?P=sep)(?P<d>\d{2})"
    r"(?P<time>[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
    r"\s*(?P<tz>Z|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)


@dataclass
class _RawTable:
    """The columns of one file, unparsed, with per-row provenance."""

    columns: dict[str, pd.Series]  # canonical name -> raw values (str for CSV, native for Parquet)
    source_row: np.ndarray  # int64, 1-based data row
    row_errors: list[str | None] | None  # structural problems of a row (CSV field count)

    @property
    def n_rows(self) -> int:
        return len(self.source_row)


# --------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------


class FilesBarReader:
    """Reads daily bars from a local directory of CSV / Parquet files (see the module docstring)."""

    def __init__(self, root: str) -> None:
        root_str = os.fspath(root)
        if "://" in root_str:
            raise SourceConfigError(f"files source root {root_str!r} must be a local directory path, not a URL")
        path = os.path.abspath(os.path.expanduser(root_str))
        if not os.path.exists(path):
            raise SourceConfigError(f"files source root {path} does not exist")
        if not os.path.isdir(path):
            raise SourceConfigError(f"files source root {path} is not a directory")
        self.root: str = path
        self._days_cache: dict[tuple[str, int, int, int, int], pd.DatetimeIndex] = {}
        if not self.bar_files():
            raise SourceConfigError(
                f"files source root {path} contains no bar files (*.csv, *.csv.gz or *.parquet)"
            )

    # -- discovery --------------------------------------------------------------------------

    def bar_files(self) -> list[str]:
        """Bar files under ``root``, as sorted POSIX paths relative to ``root``.

        The directory is re-scanned on every call. Hidden files and directories and the
        top-level instrument registry are excluded.
        """
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            top = dirpath == self.root
            prefix = "" if top else os.path.relpath(dirpath, self.root).replace(os.sep, "/") + "/"  # (once per directory)
            for name in filenames:
                if name.startswith(".") or _file_kind(name) is None:
                    continue
                if top and name.lower() in _INSTRUMENT_NAMES:
                    continue
                found.append(prefix + name)
        return sorted(found)

    def instruments_file(self) -> str | None:
        """The registry file name (relative to ``root``), or ``None`` when there is none."""
        names = sorted(
            n for n in os.listdir(self.root)
            if n.lower() in _INSTRUMENT_NAMES and os.path.isfile(os.path.join(self.root, n))
        )
        if len(names) > 1:
            raise SourceConfigError(
                f"files source root {self.root} has several instrument registries {names}; keep one"
            )
        return names[0] if names else None

    # -- span -------------------------------------------------------------------------------

    def first_day(self) -> pd.Timestamp:
        """Earliest bar date over all bar files (file names that are dates are trusted)."""
        return self._span()[0]

    def last_day(self, not_after: pd.Timestamp | None = None) -> pd.Timestamp:
        """Latest bar date over all bar files (file names that are dates are trusted).

        With ``not_after`` (e.g. today), bars dated after it do not count: a future-dated row
        (a typo such as ``2204-01-02``) must not make the directory look as if it held data up to
        that day. Raises :class:`SourceConfigError` when no bar is dated on or before it.
        """
        return self._span(_bound(not_after, "not_after"))[1]

    def span(self, not_after: pd.Timestamp | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
        """:meth:`first_day` and :meth:`last_day` (``not_after`` applies to the last only) from one scan of the files."""
        return self._span(_bound(not_after, "not_after"))

    def _span(self, not_after: pd.Timestamp | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
        lo: pd.Timestamp | None = None
        hi: pd.Timestamp | None = None
        unreadable: list[SourceFileError] = []
        named: list[pd.Timestamp] = []  # the dates files are named after: taken together below (one
        # DatetimeIndex per file cost ~1 s per call over 8,313 daily files, and the span is asked often)
        for rel in self.bar_files():
            day = stem_date(rel)
            if day is not None:
                named.append(day)
                continue
            try:
                days = self._file_days(rel)
            except SourceFileError as exc:
                # The span is asked for when the code location loads (the partitions start at the
                # first day) and by the sensor. A bad file must fail the run that reads it, with
                # its named error, not take the code location and its sensor down with it.
                _log.warning("files source: %s is left out of the span: %s", rel, exc)
                unreadable.append(exc)
                continue
            if len(days) == 0:
                continue
            lo = days[0] if lo is None else min(lo, days[0])
            upto = days if not_after is None else days[days <= not_after]
            if len(upto):
                hi = upto[-1] if hi is None else max(hi, upto[-1])
        if named:
            lo = min(named) if lo is None else min(lo, min(named))
            upto_named = [d for d in named if not_after is None or d <= not_after]
            if upto_named:
                hi = max(upto_named) if hi is None else max(hi, max(upto_named))
        if lo is None:
            if unreadable:  # nothing else to go by: the first bad file's own error says what is wrong
                raise unreadable[0]
            raise SourceConfigError(f"files source root {self.root} holds no bar with a parseable date")
        if hi is None:
            raise SourceConfigError(
                f"files source root {self.root} holds no bar dated on or before {not_after.date()}"  # type: ignore[union-attr]
            )
        return lo, hi

    def _file_days(self, rel: str) -> pd.DatetimeIndex:
        """Sorted distinct parseable dates of a file whose name is not a date (cached by the file's stat).

        The key holds the change time and inode besides mtime and size: a rewrite that keeps the
        size and restores the mtime (``cp -p``, ``rsync -t``) still changes the ctime, which no
        user call can set back.
        """
        path = self._abs(rel)
        st = os.stat(path)
        key = (rel, st.st_mtime_ns, st.st_size, st.st_ctime_ns, st.st_ino)
        if key not in self._days_cache:
            raw = _read_table(path, BAR_COLUMNS, REQUIRED_BAR_COLUMNS, load=["date"])
            dates, _ = _parse_dates(raw.columns["date"])
            self._days_cache[key] = pd.DatetimeIndex(dates.dropna().unique()).sort_values()
        return self._days_cache[key]

    # -- bars -------------------------------------------------------------------------------

    def read_bars(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None, files: list[str] | None = None
    ) -> pd.DataFrame:
        """Raw (unvalidated) long bars with ``start <= date <= end`` (inclusive, ``None`` = open).

        ``files``: read only these bar files (paths relative to ``root``, as :meth:`bar_files`
        lists them); default every bar file.

        Columns: :data:`OUTPUT_COLUMNS` -- the canonical bar columns (via
        :func:`~prometheus_assets.core.schema.normalise_bars`), ``source_file`` (path relative
        to ``root``), ``source_row`` (1-based data row in that file, int64) and ``parse_error``
        (``None`` or the reason the row is bad). Files named after a date outside the window
        are not opened. Rows whose date could not be parsed (NaT), and the flagged rows of a file
        named for a day that are dated otherwise, are returned whenever their file is read, so that
        they can be quarantined (the latter by the day their file is named for:
        :meth:`owning_days`). Sorted by
        ``(date, symbol, source_file, source_row)``, missing dates/symbols last.
        """
        lo = _bound(start, "start")
        hi = _bound(end, "end")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"start {lo.date()} is after end {hi.date()}")
        frames = []
        for rel in self.bar_files() if files is None else files:
            day = stem_date(rel)
            if day is not None and ((lo is not None and day < lo) or (hi is not None and day > hi)):
                continue
            frame = self._read_bar_file(rel, day)
            # Undated rows, and rows of a file named for a day in the window but dated otherwise
            # (flagged), are returned whenever their file is read: such a row belongs to the day
            # its file is named for. Windowed by its own date it was lost to every daily run: its
            # file's day left it out, and its own day never opened the file.
            keep = frame["date"].isna() if day is None else frame["date"].isna() | (frame["date"] != day)
            inside = pd.Series(True, index=frame.index)
            if lo is not None:
                inside &= frame["date"] >= lo
            if hi is not None:
                inside &= frame["date"] <= hi
            frame = frame[keep | inside]
            if len(frame):
                frames.append(frame)
        if not frames:
            return _empty_output()
        bars = pd.concat(frames, ignore_index=True)
        bars = normalise_bars(bars)[OUTPUT_COLUMNS]
        bars = bars.sort_values(
            ["date", "symbol", "source_file", "source_row"], na_position="last", kind="mergesort"
        ).reset_index(drop=True)
        return _fix_output_dtypes(bars)

    @staticmethod
    def owning_days(source_files: pd.Series) -> pd.Series:
        """Per row, the day its file is named for (``2020-03-02.csv``), NaT for other files.

        A row of such a file belongs to that day's partition whatever date it holds (a row dated
        otherwise is flagged), so its quarantine entry is the same whether the day was built alone
        or in a range.
        """
        return pd.Series(pd.to_datetime([stem_date(str(f)) if isinstance(f, str) else None for f in source_files]),
                         index=source_files.index, dtype="datetime64[ns]")

    def file_status(self, rel: str) -> list[int]:
        """``[size, mtime_ns, ctime_ns, inode]`` of a bar file: what tells that it changed without reading it."""
        # (no escape check here: reading the file checks it, and a status reveals nothing)
        st = os.stat(os.path.join(self.root, *rel.split("/")))
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def _read_bar_file(self, rel: str, stem_day: pd.Timestamp | None) -> pd.DataFrame:
        raw = _read_table(self._abs(rel), BAR_COLUMNS, REQUIRED_BAR_COLUMNS)
        n = raw.n_rows
        errors: list[np.ndarray] = []
        if raw.row_errors is not None:
            errors.append(np.array(raw.row_errors, dtype=object))

        dates, date_err = _parse_dates(raw.columns["date"])
        if stem_day is not None:
            off = dates.notna() & (dates != stem_day)
            if off.any():
                msg = np.full(n, None, dtype=object)
                for i in np.flatnonzero(off.to_numpy()):
                    msg[i] = f"date: {dates.iloc[i].date()} in a file named for {stem_day.date()}"
                date_err = _merge_errors([date_err, msg])
        errors.append(date_err)

        symbols, sym_err = _parse_symbols(raw.columns["symbol"])
        errors.append(sym_err)

        out: dict[str, object] = {"date": dates.to_numpy(), "symbol": symbols}
        for col in _NUMERIC_COLUMNS:
            if col in raw.columns:
                values, err = _parse_numeric(col, raw.columns[col])
                out[col] = values
                errors.append(err)
            else:
                out[col] = np.full(n, np.nan)
        out["source_file"] = np.full(n, rel, dtype=object)
        out["source_row"] = raw.source_row
        out["parse_error"] = _merge_errors(errors)
        return pd.DataFrame(out)

    # -- instruments ------------------------------------------------------------------------

    def read_instruments(self) -> pd.DataFrame | None:
        """The instrument registry, or ``None`` when the directory has none.

        Columns :data:`INSTRUMENT_FILE_COLUMNS` (object dtype), in file order; absent optional
        columns and empty cells are ``None``; symbols stripped and upper-cased. A row without a
        symbol, or a symbol listed twice (``aapl `` and ``AAPL`` are one symbol), is a
        :class:`SourceConfigError` naming the file and rows: which row describes the instrument
        cannot be guessed, and a later join would keep one of them silently.
        """
        rel = self.instruments_file()
        if rel is None:
            return None
        raw = _read_table(self._abs(rel), INSTRUMENT_FILE_COLUMNS, ["symbol"])
        out: dict[str, pd.Series] = {}
        for col in INSTRUMENT_FILE_COLUMNS:
            if col not in raw.columns:
                texts = np.full(raw.n_rows, None, dtype=object)
            else:
                texts = _as_text(raw.columns[col])
            if col == "symbol":
                texts = np.array([t.upper() if t is not None else None for t in texts], dtype=object)
            out[col] = pd.Series(texts, dtype=object)
        registry = pd.DataFrame(out, columns=INSTRUMENT_FILE_COLUMNS)
        symbols = registry["symbol"]
        if symbols.isna().any():
            rows = [int(i) + 1 for i in np.flatnonzero(symbols.isna().to_numpy())]
            raise SourceConfigError(f"instrument registry {rel}: data row(s) {rows[:10]} have no symbol")
        repeated = symbols[symbols.duplicated(keep=False)]
        if len(repeated):
            first = str(repeated.iloc[0])
            rows = [int(i) + 1 for i in np.flatnonzero((symbols == first).to_numpy())]
            raise SourceConfigError(
                f"instrument registry {rel}: symbol {first!r} is listed in data rows {rows} "
                f"({repeated.nunique()} symbol(s) listed more than once); keep one row per symbol")
        return registry

    # -- helpers ----------------------------------------------------------------------------

    def _abs(self, rel: str) -> str:
        """The path of bar/registry file ``rel``, refused (``PathEscapeError``) if it resolves outside ``root``."""
        from prometheus_assets.resources.storage import resolve_under

        return resolve_under(self.root, rel, local=True)


# --------------------------------------------------------------------------------------------
# File level
# --------------------------------------------------------------------------------------------


def _file_kind(name: str) -> str | None:
    low = name.lower()
    if low.endswith(".csv.gz"):
        return "csv.gz"
    if low.endswith(".csv"):
        return "csv"
    if low.endswith(".parquet"):
        return "parquet"
    return None


def _stem(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    kind = _file_kind(name)
    return name[: len(name) - len(kind) - 1] if kind else name


def write_day_files(directory: str | os.PathLike, wide: pd.DataFrame, fmt: str = "csv") -> list[Path]:
    """Write a wide price frame (dates × symbols) as a files source: one long file per session.

    Each file is named after its session (``2022-12-28.csv`` or ``.parquet``) and holds
    ``date, symbol, close, adj_close`` (close = adj_close). Used by the tests and benchmarks, and a
    quick way to try the files source on any price table. Returns the files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for date, row in wide.iterrows():
        day = pd.DataFrame({"date": pd.Timestamp(date).strftime("%Y-%m-%d"), "symbol": row.index, "close": row.values, "adj_close": row.values})
        path = directory / f"{pd.Timestamp(date):%Y-%m-%d}.{fmt}"
        if fmt == "csv":
            day.to_csv(path, index=False)
        else:
            day.to_parquet(path, index=False)
        paths.append(path)
    return paths


def stem_date(rel: str) -> pd.Timestamp | None:
    """The date a file is named for (``2020-03-02.csv``), or ``None``."""
    m = _DATE_STEM.match(_stem(rel))
    if not m:
        return None
    try:
        return pd.Timestamp(_dt.date(int(m[1]), int(m[2]), int(m[3])))
    except ValueError:
        return None


#: Other spellings vendors use for a column (after lower-casing, with runs of spaces and dots as one "_").
_COLUMN_ALIASES: dict[str, str] = {"adjclose": "adj_close", "adjusted_close": "adj_close", "adj_close_price": "adj_close"}


def _canonical(name: object) -> str:
    """A header as the bar schema names it: case-insensitive, spaces and dots as ``_`` (``Adj. Close``,
    ``Adj Close`` -> ``adj_close``), and :data:`_COLUMN_ALIASES` (``AdjClose``). Left unmatched, such a header
    was ignored as an unknown column and the returns silently fell back to the unadjusted close."""
    key = re.sub(r"[\s.]+", "_", str(name).replace("\ufeff", "").strip().lower()).strip("_")
    return _COLUMN_ALIASES.get(key, key)


def _map_columns(
    path: str, names: list[str], known: list[str], required: list[str]
) -> dict[str, int]:
    """canonical known column -> position in ``names``; checks duplicates and required columns."""
    positions: dict[str, int] = {}
    for i, name in enumerate(names):
        canon = _canonical(name)
        if canon not in known:
            continue
        if canon in positions:
            raise DuplicateColumnError(
                path,
                f"columns {names[positions[canon]]!r} and {name!r} both read as {canon!r}",
            )
        positions[canon] = i
    missing = [c for c in required if c not in positions]
    if missing:
        raise MissingColumnError(
            path,
            f"missing required column(s) {', '.join(missing)} (found columns: {list(map(str, names))})",
        )
    return positions


def _read_table(
    path: str, known: list[str], required: list[str], load: list[str] | None = None
) -> _RawTable:
    """Read one file's ``known`` columns (only ``load`` of them when given), unparsed."""
    kind = _file_kind(os.path.basename(path))
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise CorruptSourceFileError(path, f"cannot be read: {exc}") from exc
    if size == 0:
        raise EmptySourceFileError(path, "file is empty (0 bytes)")
    if kind == "parquet":
        return _read_parquet(path, known, required, load)
    return _read_csv(path, known, required, load, gz=(kind == "csv.gz"))


def _read_parquet(path: str, known: list[str], required: list[str], load: list[str] | None) -> _RawTable:
    try:
        with open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            names = list(pf.schema_arrow.names)
            positions = _map_columns(path, names, known, required)
            if pf.metadata.num_rows == 0:
                raise EmptySourceFileError(path, "Parquet file has no data rows")
            wanted = [c for c in positions if load is None or c in load]
            table = pf.read(columns=[names[positions[c]] for c in wanted], use_pandas_metadata=False)
            columns: dict[str, pd.Series] = {}
            for c in wanted:
                arr = table.column(names[positions[c]])
                if pa.types.is_dictionary(arr.type):
                    arr = arr.cast(arr.type.value_type)
                columns[c] = arr.to_pandas().reset_index(drop=True)
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise CorruptSourceFileError(path, f"not a readable Parquet file ({exc})") from exc
    n = table.num_rows
    return _RawTable(columns, np.arange(1, n + 1, dtype=np.int64), None)


def _read_csv(
    path: str, known: list[str], required: list[str], load: list[str] | None, gz: bool
) -> _RawTable:
    with open(path, "rb") as fh:
        data = fh.read()
    if gz:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptSourceFileError(path, f"not a valid gzip file ({exc})") from exc
        if not data:
            raise EmptySourceFileError(path, "file decompresses to 0 bytes")
    elif data[:2] == b"\x1f\x8b":
        raise CorruptSourceFileError(path, "is gzip-compressed but named .csv (name it .csv.gz)")
    if data[:4] == b"PAR1":
        raise CorruptSourceFileError(path, "is a Parquet file but named .csv")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise CorruptSourceFileError(path, f"contains binary data (NUL byte at line {line}), not CSV text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        err = SourceEncodingError(
            path,
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at line {line}, column {col} "
            "(re-save the file as UTF-8)",
        )
        err.line = line  # type: ignore[attr-defined]
        raise err from exc
    if text.startswith("\ufeff"):
        text = text[1:]

    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    records: list[list[str]] = []
    try:
        for rec in reader:
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue  # blank line
            if header is None:
                header = rec
            else:
                records.append(rec)
    except csv.Error as exc:
        raise CorruptSourceFileError(path, f"malformed CSV near line {reader.line_num} ({exc})") from exc
    if header is None:
        raise EmptySourceFileError(path, "file holds no header and no data rows")
    positions = _map_columns(path, header, known, required)
    if not records:
        raise EmptySourceFileError(path, "file has a header but no data rows")

    width = len(header)
    row_errors: list[str | None] | None = None
    for i, rec in enumerate(records):
        if len(rec) == width:
            continue
        if len(rec) > width and not any(f.strip() for f in rec[width:]):
            continue  # trailing empty fields (a trailing comma) are harmless
        if row_errors is None:
            row_errors = [None] * len(records)
        row_errors[i] = f"row: has {len(rec)} fields, header has {width}"

    columns: dict[str, pd.Series] = {}
    for c, pos in positions.items():
        if load is not None and c not in load:
            continue
        values = [rec[pos].strip() if pos < len(rec) else "" for rec in records]
        columns[c] = pd.Series(values, dtype=object)
    return _RawTable(columns, np.arange(1, len(records) + 1, dtype=np.int64), row_errors)


# --------------------------------------------------------------------------------------------
# Value level
# --------------------------------------------------------------------------------------------


def _is_missing(v: object) -> bool:
    if v is None or v is pd.NaT or v is pd.NA:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    if isinstance(v, np.datetime64) and np.isnat(v):
        return True
    return False


def _as_text(values: pd.Series) -> np.ndarray:
    """Stripped text of each value; missing values and empty strings become ``None``."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text_of = np.full(len(uniques) + 1, None, dtype=object)  # last slot: code -1 (null)
    for k, v in enumerate(uniques):
        if not _is_missing(v):
            t = str(v).strip()
            if t:
                text_of[k] = t
    return text_of[np.asarray(codes)] if len(values) else np.array([], dtype=object)


def _merge_errors(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return np.array([], dtype=object)
    n = len(parts[0])
    out = np.full(n, None, dtype=object)
    any_err = np.zeros(n, dtype=bool)
    for p in parts:
        any_err |= np.array([e is not None for e in p], dtype=bool)
    for i in np.flatnonzero(any_err):
        out[i] = "; ".join(p[i] for p in parts if p[i] is not None)
    return out


def _parse_numeric(col: str, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """float64 values and per-row errors; empty / null is NaN without error."""
    n = len(values)
    err = np.full(n, None, dtype=object)
    dtype = values.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        out = values.astype("float64").to_numpy(copy=True)
        bad = np.isinf(out)
        for i in np.flatnonzero(bad):
            err[i] = f"{col}: non-finite value {float(out[i])}"
            out[i] = np.nan
        return out, err
    texts = _as_text(values)
    out = np.full(n, np.nan)
    present = np.array([t is not None for t in texts], dtype=bool)
    if present.any():
        sub = pd.Series(texts[present], dtype=object)
        ok = sub.str.fullmatch(_NUMBER).fillna(False).to_numpy(dtype=bool)
        parsed = np.full(len(sub), np.nan)
        if ok.any():
            parsed[ok] = sub[ok].astype("float64").to_numpy()
        finite = np.isfinite(parsed)
        idx = np.flatnonzero(present)
        out[idx[finite]] = parsed[finite]
        for j in np.flatnonzero(~finite):
            err[idx[j]] = f"{col}: non-numeric value {sub.iloc[j]!r}"
    return out, err


def _parse_symbols(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    texts = _as_text(values)
    out = np.array([t.upper() if t is not None else None for t in texts], dtype=object)
    err = np.array([None if t is not None else "symbol: empty" for t in texts], dtype=object)
    return out, err


_NS_MIN = pd.Timestamp.min.ceil("D")
_NS_MAX = pd.Timestamp.max.floor("D")


def _shift_message(shown: str, own: pd.Timestamp, local: pd.Timestamp) -> str:
    return (
        f"date: {shown!r} is {own.date()} at its own UTC offset but {local.date()} in "
        f"{SESSION_TZ}; refusing to guess the session"
    )


def _session_of(ts: pd.Timestamp, shown: str) -> tuple[pd.Timestamp | None, str | None]:
    """Session date of a parsed timestamp (see module docstring)."""
    if ts.tzinfo is not None:
        own = ts.tz_localize(None).normalize()
        local = ts.tz_convert(SESSION_TZ).tz_localize(None).normalize()
        if local != own:
            return None, _shift_message(shown, own, local)
        day = local
    else:
        day = ts.normalize()
    if day < _NS_MIN or day > _NS_MAX:
        return None, f"date: out of range {shown!r}"
    return pd.Timestamp(day).as_unit("ns"), None


def _parse_one_date(v: object) -> tuple[pd.Timestamp | None, str | None]:
    if _is_missing(v):
        return None, "date: empty"
    if isinstance(v, (pd.Timestamp, _dt.datetime, np.datetime64)):
        try:
            ts = pd.Timestamp(v)
        except (ValueError, OverflowError):
            return None, f"date: out of range {str(v)!r}"
        return _session_of(ts, str(ts))
    if isinstance(v, _dt.date):
        return _session_of(pd.Timestamp(v.year, v.month, v.day), v.isoformat())
    text = str(v).strip()
    if not text:
        return None, "date: empty"
    m = _DATE_TEXT.match(text)
    if not m:
        return None, f"date: unparseable {text!r}"
    iso = f"{m['y']}-{m['m']}-{m['d']}"
    if m["time"]:
        iso += "T" + m["time"][1:]
    tz = m["tz"]
    if tz:
        iso += "+00:00" if tz in ("Z", "UTC") else tz
    try:
        ts = pd.Timestamp(iso)
    except (ValueError, OverflowError):
        return None, f"date: unparseable {text!r}"
    return _session_of(ts, text)


def _parse_datetime_column(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Vectorised :func:`_session_of` for a datetime64 (naive or tz-aware) column."""
    s = values.reset_index(drop=True)
    err = np.full(len(s), None, dtype=object)
    if s.dt.tz is not None:
        own = s.dt.tz_localize(None).dt.normalize()
        local = s.dt.tz_convert(SESSION_TZ).dt.tz_localize(None).dt.normalize()
        shifted = (own != local) & s.notna()
        for i in np.flatnonzero(shifted.to_numpy()):
            err[i] = _shift_message(str(s.iloc[i]), own.iloc[i], local.iloc[i])
        day = local.where(~shifted)
    else:
        day = s.dt.normalize()
    err[s.isna().to_numpy()] = "date: empty"
    # Raises OutOfBoundsDatetime for values outside the ns range: the caller then goes value by value.
    return day.astype("datetime64[ns]"), err


def _parse_dates(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """datetime64[ns] session dates (NaT where bad) and per-row errors.

    A date before the exchange calendar's first session (:data:`CALENDAR_FLOOR`, e.g. a typo
    ``1924`` for ``2024``) is bad too: no session can hold it, and taken as a bar it moved the
    partitions' start before the calendar, which failed the code location and every run.
    """
    dates, errors = _parse_dates_unchecked(values)
    early = (dates < CALENDAR_FLOOR).to_numpy()
    if early.any():
        errors = errors.copy()
        errors[early] = [f"date: {d:%Y-%m-%d} is before {CALENDAR_FLOOR:%Y-%m-%d}, the exchange calendar's first session"
                         for d in dates[early]]
        dates = dates.mask(early)
    return dates, errors


def _parse_dates_unchecked(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """:func:`_parse_dates` without the calendar floor."""
    n = len(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        try:
            return _parse_datetime_column(values)
        except (pd.errors.OutOfBoundsDatetime, OverflowError):
            pass
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    day_of = np.full(len(uniques) + 1, np.datetime64("NaT", "ns"))
    err_of = np.full(len(uniques) + 1, None, dtype=object)
    for k, v in enumerate(uniques):
        day, err = _parse_one_date(v)
        if day is not None:
            day_of[k] = day.to_datetime64()
        err_of[k] = err
    err_of[-1] = "date: empty"  # code -1 (null) indexes the last slot
    idx = np.asarray(codes)
    dates = pd.Series(day_of[idx], dtype="datetime64[ns]") if n else pd.Series([], dtype="datetime64[ns]")
    return dates, err_of[idx] if n else np.array([], dtype=object)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _bound(value: object, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} {value!r} is not a date") from exc
    if ts is pd.NaT:
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert(SESSION_TZ).tz_localize(None)
    return ts.normalize().as_unit("ns")


def _fix_output_dtypes(bars: pd.DataFrame) -> pd.DataFrame:
    bars["source_file"] = bars["source_file"].astype(object)
    bars["source_row"] = bars["source_row"].astype("int64")
    bars["parse_error"] = pd.Series(
        [e if isinstance(e, str) else None for e in bars["parse_error"].tolist()],
        index=bars.index,
        dtype=object,
    )
    bars["symbol"] = pd.Series(
        [s if isinstance(s, str) else None for s in bars["symbol"].tolist()],
        index=bars.index,
        dtype=object,
    )
    return bars


def _empty_output() -> pd.DataFrame:
    empty = pd.DataFrame({c: [] for c in BAR_COLUMNS})
    empty["source_file"] = pd.Series([], dtype=object)
    empty["source_row"] = pd.Series([], dtype="int64")
    empty["parse_error"] = pd.Series([], dtype=object)
    return _fix_output_dtypes(normalise_bars(empty)[OUTPUT_COLUMNS])
