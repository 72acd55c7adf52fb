"""What the Dagster UI shows for every asset: group, description, owners, tags, code version; checks."""

import dagster as dg
import pytest

from prometheus_assets.definitions import build_definitions
from prometheus_assets.settings import Settings

#: The engine groups of DESIGN.md's layer table. ``edge`` is added by the edge layer's own work and
#: is checked like the others when present.
REQUIRED_GROUPS = {"canonical", "encoders", "regime", "stability", "profiles", "assessment", "universe", "portfolio", "backtest", "meta", "allocator"}
OPTIONAL_GROUPS = {"edge"}
#: DESIGN.md's layer table: every table is a DuckDB view written by an asset of the same name.
DESIGN_TABLES = {
    "canonical": ["instruments", "trading_calendar", "prices_daily", "returns_daily"],
    "encoders": ["numeric_embeddings"],
    "regime": ["regime_states", "regime_transitions"],
    "stability": ["stability_vectors", "soft_target_classes"],
    "profiles": ["profile_snapshots"],
    "assessment": ["assessment_dataset_5d", "assessment_dataset_20d", "assessment_dataset_60d", "assessment_models", "assessment_scores", "assessment_evaluation", "strategy_signals"],
    "universe": ["universes"],
    "portfolio": ["target_portfolios", "risk_reports", "orders"],
    "backtest": ["sleeve_positions", "sleeve_returns", "sleeve_metrics", "closed_trades"],
    "meta": ["meta_orchestrator"],
    "allocator": ["portfolio_returns", "allocator_state_v1", "allocator_regime_v1", "allocator_risk_v1", "allocator_risk_v1_applied", "allocator_two_pass_audit"],
    "edge": ["pattern_scope_stats", "edge_history", "pm_sizing"],
}


def expected_tables(groups: set[str]) -> set[str]:
    """Tables the design requires, given the groups present (edge tables only once the edge group exists)."""
    return {t for group, tables in DESIGN_TABLES.items() if group in REQUIRED_GROUPS or group in groups for t in tables}


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    defs = build_definitions(Settings(home=str(tmp_path_factory.mktemp("ui") / "data")))
    graph = defs.resolve_asset_graph()
    out = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        out[key.to_user_string()] = node.assets_def.specs_by_key[key]
    return out, graph


def test_every_engine_group_is_present(specs):
    by_key, _ = specs
    groups = {s.group_name for s in by_key.values()}
    assert REQUIRED_GROUPS <= groups, f"missing groups: {sorted(REQUIRED_GROUPS - groups)}"
    assert groups <= REQUIRED_GROUPS | OPTIONAL_GROUPS, f"unknown groups: {sorted(groups - REQUIRED_GROUPS - OPTIONAL_GROUPS)}"


def test_every_table_of_the_design_is_an_asset(specs):
    by_key, _ = specs
    groups = {s.group_name for s in by_key.values()}
    missing = expected_tables(groups) - set(by_key)
    assert not missing, f"tables of the design with no asset: {sorted(missing)}"


def test_every_asset_is_described_owned_tagged_and_versioned(specs):
    by_key, _ = specs
    problems = []
    for name, spec in sorted(by_key.items()):
        user_tags = {k: v for k, v in spec.tags.items() if not k.startswith("dagster/")}
        if not spec.group_name or spec.group_name == "default":
            problems.append(f"{name}: no group")
        if len((spec.description or "").strip()) < 60:
            problems.append(f"{name}: description missing or shorter than 60 characters")
        if not spec.owners:
            problems.append(f"{name}: no owners")
        if not user_tags:
            problems.append(f"{name}: no tags besides Dagster's kinds")
        if not spec.code_version:
            problems.append(f"{name}: no code_version (changed code would not show as stale)")
        if not spec.kinds:
            problems.append(f"{name}: no kinds")
    assert not problems, "\n".join(problems)


def test_asset_checks_are_declared_with_descriptions(specs):
    _, graph = specs
    names = {key.name for key in graph.asset_check_keys}
    assert {"no_duplicate_bars", "positive_prices", "no_missing_prices", "on_trading_days", "known_symbols", "returns_within_50pct", "no_stale_prices"} <= names
    for key in graph.asset_check_keys:
        node = graph.get(key.asset_key)
        spec = next(s for s in node.assets_def.check_specs if s.key == key)
        assert spec.description, f"check {key.name} has no description"
    assert {k.asset_key for k in graph.asset_check_keys} >= {dg.AssetKey("prices_daily"), dg.AssetKey("returns_daily")}
