"""Run every benchmark in bench/ (what `make bench` does). Figures are printed, never asserted.

``bench/scale.py`` runs last at the hardening issue's size (3,000 assets × 20 years), built year
by year (20 runs, each resuming from the previous one's state): hours on the 2-core machine
(README, *Scaling*). ``BENCH_SCALE_ARGS`` passes other arguments to it, e.g.
``BENCH_SCALE_ARGS="--assets 300 --years 3" make bench``, or ``--chunk-years 0`` for the whole
history in one run (killed for memory at this size on a 24 GB machine).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

BENCHMARKS = ["backfill.py", "duckdb_reads.py", "eod.py", "files_registry.py", "simulate.py", "allocator_state.py", "scale.py"]  # scale.py last: the longest (and the largest in memory)


def main() -> int:
    here = Path(__file__).parent
    status = 0
    for name in BENCHMARKS:
        print(f"\n######## bench/{name}", flush=True)
        extra = shlex.split(os.environ.get("BENCH_SCALE_ARGS", "")) if name == "scale.py" else []
        status |= subprocess.call([sys.executable, str(here / name), *extra])
    return status


if __name__ == "__main__":
    sys.exit(main())
