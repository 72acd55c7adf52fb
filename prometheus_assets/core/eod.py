"""End-of-day triggering logic: which trading days are new, and which session a schedule tick is for.

Pure functions over session dates (timezone-naive midnight timestamps, as in
:mod:`prometheus_assets.core.calendar`); the Dagster sensor and schedule in
:mod:`prometheus_assets.operations` only feed them what the source and the instance know.

Vocabulary
----------
* *known sessions*: the NYSE sessions for which the source has data now (for a files directory,
  every session from its first to its last bar; for a fixed history, its whole span; for a replay,
  the sessions revealed so far), never later than today.
* *last requested*: the last day the sensor has asked a run for (its cursor).
* a *new session* is a known session after the last requested one. Days skipped while the daemon
  was down are simply new sessions, returned in date order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd

DAY_FORMAT = "%Y-%m-%d"
#: The exchange's time zone: a schedule tick belongs to the session of its New York date.
EXCHANGE_TZ = "America/New_York"


def parse_day(value: str | pd.Timestamp | dt.date, what: str = "day") -> pd.Timestamp:
    """``value`` as a midnight timestamp; a text must be ``YYYY-MM-DD`` (else ``ValueError`` naming ``what``)."""
    if isinstance(value, str):
        try:
            return pd.Timestamp(dt.datetime.strptime(value.strip(), DAY_FORMAT))
        except ValueError as exc:
            raise ValueError(f"{what} {value!r} is not a date in YYYY-MM-DD form") from exc
    return pd.Timestamp(value).normalize()


def new_sessions(
    known_sessions: Iterable[pd.Timestamp | str],
    last_requested: pd.Timestamp | str | None,
    limit: int | None = None,
) -> list[pd.Timestamp]:
    """Known sessions strictly after ``last_requested``, oldest first, each once.

    ``last_requested=None`` means nothing was requested yet: every known session is new.
    ``limit`` keeps only the oldest ``limit`` of them (a replay reveals one day per tick).
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    days = sorted({parse_day(s, "session") for s in known_sessions})
    if last_requested is not None:
        after = parse_day(last_requested, "last requested day")
        days = [d for d in days if d > after]
    return days if limit is None else days[:limit]


def initial_last_requested(
    known_sessions: Iterable[pd.Timestamp | str],
    last_built: pd.Timestamp | str | None,
    replay_from: pd.Timestamp | str | None = None,
) -> pd.Timestamp | None:
    """Where a sensor without a cursor starts: the day it treats as already requested.

    * Replay (``replay_from`` set): the last known session before ``replay_from``, so the first
      tick reveals the first session on or after it (``None`` when ``replay_from`` precedes every
      known session: the first tick reveals the first one).
    * Live: the last day already built (``last_built``, e.g. the newest materialized partition),
      else the newest known session. History is built by a backfill (``make run``), never by
      one EOD run per past day; only sessions after the history are new.
    """
    days = sorted({parse_day(s, "session") for s in known_sessions})
    if replay_from is not None:
        start = parse_day(replay_from, "replay start")
        before = [d for d in days if d < start]
        return before[-1] if before else None
    if last_built is not None:
        return parse_day(last_built, "last built day")
    return days[-1] if days else None


def replay_last_requested(
    cursor: pd.Timestamp | None,
    known_sessions: Iterable[pd.Timestamp | str],
    replay_from: pd.Timestamp | str,
) -> pd.Timestamp | None:
    """Where a replay sensor that already has a cursor goes on: after its cursor, or at ``replay_from`` if that is later.

    A replay start set after the sessions already replayed (e.g. a second replay, further on)
    starts there, as a new sensor would; one at or before the cursor cannot go back, since a day is
    requested once (and Dagster skips a run key this sensor has used), so the replay continues
    after the cursor. ``cursor`` None: as :func:`initial_last_requested`.
    """
    start = initial_last_requested(known_sessions, None, replay_from)
    if cursor is None or start is None:
        return cursor if start is None else start
    return max(cursor, start)


def exchange_date(moment: dt.datetime | pd.Timestamp) -> pd.Timestamp:
    """The New York date of ``moment`` (a naive ``moment`` is read as UTC)."""
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return stamp.tz_convert(EXCHANGE_TZ).tz_localize(None).normalize()


def session_of_tick(scheduled: dt.datetime | pd.Timestamp, sessions: Iterable[pd.Timestamp | str]) -> pd.Timestamp | None:
    """The session a schedule tick at ``scheduled`` belongs to: its New York date, if a session.

    Returns ``None`` on a holiday or weekend (the date is not in ``sessions``).
    """
    day = exchange_date(scheduled)
    return day if day in {parse_day(s, "session") for s in sessions} else None


def format_day(day: pd.Timestamp) -> str:
    """The partition key / run key of ``day``."""
    return pd.Timestamp(day).strftime(DAY_FORMAT)
