"""Runtime settings, read from environment variables with defaults that run.

=============================  ==========================================================
variable                       meaning (default)
=============================  ==========================================================
PROMETHEUS_HOME                storage root, local path or fsspec URL (``./data``)
PROMETHEUS_SOURCE              ``bundled`` | ``synthetic`` | a directory of bar files (``bundled``)
PROMETHEUS_SYNTHETIC_ASSETS    number of synthetic assets (500)
PROMETHEUS_SYNTHETIC_SEED      seed of the synthetic generator (7)
PROMETHEUS_START               first day of history to build (the source's first day)
PROMETHEUS_END                 last day of history to build (the source's last day)
PROMETHEUS_SLEEVES             a directory of your own sleeve (book) YAML files (the bundled
                               ``prometheus_assets/configs/sleeves/``)
PROMETHEUS_REPLAY_FROM         replay mode of ``eod_sensor``: reveal the source's history one
                               session per tick from this day (unset: live mode)
PROMETHEUS_EOD_INTERVAL        seconds between two ``eod_sensor`` ticks (30)
PROMETHEUS_READ_CACHE_MB       per-process cache of Parquet reads, MiB (256; 0 turns it off; read by ``resources.storage``)
DAGSTER_HOME                   Dagster instance directory (``<PROMETHEUS_HOME>/dagster_home``
                               for a local root, else ``./.dagster_home``)
=============================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from prometheus_assets.errors import SourceConfigError


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SourceConfigError(f"{name}={raw!r} is not an integer") from exc


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SourceConfigError(f"{name}={value} must be a positive number of seconds")
    return value


def _date(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return pd.Timestamp(raw).strftime("%Y-%m-%d")
    except (ValueError, TypeError) as exc:
        raise SourceConfigError(f"{name}={raw!r} is not a date (use YYYY-MM-DD)") from exc


def is_url(path: str) -> bool:
    """Whether ``path`` names a non-local fsspec location (``memory://``, ``s3://`` ...)."""
    return "://" in path and not path.startswith("file://")


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a Prometheus deployment (see the module docstring)."""

    home: str = "./data"
    source: str = "bundled"
    synthetic_assets: int = 500
    synthetic_seed: int = 7
    start: str | None = None
    end: str | None = None
    sleeves: str | None = None
    replay_from: str | None = None
    eod_interval: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); invalid values raise ``SourceConfigError``."""
        e = os.environ if env is None else env
        home = e.get("PROMETHEUS_HOME", "").strip() or "./data"
        if not is_url(home):
            home = os.path.abspath(home.removeprefix("file://"))
        source = e.get("PROMETHEUS_SOURCE", "").strip() or "bundled"
        if source not in ("bundled", "synthetic"):
            source = os.path.abspath(source)
        return cls(
            home=home,
            source=source,
            synthetic_assets=_int(e, "PROMETHEUS_SYNTHETIC_ASSETS", 500),
            synthetic_seed=_int(e, "PROMETHEUS_SYNTHETIC_SEED", 7),
            start=_date(e, "PROMETHEUS_START"),
            end=_date(e, "PROMETHEUS_END"),
            sleeves=os.path.abspath(e["PROMETHEUS_SLEEVES"].strip()) if e.get("PROMETHEUS_SLEEVES", "").strip() else None,
            replay_from=_date(e, "PROMETHEUS_REPLAY_FROM"),
            eod_interval=_positive(e, "PROMETHEUS_EOD_INTERVAL", 30),
        )

    def dagster_home(self, env: Mapping[str, str] | None = None) -> str:
        """``DAGSTER_HOME`` if set, else a directory inside the storage root (or ``./.dagster_home``)."""
        e = os.environ if env is None else env
        if e.get("DAGSTER_HOME", "").strip():
            return os.path.abspath(e["DAGSTER_HOME"])
        if is_url(self.home):
            return os.path.abspath(".dagster_home")
        return os.path.join(self.home, "dagster_home")
