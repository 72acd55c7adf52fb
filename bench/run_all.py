"""Run every benchmark in bench/ (what `make bench` does). Figures are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ["backfill.py", "duckdb_reads.py", "eod.py", "simulate.py", "allocator_state.py", "scale.py"]  # scale.py last: hours at full size


def main() -> int:
    here = Path(__file__).parent
    status = 0
    for name in BENCHMARKS:
        print(f"\n######## bench/{name}", flush=True)
        status |= subprocess.call([sys.executable, str(here / name)])
    return status


if __name__ == "__main__":
    sys.exit(main())
