"""Benchmark: the whole graph on the synthetic source at scale (default 3,000 assets × 20 years).

Runs ``prometheus build`` (canonical → state spaces → assessment → books → backtests →
allocator → edge, one single-run backfill) as a child process under ``/usr/bin/time -v`` into a
fresh temporary storage root and instance, then prints the wall time, the split (asset bodies /
Parquet+DuckDB IO / Dagster bookkeeping, read from the run's event log) and the peak resident
memory, against the hardening issue's targets (bodies ≤ 5 min, peak ≤ 8 GiB). Figures are
printed, never asserted. The full size takes a long time on the 2-core machine; ``--assets`` and
``--years`` give a smaller run with the same code path.

    .venv/bin/python bench/scale.py [--assets 3000] [--years 20]
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=3000)
    parser.add_argument("--years", type=int, default=20)
    args = parser.parse_args()
    time_bin = shutil.which("time") or "/usr/bin/time"
    if not os.path.exists(time_bin):
        print("bench/scale.py needs GNU time (/usr/bin/time, Debian package 'time') for the peak memory", file=sys.stderr)
        return 1
    start = f"{int(LAST_DAY[:4]) - args.years + 1}-01-02"
    prometheus = os.path.join(os.path.dirname(sys.executable), "prometheus")
    with tempfile.TemporaryDirectory(prefix="prometheus-scale-") as tmp:
        env = {**os.environ, "PROMETHEUS_HOME": os.path.join(tmp, "data"), "PROMETHEUS_SOURCE": "synthetic",
               "PROMETHEUS_SYNTHETIC_ASSETS": str(args.assets), "PROMETHEUS_START": start, "PROMETHEUS_END": LAST_DAY}
        env.pop("DAGSTER_HOME", None)
        t0 = time.perf_counter()
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            child = subprocess.Popen([time_bin, "-v", prometheus, "build"], env=env, stdout=out, stderr=err, text=True)
            samples = _sample_tree_rss(child)
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(child.args, child.returncode, out.read(), err.read())
        wall = time.perf_counter() - t0
        steps = _per_step(os.path.join(tmp, "data", "dagster_home"), proc.stdout, samples) if proc.returncode == 0 else []
    print(f"== synthetic {args.assets} assets × {args.years} years ({start} … {LAST_DAY}), whole graph, one run")
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
        print(f"build FAILED after {wall:.0f} s (exit {proc.returncode})")
        return 1
    body = re.search(r"asset bodies\s+([\d.]+) s", proc.stdout)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    print("\n".join(line for line in proc.stdout.splitlines() if line.strip().startswith(("wall time", "asset bodies", "Parquet/DuckDB", "Dagster", "(asset"))))
    print(f"command wall time (incl. start-up): {wall:.0f} s")
    if body:
        b = float(body.group(1))
        print(f"asset bodies {b:.0f} s (target ≤ {BODY_TARGET_S:.0f} s): ratio {b / BODY_TARGET_S:.2f}")
    if peak:
        gib = int(peak.group(1)) / 2**20
        print(f"peak resident memory {gib:.2f} GiB (target ≤ {MEMORY_TARGET_GIB:.0f} GiB): ratio {gib / MEMORY_TARGET_GIB:.2f}")
    if steps:
        print("per step: body seconds, and the peak resident memory of the build's processes while it ran")
        print("(compare sizes to see what grows with assets or years):")
        print("\n".join(steps))
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


def _per_step(dagster_home: str, stdout: str, samples: list[tuple[float, int]]) -> list[str]:
    """``step  body s  peak GiB`` lines of the build's run, from its event log (largest body first)."""
    match = re.search(r"in run ([0-9a-f-]{36})", stdout)
    if not match or not os.path.isdir(dagster_home):
        return []
    os.environ["DAGSTER_HOME"] = dagster_home
    import dagster as dg

    from prometheus_assets.run_report import split_run

    with dg.DagsterInstance.get() as instance:
        split = split_run(instance, match.group(1), None)
    if split is None:
        return []
    lines = []
    for step, s in sorted(split.per_step.items(), key=lambda kv: -kv[1]["body"]):
        during = [rss for t, rss in samples if s["start"] <= t <= s["end"]]
        peak = f"{max(during) / 2**30:8.2f} GiB" if during else "        —"
        lines.append(f"  {step:<40}{s['body']:>9.2f} s {peak}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
