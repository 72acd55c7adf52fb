"""One real deployment (dagster-webserver + dagster-daemon on 127.0.0.1) shared by the e2e tests.

The files source holds a short synthetic history (30 assets, 2024-01-02 … 2024-03-28) written by
the project's own generator; the day after (2024-04-01: 29 March is Good Friday) and two more
sessions are generated with it so the tests can drop them in as "new days".
"""

from pathlib import Path

import pandas as pd
import pytest

from prometheus_assets.core import calendar
from tests.e2e.processes import DagsterDeployment, write_synthetic_files

HISTORY_START, HISTORY_END = "2024-01-02", "2024-03-28"
NEW_DAYS = ["2024-04-01", "2024-04-02", "2024-04-03"]


@pytest.fixture(scope="session")
def synthetic_days(tmp_path_factory) -> Path:
    """Every day file (history and the new days) in a staging directory, named YYYY-MM-DD.csv."""
    staging = tmp_path_factory.mktemp("staging")
    write_synthetic_files(staging, calendar.trading_sessions(HISTORY_START, NEW_DAYS[-1]))
    return staging


@pytest.fixture(scope="session")
def deployment(tmp_path_factory, synthetic_days):
    """Webserver + daemon over a files source holding the history only; killed at teardown."""
    root = tmp_path_factory.mktemp("deployment")
    bars = root / "bars"
    bars.mkdir()
    (bars / "instruments.csv").write_bytes((synthetic_days / "instruments.csv").read_bytes())
    for path in sorted(synthetic_days.glob("*.csv")):
        if path.stem != "instruments" and pd.Timestamp(path.stem) <= pd.Timestamp(HISTORY_END):
            (bars / path.name).write_bytes(path.read_bytes())
    dep = DagsterDeployment(root, bars, {"PROMETHEUS_EOD_INTERVAL": "5"})
    dep.staging = synthetic_days
    try:
        dep.start_webserver()
        dep.start_daemon()
        yield dep
    finally:
        dep.stop()
