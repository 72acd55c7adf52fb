"""Validation of raw daily bars: every row either enters ``prices_daily`` or is quarantined with a reason.

Nothing is dropped silently. ``validate_bars`` splits raw bars (as a source delivers them, with
provenance columns ``source_file`` / ``source_row``) into

* ``clean``: canonical bars (``schema.BAR_COLUMNS``), one row per (date, symbol), sorted;
* ``quarantine``: every other row, with ``reason`` (one of :class:`QuarantineReason`) and a
  human-readable ``detail``, plus the raw values and provenance so the user can fix the input.

Rules, checked in this order (a row gets the first reason that applies):

====================  =========================================================================
reason                rule
====================  =========================================================================
parse_error           the source could not parse a field (text in a price column, bad date ...)
missing_date          no date
missing_symbol        no symbol
missing_price         ``close`` is NaN / empty
non_positive_price    any present price column is <= 0
inconsistent_bar      a negative volume, high below low, or open / close outside [low, high]
future_date           dated after ``as_of`` (the day the data is being built for)
non_trading_day       dated on a weekend or exchange holiday
unknown_symbol        symbol absent from the instrument registry (only when a registry is given)
duplicate_bar         a second copy of an identical (date, symbol) bar: the first is kept
conflicting_duplicate several different bars for one (date, symbol): all are quarantined,
                      since no rule can tell which is right
====================  =========================================================================

Suspicious but possible values (a 1000% jump, a stale price run) are *not* quarantined: they are
reported by asset checks (see :mod:`prometheus_assets.core.quality`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from prometheus_assets.core import quality
from prometheus_assets.core.schema import BAR_COLUMNS, PRICE_COLUMNS, PROVENANCE_COLUMNS, normalise_bars


class QuarantineReason(StrEnum):
    """Why a raw bar was kept out of ``prices_daily``."""

    PARSE_ERROR = "parse_error"
    MISSING_DATE = "missing_date"
    MISSING_SYMBOL = "missing_symbol"
    MISSING_PRICE = "missing_price"
    NON_POSITIVE_PRICE = "non_positive_price"
    INCONSISTENT_BAR = "inconsistent_bar"
    FUTURE_DATE = "future_date"
    NON_TRADING_DAY = "non_trading_day"
    UNKNOWN_SYMBOL = "unknown_symbol"
    DUPLICATE_BAR = "duplicate_bar"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"


QUARANTINE_COLUMNS: list[str] = [
    "date",
    "symbol",
    "reason",
    "detail",
    "source_file",
    "source_row",
    *PRICE_COLUMNS,
    "volume",
]


@dataclass(frozen=True)
class ValidatedBars:
    """The result of :func:`validate_bars`: accepted bars and quarantined rows."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame

    def reason_counts(self) -> dict[str, int]:
        """Number of quarantined rows per reason (reasons with zero rows omitted)."""
        return {str(k): int(v) for k, v in self.quarantine["reason"].value_counts().sort_index().items()}


def _with_provenance(raw: pd.DataFrame) -> pd.DataFrame:
    bars = normalise_bars(raw)
    if "source_file" not in bars.columns:
        bars["source_file"] = None
    if "source_row" not in bars.columns:
        bars["source_row"] = pd.array([pd.NA] * len(bars), dtype="Int64")
    if "parse_error" not in bars.columns:
        bars["parse_error"] = None
    return bars.reset_index(drop=True)


def validate_bars(
    raw: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    known_symbols: set[str] | frozenset[str] | None = None,
    as_of: pd.Timestamp | None = None,
) -> ValidatedBars:
    """Split ``raw`` bars into clean bars and a quarantine (see the module docstring for the rules).

    ``sessions`` must cover every date in ``raw`` that could be a session (pass the exchange's
    sessions over the loaded span). ``known_symbols=None`` disables the unknown-symbol rule (a
    source without a registry defines its universe by its bars). ``as_of=None`` disables the
    future-date rule.
    """
    bars = _with_provenance(raw)
    reason = pd.Series(pd.NA, index=bars.index, dtype="object")
    detail = pd.Series(pd.NA, index=bars.index, dtype="object")

    def flag(mask: pd.Series | np.ndarray, why: QuarantineReason, text: pd.Series | str) -> None:
        m = pd.Series(np.asarray(mask, dtype=bool), index=bars.index) & reason.isna()
        reason[m] = why.value
        detail[m] = text[m] if isinstance(text, pd.Series) else text

    flag(bars["parse_error"].notna(), QuarantineReason.PARSE_ERROR, bars["parse_error"].astype("object"))
    flag(bars["date"].isna(), QuarantineReason.MISSING_DATE, "no date")
    flag(bars["symbol"].isna() | (bars["symbol"].astype(str).str.strip() == ""), QuarantineReason.MISSING_SYMBOL, "no symbol")
    flag(bars.index.isin(quality.missing_prices(bars).index), QuarantineReason.MISSING_PRICE, "close is missing")
    flag(
        bars.index.isin(quality.non_positive_prices(bars).index),
        QuarantineReason.NON_POSITIVE_PRICE,
        "a price is zero or negative",
    )
    impossible = quality.inconsistent_bars(bars)
    flag(bars.index.isin(impossible.index), QuarantineReason.INCONSISTENT_BAR, impossible.reindex(bars.index))
    if as_of is not None:
        flag(
            bars.index.isin(quality.future_rows(bars, as_of).index),
            QuarantineReason.FUTURE_DATE,
            f"dated after {pd.Timestamp(as_of).date()}",
        )
    flag(
        bars.index.isin(quality.off_calendar_rows(bars, sessions).index),
        QuarantineReason.NON_TRADING_DAY,
        "not an exchange session",
    )
    if known_symbols is not None:
        flag(
            bars.index.isin(quality.unknown_symbol_rows(bars, known_symbols).index),
            QuarantineReason.UNKNOWN_SYMBOL,
            "symbol not in the instrument registry",
        )

    # Duplicates are judged among rows that passed every other rule.
    ok = bars[reason.isna()]
    dups = quality.duplicate_bars(ok)
    if not dups.empty:
        value_cols = PRICE_COLUMNS + ["volume"]
        n_distinct = dups.groupby(["date", "symbol"])[value_cols].transform(
            lambda col: col.astype("float64").fillna(np.inf).nunique()
        )
        conflicting = (n_distinct > 1).any(axis=1)
        flag(
            bars.index.isin(conflicting[conflicting].index),
            QuarantineReason.CONFLICTING_DUPLICATE,
            "several different bars for this date and symbol",
        )
        identical = dups.loc[~conflicting]
        extra = identical[identical.duplicated(["date", "symbol"], keep="first")]
        flag(bars.index.isin(extra.index), QuarantineReason.DUPLICATE_BAR, "identical copy of an earlier bar")

    bad = reason.notna()
    clean = bars.loc[~bad, BAR_COLUMNS].sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    quarantined = bars.loc[bad].copy()
    quarantined["reason"] = reason[bad].astype(str)
    quarantined["detail"] = detail[bad].astype(str)
    quarantined["source_row"] = quarantined["source_row"].astype("Int64")
    quarantined = quarantined[QUARANTINE_COLUMNS].sort_values(
        ["date", "symbol", "source_file", "source_row"], kind="stable", na_position="last"
    )
    return ValidatedBars(clean=clean, quarantine=quarantined.reset_index(drop=True))


def empty_quarantine() -> pd.DataFrame:
    """A quarantine frame with no rows and the canonical columns."""
    bars = _with_provenance(pd.DataFrame({c: [] for c in BAR_COLUMNS}))
    bars["reason"] = pd.Series([], dtype=str)
    bars["detail"] = pd.Series([], dtype=str)
    return bars[QUARANTINE_COLUMNS]


__all__ = ["QUARANTINE_COLUMNS", "QuarantineReason", "ValidatedBars", "empty_quarantine", "validate_bars", "PROVENANCE_COLUMNS"]


def assign_partition_dates(quarantine: pd.DataFrame, partition_dates: pd.DatetimeIndex, owners: pd.Series | None = None) -> pd.DataFrame:
    """Attach ``partition_date``: the partition whose materialization quarantined each row.

    A row dated on a session in ``partition_dates`` belongs to that day; a row on a non-session
    goes to the next partition on or after its date; rows dated after the last partition (future
    dates) and undated rows go to the last / first partition of the range. ``owners`` (aligned
    with ``quarantine``'s index): a day that decides instead of the row's date where not NaT, e.g.
    the day a row's file is named for, so the row lands in the same partition whether that day
    was built alone or in a range.
    """
    out = quarantine.copy()
    dates = pd.DatetimeIndex(partition_dates).sort_values()
    if len(dates) == 0:
        raise ValueError("partition_dates is empty")
    day = out["date"] if owners is None else pd.to_datetime(owners.reindex(out.index)).fillna(out["date"])
    pos = dates.searchsorted(day.fillna(dates[0]).to_numpy(), side="left")
    pos = pos.clip(0, len(dates) - 1)
    out.insert(0, "partition_date", dates[pos].astype("datetime64[ns]"))
    return out
