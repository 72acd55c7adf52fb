"""The unified scope of a trade and the scope-mask language shared by edge and exposure.

A closed trade (or a candidate position) is described by one *unified scope*: the merge of its
entry context, action context and regime context, one value per dimension of
:data:`SCOPE_DIMENSIONS`. That table is the one definition of the dimensions: each has a bit
position (its index), one canonical name (no aliases) and the context it comes from.

A ``scope_mask`` is a 32-bit integer with bit ``i`` set when dimension ``i`` is part of the
scope being compared; the ``pattern_key`` (alpha source and signal pattern) is always required
and is not part of the mask. For one trade and one mask, the *scope key* is the text
``"dim=value|dim=value"`` of the masked dimensions in table order: two trades share a mask's
statistics exactly when they have the same pattern key, action category, mask and scope key.

Masks are weighted by how much of the scope they pin down (seed: Simplified Allocation &
Global Edge Plan §8): ``w(m) = (Σ_{d ∈ m} weight_d / Σ_all weight_d) ** α`` with per-dimension
weights (default 1.0) and ``α`` (default 0.5), so more specific masks matter more, with
diminishing returns. The pattern-only mask 0 has weight 0 and is therefore not a valid ladder
mask.

Pure Python: no Dagster, no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "SCOPE_DIMENSIONS",
    "DIMENSION_NAMES",
    "UNKNOWN",
    "ScopeDimension",
    "mask_of",
    "dimensions_of",
    "scope_key",
    "mask_weight",
    "matches",
    "DEFAULT_MASKS",
]

Context = Literal["entry", "action", "regime"]

#: Value of a dimension that is not known for a trade (e.g. liquidity without volumes).
UNKNOWN: Final[str] = "unknown"


@dataclass(frozen=True)
class ScopeDimension:
    """One dimension of the unified scope."""

    name: str
    context: Context
    description: str


#: The dimensions of the unified scope; a dimension's bit in ``scope_mask`` is its index here.
SCOPE_DIMENSIONS: Final[tuple[ScopeDimension, ...]] = (
    # entry context: captured when the position is opened
    ScopeDimension("book", "entry", "the book (sleeve) holding the position"),
    ScopeDimension("sector", "entry", "the issuer's sector in the instrument registry"),
    ScopeDimension("size_bucket", "entry", "small / mid / large: tercile of trailing 252-session average dollar volume across the day's instruments (unknown without volumes)"),
    ScopeDimension("vol_bucket", "entry", "low / mid / high: tercile of trailing 60-session volatility across the day's instruments"),
    ScopeDimension("listing_age_bucket", "entry", "new (< 1 year of prices) / young (< 5 years) / seasoned"),
    ScopeDimension("intent", "entry", "long / short"),
    ScopeDimension("signal_confidence_bucket", "entry", "low / mid / high: |book alpha| < 1/3, < 2/3, else (alphas are normalised to [-1, 1])"),
    ScopeDimension("liquidity_bucket", "entry", "liquid / average / illiquid: tercile of 60-session Amihud illiquidity |r| / dollar volume (unknown without volumes)"),
    # action context: how the book acts
    ScopeDimension("asset_class", "action", "the registry's asset class (equity, etf, ...)"),
    ScopeDimension("horizon", "action", "the book's horizon, e.g. 5d"),
    ScopeDimension("entry_mode", "action", "fresh (opened from flat) / flip (opened by reversing the opposite side)"),
    ScopeDimension("exit_mode", "action", "how the book exits: its rebalance rule, e.g. weekly_rebalance"),
    # regime context: the state of the market at entry
    ScopeDimension("market_regime", "regime", "the regime layer's label at entry (regime_states)"),
    ScopeDimension("allocator_regime", "regime", "Allocator v1's regime at entry (allocator_regime_v1)"),
    ScopeDimension("soft_target_class", "regime", "the instrument's stability class at entry (soft_target_classes)"),
    ScopeDimension("sector_leader", "regime", "leader / member: top 20% of its sector by trailing 60-session return, or not"),
    ScopeDimension("rank_position_bucket", "regime", "top / middle / bottom: tercile of trailing 60-session return across the day's instruments"),
)
if len(SCOPE_DIMENSIONS) > 32:  # pragma: no cover - guards the INTEGER storage of scope_mask
    raise RuntimeError("scope_mask is a 32-bit integer: at most 32 dimensions")

#: Dimension names in bit order.
DIMENSION_NAMES: Final[tuple[str, ...]] = tuple(d.name for d in SCOPE_DIMENSIONS)
_BIT: Final[dict[str, int]] = {name: i for i, name in enumerate(DIMENSION_NAMES)}
if len(_BIT) != len(DIMENSION_NAMES):  # pragma: no cover - one canonical key per concept
    raise RuntimeError("duplicate scope dimension name")


def mask_of(names: Iterable[str]) -> int:
    """The ``scope_mask`` of a set of dimension names; unknown names raise ``ValueError``."""
    mask = 0
    for name in names:
        if name not in _BIT:
            raise ValueError(f"unknown scope dimension {name!r}; known: {', '.join(DIMENSION_NAMES)}")
        mask |= 1 << _BIT[name]
    return mask


@functools.lru_cache(maxsize=None)
def dimensions_of(mask: int) -> tuple[str, ...]:
    """The dimension names of ``mask``, in table order; bits beyond the table raise ``ValueError``.

    Cached: the edge sizer asks for the same few masks millions of times over a history
    (profiled: 60% of ``scope_key``'s time was spent here), and the answer is an immutable tuple.
    """
    if mask < 0 or mask >> len(DIMENSION_NAMES):
        raise ValueError(f"scope_mask {mask} has bits outside the {len(DIMENSION_NAMES)} scope dimensions")
    return tuple(name for i, name in enumerate(DIMENSION_NAMES) if mask >> i & 1)


def scope_key(scope: Mapping[str, object], mask: int) -> str:
    """``"dim=value|..."`` of the masked dimensions (missing / None values read :data:`UNKNOWN`)."""
    parts = []
    for name in dimensions_of(mask):
        value = scope.get(name)
        parts.append(f"{name}={UNKNOWN if value is None or value != value else value}")
    return "|".join(parts)


def matches(scope: Mapping[str, object], mask: int, key: str) -> bool:
    """Whether ``scope`` has the values ``key`` pins down for ``mask``."""
    return scope_key(scope, mask) == key


def mask_weight(mask: int, dimension_weights: Mapping[str, float] | None = None, alpha: float = 0.5) -> float:
    """``(Σ present-dimension weights / Σ all-dimension weights) ** alpha`` (weights default 1.0)."""
    weights = dimension_weights or {}
    unknown = set(weights) - set(DIMENSION_NAMES)
    if unknown:
        raise ValueError(f"weights for unknown scope dimensions: {sorted(unknown)}")
    all_w = [float(weights.get(n, 1.0)) for n in DIMENSION_NAMES]
    if any(w < 0 for w in all_w) or sum(all_w) <= 0:
        raise ValueError("scope dimension weights must be >= 0 with a positive sum")
    present = sum(float(weights.get(n, 1.0)) for n in dimensions_of(mask))
    return (present / sum(all_w)) ** alpha


#: The default mask set, coarse to specific: single dimensions, pairs, triples and the full scope.
DEFAULT_MASKS: Final[tuple[int, ...]] = tuple(
    mask_of(dims)
    for dims in (
        ("market_regime",),
        ("intent",),
        ("sector",),
        ("vol_bucket",),
        ("soft_target_class",),
        ("signal_confidence_bucket",),
        ("allocator_regime",),
        ("market_regime", "intent"),
        ("vol_bucket", "intent"),
        ("sector", "intent"),
        ("soft_target_class", "intent"),
        ("allocator_regime", "intent"),
        ("market_regime", "vol_bucket", "intent"),
        ("market_regime", "soft_target_class", "intent"),
        ("rank_position_bucket", "sector_leader", "intent"),
        DIMENSION_NAMES,
    )
)
