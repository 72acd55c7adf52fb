"""Load and override book (sleeve) configs: the YAML files under ``configs/sleeves/``.

Each ``*.yaml`` file is one book, validated by :class:`prometheus_assets.core.books.BookConfig`.
``PROMETHEUS_SLEEVES`` (or the ``books`` resource's ``directory``) points Prometheus at a
directory of your own sleeve files instead of the bundled ones.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from prometheus_assets.core.books import BookConfig
from prometheus_assets.errors import BookConfigError


def _bundled_files() -> list[tuple[str, str]]:
    folder = importlib_resources.files("prometheus_assets").joinpath("configs/sleeves")
    return sorted((f"prometheus_assets/configs/sleeves/{p.name}", p.read_text()) for p in folder.iterdir() if p.name.endswith(".yaml"))


def _directory_files(directory: str) -> list[tuple[str, str]]:
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise BookConfigError(str(root), "sleeve directory does not exist")
    return [(str(p), p.read_text(encoding="utf-8")) for p in sorted(root.glob("*.yaml"))]


@lru_cache(maxsize=256)
def parse_book(path: str, text: str) -> BookConfig:
    """One validated book from YAML ``text``; errors name ``path`` and the offending field.

    Cached by (path, text): every asset of the books' groups reads the configs again (the files
    are read each time, so an edit is seen), and parsing and validating them cost ~20 ms a time,
    ~0.2 s of an end-of-day run. ``BookConfig`` is frozen, so sharing one instance is safe; an
    error is raised again on every call (exceptions are not cached).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BookConfigError(path, f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BookConfigError(path, "expected a mapping of book fields")
    try:
        return BookConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<book>'}: {e['msg']}" for e in exc.errors())
        raise BookConfigError(path, problems) from exc


def load_books(directory: str | None = None) -> dict[str, BookConfig]:
    """Every book, keyed by name, from ``directory`` (default: the bundled sleeve configs)."""
    files = _directory_files(directory) if directory else _bundled_files()
    if not files:
        raise BookConfigError(directory or "prometheus_assets/configs/sleeves", "no *.yaml sleeve files found")
    books: dict[str, BookConfig] = {}
    for path, text in files:
        book = parse_book(path, text)
        if book.name in books:
            raise BookConfigError(path, f"book name {book.name!r} is defined twice")
        books[book.name] = book
    return books


def apply_overrides(books: dict[str, BookConfig], overrides: dict[str, dict[str, Any]]) -> dict[str, BookConfig]:
    """Books with per-run ``overrides`` (book name -> fields) applied and re-validated."""
    unknown = sorted(set(overrides) - set(books))
    if unknown:
        raise BookConfigError("run config", f"overrides name unknown books {unknown}; known: {sorted(books)}")
    out = dict(books)
    for name, fields in overrides.items():
        try:
            out[name] = books[name].with_overrides(fields)
        except ValidationError as exc:
            raise BookConfigError(f"run config (book {name})", str(exc)) from exc
    return out
