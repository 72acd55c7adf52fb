"""Where a run's wall time went: asset bodies, Parquet/DuckDB IO, and Dagster's own bookkeeping.

Read from the run's event log on the Dagster instance (no instrumentation in the assets). Per step:

* IO in   = STEP_START → last LOADED_INPUT (the IO manager loading upstream Parquet);
* body    = last STEP_INPUT (or STEP_START) → first STEP_OUTPUT (the asset's own code, checks included);
* IO out  = first STEP_OUTPUT → first ASSET_MATERIALIZATION (the IO manager writing Parquet and
  refreshing the DuckDB view);
* bookkeeping = everything else in the run's wall time: planning and storing one event per
  (asset, partition), run start-up and teardown.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import dagster as dg


@dataclass
class RunSplit:
    """The time split of one run, in seconds, and its event counts."""

    wall: float
    body: float
    io: float
    materializations: int
    events: int
    #: step key -> ``io_in``, ``body``, ``io_out`` (seconds) and ``start``, ``end`` (epoch seconds)
    per_step: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def bookkeeping(self) -> float:
        return max(self.wall - self.body - self.io, 0.0)

    def lines(self) -> list[str]:
        pct = (lambda x: 100.0 * x / self.wall) if self.wall > 0 else (lambda x: 0.0)
        return [
            f"wall time                 {self.wall:8.1f} s",
            f"  asset bodies            {self.body:8.1f} s  ({pct(self.body):4.1f}%)",
            f"  Parquet/DuckDB IO       {self.io:8.1f} s  ({pct(self.io):4.1f}%)",
            f"  Dagster bookkeeping     {self.bookkeeping:8.1f} s  ({pct(self.bookkeeping):4.1f}%)",
            f"(asset, partition) materialization events: {self.materializations}",
            f"events recorded in the run: {self.events}",
        ]


def split_run(instance: dg.DagsterInstance, run_id: str, wall: float | None = None) -> RunSplit:
    """Compute the :class:`RunSplit` of ``run_id`` from ``instance``'s event log."""
    records = instance.all_logs(run_id)
    steps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    materializations = 0
    first = last = None
    for rec in records:
        ev = rec.dagster_event
        first = rec.timestamp if first is None else first
        last = rec.timestamp
        if ev is None or rec.step_key is None:
            continue
        steps[rec.step_key][ev.event_type_value].append(rec.timestamp)
        if ev.event_type_value == "ASSET_MATERIALIZATION":
            materializations += 1
    per_step: dict[str, dict[str, float]] = {}
    body = io = 0.0
    for step, ev in steps.items():
        if "STEP_START" not in ev or "STEP_OUTPUT" not in ev:
            continue
        start = ev["STEP_START"][0]
        loaded = max(ev.get("LOADED_INPUT", [start]))
        compute_from = max(ev.get("STEP_INPUT", [start]) + [loaded])
        out = min(ev["STEP_OUTPUT"])
        mat = min(ev.get("ASSET_MATERIALIZATION", [out]))
        end = max(ev.get("STEP_SUCCESS", ev.get("STEP_FAILURE", [mat])))
        s = {"io_in": loaded - start, "body": out - compute_from, "io_out": max(mat - out, 0.0), "start": start, "end": end}
        per_step[step] = s
        body += s["body"]
        io += s["io_in"] + s["io_out"]
    total = wall if wall is not None else ((last or 0.0) - (first or 0.0))
    return RunSplit(wall=total, body=body, io=io, materializations=materializations, events=len(records), per_step=per_step)
