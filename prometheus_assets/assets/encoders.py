"""Encoders group: the numeric embedding space (``numeric_embeddings``).

Seed concept: Prometheus v2 §1.2 Numeric Embedding Space — ``z_numeric`` per (entity_type,
entity_id, as_of_date, window_spec), built by the numeric encoder over sliding windows.
"""

import dagster as dg
import pandas as pd

from prometheus_assets.assets import history, metadata
from prometheus_assets.core.embedding_space import numeric_embedding_space
from prometheus_assets.core.frames import to_wide
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.models import ModelStore

META = {"partition_column": "as_of_date"}


def encoder_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name="encoders", owners=["team:prometheus-research"],
        tags={"layer": "encoders"}, kinds={"parquet", "scikit-learn"}, code_version="1", metadata=META,
        deps=["returns_daily"],
        description=(
            "Numeric embedding space: z_numeric (16 floats) per (entity_type, entity_id, as_of_date, window_spec) "
            "for each instrument and the market entity US, windows 21d/63d/252d. Trailing-window features "
            "(returns, vol, drawdown, trend, skew, beta; for the market: dispersion, average pairwise "
            "correlation, breadth) standardised and projected by a PCA encoder refit every January on "
            "windows ending strictly before; model_id per row; models stored under models/numeric_encoder. "
            "Seed: Prometheus v2 §1.2."
        ),
    )
    def numeric_embeddings(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        returns = to_wide(history.read(storage, "returns_daily", None, dates[-1]), "return")
        space = numeric_embedding_space(returns, dates[0], dates[-1])
        store = ModelStore(storage.home)
        variance = []
        for enc in space.encoders:
            store.save("numeric_encoder", enc.model_id, enc.encoder, {
                "fit_date": enc.fit_date, "train_start": enc.train_start, "train_end": enc.train_end, "n_train": enc.n_train})
            variance.append({"model_id": enc.model_id, "train_end": enc.train_end.date(), "n_train": enc.n_train,
                             "explained_variance_top3": round(float(enc.encoder.explained_variance_ratio_[:3].sum()), 3)})
        table = pd.DataFrame(variance).tail(12)
        return metadata.output(context, space.embeddings, numbers={"encoders_used": len(space.encoders)}, pictures={
            "warmup_rows_by_family": dg.MetadataValue.json(space.warmup_rows),
            "explained_variance": dg.MetadataValue.md(table.to_markdown(index=False) if len(table) else "_warming up: no encoder yet_"),
        })

    return [numeric_embeddings]
