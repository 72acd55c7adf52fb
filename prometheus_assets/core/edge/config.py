"""Every constant of the edge layer, in one typed, validated object.

Defaults follow the seed (Simplified Allocation & Global Edge Plan) and issue 7. A book opts in
to edge sizing with an ``edge_sizing`` block in its YAML (``default_allocation_pct``); the rest
is shared by all books, because edge is one global definition.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from prometheus_assets.core.edge.scope import DEFAULT_MASKS, DIMENSION_NAMES, dimensions_of

__all__ = ["EdgeConfig"]


class EdgeConfig(BaseModel):
    """Parameters of edge statistics, decay and sizing (all have defaults that run)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    masks: tuple[int, ...] = Field(DEFAULT_MASKS, description="scope masks aggregated and used by the ladder, coarse to specific")
    dimension_weights: dict[str, float] = Field(default_factory=dict, description="per-dimension mask weight (default 1.0)")
    mask_weight_alpha: float = Field(0.5, gt=0, description="α of the mask weight (Σ present / Σ all) ** α")
    # edge components
    ev_scale: float = Field(1.0, gt=0, description="ev_score = sigmoid(delta_rr / ev_scale)")
    magnitude_scale: float = Field(1.0, gt=0, description="magnitude_score = sigmoid(median_rr / magnitude_scale)")
    support_k: float = Field(12.0, gt=0, description="support_score = 1 - exp(-n / k)")
    stability_window: int = Field(20, ge=2, description="edge volatility = std of the last this-many edge_raw snapshots of the mask")
    risk_window: int = Field(60, ge=2, description="sessions of trailing volatility that turn a trade's return into rr (risk units)")
    # decay
    decay_min_snapshots: int = Field(18, ge=3, description="snapshots needed before decay is classified (else decay_mult = 1)")
    decay_bounds: tuple[float, float] = (0.33, 1.33)
    decay_t_stat: float = Field(2.0, gt=0, description="|t| of the linear slope needed to call a trend")
    decay_min_change: float = Field(0.1, ge=0, description="relative change of the fitted edge over the history needed to call a trend")
    decay_edge_floor: float = Field(
        0.05,
        ge=0,
        description="floor of mean|edge| when judging the size of a change (rel_change = slope × span / max(mean|edge|, floor)): "
        "edges smaller than this are treated as no edge, so a move around ~0 is not blown up into a huge relative change",
    )
    # ladder
    n_min: int = Field(10, ge=1, description="trades a mask needs to take part in pm_strength")
    strength_gain: float = Field(1.0, gt=0, description="pm_strength = exp(strength_gain × blended edge), then clamped")
    pm_strength_bounds: tuple[float, float] = (0.3, 3.0)
    # exposure
    exposure_alpha: float = Field(1.0, gt=0, description="weight of scope crowding (α > β)")
    exposure_beta: float = Field(0.5, ge=0, description="weight of same-pattern crowding")
    exposure_cap: float | None = Field(None, gt=0, description="normalise crowding by this exposure instead of the total exposure")
    exposure_skew_bounds: tuple[float, float] = (0.33, 1.33)

    @field_validator("masks")
    @classmethod
    def _masks_valid(cls, masks: tuple[int, ...]) -> tuple[int, ...]:
        if not masks:
            raise ValueError("at least one scope mask is needed")
        for m in masks:
            dimensions_of(m)  # raises on bits outside the table
            if m == 0:
                raise ValueError("mask 0 (pattern only) has weight 0 in the ladder; use masks with at least one dimension")
        if len(set(masks)) != len(masks):
            raise ValueError("duplicate scope masks")
        return masks

    @field_validator("dimension_weights")
    @classmethod
    def _weights_valid(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(DIMENSION_NAMES))
        if unknown:
            raise ValueError(f"weights for unknown scope dimensions: {unknown}; known: {', '.join(DIMENSION_NAMES)}")
        if any(w < 0 for w in weights.values()):
            raise ValueError("scope dimension weights must be >= 0")
        return weights

    @model_validator(mode="after")
    def _consistent(self) -> EdgeConfig:
        if self.exposure_alpha <= self.exposure_beta:
            raise ValueError("exposure_alpha must exceed exposure_beta (scope similarity matters more than the exact pattern)")
        for name in ("decay_bounds", "pm_strength_bounds", "exposure_skew_bounds"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= 1 <= hi:
                raise ValueError(f"{name} must satisfy 0 < low <= 1 <= high, got {(lo, hi)}")
        return self
