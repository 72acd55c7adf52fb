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
        assets=[
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
        ],
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
