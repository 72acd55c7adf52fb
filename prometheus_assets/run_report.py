"""Where a run's wall time went: asset bodies, Parquet/DuckDB IO, and Dagster's own bookkeeping.

Read from the run's event log on the Dagster instance (no instrumentation in the assets). Per step,
with its outputs taken in the order the step yields them:

* IO in   = STEP_START → last LOADED_INPUT (the IO manager loading upstream Parquet);
* body    = last STEP_INPUT (or STEP_START) → first STEP_OUTPUT, plus, for a step that yields
  several outputs, each HANDLED_OUTPUT → next STEP_OUTPUT (the code between two ``yield``\\ s),
  plus the last HANDLED_OUTPUT → STEP_SUCCESS (code after the last ``yield``; ~1 ms otherwise);
  the asset's own code, checks included;
* IO out  = for each STEP_OUTPUT, the IO manager's own time writing it (Parquet, the DuckDB view,
  the table metadata), which it records as the ``io_seconds`` metadata of its materializations;
  for an output without that figure, STEP_OUTPUT → the first ASSET_MATERIALIZATION after it. (That
  stretch also holds Dagster building the output's materialization events, one per partition:
  ~0.07 ms each, ~13 s of a full-history build, which the recorded figure leaves to bookkeeping);
* bookkeeping = everything else in the run's wall time: planning and storing one event per
  (asset, partition), run start-up and teardown.

What this does not separate: the reads an asset does itself inside its body (most assets read
their upstream tables through ``history.read``) count as body, and so does Dagster's resolution
of a step's upstream data versions before the asset's code starts (a step without ``ins`` logs no
STEP_INPUT). "IO" is the IO manager's part of the Parquet traffic, not all of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg

#: The materialization metadata key under which the IO manager records its own time (seconds).
IO_SECONDS = "io_seconds"


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


def step_split(events: list[tuple[str, float] | tuple[str, float, float | None]]) -> dict[str, float] | None:
    """``io_in``, ``body``, ``io_out``, ``start``, ``end`` of one step from its ``(event type, timestamp[, io seconds])`` records.

    The records are in the order the event log holds them (see the module docstring for what each
    part spans); a materialization's third item is its :data:`IO_SECONDS` (None when absent). None
    for a step that never started or produced no output (e.g. skipped).
    """
    times: dict[str, list[float]] = defaultdict(list)
    for kind, at, *_ in events:
        times[kind].append(at)
    if not times["STEP_START"] or not times["STEP_OUTPUT"]:
        return None
    start = times["STEP_START"][0]
    loaded = max(times["LOADED_INPUT"] or [start])
    body_from = max(times["STEP_INPUT"] + [loaded])
    body = io_out = 0.0
    output_at = handled_at = mat_pending = None
    for kind, at, *extra in events:
        if kind == "STEP_OUTPUT":
            body += at - (handled_at if handled_at is not None else body_from)
            output_at, mat_pending = at, True
        elif kind == "ASSET_MATERIALIZATION" and mat_pending:
            gap = at - output_at
            recorded = extra[0] if extra else None
            io_out += gap if recorded is None else min(recorded, gap)
            mat_pending = False
        elif kind == "HANDLED_OUTPUT":
            handled_at = at
    end = max(times["STEP_SUCCESS"] or times["STEP_FAILURE"] or [handled_at or output_at])
    if handled_at is not None and times["STEP_SUCCESS"]:
        body += max(end - handled_at, 0.0)  # (code after the last yield of a generator step)
    return {"io_in": loaded - start, "body": body, "io_out": io_out, "start": start, "end": end}


def split_events(records: Iterable[tuple[str | None, str | None, float] | tuple[str | None, str | None, float, float | None]],
                 wall: float | None = None) -> RunSplit:
    """The :class:`RunSplit` of a run's ``(step key, event type, timestamp[, io seconds])`` records, in log order.

    ``step key`` / ``event type`` are None for run-level records and plain log messages; ``wall``
    defaults to the span from the first record to the last.
    """
    steps: dict[str, list[tuple[str, float]]] = defaultdict(list)
    materializations = count = 0
    first = last = None
    for step, kind, at, *extra in records:
        count += 1
        first = at if first is None else first
        last = at
        if kind is None or step is None:
            continue
        steps[step].append((kind, at, *extra))
        materializations += kind == "ASSET_MATERIALIZATION"
    per_step = {step: s for step, events in steps.items() if (s := step_split(events)) is not None}
    body = sum(s["body"] for s in per_step.values())
    io = sum(s["io_in"] + s["io_out"] for s in per_step.values())
    total = wall if wall is not None else ((last or 0.0) - (first or 0.0))
    return RunSplit(wall=total, body=body, io=io, materializations=materializations, events=count, per_step=per_step)


def _io_seconds(event: dg.DagsterEvent | None) -> float | None:
    """The :data:`IO_SECONDS` a materialization event carries (None for other events or without it)."""
    if event is None or event.event_type_value != "ASSET_MATERIALIZATION":
        return None
    value = event.materialization.metadata.get(IO_SECONDS)
    return float(value.value) if value is not None else None


def split_run(instance: dg.DagsterInstance, run_id: str, wall: float | None = None) -> RunSplit:
    """Compute the :class:`RunSplit` of ``run_id`` from ``instance``'s event log."""
    return split_events(((rec.step_key, rec.dagster_event.event_type_value if rec.dagster_event is not None else None, rec.timestamp,
                          _io_seconds(rec.dagster_event)) for rec in instance.all_logs(run_id)), wall)
