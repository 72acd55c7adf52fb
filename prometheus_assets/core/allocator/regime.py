"""Rule-based risk regimes of the combined portfolio: NORMAL, ELEVATED, STRESS, CRISIS.

What this module does
---------------------
The allocator watches the *combined* portfolio's risk state (one row per date, built elsewhere)
and asks a simple question every day: "how stressed is the book?". The answer is one of four
ordered labels, from calm to panic::

    NORMAL (0) < ELEVATED (1) < STRESS (2) < CRISIS (3)

It is computed in two steps by :class:`RegimeClassifierV1`:

1. **Raw regime** (:meth:`RegimeClassifierV1.raw_classify`): fixed, human-readable threshold
   rules evaluated on each row on its own (table below). The most severe level with at least
   one firing rule wins; if nothing fires the row is NORMAL.
2. **Published regime** (:meth:`RegimeClassifierV1.smooth`): a hysteresis *state machine* so
   that the label does not flicker. Escalation is immediate (stress must be acted on quickly);
   de-escalation goes down **one level at a time** and only after the raw regime has stayed
   strictly below the published level for ``min_dwell`` consecutive days.

:func:`transitions` lists the days on which the published label changed.

Input: the state frame
----------------------
Indexed by date (increasing), with the columns of :data:`REQUIRED_STATE_COLUMNS`:

* ``port_rvol_20d``, ``port_rvol_60d``: annualised realised volatility of the portfolio's daily
  returns over 20 / 60 sessions (0.15 = 15 %);
* ``vol_accel``: ``port_rvol_20d / port_rvol_60d`` (above 1 = volatility is rising);
* ``dd_level``: current drawdown of the portfolio equity curve (<= 0, -0.12 = 12 % under peak);
* ``dd_slope_10d``: change of ``dd_level`` over 10 sessions (not used by the V1 rules);
* ``corr_20d``, ``corr_60d``: average pairwise correlation (in [-1, 1]) over 20 / 60 sessions;
* ``corr_shock``: ``corr_20d - corr_60d`` (a sudden rise in co-movement).

Optional columns (``trend_breadth_20d``, ``sleeve_concentration_60d``) are accepted and ignored
by V1. A row with a missing (NaN) value in any *required* column has no raw regime (typically
the warm-up of the rolling windows): it does not move the state machine (see
:meth:`RegimeClassifierV1.smooth`).

The thresholds (V1) and why
---------------------------
Calibrated for a diversified, long-biased equity book whose realised volatility is usually
10-16 % a year (the S&P 500's long-run average is about 15-16 %, its median 20-day volatility
about 13 %):

============  ======================================================================
Level         Rules (any one fires the level)
============  ======================================================================
CRISIS        ``port_rvol_20d >= 0.35``  (vol of 2008-Q4 / March 2020 kind; top ~3 % of days)
              ``dd_level <= -0.20``      (the conventional "bear market" line)
              ``corr_20d >= 0.70 and vol_accel >= 1.5``  (everything moves together *and*
              volatility is spiking: diversification has failed)
STRESS        ``port_rvol_20d >= 0.25``  (about the top decile of days)
              ``dd_level <= -0.12``      (a correction deeper than the usual 10 % mark)
              ``corr_shock >= 0.15 and vol_accel >= 1.3``  (correlations jumping while
              volatility rises: the typical onset of a sell-off)
ELEVATED      ``port_rvol_20d >= 0.18``  (above-average volatility, roughly the top third)
              ``dd_level <= -0.06``      (a routine pull-back under way)
              ``vol_accel >= 1.3``       (short-term vol 30 % above its 60-day level)
NORMAL        none of the above
============  ======================================================================

The same numbers are in :data:`DEFAULT_THRESHOLDS` and are the defaults of
:class:`RegimeClassifierV1`'s constructor, one keyword each.

Point-in-time
-------------
The raw regime on day ``t`` reads only row ``t``; the published regime on ``t`` reads only the
raw regimes of days ``<= t``. So ``classify(state.iloc[:k])`` equals the first ``k`` rows of
``classify(state)`` for every ``k``: no look-ahead.

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prometheus_assets.core.allocator.state import OPTIONAL_FEATURES, REQUIRED_FEATURES

__all__ = [
    "CRISIS",
    "DEFAULT_MIN_DWELL",
    "DEFAULT_THRESHOLDS",
    "ELEVATED",
    "NORMAL",
    "OPTIONAL_STATE_COLUMNS",
    "REGIMES",
    "REGIME_LEVEL",
    "REQUIRED_STATE_COLUMNS",
    "STRESS",
    "RegimeClassifierV1",
    "Rule",
    "transitions",
]

#: The four regimes, from calm to panic (their position is their severity level 0..3).
REGIMES: tuple[str, str, str, str] = ("NORMAL", "ELEVATED", "STRESS", "CRISIS")
NORMAL, ELEVATED, STRESS, CRISIS = REGIMES
#: Severity level of each regime (higher = more stressed).
REGIME_LEVEL: dict[str, int] = {name: level for level, name in enumerate(REGIMES)}

#: Columns the state frame must have / may have (the features of AllocatorStateV1; V1 ignores the optional ones).
REQUIRED_STATE_COLUMNS: tuple[str, ...] = REQUIRED_FEATURES
OPTIONAL_STATE_COLUMNS: tuple[str, ...] = OPTIONAL_FEATURES

#: V1 thresholds (the defaults of :class:`RegimeClassifierV1`); see the module docstring's table.
DEFAULT_THRESHOLDS: dict[str, float] = {
    # CRISIS
    "crisis_vol": 0.35,  # port_rvol_20d >= this
    "crisis_drawdown": -0.20,  # dd_level <= this
    "crisis_corr": 0.70,  # corr_20d >= this ... (together with)
    "crisis_vol_accel": 1.5,  # ... vol_accel >= this
    # STRESS
    "stress_vol": 0.25,
    "stress_drawdown": -0.12,
    "stress_corr_shock": 0.15,  # corr_shock >= this ... (together with)
    "stress_vol_accel": 1.3,  # ... vol_accel >= this
    # ELEVATED
    "elevated_vol": 0.18,
    "elevated_drawdown": -0.06,
    "elevated_vol_accel": 1.3,  # vol_accel >= this (on its own)
}
#: Default number of consecutive days the raw regime must stay below the published one before
#: the published regime steps down one level (two trading weeks).
DEFAULT_MIN_DWELL: int = 10


@dataclass(frozen=True)
class Rule:
    """One threshold rule: ``level`` fires when *all* ``conditions`` hold on a row.

    Each condition is ``(column, operator, threshold)`` with operator ``">="`` or ``"<="``.
    ``name`` is the human-readable text reported in the ``rule`` column of
    :meth:`RegimeClassifierV1.classify`, e.g. ``"port_rvol_20d >= 0.35"``.
    """

    level: str
    conditions: tuple[tuple[str, str, float], ...]

    @property
    def name(self) -> str:
        return " and ".join(f"{col} {op} {thr:g}" for col, op, thr in self.conditions)

    def fires(self, state: pd.DataFrame) -> np.ndarray:
        """Boolean array: does the rule fire on each row? (NaN compares as False.)"""
        out = np.ones(len(state), dtype=bool)
        for col, op, thr in self.conditions:
            values = state[col].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                out &= values >= thr if op == ">=" else values <= thr
        return out


class RegimeClassifierV1:
    """Label each day NORMAL / ELEVATED / STRESS / CRISIS from the portfolio's risk state.

    Usage::

        clf = RegimeClassifierV1()           # V1 thresholds, min_dwell = 10
        labels = clf.classify(state)         # DataFrame: regime, raw_regime, score, rule

    Args (all thresholds default to :data:`DEFAULT_THRESHOLDS`; vols are annualised, drawdowns
    are <= 0, correlations in [-1, 1]):
        crisis_vol, stress_vol, elevated_vol: ``port_rvol_20d`` at or above which the level
            fires. Must increase from ELEVATED to CRISIS.
        crisis_drawdown, stress_drawdown, elevated_drawdown: ``dd_level`` at or below which the
            level fires. Must be <= 0 and get deeper from ELEVATED to CRISIS.
        crisis_corr, crisis_vol_accel: CRISIS also fires when ``corr_20d >= crisis_corr`` and
            ``vol_accel >= crisis_vol_accel`` on the same day.
        stress_corr_shock, stress_vol_accel: STRESS also fires when
            ``corr_shock >= stress_corr_shock`` and ``vol_accel >= stress_vol_accel``.
        elevated_vol_accel: ELEVATED also fires when ``vol_accel >= elevated_vol_accel``.
        min_dwell: consecutive days the raw regime must stay strictly below the published
            regime before the published regime steps down one level (>= 1).

    Raises:
        ValueError: thresholds out of order, a positive drawdown threshold, or ``min_dwell < 1``.
    """

    def __init__(
        self,
        crisis_vol: float = DEFAULT_THRESHOLDS["crisis_vol"],
        crisis_drawdown: float = DEFAULT_THRESHOLDS["crisis_drawdown"],
        crisis_corr: float = DEFAULT_THRESHOLDS["crisis_corr"],
        crisis_vol_accel: float = DEFAULT_THRESHOLDS["crisis_vol_accel"],
        stress_vol: float = DEFAULT_THRESHOLDS["stress_vol"],
        stress_drawdown: float = DEFAULT_THRESHOLDS["stress_drawdown"],
        stress_corr_shock: float = DEFAULT_THRESHOLDS["stress_corr_shock"],
        stress_vol_accel: float = DEFAULT_THRESHOLDS["stress_vol_accel"],
        elevated_vol: float = DEFAULT_THRESHOLDS["elevated_vol"],
        elevated_drawdown: float = DEFAULT_THRESHOLDS["elevated_drawdown"],
        elevated_vol_accel: float = DEFAULT_THRESHOLDS["elevated_vol_accel"],
        min_dwell: int = DEFAULT_MIN_DWELL,
    ) -> None:
        self.crisis_vol = float(crisis_vol)
        self.crisis_drawdown = float(crisis_drawdown)
        self.crisis_corr = float(crisis_corr)
        self.crisis_vol_accel = float(crisis_vol_accel)
        self.stress_vol = float(stress_vol)
        self.stress_drawdown = float(stress_drawdown)
        self.stress_corr_shock = float(stress_corr_shock)
        self.stress_vol_accel = float(stress_vol_accel)
        self.elevated_vol = float(elevated_vol)
        self.elevated_drawdown = float(elevated_drawdown)
        self.elevated_vol_accel = float(elevated_vol_accel)
        self.min_dwell = int(min_dwell)
        if not self.elevated_vol < self.stress_vol < self.crisis_vol:
            raise ValueError("volatility thresholds must increase: elevated_vol < stress_vol < crisis_vol")
        if not self.crisis_drawdown < self.stress_drawdown < self.elevated_drawdown <= 0.0:
            raise ValueError("drawdown thresholds must deepen: crisis_drawdown < stress_drawdown < elevated_drawdown <= 0")
        if self.min_dwell < 1:
            raise ValueError("min_dwell must be >= 1")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={getattr(self, k)!r}" for k in (*DEFAULT_THRESHOLDS, "min_dwell"))
        return f"RegimeClassifierV1({params})"

    # ------------------------------------------------------------------ rules
    @property
    def rules(self) -> tuple[Rule, ...]:
        """The threshold rules, most severe level first (the order they are reported in)."""
        return (
            Rule(CRISIS, (("port_rvol_20d", ">=", self.crisis_vol),)),
            Rule(CRISIS, (("dd_level", "<=", self.crisis_drawdown),)),
            Rule(CRISIS, (("corr_20d", ">=", self.crisis_corr), ("vol_accel", ">=", self.crisis_vol_accel))),
            Rule(STRESS, (("port_rvol_20d", ">=", self.stress_vol),)),
            Rule(STRESS, (("dd_level", "<=", self.stress_drawdown),)),
            Rule(STRESS, (("corr_shock", ">=", self.stress_corr_shock), ("vol_accel", ">=", self.stress_vol_accel))),
            Rule(ELEVATED, (("port_rvol_20d", ">=", self.elevated_vol),)),
            Rule(ELEVATED, (("dd_level", "<=", self.elevated_drawdown),)),
            Rule(ELEVATED, (("vol_accel", ">=", self.elevated_vol_accel),)),
        )

    def raw_classify(self, state: pd.DataFrame) -> pd.DataFrame:
        """Raw (unsmoothed) regime of each row, on that row alone.

        Returns a frame with ``state``'s index and columns:

        * ``raw_regime``: the most severe level with a firing rule, NORMAL if none fires, and
          missing (NaN) where a required column is NaN;
        * ``score``: a continuous stress score, the largest "fraction of the way to CRISIS" over
          the CRISIS rules: ``max(port_rvol_20d / crisis_vol, dd_level / crisis_drawdown,
          min(corr_20d / crisis_corr, vol_accel / crisis_vol_accel))``. ``score >= 1`` exactly
          when a CRISIS rule fires; it is handy for charts and ranking (NaN where data is missing);
        * ``rule``: the name(s) of the firing rule(s) of the winning level, joined by ``" | "``
          in table order; ``"none"`` for NORMAL rows and ``"missing data"`` for rows without a
          raw regime.

        Raises:
            KeyError: a required column is absent.
        """
        _check_columns(state)
        n = len(state)
        valid = state[list(REQUIRED_STATE_COLUMNS)].notna().all(axis=1).to_numpy()
        level = np.zeros(n, dtype=int)
        rule_text = np.array(["none"] * n, dtype=object)
        for rule in reversed(self.rules):  # least severe first: more severe levels overwrite
            fired = rule.fires(state) & valid
            lvl = REGIME_LEVEL[rule.level]
            higher = fired & (lvl > level)
            same = fired & (lvl == level) & (level > 0) & ~higher
            level[higher] = lvl
            # rules are visited in reverse table order, so prepend to keep table order
            rule_text[same] = [f"{rule.name} | {t}" for t in rule_text[same]]
            rule_text[higher] = rule.name
        rule_text[~valid] = "missing data"

        labels = np.array(REGIMES, dtype=object)[level]
        labels[~valid] = None
        with np.errstate(divide="ignore", invalid="ignore"):
            vol = state["port_rvol_20d"].to_numpy(dtype=float) / self.crisis_vol
            dd = state["dd_level"].to_numpy(dtype=float) / self.crisis_drawdown
            co = np.minimum(
                state["corr_20d"].to_numpy(dtype=float) / self.crisis_corr,
                state["vol_accel"].to_numpy(dtype=float) / self.crisis_vol_accel,
            )
            score = np.maximum(np.maximum(vol, dd), co)
        score[~valid] = np.nan
        return pd.DataFrame(
            {
                "raw_regime": pd.Series(labels, index=state.index, dtype="str"),
                "score": pd.Series(score, index=state.index, dtype=float),
                "rule": pd.Series(rule_text, index=state.index, dtype="str"),
            }
        )

    # ------------------------------------------------------------------ hysteresis
    def smooth(self, raw_regime: pd.Series) -> pd.Series:
        """Published regime from the raw one, by a hysteresis state machine (one pass over days).

        Why a loop: the published label on day ``t`` depends on the published label on ``t-1``
        and on how long the raw label has been below it, so it is a *state machine* (state =
        published level + a counter of consecutive "below" days), run forward in date order.
        Each day with a raw label ``R`` and published level ``P``:

        * first labelled day: ``P = R``;
        * ``R > P`` (more stressed): escalate at once, ``P = R`` (may skip levels), counter = 0;
        * ``R == P``: counter = 0;
        * ``R < P``: counter += 1; when the counter reaches ``min_dwell``, step down *one*
          level, ``P = P - 1``, and restart the counter (so CRISIS -> NORMAL takes at least
          ``3 * min_dwell`` days of calm).

        A day with a missing raw label keeps the published label (missing before the first
        labelled day) and leaves the counter unchanged.

        Args:
            raw_regime: labels from :data:`REGIMES` (or missing), indexed by increasing date.

        Returns:
            The published label per day (``raw_regime``'s index, name ``"regime"``; missing
            before the first labelled day).

        Raises:
            ValueError: an unknown label.
        """
        raw_levels = _levels(raw_regime)
        out = np.full(len(raw_levels), -1, dtype=int)
        published, below = -1, 0
        for i, r in enumerate(raw_levels):
            if r >= 0:
                if published < 0 or r > published:
                    published, below = r, 0
                elif r == published:
                    below = 0
                else:
                    below += 1
                    if below >= self.min_dwell:
                        published, below = published - 1, 0
            out[i] = published
        labels = np.array(REGIMES, dtype=object)[np.maximum(out, 0)]
        labels[out < 0] = None
        return pd.Series(labels, index=raw_regime.index, dtype="str", name="regime")

    def classify(self, state: pd.DataFrame) -> pd.DataFrame:
        """Published regime of each day, with the raw regime behind it.

        Args:
            state: the risk-state frame (see the module docstring), indexed by increasing,
                unique dates.

        Returns:
            ``state``'s index, columns ``regime`` (published, hysteresis applied),
            ``raw_regime``, ``score`` and ``rule`` (see :meth:`raw_classify`).

        Raises:
            KeyError: a required column is absent.
            ValueError: the index is not increasing and unique.
        """
        if not (state.index.is_monotonic_increasing and state.index.is_unique):
            raise ValueError("state must be indexed by increasing, unique dates")
        raw = self.raw_classify(state)
        regime = self.smooth(raw["raw_regime"])
        return pd.concat([regime, raw], axis=1)


def transitions(regimes: pd.Series) -> pd.DataFrame:
    """Days on which the published regime changed.

    Missing labels (the warm-up) are skipped; a labelled day whose label differs from the
    previous *labelled* day is a transition (the first labelled day is not).

    Returns:
        Columns ``date, from, to`` (one row per change, in date order).
    """
    s = regimes.dropna()
    prev = s.shift(1)
    changed = prev.notna() & (s != prev)
    return pd.DataFrame(
        {
            "date": s.index[changed.to_numpy()],
            "from": prev[changed].to_numpy(dtype=object),
            "to": s[changed].to_numpy(dtype=object),
        }
    )


# ---------------------------------------------------------------------- helpers
def _check_columns(state: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_STATE_COLUMNS if c not in state.columns]
    if missing:
        raise KeyError(f"state is missing required columns: {missing}")


def _levels(labels: pd.Series) -> np.ndarray:
    """Severity level of each label (-1 for missing). Raises ValueError on unknown labels."""
    values = labels.to_numpy(dtype=object)
    missing = pd.isna(values)
    unknown = sorted({str(v) for v in values[~missing] if v not in REGIME_LEVEL})
    if unknown:
        raise ValueError(f"unknown regime labels: {unknown}; expected one of {REGIMES}")
    return np.array([-1 if m else REGIME_LEVEL[v] for v, m in zip(values, missing)], dtype=int)
