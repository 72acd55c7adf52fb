"""Backtest group: ``sleeve_positions``, ``sleeve_returns``, ``closed_trades`` and the sleeve evaluation.

Seed concept: Prometheus v2 books/sleeves — a backtest is the backfill of the daily book assets
over history (live = the newest partition, same code), evaluated by a metric vector m(config).
Every book is also run under each signal-combination method (config ``<book>.<method>``), so
the combination methods can be compared side by side and the meta-orchestrator can choose.
"""

import dagster as dg
import numpy as np
import pandas as pd

from prometheus_assets.assets import book_inputs, history, metadata, plots, sleeve_evaluation_state, sleeve_summary_state, trade_inputs
from prometheus_assets.core import performance, sleeve_ic, sleeves
from prometheus_assets.core.backtest import valuation_prices
from prometheus_assets.core.frames import to_wide
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.books import BooksResource

GROUP = "backtest"
OWNERS = ["team:prometheus-portfolio"]
TAGS = {"layer": "backtest"}
RETURN_COLUMNS = ["date", "book", "config_id", "combination_method", "configured", "return", "equity", "turnover", "costs", "gross_exposure", "cash"]


def backtest_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet"},
        code_version="3", deps=["target_portfolios", "prices_daily"],
        description=(
            "Sleeve positions per book, day and held symbol: weight at the close, shares, price, market value and the book's "
            "equity (starting at 1.0). Holdings drift with prices between rebalances; on a rebalance the book trades to its "
            "target at that close, paying its cost model (core.backtest.simulate)."
        ),
    )
    def sleeve_positions(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        configs = book_inputs.configured_configs(books.books())
        # continues each book's simulation from the state stored at the previous close (else from day one)
        prices, states = book_inputs.resumed_prices(storage, "sleeve_positions", configs, dates)
        positions = history.read(storage, "target_portfolios", None if states is None else dates[0], dates[-1])
        parts = []
        new = book_inputs.BookStates.for_configs(prices.index[-1], prices.columns, configs)
        for cid, (book, _) in configs.items():
            mine = positions[positions["book"] == book.name]
            carried = states.simulations.get(cid) if states is not None else None
            sim, new.simulations[cid] = book_inputs.simulated_returns_with_state(prices, sleeves.targets_wide(mine, prices.index, prices.columns), book.costs.total_bps, carried)
            parts.append(sleeves.holdings(mine[mine["date"] >= dates[0]], sim.set_index("date")["equity"], valuation_prices(prices, carried), book.name))
        book_inputs.save_states(storage, "sleeve_positions", dates, new)
        out = pd.concat(parts, ignore_index=True)
        return metadata.output(context, out, numbers={"positions": len(out), "resumed_from_state": states is not None})

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet"},
        code_version="4", deps=["universes", "returns_daily", "prices_daily", "assessment_scores", "strategy_signals", "regime_states"],
        ins={"instruments": dg.AssetIn()},
        description=(
            "Daily sleeve returns after costs for every config <book>.<combination method>: the configured book "
            "(configured = true, identical to target_portfolios) and the same book under each other combination method "
            "(the comparison). Columns: return, equity (from 1.0), turnover, costs, gross exposure, cash. A config's rows "
            "start on its first trade (no rows of cash before it, which would count as track record)."
        ),
    )
    def sleeve_returns(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource, instruments: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        run = book_inputs.book_run(storage, "sleeve_returns", book_inputs.all_configs(books.books()), instruments, dates)
        ctx = run.ctx
        universe = book_inputs.read_universe(storage, dates[-1], run.window_start)
        parts, states = [], run.new_states()
        for cid, (book, method) in run.configs.items():
            plan = book_inputs.plan(ctx, book, universe, method, start=run.start(cid))
            sim, states.simulations[cid] = run.simulate(cid, plan.targets, book.costs.total_bps)
            states.keep_plan(cid, plan)
            parts.append(sim.assign(book=book.name, config_id=cid, combination_method=method, configured=method == book.combination))
        solved = book_inputs.save_memo(ctx)
        book_inputs.save_states(storage, "sleeve_returns", dates, states)
        out = pd.concat(parts, ignore_index=True)[RETURN_COLUMNS]
        out = out[out["date"] >= dates[0]].reset_index(drop=True)
        equity = out[out["configured"]].pivot(index="date", columns="book", values="equity")
        return metadata.output(context, out, numbers={"configs": int(out["config_id"].nunique()), "risk_parity_solved": solved,
                                                      "resumed_from_state": run.starts is not None},
                               pictures={"equity_and_drawdown": plots.png_markdown(plots.equity_drawdown_figure(equity), "Equity and drawdown per book")})

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet"},
        code_version="3", metadata={"partition_column": "exit_date"},
        deps=["target_portfolios", "prices_daily", "returns_daily", "regime_states", "soft_target_classes"],
        ins={"instruments": dg.AssetIn()},
        description=(
            "Every closed round trip of every book, partitioned by exit date (a trade appears once it is closed): entry / "
            "exit dates and prices, side, return, holding sessions, and the entry context (regime label, soft-target class, "
            "sector, volatility bucket, alpha at entry, pattern key = book and alpha sources) — what the edge layer learns from."
        ),
    )
    def closed_trades(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource, instruments: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        configured = books.books()
        # continues from the trades open at the previous close (state/closed_trades/<day>.json), else from day one
        inputs = trade_inputs.load(storage, dates, list(configured))
        found, state = trade_inputs.closed_and_open(inputs, configured, book_inputs.sectors(instruments))
        trade_inputs.save(storage, dates, state)
        out = found[found["exit_date"] >= dates[0]].sort_values(["exit_date", "book", "symbol"], kind="stable").reset_index(drop=True)
        return metadata.output(context, out, numbers={"closed_trades": len(out), "trade_win_rate": float((out["return"] > 0).mean()) if len(out) else 0.0,
                                                      "resumed_from_state": inputs.state is not None})

    @dg.multi_asset(
        group_name=GROUP, can_subset=False, backfill_policy=SINGLE_RUN,
        deps=["sleeve_returns", "edge_sleeve_returns", "closed_trades", "regime_states", "universes", "returns_daily", "assessment_scores", "strategy_signals"],
        ins={"instruments": dg.AssetIn()},
        outs={
            "sleeve_metrics": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="4", description=(
                "The metric vector m(config) of every sleeve config: total return, CAGR, Sharpe, Sortino, Calmar, max drawdown, "
                "volatility, VaR 95%, win rate, profit factor, average win/loss, turnover, average holding period, trade win "
                "rate, rank IC of the book's alpha — overall, per regime label (a day's return under the label in force when its "
                "positions were set, the previous session's; an IC under its signal date's label), per half and per year; alpha decay (IC at 1–60 "
                "sessions) on the overall rows. Empyrical-reloaded conventions (252 periods, arithmetic Sharpe, rf = 0). The "
                "edge-sized books (config <book>.<method>.edge, edge_sizing = true) are evaluated beside their plain twins. "
                "Incremental: a per-date IC is final once its forward window is known, so the ICs of every config are kept "
                "in yearly blocks under state/sleeve_evaluation/ with the sha256 of the upstream year files each block's "
                "window read; a run recomputes only the blocks whose inputs changed (the newest year) and summarises the "
                "stored rows, which gives the same tables as a whole-history computation. The per-year slices and the "
                "rolling rows are kept the same way (state/sleeve_evaluation/summary/, keyed by the sleeve return, trade "
                "and IC blocks each year's rows read); the slices spanning the history are computed every run. "
                "The alpha-vs-realised scatter "
                f"shows the rebalances of the last {book_inputs.ALPHA_POINTS_SESSIONS} sessions.")),
            "sleeve_rolling_metrics": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="2", metadata={"point_in_time_column": "date"}, description=(
                "Performance over time per configured book: rolling 63- and 252-session Sharpe, volatility, total return, max "
                "drawdown and rank IC of the book's alpha (IC counted on the day it became known).")),
            "combination_comparison": dg.AssetOut(owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="2", description=(
                "The same book under each signal-combination method side by side (overall metrics, rank IC).")),
        },
    )
    def sleeve_evaluation(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource, instruments: pd.DataFrame):
        configs = books.books()
        returns = history.read(storage, "sleeve_returns", None, None).assign(edge_sizing=False)
        if storage.store().exists("edge_sleeve_returns"):
            sized = history.read(storage, "edge_sleeve_returns", None, None)
            returns = pd.concat([returns, sized.assign(edge_sizing=True)[returns.columns]], ignore_index=True) if len(sized) else returns
        closed = history.read(storage, "closed_trades", None, None, date_column="exit_date")
        end = returns["date"].max() if len(returns) else None
        regimes = book_inputs.regime_labels(storage, end)
        # per-date alpha ICs from the yearly blocks (only the new or changed ones are computed)
        ic_rows, recomputed = sleeve_evaluation_state.alpha_ic_rows(storage, configs)
        ic_of = {key: rows for key, rows in ic_rows.groupby(["book", "combination_method"], sort=False)}
        evaluated = sleeve_summary_state.sleeves(returns, closed, configs, ic_of, ic_rows.iloc[:0])
        # the year slices and rolling rows from their yearly blocks; the slices spanning the history computed here
        year_rows, rolling, summaries_recomputed = sleeve_summary_state.summaries(storage, configs, evaluated)
        parts, cut = [], None
        for sleeve in evaluated:
            index = pd.DatetimeIndex(sleeve.series.index)
            if cut is None or not cut[0].equals(index):  # (the configs share their dates: slice them once)
                cut = (index, [s for s in performance.slices(index, regimes) if s[0] != "year"],
                       performance.regime_slices(index, regimes, in_force=False))
            m = sleeve_summary_state.metric_rows(sleeve, cut[1], cut[2])
            decay = sleeve_ic.alpha_decay_from_rows(ic_of.get((sleeve.book, sleeve.combination_method), ic_rows.iloc[:0]))
            overall = (m["scope"] == "overall").to_numpy()
            parts.append(m.assign(**{f"ic_{h}d": np.where(overall, float(v), np.nan) for h, v in decay.items()}))
        if not parts:  # no config has traded yet (a history shorter than the first fits): the columns, no rows
            decay = sleeve_ic.alpha_decay_from_rows(ic_rows.iloc[:0])
            parts.append(sleeve_summary_state.no_metric_rows().assign(**{f"ic_{h}d": pd.Series(dtype="float64") for h in decay.index}))
        spanning = pd.concat(parts, ignore_index=True)
        # each config's rows: overall, regimes, halves, then its years in order
        both = pd.concat([spanning.assign(_part=0), year_rows.reindex(columns=spanning.columns).assign(_part=1)], ignore_index=True)
        metrics_table = both.sort_values(["config_id", "_part"], kind="stable").drop(columns="_part").reset_index(drop=True)
        comparison = performance.comparison_table(metrics_table[~metrics_table["edge_sizing"]])
        # the scatter shows the recent rebalances only (its cost must not grow with the history)
        since = history.lookback_start(end, book_inputs.ALPHA_POINTS_SESSIONS) if end is not None else None
        points = book_inputs.alpha_points(history.read(storage, "target_portfolios", since, end),
                                          to_wide(history.read(storage, "returns_daily", since, end), "return"), configs)
        configured = metrics_table[(metrics_table["scope"] == "overall") & metrics_table["configured"]].set_index("book")
        overall_sized = metrics_table[(metrics_table["scope"] == "overall") & metrics_table["edge_sizing"]]
        edge_comparison = performance.edge_sizing_comparison(metrics_table)
        yield dg.Output(metrics_table, output_name="sleeve_metrics", metadata={
            "configs": int(metrics_table["config_id"].nunique()),
            **{f"sharpe_{b}": float(v) for b, v in configured["sharpe_ratio"].items()},
            **{f"max_drawdown_{b}": float(v) for b, v in configured["max_drawdown"].items()},
            **{f"ic_{b}": float(v) for b, v in configured["ic"].items()},
            **{f"sharpe_{c}": float(v) for c, v in overall_sized.set_index("config_id")["sharpe_ratio"].items()},
            "edge_sizing_comparison": plots.markdown_table(edge_comparison) if len(edge_comparison) else dg.MetadataValue.text("no edge-sized books"),
            "alpha_vs_realised": plots.png_markdown(plots.alpha_scatter_figure(
                points, title=f"Alpha at rebalance vs realised forward return (last {book_inputs.ALPHA_POINTS_SESSIONS} sessions)"), "Alpha vs realised return"),
            "ic_blocks_recomputed": recomputed,
            "summary_blocks_recomputed": summaries_recomputed,
        })
        yield dg.Output(rolling, output_name="sleeve_rolling_metrics", metadata={"rows": len(rolling)})
        yield dg.Output(comparison, output_name="combination_comparison", metadata={"comparison": plots.markdown_table(comparison)})

    return [sleeve_positions, sleeve_returns, closed_trades, sleeve_evaluation]
