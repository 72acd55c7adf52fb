"""The run split (bodies / IO / bookkeeping) read from a run's event log."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from prometheus_assets.run_report import split_events, split_run


def _records(step: str, events: list[tuple[str, float]]) -> list[tuple[str | None, str | None, float]]:
    return [(None, None, 0.0)] + [(step, kind, at) for kind, at in events] + [(None, None, 20.0)]


def test_a_single_output_step_splits_into_io_in_body_io_out():
    events = [("STEP_START", 1.0), ("LOADED_INPUT", 1.5), ("STEP_INPUT", 1.6), ("STEP_OUTPUT", 4.6),
              ("ASSET_MATERIALIZATION", 5.0), ("ASSET_MATERIALIZATION", 5.3), ("HANDLED_OUTPUT", 5.4), ("STEP_SUCCESS", 5.5)]
    split = split_events(_records("a", events))
    step = split.per_step["a"]
    assert step["io_in"] == pytest.approx(0.5)
    assert step["body"] == pytest.approx(3.0 + 0.1)  # STEP_INPUT → STEP_OUTPUT, HANDLED_OUTPUT → STEP_SUCCESS
    assert step["io_out"] == pytest.approx(0.4)
    assert (split.wall, split.materializations, split.events) == (20.0, 2, len(events) + 2)
    assert split.bookkeeping == pytest.approx(20.0 - 3.1 - 0.9)


def test_the_code_between_and_after_the_outputs_of_a_generator_step_is_body():
    """A multi-output step's later outputs and the code after its last yield count as body, not bookkeeping (hand-computed)."""
    events = [("STEP_START", 0.0), ("STEP_INPUT", 0.1),
              ("STEP_OUTPUT", 1.1), ("ASSET_MATERIALIZATION", 1.2), ("HANDLED_OUTPUT", 1.25),
              ("STEP_OUTPUT", 1.75), ("ASSET_MATERIALIZATION", 1.95), ("ASSET_MATERIALIZATION", 2.5), ("HANDLED_OUTPUT", 2.6),
              ("STEP_SUCCESS", 3.0)]
    step = split_events(_records("m", events)).per_step["m"]
    assert step["body"] == pytest.approx(1.0 + 0.5 + 0.4)
    assert step["io_out"] == pytest.approx(0.1 + 0.2)
    assert (step["start"], step["end"]) == (0.0, 3.0)


def test_a_step_without_output_is_left_out():
    split = split_events(_records("skipped", [("STEP_START", 1.0), ("STEP_SKIPPED", 1.1)]))
    assert split.per_step == {} and split.body == 0.0 and split.io == 0.0


def test_a_real_run_counts_every_stretch_of_a_generator_step_as_body(tmp_path):
    """On a real instance, Dagster logs a generator step's events in the order :func:`step_split` assumes.

    The asset notes the time (the clock the event log stamps its records with) when its code
    starts, before each ``yield``, after each resumption and when it ends. Every stretch of its own
    code must lie inside a stretch the split counts as body: STEP_INPUT (or STEP_START) → first STEP_OUTPUT,
    HANDLED_OUTPUT → next STEP_OUTPUT, last HANDLED_OUTPUT → STEP_SUCCESS. Only the order of
    instants is checked, never a duration.
    """
    marks: list[float] = []

    @dg.multi_asset(outs={"first": dg.AssetOut(), "second": dg.AssetOut()})
    def pair():
        marks.append(time.time())
        marks.append(time.time())
        yield dg.Output(1, output_name="first")
        marks.append(time.time())
        marks.append(time.time())
        yield dg.Output(2, output_name="second")
        marks.append(time.time())
        marks.append(time.time())

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize([pair], instance=instance)
        assert result.success
        records = [(r.dagster_event.event_type_value, r.timestamp) for r in instance.all_logs(result.run_id)
                   if r.step_key == "pair" and r.dagster_event is not None]
        split = split_run(instance, result.run_id)

    def at(kind: str) -> list[float]:
        return [t for k, t in records if k == kind]

    outputs, handled, (success,) = at("STEP_OUTPUT"), at("HANDLED_OUTPUT"), at("STEP_SUCCESS")
    code_from = max(at("STEP_START") + at("STEP_INPUT"))  # (a step without inputs logs no STEP_INPUT)
    assert len(outputs) == len(handled) == 2
    bodies = [(code_from, outputs[0]), (handled[0], outputs[1]), (handled[1], success)]
    for (lo, hi), (begin, end) in zip(bodies, [marks[0:2], marks[2:4], marks[4:6]]):
        assert lo <= begin <= end <= hi
    step = split.per_step["pair"]
    assert step["body"] == pytest.approx(sum(hi - lo for lo, hi in bodies))
    assert split.materializations == 2
    assert split.body + split.io <= split.wall


def test_the_io_managers_own_time_is_the_io_and_the_event_building_after_it_bookkeeping():
    """Regression: IO out ran from STEP_OUTPUT to the first materialization, which also holds Dagster building the
    output's materialization events (one per partition, ~0.07 ms each): a full build's IO was ~13 s too high.
    With the IO manager's recorded time (io_seconds) that stretch's remainder is bookkeeping."""
    events = [("STEP_START", 1.0), ("STEP_OUTPUT", 4.0, None), ("ASSET_MATERIALIZATION", 5.0, 0.25), ("ASSET_MATERIALIZATION", 5.1, 0.25),
              ("HANDLED_OUTPUT", 5.2, None), ("STEP_SUCCESS", 5.2, None)]
    split = split_events([(None, None, 0.0), *(("a", *e) for e in events), (None, None, 10.0)])
    assert split.per_step["a"]["io_out"] == pytest.approx(0.25)
    assert split.bookkeeping == pytest.approx(10.0 - 3.0 - 0.25)
    # a recorded figure is never more than the stretch it lies in
    capped = split_events([("a", "STEP_START", 0.0), ("a", "STEP_OUTPUT", 1.0, None), ("a", "ASSET_MATERIALIZATION", 1.1, 5.0)])
    assert capped.per_step["a"]["io_out"] == pytest.approx(0.1)


def test_a_real_run_reads_the_io_managers_recorded_time(tmp_path):
    """Through the project's IO manager on a real instance, the split's IO out is the time it recorded."""
    from prometheus_assets.resources import ParquetIOManager
    from prometheus_assets.run_report import IO_SECONDS

    @dg.asset
    def table():
        import pandas as pd

        return pd.DataFrame({"x": [1, 2, 3]})

    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize([table], instance=instance, resources={"io_manager": ParquetIOManager(home=str(tmp_path / "data"))})
        assert result.success
        (event,) = result.get_asset_materialization_events()
        recorded = event.materialization.metadata[IO_SECONDS].value
        split = split_run(instance, result.run_id)
    assert 0 < split.per_step["table"]["io_out"] == pytest.approx(recorded)
