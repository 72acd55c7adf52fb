"""The carried state of ``edge_layer``: what one run leaves for the next, under ``state/edge_layer/``.

Layout::

    <home>/state/edge_layer/<YYYY-MM-DD>.json             the state at that close (below)
    <home>/state/edge_layer/<YYYY-MM-DD>.aggregator.pkl   the edge statistics after every trade closed by then

The JSON holds the edge-sized books' end-of-day state (:class:`~prometheus_assets.assets.book_inputs.BookStates`:
weights, shares, cash, equity, a fingerprint of each book's settings), a fingerprint of the edge
configuration, the listing age of every symbol (sessions with a return so far), the running trade
counts, and the sha256 of the pickled :class:`~prometheus_assets.core.edge.stats.EdgeAggregator`.
The pickle is loaded only from this storage root and only when its bytes match that hash; it
carries the statistics, not the ``edge_history`` rows (those are in the table already).

A run resumes from the state stored at the session right before the first day of its partition
range, if the books and the edge configuration are unchanged; otherwise it replays from the first
day. Both give the same rows (the split-backfill test checks it). The pickle is written before the
JSON that vouches for it, so a killed run leaves at worst an orphan pickle, never a JSON whose
pickle is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from dataclasses import dataclass

import pandas as pd

from prometheus_assets.assets import carried_state
from prometheus_assets.assets.book_inputs import BookStates, config_fingerprint
from prometheus_assets.core.books import BookConfig
from prometheus_assets.core.edge.config import EdgeConfig
from prometheus_assets.core.edge.stats import EdgeAggregator
from prometheus_assets.resources import StorageResource

ASSET = "edge_layer"
STATE_DIR = f"{carried_state.STATE_DIR}/{ASSET}"
#: Bump when the meaning of a stored state changes: older states are then ignored (one replay).
EDGE_STATE_VERSION = 3  # 2: symmetric terciles in the trade scopes, decay sizing a negative edge down; 3: size / liquidity on traded closes
#: The statistics are pickled beside each state's JSON: ``<day>.aggregator.pkl``.
PICKLE_SUFFIX = ".aggregator.pkl"

_log = logging.getLogger(__name__)


def edge_fingerprint(config: EdgeConfig) -> str:
    """sha256 of the edge configuration and the state version."""
    text = json.dumps({"edge": json.loads(config.model_dump_json()), "version": EDGE_STATE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class EdgeState:
    """The edge layer at one close: sized books, listing ages, trade counts and the statistics."""

    books: BookStates
    edge: str
    seen: pd.Series
    trades: int
    skipped: int
    aggregator: EdgeAggregator

    @property
    def date(self) -> pd.Timestamp:
        return self.books.date


def _paths(date: pd.Timestamp) -> tuple[str, str]:
    stem = f"{STATE_DIR}/{date:%Y-%m-%d}"
    return f"{stem}.json", f"{stem}{PICKLE_SUFFIX}"


def save(storage: StorageResource, first_day: pd.Timestamp | None, state: EdgeState) -> None:
    """Store ``state`` at its close and drop the states from ``first_day`` on (None: every older state); atomic files."""
    store = storage.store()
    pickled = pickle.dumps(state.aggregator.without_history(), protocol=pickle.HIGHEST_PROTOCOL)
    meta = {
        "version": EDGE_STATE_VERSION,
        "edge": state.edge,
        "books": json.loads(state.books.to_json()),
        "seen": {str(k): int(v) for k, v in state.seen.items()},
        "trades": int(state.trades),
        "skipped": int(state.skipped),
        "aggregator_sha256": hashlib.sha256(pickled).hexdigest(),
    }
    carried_state.drop_inside(storage, ASSET, first_day, state.date, companions=(PICKLE_SUFFIX,))
    json_path, pickle_path = _paths(state.date)
    store.write_bytes(pickle_path, pickled)
    store.write_bytes(json_path, json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())


def stored(storage: StorageResource, first_day: pd.Timestamp, sized: dict[str, tuple[BookConfig, str]], config: EdgeConfig) -> EdgeState | None:
    """The state stored at the latest close before ``first_day``, if it serves these books and this edge config.

    None (replay from the first day) when there is none, it is unreadable, its pickle does not
    match its recorded hash, or a book or the edge configuration changed. Whether it is the
    session right before ``first_day`` is checked by the caller against the sessions it reads.
    """
    found = carried_state.latest_before(storage, ASSET, first_day)
    if found is None:
        return None
    json_path, pickle_path = _paths(found[0])
    store = storage.store()
    try:
        meta = json.loads(found[1])
        if meta.get("version") != EDGE_STATE_VERSION:
            raise ValueError(f"edge state version {meta.get('version')!r} is not {EDGE_STATE_VERSION}")
        if meta["edge"] != edge_fingerprint(config):
            return None
        books = BookStates.from_json(json.dumps(meta["books"]).encode())
        if any(books.fingerprints.get(cid) != config_fingerprint(book, method) for cid, (book, method) in sized.items()) or set(books.fingerprints) != set(sized):
            return None
        pickled = store.read_bytes(pickle_path) or b""
        if hashlib.sha256(pickled).hexdigest() != meta["aggregator_sha256"]:
            raise ValueError(f"{pickle_path} does not match the sha256 recorded in {json_path}")
        aggregator = pickle.loads(pickled)  # noqa: S301 - our own root, hash-verified above
        if not isinstance(aggregator, EdgeAggregator):
            raise ValueError(f"{pickle_path} does not hold an edge aggregator")
    except (ValueError, KeyError, TypeError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
        _log.warning("ignoring unreadable edge state %s (%s); replaying from the first day", json_path, exc)
        return None
    seen = pd.Series(meta["seen"], dtype="int64")
    return EdgeState(books=books, edge=meta["edge"], seen=seen, trades=int(meta["trades"]), skipped=int(meta["skipped"]), aggregator=aggregator)
