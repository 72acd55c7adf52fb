"""The regime space: clustering market embeddings into CRISIS / RISK_OFF / CARRY / NEUTRAL.

What this module does
---------------------
A *regime* is the market's state of mind on a day. We estimate it in three steps:

1. **Raw regime** (:class:`NumericRegimeModel`): cluster the market's numeric embeddings
   (``z_numeric`` from :mod:`prometheus_assets.core.encoders`) with a Gaussian mixture, then
   *name* each cluster by what it means economically, from the average raw market features of
   the days it holds (volatility, drawdown, correlation, trend). Naming never depends on the
   arbitrary cluster numbering, only on cluster statistics.
2. **Published regime** (:func:`smooth_regimes`): a hysteresis state machine that changes the
   published label only after a different raw label persisted for a few days (faster for
   CRISIS: stress must be caught quickly). It can resume from a saved :class:`RegimeMemory`
   and gives the same answer as one uninterrupted run.
3. **Transitions** (:func:`transitions`): the days the published label changed.

:func:`regime_history` chains everything, walk-forward, from wide returns: the encoder and the
regime model used on day ``t`` were both fitted on market rows dated strictly before their
fit date ``D <= t``.

The daily run composes the same pieces incrementally, with the same rows bit for bit:
:func:`plan_regime_fits` lists the fits without making them (a stored model is reused when its
:func:`training_fingerprint` matches, else :func:`fit_planned` makes exactly that one fit);
prediction is row by row, so a day's raw regime does not depend on the batch it is predicted in;
and :func:`resume_regime_states` carries the hysteresis from the previous state day's stored row
after checking that row against a recomputation (else the caller replays from the first day).

Pure numpy / pandas / scikit-learn: no Dagster, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from prometheus_assets.core.encoders import (
    DEFAULT_MIN_TRAIN_ROWS,
    MARKET_FEATURE_COLUMNS,
    WINDOW_SPECS,
    FittedEncoder,
    fit_walk_forward,
    market_features,
    model_index_for_dates,
    refit_dates,
)

__all__ = [
    "CRISIS",
    "ECONOMIC_COLUMNS",
    "REGIME_LABELS",
    "FittedRegimeModel",
    "NumericRegimeModel",
    "RegimeMemory",
    "fit_regime_walk_forward",
    "label_clusters",
    "predict_regimes_walk_forward",
    "RegimeFitPlan",
    "RegimeSpec",
    "fit_planned",
    "memory_of_row",
    "plan_regime_fits",
    "plans_in_force",
    "regime_features",
    "regime_history",
    "regime_row_dates",
    "regime_states",
    "resume_regime_states",
    "training_fingerprint",
    "smooth_regimes",
    "stress_scores",
    "transitions",
]

#: Regime labels, from most to least stressed (the order of ``prototypes_`` and ``dist_*``).
REGIME_LABELS: tuple[str, str, str, str] = ("CRISIS", "RISK_OFF", "CARRY", "NEUTRAL")
CRISIS, RISK_OFF, CARRY, NEUTRAL = REGIME_LABELS
#: Raw market features that give clusters their economic meaning (``drawdown`` is <= 0).
ECONOMIC_COLUMNS: tuple[str, str, str, str] = ("vol", "drawdown", "correlation", "trend")
#: Sign of each economic column in the stress score: stress rises with vol and correlation,
#: and with deeper (more negative) drawdowns and weaker trends.
STRESS_SIGNS: dict[str, float] = {"vol": 1.0, "drawdown": -1.0, "correlation": 1.0, "trend": -1.0}

#: Default number of mixture components (one per label).
DEFAULT_N_CLUSTERS: int = 4
#: Independent EM restarts of the Gaussian mixture (the best likelihood wins).
GMM_N_INIT: int = 3
#: Covariance structure of the mixture components ("diag": see NumericRegimeModel).
GMM_COVARIANCE_TYPE: str = "diag"
#: Ridge added to covariance diagonals (embeddings are standardised, so this is tiny).
GMM_REG_COVAR: float = 1e-4
#: EM iteration cap.
GMM_MAX_ITER: int = 500
#: BLAS / OpenMP threads while fitting and predicting. The matrices are tiny (a few thousand
#: rows x <= 16 columns), where thread start-up dominates: one thread was ~7x faster here, and
#: a fixed thread count also keeps results independent of the machine.
MODEL_THREADS: int = 1

#: Hysteresis defaults: sessions a new label must persist before it is published ...
DEFAULT_MIN_DWELL: int = 5
#: ... minimum confidence for a day to count towards a new label ...
DEFAULT_ENTER_CONFIDENCE: float = 0.5
#: ... and the faster confirmation for entering CRISIS.
DEFAULT_CRISIS_FAST_TRACK: int = 2

#: Defaults of the market regime pipeline (:func:`regime_history`).
DEFAULT_WINDOW_SPEC: str = "63d"
DEFAULT_REFIT_FREQUENCY: str = "YS"
#: Principal components kept by the regime pipeline's encoder (of the 8 market features).
#: Three keep the bulk of the variance and drop the noisy tail; on the bundled data 3 gave the
#: most coherent labels of 3-8 (see NumericRegimeModel and the report in the tests).
DEFAULT_REGIME_N_COMPONENTS: int = 3
#: Encoder inputs of the regime pipeline (all market features).
REGIME_FEATURE_COLUMNS: list[str] = list(MARKET_FEATURE_COLUMNS)


# --------------------------------------------------------------------------- naming clusters
def stress_scores(cluster_means: pd.DataFrame) -> pd.Series:
    """Stress score of each cluster from its mean economic features.

    Each column of :data:`ECONOMIC_COLUMNS` is z-scored *across the clusters' means* (so the
    score compares clusters with each other) and combined as
    ``z(vol) - z(drawdown) + z(correlation) - z(trend)``. A column that is equal in all
    clusters contributes 0.
    """
    score = pd.Series(0.0, index=cluster_means.index)
    for col, sign in STRESS_SIGNS.items():
        x = cluster_means[col].to_numpy(dtype="float64")
        sd = x.std()
        z = (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)
        score += sign * z
    return score


def label_clusters(cluster_means: pd.DataFrame) -> list[str]:
    """Name clusters by economic meaning; returns one label per row of ``cluster_means``.

    Rule (needs at least 4 clusters):

    * CRISIS = the cluster with the highest stress score (:func:`stress_scores`);
    * RISK_OFF = the second highest;
    * CARRY = among the rest, the one with the strongest trend;
    * NEUTRAL = every remaining cluster (exactly one when there are 4 clusters).

    Ties are broken by the cluster statistics themselves (vol, then drawdown, correlation,
    trend), never by the row position, so permuting the rows permutes the labels with them:
    the naming is permutation invariant by construction.
    """
    n = len(cluster_means)
    if n < len(REGIME_LABELS):
        raise ValueError(f"need at least {len(REGIME_LABELS)} clusters to name {REGIME_LABELS}, got {n}")
    stats = cluster_means[list(ECONOMIC_COLUMNS)].to_numpy(dtype="float64")
    stress = stress_scores(cluster_means).to_numpy()
    # np.lexsort sorts by the LAST key first: primary = -stress, then the raw statistics.
    by_stress = np.lexsort((stats[:, 3], -stats[:, 2], stats[:, 1], -stats[:, 0], -stress))
    labels = np.full(n, NEUTRAL, dtype=object)
    labels[by_stress[0]] = CRISIS
    labels[by_stress[1]] = RISK_OFF
    rest = by_stress[2:]
    by_trend = np.lexsort((stress[rest], -stats[rest, 3]))
    labels[rest[by_trend[0]]] = CARRY
    return labels.tolist()


# --------------------------------------------------------------------------- the raw regime model
class NumericRegimeModel(BaseEstimator):
    """Clusters market embeddings into regimes named by their economic meaning.

    Why a Gaussian mixture (and not KMeans): it gives each day a *posterior probability* for
    each cluster, which is exactly the ``confidence`` the hysteresis needs, and each cluster
    gets its own spread (stress days are far more dispersed than calm days, which KMeans'
    equal round clusters ignore). It is deterministic for a fixed ``random_state``;
    ``n_init`` restarts guard against a poor local optimum.

    Why *diagonal* covariances: the embeddings are principal components, which are
    uncorrelated by construction, so a diagonal covariance loses little; it has far fewer
    parameters (stable on the short early walk-forward training sets); and it avoids a
    failure seen with full covariances on the bundled data: the broadest cluster swallowed
    out-of-sample tail days (early 2008, falling market) and named them CARRY. Measured on the
    bundled history, diag / 3 components: stress episodes ~97 % CRISIS/RISK_OFF, calm years
    ~99 % CARRY/NEUTRAL, ~2 % of CARRY days with a negative trend (full: ~10-15 %).

    After :meth:`fit`:

    * ``label_of_cluster_``: the label of each mixture component (see :func:`label_clusters`),
      computed from the responsibility-weighted mean economics of the training rows;
    * ``cluster_economics_``: those means (one row per component) with their stress score;
    * ``prototypes_``: one centre per label in embedding space, ordered as
      :data:`REGIME_LABELS` (the responsibility-weighted mean embedding of the label's rows).

    :meth:`predict` sums the posteriors of the components that share a label, takes the most
    probable label as ``raw_label`` and its probability as ``confidence``, and reports the
    Euclidean distance to each prototype.
    """

    def __init__(self, n_clusters: int = DEFAULT_N_CLUSTERS, random_state: int = 0, covariance_type: str = GMM_COVARIANCE_TYPE) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.covariance_type = covariance_type

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, embeddings: np.ndarray, economics: pd.DataFrame) -> "NumericRegimeModel":
        X = _finite_2d(embeddings, "NumericRegimeModel.fit")
        econ = _economics(economics, len(X))
        if self.n_clusters < len(REGIME_LABELS):
            raise ValueError(f"n_clusters must be >= {len(REGIME_LABELS)}, got {self.n_clusters}")
        if len(X) < self.n_clusters:
            raise ValueError(f"need at least n_clusters={self.n_clusters} rows to fit, got {len(X)}")
        with threadpool_limits(limits=MODEL_THREADS):
            self.mixture_ = GaussianMixture(
                n_components=self.n_clusters,
                covariance_type=self.covariance_type,
                n_init=GMM_N_INIT,
                reg_covar=GMM_REG_COVAR,
                max_iter=GMM_MAX_ITER,
                random_state=self.random_state,
            ).fit(X)
            self._name_clusters(X, econ)
        return self

    def _name_clusters(self, X: np.ndarray, econ: np.ndarray) -> None:
        """Derive names and prototypes from the fitted mixture (depends only on cluster statistics)."""
        resp = self.mixture_.predict_proba(X)
        mass = resp.sum(axis=0)
        means = (resp.T @ econ) / np.maximum(mass, np.finfo(float).tiny)[:, None]
        cluster_econ = pd.DataFrame(means, columns=list(ECONOMIC_COLUMNS))
        self.label_of_cluster_ = np.asarray(label_clusters(cluster_econ), dtype=object)
        cluster_econ["stress"] = stress_scores(cluster_econ)
        cluster_econ["weight"] = mass / mass.sum()
        cluster_econ["label"] = self.label_of_cluster_
        self.cluster_economics_ = cluster_econ
        self.membership_ = np.stack([self.label_of_cluster_ == lab for lab in REGIME_LABELS], axis=1).astype("float64")
        label_resp = resp @ self.membership_
        self.prototypes_ = (label_resp.T @ X) / np.maximum(label_resp.sum(axis=0), np.finfo(float).tiny)[:, None]

    # -- prediction ----------------------------------------------------------------------------
    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Posterior probability of each label (columns in :data:`REGIME_LABELS` order).

        Each row is computed on its own (see :func:`_rowwise_mixture_proba`), so a day's
        probabilities do not depend on how many days are predicted with it: the daily run
        predicts one day, a backfill years.
        """
        X = _finite_2d(embeddings, "NumericRegimeModel.predict")
        if self.mixture_.covariance_type == "diag":
            return _rowwise_dot(_rowwise_mixture_proba(self.mixture_, X), self.membership_.T)
        with threadpool_limits(limits=MODEL_THREADS):  # not batch invariant (BLAS blocking); not the default
            return self.mixture_.predict_proba(X) @ self.membership_

    def predict(self, embeddings: np.ndarray) -> pd.DataFrame:
        """``raw_label``, ``confidence`` and ``dist_<LABEL>`` for each row of ``embeddings``."""
        proba = self.predict_proba(embeddings)
        X = np.asarray(embeddings, dtype="float64")
        best = proba.argmax(axis=1)
        out = pd.DataFrame(
            {
                "raw_label": pd.Series(np.asarray(REGIME_LABELS, dtype=object)[best], dtype=object),
                "confidence": np.clip(proba[np.arange(len(X)), best], 0.0, 1.0),
            }
        )
        for j, lab in enumerate(REGIME_LABELS):
            out[f"dist_{lab}"] = np.linalg.norm(X - self.prototypes_[j], axis=1)
        return out


def _rowwise_dot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A @ B.T`` with each row of ``A`` multiplied on its own (elementwise products summed along the row).

    A BLAS matrix product blocks rows by batch size, so the last bit of a row's result can depend
    on how many rows share the product (measured: 4e-16 on a mixture's probabilities). Here a row's
    result is the same whatever else is in the batch.
    """
    return (A[:, None, :] * B[None, :, :]).sum(axis=2)


def _rowwise_mixture_proba(mixture: GaussianMixture, X: np.ndarray) -> np.ndarray:
    """Posterior component probabilities of a fitted *diagonal* Gaussian mixture, row by row.

    The formula of scikit-learn's ``GaussianMixture.predict_proba`` for ``covariance_type="diag"``
    (log-density from the Cholesky precisions, plus log weights, normalised by a per-row
    log-sum-exp), written with :func:`_rowwise_dot` instead of matrix products so every row is
    computed independently of the batch. Agrees with scikit-learn to rounding.
    """
    prec_chol = np.asarray(mixture.precisions_cholesky_, dtype="float64")
    means = np.asarray(mixture.means_, dtype="float64")
    precisions = prec_chol**2
    log_det = np.sum(np.log(prec_chol), axis=1)
    log_prob = np.sum(means**2 * precisions, axis=1) - 2.0 * _rowwise_dot(X, means * precisions) + _rowwise_dot(X**2, precisions)
    weighted = -0.5 * (X.shape[1] * np.log(2 * np.pi) + log_prob) + log_det + np.log(mixture.weights_)
    top = weighted.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(weighted - top).sum(axis=1, keepdims=True)) + top
    return np.exp(weighted - log_norm)


def _finite_2d(X, what: str) -> np.ndarray:
    arr = np.asarray(X, dtype="float64")
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array of embeddings, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: embeddings contain NaN or infinite values")
    return arr


def _economics(economics: pd.DataFrame, n_rows: int) -> np.ndarray:
    missing = [c for c in ECONOMIC_COLUMNS if c not in economics.columns]
    if missing:
        raise ValueError(f"economics is missing columns {missing}; needs {list(ECONOMIC_COLUMNS)}")
    if len(economics) != n_rows:
        raise ValueError(f"economics has {len(economics)} rows but embeddings have {n_rows}")
    arr = economics[list(ECONOMIC_COLUMNS)].to_numpy(dtype="float64")
    if not np.isfinite(arr).all():
        raise ValueError("economics contain NaN or infinite values")
    return arr


# --------------------------------------------------------------------------- hysteresis
@dataclass
class RegimeMemory:
    """State of the hysteresis machine after a day (enough to resume the next day).

    ``label``: the published regime (None until the first label is confirmed);
    ``candidate`` / ``candidate_days``: a different raw label seen on that many consecutive
    qualifying days; ``days_in_regime``: days the published label has been in force.
    """

    label: str | None = None
    candidate: str | None = None
    candidate_days: int = 0
    days_in_regime: int = 0


SMOOTHED_COLUMNS: list[str] = ["regime_label", "days_in_regime", "candidate_label", "candidate_days"]


def smooth_regimes(
    raw: pd.DataFrame,
    memory: RegimeMemory | None = None,
    min_dwell: int = DEFAULT_MIN_DWELL,
    enter_confidence: float = DEFAULT_ENTER_CONFIDENCE,
    crisis_fast_track: int = DEFAULT_CRISIS_FAST_TRACK,
) -> tuple[pd.DataFrame, RegimeMemory]:
    """Publish a regime label that changes only after the raw label persisted.

    Each day, in date order:

    * if the raw label equals the published one, or its confidence is below
      ``enter_confidence``, any pending candidate is dropped (the run of evidence is broken);
    * otherwise the raw label becomes / stays the candidate and its streak grows by one; once
      the streak reaches ``crisis_fast_track`` days for CRISIS, ``min_dwell`` days for any
      other label, the candidate is published (``days_in_regime`` restarts at 1).

    So entering CRISIS is fast, while leaving it (to anything) needs the full dwell. The first
    label is confirmed the same way (before it, ``regime_label`` is None).

    Args:
        raw: index = dates (increasing), columns ``raw_label`` and ``confidence``.
        memory: the state returned by a previous call whose input ended the day before ``raw``
            starts; None for a fresh start. Not modified.

    Returns:
        ``(frame, memory)``: ``frame`` has ``raw``'s index and columns ``regime_label,
        days_in_regime, candidate_label, candidate_days``; ``memory`` is the state after the
        last row. Splitting the input anywhere and chaining the calls through ``memory``
        gives exactly the result of one call.
    """
    if min_dwell < 1 or crisis_fast_track < 1:
        raise ValueError("min_dwell and crisis_fast_track must be >= 1")
    state = replace(memory) if memory is not None else RegimeMemory()
    labels = raw["raw_label"].to_numpy(dtype=object)
    conf = raw["confidence"].to_numpy(dtype="float64")
    n = len(raw)
    out_label = np.empty(n, dtype=object)
    out_days = np.zeros(n, dtype="int64")
    out_cand = np.empty(n, dtype=object)
    out_cand_days = np.zeros(n, dtype="int64")
    for i in range(n):  # a state machine: inherently sequential, one step per day
        r = labels[i]
        qualifies = r is not None and not pd.isna(r) and r != state.label and conf[i] >= enter_confidence
        if qualifies:
            if r == state.candidate:
                state.candidate_days += 1
            else:
                state.candidate, state.candidate_days = r, 1
            needed = crisis_fast_track if r == CRISIS else min_dwell
            if state.candidate_days >= needed:
                state.label, state.days_in_regime = r, 0
                state.candidate, state.candidate_days = None, 0
        else:
            state.candidate, state.candidate_days = None, 0
        if state.label is not None:
            state.days_in_regime += 1
        out_label[i], out_days[i] = state.label, state.days_in_regime
        out_cand[i], out_cand_days[i] = state.candidate, state.candidate_days
    frame = pd.DataFrame(
        {
            "regime_label": pd.Series(out_label, dtype=object),
            "days_in_regime": out_days,
            "candidate_label": pd.Series(out_cand, dtype=object),
            "candidate_days": out_cand_days,
        }
    )
    frame.index = raw.index
    return frame, replace(state)


def transitions(states: pd.DataFrame) -> pd.DataFrame:
    """Days on which a region's published regime changed.

    ``states`` has columns ``date, region, regime_label, confidence``. Rows without a label
    (the warm-up) are ignored; within each region, in date order, a row whose label differs
    from the previous labelled row is a transition. The first labelled row of a region is not.
    Returns ``region, date, from_label, to_label, confidence`` sorted by region and date.
    """
    cols = ["region", "date", "from_label", "to_label", "confidence"]
    s = states.loc[states["regime_label"].notna(), ["date", "region", "regime_label", "confidence"]]
    s = s.sort_values(["region", "date"], kind="stable")
    prev = s.groupby("region", sort=False)["regime_label"].shift(1)
    changed = prev.notna() & (prev != s["regime_label"])
    out = pd.DataFrame(
        {
            "region": s.loc[changed, "region"],
            "date": s.loc[changed, "date"],
            "from_label": prev[changed].astype(object),
            "to_label": s.loc[changed, "regime_label"].astype(object),
            "confidence": s.loc[changed, "confidence"],
        }
    )
    return out[cols].reset_index(drop=True)


# --------------------------------------------------------------------------- walk-forward pipeline
@dataclass(frozen=True)
class FittedRegimeModel:
    """A regime model and the encoder it sits on, both fitted on rows dated before ``fit_date``.

    The training rows (``train_start`` .. ``train_end``, ``n_train`` of them) are embedded with
    ``encoder`` itself, so the model and the embeddings it will see share one coordinate
    system.
    """

    model_id: str
    fit_date: pd.Timestamp
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    n_train: int
    encoder: FittedEncoder
    model: NumericRegimeModel


def fit_regime_walk_forward(
    features: pd.DataFrame,
    feature_cols: list[str],
    encoders: list[FittedEncoder],
    n_clusters: int = DEFAULT_N_CLUSTERS,
    random_state: int = 0,
    prefix: str = "",
) -> list[FittedRegimeModel]:
    """One :class:`NumericRegimeModel` per encoder, fitted at the encoder's ``fit_date``.

    ``features`` are market features (one row per date, with :data:`ECONOMIC_COLUMNS`); the
    rows dated before the fit date with finite features are embedded with that encoder and
    clustered, with their raw economics naming the clusters. Ids read
    ``f"{prefix}regime-{D:%Y%m%d}"``.
    """
    dates = pd.to_datetime(features["date"]).astype("datetime64[ns]")
    X_all = features[list(feature_cols)].to_numpy(dtype="float64")
    econ_all = features[list(ECONOMIC_COLUMNS)].to_numpy(dtype="float64")
    finite = np.isfinite(X_all).all(axis=1) & np.isfinite(econ_all).all(axis=1)
    out: list[FittedRegimeModel] = []
    for enc in sorted(encoders, key=lambda e: e.fit_date):
        train = (dates < enc.fit_date).to_numpy() & finite
        if train.sum() < n_clusters:
            continue
        Z = enc.encoder.transform(X_all[train])
        econ = pd.DataFrame(econ_all[train], columns=list(ECONOMIC_COLUMNS))
        model = NumericRegimeModel(n_clusters=n_clusters, random_state=random_state).fit(Z, econ)
        train_dates = dates[train]
        out.append(
            FittedRegimeModel(
                model_id=f"{prefix}regime-{enc.fit_date:%Y%m%d}",
                fit_date=enc.fit_date,
                train_start=pd.Timestamp(train_dates.min()),
                train_end=pd.Timestamp(train_dates.max()),
                n_train=int(train.sum()),
                encoder=enc,
                model=model,
            )
        )
    return out


def predict_regimes_walk_forward(features: pd.DataFrame, feature_cols: list[str], models: list[FittedRegimeModel]) -> pd.DataFrame:
    """Raw regimes of each market row with the model in force on its date.

    Rows before the first model, or with a non-finite feature, are dropped. Columns: ``date,
    encoder_id, regime_model_id, train_end, z_numeric, raw_label, confidence, dist_*``.
    """
    models = sorted(models, key=lambda m: m.fit_date)
    dates = pd.to_datetime(features["date"]).astype("datetime64[ns]").reset_index(drop=True)
    X_all = features[list(feature_cols)].to_numpy(dtype="float64")
    which = model_index_for_dates(dates, [m.fit_date for m in models]) if models else np.full(len(dates), -1)
    keep = (which >= 0) & np.isfinite(X_all).all(axis=1)
    parts = []
    for i in np.unique(which[keep]):
        rows = keep & (which == i)
        m = models[i]
        Z = m.encoder.encoder.transform(X_all[rows])
        pred = m.model.predict(Z)
        head = pd.DataFrame(
            {
                "date": dates[rows].to_numpy(),
                "encoder_id": m.encoder.model_id,
                "regime_model_id": m.model_id,
                "train_end": m.train_end,
                "z_numeric": pd.Series(Z.tolist(), dtype=object),
            }
        )
        parts.append(pd.concat([head, pred], axis=1))
    if not parts:
        cols = ["date", "encoder_id", "regime_model_id", "train_end", "z_numeric", "raw_label", "confidence"] + [f"dist_{lab}" for lab in REGIME_LABELS]
        return pd.DataFrame({c: [] for c in cols})
    return pd.concat(parts, ignore_index=True)


def regime_history(returns_wide: pd.DataFrame, **options) -> pd.DataFrame:
    """The published market regime on every date: :func:`regime_pipeline` without the models.

    ``options`` are :func:`regime_pipeline`'s keyword arguments.
    """
    return regime_pipeline(returns_wide, **options)[0]


# --------------------------------------------------------------------------- incremental pieces
@dataclass(frozen=True)
class RegimeSpec:
    """Settings of the market regime pipeline (the defaults are the graph's)."""

    window_spec: str = DEFAULT_WINDOW_SPEC
    refit_frequency: str = DEFAULT_REFIT_FREQUENCY
    min_train_rows: int = DEFAULT_MIN_TRAIN_ROWS
    n_components: int = DEFAULT_REGIME_N_COMPONENTS
    n_clusters: int = DEFAULT_N_CLUSTERS
    random_state: int = 0
    min_dwell: int = DEFAULT_MIN_DWELL
    enter_confidence: float = DEFAULT_ENTER_CONFIDENCE
    crisis_fast_track: int = DEFAULT_CRISIS_FAST_TRACK
    region: str = "US"

    @property
    def prefix(self) -> str:
        return f"{self.region}-market-{self.window_spec}-"


#: Bumped when the fitting code changes in a way the training rows do not show: stored models
#: whose fingerprint was made under another version are refitted.
REGIME_FIT_VERSION: int = 1

#: Columns of a state row that come from the model (not from the path): used to check that a
#: stored row still matches what the current data and models give before its memory is carried.
PREDICTION_COLUMNS: list[str] = ["raw_label", "confidence", *[f"dist_{lab}" for lab in REGIME_LABELS], "encoder_id", "regime_model_id", "train_end", "z_numeric"]

STATE_COLUMNS: list[str] = (
    ["date", "region", "regime_label", "confidence", "raw_label"]
    + [f"dist_{lab}" for lab in REGIME_LABELS]
    + ["days_in_regime", "candidate_label", "candidate_days", "encoder_id", "regime_model_id", "train_end", "z_numeric"]
)


@dataclass(frozen=True)
class RegimeFitPlan:
    """A fit :func:`regime_pipeline` makes: its date and training span (see :func:`plan_regime_fits`)."""

    model_id: str
    fit_date: pd.Timestamp
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    n_train: int


def regime_features(returns_wide: pd.DataFrame, spec: RegimeSpec = RegimeSpec()) -> pd.DataFrame:
    """Market features of the regime pipeline (:func:`market_features` over ``spec.window_spec``)."""
    return market_features(returns_wide, WINDOW_SPECS[spec.window_spec])


def _feature_arrays(features: pd.DataFrame) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]:
    dates = pd.to_datetime(features["date"]).astype("datetime64[ns]").reset_index(drop=True)
    X = features[REGIME_FEATURE_COLUMNS].to_numpy(dtype="float64")
    econ = features[list(ECONOMIC_COLUMNS)].to_numpy(dtype="float64")
    return dates, X, econ, np.isfinite(X).all(axis=1)


def plan_regime_fits(features: pd.DataFrame, spec: RegimeSpec = RegimeSpec()) -> list[RegimeFitPlan]:
    """The (encoder, regime model) fits :func:`regime_pipeline` makes on ``features``, without fitting.

    The same fit dates (:func:`refit_dates` of the feature dates) and the same skip rules as
    :func:`fit_walk_forward` (fewer than ``min_train_rows`` finite rows) and
    :func:`fit_regime_walk_forward` (fewer than ``n_clusters``), in fit-date order.
    """
    dates, X, econ, finite = _feature_arrays(features)
    both = finite & np.isfinite(econ).all(axis=1)
    plans: list[RegimeFitPlan] = []
    for fit_date in refit_dates(pd.DatetimeIndex(dates), spec.refit_frequency):
        fit_date = pd.Timestamp(fit_date)
        before = (dates < fit_date).to_numpy()
        n_enc = int((before & finite).sum())
        train = before & both
        if n_enc < spec.min_train_rows or n_enc == 0 or int(train.sum()) < spec.n_clusters:
            continue
        train_dates = dates[train]
        plans.append(
            RegimeFitPlan(
                model_id=f"{spec.prefix}regime-{fit_date:%Y%m%d}",
                fit_date=fit_date,
                train_start=pd.Timestamp(train_dates.min()),
                train_end=pd.Timestamp(train_dates.max()),
                n_train=int(train.sum()),
            )
        )
    return plans


def training_fingerprint(features: pd.DataFrame, plan: RegimeFitPlan, spec: RegimeSpec = RegimeSpec()) -> str:
    """sha256 over everything :func:`fit_planned` depends on: the spec, :data:`REGIME_FIT_VERSION`,
    the mixture settings, the fit date and the training rows (dates, features, economics).

    A stored model with the same fingerprint was fitted on exactly these rows with these
    settings, so it is the model a refit would give (fits are deterministic for a seed).
    """
    import hashlib
    import json

    dates, X, econ, finite = _feature_arrays(features)
    before = (dates < plan.fit_date).to_numpy()
    header = json.dumps(
        {
            "version": REGIME_FIT_VERSION, "fit_date": str(plan.fit_date), "model_id": plan.model_id,
            "spec": {k: getattr(spec, k) for k in ("window_spec", "min_train_rows", "n_components", "n_clusters", "random_state", "region")},
            "features": REGIME_FEATURE_COLUMNS, "economics": list(ECONOMIC_COLUMNS),
            "gmm": [GMM_N_INIT, GMM_COVARIANCE_TYPE, GMM_REG_COVAR, GMM_MAX_ITER],
        },
        sort_keys=True,
    ).encode()
    digest = hashlib.sha256(header)
    day_ns = dates.to_numpy().astype("int64")
    # the encoder trains on rows with finite features, the mixture on those with finite economics too
    for mask in (before & finite, before & finite & np.isfinite(econ).all(axis=1)):
        digest.update(np.ascontiguousarray(day_ns[mask]).tobytes())
        digest.update(np.ascontiguousarray(X[mask]).tobytes())
        digest.update(np.ascontiguousarray(econ[mask]).tobytes())
    return digest.hexdigest()


def fit_planned(features: pd.DataFrame, plan: RegimeFitPlan, spec: RegimeSpec = RegimeSpec()) -> FittedRegimeModel:
    """Fit the encoder and regime model of one planned fit date.

    Each walk-forward fit depends only on the rows before its own date, so this is the model
    :func:`regime_pipeline` fits on that date (the same bytes: ``test_fit_planned_equals_walk_forward``).
    """
    encoders = fit_walk_forward(features, REGIME_FEATURE_COLUMNS, pd.DatetimeIndex([plan.fit_date]), min_train_rows=spec.min_train_rows, n_components=spec.n_components, prefix=spec.prefix)
    models = fit_regime_walk_forward(features, REGIME_FEATURE_COLUMNS, encoders, n_clusters=spec.n_clusters, random_state=spec.random_state, prefix=spec.prefix)
    if len(models) != 1 or models[0].model_id != plan.model_id:
        raise ValueError(f"planned fit {plan.model_id} did not produce its model (got {[m.model_id for m in models]})")
    return models[0]


def regime_row_dates(features: pd.DataFrame, plans: list[RegimeFitPlan]) -> pd.DatetimeIndex:
    """Dates that get a state row: a model is in force and every feature is finite."""
    dates, _, _, finite = _feature_arrays(features)
    which = model_index_for_dates(dates, [p.fit_date for p in plans]) if plans else np.full(len(dates), -1)
    return pd.DatetimeIndex(dates[(which >= 0) & finite].to_numpy())


def plans_in_force(plans: list[RegimeFitPlan], start: pd.Timestamp | None, end: pd.Timestamp) -> list[RegimeFitPlan]:
    """The planned fits in force on some date of ``start`` … ``end`` (``start`` None: from the first)."""
    fits = pd.DatetimeIndex([p.fit_date for p in plans])
    lo = 0 if start is None else max(int(np.searchsorted(fits, pd.Timestamp(start), side="right")) - 1, 0)
    return [p for p in plans[lo:] if p.fit_date <= pd.Timestamp(end)]


def memory_of_row(row: pd.Series) -> RegimeMemory:
    """The hysteresis state after a stored state row (its ``regime_label``, ``candidate_*`` and ``days_in_regime``)."""

    def label(value: object) -> str | None:
        return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)

    return RegimeMemory(
        label=label(row["regime_label"]),
        candidate=label(row["candidate_label"]),
        candidate_days=int(row["candidate_days"]),
        days_in_regime=int(row["days_in_regime"]),
    )


def _same_prediction(stored: pd.Series, fresh: pd.Series) -> bool:
    for col in PREDICTION_COLUMNS:
        a, b = stored[col], fresh[col]
        if col == "z_numeric":
            if not np.array_equal(np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")):
                return False
        elif col == "train_end":
            if pd.Timestamp(a) != pd.Timestamp(b):
                return False
        elif a != b:
            return False
    return True


def regime_states(
    features: pd.DataFrame,
    models: list[FittedRegimeModel],
    start: pd.Timestamp | None,
    end: pd.Timestamp,
    spec: RegimeSpec = RegimeSpec(),
    memory: RegimeMemory | None = None,
) -> tuple[pd.DataFrame, RegimeMemory]:
    """State rows dated ``start`` … ``end``, the hysteresis resumed from ``memory``.

    ``models`` must hold every model in force on a date of the range (more is fine). ``memory``
    is the state after the last state row before ``start`` (None: a fresh start, right when no
    state row precedes ``start``). A day's raw regime depends only on its features and the model
    in force (row by row: :meth:`NumericRegimeModel.predict_proba`), and :func:`smooth_regimes`
    resumed from memory equals one uninterrupted run, so the rows equal those of
    :func:`regime_pipeline` on the same features.
    """
    dates = pd.to_datetime(features["date"]).astype("datetime64[ns]")
    keep = dates <= pd.Timestamp(end)
    if start is not None:
        keep &= dates >= pd.Timestamp(start)
    raw = predict_regimes_walk_forward(features.loc[keep].reset_index(drop=True), REGIME_FEATURE_COLUMNS, models)
    smoothed, after = smooth_regimes(
        raw.set_index("date")[["raw_label", "confidence"]],
        memory=memory,
        min_dwell=spec.min_dwell,
        enter_confidence=spec.enter_confidence,
        crisis_fast_track=spec.crisis_fast_track,
    )
    out = pd.concat([raw.reset_index(drop=True), smoothed.reset_index(drop=True)], axis=1)
    out.insert(1, "region", spec.region)
    return out[STATE_COLUMNS], after


def resume_regime_states(
    features: pd.DataFrame,
    models: list[FittedRegimeModel],
    previous: pd.Series,
    start: pd.Timestamp,
    end: pd.Timestamp,
    spec: RegimeSpec = RegimeSpec(),
) -> pd.DataFrame | None:
    """State rows ``start`` … ``end`` carried on from ``previous``, the stored row of the last state date before ``start``.

    ``previous`` (with its date in ``date``) is trusted only if its model-given columns
    (:data:`PREDICTION_COLUMNS`) equal what ``models`` give for that date today, bit for bit;
    then its path columns are exactly the hysteresis state after that day and the rows equal a
    replay from the first day. Otherwise (a row from other data or other code) returns None:
    replay with :func:`regime_states` from the first state date.
    ``models`` must hold the models in force from ``previous``'s date to ``end``.
    """
    prev_date = pd.Timestamp(previous["date"])
    fresh, _ = regime_states(features, models, prev_date, prev_date, spec)
    if len(fresh) != 1 or not _same_prediction(previous, fresh.iloc[0]):
        return None
    later = features[pd.to_datetime(features["date"]) >= pd.Timestamp(start)]
    out, _ = regime_states(later, models, start, end, spec, memory=memory_of_row(previous))
    return out


def regime_pipeline(
    returns_wide: pd.DataFrame,
    window_spec: str = DEFAULT_WINDOW_SPEC,
    refit_frequency: str = DEFAULT_REFIT_FREQUENCY,
    min_train_rows: int = DEFAULT_MIN_TRAIN_ROWS,
    n_components: int = DEFAULT_REGIME_N_COMPONENTS,
    n_clusters: int = DEFAULT_N_CLUSTERS,
    random_state: int = 0,
    min_dwell: int = DEFAULT_MIN_DWELL,
    enter_confidence: float = DEFAULT_ENTER_CONFIDENCE,
    crisis_fast_track: int = DEFAULT_CRISIS_FAST_TRACK,
    region: str = "US",
) -> tuple[pd.DataFrame, list[FittedRegimeModel]]:
    """The published market regime of ``region`` on every date, fully walk-forward, and its models.

    Pipeline: :func:`~prometheus_assets.core.encoders.market_features` over the window
    ``window_spec`` → an encoder fitted at each refit date (first session of each year by
    default) on market rows strictly before it → a :class:`NumericRegimeModel` fitted at the
    same date on those rows' embeddings and economics → raw regimes for the dates the pair is
    in force → :func:`smooth_regimes`.

    Returns ``(states, models)``: one row per date from the first model's fit date — ``date,
    region, regime_label, confidence, raw_label, dist_*, days_in_regime, candidate_label,
    candidate_days, encoder_id, regime_model_id, train_end, z_numeric`` (``regime_label`` is None
    until the first label is confirmed) — and the :class:`FittedRegimeModel` list.

    The daily asset composes the same pieces incrementally (:func:`plan_regime_fits`, stored
    models, :func:`resume_regime_states`); this is the one-shot reference.
    """
    spec = RegimeSpec(window_spec, refit_frequency, min_train_rows, n_components, n_clusters, random_state, min_dwell, enter_confidence, crisis_fast_track, region)
    feats = regime_features(returns_wide, spec)
    models = [fit_planned(feats, plan, spec) for plan in plan_regime_fits(feats, spec)]
    dates = pd.to_datetime(feats["date"])
    end = dates.max() if len(dates) else pd.Timestamp.max
    states, _ = regime_states(feats, models, None, end, spec)
    return states, models
