"""Regime group: ``regime_states`` (daily) and ``regime_transitions``.

Seed concept: Prometheus v2 §1.3 Regime Space — RegimeState(region, as_of_date) with
regime_label in {CRISIS, RISK_OFF, CARRY, NEUTRAL}, regime_embedding and confidence, derived
from market-level numeric embeddings by a NumericRegimeModel.
"""

import dagster as dg
import pandas as pd

from prometheus_assets.assets import book_inputs, history, metadata, plots
from prometheus_assets.core.frames import equal_weight_market, to_wide
from prometheus_assets.core import regime as rg
from prometheus_assets.core.regime import REGIME_LABELS, transitions
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.models import ModelStore

GROUP = "regime"
OWNERS = ["team:prometheus-research"]
MODEL_KIND = "regime_model"
#: Sessions the regime timeline of a run shows at least (ending on its last day): about a year.
TIMELINE_SESSIONS = 252


def _models(store: ModelStore, features: pd.DataFrame, plans: list[rg.RegimeFitPlan], spec: rg.RegimeSpec) -> tuple[list[rg.FittedRegimeModel], int]:
    """The planned models: a stored one when its training-data fingerprint matches (loaded after its
    sha256 is checked against its manifest), else fitted now and stored. Returns (models, fitted now)."""
    out, fitted = [], 0
    for plan in plans:
        model = None
        fingerprint = rg.training_fingerprint(features, plan, spec)
        if store.exists(MODEL_KIND, plan.model_id):
            manifest = store.manifest(MODEL_KIND, plan.model_id)
            if manifest.get("training_fingerprint") == fingerprint:
                loaded = store.load(MODEL_KIND, plan.model_id, sha256=manifest["sha256"])
                if isinstance(loaded, rg.FittedRegimeModel) and loaded.model_id == plan.model_id and loaded.fit_date == plan.fit_date:
                    model = loaded
        if model is None:
            model = rg.fit_planned(features, plan, spec)
            store.save(MODEL_KIND, plan.model_id, model, {
                "fit_date": plan.fit_date, "train_start": plan.train_start, "train_end": plan.train_end,
                "n_train": plan.n_train, "training_fingerprint": fingerprint})
            fitted += 1
        out.append(model)
    return out, fitted


def timeline_labels(storage: StorageResource, run_labels: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The (as_of_date, regime_label) rows a run's timeline shows, and its first day.

    The run's own rows (``run_labels``, ``first`` … ``last``), preceded by the stored labels of
    the sessions before ``first`` so that at least :data:`TIMELINE_SESSIONS` sessions ending on
    ``last`` are shown: a daily run's single bar says nothing. Only two columns are read.
    """
    shown_from = history.shown_from(first, last, TIMELINE_SESSIONS)
    if shown_from >= first or not storage.store().exists("regime_states"):
        return run_labels, shown_from
    before = book_inputs.regime_labels(storage, first - pd.Timedelta(days=1), shown_from).reset_index()
    return pd.concat([before, run_labels], ignore_index=True), shown_from


def transitions_from(labels: pd.DataFrame, first: pd.Timestamp) -> int:
    """How many times the published label changed on days from ``first`` on (``labels``: as_of_date, regime_label).

    :func:`~prometheus_assets.core.regime.transitions`' definition: rows without a label (the
    warm-up) are no change, and a change on ``first`` counts against the last label before it
    (the stored rows :func:`timeline_labels` puts before a daily run's own).
    """
    frame = labels.rename(columns={"as_of_date": "date"}).assign(region="", confidence=float("nan"))
    return int((transitions(frame)["date"] >= first).sum())


def regime_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags={"layer": "regime"},
        kinds={"parquet", "scikit-learn"}, code_version="3", metadata={"partition_column": "as_of_date"},
        deps=["returns_daily"],
        description=(
            "RegimeState(region, as_of_date): regime_label in CRISIS / RISK_OFF / CARRY / NEUTRAL, "
            "regime_embedding (the market-level 63d numeric embedding), confidence in [0, 1], raw label, "
            "distances to the four prototypes, dwell counters, model ids. NumericRegimeModel: a Gaussian "
            "mixture on market embeddings, refit each January on earlier days only; clusters are named by "
            "their economics (vol, drawdown, correlation, trend), so refits cannot swap labels; a minimum "
            "dwell (hysteresis) keeps the label from flickering. Incremental: a stored model is reused when its "
            "training-data fingerprint matches, and the hysteresis is carried from the stored row of the previous "
            "state day (checked against a recomputation of that day), else replayed from the first day. "
            "The regime_timeline picture shows the run's days and at least the last year. "
            "Seed: Prometheus v2 §1.3."
        ),
    )
    def regime_states(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        spec = rg.RegimeSpec()
        # The features need the history from the first day: drawdown_from_peak is expanding and the
        # rolling moments are computed from the start, and the models are fitted on every earlier row.
        # Cheap (~0.1 s for 33 years of 20 symbols); the fits and the replay are what is avoided below.
        returns = to_wide(history.read(storage, "returns_daily", None, dates[-1]), "return")
        features = rg.regime_features(returns, spec)
        plans = rg.plan_regime_fits(features, spec)
        earlier = rg.regime_row_dates(features, plans)
        earlier = earlier[earlier < dates[0]]
        store = ModelStore(storage.home)
        out, fitted, carried = None, 0, False
        if len(earlier) and storage.store().exists("regime_states"):
            # Carry the hysteresis from the stored row of the last state day before the range: only
            # the models in force from that day on are needed (the daily run: one, or two in January).
            previous = history.read(storage, "regime_states", earlier[-1], earlier[-1], date_column="as_of_date")
            if len(previous) == 1:
                models, fitted = _models(store, features, rg.plans_in_force(plans, earlier[-1], dates[-1]), spec)
                row = previous.rename(columns={"as_of_date": "date", "regime_embedding": "z_numeric"}).iloc[0]
                out = rg.resume_regime_states(features, models, row, dates[0], dates[-1], spec)
                carried = out is not None
        if out is None:  # no earlier state day, or its row is missing or stale: replay from the first day
            models, fitted_replay = _models(store, features, rg.plans_in_force(plans, None, dates[-1]), spec)
            fitted += fitted_replay
            out, _ = rg.regime_states(features, models, None, dates[-1], spec)
        out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")  # also when still warming up (no rows)
        out = out[(out["date"] >= dates[0]) & (out["date"] <= dates[-1])]
        out = out.rename(columns={"date": "as_of_date", "z_numeric": "regime_embedding"}).reset_index(drop=True)
        counts = out["regime_label"].value_counts().reindex(list(REGIME_LABELS), fill_value=0)
        shown, shown_from = timeline_labels(storage, out[["as_of_date", "regime_label"]], dates[0], dates[-1])
        market = (1 + equal_weight_market(returns.loc[shown_from:dates[-1]]).fillna(0)).cumprod()
        return metadata.output(context, out, numbers={
            "models_fitted_this_run": fitted, "carried_from_stored_row": int(carried),
            "share_crisis_or_risk_off": float(counts[["CRISIS", "RISK_OFF"]].sum() / max(len(out), 1)),
            "transitions": transitions_from(shown, dates[0]),
        }, pictures={
            "days_by_label": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
            "regime_timeline": plots.regime_timeline(shown["as_of_date"], shown["regime_label"], market),
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
        states = history.read(storage, "regime_states", None, None, date_column="as_of_date", columns=["as_of_date", "region", "regime_label", "confidence"])
        out = transitions(states.rename(columns={"as_of_date": "date"}))
        years = max(states["as_of_date"].dt.year.nunique(), 1) if len(states) else 1
        return dg.Output(out, metadata={"transitions": len(out), "per_year": round(len(out) / years, 2)})

    return [regime_states, regime_transitions]
