"""Books and sleeves on the built graph: views, exact constraints, netting, simulation, meta, overrides, report."""

import json
import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from prometheus_assets.books import load_books
from prometheus_assets.core import portfolio, sleeves
from prometheus_assets.core.backtest import simulate
from prometheus_assets.core.frames import to_wide
from prometheus_assets.resources.storage import ParquetStore
from tests.conftest import run_range, synthetic

BOOK_VIEWS = {
    "universes", "target_portfolios", "risk_reports", "orders", "sleeve_positions", "sleeve_returns", "closed_trades",
    "sleeve_metrics", "sleeve_rolling_metrics", "combination_comparison", "meta_orchestrator", "portfolio_returns", "sleeve_report",
}


def read(home, table, column="date"):
    return ParquetStore(str(home)).read(table, date_column=column)


def test_every_book_table_is_a_duckdb_view_with_rows(full_build):
    con = duckdb.connect(str(full_build / "prometheus.duckdb"), read_only=True)
    assert BOOK_VIEWS <= {r[0] for r in con.execute("show tables").fetchall()}
    for view in BOOK_VIEWS:
        assert con.execute(f"select count(*) from {view}").fetchone()[0] > 0, view
    books = {r[0] for r in con.execute("select distinct book from target_portfolios").fetchall()}
    assert books == {"CORE_20d", "CORE_60d", "TACTICAL_5d", "ALPHA_COMBO"}
    methods = con.execute("select book, count(distinct combination_method) from combination_comparison group by 1").fetchall()
    assert all(n == 4 for _, n in methods) and len(methods) == 4


def test_universe_respects_the_book_rules(full_build):
    books = load_books()
    uni = read(full_build, "universes")
    classes = read(full_build, "soft_target_classes", "as_of_date")[["as_of_date", "entity_id", "soft_target_class"]]
    joined = uni.merge(classes, left_on=["date", "symbol"], right_on=["as_of_date", "entity_id"], how="left", suffixes=("", "_stab"))
    for name, book in books.items():
        rows = joined[joined["book"] == name]
        assert not rows["soft_target_class_stab"].isin(book.universe.exclude_classes).any(), name
        assert (rows["listing_sessions"] >= book.universe.min_listing_sessions).all()
        for cls, factor in book.universe.deweight_classes.items():
            assert (rows.loc[rows["soft_target_class"] == cls, "class_weight"] == factor).all()
        assert rows.groupby("date")["rank"].apply(lambda r: sorted(r) == list(range(1, len(r) + 1))).all()


def test_every_target_portfolio_satisfies_its_constraints(full_build):
    books = load_books()
    targets = read(full_build, "target_portfolios")
    sectors = read(full_build, "instruments").set_index("symbol")["sector"]
    checked = 0
    for (day, name), rows in targets[targets["rebalance"]].groupby(["date", "book"]):
        book = books[name]
        weights = rows.set_index("symbol")["target_weight"]
        multiplier = float(rows["size_multiplier"].iloc[0])
        assert portfolio.check_constraints(weights, sectors, book.constraints, multiplier) == [], (day, name)
        if book.long_only:
            assert (weights >= 0).all()
        checked += 1
    assert checked > 100


def test_orders_net_to_the_sum_of_book_targets(full_build):
    capital = {n: b.capital for n, b in load_books().items()}
    targets = read(full_build, "target_portfolios")
    orders = read(full_build, "orders")
    expected = targets.assign(change=(targets["target_weight"] - targets["current_weight"]) * targets["book"].map(capital))
    expected = expected.groupby(["date", "symbol"])["change"].sum()
    expected = expected[expected.abs() > 1e-12]
    got = orders.set_index(["date", "symbol"])["weight_change"]
    assert len(got) > 0
    pd.testing.assert_index_equal(got.index.sort_values(), expected.index.sort_values())
    np.testing.assert_allclose(got.sort_index().to_numpy(), expected.sort_index().to_numpy(), rtol=0, atol=1e-12)
    for row in orders.head(50).itertuples():
        assert abs(sum(json.loads(row.attribution).values()) - row.weight_change) < 1e-12
        assert row.side == ("BUY" if row.weight_change > 0 else "SELL")


def test_sleeve_returns_are_the_simulated_targets_and_positions_agree(full_build):
    books = load_books()
    prices = read(full_build, "prices_daily")
    wide = to_wide(prices.assign(p=prices["adj_close"].fillna(prices["close"])), "p")
    targets = read(full_build, "target_portfolios")
    returns = read(full_build, "sleeve_returns")
    positions = read(full_build, "sleeve_positions")
    for name, book in books.items():
        mine = targets[targets["book"] == name]
        sim = simulate(wide, sleeves.targets_wide(mine, wide.index, wide.columns).dropna(how="all"), book.costs.total_bps)
        stored = returns[(returns["book"] == name) & returns["configured"]].set_index("date")["equity"]
        # the stored sleeve starts at its first (possibly still empty) rebalance: flat at 1.0 until it first trades
        assert (stored[stored.index < sim.index[0]] == 1.0).all()
        np.testing.assert_allclose(stored.reindex(sim.index).to_numpy(), sim["equity"].to_numpy(), rtol=1e-12)
        held = positions[positions["book"] == name]
        np.testing.assert_allclose(held["book_equity"].to_numpy(), stored.reindex(held["date"]).to_numpy(), rtol=1e-12)
        # end-of-day weights of the plan are the simulated holdings (costs solved exactly at each trade)
        one_day = held[held["date"] == held["date"].max()]
        np.testing.assert_allclose(one_day["market_value"].sum() / one_day["book_equity"].iloc[0], one_day["weight"].sum(), rtol=1e-12)


def test_closed_trades_carry_entry_context(full_build):
    trades = read(full_build, "closed_trades", "exit_date")
    assert len(trades) > 20
    assert (trades["exit_date"] > trades["entry_date"]).all()
    assert (trades["holding_sessions"] >= 1).all()
    assert set(trades["side"]) <= {"long", "short"} and "short" in set(trades["side"])  # TACTICAL_5d is long/short
    assert trades["sector"].notna().all() and trades["pattern_key"].str.contains(":").all()
    regimes = read(full_build, "regime_states", "as_of_date").set_index("as_of_date")["regime_label"]
    labelled = trades[trades["entry_date"].isin(regimes.dropna().index)]
    assert len(labelled) > 0
    assert (labelled["regime_label"].to_numpy() == regimes.reindex(labelled["entry_date"]).to_numpy()).all()
    long = trades[trades["side"] == "long"]
    np.testing.assert_allclose(long["return"], long["exit_price"] / long["entry_price"] - 1, rtol=1e-12)


def test_meta_selection_is_point_in_time_and_feeds_portfolio_returns(full_build):
    selection = read(full_build, "meta_orchestrator", "as_of_date")
    assert selection["selected"].any()
    dated = selection.dropna(subset=["effective_from"])
    assert (dated["effective_from"] > dated["as_of_date"]).all()
    budgets = selection.groupby("as_of_date")["risk_budget"].sum()
    assert (budgets <= 1 + 1e-12).all()
    combined = read(full_build, "portfolio_returns")
    used = combined.dropna(subset=["selection_as_of"])
    assert len(used) > 0 and (used["selection_as_of"] < used["date"]).all()
    np.testing.assert_allclose(combined["equity"].to_numpy(), np.cumprod(1 + combined["return"].to_numpy()), rtol=1e-12)


def test_sleeve_metrics_cover_regimes_periods_and_decay(full_build):
    metrics = read(full_build, "sleeve_metrics")
    assert {"overall", "regime", "period", "year"} <= set(metrics["scope"])
    overall = metrics[metrics["scope"] == "overall"]
    assert overall[~overall["edge_sizing"]]["config_id"].nunique() == 16  # 4 books x 4 combination methods
    assert overall[overall["edge_sizing"]]["config_id"].nunique() == 2  # the two edge-sized books
    for col in ("sharpe_ratio", "sortino_ratio", "calmar_ratio", "max_drawdown", "value_at_risk", "turnover", "ic", "ic_1d", "ic_60d"):
        assert col in metrics.columns, col
    rolling = read(full_build, "sleeve_rolling_metrics")
    assert set(rolling["window"]) == {63, 252} and rolling["book"].nunique() == 4


def test_html_report_has_the_pictures(full_build):
    html = (full_build / "reports" / "sleeves.html").read_text()
    for heading in ("Equity and drawdown", "Allocation over time", "Sleeve contributions", "Alpha vs realised return", "Combination methods"):
        assert heading in html
    assert html.count("data:image/png;base64,") == 4


@pytest.mark.slow
def test_launchpad_override_changes_the_run_without_touching_yaml(full_build, tmp_path):
    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    override = {"resources": {"books": {"config": {"overrides": {"CORE_20d": {"combination": "rank_average", "constraints": {"max_position": 0.3}}}}}}}
    run_range(synthetic(home, "2017-03-31"), "2016-03-01", "2016-03-31", selection=["target_portfolios"], run_config=override)
    rows = ParquetStore(str(home)).read("target_portfolios", "2016-03-01", "2016-03-31")
    core = rows[rows["book"] == "CORE_20d"]
    assert set(core["config_id"]) == {"CORE_20d.rank_average"}
    assert set(rows.loc[rows["book"] == "CORE_60d", "config_id"]) == {"CORE_60d.confidence_weighted"}
    assert load_books()["CORE_20d"].combination == "weighted_average"  # the YAML is unchanged


def test_sleeve_metrics_equal_empyrical_on_the_stored_returns(full_build):
    import empyrical

    metrics = read(full_build, "sleeve_metrics")
    returns = read(full_build, "sleeve_returns")
    for config_id in ("CORE_20d.weighted_average", "ALPHA_COMBO.rank_average"):
        r = returns[returns["config_id"] == config_id].set_index("date")["return"].dropna()
        row = metrics[(metrics["config_id"] == config_id) & (metrics["scope"] == "overall")].iloc[0]
        np.testing.assert_allclose(row["sharpe_ratio"], empyrical.sharpe_ratio(r), rtol=1e-10)
        np.testing.assert_allclose(row["sortino_ratio"], empyrical.sortino_ratio(r), rtol=1e-10)
        np.testing.assert_allclose(row["max_drawdown"], empyrical.max_drawdown(r), rtol=1e-10)
        np.testing.assert_allclose(row["cagr"], empyrical.annual_return(r), rtol=1e-10)
        np.testing.assert_allclose(row["annual_volatility"], empyrical.annual_volatility(r), rtol=1e-10)
        np.testing.assert_allclose(row["value_at_risk"], empyrical.value_at_risk(r), rtol=1e-10)


def test_a_book_that_sells_everything_gets_a_risk_report_in_cash(full_build):
    """Regression: risk_reports was fed the non-zero weights only, so a (date, book) whose target weights
    were all 0 (the book sold everything that day) had no report; it is now reported as in cash."""
    targets = read(full_build, "target_portfolios")
    reports = read(full_build, "risk_reports")
    blocks = targets.groupby(["date", "book"])["target_weight"].apply(lambda w: bool((w == 0).all()))
    in_cash = blocks[blocks].index
    assert len(in_cash) > 0  # the fixture has such days (else this test would check nothing)
    reported = set(reports[["date", "book"]].itertuples(index=False, name=None))
    assert set(blocks.index) <= reported
    vol = reports[(reports["section"] == "risk") & (reports["item"] == "ex_ante_volatility")].set_index(["date", "book"])["value"]
    assert (vol.loc[list(in_cash)] == 0.0).all()
