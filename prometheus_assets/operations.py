"""Operations: the end-of-day job, its data-arrival sensor and its clock schedule.

* ``eod_job``: the whole graph (every asset and check) for one trading day's partition. Live
  operation is the newest partition of the same graph a backfill builds (DESIGN.md). The
  unpartitioned assets (registries, fitted models, whole-table evaluations) run in the same run,
  after their daily inputs, exactly as in ``make run``. Runs of this job carry the tag
  ``prometheus/queue=graph``; the instance ``prometheus`` writes limits that tag to one run at a
  time (see :data:`prometheus_assets.cli.DAGSTER_YAML`), so the days of a catch-up run one after
  the other, oldest first: day t+1 reads the state day t wrote.
* ``eod_sensor`` (running by default): each tick asks the configured source which sessions it
  has now and requests one run per session after its cursor, oldest first (``run_key`` =
  ``partition_key`` = the day). The cursor is the last requested day, so a daemon restart or a
  repeated tick never requests a day twice (Dagster also refuses a second run with the same
  ``run_key`` for the sensor). With ``PROMETHEUS_REPLAY_FROM`` set it is a replay clock instead:
  one new session of the source's history per tick, starting at that day.
* ``eod_schedule`` (stopped by default): for deployments without a data-arrival signal, at 16:30
  New York time on weekdays, a run for that day when it is an NYSE session (holidays are
  skipped with a reason).

The day arithmetic is pure and lives in :mod:`prometheus_assets.core.eod`.
"""

import dagster as dg
import pandas as pd

from prometheus_assets.assets.canonical import today_session
from prometheus_assets.core import calendar
from prometheus_assets.core.eod import exchange_date, format_day, initial_last_requested, new_sessions, parse_day, replay_last_requested, session_of_tick
from prometheus_assets.resources import MarketDataResource
from prometheus_assets.settings import Settings

EOD_JOB_NAME = "eod_job"
#: Runs with this tag value are limited to one at a time by the instance config ``prometheus`` writes.
QUEUE_TAG = "prometheus/queue"
QUEUE_VALUE = "graph"
#: Which trigger asked for a run (``eod_sensor`` or ``eod_schedule``).
TRIGGER_TAG = "prometheus/trigger"
#: The asset whose newest materialized partition tells a new sensor where history ends.
ANCHOR_ASSET = dg.AssetKey("prices_daily")
#: 16:30 New York: after the NYSE close (16:00; 13:00 on half-days), Monday to Friday.
EOD_CRON = "30 16 * * 1-5"

eod_job = dg.define_asset_job(
    EOD_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description=(
        "The whole Prometheus graph (every asset and asset check) for a trading-day partition: one run per "
        "day from eod_sensor / eod_schedule, or one run for a whole range when backfilled from this job's "
        "Partitions tab (every daily asset has a single-run backfill policy). Runs in one process: an EOD day's "
        "steps are short, and a process per step would cost more than it saves (see the README)."
    ),
    tags={QUEUE_TAG: QUEUE_VALUE},
    executor_def=dg.in_process_executor,
)


def _last_built(instance: dg.DagsterInstance) -> str | None:
    keys = instance.get_materialized_partitions(ANCHOR_ASSET)
    return max(keys) if keys else None


def known_sessions(market_data: MarketDataResource, today: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """Sessions the configured source has data for now: first to last bar, never after today."""
    first, last = market_data.get().span()
    end = min(last, today if today is not None else today_session())
    if end < first:
        return pd.DatetimeIndex([], name="date")
    return calendar.trading_sessions(first, end)


def _cursor_day(cursor: str | None) -> pd.Timestamp | None:
    if cursor is None:
        return None
    try:
        return parse_day(cursor, "eod_sensor cursor")
    except ValueError as exc:
        raise ValueError(
            f"{exc}; the cursor is the last requested day: set it to a YYYY-MM-DD day (or clear it) "
            "from the sensor's page in the UI"
        ) from None


def build_eod_sensor(settings: Settings) -> dg.SensorDefinition:
    """``eod_sensor`` for ``settings`` (live mode, or a replay clock when ``replay_from`` is set)."""
    replay_from = settings.replay_from
    mode = f"replay of the source's history from {replay_from}, one session per tick" if replay_from else "live"

    @dg.sensor(
        name="eod_sensor",
        job=eod_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.eod_interval,
        description=(
            f"Requests one eod_job run per new trading day of the configured source ({mode}), oldest first; "
            "run_key = partition = the day; the cursor is the last requested day. A new sensor starts after "
            "the newest built day of prices_daily (or the source's newest day when nothing is built: build "
            "history with a backfill or `make run`)."
        ),
    )
    def eod_sensor(context: dg.SensorEvaluationContext, market_data: MarketDataResource) -> dg.SensorResult:
        known = known_sessions(market_data)
        last = _cursor_day(context.cursor)
        if context.cursor is None:
            last = initial_last_requested(known, _last_built(context.instance), replay_from)
        elif replay_from:
            last = replay_last_requested(last, known, replay_from)
        pending = new_sessions(known, last, limit=1 if replay_from else None)
        cursor = format_day(last) if last is not None else None
        if not pending:
            newest = format_day(known[-1]) if len(known) else "none"
            if replay_from:
                reason = (f"replay finished: every session of the source up to {newest} has been requested (last requested "
                          f"{cursor or 'none'}; a day is requested once, so a replay start at or before it cannot go back)")
            else:
                reason = f"no new trading day: last requested {cursor or 'none'}, newest in the source {newest}"
            return dg.SensorResult(skip_reason=reason, cursor=cursor)
        keys = [format_day(day) for day in pending]
        context.log.info(f"eod_sensor: requesting {', '.join(keys)}")
        requests = [dg.RunRequest(run_key=key, partition_key=key, tags={TRIGGER_TAG: "eod_sensor"}) for key in keys]
        return dg.SensorResult(run_requests=requests, cursor=keys[-1])

    return eod_sensor


@dg.schedule(
    name="eod_schedule",
    job=eod_job,
    cron_schedule=EOD_CRON,
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Clock alternative to eod_sensor for sources without a data-arrival signal: at 16:30 New York time "
        "on weekdays, one eod_job run for that day's partition when it is an NYSE session (holidays skipped). "
        "Start either this schedule or eod_sensor, not both."
    ),
)
def eod_schedule(context: dg.ScheduleEvaluationContext):
    tick = context.scheduled_execution_time or pd.Timestamp.now(tz="UTC")
    ny_day = exchange_date(tick)
    day = session_of_tick(tick, calendar.trading_sessions(ny_day - pd.Timedelta(days=7), ny_day))
    if day is None:
        return dg.SkipReason(f"{ny_day:%Y-%m-%d} ({ny_day:%A}) is not an NYSE session: no EOD run")
    key = format_day(day)
    return dg.RunRequest(run_key=key, partition_key=key, tags={TRIGGER_TAG: "eod_schedule"})


__all__ = ["build_eod_sensor", "eod_job", "eod_schedule", "known_sessions", "EOD_JOB_NAME", "QUEUE_TAG", "QUEUE_VALUE"]
