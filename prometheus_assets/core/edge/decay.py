"""Per-mask edge decay: is a mask's edge getting better, getting worse, or neither?

Every time a mask's statistics change, :mod:`.stats` records one *snapshot* ``(hours, edge_raw)``
of that mask. This module looks at the series of snapshots of one mask, in time order, and
answers two questions:

1. **Is there a trend?** An ordinary least-squares line ``edge = a + b·t`` is fitted, with
   ``t`` = elapsed hours since the first snapshot. A trend is called only when the slope is
   both *statistically clear* and *economically large*:

   - ``|t_adjusted| >= config.decay_t_stat`` — the t-statistic of ``b`` corrected for the
     autocorrelation of the series (below);
   - ``|rel_change| >= config.decay_min_change``, where
     ``rel_change = b·(t_max - t_min) / max(mean(|edge|), config.decay_edge_floor)`` is how much
     the fitted line moves over the history, relative to the typical size of the edge. Edges
     smaller than ``decay_edge_floor`` count as *no edge* when judging the size of a change:
     without the floor, a key whose edge wanders around 0 would divide by ~0 and every wiggle
     would be a huge relative change.

   ``b > 0`` is ``'improving'``, ``b < 0`` is ``'decaying'``; anything else is
   ``'no_clear_pattern'``. With fewer than ``config.decay_min_snapshots`` snapshots the state is
   ``'insufficient_history'``.

   **Why the t-statistic is corrected.** A snapshot is not an independent observation: its
   ``edge_raw`` is computed from *every* trade of the key so far (a running statistic), so
   consecutive snapshots share almost all of their trades and are strongly positively
   autocorrelated. The iid t-statistic ``t_stat = b / se(b)`` (``se(b)`` from the residual
   variance on ``n - 2`` degrees of freedom; ``±inf`` when the residuals are exactly 0 and
   ``b != 0``) then treats ``n`` snapshots as ``n`` independent pieces of evidence and is far too
   large: on pure-noise trades the running mean drifts smoothly while it settles, and about
   three quarters of keys with 40-120 snapshots were called trending with ``t_stat`` alone
   (~76 % in simulation, mostly at the multiplier bounds). The correction:

   - ``rho`` = the lag-1 autocorrelation of the OLS residuals ``e_i = edge_i - a - b·t_i``, with
     ``i = 1..n`` the snapshot's rank in time order, each term weighted by ``i``, plus Kendall's
     first-order small-sample bias correction, clipped to ``[0, 0.99]`` (NaN when the residuals
     are exactly 0)::

         r   = Σ_{i>=2} i·e_i·e_{i-1} / Σ_{i>=1} i·e_i²
         rho = clip(r + (1 + 3r)/n, 0, 0.99)

     The weight undoes the heteroskedasticity of a running statistic: snapshot ``i`` summarises
     about ``i`` trades, so its noise variance shrinks like ``1/i``. Unweighted, the sums are
     dominated by the first few snapshots (one, two, three trades), which are the least
     correlated pairs of the whole history, and ``rho`` comes out far too low (median ~0.6 on
     pure noise, where the true correction needs ~0.9, so ~50 % of noise keys still trended).
     Weighted by ``i`` every stage of the history counts about equally. For homoskedastic
     AR(1) residuals the weights are deterministic and the estimate stays consistent for the
     AR coefficient. A lag-1 autocorrelation estimated from ``n`` points (and residuals of a
     fitted line) is biased towards 0 by about ``(1 + 3ρ)/n``; without the correction short
     histories (40 snapshots) kept ~20 % false trend calls on noise, with it ~10 %;
   - the effective number of independent snapshots ``n_eff = n·(1 - rho)/(1 + rho)``
     (the AR(1) variance-inflation rule);
   - ``se(b)`` is scaled up by ``sqrt((n - 2) / max(n_eff - 2, 1))``, i.e.
     ``t_adjusted = t_stat · sqrt(max(n_eff - 2, 1) / (n - 2))`` (``= t_stat`` when
     ``rho`` is 0 or NaN). It never exceeds ``|t_stat|`` and is at least
     ``|t_stat| / sqrt(n - 2)``, so a very clear trend survives any correction.

   Both ``t_stat`` (raw) and ``t_adjusted`` are reported; only ``t_adjusted`` decides. On the
   same pure-noise simulation ~9 % of keys trend (6-12.5 % over seeds). The price is power and
   shape: a smooth curve is indistinguishable from a settling running statistic, so an edge
   that collapses within the first few snapshots and is flat afterwards is not called, and a
   genuine drift of the per-trade mean needs more trades to be called than under ``t_stat``.

2. **How fast?** When every edge has strictly the same sign, an exponential
   ``edge = A·exp(B·t)`` is fitted as a straight line through ``ln|edge|`` (OLS). Its
   half-life is ``ln 2 / |B|``. The *speed* of the trend, a number in ``[0, 1]``, is

   - ``1 - 2 ** (-(t_max - t_min) / half_life)`` — the fraction of the edge the exponential
     has lost (or gained) over the history — when ``B`` is finite and moves the edge in the
     direction of the state. For positive edges ``B < 0`` is decaying; for negative edges
     ``B > 0`` is decaying (the edge grows more negative): in both cases
     ``sign(edge)·B`` has the sign of the linear slope ``b``;
   - otherwise ``min(1, |rel_change|)``.

The **decay multiplier** that scales position sizes is then, with ``(lo, hi) =
config.decay_bounds``::

    decaying:          decay_mult = 1 - (1 - lo)·speed     (down to lo, e.g. 0.33)
    improving:         decay_mult = 1 + (hi - 1)·speed     (up to hi, e.g. 1.33)
    otherwise:         decay_mult = 1.0

clamped to ``[lo, hi]``. The bounds are asymmetric on purpose: a decaying edge can cut a size
by two thirds, an improving one only adds a third.

Two implementations share the classification rules:

* :func:`fit_decay` — the batch reference: fits a whole series at once (two-pass numpy), after
  a stable sort by time (snapshots with equal times keep their given order);
* :class:`DecayAccumulator` — incremental: ``add`` one snapshot in O(1) time and memory
  (running means, co-moments and weighted lag-1 co-moments, never the series), in
  non-decreasing time order; ``fit`` equals :func:`fit_decay` on every snapshot added so far
  up to floating-point rounding (~1e-9 relative where the fit is well conditioned; see the
  class).

Pure numpy: no Dagster, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from prometheus_assets.core.edge.config import EdgeConfig

__all__ = [
    "INSUFFICIENT_HISTORY",
    "IMPROVING",
    "DECAYING",
    "NO_CLEAR_PATTERN",
    "DECAY_STATES",
    "RHO_MAX",
    "DecayFit",
    "fit_decay",
    "DecayAccumulator",
]

INSUFFICIENT_HISTORY: Final[str] = "insufficient_history"
IMPROVING: Final[str] = "improving"
DECAYING: Final[str] = "decaying"
NO_CLEAR_PATTERN: Final[str] = "no_clear_pattern"
#: Every value of :attr:`DecayFit.state`.
DECAY_STATES: Final[tuple[str, ...]] = (INSUFFICIENT_HISTORY, IMPROVING, DECAYING, NO_CLEAR_PATTERN)
#: Upper clip of the residual lag-1 autocorrelation ``rho``.
RHO_MAX: Final[float] = 0.99

_LN2: Final[float] = math.log(2.0)
_NAN: Final[float] = float("nan")
#: Last-resort floor of the ``rel_change`` denominator (when ``config.decay_edge_floor`` is 0).
_MEAN_ABS_FLOOR: Final[float] = 1e-12


@dataclass(frozen=True)
class DecayFit:
    """The decay of one mask's edge series (see the module docstring for every rule).

    Attributes:
        n: number of snapshots used.
        slope_per_hour: ``b`` of the linear fit ``edge = a + b·t`` (NaN with too few snapshots
            or when every snapshot has the same time).
        rate_per_hour: ``B`` of the exponential fit ``edge = A·exp(B·t)`` (NaN when not fittable:
            too few snapshots, edges of mixed sign or zero, or every snapshot at the same time).
        half_life_hours: ``ln 2 / |B|`` (``inf`` when ``B == 0``, NaN when ``B`` is NaN).
        state: one of :data:`DECAY_STATES`.
        decay_mult: the size multiplier, within ``config.decay_bounds``; exactly 1.0 unless the
            state is ``'improving'`` or ``'decaying'``.
        t_stat: the iid t-statistic of ``b`` (diagnostic; NaN when ``b`` is NaN). Too large for
            autocorrelated snapshots: the trend test uses ``t_adjusted``.
        rel_change: ``b·(t_max - t_min) / max(mean|edge|, config.decay_edge_floor)``
            (diagnostic; NaN when ``b`` is NaN).
        t_adjusted: ``t_stat`` corrected for the lag-1 autocorrelation of the residuals,
            ``t_stat·sqrt(max(n_eff - 2, 1) / (n - 2))`` with ``n_eff = n(1 - rho)/(1 + rho)``;
            the statistic the trend test uses (NaN when ``b`` is NaN).
        rho: the rank-weighted lag-1 autocorrelation of the OLS residuals in time order,
            ``r = Σ_{i>=2} i·e_i·e_{i-1} / Σ i·e_i²``, bias-corrected to ``r + (1 + 3r)/n`` and
            clipped to ``[0, RHO_MAX]`` (NaN when ``b`` is NaN or the residuals are exactly 0).
    """

    n: int
    slope_per_hour: float
    rate_per_hour: float
    half_life_hours: float
    state: str
    decay_mult: float
    t_stat: float = _NAN
    rel_change: float = _NAN
    t_adjusted: float = _NAN
    rho: float = _NAN


def _insufficient(n: int) -> DecayFit:
    return DecayFit(n, _NAN, _NAN, _NAN, INSUFFICIENT_HISTORY, 1.0)


def _flat_time(n: int) -> DecayFit:
    """Every snapshot at the same time: no slope can be fitted."""
    return DecayFit(n, _NAN, _NAN, _NAN, NO_CLEAR_PATTERN, 1.0)


def _t_stat(n: int, slope: float, sse: float, sxx: float) -> float:
    """``slope / se(slope)`` with the residual variance ``sse / (n - 2)``."""
    if slope == 0.0:
        return 0.0  # includes a perfectly flat series (sse == 0): no trend at all
    if sse <= 0.0:
        return math.copysign(math.inf, slope)
    return slope / math.sqrt(sse / (n - 2) / sxx)


def _rho(n: int, sse: float, weighted_sse: float, weighted_lag: float) -> float:
    """``r = Σ i·e_i·e_{i-1} / Σ i·e_i²``, bias-corrected to ``r + (1 + 3r)/n`` and clipped to
    ``[0, RHO_MAX]`` (NaN when the residuals are 0)."""
    if not (sse > 0.0 and weighted_sse > 0.0):
        return _NAN
    r = weighted_lag / weighted_sse
    r += (1.0 + 3.0 * r) / n
    return min(max(r, 0.0), RHO_MAX)


def _t_adjusted(n: int, t_stat: float, rho: float) -> float:
    """``t_stat·sqrt(max(n_eff - 2, 1) / (n - 2))`` with ``n_eff = n(1 - rho)/(1 + rho)``."""
    if math.isnan(rho) or rho == 0.0:
        return t_stat
    n_eff = n * (1.0 - rho) / (1.0 + rho)
    return t_stat * math.sqrt(max(n_eff - 2.0, 1.0) / (n - 2))


def _classify(
    n: int,
    span: float,
    slope: float,
    t_stat: float,
    rho: float,
    rate: float,
    sign: float,
    mean_abs: float,
    config: EdgeConfig,
) -> DecayFit:
    """The state, speed and multiplier from fitted quantities (shared by batch and incremental).

    ``sign`` is the common sign of every edge (+1 or -1) when the exponential was fitted, else 0.
    """
    rel_change = slope * span / max(mean_abs, config.decay_edge_floor, _MEAN_ABS_FLOOR)
    t_adj = _t_adjusted(n, t_stat, rho)
    if math.isnan(rate):
        half_life = _NAN
    elif rate == 0.0:
        half_life = math.inf
    else:
        half_life = _LN2 / abs(rate)

    trend = abs(t_adj) >= config.decay_t_stat and abs(rel_change) >= config.decay_min_change
    if not trend or slope == 0.0:
        return DecayFit(n, slope, rate, half_life, NO_CLEAR_PATTERN, 1.0, t_stat, rel_change, t_adj, rho)

    state = IMPROVING if slope > 0.0 else DECAYING
    # d(edge)/dt of the exponential has the sign of sign(A)·B: it agrees with the linear trend
    # when that sign equals the sign of the slope.
    # (half_life is finite exactly when rate is finite and nonzero).
    if math.isfinite(half_life) and sign != 0.0 and (sign * rate > 0.0) == (slope > 0.0):
        speed = 1.0 - 2.0 ** (-span / half_life)
    else:
        speed = min(1.0, abs(rel_change))
    speed = min(max(speed, 0.0), 1.0)

    lo, hi = config.decay_bounds
    mult = 1.0 - (1.0 - lo) * speed if state == DECAYING else 1.0 + (hi - 1.0) * speed
    mult = min(max(mult, lo), hi)
    return DecayFit(n, slope, rate, half_life, state, mult, t_stat, rel_change, t_adj, rho)


def fit_decay(hours: np.ndarray, edges: np.ndarray, config: EdgeConfig) -> DecayFit:
    """Fit the decay of one edge series at once (the batch reference of :class:`DecayAccumulator`).

    Args:
        hours: snapshot times in hours (any origin: they are shifted so the earliest one is 0;
            any order: the series is stably sorted by time, because the residual
            autocorrelation ``rho`` is taken in time order).
        edges: the ``edge_raw`` of each snapshot, same length.
        config: supplies ``decay_min_snapshots``, ``decay_t_stat``, ``decay_min_change``,
            ``decay_edge_floor`` and ``decay_bounds``.

    Raises:
        ValueError: when the arrays are not 1-D of the same length or hold non-finite values.
    """
    t = np.asarray(hours, dtype=float)
    y = np.asarray(edges, dtype=float)
    if t.ndim != 1 or y.ndim != 1 or t.shape != y.shape:
        raise ValueError(f"hours and edges must be 1-D arrays of the same length, got {t.shape} and {y.shape}")
    if not (np.isfinite(t).all() and np.isfinite(y).all()):
        raise ValueError("hours and edges must be finite")
    n = int(t.size)
    if n < config.decay_min_snapshots:
        return _insufficient(n)

    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    t = t - t[0]
    span = float(t[-1])
    if span == 0.0:
        return _flat_time(n)

    tc = t - t.mean()
    yc = y - y.mean()
    sxx = float(tc @ tc)
    if not sxx > 0.0:  # times so close together that Σ(t - t̄)² underflows
        return _flat_time(n)
    slope = float(tc @ yc) / sxx
    resid = yc - slope * tc
    sse = float(resid @ resid)
    t_stat = _t_stat(n, slope, sse, sxx)
    rank = np.arange(1.0, n + 1.0)
    weighted = rank * resid
    rho = _rho(n, sse, float(weighted @ resid), float(weighted[1:] @ resid[:-1]))

    if (y > 0).all() or (y < 0).all():
        sign = 1.0 if y[0] > 0 else -1.0
        log_abs = np.log(np.abs(y))
        rate = float(tc @ (log_abs - log_abs.mean())) / sxx
    else:
        sign, rate = 0.0, _NAN

    return _classify(n, span, slope, t_stat, rho, rate, sign, float(np.abs(y).mean()), config)


class DecayAccumulator:
    """Incremental :func:`fit_decay`: O(1) time and memory per snapshot.

    It keeps, instead of the series, running means and co-moments (Welford's updates, which
    stay accurate where raw sums ``Σt²  - (Σt)²/n`` would cancel), all about the current means
    ``t̄``, ``ȳ``; ``i = 1..n`` is the snapshot's rank:

    * ``C_tt = Σ(t - t̄)²``, ``C_ty = Σ(t - t̄)(y - ȳ)``, ``C_yy = Σ(y - ȳ)²`` for the linear fit;
    * for ``rho``, rank-weighted co-moments ``W_ab = Σ i·(a_i - ā)(b_i - b̄)`` and lag-1
      co-moments ``L_ab = Σ_{i>=2} i·(a_i - ā)(b_{i-1} - b̄)`` (``a, b`` in ``t, y``), and the
      weighted first moments ``M_a = Σ i·(a_i - ā)``. With ``e = (y - ȳ) - b·(t - t̄)``::

          Σ i·e_i²        = W_yy - 2b·W_ty + b²·W_tt
          Σ i·e_i·e_{i-1} = L_yy - b·(L_yt + L_ty) + b²·L_tt

      When a snapshot moves the means by ``(δa, δb)`` the sums of the earlier ``m`` snapshots
      are re-centred exactly (``S = m(m+1)/2``; ``a_1`` the first, ``b_m`` the last value)::

          W_ab += -δb·M_a - δa·M_b + δa·δb·S
          L_ab += -δb·(M_a - (a_1 - ā)) - δa·(M_b - (m+1)·(b_m - b̄)) + δa·δb·(S - 1)
          M_a  += -δa·S

      then the new snapshot's terms are added;
    * ``mean_l`` and ``C_tl`` with ``l = ln|y|`` for the exponential fit, updated only while
      every edge so far has strictly the same sign (a flag);
    * ``Σ|y|`` for ``mean|y|``, and the first ``y`` and last ``(t, y)``.

    ``t`` is measured from the first snapshot's ``hours``. Snapshots must come in non-decreasing
    time order (``rho`` is a time-order statistic); equal times keep the order they were added in.

    Agreement with :func:`fit_decay` is to ~1e-9 relative on every field, except that ``t_stat``,
    ``t_adjusted`` and ``rho`` of an almost perfect fit (residuals within rounding of 0, where
    ``Σ e²`` is a difference of nearly equal numbers) are only as accurate as that difference;
    such a fit has ``|t_adjusted| >= |t_stat| / sqrt(n - 2)`` enormous either way, so its state
    and multiplier agree.

    Example::

        acc = DecayAccumulator()
        for h, e in zip(hours, edges):  # hours non-decreasing
            acc.add(h, e)
        acc.fit(config)  # == fit_decay(hours, edges, config)
    """

    __slots__ = (
        "_n", "_origin", "_last_hours", "_mean_t", "_mean_y", "_ctt", "_cty", "_cyy",
        "_mt", "_my", "_wtt", "_wty", "_wyy", "_ltt", "_lty", "_lyt", "_lyy",
        "_y_first", "_t_last", "_y_last", "_same_sign", "_sign", "_mean_l", "_ctl", "_sum_abs",
    )

    def __init__(self) -> None:
        self._n = 0
        self._origin = 0.0
        self._last_hours = -math.inf
        self._mean_t = 0.0
        self._mean_y = 0.0
        self._ctt = 0.0
        self._cty = 0.0
        self._cyy = 0.0
        self._mt = 0.0  # Σ i (t_i - t̄)
        self._my = 0.0  # Σ i (y_i - ȳ)
        self._wtt = 0.0  # Σ i (t_i - t̄)²
        self._wty = 0.0  # Σ i (t_i - t̄)(y_i - ȳ)
        self._wyy = 0.0  # Σ i (y_i - ȳ)²
        self._ltt = 0.0  # Σ i (t_i - t̄)(t_{i-1} - t̄)
        self._lty = 0.0  # Σ i (t_i - t̄)(y_{i-1} - ȳ)
        self._lyt = 0.0  # Σ i (y_i - ȳ)(t_{i-1} - t̄)
        self._lyy = 0.0  # Σ i (y_i - ȳ)(y_{i-1} - ȳ)
        self._y_first = 0.0  # t_first is 0 by definition of the origin
        self._t_last = 0.0
        self._y_last = 0.0
        self._same_sign = True
        self._sign = 0.0
        self._mean_l = 0.0
        self._ctl = 0.0
        self._sum_abs = 0.0

    @property
    def n(self) -> int:
        """Snapshots added so far."""
        return self._n

    def add(self, hours: float, edge: float) -> None:
        """Add one snapshot (``hours`` on any origin; the first snapshot defines ``t = 0``).

        Raises:
            ValueError: on a non-finite ``hours`` or ``edge``, or ``hours`` earlier than the
                previous snapshot's (nothing is added then).
        """
        hours, edge = float(hours), float(edge)
        if not (math.isfinite(hours) and math.isfinite(edge)):
            raise ValueError(f"snapshot must be finite, got hours={hours!r}, edge={edge!r}")
        if hours < self._last_hours:
            raise ValueError(
                f"snapshots must be added in non-decreasing time order, got hours={hours!r} after {self._last_hours!r}"
            )
        self._last_hours = hours
        m = self._n  # snapshots before this one
        k = m + 1  # this snapshot's rank, and its weight
        if k == 1:
            self._origin = hours
            t = 0.0
            self._sign = 1.0 if edge > 0.0 else -1.0 if edge < 0.0 else 0.0
            self._same_sign = self._sign != 0.0
            self._y_first = edge
        else:
            t = hours - self._origin
            if self._same_sign and not edge * self._sign > 0.0:
                self._same_sign = False
        self._n = k
        mean_t_old, mean_y_old = self._mean_t, self._mean_y
        dt = t - mean_t_old
        self._mean_t += dt / k
        dt_new = t - self._mean_t
        dy = edge - mean_y_old
        self._mean_y += dy / k
        dy_new = edge - self._mean_y
        self._ctt += dt * dt_new
        self._cty += dt * dy_new
        self._cyy += dy * dy_new

        if m > 0:
            # re-centre the weighted sums of the first m snapshots on the new means ...
            d_t, d_y = self._mean_t - mean_t_old, self._mean_y - mean_y_old
            s1 = 0.5 * m * (m + 1)  # Σ_{i<=m} i
            mt, my = self._mt, self._my
            self._wtt += -2.0 * d_t * mt + d_t * d_t * s1
            self._wty += -d_y * mt - d_t * my + d_t * d_y * s1
            self._wyy += -2.0 * d_y * my + d_y * d_y * s1
            # Σ_{i=2..m} i (a_i - ā) and Σ_{i=2..m} i (b_{i-1} - b̄), about the old means
            head_t, head_y = mt + mean_t_old, my - (self._y_first - mean_y_old)  # t_1 = 0
            tail_t = mt - (m + 1) * (self._t_last - mean_t_old)
            tail_y = my - (m + 1) * (self._y_last - mean_y_old)
            s2 = s1 - 1.0
            self._ltt += -d_t * head_t - d_t * tail_t + d_t * d_t * s2
            self._lty += -d_y * head_t - d_t * tail_y + d_t * d_y * s2
            self._lyt += -d_t * head_y - d_y * tail_t + d_y * d_t * s2
            self._lyy += -d_y * head_y - d_y * tail_y + d_y * d_y * s2
            self._mt = mt - d_t * s1
            self._my = my - d_y * s1
            # ... and add the lag pair (this snapshot, the previous one)
            tpc, ypc = self._t_last - self._mean_t, self._y_last - self._mean_y
            self._ltt += k * dt_new * tpc
            self._lty += k * dt_new * ypc
            self._lyt += k * dy_new * tpc
            self._lyy += k * dy_new * ypc
        self._mt += k * dt_new
        self._my += k * dy_new
        self._wtt += k * dt_new * dt_new
        self._wty += k * dt_new * dy_new
        self._wyy += k * dy_new * dy_new
        self._t_last, self._y_last = t, edge

        self._sum_abs += abs(edge)
        if self._same_sign:
            log_abs = math.log(abs(edge))
            self._mean_l += (log_abs - self._mean_l) / k
            self._ctl += dt * (log_abs - self._mean_l)

    def fit(self, config: EdgeConfig) -> DecayFit:
        """The decay of every snapshot added so far (equals :func:`fit_decay` on them)."""
        n = self._n
        if n < config.decay_min_snapshots:
            return _insufficient(n)
        span = self._t_last  # times are non-decreasing from t = 0
        if span == 0.0:
            return _flat_time(n)
        sxx = self._ctt
        if not sxx > 0.0:  # times so close together that Σ(t - t̄)² underflows
            return _flat_time(n)
        slope = self._cty / sxx
        sse = max(self._cyy - slope * self._cty, 0.0)
        t_stat = _t_stat(n, slope, sse, sxx)
        weighted_sse = self._wyy - 2.0 * slope * self._wty + slope * slope * self._wtt
        weighted_lag = self._lyy - slope * (self._lyt + self._lty) + slope * slope * self._ltt
        rho = _rho(n, sse, weighted_sse, weighted_lag)
        if self._same_sign:
            sign, rate = self._sign, self._ctl / sxx
        else:
            sign, rate = 0.0, _NAN
        return _classify(n, span, slope, t_stat, rho, rate, sign, self._sum_abs / n, config)
