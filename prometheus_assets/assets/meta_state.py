"""``meta_orchestrator``'s reuse manifest: which stored selections are still what a full replay would give.

A selection at a re-selection date d depends on the sleeve returns, turnover and regime labels up
to d (its trailing window, and the session count and per-config return counts from the first day),
on the config set and complexities, and on the walk-forward parameters. The manifest
(``state/meta_orchestrator/manifest.json``) records for each stored as-of date d of year Y:

* ``prefix``: a digest of the sha256 of every ``sleeve_returns`` / ``regime_states`` file before
  year Y (and any non-year file);
* ``files``: the sha256 of the two year-Y files when d was computed, and ``rows``: a digest of
  their rows dated <= d (the columns the selection reads), so that appending days to the newest
  year (its file changes every day) does not invalidate the dates already in it;
* the :class:`~prometheus_assets.core.meta.SelectionAnchor` at d (sessions and counts so far),
  which lets the next run continue after d over a trailing window only.

A stored date is reused while its prefix matches and either its year files are unchanged or
their rows up to d digest the same; since each date's inputs include every earlier date's, the
valid dates are a prefix of the stored ones. The run then computes only the re-selection dates
after the last valid one (none on most days besides the newest, provisional one) from a window
of ``lookback`` sessions. The header (version, parameters, configs and complexities) must match,
else everything is recomputed. Deleting the directory is safe: the next run recomputes all.
"""

import hashlib
import json
from dataclasses import dataclass

import pandas as pd

from prometheus_assets.assets.evaluation_state import year_file
from prometheus_assets.assets.upstream_files import FileDigest, file_digests
from prometheus_assets.core.meta import SelectionAnchor
from prometheus_assets.resources.storage import ParquetStore

MANIFEST = "state/meta_orchestrator/manifest.json"
#: Bump when the selection's inputs or arithmetic change: every stored date is then recomputed.
STATE_VERSION = 2  # 2: regime Sharpes by the label in force (the previous session's), over >= 20 invested sessions
SLEEVE_COLUMNS = ["date", "config_id", "return", "turnover"]
REGIME_COLUMNS = ["as_of_date", "regime_label"]


def header(lookback: int, min_history: int, frequency: str, complexity: pd.Series) -> dict:
    return {"version": STATE_VERSION, "lookback": lookback, "min_history": min_history, "frequency": frequency,
            "complexity": {str(k): float(v) for k, v in sorted(complexity.items())}}


def _sha(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass
class Upstream:
    """The year files of the two upstream tables, and their decoded year rows (on demand)."""

    store: ParquetStore
    sleeves: list[FileDigest]
    regimes: list[FileDigest]

    @classmethod
    def of(cls, store: ParquetStore) -> "Upstream":
        regimes = file_digests(store, "regime_states") if store.exists("regime_states") else []
        return cls(store, file_digests(store, "sleeve_returns"), regimes)

    def prefix(self, year: int) -> str:
        """Digest of every file before ``year`` (and of non-year files) of both tables."""
        return _sha([[f.table, f.name, f.sha256] for f in (*self.sleeves, *self.regimes) if f.year is None or f.year < year])

    def year_files(self, year: int) -> list[str | None]:
        return [f.sha256 if f is not None else None for f in (year_file(self.sleeves, year), year_file(self.regimes, year))]


class YearRows:
    """Digests of a year's upstream rows up to a date, decoding each year once."""

    def __init__(self, store: ParquetStore) -> None:
        self.store = store
        self._hashes: dict[int, tuple] = {}

    def _year(self, year: int) -> tuple:
        if year not in self._hashes:
            lo, hi = pd.Timestamp(year=year, month=1, day=1), pd.Timestamp(year=year, month=12, day=31)
            parts = []
            for table, columns in (("sleeve_returns", SLEEVE_COLUMNS), ("regime_states", REGIME_COLUMNS)):
                if not self.store.exists(table):
                    parts.append((pd.DatetimeIndex([]), b""))
                    continue
                rows = self.store.read(table, lo, hi, date_column=columns[0])[columns]
                rows = rows.sort_values(columns[:2], kind="stable").reset_index(drop=True)
                hashes = pd.util.hash_pandas_object(rows, index=False).to_numpy()
                parts.append((pd.DatetimeIndex(rows[columns[0]]), hashes))
            self._hashes[year] = tuple(parts)
        return self._hashes[year]

    def digest(self, day: pd.Timestamp) -> str:
        h = hashlib.sha256(json.dumps([SLEEVE_COLUMNS, REGIME_COLUMNS]).encode())
        for dates, hashes in self._year(day.year):
            n = int((dates <= day).sum()) if len(dates) else 0
            h.update(n.to_bytes(8, "little"))
            h.update(hashes[:n].tobytes() if n else b"")
        return h.hexdigest()


def entry(upstream: Upstream, rows: YearRows, anchor: SelectionAnchor, configs: list[str]) -> dict:
    day = anchor.as_of_date
    return {"year": day.year, "prefix": upstream.prefix(day.year), "files": upstream.year_files(day.year), "rows": rows.digest(day),
            "sessions": anchor.sessions, "counts": [int(anchor.counts.get(c, 0)) for c in configs]}


def valid_prefix(manifest: dict | None, expected_header: dict, upstream: Upstream, rows: YearRows) -> tuple[list[pd.Timestamp], SelectionAnchor | None, dict]:
    """The stored as-of dates still valid (a prefix of them, in order), the anchor at the last one, and their entries.

    The entries are refreshed to the current files (a date validated by its rows digest records the
    year file it was validated against), so the manifest is the one a from-scratch run writes.
    """
    if not manifest or manifest.get("header") != expected_header:
        return [], None, {}
    configs = manifest["configs"]
    valid, anchor, entries = [], None, {}
    for key in sorted(manifest["entries"]):
        e = manifest["entries"][key]
        day = pd.Timestamp(key)
        if e["prefix"] != upstream.prefix(day.year):
            break
        files = upstream.year_files(day.year)
        if e["files"] != files and e["rows"] != rows.digest(day):
            break
        valid.append(day)
        anchor = SelectionAnchor(day, int(e["sessions"]), dict(zip(configs, e["counts"], strict=True)))
        entries[key] = {**e, "files": files}
    return valid, anchor, entries


def load(store: ParquetStore) -> dict | None:
    raw = store.read_bytes(MANIFEST)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def save(store: ParquetStore, manifest: dict) -> None:
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    if store.read_bytes(MANIFEST) != data:
        store.write_bytes(MANIFEST, data)
