"""The numeric embedding space: ``z_numeric`` per (entity_type, entity_id, as_of_date, window_spec).

Composes :mod:`prometheus_assets.core.encoders`: for every window spec, the trailing-window
features of each instrument and of the market entity (region ``US``, the equal-weight market of
the source's instruments) are projected by a walk-forward :class:`NumericEncoder` (refit on the
first session of each year on rows strictly before it). Each row records the ``model_id`` that
produced it. Rows before an entity family's first model (the warm-up) are not emitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from prometheus_assets.core.encoders import (
    DEFAULT_N_COMPONENTS,
    INSTRUMENT_FEATURE_COLUMNS,
    MARKET_FEATURE_COLUMNS,
    WINDOW_SPECS,
    FittedEncoder,
    embed_walk_forward,
    fit_walk_forward,
    instrument_features,
    market_features,
    refit_dates,
)

EMBEDDING_COLUMNS: list[str] = ["as_of_date", "entity_type", "entity_id", "window_spec", "model_id", "z_numeric"]
MARKET_REGION = "US"


@dataclass(frozen=True)
class EmbeddingSpace:
    """Embeddings for the requested dates, the encoders that produced them, and warm-up counts."""

    embeddings: pd.DataFrame
    encoders: list[FittedEncoder]
    warmup_rows: dict[str, int]


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
    returns = returns.loc[:emit_to]
    parts: list[pd.DataFrame] = []
    used: dict[str, FittedEncoder] = {}
    warmup: dict[str, int] = {}
    for spec in window_specs:
        window = WINDOW_SPECS[spec]
        families = (
            ("instrument", instrument_features(returns, window), INSTRUMENT_FEATURE_COLUMNS),
            ("market", market_features(returns, window).assign(entity_id=MARKET_REGION), MARKET_FEATURE_COLUMNS),
        )
        for entity_type, feats, cols in families:
            feats = feats.dropna(subset=cols)
            if feats.empty:
                warmup[f"{entity_type}/{spec}"] = 0
                continue
            fits = refit_dates(pd.DatetimeIndex(feats["date"].unique()).sort_values(), refit_frequency)
            # Each fit is independent (trained on every row before its date), so only the fits in
            # force on an emitted date are made: the daily run fits one encoder, not one per year
            # of history, and embeds one day, not the whole history. Same models, same rows.
            models = fit_walk_forward(feats, cols, fits_in_force(fits, emit_from, emit_to), n_components=n_components, prefix=f"{entity_type}-{spec}-")
            emitted = feats[(feats["date"] >= emit_from) & (feats["date"] <= emit_to)]
            z = embed_walk_forward(emitted, cols, models)
            warmup[f"{entity_type}/{spec}"] = int(z.attrs.get("warmup_rows", 0))
            for model in models:
                if model.model_id in set(z["model_id"]):
                    used[model.model_id] = model
            parts.append(z.assign(entity_type=entity_type, window_spec=spec))
    if parts:
        out = pd.concat(parts, ignore_index=True).rename(columns={"date": "as_of_date"})
        out = out.sort_values(["as_of_date", "entity_type", "entity_id", "window_spec"], kind="stable").reset_index(drop=True)
    else:
        out = pd.DataFrame({c: [] for c in EMBEDDING_COLUMNS})
    return EmbeddingSpace(embeddings=out[EMBEDDING_COLUMNS], encoders=list(used.values()), warmup_rows=warmup)
