"""A store of fitted models (PCA encoders, regime prototypes, assessment models) under the storage root.

Layout::

    <home>/models/<kind>/<model_id>.joblib        the pickled estimator (a standard pickle; ``joblib.load`` opens it)
    <home>/models/<kind>/<model_id>.json          manifest: sha256 of the .joblib, its format, fit metadata

Artifact format: a standard pickle (protocol 5), written and read by the C pickler, recorded as
``"format": "pickle"`` in the manifest. Artifacts saved before that have no ``format`` and are
joblib's own format, which :meth:`ModelStore.load` still reads with joblib. (joblib's unpickler
is the pure-Python one: a fitted HistGradientBoostingRegressor took ~47 ms to load against ~5 ms
for the same model as a standard pickle, and a full-history score run loads every model in force.)

A pickle is code, so we never unpickle a file we did not write:

* paths are built only from a validated kind (:func:`check_identifier`) and model id, and resolved
  under our own storage root (:func:`resolve_under`: ``..``, absolute paths and symlinks pointing
  outside the root raise ``PathEscapeError``);
* loading re-hashes the artifact and refuses it (``ModelIntegrityError``) unless the sha256 matches
  the manifest written when we saved it, and, when the caller has it, the sha256 recorded
  independently of the manifest (e.g. the ``assessment_models`` table): a blob and manifest
  swapped together are still refused.

Writes are atomic (hidden temp file + rename) and a save takes the artifact's lock, so concurrent
runs saving the same model never pair one run's blob with another's manifest.

Artifacts are byte-identical for equal models (:func:`model_bytes`), so re-fitting a seeded
model gives the same file and the same sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from typing import Any

import joblib

from prometheus_assets.errors import StorageError
from prometheus_assets.resources.storage import ParquetStore, check_identifier

_MODEL_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


#: The manifest's ``format`` of artifacts written by :func:`model_bytes`; a manifest without one is joblib's format.
ARTIFACT_FORMAT = "pickle"
PICKLE_PROTOCOL = 5


def model_bytes(model: Any) -> bytes:
    """``model`` as a standard pickle without the pickle memo: the bytes depend on its values only.

    A normal pickle writes an object seen twice once and then a back-reference, so its bytes depend
    on which equal objects happen to be the *same* object in memory. That varies with the process's
    history: a seeded HistGradientBoostingRegressor refitted later in the same process (fits run in
    joblib workers) pickled ``scoring='loss'`` as a fresh string instead of a back-reference to the
    ``'loss'`` key, changing its sha256 while predicting identically. Without the memo every value is
    written out in full, so equal models give equal bytes. (Shared sub-objects load as copies;
    fitted estimators do not rely on identity, and have no reference cycles, which this mode refuses.)
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=PICKLE_PROTOCOL)
    pickler.fast = True  # no memo
    pickler.dump(model)
    return buffer.getvalue()


class ModelIntegrityError(StorageError):
    """A stored model's bytes do not match the hash recorded when it was saved."""


def _check_model_id(model_id: str) -> str:
    if not model_id or not set(model_id) <= _MODEL_ID_CHARS or model_id.startswith(".") or ".." in model_id:
        raise StorageError(f"invalid model id {model_id!r}")
    return model_id


class ModelStore:
    """Save and load fitted models with integrity manifests."""

    def __init__(self, home: str) -> None:
        self._store = ParquetStore(home)
        self.home = self._store.home
        self.fs = self._store.fs
        self.is_local = self._store.is_local
        self.root = self._store.root

    def _paths(self, kind: str, model_id: str) -> tuple[str, str]:
        base = f"models/{check_identifier(kind)}/{_check_model_id(model_id)}"
        return self._store._relative_path(f"{base}.joblib"), self._store._relative_path(f"{base}.json")

    def stored_ids(self, kind: str) -> set[str]:
        """Ids of the models of ``kind`` with both an artifact and a manifest (one directory listing)."""
        names = set(self._store.list_names(f"models/{check_identifier(kind)}"))
        return {n[: -len(".json")] for n in names if n.endswith(".json") and n[: -len(".json")] + ".joblib" in names}

    def exists(self, kind: str, model_id: str) -> bool:
        blob, manifest = self._paths(kind, model_id)
        return self.fs.exists(blob) and self.fs.exists(manifest)

    def save(self, kind: str, model_id: str, model: Any, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Persist ``model`` and its manifest; returns the manifest."""
        blob_path, manifest_path = self._paths(kind, model_id)
        data = model_bytes(model)
        manifest = {"kind": kind, "model_id": model_id, **(metadata or {}), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                    "format": ARTIFACT_FORMAT}  # (the fields load() relies on last: metadata cannot override them)
        with self._store._locked(blob_path):
            self._store._put_atomic(blob_path, data)  # blob first: a manifest never points at a missing blob
            self._store._put_atomic(manifest_path, json.dumps(manifest, sort_keys=True, default=str).encode())
        return manifest

    def write_manifest(self, kind: str, model_id: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """Replace the manifest of a stored model (same serialisation as :meth:`save`); its sha256 must stay the blob's."""
        blob_path, manifest_path = self._paths(kind, model_id)
        if manifest.get("model_id") != model_id or manifest.get("sha256") != self.manifest(kind, model_id).get("sha256"):
            raise StorageError(f"a new manifest of {kind}/{model_id} must keep its model id and sha256")
        with self._store._locked(blob_path):
            self._store._put_atomic(manifest_path, json.dumps(manifest, sort_keys=True, default=str).encode())
        return json.loads(json.dumps(manifest, sort_keys=True, default=str))

    def manifest(self, kind: str, model_id: str) -> dict[str, Any]:
        _, manifest_path = self._paths(kind, model_id)
        with self.fs.open(manifest_path, "rb") as handle:
            return json.loads(handle.read())

    def load(self, kind: str, model_id: str, sha256: str | None = None) -> Any:
        """Load a model saved by :meth:`save`, after checking its hash against the manifest.

        ``sha256``: the hash recorded elsewhere when the model was fitted (e.g. ``assessment_models``);
        the artifact must match it too.
        """
        blob_path, _ = self._paths(kind, model_id)
        if not self.exists(kind, model_id):
            raise StorageError(f"no stored model {kind}/{model_id} under {self.home}")
        manifest = self.manifest(kind, model_id)
        expected = manifest["sha256"]
        with self.fs.open(blob_path, "rb") as handle:
            data = handle.read()
        actual = hashlib.sha256(data).hexdigest()
        for source, wanted in (("manifest", expected), ("recorded hash", sha256)):
            if wanted is not None and actual != wanted:
                raise ModelIntegrityError(f"model {kind}/{model_id} fails its integrity check (sha256 {actual[:12]}… ≠ {source} {wanted[:12]}…); refusing to load it")
        if manifest.get("format") == ARTIFACT_FORMAT:
            return pickle.loads(data)
        return joblib.load(io.BytesIO(data))  # saved before the format was recorded: joblib's own
