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

Incremental, and the same bits whatever the split (code version 2)
--------------------------------------------------------------------
The daily run must not cost more with 33 years of history than with one, and a history built in
one pass, in several passes, or up to t − 1 and then one day must give byte-identical rows.
:func:`advance_signals` therefore runs from a carried :class:`SignalState` (per symbol: bar count,
last ``tail`` = 252 prices, the exact ``(w, ow)`` of its five exponential averages):

* **finite windows** (Bollinger mean/std, mean |Δp|, 12-1 momentum) are computed on
  (carried last prices + new bars), each value as a fixed left-to-right chain of operations on
  exactly its window (:func:`window_sum`, :func:`window_mean_std`), so it depends only on the bars
  in its window. Version 1 used pandas' online rolling mean/std, whose rounding carries the whole
  past (differences up to ~1e-7 in σ, ~1e-9 in z on the bundled data): that is the only change of
  values, plus the momentum dispersion below;
* **exponential averages** (MACD, signal, Wilder RSI) are infinite-memory recursions; they are
  continued from the carried state with pandas' own ``ewm(adjust=False)`` arithmetic
  (:func:`ewm_adjust_false`, bit-identical to pandas: tested), so MACD and RSI values are
  unchanged from version 1;
* **cross-sections** (momentum rank, ``cs_dispersion``) use one date's row only; the dispersion
  is summed over the names in symbol order (:func:`row_std`), not by numpy's pairwise sum whose
  grouping depends on which other columns a panel holds.

Without a state (first run, or a range whose previous session has none) it replays from the
first bar, which gives the same floats.

Formulas (p = price, on the symbol's own bars)
----------------------------------------------
Bollinger (``window`` = n, ``k``)::

    SMA_t = mean(p_{t-n+1..t}),  σ_t = population std(p_{t-n+1..t})   (ddof = 0, as Bollinger;
            two passes over exactly the window, summed left to right)
    z_t   = (p_t − SMA_t) / σ_t             (0 when σ_t = 0: a flat window is neutral)
    %b_t  = (p_t − lower_t) / (upper_t − lower_t) = z_t / (2k) + 1/2,   bands = SMA ± kσ
    alpha = −clip(z / k, −1, 1)             (below the lower band → +1)
    confidence = min(|z| / k, 1)

MACD / RSI confluence::

    MACD   = EMA_fast(p) − EMA_slow(p)               (ewm span, adjust=False)
    signal = EMA_signal(MACD);   hist = MACD − signal
    σ$     = mean(|Δp| over the last ``slow`` bars)   (price volatility in price units: a
                                                      close-to-close ATR; robust on smooth trends;
                                                      summed in a fixed order, see above)
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
    cs_dispersion = population std of mom_t across the n_t names (summed in symbol order)

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
import pyarrow as pa
import pyarrow.compute as pc

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


def _wide(prices: pd.DataFrame) -> pd.DataFrame:
    """Dates × symbols, dates ascending, symbols sorted by name (the fixed order of every cross-section)."""
    p = prices.copy()
    p.index = pd.DatetimeIndex(p.index)
    p.columns = [str(c) for c in p.columns]
    p = p.sort_index()
    return p.reindex(sorted(p.columns), axis=1).astype("float64").rename_axis(index="date", columns="symbol")


def _json_number_text(values: np.ndarray) -> pa.Array:
    """Finite floats as JSON number text: the shortest text that reads back to the same float.

    Arrow's cast gives the shortest round-trip digits in C++ (numpy's ``astype(str)`` took ~0.3 µs
    a value, the largest cost of a full signal replay); integral values get a ``.0`` so they read
    back as floats, as ``json.dumps`` writes them.
    """
    text = pa.array(values, type=pa.float64()).cast(pa.string())
    return pc.if_else(pc.match_substring_regex(text, r"[.e]"), text, pc.binary_join_element_wise(text, ".0", ""))


#: Rows of the metadata JSON built per Arrow array. An Arrow ``string`` array holds at most 2 GiB of
#: text (32-bit offsets): one strategy's metadata at 3,000 names × 20 years is ~2.9 GB, which made
#: ``strategy_signals`` fail (ArrowCapacityError). A chunk of 2^20 rows holds ~200 MB.
JSON_CHUNK_ROWS = 1 << 20


def _json_column(fields: dict[str, pd.Series | float | int], chunk_rows: int = JSON_CHUNK_ROWS) -> pd.Series:
    """A JSON object string per row, built column-wise in Arrow (one ``str`` Series, no Python string per row).

    Series values must be finite (rows are only emitted where every indicator is finite); scalar
    values are the same text on every row (``json.dumps``). Rows are joined ``chunk_rows`` at a
    time (see :data:`JSON_CHUNK_ROWS`); the text of a row does not depend on the chunking.
    """
    index = next(v.index for v in fields.values() if isinstance(v, pd.Series))
    # the object's pieces in order: fixed text, or the float values of a Series field
    pieces: list[str | np.ndarray] = []
    for i, (key, value) in enumerate(fields.items()):
        sep = "{" if i == 0 else ", "
        if isinstance(value, pd.Series):
            pieces += [sep + json.dumps(key) + ": ", value.to_numpy(dtype="float64")]
        else:
            pieces.append(sep + json.dumps(key) + ": " + json.dumps(value))
    pieces.append("}")
    chunks = [
        pc.binary_join_element_wise(*(p if isinstance(p, str) else _json_number_text(p[lo : lo + chunk_rows]) for p in pieces), "")
        for lo in range(0, max(len(index), 1), chunk_rows)  # (no rows: one empty chunk)
    ]
    return pd.Series(pa.chunked_array(chunks, type=pa.string()).to_pandas().array, index=index)


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
    out["metadata"] = _json_column(meta_long).array
    out["symbol"] = out["symbol"].astype(object)
    out["strategy"] = out["strategy"].astype(object)
    # already in (date, symbol) order: the mask is stacked from a date-sorted, symbol-sorted panel
    return out[SIGNAL_COLUMNS]


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
# kernels: exact, start-invariant building blocks (one symbol's bar sequence)

#: An exponential average's carried state: (weighted value, old weight) as pandas keeps them.
EwmState = tuple[float, float]
#: The state before any observation.
EWM_FRESH: EwmState = (float("nan"), 1.0)


def ewm_com(span: float | None = None, alpha: float | None = None) -> float:
    """The centre of mass pandas derives from ``span`` or ``alpha`` (``ewm``'s own formula, bit for bit)."""
    if span is not None:
        return float((span - 1) / 2)
    if alpha is not None:
        return float((1 - alpha) / alpha)
    raise ValueError("one of span, alpha")


def ewm_adjust_false(values: np.ndarray, com: float, state: EwmState = EWM_FRESH) -> tuple[np.ndarray, EwmState]:
    """``pd.Series(values).ewm(com=com, adjust=False).mean()`` continued from ``state``, and the state after.

    The recursion of pandas (``_libs/window/aggregations.pyx: ewm``, ``adjust=False``,
    ``ignore_na=False``) with the same floating-point operations in the same order::

        α = 1 / (1 + com);  unseeded (w = NaN): w ← x at the first observation
        seeded: ow ← ow·(1 − α);  on an observation x: if w ≠ x: w ← (ow·w + α·x) / (ow + α);  ow ← 1

    So running it over a sequence in two pieces, carrying ``(w, ow)`` across the cut, gives the
    same floats as one run over the whole sequence (and as pandas: tested with hypothesis).
    """
    alpha = 1.0 / (1.0 + com)
    factor = 1.0 - alpha
    w, ow = float(state[0]), float(state[1])
    seq = np.asarray(values, dtype="float64").tolist()
    out = [0.0] * len(seq)
    for i, x in enumerate(seq):
        if w == w:
            ow *= factor
            if x == x:
                if w != x:
                    w = (ow * w + alpha * x) / (ow + alpha)
                ow = 1.0
        elif x == x:
            w = x
        out[i] = w
    return np.array(out, dtype="float64"), (w, ow)


def window_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Sum of ``x[i − window + 1 .. i]`` at each i (NaN before the first full window), added left to right.

    Each value is the same chain of additions of the same ``window`` numbers wherever the
    sequence starts, unlike pandas' online rolling sums (their rounding carries the whole past).
    """
    x = np.asarray(x, dtype="float64")
    n = len(x)
    out = np.full(n, np.nan)
    if n < window:
        return out
    acc = x[: n - window + 1].copy()
    for j in range(1, window):
        acc += x[j : n - window + 1 + j]
    out[window - 1 :] = acc
    return out


def window_mean_std(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std (ddof 0, two passes) of each trailing ``window``, in a fixed order."""
    x = np.asarray(x, dtype="float64")
    n = len(x)
    mean = window_sum(x, window) / window
    std = np.full(n, np.nan)
    if n >= window:
        m = mean[window - 1 :]
        acc = np.zeros(n - window + 1)
        for j in range(window):
            d = x[j : n - window + 1 + j] - m
            acc += d * d
        std[window - 1 :] = np.sqrt(acc / window)
    return mean, std


def _rsi_value(g: np.ndarray, lo: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        value = 100.0 - 100.0 / (1.0 + g / lo)
    value = np.where(lo > 0, value, np.where(g > 0, 100.0, 50.0))
    return np.where(np.isnan(g), np.nan, value)


def _clip_lower_zero(x: np.ndarray) -> np.ndarray:
    """``Series.clip(lower=0.0)``: NaN stays NaN."""
    return np.where((x >= 0.0) | np.isnan(x), x, 0.0)


# --------------------------------------------------------------------------------------------
# indicators with carried state


@dataclass(frozen=True)
class IndicatorParams:
    """Parameters of the three strategies' indicators (the defaults are the published ones)."""

    window: int = 20  # Bollinger
    k: float = 2.0
    fast: int = 12  # MACD
    slow: int = 26
    signal: int = 9
    rsi_window: int = 14
    lookback: int = 252  # momentum 12-1
    skip: int = 21

    @property
    def tail(self) -> int:
        """Previous bars a new bar's finite windows need (Bollinger, |Δp| mean, 12-1 momentum)."""
        return max(self.window - 1, self.slow, self.lookback, self.skip, 1)

    @property
    def warmup(self) -> int:
        """Bars before the MACD/RSI confluence is emitted."""
        return max(self.slow + self.signal - 1, self.rsi_window + 1, self.slow + 1)


#: Layout and arithmetic version of :class:`SignalState` (a stored state of another version is ignored).
STATE_VERSION = 1
#: The exponential averages a symbol carries.
EWMS = ("fast", "slow", "signal", "gain", "loss")
#: Indicator names produced per (date, symbol).
INDICATORS = ("sma", "std", "z", "rsi", "macd", "macd_signal", "macd_hist", "macd_hist_norm", "momentum")


@dataclass(frozen=True)
class SymbolState:
    """What one symbol carries from its last bar to its next one."""

    bars: int  # bars seen so far
    tail: tuple[float, ...]  # its last min(bars, params.tail) prices, oldest first
    ewm: dict[str, EwmState]  # EWMS → (weighted value, old weight)


@dataclass(frozen=True)
class SignalState:
    """The strategies' state after a session: per symbol its bar count, last prices and EMA states.

    Serialized as JSON (float reprs round-trip exactly; NaN as ``NaN``) with sorted keys, so equal
    states give equal bytes.
    """

    params: IndicatorParams = field(default_factory=IndicatorParams)
    symbols: dict[str, SymbolState] = field(default_factory=dict)

    def to_json(self) -> str:
        payload = {
            "version": STATE_VERSION,
            "params": {k: getattr(self.params, k) for k in self.params.__dataclass_fields__},
            "symbols": {
                sym: {"bars": s.bars, "tail": [float(v) for v in s.tail], "ewm": {k: [float(s.ewm[k][0]), float(s.ewm[k][1])] for k in EWMS}}
                for sym, s in sorted(self.symbols.items())
            },
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "SignalState | None":
        """The state stored by :meth:`to_json`, or None when it has another version (then replay)."""
        payload = json.loads(text)
        if payload.get("version") != STATE_VERSION:
            return None
        params = IndicatorParams(**payload["params"])
        symbols = {
            sym: SymbolState(int(s["bars"]), tuple(float(v) for v in s["tail"]), {k: (float(s["ewm"][k][0]), float(s["ewm"][k][1])) for k in EWMS})
            for sym, s in payload["symbols"].items()
        }
        return cls(params, symbols)


def _advance_symbol(bars: np.ndarray, state: SymbolState | None, prm: IndicatorParams) -> tuple[dict[str, np.ndarray], SymbolState]:
    """Indicators at ``bars`` (one symbol's new prices, in date order) given its carried state.

    Finite windows are computed on (carried tail + new bars) with :func:`window_sum` /
    :func:`window_mean_std`, so a value depends only on the bars in its window; the exponential
    averages continue from the carried ``(w, ow)``. One pass over a whole history and a pass over
    any split of it therefore give the same floats.
    """
    if state is None:
        state = SymbolState(0, (), {k: EWM_FRESH for k in EWMS})
    tail = np.asarray(state.tail, dtype="float64")
    m, n = len(tail), len(bars)
    ext = np.concatenate([tail, bars])
    new = slice(m, m + n)

    # finite windows (Bollinger, mean |Δp| over `slow`, 12-1 momentum)
    sma, sd = window_mean_std(ext, prm.window)
    sma, sd = sma[new], sd[new]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        flat_b = sd <= _FLAT_TOL * np.maximum(np.abs(sma), 1.0)
        z = np.where(flat_b, 0.0, (bars - sma) / sd)
    z = np.where(np.isnan(sd), np.nan, z)
    absdiff = np.abs(np.diff(ext, prepend=np.nan))
    vol = window_sum(absdiff, prm.slow)[new] / prm.slow

    def shifted(lag: int) -> np.ndarray:  # the price `lag` bars before each new bar (NaN before the first)
        if lag > len(ext):
            return np.full(n, np.nan)
        return np.concatenate([np.full(lag, np.nan), ext[: len(ext) - lag]])[new]

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        momentum = shifted(prm.skip) / shifted(prm.lookback) - 1.0

    # exponential averages (MACD by span, Wilder RSI by alpha = 1/rsi_window), continued exactly
    ewm = dict(state.ewm)
    fast, ewm["fast"] = ewm_adjust_false(bars, ewm_com(span=prm.fast), ewm["fast"])
    slow, ewm["slow"] = ewm_adjust_false(bars, ewm_com(span=prm.slow), ewm["slow"])
    line = fast - slow
    sig, ewm["signal"] = ewm_adjust_false(line, ewm_com(span=prm.signal), ewm["signal"])
    hist = line - sig
    delta = np.diff(ext, prepend=np.nan)[new]
    gain = _clip_lower_zero(delta)
    loss = _clip_lower_zero(-delta)
    g, ewm["gain"] = ewm_adjust_false(gain, ewm_com(alpha=1.0 / prm.rsi_window), ewm["gain"])
    lo, ewm["loss"] = ewm_adjust_false(loss, ewm_com(alpha=1.0 / prm.rsi_window), ewm["loss"])
    r = _rsi_value(g, lo)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        flat_m = vol <= _FLAT_TOL * np.maximum(np.abs(bars), 1.0)
        norm = np.where(flat_m, 0.0, hist / vol)
    norm = np.where(np.isnan(vol), np.nan, norm)
    ready = (state.bars + np.arange(1, n + 1)) >= prm.warmup

    out = {
        "sma": sma, "std": sd, "z": z,
        "rsi": np.where(ready, r, np.nan), "macd": line, "macd_signal": sig, "macd_hist": hist,
        "macd_hist_norm": np.where(ready, norm, np.nan), "momentum": momentum,
    }
    keep = min(prm.tail, len(ext))
    return out, SymbolState(state.bars + n, tuple(ext[len(ext) - keep :].tolist()), ewm)


def indicators(prices: pd.DataFrame, state: SignalState | None = None, params: IndicatorParams | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], SignalState]:
    """Every indicator per (date, symbol) of ``prices`` continuing from ``state``; the state after.

    ``prices``: wide closes (NaN where a name does not trade), all dated after the session
    ``state`` was taken at (``state=None``: from the first bar). Returns the sorted wide panel,
    the :data:`INDICATORS` frames aligned to it and the new state (symbols absent from ``prices``
    are carried unchanged).
    """
    if state is None:
        state = SignalState(params or IndicatorParams())
    elif params is not None and params != state.params:
        raise ValueError(f"state was built with {state.params}, not {params}")
    prm = state.params
    p = _wide(prices)
    values = p.to_numpy(dtype="float64")
    frames = {name: np.full(values.shape, np.nan) for name in INDICATORS}
    symbols = dict(state.symbols)
    for j, sym in enumerate(p.columns):
        rows = np.flatnonzero(~np.isnan(values[:, j]))
        if len(rows) == 0:
            continue
        out, symbols[sym] = _advance_symbol(values[rows, j], symbols.get(sym), prm)
        for name, arr in out.items():
            frames[name][rows, j] = arr
    ind = {name: pd.DataFrame(arr, index=p.index, columns=p.columns) for name, arr in frames.items()}
    return p, ind, SignalState(prm, dict(sorted(symbols.items())))


def rsi(prices: pd.Series, window: int = 14) -> pd.Series:
    """Wilder RSI (ewm alpha = 1/window, adjust=False): 100 when there are only gains, 50 when flat."""
    s = prices.astype("float64")
    com = ewm_com(alpha=1.0 / window)
    delta = s.diff().to_numpy()
    g, _ = ewm_adjust_false(_clip_lower_zero(delta), com)
    lo, _ = ewm_adjust_false(_clip_lower_zero(-delta), com)
    return pd.Series(_rsi_value(g, lo), index=s.index)


def macd(prices: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """MACD line, signal line and histogram (EMAs by span, ``adjust=False``)."""
    x = prices.astype("float64").to_numpy()
    line = ewm_adjust_false(x, ewm_com(span=fast))[0] - ewm_adjust_false(x, ewm_com(span=slow))[0]
    sig = ewm_adjust_false(line, ewm_com(span=signal))[0]
    return pd.DataFrame({"macd": line, "macd_signal": sig, "macd_hist": line - sig}, index=prices.index)


def rsi_alpha(rsi_value: pd.Series | pd.DataFrame | np.ndarray, lower: float = RSI_LOWER, upper: float = RSI_UPPER):
    """Seed mapping: (lower − RSI)/lower below ``lower``, (upper − RSI)/(100 − upper) above ``upper``, else 0.

    With the default 30/70 both denominators are 30, as in the seed document; the result is in [−1, 1].
    """
    below = (lower - rsi_value) / lower
    above = (upper - rsi_value) / (100.0 - upper)
    return np.where(rsi_value < lower, below, np.where(rsi_value > upper, above, 0.0))


def row_std(values: np.ndarray) -> np.ndarray:
    """Population std of each row's non-NaN values, summed over the columns left to right (NaN: no value).

    Absent values add +0.0, which never changes a sum that starts at +0.0, so a row's result
    depends only on its present values in column order (not on which other columns exist).
    """
    ok = ~np.isnan(values)
    n = ok.sum(axis=1)
    x = np.where(ok, values, 0.0)
    acc = np.zeros(values.shape[0])
    for j in range(values.shape[1]):
        acc += x[:, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = acc / n
        acc2 = np.zeros(values.shape[0])
        for j in range(values.shape[1]):
            d = np.where(ok[:, j], x[:, j] - mean, 0.0)
            acc2 += d * d
        return np.where(n > 0, np.sqrt(acc2 / n), np.nan)


# --------------------------------------------------------------------------------------------
# strategies (wide indicator frames → long signal rows)


def _bollinger_rows(p: pd.DataFrame, ind: dict[str, pd.DataFrame], prm: IndicatorParams, horizon_days: int = 5) -> pd.DataFrame:
    k = prm.k
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
            "window": int(prm.window),
            "k": float(k),
        },
    )


def _confluence_rows(p: pd.DataFrame, ind: dict[str, pd.DataFrame], prm: IndicatorParams, horizon_days: int = 10) -> pd.DataFrame:
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
            "fast": int(prm.fast),
            "slow": int(prm.slow),
            "signal": int(prm.signal),
            "rsi_window": int(prm.rsi_window),
        },
    )


def _momentum_rows(p: pd.DataFrame, ind: dict[str, pd.DataFrame], prm: IndicatorParams, horizon_days: int = 20) -> pd.DataFrame:
    mom = ind["momentum"]
    valid = _finite(p, mom)
    mom = mom.where(valid)
    n = mom.notna().sum(axis=1)
    ranks = mom.rank(axis=1, method="average")
    denom = (n - 1).where(n > 1)
    alpha = (2.0 * (ranks - 1.0)).div(denom, axis=0) - 1.0
    alpha = alpha.where(~(n == 1), 0.0).where(valid)
    conf = alpha.abs()
    disp = row_std(mom.to_numpy(dtype="float64"))
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
            "cs_dispersion": pd.DataFrame(np.repeat(np.nan_to_num(disp, nan=0.0)[:, None], p.shape[1], axis=1), index=p.index, columns=p.columns),
            "lookback": int(prm.lookback),
            "skip": int(prm.skip),
        },
    )


def bollinger_mean_reversion(prices: pd.DataFrame, window: int = 20, k: float = 2.0, horizon_days: int = 5) -> pd.DataFrame:
    """Mean reversion on the Bollinger z-score: far below the lower band → positive alpha."""
    prm = IndicatorParams(window=window, k=k)
    p, ind, _ = indicators(prices, None, prm)
    return _bollinger_rows(p, ind, prm, horizon_days)


def macd_rsi_confluence(
    prices: pd.DataFrame,
    fast: int = 12,
    slow: int = 26,
    signal: int = 9,
    rsi_window: int = 14,
    horizon_days: int = 10,
) -> pd.DataFrame:
    """RSI extremes (seed mapping) strengthened when the MACD histogram agrees, damped when it disagrees."""
    prm = IndicatorParams(fast=fast, slow=slow, signal=signal, rsi_window=rsi_window)
    p, ind, _ = indicators(prices, None, prm)
    return _confluence_rows(p, ind, prm, horizon_days)


def momentum_rank(prices: pd.DataFrame, lookback: int = 252, skip: int = 21, horizon_days: int = 20) -> pd.DataFrame:
    """Cross-sectional rank of 12-1 momentum mapped linearly to [−1, 1] (best +1, worst −1)."""
    prm = IndicatorParams(lookback=lookback, skip=skip)
    p, ind, _ = indicators(prices, None, prm)
    return _momentum_rows(p, ind, prm, horizon_days)


STRATEGIES: dict[str, Callable[..., pd.DataFrame]] = {
    "bollinger_mean_reversion": bollinger_mean_reversion,
    "macd_rsi_confluence": macd_rsi_confluence,
    "momentum_rank": momentum_rank,
}

_ROWS = (_bollinger_rows, _confluence_rows, _momentum_rows)


def advance_signals(prices: pd.DataFrame, state: SignalState | None = None, since: pd.Timestamp | None = None) -> tuple[pd.DataFrame, SignalState]:
    """The three strategies' signals (default parameters) dated ≥ ``since``, and the state after ``prices``.

    ``state`` is the :class:`SignalState` after the session before ``prices`` begins (None: ``prices``
    starts at the first bar). Signals from (state after day t − 1, prices from t) equal the rows
    dated ≥ t of one pass from the first bar, bit for bit (see :func:`_advance_symbol`), so the
    daily run reads one session of prices and a small state whatever the length of history.
    """
    p, ind, new_state = indicators(prices, state)
    if since is not None:
        keep = p.index >= pd.Timestamp(since)
        p = p.loc[keep]
        ind = {name: frame.loc[keep] for name, frame in ind.items()}
    frames = [rows(p, ind, new_state.params) for rows in _ROWS]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _empty(), new_state
    out = pd.concat(frames, ignore_index=True)
    # (date, symbol, strategy) order by integer keys: the same order as a stable sort_values on the
    # three columns, without comparing ~a million symbol strings (2 s of a 600-name replay)
    order = np.lexsort((pd.factorize(out["strategy"], sort=True)[0], pd.factorize(out["symbol"], sort=True)[0],
                        out["date"].to_numpy(dtype="datetime64[ns]")))
    return out.take(order).reset_index(drop=True), new_state


def all_signals(prices: pd.DataFrame) -> pd.DataFrame:
    """The three strategies' signals (default parameters), sorted by (date, symbol, strategy)."""
    return advance_signals(prices)[0]


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
