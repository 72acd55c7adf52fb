"""Benchmark: a full DuckDB read of every view (`SELECT *` to Arrow, best of 5) against 50 ms.

The read is DuckDB's relation API (``con.sql(q).to_arrow_table()``), which converts to Arrow on
both threads; ``con.execute(q).to_arrow_table()`` first collects the whole result and then
converts it on one thread, ~1.7× slower for the large tables (measured). The connection is the
catalog's own (``DuckDBCatalog.connect``: Parquet footers cached), so the first of the five
reads parses the footers and the best is a warm read; the first is printed as ``cold``.

Times the views of an existing storage root (default: ``PROMETHEUS_HOME``, else ./data, i.e. what
`make run` built) without building anything; with nothing stored it says so and exits 0. Beside
the wall time it prints the process CPU time of the best run (DuckDB's two threads together): on
a machine shared with other jobs the wall time swings, the CPU time much less. The catalog is made fresh in a temporary file with the project's own view
definitions (``DuckDBCatalog.view_sql``), so the root is only read, never written.

    .venv/bin/python bench/duckdb_reads.py [--home DIR] [--tables t1,t2] [--repeat 5]

`bench/backfill.py` prints the same figures for the root it has just built.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

DUCKDB_READ_TARGET_MS = 50.0


def time_reads(con, names, repeat: int = 5) -> list[tuple[str, int, float, float, float]]:
    """``(name, rows, best wall ms, best CPU ms, first (cold) wall ms)`` of ``SELECT * FROM name`` as Arrow."""
    from prometheus_assets.resources.storage import sql_identifier

    out = []
    for name in names:
        best = cpu = float("inf")
        cold = None
        rows = 0
        for _ in range(repeat):
            c0, t0 = time.process_time(), time.perf_counter()
            table = con.sql(f"SELECT * FROM {sql_identifier(name)}").to_arrow_table()
            wall = time.perf_counter() - t0
            cold = wall if cold is None else cold
            best = min(best, wall)
            cpu = min(cpu, time.process_time() - c0)
            rows = table.num_rows
        out.append((name, rows, 1000 * best, 1000 * cpu, 1000 * cold))
    return out


def print_reads(results) -> None:
    over = [name for name, _, ms, _, _ in results if ms > DUCKDB_READ_TARGET_MS]
    for name, rows, ms, cpu, cold in results:
        flag = "" if ms <= DUCKDB_READ_TARGET_MS else "  **over target**"
        print(f"  {name:<26} {rows:>10,} rows  {ms:7.1f} ms  (cpu {cpu:6.1f} ms, cold {cold:6.1f} ms; target "
              f"{DUCKDB_READ_TARGET_MS:.0f} ms, ratio {ms / DUCKDB_READ_TARGET_MS:.2f}){flag}")
    print(f"  {len(results) - len(over)} of {len(results)} tables within {DUCKDB_READ_TARGET_MS:.0f} ms"
          + (f"; over: {', '.join(over)}" if over else ""))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", help="storage root (default: PROMETHEUS_HOME, else ./data)")
    parser.add_argument("--tables", help="comma-separated table names (default: every stored table)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore
    from prometheus_assets.settings import Settings

    home = args.home or Settings.from_env().home
    store = ParquetStore(home)
    names = args.tables.split(",") if args.tables else store.tables()
    if not names:
        print(f"no tables under {home}: nothing to time (build first with make run, or pass --home)")
        return 0
    with tempfile.TemporaryDirectory(prefix="prometheus-duckread-") as tmp:
        catalog = DuckDBCatalog(store, path=os.path.join(tmp, "bench.duckdb"))
        catalog.refresh(names)
        con = catalog.connect(read_only=True)
        try:
            print(f"== DuckDB full read of each view under {home} (best of {args.repeat})")
            print_reads(time_reads(con, names, args.repeat))
        finally:
            con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
