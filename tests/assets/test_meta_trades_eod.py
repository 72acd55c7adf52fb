"""closed_trades, portfolio_returns and meta_orchestrator continue stored state on an EOD day, with the full replay's bytes.

Uses the session's synthetic full build (tests/conftest.py ``full_build``); run it together with
tests/assets/test_state_spaces.py to build that once.
"""

import json
import shutil

import pandas as pd

from prometheus_assets.resources.storage import ParquetStore
from tests.assets.test_state_spaces import _materialization_metadata
from tests.conftest import run_range, synthetic, tree_hashes

END = "2017-03-31"
MANIFEST = "state/meta_orchestrator/manifest.json"


def test_eod_day_of_closed_trades_and_portfolio_returns_continues_the_previous_close(full_build, tmp_path):
    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    watched = lambda: {k: v for k, v in tree_hashes(home, "**/*").items()  # noqa: E731
                       if k.startswith(("parquet/closed_trades/", "parquet/portfolio_returns/", f"state/closed_trades/{END}", f"state/portfolio_returns/{END}"))}
    built = watched()
    assert f"state/closed_trades/{END}.json" in built and f"state/portfolio_returns/{END}.json" in built
    selection = ["closed_trades", "portfolio_returns"]
    # the day before, alone: no state before it, so a replay from the first day (writes the state of 03-30)
    first = run_range(synthetic(home, END), "2017-03-30", "2017-03-30", selection=selection)
    for asset in selection:
        assert _materialization_metadata(first, asset)["resumed_from_state"] is False
    # the EOD day: continues that state and reads a window only
    eod = run_range(synthetic(home, END), END, END, selection=selection)
    for asset in selection:
        assert _materialization_metadata(eod, asset)["resumed_from_state"] is True
    assert watched() == built
    # open trades were carried through the day (the state is not empty)
    state = json.loads((home / "state" / "closed_trades" / f"{END}.json").read_bytes())
    assert any(state["books"].values())


def test_meta_orchestrator_reuses_unchanged_dates_and_recomputes_from_a_changed_one(full_build, tmp_path):
    home = tmp_path / "data"
    shutil.copytree(full_build, home)
    table = "parquet/meta_orchestrator/data.parquet"
    watched = lambda: {k: v for k, v in tree_hashes(home, "**/*").items() if k in (table, MANIFEST)}  # noqa: E731
    built = watched()
    assert set(built) == {table, MANIFEST}
    meta = lambda result: _materialization_metadata(result, "meta_orchestrator")  # noqa: E731

    # nothing changed: every date reused
    again = meta(run_range(synthetic(home, END), END, END, selection=["meta_orchestrator"]))
    assert again["computed_this_run"] == 0 and again["reused"] == again["selections"] > 10
    assert watched() == built

    # an EOD day: the newest year file has changed (new days appended), the newest date is new
    path = home / MANIFEST
    manifest = json.loads(path.read_bytes())
    newest = max(manifest["entries"])
    del manifest["entries"][newest]
    for key, entry in manifest["entries"].items():
        if key.startswith("2017"):
            entry["files"] = ["0" * 64, "0" * 64]
    path.write_text(json.dumps(manifest))
    eod = meta(run_range(synthetic(home, END), END, END, selection=["meta_orchestrator"]))
    assert eod["computed_this_run"] == 1 and eod["reused"] == eod["selections"] - 1
    assert watched() == built

    # a corrected upstream partition in 2016: the dates whose inputs include it are recomputed, the earlier reused
    store = ParquetStore(str(home))
    rows = store.read("sleeve_returns", "2016-06-01", "2016-06-30")
    day = rows["date"].iloc[len(rows) // 2]
    rows.loc[rows["date"] == day, "return"] += 0.01
    store.write_dated("sleeve_returns", rows[rows["date"] == day], [day])
    changed = meta(run_range(synthetic(home, END), END, END, selection=["meta_orchestrator"]))
    # the dates before that day keep their inputs (the 2016 file changed, their rows of it did not)
    recomputed = [k for k in json.loads(path.read_bytes())["entries"] if pd.Timestamp(k) >= day]
    assert changed["computed_this_run"] == len(recomputed) and changed["reused"] == changed["selections"] - len(recomputed) > 0
    incremental = watched()
    assert incremental[table] != built[table]
    # ... and the result is what a run without any manifest computes
    (home / MANIFEST).unlink()
    scratch = meta(run_range(synthetic(home, END), END, END, selection=["meta_orchestrator"]))
    assert scratch["reused"] == 0
    assert watched() == incremental
