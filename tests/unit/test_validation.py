"""Validation: every bad row quarantined with its reason, nothing lost, nothing duplicated."""

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from prometheus_assets.core import calendar
from prometheus_assets.core.validation import QuarantineReason as R, assign_partition_dates, validate_bars

SESSIONS = calendar.trading_sessions("2020-01-02", "2020-03-31")


def bars(rows):
    frame = pd.DataFrame(rows, columns=["date", "symbol", "close"])
    frame["source_file"] = "f.csv"
    frame["source_row"] = range(1, len(frame) + 1)
    return frame


GOOD = [("2020-01-02", "AAA", 10.0), ("2020-01-02", "BBB", 20.0), ("2020-01-03", "AAA", 10.5)]


def reasons(result):
    return dict(zip(zip(result.quarantine["source_row"], result.quarantine["symbol"]), result.quarantine["reason"]))


def test_clean_input_passes_untouched():
    res = validate_bars(bars(GOOD), SESSIONS, {"AAA", "BBB"}, pd.Timestamp("2020-12-31"))
    assert len(res.clean) == 3 and res.quarantine.empty
    assert res.clean["date"].is_monotonic_increasing


def test_each_defect_gets_its_reason():
    rows = GOOD + [
        ("2020-01-06", "AAA", np.nan),      # 4 missing price
        ("2020-01-06", "BBB", 0.0),         # 5 non-positive
        ("2020-01-04", "AAA", 11.0),        # 6 Saturday
        ("2020-01-20", "AAA", 11.0),        # 7 MLK day holiday
        ("2020-01-07", "ZZZ", 5.0),         # 8 unknown symbol
        ("2030-01-02", "AAA", 11.0),        # 9 future
        ("2020-01-08", "AAA", 12.0),        # 10 identical duplicate pair ...
        ("2020-01-08", "AAA", 12.0),        # 11
        ("2020-01-09", "BBB", 21.0),        # 12 conflicting duplicate pair ...
        ("2020-01-09", "BBB", 22.0),        # 13
        (None, "AAA", 12.0),                # 14 no date
        ("2020-01-10", None, 12.0),         # 15 no symbol
        ("2020-01-10", "BBB", -3.0),        # 16 negative
    ]
    res = validate_bars(bars(rows), SESSIONS, {"AAA", "BBB"}, pd.Timestamp("2020-12-31"))
    got = dict(zip(res.quarantine["source_row"].astype(int), res.quarantine["reason"]))
    assert got == {
        4: R.MISSING_PRICE, 5: R.NON_POSITIVE_PRICE, 6: R.NON_TRADING_DAY, 7: R.NON_TRADING_DAY,
        8: R.UNKNOWN_SYMBOL, 9: R.FUTURE_DATE, 11: R.DUPLICATE_BAR, 12: R.CONFLICTING_DUPLICATE,
        13: R.CONFLICTING_DUPLICATE, 14: R.MISSING_DATE, 15: R.MISSING_SYMBOL, 16: R.NON_POSITIVE_PRICE,
    }
    assert len(res.clean) + len(res.quarantine) == len(rows)
    assert not res.clean.duplicated(["date", "symbol"]).any()
    assert res.reason_counts()["conflicting_duplicate"] == 2


def test_parse_errors_take_precedence_and_keep_the_message():
    raw = bars(GOOD)
    raw["parse_error"] = [None, "close: non-numeric value 'abc'", None]
    res = validate_bars(raw, SESSIONS)
    assert res.quarantine["reason"].tolist() == ["parse_error"]
    assert res.quarantine["detail"].tolist() == ["close: non-numeric value 'abc'"]


def test_rules_that_are_disabled():
    rows = [("2020-01-02", "ZZZ", 1.0), ("2027-01-04", "ZZZ", 1.0)]
    res = validate_bars(bars(rows), calendar.trading_sessions("2020-01-02", "2027-12-31"), known_symbols=None, as_of=None)
    assert len(res.clean) == 2


def test_assign_partition_dates():
    q = pd.DataFrame({"date": pd.to_datetime(["2020-01-04", "2020-01-06", None, "2030-01-01", "2019-12-01"])})
    days = pd.DatetimeIndex(pd.to_datetime(["2020-01-03", "2020-01-06", "2020-01-07"]))
    out = assign_partition_dates(q, days)
    assert out["partition_date"].dt.strftime("%m-%d").tolist() == ["01-06", "01-06", "01-03", "01-07", "01-03"]


def test_assign_partition_dates_by_owning_day_where_given():
    """A row with an owning day (the day its file is named for) goes to that day's partition, whatever its date."""
    q = pd.DataFrame({"date": pd.to_datetime(["2020-01-07", "2020-01-03", None, "2020-01-07"])})
    days = pd.DatetimeIndex(pd.to_datetime(["2020-01-03", "2020-01-06", "2020-01-07"]))
    owners = pd.Series(pd.to_datetime(["2020-01-03", None, "2020-01-06", "2020-01-04"]))  # 01-04: a Saturday
    out = assign_partition_dates(q, days, owners)
    assert out["partition_date"].dt.strftime("%m-%d").tolist() == ["01-03", "01-03", "01-06", "01-06"]
    assert assign_partition_dates(q, days, pd.Series(pd.NaT, index=q.index, dtype="datetime64[ns]")).equals(assign_partition_dates(q, days))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),                                     # day offset (includes weekends)
            st.sampled_from(["AAA", "BBB", "CCC", "ZZZ", None]),
            st.one_of(st.floats(-5, 100), st.just(float("nan")), st.just(0.0), st.just(10.0)),
        ),
        max_size=60,
    )
)
def test_nothing_lost_and_clean_is_clean(rows):
    start = pd.Timestamp("2020-01-01")
    frame = bars([((start + pd.Timedelta(days=d)).strftime("%Y-%m-%d"), s, c) for d, s, c in rows])
    res = validate_bars(frame, SESSIONS, {"AAA", "BBB", "CCC"}, pd.Timestamp("2020-02-01"))
    assert len(res.clean) + len(res.quarantine) == len(frame)
    clean = res.clean
    assert not clean.duplicated(["date", "symbol"]).any()
    assert (clean["close"] > 0).all() and clean["close"].notna().all()
    assert clean["date"].isin(SESSIONS).all()
    assert clean["symbol"].isin({"AAA", "BBB", "CCC"}).all()
    assert set(res.quarantine["reason"]) <= {r.value for r in R}
