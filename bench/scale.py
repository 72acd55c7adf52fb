"""Benchmark: the whole graph on the synthetic source at scale (default 3,000 assets × 20 years).

Runs ``prometheus build`` (canonical → state spaces → assessment → books → backtests →
allocator → edge) as child processes under ``/usr/bin/time -v`` into a fresh temporary storage
root and instance, then prints the wall time, the split (asset bodies / Parquet+DuckDB IO /
Dagster bookkeeping, read from each run's event log) and the peak resident memory, against the
hardening issue's targets (bodies ≤ 5 min, peak ≤ 8 GiB). Figures are printed, never asserted.

How the history is built: ``--chunk-years K`` (default 1) splits it into consecutive ranges of K
years, one ``prometheus build --start --end`` run each, in date order; every run resumes from
the state the previous one saved at its last day. That is a backfill split into ranges, which
gives the same bytes as one range (``tests/assets/test_state_spaces.py``, the split-backfill
test), and it is how a user builds a long history on a machine of this size: one run over 20
years at 3,000 names holds every step's whole-range frame in memory and was killed by the
kernel at 23.9 GB. ``--chunk-years 0`` builds everything in one run (the old way, for
comparison). Bodies and walls are summed over the runs; the peak is the largest of any run.

The full size takes over an hour on the 2-core machine; ``--assets`` and ``--years`` give a
smaller run with the same code path.

    .venv/bin/python bench/scale.py [--assets 3000] [--years 20] [--chunk-years 1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

BODY_TARGET_S = 300.0
MEMORY_TARGET_GIB = 8.0
LAST_DAY = "2022-12-30"


def chunks(first_year: int, last_day: str, chunk_years: int) -> list[tuple[str, str]]:
    """The (start, end) date ranges of the runs: consecutive ``chunk_years``-year spans, or one span for 0."""
    last_year = int(last_day[:4])
    if chunk_years <= 0:
        return [(f"{first_year}-01-01", last_day)]
    return [(f"{y}-01-01", min(f"{y + chunk_years - 1}-12-31", last_day)) for y in range(first_year, last_year + 1, chunk_years)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=3000)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--chunk-years", type=int, default=1, help="years per run (0: the whole history in one run)")
    args = parser.parse_args()
    time_bin = shutil.which("time") or "/usr/bin/time"
    if not os.path.exists(time_bin):
        print("bench/scale.py needs GNU time (/usr/bin/time, Debian package 'time') for the peak memory", file=sys.stderr)
        return 1
    first_year = int(LAST_DAY[:4]) - args.years + 1
    start = f"{first_year}-01-02"
    ranges = chunks(first_year, LAST_DAY, args.chunk_years)
    prometheus = os.path.join(os.path.dirname(sys.executable), "prometheus")
    how = "one run" if len(ranges) == 1 else f"{len(ranges)} runs of {args.chunk_years} year(s), in date order"
    print(f"== synthetic {args.assets} assets × {args.years} years ({start} … {LAST_DAY}), whole graph, {how}", flush=True)
    wall = body = io = bookkeeping = 0.0
    peak_kib = 0
    tree_peak = 0  # bytes: the largest sampled sum over the build's process tree (the model-fitting workers included)
    steps: dict[str, list[float]] = {}  # step -> [summed body seconds, largest tree peak bytes]
    with tempfile.TemporaryDirectory(prefix="prometheus-scale-") as tmp:
        env = {**os.environ, "PROMETHEUS_HOME": os.path.join(tmp, "data"), "PROMETHEUS_SOURCE": "synthetic",
               "PROMETHEUS_SYNTHETIC_ASSETS": str(args.assets), "PROMETHEUS_START": start, "PROMETHEUS_END": LAST_DAY}
        env.pop("DAGSTER_HOME", None)
        for lo, hi in ranges:
            t0 = time.perf_counter()
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                child = subprocess.Popen([time_bin, "-v", prometheus, "build", "--start", lo, "--end", hi],
                                         env=env, stdout=out, stderr=err, text=True)
                samples = _sample_tree_rss(child)
                tree_peak = max([tree_peak, *(rss for _, rss in samples)])
                out.seek(0)
                err.seek(0)
                proc = subprocess.CompletedProcess(child.args, child.returncode, out.read(), err.read())
            run_wall = time.perf_counter() - t0
            wall += run_wall
            peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
            peak_kib = max(peak_kib, int(peak.group(1)) if peak else 0)
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
                print(f"build of {lo} … {hi} FAILED after {run_wall:.0f} s (exit {proc.returncode}; "
                      f"peak so far {peak_kib / 2**20:.2f} GiB, {wall:.0f} s in all)")
                return 1
            split = {k: float(m.group(1)) for k, m in ((k, re.search(rf"{k}\s+([\d.]+) s", proc.stdout))
                                                       for k in ("asset bodies", "Parquet/DuckDB IO", "Dagster bookkeeping")) if m}
            body += split.get("asset bodies", 0.0)
            io += split.get("Parquet/DuckDB IO", 0.0)
            bookkeeping += split.get("Dagster bookkeeping", 0.0)
            for step, (step_body, step_peak) in _per_step(os.path.join(tmp, "data", "dagster_home"), proc.stdout, samples).items():
                total = steps.setdefault(step, [0.0, 0.0])
                total[0] += step_body
                total[1] = max(total[1], step_peak)
            print(f"   {lo} … {hi}: {run_wall:.0f} s wall, bodies {split.get('asset bodies', 0.0):.0f} s, "
                  f"peak {int(peak.group(1)) / 2**20 if peak else float('nan'):.2f} GiB", flush=True)
    print(f"command wall time (incl. start-up), all runs: {wall:.0f} s")
    print(f"  asset bodies {body:.0f} s, Parquet/DuckDB IO {io:.0f} s, Dagster bookkeeping {bookkeeping:.0f} s")
    print(f"asset bodies {body:.0f} s (target ≤ {BODY_TARGET_S:.0f} s): ratio {body / BODY_TARGET_S:.2f}")
    # GNU time's figure is the largest single process; the worker processes run beside the main one, so the
    # tree's sampled sum (every 0.25 s: it can miss a short spike) is the one compared with the target when larger
    gib = max(peak_kib / 2**20, tree_peak / 2**30)
    print(f"peak resident memory {gib:.2f} GiB (target ≤ {MEMORY_TARGET_GIB:.0f} GiB): ratio {gib / MEMORY_TARGET_GIB:.2f}; "
          f"largest single process {peak_kib / 2**20:.2f} GiB (/usr/bin/time -v"
          f"{'' if peak_kib else ': not reported'}), process tree {tree_peak / 2**30:.2f} GiB (sampled)")
    if steps:
        print("per step: body seconds (summed over the runs), and the peak resident memory of the build's processes")
        print("while it ran (largest over the runs; compare sizes to see what grows with assets or years):")
        for step, (step_body, step_peak) in sorted(steps.items(), key=lambda kv: -kv[1][0]):
            shown = f"{step_peak / 2**30:8.2f} GiB" if step_peak else "        —"
            print(f"  {step:<40}{step_body:>9.2f} s {shown}")
    return 0


def _sample_tree_rss(child: subprocess.Popen, every: float = 0.25) -> list[tuple[float, int]]:
    """Poll the summed resident memory (bytes) of ``child`` and its descendants until it exits.

    GNU time reports only the peak of the largest single process; sampling the tree gives a peak
    per step (the assessment fits run in worker processes). Hand-written: psutil is not a
    dependency and /proc is all it needs.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    samples: list[tuple[float, int]] = []
    while child.poll() is None:
        samples.append((time.time(), sum(_rss_pages(pid) for pid in _tree(child.pid)) * page))
        time.sleep(every)
    return samples


def _tree(root: int) -> list[int]:
    """``root`` and every live descendant, from /proc/<pid>/task/*/children."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return pids


def _rss_pages(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _per_step(dagster_home: str, stdout: str, samples: list[tuple[float, int]]) -> dict[str, tuple[float, float]]:
    """step -> (body seconds, peak resident bytes of the build's process tree while it ran; 0 unsampled), from the run's event log."""
    match = re.search(r"in run ([0-9a-f-]{36})", stdout)
    if not match or not os.path.isdir(dagster_home):
        return {}
    os.environ["DAGSTER_HOME"] = dagster_home
    import dagster as dg

    from prometheus_assets.run_report import split_run

    with dg.DagsterInstance.get() as instance:
        split = split_run(instance, match.group(1), None)
    if split is None:
        return {}
    out = {}
    for step, s in split.per_step.items():
        during = [rss for t, rss in samples if s["start"] <= t <= s["end"]]
        out[step] = (s["body"], float(max(during)) if during else 0.0)
    return out


if __name__ == "__main__":
    sys.exit(main())
