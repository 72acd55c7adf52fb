"""The incremental state of ``sleeve_evaluation``'s per-year rows: year slices and rolling metrics in yearly blocks.

Layout::

    <home>/state/sleeve_evaluation/summary/years/<YYYY>.parquet    the ("year", "YYYY") rows of sleeve_metrics, every config
    <home>/state/sleeve_evaluation/summary/rolling/<YYYY>.parquet  the sleeve_rolling_metrics rows dated in year Y
    <home>/state/sleeve_evaluation/summary/manifest.json          per block: the upstream files and configs it was computed from

Most of ``sleeve_metrics`` is per-year rows, and ``sleeve_rolling_metrics`` is one row per date,
window and configured book over trailing windows of up to 252 sessions. Recomputed from the whole
history every day, both cost time in proportion to the history (33 years of year slices, and
O(dates × window) rolling windows). Yet a row of year Y depends on a few files only:

* a year row of config c reads c's returns and turnover dated in Y, the trades that closed in Y
  and the alpha ICs known in Y (:func:`year_rows`);
* a rolling row dated in Y reads the ``max(windows) - 1`` returns before it and the ICs known over
  them (:func:`rolling_rows`).

So each year's rows are a block (:mod:`prometheus_assets.assets.evaluation_state`). Its manifest
entry records the sha256 of every ``sleeve_returns`` / ``edge_sleeve_returns`` / ``closed_trades``
year file read, of the alpha IC blocks (``sleeve_evaluation_state``) its ICs come from, and the
fingerprints of the book configs. A block is recomputed when one of them changes: every day for
the newest year, and for an older year only when an upstream file was re-materialized with other
bytes or a config changed. The remaining slices (overall, per regime, per half) span the whole
history and are computed every run by :func:`metric_rows`. A block is computed the same way in
every run, so an incremental run and one without state give the same bytes.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from prometheus_assets.assets import book_inputs, evaluation_state, history, sleeve_evaluation_state, upstream_files
from prometheus_assets.core import performance, sleeve_ic
from prometheus_assets.core.books import BookConfig
from prometheus_assets.resources import StorageResource

STATE_DIR = f"{sleeve_evaluation_state.STATE_DIR}/summary"
#: Bump when a block's content definition changes: every block is then recomputed once.
STATE_VERSION = 1
SECTIONS = ("years", "rolling")
#: Trailing windows (sessions) of sleeve_rolling_metrics.
ROLLING_WINDOWS = performance.ROLLING_WINDOWS
#: The return tables a block reads (each config's series is in one of them).
RETURN_TABLES = ("sleeve_returns", "edge_sleeve_returns")


@dataclass(frozen=True)
class Sleeve:
    """One config's evaluated series: daily returns and turnover by date, alpha ICs by known date, closed trades."""

    config_id: str
    book: str
    combination_method: str
    configured: bool
    edge_sizing: bool
    series: pd.DataFrame  # indexed by sorted dates; columns return, turnover
    ic: pd.Series  # rank IC of the book's alpha, indexed by the date it became known
    trades: pd.DataFrame | None  # round trips of the book (plain configured configs only), by exit_date
    #: The same ICs indexed by their signal date: the regime slices group them by the regime the
    #: signal was made in (by the known date, the H ICs after each regime change counted in the next
    #: regime). None: the regime slices use ``ic``.
    ic_by_signal: pd.Series | None = None

    def label(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(config_id=self.config_id, book=self.book, combination_method=self.combination_method,
                            configured=self.configured, edge_sizing=self.edge_sizing)


def sleeves(returns: pd.DataFrame, closed: pd.DataFrame, books: dict[str, BookConfig], ic_of: dict[tuple[str, str], pd.DataFrame],
            no_ic: pd.DataFrame) -> list[Sleeve]:
    """Every config of ``returns`` (sleeve returns, with an ``edge_sizing`` column), sorted by config id."""
    out = []
    for config_id, rows in returns.groupby("config_id", sort=True):
        name, method = rows["book"].iloc[0], rows["combination_method"].iloc[0]
        sized = bool(rows["edge_sizing"].iloc[0])
        plain_trades = method == books[name].combination and not sized
        out.append(Sleeve(
            config_id=str(config_id), book=name, combination_method=method, configured=bool(rows["configured"].iloc[0]), edge_sizing=sized,
            series=rows.set_index("date")[["return", "turnover"]],
            ic=sleeve_ic.alpha_ic_from_rows(ic_of.get((name, method), no_ic)).sort_index(kind="stable"),  # (cut by date below)
            trades=closed[closed["book"] == name] if plain_trades else None,
            ic_by_signal=sleeve_ic.alpha_ic_from_rows(ic_of.get((name, method), no_ic), by="date")))
    return out


def metric_rows(sleeve: Sleeve, cut: list[tuple[str, str, np.ndarray]], signal_regimes: list[tuple[str, str, np.ndarray]]) -> pd.DataFrame:
    """The sleeve_metrics rows of ``sleeve`` over the slices ``cut`` (:func:`performance.slices` of its dates), IC included.

    The returns' regime slices are by the label in force (the day before's); the ICs by signal date
    are sliced by their own date's label, ``signal_regimes`` (``performance.regime_slices(..., in_force=False)``).
    """
    series = sleeve.series
    index = pd.DatetimeIndex(series.index)
    m = performance.sliced_metrics(series["return"], None, series["turnover"], sleeve.trades, precomputed=cut)
    by_signal = sleeve.ic if sleeve.ic_by_signal is None else sleeve.ic_by_signal
    ic_by_slice = pd.concat([
        performance.slice_means(sleeve.ic, index, precomputed=[c for c in cut if c[0] != "regime"]),
        performance.slice_means(by_signal, index, precomputed=signal_regimes),
    ], ignore_index=True).rename(columns={"value": "ic"})
    return sleeve.label(m.merge(ic_by_slice, on=["scope", "slice"], how="left"))


def no_metric_rows() -> pd.DataFrame:
    """The columns of :func:`metric_rows`, without rows (no config has a return yet)."""
    none = pd.DataFrame({"return": pd.Series(dtype="float64"), "turnover": pd.Series(dtype="float64")}, index=pd.DatetimeIndex([]))
    return metric_rows(Sleeve("", "", "", False, False, none, none["return"], None), [], []).iloc[:0]


def _within(frame: pd.DataFrame | pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame | pd.Series:
    index = pd.DatetimeIndex(frame.index)
    return frame.iloc[index.searchsorted(start, "left"):index.searchsorted(end, "right")]


def _year_bounds(year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    return pd.Timestamp(f"{year:04d}-01-01"), pd.Timestamp(f"{year:04d}-12-31 23:59:59")


def _by_year(rows: pd.DataFrame, years: list[int], year_of: np.ndarray, empty: pd.DataFrame) -> dict[int, pd.DataFrame]:
    return {y: rows[year_of == y].reset_index(drop=True) if len(rows) else empty for y in years}


def year_rows(all_sleeves: Iterable[Sleeve], years: list[int]) -> dict[int, pd.DataFrame]:
    """Per year of ``years``: the ("year", "YYYY") rows of every sleeve with dates in it, in sleeve order.

    The same rows :func:`metric_rows` gives with every slice of the whole series: a year slice's
    metrics read only the returns, turnover, trades closed and ICs known on the year's dates.
    """
    parts = []
    for s in all_sleeves:
        of = pd.DatetimeIndex(s.series.index).year.to_numpy()
        cut = [("year", f"{y:04d}", of == y) for y in years if (of == y).any()]
        if cut:
            parts.append(metric_rows(s, cut, []))
    if not parts:
        return {y: no_metric_rows() for y in years}
    rows = pd.concat(parts, ignore_index=True)
    return _by_year(rows, years, rows["slice"].astype(int).to_numpy(), rows.iloc[:0])


def _rolling_start(sleeve: Sleeve, year: int) -> pd.Timestamp | None:
    """The first date a rolling row of ``year`` or later reads (None: the sleeve has no date from ``year`` on)."""
    index = pd.DatetimeIndex(sleeve.series.index)
    at = index.searchsorted(_year_bounds(year)[0], "left")
    if at >= len(index):
        return None
    return index[max(at - (max(ROLLING_WINDOWS) - 1), 0)]


def rolling_rows(all_sleeves: Iterable[Sleeve], years: list[int]) -> dict[int, pd.DataFrame]:
    """Per year of ``years``: the sleeve_rolling_metrics rows dated in it, of the configured sleeves (by config, window, date).

    They read each sleeve's series from ``max(windows) - 1`` sessions before the first of
    ``years``: the rows equal those of :func:`performance.rolling_metrics` over the whole series
    (every window is computed from its own values alone).
    """
    last = _year_bounds(max(years))[1]
    parts = []
    for s in all_sleeves:
        start = _rolling_start(s, min(years)) if s.configured else None
        if start is None:
            continue
        series = _within(s.series, start, last)
        rows = performance.rolling_metrics(series["return"], ROLLING_WINDOWS, ic=_within(s.ic, start, last))
        parts.append(rows.assign(config_id=s.config_id, book=s.book))
    empty = performance.rolling_metrics(pd.Series([], index=pd.DatetimeIndex([]), dtype="float64"), ROLLING_WINDOWS).assign(
        config_id=pd.Series(dtype=object), book=pd.Series(dtype=object))
    rows = pd.concat(parts, ignore_index=True) if parts else empty
    return _by_year(rows, years, pd.DatetimeIndex(rows["date"]).year.to_numpy(), empty)


def block_store(storage: StorageResource) -> evaluation_state.BlockStore:
    return evaluation_state.BlockStore(storage.store(), STATE_DIR, STATE_VERSION, {"years": ("start", "end"), "rolling": ("date",)})


def _first_reads(all_sleeves: list[Sleeve], years: list[int]) -> dict[tuple[str, int], pd.Timestamp]:
    """(section, year) -> the first date the block reads (absent: the block has no rows); ``years`` are those with dates."""
    out: dict[tuple[str, int], pd.Timestamp] = {("years", y): _year_bounds(y)[0] for y in years}
    for y in years:
        starts = [d for d in (_rolling_start(s, y) for s in all_sleeves if s.configured) if d is not None]
        if starts:
            out[("rolling", y)] = min(starts)
    return out


def _block_inputs(section: str, year: int, first: pd.Timestamp | None, listing: dict[str, list[upstream_files.FileDigest]],
                  alpha_blocks: dict[str, dict], fingerprints: list[list[str]], ic_reach: int) -> list[list] | None:
    """What the block of ``year`` reads from ``first`` on: upstream year files, alpha IC blocks, configs (None: no block)."""
    if first is None:
        return None
    tables = (*RETURN_TABLES, "closed_trades") if section == "years" else RETURN_TABLES
    ic_first = history.lookback_start(first, ic_reach).year  # an IC known on ``first`` is of a date up to ic_reach sessions before
    files = [[f.table, f.name, f.sha256] for t in tables for f in listing[t] if f.year is not None and first.year <= f.year <= year]
    blocks = [[name, entry["sha256"]] for name, entry in sorted(alpha_blocks.items()) if ic_first <= int(name[-4:]) <= year]
    return [*files, *blocks, *fingerprints]


def summaries(storage: StorageResource, books: dict[str, BookConfig], all_sleeves: list[Sleeve]) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The year rows and rolling rows of every year (from the blocks, recomputing the stale ones), and how many were recomputed.

    Year rows come in year order, then config order; rolling rows in config, window, date order.
    """
    store = storage.store()
    listing = {t: upstream_files.file_digests(store, t) for t in (*RETURN_TABLES, "closed_trades")}
    alpha_blocks = sleeve_evaluation_state.block_store(storage).manifest()["blocks"]
    fingerprints = [["config", cid, book_inputs.config_fingerprint(book, method)]
                    for cid, (book, method) in sorted(book_inputs.all_configs(books).items())]
    years = sorted({int(y) for s in all_sleeves for y in pd.DatetimeIndex(s.series.index).year.unique()})
    reach = sleeve_ic.forward_sessions(books)
    firsts = _first_reads(all_sleeves, years)
    compute = {"years": year_rows, "rolling": rolling_rows}  # (all stale years of a section at once)
    out, recomputed = evaluation_state.refresh_blocks(
        block_store(storage), years, SECTIONS, [],
        lambda section, year: _block_inputs(section, year, firsts.get((section, year)), listing, alpha_blocks, fingerprints, reach),
        lambda section, todo, _: compute[section](all_sleeves, todo),
        sessions=0)
    years_rows = out["years"] if out["years"] is not None else year_rows([], [0])[0]
    rolling = out["rolling"] if out["rolling"] is not None else rolling_rows([], [0])[0]
    # (blocks are by year; the table is by config, then window, then date)
    rolling = rolling.sort_values(["config_id", "window"], kind="stable").reset_index(drop=True)
    return years_rows, rolling, recomputed
