"""Stability group: ``stability_vectors`` and ``soft_target_classes`` (daily).

Seed concept: Prometheus v2 §1.4 Stability / Soft Target Space (STAB) — StabilityVector per
(entity_type, entity_id, as_of_date) and its SoftTargetState class.
"""

import dagster as dg
import pandas as pd

from prometheus_assets.assets import history, metadata, plots
from prometheus_assets.core.frames import equal_weight_market
from prometheus_assets.core import stability as stab
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource

GROUP = "stability"
OWNERS = ["team:prometheus-risk"]
META = {"partition_column": "as_of_date"}
#: Sessions read before each range: the 63-session window plus the 252-session drawdown peak.
LOOKBACK_SESSIONS = 63 + 252


def _regime_labels(storage: StorageResource, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series | None:
    if not storage.store().exists("regime_states"):
        return None
    states = history.read(storage, "regime_states", start, end, date_column="as_of_date")
    return states.set_index("as_of_date")["regime_label"]


def stability_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags={"layer": "stability"},
        kinds={"parquet"}, code_version="4", metadata=META, deps=["returns_daily", "prices_daily"],
        description=(
            "StabilityVector(instrument, as_of_date): components in [0, 1] (1 = stable) — volatility, drawdown "
            "(from the 252-session peak), trend, liquidity (NaN without volumes), tail risk (5% expected "
            "shortfall), correlation to the market — each a fixed documented transform over a trailing 63-session "
            "window, and fragility_index = weighted mean of (1 − component). Seed: Prometheus v2 §1.4."
        ),
    )
    def stability_vectors(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        panels = history.market_panels(storage, history.lookback_start(dates[0], LOOKBACK_SESSIONS), dates[-1], closes=True)
        vectors = stab.stability_vectors(panels["returns"], equal_weight_market(panels["returns"]), panels["volumes"], panels["prices"],
                                         closes=panels["closes"])
        vectors = vectors[vectors["date"] >= dates[0]].rename(columns={"date": "as_of_date"}).reset_index(drop=True)
        return dg.Output(vectors, metadata={"mean_fragility": float(vectors["fragility_index"].mean()) if len(vectors) else 0.0})

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags={"layer": "stability"},
        kinds={"parquet"}, code_version="1", metadata=META, deps=["regime_states"],
        ins={"stability_vectors": dg.AssetIn()},
        description=(
            "SoftTargetState(instrument, as_of_date): class STABLE / WATCH / FRAGILE / TARGETABLE / BREAKER "
            "from the stability vector with regime-dependent thresholds (higher in CRISIS / RISK_OFF so a "
            "market-wide selloff does not mark everything BREAKER), the rule that fired and each component's "
            "contribution (shares summing to 1). Rules: prometheus_assets/core/stability.py and the README."
        ),
    )
    def soft_target_classes(context: dg.AssetExecutionContext, storage: StorageResource, stability_vectors: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        labels = _regime_labels(storage, dates[0], dates[-1])
        states = stab.soft_target_states(stability_vectors.rename(columns={"as_of_date": "date"}), labels)
        states = states.rename(columns={"date": "as_of_date"})
        counts = states.groupby(["as_of_date", "soft_target_class"]).size().unstack(fill_value=0)
        counts = counts.reindex(columns=list(stab.SOFT_TARGET_CLASSES), fill_value=0)
        totals = states["soft_target_class"].value_counts().reindex(list(stab.SOFT_TARGET_CLASSES), fill_value=0)
        monthly = counts.resample("ME").mean() if len(counts) else counts
        return metadata.output(context, states, numbers={"share_fragile_or_worse": float(totals[["FRAGILE", "TARGETABLE", "BREAKER"]].sum() / max(len(states), 1))}, pictures={
            "rows_by_class": dg.MetadataValue.json({k: int(v) for k, v in totals.items()}),
            "class_counts": plots.stacked_counts(monthly, "Soft-target classes (monthly average count)"),
        })

    return [stability_vectors, soft_target_classes]
