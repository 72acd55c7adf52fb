"""The Dagster resources of Prometheus: market data, storage, and the Parquet IO manager."""

from __future__ import annotations

import time
from functools import lru_cache

import dagster as dg
import pandas as pd

from prometheus_assets.resources.sources import MarketDataSource, build_source
from prometheus_assets.resources.storage import DuckDBCatalog, ParquetStore
from prometheus_assets.run_report import IO_SECONDS

PREVIEW_ROWS = 5


@lru_cache(maxsize=8)
def _cached_source(kind: str, n: int, seed: int, start: str | None, end: str | None) -> MarketDataSource:
    return build_source(kind, n, seed, start, end)


class MarketDataResource(dg.ConfigurableResource):
    """The configured market data source (``PROMETHEUS_SOURCE`` and friends)."""

    source: str = "bundled"
    synthetic_assets: int = 500
    synthetic_seed: int = 7
    start: str | None = None
    end: str | None = None

    def get(self) -> MarketDataSource:
        """The source object (cached per process)."""
        return _cached_source(self.source, self.synthetic_assets, self.synthetic_seed, self.start, self.end)


class StorageResource(dg.ConfigurableResource):
    """The storage root: Parquet tables plus the DuckDB catalog, for side tables (e.g. ``quarantine``)."""

    home: str = "./data"

    def store(self) -> ParquetStore:
        return ParquetStore(self.home)

    def catalog(self) -> DuckDBCatalog:
        return DuckDBCatalog(self.store())

    def write_dated(self, name: str, frame: pd.DataFrame, dates: pd.DatetimeIndex, date_column: str = "date") -> list[str]:
        """Replace ``dates`` of table ``name`` with ``frame`` and refresh its DuckDB view."""
        files = self.store().write_dated(name, frame, dates, date_column=date_column)
        self.catalog().refresh([name])
        return files


def table_metadata(frame: pd.DataFrame, files: list[str] | None = None) -> dict[str, dg.MetadataValue]:
    """Row count, column schema and a small preview: the metadata every materialization carries."""
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()])
    meta: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": dg.MetadataValue.table_schema(schema),
        "preview": dg.MetadataValue.md(frame.head(PREVIEW_ROWS).to_markdown(index=False) if len(frame) else "_no rows_"),
    }
    if files is not None:
        meta["files_written"] = dg.MetadataValue.int(len(files))
    return meta


def partition_column(definition_metadata: dict | None) -> str:
    """The date column that keys a partitioned asset's rows (asset metadata ``partition_column``, default ``date``)."""
    return str((definition_metadata or {}).get("partition_column", "date"))


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores each asset as Parquet under ``<home>/parquet/<asset>/`` and keeps its DuckDB view current.

    Daily-partitioned assets may output a whole partition range at once (single-run backfills):
    the frame's ``date`` column (or the column named by the asset's ``partition_column``
    metadata, e.g. ``as_of_date``) decides which rows belong to which partition, and exactly the
    dates of the partitions being materialized are replaced. Inputs load any partition range,
    including the lookback windows that ``TimeWindowPartitionMapping`` asks for.
    """

    home: str = "./data"

    def _name(self, key: dg.AssetKey) -> str:
        return key.path[-1]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: the Parquet IO manager stores DataFrames, got {type(obj).__name__}")
        started = time.perf_counter()
        store = ParquetStore(self.home)
        name = self._name(context.asset_key)
        if context.has_asset_partitions:
            from prometheus_assets.partitions import keys_to_dates

            files = store.write_dated(name, obj, keys_to_dates(context.asset_partition_keys), date_column=partition_column(context.definition_metadata))
        else:
            files = store.write_whole(name, obj)
        DuckDBCatalog(store).refresh([name])
        meta = table_metadata(obj, files)
        meta["path"] = dg.MetadataValue.path(store.url(store.table_dir(name)))
        # this method's own time (Parquet write, DuckDB view, metadata), for the run's split (run_report.py):
        # the events Dagster builds and stores after it are bookkeeping, not IO
        meta[IO_SECONDS] = dg.MetadataValue.float(round(time.perf_counter() - started, 6))
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            # Metadata would be copied onto each partition's event: keep numbers there, and log
            # the schema and preview once (see prometheus_assets/assets/metadata.py).
            heavy = {k: meta.pop(k) for k in ("dagster/column_schema", "preview")}
            meta["range_rows"] = meta.pop("dagster/row_count")
            context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata=heavy))
        context.add_output_metadata(meta)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        store = ParquetStore(self.home)
        name = self._name(context.asset_key)
        if context.has_asset_partitions:
            from prometheus_assets.partitions import keys_to_dates

            dates = keys_to_dates(context.asset_partition_keys)
            if not store.exists(name):
                raise dg.Failure(f"input {name!r} has no stored data under {store.home}: materialize it first")
            column = partition_column(context.upstream_output.definition_metadata if context.upstream_output else None)
            frame = store.read(name, dates[0], dates[-1], date_column=column)
            return frame[frame[column].isin(dates)].reset_index(drop=True)
        return store.read(name)
