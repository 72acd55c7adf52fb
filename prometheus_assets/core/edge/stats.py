"""Edge statistics of closed trades, per pattern and scope mask: incremental and point-in-time.

What this module computes
-------------------------
Every closed trade has a ``pattern_key`` (alpha source and signal pattern), an
``action_category``, an exit date, a return ``rr`` in risk units, a duration in hours and one
value per scope dimension (see :mod:`.scope`). For every mask ``m`` of ``config.masks`` a trade
belongs to exactly one *key* ``(pattern_key, action_category, m, scope_key(trade, m))``. A key
collects the trades that share a pattern and the scope values the mask pins down, and its
statistics say how good that pattern has been in that scope: this is ``pattern_scope_stats``.

Per key the aggregator keeps ``n``, ``Σrr``, ``Σrr²``, ``Σduration`` and the sorted ``rr`` values
(for the median). From them, :func:`edge_components` derives (seed formulas)::

    avg_rr            = Σrr / n
    variance_rr       = max(Σrr² / n - avg_rr², 0)            (population variance)
    delta_rr          = avg_rr - baseline_rr                  (baseline = mean rr of ALL trades so far)
    ev_score          = sigmoid(delta_rr / ev_scale)
    reliability_score = 1 / (1 + variance_rr)
    support_score     = 1 - exp(-n / support_k)
    magnitude_score   = sigmoid(median_rr / magnitude_scale)
    time_score        = 1 / (1 + ln(1 + mean_duration_hours))
    stability_score   = 1 / (1 + edge_volatility)
    edge_raw          = delta_rr × reliability_score × (support + magnitude + time + stability)

``edge_volatility`` is the population standard deviation of the key's last
``config.stability_window`` ``edge_raw`` snapshots *before* the current one (0.0 with fewer than
two), so an edge that jumps around scores lower stability.

Snapshots and decay
-------------------
Trades are fed one calendar day at a time (:meth:`EdgeAggregator.update`). On a day:

1. the day's ``rr`` values join the global baseline (mean ``rr`` over every trade closed up to
   and including the day);
2. each trade is added to its key for every mask;
3. every key touched that day recomputes its components and records ONE snapshot
   ``(day, edge_raw)`` — ``edge_history`` — with ``hours`` = hours since the key's first
   snapshot. The snapshot feeds the key's :class:`~.decay.DecayAccumulator`, whose fit
   (:mod:`.decay`) is part of the key's statistics.

Keys not touched on a day keep their previous statistics, including the baseline they were
computed with.

Point in time
-------------
:class:`EdgeTimeline` answers "what did we know before day ``d``?": its :meth:`~EdgeTimeline.before`
returns an aggregator holding exactly the trades with ``exit_date < d``. Sizing a position on
day ``d`` with it can never see a trade that closes on ``d`` or later.

Rows with a non-finite ``rr`` are skipped and counted (``skipped``). The work is plain Python
over pre-extracted lists (no pandas per row), O(masks) per trade plus O(stability_window) per
snapshot, and fully deterministic.

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

import math
import pickle
from bisect import insort
from collections import deque
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import pandas as pd

from prometheus_assets.core.edge.config import EdgeConfig
from prometheus_assets.core.edge.decay import DecayAccumulator
from prometheus_assets.core.edge.scope import UNKNOWN, dimensions_of

__all__ = [
    "TRADE_COLUMNS",
    "COMPONENT_NAMES",
    "STATS_COLUMNS",
    "HISTORY_COLUMNS",
    "MaskStats",
    "edge_components",
    "EdgeAggregator",
    "EdgeTimeline",
    "edge_statistics",
]

#: Columns every trades frame needs besides the scope dimensions used by ``config.masks``.
TRADE_COLUMNS: Final[tuple[str, ...]] = ("pattern_key", "action_category", "exit_date", "rr", "duration_hours")

#: Keys of :func:`edge_components`, in order.
COMPONENT_NAMES: Final[tuple[str, ...]] = (
    "avg_rr",
    "variance_rr",
    "delta_rr",
    "ev_score",
    "reliability_score",
    "support_score",
    "magnitude_score",
    "time_score",
    "stability_score",
    "edge_raw",
)

#: Columns of :meth:`EdgeAggregator.history_frame` (``edge_history``).
HISTORY_COLUMNS: Final[tuple[str, ...]] = ("pattern_key", "action_category", "scope_mask", "scope_key", "ts", "hours", "edge_raw", "n")

_NS_PER_HOUR: Final[float] = 3.6e12
_Key = tuple[str, str, int, str]


# --------------------------------------------------------------------------- components
def _sigmoid(x: float) -> float:
    """``1 / (1 + e^-x)`` without overflow for large ``|x|``."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _components(
    n: int,
    sum_rr: float,
    sum_rr2: float,
    median_rr: float,
    mean_duration_hours: float,
    baseline_rr: float,
    edge_volatility: float,
    ev_scale: float,
    magnitude_scale: float,
    support_k: float,
) -> tuple[float, float, float, float, float, float, float, float, float, float]:
    """:func:`edge_components` as a tuple in :data:`COMPONENT_NAMES` order (the hot path)."""
    avg = sum_rr / n
    variance = max(sum_rr2 / n - avg * avg, 0.0)
    delta = avg - baseline_rr
    ev = _sigmoid(delta / ev_scale)
    reliability = 1.0 / (1.0 + variance)
    support = -math.expm1(-n / support_k)
    magnitude = _sigmoid(median_rr / magnitude_scale)
    time = 1.0 / (1.0 + math.log1p(mean_duration_hours))
    stability = 1.0 / (1.0 + edge_volatility)
    edge_raw = delta * reliability * (support + magnitude + time + stability)
    return (avg, variance, delta, ev, reliability, support, magnitude, time, stability, edge_raw)


def edge_components(
    n: int,
    sum_rr: float,
    sum_rr2: float,
    median_rr: float,
    mean_duration_hours: float,
    baseline_rr: float,
    edge_volatility: float,
    config: EdgeConfig,
) -> dict[str, float]:
    """The edge components of one key from its sufficient statistics (formulas in the module docstring).

    Args:
        n: number of trades (>= 1).
        sum_rr, sum_rr2: ``Σrr`` and ``Σrr²`` over those trades.
        median_rr: median ``rr`` of those trades.
        mean_duration_hours: mean trade duration in hours (>= 0).
        baseline_rr: mean ``rr`` over every trade (all patterns) known at the time.
        edge_volatility: population std of the key's recent ``edge_raw`` snapshots (>= 0).
        config: supplies ``ev_scale``, ``magnitude_scale`` and ``support_k``.

    Returns:
        ``{name: value}`` for every name of :data:`COMPONENT_NAMES`. Note that ``edge_raw`` uses
        ``delta_rr`` itself as its EV factor; ``ev_score`` is the bounded (0, 1) view of it.

    Raises:
        ValueError: when ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"edge components need at least one trade, got n={n}")
    values = _components(
        int(n),
        float(sum_rr),
        float(sum_rr2),
        float(median_rr),
        float(mean_duration_hours),
        float(baseline_rr),
        float(edge_volatility),
        config.ev_scale,
        config.magnitude_scale,
        config.support_k,
    )
    return dict(zip(COMPONENT_NAMES, values, strict=True))


# --------------------------------------------------------------------------- statistics of one key
@dataclass(frozen=True)
class MaskStats:
    """The latest statistics of one key ``(pattern_key, action_category, scope_mask, scope_key)``.

    ``as_of_date`` is the last day a trade of the key closed; every other field is as of that
    day (``baseline_rr`` included). ``snapshots`` counts the days the key was touched; the
    ``decay_*`` fields and ``half_life_hours`` are the :class:`~.decay.DecayFit` of those
    snapshots. The component fields are documented in :func:`edge_components`.
    """

    pattern_key: str
    action_category: str
    scope_mask: int
    scope_key: str
    as_of_date: pd.Timestamp
    n: int
    sum_rr: float
    sum_rr2: float
    avg_rr: float
    variance_rr: float
    median_rr: float
    avg_duration_hours: float
    baseline_rr: float
    delta_rr: float
    ev_score: float
    reliability_score: float
    support_score: float
    magnitude_score: float
    time_score: float
    stability_score: float
    edge_volatility: float
    edge_raw: float
    snapshots: int
    decay_slope_per_hour: float
    decay_rate_per_hour: float
    half_life_hours: float
    decay_state: str
    decay_mult: float


#: Columns of :meth:`EdgeAggregator.stats_frame` (``pattern_scope_stats``).
STATS_COLUMNS: Final[tuple[str, ...]] = tuple(f.name for f in fields(MaskStats)) + ("dimensions",)


class _KeyState:
    """Mutable running state of one key (internal)."""

    __slots__ = (
        "key",
        "n",
        "sum_rr",
        "sum_rr2",
        "sum_dur",
        "sorted_rr",
        "first_ns",
        "day_idx",
        "baseline",
        "edge_volatility",
        "recent",
        "snapshots",
        "decay",
        "cached",
    )

    def __init__(self, key: _Key, window: int) -> None:
        self.key = key
        self.n = 0
        self.sum_rr = 0.0
        self.sum_rr2 = 0.0
        self.sum_dur = 0.0
        self.sorted_rr: list[float] = []
        self.first_ns = 0
        self.day_idx = -1
        self.baseline = math.nan
        self.edge_volatility = 0.0
        self.recent: deque[float] = deque(maxlen=window)  # last `window` edge_raw snapshots
        self.snapshots = 0
        self.decay = DecayAccumulator()
        self.cached: MaskStats | None = None

    def __getstate__(self) -> tuple:
        # The cached statistics are derived from the rest (recomputed on the first read): not carried.
        return tuple(None if name == "cached" else getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def median(self) -> float:
        s, n = self.sorted_rr, self.n
        h = n // 2
        return s[h] if n % 2 else 0.5 * (s[h - 1] + s[h])


# --------------------------------------------------------------------------- input preparation
@dataclass(frozen=True)
class _Prepared:
    """Trades reduced to plain lists, one entry per kept row (finite rr), in a fixed row order."""

    rr: list[float]
    duration: list[float]
    keys: list[tuple[_Key, ...]]  # per row: its key for every mask, in config.masks order
    day_ns: np.ndarray  # int64 ns of the normalised exit day (as stored by pandas)
    days: pd.DatetimeIndex  # the normalised exit days (with the input's timezone)
    skipped: int

    def __len__(self) -> int:
        return len(self.rr)

    def take(self, order: np.ndarray) -> _Prepared:
        idx = order.tolist()
        return _Prepared(
            rr=[self.rr[i] for i in idx],
            duration=[self.duration[i] for i in idx],
            keys=[self.keys[i] for i in idx],
            day_ns=self.day_ns[order],
            days=self.days[order],
            skipped=self.skipped,
        )


def _prepare(trades: pd.DataFrame, masks: tuple[int, ...]) -> _Prepared:
    """Validate ``trades`` and extract what the aggregator needs (vectorised; no per-row pandas)."""
    mask_dims = [dimensions_of(m) for m in masks]
    needed_dims = sorted({d for dims in mask_dims for d in dims})
    missing = [c for c in (*TRADE_COLUMNS, *needed_dims) if c not in trades.columns]
    if missing:
        raise ValueError(f"trades frame lacks columns {missing}")

    rr_all = pd.to_numeric(trades["rr"], errors="raise").to_numpy(dtype=float)
    keep = np.isfinite(rr_all)
    skipped = int((~keep).sum())
    rows = np.flatnonzero(keep)
    df = trades.iloc[rows]

    exit_date = pd.to_datetime(df["exit_date"])
    if exit_date.isna().any():
        raise ValueError("exit_date is missing for a trade with a finite rr")
    days = pd.DatetimeIndex(exit_date.dt.normalize()).as_unit("ns")  # asi8 below is then in ns
    duration = pd.to_numeric(df["duration_hours"], errors="raise").to_numpy(dtype=float)
    if not (np.isfinite(duration) & (duration >= 0)).all():
        raise ValueError("duration_hours must be finite and >= 0 for every trade with a finite rr")
    for name in ("pattern_key", "action_category"):
        if df[name].isna().any():
            raise ValueError(f"{name} is missing for a trade with a finite rr")
    pattern = [str(v) for v in df["pattern_key"].to_numpy(dtype=object)]
    action = [str(v) for v in df["action_category"].to_numpy(dtype=object)]

    # "name=value" of every needed dimension, formatted exactly as scope.scope_key does
    parts: dict[str, list[str]] = {}
    for name in needed_dims:
        values = df[name].to_numpy(dtype=object)
        unknown = pd.isna(values)
        parts[name] = [f"{name}={UNKNOWN}" if u else f"{name}={v}" for v, u in zip(values, unknown, strict=True)]
    mask_keys: list[list[str]] = []
    for dims in mask_dims:
        if len(dims) == 1:
            mask_keys.append(parts[dims[0]])
        else:
            mask_keys.append(["|".join(t) for t in zip(*(parts[d] for d in dims), strict=True)])
    per_row = list(zip(*mask_keys, strict=True)) if len(df) else []
    keys = [
        tuple((p, a, m, k) for m, k in zip(masks, row_keys, strict=True))
        for p, a, row_keys in zip(pattern, action, per_row, strict=True)
    ]
    return _Prepared(
        rr=rr_all[rows].tolist(),
        duration=duration.tolist(),
        keys=keys,
        day_ns=days.asi8.copy(),
        days=days,
        skipped=skipped,
    )


def _as_day(day: object) -> pd.Timestamp:
    """``day`` as a midnight :class:`pandas.Timestamp` (a calendar day), else ``ValueError``."""
    ts = pd.Timestamp(day)
    if ts is pd.NaT:
        raise ValueError("day must not be NaT")
    if ts != ts.normalize():
        raise ValueError(f"day must be a calendar day (midnight timestamp), got {ts}")
    return ts


def _day_index(days: list[pd.Timestamp]) -> pd.DatetimeIndex:
    """Days as a nanosecond DatetimeIndex (keeping their timezone)."""
    if not days:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    return pd.DatetimeIndex(days).as_unit("ns")


# --------------------------------------------------------------------------- aggregator
class EdgeAggregator:
    """Incremental ``pattern_scope_stats`` and ``edge_history``, one calendar day at a time.

    Example::

        agg = EdgeAggregator(EdgeConfig())
        for day, todays_trades in trades.groupby(trades["exit_date"].dt.normalize()):
            agg.update(day, todays_trades)
        agg.lookup("momentum", "open", mask_of(["intent"]), "intent=long")

    Cost: O(len(config.masks)) per trade (plus the sorted insert of its rr) and
    O(config.stability_window) per snapshot; statistics are materialised lazily by
    :meth:`lookup` / :meth:`stats_frame`.
    """

    def __init__(self, config: EdgeConfig) -> None:
        self._config = config
        self._masks: tuple[int, ...] = tuple(int(m) for m in config.masks)
        self._states: dict[_Key, _KeyState] = {}
        self._days: list[pd.Timestamp] = []  # every day applied, in order
        self._last_day: pd.Timestamp | None = None
        self._sum_rr = 0.0
        self._count = 0
        self._skipped = 0
        # edge_history, column-wise
        self._h_day: list[int] = []
        self._h_key: list[_Key] = []
        self._h_hours: list[float] = []
        self._h_edge: list[float] = []
        self._h_n: list[int] = []

    # ----------------------------------------------------------------- properties
    @property
    def config(self) -> EdgeConfig:
        return self._config

    @property
    def baseline_rr(self) -> float:
        """Mean ``rr`` of every trade added so far (all patterns); NaN before any."""
        return self._sum_rr / self._count if self._count else math.nan

    @property
    def last_day(self) -> pd.Timestamp | None:
        """The last day applied (None before any)."""
        return self._last_day

    @property
    def skipped(self) -> int:
        """Rows with a non-finite ``rr`` skipped by :meth:`update` calls so far."""
        return self._skipped

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_days"] = _day_index(self._days)  # one array: thousands of pickled Timestamps load slowly
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._days = list(state["_days"])

    def copy(self) -> "EdgeAggregator":
        """An independent copy (through the pickled state, several times faster than ``copy.deepcopy`` here)."""
        return pickle.loads(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own object

    def without_history(self) -> "EdgeAggregator":
        """A copy sharing this aggregator's statistics but with no ``edge_history`` rows.

        What a run carries to the next one: the statistics are all the next day needs, and the
        history rows so far are already in the ``edge_history`` table. The copy's own
        :meth:`history_frame` then holds only the snapshots it adds. (The key states are shared,
        not copied: use the copy only to serialise, or instead of this aggregator.)
        """
        copy = object.__new__(EdgeAggregator)
        copy.__dict__.update(self.__dict__)
        copy._h_day, copy._h_key, copy._h_hours, copy._h_edge, copy._h_n = [], [], [], [], []
        return copy

    # ----------------------------------------------------------------- updates
    def update(self, day: pd.Timestamp, trades: pd.DataFrame) -> None:
        """Add every trade that closed on ``day`` (a midnight timestamp).

        Args:
            day: the calendar day; strictly later than the previous ``update``'s day.
            trades: the trades of that day (columns :data:`TRADE_COLUMNS` plus the scope
                dimensions of ``config.masks``); every ``exit_date`` with a finite ``rr`` must
                fall on ``day``. May be empty (the day then only advances the clock).

        Raises:
            ValueError: on a day not strictly after the previous one, a non-midnight day, a
                trade of another day, or an invalid trades frame. Nothing is changed then.
        """
        day = _as_day(day)
        self._check_day(day)
        prep = _prepare(trades, self._masks)
        if len(prep) and (prep.days != day).any():
            raise ValueError(f"update({day.date()}) got trades that closed on other days")
        self._skipped += prep.skipped
        self._apply(day, int(day.as_unit("ns").value), prep, 0, len(prep))

    def _check_day(self, day: pd.Timestamp) -> None:
        if self._last_day is not None and not day > self._last_day:
            raise ValueError(f"days must be strictly increasing: {day} after {self._last_day}")

    def _apply(self, day: pd.Timestamp, day_ns: int, prep: _Prepared, start: int, stop: int) -> None:
        """Apply rows ``start:stop`` of ``prep``, all closed on ``day`` (the hot path)."""
        self._check_day(day)
        self._last_day = day
        day_idx = len(self._days)
        self._days.append(day)
        if start == stop:
            return

        rr, duration, row_keys = prep.rr, prep.duration, prep.keys
        # 1. the global baseline includes the day's trades
        for r in range(start, stop):
            self._sum_rr += rr[r]
        self._count += stop - start
        baseline = self._sum_rr / self._count

        # 2. every trade joins its key for every mask
        states = self._states
        window = self._config.stability_window
        touched: dict[_Key, _KeyState] = {}
        for r in range(start, stop):
            x = rr[r]
            d = duration[r]
            for key in row_keys[r]:
                st = states.get(key)
                if st is None:
                    st = states[key] = _KeyState(key, window)
                st.n += 1
                st.sum_rr += x
                st.sum_rr2 += x * x
                st.sum_dur += d
                insort(st.sorted_rr, x)
                touched[key] = st

        # 3. one snapshot per touched key, in key order (so edge_history is sorted by ts, key)
        cfg = self._config
        ev_scale, magnitude_scale, support_k = cfg.ev_scale, cfg.magnitude_scale, cfg.support_k
        h_day, h_key, h_hours, h_edge, h_n = self._h_day, self._h_key, self._h_hours, self._h_edge, self._h_n
        for key in sorted(touched):
            st = touched[key]
            recent = st.recent
            m = len(recent)
            if m >= 2:
                mean = sum(recent) / m
                volatility = math.sqrt(sum([(e - mean) * (e - mean) for e in recent]) / m)
            else:
                volatility = 0.0
            n = st.n
            edge_raw = _components(
                n, st.sum_rr, st.sum_rr2, st.median(), st.sum_dur / n, baseline, volatility,
                ev_scale, magnitude_scale, support_k,
            )[-1]
            if st.snapshots == 0:
                st.first_ns = day_ns
            hours = (day_ns - st.first_ns) / _NS_PER_HOUR
            st.baseline = baseline
            st.edge_volatility = volatility
            st.day_idx = day_idx
            st.snapshots += 1
            recent.append(edge_raw)
            st.decay.add(hours, edge_raw)
            st.cached = None
            h_day.append(day_idx)
            h_key.append(key)
            h_hours.append(hours)
            h_edge.append(edge_raw)
            h_n.append(n)

    # ----------------------------------------------------------------- reads
    def _stats(self, st: _KeyState) -> MaskStats:
        if st.cached is None:
            cfg = self._config
            n = st.n
            median = st.median()
            mean_duration = st.sum_dur / n
            (avg, variance, delta, ev, reliability, support, magnitude, time, stability, edge_raw) = _components(
                n, st.sum_rr, st.sum_rr2, median, mean_duration, st.baseline, st.edge_volatility,
                cfg.ev_scale, cfg.magnitude_scale, cfg.support_k,
            )
            fit = st.decay.fit(cfg)
            pattern_key, action_category, scope_mask, scope_key = st.key
            st.cached = MaskStats(
                pattern_key=pattern_key,
                action_category=action_category,
                scope_mask=scope_mask,
                scope_key=scope_key,
                as_of_date=self._days[st.day_idx],
                n=n,
                sum_rr=st.sum_rr,
                sum_rr2=st.sum_rr2,
                avg_rr=avg,
                variance_rr=variance,
                median_rr=median,
                avg_duration_hours=mean_duration,
                baseline_rr=st.baseline,
                delta_rr=delta,
                ev_score=ev,
                reliability_score=reliability,
                support_score=support,
                magnitude_score=magnitude,
                time_score=time,
                stability_score=stability,
                edge_volatility=st.edge_volatility,
                edge_raw=edge_raw,
                snapshots=st.snapshots,
                decay_slope_per_hour=fit.slope_per_hour,
                decay_rate_per_hour=fit.rate_per_hour,
                half_life_hours=fit.half_life_hours,
                decay_state=fit.state,
                decay_mult=fit.decay_mult,
            )
        return st.cached

    def lookup(self, pattern_key: str, action_category: str, scope_mask: int, scope_key: str) -> MaskStats | None:
        """The latest statistics of one key, or None when no trade of it has been added."""
        st = self._states.get((pattern_key, action_category, int(scope_mask), scope_key))
        return None if st is None else self._stats(st)

    def __len__(self) -> int:
        """Number of keys with at least one trade."""
        return len(self._states)

    def stats_frame(self) -> pd.DataFrame:
        """``pattern_scope_stats``: one row per key, columns :data:`STATS_COLUMNS`.

        Sorted by ``pattern_key, action_category, scope_mask, scope_key``; ``scope_mask`` is
        int32 and ``dimensions`` is the ``'+'``-joined dimension names of the mask.
        """
        names = [f.name for f in fields(MaskStats)]
        columns: dict[str, list[object]] = {name: [] for name in names}
        for key in sorted(self._states):
            stats = self._stats(self._states[key])
            for name in names:
                columns[name].append(getattr(stats, name))
        frame = pd.DataFrame(columns, columns=names)
        frame["scope_mask"] = frame["scope_mask"].astype("int32")
        for name in ("n", "snapshots"):
            frame[name] = frame[name].astype("int64")
        for name in ("pattern_key", "action_category", "scope_key", "decay_state"):
            frame[name] = frame[name].astype(object)
        frame["as_of_date"] = _day_index(columns["as_of_date"])  # type: ignore[arg-type]
        float_columns = [f.name for f in fields(MaskStats) if f.type in ("float", float)]
        frame[float_columns] = frame[float_columns].astype("float64")
        dims = {m: "+".join(dimensions_of(m)) for m in set(columns["scope_mask"])}  # type: ignore[arg-type]
        frame["dimensions"] = pd.Series([dims[m] for m in columns["scope_mask"]], dtype=object)  # type: ignore[index]
        return frame

    def history_frame(self) -> pd.DataFrame:
        """``edge_history``: one row per (key, day the key was touched), columns :data:`HISTORY_COLUMNS`.

        Sorted by ``ts`` then key; ``hours`` is the time since the key's first snapshot and
        ``n`` the key's trade count at that snapshot.
        """
        keys = self._h_key
        days = _day_index(self._days)
        return pd.DataFrame(
            {
                "pattern_key": pd.Series([k[0] for k in keys], dtype=object),
                "action_category": pd.Series([k[1] for k in keys], dtype=object),
                "scope_mask": pd.Series([k[2] for k in keys], dtype="int32"),
                "scope_key": pd.Series([k[3] for k in keys], dtype=object),
                "ts": days.take(np.asarray(self._h_day, dtype=np.intp)),
                "hours": pd.Series(self._h_hours, dtype="float64"),
                "edge_raw": pd.Series(self._h_edge, dtype="float64"),
                "n": pd.Series(self._h_n, dtype="int64"),
            },
            columns=list(HISTORY_COLUMNS),
        )


# --------------------------------------------------------------------------- point in time
class EdgeTimeline:
    """Point-in-time edge statistics over a fixed trades frame.

    The frame is validated and prepared once; :meth:`before` then advances one shared
    :class:`EdgeAggregator` day by day, so walking forward through a backtest costs the same as
    one pass over the trades. ``skipped`` counts the rows of the whole frame with a non-finite
    ``rr`` (they are never applied).
    """

    def __init__(self, trades: pd.DataFrame, config: EdgeConfig, start: EdgeAggregator | None = None, copy_on_write: bool = False) -> None:
        """``start``: continue an aggregator that already holds the earlier trades (every trade
        of ``trades`` must then close after its :attr:`EdgeAggregator.last_day`); it is advanced
        in place, or, with ``copy_on_write``, copied the first time a trade must be applied (so
        several timelines can read one carried aggregator and copy it only if they need to).
        Applying the earlier trades first and these after gives exactly the aggregator of one
        timeline over all of them."""
        if start is not None and start.config != config:
            raise ValueError("the carried edge aggregator was built with another edge config")
        prep = _prepare(trades, tuple(int(m) for m in config.masks))
        prep = prep.take(np.argsort(prep.day_ns, kind="stable"))
        starts = np.flatnonzero(np.r_[True, prep.day_ns[1:] != prep.day_ns[:-1]]) if len(prep) else np.array([], dtype=np.intp)
        self._prep = prep
        self._bounds: list[int] = [*starts.tolist(), len(prep)]
        self._group_days: pd.DatetimeIndex = prep.days[starts]
        self._group_list: list[pd.Timestamp] = list(self._group_days)
        self._group_ns: list[int] = prep.day_ns[starts].tolist()
        self._next = 0  # first group not applied yet
        self._last_before: pd.Timestamp | None = None
        if start is not None and len(prep) and start.last_day is not None and prep.days[0] <= start.last_day:
            raise ValueError(f"trades closed on {prep.days[0].date()} are not after the carried aggregator's last day {start.last_day.date()}")
        self._aggregator = start if start is not None else EdgeAggregator(config)
        self._shared = start is not None and copy_on_write
        self.skipped: int = prep.skipped

    @property
    def days(self) -> pd.DatetimeIndex:
        """The distinct exit days of the (finite-rr) trades, sorted."""
        return self._group_days

    def before(self, day: pd.Timestamp) -> EdgeAggregator:
        """The aggregator holding exactly the trades with ``exit_date < day``.

        ``day`` is a calendar day (midnight timestamp); successive calls must not go back in
        time. The same aggregator object is returned each time, advanced in place: read it
        before the next call, and do not ``update`` it yourself.

        Raises:
            ValueError: on a day earlier than the previous call's, or a non-midnight day.
        """
        day = _as_day(day)
        if self._last_before is not None and day < self._last_before:
            raise ValueError(f"before() days must be non-decreasing: {day} after {self._last_before}")
        self._last_before = day
        self._advance(int(self._group_days.searchsorted(day, side="left")))
        return self._aggregator

    def _advance(self, end: int) -> None:
        """Apply every day group up to (excluding) ``end``."""
        if self._shared and end > self._next:
            self._aggregator = self._aggregator.copy()
            self._shared = False
        agg, prep, bounds = self._aggregator, self._prep, self._bounds
        for g in range(self._next, end):
            agg._apply(self._group_list[g], self._group_ns[g], prep, bounds[g], bounds[g + 1])
        self._next = max(self._next, end)

    def through_end(self) -> EdgeAggregator:
        """The aggregator holding every trade of the frame (advanced in place, like :meth:`before`)."""
        self._advance(len(self._group_list))
        return self._aggregator


def edge_statistics(trades: pd.DataFrame, config: EdgeConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(pattern_scope_stats, edge_history)`` after every trade of ``trades`` (see :class:`EdgeAggregator`)."""
    aggregator = EdgeTimeline(trades, config).through_end()
    return aggregator.stats_frame(), aggregator.history_frame()
