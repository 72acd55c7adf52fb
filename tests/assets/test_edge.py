"""The edge group on the built synthetic graph: tables, invariants of the sizing formula, the comparison."""

import duckdb
import numpy as np

from prometheus_assets.core.edge.config import EdgeConfig
from prometheus_assets.core.edge.scope import DIMENSION_NAMES, dimensions_of, mask_weight
from prometheus_assets.resources.storage import ParquetStore

EDGE_TABLES = {"pattern_scope_stats", "edge_history", "pm_sizing", "edge_sleeve_returns"}


def test_edge_tables_are_duckdb_views_with_integer_masks(full_build):
    con = duckdb.connect(str(full_build / "prometheus.duckdb"), read_only=True)
    assert EDGE_TABLES <= {r[0] for r in con.execute("show tables").fetchall()}
    types = dict(con.execute("select column_name, column_type from (describe pattern_scope_stats)").fetchall())
    assert types["scope_mask"] == "INTEGER"
    n_keys, n_masks = con.execute("select count(*), count(distinct scope_mask) from pattern_scope_stats").fetchone()
    assert n_keys > 0 and n_masks == len(EdgeConfig().masks)


def test_stats_count_every_scored_trade_once_per_mask(full_build):
    store = ParquetStore(str(full_build))
    stats = store.read("pattern_scope_stats")
    trades = store.read("closed_trades", date_column="exit_date")
    for mask, rows in stats.groupby("scope_mask"):
        # every trade with a risk estimate falls in exactly one key of every mask
        assert rows.groupby("pattern_key")["n"].sum().le(trades.groupby("pattern_key").size()).all()
        assert rows["n"].sum() == stats[stats["scope_mask"] == stats["scope_mask"].iloc[0]]["n"].sum(), mask
        assert rows["dimensions"].iloc[0] == "+".join(dimensions_of(int(mask)))
    # edge_raw = delta_rr × reliability × (support + magnitude + time + stability)
    integral = stats[["support_score", "magnitude_score", "time_score", "stability_score"]].sum(axis=1)
    np.testing.assert_allclose(stats["edge_raw"], stats["delta_rr"] * stats["reliability_score"] * integral, rtol=1e-12, atol=1e-15)
    assert stats["decay_mult"].between(0.33, 1.33).all()
    assert (stats.loc[stats["snapshots"] < 18, "decay_state"] == "insufficient_history").all()


def test_pm_sizing_follows_the_one_formula(full_build):
    sizing = ParquetStore(str(full_build)).read("pm_sizing")
    assert set(sizing["book"]) == {"TACTICAL_5d", "ALPHA_COMBO"}
    assert sizing["pm_strength_applied"].between(0.3, 3.0).all()
    assert sizing["exposure_skew_applied"].between(0.33, 1.33).all()
    np.testing.assert_allclose(sizing["max_alloc"], sizing["base_alloc"] * sizing["pm_strength_applied"] * sizing["exposure_skew_applied"], rtol=1e-12)
    np.testing.assert_allclose(sizing["sized_weight"], sizing["raw_weight"] * sizing["pm_strength_applied"] * sizing["exposure_skew_applied"], rtol=1e-12)
    assert (sizing["final_weight"].abs() <= sizing["max_alloc"] + 1e-9).all()
    assert (sizing.loc[sizing["fallback"], "pm_strength_applied"] == 1.0).all()
    assert (~sizing["fallback"]).any(), "some decisions should have learned edge on three years of trades"
    assert sizing["exposure_skew_applied"].nunique() > 1
    assert set(sizing["scope"].iloc[0].split("|")) and all(f"{d}=" in sizing["scope"].iloc[0] for d in DIMENSION_NAMES)


def test_sized_books_are_compared_in_sleeve_metrics(full_build):
    metrics = ParquetStore(str(full_build)).read("sleeve_metrics")
    sized = metrics[metrics["edge_sizing"] & (metrics["scope"] == "overall")]
    assert set(sized["config_id"]) == {"TACTICAL_5d.weighted_average.edge", "ALPHA_COMBO.rank_average.edge"}
    plain = metrics[metrics["configured"] & ~metrics["edge_sizing"] & (metrics["scope"] == "overall")]
    assert set(sized["book"]) <= set(plain["book"])
    assert np.isfinite(sized["sharpe_ratio"]).all()
    returns = ParquetStore(str(full_build)).read("edge_sleeve_returns")
    plain_returns = ParquetStore(str(full_build)).read("sleeve_returns")
    # each sized book runs from its own first trade (no earlier than its plain twin's) to the same last day
    for cid, rows in returns.groupby("config_id"):
        twin = plain_returns[plain_returns["config_id"] == cid.removesuffix(".edge")]
        assert set(rows["date"]) <= set(twin["date"]) and rows["date"].max() == twin["date"].max(), cid


def test_mask_weights_follow_the_power_law():
    cfg = EdgeConfig()
    total = len(DIMENSION_NAMES)
    for mask in cfg.masks:
        assert mask_weight(mask) == (len(dimensions_of(mask)) / total) ** 0.5
    weights = {"market_regime": 3.0, "intent": 1.0}
    both = mask_weight(cfg.masks[7], weights, 0.5)  # market_regime + intent
    assert both == ((3.0 + 1.0) / (total - 2 + 4.0)) ** 0.5
