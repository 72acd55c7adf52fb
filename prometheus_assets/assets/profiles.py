"""Profiles group: ``profile_snapshots`` — ProfileSnapshot per issuer at each month end.

Seed concept: Prometheus v2 §1.5 Profile / Issuer Space.

Month-end rows on the daily partitions (not a monthly partitions definition): every layer then
shares one partitioning, so a backfill of the whole graph stays a single run and the EOD run of
a month's last session writes that month's snapshot; other partitions hold no rows.
"""

import dagster as dg
import pandas as pd

from prometheus_assets.assets import book_inputs, history, metadata
from prometheus_assets.core import calendar
from prometheus_assets.core.frames import equal_weight_market
from prometheus_assets.core.profiles import empty_profiles, month_end_dates, profile_snapshots
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import MarketDataResource, StorageResource


def profile_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name="profile_snapshots", partitions_def=daily, backfill_policy=SINGLE_RUN, group_name="profiles", owners=["team:prometheus-research"],
        tags={"layer": "profiles"}, kinds={"parquet", "scikit-learn"}, code_version="4",
        metadata={"partition_column": "as_of_date"},
        deps=["returns_daily", "prices_daily", "regime_states"], ins={"instruments": dg.AssetIn()},
        description=(
            "ProfileSnapshot(issuer_id, as_of_date) on each month's last session: sector/industry, fundamentals "
            "(size, leverage, profitability, quality) used only from their availability date, price-derived "
            "traits (beta, volatility, drawdown depth, liquidity, 12-1 momentum), text reference, "
            "profile_embedding (z-scored structured fields + TF-IDF/TruncatedSVD of the issuer text, fitted on "
            "that date's issuers only), per-regime return and beta traits, risk flags. Seed: Prometheus v2 §1.5."
        ),
    )
    def profile_snapshots_asset(context: dg.AssetExecutionContext, storage: StorageResource, market_data: MarketDataResource, instruments: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        month_ends = month_end_dates(calendar.trading_sessions(dates[0]), complete_through=dates[-1])
        as_of = month_ends[(month_ends >= dates[0]) & (month_ends <= dates[-1])]
        if len(as_of) == 0:
            # Not a month's last session (most daily runs): no snapshot, so nothing to read. This is
            # exactly what profile_snapshots returns for no dates, without loading the whole history.
            return metadata.output(context, empty_profiles(), numbers={"month_ends": 0, "issuers": 0, "embedding_length": 0},
                                   pictures={"text_sources": dg.MetadataValue.json({})})
        panels = history.market_panels(storage, None, dates[-1], closes=True)
        labels = None
        if storage.store().exists("regime_states"):
            labels = book_inputs.regime_labels(storage, dates[-1])
        as_of = as_of[as_of.isin(panels["returns"].index)]
        source = market_data.get()
        snaps = profile_snapshots(
            as_of, instruments, panels["returns"], equal_weight_market(panels["returns"]), panels["prices"], panels["volumes"],
            source.fundamentals(), source.issuer_texts(), labels, closes=panels["closes"],
        )
        return metadata.output(context, snaps, numbers={
            "month_ends": len(as_of),
            "issuers": int(snaps["issuer_id"].nunique()) if len(snaps) else 0,
            "embedding_length": len(snaps["profile_embedding"].iloc[0]) if len(snaps) else 0,
        }, pictures={"text_sources": dg.MetadataValue.json(snaps["text_source"].value_counts().to_dict() if len(snaps) else {})})

    return [profile_snapshots_asset]
