"""eod_job, eod_sensor and eod_schedule against real definitions, real files and a real SQLite instance."""

import datetime as dt
import os

import dagster as dg
import pandas as pd
import pytest
import yaml

from prometheus_assets.cli import prepare_dagster_home
from prometheus_assets.core import calendar
from prometheus_assets.definitions import build_definitions
from prometheus_assets.operations import EOD_CRON, QUEUE_TAG, QUEUE_VALUE, TRIGGER_TAG
from prometheus_assets.settings import Settings
from tests.conftest import bundled_wide, run_range, write_day_files

NY = "America/New_York"


def wide_on(days) -> pd.DataFrame:
    """Bundled prices relabelled onto ``days`` (any sessions, e.g. recent ones)."""
    wide = bundled_wide("2022-01-03", "2022-12-28").iloc[: len(days)].copy()
    wide.index = pd.DatetimeIndex(days)
    return wide


@pytest.fixture
def files_source(tmp_path):
    """A files source holding 2022-12-01 … 2022-12-09 (7 sessions), one file per day."""
    bars = tmp_path / "bars"
    write_day_files(bars, bundled_wide("2022-12-01", "2022-12-09"))
    return bars


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    sensor = defs.resolve_sensor_def("eod_sensor")
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=dict(defs.resources)))
    assert isinstance(result, dg.SensorResult)
    return result


def requested(result: dg.SensorResult) -> list[str]:
    for request in result.run_requests:
        assert request.run_key == request.partition_key
        assert request.tags[TRIGGER_TAG] == "eod_sensor"
    return [r.partition_key for r in result.run_requests]


# --------------------------------------------------------------------------- the job
def test_eod_job_is_the_whole_graph_with_its_checks_on_the_daily_partitions(tmp_path, files_source):
    defs = build_definitions(Settings(home=str(tmp_path / "data"), source=str(files_source)))
    job = defs.resolve_job_def("eod_job")
    graph = defs.resolve_asset_graph()
    assert job.partitions_def == defs.resolve_assets_def("prices_daily").partitions_def
    assert set(job.asset_layer.executable_asset_keys) == set(graph.get_all_asset_keys())
    assert set(job.asset_layer.asset_graph.asset_check_keys) == set(graph.asset_check_keys) and len(graph.asset_check_keys) >= 7
    assert job.tags[QUEUE_TAG] == QUEUE_VALUE
    assert job.executor_def.name == "in_process"  # one process per run
    assert "freeze_allocator_baseline" in {j.name for j in defs.jobs}


# --------------------------------------------------------------------------- the sensor
def test_sensor_requests_each_new_day_once_in_order(tmp_path, files_source, persistent_instance):
    defs = build_definitions(Settings(home=str(tmp_path / "data"), source=str(files_source)))
    partitions = defs.resolve_job_def("eod_job").partitions_def
    # First tick, nothing built: history is a backfill's job, so it starts after the newest day.
    first = tick(defs, persistent_instance, None)
    assert first.run_requests == [] and first.cursor == "2022-12-09"
    assert "no new trading day" in first.skip_reason.skip_message
    # Three sessions arrive while the daemon is down (10-11 December is a weekend).
    write_day_files(files_source, bundled_wide("2022-12-12", "2022-12-14"))
    second = tick(defs, persistent_instance, first.cursor)
    assert requested(second) == ["2022-12-12", "2022-12-13", "2022-12-14"]
    assert second.cursor == "2022-12-14"
    assert all(partitions.has_partition_key(k) for k in requested(second))
    # A repeated tick, or a restart that resumes from the stored cursor, requests nothing again.
    again = tick(defs, persistent_instance, second.cursor)
    assert again.run_requests == [] and again.cursor == "2022-12-14"
    # The next day arrives.
    write_day_files(files_source, bundled_wide("2022-12-15", "2022-12-15"))
    assert requested(tick(defs, persistent_instance, again.cursor)) == ["2022-12-15"]


def test_a_new_sensor_catches_up_from_the_newest_built_day(tmp_path, files_source, persistent_instance):
    settings = Settings(home=str(tmp_path / "data"), source=str(files_source))
    run_range(settings, "2022-12-01", "2022-12-06", instance=persistent_instance, selection=["instruments", "prices_daily"])
    result = tick(build_definitions(settings), persistent_instance, None)
    assert requested(result) == ["2022-12-07", "2022-12-08", "2022-12-09"]
    assert result.cursor == "2022-12-09"


def test_days_after_today_are_never_requested(tmp_path, persistent_instance):
    today = pd.Timestamp.now(tz=NY).tz_localize(None).normalize()
    past = calendar.trading_sessions(today - pd.Timedelta(days=14), today)[-3:]
    future = calendar.trading_sessions(today + pd.Timedelta(days=1), today + pd.Timedelta(days=10))[:1]
    bars = tmp_path / "bars"
    write_day_files(bars, wide_on(past))
    defs = build_definitions(Settings(home=str(tmp_path / "data"), source=str(bars)))
    cursor = tick(defs, persistent_instance, format(past[0], "%Y-%m-%d"))
    assert requested(cursor) == [format(d, "%Y-%m-%d") for d in past[1:]]
    write_day_files(bars, wide_on(future))  # a file dated in the future (a mistake in the feed)
    later = tick(defs, persistent_instance, cursor.cursor)
    assert later.run_requests == [] and later.cursor == format(past[-1], "%Y-%m-%d")


def test_replay_reveals_one_session_per_tick_until_the_history_ends(tmp_path, persistent_instance):
    settings = Settings(home=str(tmp_path / "data"), source="bundled", replay_from="2022-12-22")
    defs = build_definitions(settings)
    cursor, seen = None, []
    for _ in range(5):
        result = tick(defs, persistent_instance, cursor)
        seen.append(requested(result))
        cursor = result.cursor
    assert seen == [["2022-12-22"], ["2022-12-23"], ["2022-12-27"], ["2022-12-28"], []]
    assert "replay finished" in result.skip_reason.skip_message and cursor == "2022-12-28"


def test_a_later_replay_start_moves_a_sensor_with_a_cursor_forward_never_back(tmp_path, persistent_instance):
    defs = build_definitions(Settings(home=str(tmp_path / "data"), source="bundled", replay_from="2022-12-27"))
    assert requested(tick(defs, persistent_instance, "2022-12-21")) == ["2022-12-27"]  # a second replay, further on
    assert requested(tick(defs, persistent_instance, "2022-12-27")) == ["2022-12-28"]  # at or after the start: goes on
    done = tick(defs, persistent_instance, "2022-12-28")
    assert done.run_requests == [] and "last requested 2022-12-28" in done.skip_reason.skip_message


def test_a_corrupt_cursor_is_a_clear_error(tmp_path, files_source, persistent_instance):
    defs = build_definitions(Settings(home=str(tmp_path / "data"), source=str(files_source)))
    with pytest.raises(Exception, match="eod_sensor cursor 'garbage' is not a date in YYYY-MM-DD form.*sensor's page in the UI"):
        tick(defs, persistent_instance, "garbage")


def test_sensor_and_schedule_statuses_and_interval(tmp_path, files_source):
    defs = build_definitions(Settings(home=str(tmp_path / "data"), source=str(files_source), eod_interval=7))
    sensor, schedule = defs.resolve_sensor_def("eod_sensor"), defs.resolve_schedule_def("eod_schedule")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == 7
    assert sensor.job_name == "eod_job" and schedule.job_name == "eod_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert (schedule.cron_schedule, schedule.execution_timezone) == (EOD_CRON, NY)


# --------------------------------------------------------------------------- the schedule
@pytest.mark.parametrize(
    "local, expected",
    [("2024-07-05 16:30", "2024-07-05"), ("2024-07-04 16:30", None), ("2024-11-29 16:30", "2024-11-29"), ("2024-12-25 16:30", None)],
)
def test_schedule_requests_the_session_of_its_tick_and_skips_holidays(tmp_path, files_source, persistent_instance, local, expected):
    defs = build_definitions(Settings(home=str(tmp_path / "data"), source=str(files_source)))
    schedule = defs.resolve_schedule_def("eod_schedule")
    when = pd.Timestamp(local, tz=NY).to_pydatetime()
    result = schedule.evaluate_tick(dg.build_schedule_context(instance=persistent_instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()))
    if expected is None:
        assert result.run_requests == [] and "is not an NYSE session" in result.skip_message
    else:
        (request,) = result.run_requests
        assert (request.run_key, request.partition_key, request.tags[TRIGGER_TAG]) == (expected, expected, "eod_schedule")


def test_schedule_fires_after_the_close_on_weekdays_only():
    from dagster._utils.schedules import cron_string_iterator

    start = pd.Timestamp("2024-07-01", tz=NY).timestamp()
    ticks = cron_string_iterator(start, EOD_CRON, NY)
    week = [next(ticks) for _ in range(5)]
    assert [t.strftime("%a %H:%M") for t in week] == [f"{d} 16:30" for d in ("Mon", "Tue", "Wed", "Thu", "Fri")]
    assert all(t.astimezone(dt.timezone.utc).hour == 20 for t in week)  # 16:30 EDT


# --------------------------------------------------------------------------- the instance
def test_the_written_dagster_yaml_runs_whole_graph_runs_one_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    home = prepare_dagster_home(Settings(home=str(tmp_path / "data")))
    config = yaml.safe_load(open(f"{home}/dagster.yaml"))
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == [{"key": QUEUE_TAG, "value": QUEUE_VALUE, "limit": 1}]
    with dg.DagsterInstance.from_config(home) as instance:  # Dagster accepts the file as written
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": QUEUE_TAG, "value": QUEUE_VALUE, "limit": 1} in limits


def _record_a_run(dagster_home: str) -> str:
    """Materialize a one-asset job on the instance at ``dagster_home``; its run id."""
    @dg.asset
    def marker() -> int:
        return 1

    with dg.DagsterInstance.from_config(dagster_home) as instance:
        return dg.materialize([marker], instance=instance).run_id


def _events_dir(dagster_home: str) -> str:
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        return instance.event_log_storage._base_dir  # (where its per-run databases go)


def test_a_moved_or_copied_root_keeps_its_events_with_its_runs(tmp_path, monkeypatch):
    """A storage root copied elsewhere writes its events into its own instance, not the original's."""
    import shutil

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    original = prepare_dagster_home(Settings(home=str(tmp_path / "a" / "data")))
    first = _record_a_run(original)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    monkeypatch.delenv("DAGSTER_HOME")
    copy = prepare_dagster_home(Settings(home=str(tmp_path / "b" / "data")))
    assert copy == str(tmp_path / "b" / "data" / "dagster_home")
    assert _events_dir(copy) == os.path.join(copy, "history", "runs")
    second = _record_a_run(copy)
    # the copy's run and its events are in the copy; the original's event log has not grown
    assert os.path.exists(os.path.join(copy, "history", "runs", f"{second}.db"))
    assert not os.path.exists(os.path.join(original, "history", "runs", f"{second}.db"))
    with dg.DagsterInstance.from_config(copy) as instance:
        assert instance.get_run_by_id(second) is not None and instance.all_logs(second)
        assert instance.all_logs(first)  # the history copied along is still readable
    # comments and the rest of the file are kept; a second call changes nothing
    text = open(os.path.join(copy, "dagster.yaml")).read()
    assert text == open(os.path.join(original, "dagster.yaml")).read().replace(original, copy)
    assert prepare_dagster_home(Settings(home=str(tmp_path / "b" / "data"))) == copy
    assert open(os.path.join(copy, "dagster.yaml")).read() == text


def test_an_event_log_placed_elsewhere_on_purpose_is_left_alone(tmp_path):
    from prometheus_assets.cli import DAGSTER_YAML, relocate_event_log

    own = DAGSTER_YAML.format(runs_dir="/fast/disk/events")  # not a .../history/runs directory
    theirs = DAGSTER_YAML.format(runs_dir="/old/place/history/runs").split("\n", 1)[1]  # header removed
    for text in (own, theirs):
        path = tmp_path / "dagster.yaml"
        path.write_text(text)
        assert relocate_event_log(str(path), str(tmp_path / "history" / "runs")) is None
        assert path.read_text() == text
