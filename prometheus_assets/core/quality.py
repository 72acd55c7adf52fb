"""Detectors of bad or suspicious daily bars.

Each detector takes long frames and returns the offending rows (a sub-frame, never a copy with
rows silently removed). Validation uses the *hard* detectors to quarantine rows before they enter
``prices_daily``; the asset checks use every detector to report counts and examples. The same
functions serve both, so what is quarantined and what is reported cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: A daily simple return beyond this magnitude is reported as a jump (50%).
RETURN_JUMP_LIMIT = 0.5
#: A close unchanged for at least this many consecutive sessions is reported as stale.
STALE_RUN_SESSIONS = 5


def missing_prices(bars: pd.DataFrame) -> pd.DataFrame:
    """Rows whose ``close`` is missing (NaN, empty, or unparseable)."""
    return bars[bars["close"].isna()]


def non_positive_prices(bars: pd.DataFrame, columns: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")) -> pd.DataFrame:
    """Rows where any present price column is zero or negative."""
    present = [c for c in columns if c in bars.columns]
    mask = np.zeros(len(bars), dtype=bool)
    for col in present:
        mask |= (bars[col] <= 0).to_numpy()  # NaN compares False: missing is not non-positive
    return bars[mask]


#: Relative slack of the OHLC consistency test (a vendor's rounding of high or low to its tick).
OHLC_TOLERANCE: float = 1e-9


def inconsistent_bars(bars: pd.DataFrame) -> pd.Series:
    """Why each impossible bar is impossible (index: the bar's), among the present values.

    A negative volume, a high below the low, or an open or a close outside [low, high] (adjusted
    closes are on another scale and take no part). Missing values take no part: a close-only bar
    is never inconsistent.
    """
    def col(name: str) -> pd.Series:
        return bars[name].astype("float64") if name in bars.columns else pd.Series(np.nan, index=bars.index)

    high, low, volume = col("high"), col("low"), col("volume")
    reasons = pd.Series("", index=bars.index, dtype="object")

    def add(mask: pd.Series, text: str) -> None:
        reasons.loc[mask.fillna(False).to_numpy(dtype=bool)] += text + "; "

    add(volume < 0, "negative volume")
    add(high < low * (1 - OHLC_TOLERANCE), "high below low")
    for name in ("open", "close"):
        value = col(name)
        add(value > high * (1 + OHLC_TOLERANCE), f"{name} above high")
        add(value < low * (1 - OHLC_TOLERANCE), f"{name} below low")
    bad = reasons != ""
    return reasons[bad].str.rstrip("; ")


def duplicate_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """All rows sharing a (date, symbol) with another row."""
    return bars[bars.duplicated(["date", "symbol"], keep=False)]


def off_calendar_rows(bars: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """Rows dated on a day that is not a trading session (weekends, holidays)."""
    dated = bars["date"].notna()
    return bars[dated & ~bars["date"].isin(sessions)]


def future_rows(bars: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rows dated after ``as_of`` (data cannot be known before its date)."""
    return bars[bars["date"] > as_of]


def unknown_symbol_rows(bars: pd.DataFrame, known_symbols: set[str] | frozenset[str]) -> pd.DataFrame:
    """Rows whose symbol is not in the instrument registry."""
    return bars[~bars["symbol"].isin(known_symbols)]


def return_jumps(returns: pd.DataFrame, limit: float = RETURN_JUMP_LIMIT) -> pd.DataFrame:
    """Rows of a returns frame (``date, symbol, return``) with ``|return| > limit``."""
    return returns[returns["return"].abs() > limit]


def stale_price_runs(prices: pd.DataFrame, min_sessions: int = STALE_RUN_SESSIONS) -> pd.DataFrame:
    """Runs of at least ``min_sessions`` consecutive bars of one symbol with an unchanged close.

    ``prices`` is long (``date, symbol, close``), one row per session the symbol traded. Returns one
    row per run: ``symbol, start_date, end_date, sessions, close``.
    """
    cols = ["symbol", "start_date", "end_date", "sessions", "close"]
    if prices.empty:
        return pd.DataFrame(columns=cols)
    p = prices[["date", "symbol", "close"]].dropna().sort_values(["symbol", "date"])
    new_run = (p["symbol"] != p["symbol"].shift()) | (p["close"] != p["close"].shift())
    run_id = new_run.cumsum()
    runs = p.groupby(run_id).agg(
        symbol=("symbol", "first"),
        start_date=("date", "min"),
        end_date=("date", "max"),
        sessions=("date", "size"),
        close=("close", "first"),
    )
    runs = runs[runs["sessions"] >= min_sessions]
    return runs.reset_index(drop=True)[cols]


def examples(rows: pd.DataFrame, limit: int = 5) -> list[dict[str, object]]:
    """Up to ``limit`` offending rows as JSON-friendly dicts, for check metadata."""
    out: list[dict[str, object]] = []
    for rec in rows.head(limit).to_dict(orient="records"):
        clean: dict[str, object] = {}
        for key, value in rec.items():
            if isinstance(value, pd.Timestamp):
                clean[key] = value.date().isoformat()
            elif isinstance(value, float | np.floating) and np.isnan(value):
                clean[key] = None
            elif isinstance(value, np.generic):
                clean[key] = value.item()
            elif value is pd.NaT or value is None:
                clean[key] = None
            else:
                clean[key] = value if isinstance(value, int | float | str | bool) else str(value)
        out.append(clean)
    return out
