"""Edge group: global edge statistics, their decay, and edge sizing of the opted-in books.

Seed concept: Simplified Allocation & Global Edge Plan — one global definition of edge, learned
from every closed trade by (pattern_key, action_category, scope_mask), and one sizing formula
``max_alloc = base_alloc × pm_strength × exposure_skew``.

Why the tables are whole (unpartitioned) tables: the statistics are a path-dependent replay of
every closed trade in exit order, and they are read as a whole; their rows carry dates and are
point in time (the truncation tests check it). A run does not replay history: it resumes from
the state the previous run stored at the session before its partition range
(:mod:`prometheus_assets.assets.edge_state`: the statistics, the sized books' holdings, the
listing ages), adds the trades closed since, sizes the new days over a lookback window, and
appends to the stored tables. Without a usable state it replays from the first day; both give
the same rows (the split-backfill test checks it). Sizing never feeds back into the statistics: the edge is learned from the
configured books' trades (``closed_trades``), and the edge-sized book is run beside its plain
twin as the config ``<book>.<method>.edge``, so the two can be compared in ``sleeve_metrics``.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

import dagster as dg

from prometheus_assets.assets import book_inputs, edge_state, history, plots
from prometheus_assets.core import book_signals, portfolio
from prometheus_assets.core.books import BookConfig
from prometheus_assets.core.edge import context as scope_context
from prometheus_assets.core.edge.config import EdgeConfig
from prometheus_assets.core.edge.sizing import EdgeSizer, HeldPosition
from prometheus_assets.core.edge.stats import EdgeTimeline
from prometheus_assets.partitions import SINGLE_RUN, run_first_day
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.books import BooksResource
from prometheus_assets.resources.edge import EdgeResource

GROUP = "edge"
OWNERS = ["team:prometheus-portfolio"]
TAGS = {"layer": "edge"}
EDGE_SUFFIX = "edge"

_log = logging.getLogger(__name__)


def edge_config_id(book: BookConfig) -> str:
    """``<book>.<method>.edge``: the edge-sized variant of the configured book."""
    return f"{book.config_id()}.{EDGE_SUFFIX}"


@dataclass
class EdgeRun:
    """One edge-layer run's inputs: where it resumes (``state``, None: from the first day) and what it reads.

    ``closed`` are the closed trades the run adds to the statistics (after the state's close, or
    all of them); ``exits`` the closed trades that can have opened them by a flip (every trade
    that exited since the earliest entry among ``closed``); ``books`` is a
    :class:`~prometheus_assets.assets.book_inputs.BookRun` over the edge-sized configs;
    ``seen_before`` the listing age carried into the context's first row.
    """

    books: book_inputs.BookRun
    state: edge_state.EdgeState | None
    closed: pd.DataFrame
    seen_before: pd.Series | None
    exits: pd.DataFrame

    @property
    def ctx(self) -> book_inputs.BookContext:
        return self.books.ctx


def _resumable_tables(storage: StorageResource) -> bool:
    return all(storage.store().exists(t) for t in ("pattern_scope_stats", "edge_history", "pm_sizing", "edge_sleeve_returns"))


def edge_run(storage: StorageResource, configs: dict[str, BookConfig], sized: dict[str, tuple[BookConfig, str]], config: EdgeConfig,
             instruments: pd.DataFrame, first_day: pd.Timestamp | None) -> EdgeRun:
    """Resume after the state stored at the session before ``first_day`` (reading a lookback window), else replay all history.

    The window covers the sized books' lookback before ``first_day`` and
    :data:`~prometheus_assets.core.edge.context.PANEL_LOOKBACK` sessions before the entry of
    every trade closed since the state (the scope and risk of a trade are read at its entry).
    """
    state = edge_state.stored(storage, first_day, sized, config) if first_day is not None and _resumable_tables(storage) else None
    if state is not None:
        closed = history.read(storage, "closed_trades", state.date + pd.Timedelta(days=1), None, date_column="exit_date")
        # a trade closed now may have been opened by reversing one that closed before the state
        exits = (history.read(storage, "closed_trades", pd.Timestamp(closed["entry_date"].min()), None, date_column="exit_date")
                 if len(closed) else closed)
        book_sessions = max((portfolio.book_lookback(b, book_inputs.MAX_SOURCE_HORIZON) for b, _ in sized.values()), default=0)
        start = history.lookback_start(first_day, max(book_sessions, scope_context.PANEL_LOOKBACK) + history.LOOKBACK_SLACK)
        if len(closed):
            start = min(start, history.lookback_start(pd.Timestamp(closed["entry_date"].min()), scope_context.PANEL_LOOKBACK + history.LOOKBACK_SLACK))
        ctx = book_inputs.load_context(storage, configs, instruments, None, start, state.books.symbols)
        before = ctx.returns.index[ctx.returns.index < first_day]
        seen_before = state.seen.reindex(ctx.returns.columns).fillna(0).astype("int64") - ctx.returns.loc[: state.date].notna().sum().astype("int64")
        if len(before) and before[-1] == state.date and first_day in ctx.returns.index and (seen_before >= 0).all():
            starts = {cid: portfolio.BookStart(first_day, state.books.weights[cid]) for cid in sized}
            return EdgeRun(book_inputs.BookRun(ctx, sized, starts, state.books.simulations), state, closed, seen_before, exits)
        _log.info("edge_layer: stored state of %s does not continue into %s; replaying from the first day", state.date.date(), first_day.date())
    ctx = book_inputs.load_context(storage, configs, instruments, None)
    closed = history.read(storage, "closed_trades", None, None, date_column="exit_date")
    return EdgeRun(book_inputs.BookRun(ctx, sized, None, None), None, closed, None, closed)


def _scope_panels(storage: StorageResource, run: EdgeRun, instruments: pd.DataFrame) -> scope_context.ScopePanels:
    ctx, start = run.ctx, run.books.window_start
    wide_classes = book_inputs.soft_target_class_panel(storage, start, None)
    allocator = history.read(storage, "allocator_regime_v1", start, None) if storage.store().exists("allocator_regime_v1") else pd.DataFrame(columns=["date", "regime"])
    allocator_regimes = allocator.set_index("date")["regime"] if len(allocator) else pd.Series(dtype=object)
    return scope_context.scope_panels(ctx.returns, ctx.prices, ctx.dollar_volumes, instruments, ctx.regimes, allocator_regimes, wide_classes, run.seen_before)


def _learning_trades(closed: pd.DataFrame, panels: scope_context.ScopePanels, ctx: book_inputs.BookContext, books: dict[str, BookConfig], config: EdgeConfig,
                     exits: pd.DataFrame) -> pd.DataFrame:
    """Closed trades with their unified scope, rr and duration: what the statistics learn from (``exits``: see :class:`EdgeRun`)."""
    known = closed[closed["book"].isin(books)].reset_index(drop=True)
    scopes = scope_context.trade_scopes(known, panels, books, exits)
    return pd.concat([
        known[["pattern_key", "exit_date", "entry_date", "book", "symbol"]].assign(
            action_category=scope_context.ACTION_CATEGORY,
            rr=scope_context.risk_multiples(known, ctx.returns, config.risk_window),
            duration_hours=scope_context.duration_hours(known),
        ),
        scopes.drop(columns=["book"]),
    ], axis=1)


def _other_books_exposure(positions: pd.DataFrame, books: dict[str, BookConfig], me: str, panels: scope_context.ScopePanels):
    """A function (day index, date) -> the other books' held positions at the previous close, with their scope."""
    others = positions[(positions["book"] != me) & (positions["target_weight"] != 0) & positions["book"].isin(books)].reset_index(drop=True)
    rows_of_date = others.groupby("date", sort=False).indices  # row numbers per date; a day's rows are cut only when asked for

    def held(i: int, date: pd.Timestamp) -> list[HeldPosition]:
        if i == 0:
            return []
        previous = panels.dates[i - 1]
        at = rows_of_date.get(previous)
        if at is None:
            return []
        rows = others.iloc[at]
        out = []
        columns = panels.symbols.get_indexer(pd.Index(rows["symbol"]))
        for j, (book_name, w, alpha) in zip(columns, rows[["book", "target_weight", "alpha"]].itertuples(index=False, name=None)):
            if j < 0:
                continue
            book = books[book_name]
            scope = scope_context.scope_at(panels, i - 1, int(j), book, "long" if w > 0 else "short", alpha, "fresh")
            out.append(HeldPosition(pattern_key=book.pattern_key, scope=scope, exposure_pct=abs(float(w)) * book.capital))
        return out

    return held


def _sized_book(run: EdgeRun, cid: str, book: BookConfig, books: dict[str, BookConfig], universe: pd.DataFrame, positions: pd.DataFrame, panels, trades: pd.DataFrame, config: EdgeConfig):
    """Run ``book`` with an :class:`EdgeSizer` (resumed when ``run`` is); returns (plan, decisions)."""
    ctx = run.ctx
    alpha = book_signals.book_alpha(book, ctx.panels).reindex(index=panels.dates, columns=panels.symbols).to_numpy(dtype=float)
    # each sized book walks its own timeline forward from the carried statistics (copied only if it must add trades)
    timeline = EdgeTimeline(trades, config, start=None if run.state is None else run.state.aggregator, copy_on_write=True)

    def edge_before(date: pd.Timestamp):
        return timeline.before(date).lookup

    def candidate_scope(i: int, date: pd.Timestamp, j: int, raw: float, current: float):
        mode = "flip" if current * raw < 0 else "fresh"
        return scope_context.scope_at(panels, i, j, book, "long" if raw > 0 else "short", alpha[i, j], mode)

    def own_scope(i: int, date: pd.Timestamp, j: int, weight: float):
        return scope_context.scope_at(panels, i, j, book, "long" if weight > 0 else "short", alpha[i, j], "fresh")

    sizer = EdgeSizer(
        book=book.name, pattern_key=book.pattern_key, action_category=scope_context.ACTION_CATEGORY,
        base_alloc=book.edge_sizing.default_allocation_pct, config=config, edge_before=edge_before,
        candidate_scope=candidate_scope, other_exposure=_other_books_exposure(positions, books, book.name, panels),
        own_scope=own_scope, symbols=list(panels.symbols), capital=book.capital,
    )
    plan = book_inputs.plan(ctx, book, universe, sizer=sizer, start=run.books.start(cid))
    return plan, sizer.decisions_frame().assign(config_id=cid)


def _appended(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` rows then ``new`` rows, with ``new``'s column types (the stored table reads back as Arrow gave it)."""
    if not len(new):
        return old.reset_index(drop=True)
    old = old[list(new.columns)].astype(new.dtypes.to_dict())
    return pd.concat([old, new], ignore_index=True) if len(old) else new.reset_index(drop=True)


def _continued(storage: StorageResource, run: EdgeRun, table: str, parts: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    """A per-day table of the sized books: the stored rows before the run's first planned day, then this run's rows.

    Rows are ordered by config, then date (then as produced), so a resumed run and a replay give the same table.
    """
    new = pd.concat(parts, ignore_index=True) if parts else empty
    if run.books.first_day is not None:
        new = _appended(history.read(storage, table, None, run.books.first_day - pd.Timedelta(days=1)), new)
    return new.sort_values(["config_id", "date"], kind="stable").reset_index(drop=True) if len(new) else new


@dg.multi_asset(
    group_name=GROUP, can_subset=False, backfill_policy=SINGLE_RUN,
    deps=["closed_trades", "target_portfolios", "universes", "returns_daily", "prices_daily", "regime_states", "soft_target_classes",
          "allocator_regime_v1", "assessment_scores", "strategy_signals"],
    ins={"instruments": dg.AssetIn()},
    outs={
        "pattern_scope_stats": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="4", description=(
            "Global edge per (pattern_key, action_category, scope_mask, scope_key) after every closed trade: n, sum_rr, sum_rr², "
            "avg / median rr (return in risk units: return / (60-session σ at entry × √holding sessions)), variance, average "
            "duration, the six components (ev, reliability, support, magnitude, time, stability) and edge_raw = delta_rr × "
            "reliability × (support + magnitude + time + stability), delta against one global baseline; with the mask's decay "
            "(linear slope, exponential rate, half-life, state, decay_mult). scope_mask is a 32-bit INTEGER over the unified "
            "scope dimensions of core/edge/scope.py; as_of_date is the last update (stats on day t hold trades closed before t "
            "when used for sizing).")),
        "edge_history": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="4", metadata={"point_in_time_column": "ts"}, description=(
            "One (edge_raw, ts) snapshot per mask key and day on which one of its trades closed: the series the decay fits read.")),
        "pm_sizing": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="5", metadata={"point_in_time_column": "date"}, description=(
            "Every edge-sizing decision of the opted-in books (YAML edge_sizing): date, book, symbol, pattern_key, the full "
            "scope, base_alloc, pm_strength_applied, exposure_skew_applied, decay_mult per mask used, max_alloc = base × "
            "pm_strength × exposure_skew, raw / sized / final weight. Point in time: stats from trades closed before the day.")),
        "edge_sleeve_returns": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="6", metadata={"point_in_time_column": "date"}, description=(
            "Daily returns after costs of the edge-sized books (config <book>.<method>.edge), same columns as sleeve_returns; "
            "sleeve_metrics compares them with the plain books.")),
    },
)
def edge_layer(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource, edge: EdgeResource, instruments: pd.DataFrame):
    config = edge.config()
    configs = books.books()
    sized = {edge_config_id(b): (b, b.combination) for b in configs.values() if b.edge_sizing is not None}
    first_day = run_first_day(context.run.tags)
    run = edge_run(storage, configs, sized, config, instruments, first_day)
    ctx = run.ctx
    panels = _scope_panels(storage, run, instruments)
    trades = _learning_trades(run.closed, panels, ctx, configs, config, run.exits)
    skipped = int((~np.isfinite(trades["rr"].to_numpy(dtype=float))).sum()) + (0 if run.state is None else run.state.skipped)
    learned = len(trades) + (0 if run.state is None else run.state.trades)

    universe = book_inputs.read_universe(storage, None, run.books.window_start)
    positions = history.read(storage, "target_portfolios", run.books.window_start, None)
    decisions, returns, states = [], [], run.books.new_states()
    for cid, (book, _) in sized.items():
        plan, made = _sized_book(run, cid, book, configs, universe, positions, panels, trades, config)
        sim, states.simulations[cid] = run.books.simulate(cid, plan.targets, book.costs.total_bps)
        states.keep_plan(cid, plan)
        returns.append(sim.assign(book=book.name, config_id=cid, combination_method=book.combination, configured=False))
        decisions.append(made)
    solved = book_inputs.save_memo(ctx)
    # after the sized books, which read the carried statistics: now they take the new trades
    aggregator = EdgeTimeline(trades, config, start=None if run.state is None else run.state.aggregator).through_end()
    stats = aggregator.stats_frame()
    context.log.info(f"edge: {learned} closed trades ({len(trades)} new), {skipped} without a risk estimate skipped, {len(stats)} mask keys"
                     + (f"; resumed from the state of {run.state.date.date()}" if run.state is not None else "; replayed from the first day"))
    sizing = _continued(storage, run, "pm_sizing", decisions, pd.DataFrame(columns=["date", "book", "symbol", "config_id"]))
    sized_returns = _continued(storage, run, "edge_sleeve_returns", returns, pd.DataFrame(columns=["date", "book", "config_id"]))
    edge_hist = aggregator.history_frame()
    if run.state is not None:
        # ts holds midnights (the aggregator's days), so its day bound is the same as ts <= the state's date
        edge_hist = _appended(history.read(storage, "edge_history", None, run.state.date, date_column="ts"), edge_hist)

    yield dg.Output(stats, output_name="pattern_scope_stats", metadata={
        "trades": learned, "trades_new": len(trades), "trades_skipped": skipped, "resumed_from_state": run.state is not None, "mask_keys": len(stats),
        "keys_decaying": int((stats["decay_state"] == "decaying").sum()) if len(stats) else 0,
        "keys_improving": int((stats["decay_state"] == "improving").sum()) if len(stats) else 0,
        "edge_by_mask": plots.markdown_table(stats.groupby("dimensions")[["n", "edge_raw", "decay_mult"]].mean().reset_index()) if len(stats) else dg.MetadataValue.text("no trades"),
    })
    yield dg.Output(edge_hist, output_name="edge_history", metadata={"snapshots": len(edge_hist)})
    yield dg.Output(sizing, output_name="pm_sizing", metadata={
        "decisions": len(sizing),
        "pm_strength_mean": float(sizing["pm_strength_applied"].mean()) if len(sizing) else 1.0,
        "exposure_skew_mean": float(sizing["exposure_skew_applied"].mean()) if len(sizing) else 1.0,
        "fallback_share": float(sizing["fallback"].mean()) if len(sizing) else 1.0,
        "risk_parity_solved": solved,
        "distributions": plots.quantile_bands(sizing, ["pm_strength_applied", "exposure_skew_applied", "max_alloc"], "Sizing multipliers per quarter (10–90% band, median)") if len(sizing) else dg.MetadataValue.text("no decisions"),
    })
    yield dg.Output(sized_returns, output_name="edge_sleeve_returns", metadata={"configs": int(sized_returns["config_id"].nunique()) if len(sized_returns) else 0})
    # Only now, with all four tables stored (Dagster stores each output before it resumes this generator), the
    # state that vouches for them: a run killed earlier leaves the previous state, and the next run replays
    # instead of appending to tables that miss this run's rows.
    seen = scope_context.listing_sessions(ctx.returns, run.seen_before).iloc[-1] if len(ctx.returns) else pd.Series(dtype="int64")
    edge_state.save(storage, first_day, edge_state.EdgeState(books=states, edge=edge_state.edge_fingerprint(config), seen=seen.astype("int64"),
                                                             trades=learned, skipped=skipped, aggregator=aggregator))


def edge_assets() -> list[dg.AssetsDefinition]:
    """The edge group's assets."""
    return [edge_layer]
