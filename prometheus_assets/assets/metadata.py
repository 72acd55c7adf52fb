"""Materialization metadata that stays cheap over long partition ranges.

Dagster copies an output's metadata onto the materialization event of *every* partition in a
range run: a 50 KB plot on a 33-year backfill becomes 8,313 copies (measured: a 3 GB event log).
So numbers (charted by the UI across materializations) go on every partition event, while
pictures and tables of a multi-partition run are logged once, as an ``AssetObservation`` of the
asset, visible on its page. A single-partition run (the daily EOD run) carries everything on
its materialization.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg


def is_range(context: dg.AssetExecutionContext | dg.OutputContext) -> bool:
    """Whether the run materializes more than one partition of this asset."""
    if isinstance(context, dg.OutputContext):
        return context.has_asset_partitions and len(context.asset_partition_keys) > 1
    return context.assets_def.partitions_def is not None and len(context.partition_keys) > 1


def output(context: dg.AssetExecutionContext, value: Any, numbers: Mapping[str, Any] | None = None, pictures: Mapping[str, Any] | None = None) -> dg.Output:
    """An ``Output`` whose heavy metadata (``pictures``: plots, tables, JSON) is logged once per range run."""
    numbers = dict(numbers or {})
    pictures = dict(pictures or {})
    if pictures and is_range(context):
        keys = context.partition_keys
        pictures["partitions"] = dg.MetadataValue.text(f"{keys[0]} … {keys[-1]} ({len(keys)})")
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata=pictures))
        return dg.Output(value, metadata=numbers)
    return dg.Output(value, metadata={**numbers, **pictures})
