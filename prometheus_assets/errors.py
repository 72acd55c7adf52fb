"""Named errors raised when input data cannot be trusted.

Every error names the file (and, where it applies, the row) it refers to, so a user can go
straight to the offending input. Rows that are merely suspicious are not errors: they are
quarantined with a reason (see ``prometheus_assets.core.validation``).
"""

from __future__ import annotations


class PrometheusDataError(Exception):
    """Base class of every input-data error Prometheus raises."""


class SourceFileError(PrometheusDataError):
    """A source file cannot be read as daily bars.

    ``path`` is the file, ``row`` the 1-based data row (header excluded) when the problem is
    confined to one row, else ``None``.
    """

    def __init__(self, path: str, message: str, row: int | None = None) -> None:
        self.path = str(path)
        self.row = row
        where = f"{self.path}" if row is None else f"{self.path}, row {row}"
        super().__init__(f"{where}: {message}")


class MissingColumnError(SourceFileError):
    """A required column (``date``, ``symbol`` or ``close``) is absent from a source file."""


class DuplicateColumnError(SourceFileError):
    """Two columns of a source file map to the same canonical column (e.g. ``Close`` and ``close``)."""


class EmptySourceFileError(SourceFileError):
    """A source file holds no bytes or no data rows."""


class CorruptSourceFileError(SourceFileError):
    """A source file is truncated or not the format its extension claims (e.g. broken Parquet)."""


class SourceEncodingError(SourceFileError):
    """A CSV source file is not valid UTF-8."""


class SourceConfigError(PrometheusDataError):
    """The configured source (``PROMETHEUS_SOURCE`` and friends) is unusable."""


class StorageError(Exception):
    """The storage root refused an operation (bad path, identifier, or a write that cannot be made atomic)."""


class PathEscapeError(StorageError):
    """A path built from a name would leave its root: absolute, ``..``, or through a symlink pointing outside."""


class BookConfigError(Exception):
    """A sleeve (book) YAML file is missing, unreadable or fails validation; names the file."""

    def __init__(self, path: str, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")
