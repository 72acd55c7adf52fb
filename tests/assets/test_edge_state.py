"""The edge layer's carried state: a round trip, and every reason a stored state is not used."""

import json

import pandas as pd

from prometheus_assets.assets import edge_state
from prometheus_assets.assets.book_inputs import BookStates
from prometheus_assets.resources.books import BooksResource
from prometheus_assets.core.edge.config import EdgeConfig
from prometheus_assets.core.edge.stats import EdgeTimeline
from prometheus_assets.resources import StorageResource
from tests.unit.test_edge_stats import SMALL, trades_frame

DAY = pd.Timestamp("2024-01-03")


def _sized():
    book = next(iter(BooksResource().books().values()))
    return {f"{book.config_id()}.edge": (book, book.combination)}


def _state(sized) -> edge_state.EdgeState:
    trades = trades_frame([{"exit_date": pd.Timestamp("2024-01-02"), "intent": "long", "rr": 1.0},
                           {"exit_date": DAY, "intent": "short", "rr": -0.5}])
    aggregator = EdgeTimeline(trades, SMALL).through_end()
    books = BookStates.for_configs(DAY, pd.Index(["AAA", "BBB"]), sized)
    books.weights = {cid: pd.Series({"AAA": 0.25}) for cid in sized}
    books.simulations = {cid: None for cid in sized}
    return edge_state.EdgeState(books=books, edge=edge_state.edge_fingerprint(SMALL), seen=pd.Series({"AAA": 300, "BBB": 2}),
                                trades=2, skipped=0, aggregator=aggregator)


def test_a_stored_state_reads_back_and_resumes_the_statistics(tmp_path):
    storage, sized = StorageResource(home=str(tmp_path)), _sized()
    saved = _state(sized)
    edge_state.save(storage, None, saved)
    back = edge_state.stored(storage, DAY + pd.Timedelta(days=1), sized, SMALL)
    assert back is not None and back.date == DAY and back.trades == 2
    assert back.seen.to_dict() == {"AAA": 300, "BBB": 2}
    assert {cid: w.to_dict() for cid, w in back.books.weights.items()} == {cid: {"AAA": 0.25} for cid in sized}
    pd.testing.assert_frame_equal(back.aggregator.stats_frame(), saved.aggregator.stats_frame())
    assert len(back.aggregator.history_frame()) == 0  # history rows live in the edge_history table, not in the state
    # a state is never used for a range that starts on or before its own close
    assert edge_state.stored(storage, DAY, sized, SMALL) is None


def test_a_state_is_not_used_after_a_change_or_a_corruption(tmp_path):
    storage, sized = StorageResource(home=str(tmp_path)), _sized()
    edge_state.save(storage, None, _state(sized))
    after = DAY + pd.Timedelta(days=1)
    assert edge_state.stored(storage, after, sized, EdgeConfig(masks=SMALL.masks, risk_window=30)) is None  # edge config changed
    book, method = next(iter(sized.values()))
    changed = {cid: (book.with_overrides({"costs": {"bps": 7.5}}), method) for cid in sized}
    assert edge_state.stored(storage, after, changed, SMALL) is None  # a book changed
    pickle_path = tmp_path / "state" / "edge_layer" / f"{DAY:%Y-%m-%d}.aggregator.pkl"
    pickle_path.write_bytes(pickle_path.read_bytes()[:-3] + b"xyz")
    assert edge_state.stored(storage, after, sized, SMALL) is None  # the pickle no longer matches its recorded hash


def test_saving_a_range_drops_the_states_inside_it(tmp_path):
    storage, sized = StorageResource(home=str(tmp_path)), _sized()
    state = _state(sized)
    for day in ("2024-01-03", "2024-01-04", "2024-01-05"):
        state.books.date = pd.Timestamp(day)
        edge_state.save(storage, None if day == "2024-01-03" else pd.Timestamp("2024-01-04"), state)
    names = sorted(p.name for p in (tmp_path / "state" / "edge_layer").iterdir() if not p.name.startswith("."))  # not the writers' lock files
    # 01-04 was inside the range 01-04 … 01-05 rewritten by the last run; 01-03 stays
    assert names == ["2024-01-03.aggregator.pkl", "2024-01-03.json", "2024-01-05.aggregator.pkl", "2024-01-05.json"]
    meta = json.loads((tmp_path / "state" / "edge_layer" / "2024-01-05.json").read_text())
    assert meta["version"] == edge_state.EDGE_STATE_VERSION and len(meta["aggregator_sha256"]) == 64
