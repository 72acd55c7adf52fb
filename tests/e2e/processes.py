"""Real Dagster processes for the end-to-end tests: a webserver and a daemon on 127.0.0.1.

``DagsterDeployment`` owns one temporary deployment: a ``DAGSTER_HOME`` prepared by
``prometheus`` (the same ``dagster.yaml`` ``make ui`` writes), a storage root, a files source,
and the processes. Processes are started in their own process group and always killed by
:meth:`DagsterDeployment.stop` (the fixtures call it in their teardown).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

BIN = Path(sys.executable).parent
MODULE = "prometheus_assets.definitions"
LOCATION = "prometheus_assets.definitions"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 1.0, on_timeout: Callable[[], str] | None = None) -> Any:
    """Call ``probe`` until it returns something truthy; fail with ``what`` (and diagnostics) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail}")
        time.sleep(interval)


def write_synthetic_files(directory: Path, sessions: pd.DatetimeIndex, n_assets: int = 30, seed: int = 11) -> list[Path]:
    """A files source made by the project's synthetic generator: one ``YYYY-MM-DD.csv`` per session
    plus an ``instruments.csv`` registry (the documented format of ``resources/files_source.py``)."""
    from prometheus_assets.core.synthetic import generate_market

    market = generate_market(sessions, n_assets=n_assets, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    registry = market.instruments[["symbol", "name", "sector", "industry", "currency"]]
    registry.to_csv(directory / "instruments.csv", index=False)
    bars = market.bars.copy()
    bars["date"] = bars["date"].dt.strftime("%Y-%m-%d")
    paths = []
    for day, rows in bars.groupby("date", sort=True):
        paths.append(write_atomically(directory / f"{day}.csv", rows.to_csv(index=False)))
    return paths


def write_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to a hidden temporary file beside ``path`` and rename it: the files source
    ignores hidden files, so a sensor tick never sees a half-written day."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


class DagsterDeployment:
    """A temporary Prometheus deployment with a real ``dagster-webserver`` and ``dagster-daemon``."""

    def __init__(self, root: Path, source: Path, extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.home = root / "data"
        self.dagster_home = root / "dagster_home"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "DAGSTER_"))}
        env.update(
            {
                "PROMETHEUS_HOME": str(self.home),
                "PROMETHEUS_SOURCE": str(source),
                "DAGSTER_HOME": str(self.dagster_home),
                "DAGSTER_DISABLE_TELEMETRY": "1",
                **(extra_env or {}),
            }
        )
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}
        self._prepare_home()

    # ------------------------------------------------------------------ set-up
    def _prepare_home(self) -> None:
        """The ``dagster.yaml`` ``prometheus`` writes for ``make ui`` (fast event log, run queue limits)."""
        code = "from prometheus_assets.cli import prepare_dagster_home; from prometheus_assets.settings import Settings; print(prepare_dagster_home(Settings.from_env()))"
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        self.env.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
        self.env.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")  # as prometheus sets it (cli.PLANNED_EVENTS_AS_RANGES)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, env=self.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes[name] = proc
        return proc

    def start_webserver(self) -> None:
        self._start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port), "-m", MODULE])
        wait_for("the webserver to answer", self._webserver_ready, timeout=120, on_timeout=lambda: self.log_tail("webserver"))

    def start_daemon(self) -> None:
        self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-m", MODULE])

    def stop_process(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_process(name)

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return f"--- {name} log (tail) ---\n" + (path.read_text(errors="replace")[-chars:] if path.exists() else "(none)")

    # ------------------------------------------------------------------ GraphQL
    def _webserver_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            payload = json.loads(resp.read())
        assert "errors" not in payload, payload["errors"]
        return payload["data"]

    def runs(self) -> list[dict]:
        """Every run: id, status, tags (dict), oldest first."""
        data = self.graphql("{ runsOrError { ... on Runs { results { runId status jobName tags { key value } } } } }")
        runs = data["runsOrError"]["results"]
        for run in runs:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return list(reversed(runs))

    def run_failure_detail(self) -> str:
        """Error messages of failed runs and the processes' logs, for assertion messages."""
        lines = []
        for run in self.runs():
            if run["status"] == "FAILURE":
                data = self.graphql(
                    'query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }',
                    {"id": run["runId"]},
                )
                events = data["logsForRun"].get("events", [])
                lines.append(f"run {run['runId']} FAILED:\n" + "\n".join(e.get("message", "") for e in events if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent"))[-3000:])
        return "\n".join(lines) + "\n" + self.log_tail("daemon") + "\n" + self.log_tail("webserver")

    # ------------------------------------------------------------------ queries used by the tests
    def repository(self) -> dict:
        data = self.graphql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }")
        (repo,) = data["repositoriesOrError"]["nodes"]
        return {"repositoryName": repo["name"], "repositoryLocationName": repo["location"]["name"]}

    def asset_nodes(self) -> list[dict]:
        query = """{ assetNodes { assetKey { path } groupName description isPartitioned opVersion kinds
                     owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
                     tags { key value }
                     assetChecksOrError { ... on AssetChecks { checks { name description } } } } }"""
        return self.graphql(query)["assetNodes"]

    def sensor_state(self, name: str = "eod_sensor") -> dict:
        query = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename
                     ... on Sensor { sensorState { status typeSpecificData { ... on SensorData { lastCursor lastTickTimestamp } }
                     ticks(limit: 200) { id status timestamp cursor runKeys skipReason error { message } } } } } }"""
        data = self.graphql(query, {"s": {**self.repository(), "sensorName": name}})["sensorOrError"]
        assert data["__typename"] == "Sensor", data
        return data["sensorState"]

    def launch_job_backfill(self, job: str, partition_keys: list[str]) -> str:
        """A backfill of ``job``'s partition set over ``partition_keys`` (Jobs → job → Partitions → Backfill)."""
        query = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename
                     ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } ... on InvalidSubsetError { message } } }"""
        params = {"selector": {"partitionSetName": f"{job}_partition_set", "repositorySelector": self.repository()}, "partitionNames": partition_keys}
        result = self.graphql(query, {"p": params})["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        return result["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        query = "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } ... on PythonError { message } } }"
        return self.graphql(query, {"id": backfill_id})["partitionBackfillOrError"]["status"]

    def run_times(self, run_id: str) -> dict:
        query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime creationTime } } }"
        return self.graphql(query, {"id": run_id})["runOrError"]

    def check_executions(self) -> dict[str, dict[str, dict | None]]:
        """Per asset, per check: the execution for the latest materialization (status, runId) or None."""
        query = """{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name
                     executionForLatestMaterialization { status runId } } } } } }"""
        out = {}
        for node in self.graphql(query)["assetNodes"]:
            checks = node["assetChecksOrError"].get("checks", [])
            if checks:
                out[node["assetKey"]["path"][-1]] = {c["name"]: c["executionForLatestMaterialization"] for c in checks}
        return out
