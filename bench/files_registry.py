"""Benchmark: the instrument registry of a files source with the whole bundled history as daily CSV files.

Every end-of-day run materializes ``instruments``, whose first/last trading dates need every bar
of the history. This writes the bundled history (1990 → 2022, 20 symbols) as one CSV file per
session into a temporary directory, leaves the last session out, and times:

* the registry from every bar file (what every EOD run did before the spans were carried, and
  what a run still does when the carried state cannot be used): the reference;
* after the last session's file arrives, the registry from the carried spans (reads that one file).

Both registries are checked equal, and the ratio is printed. Figures are printed, never asserted.

    .venv/bin/python bench/files_registry.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path


def main() -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="timed carried runs (median printed)")
    args = parser.parse_args()

    from skfolio.datasets import load_sp500_dataset

    from prometheus_assets.assets.upstream_files import SETTLED_SECONDS
    from prometheus_assets.resources.files_source import write_day_files
    from prometheus_assets.resources.sources import FilesSource

    wide = load_sp500_dataset()
    with tempfile.TemporaryDirectory(prefix="prometheus-files-registry-") as tmp:
        root = Path(tmp) / "bars"
        write_day_files(root, wide.iloc[:-1])
        time.sleep(SETTLED_SECONDS + 0.1)  # (delivered before the run reads them)
        t0 = time.perf_counter()
        full, carried, read = FilesSource(str(root)).registry(None)
        whole = time.perf_counter() - t0
        print(f"== registry from every bar file: {whole:.2f} s ({read} files, {len(full)} symbols)", flush=True)
        write_day_files(root, wide.iloc[-1:])
        time.sleep(SETTLED_SECONDS + 0.1)
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            registry, _, read_now = FilesSource(str(root)).registry(carried)
            times.append(time.perf_counter() - t0)
        reference, _, _ = FilesSource(str(root)).registry(None)
        same = registry.equals(reference)
        median = statistics.median(times)
        print(f"== registry from the carried spans after one new day file: median {median:.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)} s; {read_now} file read); equal to a full read: {same}")
        print(f"files-source registry, {len(wide):,} daily files: {median:.2f} s carried against {whole:.2f} s "
              f"reading every file (ratio {whole / median:.0f}x)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
