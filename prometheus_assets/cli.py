"""``prometheus``: the command line behind ``make run`` / ``make ui``.

    prometheus build [--start D] [--end D]   materialize the whole graph over the source's history
    prometheus summary                       what is stored: tables, rows, dates, files
    prometheus catalog                       (re)create every DuckDB view from the Parquet files
    prometheus sql "select ..."              run a query against the catalog
    prometheus ui [--host H] [--port P]      Dagster webserver + daemon for this code location
    prometheus lookahead --cut D [--full DIR] [--workdir DIR]
                                             look-ahead proof: the graph built on history truncated
                                             at D equals the full build on every row dated <= D

Configuration comes from the environment (see ``prometheus_assets.settings``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings

import pandas as pd

from prometheus_assets.settings import Settings

DAGSTER_YAML = """# Written by `prometheus` on first use: a local SQLite instance.
# The event log uses Prometheus' FastSqliteEventLogStorage (same files and schema as Dagster's
# SqliteEventLogStorage, ~10x less bookkeeping per (asset, partition); see prometheus_assets/instance.py).
# Delete the event_log_storage block to return to Dagster's default. For Postgres see the README.
telemetry:
  enabled: false
event_log_storage:
  module: prometheus_assets.instance
  class: FastSqliteEventLogStorage
  config:
    base_dir: {runs_dir}
# Whole-graph runs (eod_job: the EOD days of eod_sensor / eod_schedule, and its backfills) run one at
# a time, oldest first: day t+1 reads what day t wrote. Other runs are not limited.
concurrency:
  runs:
    tag_concurrency_limits:
      - key: prometheus/queue
        value: graph
        limit: 1
"""
#: Events are stored in batches of this size (one transaction each) by FastSqliteEventLogStorage.
EVENT_BATCH_SIZE = "1000"
#: Dagster's own switch (``EventLogStorage.supports_partition_subset_in_asset_materialization_planned_events``):
#: a ranged run records one ASSET_MATERIALIZATION_PLANNED event per asset carrying the partition
#: range, instead of one per (asset, partition). It saves ~175k events (~2-3 minutes) of a
#: full-history build's start-up. Dagster's documented trade-off: if such a run fails, its
#: partitions show as missing, not failed, in the partition bars (the run itself shows the failure).
#: Set it to "false" before starting ``prometheus`` to get the per-partition events back.
PLANNED_EVENTS_AS_RANGES = "true"


#: Marks a DAGSTER_HOME whose storages :func:`prepare_dagster_home` has created.
INITIALIZED = ".prometheus-initialized"


def _replace_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed over it)."""
    with open(path + ".tmp", "w") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


def relocate_event_log(cfg: str, runs_dir: str) -> str | None:
    """Point the event log of a ``dagster.yaml`` that ``prometheus`` wrote at ``runs_dir``; the old path, or None.

    Why: Dagster's config has no path relative to the instance, so the file records the event
    log's directory as an absolute path, while the run storage sits beside ``dagster.yaml``
    wherever it is. A storage root that was moved, copied or restored from a backup would then
    keep its runs in the new place and write their events into the old one (recreated if gone):
    runs in the UI without their events, and two copies of a root writing one event log. Only a
    file that starts with ``prometheus``' own header and whose ``base_dir`` is a
    ``.../history/runs`` directory is changed, by that one line (comments and any other edits are
    kept); remove the header to keep an event log elsewhere on purpose.
    """
    with open(cfg) as handle:
        text = handle.read()
    if not text.startswith(DAGSTER_YAML.splitlines()[0]):
        return None
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        key, sep, value = line.partition("base_dir:")
        old = value.strip()
        if sep and key.strip() == "" and old.rstrip("/").endswith(os.path.join("history", "runs")) and old != runs_dir:
            lines[i] = f"{key}base_dir: {runs_dir}\n"
            _replace_text(cfg, "".join(lines))
            print(f"prometheus: {cfg} pointed the event log at {old}; now at {runs_dir} (this instance's own)", file=sys.stderr)
            return old
    return None


def prepare_dagster_home(settings: Settings) -> str:
    """Make sure ``DAGSTER_HOME`` exists (default inside the storage root), initialized, and export it.

    A new home gets a ``dagster.yaml`` with the fast SQLite event log; an existing one is left
    as the user wrote it, except that the event log directory ``prometheus`` recorded in it follows
    the home when the storage root was moved or copied (:func:`relocate_event_log`).
    ``DAGSTER_EVENT_BATCH_SIZE`` defaults to 1000 (Dagster then hands the
    storage one batch per step instead of one event per (asset, partition)) and
    ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`` to true (see :data:`PLANNED_EVENTS_AS_RANGES`).

    The first use also creates the instance's storages, under a lock: two processes opening a
    brand-new SQLite instance at once both create its databases and stamp their schema version,
    and one fails (``UNIQUE constraint failed: alembic_version.version_num``), e.g. two
    ``prometheus build --start/--end`` started together on a fresh machine.
    """
    import fcntl

    home = settings.dagster_home()
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, ".prometheus-init.lock"), "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        cfg = os.path.join(home, "dagster.yaml")
        runs_dir = os.path.join(home, "history", "runs")
        if not os.path.exists(cfg):
            _replace_text(cfg, DAGSTER_YAML.format(runs_dir=runs_dir))
        else:
            relocate_event_log(cfg, runs_dir)
        if not os.path.exists(os.path.join(home, INITIALIZED)):
            import dagster as dg

            with dg.DagsterInstance.from_config(home):
                pass  # creating the instance creates (and stamps) its storages
            open(os.path.join(home, INITIALIZED), "w").close()
    os.environ["DAGSTER_HOME"] = home
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", PLANNED_EVENTS_AS_RANGES)
    return home


def history_range(defs, settings: Settings, start: str | None = None, end: str | None = None) -> tuple[str, str]:
    """First and last partition key of the history to build (the source's span, optionally narrowed)."""
    from prometheus_assets.partitions import PARTITION_FORMAT
    from prometheus_assets.resources import MarketDataResource

    market: MarketDataResource = defs.resources["market_data"]
    first, last = market.get().span()
    lo = max(first, pd.Timestamp(start)) if start else first
    hi = min(last, pd.Timestamp(end)) if end else last
    keys = defs.resolve_assets_def("prices_daily").partitions_def.get_partition_keys()
    chosen = [k for k in keys if lo.strftime(PARTITION_FORMAT) <= k <= hi.strftime(PARTITION_FORMAT)]
    if not chosen:
        raise SystemExit(f"no trading day between {lo.date()} and {hi.date()}: nothing to build")
    return chosen[0], chosen[-1]


def current_catalog(home: str, command: str):
    """The DuckDB catalog of ``home``, its views first pointed at this root's own files.

    Views hold absolute file paths, so in a root moved or copied since they were made they read the
    old place: ``prometheus summary`` then silently described the original root, and ``prometheus
    sql`` (confined to the root) refused every query. The stale views are replaced (see
    :meth:`DuckDBCatalog.refresh`: an up-to-date catalog is only read, never written). When that
    fails (e.g. a read-only copy) ``command`` says so and the catalog is used as it is.
    """
    import duckdb

    from prometheus_assets.errors import StorageError
    from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore

    catalog = DuckDBCatalog(ParquetStore(home))
    try:
        catalog.refresh(catalog.store.tables())
    except (OSError, StorageError, duckdb.Error) as exc:
        print(f"prometheus {command}: could not update the views ({exc}); using the catalog as it is", file=sys.stderr)
    return catalog


def summary_lines(settings: Settings) -> list[str]:
    """A short description of what is stored under the storage root."""
    from prometheus_assets.resources.storage import sql_identifier

    catalog = current_catalog(settings.home, "summary")
    store = catalog.store
    tables = store.tables()
    lines = [f"{'table':<22}{'rows':>12}  {'dates':>8}  first → last"]
    con = catalog.connect(read_only=catalog.path != ":memory:" and os.path.exists(catalog.path))
    try:
        if catalog.path == ":memory:":
            for name in tables:
                con.execute(catalog.view_sql(name))
        for name in tables:
            view = sql_identifier(name)
            cols = [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]
            key = next((c for c in ("date", "as_of_date") if c in cols), None)
            if key:
                rows, days, lo, hi = con.execute(f"SELECT count(*), count(DISTINCT {key}), min({key}), max({key}) FROM {view}").fetchone()
                lines.append(f"{name:<22}{rows:>12,}  {days:>8,}  {lo} → {hi}" if rows else f"{name:<22}{0:>12}  {0:>8}  (no rows)")
            else:
                rows = con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
                lines.append(f"{name:<22}{rows:>12,}  {'-':>8}")
    finally:
        con.close()
    lines += [
        "",
        f"Parquet files : {store.url(store.root + '/parquet')}/<table>/",
        f"DuckDB catalog: {catalog.path}",
        "Try:",
        f"  .venv/bin/duckdb -readonly {catalog.path} \"select count(distinct symbol), min(date), max(date) from prices_daily\"",
        f"  .venv/bin/duckdb -readonly {catalog.path} \"select symbol, avg(return)*252 as ann_mean, stddev(return)*sqrt(252) as ann_vol from returns_daily group by symbol order by ann_vol desc\"",
    ]
    return lines


def execute_without_output_capture(job, instance, run_config: dict, tags: dict[str, str], raise_on_error: bool):
    """``job.execute_in_process(run_config=…, instance=…, tags=…, raise_on_error=…)`` without keeping every output in memory.

    ``JobDefinition.execute_in_process`` stores each step's output value (here each asset's whole
    frame) until the run ends, for ``result.output_for_node``. A whole-history build never reads
    them back (the IO manager has written them to Parquet), and they were most of its peak memory:
    a 600-name build kept ~3 GiB after its assessment steps, a 3,000-name one ~7 of its 9.8 GiB
    (``bench/scale.py``). Dagster has no public switch for this, so this is its own body with
    capturing off, through the internal entry point it uses (dagster is pinned to 1.13.x in
    pyproject.toml; ``tests/assets/test_run_memory.py`` checks the behaviour).
    """
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.execute_in_process import core_execute_in_process, merge_run_tags

    ephemeral = job.as_ephemeral_job(resource_defs={}, input_values={})
    return core_execute_in_process(
        run_config=run_config, job=InMemoryJob(job_def=ephemeral), instance=instance, output_capturing_enabled=False,
        raise_on_error=raise_on_error,
        run_tags=merge_run_tags(job_def=job, partition_key=None, tags=tags, asset_selection=[], instance=instance, run_config=run_config),
        asset_selection=frozenset(),
    )


def build(settings: Settings, start: str | None = None, end: str | None = None, echo: bool = True):
    """Materialize every asset for the history range in one run on the persistent instance.

    Returns ``(result, split, (first_key, last_key))``; ``split`` is ``None`` when the run failed.
    """
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from prometheus_assets.definitions import build_definitions
    from prometheus_assets.run_report import split_run

    dagster_home = prepare_dagster_home(settings)
    defs = build_definitions(settings)
    first, last = history_range(defs, settings, start, end)
    if echo:
        print(f"Prometheus: building every asset on source '{settings.source}' for {first} … {last}")
        print(f"  storage root  {settings.home}\n  DAGSTER_HOME  {dagster_home}", flush=True)
    job = defs.resolve_implicit_global_asset_job_def()
    # Disposed at the end, as a run worker launched by the daemon disposes its instance: that closes
    # the event log's SQLite connections, and SQLite then checkpoints the run's write-ahead log into
    # the database. Left open, a full-history build left ~280 MB of log behind, and the next run's
    # first connection paid ~1 s to checkpoint it.
    with dg.DagsterInstance.get() as instance:
        t0 = time.perf_counter()
        result = execute_without_output_capture(
            job, instance, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last, "prometheus/command": "build"},
            raise_on_error=False,
        )
        wall = time.perf_counter() - t0
        split = split_run(instance, result.run_id, wall) if result.success else None
    return result, split, (first, last), defs


def cmd_build(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    result, split, (first, last), defs = build(settings, args.start, args.end)
    if not result.success:
        print(f"\nRun {result.run_id} FAILED; see the error above, or the run in the UI (make ui).", file=sys.stderr)
        return 1
    assets = len(list(defs.resolve_asset_graph().get_all_asset_keys()))
    print(f"\nBuilt {assets} assets over {first} … {last} in run {result.run_id}.")
    print("\n".join(split.lines()))
    print()
    print("\n".join(summary_lines(settings)))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    print("\n".join(summary_lines(Settings.from_env())))
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore

    made = DuckDBCatalog(ParquetStore(Settings.from_env().home)).refresh()
    print(f"views: {', '.join(made) if made else '(no tables stored yet)'}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    catalog = current_catalog(Settings.from_env().home, "sql")
    # read-only, and (local roots) no file outside the storage root: see DuckDBCatalog.connect
    con = catalog.connect(read_only=catalog.path != ":memory:", confined=True)
    try:
        print(con.sql(args.query))
    except duckdb.Error as exc:  # the user's SQL: say what DuckDB said, no traceback
        print(f"prometheus sql: {exc}", file=sys.stderr)
        return 2
    finally:
        con.close()
    return 0


def cmd_lookahead(args: argparse.Namespace) -> int:
    import dataclasses
    import tempfile

    import dagster as dg

    from prometheus_assets import lookahead

    settings = Settings.from_env()
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="prometheus-lookahead-"))
    os.makedirs(workdir, exist_ok=True)
    print(f"Look-ahead proof on source '{settings.source}', history truncated at {args.cut}.")
    print(f"  full build      {args.full or os.path.join(workdir, 'full')}{' (reused)' if args.full else ''}")
    print(f"  truncated build {os.path.join(workdir, 'truncated')}", flush=True)
    # The runs' records are not needed afterwards, and a full bundled build leaves several GB of
    # event log: unless DAGSTER_HOME is set, use a throwaway instance in the work directory.
    throwaway = not os.environ.get("DAGSTER_HOME", "").strip()
    dagster_home = prepare_dagster_home(dataclasses.replace(settings, home=workdir))  # the fast SQLite instance
    try:
        with dg.DagsterInstance.get() as instance:
            comparisons = lookahead.run(settings, args.cut, workdir, full_home=os.path.abspath(args.full) if args.full else None, instance=instance)
    finally:
        if throwaway:
            shutil.rmtree(dagster_home, ignore_errors=True)
    print("\n".join(lookahead.report(comparisons)))
    return 0 if all(c.ok for c in comparisons) else 1


#: The UI listens on the loopback interface unless ``prometheus ui --host`` says otherwise: the
#: Dagster webserver has no authentication, and anyone who reaches it can launch runs.
DEFAULT_UI_HOST = "127.0.0.1"


def ui_argv(host: str, port: int) -> list[str]:
    """The ``dagster dev`` command line ``prometheus ui`` runs."""
    return ["dagster", "dev", "-m", "prometheus_assets.definitions", "-h", host, "-p", str(port)]


def cmd_ui(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    prepare_dagster_home(settings)
    argv = ui_argv(args.host, args.port)
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})", flush=True)
    exe = os.path.join(os.path.dirname(sys.executable), "dagster")
    os.execv(exe, argv)
    return 0  # unreachable


def build_parser() -> argparse.ArgumentParser:
    """The ``prometheus`` argument parser."""
    parser = argparse.ArgumentParser(prog="prometheus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="materialize the whole graph over the history (single run)")
    b.add_argument("--start", help="first day to build (default: the source's first day)")
    b.add_argument("--end", help="last day to build (default: the source's last day)")
    b.set_defaults(fn=cmd_build)
    sub.add_parser("summary", help="what is stored").set_defaults(fn=cmd_summary)
    sub.add_parser("catalog", help="recreate the DuckDB views").set_defaults(fn=cmd_catalog)
    q = sub.add_parser("sql", help="query the DuckDB catalog")
    q.add_argument("query")
    q.set_defaults(fn=cmd_sql)
    la = sub.add_parser("lookahead", help="prove no look-ahead: truncated-history build vs full build")
    la.add_argument("--cut", required=True, help="last day of the truncated history (YYYY-MM-DD)")
    la.add_argument("--full", help="an existing full build of the same source (e.g. ./data after make run) instead of building one")
    la.add_argument("--workdir", help="where the builds go (default: a new temporary directory)")
    la.set_defaults(fn=cmd_lookahead)
    u = sub.add_parser("ui", help="Dagster webserver + daemon")
    u.add_argument("--host", default=DEFAULT_UI_HOST, help=f"interface to listen on (default {DEFAULT_UI_HOST}: this machine only)")
    u.add_argument("--port", type=int, default=3000)
    u.set_defaults(fn=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Dagster flags single-run backfill policies and partition-mapping options as beta; they are
    # the documented way to backfill here, so the warnings are noise for users.
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    args = build_parser().parse_args(argv)
    from prometheus_assets.errors import PrometheusDataError, StorageError

    try:
        return int(args.fn(args))
    except (PrometheusDataError, StorageError) as exc:  # a user's input or setting: say it plainly
        print(f"prometheus: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
