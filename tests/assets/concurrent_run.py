"""One writer of the concurrency test: the canonical daily assets over a partition range, a
process per step (Dagster's multiprocess executor), on the instance and storage root named by
the environment (``DAGSTER_HOME``, ``PROMETHEUS_*``), prepared as ``prometheus`` prepares it.

    python -m tests.assets.concurrent_run 2019-01-02 2019-02-28

Exits 0 if the run succeeded. Every step process rebuilds the job with :func:`canonical_job`.
"""

import sys
import warnings

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from prometheus_assets.cli import prepare_dagster_home
from prometheus_assets.definitions import build_definitions
from prometheus_assets.settings import Settings

#: Daily assets whose partitions depend on the source and a bounded lookback only (4 sessions of
#: prices for returns_daily), so two ranges further apart than that are independent, plus the
#: unpartitioned registry prices_daily reads (written by both runs, identically). Deeper layers
#: replay history from its first day, so their content would depend on what the other run wrote.
CANONICAL = ["instruments", "prices_daily", "returns_daily"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def canonical_job() -> dg.JobDefinition:
    job = dg.define_asset_job("canonical_multiprocess", selection=CANONICAL, executor_def=dg.multiprocess_executor)
    return dg.Definitions.merge(build_definitions(Settings.from_env()), dg.Definitions(jobs=[job])).resolve_job_def("canonical_multiprocess")


def main(start: str, end: str) -> int:
    warnings.filterwarnings("ignore")
    prepare_dagster_home(Settings.from_env())  # what every `prometheus` command does first
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(canonical_job),
            instance=instance,
            run_config={**QUIET, "execution": {"config": {"max_concurrent": 2}}},
            tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
        )
        print(f"run {result.run_id} {'succeeded' if result.success else 'FAILED'}", flush=True)
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
