"""Shared fixtures: temporary storage roots, real Dagster instances, and a helper that runs the graph."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from prometheus_assets.definitions import build_definitions
from prometheus_assets.resources.files_source import write_day_files  # noqa: F401 (the tests import it from here)
from prometheus_assets.settings import Settings


#: Run config that keeps Dagster's per-event DEBUG lines out of the test output.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_range(settings: Settings, start: str, end: str, instance: dg.DagsterInstance | None = None, selection=None, run_config: dict | None = None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """Materialize the graph (or ``selection``) for the partition range ``start``…``end`` in one run.

    ``raise_on_error=False`` returns the failed run's result instead of raising (to inspect what the
    instance recorded about the failure).
    """
    defs = build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    if selection is not None:
        job = job.get_subset(asset_selection=set(dg.AssetKey(k) for k in selection))
    return job.execute_in_process(
        run_config={**QUIET, **(run_config or {})},
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
        raise_on_error=raise_on_error,
    )


def synthetic(home, end: str) -> Settings:
    """The small synthetic deployment the graph-level tests build (30 assets from 2014)."""
    return Settings(home=str(home), source="synthetic", synthetic_assets=30, synthetic_seed=11, start="2014-01-02", end=end)


@pytest.fixture(scope="session")
def full_build(tmp_path_factory):
    """The whole graph built once on the synthetic source, 2014-01-02 … 2017-03-31."""
    home = tmp_path_factory.mktemp("full") / "data"
    run_range(synthetic(home, "2017-03-31"), "2014-01-02", "2017-03-31")
    return home


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """Check evaluations of a run, by check name."""
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            out[ev.check_name] = ev
    return out


def tree_hashes(root: Path, pattern: str = "**/*.parquet") -> dict[str, str]:
    """SHA-256 of every file matching ``pattern`` under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob(pattern)) if p.is_file()}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty local storage root."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@contextlib.contextmanager
def sqlite_instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    """A real on-disk (SQLite) Dagster instance in the (new) directory ``dagster_home``."""
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        yield instance


@pytest.fixture
def persistent_instance(tmp_path: Path):
    """A real on-disk (SQLite) Dagster instance in a temporary DAGSTER_HOME."""
    with sqlite_instance(tmp_path / "dagster_home") as instance:
        yield instance


def bundled_wide(start: str, end: str) -> pd.DataFrame:
    """The bundled S&P 500 prices (dates × 20 symbols) between two dates."""
    from skfolio.datasets import load_sp500_dataset

    prices = load_sp500_dataset()
    return prices.loc[start:end]


os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
