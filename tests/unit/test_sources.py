"""The three market data sources behind one interface."""

import pandas as pd
import pytest

from prometheus_assets.core.schema import BAR_COLUMNS, INSTRUMENT_COLUMNS
from prometheus_assets.errors import SourceConfigError
from prometheus_assets.resources.sources import BundledSource, FilesSource, SyntheticSource, build_source
from tests.conftest import bundled_wide, write_day_files


def test_bundled_source_is_the_real_sp500_history():
    src = BundledSource()
    assert src.has_registry()
    first, last = src.span()
    assert (first, last) == (pd.Timestamp("1990-01-02"), pd.Timestamp("2022-12-28"))
    bars = src.load_bars(first, None)
    assert bars["symbol"].nunique() == 20 and len(bars) == 20 * 8313
    assert list(bars.columns[: len(BAR_COLUMNS)]) == BAR_COLUMNS
    assert bars["volume"].isna().all()  # prices only
    reg = src.instruments()
    assert list(reg.columns[: len(INSTRUMENT_COLUMNS)]) == INSTRUMENT_COLUMNS
    assert reg.set_index("symbol").loc["JPM", "sector"] == "Financials"
    assert reg.set_index("symbol").loc["MSFT", "industry"] == "Software"
    assert reg["sector"].notna().all() and reg["sector"].nunique() == 7
    ref = src.reference_prices()
    assert set(ref["symbol"]) == {"SP500", "MTUM", "QUAL", "SIZE", "USMV", "VLUE"}
    assert ref.loc[ref["symbol"] == "MTUM", "date"].min() == pd.Timestamp("2014-01-02")


def test_bundled_source_honours_start_and_end():
    src = BundledSource(pd.Timestamp("2020-01-01"), pd.Timestamp("2020-06-30"))
    assert src.span() == (pd.Timestamp("2020-01-02"), pd.Timestamp("2020-06-30"))
    bars = src.load_bars(pd.Timestamp("2019-01-01"), None)
    assert bars["date"].min() == pd.Timestamp("2020-01-02") and bars["date"].max() == pd.Timestamp("2020-06-30")


def test_synthetic_source_is_seeded_and_complete():
    a = SyntheticSource(n_assets=40, seed=3, start=pd.Timestamp("2018-01-02"), end=pd.Timestamp("2019-12-31"))
    b = SyntheticSource(n_assets=40, seed=3, start=pd.Timestamp("2018-01-02"), end=pd.Timestamp("2019-12-31"))
    pd.testing.assert_frame_equal(a.load_bars(*a.span()), b.load_bars(*b.span()), check_exact=True)
    bars = a.load_bars(*a.span())
    # Up to n_assets: a few list after the span ends (listings are drawn on a fixed 20-year horizon).
    assert 30 <= bars["symbol"].nunique() <= 40 and bars["volume"].notna().all()
    assert a.instruments()["sector"].nunique() == 11
    assert {"market_cap", "available_date"} <= set(a.fundamentals().columns)
    assert a.issuer_texts()["description"].str.len().min() > 20
    assert set(a.reference_prices()["symbol"]) == {"SYNMKT"}
    c = SyntheticSource(n_assets=40, seed=4, start=pd.Timestamp("2018-01-02"), end=pd.Timestamp("2019-12-31"))
    assert not c.load_bars(*c.span())["close"].equals(bars["close"])


def test_files_source_from_bundled_data_round_trips(tmp_path):
    wide = bundled_wide("2021-03-01", "2021-04-30")
    write_day_files(tmp_path / "bars", wide)
    src = FilesSource(str(tmp_path / "bars"))
    assert src.span() == (pd.Timestamp("2021-03-01"), pd.Timestamp("2021-04-30"))
    bars = src.load_bars(*src.span())
    got = bars.set_index(["date", "symbol"])["close"].sort_index()
    expected = wide.rename_axis(index="date", columns="symbol").stack().sort_index()
    expected.index = expected.index.set_levels(expected.index.levels[0].astype("datetime64[ns]"), level=0)
    pd.testing.assert_series_equal(got, expected, check_names=False, check_index_type=False)
    assert src.instruments() is None and not src.has_registry()  # no registry file: the universe is what the files hold
    pd.DataFrame({"symbol": ["AAPL"]}).to_csv(tmp_path / "bars" / "instruments.csv", index=False)
    assert src.has_registry() and list(src.instruments()["symbol"]) == ["AAPL"]


def test_files_source_span_ends_on_the_newest_bar_not_after_today(tmp_path):
    wide = bundled_wide("2021-03-01", "2021-03-31")
    write_day_files(tmp_path / "bars", wide)
    # A future-dated row (a typo) must not stretch the span to the end of the calendar: the
    # sensor would request, and `make run` build, sessions the directory has no data for.
    pd.DataFrame({"date": ["2204-03-31"], "symbol": ["AAPL"], "close": [1.0]}).to_csv(tmp_path / "bars" / "typo.csv", index=False)
    src = FilesSource(str(tmp_path / "bars"))
    assert src.span() == (pd.Timestamp("2021-03-01"), pd.Timestamp("2021-03-31"))
    # The row is still delivered by an open-ended load, so that validation quarantines it.
    assert pd.Timestamp("2204-03-31") in set(src.load_bars(pd.Timestamp("2021-03-31"), None)["date"])


def test_build_source_dispatch_and_errors(tmp_path):
    assert isinstance(build_source("bundled"), BundledSource)
    assert isinstance(build_source("synthetic", 5, 1, "2020-01-02", "2020-02-28"), SyntheticSource)
    with pytest.raises(SourceConfigError, match="neither"):
        build_source(str(tmp_path / "nope"))
    with pytest.raises(SourceConfigError, match="before"):
        build_source("bundled", start="2020-01-02", end="2019-01-02")
    with pytest.raises(SourceConfigError, match=">= 1"):
        SyntheticSource(n_assets=0)
