"""Assessment group: per-horizon datasets, walk-forward models, scores, evaluation; alpha-score strategy signals.

Seed concepts: Prometheus v2 §2.5 Assessment Engine (``expected_return_H(I, t)``, labels) and the
alpha-score strategy layer (StrategySignal, normalisation, IC evaluation).

Targets arrive late: the target of day t is known at t + H. A dataset partition stores the
features only (a stored target would depend on when the partition was built, so re-materializing
it would change its bytes). ``assessment_models`` and ``assessment_evaluation`` join realised
forward returns from ``returns_daily`` at their own run time, so no late target is ever missed and
none is used before it is known (purge + embargo at every fit date).
"""

import dataclasses

import dagster as dg
import pandas as pd

from prometheus_assets.assets import carried_state, evaluation_state, history, plots, upstream_files
from prometheus_assets.core import assessment, book_signals, calendar, strategies, strategy_ic_dates
from prometheus_assets.core.frames import to_wide
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.models import ModelStore

GROUP = "assessment"
OWNERS = ["team:prometheus-research"]
TAGS = {"layer": "assessment"}
HORIZONS = (5, 20, 60)
META = {"partition_column": "as_of_date"}
MODEL_COLUMNS = ["model_id", "scope", "horizon", "kind", "config_id", "fit_date", "train_start", "train_end", "n_train", "sha256"]
#: Parallel processes fitting the yearly models (one BLAS thread each; fits are independent and seeded).
MODEL_JOBS = 2
#: Where strategy_signals keeps the state carried out of each run's last session (one JSON file per session).
STRATEGY_STATE_DIR = "strategies/state"
KINDS = ("hgb", "ridge")


def _dataset_asset(daily: dg.PartitionsDefinition, horizon: int) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"assessment_dataset_{horizon}d", partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP,
        owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="3", metadata=META,
        deps=["returns_daily", "profile_snapshots", "regime_states", "soft_target_classes"], ins={"instruments": dg.AssetIn()},
        description=(
            f"Assessment dataset, horizon {horizon} sessions, scope US_EQ: per (symbol, as_of_date) the inputs known at t "
            "(profile embedding of the latest month-end snapshot, regime one-hot + embedding, stability components and "
            "soft-target class, recent price features, sector). The targets (winsorized forward return over the next "
            f"{horizon} sessions, raw and in excess of the equal-weight universe) are not stored: they are known only "
            "after t, so a stored copy would depend on when the partition was built; fitting and evaluation attach "
            "them from returns_daily as known at their own run (core.assessment.attach_targets). The price features are "
            "fixed-order window sums, so a run reads the returns of its lookback (about a year) only, with the same bits "
            "as a read from the first day."
        ),
    )
    def dataset(context: dg.AssetExecutionContext, storage: StorageResource, instruments: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        returns = _feature_returns(storage, dates[0], dates[-1])
        emitted = returns.loc[returns.index >= dates[0]]
        symbols = {str(c) for c in emitted.columns[emitted.notna().any().to_numpy()]}
        frame = assessment.build_dataset(
            horizon, returns,
            _asof_rows(storage, "profile_snapshots", dates[0], dates[-1], symbols),
            _asof_rows(storage, "regime_states", dates[0], dates[-1], None),
            _asof_rows(storage, "soft_target_classes", dates[0], dates[-1], symbols, key="entity_id"),
            instruments, dates[0], dates[-1],
        )
        # Only what is known at each row's date is stored (see the description).
        stored = frame.drop(columns=list(assessment.TARGETS))
        return dg.Output(stored, metadata={"rows": len(stored), "features": len(assessment.feature_columns(stored))})

    return dataset


def _feature_returns(storage: StorageResource, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """Wide returns a dataset for ``first``…``last`` needs: its price features' lookback before ``first``.

    The features are fixed-order window sums (``core.assessment.price_features``), the same bits
    from this window as from the first day of history, as long as the window holds
    ``PRICE_FEATURE_LOOKBACK`` rows before ``first``; if a gap in the data leaves fewer, or the
    history starts inside the window, everything up to ``last`` is read.
    """
    start = history.lookback_start(first, assessment.PRICE_FEATURE_LOOKBACK + history.LOOKBACK_SLACK)
    returns = to_wide(history.read(storage, "returns_daily", start, last), "return")
    if int((returns.index < first).sum()) < assessment.PRICE_FEATURE_LOOKBACK:
        returns = to_wide(history.read(storage, "returns_daily", None, last), "return")
    return returns


#: Sessions before a run's first day an as-of input (profile snapshots, regime rows) is read from:
#: about three month-ends, so every symbol's latest monthly snapshot is normally inside.
ASOF_LOOKBACK = 63


def _asof_rows(storage: StorageResource, table: str, first: pd.Timestamp, last: pd.Timestamp, symbols: set[str] | None,
               key: str = "symbol") -> pd.DataFrame:
    """The rows of an as-of input (dated ``as_of_date``) the dataset's as-of joins from ``first`` on can pick.

    Those are the rows after ``first`` and the latest one on or before it (per symbol of
    ``symbols`` when given, the symbol in column ``key``; else overall; ``core.assessment`` drops
    older rows before joining). The stability rows (``soft_target_classes``) are joined as of
    each date too: a symbol without a row on a date takes its latest earlier one, so a run must
    see that row however its partition range starts (a daily run read only its own dates, and
    gave NaN where a backfill gave the earlier row). A
    window of :data:`ASOF_LOOKBACK` sessions normally holds them; when it does not (a symbol
    without a recent snapshot, the start of the history), every row up to ``last`` is read, so
    the dataset is the same as from a whole-history read.
    """
    start = history.lookback_start(first, ASOF_LOOKBACK)
    rows = history.read(storage, table, start, last, date_column="as_of_date")
    before = rows[rows["as_of_date"] <= first]
    covered = len(before) > 0 if symbols is None else symbols <= set(before[key].astype(str))
    return rows if covered else history.read(storage, table, None, last, date_column="as_of_date")


def _model_row(horizon: int, kind: str, manifest: dict) -> dict:
    """The ``assessment_models`` row of a stored model, from its manifest (dates as datetime64[ns] values)."""
    def ts(value) -> pd.Timestamp:
        return pd.Timestamp(value).as_unit("ns")

    return {"model_id": manifest["model_id"], "scope": assessment.SCOPE, "horizon": int(horizon), "kind": kind,
            "config_id": manifest["config_id"], "fit_date": ts(manifest["fit_date"]), "train_start": ts(manifest["train_start"]),
            "train_end": ts(manifest["train_end"]), "n_train": int(manifest["n_train"]), "sha256": manifest["sha256"]}


def _walk_forward_models(storage: StorageResource, store: ModelStore, horizon: int, returns_files: upstream_files.TableFiles) -> tuple[list[dict], int, int]:
    """The rows of one horizon's models (both kinds), fitting only what must be fitted.

    Per planned fit date (the first dataset session of each year, from the files' statistics) a
    stored model is reused without reading any row when its manifest's ``training_inputs`` digest
    equals the one recomputed from the current bytes of the files dated before the fit date
    (:func:`assessment.training_inputs_digest`). The other fit dates (new, or an upstream year file
    changed, or no manifest) are planned from the rows dated before the latest of them, exactly as a
    whole-history plan would (training rows are dated before their fit date): a model whose
    training-data fingerprint still matches is kept (its manifest gets the new digest), any other
    is fitted. Returns (rows, fitted now, checked from data).
    """
    table = f"assessment_dataset_{horizon}d"
    described = upstream_files.describe(storage.store(), table, "as_of_date")
    columns = list(described.columns)
    features = [c for c in columns if c.startswith(assessment.FEATURE_PREFIXES)]
    fit_dates = sorted(described.first_dates.values())
    dataset_keys = [(f.year, f.key()) for f in described.files]
    returns_keys = [(f.year, returns_files.first_dates.get(f.year) if f.year is not None else None, f.key()) for f in returns_files.files]
    stored_ids = store.stored_ids("assessment_model")
    rows, fitted_now, checked = [], 0, 0
    headers = {kind: assessment.walk_forward_header(kind, horizon, features) for kind in KINDS}
    inputs = {d: assessment.inputs_before_fit(d, dataset_keys, returns_keys) for d in fit_dates}
    manifests: dict[str, dict[pd.Timestamp, dict]] = {kind: {} for kind in KINDS}
    pending: dict[str, list[pd.Timestamp]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        for d in fit_dates:
            model_id = assessment.model_id_for(horizon, kind, d)
            manifest = store.manifest("assessment_model", model_id) if model_id in stored_ids else None
            if manifest is not None and manifest.get("training_inputs") == assessment.training_inputs_digest(manifest.get("training_fingerprint", ""), headers[kind], inputs[d]):
                manifests[kind][d] = manifest
            else:
                pending[kind].append(d)
    latest = max((d for ds in pending.values() for d in ds), default=None)
    if latest is not None and latest > fit_dates[0]:  # (nothing is dated before the first fit date)
        # Every row a pending fit can train on is dated before the latest pending fit date.
        until = latest - pd.Timedelta(days=1)
        long_returns = history.read(storage, "returns_daily", None, until)
        data = history.read(storage, table, None, until, date_column="as_of_date").reindex(columns=columns)
        if len(data) and len(long_returns):  # else nothing is dated before any pending fit date: none has a model yet
            returns = to_wide(long_returns, "return")
            data = assessment.attach_targets(data, returns, horizon)
            for kind in KINDS:
                if not pending[kind]:
                    continue
                # Plan every fit date up to the latest pending one, not only the pending ones: a
                # fingerprint hashes the rows in chunks ending at the earlier fits' last rows, so
                # it equals the whole-history plan's only with the same earlier fits.
                walk = assessment.plan_walk_forward(data, horizon, [d for d in fit_dates if d <= latest], pd.DatetimeIndex(returns.index), kind=kind, features=features)
                walk = dataclasses.replace(walk, plans=tuple(p for p in walk.plans if p.fit_date in set(pending[kind])))
                stored = {}
                for plan in walk.plans:
                    m = store.manifest("assessment_model", plan.model_id) if store.exists("assessment_model", plan.model_id) else None
                    stored[plan.model_id] = m if m is not None and m.get("training_fingerprint") == plan.fingerprint else None
                checked += len(walk.plans)
                fitted = {m.model_id: m for m in assessment.fit_planned(walk, [p for p in walk.plans if stored[p.model_id] is None], n_jobs=MODEL_JOBS)}
                fitted_now += len(fitted)
                for plan in walk.plans:
                    digest = assessment.training_inputs_digest(plan.fingerprint, headers[kind], inputs[plan.fit_date])
                    manifest = stored[plan.model_id]
                    if manifest is None:
                        manifest = store.save("assessment_model", plan.model_id, fitted[plan.model_id], {
                            "horizon": horizon, "kind": kind, "config_id": walk.config_id, "fit_date": plan.fit_date,
                            "train_start": plan.train_start, "train_end": plan.train_end, "n_train": plan.n_train,
                            "training_fingerprint": plan.fingerprint, "training_inputs": digest})
                    elif manifest.get("training_inputs") != digest:
                        manifest = store.write_manifest("assessment_model", plan.model_id, {**manifest, "training_inputs": digest})
                    manifests[kind][plan.fit_date] = manifest
    for kind in KINDS:
        rows += [_model_row(horizon, kind, manifests[kind][d]) for d in fit_dates if d in manifests[kind]]
    return rows, fitted_now, checked


DAILY_DTYPES = {"horizon": "int64", "as_of_date": "datetime64[ns]", "rank_ic": "float64", "n_names": "int64",
                "quintile_spread": "float64", "top_turnover": "float64"}


def _typed(frame: pd.DataFrame, numeric: dict[str, str], strings: list[str]) -> pd.DataFrame:
    """``frame`` with fixed dtypes, so that a block without rows stores the same schema as one with rows."""
    out = frame.astype(numeric)
    if not len(out):
        out = out.astype({c: "str" for c in strings})
    return out


def _assessment_rows(storage: StorageResource, first: int, last: int, listing: dict, returns_to: int,
                     since: pd.Timestamp | None = None) -> pd.DataFrame:
    """The per-date evaluation rows (every horizon) of the scored dates of years ``first`` … ``last`` (:func:`assessment.evaluate_daily`).

    Reads the scores and regime rows from the latest year file before ``first`` on (the previous
    scored date's top quintile; the latest regime row), the dataset rows of the years and the
    returns of ``first`` … ``returns_to`` (the sessions the forward windows read). Each row
    depends on its own date's inputs only (see :func:`assessment.evaluate_daily`), so it equals
    the row a whole-history computation gives. ``since``: only the rows dated from it (a block's
    tail, :class:`evaluation_state.Tail`), evaluated from the scored date before it on.
    """
    start, end = pd.Timestamp(f"{first}-01-01"), pd.Timestamp(f"{last}-12-31")
    prev = evaluation_state.previous_file(listing["assessment_scores"], first)
    scores = history.read(storage, "assessment_scores", pd.Timestamp(f"{prev.year if prev else first}-01-01"), end, date_column="as_of_date")
    rprev = evaluation_state.previous_file(listing["regime_states"], first)
    regimes = history.read(storage, "regime_states", pd.Timestamp(f"{rprev.year if rprev else first}-01-01"), end, date_column="as_of_date")
    returns = to_wide(history.read(storage, "returns_daily", start, pd.Timestamp(f"{returns_to}-12-31")), "return")
    parts = []
    for horizon in HORIZONS:
        mine = scores[scores["horizon"] == horizon]
        table = f"assessment_dataset_{horizon}d"
        if mine.empty or not any(f.year is not None and first <= f.year <= last for f in listing[table]):
            continue
        data = history.read(storage, table, start, end, date_column="as_of_date")
        lo = start
        if since is not None:
            lo = since
            before = mine.loc[mine["as_of_date"] < since, "as_of_date"]
            evaluated_from = before.max() if len(before) else since  # (the previous scored date: top-quintile turnover)
            mine = mine[mine["as_of_date"] >= evaluated_from]
            data = data[data["as_of_date"] >= evaluated_from]
        daily = assessment.evaluate_daily(mine, assessment.attach_targets(data, returns, horizon), regimes)
        parts.append(daily[(daily["as_of_date"] >= lo) & (daily["as_of_date"] <= end)])
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in {**DAILY_DTYPES, "kind": "str", "regime_label": "str"}.items()})
    rows = pd.concat(parts, ignore_index=True) if parts else empty
    return rows[["horizon", "kind", "as_of_date", "rank_ic", "n_names", "quintile_spread", "top_turnover", "regime_label"]]


def _strategy_rows(storage: StorageResource, first: int, last: int, returns_to: int, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """The per-date strategy ICs (horizons 1 … 60) of the sessions of years ``first`` … ``last`` (:func:`strategy_ic_dates.strategy_ic_by_date`).

    ``since``: only the rows dated from it (a block's tail). The signals and returns are still
    read from the first year's start, so the strategies and symbols are those of the whole block.
    """
    start, end = pd.Timestamp(f"{first}-01-01"), pd.Timestamp(f"{last}-12-31")
    signals = history.read(storage, "strategy_signals", start, end, columns=book_signals.SIGNAL_INPUT_COLUMNS)
    returns = to_wide(history.read(storage, "returns_daily", start, pd.Timestamp(f"{returns_to}-12-31")), "return")
    return strategy_ic_dates.strategy_ic_by_date(signals, returns, since if since is not None else start, end)


def _block(section: str, rows: pd.DataFrame, years: pd.Index | None, year: int) -> pd.DataFrame:
    """The rows of ``year`` (``years``: each row's year; None: all rows are of ``year``) with the block's fixed dtypes (so a block without rows stores the same schema)."""
    mine = (rows if years is None else rows[years == year]).reset_index(drop=True)
    if section == "assessment":
        return _typed(mine, DAILY_DTYPES, ["kind", "regime_label"])
    numeric = {"date": "datetime64[ns]", **{strategy_ic_dates.horizon_column(h): "float64" for h in strategy_ic_dates.DECAY_HORIZONS}}
    return _typed(mine, numeric, ["strategy"])


def _evaluation_rows(storage: StorageResource, listing: dict) -> tuple[pd.DataFrame | None, pd.DataFrame | None, int]:
    """The per-date rows of every year (assessment, strategy), recomputing only the blocks whose upstream files changed.

    See :mod:`prometheus_assets.assets.evaluation_state`. The blocks to recompute of a section are
    computed in one pass over the years from the first to the last of them (a whole history on a
    first run) and split by year. Returns the two tables (blocks in year order, each as read back
    from its stored file, None when a section has no block) and the number of blocks recomputed.
    """
    years = sorted({f.year for f in listing["returns_daily"] if f.year is not None})

    def rows_of(section: str, first: int, last: int, returns_to: int, since: pd.Timestamp | None = None) -> pd.DataFrame:
        if section == "assessment":
            return _assessment_rows(storage, first, last, listing, returns_to, since)
        return _strategy_rows(storage, first, last, returns_to, since)

    def compute(section: str, todo: list[int], reach: dict[int, int], since: dict[int, pd.Timestamp]) -> dict[int, pd.DataFrame]:
        out = {year: _block(section, rows_of(section, year, year, reach[year], since[year]), None, year) for year in since}
        whole = [year for year in todo if year not in since]
        if whole:
            first, last = min(whole), max(whole)
            rows = rows_of(section, first, last, reach[last])
            row_years = pd.DatetimeIndex(rows["as_of_date" if section == "assessment" else "date"]).year
            out.update({year: _block(section, rows, row_years, year) for year in whole})
        return out

    tail = evaluation_state.Tail(
        listing, date_columns={"returns_daily": "date", "strategy_signals": "date", "assessment_scores": "as_of_date",
                               "regime_states": "as_of_date", **{f"assessment_dataset_{h}d": "as_of_date" for h in HORIZONS}},
        block_dates={"assessment": "as_of_date", "strategy": "date"}, groups={"assessment": ["horizon", "kind"], "strategy": ["strategy"]},
        columns={"strategy_signals": list(book_signals.SIGNAL_INPUT_COLUMNS)})
    out, recomputed = evaluation_state.refresh_blocks(
        evaluation_state.BlockStore(storage.store()), years, evaluation_state.SECTIONS, listing["returns_daily"],
        lambda section, year: evaluation_state.block_inputs(section, year, listing), compute, tail=tail)
    return out["assessment"], out["strategy"], recomputed


def _ic_by_regime(by_regime: pd.DataFrame) -> pd.DataFrame:
    """Mean rank IC per regime label (rows) and model (columns ``<horizon>d <kind>``), for the grouped bar chart."""
    wide = by_regime.pivot(index="regime_label", columns=["horizon", "kind"], values="ic_mean").sort_index(axis=1)
    return wide.set_axis([f"{h}d {kind}" for h, kind in wide.columns], axis=1)


def _strategy_state(storage: StorageResource, session: pd.Timestamp) -> strategies.SignalState | None:
    """The strategies' state carried out of ``session`` (None when absent, of another version or other parameters)."""
    raw = storage.store().read_bytes(f"{STRATEGY_STATE_DIR}/{session:%Y-%m-%d}.json")
    state = strategies.SignalState.from_json(raw) if raw is not None else None
    return state if state is not None and state.params == strategies.IndicatorParams() else None


def _prices_wide(storage: StorageResource, start: pd.Timestamp | None, end: pd.Timestamp) -> pd.DataFrame:
    """Wide prices (adjusted close, else close) dated ``start``…``end``, as ``history.market_panels`` builds them."""
    prices = history.read(storage, "prices_daily", start, end)
    return to_wide(prices.assign(price=prices["adj_close"].fillna(prices["close"])), "price")


def assessment_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    datasets = [_dataset_asset(daily, h) for h in HORIZONS]

    @dg.asset(
        group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet", "scikit-learn"}, code_version="1",
        backfill_policy=SINGLE_RUN, deps=[*(d.key for d in datasets), "returns_daily"], metadata={"point_in_time_column": "fit_date"},
        description=(
            "Assessment_US_EQ_<H> models, walk-forward: an expanding window refit on the first session of each year, "
            "training only on rows whose target window (plus a 5-session embargo) ends before the fit date (a seeded "
            f"sample of {assessment.MAX_TRAIN_ROWS:,} of them when the window holds more); a "
            "HistGradientBoostingRegressor against a Ridge baseline per horizon. One row per fitted model (config id, "
            "training span, artifact sha256); artifacts under models/assessment_model/, loaded only after their hash "
            "is checked. A stored model whose training-data fingerprint (sha256 of its configuration and training rows) "
            "matches is reused instead of refitted, so the daily run fits nothing between two fit dates. The daily run "
            "reads no dataset row for that: a model's manifest also records the sha256 of the stored year files dated "
            "before its fit date (all its training rows come from them), bound to its fingerprint; while those files "
            "are unchanged the model is reused, and only the fit dates whose files changed (or new ones) are planned "
            "and checked from the rows."
        ),
    )
    def assessment_models(storage: StorageResource) -> dg.Output:
        store = ModelStore(storage.home)
        returns = upstream_files.describe(storage.store(), "returns_daily", "date")
        rows = []
        fitted_now = checked = 0
        for horizon in HORIZONS:
            more, fitted, seen = _walk_forward_models(storage, store, horizon, returns)
            rows += more
            fitted_now += fitted
            checked += seen
        table = pd.DataFrame(rows, columns=MODEL_COLUMNS)  # no rows while warming up, but a schema
        return dg.Output(table, metadata={"models": len(table), "fitted_this_run": fitted_now, "reused": len(table) - fitted_now,
                                          "checked_from_data": checked})

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet"},
        code_version="1", metadata=META, ins={"assessment_models": dg.AssetIn()}, deps=[d.key for d in datasets],
        description=(
            "Assessment scores per (symbol, as_of_date, horizon, model kind): expected return from the model in force on "
            "that date (fitted strictly before it), cross-sectional z-score, and a label strong_buy / buy / hold / sell / "
            "short by score quantile."
        ),
    )
    def assessment_scores(context: dg.AssetExecutionContext, storage: StorageResource, assessment_models: pd.DataFrame) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        store = ModelStore(storage.home)
        parts = []
        for horizon in HORIZONS:
            data = history.read(storage, f"assessment_dataset_{horizon}d", dates[0], dates[-1], date_column="as_of_date")
            # only the models in force somewhere in the range (the daily run loads one per kind),
            # checked against the manifest and against the sha256 recorded in assessment_models
            fitted = assessment.models_in_force(assessment_models[assessment_models["horizon"] == horizon], dates[0], dates[-1]) if len(assessment_models) else assessment_models
            models = [store.load("assessment_model", row.model_id, sha256=row.sha256) for row in fitted.itertuples()]
            for kind in ("hgb", "ridge"):
                parts.append(assessment.score(data, [m for m in models if m.kind == kind]))
        scores = pd.concat(parts, ignore_index=True)
        return dg.Output(scores, metadata={"scored_rows": len(scores)})

    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet"},
        code_version="2", deps=["prices_daily"],
        description=(
            "StrategySignal per (date, symbol, strategy): alpha_score in [-1, 1], confidence in [0, 1], horizon_days, "
            "volatility_adjusted, metadata (indicator values and thresholds, JSON) for Bollinger-band mean reversion, "
            "MACD + RSI confluence and cross-sectional 12-1 momentum rank (formulas in "
            "prometheus_assets/core/strategies.py); prices dated ≤ the signal's date only. Incremental: the run for "
            f"days A…B continues from the state carried out of the session before A ({STRATEGY_STATE_DIR}/<date>.json "
            "under the storage root: each symbol's bar count, last 252 prices and exact EMA states) and reads prices "
            "of A…B only; without that state it replays from the first day. Both give the same bytes."
        ),
    )
    def strategy_signals(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        state = _strategy_state(storage, calendar.previous_session(dates[0]))
        # MACD and RSI are exponential averages with infinite memory: they continue from the exact
        # carried state, or (no state) are replayed from the first day, never restarted at a lookback.
        # The state holds every bar dated up to the previous session, so read what is dated after it.
        start = calendar.first_owned_day(dates[0]) if state is not None else None
        signals, after = strategies.advance_signals(_prices_wide(storage, start, dates[-1]), state, since=dates[0])
        storage.store().write_text(f"{STRATEGY_STATE_DIR}/{dates[-1]:%Y-%m-%d}.json", after.to_json())
        # States dated inside the range were carried out of the rows just replaced: a later run of one of
        # those days alone would continue from them (as carried_state.save drops them for the other assets).
        carried_state.drop_inside(storage, "strategy_signals", dates[0], dates[-1], directory=STRATEGY_STATE_DIR)
        return dg.Output(signals, metadata={
            "signals": len(signals),
            "prices_from": "carried state" if state is not None else "first day (no carried state: full replay)",
        })

    @dg.asset(
        group_name=GROUP, owners=OWNERS, tags=TAGS, kinds={"parquet"}, code_version="1", backfill_policy=SINGLE_RUN,
        deps=[assessment_scores, strategy_signals, "returns_daily", "regime_states"],
        description=(
            "Out-of-sample evaluation: rank IC (Spearman per date) of assessment scores and strategy alpha scores against "
            "realised forward returns — IC mean, IC IR, t-stat, hit rate, quintile spread, top-bucket turnover — overall, "
            "by regime label and by first/second half; strategy alpha decay (IC vs horizon 1..60). Also written to "
            "reports/assessment_ic.md under the storage root. Incremental: a per-date IC is final once its forward window "
            "is known, so the per-date rows are kept in yearly blocks under state/assessment_evaluation/ with the sha256 of "
            "the upstream year files each was computed from; a run recomputes only the blocks whose inputs changed (the "
            "newest year, or any year whose upstream partitions were re-materialized with other bytes) and summarises the "
            "stored rows, which gives the same tables as a whole-history computation."
        ),
    )
    def assessment_evaluation(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.Output:
        store = storage.store()
        tables_read = ["assessment_scores", "strategy_signals", "returns_daily", "regime_states", *(f"assessment_dataset_{h}d" for h in HORIZONS)]
        listing = {t: upstream_files.file_digests(store, t) for t in tables_read}
        daily_rows, strategy_rows, recomputed = _evaluation_rows(storage, listing)
        tables = {}
        for horizon in HORIZONS:
            daily = daily_rows[daily_rows["horizon"] == horizon] if daily_rows is not None else None
            if daily is None or daily.empty:
                # no scored date of this horizon: the tables of an empty evaluation, as the whole-history code gives them
                empty_scores = pd.DataFrame({c: pd.Series(dtype=object) for c in assessment.SCORE_COLUMNS})
                empty_data = pd.DataFrame({c: pd.Series(dtype=object) for c in ["as_of_date", "symbol", "horizon", "target_excess"]})
                newest = evaluation_state.previous_file(listing["regime_states"], 10_000)
                regimes = history.read(storage, "regime_states", pd.Timestamp(f"{newest.year}-01-01"), None, date_column="as_of_date") if newest else pd.DataFrame()
                daily = assessment.evaluate_daily(empty_scores, empty_data, regimes)
            else:
                daily = daily.sort_values(["kind", "as_of_date"], kind="stable").reset_index(drop=True)
            for name, table in assessment.summarise_daily(daily).items():
                tables.setdefault(name, []).append(table)
        result = {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}
        strategy_rows = strategy_rows if strategy_rows is not None else pd.DataFrame(columns=["strategy", "date"])
        strat_ic, decay = strategy_ic_dates.strategy_tables(strategy_rows)
        long = pd.concat([t.assign(section=name) for name, t in result.items()] + [strat_ic.assign(section="strategy_ic"), decay.assign(section="alpha_decay")], ignore_index=True)
        report = assessment.ic_report_markdown(result, strat_ic)
        storage.store().write_text("reports/assessment_ic.md", report)
        by_regime = result.get("by_regime", pd.DataFrame())
        return dg.Output(long, metadata={
            "blocks_recomputed": recomputed,
            "ic_mean_hgb_20d": assessment.headline_ic(result.get("overall"), horizon=20, kind="hgb"),
            "ic_table": dg.MetadataValue.md(report),
            "ic_by_regime": plots.grouped_bar_chart(_ic_by_regime(by_regime), "Out-of-sample rank IC by regime", "mean rank IC") if len(by_regime) else dg.MetadataValue.text("no out-of-sample scores yet"),
        })

    return [*datasets, assessment_models, assessment_scores, strategy_signals, assessment_evaluation]
