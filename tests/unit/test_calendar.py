"""Partitions and the trading calendar against exchange_calendars."""

import exchange_calendars as xcals
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from prometheus_assets.core import calendar
from prometheus_assets.partitions import keys_to_dates, trading_day_partitions


@pytest.fixture(scope="module")
def partitions():
    return trading_day_partitions("1990-01-02")


def test_partition_keys_are_exactly_the_xnys_sessions(partitions):
    xnys = xcals.get_calendar("XNYS", start="1990-01-01")
    expected = [d.strftime("%Y-%m-%d") for d in xnys.sessions if d <= pd.Timestamp("2022-12-28")]
    keys = [k for k in partitions.get_partition_keys() if k <= "2022-12-28"]
    assert keys == expected
    assert len(keys) == 8313  # the bundled history's length


@pytest.mark.parametrize("day", ["2001-09-11", "2001-09-14", "2012-10-29", "2018-12-05", "2020-12-25", "1994-04-27"])
def test_closures_have_no_partition(partitions, day):
    assert day not in set(partitions.get_partition_keys())


@pytest.mark.parametrize("day", ["2019-11-29", "2020-12-24", "1990-12-24"])
def test_half_days_are_partitions(partitions, day):
    assert day in set(partitions.get_partition_keys())
    assert pd.Timestamp(day) in calendar.early_closes()


def test_partitions_are_open_ended(partitions):
    last = partitions.get_partition_keys()[-1]
    today = pd.Timestamp.now(tz="America/New_York").tz_localize(None).normalize()
    assert pd.Timestamp(last) >= calendar.trading_sessions(today - pd.Timedelta(days=10), today)[-1]


def test_partitions_start_on_first_session_on_or_after_start():
    assert trading_day_partitions("1990-01-01").get_first_partition_key() == "1990-01-02"


def test_keys_to_dates_sorts():
    assert list(keys_to_dates(["2020-01-03", "2020-01-02"])) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]


@settings(max_examples=25, deadline=None)
@given(st.dates(min_value=pd.Timestamp("1991-01-01").date(), max_value=pd.Timestamp("2025-06-01").date()), st.integers(20, 400))
def test_calendar_flags_match_groupby(start, length):
    sessions = calendar.trading_sessions(pd.Timestamp(start))[:length]
    table = calendar.calendar_table(sessions, calendar.early_closes())
    frame = pd.DataFrame({"date": sessions})
    for flag, period in [("is_month_end", "M"), ("is_quarter_end", "Q"), ("is_year_end", "Y"), ("is_week_end", "W-SUN")]:
        last_of_period = set(frame.groupby(frame["date"].dt.to_period(period))["date"].max())
        assert set(table.loc[table[flag], "date"]) == last_of_period, flag
    first_of_month = set(frame.groupby(frame["date"].dt.to_period("M"))["date"].min())
    assert set(table.loc[table["is_month_start"], "date"]) == first_of_month
    assert table["session_index"].tolist() == list(range(len(sessions)))


@pytest.mark.parametrize(
    "session, first_day",
    [
        ("2024-01-02", "2023-12-30"),  # after a weekend and New Year's Day: both belong to 2 January
        ("2024-01-03", "2024-01-03"),  # the previous day is a session: only the day itself
        ("2024-01-08", "2024-01-06"),  # Monday: Saturday and Sunday
        ("2024-03-28", "2024-03-28"),  # Maundy Thursday; Good Friday belongs to the Monday after
        ("2024-04-01", "2024-03-29"),
    ],
)
def test_first_owned_day_covers_the_closed_days_before_a_session(session, first_day):
    assert calendar.first_owned_day(session) == pd.Timestamp(first_day)


def test_partitions_hash_is_dagsters_own_value_remembered_per_object(partitions):
    """The memoized hash (partitions._memoized_hash) equals Dagster's formula, for equal and different definitions."""
    from prometheus_assets import partitions as module

    assert hash(partitions) == hash(tuple(repr(partitions)))  # Dagster's TimeWindowPartitionsDefinition.__hash__
    again = trading_day_partitions("1990-01-02")
    assert again is not partitions and again == partitions and hash(again) == hash(partitions)
    later = trading_day_partitions("2020-01-02")
    assert hash(later) == hash(tuple(repr(later))) != hash(partitions)
    assert {partitions: 1, again: 2, later: 3} == {partitions: 2, later: 3}
    # the memo stays bounded and never answers for a different object
    starts = pd.date_range("1990-01-02", periods=module.HASH_MEMO_SIZE + 5, freq="MS")
    made = [trading_day_partitions(start) for start in starts]
    assert all(hash(p) == hash(tuple(repr(p))) for p in made)
    assert len(module._hash_memo) <= module.HASH_MEMO_SIZE
