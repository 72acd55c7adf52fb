"""Meta group: ``meta_orchestrator`` and ``sleeve_report``; allocator group: ``portfolio_returns``.

Seed concept: Prometheus v2 Meta-Orchestrator — collect m(config) for every sleeve config, keep
the Pareto-efficient ones, prefer simpler configs when performance is similar, flag configs that
only work in a narrow slice of regimes, select the live sleeves and give them risk budgets. The
selection is walk-forward (re-selected each month end from metrics up to that day) and the
combined book built from it, ``portfolio_returns``, is the baseline the allocator consumes.
"""

import dagster as dg
import pandas as pd

from prometheus_assets.assets import book_inputs, carried_state, history, meta_state, metadata, plots, portfolio_state
from prometheus_assets.core import meta
from prometheus_assets.core.frames import to_wide
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.books import BooksResource

OWNERS = ["team:prometheus-portfolio"]


class CombinedBookConfig(dg.Config):
    """How ``portfolio_returns`` uses the meta-orchestrator's budgets."""

    regime_dependent_budgets: bool = False


def _complexity(configs: dict, config_ids: list[str]) -> pd.Series:
    out = {}
    for config_id in config_ids:
        name, method = config_id.split(".", 1)
        out[config_id] = configs[name].with_overrides({"combination": method}).complexity()
    return pd.Series(out, dtype=float)


#: The sleeve_returns columns the meta assets and the report use (the others are not read).
SLEEVE_PANEL_COLUMNS = ["date", "book", "config_id", "configured", "return", "equity", "turnover"]


def _sleeve_panels(storage: StorageResource, end: pd.Timestamp | None, start: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rows = history.read(storage, "sleeve_returns", start, end, columns=SLEEVE_PANEL_COLUMNS)
    return rows, to_wide(rows, "return", columns="config_id"), to_wide(rows, "turnover", columns="config_id")


#: The walk-forward parameters of ``meta_orchestrator`` (core.meta.walk_forward_selection's defaults).
WALK_FORWARD = {"lookback": 756, "min_history": 252, "frequency": "monthly"}


def _resume(storage: StorageResource, configs: dict, manifest: dict | None, upstream: "meta_state.Upstream", year_rows: "meta_state.YearRows"):
    """The selection continued after the last stored as-of date whose inputs are unchanged (see meta_state), or None.

    Returns ``(selection, sleeve returns window, anchors of the dates computed, manifest entries kept)``.
    """
    if manifest is None or not manifest.get("entries"):
        return None
    names = [str(c) for c in manifest["configs"]]
    expected = meta_state.header(complexity=_complexity(configs, names), **WALK_FORWARD)
    valid, anchor, entries = meta_state.valid_prefix(manifest, expected, upstream, year_rows)
    if anchor is None:
        return None
    start = history.lookback_start(anchor.as_of_date, WALK_FORWARD["lookback"] + history.LOOKBACK_SLACK)
    _, returns, turnover = _sleeve_panels(storage, None, start)
    if set(returns.columns) - set(names) or anchor.as_of_date not in returns.index:
        return None  # a new config (every stored row lacks it) or an inconsistent window: recompute all
    upto = int((returns.index <= anchor.as_of_date).sum())
    if anchor.sessions > upto and upto < WALK_FORWARD["lookback"] - 1:
        return None
    returns = returns.reindex(columns=names)
    turnover = turnover.reindex(index=returns.index, columns=names)
    regimes = book_inputs.regime_labels(storage, None, start)
    new = meta.walk_forward_selection(returns, _complexity(configs, names), regimes, turnover, anchor=anchor, **WALK_FORWARD)
    stored = storage.store().read("meta_orchestrator", date_column="as_of_date")
    if not set(valid) <= set(stored["as_of_date"]):
        return None
    kept_dates = [d for d in valid if d < anchor.as_of_date]
    reused = stored[stored["as_of_date"].isin(kept_dates)]
    parts = [reused]
    if anchor.as_of_date in meta.reselection_dates(returns.index, WALK_FORWARD["frequency"]):
        # still a re-selection date (not yesterday's provisional mid-month row): its next session may be new
        kept_dates.append(anchor.as_of_date)
        at = returns.index.get_loc(anchor.as_of_date)
        following = returns.index[at + 1] if at + 1 < len(returns.index) else pd.NaT
        parts.append(stored[stored["as_of_date"] == anchor.as_of_date].assign(effective_from=following))
    parts.append(new)
    selection = pd.concat(parts, ignore_index=True).sort_values("as_of_date", kind="stable").reset_index(drop=True)
    selection = _canonical_selection(selection)
    dates = sorted(new["as_of_date"].unique()) if len(new) else []
    return selection, returns, meta.selection_anchors(returns, dates, anchor), {f"{d:%Y-%m-%d}": entries[f"{d:%Y-%m-%d}"] for d in kept_dates}


def _canonical_selection(selection: pd.DataFrame) -> pd.DataFrame:
    """The dtypes :func:`core.meta.walk_forward_selection` gives (stored rows and new rows concatenated)."""
    out = selection[list(meta.SELECTION_COLUMNS)].copy()
    for column in ("as_of_date", "effective_from"):
        out[column] = pd.to_datetime(out[column]).astype("datetime64[ns]")
    for column in ("config_id", "simpler_alternative"):
        out[column] = out[column].astype("str")
    for column in ("pareto_efficient", "narrow_slice", "selected"):
        out[column] = out[column].astype("bool")
    return out


def meta_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        group_name="meta", owners=OWNERS, tags={"layer": "meta"}, kinds={"parquet"}, code_version="2", backfill_policy=SINGLE_RUN,
        deps=["sleeve_returns", "regime_states"],
        description=(
            "Walk-forward sleeve selection, re-run at every month end on the trailing 3 years of sleeve returns up to that "
            "day: each config's Sharpe, CAGR, volatility, max drawdown, turnover and Sharpe by regime; the Pareto-efficient "
            "set (Sharpe, drawdown, volatility, turnover); a simpler alternative when one is within 0.1 Sharpe; a narrow-slice "
            "flag (Sharpe ≥ 1 in one regime and ≤ −1 in another); the selected live sleeves with inverse-volatility risk "
            "budgets (≤ 0.6 each) and regime-dependent budgets (halved in regimes where the sleeve loses). Rules: "
            "prometheus_assets/core/meta.py. A daily run reuses the stored as-of dates whose inputs are unchanged "
            "(state/meta_orchestrator/manifest.json) and computes only the later ones from a trailing window."
        ),
    )
    def meta_orchestrator(storage: StorageResource, books: BooksResource) -> dg.Output:
        configs = books.books()
        store = storage.store()
        upstream, year_rows = meta_state.Upstream.of(store), meta_state.YearRows(store)
        manifest = meta_state.load(store) if store.exists("meta_orchestrator") else None
        resumed = _resume(storage, configs, manifest, upstream, year_rows)
        if resumed is not None:
            selection, returns, new_anchors, kept = resumed
        else:
            _, returns, turnover = _sleeve_panels(storage, None)
            regimes = book_inputs.regime_labels(storage, None)
            selection = _canonical_selection(meta.walk_forward_selection(returns, _complexity(configs, list(returns.columns)), regimes, turnover, **WALK_FORWARD))
            dates = sorted(selection["as_of_date"].unique()) if len(selection) else []
            new_anchors, kept = meta.selection_anchors(returns, dates), {}
        names = [str(c) for c in returns.columns]
        entries = {**kept, **{f"{a.as_of_date:%Y-%m-%d}": meta_state.entry(upstream, year_rows, a, names) for a in new_anchors}}
        meta_state.save(store, {"header": meta_state.header(complexity=_complexity(configs, names), **WALK_FORWARD), "configs": names, "entries": entries})
        latest = selection[selection["as_of_date"] == selection["as_of_date"].max()] if len(selection) else selection
        return dg.Output(selection, metadata={
            "selections": int(selection["as_of_date"].nunique()) if len(selection) else 0,
            "computed_this_run": len(new_anchors),
            "reused": len(kept),
            "live_sleeves_now": int(latest["selected"].sum()) if len(latest) else 0,
            "latest_selection": dg.MetadataValue.json({str(k): round(float(v), 4) for k, v in latest.set_index("config_id")["risk_budget"].items() if v > 0}),
        })

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name="allocator", owners=OWNERS, tags={"layer": "allocator"},
        kinds={"parquet"}, code_version="1", deps=["sleeve_returns", "regime_states"], ins={"meta_orchestrator": dg.AssetIn()},
        description=(
            "The combined book's daily return: each sleeve's return times the risk budget of the latest meta-orchestrator "
            "selection effective on that day (made at an earlier month end); equal budgets over the configured books until "
            "the first selection. Equity, drawdown, live sleeves, gross budget. The baseline the allocator scales. A daily run "
            "continues the equity and running peak stored at the previous close (state/portfolio_returns/)."
        ),
    )
    def portfolio_returns(context: dg.AssetExecutionContext, config: CombinedBookConfig, storage: StorageResource, books: BooksResource, meta_orchestrator: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        # continues the equity and peak stored at the previous close (state/portfolio_returns/<day>.json), else from day one
        state = portfolio_state.stored(storage, dates[0], config.regime_dependent_budgets)
        carry, start = None, None
        if state is not None:
            start = history.lookback_start(dates[0], portfolio_state.PLOT_SESSIONS)
            rows, returns, _ = _sleeve_panels(storage, dates[-1], start)
            before = returns.index[returns.index < dates[0]]
            if len(before) and before[-1] == state.carry.date and (returns.index >= dates[0]).any():
                carry = state.carry
                returns = returns.reindex(columns=sorted(set(returns.columns) | set(state.configs)))
                defaults = sorted(set(rows.loc[rows["configured"], "config_id"]) | set(state.defaults))
            else:
                context.log.info(f"stored state of {state.carry.date.date()} is not the session before {dates[0].date()}; replaying from the first day")
                start = None
        if carry is None:
            rows, returns, _ = _sleeve_panels(storage, dates[-1])
            defaults = sorted(rows.loc[rows["configured"], "config_id"].unique())
        regimes = book_inputs.regime_labels(storage, dates[-1], start)
        combined = meta.combine_portfolio(returns, meta_orchestrator, defaults, regimes, config.regime_dependent_budgets, carry=carry)
        contributions = meta.contributions(returns, meta_orchestrator, defaults, regimes, config.regime_dependent_budgets)
        out = combined[combined["date"] >= dates[0]].reset_index(drop=True)
        portfolio_state.save(storage, dates, portfolio_state.PortfolioState(
            meta.portfolio_carry(combined, carry), list(returns.columns), list(defaults), config.regime_dependent_budgets))
        return metadata.output(context, out, numbers={"equity": float(out["equity"].iloc[-1]) if len(out) else 1.0, "resumed_from_state": carry is not None}, pictures={
            "strategy_contribution": plots.png_markdown(plots.contribution_figure(contributions), "Sleeve contributions"),
        })

    return [meta_orchestrator, portfolio_returns, *report_assets()]


def _report_contributions(storage: StorageResource, returns: pd.DataFrame, selection: pd.DataFrame, defaults: list[str]) -> pd.DataFrame:
    """Each sleeve's contribution to the stored combined book, with the budgets ``portfolio_returns`` used.

    ``regime_dependent_budgets`` is ``portfolio_returns``' run config, which this asset does not
    get; the combined book's stored state records the setting of its latest run (a run with the
    other setting replays the whole table, so it holds for every row). Without a state, the default.
    """
    state = carried_state.load_latest_before(storage, portfolio_state.ASSET, pd.Timestamp.max, portfolio_state.PortfolioState.from_json)
    regime_dependent = state is not None and state.regime_dependent
    regimes = book_inputs.regime_labels(storage, None) if regime_dependent else None
    return meta.contributions(returns, selection, defaults, regimes, regime_dependent)


def report_assets() -> list[dg.AssetsDefinition]:
    @dg.asset(
        group_name="meta", owners=OWNERS, tags={"layer": "meta"}, kinds={"parquet", "html"}, code_version="3", backfill_policy=SINGLE_RUN,
        deps=["sleeve_returns", "target_portfolios", "sleeve_metrics", "combination_comparison", "meta_orchestrator", "portfolio_returns", "returns_daily"],
        description=(
            "The sleeve report: a static HTML page under the storage root (reports/sleeves.html) with equity and drawdown "
            "per book, allocation over time, sleeve contributions to the combined book, alpha vs realised return (the "
            f"rebalances of the last {book_inputs.ALPHA_POINTS_SESSIONS} sessions), the combination-method comparison and the latest meta "
            "selection. Long curves are drawn with at most plots.MAX_PLOT_POINTS points each (bucket ends; drawdowns keep "
            "each bucket's trough), so the report costs the same to draw whatever the history. The table lists the report's sections."
        ),
    )
    def sleeve_report(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource) -> dg.Output:
        configs = books.books()
        rows, returns, _ = _sleeve_panels(storage, None)
        # the allocation figure draws the positions held at each month's last session (and the newest one), the
        # scatter the recent rebalances' alphas: neither reads the rest of the 260,000 position rows of 33 years
        dates = pd.DatetimeIndex(rows["date"].unique())
        month_ends = list(pd.Series(dates).groupby(dates.to_period("M")).max())
        held = history.read(storage, "target_portfolios", None, None, columns=["date", "book", "symbol", "target_weight", "sector"], on=month_ends)
        selection = history.read(storage, "meta_orchestrator", None, None, date_column="as_of_date")
        comparison = history.read(storage, "combination_comparison", None, None)
        defaults = sorted(rows.loc[rows["configured"], "config_id"].unique())
        equity = rows[rows["configured"]].pivot(index="date", columns="book", values="equity")
        equity["COMBINED"] = history.read(storage, "portfolio_returns", None, None, columns=["date", "equity"]).set_index("date")["equity"]
        # the scatter shows the recent rebalances only, as sleeve_evaluation's (its cost must not grow with the history)
        since = history.lookback_start(rows["date"].max(), book_inputs.ALPHA_POINTS_SESSIONS) if len(rows) else None
        market = to_wide(history.read(storage, "returns_daily", since, None), "return")
        recent = history.read(storage, "target_portfolios", since, None, columns=["date", "book", "symbol", "target_weight", "alpha", "rebalance"])
        points = book_inputs.alpha_points(recent, market, configs)
        latest = selection[selection["as_of_date"] == selection["as_of_date"].max()] if len(selection) else selection
        sections = [
            ("Equity and drawdown", "<p>Configured books after costs, and the meta-orchestrated combined book.</p>", plots.equity_drawdown_figure(equity)),
            ("Allocation over time", "<p>Gross weight by sector at each month end.</p>", plots.allocation_figure(held[held["target_weight"] != 0])),
            ("Sleeve contributions", "<p>Cumulative budget-weighted return of each live sleeve.</p>", plots.contribution_figure(_report_contributions(storage, returns, selection, defaults))),
            ("Alpha vs realised return", f"<p>Each name bought or held at a rebalance of the last {book_inputs.ALPHA_POINTS_SESSIONS} sessions: the book's alpha against the return over its horizon.</p>", plots.alpha_scatter_figure(points)),
            ("Combination methods", comparison.to_html(index=False, float_format=lambda x: f"{x:.3f}"), None),
            ("Latest meta selection", latest.to_html(index=False, float_format=lambda x: f"{x:.3f}"), None),
        ]
        url = storage.store().write_text("reports/sleeves.html", plots.html_report("Prometheus sleeve report", sections))
        table = pd.DataFrame({"section": [s[0] for s in sections], "has_figure": [s[2] is not None for s in sections]})
        return dg.Output(table, metadata={"report": dg.MetadataValue.path(url)})

    return [sleeve_report]
