"""Encoders group: the numeric embedding space (``numeric_embeddings``).

Seed concept: Prometheus v2 §1.2 Numeric Embedding Space — ``z_numeric`` per (entity_type,
entity_id, as_of_date, window_spec), built by the numeric encoder over sliding windows.
"""

import hashlib
import json

import dagster as dg
import numpy as np
import pandas as pd

from prometheus_assets.assets import history, metadata, upstream_files
from prometheus_assets.core import calendar
from prometheus_assets.core.assessment import inputs_before_fit, training_inputs_digest
from prometheus_assets.core.embedding_space import (
    EmbeddingCarry,
    EmbeddingPlan,
    EmbeddingSpace,
    FamilyPlan,
    embed_planned,
    encoder_header,
    fit_planned_encoders,
    lookback_rows_missing,
    plan_embedding_space,
)
from prometheus_assets.core.encoders import WINDOW_SPECS, FittedEncoder
from prometheus_assets.core.frames import to_wide
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.models import ModelStore

META = {"partition_column": "as_of_date"}
MODEL_KIND = "numeric_encoder"
#: Where the state carried out of each run's last session is kept (one JSON file per session).
STATE_DIR = "state/numeric_embeddings"
#: Sessions of returns a resumed run reads before its first day: the longest feature window plus slack.
LOOKBACK_SESSIONS = max(WINDOW_SPECS.values()) + 20


def _rows_digest(long_returns: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> str:
    """sha256 of the (date, symbol, return) rows dated ``start``…``end``, in (date, symbol) order."""
    rows = long_returns[(long_returns["date"] >= start) & (long_returns["date"] <= end)].sort_values(["date", "symbol"], kind="stable")
    digest = hashlib.sha256()
    digest.update(pd.DatetimeIndex(rows["date"]).astype("datetime64[ns]").asi8.tobytes())
    digest.update("\0".join(map(str, rows["symbol"])).encode())
    digest.update(np.ascontiguousarray(rows["return"].to_numpy(dtype="float64")).tobytes())
    return digest.hexdigest()


def _carry_inputs(carry: EmbeddingCarry, long_returns: pd.DataFrame, files: upstream_files.TableFiles) -> str:
    """Digest binding ``carry`` to the returns rows dated up to its date (which it is a function of).

    Those rows are the year files of earlier years (their sha256) and the rows of the carry's own
    year up to its date (hashed from ``long_returns``, which must hold all of them: that file keeps
    growing after the carry is written, so its bytes cannot be compared). The carry's content is
    part of the digest, so an edited state file is refused too.
    """
    year_start = pd.Timestamp(year=carry.date.year, month=1, day=1)
    earlier = [f.key() for f in files.files if f.year is None or f.year < carry.date.year]
    return training_inputs_digest(_rows_digest(long_returns, year_start, carry.date), {"carry": carry.payload()}, earlier)


def _read_carry(storage: StorageResource, session: pd.Timestamp) -> tuple[EmbeddingCarry, str] | None:
    """The stored carry out of ``session`` and its recorded inputs digest (None when absent or of another version)."""
    raw = storage.store().read_bytes(f"{STATE_DIR}/{session:%Y-%m-%d}.json")
    if raw is None:
        return None
    payload = json.loads(raw)
    carry = EmbeddingCarry.from_payload(payload)
    return (carry, payload.get("inputs", "")) if carry is not None and carry.date == session else None


def _training_inputs(family: FamilyPlan, fit_date: pd.Timestamp, files: upstream_files.TableFiles) -> str:
    """The digest a stored encoder's manifest records: its header and the returns files holding rows dated before ``fit_date``."""
    keys = [(f.year, files.first_dates.get(f.year) if f.year is not None else None, f.key()) for f in files.files]
    return training_inputs_digest("", encoder_header(family, fit_date), inputs_before_fit(fit_date, [], keys))


def _stored_encoders(store: ModelStore, plan: EmbeddingPlan, files: upstream_files.TableFiles) -> dict[str, FittedEncoder] | None:
    """The encoders a resumed plan needs, loaded from the store, or None if one may not be reused.

    A stored encoder is reused without reading its training rows when its manifest records the
    digest (:func:`_training_inputs`) recomputed now from the current returns files: its training
    rows are a function of the rows in those files and of the header (model id, fit date, feature
    version, configuration), so they are the rows a refit would see. The artifact is loaded only
    after its sha256 matches the manifest's.
    """
    stored = store.stored_ids(MODEL_KIND)
    out: dict[str, FittedEncoder] = {}
    for family, fit_date in plan.needed():
        model_id = family.model_id(fit_date)
        if model_id not in stored:
            return None
        manifest = store.manifest(MODEL_KIND, model_id)
        if manifest.get("training_inputs") != _training_inputs(family, fit_date, files):
            return None
        encoder = store.load(MODEL_KIND, model_id, sha256=manifest["sha256"])
        out[model_id] = FittedEncoder(model_id, pd.Timestamp(manifest["fit_date"]), pd.Timestamp(manifest["train_start"]),
                                      pd.Timestamp(manifest["train_end"]), int(manifest["n_train"]), encoder)
    return out


def _resumed(storage: StorageResource, store: ModelStore, dates: pd.DatetimeIndex, files: upstream_files.TableFiles) -> tuple[EmbeddingSpace, pd.DataFrame] | None:
    """The range's space from a lookback window, the carried state and the stored encoders (None: not possible)."""
    if dates[0] <= calendar.CALENDAR_FLOOR:
        return None
    previous = calendar.previous_session(dates[0])
    stored = _read_carry(storage, previous)
    if stored is None:
        return None
    carry, recorded = stored
    # the lookback, and every row of the carry's year (to check the carry against the rows it came from)
    start = min(history.lookback_start(dates[0], LOOKBACK_SESSIONS), pd.Timestamp(year=previous.year, month=1, day=1))
    long_returns = history.read(storage, "returns_daily", start, dates[-1])
    if recorded != _carry_inputs(carry, long_returns, files):
        return None
    returns = to_wide(long_returns, "return")
    if lookback_rows_missing(returns, carry):
        return None
    plan = plan_embedding_space(returns, dates[0], dates[-1], carry)
    encoders = _stored_encoders(store, plan, files)
    if encoders is None:
        return None
    return embed_planned(plan, encoders), long_returns


def encoder_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name="encoders", owners=["team:prometheus-research"],
        tags={"layer": "encoders"}, kinds={"parquet", "scikit-learn"}, code_version="2", metadata=META,
        deps=["returns_daily"],
        description=(
            "Numeric embedding space: z_numeric (16 floats) per (entity_type, entity_id, as_of_date, window_spec) "
            "for each instrument and the market entity US, windows 21d/63d/252d. Trailing-window features "
            "(returns, vol, drawdown, trend, skew, beta; for the market: dispersion, average pairwise "
            "correlation, breadth) standardised and projected by a PCA encoder refit every January on "
            "windows ending strictly before; model_id per row; models stored under models/numeric_encoder. "
            "Incremental: the features are fixed-order window statistics (the same bits from a lookback "
            f"window), so a run for days A…B continues from the state carried out of the session before A "
            f"({STATE_DIR}/<date>.json: the market's level and peak for the expanding drawdown, the latest fit "
            "date per family, bound to the sha256 of the returns it came from), reads returns from "
            f"{LOOKBACK_SESSIONS} sessions before A only, and loads the encoders in force instead of refitting "
            "them when each one's manifest records the sha256 of the returns files dated before its fit date "
            "and those files are unchanged. Otherwise (no state, a new fit date, changed upstream files) it "
            "reads the history from the first day and fits the encoders in force. Both give the same bytes. "
            "Seed: Prometheus v2 §1.2."
        ),
    )
    def numeric_embeddings(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        store = ModelStore(storage.home)
        files = upstream_files.describe(storage.store(), "returns_daily", "date")
        resumed = _resumed(storage, store, dates, files)
        if resumed is not None:
            space, long_returns = resumed
            fitted = 0
        else:
            long_returns = history.read(storage, "returns_daily", None, dates[-1])
            plan = plan_embedding_space(to_wide(long_returns, "return"), dates[0], dates[-1])
            encoders = fit_planned_encoders(plan)
            space = embed_planned(plan, encoders)
            families = {f.model_id(d): (f, d) for f, d in plan.needed()}
            for enc in space.encoders:  # the encoders an emitted row uses (a later run may load them)
                family, fit_date = families[enc.model_id]
                store.save(MODEL_KIND, enc.model_id, enc.encoder, {
                    "fit_date": enc.fit_date, "train_start": enc.train_start, "train_end": enc.train_end, "n_train": enc.n_train,
                    "training_inputs": _training_inputs(family, fit_date, files)})
            fitted = len(encoders)
        state = {**space.carry.payload(), "inputs": _carry_inputs(space.carry, long_returns, files)}
        storage.store().write_text(f"{STATE_DIR}/{dates[-1]:%Y-%m-%d}.json", json.dumps(state, sort_keys=True))
        variance = [{"model_id": enc.model_id, "train_end": enc.train_end.date(), "n_train": enc.n_train,
                     "explained_variance_top3": round(float(enc.encoder.explained_variance_ratio_[:3].sum()), 3)} for enc in space.encoders]
        table = pd.DataFrame(variance).tail(12)
        return metadata.output(context, space.embeddings, numbers={
            "encoders_used": len(space.encoders), "encoders_fitted_this_run": fitted, "resumed_from_state": int(resumed is not None),
        }, pictures={
            "warmup_rows_by_family": dg.MetadataValue.json(space.warmup_rows),
            "explained_variance": dg.MetadataValue.md(table.to_markdown(index=False) if len(table) else "_warming up: no encoder yet_"),
        })

    return [numeric_embeddings]
