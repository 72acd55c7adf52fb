"""Benchmark: one end-of-day run of the whole graph with 1 year vs the full history behind it.

For each history length it builds the history up to the day before the last session into a fresh
storage root and persistent instance (like ``make run``), then times the EOD run of the last
session alone (one partition of the whole graph, what ``eod_job`` runs for a new day), with the
body / IO / bookkeeping split. It prints both figures and their ratio against the targets of the
hardening issue (≤ 15 s per EOD day, full/1-year ratio ≤ 1.2), and a 5-year run as a diagnostic
(see ``main``).

    .venv/bin/python bench/eod.py [--source bundled|synthetic|DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

import pandas as pd

EOD_TARGET_S = 15.0
RATIO_TARGET = 1.2
#: How many of the EOD run's largest step bodies to print (where the time goes).
STEPS_SHOWN = 8


def _eod(source: str, start: str | None, tmp: str) -> tuple[float, list[str], str]:
    from prometheus_assets.cli import build
    from prometheus_assets.core import calendar
    from prometheus_assets.cli import history_range
    from prometheus_assets.definitions import build_definitions
    from prometheus_assets.settings import Settings

    env = {"PROMETHEUS_HOME": os.path.join(tmp, "data"), "PROMETHEUS_SOURCE": source}
    if start:
        env["PROMETHEUS_START"] = start
    os.environ.pop("DAGSTER_HOME", None)
    settings = Settings.from_env(env)
    defs = build_definitions(settings)
    first, last = history_range(defs, settings)
    sessions = calendar.trading_sessions(first, last)
    previous = f"{sessions[-2]:%Y-%m-%d}"
    history, _, _, _ = build(settings, first, previous, echo=False)
    if not history.success:
        raise RuntimeError(f"history build {first} … {previous} failed")
    result, split, _, _ = build(settings, last, last, echo=False)
    if not result.success or split is None:
        raise RuntimeError(f"EOD run of {last} failed")
    steps = sorted(split.per_step.items(), key=lambda kv: -kv[1]["body"])[:STEPS_SHOWN]
    lines = split.lines() + ["  largest step bodies: " + ", ".join(f"{name} {s['body']:.2f} s" for name, s in steps)]
    return split.wall, lines, f"{first} … {last}"


def main() -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", default=os.environ.get("PROMETHEUS_SOURCE", "bundled"))
    args = parser.parse_args()
    figures = {}
    # "5 years" is a diagnostic beside the 1-year reference: with one year of history no
    # walk-forward assessment model is fitted yet (the first fit trains on a year of data), so there
    # are no scores, the books hold nothing and no trade closes: the 1-year run skips work every
    # longer history does. The 5-year → full step shows what still grows with the history itself.
    for label, years in (("1 year", 1), ("5 years", 5), ("full history", None)):
        with tempfile.TemporaryDirectory(prefix="prometheus-eod-") as tmp:
            start = None
            if years is not None:
                from prometheus_assets.resources import MarketDataResource

                _, end = MarketDataResource(source=args.source).get().span()
                start = f"{pd.Timestamp(end) - pd.DateOffset(years=years):%Y-%m-%d}"
            wall, lines, span = _eod(args.source, start, tmp)
            figures[label] = wall
            print(f"== EOD run of the last session, history {span} ({label})")
            print("\n".join(lines), flush=True)
    ratio = figures["full history"] / figures["1 year"]
    print(f"EOD day: {figures['1 year']:.1f} s with 1 year, {figures['full history']:.1f} s with the full history "
          f"(target ≤ {EOD_TARGET_S:.0f} s); ratio {ratio:.2f} (target ≤ {RATIO_TARGET})")
    print(f"  diagnostic: {figures['5 years']:.1f} s with 5 years; full / 5 years = {figures['full history'] / figures['5 years']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
