"""The one edge-sizing formula: ``max_alloc = base_alloc × pm_strength × exposure_skew`` (issue 7).

What this module does
---------------------
A book that opts in to edge sizing still picks its names and computes its raw weights the usual
way (:func:`prometheus_assets.core.portfolio.construct_book`). Before its hard limits are
applied, every selected name (a *candidate*) is resized by two numbers, and nothing else:

``pm_strength`` — how good this kind of trade has been (:func:`pm_strength`)
    The stats layer learns an edge per ``(pattern_key, action_category, scope_mask,
    scope_key)`` from closed trades (see :mod:`prometheus_assets.core.edge.scope` for masks and
    keys). For the candidate's scope we walk the *ladder* of ``config.masks``, coarse to
    specific, and look up each mask's statistics. A mask takes part when it has at least
    ``config.n_min`` trades; its edge is ``edge_raw × decay_mult``, a negative one divided by it
    (:func:`decayed_edge`: a decaying edge always leads to a smaller size) and its weight is the mask weight ``w(m)`` (more specific masks weigh more). Then::

        blended     = Σ w(m) · edge(m) / Σ w(m)
        pm_strength = clamp(exp(strength_gain · blended), 0.3, 3.0)       (config.pm_strength_bounds)

    No qualifying mask (a new pattern, too few trades) gives the neutral ``pm_strength = 1``.

``exposure_skew`` — how crowded the candidate's neighbourhood already is (:func:`exposure_skew`)
    Every position already held (by other books and by this book) is spread over the same masks:
    position j with exposure ``e_j`` adds ``w(m) · e_j`` to its key of every mask m, once as
    *scope* exposure and once as *pattern + scope* exposure (:class:`ExposureMaps`). The
    candidate reads the exposure sitting on its own keys::

        conc_total    = α · Σ_m scope_exposure[m, key_m] + β · Σ_m pattern_scope_exposure[pk, m, key_m]
        conc_norm     = clip(conc_total / ((α + β) · Σ_m w(m) · N), 0, 1)   N = exposure_cap or total exposure
        exposure_skew = clamp(1.33 − conc_norm, 0.33, 1.33)                (config.exposure_skew_bounds)

    So when all the exposure sits on exactly the candidate's keys and pattern, ``conc_norm = 1``
    and the skew is 0.33; an empty neighbourhood gives 1.33.

Both feed one formula (:func:`max_alloc`): the raw weight is multiplied by ``pm_strength ×
exposure_skew`` and the name's position cap becomes ``base_alloc × pm_strength × exposure_skew``
(``base_alloc`` = the book's ``edge_sizing.default_allocation_pct``). :class:`EdgeSizer` wires
this into :func:`~prometheus_assets.core.portfolio.construct_book` as its ``sizer`` hook and keeps
one :class:`SizingDecision` per sized name for telemetry.

Point in time: :class:`EdgeSizer` asks ``edge_before(date)`` for the statistics of trades
closed strictly before the rebalance day, and ``other_exposure`` for the positions known at the
previous close; it never looks at anything later. The stats layer itself is not imported here:
it only has to provide an :class:`EdgeLookup`.

Pure: no Dagster, no I/O, deterministic (sums run in ladder order and in the order positions
are given).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Protocol

import numpy as np
import pandas as pd

from prometheus_assets.core.edge.config import EdgeConfig
from prometheus_assets.core.edge.scope import DIMENSION_NAMES, mask_weight, scope_key

__all__ = [
    "FULL_SCOPE_MASK",
    "MaskEdgeStats",
    "EdgeLookup",
    "MaskContribution",
    "StrengthResult",
    "pm_strength",
    "HeldPosition",
    "ExposureMaps",
    "exposure_maps",
    "add_position",
    "SkewResult",
    "exposure_skew",
    "max_alloc",
    "SizingDecision",
    "DECISION_COLUMNS",
    "EdgeSizer",
]

#: The mask of every scope dimension: its key is the "full scope" written into decisions.
FULL_SCOPE_MASK: int = (1 << len(DIMENSION_NAMES)) - 1

#: exp() overflows above ~709.78; any exponent beyond log(3.0) is clamped anyway.
_EXP_LIMIT = 700.0


# ---------------------------------------------------------------------------------------------
# What the stats layer provides
# ---------------------------------------------------------------------------------------------


class MaskEdgeStats(Protocol):
    """The statistics of one mask key the ladder reads (read-only attributes suffice)."""

    @property
    def n(self) -> int:
        """Closed trades behind the statistics."""

    @property
    def edge_raw(self) -> float:
        """The mask key's learned edge (positive: the pattern has worked in this scope)."""

    @property
    def decay_mult(self) -> float:
        """Multiplier of the edge for its trend (< 1 decaying, 1 stable, > 1 improving)."""


class EdgeLookup(Protocol):
    """The statistics of ``(pattern_key, action_category, scope_mask, scope_key)``, or None if unseen."""

    def __call__(self, pattern_key: str, action_category: str, scope_mask: int, scope_key: str) -> MaskEdgeStats | None: ...


@lru_cache(maxsize=256)
def _cached_weights(masks: tuple[int, ...], dimension_weights: tuple[tuple[str, float], ...], alpha: float) -> tuple[float, ...]:
    weights = dict(dimension_weights)
    return tuple(mask_weight(m, weights, alpha) for m in masks)


def _mask_weights(config: EdgeConfig) -> tuple[float, ...]:
    """``w(m)`` of every mask of ``config.masks``, in ladder order."""
    return _cached_weights(config.masks, tuple(sorted(config.dimension_weights.items())), config.mask_weight_alpha)


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


# ---------------------------------------------------------------------------------------------
# pm_strength: the ladder
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskContribution:
    """One mask that took part in a ladder blend: its key, statistics and weight ``w(m)``."""

    scope_mask: int
    scope_key: str
    n: int
    edge_raw: float
    decay_mult: float
    weight: float

    @property
    def edge(self) -> float:
        """The edge that was blended: :func:`decayed_edge` of ``edge_raw`` and ``decay_mult``."""
        return decayed_edge(self.edge_raw, self.decay_mult)


def decayed_edge(edge_raw: float, decay_mult: float) -> float:
    """The edge a mask contributes: ``edge_raw × decay_mult`` when positive, ``edge_raw / decay_mult`` when negative.

    ``decay_mult`` < 1 (a decaying key) must always shrink the size it leads to, > 1 (improving)
    raise it. Multiplying a *negative* edge by it did the opposite: a decaying negative edge (one
    growing more negative) was pulled towards 0 and its position grew; an improving one was pushed
    down. Dividing a negative edge moves it the way the size should go (0.5 doubles a negative
    edge, 1.33 shrinks it by a quarter), with the same factor as for a positive one.
    """
    return edge_raw * decay_mult if edge_raw >= 0 else edge_raw / decay_mult


@dataclass(frozen=True)
class StrengthResult:
    """``pm_strength`` of a candidate and how it came about.

    ``blended_edge`` is NaN and ``fallback`` True when no mask qualified (then ``pm_strength``
    is the neutral 1.0 and ``used`` is empty).
    """

    pm_strength: float
    blended_edge: float
    used: tuple[MaskContribution, ...]
    fallback: bool


def pm_strength(pattern_key: str, action_category: str, scope: Mapping[str, object], lookup: EdgeLookup, config: EdgeConfig) -> StrengthResult:
    """The ladder blend of the learned edge of ``scope`` into one strength in ``pm_strength_bounds``.

    For each mask m of ``config.masks`` (coarse to specific): ``key = scope_key(scope, m)`` and
    ``stats = lookup(pattern_key, action_category, m, key)``. The mask takes part when ``stats``
    is not None and ``stats.n >= config.n_min``; its edge is :func:`decayed_edge` (``edge_raw ×
    decay_mult``, a negative edge divided by it; decay is applied *before* blending) and its weight ``w(m) = mask_weight(m, dimension_weights,
    mask_weight_alpha)``. Then ``blended = Σ w·edge / Σ w`` and ``pm_strength =
    clamp(exp(strength_gain × blended), *pm_strength_bounds)``.

    Masks that cannot contribute are left out as if they had too few trades: a mask of weight 0
    (all its dimensions weighted 0) and a mask whose edge is not a finite number. With no mask
    left, the result is the neutral fallback ``pm_strength = 1.0`` (blended NaN, fallback True).
    """
    used: list[MaskContribution] = []
    weighted = 0.0
    total_weight = 0.0
    for mask, weight in zip(config.masks, _mask_weights(config)):
        key = scope_key(scope, mask)
        stats = lookup(pattern_key, action_category, mask, key)
        if stats is None or int(stats.n) < config.n_min or weight <= 0:
            continue
        edge_raw, decay = float(stats.edge_raw), float(stats.decay_mult)
        edge = decayed_edge(edge_raw, decay) if decay > 0 else math.nan
        if not math.isfinite(edge):
            continue
        used.append(MaskContribution(mask, key, int(stats.n), edge_raw, decay, weight))
        weighted += weight * edge
        total_weight += weight
    if not used:
        return StrengthResult(pm_strength=1.0, blended_edge=math.nan, used=(), fallback=True)
    blended = weighted / total_weight
    lo, hi = config.pm_strength_bounds
    strength = _clamp(math.exp(min(config.strength_gain * blended, _EXP_LIMIT)), lo, hi)
    return StrengthResult(pm_strength=strength, blended_edge=blended, used=tuple(used), fallback=False)


# ---------------------------------------------------------------------------------------------
# exposure_skew: crowding of the candidate's neighbourhood
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldPosition:
    """A position already held: its pattern, full scope and exposure.

    ``exposure_pct`` is the *intended* allocation (its absolute value is used: a short crowds a
    neighbourhood like a long), not what was filled.
    """

    pattern_key: str
    scope: Mapping[str, object]
    exposure_pct: float


@dataclass
class ExposureMaps:
    """Held exposure spread over the ladder's masks (build with :func:`exposure_maps`).

    * ``scope_exposure[(m, key)]``: Σ ``w(m) · e_j`` over the positions j whose scope has ``key``
      for mask m, whatever their pattern;
    * ``pattern_scope_exposure[(pattern_key, m, key)]``: the same, per pattern;
    * ``total_exposure``: Σ ``e_j`` (each position once).

    The maps are additive over positions (:func:`add_position` adds one) and only mean something
    with the :class:`EdgeConfig` (masks and weights) they were built with.
    """

    scope_exposure: dict[tuple[int, str], float] = field(default_factory=dict)
    pattern_scope_exposure: dict[tuple[str, int, str], float] = field(default_factory=dict)
    total_exposure: float = 0.0


def add_position(maps: ExposureMaps, position: HeldPosition, config: EdgeConfig) -> None:
    """Add one held position to ``maps`` in place (a position with exposure 0 adds nothing).

    With ``e = |exposure_pct|``, for every mask m of ``config.masks`` and ``k =
    scope_key(position.scope, m)``: ``scope_exposure[(m, k)] += w(m)·e`` and
    ``pattern_scope_exposure[(pattern_key, m, k)] += w(m)·e``; ``total_exposure += e``.
    Raises ``ValueError`` for a non-finite exposure.
    """
    e = abs(float(position.exposure_pct))
    if not math.isfinite(e):
        raise ValueError(f"exposure_pct must be finite, got {position.exposure_pct!r} ({position.pattern_key})")
    if e == 0:
        return
    scope_map, pattern_map = maps.scope_exposure, maps.pattern_scope_exposure
    for mask, weight in zip(config.masks, _mask_weights(config)):
        key = scope_key(position.scope, mask)
        added = weight * e
        scope_map[(mask, key)] = scope_map.get((mask, key), 0.0) + added
        pattern_map[(position.pattern_key, mask, key)] = pattern_map.get((position.pattern_key, mask, key), 0.0) + added
    maps.total_exposure += e


def exposure_maps(positions: Iterable[HeldPosition], config: EdgeConfig) -> ExposureMaps:
    """:class:`ExposureMaps` of ``positions`` (:func:`add_position` for each, in order)."""
    maps = ExposureMaps()
    for position in positions:
        add_position(maps, position, config)
    return maps


@dataclass(frozen=True)
class SkewResult:
    """``exposure_skew`` of a candidate, with the crowding it was computed from."""

    exposure_skew: float
    conc_total: float
    conc_norm: float


def exposure_skew(pattern_key: str, scope: Mapping[str, object], maps: ExposureMaps, config: EdgeConfig) -> SkewResult:
    """How crowded the neighbourhood of a candidate (``pattern_key``, ``scope``) is, as a size skew.

    With ``key_m = scope_key(scope, m)`` for the masks m of ``config.masks``, α =
    ``exposure_alpha`` and β = ``exposure_beta``::

        conc_total    = α · Σ_m scope_exposure[(m, key_m)] + β · Σ_m pattern_scope_exposure[(pattern_key, m, key_m)]
        N             = exposure_cap, or total_exposure when no cap is configured
        conc_norm     = clip(conc_total / ((α + β) · Σ_m w(m) · N), 0, 1)          (0 when N = 0)
        exposure_skew = clamp(high − conc_norm, low, high)     (low, high) = exposure_skew_bounds

    ``conc_norm`` is the share of the exposure that sits on the candidate's keys (and pattern):
    1 when every position has the candidate's keys and pattern (skew ``low``, 0.33 by default),
    0 when none shares any key (skew ``high``, 1.33).
    """
    alpha, beta = config.exposure_alpha, config.exposure_beta
    on_scope = 0.0
    on_pattern = 0.0
    weight_sum = 0.0
    for mask, weight in zip(config.masks, _mask_weights(config)):
        key = scope_key(scope, mask)
        on_scope += maps.scope_exposure.get((mask, key), 0.0)
        on_pattern += maps.pattern_scope_exposure.get((pattern_key, mask, key), 0.0)
        weight_sum += weight
    conc_total = alpha * on_scope + beta * on_pattern
    normaliser = config.exposure_cap if config.exposure_cap is not None else maps.total_exposure
    denominator = (alpha + beta) * weight_sum * normaliser
    conc_norm = _clamp(conc_total / denominator, 0.0, 1.0) if normaliser > 0 and denominator > 0 else 0.0
    lo, hi = config.exposure_skew_bounds
    return SkewResult(exposure_skew=_clamp(hi - conc_norm, lo, hi), conc_total=conc_total, conc_norm=conc_norm)


def max_alloc(base_alloc: float, pm: float, skew: float) -> float:
    """The position cap of a sized name: ``base_alloc × pm_strength × exposure_skew``."""
    values = (float(base_alloc), float(pm), float(skew))
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"base_alloc, pm_strength and exposure_skew must be finite and >= 0, got {values}")
    return values[0] * values[1] * values[2]


# ---------------------------------------------------------------------------------------------
# The construct_book hook
# ---------------------------------------------------------------------------------------------


@dataclass
class SizingDecision:
    """One edge-sizing decision: a selected name of a book on a rebalance day.

    * ``scope``: the candidate's full-scope key (``scope_key(scope, FULL_SCOPE_MASK)``);
    * ``decay_mults``: JSON ``{"<scope_mask>": decay_mult}`` of the masks the ladder used;
    * ``masks_used`` / ``fallback``: how many masks qualified / none did (pm_strength 1);
    * ``raw_weight``: the allocation method's raw weight (any scale: only relative sizes matter);
    * ``sized_weight = raw_weight × pm_strength × exposure_skew``: what the hard limits receive;
    * ``max_alloc``: the name's cap (the book also keeps its ``max_position``);
    * ``final_weight``: the target weight after the hard limits (NaN until recorded).
    """

    date: pd.Timestamp
    book: str
    symbol: str
    pattern_key: str
    scope: str
    base_alloc: float
    pm_strength_applied: float
    exposure_skew_applied: float
    decay_mults: str
    masks_used: int
    fallback: bool
    conc_norm: float
    raw_weight: float
    sized_weight: float
    max_alloc: float
    final_weight: float = math.nan


#: Columns of :meth:`EdgeSizer.decisions_frame` (the fields of :class:`SizingDecision`).
DECISION_COLUMNS: list[str] = [f.name for f in fields(SizingDecision)]


class EdgeSizer:
    """Edge sizing of one book as a :class:`~prometheus_assets.core.portfolio.Sizer` for ``construct_book``.

    On every rebalance day ``construct_book`` calls the sizer with the selected columns, their raw
    weights and the book's current weights. The sizer then

    1. takes ``lookup = edge_before(date)``: the statistics of trades closed strictly before
       ``date`` (point in time: the caller's function must not see the day itself);
    2. builds the crowding maps from ``other_exposure(day_index, date)`` (the other books'
       positions known at the previous close) plus this book's own held names: every column j
       with ``current[j] != 0`` becomes a position of this book's ``pattern_key`` with scope
       ``own_scope(day_index, date, j, current[j])`` and exposure ``|current[j]| × capital``;
    3. for each selected column j with raw weight r: ``scope = candidate_scope(day_index, date,
       j, r, current[j])``, ``pm = pm_strength(...)``, ``skew = exposure_skew(...)``, and returns
       the multiplier ``pm × skew`` and the cap ``max_alloc(base_alloc, pm, skew)``.

    ``capital`` (default 1) converts the book's own weights into the unit of ``other_exposure``
    (e.g. the book's share of firm capital when the other positions are given in firm capital);
    with the default, own weights count as they are. One :class:`SizingDecision` is kept per
    sized name; :meth:`record` (called by ``construct_book`` after the hard limits) fills in the
    final weights, and :meth:`decisions_frame` returns them all.
    """

    def __init__(
        self,
        *,
        book: str,
        pattern_key: str,
        action_category: str,
        base_alloc: float,
        config: EdgeConfig,
        edge_before: Callable[[pd.Timestamp], EdgeLookup],
        candidate_scope: Callable[[int, pd.Timestamp, int, float, float], Mapping[str, object]],
        other_exposure: Callable[[int, pd.Timestamp], Iterable[HeldPosition]],
        own_scope: Callable[[int, pd.Timestamp, int, float], Mapping[str, object]],
        symbols: Sequence[str],
        capital: float = 1.0,
    ) -> None:
        if not (math.isfinite(base_alloc) and base_alloc > 0):
            raise ValueError(f"base_alloc must be a positive number, got {base_alloc}")
        if not (math.isfinite(capital) and capital > 0):
            raise ValueError(f"capital must be a positive number, got {capital}")
        self.book = book
        self.pattern_key = pattern_key
        self.action_category = action_category
        self.base_alloc = float(base_alloc)
        self.config = config
        self.capital = float(capital)
        self._edge_before = edge_before
        self._candidate_scope = candidate_scope
        self._other_exposure = other_exposure
        self._own_scope = own_scope
        self._symbols = list(symbols)
        self._decisions: list[SizingDecision] = []
        # (day_index, selected, index of its first decision) of the last call awaiting record()
        self._pending: tuple[int, np.ndarray, int] | None = None

    def _maps(self, day_index: int, date: pd.Timestamp, current: np.ndarray) -> ExposureMaps:
        maps = exposure_maps(self._other_exposure(day_index, date), self.config)
        for j in np.flatnonzero(current):
            weight = float(current[j])
            scope = self._own_scope(day_index, date, int(j), weight)
            add_position(maps, HeldPosition(self.pattern_key, scope, abs(weight) * self.capital), self.config)
        return maps

    def __call__(self, day_index: int, date: pd.Timestamp, selected: np.ndarray, raw: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Multipliers ``pm × skew`` and caps ``max_alloc`` of the ``selected`` columns (see the class)."""
        selected = np.asarray(selected, dtype=np.intp)
        raw = np.asarray(raw, dtype=float)
        current = np.asarray(current, dtype=float)
        if raw.shape != selected.shape or selected.ndim != 1:
            raise ValueError(f"raw must have one weight per selected name ({selected.shape}), got {raw.shape}")
        if current.shape != (len(self._symbols),):
            raise ValueError(f"current must have one weight per symbol ({len(self._symbols)}), got {current.shape}")
        n = selected.size
        multipliers = np.ones(n)
        caps = np.full(n, np.inf)
        start = len(self._decisions)
        if n:
            lookup = self._edge_before(date)
            maps = self._maps(day_index, date, current)
            for k, j in enumerate(selected):
                scope = self._candidate_scope(day_index, date, int(j), float(raw[k]), float(current[j]))
                strength = pm_strength(self.pattern_key, self.action_category, scope, lookup, self.config)
                skew = exposure_skew(self.pattern_key, scope, maps, self.config)
                multipliers[k] = strength.pm_strength * skew.exposure_skew
                caps[k] = max_alloc(self.base_alloc, strength.pm_strength, skew.exposure_skew)
                self._decisions.append(
                    SizingDecision(
                        date=pd.Timestamp(date),
                        book=self.book,
                        symbol=str(self._symbols[j]),
                        pattern_key=self.pattern_key,
                        scope=scope_key(scope, FULL_SCOPE_MASK),
                        base_alloc=self.base_alloc,
                        pm_strength_applied=strength.pm_strength,
                        exposure_skew_applied=skew.exposure_skew,
                        decay_mults=json.dumps({str(u.scope_mask): u.decay_mult for u in strength.used}),
                        masks_used=len(strength.used),
                        fallback=strength.fallback,
                        conc_norm=skew.conc_norm,
                        raw_weight=float(raw[k]),
                        sized_weight=float(raw[k]) * float(multipliers[k]),
                        max_alloc=float(caps[k]),
                    )
                )
        self._pending = (int(day_index), selected.copy(), start)
        return multipliers, caps

    def record(self, day_index: int, date: pd.Timestamp, selected: np.ndarray, final: np.ndarray) -> None:
        """Fill ``final_weight`` of the decisions of the last call (same day and selection)."""
        selected = np.asarray(selected, dtype=np.intp)
        final = np.asarray(final, dtype=float)
        pending = self._pending
        if pending is None or pending[0] != int(day_index) or not np.array_equal(pending[1], selected):
            raise ValueError(f"record() of day {day_index} does not follow a sizing call with the same selection")
        if final.shape != selected.shape:
            raise ValueError(f"final must have one weight per selected name ({selected.shape}), got {final.shape}")
        for k in range(selected.size):
            self._decisions[pending[2] + k].final_weight = float(final[k])
        self._pending = None

    @property
    def decisions(self) -> tuple[SizingDecision, ...]:
        """Every decision so far, in call order."""
        return tuple(self._decisions)

    def decisions_frame(self) -> pd.DataFrame:
        """Every decision as a frame with :data:`DECISION_COLUMNS` (empty frame with them if none)."""
        if not self._decisions:
            return pd.DataFrame(columns=DECISION_COLUMNS)
        # Shallow field reads, not dataclasses.asdict: every field is a scalar, and asdict's
        # recursive deep copy was ~10% of the edge layer's time on the full history.
        return pd.DataFrame([[getattr(d, c) for c in DECISION_COLUMNS] for d in self._decisions], columns=DECISION_COLUMNS)
