"""From regime to risk scalar: how much of the portfolio's exposure to keep each day.

What this module does
---------------------
:class:`RiskTransformerV1` maps the published regime of each day (from
:class:`~prometheus_assets.core.allocator.regime.RegimeClassifierV1`) to a **risk scalar**: the
fraction of the normal exposure the allocator wants to hold (1.0 = fully invested, 0.6 = keep
60 % of every position, the rest in cash).

Two steps:

1. **Target** (``target_scalar``): a fixed number per regime (:data:`DEFAULT_SCALARS`), clipped to
   ``[min_scalar, max_scalar]``.
2. **Smoothed scalar** (``risk_scalar``): asymmetric on purpose.

   * *Down* moves (de-risking) are **immediate**: if the target is at or below yesterday's
     scalar, today's scalar is the target. Cutting risk late is what hurts.
   * *Up* moves (re-risking) are **smoothed** with an exponential moving average of span
     ``smoothing`` days: ``s_t = s_{t-1} + alpha * (target_t - s_{t-1})`` with
     ``alpha = 2 / (smoothing + 1)`` (pandas' ``ewm(span=...)`` convention; span 5 -> alpha 1/3,
     so about two thirds of the gap is closed in 3 days). Exposure is rebuilt gradually after
     a stress episode, which avoids buying back everything on the first calm day. Once the
     remaining gap is at most ``snap_tolerance`` the scalar jumps to the target, so it reaches
     exactly 1.0 instead of creeping towards it forever.

   The recursion is sequential (a small state machine over days), so it is a loop; it only
   reads days ``<= t`` (point-in-time).

Days without a regime (warm-up) have a missing target and a missing scalar; the smoothing state
carries over such gaps (the next labelled day continues from the last scalar).

:meth:`RiskTransformerV1.transform_sleeves` gives the same scalar to every sleeve except the
``defensive_sleeves`` (e.g. a bond or low-volatility sleeve), which keep at least
``defensive_floor``: cutting a hedge in a crisis would make the book riskier, not safer.

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from prometheus_assets.core.allocator.regime import REGIMES

__all__ = [
    "DEFAULT_DEFENSIVE_FLOOR",
    "DEFAULT_MAX_SCALAR",
    "DEFAULT_MIN_SCALAR",
    "DEFAULT_SCALARS",
    "DEFAULT_SMOOTHING",
    "DEFAULT_SNAP_TOLERANCE",
    "RiskTransformerV1",
]

#: Exposure kept in each regime (V1). CRISIS keeps about a third: enough to participate in the
#: sharp rebounds that follow panics, small enough to roughly halve a crisis drawdown.
DEFAULT_SCALARS: dict[str, float] = {"NORMAL": 1.0, "ELEVATED": 0.85, "STRESS": 0.6, "CRISIS": 0.35}
#: Hard bounds of any scalar (never fully out of the market, never levered).
DEFAULT_MIN_SCALAR: float = 0.25
DEFAULT_MAX_SCALAR: float = 1.0
#: EMA span (days) of the re-risking path.
DEFAULT_SMOOTHING: float = 5.0
#: Remaining gap below which re-risking jumps to the target.
DEFAULT_SNAP_TOLERANCE: float = 1e-3
#: Lowest scalar of a defensive sleeve.
DEFAULT_DEFENSIVE_FLOOR: float = 0.8


class RiskTransformerV1:
    """Map published regimes to a bounded, asymmetrically smoothed risk scalar.

    Usage::

        rt = RiskTransformerV1()
        risk = rt.transform(labels)          # labels: classify(...) frame or its "regime" Series
        risk["risk_scalar"]                  # what to apply (see allocator.apply)

    Args:
        scalars: exposure per regime; must give a finite number for each of NORMAL, ELEVATED,
            STRESS, CRISIS (default :data:`DEFAULT_SCALARS`).
        smoothing: EMA span in days of upward moves (>= 1; 1 means no smoothing).
        min_scalar, max_scalar: bounds every scalar is clipped to (``0 <= min <= max``).
        snap_tolerance: re-risking jumps to the target once the gap is at most this (>= 0).
        defensive_sleeves: sleeves that keep at least ``defensive_floor`` in
            :meth:`transform_sleeves`.
        defensive_floor: the floor of defensive sleeves (clipped to the bounds as well).

    Raises:
        ValueError: a missing or non-finite regime scalar, or bad bounds / smoothing.
    """

    def __init__(
        self,
        scalars: Mapping[str, float] | None = None,
        smoothing: float = DEFAULT_SMOOTHING,
        min_scalar: float = DEFAULT_MIN_SCALAR,
        max_scalar: float = DEFAULT_MAX_SCALAR,
        snap_tolerance: float = DEFAULT_SNAP_TOLERANCE,
        defensive_sleeves: Iterable[str] = (),
        defensive_floor: float = DEFAULT_DEFENSIVE_FLOOR,
    ) -> None:
        self.scalars: dict[str, float] = dict(DEFAULT_SCALARS if scalars is None else scalars)
        self.smoothing = float(smoothing)
        self.min_scalar = float(min_scalar)
        self.max_scalar = float(max_scalar)
        self.snap_tolerance = float(snap_tolerance)
        self.defensive_sleeves: tuple[str, ...] = tuple(defensive_sleeves)
        self.defensive_floor = float(defensive_floor)
        missing = [r for r in REGIMES if r not in self.scalars]
        if missing:
            raise ValueError(f"scalars is missing regimes: {missing}")
        if not all(np.isfinite(float(v)) for v in self.scalars.values()):
            raise ValueError("scalars must be finite numbers")
        if not 0.0 <= self.min_scalar <= self.max_scalar:
            raise ValueError("need 0 <= min_scalar <= max_scalar")
        if not self.smoothing >= 1.0:
            raise ValueError("smoothing (EMA span in days) must be >= 1")
        if not self.snap_tolerance >= 0.0:
            raise ValueError("snap_tolerance must be >= 0")

    def __repr__(self) -> str:
        return (
            f"RiskTransformerV1(scalars={self.scalars!r}, smoothing={self.smoothing!r}, "
            f"min_scalar={self.min_scalar!r}, max_scalar={self.max_scalar!r}, "
            f"snap_tolerance={self.snap_tolerance!r}, defensive_sleeves={self.defensive_sleeves!r}, "
            f"defensive_floor={self.defensive_floor!r})"
        )

    @property
    def alpha(self) -> float:
        """EMA factor of upward moves: ``2 / (smoothing + 1)``."""
        return 2.0 / (self.smoothing + 1.0)

    def target(self, regime: str) -> float:
        """Bounded target scalar of one regime label."""
        return float(np.clip(float(self.scalars[regime]), self.min_scalar, self.max_scalar))

    def transform(self, regimes: pd.DataFrame | pd.Series) -> pd.DataFrame:
        """Daily target and smoothed risk scalar.

        Args:
            regimes: published labels indexed by increasing date: a Series, or a DataFrame with
                a ``regime`` column (e.g. the output of ``RegimeClassifierV1.classify``).

        Returns:
            The same index, columns ``regime``, ``target_scalar`` (bounded per-regime value)
            and ``risk_scalar`` (smoothed as in the module docstring, within
            ``[min_scalar, max_scalar]``); both NaN on days without a regime.

        Raises:
            ValueError: unknown labels.
        """
        labels = regimes["regime"] if isinstance(regimes, pd.DataFrame) else regimes
        values = labels.to_numpy(dtype=object)
        missing = pd.isna(values)
        unknown = sorted({str(v) for v in values[~missing] if v not in self.scalars})
        if unknown:
            raise ValueError(f"unknown regime labels: {unknown}")
        target = np.array([np.nan if m else self.target(v) for v, m in zip(values, missing)], dtype=float)

        scalar = np.full(len(target), np.nan)
        prev = np.nan
        a = self.alpha
        for i, t in enumerate(target):
            if np.isnan(t):
                continue  # no regime today: no scalar, smoothing state carried over
            if np.isnan(prev) or t <= prev:
                s = t  # first day, or de-risking: immediate
            else:
                s = prev + a * (t - prev)  # re-risking: EMA step towards the target
                if t - s <= self.snap_tolerance:
                    s = t
            s = float(np.clip(s, self.min_scalar, self.max_scalar))
            scalar[i] = prev = s
        return pd.DataFrame(
            {
                "regime": pd.Series(values, index=labels.index, dtype="str"),
                "target_scalar": target,
                "risk_scalar": scalar,
            },
            index=labels.index,
        )

    def transform_sleeves(self, regimes: pd.DataFrame | pd.Series, sleeves: Iterable[str]) -> pd.DataFrame:
        """Per-sleeve scalars: the portfolio ``risk_scalar``, floored for defensive sleeves.

        Every sleeve gets ``risk_scalar``; a sleeve listed in ``defensive_sleeves`` gets
        ``max(risk_scalar, defensive_floor)`` (then clipped to the bounds). Missing stays
        missing.

        Returns:
            Index = ``regimes``' index, one column per sleeve (in the order given).
        """
        base = self.transform(regimes)["risk_scalar"]
        floor = float(np.clip(self.defensive_floor, self.min_scalar, self.max_scalar))
        out = {}
        for sleeve in sleeves:
            if sleeve in self.defensive_sleeves:
                out[sleeve] = base.where(base.isna(), np.maximum(base, floor))
            else:
                out[sleeve] = base
        return pd.DataFrame(out, index=base.index)
