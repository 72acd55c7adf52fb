"""A store of fitted models (PCA encoders, regime prototypes, assessment models) under the storage root.

Layout::

    <home>/models/<kind>/<model_id>.joblib        the pickled estimator (joblib)
    <home>/models/<kind>/<model_id>.json          manifest: sha256 of the .joblib, fit metadata

Loading re-hashes the artifact and refuses it (``ModelIntegrityError``) unless the hash matches the
manifest written when we saved it, and only paths under our own root are ever read: a pickle is
code, so we never unpickle a file we did not write. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from typing import Any

import fsspec
import joblib

from prometheus_assets.resources.storage import check_identifier
from prometheus_assets.errors import StorageError

_MODEL_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class ModelIntegrityError(StorageError):
    """A stored model's bytes do not match the hash recorded when it was saved."""


def _check_model_id(model_id: str) -> str:
    if not model_id or not set(model_id) <= _MODEL_ID_CHARS or model_id.startswith(".") or ".." in model_id:
        raise StorageError(f"invalid model id {model_id!r}")
    return model_id


class ModelStore:
    """Save and load fitted models with integrity manifests."""

    def __init__(self, home: str) -> None:
        self.home = str(home).rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.home)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.is_local = protocol in ("file", "local")
        self.root = os.path.abspath(root) if self.is_local else root.rstrip("/")

    def _paths(self, kind: str, model_id: str) -> tuple[str, str]:
        base = f"{self.root}/models/{check_identifier(kind)}/{_check_model_id(model_id)}"
        return f"{base}.joblib", f"{base}.json"

    def _put(self, path: str, data: bytes) -> None:
        directory = path.rsplit("/", 1)[0]
        self.fs.mkdirs(directory, exist_ok=True)
        if self.is_local:
            tmp = f"{directory}/.{path.rsplit('/', 1)[1]}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def exists(self, kind: str, model_id: str) -> bool:
        blob, manifest = self._paths(kind, model_id)
        return self.fs.exists(blob) and self.fs.exists(manifest)

    def save(self, kind: str, model_id: str, model: Any, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Persist ``model`` and its manifest; returns the manifest."""
        blob_path, manifest_path = self._paths(kind, model_id)
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        data = buffer.getvalue()
        manifest = {"kind": kind, "model_id": model_id, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), **(metadata or {})}
        self._put(blob_path, data)  # blob first: a manifest never points at a missing blob
        self._put(manifest_path, json.dumps(manifest, sort_keys=True, default=str).encode())
        return manifest

    def manifest(self, kind: str, model_id: str) -> dict[str, Any]:
        _, manifest_path = self._paths(kind, model_id)
        with self.fs.open(manifest_path, "rb") as handle:
            return json.loads(handle.read())

    def load(self, kind: str, model_id: str) -> Any:
        """Load a model saved by :meth:`save`, after checking its hash against the manifest."""
        blob_path, _ = self._paths(kind, model_id)
        if not self.exists(kind, model_id):
            raise StorageError(f"no stored model {kind}/{model_id} under {self.home}")
        expected = self.manifest(kind, model_id)["sha256"]
        with self.fs.open(blob_path, "rb") as handle:
            data = handle.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ModelIntegrityError(f"model {kind}/{model_id} fails its integrity check (sha256 {actual[:12]}… ≠ manifest {expected[:12]}…); refusing to load it")
        return joblib.load(io.BytesIO(data))
