"""Alpha-score strategies: Bollinger mean reversion, MACD/RSI confluence, 12-1 momentum rank.

What this module does
---------------------
Each strategy turns wide adjusted closes (dates × symbols, NaN when a name does not trade) into a
long table of *alpha signals* (:data:`SIGNAL_COLUMNS`): one row per (date, symbol) once the
strategy's lookback is full, with

* ``alpha_score`` in [-1, 1]: +1 strong buy, -1 strong sell, 0 neutral;
* ``confidence`` in [0, 1];
* ``horizon_days``: the horizon the signal is meant for;
* ``volatility_adjusted``: whether the score is already in volatility units;
* ``metadata``: a JSON string with the indicator values and thresholds behind the score.

Point in time: every indicator is a trailing rolling / exponentially weighted statistic computed
on each symbol's own bar sequence (the dates it traded), so the row dated t only uses prices
dated <= t. No centred windows, no backward fill. Cross-sectional steps (momentum rank) only
mix names on the same date.

Formulas (p = price, on the symbol's own bars)
----------------------------------------------
Bollinger (``window`` = n, ``k``)::

    SMA_t = mean(p_{t-n+1..t}),  σ_t = population std(p_{t-n+1..t})   (ddof = 0, as Bollinger)
    z_t   = (p_t − SMA_t) / σ_t             (0 when σ_t = 0: a flat window is neutral)
    %b_t  = (p_t − lower_t) / (upper_t − lower_t) = z_t / (2k) + 1/2,   bands = SMA ± kσ
    alpha = −clip(z / k, −1, 1)             (below the lower band → +1)
    confidence = min(|z| / k, 1)

MACD / RSI confluence::

    MACD   = EMA_fast(p) − EMA_slow(p)               (ewm span, adjust=False)
    signal = EMA_signal(MACD);   hist = MACD − signal
    σ$     = mean(|Δp| over the last ``slow`` bars)   (price volatility in price units: a
                                                      close-to-close ATR; robust on smooth trends)
    m      = tanh(hist / σ$)                          (MACD direction & strength in (−1, 1))
    RSI    = 100 − 100 / (1 + G / L),  G, L = Wilder averages of gains / losses
             (ewm alpha = 1/rsi_window, adjust=False, seeded with the first change;
              RSI = 100 when L = 0 < G, 50 when G = L = 0)
    a_rsi  = (30 − RSI)/30 if RSI < 30;  (70 − RSI)/30 if RSI > 70;  else 0   (seed mapping)
    agree  = m · sign(a_rsi)                          (+: MACD confirms the RSI call)
    alpha  = clip(a_rsi · (1 + ½·agree), −1, 1)       (agreement strengthens up to ×1.5,
                                                      disagreement damps down to ×0.5)
    confidence = |a_rsi| · (1 + agree) / 2            (→ |a_rsi| when they agree, → 0 when not)

Momentum rank (``lookback`` = 252, ``skip`` = 21)::

    mom_t  = p_{t−skip} / p_{t−lookback} − 1          (12-1 momentum, in the symbol's bars)
    alpha  = 2 (rank_t − 1)/(n_t − 1) − 1             (average ranks of mom across the n_t names
                                                      with a value on t; n_t = 1 → 0)
    confidence = |alpha|

Evaluation
----------
:func:`strategy_ic` and :func:`alpha_decay` measure the Spearman rank IC of ``alpha_score``
against forward returns, with the conventions of :mod:`prometheus_assets.core.evaluation`
(same forward-return formula, same per-date rank correlation, same ``min_names``), computed on
wide arrays so that 60 horizons × 3 strategies on decades of data take seconds.

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from prometheus_assets.core.evaluation import MIN_NAMES_PER_DATE, forward_returns_wide, ic_summary, rank_ic_wide

SIGNAL_COLUMNS: list[str] = [
    "date",
    "symbol",
    "strategy",
    "alpha_score",
    "confidence",
    "horizon_days",
    "volatility_adjusted",
    "metadata",
]

#: RSI thresholds of the seed mapping.
RSI_LOWER = 30.0
RSI_UPPER = 70.0

#: Relative tolerance below which a standard deviation counts as zero (flat prices).
_FLAT_TOL = 1e-12


@dataclass(frozen=True)
class StrategySignal:
    """One strategy's view of one symbol on one date (the record form of a signal row)."""

    timestamp: pd.Timestamp
    symbol: str
    alpha_score: float  # [-1, 1], 0 neutral
    confidence: float  # [0, 1]
    horizon_days: int
    volatility_adjusted: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""  # which strategy produced it ("" when unknown)


def signals_to_records(frame: pd.DataFrame) -> list[StrategySignal]:
    """Rows of a long signal frame (:data:`SIGNAL_COLUMNS`) as :class:`StrategySignal` records."""
    has_strategy = "strategy" in frame.columns
    out = []
    for row in frame.itertuples(index=False):
        out.append(
            StrategySignal(
                timestamp=pd.Timestamp(row.date),
                symbol=str(row.symbol),
                alpha_score=float(row.alpha_score),
                confidence=float(row.confidence),
                horizon_days=int(row.horizon_days),
                volatility_adjusted=bool(row.volatility_adjusted),
                metadata=json.loads(row.metadata),
                strategy=str(row.strategy) if has_strategy else "",
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# helpers


def _per_symbol(prices: pd.DataFrame, fn: Callable[[pd.Series], pd.DataFrame | pd.Series]) -> dict[str, pd.DataFrame]:
    """Apply ``fn`` to each symbol's own bar sequence (its non-NaN prices), reindexed to all dates.

    Dropping a symbol's NaN rows only removes dates it did not trade; the bars up to t are the
    same whether or not later dates exist, so this is point in time.
    """
    results: dict[str, list[pd.Series]] = {}
    for sym in prices.columns:
        s = prices[sym].dropna().astype("float64")
        res = fn(s)
        if isinstance(res, pd.Series):
            res = res.to_frame("value")
        for name, col in res.items():
            results.setdefault(str(name), []).append(col.reindex(prices.index).rename(sym))
    return {name: pd.concat(cols, axis=1) for name, cols in results.items()}


def _wide(prices: pd.DataFrame) -> pd.DataFrame:
    p = prices.copy()
    p.index = pd.DatetimeIndex(p.index)
    p.columns = [str(c) for c in p.columns]
    return p.sort_index().rename_axis(index="date", columns="symbol")


def _json_column(fields: dict[str, pd.Series | float | int]) -> pd.Series:
    """A JSON object string per row, built column-wise (float reprs are valid JSON numbers).

    Series values must be finite (rows are only emitted where every indicator is finite).
    """
    index = next(v.index for v in fields.values() if isinstance(v, pd.Series))
    parts: list[str | np.ndarray] = []
    for i, (key, value) in enumerate(fields.items()):
        sep = "{" if i == 0 else ", "
        if isinstance(value, pd.Series):
            parts.append(sep + json.dumps(key) + ": ")
            parts.append(value.to_numpy(dtype="float64").astype(str).astype(object))
        else:
            parts.append(sep + json.dumps(key) + ": " + json.dumps(value))
    out = np.full(len(index), "", dtype=object)
    for part in parts:
        out = out + part
    return pd.Series(out + "}", index=index, dtype=object)


def _to_long(
    strategy: str,
    valid: pd.DataFrame,
    alpha: pd.DataFrame,
    confidence: pd.DataFrame,
    horizon_days: int,
    volatility_adjusted: bool,
    meta: dict[str, pd.DataFrame | float | int],
) -> pd.DataFrame:
    """Stack wide indicator frames into the long signal table, keeping rows where ``valid``."""
    mask = valid.stack(future_stack=True)
    mask = mask[mask.astype(bool)].index

    def pick(frame: pd.DataFrame) -> pd.Series:
        return frame.stack(future_stack=True).reindex(mask)

    meta_long = {k: pick(v) if isinstance(v, pd.DataFrame) else v for k, v in meta.items()}
    if len(mask) == 0:
        return _empty()
    out = pd.DataFrame(
        {
            "alpha_score": pick(alpha).to_numpy(dtype="float64"),
            "confidence": pick(confidence).to_numpy(dtype="float64"),
        },
        index=mask,
    ).reset_index()
    out.columns = ["date", "symbol", "alpha_score", "confidence"]
    out["strategy"] = strategy
    out["horizon_days"] = np.int64(horizon_days)
    out["volatility_adjusted"] = bool(volatility_adjusted)
    out["metadata"] = _json_column(meta_long).to_numpy()
    out["symbol"] = out["symbol"].astype(object)
    out["strategy"] = out["strategy"].astype(object)
    out = out[SIGNAL_COLUMNS].sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.Series(dtype="datetime64[ns]"),
            "symbol": pd.Series(dtype=object),
            "strategy": pd.Series(dtype=object),
            "alpha_score": pd.Series(dtype="float64"),
            "confidence": pd.Series(dtype="float64"),
            "horizon_days": pd.Series(dtype="int64"),
            "volatility_adjusted": pd.Series(dtype=bool),
            "metadata": pd.Series(dtype=object),
        }
    )


def _finite(*frames: pd.DataFrame) -> pd.DataFrame:
    ok = None
    for f in frames:
        cur = pd.DataFrame(np.isfinite(f.to_numpy(dtype="float64")), index=f.index, columns=f.columns)
        ok = cur if ok is None else ok & cur
    return ok


# --------------------------------------------------------------------------------------------
# indicators (one symbol's bar sequence)


def rsi(prices: pd.Series, window: int = 14) -> pd.Series:
    """Wilder RSI (ewm alpha = 1/window, adjust=False): 100 when there are only gains, 50 when flat."""
    delta = prices.diff()
    gain = delta.clip(lower=0.0)
    loss = (-delta).clip(lower=0.0)
    g = gain.ewm(alpha=1.0 / window, adjust=False).mean()
    lo = loss.ewm(alpha=1.0 / window, adjust=False).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + g / lo)
    value = value.where(lo > 0, np.where(g > 0, 100.0, 50.0))
    return value.where(g.notna())


def macd(prices: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """MACD line, signal line and histogram (EMAs by span, ``adjust=False``)."""
    line = prices.ewm(span=fast, adjust=False).mean() - prices.ewm(span=slow, adjust=False).mean()
    sig = line.ewm(span=signal, adjust=False).mean()
    return pd.DataFrame({"macd": line, "macd_signal": sig, "macd_hist": line - sig})


def rsi_alpha(rsi_value: pd.Series | pd.DataFrame | np.ndarray, lower: float = RSI_LOWER, upper: float = RSI_UPPER):
    """Seed mapping: (lower − RSI)/lower below ``lower``, (upper − RSI)/(100 − upper) above ``upper``, else 0.

    With the default 30/70 both denominators are 30, as in the seed document; the result is in [−1, 1].
    """
    below = (lower - rsi_value) / lower
    above = (upper - rsi_value) / (100.0 - upper)
    return np.where(rsi_value < lower, below, np.where(rsi_value > upper, above, 0.0))


# --------------------------------------------------------------------------------------------
# strategies


def bollinger_mean_reversion(prices: pd.DataFrame, window: int = 20, k: float = 2.0, horizon_days: int = 5) -> pd.DataFrame:
    """Mean reversion on the Bollinger z-score: far below the lower band → positive alpha."""
    p = _wide(prices)

    def one(s: pd.Series) -> pd.DataFrame:
        roll = s.rolling(window, min_periods=window)
        sma = roll.mean()
        sd = roll.std(ddof=0)
        flat = sd <= _FLAT_TOL * sma.abs().clip(lower=1.0)
        z = ((s - sma) / sd).where(~flat, 0.0).where(sd.notna())
        return pd.DataFrame({"sma": sma, "std": sd, "z": z})

    ind = _per_symbol(p, one)
    z = ind["z"]
    alpha = -(z / k).clip(-1.0, 1.0)
    conf = (z.abs() / k).clip(upper=1.0)
    valid = _finite(p, z, ind["sma"], ind["std"])
    return _to_long(
        "bollinger_mean_reversion",
        valid,
        alpha,
        conf,
        horizon_days,
        True,
        {
            "price": p,
            "sma": ind["sma"],
            "std": ind["std"],
            "upper": ind["sma"] + k * ind["std"],
            "lower": ind["sma"] - k * ind["std"],
            "z": z,
            "percent_b": z / (2.0 * k) + 0.5,
            "window": int(window),
            "k": float(k),
        },
    )


def macd_rsi_confluence(
    prices: pd.DataFrame,
    fast: int = 12,
    slow: int = 26,
    signal: int = 9,
    rsi_window: int = 14,
    horizon_days: int = 10,
) -> pd.DataFrame:
    """RSI extremes (seed mapping) strengthened when the MACD histogram agrees, damped when it disagrees."""
    p = _wide(prices)
    warmup = max(slow + signal - 1, rsi_window + 1, slow + 1)

    def one(s: pd.Series) -> pd.DataFrame:
        m = macd(s, fast, slow, signal)
        vol = s.diff().abs().rolling(slow, min_periods=slow).mean()
        flat = vol <= _FLAT_TOL * s.abs().clip(lower=1.0)
        norm = (m["macd_hist"] / vol).where(~flat, 0.0).where(vol.notna())
        r = rsi(s, rsi_window)
        bars = pd.Series(np.arange(1, len(s) + 1), index=s.index)
        ready = bars >= warmup
        return pd.DataFrame(
            {
                "rsi": r.where(ready),
                "macd": m["macd"],
                "macd_signal": m["macd_signal"],
                "macd_hist": m["macd_hist"],
                "macd_hist_norm": norm.where(ready),
            }
        )

    ind = _per_symbol(p, one)
    r = ind["rsi"]
    a_rsi = pd.DataFrame(rsi_alpha(r.to_numpy()), index=r.index, columns=r.columns)
    strength = np.tanh(ind["macd_hist_norm"])
    agree = strength * np.sign(a_rsi)
    alpha = (a_rsi * (1.0 + 0.5 * agree)).clip(-1.0, 1.0)
    conf = (a_rsi.abs() * (1.0 + agree) / 2.0).clip(0.0, 1.0)
    valid = _finite(p, r, ind["macd_hist_norm"])
    return _to_long(
        "macd_rsi_confluence",
        valid,
        alpha,
        conf,
        horizon_days,
        False,
        {
            "rsi": r,
            "rsi_alpha": a_rsi,
            "macd": ind["macd"],
            "macd_signal": ind["macd_signal"],
            "macd_hist": ind["macd_hist"],
            "macd_hist_norm": ind["macd_hist_norm"],
            "agreement": agree,
            "rsi_lower": RSI_LOWER,
            "rsi_upper": RSI_UPPER,
            "fast": int(fast),
            "slow": int(slow),
            "signal": int(signal),
            "rsi_window": int(rsi_window),
        },
    )


def momentum_rank(prices: pd.DataFrame, lookback: int = 252, skip: int = 21, horizon_days: int = 20) -> pd.DataFrame:
    """Cross-sectional rank of 12-1 momentum mapped linearly to [−1, 1] (best +1, worst −1)."""
    p = _wide(prices)
    mom = _per_symbol(p, lambda s: s.shift(skip) / s.shift(lookback) - 1.0)["value"]
    valid = _finite(p, mom)
    mom = mom.where(valid)
    n = mom.notna().sum(axis=1)
    ranks = mom.rank(axis=1, method="average")
    denom = (n - 1).where(n > 1)
    alpha = (2.0 * (ranks - 1.0)).div(denom, axis=0) - 1.0
    alpha = alpha.where(~(n == 1), 0.0).where(valid)
    conf = alpha.abs()
    disp = mom.std(axis=1, ddof=0)
    return _to_long(
        "momentum_rank",
        valid,
        alpha,
        conf,
        horizon_days,
        False,
        {
            "momentum": mom,
            "rank": ranks,
            "n_names": pd.DataFrame(np.repeat(n.to_numpy()[:, None], p.shape[1], axis=1), index=p.index, columns=p.columns),
            "cs_dispersion": pd.DataFrame(np.repeat(disp.fillna(0.0).to_numpy()[:, None], p.shape[1], axis=1), index=p.index, columns=p.columns),
            "lookback": int(lookback),
            "skip": int(skip),
        },
    )


STRATEGIES: dict[str, Callable[..., pd.DataFrame]] = {
    "bollinger_mean_reversion": bollinger_mean_reversion,
    "macd_rsi_confluence": macd_rsi_confluence,
    "momentum_rank": momentum_rank,
}


def all_signals(prices: pd.DataFrame) -> pd.DataFrame:
    """The three strategies' signals (default parameters), sorted by (date, symbol, strategy)."""
    frames = [fn(prices) for fn in STRATEGIES.values()]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _empty()
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["date", "symbol", "strategy"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# cross-sectional normalisation of alpha scores


def _grouped(frame: pd.DataFrame, col: str):
    return frame[col].astype("float64").groupby(frame["date"], sort=False)


def zscore(frame: pd.DataFrame, col: str) -> pd.Series:
    """(x − mean_date) / std_date (population std) per date; constant cross-sections → 0; NaN stays NaN."""
    g = _grouped(frame, col)
    x = frame[col].astype("float64")
    mean, sd = g.transform("mean"), g.transform("std", ddof=0)
    const = g.transform("max") == g.transform("min")
    out = ((x - mean) / sd).where(~const, 0.0).where(x.notna())
    return out.rename(col)


def minmax(frame: pd.DataFrame, col: str) -> pd.Series:
    """2 (x − min_date) / (max_date − min_date) − 1 per date, in [−1, 1]; constant cross-sections → 0."""
    g = _grouped(frame, col)
    x = frame[col].astype("float64")
    lo, hi = g.transform("min"), g.transform("max")
    out = (2.0 * (x - lo) / (hi - lo) - 1.0).where(hi > lo, 0.0).clip(-1.0, 1.0).where(x.notna())
    return out.rename(col)


def rank_normalise(frame: pd.DataFrame, col: str) -> pd.Series:
    """2 (rank − 1)/(n − 1) − 1 per date with average ranks, in [−1, 1]; one name or all tied → 0."""
    g = _grouped(frame, col)
    x = frame[col].astype("float64")
    r = g.rank(method="average")
    n = g.transform("count")
    out = (2.0 * (r - 1.0) / (n - 1.0) - 1.0).where(n > 1, 0.0).where(x.notna())
    return out.rename(col)


# --------------------------------------------------------------------------------------------
# evaluation (IC by strategy and horizon)


def _forward_wide(returns: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """:func:`evaluation.forward_returns_wide` (same formula, same NaN rule, fixed summation order)."""
    return forward_returns_wide(returns, horizon)


def _score_panels(signals: pd.DataFrame, returns_wide: pd.DataFrame) -> dict[str, np.ndarray]:
    """alpha_score per strategy as dates × symbols arrays aligned to ``returns_wide``."""
    sig = signals if "strategy" in signals.columns else signals.assign(strategy="signal")
    cols = [str(c) for c in returns_wide.columns]
    out = {}
    for name, g in sig.groupby("strategy", sort=True):
        wide = g.pivot_table(index="date", columns="symbol", values="alpha_score", aggfunc="first")
        wide.index = pd.DatetimeIndex(wide.index)
        wide.columns = [str(c) for c in wide.columns]
        out[str(name)] = wide.reindex(index=returns_wide.index, columns=cols).to_numpy(dtype="float64")
    return out


def _prepare_returns(returns_wide: pd.DataFrame) -> pd.DataFrame:
    r = returns_wide.copy()
    r.index = pd.DatetimeIndex(r.index)
    r.columns = [str(c) for c in r.columns]
    return r.sort_index().astype("float64")


def strategy_ic(
    signals: pd.DataFrame,
    returns_wide: pd.DataFrame,
    horizons: Iterable[int] = (1, 5, 20, 60),
    min_names: int = MIN_NAMES_PER_DATE,
) -> pd.DataFrame:
    """Rank IC of ``alpha_score`` vs the forward return, summarised per strategy × horizon.

    Columns: ``strategy, horizon`` and the :func:`evaluation.ic_summary` fields. The per-date IC
    equals ``rank_ic(signals as score, forward_returns(returns_wide, h))``.
    """
    r = _prepare_returns(returns_wide)
    panels = _score_panels(signals, r)
    rows = []
    for h in horizons:
        fwd = _forward_wide(r, int(h)).to_numpy()
        for name, s in panels.items():
            ic = rank_ic_wide(s, fwd, r.index, min_names)
            rows.append({"strategy": name, "horizon": int(h), **ic_summary(ic)})
    return pd.DataFrame(rows, columns=["strategy", "horizon", "ic_mean", "ic_std", "ic_ir", "t_stat", "hit_rate", "n_dates"])


def alpha_decay(
    signals: pd.DataFrame,
    returns_wide: pd.DataFrame,
    horizons: Iterable[int] = range(1, 61),
    min_names: int = MIN_NAMES_PER_DATE,
) -> pd.DataFrame:
    """Mean rank IC as a function of horizon: columns ``strategy, horizon, ic_mean, n_dates``."""
    table = strategy_ic(signals, returns_wide, horizons, min_names)
    return table[["strategy", "horizon", "ic_mean", "n_dates"]].reset_index(drop=True)
