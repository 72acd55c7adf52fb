"""The Assessment engine: per-name expected forward returns, fit walk-forward (scope US_EQ).

Pure domain code (pandas / numpy / scikit-learn; no Dagster, no I/O). Four steps:

1. :func:`build_dataset` — one row per (symbol, as_of_date) with features known at the close of
   ``as_of_date`` (profile embedding, regime, stability vector, price history, sector) and the
   targets realised over the ``horizon`` sessions *after* it (NaN while not yet known).
2. :func:`fit_walk_forward` — an expanding-window model per fit date, trained only on rows whose
   target window closed at least ``embargo`` sessions before the fit date (purge + embargo).
   :func:`plan_walk_forward` lists those fits with a fingerprint of their training data, so a
   stored model with the same fingerprint can be reused instead of refitted. A window of more
   than :data:`MAX_TRAIN_ROWS` rows trains on a seeded sample of them.
3. :func:`score` — every row scored by the model in force on its date, z-scored and labelled
   cross-sectionally.
4. :func:`evaluate` — out-of-sample rank-IC tables (overall, by regime, by period).

Point in time: every feature at t reads inputs dated <= t only (trailing windows on ``returns``,
backward as-of joins on the snapshots). Targets read t+1..t+H and are NaN when t+H is beyond the
data, so a dataset built on inputs truncated at c equals the full one on dates <= c, except that
targets the truncated build could not know yet are NaN there.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from prometheus_assets.core.evaluation import forward_returns, ic_summary, rank_ic
from prometheus_assets.core.frames import trailing_mean_std, trailing_sums
from prometheus_assets.core.regime import REGIME_LABELS

SCOPE = "US_EQ"
HORIZONS: tuple[int, ...] = (5, 20, 60)
SOFT_TARGET_CLASSES: tuple[str, ...] = ("STABLE", "WATCH", "FRAGILE", "TARGETABLE", "BREAKER")
STABILITY_COMPONENTS: tuple[str, ...] = ("volatility", "drawdown", "trend", "liquidity", "tail_risk", "market_correlation")

#: Every feature column starts with one of these (see :func:`feature_columns`).
FEATURE_PREFIXES: tuple[str, ...] = ("prof_", "regime_", "stab_", "px_", "sector_")
TARGETS: tuple[str, ...] = ("target_raw", "target_excess")

#: Cross-sectional winsorisation quantiles applied to both targets, per date.
WINSOR_LOWER, WINSOR_UPPER = 0.01, 0.99

#: Label bands on the cross-sectional score percentile p = (rank − ½) / n (ties share the average
#: rank, hence the label), symmetric: p >= 0.9 strong_buy (top 10 %), p >= 0.7 buy (next 20 %),
#: p <= 0.1 short (bottom 10 %), p <= 0.3 sell (next 20 %), otherwise hold (middle 40 %). Bounds
#: are inclusive (with a 1e-9 tolerance), so top and bottom bands get equally many names for any
#: n: with n = 20 distinct scores exactly 2 / 4 / 8 / 4 / 2; a single name, or an all-tied
#: cross-section, is ``hold``.
LABEL_TOP_BANDS: tuple[tuple[float, str], ...] = ((0.7, "buy"), (0.9, "strong_buy"))
LABEL_BOTTOM_BANDS: tuple[tuple[float, str], ...] = ((0.3, "sell"), (0.1, "short"))
LABELS: tuple[str, ...] = ("strong_buy", "buy", "hold", "sell", "short")

HGB_PARAMS: dict[str, Any] = {
    "max_iter": 100,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "l2_regularization": 1.0,
    "early_stopping": False,
}
RIDGE_ALPHA = 10.0

#: The most training rows one walk-forward fit uses. An expanding window holds every name's rows
#: since the start (3,000 names × 20 years ≈ 15 M rows a horizon), so without a cap the yearly
#: refits of a Y-year build cost ~Y² rows: the largest cost at scale (``bench/scale.py``). Above
#: the cap a fit trains on a seeded uniform sample of its window's rows
#: (:func:`cap_training_rows`); the bundled history (~166 k rows a horizon) never reaches it.
MAX_TRAIN_ROWS = 250_000

DATASET_KEYS: list[str] = ["as_of_date", "symbol", "horizon"]
SCORE_COLUMNS: list[str] = ["as_of_date", "symbol", "horizon", "model_id", "kind", "expected_return", "score", "label"]


# --------------------------------------------------------------------------- dataset
def feature_columns(df: pd.DataFrame) -> list[str]:
    """The feature columns of an assessment dataset, in frame order (those with a :data:`FEATURE_PREFIXES` prefix)."""
    return [c for c in df.columns if str(c).startswith(FEATURE_PREFIXES)]


def _ns(values: Any) -> Any:
    """Dates as datetime64[ns] (pandas 3 may infer other resolutions; as-of joins need equal dtypes)."""
    if isinstance(values, pd.DatetimeIndex | pd.Index):
        return pd.DatetimeIndex(values).astype("datetime64[ns]")
    return pd.to_datetime(values).astype("datetime64[ns]")


def _clean_name(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(name))


def winsorize_cross_section(values: pd.Series, dates: pd.Series, lower: float = WINSOR_LOWER, upper: float = WINSOR_UPPER) -> pd.Series:
    """Clip each date's values to that date's [lower, upper] quantiles (linear interpolation; NaN kept)."""
    keys = dates.to_numpy()
    g = values.groupby(keys)
    # groupby().quantile is vectorised (a per-group lambda was ~60 s on the bundled history) and
    # interpolates linearly as Series.quantile does (equal to rounding, 1e-12 relative: tested).
    q = g.quantile([lower, upper]).unstack()
    lo = pd.Series(keys, index=values.index).map(q[lower])
    hi = pd.Series(keys, index=values.index).map(q[upper])
    return values.clip(lower=lo, upper=hi)


#: Rows of returns before a date that its price features read (the 252-session return and the
#: 12-1 momentum reach back 251 rows); a window with fewer rows before its first date is cut.
PRICE_FEATURE_LOOKBACK = 251


def price_features(returns: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Trailing price features from wide daily simple returns (value at t uses returns dated <= t).

    Returns wide frames keyed by feature name: ``px_ret_{5,21,63,252}`` (compounded return of the
    last k sessions), ``px_vol_{21,63}`` (daily standard deviation), ``px_mdd_21`` (maximum
    drawdown inside the last 21 sessions, as a positive fraction) and ``px_mom_252_21`` (return
    from t−251 to t−21, i.e. 12-month momentum skipping the last month). A window needs at least
    80 % of its sessions traded; missing days count as flat.

    Every value at t is a fixed-order sum over its own window (:func:`frames.trailing_sums`,
    :func:`frames.trailing_mean_std`), so it is the same bits whether the frame starts at the
    first day of history or :data:`PRICE_FEATURE_LOOKBACK` rows before t: a daily run reads a
    bounded window, not the whole history. (pandas' rolling sums and a cumulative-sum drawdown,
    used before, carried rounding from every earlier row.)
    """
    r = returns.astype("float64")
    values = r.to_numpy()
    logs = np.log1p(values)
    present = ~np.isnan(values)
    filled_logs = np.where(present, logs, 0.0)  # missing days are flat
    traded = present.astype("float64")
    out: dict[str, pd.DataFrame] = {}

    def frame(array: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(array, index=r.index, columns=r.columns)

    def enough(k: int) -> np.ndarray:
        return trailing_sums(traded, k) >= math.ceil(0.8 * k)

    for k in (5, 21, 63, 252):
        out[f"px_ret_{k}"] = frame(np.where(enough(k), np.expm1(trailing_sums(filled_logs, k)), np.nan))
    for k in (21, 63):
        out[f"px_vol_{k}"] = frame(trailing_mean_std(values, k, math.ceil(0.8 * k))[1])
    # maximum drawdown inside the last k returns: over the k+1 closing levels t-k..t of the
    # log-wealth path (missing days flat, levels measured from the window's first close), min over
    # u of level_u - running max up to u; rows before the data are flat (the start is a level 0)
    k = 21
    t, n = filled_logs.shape
    padded = np.vstack([np.zeros((k, n)), filled_logs])
    level = np.zeros((t, n))
    running = np.zeros((t, n))
    worst = np.zeros((t, n))
    for j in range(1, k + 1):
        level = level + padded[j : j + t]  # row i: the returns t-k+1 … t-k+j of window i, added in order
        running = np.fmax(running, level)
        worst = np.fmin(worst, level - running)
    out["px_mdd_21"] = frame(np.where(enough(k), -np.expm1(worst), np.nan))
    skip, total = 21, 252
    span = total - skip
    mom_sum = np.full((t, n), np.nan)
    mom_count = np.zeros((t, n))
    if t > skip:
        mom_sum[skip:] = trailing_sums(filled_logs, span)[:-skip]
        mom_count[skip:] = trailing_sums(traded, span)[:-skip]
    out["px_mom_252_21"] = frame(np.where(mom_count >= math.ceil(0.8 * span), np.expm1(mom_sum), np.nan))
    return out


def forward_returns_exact(returns: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """:func:`evaluation.forward_returns`: summed in a fixed order, so bit-identical whether the
    history stops at t+H or later (the point-in-time test). Kept under this name for callers."""
    return forward_returns(returns, horizon)


def _asof(left: pd.DataFrame, right: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Backward as-of join on ``as_of_date`` (latest right row dated <= the left date), keeping left order."""
    left = left.assign(_row=np.arange(len(left))).sort_values("as_of_date", kind="stable")
    right = right.sort_values("as_of_date", kind="stable")
    merged = pd.merge_asof(left, right, on="as_of_date", by=by, direction="backward")
    return merged.sort_values("_row").drop(columns="_row").reset_index(drop=True)


def build_dataset(
    horizon: int,
    returns: pd.DataFrame,
    profiles: pd.DataFrame,
    regimes: pd.DataFrame,
    stability: pd.DataFrame,
    instruments: pd.DataFrame,
    emit_from: pd.Timestamp | str,
    emit_to: pd.Timestamp | str,
) -> pd.DataFrame:
    """The assessment dataset for one horizon: features known at t and targets over t+1..t+H.

    One row per (symbol, as_of_date) with ``emit_from <= as_of_date <= emit_to`` and a return on
    that date. Columns: ``as_of_date, symbol, horizon``, then the features (see
    :func:`feature_columns`; NaN when missing) and ``target_raw, target_excess``.

    Features: ``prof_00..`` the latest profile embedding with as_of_date <= t (per symbol);
    ``regime_CRISIS..regime_NEUTRAL`` one-hot of the latest regime (NaN if none / label None),
    ``regime_confidence``, ``regime_emb_0..2``; ``stab_<component>``, ``stab_fragility_index`` and
    ``stab_class_<SOFT_TARGET>`` one-hot from the latest stability row; ``px_*`` from
    :func:`price_features`; ``sector_<name>`` one-hot over the sorted sector names of
    ``instruments``.

    Targets: ``target_raw`` = compounded return over the H sessions after t
    (:func:`evaluation.forward_returns`'s definition, via :func:`forward_returns_exact`), winsorised per date at the 1st / 99th percentile;
    ``target_excess`` = winsorised raw minus its equal-weight cross-sectional mean that date,
    winsorised again. NaN when t+H is beyond the data (rows kept for live scoring).
    """
    emit_from, emit_to = pd.Timestamp(emit_from), pd.Timestamp(emit_to)
    returns = returns.copy()
    returns.index = _ns(returns.index)
    returns = returns.sort_index()
    returns.columns = [str(c) for c in returns.columns]
    window = returns.loc[(returns.index >= emit_from) & (returns.index <= emit_to)]
    stacked = window.rename_axis(index="as_of_date", columns="symbol").stack(future_stack=True)
    base = stacked[stacked.notna()].index.to_frame(index=False)
    base["as_of_date"] = _ns(base["as_of_date"])
    base = base.sort_values(["as_of_date", "symbol"], kind="stable").reset_index(drop=True)
    base.insert(2, "horizon", int(horizon))
    parts: list[pd.DataFrame] = [base]
    rows = pd.MultiIndex.from_frame(base[["as_of_date", "symbol"]])

    # profile embedding (as-of per symbol)
    prof_cols: list[str] = []
    if len(profiles):
        p = profiles[["symbol", "as_of_date", "profile_embedding"]].copy()
        p["as_of_date"] = _ns(p["as_of_date"])
        p["symbol"] = p["symbol"].astype(str)
        p = _asof_candidates(p, emit_from, by="symbol")
        dim = len(p["profile_embedding"].iloc[0])
        emb = np.vstack([np.asarray(v, dtype="float64") for v in p["profile_embedding"]]) if len(p) else np.empty((0, dim))
        prof_cols = [f"prof_{i:02d}" for i in range(dim)]
        p = pd.concat([p[["symbol", "as_of_date"]].reset_index(drop=True), pd.DataFrame(emb, columns=prof_cols)], axis=1)
        j = _asof(base[["as_of_date", "symbol"]], p, by="symbol")
        parts.append(j[prof_cols])

    # regime (market level, as-of)
    reg = pd.DataFrame(index=base.index)
    if len(regimes):
        rg = regimes.copy()
        rg["as_of_date"] = _ns(rg["as_of_date"])
        rg = _asof_candidates(rg, emit_from, by=None)
        emb = rg["regime_embedding"].map(lambda v: v if isinstance(v, list | tuple | np.ndarray) and len(v) == 3 else [np.nan] * 3)
        rg[["regime_emb_0", "regime_emb_1", "regime_emb_2"]] = np.vstack([np.asarray(v, dtype="float64") for v in emb])
        rg = rg[["as_of_date", "regime_label", "confidence", "regime_emb_0", "regime_emb_1", "regime_emb_2"]]
        j = _asof(base[["as_of_date"]], rg, by=None)
        known = j["regime_label"].notna()
        for lab in REGIME_LABELS:
            reg[f"regime_{lab}"] = (j["regime_label"] == lab).astype("float64").where(known)
        reg["regime_confidence"] = j["confidence"].astype("float64")
        for i in range(3):
            reg[f"regime_emb_{i}"] = j[f"regime_emb_{i}"]
    else:
        for c in [f"regime_{lab}" for lab in REGIME_LABELS] + ["regime_confidence", "regime_emb_0", "regime_emb_1", "regime_emb_2"]:
            reg[c] = np.nan
    parts.append(reg)

    # stability vector (as-of per symbol)
    stab_value_cols = [*STABILITY_COMPONENTS, "fragility_index"]
    st = pd.DataFrame(index=base.index)
    if len(stability):
        s = stability.rename(columns={"entity_id": "symbol"})[["as_of_date", "symbol", *stab_value_cols, "soft_target_class"]].copy()
        s["as_of_date"] = _ns(s["as_of_date"])
        s["symbol"] = s["symbol"].astype(str)
        j = _asof(base[["as_of_date", "symbol"]], s, by="symbol")
        for c in stab_value_cols:
            st[f"stab_{c}"] = j[c].astype("float64")
        known = j["soft_target_class"].notna()
        for cls in SOFT_TARGET_CLASSES:
            st[f"stab_class_{cls}"] = (j["soft_target_class"] == cls).astype("float64").where(known)
    else:
        for c in [f"stab_{c}" for c in stab_value_cols] + [f"stab_class_{cls}" for cls in SOFT_TARGET_CLASSES]:
            st[c] = np.nan
    parts.append(st)

    # price history
    px = pd.DataFrame(index=base.index)
    for name, wide in price_features(returns).items():
        wide = wide.loc[(wide.index >= emit_from) & (wide.index <= emit_to)]  # (stack only the emitted dates)
        px[name] = wide.rename_axis(index="as_of_date", columns="symbol").stack(future_stack=True).reindex(rows).to_numpy()
    parts.append(px)

    # sector one-hot (stable column set: sorted sector names of the registry)
    sector_of = instruments.assign(symbol=instruments["symbol"].astype(str)).drop_duplicates("symbol", keep="last").set_index("symbol")["sector"]
    sectors = sorted(str(x) for x in sector_of.dropna().unique())
    sym_sector = base["symbol"].map(sector_of)
    sec = pd.DataFrame(index=base.index)
    for name in sectors:
        sec[f"sector_{_clean_name(name)}"] = (sym_sector == name).astype("float64").where(sym_sector.notna())
    parts.append(sec)

    out = pd.concat(parts, axis=1)
    # a target at t reads the returns after t only (evaluation.forward_returns_wide): the earlier rows add nothing
    return attach_targets(out, returns.loc[returns.index >= emit_from], horizon)


def _asof_candidates(right: pd.DataFrame, emit_from: pd.Timestamp, by: str | None) -> pd.DataFrame:
    """The rows of ``right`` a backward as-of join from dates >= ``emit_from`` can pick.

    Those are the rows dated after ``emit_from`` and, per ``by`` key (or overall), the rows of
    the latest date <= ``emit_from`` (ties kept): an earlier row is never the latest one for any
    emitted date. Order is kept, so :func:`_asof` picks exactly what it picks on all rows while
    the per-row work (embedding lists) stays proportional to the window, not the history.
    """
    before = (right["as_of_date"] <= emit_from).to_numpy()
    if not before.any():
        return right
    if by is None:
        latest = right.loc[before, "as_of_date"].max()
        keep = ~before | (right["as_of_date"] >= latest).to_numpy()
    else:
        latest = right.loc[before].groupby(by)["as_of_date"].max()
        keep = ~before | (right["as_of_date"] >= right[by].map(latest)).to_numpy()
    return right.loc[keep]


def compensated_group_mean(values: pd.Series, keys: pd.Series) -> pd.Series:
    """Per-key mean of ``values`` broadcast to the rows (NaN skipped), always by compensated (Kahan) summation in row order.

    ``groupby(keys).transform("mean")`` does not always use one algorithm: pandas 3.1 sums a
    column sorted by key and free of NaN with ``np.add.reduceat`` and any other with its Kahan
    kernel, whose last bit differs. So a date's mean depended on whether *another* date lacked a
    value (a whole history always has dates whose target is not known yet; a window of past
    dates has none). This is that kernel (per key, in row order: y = v − c; t = s + y;
    c = (t − s) − y, reset to 0 if NaN; s = t; mean = s / n), so the mean of a date depends on
    that date's values only — equal to pandas' result whenever pandas takes the Kahan path (tested).
    """
    v = values.to_numpy(dtype="float64")
    codes, _ = pd.factorize(keys.to_numpy() if hasattr(keys, "to_numpy") else np.asarray(keys), sort=False)
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.searchsorted(sorted_codes, np.arange(n_groups), side="left")
    position = np.arange(len(order)) - starts[sorted_codes]
    by_position = np.argsort(position, kind="stable")  # step k: the k-th row of every key, at most one per key
    bounds = np.searchsorted(position[by_position], np.arange(int(position.max()) + 2 if len(position) else 1))
    total = np.zeros(n_groups)
    comp = np.zeros(n_groups)
    count = np.zeros(n_groups)
    for k in range(len(bounds) - 1):
        rows = order[by_position[bounds[k]:bounds[k + 1]]]
        groups = codes[rows]
        val = v[rows]
        ok = ~np.isnan(val)
        groups, val = groups[ok], val[ok]
        y = val - comp[groups]
        t = total[groups] + y
        c = (t - total[groups]) - y
        comp[groups] = np.where(np.isnan(c), 0.0, c)
        total[groups] = t
        count[groups] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)
    return pd.Series(mean[codes] if len(codes) else np.empty(0), index=values.index)


def attach_targets(dataset: pd.DataFrame, returns: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """(Re)compute ``target_raw`` / ``target_excess`` of ``dataset`` rows from wide ``returns``.

    A stored dataset partition holds its targets as known when it was built (NaN until t + H is
    in the data). Training and evaluation call this with the returns known at *their* run time,
    so targets that became known later are used, and none before it is known.
    """
    out = dataset.drop(columns=[c for c in TARGETS if c in dataset.columns])
    fwd = forward_returns_exact(returns, int(horizon)).rename(columns={"date": "as_of_date", "forward_return": "target_raw"})
    fwd["as_of_date"] = _ns(fwd["as_of_date"])
    fwd["symbol"] = fwd["symbol"].astype(str)
    out = out.merge(fwd, on=["as_of_date", "symbol"], how="left")
    out["target_raw"] = winsorize_cross_section(out["target_raw"], out["as_of_date"])
    excess = out["target_raw"] - compensated_group_mean(out["target_raw"], out["as_of_date"])
    out["target_excess"] = winsorize_cross_section(excess, out["as_of_date"])
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- walk-forward fit
@dataclass(frozen=True)
class AssessmentModel:
    """One fitted assessment model: the estimator in force from ``fit_date`` until the next fit."""

    model_id: str
    scope: str
    horizon: int
    kind: str
    fit_date: pd.Timestamp
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    n_train: int
    estimator: Any
    feature_columns: tuple[str, ...]
    config_id: str

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected return for each row of ``frame`` (which must hold :attr:`feature_columns`).

        A row's prediction never depends on the other rows predicted with it. For the Ridge
        pipeline the final dot product is done row by row in numpy (``(X * coef).sum(axis=1)``)
        instead of BLAS ``X @ coef``: BLAS blocks rows differently with the batch size, which
        changed the last bit of a row's score when history was truncated (caught by the graph
        truncation test).
        """
        X = frame[list(self.feature_columns)].to_numpy(dtype="float64")
        if isinstance(self.estimator, Pipeline) and isinstance(self.estimator[-1], Ridge):
            Xt = self.estimator[:-1].transform(X)
            ridge = self.estimator[-1]
            return np.ascontiguousarray(Xt * ridge.coef_).sum(axis=1) + ridge.intercept_
        return self.estimator.predict(X)


def _fit_one(kind: str, random_state: int, X: np.ndarray, y: np.ndarray) -> Any:
    """Fit one estimator with a single BLAS/OpenMP thread (parallelism is across fits)."""
    with threadpool_limits(1):
        return make_estimator(kind, random_state).fit(X, y)


def make_estimator(kind: str, random_state: int = 0) -> Any:
    """A fresh estimator: ``hgb`` (HistGradientBoostingRegressor, early stopping off) or ``ridge`` baseline."""
    if kind == "hgb":
        return HistGradientBoostingRegressor(**HGB_PARAMS, random_state=random_state)
    if kind == "ridge":
        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("impute", SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True)),
                ("ridge", Ridge(alpha=RIDGE_ALPHA)),
            ]
        )
    raise ValueError(f"unknown model kind {kind!r} (expected 'hgb' or 'ridge')")


def config_id(kind: str, horizon: int, features: Sequence[str], embargo: int, target: str, purge: bool = True) -> str:
    """Short stable hash of the hyper-parameters and the feature list."""
    params: dict[str, Any] = dict(HGB_PARAMS) if kind == "hgb" else {"alpha": RIDGE_ALPHA, "impute": 0.0, "scale": True}
    payload = {"kind": kind, "horizon": int(horizon), "params": params, "features": list(features), "embargo": int(embargo), "target": target, "purge": bool(purge)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def fit_dates_yearly(dates: Iterable[pd.Timestamp] | pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The first session of each calendar year among ``dates``."""
    idx = pd.DatetimeIndex(sorted(set(_ns(pd.DatetimeIndex(list(dates))))))
    if len(idx) == 0:
        return idx
    s = pd.Series(idx, index=idx)
    return pd.DatetimeIndex(s.groupby(idx.year).min().to_numpy()).astype("datetime64[ns]")


def _positions(dates: pd.Series | pd.DatetimeIndex, sessions: pd.DatetimeIndex) -> np.ndarray:
    pos = sessions.get_indexer(_ns(pd.DatetimeIndex(dates)))
    if (pos < 0).any():
        raise ValueError("dataset dates must be sessions of the given calendar")
    return pos


def training_mask(dataset: pd.DataFrame, horizon: int, fit_date: pd.Timestamp, sessions: pd.DatetimeIndex, embargo: int = 5, purge: bool = True) -> np.ndarray:
    """Rows usable to fit a model on ``fit_date``: target known, and (purge) window closed before it.

    With ``purge`` a row at t (target over sessions t+1..t+H) is used only if
    ``pos(t) + H + embargo < pos(fit_date)``. Without it every row dated before ``fit_date`` with a
    non-null target is used — that leaks targets not yet realised on the fit date (kept for tests
    and demonstrations only).
    """
    sessions = _ns(pd.DatetimeIndex(sessions))
    pos_t = _positions(dataset["as_of_date"], sessions)
    pos_d = int(sessions.searchsorted(pd.Timestamp(fit_date)))
    limit = pos_t + int(horizon) + int(embargo) < pos_d if purge else pos_t < pos_d
    return np.asarray(limit) & (dataset["horizon"].to_numpy() == int(horizon))


def cap_training_rows(mask: np.ndarray, max_rows: int | None, fit_date: pd.Timestamp, horizon: int, random_state: int = 0) -> np.ndarray:
    """``mask`` with at most ``max_rows`` rows set: a uniform sample without replacement, seeded by
    (``random_state``, ``horizon``, ``fit_date``) when there are more (``None``: no cap).

    The sample is drawn over the positions of the set rows *in order*, so it depends only on how
    many training rows there are and on the seed: the training rows of a fit are all dated before
    its fit date, so a build on a truncated history samples the same rows (no look-ahead), and a
    rebuild the same ones (reproducible).
    """
    rows = np.flatnonzero(mask)
    if max_rows is None or len(rows) <= int(max_rows):
        return mask
    day = int(pd.Timestamp(fit_date).normalize().value // 86_400_000_000_000)
    rng = np.random.default_rng([int(random_state), int(horizon), day])
    out = np.zeros(len(mask), dtype=bool)
    out[rows[np.sort(rng.choice(len(rows), size=int(max_rows), replace=False))]] = True
    return out


@dataclass(frozen=True, eq=False)
class FitPlan:
    """One planned walk-forward fit: which rows train the model of ``fit_date``, before fitting.

    ``fingerprint`` is a sha256 over everything the fitted estimator depends on: the model
    configuration and seed, the usable feature columns, and the bytes of the training rows
    (features, target, and which rows are selected). A stored model with the same fingerprint
    is the model a refit would produce, so it can be reused instead of refitted (the daily run
    then fits nothing between two fit dates).
    """

    model_id: str
    fit_date: pd.Timestamp
    mask: np.ndarray
    usable: np.ndarray
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    n_train: int
    fingerprint: str


@dataclass(frozen=True, eq=False)
class WalkForward:
    """The fits of one (horizon, kind) walk-forward: its configuration, data arrays and plans."""

    horizon: int
    kind: str
    config_id: str
    features: tuple[str, ...]
    random_state: int
    X: np.ndarray
    y: np.ndarray
    plans: tuple[FitPlan, ...]


def model_id_for(horizon: int, kind: str, fit_date: pd.Timestamp) -> str:
    """The id of the (``horizon``, ``kind``) model fitted on ``fit_date``."""
    return f"Assessment_{SCOPE}_{int(horizon)}d-{kind}-{pd.Timestamp(fit_date):%Y%m%d}"


def _training_fingerprints(header: bytes, X: np.ndarray, y: np.ndarray, masks: list[np.ndarray], usables: list[np.ndarray]) -> list[str]:
    """sha256 per mask of (header, the rows up to its last selected row, which rows are selected, usable columns).

    The rows are hashed in the order the fit sees them. Hand-written because no library hashes a
    growing prefix incrementally: each row is hashed once, and each plan's digest is a copy of
    the running hash at the end of its prefix (in a date-sorted dataset expanding windows are
    nested prefixes), so fingerprinting every fit costs one pass over the data, not one per fit.
    """
    X = np.ascontiguousarray(X)
    y = np.ascontiguousarray(y)
    ends = [int(np.flatnonzero(m)[-1]) + 1 if m.any() else 0 for m in masks]
    running = hashlib.sha256(header)
    done = 0
    out: list[str] = [""] * len(masks)
    for k in np.argsort(ends, kind="stable"):
        end = ends[k]
        if end > done:
            running.update(X[done:end].tobytes())
            running.update(y[done:end].tobytes())
            done = end
        digest = running.copy()
        digest.update(np.asarray(usables[k], dtype=bool).tobytes())
        digest.update(np.packbits(masks[k][:end]).tobytes())
        digest.update(str(end).encode())
        out[k] = digest.hexdigest()
    return out


def plan_walk_forward(
    dataset: pd.DataFrame,
    horizon: int,
    fit_dates: Iterable[pd.Timestamp],
    sessions: pd.DatetimeIndex,
    kind: str = "hgb",
    embargo: int = 5,
    min_train_rows: int = 500,
    random_state: int = 0,
    target: str = "target_excess",
    purge: bool = True,
    features: Sequence[str] | None = None,
    max_train_rows: int | None = MAX_TRAIN_ROWS,
) -> WalkForward:
    """The fits :func:`fit_walk_forward` would make, with their training rows and fingerprints.

    A fit with more than ``max_train_rows`` training rows trains on a seeded sample of them
    (:func:`cap_training_rows`).
    """
    feats = tuple(features) if features is not None else tuple(feature_columns(dataset))
    cfg = config_id(kind, horizon, feats, embargo, target, purge)
    sessions = _ns(pd.DatetimeIndex(sessions))
    has_target = dataset[target].notna().to_numpy()
    X_all = dataset[list(feats)].to_numpy(dtype="float64")
    y_all = dataset[target].to_numpy(dtype="float64")
    dates = _ns(dataset["as_of_date"])
    chosen = []
    for d in sorted({pd.Timestamp(x) for x in fit_dates}):
        mask = training_mask(dataset, horizon, d, sessions, embargo, purge) & has_target
        if int(mask.sum()) >= min_train_rows:
            mask = cap_training_rows(mask, max_train_rows, d, horizon, random_state)
            # A feature with no value in the training rows (e.g. liquidity for a source without
            # volumes) carries no information and breaks HistGradientBoosting's binning: leave it
            # out of this model (its feature_columns record what it uses).
            chosen.append((d, mask, np.isfinite(X_all[mask]).any(axis=0)))
    header = json.dumps({"config_id": cfg, "kind": kind, "random_state": int(random_state), "features": list(feats)}).encode()
    prints = _training_fingerprints(header, X_all, y_all, [m for _, m, _ in chosen], [u for _, _, u in chosen])
    plans = []
    for (d, mask, usable), fingerprint in zip(chosen, prints):
        used = dates[mask]
        plans.append(FitPlan(
            model_id=model_id_for(horizon, kind, d), fit_date=d, mask=mask, usable=usable,
            train_start=pd.Timestamp(used.min()), train_end=pd.Timestamp(used.max()), n_train=int(mask.sum()), fingerprint=fingerprint,
        ))
    return WalkForward(horizon=int(horizon), kind=kind, config_id=cfg, features=feats, random_state=int(random_state), X=X_all, y=y_all, plans=tuple(plans))


#: Bump when the way training rows are derived from the stored tables changes (target attachment,
#: training mask, fingerprint): every stored ``training_inputs`` digest then misses once and each
#: model is checked against its exact training-data fingerprint again.
TRAINING_INPUTS_VERSION = 1


def walk_forward_header(
    kind: str, horizon: int, features: Sequence[str], embargo: int = 5, min_train_rows: int = 500,
    random_state: int = 0, target: str = "target_excess", purge: bool = True, max_train_rows: int | None = MAX_TRAIN_ROWS,
) -> dict[str, Any]:
    """Everything besides the stored rows that decides a walk-forward plan (the arguments of :func:`plan_walk_forward`)."""
    return {
        "version": TRAINING_INPUTS_VERSION, "config_id": config_id(kind, horizon, features, embargo, target, purge),
        "kind": kind, "horizon": int(horizon), "features": list(features), "embargo": int(embargo),
        "min_train_rows": int(min_train_rows), "random_state": int(random_state), "target": target, "purge": bool(purge),
        "max_train_rows": None if max_train_rows is None else int(max_train_rows),
    }


def training_inputs_digest(fingerprint: str, header: dict[str, Any], files: Iterable[Sequence[str]]) -> str:
    """sha256 binding a model's training-data ``fingerprint`` to the stored files it was computed from.

    ``files`` are ``(table, file name, sha256 of the file's bytes)``: the year files dated before
    the fit date (:func:`inputs_before_fit`). The training rows of a fit are a deterministic function
    of ``header`` and those files' rows, so while the digest recomputed from the current files
    equals the recorded one, the fingerprint recomputed from the decoded rows would equal the
    recorded fingerprint too, and the stored model can be reused without reading any row. The
    recorded fingerprint is part of the digest, so an edited fingerprint is noticed as well.
    """
    payload = {"fingerprint": fingerprint, "header": header, "files": sorted([list(map(str, f)) for f in files])}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def inputs_before_fit(
    fit_date: pd.Timestamp, dataset_files: Iterable[tuple[int | None, Sequence[str]]],
    returns_files: Iterable[tuple[int | None, pd.Timestamp | None, Sequence[str]]],
) -> list[Sequence[str]]:
    """The stored files the training rows of a fit on ``fit_date`` can depend on.

    A training row is dated t with ``pos(t) + H + embargo < pos(fit_date)``, and its target reads
    returns t+1 … t+H: everything it uses is dated before ``fit_date``. ``fit_date`` is the first
    dataset session of its year (:func:`fit_dates_yearly`), so only dataset year files of earlier
    years matter; a returns year file of the fit's year matters only if it holds a session before
    the fit date (``returns_files`` carry each file's first date). Files without a year (an empty
    table's schema file) are always included.
    """
    year = pd.Timestamp(fit_date).year
    out = [key for y, key in dataset_files if y is None or y < year]
    for y, first, key in returns_files:
        if y is None or y < year or (y == year and first is not None and pd.Timestamp(first) < pd.Timestamp(fit_date)):
            out.append(key)
    return out


def fit_planned(walk: WalkForward, plans: Sequence[FitPlan] | None = None, n_jobs: int = 1) -> list[AssessmentModel]:
    """Fit ``plans`` (default: all of ``walk``'s) and return their models in plan order."""
    plans = list(walk.plans if plans is None else plans)
    # The fits are independent: run them in parallel processes (each estimator is seeded, so the
    # result does not depend on n_jobs).
    estimators = Parallel(n_jobs=n_jobs)(
        delayed(_fit_one)(walk.kind, walk.random_state, walk.X[p.mask][:, p.usable], walk.y[p.mask]) for p in plans
    )
    return [
        AssessmentModel(
            model_id=p.model_id, scope=SCOPE, horizon=walk.horizon, kind=walk.kind, fit_date=p.fit_date,
            train_start=p.train_start, train_end=p.train_end, n_train=p.n_train, estimator=est,
            feature_columns=tuple(f for f, ok in zip(walk.features, p.usable) if ok), config_id=walk.config_id,
        )
        for p, est in zip(plans, estimators)
    ]


def fit_walk_forward(
    dataset: pd.DataFrame,
    horizon: int,
    fit_dates: Iterable[pd.Timestamp],
    sessions: pd.DatetimeIndex,
    kind: str = "hgb",
    embargo: int = 5,
    min_train_rows: int = 500,
    random_state: int = 0,
    target: str = "target_excess",
    purge: bool = True,
    features: Sequence[str] | None = None,
    n_jobs: int = 1,
    max_train_rows: int | None = MAX_TRAIN_ROWS,
) -> list[AssessmentModel]:
    """Expanding-window models, one per fit date with enough purged training rows.

    For fit date D the training rows are those of :func:`training_mask` (target window t+1..t+H
    ending more than ``embargo`` sessions before D) with a non-null ``target``; fit dates with
    fewer than ``min_train_rows`` such rows are skipped, and more than ``max_train_rows`` are
    sampled (:func:`cap_training_rows`; ``None``: no cap). ``sessions`` is the trading calendar
    covering the data. ``features`` defaults to :func:`feature_columns`. ``purge=False`` disables
    the purge and embargo (leaky; only to demonstrate the leak). Equal to
    ``fit_planned(plan_walk_forward(...))``.
    """
    walk = plan_walk_forward(dataset, horizon, fit_dates, sessions, kind, embargo, min_train_rows, random_state, target, purge, features, max_train_rows)
    return fit_planned(walk, n_jobs=n_jobs)


# --------------------------------------------------------------------------- scoring
def models_in_force(models: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Rows of a model table (``kind``, ``fit_date``, ...) whose model is in force on some date of ``start``…``end``.

    Per kind: the latest model fitted on or before ``start`` and every model fitted after it up to
    ``end`` — exactly the models :func:`score` would pick for rows dated in the range.
    """
    if not len(models):
        return models
    fit = pd.to_datetime(models["fit_date"])
    keep = np.zeros(len(models), dtype=bool)
    for kind in models["kind"].unique():
        mine = (models["kind"] == kind).to_numpy()
        before = fit[mine & (fit <= pd.Timestamp(start)).to_numpy()]
        first = before.max() if len(before) else pd.Timestamp.min
        keep |= mine & (fit >= first).to_numpy() & (fit <= pd.Timestamp(end)).to_numpy()
    return models[keep]


def _percentile(values: pd.Series, dates: pd.Series) -> pd.Series:
    """(average rank − ½) / n per date: in (0, 1), symmetric, ties share a value."""
    g = values.groupby(dates.to_numpy())
    return (g.rank(method="average") - 0.5) / g.transform("count")


def assign_labels(score: pd.Series, dates: pd.Series) -> pd.Series:
    """strong_buy / buy / hold / sell / short by the symmetric percentile bands documented at :data:`LABEL_TOP_BANDS`."""
    p = _percentile(score, dates).to_numpy(dtype="float64")
    eps = 1e-9
    labels = np.full(len(p), "hold", dtype=object)
    for threshold, name in LABEL_TOP_BANDS:
        labels[p >= threshold - eps] = name
    for threshold, name in LABEL_BOTTOM_BANDS:
        labels[p <= threshold + eps] = name
    labels[np.isnan(p)] = None
    return pd.Series(labels, index=score.index, name="label")


def score(dataset: pd.DataFrame, models: Sequence[AssessmentModel]) -> pd.DataFrame:
    """Score every row with the model in force on its date (latest ``fit_date <= as_of_date``).

    Models are grouped by (horizon, kind); rows of a horizon are scored by each group. Rows dated
    before a group's first model are dropped. ``score`` is the cross-sectional z-score of
    ``expected_return`` per (date, horizon, kind) (0 when the cross-section is constant) and
    ``label`` follows :data:`LABEL_TOP_BANDS` / :data:`LABEL_BOTTOM_BANDS`.
    """
    groups: dict[tuple[int, str], list[AssessmentModel]] = {}
    for m in models:
        groups.setdefault((m.horizon, m.kind), []).append(m)
    frames = []
    for (h, kind), ms in sorted(groups.items()):
        ms = sorted(ms, key=lambda m: m.fit_date)
        fit = _ns(pd.DatetimeIndex([m.fit_date for m in ms]))
        rows = dataset[dataset["horizon"] == h]
        which = fit.searchsorted(_ns(pd.DatetimeIndex(rows["as_of_date"])), side="right") - 1
        for i, m in enumerate(ms):
            sel = rows[which == i]
            if sel.empty:
                continue
            frames.append(pd.DataFrame({
                "as_of_date": _ns(sel["as_of_date"]).to_numpy(),
                "symbol": sel["symbol"].to_numpy(),
                "horizon": h,
                "model_id": m.model_id,
                "kind": kind,
                "expected_return": m.predict(sel),
            }))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(SCORE_COLUMNS, ["datetime64[ns]", object, "int64", object, object, float, float, object])})
    out = pd.concat(frames, ignore_index=True).sort_values(["horizon", "kind", "as_of_date", "symbol"], kind="stable").reset_index(drop=True)
    key = out["as_of_date"].astype("int64").astype(str) + "|" + out["horizon"].astype(str) + "|" + out["kind"]
    g = out.groupby(key.to_numpy())["expected_return"]
    std = g.transform(lambda s: s.std(ddof=0))
    z = (out["expected_return"] - g.transform("mean")) / std
    out["score"] = z.where(std > 0, 0.0)
    out["label"] = assign_labels(out["score"], key)
    return out[SCORE_COLUMNS]


# --------------------------------------------------------------------------- evaluation
def daily_metrics(scores: pd.DataFrame, dataset: pd.DataFrame, target: str = "target_excess") -> pd.DataFrame:
    """Per (horizon, kind, date): rank IC, names, quintile spread and top-quintile turnover.

    ``rank_ic`` is :func:`evaluation.rank_ic` of score vs realised ``target`` (dates with fewer than
    5 usable names or a constant side have none). ``quintile_spread`` = mean target of the top
    score quintile minus the bottom one (percentile >= 0.8 / < 0.2). ``top_turnover`` = share of
    the top quintile's names (by score, all scored names) not in the previous scored date's top
    quintile (NaN on the first date).
    """
    cols = ["horizon", "kind", "as_of_date", "rank_ic", "n_names", "quintile_spread", "top_turnover"]
    merged = scores.merge(dataset[["as_of_date", "symbol", "horizon", target]], on=["as_of_date", "symbol", "horizon"], how="left")
    out = []
    for (h, kind), g in merged.groupby(["horizon", "kind"], sort=True):
        g = g.reset_index(drop=True)
        dates = g["as_of_date"]
        p = _percentile(g["score"], dates)
        top = g.loc[p >= 0.8, ["as_of_date", "symbol"]]
        top_sets = top.groupby("as_of_date")["symbol"].agg(frozenset)
        all_dates = pd.DatetimeIndex(sorted(dates.unique()))
        turnover = {}
        prev: frozenset | None = None
        for d in all_dates:
            cur = top_sets.get(d, frozenset())
            turnover[d] = (len(cur - prev) / len(cur) if cur else np.nan) if prev is not None else np.nan
            prev = cur
        usable = g.dropna(subset=["score", target])
        pu = _percentile(usable["score"], usable["as_of_date"])
        hi = usable[target].where(pu >= 0.8).groupby(usable["as_of_date"]).mean()
        lo = usable[target].where(pu < 0.2).groupby(usable["as_of_date"]).mean()
        ic = rank_ic(g.rename(columns={"as_of_date": "date"}), g.rename(columns={"as_of_date": "date", target: "forward_return"}))
        frame = pd.DataFrame({"as_of_date": all_dates})
        frame["rank_ic"] = frame["as_of_date"].map(ic)
        frame["n_names"] = frame["as_of_date"].map(usable.groupby("as_of_date").size()).fillna(0).astype("int64")
        frame["quintile_spread"] = frame["as_of_date"].map(hi - lo)
        frame["top_turnover"] = frame["as_of_date"].map(pd.Series(turnover))
        frame.insert(0, "kind", kind)
        frame.insert(0, "horizon", int(h))
        out.append(frame)
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


def _summarise(daily: pd.DataFrame, horizon: int) -> dict[str, float]:
    ev = daily[daily["rank_ic"].notna()].sort_values("as_of_date")
    stats: dict[str, Any] = ic_summary(ev["rank_ic"])
    stats["quintile_spread"] = float(ev["quintile_spread"].mean()) if len(ev) else math.nan
    stats["top_turnover"] = float(ev["top_turnover"].mean()) if ev["top_turnover"].notna().any() else math.nan
    non = ic_summary(ev["rank_ic"].iloc[:: max(int(horizon), 1)])
    stats["ic_mean_nonoverlap"] = non["ic_mean"]
    stats["t_stat_nonoverlap"] = non["t_stat"]
    stats["n_dates_nonoverlap"] = non["n_dates"]
    return stats


def evaluate(scores: pd.DataFrame, dataset: pd.DataFrame, regimes: pd.DataFrame, target: str = "target_excess") -> dict[str, pd.DataFrame]:
    """Out-of-sample rank-IC tables from :func:`score` output (scores exist only after the first model).

    Returns ``overall`` (one row per horizon, kind), ``by_regime`` (also per ``regime_label`` of
    the latest regime row dated <= as_of_date; ``UNKNOWN`` when none) and ``by_period`` (first /
    second half of the evaluated dates, per horizon, kind), plus ``daily`` (:func:`daily_metrics`).
    Columns: ``ic_mean, ic_std, ic_ir, t_stat, hit_rate, n_dates`` (:func:`evaluation.ic_summary`
    over dates with an IC), ``quintile_spread``, ``top_turnover`` and the non-overlapping variant
    ``ic_mean_nonoverlap, t_stat_nonoverlap, n_dates_nonoverlap`` (every H-th evaluated date).

    Caveat: the forward windows of consecutive dates overlap by H−1 sessions, so daily ICs are
    strongly autocorrelated and the daily ``t_stat`` (IR × √n) overstates significance by roughly
    √H; prefer the non-overlapping t-stat.

    Equal to ``summarise_daily(evaluate_daily(scores, dataset, regimes, target))``: the per-date
    rows are final once their target is known, so they can be kept and only summarised again.
    """
    return summarise_daily(evaluate_daily(scores, dataset, regimes, target))


def evaluate_daily(scores: pd.DataFrame, dataset: pd.DataFrame, regimes: pd.DataFrame, target: str = "target_excess") -> pd.DataFrame:
    """:func:`daily_metrics` with the ``regime_label`` of the latest regime row dated <= each date (``UNKNOWN`` when none).

    A row (h, kind, date s) depends only on the scores and dataset rows of s, the returns of
    s+1 … s+H (through ``dataset``'s target), the previous scored date's top quintile and the
    regime rows dated <= s: computed on any window holding those, it equals the whole-history
    row bit for bit (the rank IC's sums are of half-integer ranks, hence exact in any order;
    the other statistics read the same rows in the same order).
    """
    daily = daily_metrics(scores, dataset, target)
    if len(regimes):
        rg = regimes[["as_of_date", "regime_label"]].copy()
        rg["as_of_date"] = _ns(rg["as_of_date"])
        daily = _asof(daily, rg, by=None)
    else:
        daily["regime_label"] = None
    daily["regime_label"] = daily["regime_label"].fillna("UNKNOWN").astype(str)
    return daily


def summarise_daily(daily: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The ``overall``, ``by_regime`` and ``by_period`` tables of :func:`evaluate` from its per-date rows (and ``daily`` itself)."""
    overall, by_regime, by_period = [], [], []
    for (h, kind), g in daily.groupby(["horizon", "kind"], sort=True):
        overall.append({"horizon": h, "kind": kind, **_summarise(g, h)})
        for lab, gr in g.groupby("regime_label", sort=True):
            by_regime.append({"horizon": h, "kind": kind, "regime_label": lab, **_summarise(gr, h)})
        ev_dates = pd.DatetimeIndex(np.sort(g.loc[g["rank_ic"].notna(), "as_of_date"].to_numpy()))
        if len(ev_dates):
            cut = ev_dates[(len(ev_dates) + 1) // 2 - 1]
            halves = (("first_half", g[g["as_of_date"] <= cut]), ("second_half", g[g["as_of_date"] > cut]))
            for name, gp in halves:
                dd = gp.loc[gp["rank_ic"].notna(), "as_of_date"]
                by_period.append({
                    "horizon": h,
                    "kind": kind,
                    "period": name,
                    "period_start": dd.min() if len(dd) else pd.NaT,
                    "period_end": dd.max() if len(dd) else pd.NaT,
                    **_summarise(gp, h),
                })
    return {
        "overall": pd.DataFrame(overall),
        "by_regime": pd.DataFrame(by_regime),
        "by_period": pd.DataFrame(by_period),
        "daily": daily,
    }


def headline_ic(overall: pd.DataFrame | None, horizon: int = 20, kind: str = "hgb") -> float:
    """``ic_mean`` of (``horizon``, ``kind``) in an ``overall`` table of :func:`evaluate`; NaN when there is none.

    A short history may have out-of-sample scores for no horizon (an ``overall`` with no columns)
    or for some horizons only.
    """
    if overall is None or not {"horizon", "kind", "ic_mean"} <= set(overall.columns):
        return float("nan")
    hit = overall.loc[(overall["horizon"] == horizon) & (overall["kind"] == kind), "ic_mean"]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def ic_report_markdown(evaluation: dict[str, pd.DataFrame], strategy_ic: pd.DataFrame | None = None) -> str:
    """The out-of-sample IC tables as Markdown (the README's table is this text, unedited)."""
    fmt = {"ic_mean": "{:+.3f}", "ic_ir": "{:+.2f}", "t_stat": "{:+.1f}", "t_stat_nonoverlap": "{:+.1f}", "hit_rate": "{:.2f}", "quintile_spread": "{:+.4f}", "top_turnover": "{:.2f}", "n_dates": "{:d}"}

    def table(frame: pd.DataFrame, keys: list[str]) -> str:
        cols = [c for c in keys + list(fmt) if c in frame.columns]
        shown = frame[cols].copy()
        for col, spec in fmt.items():
            if col in shown:
                shown[col] = [spec.format(int(v) if spec == "{:d}" else v) if pd.notna(v) else "" for v in shown[col]]
        return shown.to_markdown(index=False)

    parts = ["### Assessment models: out-of-sample rank IC (target: excess forward return)", ""]
    if "overall" in evaluation and len(evaluation["overall"]):
        parts += ["Overall", "", table(evaluation["overall"], ["horizon", "kind"]), ""]
    if "by_regime" in evaluation and len(evaluation["by_regime"]):
        parts += ["By regime label of the scoring date", "", table(evaluation["by_regime"], ["horizon", "kind", "regime_label"]), ""]
    if "by_period" in evaluation and len(evaluation["by_period"]):
        parts += ["By period", "", table(evaluation["by_period"], ["horizon", "kind", "period"]), ""]
    if strategy_ic is not None and len(strategy_ic):
        parts += ["### Alpha-score strategies: rank IC of alpha_score vs forward return", "", table(strategy_ic, ["strategy", "horizon"]), ""]
    parts.append("Daily ICs of overlapping H-day windows are autocorrelated: their t-stats are inflated by about √H; `t_stat_nonoverlap` uses every H-th date.")
    return "\n".join(parts)
