"""core.risk: shrunk covariance, Euler decomposition, betas, exposures, stress tests, daily reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.covariance import LedoitWolf

from prometheus_assets.core.risk import (
    RISK_REPORT_COLUMNS,
    RISK_SECTIONS,
    STRESS_COLUMNS,
    STRESS_WINDOWS,
    betas,
    coverage,
    ex_ante_volatility,
    factor_exposures,
    risk_contributions,
    risk_reports,
    shrunk_covariance,
    stress_test,
)


# --------------------------------------------------------------------------- covariance


def random_returns(n_days: int = 120, symbols: tuple[str, ...] = ("A", "B", "C", "D"), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.01, n_days)
    data = {s: common * (0.5 + i * 0.3) + rng.normal(0, 0.01 + 0.003 * i, n_days) for i, s in enumerate(symbols)}
    return pd.DataFrame(data, index=pd.bdate_range("2020-01-01", periods=n_days))


def test_shrunk_covariance_equals_sklearn_ledoit_wolf():
    r = random_returns()
    r.iloc[::10, 0] = np.nan  # A: 90% coverage → kept, gaps filled with A's mean
    r.iloc[: len(r) // 2, 3] = np.nan  # D: 50% coverage → dropped
    cov = shrunk_covariance(r, min_coverage=0.8)
    assert list(cov.index) == list(cov.columns) == ["A", "B", "C"]
    filled = r[["A", "B", "C"]].fillna(r[["A", "B", "C"]].mean())
    expected = LedoitWolf().fit(filled.to_numpy()).covariance_
    np.testing.assert_allclose(cov.to_numpy(), expected, rtol=0, atol=1e-15)
    # a lower coverage threshold keeps D
    assert list(shrunk_covariance(r, min_coverage=0.5).index) == ["A", "B", "C", "D"]


def test_shrunk_covariance_needs_two_rows():
    r = random_returns()
    assert shrunk_covariance(r.iloc[:1]).empty
    assert shrunk_covariance(r.iloc[:0]).empty
    assert shrunk_covariance(r.iloc[:2]).shape == (4, 4)


# --------------------------------------------------------------------------- volatility & Euler


def test_euler_decomposition_sums_to_ex_ante_volatility():
    cov = shrunk_covariance(random_returns(symbols=("A", "B", "C", "D", "E")))
    weights = pd.Series({"A": 0.30, "B": -0.15, "C": 0.25, "E": 0.10, "UNKNOWN": 0.20})
    vol = ex_ante_volatility(weights, cov)
    known = weights.drop("UNKNOWN").reindex(cov.index, fill_value=0.0).to_numpy()
    assert vol == pytest.approx(np.sqrt(known @ cov.to_numpy() @ known * 252), rel=1e-14)
    assert coverage(weights, cov) == pytest.approx(0.80 / 1.00)

    rc = risk_contributions(weights, cov)
    assert list(rc.index) == ["A", "B", "C", "E"]  # names in both, the unknown one is ignored
    assert list(rc.columns) == ["marginal", "contribution", "share"]
    assert abs(rc["contribution"].sum() - vol) <= 1e-12
    assert abs(rc["share"].sum() - 1.0) <= 1e-12
    # marginal = d(vol)/d(w_i): compare with a central finite difference
    for name in rc.index:
        h = 1e-6
        up, down = weights.copy(), weights.copy()
        up[name] += h
        down[name] -= h
        numeric = (ex_ante_volatility(up, cov) - ex_ante_volatility(down, cov)) / (2 * h)
        assert rc.loc[name, "marginal"] == pytest.approx(numeric, rel=1e-6)


def test_zero_weights_have_zero_volatility():
    cov = shrunk_covariance(random_returns())
    weights = pd.Series({"A": 0.0, "B": 0.0})
    assert ex_ante_volatility(weights, cov) == 0.0
    assert (risk_contributions(weights, cov).to_numpy() == 0).all()
    assert coverage(weights, cov) == 1.0


# --------------------------------------------------------------------------- betas & exposures


def test_betas_match_numpy_polyfit():
    r = random_returns(n_days=80)
    market = r.mean(axis=1) + np.random.default_rng(1).normal(0, 0.002, len(r))
    market.iloc[5:9] = np.nan
    r.iloc[::7, 1] = np.nan
    r.iloc[:65, 3] = np.nan  # D: 15 observations → no beta
    got = betas(r, market)
    for name in ["A", "B", "C"]:
        both = r[name].notna() & market.notna()
        slope = np.polyfit(market[both].to_numpy(), r.loc[both, name].to_numpy(), 1)[0]
        assert got[name] == pytest.approx(slope, rel=1e-10)
    assert np.isnan(got["D"])


def test_betas_align_the_factor_on_the_window_dates():
    r = random_returns(n_days=60)
    factor = r["A"] * 2.0
    longer = pd.concat([pd.Series([0.5, -0.5], index=pd.bdate_range("2019-01-01", periods=2)), factor])
    assert betas(r, longer)["A"] == pytest.approx(0.5)


def test_factor_exposures():
    r = random_returns(n_days=100, symbols=("A", "B", "C"))
    market = r.mean(axis=1)
    factors = pd.DataFrame({"MTUM": r["A"] - r["B"], "NEWETF": np.nan}, index=r.index)
    factors.iloc[-19:, 1] = 0.001 * np.arange(19)  # 19 observations only → omitted
    sectors = pd.Series({"A": "Tech", "B": "Tech", "C": "Energy"})
    weights = pd.Series({"A": 0.4, "B": -0.1, "C": 0.2, "X": 0.05, "Y": 0.0})
    out = factor_exposures(weights, r, market, factors, sectors)

    b_market, b_mtum = betas(r, market), betas(r, factors["MTUM"])
    held = weights[["A", "B", "C"]]
    assert out["market_beta"] == pytest.approx((held * b_market[held.index]).sum())  # X has no returns: counts 0
    assert out["factor:MTUM"] == pytest.approx((held * b_mtum[held.index]).sum())
    assert "factor:NEWETF" not in out
    assert out["sector:Tech"] == pytest.approx(0.3)
    assert out["sector:Energy"] == pytest.approx(0.2)
    assert out["sector:Unknown"] == pytest.approx(0.05)  # X has no sector; Y is not held
    assert (out["gross"], out["net"], out["long"], out["short"], out["n_positions"]) == pytest.approx((0.75, 0.55, 0.65, -0.1, 4))
    assert factor_exposures(weights, r, market, None, sectors).keys() == out.keys() - {"factor:MTUM"}


# --------------------------------------------------------------------------- stress tests


def stress_prices() -> tuple[pd.DataFrame, pd.Series]:
    sessions = pd.DatetimeIndex(["2008-09-30", "2008-10-01", "2008-10-02", "2008-10-03", "2008-10-06"])
    prices = pd.DataFrame(
        {
            "A": [99.0, 100.0, 90.0, 95.0, 96.0],  # -5% over the window
            "B": [49.0, 50.0, np.nan, 55.0, 50.0],  # +10%, no price on 10-02 (held at 50)
            "D": [11.0, 10.0, 8.0, np.nan, np.nan],  # delisted before the window ends → proxy
        },
        index=sessions,
    )
    proxy = pd.Series([0.01, 0.50, -0.10, 0.02, 0.03], index=sessions)  # 10-01's +50% is the base day: ignored
    return prices, proxy


def test_stress_test_hand_example():
    prices, proxy = stress_prices()
    weights = pd.Series({"A": 0.5, "B": -0.2, "C": 0.3, "D": 0.1})  # C has no prices at all; cash = 0.3
    windows = {"crunch": ("2008-09-30 12:00", "2008-10-03"), "later": ("2008-10-01", "2008-10-06")}
    out = stress_test(weights, prices, windows, as_of=pd.Timestamp("2008-10-03"), proxy=proxy)
    assert list(out.columns) == STRESS_COLUMNS
    assert out["window"].tolist() == ["crunch"]  # "later" is not over on 10-03
    row = out.iloc[0]
    assert (row["start"], row["end"]) == (pd.Timestamp("2008-10-01"), pd.Timestamp("2008-10-03"))
    # proxy growth since 10-01: 0.90 on 10-02, 0.90 · 1.02 = 0.918 on 10-03 → R = -0.082 for C and D
    # R: A -0.05, B +0.10, C -0.082, D -0.082
    assert row["stress_return"] == pytest.approx(0.5 * -0.05 - 0.2 * 0.10 + 0.3 * -0.082 + 0.1 * -0.082, abs=1e-15)
    # book value: 10-01 1; 10-02 0.3 + 0.5·0.90 - 0.2·1.00 + 0.4·0.900 = 0.91;
    #             10-03 0.3 + 0.5·0.95 - 0.2·1.10 + 0.4·0.918 = 0.9222 (= 1 + stress_return)
    assert row["worst_day"] == pytest.approx(0.91 / 1.0 - 1.0, abs=1e-15)
    assert row["coverage"] == pytest.approx(0.7 / 1.1, abs=1e-15)

    # without a proxy the unpriced names count 0: 10-02 0.95, 10-03 0.955
    plain = stress_test(weights, prices, windows, as_of=pd.Timestamp("2008-10-03")).iloc[0]
    assert plain["stress_return"] == pytest.approx(-0.045, abs=1e-15)
    assert plain["worst_day"] == pytest.approx(-0.05, abs=1e-15)
    assert plain["coverage"] == row["coverage"]

    # once "later" is over it is replayed too: 10-01 → 10-06 (0.7 cash+C+D at proxy growth 0.918 · 1.03)
    both = stress_test(weights, prices, windows, as_of=pd.Timestamp("2008-10-06"), proxy=proxy)
    assert both["window"].tolist() == ["crunch", "later"]
    later = both.iloc[1]
    g = 0.918 * 1.03
    assert later["stress_return"] == pytest.approx(0.5 * -0.04 - 0.2 * 0.0 + 0.4 * (g - 1), abs=1e-15)


def test_stress_windows_not_over_are_omitted_and_defaults_documented():
    prices, proxy = stress_prices()
    weights = pd.Series({"A": 1.0})
    assert stress_test(weights, prices, {"w": ("2008-10-01", "2008-10-06")}, as_of=pd.Timestamp("2008-10-03")).empty
    assert stress_test(weights, prices, STRESS_WINDOWS, as_of=pd.Timestamp("2008-10-03")).empty  # no 1998/2000 prices, 2008-10 running
    assert list(STRESS_WINDOWS) == ["1998-08", "2000-2002", "2008-10", "2020-03"]


# --------------------------------------------------------------------------- daily risk reports

SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "NEW")


def market_data(n_days: int = 560, seed: int = 7):
    """Synthetic returns / prices / market / factors / sectors for the report tests."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_days)
    common = rng.normal(0, 0.01, n_days)
    returns = pd.DataFrame(
        {s: common * (0.6 + 0.15 * i) + rng.normal(0, 0.012, n_days) for i, s in enumerate(SYMBOLS)}, index=dates
    )
    returns.iloc[rng.random((n_days, len(SYMBOLS))) < 0.03] = np.nan
    returns.iloc[:300, SYMBOLS.index("NEW")] = np.nan  # listed late: not covered at first
    prices = 20.0 * (1.0 + returns.fillna(0.0)).cumprod()
    prices.iloc[:299, SYMBOLS.index("NEW")] = np.nan
    market = returns.mean(axis=1).rename("market_return")
    factors = pd.DataFrame({"MTUM": returns["AAA"] - returns["BBB"] + rng.normal(0, 0.003, n_days), "LATE": np.nan}, index=dates)
    factors.iloc[400:, 1] = rng.normal(0, 0.01, n_days - 400)
    sectors = pd.Series({"AAA": "Tech", "BBB": "Tech", "CCC": "Energy", "DDD": "Energy", "EEE": "Health", "FFF": "Utilities", "NEW": "Tech"})
    windows = {"early": (str(dates[100].date()), str(dates[130].date())), "mid": (str(dates[380].date()), str(dates[400].date())),
               "future": ("2030-01-01", "2030-02-01")}
    return returns, prices, market, factors, sectors, windows


def make_positions(dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Two books from day 20 on.

    ``monthly`` changes names each month and adds a name on the 10th session of some months;
    ``weekly`` trades every 5 sessions, is short one name and is in cash for three weeks.
    """
    rng = np.random.default_rng(3)
    rows = []
    month_names: list[str] = []
    for i, d in enumerate(dates[20:], start=20):
        if i == 20 or d.month != dates[i - 1].month:
            month_names = list(rng.choice(SYMBOLS[:-1] if i < 300 else SYMBOLS, 3, replace=False))
            month_day = 0
        month_day += 1
        names = list(month_names)
        if month_day >= 10 and d.month % 2 == 0:
            extra = [s for s in SYMBOLS if s not in names][d.month % 4]
            names.append(extra)
        for j, s in enumerate(names):
            rows.append((d, "monthly", s, 0.2 + 0.05 * j))
        if i % 5 == 0 or i == 20:
            weekly = {s: w for s, w in zip(rng.choice(SYMBOLS, 4, replace=False), [0.3, 0.25, 0.2, -0.1])}
        if 200 <= i < 215:
            rows.append((d, "weekly", "AAA", 0.0))  # in cash: a row with a zero weight
        else:
            rows.extend((d, "weekly", s, w * (1 + 0.01 * (i % 5))) for s, w in weekly.items())
    return pd.DataFrame(rows, columns=["date", "book", "symbol", "target_weight"])


@pytest.fixture(scope="module")
def report_inputs():
    returns, prices, market, factors, sectors, windows = market_data()
    positions = make_positions(returns.index)
    return positions, returns, prices, market, factors, sectors, windows


@pytest.fixture(scope="module")
def full_report(report_inputs):
    positions, returns, prices, market, factors, sectors, windows = report_inputs
    return risk_reports(positions, returns, prices, market, factors, sectors, windows=windows)


def block(report: pd.DataFrame, date, book: str) -> pd.DataFrame:
    return report[(report["date"] == pd.Timestamp(date)) & (report["book"] == book)]


def values(rows: pd.DataFrame, section: str) -> pd.Series:
    part = rows[rows["section"] == section]
    return pd.Series(part["value"].to_numpy(), index=part["item"].to_numpy())


def test_report_structure(report_inputs, full_report):
    positions = report_inputs[0]
    report = full_report
    assert list(report.columns) == RISK_REPORT_COLUMNS
    assert report["value"].dtype == "float64"
    keys = report[["date", "book"]].drop_duplicates()
    assert len(keys) == len(positions[["date", "book"]].drop_duplicates())
    # sorted by date, book, then section in report order
    order = report["section"].map({s: i for i, s in enumerate(RISK_SECTIONS)})
    sort_key = pd.DataFrame({"d": report["date"], "b": report["book"], "s": order})
    assert sort_key.equals(sort_key.sort_values(["d", "b", "s"], kind="stable"))
    assert not report.duplicated(["date", "book", "section", "item"]).any()
    # shares of risk sum to 1 wherever the book has a volatility
    vol = report[report["item"] == "ex_ante_volatility"].set_index(["date", "book"])["value"]
    shares = report[report["section"] == "contribution"].groupby(["date", "book"])["value"].sum()
    with_risk = vol[vol > 0].index
    assert len(with_risk) > 500
    np.testing.assert_allclose(shares.reindex(with_risk).to_numpy(), 1.0, atol=1e-12)


def test_empty_book_reports_zero_volatility_and_gross_only(full_report, report_inputs):
    dates = report_inputs[1].index
    rows = block(full_report, dates[205], "weekly")
    assert list(zip(rows["section"], rows["item"], rows["value"])) == [("risk", "ex_ante_volatility", 0.0), ("factor", "gross", 0.0)]


def test_report_matches_the_public_functions(report_inputs, full_report):
    positions, returns, prices, market, factors, sectors, windows = report_inputs
    # a day late in a month, after the "monthly" book added its extra name (even month)
    day = next(d for d in returns.index[470:] if d.month % 2 == 0 and d.day >= 20)
    month_start = day.replace(day=1)
    for book in ["monthly", "weekly"]:
        held_month = positions[(positions["book"] == book) & (positions["date"] >= month_start) & (positions["date"] <= day)
                               & (positions["target_weight"] != 0)]
        names = sorted(held_month["symbol"].unique())
        window = returns[returns.index < month_start].iloc[-252:][names]
        cov = shrunk_covariance(window)
        w = positions[(positions["book"] == book) & (positions["date"] == day)].set_index("symbol")["target_weight"]
        rows = block(full_report, day, book)
        risk = values(rows, "risk")
        assert risk["ex_ante_volatility"] == pytest.approx(ex_ante_volatility(w, cov), rel=1e-12)
        assert risk["coverage"] == pytest.approx(coverage(w, cov), rel=1e-12)
        rc = risk_contributions(w, cov)
        rc = rc[w.reindex(rc.index) != 0].sort_index()
        contrib, marginal = values(rows, "contribution"), values(rows, "marginal")
        assert list(contrib.index) == list(marginal.index) == list(rc.index)
        np.testing.assert_allclose(contrib.to_numpy(), rc["share"].to_numpy(), rtol=1e-10)
        np.testing.assert_allclose(marginal.to_numpy(), rc["marginal"].to_numpy(), rtol=1e-10)
        expected = factor_exposures(w, window, market, factors, sectors)
        got = values(rows, "factor")
        assert set(got.index) == set(expected)
        assert "factor:LATE" in got.index  # 20+ LATE returns before this month
        for item, value in expected.items():
            assert got[item] == pytest.approx(value, rel=1e-10, abs=1e-14), item
        stress = stress_test(w, prices, windows, as_of=day, proxy=market)
        got_stress = values(rows, "stress")
        assert list(got_stress.index) == ["early", "early:worst_day", "mid", "mid:worst_day"]
        for _, s in stress.iterrows():
            assert got_stress[s["window"]] == pytest.approx(s["stress_return"], rel=1e-12)
            assert got_stress[f"{s['window']}:worst_day"] == pytest.approx(s["worst_day"], rel=1e-12)


def cut(report_inputs, t: pd.Timestamp):
    positions, returns, prices, market, factors, sectors, windows = report_inputs
    return (positions[positions["date"] <= t], returns[returns.index <= t], prices[prices.index <= t],
            market[market.index <= t], factors[factors.index <= t], sectors, windows)


def test_truncated_inputs_give_identical_rows(report_inputs, full_report):
    dates = report_inputs[1].index
    monthly = report_inputs[0][report_inputs[0]["book"] == "monthly"]
    # a day the monthly book adds a name mid-month (its model is re-estimated from then on)
    n_names = monthly.groupby("date").size()
    added = n_names.index[(n_names.diff() > 0) & (n_names.index.day > 5)][2]
    for t in [dates[130], added - pd.offsets.BDay(1), added, dates[301], dates[-1]]:
        positions, returns, prices, market, factors, sectors, windows = cut(report_inputs, t)
        short = risk_reports(positions, returns, prices, market, factors, sectors, windows=windows)
        expected = full_report[full_report["date"] <= t].reset_index(drop=True)
        pd.testing.assert_frame_equal(short, expected, check_exact=True)


def test_dates_restrict_the_output_without_changing_it(report_inputs, full_report):
    positions, returns, prices, market, factors, sectors, windows = report_inputs
    some = pd.DatetimeIndex([returns.index[45], returns.index[333], returns.index[-1], pd.Timestamp("1990-01-01")])
    subset = risk_reports(positions, returns, prices, market, factors, sectors, windows=windows, dates=some)
    expected = full_report[full_report["date"].isin(some)].reset_index(drop=True)
    pd.testing.assert_frame_equal(subset, expected, check_exact=True)


def test_risk_model_is_refreshed_monthly_from_earlier_returns_only(report_inputs, full_report):
    positions, returns, prices, market, factors, sectors, windows = report_inputs
    month_start = pd.Timestamp("2022-03-01")
    in_month = (full_report["date"] >= month_start) & (full_report["date"] < pd.Timestamp("2022-04-01"))
    next_month = (full_report["date"] >= pd.Timestamp("2022-04-01")) & (full_report["date"] < pd.Timestamp("2022-05-01"))

    def rerun(changed_returns: pd.DataFrame) -> pd.DataFrame:
        return risk_reports(positions, changed_returns, prices, market, factors, sectors, windows=windows)

    # returns dated on or after the month's first day do not move the month's figures ...
    later = returns.copy()
    later.loc[later.index >= month_start] *= 3.0
    changed = rerun(later)
    pd.testing.assert_frame_equal(changed[in_month], full_report[in_month], check_exact=True)
    assert not np.allclose(changed.loc[next_month, "value"], full_report.loc[next_month, "value"])
    # ... returns of the session before it do
    before = returns.copy()
    before.loc[before.index[before.index < month_start][-1]] *= 5.0
    changed = rerun(before)
    vol = (changed["section"] == "risk") & (changed["item"] == "ex_ante_volatility") & in_month
    assert not np.allclose(changed.loc[vol, "value"], full_report.loc[vol, "value"])
    # and a mid-month return only reaches the next month's model
    mid = returns.copy()
    mid.loc[returns.index[(returns.index > month_start + pd.Timedelta(days=10))][0]] *= 5.0
    changed = rerun(mid)
    pd.testing.assert_frame_equal(changed[in_month], full_report[in_month], check_exact=True)
    vol_next = (changed["section"] == "risk") & (changed["item"] == "ex_ante_volatility") & next_month
    assert not np.allclose(changed.loc[vol_next, "value"], full_report.loc[vol_next, "value"])


def test_empty_positions_give_an_empty_report(report_inputs):
    positions, returns, prices, market, factors, sectors, windows = report_inputs
    out = risk_reports(positions.iloc[:0], returns, prices, market, None, sectors, windows=windows)
    assert out.empty and list(out.columns) == RISK_REPORT_COLUMNS


@pytest.mark.parametrize("window, expected", [("1998-08", -0.1458), ("2008-10", -0.1694), ("2020-03", -0.1251)])
def test_a_month_window_runs_from_the_previous_month_end_close(window, expected):
    """The S&P 500's calendar-month return (previous month-end close → month-end close) is what a book fully in
    the index loses in the month's stress window. Regression: the base was the month's first session, which left
    out the first day's move (March 2020 read -16.4%, not -12.5%)."""
    from skfolio.datasets import load_sp500_index

    index = load_sp500_index()["SP500"]
    index.index = pd.DatetimeIndex(index.index)
    start, end = (pd.Timestamp(d) for d in STRESS_WINDOWS[window])
    direct = index[index.index <= end].iloc[-1] / index[index.index < pd.Timestamp(window + "-01")].iloc[-1] - 1.0
    prices = index.to_frame("SPX")
    out = stress_test(pd.Series({"SPX": 1.0}), prices, {window: STRESS_WINDOWS[window]}, as_of=pd.Timestamp("2022-12-30"))
    assert out["stress_return"].iloc[0] == pytest.approx(direct, abs=1e-12)
    assert direct == pytest.approx(expected, abs=5e-4)
