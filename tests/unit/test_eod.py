"""The pure end-of-day day logic (core.eod): new sessions, where a new sensor starts, schedule ticks."""

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from prometheus_assets.core import calendar
from prometheus_assets.core.eod import (
    exchange_date,
    format_day,
    initial_last_requested,
    replay_last_requested,
    new_sessions,
    parse_day,
    session_of_tick,
)

SESSIONS = calendar.trading_sessions("2024-06-24", "2024-07-12")  # 4 July is a holiday


def keys(days):
    return [format_day(d) for d in days]


def test_new_sessions_are_the_known_sessions_after_the_last_requested_in_order():
    assert keys(new_sessions(SESSIONS, "2024-07-08")) == ["2024-07-09", "2024-07-10", "2024-07-11", "2024-07-12"]
    # days skipped while the daemon was down come back oldest first, across the holiday
    assert keys(new_sessions(SESSIONS, "2024-07-02")) == ["2024-07-03", "2024-07-05", "2024-07-08", "2024-07-09", "2024-07-10", "2024-07-11", "2024-07-12"]


def test_new_sessions_sorts_deduplicates_and_accepts_text():
    known = ["2024-07-10", "2024-07-09", "2024-07-10", pd.Timestamp("2024-07-08")]
    assert keys(new_sessions(known, pd.Timestamp("2024-07-08"))) == ["2024-07-09", "2024-07-10"]


def test_nothing_requested_yet_means_every_known_session_is_new():
    assert keys(new_sessions(SESSIONS[:3], None)) == keys(SESSIONS[:3])


def test_a_last_requested_day_that_is_not_a_session_still_splits_correctly():
    assert keys(new_sessions(SESSIONS, "2024-07-04")) == keys(SESSIONS[SESSIONS > "2024-07-04"])  # the holiday itself


def test_nothing_new_when_the_cursor_is_at_or_past_the_newest_session():
    assert new_sessions(SESSIONS, "2024-07-12") == []
    assert new_sessions(SESSIONS, "2030-01-02") == []
    assert new_sessions([], None) == []


def test_limit_keeps_the_oldest():
    assert keys(new_sessions(SESSIONS, "2024-07-02", limit=1)) == ["2024-07-03"]
    assert keys(new_sessions(SESSIONS, "2024-07-02", limit=2)) == ["2024-07-03", "2024-07-05"]
    with pytest.raises(ValueError, match="limit must be >= 1"):
        new_sessions(SESSIONS, None, limit=0)


def test_a_bad_day_is_a_clear_error():
    with pytest.raises(ValueError, match="last requested day '07/08/2024' is not a date in YYYY-MM-DD form"):
        new_sessions(SESSIONS, "07/08/2024")
    with pytest.raises(ValueError, match="session 'yesterday'"):
        new_sessions(["yesterday"], None)
    assert parse_day(" 2024-07-08 ") == pd.Timestamp("2024-07-08")


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(SESSIONS)), min_size=1, max_size=8), limit=st.sampled_from([None, 1, 2]))
def test_ticks_over_a_growing_source_request_every_session_once_in_order(cuts, limit):
    """Whatever the source reveals at each tick (it only grows), the ticks request each day once, in order."""
    last = None
    requested = []
    revealed = 0
    for cut in sorted(cuts) + [len(SESSIONS)] * len(SESSIONS):  # then keep ticking until everything is drained
        revealed = max(revealed, cut)
        pending = new_sessions(SESSIONS[:revealed], last, limit=limit)
        requested += pending
        last = pending[-1] if pending else last
    assert requested == list(SESSIONS)


def test_a_live_sensor_starts_after_the_built_history_or_at_the_newest_session():
    assert initial_last_requested(SESSIONS, "2024-07-03") == pd.Timestamp("2024-07-03")
    assert initial_last_requested(SESSIONS, None) == pd.Timestamp("2024-07-12")  # nothing built: nothing old is requested
    assert initial_last_requested([], None) is None


def test_a_replay_with_a_cursor_goes_on_after_it_or_at_a_later_start():
    """Regression: PROMETHEUS_REPLAY_FROM was read only by a sensor without a cursor, so a replay start set later on
    (a second replay, further on) was ignored and the replay went on after the old cursor."""
    cursor = pd.Timestamp("2024-07-05")
    assert replay_last_requested(cursor, SESSIONS, "2024-07-10") == pd.Timestamp("2024-07-09")  # starts at its day
    assert keys(new_sessions(SESSIONS, replay_last_requested(cursor, SESSIONS, "2024-07-10"), limit=1)) == ["2024-07-10"]
    assert replay_last_requested(cursor, SESSIONS, "2024-07-02") == cursor  # cannot go back: each day once
    assert replay_last_requested(None, SESSIONS, "2024-07-04") == initial_last_requested(SESSIONS, None, replay_from="2024-07-04")
    assert replay_last_requested(cursor, SESSIONS, "2024-06-01") == cursor  # a start before the history
    assert replay_last_requested(None, SESSIONS, "2024-06-01") is None


def test_a_replay_starts_just_before_its_first_day():
    assert initial_last_requested(SESSIONS, "2024-07-10", replay_from="2024-07-04") == pd.Timestamp("2024-07-03")
    assert keys(new_sessions(SESSIONS, initial_last_requested(SESSIONS, None, replay_from="2024-07-04"), limit=1)) == ["2024-07-05"]
    assert initial_last_requested(SESSIONS, None, replay_from="2024-06-01") is None  # before the history: from its first day


@pytest.mark.parametrize(
    "moment, expected",
    [
        (dt.datetime(2024, 7, 5, 16, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4))), "2024-07-05"),  # EDT
        (pd.Timestamp("2024-07-05 20:30", tz="UTC"), "2024-07-05"),  # the same tick in UTC
        (dt.datetime(2024, 7, 6, 0, 30), "2024-07-05"),  # naive = UTC: still the 5th in New York
        (pd.Timestamp("2024-07-04 16:30", tz="America/New_York"), None),  # Independence Day
        (pd.Timestamp("2024-07-06 16:30", tz="America/New_York"), None),  # Saturday
    ],
)
def test_a_schedule_tick_belongs_to_its_new_york_session(moment, expected):
    day = session_of_tick(moment, SESSIONS)
    assert (format_day(day) if day is not None else None) == expected


def test_exchange_date_crosses_midnight_in_new_york_not_utc():
    assert exchange_date(pd.Timestamp("2024-01-03 03:00", tz="UTC")) == pd.Timestamp("2024-01-02")
    assert exchange_date(pd.Timestamp("2024-01-03 06:00", tz="UTC")) == pd.Timestamp("2024-01-03")


def test_operation_settings_from_the_environment():
    from prometheus_assets.errors import SourceConfigError
    from prometheus_assets.settings import Settings

    default = Settings.from_env({})
    assert (default.replay_from, default.eod_interval) == (None, 30)
    chosen = Settings.from_env({"PROMETHEUS_REPLAY_FROM": "2022-12-01", "PROMETHEUS_EOD_INTERVAL": "5"})
    assert (chosen.replay_from, chosen.eod_interval) == ("2022-12-01", 5)
    with pytest.raises(SourceConfigError, match="PROMETHEUS_EOD_INTERVAL=0 must be a positive number of seconds"):
        Settings.from_env({"PROMETHEUS_EOD_INTERVAL": "0"})
    with pytest.raises(SourceConfigError, match="PROMETHEUS_REPLAY_FROM='soon' is not a date"):
        Settings.from_env({"PROMETHEUS_REPLAY_FROM": "soon"})
