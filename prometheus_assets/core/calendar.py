"""The NYSE trading calendar: sessions, holidays and the calendar flags later layers use.

All session logic comes from ``exchange_calendars`` (calendar ``XNYS``); nothing here encodes a
holiday by hand. Dates are timezone-naive midnight timestamps of the session's local date.
"""

from __future__ import annotations

from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

EXCHANGE = "XNYS"
#: Earliest date our calendar is built from (the bundled history starts 1990-01-02).
CALENDAR_FLOOR = pd.Timestamp("1980-01-02")


@lru_cache(maxsize=4)
def _calendar(exchange: str = EXCHANGE) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(exchange, start=CALENDAR_FLOOR)


def calendar_last_session(exchange: str = EXCHANGE) -> pd.Timestamp:
    """The last session the installed ``exchange_calendars`` knows (roughly a year ahead of today)."""
    return pd.Timestamp(_calendar(exchange).last_session)


def trading_sessions(
    start: pd.Timestamp | str, end: pd.Timestamp | str | None = None, exchange: str = EXCHANGE
) -> pd.DatetimeIndex:
    """Sessions of ``exchange`` with ``start <= session <= end`` (end defaults to the calendar's last).

    Half-days are sessions; holidays and weekends are not.
    """
    sessions = _calendar(exchange).sessions
    start_ts = pd.Timestamp(start)
    if start_ts < CALENDAR_FLOOR:
        raise ValueError(f"start {start_ts.date()} is before the calendar floor {CALENDAR_FLOOR.date()}")
    end_ts = calendar_last_session(exchange) if end is None else pd.Timestamp(end)
    out = sessions[(sessions >= start_ts) & (sessions <= end_ts)]
    return pd.DatetimeIndex(out.astype("datetime64[ns]"), name="date")


def weekday_closures(
    start: pd.Timestamp | str, end: pd.Timestamp | str | None = None, exchange: str = EXCHANGE
) -> pd.DatetimeIndex:
    """Weekdays between ``start`` and ``end`` on which the exchange is closed (holidays, closures)."""
    end_ts = calendar_last_session(exchange) if end is None else pd.Timestamp(end)
    weekdays = pd.bdate_range(pd.Timestamp(start), end_ts)
    return pd.DatetimeIndex(weekdays.difference(trading_sessions(start, end_ts, exchange)), name="date")


def early_closes(exchange: str = EXCHANGE) -> pd.DatetimeIndex:
    """Sessions that close early (half-days)."""
    return pd.DatetimeIndex(_calendar(exchange).early_closes.astype("datetime64[ns]"))


def previous_session(date: pd.Timestamp | str, exchange: str = EXCHANGE) -> pd.Timestamp:
    """The session strictly before ``date``."""
    sessions = _calendar(exchange).sessions
    pos = sessions.searchsorted(pd.Timestamp(date), side="left")
    if pos == 0:
        raise ValueError(f"no session before {pd.Timestamp(date).date()}")
    return pd.Timestamp(sessions[pos - 1])


def first_owned_day(session: pd.Timestamp | str, exchange: str = EXCHANGE) -> pd.Timestamp:
    """The first calendar day whose bars belong to ``session``'s partition: the day after the previous session.

    A bar dated on a weekend or holiday belongs to the next session's partition (that is where
    validation quarantines it), so a run whose first partition is ``session`` must read bars from
    this day on, not from ``session`` itself: reading from the session silently skipped the rows of
    the closed days just before it. With no earlier session in the calendar, ``session`` itself.
    """
    try:
        return previous_session(session, exchange) + pd.Timedelta(days=1)
    except ValueError:
        return pd.Timestamp(session).normalize()


def calendar_table(sessions: pd.DatetimeIndex, half_days: pd.DatetimeIndex) -> pd.DataFrame:
    """One row per session with the flags later layers schedule on.

    Columns: ``date``, ``session_index`` (0-based position), ``is_half_day``, ``is_week_end``,
    ``is_month_end``, ``is_quarter_end``, ``is_year_end`` (the last *session* of the week, month,
    quarter, year), ``is_month_start``, and the rebalance flags ``rebalance_weekly`` /
    ``rebalance_monthly`` / ``rebalance_quarterly`` (true on the last session of the period, the
    close at which a periodic book trades).

    The last session of a period is only known once the following session is known, which the
    calendar (published a year ahead) always provides: no look-ahead into market data.
    """
    s = pd.DatetimeIndex(sessions).sort_values()
    frame = pd.DataFrame({"date": s.astype("datetime64[ns]")})
    frame["session_index"] = range(len(frame))
    frame["is_half_day"] = frame["date"].isin(half_days)
    nxt = frame["date"].shift(-1)
    prev = frame["date"].shift(1)
    # The final row's successor is unknown (beyond the published calendar): it counts as the end of
    # every period. That row lies about a year after the newest data, so no book ever trades on it.
    week = frame["date"].dt.to_period("W-SUN")
    frame["is_week_end"] = (week != nxt.dt.to_period("W-SUN")).fillna(True)
    frame["is_month_end"] = (frame["date"].dt.month != nxt.dt.month) | nxt.isna()
    frame["is_quarter_end"] = (frame["date"].dt.quarter != nxt.dt.quarter) | nxt.isna()
    frame["is_year_end"] = (frame["date"].dt.year != nxt.dt.year) | nxt.isna()
    frame["is_month_start"] = (frame["date"].dt.month != prev.dt.month) | prev.isna()
    frame["rebalance_weekly"] = frame["is_week_end"]
    frame["rebalance_monthly"] = frame["is_month_end"]
    frame["rebalance_quarterly"] = frame["is_quarter_end"]
    bool_cols = [c for c in frame.columns if c.startswith(("is_", "rebalance_"))]
    frame[bool_cols] = frame[bool_cols].astype(bool)
    return frame
