"""Book (sleeve) definitions: the typed model every sleeve YAML is validated against.

A *book* binds a horizon and its alpha sources, universe rules, portfolio & risk constraints,
a rebalance frequency, a cost model and regime rules. Books are data: one YAML file per book
under ``prometheus_assets/configs/sleeves/`` (loaded by :mod:`prometheus_assets.books`). This
module only defines and validates the model, so it is usable without any file.

Alpha sources are named with one small grammar:

- ``assessment:<H>d:<kind>`` — the assessment score for horizon H (5, 20, 60) from model kind
  ``hgb`` or ``ridge`` (table ``assessment_scores``);
- ``strategy:<name>`` — an alpha-score strategy of ``strategy_signals``
  (``bollinger_mean_reversion``, ``macd_rsi_confluence``, ``momentum_rank``).

Pure pydantic: no Dagster, no I/O.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from prometheus_assets.core.regime import REGIME_LABELS

CombinationMethod = Literal["weighted_average", "confidence_weighted", "rank_average", "best_strategy"]
AllocationMethod = Literal["proportional", "kelly", "risk_parity", "inverse_volatility"]
RebalanceFrequency = Literal["daily", "weekly", "monthly", "quarterly"]

COMBINATION_METHODS: tuple[str, ...] = ("weighted_average", "confidence_weighted", "rank_average", "best_strategy")
ALLOCATION_METHODS: tuple[str, ...] = ("proportional", "kelly", "risk_parity", "inverse_volatility")
SOFT_TARGET_CLASSES: tuple[str, ...] = ("STABLE", "WATCH", "FRAGILE", "TARGETABLE", "BREAKER")
STRATEGY_NAMES: tuple[str, ...] = ("bollinger_mean_reversion", "macd_rsi_confluence", "momentum_rank")
ASSESSMENT_HORIZONS: tuple[int, ...] = (5, 20, 60)
ASSESSMENT_KINDS: tuple[str, ...] = ("hgb", "ridge")

_SOURCE = re.compile(r"^(assessment:(?P<h>\d+)d:(?P<kind>[a-z]+)|strategy:(?P<strategy>[a-z_0-9]+))$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_source(name: str) -> dict[str, Any]:
    """Split an alpha-source name into its parts; raise ``ValueError`` naming the grammar if it is wrong."""
    m = _SOURCE.match(name)
    if not m:
        raise ValueError(f"alpha source {name!r} must be 'assessment:<H>d:<kind>' or 'strategy:<name>'")
    if m.group("strategy"):
        if m.group("strategy") not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {m.group('strategy')!r}; known: {', '.join(STRATEGY_NAMES)}")
        return {"table": "strategy_signals", "strategy": m.group("strategy")}
    horizon, kind = int(m.group("h")), m.group("kind")
    if horizon not in ASSESSMENT_HORIZONS or kind not in ASSESSMENT_KINDS:
        raise ValueError(f"assessment source {name!r}: horizon must be one of {ASSESSMENT_HORIZONS} and kind one of {ASSESSMENT_KINDS}")
    return {"table": "assessment_scores", "horizon": horizon, "kind": kind}


class AlphaSource(_Strict):
    """One alpha source of a book and its weight in the combination."""

    name: str
    weight: float = Field(1.0, gt=0)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        parse_source(v)
        return v


class UniverseRules(_Strict):
    """Filters and ranking that turn all instruments into the book's candidates U_book(t)."""

    exclude_classes: list[str] = Field(default_factory=lambda: ["BREAKER"], description="soft-target classes never held")
    deweight_classes: dict[str, float] = Field(default_factory=lambda: {"FRAGILE": 0.5}, description="class -> inclusion-score multiplier in (0, 1]")
    min_listing_sessions: int = Field(252, ge=0, description="sessions of price history an instrument needs")
    min_price: float | None = Field(None, ge=0, description="price floor (ignored when None)")
    min_dollar_volume: float | None = Field(None, ge=0, description="63-session average dollar volume floor (only when the source has volumes)")
    rank_by: str | None = Field(None, description="alpha source that ranks candidates (default: the book's first)")
    tier_sizes: tuple[int, int] = Field((10, 20), description="rank cut-offs of tier 1 and tier 2; the rest is tier 3")

    @field_validator("exclude_classes")
    @classmethod
    def _classes(cls, v: list[str]) -> list[str]:
        bad = set(v) - set(SOFT_TARGET_CLASSES)
        if bad:
            raise ValueError(f"unknown soft-target classes {sorted(bad)}; known: {', '.join(SOFT_TARGET_CLASSES)}")
        return v

    @field_validator("deweight_classes")
    @classmethod
    def _deweights(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if k not in SOFT_TARGET_CLASSES:
                raise ValueError(f"unknown soft-target class {k!r}; known: {', '.join(SOFT_TARGET_CLASSES)}")
            if not 0 < x <= 1:
                raise ValueError(f"de-weight of {k} must be in (0, 1], got {x}")
        return v


class Constraints(_Strict):
    """Hard limits every target portfolio satisfies (see :mod:`prometheus_assets.core.portfolio`)."""

    max_position: float = Field(0.10, gt=0, le=1, description="max |weight| of one name")
    max_sector: float = Field(0.35, gt=0, le=10, description="max gross weight of one sector")
    min_positions: int = Field(5, ge=1, description="a book holds 0 or at least this many names")
    max_positions: int = Field(15, ge=1, description="names selected at a rebalance (selection breadth)")
    max_turnover: float = Field(0.5, gt=0, description="max sum |w_new - w_old| per rebalance (hard limits override it)")
    gross_leverage: float = Field(1.0, gt=0, le=5, description="max sum |w|")
    min_weight: float = Field(0.005, ge=0, le=0.1, description="leftovers of exited names below this are closed even past the turnover limit")

    @model_validator(mode="after")
    def _consistent(self) -> "Constraints":
        if self.max_positions < self.min_positions:
            raise ValueError(f"max_positions ({self.max_positions}) < min_positions ({self.min_positions})")
        return self


class CostModel(_Strict):
    """Trading costs in basis points of traded notional."""

    bps: float = Field(5.0, ge=0, lt=1000)
    slippage_bps: float = Field(0.0, ge=0, lt=1000)

    @property
    def total_bps(self) -> float:
        return self.bps + self.slippage_bps


class EdgeSizing(_Strict):
    """A book's opt-in to edge sizing (core.edge): its base allocation per position."""

    default_allocation_pct: float = Field(0.10, gt=0, le=1, description="base_alloc: max_alloc = base_alloc × pm_strength × exposure_skew")


class BookConfig(_Strict):
    """One book (sleeve): everything that defines it, validated."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    description: str = ""
    horizon_days: int = Field(gt=0, le=252)
    long_only: bool = True
    alpha_sources: list[AlphaSource] = Field(min_length=1)
    combination: CombinationMethod = "weighted_average"
    allocation: AllocationMethod = "proportional"
    kelly_cap: float = Field(0.25, gt=0, le=1, description="cap on each name's Kelly fraction")
    kelly_window: int = Field(252, ge=20, description="past picks per name that estimate win rate and win/loss")
    covariance_window: int = Field(252, ge=20, description="sessions of returns for the shrunk covariance")
    volatility_window: int = Field(60, ge=5, description="sessions for inverse-volatility weights")
    confidence_window: int = Field(252, ge=20, description="sessions of realised rank IC that give a source its confidence")
    universe: UniverseRules = Field(default_factory=UniverseRules)
    constraints: Constraints = Field(default_factory=Constraints)
    rebalance: RebalanceFrequency = "monthly"
    costs: CostModel = Field(default_factory=CostModel)
    regime_rules: dict[str, float] = Field(default_factory=lambda: {"CRISIS": 0.0, "RISK_OFF": 0.5}, description="regime label -> size multiplier in [0, 1] (1 when absent)")
    capital: float = Field(0.25, ge=0, le=1, description="share of firm capital (orders netting)")
    edge_sizing: EdgeSizing | None = Field(None, description="size positions by learned edge and crowding (backtested as <config_id>.edge beside the plain book)")

    @field_validator("regime_rules")
    @classmethod
    def _rules(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if k not in REGIME_LABELS:
                raise ValueError(f"unknown regime label {k!r}; known: {', '.join(REGIME_LABELS)}")
            if not 0 <= x <= 1:
                raise ValueError(f"size multiplier for {k} must be in [0, 1], got {x}")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> "BookConfig":
        names = [s.name for s in self.alpha_sources]
        if len(set(names)) != len(names):
            raise ValueError(f"book {self.name}: duplicate alpha sources {names}")
        if self.universe.rank_by is not None and self.universe.rank_by not in names:
            raise ValueError(f"book {self.name}: universe.rank_by {self.universe.rank_by!r} is not one of its alpha sources {names}")
        if not self.long_only and self.allocation in ("kelly", "risk_parity"):
            raise ValueError(f"book {self.name}: allocation {self.allocation!r} needs long_only: true")
        return self

    @property
    def rank_source(self) -> str:
        """The alpha source that ranks the universe."""
        return self.universe.rank_by or self.alpha_sources[0].name

    @property
    def source_weights(self) -> dict[str, float]:
        return {s.name: s.weight for s in self.alpha_sources}

    def config_id(self, combination: str | None = None) -> str:
        """``<book>.<combination>``: names a variant of this book in sleeve returns and metrics."""
        return f"{self.name}.{combination or self.combination}"

    @property
    def pattern_key(self) -> str:
        """The book's alpha sources as one pattern key (what the edge layer learns per): ``<book>:<src>+<src>``."""
        return f"{self.name}:{'+'.join(s.name for s in self.alpha_sources)}"

    def complexity(self) -> int:
        """A simplicity score for the meta-orchestrator: alpha sources + method complexity (lower is simpler)."""
        method = {"weighted_average": 0, "rank_average": 0, "confidence_weighted": 1, "best_strategy": 1}[self.combination]
        alloc = {"proportional": 0, "inverse_volatility": 0, "kelly": 1, "risk_parity": 1}[self.allocation]
        return len(self.alpha_sources) + method + alloc

    def with_overrides(self, overrides: dict[str, Any]) -> "BookConfig":
        """A new, re-validated config with ``overrides`` (nested dicts merge into nested models)."""
        data = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            if isinstance(value, dict) and isinstance(data.get(key), dict) and key != "regime_rules":
                data[key] = {**data[key], **{k: v for k, v in value.items() if v is not None}}
            else:
                data[key] = value
        return BookConfig.model_validate(data)
