"""Trading-day partitions on the NYSE calendar, and the backfill policy every daily asset uses.

Partition keys are ``YYYY-MM-DD`` session dates of ``exchange_calendars``' XNYS calendar: weekends
and holidays are excluded (as Dagster ``exclusions``), half-days included. The definition is
open-ended: every new session gets a partition, and ``end_offset=1`` makes today's partition exist
during the day, which a same-day end-of-day run needs.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict

import dagster as dg
import pandas as pd

from prometheus_assets.core import calendar

PARTITION_FORMAT = "%Y-%m-%d"
#: Every daily asset computes a whole partition range in one run, vectorised (see DESIGN.md).
SINGLE_RUN = dg.BackfillPolicy.single_run()


#: How many partitions definitions :func:`_memoized_hash` remembers (a process holds a handful).
HASH_MEMO_SIZE = 64
_STOCK_HASH = dg.TimeWindowPartitionsDefinition.__hash__
_hash_memo: OrderedDict[int, tuple[dg.TimeWindowPartitionsDefinition, int]] = OrderedDict()


def _memoized_hash(self: dg.TimeWindowPartitionsDefinition) -> int:
    """Dagster's own hash of a time-window partitions definition, computed once per object.

    Dagster hashes the definition as ``hash(tuple(repr(self)))``, and its ``lru_cache``d methods
    (partition keys, windows, subsets) hash it on every call. The repr lists every exclusion: with
    the 344 weekday closures since 1990 it is 21,723 characters, ~0.4 ms a hash, and a one-day
    run of the whole graph hashed it ~870 times (~0.4 s of Dagster bookkeeping, growing with the
    history; profiled with cProfile). The definition is an immutable record, so its hash never
    changes: remember it per object. Keyed by ``id()`` with the object itself held in the entry,
    so an id is never reused while remembered; not stored on the object, because a pickled copy
    would carry a string hash into another process, where string hashes differ.
    (Hand-written: Dagster has no switch for this; the value is the stock one, tested.)
    """
    key = id(self)
    hit = _hash_memo.get(key)
    if hit is not None and hit[0] is self:
        return hit[1]
    value = _STOCK_HASH(self)
    _hash_memo[key] = (self, value)
    if len(_hash_memo) > HASH_MEMO_SIZE:
        _hash_memo.popitem(last=False)
    return value


dg.TimeWindowPartitionsDefinition.__hash__ = _memoized_hash  # type: ignore[method-assign]


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
