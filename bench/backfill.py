"""Benchmark: the full-history single-run backfill of the whole graph (what `make run` does).

Builds into a fresh temporary storage root with a fresh persistent (SQLite) Dagster instance,
then prints the wall time against the 10-minute target, the peak memory, the (asset, partition)
materialization events, the split between
asset bodies, Parquet/DuckDB IO and Dagster bookkeeping, and the per-event bookkeeping cost
against DESIGN.md's reference (2 trivial assets × 4,000 partitions in 180 s on this machine,
i.e. 22.5 ms per (asset, partition)). It also times a full DuckDB read of every view against
the 50 ms target.

    .venv/bin/python bench/backfill.py [--source bundled|synthetic|DIR] [--start D] [--end D]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings

from duckdb_reads import print_reads, time_reads  # bench/ is sys.path[0] when run as a script

REFERENCE_MS_PER_EVENT = 180_000 / (2 * 4_000)
#: The hardening issue's target for the full-history build.
BACKFILL_TARGET_S = 600.0


def main() -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", default=os.environ.get("PROMETHEUS_SOURCE", "bundled"))
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args()
    from prometheus_assets.cli import build
    from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore
    from prometheus_assets.settings import Settings

    with tempfile.TemporaryDirectory(prefix="prometheus-bench-") as tmp:
        env = {"PROMETHEUS_HOME": os.path.join(tmp, "data"), "PROMETHEUS_SOURCE": args.source}
        os.environ.pop("DAGSTER_HOME", None)
        settings = Settings.from_env(env)
        t0 = time.perf_counter()
        result, split, (first, last), _ = build(settings, args.start, args.end, echo=False)
        whole = time.perf_counter() - t0
        if not result.success:
            print("backfill FAILED", file=sys.stderr)
            return 1
        print(f"== full-history backfill: source={args.source} {first} … {last}")
        print("\n".join(split.lines()))
        print(f"build wall {whole:.1f} s (the run, plus loading the definitions and closing the instance; not the "
              f"install of .venv, which `make run` adds): target ≤ {BACKFILL_TARGET_S:.0f} s, ratio {whole / BACKFILL_TARGET_S:.2f}")
        # ru_maxrss: kB on Linux; the children's figure is the largest single child (the model-fitting workers)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        print(f"peak resident memory: {own:.2f} GiB in this process, {child:.2f} GiB in the largest worker process")
        per_event = 1000 * split.bookkeeping / max(split.materializations, 1)
        print(f"bookkeeping per (asset, partition) event: {per_event:.1f} ms "
              f"(reference {REFERENCE_MS_PER_EVENT:.1f} ms, ratio {per_event / REFERENCE_MS_PER_EVENT:.2f})")
        store = ParquetStore(settings.home)
        catalog = DuckDBCatalog(store)
        con = catalog.connect(read_only=True)
        print("== DuckDB full read of each view (best of 5)")
        print_reads(time_reads(con, store.tables()))
        con.close()
        disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(settings.home, "parquet")) for f in fs)
        print(f"Parquet on disk: {disk / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
