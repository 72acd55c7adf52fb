"""The numeric embedding space: ``z_numeric`` per (entity_type, entity_id, as_of_date, window_spec).

Composes :mod:`prometheus_assets.core.encoders`: for every window spec, the trailing-window
features of each instrument and of the market entity (region ``US``, the equal-weight market of
the source's instruments) are projected by a walk-forward :class:`NumericEncoder` (refit on the
first session of each year on rows strictly before it). Each row records the ``model_id`` that
produced it. Rows before an entity family's first model (the warm-up) are not emitted.

Two ways to the same rows:

* from the first day (:func:`numeric_embedding_space`): the features of the whole history, the
  encoders in force on the emitted range fitted on every earlier row;
* resumed (:func:`plan_embedding_space` with an :class:`EmbeddingCarry`, then
  :func:`embed_planned` with stored encoders): the features of a lookback window only (they are
  start-invariant, and the market's expanding drawdown continues from the carried
  :class:`~prometheus_assets.core.encoders.MarketLevel`), the fit dates continued from the carried
  latest fit date of each family, and the encoders in force supplied by the caller instead of
  refitted (the caller decides whether a stored one may be reused: :func:`encoder_header`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prometheus_assets.core.encoders import (
    DEFAULT_MIN_TRAIN_ROWS,
    DEFAULT_N_COMPONENTS,
    FEATURE_VERSION,
    INSTRUMENT_FEATURE_COLUMNS,
    MARKET_FEATURE_COLUMNS,
    SHORT_RETURN_DAYS,
    WINDOW_SPECS,
    FittedEncoder,
    MarketLevel,
    embed_walk_forward,
    encoder_model_id,
    fit_walk_forward,
    instrument_features,
    market_features,
    market_level_at,
    model_index_for_dates,
    refit_dates,
)

EMBEDDING_COLUMNS: list[str] = ["as_of_date", "entity_type", "entity_id", "window_spec", "model_id", "z_numeric"]
MARKET_REGION = "US"
#: Version of the :class:`EmbeddingCarry` JSON layout.
CARRY_VERSION = 1


@dataclass(frozen=True)
class EmbeddingCarry:
    """What the embedding space carries out of the session ``date`` into the next run.

    ``market``: the market level after ``date``; ``last_fits``: per family (``"instrument/21d"``,
    ``"market/63d"``, …) the latest refit date on or before ``date`` (None: no feature row yet).
    Both are functions of the rows dated up to ``date`` only.
    """

    date: pd.Timestamp
    market: MarketLevel
    last_fits: dict[str, pd.Timestamp | None]

    def payload(self) -> dict:
        """JSON-ready content; floats as ``float.hex`` so that they round-trip bit for bit."""
        return {
            "version": CARRY_VERSION, "feature_version": FEATURE_VERSION, "date": f"{self.date:%Y-%m-%d}",
            "market_level": float(self.market.level).hex(), "market_peak": float(self.market.peak).hex(),
            "last_fits": {k: (None if v is None else f"{v:%Y-%m-%d}") for k, v in sorted(self.last_fits.items())},
        }

    @classmethod
    def from_payload(cls, payload: dict) -> EmbeddingCarry | None:
        """The carry of :meth:`payload` (None when of another layout or feature version)."""
        if payload.get("version") != CARRY_VERSION or payload.get("feature_version") != FEATURE_VERSION:
            return None
        date = pd.Timestamp(payload["date"])
        market = MarketLevel(date, float.fromhex(payload["market_level"]), float.fromhex(payload["market_peak"]))
        fits = {k: (None if v is None else pd.Timestamp(v)) for k, v in payload["last_fits"].items()}
        return cls(date, market, fits)


@dataclass(frozen=True)
class EmbeddingSpace:
    """Embeddings for the requested dates, the encoders that produced them, warm-up counts, and the carry out of the last date."""

    embeddings: pd.DataFrame
    encoders: list[FittedEncoder]
    warmup_rows: dict[str, int]
    carry: EmbeddingCarry


@dataclass(frozen=True)
class FamilyPlan:
    """One (entity type, window spec) family: its usable feature rows and the fit dates the emitted rows need."""

    entity_type: str
    spec: str
    columns: list[str]
    features: pd.DataFrame
    fits: pd.DatetimeIndex

    @property
    def name(self) -> str:
        return f"{self.entity_type}/{self.spec}"

    @property
    def prefix(self) -> str:
        return f"{self.entity_type}-{self.spec}-"

    def model_id(self, fit_date: pd.Timestamp) -> str:
        """The id :func:`fit_walk_forward` gives the fit on ``fit_date``."""
        return encoder_model_id(self.prefix, fit_date)


@dataclass(frozen=True)
class EmbeddingPlan:
    """What emitting ``emit_from`` … ``emit_to`` takes: per family the features and the fits needed."""

    emit_from: pd.Timestamp
    emit_to: pd.Timestamp
    resumed: bool
    families: list[FamilyPlan]
    carry: EmbeddingCarry

    def needed(self) -> list[tuple[FamilyPlan, pd.Timestamp]]:
        """(family, fit date) of every encoder the plan needs."""
        return [(f, d) for f in self.families for d in f.fits]


def fits_in_force(fits: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """The fit dates whose model can be in force on a date of ``start``…``end``.

    The latest fit on or before ``start`` and every fit after it up to ``end``. (A fit with too
    few training rows is skipped by ``fit_walk_forward``; training rows only grow with the fit
    date, so if the latest fit before ``start`` is skipped, every earlier one is too.)
    """
    fits = pd.DatetimeIndex(fits).sort_values()
    before = fits[fits <= pd.Timestamp(start)]
    first = before[-1] if len(before) else pd.Timestamp.min
    return fits[(fits >= first) & (fits <= pd.Timestamp(end))]


def encoder_header(family: FamilyPlan, fit_date: pd.Timestamp, n_components: int = DEFAULT_N_COMPONENTS,
                   min_train_rows: int = DEFAULT_MIN_TRAIN_ROWS, refit_frequency: str = "YS") -> dict:
    """Everything besides the returns rows dated before ``fit_date`` that an encoder's training rows depend on.

    An encoder fitted on ``fit_date`` is trained on the family's feature rows dated strictly
    before it. Each is a function of the returns rows dated up to its own date (the features are
    point-in-time, start- and width-invariant: see :mod:`prometheus_assets.core.encoders`) and of
    this header; so a stored encoder recorded with this header and the digests of the returns
    files holding the rows dated before ``fit_date`` may be reused while both are unchanged.
    """
    return {"kind": "numeric_encoder", "model_id": family.model_id(fit_date), "fit_date": f"{pd.Timestamp(fit_date):%Y-%m-%d}",
            "feature_version": FEATURE_VERSION, "entity_type": family.entity_type, "window": WINDOW_SPECS[family.spec],
            "columns": list(family.columns), "n_components": int(n_components), "min_train_rows": int(min_train_rows),
            "refit_frequency": refit_frequency}


def lookback_rows_missing(returns: pd.DataFrame, carry: EmbeddingCarry, window_specs: tuple[str, ...] = tuple(WINDOW_SPECS)) -> int:
    """How many more rows dated up to ``carry.date`` a resumed plan needs (0: the window is long enough)."""
    have = int((pd.DatetimeIndex(returns.index) <= carry.date).sum())
    longest = max([WINDOW_SPECS[s] for s in window_specs] + [SHORT_RETURN_DAYS])
    return max(longest - 1 - have, 0)


def plan_embedding_space(
    returns: pd.DataFrame,
    emit_from: pd.Timestamp,
    emit_to: pd.Timestamp,
    carry: EmbeddingCarry | None = None,
    window_specs: tuple[str, ...] = tuple(WINDOW_SPECS),
    refit_frequency: str = "YS",
) -> EmbeddingPlan:
    """The features and fit dates needed to emit ``emit_from``…``emit_to`` from wide ``returns`` (history ≤ ``emit_to``).

    Without ``carry``, ``returns`` must start at the beginning of the history: every family's fit
    dates are the first feature date of each year, and the fits in force on the range are planned
    (to be fitted on every earlier row by :func:`fit_planned_encoders`).

    With ``carry`` (the state after the session before ``emit_from``), ``returns`` is a lookback
    window holding at least ``longest window - 1`` rows dated up to ``carry.date``
    (:func:`lookback_rows_missing`) and every row after it. The feature rows dated after
    ``carry.date`` equal the whole-history ones (start-invariant window statistics; the market
    level continues from ``carry.market``), and the fit dates continue from ``carry.last_fits``:
    a year's first feature date is a fit date, and the carried one is the latest on or before
    ``carry.date``, so the fits on or after it are those of ``{carried} ∪ {feature dates after}``.
    Only the fits in force on an emitted row are planned; their encoders come from the caller.
    """
    emit_from, emit_to = pd.Timestamp(emit_from), pd.Timestamp(emit_to)
    returns = returns.loc[:emit_to]
    if carry is not None:
        if not carry.date < emit_from:
            raise ValueError("the carry must be of a session before emit_from")
        if lookback_rows_missing(returns, carry, window_specs):
            raise ValueError(f"the lookback window lacks {lookback_rows_missing(returns, carry, window_specs)} rows dated up to {carry.date:%Y-%m-%d}")
    start = carry.market if carry is not None else MarketLevel()
    families: list[FamilyPlan] = []
    last_fits: dict[str, pd.Timestamp | None] = {}
    for spec in window_specs:
        window = WINDOW_SPECS[spec]
        for entity_type, cols in (("instrument", INSTRUMENT_FEATURE_COLUMNS), ("market", MARKET_FEATURE_COLUMNS)):
            if entity_type == "instrument":
                feats = instrument_features(returns, window)
                if carry is not None:
                    feats = feats[feats["date"] > carry.date]
            else:
                feats = market_features(returns, window, start).assign(entity_id=MARKET_REGION)
            feats = feats.dropna(subset=cols).reset_index(drop=True)
            name = f"{entity_type}/{spec}"
            known = pd.DatetimeIndex(feats["date"].unique())
            if carry is not None and carry.last_fits.get(name) is not None:
                known = known.append(pd.DatetimeIndex([carry.last_fits[name]]))
            fits = refit_dates(known.sort_values(), refit_frequency) if len(known) else pd.DatetimeIndex([], dtype="datetime64[ns]")
            before_end = fits[fits <= emit_to]
            last_fits[name] = pd.Timestamp(before_end[-1]) if len(before_end) else None
            emitted = feats[(feats["date"] >= emit_from) & (feats["date"] <= emit_to)]
            if carry is None:
                needed = fits_in_force(fits, emit_from, emit_to) if len(feats) else fits[:0]
            else:
                # only the fits an emitted row uses (a resumed run loads, not fits, them)
                which = model_index_for_dates(emitted["date"], fits)
                needed = fits[np.unique(which[which >= 0])]
            families.append(FamilyPlan(entity_type, spec, list(cols), feats, pd.DatetimeIndex(needed)))
    market = market_level_at(returns, emit_to, start)
    return EmbeddingPlan(emit_from, emit_to, carry is not None, families, EmbeddingCarry(emit_to, market, last_fits))


def fit_planned_encoders(plan: EmbeddingPlan, n_components: int = DEFAULT_N_COMPONENTS, min_train_rows: int = DEFAULT_MIN_TRAIN_ROWS) -> dict[str, FittedEncoder]:
    """Fit the plan's encoders on every row dated before each fit date (a whole-history plan only).

    A fit with fewer than ``min_train_rows`` training rows is skipped (the warm-up).
    """
    if plan.resumed:
        raise ValueError("a resumed plan holds a lookback window only: its encoders cannot be fitted from it")
    out: dict[str, FittedEncoder] = {}
    for family in plan.families:
        if len(family.fits):
            for model in fit_walk_forward(family.features, family.columns, family.fits, min_train_rows=min_train_rows, n_components=n_components, prefix=family.prefix):
                out[model.model_id] = model
    return out


def embed_planned(plan: EmbeddingPlan, encoders: Mapping[str, FittedEncoder]) -> EmbeddingSpace:
    """The plan's emitted rows, each embedded by the encoder in force on its date (of ``encoders``, by model id).

    A planned fit without an encoder is a skipped (warm-up) fit: the rows that would use it are
    counted in ``warmup_rows`` instead of emitted. (A resumed plan is given every encoder it needs.)
    """
    parts: list[pd.DataFrame] = []
    used: dict[str, FittedEncoder] = {}
    warmup: dict[str, int] = {}
    for family in plan.families:
        feats = family.features
        if feats.empty:
            warmup[family.name] = 0
            continue
        models = [encoders[family.model_id(d)] for d in family.fits if family.model_id(d) in encoders]
        emitted = feats[(feats["date"] >= plan.emit_from) & (feats["date"] <= plan.emit_to)]
        z = embed_walk_forward(emitted, family.columns, models)
        warmup[family.name] = int(z.attrs.get("warmup_rows", 0))
        ids = set(z["model_id"])
        used.update({m.model_id: m for m in models if m.model_id in ids})
        parts.append(z.assign(entity_type=family.entity_type, window_spec=family.spec))
    if parts:
        out = pd.concat(parts, ignore_index=True).rename(columns={"date": "as_of_date"})
        out = out.sort_values(["as_of_date", "entity_type", "entity_id", "window_spec"], kind="stable").reset_index(drop=True)
    else:
        out = pd.DataFrame({c: [] for c in EMBEDDING_COLUMNS})
    return EmbeddingSpace(embeddings=out[EMBEDDING_COLUMNS], encoders=list(used.values()), warmup_rows=warmup, carry=plan.carry)


def numeric_embedding_space(
    returns: pd.DataFrame,
    emit_from: pd.Timestamp,
    emit_to: pd.Timestamp,
    window_specs: tuple[str, ...] = tuple(WINDOW_SPECS),
    n_components: int = DEFAULT_N_COMPONENTS,
    refit_frequency: str = "YS",
) -> EmbeddingSpace:
    """Embeddings dated ``emit_from``…``emit_to`` from wide ``returns`` (history ≤ ``emit_to``).

    ``returns`` must start at the beginning of the history: encoders are fitted walk-forward on
    every earlier window (expanding), so the same history gives the same models whatever range
    is emitted. Only encoders in force on an emitted date are fitted and returned;
    ``warmup_rows`` counts the emitted range's rows dated before the first encoder.
    """
    plan = plan_embedding_space(returns, emit_from, emit_to, None, window_specs, refit_frequency)
    return embed_planned(plan, fit_planned_encoders(plan, n_components=n_components))

