"""The model store: round trip, integrity refusal, identifiers."""

import pytest
from sklearn.decomposition import PCA
import numpy as np

from prometheus_assets.errors import StorageError
from prometheus_assets.resources.models import ModelIntegrityError, ModelStore


def test_round_trip_and_manifest(home):
    store = ModelStore(str(home))
    pca = PCA(n_components=2).fit(np.random.default_rng(0).normal(size=(50, 4)))
    manifest = store.save("numeric_encoder", "enc-20200102", pca, {"train_end": "2019-12-31"})
    assert manifest["train_end"] == "2019-12-31" and len(manifest["sha256"]) == 64
    back = store.load("numeric_encoder", "enc-20200102")
    np.testing.assert_array_equal(back.components_, pca.components_)


def test_tampered_artifact_is_refused(home):
    store = ModelStore(str(home))
    store.save("numeric_encoder", "m1", {"a": 1})
    blob = home / "models" / "numeric_encoder" / "m1.joblib"
    blob.write_bytes(blob.read_bytes() + b"x")
    with pytest.raises(ModelIntegrityError, match="integrity"):
        store.load("numeric_encoder", "m1")


@pytest.mark.parametrize("bad", ["../evil", ".hidden", "a/b", ""])
def test_model_ids_cannot_escape_the_root(home, bad):
    with pytest.raises(StorageError):
        ModelStore(str(home)).save("numeric_encoder", bad, 1)


def test_memory_root():
    store = ModelStore("memory://models-test")
    store.save("k", "m", [1, 2, 3])
    assert store.load("k", "m") == [1, 2, 3]
