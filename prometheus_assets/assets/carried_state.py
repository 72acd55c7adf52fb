"""End-of-day state files of the incremental assets that are not books: ``state/<asset>/<YYYY-MM-DD>.json``.

The same layout and rules as the books' :class:`~prometheus_assets.assets.book_inputs.BookStates`:
a run over partitions ``[A, B]`` continues from the state stored at the latest close before ``A``
(the caller checks that it is the session right before ``A``, else it replays from the first
day), stores its own state dated ``B`` and drops states dated inside ``[A, B)`` (they may be
stale after a re-materialization). States are JSON with sorted keys and exact float reprs, so the
same state always has the same bytes. Deleting a state directory is safe: the next run replays.
"""

import logging
from collections.abc import Callable
from typing import TypeVar

import pandas as pd

from prometheus_assets.resources import StorageResource

STATE_DIR = "state"

_log = logging.getLogger(__name__)
T = TypeVar("T")


def state_paths(storage: StorageResource, asset: str, directory: str | None = None) -> dict[pd.Timestamp, str]:
    """day -> relative path of every state ``asset`` has stored (under ``directory``, default ``state/<asset>``)."""
    directory = f"{STATE_DIR}/{asset}" if directory is None else directory
    out = {}
    for name in storage.store().list_names(directory):
        if name.endswith(".json"):
            try:
                out[pd.Timestamp(name[: -len(".json")])] = f"{directory}/{name}"
            except ValueError:
                continue
    return out


def latest_before(storage: StorageResource, asset: str, first_day: pd.Timestamp) -> tuple[pd.Timestamp, bytes] | None:
    """``(day, bytes)`` of the state ``asset`` stored at the latest close before ``first_day`` (None if there is none)."""
    paths = state_paths(storage, asset)
    earlier = [d for d in paths if d < first_day]
    if not earlier:
        return None
    day = max(earlier)
    data = storage.store().read_bytes(paths[day])
    return None if data is None else (day, data)


def drop_inside(storage: StorageResource, asset: str, first: pd.Timestamp | None, day: pd.Timestamp, companions: tuple[str, ...] = (),
                directory: str | None = None) -> None:
    """Remove the states dated ``first`` ≤ d < ``day`` (every state before ``day`` when ``first`` is None), with the
    files stored beside each one (``<d><suffix>`` for each suffix in ``companions``); ``directory``: see :func:`state_paths`."""
    store = storage.store()
    for old, relative in state_paths(storage, asset, directory).items():
        if old < day and (first is None or old >= first):
            store.remove(relative)
            for suffix in companions:
                store.remove(relative[: -len(".json")] + suffix)


def save(storage: StorageResource, asset: str, dates: list[pd.Timestamp], day: pd.Timestamp, data: bytes) -> None:
    """Store ``data`` as the state of the close ``day`` (a run's last day); drop older states dated inside the run's range."""
    drop_inside(storage, asset, dates[0], day)
    storage.store().write_bytes(f"{STATE_DIR}/{asset}/{day:%Y-%m-%d}.json", data)


def load_latest_before(storage: StorageResource, asset: str, first_day: pd.Timestamp, decode: Callable[[bytes], T]) -> T | None:
    """:func:`latest_before`, decoded; None (the caller replays) when there is none or it is unreadable (logged)."""
    found = latest_before(storage, asset, first_day)
    if found is None:
        return None
    try:
        return decode(found[1])
    except (ValueError, KeyError, TypeError) as exc:
        _log.warning("ignoring unreadable %s state of %s (%s); replaying from the first day", asset, found[0].date(), exc)
        return None
