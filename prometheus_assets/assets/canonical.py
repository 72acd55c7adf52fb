"""Canonical layer: instruments, trading calendar, validated daily prices and returns.

Seed concept: the canonical market data every engine of Prometheus v2 reads (DESIGN.md, layer
``canonical``): one validated bar per (date, symbol), an instrument/issuer registry and the
exchange calendar.
"""

import json

import dagster as dg
import pandas as pd

from prometheus_assets import checks
from prometheus_assets.core import calendar, quality, trading_spans
from prometheus_assets.core.returns import daily_returns
from prometheus_assets.core.schema import INSTRUMENT_COLUMNS
from prometheus_assets.core.validation import assign_partition_dates, validate_bars
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import MarketDataResource, StorageResource
from prometheus_assets.resources.sources import today_session
from prometheus_assets.resources.storage import year_of_file

GROUP = "canonical"
OWNERS = ["team:prometheus-data"]
TAGS = {"layer": "canonical"}
#: Sessions of ``prices_daily`` history each ``returns_daily`` partition reads before its own day:
#: one for the return itself, four so a 5-session stale run ending today is seen in full.
RETURNS_LOOKBACK = quality.STALE_RUN_SESSIONS - 1
#: Where ``instruments`` carries a files source's trading spans between runs (a cache: deleting it
#: only makes the next run read every bar file).
SPAN_STATE = "cache/instrument_spans.json"


def last_bars_before(storage: StorageResource, symbols, before: pd.Timestamp, columns: list[str]) -> pd.DataFrame:
    """Each of ``symbols``' last stored ``prices_daily`` bar dated before ``before`` (none for a symbol without one).

    ``returns_daily`` reads :data:`RETURNS_LOOKBACK` sessions before its range; a symbol with no bar
    there (back from a halt, or listed in the range) would get no return on its first day in the
    range, while a longer range that held its previous bar gives one (``sessions_elapsed`` > 1).
    The year files are read newest first, only until every symbol is found: nothing on a normal
    day, every year once on a listing day (its first bar has no previous one anywhere).
    """
    wanted = set(symbols)
    store = storage.store()
    if not wanted or not store.exists("prices_daily"):
        return pd.DataFrame(columns=columns)
    years = sorted({y for y in map(year_of_file, store.files("prices_daily")) if y is not None}, reverse=True)
    found = []
    for year in (y for y in years if y <= before.year):
        bars = store.read("prices_daily", pd.Timestamp(year, 1, 1), min(pd.Timestamp(year, 12, 31), before - pd.Timedelta(days=1)), columns=columns)
        bars = bars[bars["symbol"].isin(wanted)]
        if len(bars):
            last = bars.sort_values("date", kind="stable").groupby("symbol", sort=True).tail(1)
            found.append(last)
            wanted -= set(last["symbol"])
        if not wanted:
            break
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=columns)


def canonical_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The canonical assets on the given daily partitions."""

    @dg.asset(
        group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet", "duckdb"}, code_version="2",
        backfill_policy=SINGLE_RUN,
        description=(
            "Instrument / issuer registry: symbol, issuer_id, name, GICS sector and industry, currency, "
            "exchange, asset class, first/last trading date of the source's bars that pass validation (a "
            "quarantined row does not count). Seed: the instrument registry of the canonical layer. "
            "first/last dates describe the source as built; "
            "point-in-time consumers use prices_daily for availability. A files source without a registry "
            "file lists every symbol its bars name. For a files source the spans are carried between runs "
            f"({SPAN_STATE} under the storage root), so a new day reads only its own files when that gives "
            "the same registry (daily files named by date, none changed); otherwise every bar file is read."
        ),
    )
    def instruments(market_data: MarketDataResource, storage: StorageResource) -> dg.Output:
        store = storage.store()
        raw = store.read_bytes(SPAN_STATE)
        try:
            carried = trading_spans.SpanState.from_json(json.loads(raw)) if raw else None
        except (ValueError, UnicodeDecodeError):  # a damaged cache: read every file, write a new one
            carried = None
        registry, state, files_read = market_data.get().registry(carried)
        if state is not None:
            store.write_bytes(SPAN_STATE, json.dumps(state.to_json(), sort_keys=True, separators=(",", ":")).encode())
        return dg.Output(registry, metadata={} if files_read is None else {"bar_files_read": files_read})

    @dg.asset(
        group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet", "duckdb"}, code_version="1",
        backfill_policy=SINGLE_RUN,
        description=(
            "NYSE (XNYS) sessions from the first partition to the end of the published calendar, with "
            "flags: half-day, week/month/quarter/year end and start, and the rebalance dates later "
            "layers trade on. Source: exchange_calendars."
        ),
    )
    def trading_calendar(market_data: MarketDataResource) -> pd.DataFrame:
        first, _ = market_data.get().span()
        return calendar.calendar_table(calendar.trading_sessions(first), calendar.early_closes())

    @dg.asset(
        group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet", "duckdb"}, code_version="1",
        backfill_policy=SINGLE_RUN, metadata={"point_in_time_column": "date"},
        description=(
            "Reference series that are not book instruments: the S&P 500 index and the five MSCI USA "
            "factor ETFs (bundled source), the synthetic market index (synthetic source). Long format: "
            "date, symbol, name, kind, close."
        ),
    )
    def reference_prices(market_data: MarketDataResource) -> pd.DataFrame:
        return market_data.get().reference_prices()

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN,
        group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet", "duckdb"}, code_version="1",
        check_specs=checks.price_check_specs(),
        description=(
            "Validated daily bars, one row per (date, symbol): open, high, low, close, adj_close, volume. "
            "Rows that fail validation never enter: they go to the `quarantine` table (same storage, "
            "DuckDB view `quarantine`) with a reason, file and row; the checks report them."
        ),
    )
    def prices_daily(context: dg.AssetExecutionContext, market_data: MarketDataResource, storage: StorageResource, instruments: pd.DataFrame):
        dates = keys_to_dates(context.partition_keys)
        source = market_data.get()
        as_of = today_session()
        # The newest range also reads rows dated after it, so that future-dated rows are quarantined
        # (a files source's span ends on its newest bar not after today, whatever typo lies beyond).
        open_ended = dates[-1] >= min(as_of, source.span()[1])
        # Bars on the closed days just before the range (a holiday, a weekend) belong to its first partition.
        raw = source.load_bars(calendar.first_owned_day(dates[0]), None if open_ended else dates[-1])
        sessions = calendar.trading_sessions(min(dates[0], raw["date"].min() if raw["date"].notna().any() else dates[0]), max(dates[-1], as_of))
        known = frozenset(instruments["symbol"]) if source.has_registry() else None
        result = validate_bars(raw, sessions, known_symbols=known, as_of=as_of)
        clean = result.clean[result.clean["date"].isin(dates)].reset_index(drop=True)
        quarantined = assign_partition_dates(result.quarantine, dates, source.owning_days(result.quarantine))
        storage.write_dated("quarantine", quarantined, dates, date_column="partition_date")
        results = checks.price_check_results(clean, result.quarantine, {"sessions": sessions, "known_symbols": known})
        yield dg.Output(clean, metadata={"quarantined_rows": len(result.quarantine), "symbols": int(clean["symbol"].nunique())})
        yield from results

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN,
        group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet", "duckdb"}, code_version="2",
        check_specs=checks.return_check_specs(),
        ins={
            "prices_daily": dg.AssetIn(
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-RETURNS_LOOKBACK, allow_nonexistent_upstream_partitions=True)
            )
        },
        description=(
            "Daily simple and log returns per (date, symbol) against the symbol's previous bar, from adj_close "
            "when both bars have it, else close; sessions_elapsed > 1 marks a return across missing bars. Reads "
            f"{RETURNS_LOOKBACK} sessions of prices before each range (lookback), and the last stored bar of a "
            "symbol without one there (back from a halt)."
        ),
    )
    def returns_daily(context: dg.AssetExecutionContext, storage: StorageResource, prices_daily: pd.DataFrame):
        dates = keys_to_dates(context.partition_keys)
        # a symbol whose previous bar lies before the lookback (a halt, missing source rows) takes it from storage
        first_bar = prices_daily.groupby("symbol")["date"].min() if len(prices_daily) else pd.Series(dtype="datetime64[ns]")
        earlier = last_bars_before(storage, first_bar.index[first_bar >= dates[0]], dates[0], list(prices_daily.columns))
        window = pd.concat([earlier, prices_daily], ignore_index=True) if len(earlier) else prices_daily
        window_start = window["date"].min() if len(window) else dates[0]
        sessions = calendar.trading_sessions(min(window_start, dates[0]), dates[-1])
        returns = daily_returns(window, sessions, keep_from=dates[0])
        stale = quality.stale_price_runs(prices_daily)
        stale = stale[stale["end_date"] >= dates[0]]
        results = checks.return_check_results(returns, stale)
        yield dg.Output(returns)
        yield from results

    return [instruments, trading_calendar, reference_prices, prices_daily, returns_daily]


__all__ = ["canonical_assets", "INSTRUMENT_COLUMNS", "today_session"]
