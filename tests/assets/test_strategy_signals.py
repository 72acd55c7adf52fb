"""strategy_signals is incremental: the daily run continues from the state carried out of the previous session.

The acceptance gate is bit-identity: one backfill, history up to t − 1 followed by one-day runs, and
a day re-materialized alone (no carried state: a full replay) give the same bytes, for the table and
for the carried state.
"""

import hashlib
from pathlib import Path

import dagster as dg
import pytest

from prometheus_assets.assets.assessment import STRATEGY_STATE_DIR
from prometheus_assets.resources.storage import ParquetStore
from prometheus_assets.settings import Settings
from tests.conftest import run_range

pytestmark = pytest.mark.slow

#: More than 252 sessions, so the 12-1 momentum rows exist too.
START, END = "2017-01-03", "2018-03-29"
DAYS = ["2018-03-26", "2018-03-27", "2018-03-28", "2018-03-29"]
SELECTION = ["instruments", "prices_daily", "strategy_signals"]


def settings_for(home: Path) -> Settings:
    return Settings(home=str(home), source="synthetic", synthetic_assets=8, synthetic_seed=3, start=START, end=END)


def hashes(home: Path) -> dict[str, str]:
    files = sorted((home / "parquet" / "strategy_signals").rglob("*.parquet")) + sorted((home / STRATEGY_STATE_DIR).glob("*.json"))
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def prices_from(result: dg.ExecuteInProcessResult) -> str:
    (event,) = result.get_asset_materialization_events()[-1:]
    return event.materialization.metadata["prices_from"].value


def test_eod_days_from_the_carried_state_equal_one_backfill(tmp_path):
    one, daily = tmp_path / "one" / "data", tmp_path / "daily" / "data"
    run_range(settings_for(one), START, END, selection=SELECTION)
    run_range(settings_for(daily), START, "2018-03-23", selection=SELECTION)
    for day in DAYS:
        result = run_range(settings_for(daily), day, day, selection=SELECTION)
        assert prices_from(result) == "carried state"
    a, b = hashes(one), hashes(daily)
    assert f"{STRATEGY_STATE_DIR}/2018-03-29.json" in a
    assert {k: v for k, v in b.items() if k in a} == a  # same table bytes, same final state
    signals = ParquetStore(str(one)).read("strategy_signals")
    assert set(signals["strategy"]) == {"bollinger_mean_reversion", "macd_rsi_confluence", "momentum_rank"}

    # A range re-materialized over days that have states: those states were carried out of the rows it
    # replaced, so they go (a later run of one of those days alone would continue from them); its last stays.
    result = run_range(settings_for(daily), DAYS[1], DAYS[-1], selection=["strategy_signals"])
    assert prices_from(result) == "carried state"
    states = sorted(p.name for p in (daily / STRATEGY_STATE_DIR).glob("*.json"))
    assert states[-2:] == [f"{DAYS[0]}.json", f"{DAYS[-1]}.json"] and not any(f"{d}.json" in states for d in DAYS[1:-1])
    assert {k: v for k, v in hashes(daily).items() if k in a} == a

    # No carried state for the day before: the day is replayed from the first day, same bytes.
    for state in (daily / STRATEGY_STATE_DIR).glob("*.json"):
        state.unlink()
    result = run_range(settings_for(daily), DAYS[-1], DAYS[-1], selection=["strategy_signals"])
    assert prices_from(result).startswith("first day")
    assert hashes(daily) == {k: v for k, v in a.items() if not k.startswith(STRATEGY_STATE_DIR) or k.endswith("2018-03-29.json")}
