"""The look-ahead proof: the graph built on history truncated at day t equals the full-history
build on every row dated <= t, for every point-in-time table.

Which tables (:func:`point_in_time_tables`, derived from the Definitions so a new asset cannot be
missed):

* every daily-partitioned asset, keyed by its partition column (asset metadata
  ``partition_column``, default ``date``: e.g. ``as_of_date``, ``exit_date`` for closed trades);
* every unpartitioned asset that declares ``point_in_time_column`` metadata: a table rebuilt whole
  whose rows dated <= t are final at t (allocator regime / risk series, edge history and sizing,
  rolling sleeve metrics, regime transitions, reference prices, assessment models by fit date).

Unpartitioned whole-history summaries (``sleeve_metrics``, ``assessment_evaluation``,
``meta_orchestrator``, ``pattern_scope_stats``, ``instruments`` ...) describe the history as built
and are not point in time; they declare nothing and are not compared.

Run it on any source (CI runs it on a short synthetic span, ``tests/assets/test_state_spaces.py``)::

    prometheus lookahead --cut 2010-12-30                # builds the full history and the truncated one
    prometheus lookahead --cut 2010-12-30 --full ./data  # reuses a full build (e.g. from `make run`)

Both builds run in-process, each into its own storage root under a work directory; the CLI
records them on a SQLite instance with the fast event log in that directory (an in-memory
instance costs ~4 ms per (asset, partition) event: minutes over the 8,313 bundled days).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
import pandas as pd

from prometheus_assets.resources import partition_column
from prometheus_assets.resources.storage import ParquetStore
from prometheus_assets.settings import Settings

#: Asset metadata key naming the date column of an unpartitioned point-in-time table.
POINT_IN_TIME = "point_in_time_column"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def point_in_time_tables(defs: dg.Definitions) -> dict[str, str]:
    """``{table: date column}`` of every point-in-time table of ``defs`` (see the module docstring)."""
    out: dict[str, str] = {}
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.path[-1]
        if spec.partitions_def is not None:
            out[name] = partition_column(spec.metadata)
        elif spec.metadata.get(POINT_IN_TIME):
            out[name] = str(spec.metadata[POINT_IN_TIME])
    return dict(sorted(out.items()))


def build(settings: Settings, start: str, end: str, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """Materialize the whole graph for ``start`` … ``end`` in one in-process run (default: ephemeral instance)."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from prometheus_assets.definitions import build_definitions

    from prometheus_assets.cli import execute_without_output_capture

    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    return execute_without_output_capture(
        job, instance or dg.DagsterInstance.ephemeral(), run_config=QUIET,
        tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}, raise_on_error=True,
    )


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One table's rows dated <= the cut, in the full and the truncated build."""

    table: str
    column: str
    rows: int
    difference: str | None  # None: identical

    @property
    def ok(self) -> bool:
        return self.difference is None


def compare(full_home: str, truncated_home: str, cut: pd.Timestamp | str, tables: dict[str, str]) -> list[Comparison]:
    """Compare every table's rows with ``column <= cut`` between two storage roots, exactly."""
    full, short = ParquetStore(str(full_home)), ParquetStore(str(truncated_home))
    out = []
    for table, column in tables.items():
        if not full.exists(table) or not short.exists(table):
            missing = [h for h, s in (("full", full), ("truncated", short)) if not s.exists(table)]
            out.append(Comparison(table, column, 0, f"not stored in the {' and '.join(missing)} build"))
            continue
        a = full.read(table, None, cut, date_column=column).reset_index(drop=True)
        b = short.read(table, None, cut, date_column=column).reset_index(drop=True)
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=table)
            out.append(Comparison(table, column, len(a), None))
        except AssertionError as exc:
            out.append(Comparison(table, column, len(a), " ".join(str(exc).split())[:400]))
    return out


def run(settings: Settings, cut: str, workdir: str, full_home: str | None = None,
        instance: dg.DagsterInstance | None = None) -> list[Comparison]:
    """Build the truncated history (and the full one unless ``full_home`` is given), then compare.

    The full build spans ``settings``' history (``start`` … ``end``, else the source's span) into
    ``<workdir>/full``; the truncated one is the same settings with the source ending at ``cut``
    (the data after it does not exist for that build), into ``<workdir>/truncated``. A given
    ``full_home`` must have been built from the same source and first day.
    """
    from prometheus_assets.cli import history_range
    from prometheus_assets.definitions import build_definitions

    work = Path(workdir)
    defs = build_definitions(settings)
    first, last = history_range(defs, settings)
    if full_home is None:
        full_home = str(work / "full")
        build(dataclasses.replace(settings, home=full_home), first, last, instance)
    short = dataclasses.replace(settings, home=str(work / "truncated"), end=cut)
    _, short_last = history_range(build_definitions(short), short)
    build(short, first, short_last, instance)
    return compare(full_home, short.home, short_last, point_in_time_tables(defs))


def report(comparisons: list[Comparison]) -> list[str]:
    """Lines describing each table's verdict."""
    lines = [f"{'table':<28}{'column':<14}{'rows <= cut':>12}  verdict"]
    for c in comparisons:
        verdict = ("identical" if c.rows else "no rows up to the cut in either build (nothing compared)") if c.ok else "DIFFERENT: " + c.difference
        lines.append(f"{c.table:<28}{c.column:<14}{c.rows:>12,}  {verdict}")
    bad = [c.table for c in comparisons if not c.ok]
    empty = [c.table for c in comparisons if c.ok and not c.rows]
    lines.append(f"{len(comparisons) - len(bad)} of {len(comparisons)} point-in-time tables identical"
                 + (f"; different: {', '.join(bad)}" if bad else "") + (f"; empty up to the cut: {', '.join(empty)}" if empty else ""))
    return lines
