"""Regime group: ``regime_states`` (daily) and ``regime_transitions``.

Seed concept: Prometheus v2 §1.3 Regime Space — RegimeState(region, as_of_date) with
regime_label in {CRISIS, RISK_OFF, CARRY, NEUTRAL}, regime_embedding and confidence, derived
from market-level numeric embeddings by a NumericRegimeModel.
"""

import dagster as dg
import pandas as pd

from prometheus_assets.assets import history, metadata, plots
from prometheus_assets.core.frames import equal_weight_market, to_wide
from prometheus_assets.core.regime import REGIME_LABELS, regime_pipeline, transitions
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.models import ModelStore

GROUP = "regime"
OWNERS = ["team:prometheus-research"]


def regime_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags={"layer": "regime"},
        kinds={"parquet", "scikit-learn"}, code_version="1", metadata={"partition_column": "as_of_date"},
        deps=["returns_daily"],
        description=(
            "RegimeState(region, as_of_date): regime_label in CRISIS / RISK_OFF / CARRY / NEUTRAL, "
            "regime_embedding (the market-level 63d numeric embedding), confidence in [0, 1], raw label, "
            "distances to the four prototypes, dwell counters, model ids. NumericRegimeModel: a Gaussian "
            "mixture on market embeddings, refit each January on earlier days only; clusters are named by "
            "their economics (vol, drawdown, correlation, trend), so refits cannot swap labels; a minimum "
            "dwell (hysteresis) keeps the label from flickering. Seed: Prometheus v2 §1.3."
        ),
    )
    def regime_states(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        returns = to_wide(history.read(storage, "returns_daily", None, dates[-1]), "return")
        states, models = regime_pipeline(returns)
        store = ModelStore(storage.home)
        states["date"] = pd.to_datetime(states["date"]).astype("datetime64[ns]")  # also when still warming up (no rows)
        in_range = states[(states["date"] >= dates[0]) & (states["date"] <= dates[-1])]
        for m in models:
            if m.model_id in set(in_range["regime_model_id"]):
                store.save("regime_model", m.model_id, m, {"fit_date": m.fit_date, "train_end": m.train_end, "n_train": m.n_train})
        out = in_range.rename(columns={"date": "as_of_date", "z_numeric": "regime_embedding"}).reset_index(drop=True)
        counts = out["regime_label"].value_counts().reindex(list(REGIME_LABELS), fill_value=0)
        market = (1 + equal_weight_market(returns.loc[dates[0]:dates[-1]]).fillna(0)).cumprod()
        return metadata.output(context, out, numbers={
            "share_crisis_or_risk_off": float(counts[["CRISIS", "RISK_OFF"]].sum() / max(len(out), 1)),
            "transitions": int((out["regime_label"] != out["regime_label"].shift()).iloc[1:].sum()) if len(out) else 0,
        }, pictures={
            "days_by_label": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
            "regime_timeline": plots.regime_timeline(out["as_of_date"], out["regime_label"], market),
        })

    @dg.asset(
        group_name=GROUP, owners=OWNERS, tags={"layer": "regime"}, kinds={"parquet"}, code_version="1",
        backfill_policy=SINGLE_RUN, deps=[regime_states], metadata={"point_in_time_column": "date"},
        description=(
            "Regime transitions (region, date, from_label, to_label, confidence): one row per change of the "
            "published label in regime_states. Unpartitioned: rebuilt from the (small) regime history."
        ),
    )
    def regime_transitions(storage: StorageResource) -> dg.Output:
        states = history.read(storage, "regime_states", None, None, date_column="as_of_date")
        out = transitions(states.rename(columns={"as_of_date": "date"}))
        years = max(states["as_of_date"].dt.year.nunique(), 1) if len(states) else 1
        return dg.Output(out, metadata={"transitions": len(out), "per_year": round(len(out) / years, 2)})

    return [regime_states, regime_transitions]
