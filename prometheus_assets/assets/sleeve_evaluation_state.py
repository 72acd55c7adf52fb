"""The incremental state of ``sleeve_evaluation``: per-date alpha ICs of every book config in yearly blocks.

Layout::

    <home>/state/sleeve_evaluation/alpha/<YYYY>.parquet   core.sleeve_ic rows of the sessions of year Y
    <home>/state/sleeve_evaluation/manifest.json         per block: the upstream files and book configs it was computed from

The block of year Y holds, for every (book, combination method) and session s of Y, the rank IC
of the config's combined alpha at the book's horizon (with the date it becomes known) and at
each decay horizon (:func:`prometheus_assets.core.sleeve_ic.config_ic_by_date`). It is computed
from one window of its own, always the same for Y whatever else is computed in the run: the
``returns_daily``, ``assessment_scores`` and ``strategy_signals`` rows dated from the books'
lookback before Y (:func:`window_start`, the lookback a resumed book reads) to the end of Y, plus
the returns of the first :func:`core.sleeve_ic.forward_sessions` sessions after Y (the forward
windows). So a block is a deterministic function of the year files of that window, the returns
rows after Y it reads and the book configs; the manifest records their sha256 digests (the
machinery of :mod:`prometheus_assets.assets.evaluation_state`), and a block is recomputed when any
of them changes: every day for the newest year, for an older year only when one of its files
was re-materialized with other bytes or a book config changed. A run with no state computes
every block the same way, so a state built in one run and one built day by day are byte-identical,
and so are the outputs summarised from them.
"""

import pandas as pd

from prometheus_assets.assets import book_inputs, evaluation_state, history, upstream_files
from prometheus_assets.core import book_signals, portfolio, sleeve_ic
from prometheus_assets.core.books import BookConfig
from prometheus_assets.core.frames import to_wide
from prometheus_assets.resources import StorageResource

STATE_DIR = "state/sleeve_evaluation"
#: Bump when a block's content definition changes (e.g. the decay horizons): every block is then recomputed once.
STATE_VERSION = 1
SECTION = "alpha"
#: The upstream tables a block reads over its window.
TABLES = ("returns_daily", "assessment_scores", "strategy_signals")


def block_store(storage: StorageResource) -> evaluation_state.BlockStore:
    return evaluation_state.BlockStore(storage.store(), STATE_DIR, STATE_VERSION, {SECTION: ("date", "known_date")})


def window_start(year: int, books: dict[str, BookConfig]) -> pd.Timestamp:
    """The first day a block of ``year`` reads: the lookback of a resumed book before the first day of the year."""
    lookback = max(portfolio.book_lookback(b, book_inputs.MAX_SOURCE_HORIZON) for b in books.values()) + history.LOOKBACK_SLACK
    return history.lookback_start(pd.Timestamp(f"{year:04d}-01-01"), lookback)


def block_inputs(year: int, start: pd.Timestamp, listing: dict[str, list[upstream_files.FileDigest]],
                 configs: dict[str, tuple[BookConfig, str]]) -> list[list[str]] | None:
    """The year files (table, name, sha256) of the block's window (from ``start``) and the configs' fingerprints; None without a returns file of ``year``."""
    if evaluation_state.year_file(listing["returns_daily"], year) is None:
        return None
    first = start.year
    files = [[f.table, f.name, f.sha256] for t in TABLES for f in listing[t] if f.year is not None and first <= f.year <= year]
    return files + [["config", cid, book_inputs.config_fingerprint(book, method)] for cid, (book, method) in sorted(configs.items())]


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the block's fixed dtypes (a block without rows stores the same schema as one with rows)."""
    columns = sleeve_ic.block_columns()
    out = rows[list(columns)].astype({c: t for c, t in columns.items() if t != "str"})
    return out.astype({c: "str" for c, t in columns.items() if t == "str"}) if not len(out) else out.reset_index(drop=True)


def _compute(storage: StorageResource, books: dict[str, BookConfig], configs: dict[str, tuple[BookConfig, str]],
             years: list[int], starts: dict[int, pd.Timestamp], reach: dict[int, int]) -> dict[int, pd.DataFrame]:
    """The blocks of ``years``, each from its own window (the rows are read once for all of them, then cut per block)."""
    lo = min(starts[y] for y in years)
    hi = pd.Timestamp(f"{max(years):04d}-12-31")
    scores = history.read(storage, "assessment_scores", lo, hi, date_column="as_of_date", columns=book_signals.SCORE_INPUT_COLUMNS)
    signals = history.read(storage, "strategy_signals", lo, hi, columns=book_signals.SIGNAL_INPUT_COLUMNS)
    returns = history.read(storage, "returns_daily", lo, pd.Timestamp(f"{max(reach[y] for y in years):04d}-12-31"))
    sessions = pd.DatetimeIndex(sorted(returns["date"].unique()))
    forward = sleeve_ic.forward_sessions(books)
    out = {}
    for year in years:
        start, first, end = starts[year], pd.Timestamp(f"{year:04d}-01-01"), pd.Timestamp(f"{year:04d}-12-31")
        after = sessions[sessions > end][:forward]  # the rows evaluation_state.following_returns digests
        last = after[-1] if len(after) else end
        window = to_wide(returns[(returns["date"] >= start) & (returns["date"] <= last)], "return")
        rows = sleeve_ic.config_ic_by_date(
            configs, books,
            scores[(scores["as_of_date"] >= start) & (scores["as_of_date"] <= end)],
            signals[(signals["date"] >= start) & (signals["date"] <= end)],
            window, first, end)
        out[year] = _typed(rows)
    return out


def alpha_ic_rows(storage: StorageResource, books: dict[str, BookConfig]) -> tuple[pd.DataFrame, int]:
    """The per-date IC rows of every (book, method) and session, in year order, and how many blocks were recomputed."""
    configs = book_inputs.all_configs(books)
    store = storage.store()
    listing = {t: upstream_files.file_digests(store, t) for t in TABLES}
    years = sorted({f.year for f in listing["returns_daily"] if f.year is not None})
    starts = {y: window_start(y, books) for y in years}
    out, recomputed = evaluation_state.refresh_blocks(
        block_store(storage), years, (SECTION,), listing["returns_daily"],
        lambda section, year: block_inputs(year, starts[year], listing, configs),
        lambda section, todo, reach: _compute(storage, books, configs, todo, starts, reach),
        sessions=sleeve_ic.forward_sessions(books))
    rows = out[SECTION]
    if rows is None:
        columns = sleeve_ic.block_columns()
        rows = pd.DataFrame({c: pd.Series(dtype=object if t == "str" else t) for c, t in columns.items()})
    return rows, recomputed
