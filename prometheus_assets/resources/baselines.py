"""Frozen allocator baselines: copies of allocator artifacts under ``baselines/<id>/`` with hashes.

``precomputed`` mode must give bit-identical production results from the same baseline, so a
baseline is frozen once (never overwritten), every file's sha256 is recorded in
``baselines/<id>/manifest.json``, and a load re-hashes the file and refuses it on any mismatch.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prometheus_assets.resources.storage import ParquetStore, to_pandas

_BASELINE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # matched whole (fullmatch)


class BaselineError(Exception):
    """A baseline is missing, already frozen, or its files do not match their recorded hashes."""


def _check_id(baseline_id: str) -> str:
    if not _BASELINE_ID.fullmatch(baseline_id or ""):
        raise BaselineError(f"baseline id {baseline_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return baseline_id


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue()


def freeze_baseline(store: ParquetStore, baseline_id: str, tables: list[str]) -> dict:
    """Copy ``tables`` (as stored now) to ``baselines/<id>/<table>.parquet`` with a sha256 manifest."""
    _check_id(baseline_id)
    if store.read_bytes(f"baselines/{baseline_id}/manifest.json") is not None:
        raise BaselineError(f"baseline {baseline_id!r} is already frozen; choose a new id (baselines are never overwritten)")
    files = {}
    for table in tables:
        data = _parquet_bytes(store.read(table))
        store.write_bytes(f"baselines/{baseline_id}/{table}.parquet", data)
        files[f"{table}.parquet"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest = {"baseline_id": baseline_id, "frozen_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "files": files}
    store.write_text(f"baselines/{baseline_id}/manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def load_baseline(store: ParquetStore, baseline_id: str, filename: str) -> pd.DataFrame:
    """``filename`` of a frozen baseline, after checking its sha256 against the manifest."""
    _check_id(baseline_id)
    store._relative_path(f"baselines/{baseline_id}/{filename}")  # PathEscapeError before anything is read
    raw = store.read_bytes(f"baselines/{baseline_id}/manifest.json")
    if raw is None:
        raise BaselineError(f"no frozen baseline {baseline_id!r} under {store.url(store.root)}/baselines (freeze one first)")
    entry = json.loads(raw).get("files", {}).get(filename)
    if entry is None:
        raise BaselineError(f"baseline {baseline_id!r} has no file {filename!r}")
    data = store.read_bytes(f"baselines/{baseline_id}/{filename}")
    if data is None or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise BaselineError(f"baseline {baseline_id!r}: {filename} does not match its recorded sha256 (modified or truncated); refusing to load it")
    return to_pandas(pq.read_table(io.BytesIO(data)))
