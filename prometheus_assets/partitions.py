"""Trading-day partitions on the NYSE calendar, and the backfill policy every daily asset uses.

Partition keys are ``YYYY-MM-DD`` session dates of ``exchange_calendars``' XNYS calendar: weekends
and holidays are excluded (as Dagster ``exclusions``), half-days included. The definition is
open-ended: every new session gets a partition, and ``end_offset=1`` makes today's partition exist
during the day, which a same-day end-of-day run needs.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

from prometheus_assets.core import calendar

PARTITION_FORMAT = "%Y-%m-%d"
#: Every daily asset computes a whole partition range in one run, vectorised (see DESIGN.md).
SINGLE_RUN = dg.BackfillPolicy.single_run()


def trading_day_partitions(start: pd.Timestamp | str) -> dg.TimeWindowPartitionsDefinition:
    """Daily partitions on NYSE sessions from the first session on or after ``start``."""
    sessions = calendar.trading_sessions(start)
    if len(sessions) == 0:
        raise ValueError(f"no NYSE session on or after {pd.Timestamp(start).date()}")
    first = pd.Timestamp(sessions[0])
    closures = calendar.weekday_closures(first)
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="0 0 * * 1-5",
        start=first.to_pydatetime(),
        fmt=PARTITION_FORMAT,
        exclusions=[dt.datetime(d.year, d.month, d.day) for d in closures],
        end_offset=1,
    )


def keys_to_dates(keys: list[str] | tuple[str, ...]) -> pd.DatetimeIndex:
    """Partition keys as a sorted ``DatetimeIndex`` of session dates."""
    return pd.DatetimeIndex(pd.to_datetime(list(keys), format=PARTITION_FORMAT)).sort_values().astype("datetime64[ns]")


def run_first_day(tags: dict[str, str]) -> pd.Timestamp | None:
    """The first session of the partition range a run was launched for (its tags), or None.

    For an unpartitioned asset that carries state (the edge layer): a run over a range of daily
    partitions rebuilds everything from the range's first day, so such an asset resumes from
    the state stored at the session before it. None for a run launched without partitions.
    """
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG

    key = tags.get(ASSET_PARTITION_RANGE_START_TAG) or tags.get(PARTITION_NAME_TAG)
    if not key:
        return None
    try:
        return pd.Timestamp(dt.datetime.strptime(key, PARTITION_FORMAT))
    except ValueError:
        return None
