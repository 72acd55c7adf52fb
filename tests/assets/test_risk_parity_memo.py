"""The stored risk-parity memo of the book assets (assets/book_inputs.StoredRiskParityMemo)."""

import json

import numpy as np

from prometheus_assets.assets.book_inputs import RISK_PARITY_MEMO_FILE, StoredRiskParityMemo
from prometheus_assets.resources import StorageResource


def test_memo_round_trips_exactly_and_merges_with_other_runs(home):
    storage = StorageResource(home=str(home))
    first = StoredRiskParityMemo(storage)
    assert len(first) == 0 and first.save() == 0  # nothing solved: no file written
    assert storage.store().read_bytes(RISK_PARITY_MEMO_FILE) is None
    weights = np.array([0.1, 1 / 3, 2 / 3 - 0.1, np.nextafter(0.0, 1.0)])
    first["a"] = weights
    other = StoredRiskParityMemo(storage)  # a second run that loaded before the first saved
    other["b"] = np.array([1.0])
    assert first.save() == 1 and other.save() == 1
    loaded = StoredRiskParityMemo(storage)
    assert sorted(loaded) == ["a", "b"]
    assert loaded["a"].tobytes() == weights.tobytes()  # exact floats, not rounded text
    data = storage.store().read_bytes(RISK_PARITY_MEMO_FILE)
    loaded["a"] = loaded["a"]
    loaded.save()
    assert storage.store().read_bytes(RISK_PARITY_MEMO_FILE) == data  # same entries, same bytes


def test_an_unreadable_memo_is_rebuilt_not_trusted(home, caplog):
    storage = StorageResource(home=str(home))
    storage.store().write_bytes(RISK_PARITY_MEMO_FILE, b'{"entries": {"a": [0.5, ')
    memo = StoredRiskParityMemo(storage)
    assert len(memo) == 0 and "unreadable risk-parity memo" in caplog.text
    memo["b"] = np.array([1.0])
    memo.save()
    assert json.loads(storage.store().read_bytes(RISK_PARITY_MEMO_FILE)) == {"entries": {"b": [1.0]}}
