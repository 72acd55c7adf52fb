"""The one ``Definitions`` object of the Prometheus code location.

``build_definitions(settings)`` assembles assets, checks and resources for any settings (tests use
it with temporary roots); ``defs`` is what ``dagster dev`` / ``make ui`` / ``make run`` load,
configured from the environment (see :mod:`prometheus_assets.settings`).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from prometheus_assets.assets.allocator import AllocatorResource, allocator_assets, freeze_allocator_baseline
from prometheus_assets.assets.assessment import assessment_assets
from prometheus_assets.assets.backtest import backtest_assets
from prometheus_assets.assets.canonical import canonical_assets
from prometheus_assets.assets.edge import edge_assets
from prometheus_assets.assets.encoders import encoder_assets
from prometheus_assets.assets.meta import meta_assets
from prometheus_assets.assets.portfolio import portfolio_assets
from prometheus_assets.assets.profiles import profile_assets
from prometheus_assets.assets.regime import regime_assets
from prometheus_assets.assets.stability import stability_assets
from prometheus_assets.assets.universe import universe_assets
from prometheus_assets.operations import build_eod_sensor, eod_job, eod_schedule
from prometheus_assets.partitions import trading_day_partitions
from prometheus_assets.resources import MarketDataResource, ParquetIOManager, StorageResource
from prometheus_assets.resources.books import BooksResource
from prometheus_assets.resources.edge import EdgeResource
from prometheus_assets.settings import Settings


def whole_history_deps_on_newest_partition(assets: list) -> list:
    """Map every dep of an unpartitioned asset on a daily-partitioned one with ``LastPartitionMapping``.

    Why: an unpartitioned table (edge statistics, sleeve metrics, the meta selection, the
    assessment models, ...) is rebuilt or continued from the newest day of its inputs. Under
    Dagster's default mapping (all partitions), every step of such an asset first lists every
    partition key of each daily dep to look up data versions (``DataVersionCache``; ~0.4 s per
    dep at 9,300 sessions): ~36 lists, several seconds per end-of-day run, growing with history.
    With the newest-partition mapping the lookup reads one key. Execution order is unchanged:
    the EOD job, ``make run`` and job backfills run the whole graph in one run in topological
    order. (An asset backfill from the asset graph that stops short of the newest day may start
    these assets before its range finishes; backfill the ``eod_job`` instead, as the README says.)
    """
    partitioned = {key for a in assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None for key in a.keys}

    def newest(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.partitions_def is not None:
            return spec
        return spec.replace_attributes(deps=[
            dg.AssetDep(d.asset_key, partition_mapping=dg.LastPartitionMapping()) if d.asset_key in partitioned and d.partition_mapping is None else d
            for d in spec.deps
        ])

    return [a.map_asset_specs(newest) if isinstance(a, dg.AssetsDefinition) and a.partitions_def is None else a for a in assets]


def build_definitions(settings: Settings) -> dg.Definitions:
    """All assets, checks and resources for ``settings``."""
    market_data = MarketDataResource(
        source=settings.source,
        synthetic_assets=settings.synthetic_assets,
        synthetic_seed=settings.synthetic_seed,
        start=settings.start,
        end=settings.end,
    )
    first_day, _ = market_data.get().span()
    daily = trading_day_partitions(pd.Timestamp(first_day))
    return dg.Definitions(
        assets=whole_history_deps_on_newest_partition([
            *canonical_assets(daily),
            *encoder_assets(daily),
            *regime_assets(daily),
            *stability_assets(daily),
            *profile_assets(daily),
            *assessment_assets(daily),
            *universe_assets(daily),
            *portfolio_assets(daily),
            *backtest_assets(daily),
            *meta_assets(daily),
            *allocator_assets(daily),
            *edge_assets(),
        ]),
        jobs=[freeze_allocator_baseline, eod_job],
        sensors=[build_eod_sensor(settings)],
        schedules=[eod_schedule],
        resources={
            "io_manager": ParquetIOManager(home=settings.home),
            "storage": StorageResource(home=settings.home),
            "market_data": market_data,
            "books": BooksResource(directory=settings.sleeves),
            "allocator": AllocatorResource(),
            "edge": EdgeResource(),
        },
    )


defs = build_definitions(Settings.from_env())

__all__ = ["build_definitions", "defs"]
