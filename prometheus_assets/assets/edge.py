"""Edge group: global edge statistics, their decay, and edge sizing of the opted-in books.

Seed concept: Simplified Allocation & Global Edge Plan — one global definition of edge, learned
from every closed trade by (pattern_key, action_category, scope_mask), and one sizing formula
``max_alloc = base_alloc × pm_strength × exposure_skew``.

Why the tables are whole (unpartitioned) tables: the statistics are a path-dependent replay of
every closed trade in exit order, rebuilt from the start of history each run (a few seconds),
and they are read as a whole; their rows carry dates and are point in time (the truncation
tests check it). Sizing never feeds back into the statistics: the edge is learned from the
configured books' trades (``closed_trades``), and the edge-sized book is run beside its plain
twin as the config ``<book>.<method>.edge``, so the two can be compared in ``sleeve_metrics``.
"""

import numpy as np
import pandas as pd

import dagster as dg

from prometheus_assets.assets import book_inputs, history, plots
from prometheus_assets.core import book_signals
from prometheus_assets.core.books import BookConfig
from prometheus_assets.core.edge import context as scope_context
from prometheus_assets.core.edge.config import EdgeConfig
from prometheus_assets.core.edge.sizing import EdgeSizer, HeldPosition
from prometheus_assets.core.edge.stats import EdgeTimeline, edge_statistics
from prometheus_assets.partitions import SINGLE_RUN
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.books import BooksResource
from prometheus_assets.resources.edge import EdgeResource

GROUP = "edge"
OWNERS = ["team:prometheus-portfolio"]
TAGS = {"layer": "edge"}
EDGE_SUFFIX = "edge"


def edge_config_id(book: BookConfig) -> str:
    """``<book>.<method>.edge``: the edge-sized variant of the configured book."""
    return f"{book.config_id()}.{EDGE_SUFFIX}"


def _scope_panels(storage: StorageResource, ctx: book_inputs.BookContext, instruments: pd.DataFrame) -> scope_context.ScopePanels:
    wide_classes = book_inputs.soft_target_class_panel(storage, None, None)
    allocator = history.read(storage, "allocator_regime_v1", None, None) if storage.store().exists("allocator_regime_v1") else pd.DataFrame(columns=["date", "regime"])
    allocator_regimes = allocator.set_index("date")["regime"] if len(allocator) else pd.Series(dtype=object)
    return scope_context.scope_panels(ctx.returns, ctx.prices, ctx.volumes, instruments, ctx.regimes, allocator_regimes, wide_classes)


def _learning_trades(closed: pd.DataFrame, panels: scope_context.ScopePanels, ctx: book_inputs.BookContext, books: dict[str, BookConfig], config: EdgeConfig) -> pd.DataFrame:
    """Closed trades with their unified scope, rr and duration: what the statistics learn from."""
    known = closed[closed["book"].isin(books)].reset_index(drop=True)
    scopes = scope_context.trade_scopes(known, panels, books)
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
    others = positions[(positions["book"] != me) & (positions["target_weight"] != 0) & positions["book"].isin(books)]
    by_date = {d: rows for d, rows in others.groupby("date", sort=False)}

    def held(i: int, date: pd.Timestamp) -> list[HeldPosition]:
        if i == 0:
            return []
        previous = panels.dates[i - 1]
        rows = by_date.get(previous)
        if rows is None:
            return []
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


def _sized_book(ctx, book: BookConfig, books: dict[str, BookConfig], universe: pd.DataFrame, positions: pd.DataFrame, panels, trades: pd.DataFrame, config: EdgeConfig):
    """Run ``book`` with an :class:`EdgeSizer`; returns (plan, decisions)."""
    alpha = book_signals.book_alpha(book, ctx.panels).reindex(index=panels.dates, columns=panels.symbols).to_numpy(dtype=float)
    timeline = EdgeTimeline(trades, config)

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
    plan = book_inputs.plan(ctx, book, universe, sizer=sizer)
    return plan, sizer.decisions_frame().assign(config_id=edge_config_id(book))


@dg.multi_asset(
    group_name=GROUP, can_subset=False, backfill_policy=SINGLE_RUN,
    deps=["closed_trades", "target_portfolios", "universes", "returns_daily", "prices_daily", "regime_states", "soft_target_classes",
          "allocator_regime_v1", "assessment_scores", "strategy_signals"],
    ins={"instruments": dg.AssetIn()},
    outs={
        "pattern_scope_stats": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="1", description=(
            "Global edge per (pattern_key, action_category, scope_mask, scope_key) after every closed trade: n, sum_rr, sum_rr², "
            "avg / median rr (return in risk units: return / (60-session σ at entry × √holding sessions)), variance, average "
            "duration, the six components (ev, reliability, support, magnitude, time, stability) and edge_raw = delta_rr × "
            "reliability × (support + magnitude + time + stability), delta against one global baseline; with the mask's decay "
            "(linear slope, exponential rate, half-life, state, decay_mult). scope_mask is a 32-bit INTEGER over the unified "
            "scope dimensions of core/edge/scope.py; as_of_date is the last update (stats on day t hold trades closed before t "
            "when used for sizing).")),
        "edge_history": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="1", metadata={"point_in_time_column": "ts"}, description=(
            "One (edge_raw, ts) snapshot per mask key and day on which one of its trades closed: the series the decay fits read.")),
        "pm_sizing": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="2", metadata={"point_in_time_column": "date"}, description=(
            "Every edge-sizing decision of the opted-in books (YAML edge_sizing): date, book, symbol, pattern_key, the full "
            "scope, base_alloc, pm_strength_applied, exposure_skew_applied, decay_mult per mask used, max_alloc = base × "
            "pm_strength × exposure_skew, raw / sized / final weight. Point in time: stats from trades closed before the day.")),
        "edge_sleeve_returns": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="2", metadata={"point_in_time_column": "date"}, description=(
            "Daily returns after costs of the edge-sized books (config <book>.<method>.edge), same columns as sleeve_returns; "
            "sleeve_metrics compares them with the plain books.")),
    },
)
def edge_layer(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource, edge: EdgeResource, instruments: pd.DataFrame):
    config = edge.config()
    configs = books.books()
    ctx = book_inputs.load_context(storage, configs, instruments, None)
    panels = _scope_panels(storage, ctx, instruments)
    closed = history.read(storage, "closed_trades", None, None, date_column="exit_date")
    trades = _learning_trades(closed, panels, ctx, configs, config)
    stats, edge_hist = edge_statistics(trades, config)
    skipped = int((~np.isfinite(trades["rr"].to_numpy(dtype=float))).sum())
    context.log.info(f"edge: {len(trades)} closed trades, {skipped} without a risk estimate skipped, {len(stats)} mask keys")

    universe = book_inputs.read_universe(storage, None)
    positions = history.read(storage, "target_portfolios", None, None)
    decisions, returns = [], []
    for name, book in configs.items():
        if book.edge_sizing is None:
            continue
        plan, made = _sized_book(ctx, book, configs, universe, positions, panels, trades, config)
        sim = book_inputs.simulated_returns(ctx.prices, plan.targets, book.costs.total_bps)
        returns.append(sim.assign(book=name, config_id=edge_config_id(book), combination_method=book.combination, configured=False))
        decisions.append(made)
    solved = book_inputs.save_memo(ctx)
    sizing = pd.concat(decisions, ignore_index=True) if decisions else pd.DataFrame(columns=["date", "book", "symbol"])
    sized_returns = pd.concat(returns, ignore_index=True) if returns else pd.DataFrame(columns=["date", "book", "config_id"])

    yield dg.Output(stats, output_name="pattern_scope_stats", metadata={
        "trades": len(trades), "trades_skipped": skipped, "mask_keys": len(stats),
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


def edge_assets() -> list[dg.AssetsDefinition]:
    """The edge group's assets."""
    return [edge_layer]
