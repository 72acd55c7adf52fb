"""From the alpha tables to one book's combined alpha: source panels, confidences, combination.

A book names its alpha sources (:func:`prometheus_assets.core.books.parse_source`). Each source
becomes a *panel*: a wide score (dates × symbols), a wide confidence in [0, 1] and a horizon.

- ``assessment:<H>d:<kind>``: score = the assessment z-score of that horizon and model kind;
  confidence = the source's own point-in-time trailing rank IC
  (:func:`prometheus_assets.core.portfolio.source_confidence`), the same for every symbol.
- ``strategy:<name>``: score = the strategy's ``alpha_score``; confidence = trailing rank IC of
  the strategy × the signal row's own ``confidence``.

Everything is computed from data dated ≤ t for day t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prometheus_assets.core import portfolio
from prometheus_assets.core.books import BookConfig, parse_source
from prometheus_assets.core.frames import to_wide


#: The columns of ``strategy_signals`` and ``assessment_scores`` that alpha sources read: readers
#: project these (the signals' ``metadata`` JSON is ~80% of that table's bytes and of its decoding).
SIGNAL_INPUT_COLUMNS: list[str] = ["date", "symbol", "strategy", "alpha_score", "confidence", "horizon_days"]
SCORE_INPUT_COLUMNS: list[str] = ["as_of_date", "symbol", "horizon", "kind", "score"]


@dataclass(frozen=True)
class SourcePanel:
    """One alpha source as wide frames aligned to the session index."""

    name: str
    score: pd.DataFrame
    confidence: pd.DataFrame
    horizon: int


def source_score(name: str, assessment_scores: pd.DataFrame, strategy_signals: pd.DataFrame, index: pd.Index, columns: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame | None, int]:
    """Source ``name``'s wide score, its row-level confidence (strategies only) and its horizon."""
    spec = parse_source(name)
    if spec["table"] == "assessment_scores":
        rows = assessment_scores[(assessment_scores["horizon"] == spec["horizon"]) & (assessment_scores["kind"] == spec["kind"])]
        return to_wide(rows, "score", index="as_of_date").reindex(index=index, columns=columns), None, int(spec["horizon"])
    rows = strategy_signals[strategy_signals["strategy"] == spec["strategy"]]
    horizon = int(rows["horizon_days"].mode().iloc[0]) if len(rows) else 20
    return (
        to_wide(rows, "alpha_score").reindex(index=index, columns=columns),
        to_wide(rows, "confidence").reindex(index=index, columns=columns),
        horizon,
    )


def source_panel(name: str, assessment_scores: pd.DataFrame, strategy_signals: pd.DataFrame, returns: pd.DataFrame, window: int = 252) -> SourcePanel:
    """The panel of source ``name`` on ``returns``' sessions and symbols."""
    idx, cols = returns.index, returns.columns
    score, row_confidence, horizon = source_score(name, assessment_scores, strategy_signals, idx, cols)
    ic = portfolio.source_confidence(score, returns, horizon, window=window).reindex(idx).fillna(0.0)
    confidence = pd.DataFrame(np.repeat(ic.to_numpy()[:, None], len(cols), axis=1), index=idx, columns=cols)
    if row_confidence is not None:
        confidence = confidence * row_confidence.fillna(0.0)
    return SourcePanel(name, score, confidence.where(score.notna()), horizon)


def source_panels(books: dict[str, BookConfig], assessment_scores: pd.DataFrame, strategy_signals: pd.DataFrame, returns: pd.DataFrame) -> dict[str, SourcePanel]:
    """Panels of every source any of ``books`` uses (each computed once)."""
    names = sorted({s.name for b in books.values() for s in b.alpha_sources})
    windows = {s.name: b.confidence_window for b in books.values() for s in b.alpha_sources}
    return {n: source_panel(n, assessment_scores, strategy_signals, returns, windows[n]) for n in names}


def book_alpha(book: BookConfig, panels: dict[str, SourcePanel], method: str | None = None) -> pd.DataFrame:
    """The book's combined alpha (wide) with its combination method (or ``method``)."""
    names = [s.name for s in book.alpha_sources]
    return portfolio.combine_signals(
        {n: panels[n].score for n in names},
        {n: panels[n].confidence for n in names},
        book.source_weights,
        method or book.combination,
    )


def size_multipliers(book: BookConfig, regime_labels: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    """The book's regime size multiplier per session (1 where no rule applies or no label yet)."""
    labels = regime_labels.reindex(index)
    return labels.map(book.regime_rules).astype(float).fillna(1.0).rename("size_multiplier")
