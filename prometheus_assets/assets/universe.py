"""Universe group: ``universes`` — U_book(t), each book's candidates per day.

Seed concept: Prometheus v2 books/sleeves — the universe service that turns every instrument
into a book's candidate list (filters, ranking, tiers) before the portfolio manager sizes it.
"""

import dagster as dg
import pandas as pd

from prometheus_assets.assets import book_inputs, history, metadata
from prometheus_assets.core import book_signals
from prometheus_assets.core.universe import CLASS_CARRY_SESSIONS, build_universe
from prometheus_assets.partitions import SINGLE_RUN, keys_to_dates
from prometheus_assets.resources import StorageResource
from prometheus_assets.resources.books import BooksResource

GROUP = "universe"
OWNERS = ["team:prometheus-portfolio"]


def universe_assets(daily: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=daily, backfill_policy=SINGLE_RUN, group_name=GROUP, owners=OWNERS, tags={"layer": "universe"},
        kinds={"parquet"}, code_version="5",
        deps=["prices_daily", "assessment_scores", "strategy_signals", "soft_target_classes"],
        description=(
            "U_book(t): per book and day the candidate instruments after the book's filters (listing age, price and "
            "dollar-volume floors, soft-target exclusions such as BREAKER, de-weighting such as FRAGILE × 0.5; a class is carried "
            "over up to 126 sessions without a stability row), ranked "
            "by the book's ranking alpha source: rank score, inclusion score, rank and tier (1 / 2 / 3). Rules: "
            "prometheus_assets/core/universe.py; books: prometheus_assets/configs/sleeves/."
        ),
    )
    def universes(context: dg.AssetExecutionContext, storage: StorageResource, books: BooksResource) -> dg.Output:
        dates = keys_to_dates(context.partition_keys)
        # the whole price history: a listing's age counts its sessions from its first price
        panels = history.price_panels(storage, None, dates[-1], closes=True)
        prices = panels["prices"]
        scores = history.read(storage, "assessment_scores", dates[0], dates[-1], date_column="as_of_date", columns=book_signals.SCORE_INPUT_COLUMNS)
        signals = history.read(storage, "strategy_signals", dates[0], dates[-1], columns=book_signals.SIGNAL_INPUT_COLUMNS)
        # from CLASS_CARRY_SESSIONS before the first day: a class is carried over days without a stability row
        classes = book_inputs.soft_target_class_panel(storage, history.lookback_start(dates[0], CLASS_CARRY_SESSIONS + history.LOOKBACK_SLACK), dates[-1])
        parts = []
        for name, book in books.books().items():
            score, _, _ = book_signals.source_score(book.rank_source, scores, signals, prices.index, prices.columns)
            parts.append(build_universe(score, prices, classes, book.universe, book.long_only, panels["volumes"], since=dates[0],
                                        closes=panels["closes"]).assign(book=name))
        out = pd.concat(parts, ignore_index=True).reset_index(drop=True)
        per_book = out.groupby("book").size() / max(out["date"].nunique(), 1)
        return metadata.output(context, out, numbers={"candidates_per_day": float(per_book.mean()) if len(per_book) else 0.0},
                               pictures={"candidates_per_book_per_day": dg.MetadataValue.json({k: round(float(v), 2) for k, v in per_book.items()})})

    return [universes]
