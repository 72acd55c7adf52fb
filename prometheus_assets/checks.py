"""Asset checks of the canonical layer.

Each check reports two things with counts and examples in its metadata:

* ``in_output``: offending rows that reached the materialized table (must be zero: severity ERROR);
* ``quarantined``: rows of the input the check's rule kept out, with their reasons (severity WARN:
  the table is clean, but the source had defects the user should see and fix).

Returns-based checks (jumps beyond ±50%, stale price runs) are warnings only: such moves can be
real, so the rows stay in the tables and the check points at them.

Checks are computed inside the asset body and yielded as ``AssetCheckResult`` (no second load of
a multi-decade range), so they also run within single-run backfills.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from prometheus_assets.core import quality
from prometheus_assets.core.validation import QuarantineReason as R


@dataclass(frozen=True)
class BarCheck:
    """A check of ``prices_daily``: a detector on the output and the quarantine reasons it owns."""

    name: str
    description: str
    reasons: tuple[R, ...]
    detector: Callable[[pd.DataFrame, dict], pd.DataFrame]


PRICE_CHECKS: tuple[BarCheck, ...] = (
    BarCheck("no_duplicate_bars", "No two bars share a (date, symbol).", (R.DUPLICATE_BAR, R.CONFLICTING_DUPLICATE),
             lambda df, ctx: quality.duplicate_bars(df)),
    BarCheck("positive_prices", "Every price is > 0.", (R.NON_POSITIVE_PRICE,),
             lambda df, ctx: quality.non_positive_prices(df)),
    BarCheck("consistent_bars", "Every bar is possible: volume >= 0, high >= low, open and close within [low, high].",
             (R.INCONSISTENT_BAR,), lambda df, ctx: df.loc[quality.inconsistent_bars(df).index]),
    BarCheck("no_missing_prices", "Every bar has a close; every row parsed (date, symbol, numbers).",
             (R.MISSING_PRICE, R.PARSE_ERROR, R.MISSING_DATE, R.MISSING_SYMBOL),
             lambda df, ctx: quality.missing_prices(df)),
    BarCheck("on_trading_days", "Every bar is dated on an NYSE session, none in the future.",
             (R.NON_TRADING_DAY, R.FUTURE_DATE),
             lambda df, ctx: quality.off_calendar_rows(df, ctx["sessions"])),
    BarCheck("known_symbols", "Every symbol is in the instrument registry.", (R.UNKNOWN_SYMBOL,),
             lambda df, ctx: quality.unknown_symbol_rows(df, ctx["known_symbols"]) if ctx["known_symbols"] is not None else df.iloc[0:0]),
)

RETURN_CHECKS: tuple[tuple[str, str], ...] = (
    ("returns_within_50pct", f"No daily return beyond ±{quality.RETURN_JUMP_LIMIT:.0%} (warning: may be real)."),
    ("no_stale_prices", f"No close unchanged for ≥ {quality.STALE_RUN_SESSIONS} consecutive sessions (warning)."),
)


def price_check_specs(asset: str = "prices_daily") -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(c.name, asset=asset, description=c.description) for c in PRICE_CHECKS]


def return_check_specs(asset: str = "returns_daily") -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=asset, description=desc) for name, desc in RETURN_CHECKS]


def _json(rows: list[dict]) -> dg.MetadataValue:
    return dg.MetadataValue.json(json.loads(json.dumps(rows, default=str)))


def price_check_results(clean: pd.DataFrame, quarantine: pd.DataFrame, context: dict) -> list[dg.AssetCheckResult]:
    """One result per :data:`PRICE_CHECKS` entry for a materialized range."""
    results = []
    for check in PRICE_CHECKS:
        in_output = check.detector(clean, context)
        held = quarantine[quarantine["reason"].isin([r.value for r in check.reasons])]
        passed = in_output.empty and held.empty
        severity = dg.AssetCheckSeverity.ERROR if not in_output.empty else dg.AssetCheckSeverity.WARN
        results.append(
            dg.AssetCheckResult(
                check_name=check.name,
                passed=passed,
                severity=severity,
                metadata={
                    "in_output": len(in_output),
                    "quarantined": len(held),
                    "quarantined_by_reason": _json([{"reason": k, "rows": int(v)} for k, v in held["reason"].value_counts().sort_index().items()]),
                    "examples": _json(quality.examples(in_output if not in_output.empty else held)),
                },
            )
        )
    return results


def return_check_results(returns: pd.DataFrame, stale_runs: pd.DataFrame) -> list[dg.AssetCheckResult]:
    """Results of the two warning checks on ``returns_daily`` for a materialized range."""
    jumps = quality.return_jumps(returns)
    out = []
    for (name, _), rows in zip(RETURN_CHECKS, (jumps, stale_runs)):
        out.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=rows.empty,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"count": len(rows), "examples": _json(quality.examples(rows))},
            )
        )
    return out
