"""`prometheus build` runs the graph in-process without keeping every asset's output in memory."""

import dagster as dg
import pytest

from prometheus_assets.cli import execute_without_output_capture


@dg.asset
def frame_a() -> list[int]:
    return list(range(1000))


@dg.asset
def frame_b(frame_a: list[int]) -> int:
    return sum(frame_a)


def _job(tmp_path) -> dg.JobDefinition:
    defs = dg.Definitions(assets=[frame_a, frame_b], resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))})
    return defs.resolve_implicit_global_asset_job_def()


def test_outputs_are_written_not_kept(tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        kept = _job(tmp_path).execute_in_process(instance=instance)
        assert kept.output_for_node("frame_b") == 499500  # the stock call keeps every output value

        result = execute_without_output_capture(_job(tmp_path), instance, run_config={}, tags={"prometheus/command": "test"}, raise_on_error=True)
        assert result.success
        assert result.dagster_run.tags["prometheus/command"] == "test"
        # both assets were materialized through the IO manager, in the run, on the instance
        materialized = {e.asset_key for e in result.get_asset_materialization_events()}
        assert materialized == {dg.AssetKey("frame_a"), dg.AssetKey("frame_b")}
        assert (tmp_path / "io" / "frame_b").exists()
        with pytest.raises(dg.DagsterInvariantViolationError):
            result.output_for_node("frame_b")  # nothing held in memory


def test_a_failure_is_reported_not_raised_when_asked(tmp_path):
    @dg.asset
    def broken() -> int:
        raise ValueError("boom")

    job = dg.Definitions(assets=[broken]).resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.ephemeral() as instance:
        result = execute_without_output_capture(job, instance, run_config={}, tags={}, raise_on_error=False)
        assert not result.success
        with pytest.raises(ValueError, match="boom"):
            execute_without_output_capture(job, instance, run_config={}, tags={}, raise_on_error=True)
