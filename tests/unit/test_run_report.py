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
    """On a real instance: the sleeps before, between and after the yields all land in the step's body.

    Only lower bounds on sleeps (which last at least as long as asked), never a speed assertion.
    """

    @dg.multi_asset(outs={"first": dg.AssetOut(), "second": dg.AssetOut()})
    def pair():
        time.sleep(0.2)
        yield dg.Output(1, output_name="first")
        time.sleep(0.3)
        yield dg.Output(2, output_name="second")
        time.sleep(0.25)

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize([pair], instance=instance)
        assert result.success
        split = split_run(instance, result.run_id)
    step = split.per_step["pair"]
    assert step["body"] >= 0.75
    assert step["body"] + step["io_in"] + step["io_out"] <= step["end"] - step["start"] + 1e-9
    assert split.materializations == 2
    assert split.body + split.io <= split.wall
