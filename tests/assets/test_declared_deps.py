"""Every table an asset reads from storage is upstream of it (an ancestor) in the asset graph.

An undeclared read works by luck in one process (steps happen to run in a safe order) and fails
with parallel steps on an empty root ("table ... has no data"). Found for ``strategy_signals``,
which read ``returns_daily`` through ``history.market_panels`` without declaring it.
"""

import inspect
import re

import dagster as dg

from prometheus_assets.definitions import defs

# Helpers that read tables on an asset's behalf: calling one reads these tables.
HELPER_READS = {
    "market_panels": {"prices_daily", "returns_daily"},
    "_prices_wide": {"prices_daily"},
    "load_context": {"prices_daily", "returns_daily", "assessment_scores", "strategy_signals", "regime_states"},
    "regime_labels": {"regime_states"},
    "read_universe": {"universes"},
    "soft_target_class_panel": {"soft_target_classes"},
}


def _body(fn) -> str:
    source = inspect.getsource(fn)
    return source[source.index("def "):]  # the function itself, not the decorator's description


def _ancestors(graph, keys) -> set[str]:
    seen, todo = set(), list(keys)
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return {k.to_user_string() for k in seen}


def test_every_table_read_is_declared_upstream():
    graph = defs.resolve_asset_graph()
    tables = {key.to_user_string() for key in graph.get_all_asset_keys()}
    problems = []
    for assets_def in graph.assets_defs:
        if not isinstance(assets_def, dg.AssetsDefinition) or not assets_def.is_executable:
            continue
        body = _body(assets_def.op.compute_fn.decorated_fn)
        literals = set(re.findall(r'"([a-z0-9_]+)"', body)) & tables
        for helper, reads in HELPER_READS.items():
            if re.search(rf"\b{helper}\(", body):
                literals |= reads
        own = {k.to_user_string() for k in assets_def.keys}
        upstream = _ancestors(graph, assets_def.keys)  # materialized before this asset in any run order
        missing = literals - own - upstream
        if missing:
            problems.append(f"{sorted(own)} reads {sorted(missing)} without depending on it")
    assert not problems, "\n".join(problems)


def test_unpartitioned_assets_depend_on_the_newest_day_of_daily_tables():
    """Under the default all-partitions mapping Dagster lists every partition key of each daily dep
    before every step of an unpartitioned asset (~0.4 s per dep at full history, ~10 s per EOD run,
    growing with history); ``whole_history_deps_on_newest_partition`` maps them to the newest day."""
    graph = defs.resolve_asset_graph()
    checked = 0
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.partitions_def is not None or not node.is_materializable:
            continue
        for parent in node.parent_keys:
            if graph.get(parent).partitions_def is not None:
                assert isinstance(node.partition_mappings.get(parent), dg.LastPartitionMapping), (key, parent)
                checked += 1
    assert checked >= 30, checked
