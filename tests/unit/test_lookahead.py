"""The comparison behind the look-ahead proof (prometheus_assets.lookahead), on tiny stored tables."""

import pandas as pd

from prometheus_assets import lookahead
from prometheus_assets.resources.storage import ParquetStore


def put(home, table, days, value=1.0, column="date"):
    days = pd.to_datetime(days)
    ParquetStore(str(home)).write_dated(table, pd.DataFrame({column: days, "x": value}), days, date_column=column)


def test_rows_up_to_the_cut_must_be_identical_and_later_rows_are_ignored(tmp_path):
    full, short = tmp_path / "full", tmp_path / "short"
    put(full, "same", ["2020-01-02", "2020-01-03", "2020-01-06"])
    put(short, "same", ["2020-01-02", "2020-01-03"])
    put(full, "peeks", ["2020-01-02", "2020-01-03"], value=2.0)  # e.g. a row computed with later data
    put(short, "peeks", ["2020-01-02", "2020-01-03"], value=1.0)
    put(full, "keyed", ["2020-01-03"], column="as_of_date")
    put(short, "keyed", ["2020-01-03"], column="as_of_date")
    put(full, "only_full", ["2020-01-02"])
    tables = {"same": "date", "peeks": "date", "keyed": "as_of_date", "only_full": "date"}
    result = {c.table: c for c in lookahead.compare(str(full), str(short), "2020-01-03", tables)}
    assert result["same"].ok and result["same"].rows == 2
    assert result["keyed"].ok and result["keyed"].rows == 1
    assert not result["peeks"].ok and "x" in result["peeks"].difference
    assert not result["only_full"].ok and "truncated" in result["only_full"].difference
    text = "\n".join(lookahead.report(list(result.values())))
    assert "2 of 4 point-in-time tables identical; different: peeks, only_full" in text
