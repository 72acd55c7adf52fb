"""Faster drop-in replacement for Dagster's run-sharded SQLite event log storage.

What
----
``FastSqliteEventLogStorage`` subclasses ``dagster._core.storage.event_log.SqliteEventLogStorage``
(same files, same schema, same sharding: ``<base_dir>/<run_id>.db`` + ``<base_dir>/index.db``),
so existing ``DAGSTER_HOME`` directories keep working, other processes (webserver, daemon,
``dagster`` CLI) can use either class on the same files, and switching back is a config change.
Enable it in ``$DAGSTER_HOME/dagster.yaml``::

    event_log_storage:
      module: prometheus_assets.instance
      class: FastSqliteEventLogStorage
      config:
        base_dir: /abs/path/to/dagster_home/history/runs/   # = the default location

(every process that loads the instance must be able to import ``prometheus_assets``).

Why
---
A single-run backfill writes one ASSET_MATERIALIZATION_PLANNED and one ASSET_MATERIALIZATION event
per (asset, partition), and the stock storage spends ~7 ms of bookkeeping per such event. cProfile
of 2 daily assets x 500 partitions (18.9 s profiled; 97% of it in ``store_event``) shows that for
*every* event it

* builds a new SQLAlchemy engine (NullPool) per shard touched, so nothing is reused: SQL compile
  (the compile cache lives on the engine) ~23%, ``create_engine`` ~8%, sqlite3 connect ~2%, and
  closing the connection ~11% (closing the last connection of a WAL database checkpoints the WAL
  into the main file and deletes it);
* commits twice (run shard, then the index mirror) with the default ``synchronous=FULL``: ~13%;
* upserts the ``asset_keys`` row as INSERT, IntegrityError, UPDATE; reflects the ``asset_keys``
  columns (PRAGMA table_info, ~3%) and, for events with indexed tags (materializations carry
  ``dagster/data_version``), calls ``has_table``, which builds yet another engine (~4%).

Planning, partition and asset-graph computations are < 1%; serialisation ~4%.

Measured (2 daily assets, BackfillPolicy.single_run, one run over 1,500 partitions, in-process,
dagster 1.13.27, shared 2-CPU VM; ms per (asset, partition) = per pair of events, two runs each):

    stock SqliteEventLogStorage                  13.9 / 14.4  (DAGSTER_EVENT_BATCH_SIZE: no effect)
    DagsterInstance.ephemeral() (in memory)       2.8 /  2.8
    FastSqliteEventLogStorage                     1.5 /  1.4
      + DAGSTER_EVENT_BATCH_SIZE=1000             0.48 / 0.49
    FastSqliteEventLogStorage, synchronous FULL   2.3 /  2.3
      + DAGSTER_EVENT_BATCH_SIZE=1000             0.50 / 0.49

Over 8,313 partitions: 24 s (1.47 ms), 6.9 s (0.41 ms) with batching.

How (all changes are local to this process; the on-disk format is untouched)
------------------------------------------------------------------------------
1. One cached engine per shard (index + the few most recently used run shards, LRU) with a
   ``QueuePool`` of one idle connection (extra concurrent checkouts get short-lived overflow
   connections). Dagster still serialises storage access per process with ``self._db_lock``.
   An idle pooled connection holds no lock in WAL mode, so the webserver/daemon/other run
   workers read and write the same files as before; the busy timeout stays at Dagster's 30 s.
   Engines are dropped (without closing the parent's connections) after ``fork()``, and disposed on
   ``wipe()``, ``upgrade()`` and ``dispose()``.
2. ``PRAGMA synchronous=NORMAL`` on every connection whose database is in WAL mode (Dagster
   creates all its SQLite shards in WAL mode). In WAL mode NORMAL is fully durable against
   application crashes (a committed transaction is in the WAL in the OS page cache); only an OS
   crash / power loss can lose the last transactions, and never corrupts the database. Databases
   not in WAL mode keep SQLite's default (FULL). ``synchronous: FULL`` in the config restores
   the old behaviour.
3. Schema probes whose answer can only go from "no" to "yes" (``asset_keys`` index columns,
   ``has_table``) are cached once positive; negative answers are re-checked every time, as before.
   The ``asset_keys`` row is written with one cached ``INSERT .. ON CONFLICT(asset_key) DO UPDATE``
   (the table has UNIQUE(asset_key)) and inserts use parameters so the compiled SQL is reused.
4. ``store_event_batch`` (used by Dagster only when the env var ``DAGSTER_EVENT_BATCH_SIZE`` > 0;
   the base class just loops over ``store_event``): a batch of asset events of one run is written
   with one transaction on the run shard and one on the index shard (instead of 2 per event).
   Dagster batches exactly the per-partition events of a single-run backfill: the planned events
   emitted when the run is created and the materializations emitted per step output.
   Single asset events take the same path (batch of one). Any other event, and batches holding
   one, go through the stock ``store_event``. Rows, storage ids and ``asset_keys`` contents are
   identical to the stock class (checked table by table on a scenario with backfills, asset
   checks, failed partitions, observations, runless events and wipes).
5. After writing to a run shard, the ``<run_id>.db`` file's mtime is bumped. The webserver's live
   run-log view (``watch()``) uses a watchdog observer on that file; the stock storage triggers it
   as a side effect of checkpointing the WAL on every connection close, which the pooled
   connections no longer do.

6. ``PRAGMA wal_autocheckpoint`` of 16,384 pages (64 MiB; ``wal_autocheckpoint`` in the config)
   instead of SQLite's 1,000. The commit that takes the log past that size copies it into the
   database and syncs it, inside whatever step was storing an event. With a full-history
   ``index.db`` of ~2.7 GB, the scattered index pages an end-of-day run touches passed 1,000
   pages several times per run: ~0.9 s of commits (cProfile), now none; the log is copied when
   the run's process closes its connections (``dispose()``, as a run worker does when it ends,
   and ``prometheus build``), or by the commit that passes 64 MiB in a long backfill. Readers
   and the on-disk format are unaffected; the log file can grow to about that size.

Caveats
-------
* Written against dagster 1.13 internals (``_connect``, ``_store_asset_event``, ``_event_to_row``,
  ``_get_asset_entry_values``); re-run the equivalence check when upgrading Dagster.
* Power loss / kernel crash can lose the last committed events (not corrupt the files); with
  batching, a process crash in the middle of a batch loses the buffered, not yet written events of
  that batch (that is a property of Dagster's batching, not of this class).
* ``DAGSTER_EVENT_BATCH_SIZE`` must be set in every process that creates runs (planned events are
  written by the process that creates the run: CLI, webserver, daemon) and in the run worker.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as db
import sqlalchemy.exc as db_exc
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

from dagster import Enum, EnumValue, Field, IntSource, StringSource
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, AssetKeyTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import serialize_value

if TYPE_CHECKING:
    from dagster._core.events.log import EventLogEntry
    from dagster._serdes import ConfigurableClassData

__all__ = ["FastSqliteEventLogStorage"]


#: Pages (4 KiB) the write-ahead log may hold before a commit checkpoints it into the database:
#: 64 MiB, against SQLite's default of 1,000 pages (4 MiB). See point 6 of the module docstring.
WAL_AUTOCHECKPOINT_PAGES = 16_384


def _set_pragmas(synchronous: str, wal_autocheckpoint: int):
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            mode = cur.execute("PRAGMA journal_mode").fetchone()
            if mode and str(mode[0]).lower() == "wal":
                if synchronous != "FULL":
                    cur.execute(f"PRAGMA synchronous={synchronous}")
                cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        finally:
            cur.close()

    return on_connect


class FastSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with pooled per-shard engines, ``synchronous=NORMAL`` (WAL) and a
    transactional ``store_event_batch``. Same files and schema; see the module docstring.
    """

    def __init__(
        self,
        base_dir: str,
        inst_data: ConfigurableClassData | None = None,
        synchronous: str = "NORMAL",
        max_run_engines: int = 8,
        wal_autocheckpoint: int = WAL_AUTOCHECKPOINT_PAGES,
    ):
        # must exist before super().__init__, which may create/reindex the index shard
        self._synchronous = synchronous.upper()
        if self._synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self._max_run_engines = max(1, int(max_run_engines))
        self._wal_autocheckpoint = max(1, int(wal_autocheckpoint))
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._engines_pid = os.getpid()
        self._known_tables: set[str] = set()
        self._asset_key_index_cols = False
        self._upsert_stmts: dict[tuple[str, ...], Any] = {}
        super().__init__(base_dir, inst_data=inst_data)

    # ---- config ---------------------------------------------------------------------------
    @classmethod
    def config_type(cls) -> Any:
        return {
            "base_dir": StringSource,
            "synchronous": Field(
                Enum("SqliteSynchronous", [EnumValue("NORMAL"), EnumValue("FULL")]),
                is_required=False,
                default_value="NORMAL",
            ),
            "max_run_engines": Field(IntSource, is_required=False, default_value=8),
            "wal_autocheckpoint": Field(IntSource, is_required=False, default_value=WAL_AUTOCHECKPOINT_PAGES),
        }

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> FastSqliteEventLogStorage:
        return cls(inst_data=inst_data, **dict(config_value))

    # ---- engines --------------------------------------------------------------------------
    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            if self._engines_pid != os.getpid():  # forked: never reuse the parent's connections
                for engine in self._engines.values():
                    engine.dispose(close=False)
                self._engines.clear()
                self._engines_pid = os.getpid()
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=-1,  # concurrent checkouts (e.g. db.inspect) get a temporary conn
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            db.event.listen(engine, "connect", _set_pragmas(self._synchronous, self._wal_autocheckpoint))
            self._engines[shard] = engine
            run_shards = [s for s in self._engines if s != INDEX_SHARD_NAME]
            for stale in run_shards[: max(0, len(run_shards) - self._max_run_engines)]:
                self._engines.pop(stale).dispose()
            return engine

    def _dispose_engines(self) -> None:
        with self._engines_lock:
            engines = list(self._engines.values())
            self._engines.clear()
        for engine in engines:
            engine.dispose()

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
                # a brand-new shard is switched to WAL inside _initdb: reconnect so that the
                # pragmas (which depend on the journal mode) are applied to the pooled connection
                engine.dispose()
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def has_table(self, table_name: str) -> bool:
        if table_name in self._known_tables:
            return True
        engine = self._engine(INDEX_SHARD_NAME)
        with engine.connect() as conn:
            found = bool(engine.dialect.has_table(conn, table_name))
        if found:
            self._known_tables.add(table_name)
        return found

    def _has_asset_key_index_cols_on_connection(self, conn: Connection) -> bool:
        # columns are only ever added by migrations: cache the positive answer
        if not self._asset_key_index_cols:
            self._asset_key_index_cols = super()._has_asset_key_index_cols_on_connection(conn)
        return self._asset_key_index_cols

    def _touch_run_shard(self, run_id: str) -> None:
        try:
            os.utime(self.path_for_shard(run_id))
        except OSError:
            pass

    # ---- writes ---------------------------------------------------------------------------
    @staticmethod
    def _is_plain_asset_event(event: EventLogEntry) -> bool:
        # what SqliteEventLogStorage.store_event mirrors to the index via the asset path only
        return (
            event.is_dagster_event
            and event.dagster_event_type in ASSET_EVENTS
            and event.dagster_event_type not in ASSET_CHECK_EVENTS
            and event.dagster_event_type not in EVENT_TYPE_TO_PIPELINE_RUN_STATUS
        )

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """The stock rows (one per planned partition), with the event serialised once instead of once per row.

        The stock method calls ``serialize_value(event)`` inside its per-partition list, and the
        event carries the run's whole partition subset, so a check planned over n partitions cost
        O(n) serialisations of an O(n)-sized event: 20 s per check over 2,000 days, ~130 s of a
        full-history build's start-up with 7 checks (cProfile). The rows written are identical.
        """
        planned = event.dagster_event.event_specific_data if event.dagster_event else None
        if planned is None:
            return super()._store_asset_check_evaluation_planned(event, event_id)
        partition_keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        serialized = serialize_value(event)
        timestamp = self._event_insert_timestamp(event)
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert().values(
                    [
                        dict(
                            asset_key=planned.asset_key.to_string(),
                            check_name=planned.check_name,
                            partition=partition_key,
                            run_id=event.run_id,
                            execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                            evaluation_event=serialized,
                            evaluation_event_timestamp=timestamp,
                            evaluation_event_storage_id=event_id,
                        )
                        for partition_key in partition_keys
                    ]
                )
            )

    def store_event(self, event: EventLogEntry) -> None:
        if self._is_plain_asset_event(event):
            self._store_asset_events(event.run_id, [event])
        else:
            super().store_event(event)
        self._touch_run_shard(event.run_id)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        events = list(events)
        if not events:
            return
        run_id = events[0].run_id
        if all(e.run_id == run_id and self._is_plain_asset_event(e) for e in events):
            self._store_asset_events(run_id, events)
            self._touch_run_shard(run_id)
        else:
            for event in events:  # same as the base class
                self.store_event(event)

    def _store_asset_events(self, run_id: str, events: Sequence[EventLogEntry]) -> None:
        """Same rows as ``SqliteEventLogStorage.store_event`` for each event, but one transaction
        per shard for the whole list and statements that hit SQLAlchemy's compile cache.
        """
        table = SqlEventLogStorageTable
        rows = [self._event_to_row(e) for e in events]  # serialises each event once
        with self.run_connection(run_id) as conn:
            conn.execute(table.insert(), rows)
        with self.index_transaction() as conn:
            if len(rows) > 1 and getattr(
                conn.dialect, "insert_executemany_returning_sort_by_parameter_order", False
            ):
                stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
                event_ids = [r[0] for r in conn.execute(stmt, rows)]
            else:
                event_ids = [
                    conn.execute(table.insert(), row).inserted_primary_key[0] for row in rows
                ]
            if len(event_ids) != len(events) or any(i is None for i in event_ids):
                raise DagsterInvariantViolationError("Cannot store asset events with null event id")
            self._store_asset_event_tags(conn, events, event_ids)
            # asset_keys row: applying every event in order == applying, in order, only the last
            # event of each (asset key, event type), because the columns an event writes depend
            # only on its type (SqlEventLogStorage._get_asset_entry_values). Exact, and saves one
            # upsert (and one EventLogRecord serialisation) per partition in a batch.
            last: dict[tuple[Any, Any], int] = {}
            for i, event in enumerate(events):
                last[(event.dagster_event.asset_key, event.dagster_event_type)] = i  # type: ignore
            for i in sorted(last.values()):
                self._store_asset_event(conn, events[i], event_ids[i])

    def _store_asset_event(self, conn: Connection, event: EventLogEntry, event_id: int) -> None:
        # one cached INSERT .. ON CONFLICT(asset_key) DO UPDATE SET col=excluded.col statement
        # instead of building INSERT, catching IntegrityError, then building an UPDATE
        if not (event.dagster_event and event.dagster_event.asset_key):
            return
        values = self._get_asset_entry_values(
            event, event_id, self._has_asset_key_index_cols_on_connection(conn)
        )
        if not values:
            return
        columns = tuple(sorted(values))
        stmt = self._upsert_stmts.get(columns)
        if stmt is None:
            ins = sqlite_insert(AssetKeyTable)
            stmt = ins.on_conflict_do_update(
                index_elements=[AssetKeyTable.c.asset_key],
                set_={c: ins.excluded[c] for c in columns},
            )
            self._upsert_stmts[columns] = stmt
        try:
            conn.execute(stmt, {"asset_key": event.dagster_event.asset_key.to_string(), **values})
        except db_exc.OperationalError:  # no UNIQUE(asset_key) in a very old schema
            super()._store_asset_event(conn, event, event_id)

    # ---- lifecycle ------------------------------------------------------------------------
    def upgrade(self) -> None:
        self._dispose_engines()
        super().upgrade()
        self._dispose_engines()

    def wipe(self) -> None:
        self._dispose_engines()  # close handles before run shard files are unlinked
        super().wipe()
        self._dispose_engines()

    def dispose(self) -> None:
        super().dispose()
        self._dispose_engines()
