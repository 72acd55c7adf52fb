"""The ``books`` resource: which sleeve configs a run uses, with typed per-run overrides.

A user tries a variation of a book from the Dagster launchpad without editing YAML, e.g.::

    resources:
      books:
        config:
          overrides:
            CORE_20d:
              combination: rank_average
              allocation: risk_parity
              constraints: {max_position: 0.2}

Every asset of the universe / portfolio / backtest / meta groups reads its books from this one
resource, so an override applies consistently to the whole run. Overrides are validated by the
same typed model as the YAML files (:class:`prometheus_assets.core.books.BookConfig`).
"""

from __future__ import annotations

from typing import Any, Optional

import dagster as dg

from prometheus_assets.books import apply_overrides, load_books
from prometheus_assets.core.books import BookConfig
from prometheus_assets.errors import BookConfigError


class AlphaSourceOverride(dg.Config):
    """An alpha source (``assessment:<H>d:<kind>`` or ``strategy:<name>``) and its weight."""

    name: str
    weight: float = 1.0


class ConstraintsOverride(dg.Config):
    """Constraint fields to replace (unset fields keep the YAML value)."""

    max_position: Optional[float] = None
    max_sector: Optional[float] = None
    min_positions: Optional[int] = None
    max_positions: Optional[int] = None
    max_turnover: Optional[float] = None
    gross_leverage: Optional[float] = None


class BookOverride(dg.Config):
    """Fields of one book to replace for this run (unset fields keep the YAML value)."""

    alpha_sources: Optional[list[AlphaSourceOverride]] = None
    combination: Optional[str] = None
    allocation: Optional[str] = None
    rebalance: Optional[str] = None
    constraints: Optional[ConstraintsOverride] = None


class BooksResource(dg.ConfigurableResource):
    """The sleeve configs of this deployment (``directory``: your own YAML files; default bundled)."""

    directory: Optional[str] = None
    active: Optional[list[str]] = None
    overrides: dict[str, BookOverride] = {}

    def books(self) -> dict[str, BookConfig]:
        """Active books by name, overrides applied (raises ``BookConfigError`` naming the problem)."""
        books = load_books(self.directory)
        fields: dict[str, dict[str, Any]] = {name: o.model_dump(exclude_none=True) for name, o in self.overrides.items()}
        books = apply_overrides(books, fields)
        if self.active is not None:
            missing = sorted(set(self.active) - set(books))
            if missing:
                raise BookConfigError("run config", f"active names unknown books {missing}; known: {sorted(books)}")
            books = {k: v for k, v in books.items() if k in self.active}
        return books
