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


class Fitted:
    """An object whose attributes hold equal strings that may or may not be the same object."""

    def __init__(self, shared: bool):
        self.loss = "squared_error"
        self.scoring = self.loss if shared else "".join(["squared", "_error"])
        self.weights = np.arange(5.0)


def test_equal_models_give_identical_artifacts_whatever_object_sharing(home, tmp_path):
    # A plain pickle writes a back-reference for the shared string and the string again for the
    # copy, so two equal models would get different bytes (and sha256).
    a, b = Fitted(shared=True), Fitted(shared=False)
    assert a.scoring is a.loss and b.scoring is not b.loss and b.scoring == b.loss
    store_a, store_b = ModelStore(str(tmp_path / "a")), ModelStore(str(tmp_path / "b"))
    assert store_a.save("k", "m", a)["sha256"] == store_b.save("k", "m", b)["sha256"]
    back = store_a.load("k", "m")
    assert back.scoring == "squared_error" and back.weights.tolist() == [0, 1, 2, 3, 4]


def test_refitted_seeded_models_give_identical_artifacts(tmp_path):
    # the model kinds the graph stores: PCA encoder, Gaussian-mixture regime model, HGB and Ridge assessment models
    from prometheus_assets.core import assessment
    from prometheus_assets.core.encoders import NumericEncoder
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(400, 6)), rng.normal(size=400)
    fits = {
        "encoder": lambda: NumericEncoder(n_components=3).fit(X),
        "gmm": lambda: GaussianMixture(n_components=3, random_state=0).fit(X),
        "hgb": lambda: assessment.make_estimator("hgb", 0).fit(X, y),
        "ridge": lambda: assessment.make_estimator("ridge", 0).fit(X, y),
    }
    for kind, fit in fits.items():
        first = ModelStore(str(tmp_path / "one")).save("m", kind, fit())["sha256"]
        again = ModelStore(str(tmp_path / "two")).save("m", kind, fit())["sha256"]
        assert first == again, kind


def test_artifacts_are_standard_pickles_that_joblib_also_opens(home):
    import pickle

    import joblib

    store = ModelStore(str(home))
    pca = PCA(n_components=2).fit(np.random.default_rng(1).normal(size=(30, 3)))
    assert store.save("numeric_encoder", "enc", pca)["format"] == "pickle"
    blob = home / "models" / "numeric_encoder" / "enc.joblib"
    for opened in (pickle.loads(blob.read_bytes()), joblib.load(blob), store.load("numeric_encoder", "enc")):
        np.testing.assert_array_equal(opened.components_, pca.components_)


def test_artifacts_saved_by_joblib_before_the_format_was_recorded_still_load(home):
    # A root built by an earlier version holds joblib-format blobs (numpy arrays after their
    # wrappers in the stream, which the C unpickler cannot read) and manifests without "format".
    import hashlib
    import io
    import json

    from joblib.numpy_pickle import NumpyPickler

    pca = PCA(n_components=2).fit(np.random.default_rng(2).normal(size=(30, 3)))
    buffer = io.BytesIO()
    NumpyPickler(buffer).dump(pca)
    data = buffer.getvalue()
    folder = home / "models" / "numeric_encoder"
    folder.mkdir(parents=True)
    (folder / "old.joblib").write_bytes(data)
    (folder / "old.json").write_text(json.dumps({"kind": "numeric_encoder", "model_id": "old", "sha256": hashlib.sha256(data).hexdigest()}))
    back = ModelStore(str(home)).load("numeric_encoder", "old", sha256=hashlib.sha256(data).hexdigest())
    np.testing.assert_array_equal(back.components_, pca.components_)
