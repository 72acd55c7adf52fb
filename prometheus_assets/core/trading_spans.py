"""Each symbol's first and last accepted bar date, kept between runs so a new day reads only its own files.

The instrument registry's ``first_trading_date`` / ``last_trading_date`` are the first and last
dates of each symbol's bars that pass validation, over every bar of the source. Recomputing them
means reading every bar file of the history: ~35 s for 33 years of daily CSV files of 20 symbols,
in every end-of-day run. This module holds the pure part of carrying them instead:

* :class:`SpanState`: the spans, the symbols seen (a source without a registry file lists every
  symbol its bars name), the status of every bar file they were computed from, the read window
  and the day validation was judged on (``as_of``: a row dated after it is left out, but may
  count on a later day);
* :func:`appended_files`: the files a new run must read for the carried state to stay exact, or
  None when it cannot be (then every file is read again);
* :func:`spans_of` and :meth:`SpanState.extended`: the spans of some accepted bars, and the state
  with them added.

When carrying is exact: every acceptance rule of :func:`core.validation.validate_bars` is decided
by the row alone (given the exchange calendar and ``as_of``), except duplicates, which compare the
rows of one (date, symbol). A bar file named after a date (``2022-12-28.csv``) holds only bars of
that date (other rows are flagged), so when every file is named after a date and the new files'
dates are not the date of any file read before, no duplicate can join an old row and a new one,
and the spans over all files are the old spans extended by the new files' spans (min of the
firsts, max of the lasts). Anything else, i.e. a file changed, removed or added for a date already
read, a file not named after a date, another window, or a later ``as_of`` while some row was
future-dated, makes :func:`appended_files` return None.

Pure: no Dagster, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

#: Bump when what a state means changes: a state of another version is not used.
STATE_VERSION = 1


@dataclass(frozen=True)
class SpanState:
    """The registry's trading spans as carried between runs (see the module docstring).

    ``source``: the bar directory; ``window``: the (first, last) day read (ISO, None = open);
    ``files``: bar file (relative path) -> its status ``[size, mtime_ns, ctime_ns, inode]`` when
    read, or None when that status could not be trusted (the file was still being written: see
    :data:`prometheus_assets.assets.upstream_files.SETTLED_SECONDS`). ``spans``: symbol -> (first,
    last) accepted date (ISO). ``future_rows``: rows read that were dated after ``as_of``. (The
    dates the files are named after are not kept: a state is only extended while every file it
    read is still there, so they are the current files' dates.)
    """

    source: str
    window: tuple[str | None, str | None]
    as_of: str
    files: dict[str, list[int] | None] = field(default_factory=dict)
    seen: tuple[str, ...] = ()
    spans: dict[str, tuple[str, str]] = field(default_factory=dict)
    future_rows: int = 0

    def extended(self, files: Mapping[str, list[int] | None], seen: set[str], spans: Mapping[str, tuple[str, str]],
                 future_rows: int) -> SpanState:
        """This state with more files read: their statuses, the symbols they name and their spans added."""
        merged = dict(self.spans)
        for symbol, (first, last) in spans.items():
            old = merged.get(symbol)
            merged[symbol] = (first, last) if old is None else (min(old[0], first), max(old[1], last))
        return SpanState(source=self.source, window=self.window, as_of=self.as_of, files={**self.files, **files},
                         seen=tuple(sorted(set(self.seen) | seen)), spans=dict(sorted(merged.items())),
                         future_rows=self.future_rows + int(future_rows))

    def to_json(self) -> dict:
        return {"version": STATE_VERSION, "source": self.source, "window": list(self.window), "as_of": self.as_of, "files": self.files,
                "seen": list(self.seen), "spans": {k: list(v) for k, v in self.spans.items()},
                "future_rows": self.future_rows}

    @classmethod
    def from_json(cls, data: object) -> SpanState | None:
        """The state of a decoded JSON document, or None if it is not one of this version (the caller rebuilds)."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return None
        try:
            window = data["window"]
            return cls(source=str(data["source"]), window=(window[0], window[1]), as_of=str(data["as_of"]),
                       files={str(k): (list(v) if v is not None else None) for k, v in data["files"].items()},
                       seen=tuple(data["seen"]),
                       spans={str(k): (str(v[0]), str(v[1])) for k, v in data["spans"].items()},
                       future_rows=int(data["future_rows"]))
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            return None


def appended_files(state: SpanState | None, source: str, current: Mapping[str, list[int]], stems: Mapping[str, str | None],
                   window: tuple[str | None, str | None], as_of: str) -> list[str] | None:
    """The bar files to read to bring ``state`` up to date exactly, or None when every file must be read.

    ``current``: every bar file now, with its status; ``stems``: the date each is named after.
    The files are the ones not in ``state`` (sorted), and the answer is None unless: the state is
    of this ``source`` (its directory) and window, every file it read is still there with the same status, every file (old and
    new) is named after a date, no new file is named after a date a file of the state was, and
    either ``as_of`` is the state's or no row the state read was dated after it.
    """
    if state is None or state.source != source or state.window != tuple(window):
        return None
    if state.as_of != as_of and state.future_rows > 0:
        return None
    if any(stems.get(rel) is None for rel in current):
        return None
    for rel, status in state.files.items():
        if status is None or current.get(rel) != status:
            return None
    added = sorted(rel for rel in current if rel not in state.files)
    old_days = {stems[rel] for rel in state.files}  # (every file of the state is still there: checked above)
    if any(stems[rel] in old_days for rel in added):
        return None
    return added


def spans_of(accepted: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """symbol -> (first, last) date (ISO) of ``accepted`` bars (rows without a date or symbol are ignored)."""
    rows = accepted.dropna(subset=["date", "symbol"])
    if rows.empty:
        return {}
    span = rows.groupby("symbol")["date"].agg(["min", "max"])
    return {str(s): (f"{lo:%Y-%m-%d}", f"{hi:%Y-%m-%d}") for s, lo, hi in zip(span.index, span["min"], span["max"])}


def future_rows(bars: pd.DataFrame, as_of: pd.Timestamp) -> int:
    """Rows of ``bars`` dated after ``as_of`` (left out today, possibly accepted on a later day)."""
    dates = pd.to_datetime(bars["date"], errors="coerce")
    return int((dates > pd.Timestamp(as_of)).sum())
