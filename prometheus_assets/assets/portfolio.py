"""Portfolio group: ``target_portfolios``, ``risk_reports`` and ``orders``.

Seed concepts: Prometheus v2 Portfolio Manager (TargetPortfolio_book(t) from combined signals
and an allocation method under constraints), Portfolio & Risk (ex-ante risk, factor exposures,
stress tests) and the Execution service (netted daily trade lists with book attribution).
"""

import dagster as dg
import pandas as pd

from prometheus_assets.assets import book_inputs, history, metadata, plots
from prometheus_assets.core import execution, risk
from prometheus_assets.core.frames import equal_weight_market, to_wide
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.books import BooksResource

GROUP = "portfolio"
OWNERS = ["team:prometheus-portfolio"]
TAGS = {"layer": "portfolio"}
#: Firm notional that turns weight changes into share quantities in ``orders``.
ORDER_NOTIONAL = 10_000_000.0


def _reference_returns(storage: StorageResource, end: pd.Timestamp) -> tuple[pd.Series | None, pd.DataFrame | None]:
    """The index (market) and factor-ETF daily returns of ``reference_prices``, when the source has them."""
    if not storage.store().exists("reference_prices"):
        return None, None
    ref = history.read(storage, "reference_prices", None, end)
    closes = to_wide(ref, "close")
    rets = closes.pct_change(fill_method=None)
    kinds = ref.drop_duplicates("symbol").set_index("symbol")["kind"]
    index = [s for s in rets.columns if kinds.get(s) == "index"]
    factors = [s for s in rets.columns if kinds.get(s) == "factor_etf"]
    return (rets[index[0]] if index else None), (rets[factors] if factors else None)


#: The allocation picture of a run shows at least this many sessions ending on its last day (as the regime timeline).
ALLOCATION_SHOWN_SESSIONS = 252
ALLOCATION_COLUMNS = ["date", "book", "symbol", "target_weight", "sector"]


def shown_allocation(storage: StorageResource, run_held: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """The held positions a run's allocation picture draws: its own, preceded by the stored ones of the year before.

    A daily run's own rows are one date, which a stacked area draws as nothing; with at least
    :data:`ALLOCATION_SHOWN_SESSIONS` sessions ending on ``last`` every run shows the recent
    allocation, and the cost is the same whatever the history (only the window is read).
    """
    shown_from = history.shown_from(first, last, ALLOCATION_SHOWN_SESSIONS)
    own = run_held[ALLOCATION_COLUMNS]
    if shown_from >= first or not storage.store().exists("target_portfolios"):
        return own
    before = history.read(storage, "target_portfolios", shown_from, first - pd.Timedelta(days=1), columns=ALLOCATION_COLUMNS)
    return pd.concat([before[before["target_weight"] != 0], own], ignore_index=True)


def order_prices(storage: StorageResource, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """Wide unadjusted closes over ``first`` … ``last``: the prices an order's share quantity is computed at.

    A vendor's back-adjusted close divides a price by every later split, so a quantity at the
    adjusted price is off by the splits still to come (10:1 later: ten times the shares).
    """
    return history.price_panels(storage, first, last, closes=True)["closes"]


def portfolio_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet"},
        code_version="3", deps=["universes", "returns_daily", "prices_daily", "assessment_scores", "strategy_signals", "regime_states"],
        ins={"instruments": dg.AssetIn()},
        description=(
            "TargetPortfolio_book(t): per book, day and held symbol the weight before trading (drifted), the target after "
            "trading and the trade. Alpha sources are combined (weighted / confidence-weighted / rank average, or best "
            "strategy), the top names of the book's universe are sized (proportional to alpha, capped Kelly, risk parity on "
            "a Ledoit-Wolf covariance via skfolio, or inverse volatility), then the constraints are enforced exactly (max "
            "position, max sector, min positions, turnover, gross leverage; regime rules scale size). Rebalances on the "
            "book's schedule and whenever its regime multiplier changes. Books can be overridden per run (resource `books`). "
            "The allocation_over_time picture shows the run's days and at least the year before (month ends)."
        ),
    )
    def target_portfolios(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource, instruments: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        configs = books.books()
        run = book_inputs.book_run(storage, "target_portfolios", book_inputs.configured_configs(configs), instruments, dates)
        ctx = run.ctx
        universe = book_inputs.read_universe(storage, dates[-1], run.window_start)
        parts, states = [], run.new_states()
        for name, book in configs.items():
            plan = book_inputs.plan(ctx, book, universe, start=run.start(book.config_id()))
            parts.append(plan.positions.assign(book=name, config_id=book.config_id()))
            states.keep_plan(book.config_id(), plan)
        solved = book_inputs.save_memo(ctx)
        book_inputs.save_states(storage, "target_portfolios", dates, states)
        out = pd.concat(parts, ignore_index=True)
        # labels as text also before the first regime (all missing: .map would give float NaN, so a
        # range of warm-up days alone stored a double column where one range over more days stores strings)
        out = out.assign(regime_label=out["date"].map(ctx.regimes).astype(object).where(lambda s: s.notna(), None),
                         sector=out["symbol"].map(ctx.sectors))
        out = out[out["date"] >= dates[0]].reset_index(drop=True)
        held = out[out["target_weight"] != 0]
        return metadata.output(context, out, numbers={
            "rebalances": int(out.loc[out["rebalance"], ["date", "book"]].drop_duplicates().shape[0]),
            "mean_positions": float(held.groupby(["date", "book"]).size().mean()) if len(held) else 0.0,
            "risk_parity_solved": solved, "resumed_from_state": run.starts is not None,
        }, pictures={"allocation_over_time": plots.allocation_over_time(shown_allocation(storage, held, dates[0], dates[-1]))})

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet", "scikit-learn"},
        code_version="3", deps=["target_portfolios", "returns_daily", "prices_daily", "reference_prices"], ins={"instruments": dg.AssetIn()},
        description=(
            "Risk report per book and day on the weights held at the close, long format (section, item, value): ex-ante "
            "volatility from a Ledoit-Wolf covariance (trailing 252 sessions, refreshed monthly from earlier data only); "
            "factor exposures (market beta, net sector weights, factor-ETF betas where the source has them); each name's "
            "marginal and percentage risk contribution; stress tests replaying 1998-08, 2000-2002, 2008-10 and 2020-03 on "
            "today's weights (buy-and-hold; a window appears once it is over)."
        ),
    )
    def risk_reports(context: dg.AssetExecutionContext, storage: StorageResource, instruments: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        panels = history.market_panels(storage, None, dates[-1])
        market, factors = _reference_returns(storage, dates[-1])
        if market is None:
            market = equal_weight_market(panels["returns"])
        # The monthly risk model covers every name held since the month's first session (core/risk.py),
        # so a range starting mid-month reads its month's earlier positions too.
        month_start = dates[0].replace(day=1)
        positions = history.read(storage, "target_portfolios", month_start, dates[-1])
        # every (date, book) block, zero weights included: a book that sold everything that day is reported
        # as in cash (volatility 0, gross 0); cut to the non-zero rows, its day had no report at all
        reports = risk.risk_reports(positions, panels["returns"], panels["prices"], market, factors, book_inputs.sectors(instruments), dates=pd.DatetimeIndex(dates))
        vol = reports[(reports["section"] == "risk") & (reports["item"] == "ex_ante_volatility")]
        return metadata.output(context, reports, numbers={"mean_ex_ante_volatility": float(vol["value"].mean()) if len(vol) else 0.0})

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet"},
        code_version="2", deps=["prices_daily"], ins={"target_portfolios": dg.AssetIn()},
        description=(
            "Execution service: every active book's target weights netted against its current (drifted) holdings into one "
            "daily trade list per symbol: side, firm-level weight change (book weights × the book's capital share), share "
            f"quantity at a {ORDER_NOTIONAL:,.0f} notional and the day's unadjusted close, the volume crossed internally between books, and the book "
            "attribution (JSON)."
        ),
    )
    def orders(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource, target_portfolios: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        capital = {name: book.capital for name, book in books.books().items()}
        out = execution.net_orders(target_portfolios, capital, order_prices(storage, dates[0], dates[-1]), ORDER_NOTIONAL)
        # the crossed total counts the symbols whose book trades cancel out entirely too (they have no order row)
        return metadata.output(context, out, numbers={"orders": len(out), "crossed_weight": execution.crossed_volume(target_portfolios, capital)})

    return [target_portfolios, risk_reports, orders]
