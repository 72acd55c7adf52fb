"""Re-materializing gives byte-identical content: the whole graph, fitted models included.

Every file under the storage root is hashed: the Parquet tables, the model artifacts and their
manifests under ``models/``, the carried states (allocator, strategy signals, books, evaluation blocks), the reports and the DuckDB catalog.
The one file that legitimately differs is ``allocator_state_v1_meta.json``, which the allocator
spec defines as a description of the last run (its requested range and a ``generated_at``
timestamp): its other fields are compared instead. Writers' lock files (``.<file>.lock``) are
empty and left out, and so is the digest cache (``cache/file_digests.json``): it records the
status of the files it hashed (inode, ctime), which a rewrite changes by design.
"""

import hashlib
import json
from pathlib import Path

import pytest

from prometheus_assets.assets.upstream_files import CACHE_FILE
from prometheus_assets.resources.storage import ParquetStore
from prometheus_assets.settings import Settings
from tests.conftest import run_range

pytestmark = pytest.mark.slow

#: A short span that still crosses a January, so the yearly walk-forward refits happen (PCA
#: encoders and the 5-day assessment models are fitted on 2018-01-02 and used afterwards).
START, END = "2017-09-01", "2018-02-28"
MIDDLE = "2018-01-17"
RUN_META = "allocator_state_v1_meta.json"
RUN_FIELDS = {"generated_at", "requested_start", "requested_end", "rows_before_dropna", "rows_after_dropna",
              "rows_dropped", "effective_start", "effective_end"}


def settings_for(home: Path) -> Settings:
    return Settings(home=str(home), source="synthetic", synthetic_assets=8, synthetic_seed=11, start=START, end=END)


def snapshot(root: Path) -> tuple[dict[str, str], dict]:
    """sha256 of every file under ``root`` (hidden ones included) but the run description, and that description."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.name != RUN_META]
    locks = [p for p in files if p.name.startswith(".") and p.name.endswith(".lock")]
    assert all(p.stat().st_size == 0 for p in locks)
    assert not [p for p in files if ".tmp-" in p.name]  # no writer's temporary file is left
    hashes = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
              if p not in locks and p.relative_to(root).as_posix() != CACHE_FILE}
    return hashes, json.loads((root / RUN_META).read_text())


def differing(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
    return {k: "missing" if k not in b else "added" if k not in a else "changed" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def test_rematerializing_the_graph_gives_identical_bytes(tmp_path):
    home = tmp_path / "data"
    settings = settings_for(home)
    run_range(settings, START, END)
    first, first_meta = snapshot(home)
    kinds = {Path(k).parts[1] for k in first if k.startswith("models/") and k.endswith(".joblib")}
    assert {"numeric_encoder", "assessment_model"} <= kinds, kinds
    assert all(k[: -len(".joblib")] + ".json" in first for k in first if k.endswith(".joblib"))
    assert "prometheus.duckdb" in first and any(k.startswith("allocator/state_v1/") for k in first)

    # The whole range again, over the stored result.
    run_range(settings, START, END)
    again, again_meta = snapshot(home)
    assert differing(first, again) == {}
    assert {k: v for k, v in again_meta.items() if k != "generated_at"} == {k: v for k, v in first_meta.items() if k != "generated_at"}

    # One middle partition alone: every file is unchanged; the only new files are the states carried
    # out of that day (the allocator's, the strategy signals', the books', the embeddings', the closed trades'
    # and the combined book's), which a later run resumes from.
    # (Stored assessment models are reused, not refitted, when their training data is unchanged:
    # tests/assets/test_state_spaces.py; a refit gives the same model.)
    rewritten = ["parquet/prices_daily/2018.parquet", "parquet/assessment_dataset_5d/2018.parquet"]
    inodes = {k: (home / k).stat().st_ino for k in rewritten}
    run_range(settings, MIDDLE, MIDDLE)
    assert all((home / k).stat().st_ino != inodes[k] for k in rewritten)  # really written again (a new file renamed in)
    middle, middle_meta = snapshot(home)
    new = differing(first, middle)
    books = {f"state/{asset}/{MIDDLE}.json" for asset in ("target_portfolios", "sleeve_returns", "sleeve_positions", "numeric_embeddings", "closed_trades")}
    # the combined book's carry exists once a book has traded (a book's returns start on its first trade)
    traded = ParquetStore(str(home)).exists("portfolio_returns") and len(ParquetStore(str(home)).read("portfolio_returns", None, MIDDLE)) > 0
    books |= {f"state/portfolio_returns/{MIDDLE}.json"} if traded else set()
    optional = {f"allocator/state_v1/{MIDDLE}.json", f"strategies/state/{MIDDLE}.json"}
    assert books <= set(new) <= books | optional and set(new.values()) == {"added"}, new
    assert middle_meta["requested_start"] == middle_meta["requested_end"] == MIDDLE
    assert {k: v for k, v in middle_meta.items() if k not in RUN_FIELDS} == {k: v for k, v in first_meta.items() if k not in RUN_FIELDS}
