"""Bad input on a files source: nothing lost, nothing silently wrong.

The corpus is ``tests/data/bad/`` (table of defects and outcomes in its README). A clean base
history (``base/``: four symbols over the 31 sessions 2023-11-15 → 2023-12-29, with an instrument
registry) is built once per module with the canonical assets. For each defect the built storage
root and the source directory are copied, the defect file is dropped into the source directory
under the name a user would give it, and ``prices_daily`` + ``returns_daily`` are materialized for
the sessions the file delivers (2024-01-02, or a few sessions from there) on a real SQLite Dagster
instance. Then:

(a) the documented outcome holds: either the run fails with the named error (its message naming
    the file, and the line where there is one), recorded on the instance as the cause of the
    ``prices_daily`` step failure, and nothing is materialized; or the offending rows are in the
    ``quarantine`` table with their reason, file and row, the owning asset check failed with
    severity WARN on the instance (never ERROR: nothing bad reached the table), every other check
    passed, and every row of the file is accounted for exactly once (accepted with its value, or
    quarantined). Suspicious-but-possible values (a jump, a stale run) stay in the tables and
    their check warns.
(b) every Parquet file of the base is byte-identical afterwards. Storage holds one file per table
    and year, and the base ends on the last session of 2023 while every defect delivers 2024
    sessions, so no base file has a legitimate reason to change: none is rewritten in any case.
    (The base's zero-row quarantine placeholder is replaced by the first quarantine year file.)
(c) no temporary file is left under the storage root.
"""

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from prometheus_assets import errors
from prometheus_assets.checks import PRICE_CHECKS, RETURN_CHECKS
from prometheus_assets.core import calendar
from prometheus_assets.resources.storage import ParquetStore
from prometheus_assets.settings import Settings
from tests.conftest import run_range, sqlite_instance, tree_hashes

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
CANONICAL = ["instruments", "trading_calendar", "reference_prices", "prices_daily", "returns_daily"]
RERUN = ["prices_daily", "returns_daily"]
BASE_START, BASE_END = "2023-11-15", "2023-12-29"
DAY = "2024-01-02"
SYMBOLS = {"AAA", "BBB", "CCC", "DDD"}
CHECKS = {**{c.name: "prices_daily" for c in PRICE_CHECKS}, **{name: "returns_daily" for name, _ in RETURN_CHECKS}}


@dataclass(frozen=True)
class Defect:
    """One corpus file and its documented outcome."""

    file: str  # under tests/data/bad/
    dropped_as: str  # its name in the source directory
    last: str = DAY  # last partition of the run (the first is DAY)
    error: type[errors.SourceFileError] | None = None  # the named error, or None: the run succeeds
    mentions: tuple[str, ...] = ()  # what the error message says besides the file
    quarantined: tuple[tuple[int, str, str, str], ...] = ()  # (source_row, symbol, reason, part of detail)
    check: str | None = None  # the one check that must fail (severity WARN)
    flagged: int = 0  # rows the failing check counts

    @property
    def id(self) -> str:
        return self.file.rsplit(".", 1)[0]


NAN = "close: non-numeric value 'NaN'"
TZ = "refusing to guess the session"
DEFECTS = [
    Defect("nan_prices.csv", f"{DAY}.csv", quarantined=((1, "AAA", "missing_price", "close is missing"), (2, "BBB", "parse_error", NAN)),
           check="no_missing_prices", flagged=2),
    Defect("duplicate_bars.csv", f"{DAY}.csv",
           quarantined=((2, "BBB", "conflicting_duplicate", "several different bars"), (5, "AAA", "duplicate_bar", "identical copy"),
                        (6, "BBB", "conflicting_duplicate", "several different bars")),
           check="no_duplicate_bars", flagged=3),
    Defect("unsorted_rows.csv", "unsorted_rows.csv", last="2024-01-05"),
    Defect("non_positive_prices.csv", f"{DAY}.csv",
           quarantined=((1, "AAA", "non_positive_price", "zero or negative"), (2, "BBB", "non_positive_price", "zero or negative"),
                        (3, "CCC", "non_positive_price", "zero or negative")),
           check="positive_prices", flagged=3),
    Defect("inconsistent_bars.csv", f"{DAY}.csv",
           quarantined=((1, "AAA", "inconsistent_bar", "high below low"), (2, "BBB", "inconsistent_bar", "close above high"),
                        (3, "CCC", "inconsistent_bar", "negative volume")),
           check="consistent_bars", flagged=3),
    Defect("missing_close_column.csv", f"{DAY}.csv", error=errors.MissingColumnError, mentions=("missing required column(s) close",)),
    Defect("text_in_price.csv", f"{DAY}.csv",
           quarantined=((1, "AAA", "parse_error", "close: non-numeric value 'n/a'"), (2, "BBB", "parse_error", "close: non-numeric value '1,234.50'"),
                        (3, "CCC", "parse_error", "volume: non-numeric value '12k'")),
           check="no_missing_prices", flagged=3),
    Defect("empty.csv", f"{DAY}.csv", error=errors.EmptySourceFileError, mentions=("0 bytes",)),
    Defect("header_only.csv", f"{DAY}.csv", error=errors.EmptySourceFileError, mentions=("header but no data rows",)),
    Defect("future_dates.csv", "future_dates.csv", quarantined=((1, "AAA", "future_date", "dated after"),), check="on_trading_days", flagged=1),
    Defect("holiday_rows.csv", "holiday_rows.csv",
           quarantined=tuple((row, sym, "non_trading_day", "not an exchange session") for row, sym in [(1, "AAA"), (2, "AAA"), (3, "BBB"), (4, "CCC"), (5, "DDD")]),
           check="on_trading_days", flagged=5),
    Defect("unknown_symbol.csv", f"{DAY}.csv", quarantined=((5, "ZZZ", "unknown_symbol", "not in the instrument registry"),), check="known_symbols", flagged=1),
    Defect("truncated.parquet", f"{DAY}.parquet", error=errors.CorruptSourceFileError, mentions=("not a readable Parquet file",)),
    Defect("jump_1000pct.csv", f"{DAY}.csv", check="returns_within_50pct", flagged=1),
    Defect("stale_run.csv", "stale_run.csv", last="2024-01-08", check="no_stale_prices", flagged=1),
    Defect("timezone_shifted.csv", f"{DAY}.csv", quarantined=((3, "CCC", "parse_error", TZ), (4, "DDD", "parse_error", TZ)), check="no_missing_prices", flagged=2),
    Defect("latin1.csv", f"{DAY}.csv", error=errors.SourceEncodingError, mentions=("not valid UTF-8", "line 4")),
    Defect("symbol_renamed.csv", f"{DAY}.csv", quarantined=((4, "DDX", "unknown_symbol", "not in the instrument registry"),), check="known_symbols", flagged=1),
]


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> Iterator[dg.DagsterInstance]:
    """One real SQLite instance for every case's run (told apart by run id)."""
    with sqlite_instance(tmp_path_factory.mktemp("bad_input_instance") / "dagster_home") as inst:
        yield inst


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """The clean base history built once: (source directory, storage root, sha256 of its Parquet files).

    Built on an in-memory instance: 31 days of events on SQLite would cost seconds and prove nothing here.
    """
    root = tmp_path_factory.mktemp("bad_input_base")
    source, home = root / "source", root / "home"
    shutil.copytree(BAD / "base", source)
    result = run_range(Settings(home=str(home), source=str(source)), BASE_START, BASE_END, selection=CANONICAL)
    assert result.success
    prices = ParquetStore(str(home)).read("prices_daily")
    assert len(prices) == 4 * 31 and set(prices["symbol"]) == SYMBOLS
    hashes = tree_hashes(home / "parquet")
    assert {"prices_daily/2023.parquet", "returns_daily/2023.parquet", "quarantine/empty.parquet"} <= set(hashes)
    return source, home, hashes


def _drop(base, tmp_path: Path, defect: Defect) -> tuple[Path, Path]:
    """A copy of the base source and storage root with the defect file dropped into the source."""
    source, home, _ = base
    case_source, case_home = tmp_path / "source", tmp_path / "home"
    shutil.copytree(source, case_source)
    shutil.copytree(home, case_home)
    shutil.copyfile(BAD / defect.file, case_source / defect.dropped_as)
    return case_source, case_home


def _check_evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    """The latest evaluation of every canonical check, as the instance stores it, all from ``run_id``."""
    out = {}
    for name, asset in CHECKS.items():
        [record] = instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(dg.AssetKey(asset), name), limit=1)
        assert record.run_id == run_id, name
        out[name] = record.event.dagster_event.event_specific_data
    return out


def _file_rows(defect: Defect) -> pd.DataFrame:
    rows = pd.read_csv(BAD / defect.file, dtype=str, keep_default_na=False)
    rows.insert(0, "source_row", range(1, len(rows) + 1))
    return rows


@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: d.id)
def test_bad_input_outcome(base, tmp_path, instance, defect: Defect):
    source, home = _drop(base, tmp_path, defect)
    before = base[2]
    result = run_range(Settings(home=str(home), source=str(source)), DAY, defect.last, instance=instance, selection=RERUN, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    store = ParquetStore(str(home))
    days = calendar.trading_sessions(DAY, defect.last)

    if defect.error is not None:
        # (a) The run failed on the named error, naming the file; the instance records it as the step's cause.
        assert not result.success and run.status == dg.DagsterRunStatus.FAILURE
        [failure] = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        assert failure.dagster_event.step_key == "prices_daily"
        cause = failure.dagster_event.step_failure_data.error.cause
        assert cause.cls_name == defect.error.__name__
        assert issubclass(getattr(errors, cause.cls_name), errors.SourceFileError)
        assert str(source / defect.dropped_as) in cause.message
        for text in defect.mentions:
            assert text in cause.message
        # Nothing was materialized: no event in the run, no new file (returns_daily never ran).
        assert not instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        assert not instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        assert tree_hashes(home / "parquet") == before
    else:
        assert result.success and run.status == dg.DagsterRunStatus.SUCCESS
        # (a) Quarantined rows: exactly the expected ones, with reason, file and row, owned by the new partitions.
        q = store.read("quarantine", DAY, defect.last, date_column="partition_date")
        got = sorted(zip(q["source_row"].astype(int), q["symbol"], q["reason"], q["detail"]))
        assert [g[:3] for g in got] == [e[:3] for e in sorted(defect.quarantined)]
        for (_, _, _, detail), (*_, part) in zip(got, sorted(defect.quarantined)):
            assert part in detail
        assert set(q["source_file"]) <= {defect.dropped_as}
        assert set(q["partition_date"]) <= set(days)
        # Nothing lost, nothing altered: every other row of the file is in prices_daily with its value.
        rows = _file_rows(defect)
        accepted = rows[~rows["source_row"].isin([e[0] for e in defect.quarantined])]
        prices = store.read("prices_daily", DAY, defect.last)
        expected = zip(accepted["date"].str[:10], accepted["symbol"], accepted["close"].astype(float))  # [:10]: the stamps of the tz case
        assert sorted(zip(prices["date"].dt.strftime("%Y-%m-%d"), prices["symbol"], prices["close"])) == sorted(expected)
        # The checks, as stored on the instance for this run: only the defect's own fails, as a warning.
        evaluations = _check_evaluations(instance, result.run_id)
        failed = {name for name, ev in evaluations.items() if not ev.passed}
        assert failed == ({defect.check} if defect.check else set())
        if defect.check:
            ev = evaluations[defect.check]
            meta = {k: v.value for k, v in ev.metadata.items()}
            assert ev.severity == dg.AssetCheckSeverity.WARN
            if CHECKS[defect.check] == "prices_daily":
                assert meta["in_output"] == 0 and meta["quarantined"] == defect.flagged
                # The check shows the rows themselves: file, row and reason.
                shown = {(e["source_file"], e["source_row"], e["reason"]) for e in meta["examples"]}
                assert shown and shown <= {(defect.dropped_as, row, reason) for row, _, reason, _ in defect.quarantined}
            else:
                assert meta["count"] == defect.flagged
        _assert_specifics(defect, store, evaluations, source, home, base[1], tmp_path)
        # (b) The base's files are untouched (see the module docstring); the new sessions went to 2024 files.
        after = tree_hashes(home / "parquet")
        # (the base's zero-row quarantine placeholder gives way to the first year file with rows)
        placeholder = "quarantine/empty.parquet"
        assert (placeholder in after) == ("quarantine/2024.parquet" not in after)
        kept = {k: v for k, v in before.items() if k != placeholder or placeholder in after}
        assert {k: after.get(k) for k in kept} == kept
        assert set(after) - set(before) <= {"prices_daily/2024.parquet", "returns_daily/2024.parquet", "quarantine/2024.parquet"}
    # (c) No temp file left behind; the source directory was only read.
    assert not [p for p in home.rglob("*") if ".tmp-" in p.name]
    assert sorted(p.name for p in source.iterdir()) == sorted(["bars.csv", "instruments.csv", defect.dropped_as])


def _assert_specifics(defect: Defect, store: ParquetStore, evaluations, source: Path, home: Path, base_home: Path, tmp_path: Path) -> None:
    """What each non-error defect documents beyond its quarantined rows."""
    returns = store.read("returns_daily", DAY, defect.last)
    prices = store.read("prices_daily", DAY, defect.last)
    if defect.id == "jump_1000pct":
        # Kept (a 1000% day can be real), and the warning points at it.
        [jump] = evaluations["returns_within_50pct"].metadata["examples"].value
        assert (jump["date"], jump["symbol"]) == (DAY, "AAA") and jump["return"] == pytest.approx(10.0)
        assert returns.set_index("symbol").loc["AAA", "return"] == pytest.approx(10.0)
    elif defect.id == "stale_run":
        # BBB's close unchanged from 2023-12-29 over the 5 new sessions: a 6-session run, kept, warned.
        [run] = evaluations["no_stale_prices"].metadata["examples"].value
        assert (run["symbol"], run["start_date"], run["end_date"], run["sessions"]) == ("BBB", BASE_END, "2024-01-08", 6)
        assert (returns.loc[returns["symbol"] == "BBB", "return"] == 0.0).all() and len(returns) == 4 * 5
    elif defect.id == "unsorted_rows":
        # Row order does not matter: the tables are byte-identical to those built from the sorted file.
        sorted_source, sorted_home = tmp_path / "sorted_source", tmp_path / "sorted_home"
        shutil.copytree(source, sorted_source)
        shutil.copytree(base_home, sorted_home)
        rows = pd.read_csv(sorted_source / defect.dropped_as, dtype=str).sort_values(["date", "symbol"])
        rows.to_csv(sorted_source / defect.dropped_as, index=False)
        run_range(Settings(home=str(sorted_home), source=str(sorted_source)), DAY, defect.last, selection=RERUN)
        for name in ("prices_daily/2024.parquet", "returns_daily/2024.parquet"):
            assert _sha(sorted_home / "parquet" / name) == _sha(home / "parquet" / name), name
        assert len(prices) == 16 and len(returns) == 16
    elif defect.id == "timezone_shifted":
        # 16:00 New York given as 21:00Z or -05:00 is the 2 January session; UTC midnight is refused, not moved a day back.
        assert sorted(prices["symbol"]) == ["AAA", "BBB"] and set(prices["date"]) == {pd.Timestamp(DAY)}
    elif defect.id == "symbol_renamed":
        # DDX is held until the registry lists it; DDD simply has no bar, and no return bridges the rename.
        assert "DDD" not in set(returns["symbol"]) and "DDX" not in set(prices["symbol"])
    elif defect.id == "holiday_rows":
        # Quarantined in the partition of the next session (the 2 January run reads the closed days before it).
        q = store.read("quarantine", DAY, DAY, date_column="partition_date")
        assert sorted(q["date"].dt.strftime("%Y-%m-%d")) == ["2023-12-30", "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01"]
    elif defect.id == "future_dates":
        # AAA's bar typed as 2204 is not moved anywhere: AAA has no bar on the day, its row waits in quarantine.
        assert "AAA" not in set(prices["symbol"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_corpus_table_lists_every_defect_file():
    """The README of the corpus documents every file the test drops in, and nothing else."""
    readme = (BAD / "README.md").read_text(encoding="utf-8")
    files = {p.name for p in BAD.iterdir() if p.is_file() and p.suffix in {".csv", ".parquet"}}
    assert files == {d.file for d in DEFECTS}
    for d in DEFECTS:
        assert f"`{d.file}`" in readme, d.file
    assert len(DEFECTS) >= 15


@pytest.mark.parametrize(
    ("defect_file", "stays_at_base_end"),
    [("future_dates.csv", {"AAA"}), ("non_positive_prices.csv", {"AAA", "BBB", "CCC"})],
)
def test_registry_trading_span_counts_accepted_bars_only(tmp_path, defect_file, stays_at_base_end):
    """instruments.first/last_trading_date come from the bars prices_daily accepts: a row it
    quarantines (AAA dated 2204; a zero close, a negative close, a negative low) does not stretch a
    symbol's span. The other symbols' 2 January bars are accepted and extend theirs."""
    from prometheus_assets.resources.sources import build_source

    source = tmp_path / "source"
    shutil.copytree(BAD / "base", source)
    shutil.copy(BAD / defect_file, source / defect_file)
    registry = build_source(str(source)).instruments().set_index("symbol")
    expected_last = {s: pd.Timestamp(BASE_END if s in stays_at_base_end else DAY) for s in SYMBOLS}
    assert registry["last_trading_date"].to_dict() == expected_last
    assert (registry["first_trading_date"] == pd.Timestamp(BASE_START)).all()


def test_an_unreadable_file_without_a_date_name_fails_the_run_not_the_code_location(base, tmp_path, instance, caplog):
    """A corrupt file whose name is not a date has to be read to learn its dates. The code location
    still loads (its partitions and the sensor need the source's span; the file is left out of it,
    with a warning), and the run that reads the bars fails on the named error, naming the file."""
    source, home = _drop(base, tmp_path, Defect("truncated.parquet", "late_bars.parquet"))
    settings = Settings(home=str(home), source=str(source))
    from prometheus_assets.definitions import build_definitions

    build_definitions(settings)  # used to raise CorruptSourceFileError here, so the UI showed no code location
    assert "late_bars.parquet is left out of the span" in caplog.text
    result = run_range(settings, DAY, DAY, instance=instance, selection=RERUN, raise_on_error=False)
    assert not result.success
    [failure] = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    cause = failure.dagster_event.step_failure_data.error.cause
    assert cause.cls_name == "CorruptSourceFileError" and str(source / "late_bars.parquet") in cause.message
    assert tree_hashes(home / "parquet") == base[2]
