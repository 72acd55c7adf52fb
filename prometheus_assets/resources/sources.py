"""Market data sources: one interface, three implementations.

* :class:`BundledSource` (default): the real 20-stock S&P 500 daily prices 1990-01-02 → 2022-12-28,
  the S&P 500 index and five factor ETFs (2014 → 2022) shipped inside ``skfolio.datasets``.
* :class:`SyntheticSource`: the seeded generator of :mod:`prometheus_assets.core.synthetic`
  (volumes, fundamentals, issuer texts, listings/delistings).
* :class:`FilesSource`: a directory of the user's own CSV/Parquet daily bars (format in the README
  and in :mod:`prometheus_assets.resources.files_source`).

A source returns *raw* bars (with provenance ``source_file`` / ``source_row`` and a
``parse_error`` column); validation happens downstream in the ``prices_daily`` asset.
"""

from __future__ import annotations

import dataclasses
import os
import time
from abc import ABC, abstractmethod
from functools import cached_property, lru_cache
from importlib import resources as importlib_resources

import pandas as pd
import yaml

from prometheus_assets.core import calendar, trading_spans
from prometheus_assets.core.schema import INSTRUMENT_COLUMNS, normalise_bars
from prometheus_assets.errors import SourceConfigError

REFERENCE_COLUMNS: list[str] = ["date", "symbol", "name", "kind", "close"]
#: Default span of the synthetic source when PROMETHEUS_START / PROMETHEUS_END are not set.
SYNTHETIC_DEFAULT_START = pd.Timestamp("2010-01-04")
SYNTHETIC_DEFAULT_END = pd.Timestamp("2022-12-30")


def _clip(frame: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    if start is not None:
        mask &= frame["date"] >= start
    if end is not None:
        mask &= frame["date"] <= end
    return frame[mask]


def today_session() -> pd.Timestamp:
    """Today's date in New York: no bar may be dated after it."""
    return pd.Timestamp.now(tz="America/New_York").tz_localize(None).normalize()


def accepted_bars(bars: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """The rows of ``bars`` that ``prices_daily`` accepts, by :func:`core.validation.validate_bars`.

    Every rule applies except "unknown symbol" (the registry is what is being built): a row with a
    parse error, no date, no symbol, no or a non-positive price, a date after ``as_of`` (default
    today) or off the exchange calendar is left out.
    """
    from prometheus_assets.core.validation import validate_bars

    dated = pd.to_datetime(bars["date"], errors="coerce").dropna()
    if dated.empty:
        return bars.iloc[:0]
    as_of = today_session() if as_of is None else pd.Timestamp(as_of)
    start = max(min(dated.min(), as_of), calendar.CALENDAR_FLOOR)
    return validate_bars(bars, calendar.trading_sessions(start, as_of), known_symbols=None, as_of=as_of).clean


def finish_registry(registry: pd.DataFrame, bars: pd.DataFrame | None) -> pd.DataFrame:
    """Canonical registry columns plus the first/last trading dates of the accepted ``bars``.

    Only bars that pass validation count (:func:`accepted_bars`): a future-dated or unpriced row
    the canonical layer quarantines does not stretch a symbol's trading span.
    """
    accepted = accepted_bars(bars) if bars is not None and not bars.empty else None
    return registry_with_spans(registry, trading_spans.spans_of(accepted) if accepted is not None else {})


def registry_with_spans(registry: pd.DataFrame, spans: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Canonical registry columns plus ``first/last_trading_date`` from ``spans`` (symbol -> (first, last), ISO)."""
    reg = registry.copy()
    for col in INSTRUMENT_COLUMNS:
        if col not in reg.columns:
            reg[col] = None
    reg["issuer_id"] = reg["issuer_id"].fillna(reg["symbol"])
    reg["currency"] = reg["currency"].fillna("USD")
    reg["asset_class"] = reg["asset_class"].fillna("equity")
    for column, end in (("first_trading_date", 0), ("last_trading_date", 1)):
        day = {symbol: span[end] for symbol, span in spans.items()}
        reg[column] = pd.to_datetime(reg["symbol"].map(day), format="%Y-%m-%d").astype("datetime64[ns]")
    extra = [c for c in reg.columns if c not in INSTRUMENT_COLUMNS + ["first_trading_date", "last_trading_date"]]
    return reg[INSTRUMENT_COLUMNS + ["first_trading_date", "last_trading_date"] + extra].sort_values("symbol").reset_index(drop=True)


class MarketDataSource(ABC):
    """Where daily bars come from. ``start`` / ``end`` bound what the source exposes."""

    name: str = "abstract"

    def __init__(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> None:
        self.start = pd.Timestamp(start) if start is not None else None
        self.end = pd.Timestamp(end) if end is not None else None

    @abstractmethod
    def native_span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last day the underlying data covers."""

    def span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last day exposed, after ``PROMETHEUS_START`` / ``PROMETHEUS_END``."""
        first, last = self.native_span()
        first = max(first, self.start) if self.start is not None else first
        last = min(last, self.end) if self.end is not None else last
        sessions = calendar.trading_sessions(first, last)
        if len(sessions) == 0:
            raise SourceConfigError(f"source '{self.name}' has no trading day between {first.date()} and {last.date()}")
        return pd.Timestamp(sessions[0]), pd.Timestamp(sessions[-1])

    @abstractmethod
    def load_bars(self, start: pd.Timestamp, end: pd.Timestamp | None) -> pd.DataFrame:
        """Raw bars dated ``start <= date <= end`` (``end=None``: no upper bound), with provenance.

        Rows whose date could not be parsed (NaT) are included whatever the bounds, so that
        validation can quarantine them.
        """

    @abstractmethod
    def instruments(self) -> pd.DataFrame | None:
        """The instrument registry, or ``None`` when the source has none (universe = symbols seen)."""

    def has_registry(self) -> bool:
        """Whether :meth:`instruments` returns a registry (cheap: reads no bars)."""
        return True

    def registry(self, carried: trading_spans.SpanState | None = None) -> tuple[pd.DataFrame, trading_spans.SpanState | None, int | None]:
        """What the ``instruments`` asset stores: the registry with each symbol's first/last accepted bar date.

        Without a registry (:meth:`instruments` is None) the universe is every symbol the bars
        name. Returns ``(registry, state, files_read)``: the state to pass as ``carried`` next
        time and how many bar files were read (both None for a source that carries nothing:
        its bars are in memory).
        """
        registry = self.instruments()
        if registry is None:
            bars = self.load_bars(self.span()[0], None)
            registry = finish_registry(pd.DataFrame({"symbol": sorted(bars["symbol"].dropna().unique())}), bars)
        return registry, None, None

    def owning_days(self, rows: pd.DataFrame) -> pd.Series:
        """Per bar row (as :meth:`load_bars` gave it), the day whose partition it belongs to when that is not
        simply its date; NaT where its date decides (:func:`core.validation.assign_partition_dates`)."""
        return pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns]")

    def reference_prices(self) -> pd.DataFrame:
        """Benchmark / factor series: ``date, symbol, name, kind, close`` (empty if none)."""
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "date" else object) for c in REFERENCE_COLUMNS})

    def fundamentals(self) -> pd.DataFrame | None:
        """Quarterly fundamentals with their availability dates, or ``None``."""
        return None

    def issuer_texts(self) -> pd.DataFrame | None:
        """Issuer descriptions (``issuer_id, symbol, description``), or ``None``."""
        return None

    def _bounded(self, start: pd.Timestamp, end: pd.Timestamp | None) -> tuple[pd.Timestamp, pd.Timestamp | None]:
        lo = max(pd.Timestamp(start), self.start) if self.start is not None else pd.Timestamp(start)
        hi = pd.Timestamp(end) if end is not None else None
        if self.end is not None:
            hi = self.end if hi is None else min(hi, self.end)
        return lo, hi


# --------------------------------------------------------------------------- bundled
@lru_cache(maxsize=1)
def _bundled_config() -> dict:
    text = importlib_resources.files("prometheus_assets").joinpath("configs/bundled_instruments.yaml").read_text()
    return yaml.safe_load(text)


@lru_cache(maxsize=1)
def _bundled_wide() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset, load_sp500_index

    return load_sp500_dataset(), load_sp500_index(), load_factors_dataset()


def _wide_to_long(wide: pd.DataFrame) -> pd.DataFrame:
    long = wide.rename_axis(index="date", columns="symbol").stack().rename("close").reset_index()
    long["date"] = long["date"].astype("datetime64[ns]")
    long["symbol"] = long["symbol"].astype(object)
    return long


class BundledSource(MarketDataSource):
    """The S&P 500 data shipped in ``skfolio.datasets`` (adjusted closes; no volumes)."""

    name = "bundled"
    #: Listed on Nasdaq; every other bundled stock trades on the NYSE.
    NASDAQ = frozenset({"AAPL", "AMD", "MSFT"})

    def native_span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        prices = _bundled_wide()[0]
        return pd.Timestamp(prices.index[0]), pd.Timestamp(prices.index[-1])

    @cached_property
    def _bars(self) -> pd.DataFrame:
        prices = _bundled_wide()[0]
        long = _wide_to_long(prices)
        long["adj_close"] = long["close"]
        long["source_file"] = "skfolio.datasets:sp500"
        # 1-based row of the date in the wide dataset, so a problem can be traced back.
        row_of = pd.Series(range(1, len(prices) + 1), index=prices.index.astype("datetime64[ns]"))
        long["source_row"] = long["date"].map(row_of).astype("int64")
        long["parse_error"] = None
        return normalise_bars(long)

    def load_bars(self, start: pd.Timestamp, end: pd.Timestamp | None) -> pd.DataFrame:
        lo, hi = self._bounded(start, end)
        return _clip(self._bars, lo, hi).reset_index(drop=True)

    def instruments(self) -> pd.DataFrame:
        reg = pd.DataFrame(_bundled_config()["instruments"])
        reg["exchange"] = ["XNAS" if s in self.NASDAQ else "XNYS" for s in reg["symbol"]]
        return finish_registry(reg, self.load_bars(self.span()[0], None))

    def reference_prices(self) -> pd.DataFrame:
        _, index, factors = _bundled_wide()
        meta = pd.DataFrame(_bundled_config()["reference"]).set_index("symbol")
        long = pd.concat([_wide_to_long(index), _wide_to_long(factors)], ignore_index=True)
        long["name"] = long["symbol"].map(meta["name"])
        long["kind"] = long["symbol"].map(meta["kind"])
        lo, hi = self._bounded(self.span()[0], None)
        return _clip(long, lo, hi)[REFERENCE_COLUMNS].sort_values(["date", "symbol"]).reset_index(drop=True)


# --------------------------------------------------------------------------- synthetic
@lru_cache(maxsize=2)
def _synthetic_market(start: pd.Timestamp, end: pd.Timestamp, n_assets: int, seed: int):  # -> SyntheticMarket
    from prometheus_assets.core.synthetic import generate_market

    return generate_market(calendar.trading_sessions(start, end), n_assets=n_assets, seed=seed)


class SyntheticSource(MarketDataSource):
    """A seeded synthetic market: same (span, size, seed) → the same data, bit for bit."""

    name = "synthetic"

    def __init__(self, n_assets: int = 500, seed: int = 7, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> None:
        super().__init__(start, end)
        if n_assets < 1:
            raise SourceConfigError(f"PROMETHEUS_SYNTHETIC_ASSETS must be >= 1, got {n_assets}")
        self.n_assets = int(n_assets)
        self.seed = int(seed)
        self.gen_start = self.start if self.start is not None else SYNTHETIC_DEFAULT_START
        self.gen_end = self.end if self.end is not None else SYNTHETIC_DEFAULT_END
        if self.gen_end < self.gen_start:
            raise SourceConfigError(f"PROMETHEUS_END {self.gen_end.date()} is before PROMETHEUS_START {self.gen_start.date()}")

    @property
    def market(self):  # -> SyntheticMarket
        return _synthetic_market(self.gen_start, self.gen_end, self.n_assets, self.seed)

    def native_span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        sessions = calendar.trading_sessions(self.gen_start, self.gen_end)
        return pd.Timestamp(sessions[0]), pd.Timestamp(sessions[-1])

    def load_bars(self, start: pd.Timestamp, end: pd.Timestamp | None) -> pd.DataFrame:
        lo, hi = self._bounded(start, end)
        bars = _clip(self.market.bars, lo, hi).copy()
        bars["source_file"] = f"synthetic:seed={self.seed},assets={self.n_assets}"
        bars["source_row"] = bars.index.to_series().add(1).astype("int64")
        bars["parse_error"] = None
        return normalise_bars(bars).reset_index(drop=True)

    def instruments(self) -> pd.DataFrame:
        reg = self.market.instruments.copy()
        return finish_registry(reg, self.market.bars)

    def reference_prices(self) -> pd.DataFrame:
        states = self.market.market_states
        ref = pd.DataFrame(
            {
                "date": states["date"].astype("datetime64[ns]"),
                "symbol": "SYNMKT",
                "name": "Synthetic market factor index",
                "kind": "index",
                "close": 100.0 * (1.0 + states["market_return"]).cumprod(),
            }
        )
        return ref[REFERENCE_COLUMNS].reset_index(drop=True)

    def fundamentals(self) -> pd.DataFrame:
        return self.market.fundamentals

    def issuer_texts(self) -> pd.DataFrame:
        return self.market.descriptions


# --------------------------------------------------------------------------- files
class FilesSource(MarketDataSource):
    """A directory of the user's daily bars (CSV / Parquet, long format)."""

    name = "files"

    def __init__(self, root: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> None:
        super().__init__(start, end)
        from prometheus_assets.resources.files_source import FilesBarReader

        self.root = os.path.abspath(root)
        self.reader = FilesBarReader(self.root)

    def native_span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        # A future-dated row (a typo, a vendor's next-day stamp) does not extend the span: the span
        # ends on the newest bar not after today, so the newest partition with real data is the one
        # that reads past its day and quarantines the row as future_date, the sensor does not
        # request sessions the directory has no data for, and `make run` does not build them.
        return self.reader.span(not_after=today_session())

    def load_bars(self, start: pd.Timestamp, end: pd.Timestamp | None) -> pd.DataFrame:
        lo, hi = self._bounded(start, end)
        return self.reader.read_bars(lo, hi).reset_index(drop=True)

    def owning_days(self, rows: pd.DataFrame) -> pd.Series:
        """The day a row's file is named for (see :meth:`FilesBarReader.owning_days`), NaT for other files."""
        return self.reader.owning_days(rows["source_file"])

    def has_registry(self) -> bool:
        return self.reader.instruments_file() is not None

    def instruments(self) -> pd.DataFrame | None:
        reg = self.reader.read_instruments()
        if reg is None:
            return None
        return finish_registry(reg, self.reader.read_bars(None, None))

    def registry(self, carried: trading_spans.SpanState | None = None) -> tuple[pd.DataFrame, trading_spans.SpanState | None, int | None]:
        """:meth:`MarketDataSource.registry`, reading only the bar files added since ``carried`` when that is exact.

        The spans need every bar of the history; read from every file, that took ~35 s per
        end-of-day run for 33 years of daily CSV files of 20 symbols. ``carried`` (the state the
        previous run returned) is extended by the new day files only when
        :func:`core.trading_spans.appended_files` says the result is the same as reading every
        file (every file named after a date, none changed or removed, no new file for a date
        already read, same window); otherwise every file is read again and a fresh state returned.
        A file's status is recorded only if it had not changed for ``SETTLED_SECONDS`` before it
        was looked at, so a file still being written is read again (with every other) next time.
        """
        from prometheus_assets.assets.upstream_files import SETTLED_SECONDS
        from prometheus_assets.resources.files_source import stem_date

        reg = self.reader.read_instruments()
        lo, hi = (None, None) if reg is not None else self._bounded(self.span()[0], None)
        window = tuple(f"{d:%Y-%m-%d}" if d is not None else None for d in (lo, hi))
        as_of = today_session()
        looked_at = time.time_ns()
        files = self.reader.bar_files()
        status = {rel: self.reader.file_status(rel) for rel in files}
        stems = {rel: (f"{d:%Y-%m-%d}" if (d := stem_date(rel)) is not None else None) for rel in files}
        added = trading_spans.appended_files(carried, self.root, status, stems, window, f"{as_of:%Y-%m-%d}")
        if added is None or carried is None:
            base, to_read = trading_spans.SpanState(source=self.root, window=window, as_of=f"{as_of:%Y-%m-%d}"), files
        else:
            base, to_read = dataclasses.replace(carried, as_of=f"{as_of:%Y-%m-%d}"), added
        bars = self.reader.read_bars(lo, hi, files=to_read) if to_read else None
        accepted = accepted_bars(bars, as_of) if bars is not None and not bars.empty else None
        settled = {rel: status[rel] if looked_at - status[rel][2] >= SETTLED_SECONDS * 1e9 else None for rel in to_read}
        state = base.extended(
            settled,
            seen=set(bars["symbol"].dropna().unique()) if bars is not None else set(),
            spans=trading_spans.spans_of(accepted) if accepted is not None else {},
            future_rows=trading_spans.future_rows(bars, as_of) if bars is not None else 0)
        registry = reg if reg is not None else pd.DataFrame({"symbol": list(state.seen)})
        return registry_with_spans(registry, state.spans), state, len(to_read)


def build_source(
    kind: str,
    synthetic_assets: int = 500,
    synthetic_seed: int = 7,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> MarketDataSource:
    """The source named by ``PROMETHEUS_SOURCE``: ``bundled``, ``synthetic`` or a directory path."""
    lo = pd.Timestamp(start) if start else None
    hi = pd.Timestamp(end) if end else None
    if lo is not None and hi is not None and hi < lo:
        raise SourceConfigError(f"PROMETHEUS_END {hi.date()} is before PROMETHEUS_START {lo.date()}")
    key = (kind or "bundled").strip()
    if key == "bundled":
        return BundledSource(lo, hi)
    if key == "synthetic":
        return SyntheticSource(synthetic_assets, synthetic_seed, lo, hi)
    if os.path.isdir(key):
        return FilesSource(key, lo, hi)
    raise SourceConfigError(
        f"PROMETHEUS_SOURCE={kind!r} is neither 'bundled', 'synthetic' nor an existing directory of bar files"
    )
