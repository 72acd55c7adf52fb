"""core.allocator.state: every feature against its textbook definition (hand-checked numbers and
direct formulas on random data), optional-feature exclusion, the dropna rule and meta, and the
online state (== batch to 1e-10, bounded, JSON resume bit-identical)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prometheus_assets.core.allocator.state import (
    FEATURES,
    OPTIONAL_FEATURES,
    REQUIRED_FEATURES,
    AllocatorStateV1,
    AllocatorStateV1Online,
    rolling_average_correlation,
)

TOL = {"rtol": 1e-10, "atol": 1e-10}
SQRT_252 = math.sqrt(252)
META_KEYS = {
    "version",
    "lookbacks",
    "rows_before_dropna",
    "rows_after_dropna",
    "rows_dropped",
    "requested_start",
    "requested_end",
    "effective_start",
    "effective_end",
    "features",
}
HYPOTHESIS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- inputs
def dates(n: int) -> pd.DatetimeIndex:
    return pd.bdate_range("2020-01-01", periods=n)


def base_inputs(n: int = 90, n_assets: int = 5, seed: int = 0) -> dict:
    """Plain random inputs, long enough for rows to survive the 60-row lookbacks."""
    rng = np.random.default_rng(seed)
    idx = dates(n)
    assets = pd.DataFrame(rng.normal(0.0005, 0.02, (n, n_assets)), index=idx, columns=[f"A{i}" for i in range(n_assets)])
    port = assets.mean(axis=1)
    return {"portfolio_returns": port, "equity_curve": 100 * (1 + port).cumprod(), "asset_returns": assets}


def reference_correlation(window: np.ndarray) -> float:
    """Mean off-diagonal of np.corrcoef over the complete, non-constant columns of one window."""
    keep = ~np.isnan(window).any(axis=0)
    keep[keep] = np.ptp(window[:, keep], axis=0) > 0
    n = int(keep.sum())
    if n < 2:
        return np.nan
    corr = np.corrcoef(window[:, keep], rowvar=False)
    return float((corr.sum() - np.trace(corr)) / (n * (n - 1)))


def reference_frame(portfolio_returns, equity_curve, asset_returns, trend_unit_returns=None, sleeve_returns=None, invested=None) -> pd.DataFrame:
    """The state from the definitions, with pandas / np.corrcoef / np.prod, one date at a time."""
    idx = portfolio_returns.index
    port = portfolio_returns.astype(float)
    held = np.ones(len(idx), bool) if invested is None else invested.reindex(idx).fillna(True).to_numpy(dtype=bool)
    equity = equity_curve.reindex(idx).astype(float)
    assets = asset_returns.reindex(idx).to_numpy(dtype=float)
    out = pd.DataFrame(index=pd.DatetimeIndex(idx, name="date"))
    for w in (20, 60):  # over the invested sessions alone, NaN on a session in cash
        out[f"port_rvol_{w}d"] = (port[held].rolling(w, min_periods=w).std(ddof=1) * SQRT_252).reindex(idx).to_numpy()
    out["vol_accel"] = out["port_rvol_20d"] / out["port_rvol_60d"]
    dd = equity / equity.cummax() - 1
    out["dd_level"] = dd.to_numpy()
    out["dd_slope_10d"] = ((dd - dd.shift(10)) / 10).to_numpy()
    for w in (20, 60):
        out[f"corr_{w}d"] = [reference_correlation(assets[t - w + 1 : t + 1]) if t >= w - 1 else np.nan for t in range(len(idx))]
    out["corr_shock"] = out["corr_20d"] - out["corr_60d"]
    if trend_unit_returns is not None:
        units = trend_unit_returns.reindex(idx).to_numpy(dtype=float)
        values = []
        for t in range(len(idx)):
            window = units[max(t - 19, 0) : t + 1]
            complete = ~np.isnan(window).any(axis=0) if t >= 19 else np.zeros(units.shape[1], bool)
            trend = np.prod(1 + window[:, complete], axis=0) - 1
            values.append(float(np.mean(trend > 0)) if complete.any() else np.nan)
        out["trend_breadth_20d"] = values
    if sleeve_returns is not None:
        sleeves = sleeve_returns.reindex(idx).to_numpy(dtype=float)
        values = []
        for t in range(len(idx)):
            c = np.nansum(sleeves[t - 59 : t + 1], axis=0) if t >= 59 else np.zeros(sleeves.shape[1])
            total = np.abs(c).sum()
            values.append(float(((np.abs(c) / total) ** 2).sum()) if total > 0 and t >= 59 else np.nan)
        out["sleeve_concentration_60d"] = values
    return out


@st.composite
def random_inputs(draw) -> dict:
    """Random inputs with gaps, listings / delistings, constant and duplicated assets, optional
    trend units and sleeves, and inputs on a calendar that is not exactly the portfolio's."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 140))
    n_assets = draw(st.integers(0, 7))
    idx = dates(n)
    a = rng.normal(0.0003, 0.02, (n, n_assets)) * rng.choice([0.5, 1.0, 3.0], n_assets)
    if n_assets >= 2 and draw(st.booleans()):
        a[:, 1] = 2.0 * a[:, 0] + 0.001  # perfectly correlated pair
    if n_assets >= 3 and draw(st.booleans()):
        a[:, 2] = draw(st.sampled_from([0.0, 0.001]))  # constant: excluded from correlations
    for j in range(n_assets):
        if draw(st.booleans()):  # listed late and / or delisted early
            lo, hi = sorted(rng.integers(0, n + 1, 2)) if n else (0, 0)
            a[:lo, j] = np.nan
            a[hi:, j] = np.nan
    a[rng.random((n, n_assets)) < draw(st.sampled_from([0.0, 0.005, 0.03]))] = np.nan
    assets = pd.DataFrame(a, index=idx, columns=[f"S{j}" for j in range(n_assets)])
    port = pd.Series(np.nanmean(np.where(np.isnan(a), 0.0, a), axis=1) if n_assets else rng.normal(0, 0.01, n), index=idx)
    port = port + rng.normal(0, 0.002, n)
    if draw(st.booleans()):
        port[rng.random(n) < 0.02] = np.nan
    equity = 100 * (1 + port.fillna(0)).cumprod()
    if draw(st.booleans()):
        equity[rng.random(n) < 0.02] = np.nan
    if draw(st.booleans()):  # assets on a shifted calendar: some dates missing, some extra
        keep = rng.random(n) > 0.05
        extra = pd.DataFrame(rng.normal(0, 0.02, (3, n_assets)), index=pd.bdate_range("2019-06-03", periods=3), columns=assets.columns)
        assets = pd.concat([extra, assets[keep]])
    out = {"portfolio_returns": port, "equity_curve": equity, "asset_returns": assets}
    if draw(st.booleans()):
        k = draw(st.integers(0, 5))
        u = rng.normal(0.0, 0.01, (n, k))
        u[rng.random((n, k)) < 0.05] = np.nan
        out["trend_unit_returns"] = pd.DataFrame(u, index=idx, columns=[f"T{j}" for j in range(k)])
    if draw(st.booleans()):
        k = draw(st.integers(0, 4))
        s = rng.normal(0.0002, 0.01, (n, k))
        s[rng.random((n, k)) < 0.1] = np.nan
        if k and draw(st.booleans()):
            s[:, 0] = 0.0
        out["sleeve_returns"] = pd.DataFrame(s, index=idx, columns=[f"L{j}" for j in range(k)])
    if draw(st.booleans()):  # sessions in cash: spells and single days, on a calendar missing some dates
        cash = rng.random(n) < draw(st.sampled_from([0.05, 0.3]))
        if n > 10 and draw(st.booleans()):
            lo = int(rng.integers(0, n - 10))
            cash[lo : lo + int(rng.integers(1, 80))] = True
        out["invested"] = pd.Series(~cash, index=idx)[rng.random(n) > 0.05]
    return out


def assert_same_frame(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns)
    assert actual.index.equals(expected.index)
    assert actual.index.name == "date"
    np.testing.assert_allclose(actual.to_numpy(), expected.to_numpy(), **TOL)


# --------------------------------------------------------------------------- hand-checked
def test_volatility_of_alternating_returns():
    n = 80
    port = pd.Series(0.01 * np.where(np.arange(n) % 2 == 0, 1.0, -1.0), index=dates(n))
    inputs = base_inputs(n)
    inputs["portfolio_returns"] = port
    frame = AllocatorStateV1.compute(**inputs).frame
    # Mean 0 over an even window, so the sample variance is W * 0.01^2 / (W - 1).
    np.testing.assert_allclose(frame["port_rvol_20d"], 0.01 * math.sqrt(20 / 19) * SQRT_252, rtol=1e-13)
    np.testing.assert_allclose(frame["port_rvol_60d"], 0.01 * math.sqrt(60 / 59) * SQRT_252, rtol=1e-13)
    np.testing.assert_allclose(frame["vol_accel"], math.sqrt(20 / 19) / math.sqrt(60 / 59), rtol=1e-13)


def test_sessions_in_cash_are_skipped_by_the_volatility_windows():
    """Regression: sessions in cash counted as 0% returns, so the first invested session after 60 in cash had
    one real return among zeros in both windows and vol_accel exactly sqrt(60 / 20) = 1.73 (an ELEVATED regime)."""
    n = 260
    r = np.random.default_rng(4).normal(0, 0.01, n)
    cash = np.zeros(n, dtype=bool)
    cash[100:180] = True
    r[cash] = 0.0
    inputs = base_inputs(n)
    inputs["portfolio_returns"] = pd.Series(r, index=dates(n))
    inputs["invested"] = pd.Series(~cash, index=dates(n))
    frame = AllocatorStateV1.compute(**inputs).frame
    assert not frame.index.isin(dates(n)[cash]).any()  # no row while in cash
    # independent reference: pandas' rolling std over the invested sessions alone
    held = pd.Series(r[~cash], index=dates(n)[~cash])
    for width in (20, 60):
        want = held.rolling(width).std(ddof=1) * SQRT_252
        np.testing.assert_allclose(frame[f"port_rvol_{width}d"], want.reindex(frame.index), rtol=1e-9)
    # the first session back (the 101st invested): its windows reach back over the spell
    assert frame.loc[dates(n)[180], "vol_accel"] == pytest.approx(held.iloc[81:101].std() / held.iloc[41:101].std(), rel=1e-9)
    # the old reading (every session a return) gave sqrt(3) on the first session after a 60+ session spell
    old = AllocatorStateV1.compute(**{k: v for k, v in inputs.items() if k != "invested"}).frame
    assert old.loc[dates(n)[180], "vol_accel"] == pytest.approx(math.sqrt(3), rel=1e-12)


def test_a_state_saved_before_cash_sessions_were_skipped_is_not_continued():
    state = AllocatorStateV1Online()
    saved = state.to_dict()
    del saved["portfolio_window"]
    with pytest.raises(ValueError, match="older version"):
        AllocatorStateV1Online.from_dict(saved)


def test_constant_portfolio_window_has_zero_volatility_and_is_dropped():
    n = 130
    r = np.random.default_rng(1).normal(0, 0.01, n)
    r[40:110] = 0.001  # 70 equal returns: every 60-row window ending in 99..109 is constant
    inputs = base_inputs(n)
    inputs["portfolio_returns"] = pd.Series(r, index=dates(n))
    result = AllocatorStateV1.compute(**inputs)
    # Exactly 0, as the definition says (pandas' running-update rolling std leaves a ~3e-9
    # residue on this window, a two-pass std a ~1e-19 one).
    assert result.frame.loc[dates(n)[60], "port_rvol_20d"] == 0.0
    kept = result.frame.index
    assert not kept.isin(dates(n)[99:110]).any()  # vol_accel = 0 / 0 there
    assert dates(n)[59:99].isin(kept).all() and dates(n)[110:].isin(kept).all()
    assert (result.frame.loc[dates(n)[59] : dates(n)[98], "port_rvol_20d"] == 0.0).all()
    assert (result.frame.loc[dates(n)[59] : dates(n)[98], "vol_accel"] == 0.0).all()


def test_drawdown_level_and_slope_by_hand():
    n = 75
    equity = np.full(n, 100.0)
    equity[59:] = [100, 120, 108, 114, 96, 120, 126, 113.4, 126, 126, 63, 130, 117, 91, 65, 130]
    inputs = base_inputs(n)
    inputs["equity_curve"] = pd.Series(equity, index=dates(n))
    frame = AllocatorStateV1.compute(**inputs).frame
    dd = frame["dd_level"].to_numpy()
    expected_dd = [0, 0, -0.1, -0.05, -0.2, 0, 0, -0.1, 0, 0, -0.5, 0, -0.1, -0.3, -0.5, 0]
    np.testing.assert_allclose(dd, expected_dd, atol=1e-15)
    # Row 69 (dd -0.5) vs row 59 (0); row 72 (-0.3) vs row 62 (-0.05); row 73 (-0.5) vs row 63 (-0.2).
    slope = frame["dd_slope_10d"]
    assert slope.iloc[10] == pytest.approx(-0.05, abs=1e-15)
    assert slope.iloc[13] == pytest.approx(-0.025, abs=1e-15)
    assert slope.iloc[14] == pytest.approx(-0.03, abs=1e-15)
    # Equity is flat at 100 before row 59, so dd_{t-10} = 0 for the first 10 output rows.
    np.testing.assert_allclose(slope.iloc[:10], dd[:10] / 10, atol=1e-15)


def test_drawdown_running_max_covers_all_history():
    n = 200
    equity = np.linspace(100, 200, n)
    equity[:50] = np.linspace(300, 100, 50)  # the all-time peak (300) is long before the output
    inputs = base_inputs(n)
    inputs["equity_curve"] = pd.Series(equity, index=dates(n))
    frame = AllocatorStateV1.compute(**inputs).frame
    np.testing.assert_allclose(frame["dd_level"], equity[-len(frame) :] / 300 - 1, rtol=1e-14)


def test_correlation_of_perfectly_related_assets_is_minus_a_third():
    n = 80
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.02, n)
    cols = {
        "A": x,
        "B": 2 * x + 0.001,  # rho(A, B) = +1
        "C": -x + 0.002,  # rho(A, C) = rho(B, C) = -1  ->  mean of (1, -1, -1) = -1/3
        "FLAT": np.full(n, 0.003),  # constant: no correlation, excluded
        "GAPPY": np.where(np.arange(n) % 7 == 0, np.nan, rng.normal(0, 0.02, n)),  # never a complete window
    }
    inputs = base_inputs(n)
    inputs["asset_returns"] = pd.DataFrame(cols, index=dates(n))
    frame = AllocatorStateV1.compute(**inputs).frame
    np.testing.assert_allclose(frame[["corr_20d", "corr_60d"]], -1 / 3, atol=1e-13)
    np.testing.assert_allclose(frame["corr_shock"], 0.0, atol=1e-13)
    # One usable asset left: no pair, NaN, every row dropped.
    inputs["asset_returns"] = inputs["asset_returns"][["A", "FLAT", "GAPPY"]]
    assert AllocatorStateV1.compute(**inputs).frame.empty


def test_trend_breadth_by_hand():
    n = 80
    units = pd.DataFrame(
        {
            "UP1": np.full(n, 0.01),  # (1.01^20 - 1) > 0
            "UP2": np.where(np.arange(n) % 2 == 0, 0.05, -0.04),  # 1.05^10 * 0.96^10 = 1.0745 > 1
            "DOWN": np.full(n, -0.01),
            "FLAT": np.zeros(n),  # exactly 0 is not positive
            "GAP": np.where(np.arange(n) % 5 == 0, np.nan, 0.02),  # no complete window: not counted
        },
        index=dates(n),
    )
    frame = AllocatorStateV1.compute(**base_inputs(n), trend_unit_returns=units).frame
    np.testing.assert_allclose(frame["trend_breadth_20d"], 2 / 4, rtol=1e-15)


def test_sleeve_concentration_by_hand():
    n = 80
    sleeves = pd.DataFrame(
        {"S1": np.full(n, 0.001), "S2": np.full(n, -0.002), "S3": np.full(n, np.nan)},
        index=dates(n),
    )
    frame = AllocatorStateV1.compute(**base_inputs(n), sleeve_returns=sleeves).frame
    # c = (0.06, -0.12, 0): shares 1/3, 2/3, 0 -> HHI = 1/9 + 4/9.
    np.testing.assert_allclose(frame["sleeve_concentration_60d"], 5 / 9, rtol=1e-12)
    # All contributions zero: undefined (NaN) but the rows stay (optional feature).
    zero = sleeves.assign(S1=0.0, S2=0.0)
    frame = AllocatorStateV1.compute(**base_inputs(n), sleeve_returns=zero).frame
    assert len(frame) == n - 59 and frame["sleeve_concentration_60d"].isna().all()


# --------------------------------------------------------------------------- random vs definitions
@HYPOTHESIS
@given(random_inputs())
def test_features_match_their_definitions(inputs):
    result = AllocatorStateV1.compute(**inputs)
    reference = reference_frame(**inputs)
    expected = reference.dropna(subset=list(REQUIRED_FEATURES))
    assert_same_frame(result.frame, expected)


@HYPOTHESIS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 60),
    n_assets=st.integers(0, 12),
    window=st.integers(2, 30),
    block_bytes=st.sampled_from([1, 4_000, 1 << 22]),
)
def test_average_correlation_matches_corrcoef(seed, n, n_assets, window, block_bytes):
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.01, (n, 1))
    returns = common * rng.uniform(-2, 2, n_assets) + rng.normal(0, 0.01, (n, n_assets))
    returns[rng.random((n, n_assets)) < 0.02] = np.nan
    if n_assets:
        returns[: rng.integers(0, n + 1), 0] = np.nan
    got = rolling_average_correlation(pd.DataFrame(returns), [window], block_bytes=block_bytes)[window]
    expected = [reference_correlation(returns[t - window + 1 : t + 1]) if t >= window - 1 else np.nan for t in range(n)]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- columns, dropna, meta
def test_optional_features_are_absent_when_not_given_and_present_when_given():
    inputs = base_inputs()
    units = inputs["asset_returns"].rename(columns=lambda c: f"T{c}")
    plain = AllocatorStateV1.compute(**inputs)
    assert list(plain.frame.columns) == list(REQUIRED_FEATURES)
    assert plain.meta["features"] == list(REQUIRED_FEATURES)
    trend = AllocatorStateV1.compute(**inputs, trend_unit_returns=units)
    assert list(trend.frame.columns) == [*REQUIRED_FEATURES, "trend_breadth_20d"]
    sleeves = AllocatorStateV1.compute(**inputs, sleeve_returns=units)
    assert list(sleeves.frame.columns) == [*REQUIRED_FEATURES, "sleeve_concentration_60d"]
    both = AllocatorStateV1.compute(**inputs, trend_unit_returns=units, sleeve_returns=units)
    assert list(both.frame.columns) == list(FEATURES) == [*REQUIRED_FEATURES, *OPTIONAL_FEATURES]
    assert both.frame.notna().all().all()
    assert all(dtype == np.float64 for dtype in both.frame.dtypes)
    pd.testing.assert_frame_equal(both.frame[list(REQUIRED_FEATURES)], plain.frame)
    online = AllocatorStateV1Online(trend_breadth=True)
    assert online.features == [*REQUIRED_FEATURES, "trend_breadth_20d"]


def test_dropna_rule_keeps_missing_optional_features_and_meta_counts():
    n = 150
    inputs = base_inputs(n)
    idx = dates(n)
    inputs["portfolio_returns"].iloc[100] = np.nan  # breaks the vol windows for 60 rows
    units = pd.DataFrame({"T": np.where((np.arange(n) >= 70) & (np.arange(n) < 75), np.nan, 0.01)}, index=idx)
    result = AllocatorStateV1.compute(**inputs, trend_unit_returns=units)
    frame, meta = result.frame, result.meta
    assert set(meta) == META_KEYS and "generated_at" not in meta
    json.dumps(meta, allow_nan=False)
    # Required features complete from row 59 (60 rows: corr_60d, port_rvol_60d) until the
    # missing return of row 100 enters the volatility windows: rows 59..99 are kept.
    assert frame.index.equals(pd.DatetimeIndex(idx[59:100], name="date"))
    assert frame[list(REQUIRED_FEATURES)].notna().all().all()
    # Rows 70..93 have no complete trend window: NaN, kept anyway.
    assert frame["trend_breadth_20d"].isna().sum() == 24
    assert meta["rows_before_dropna"] == n
    assert meta["rows_after_dropna"] == len(frame) == 41
    assert meta["rows_dropped"] == meta["rows_before_dropna"] - meta["rows_after_dropna"] == 109
    assert meta["requested_start"] == "2020-01-01" == idx[0].date().isoformat()
    assert meta["requested_end"] == idx[-1].date().isoformat()
    assert meta["effective_start"] == frame.index[0].date().isoformat() == idx[59].date().isoformat()
    assert meta["effective_end"] == frame.index[-1].date().isoformat() == idx[99].date().isoformat()
    assert meta["version"] == "allocator_state_v1"
    assert meta["lookbacks"] == {"volatility": [20, 60], "drawdown_slope": 10, "correlation": [20, 60], "trend_breadth": 20, "sleeve_concentration": 60}
    assert meta["features"] == list(frame.columns)


def test_too_short_history_gives_an_empty_frame():
    result = AllocatorStateV1.compute(**base_inputs(59))
    assert result.frame.empty and list(result.frame.columns) == list(REQUIRED_FEATURES)
    assert result.meta["rows_dropped"] == 59 and result.meta["effective_start"] is None and result.meta["effective_end"] is None
    empty = AllocatorStateV1.compute(**base_inputs(0))
    assert empty.frame.empty and empty.meta["requested_start"] is None


def test_inputs_are_aligned_on_the_portfolio_dates():
    inputs = base_inputs(120, seed=3)
    shuffled = inputs["asset_returns"].iloc[::-1]
    extra = pd.DataFrame(0.5, index=pd.bdate_range("2030-01-01", periods=5), columns=shuffled.columns)
    aligned = AllocatorStateV1.compute(**{**inputs, "asset_returns": pd.concat([shuffled, extra])})
    pd.testing.assert_frame_equal(aligned.frame, AllocatorStateV1.compute(**inputs).frame)


def test_invalid_inputs_are_rejected():
    inputs = base_inputs()
    with pytest.raises(ValueError, match="positive"):
        AllocatorStateV1.compute(**{**inputs, "equity_curve": inputs["equity_curve"] - 200})
    with pytest.raises(ValueError, match="increasing"):
        AllocatorStateV1.compute(**{**inputs, "portfolio_returns": inputs["portfolio_returns"].iloc[::-1]})
    state = AllocatorStateV1Online()
    row = inputs["asset_returns"].iloc[0]
    state.update("2020-01-02", 0.0, 100.0, row)
    with pytest.raises(ValueError, match="increase"):
        state.update("2020-01-02", 0.0, 100.0, row)
    with pytest.raises(ValueError, match="trend_breadth=False"):
        state.update("2020-01-03", 0.0, 100.0, row, trend_unit_returns=row)


# --------------------------------------------------------------------------- online
def feed(state: AllocatorStateV1Online, inputs: dict, rows: range) -> dict[pd.Timestamp, dict[str, float]]:
    """Feed ``rows`` of the inputs (aligned on the portfolio's dates) one day at a time."""
    idx = inputs["portfolio_returns"].index
    assets = inputs["asset_returns"].reindex(idx)
    equity = inputs["equity_curve"].reindex(idx)
    trend = inputs.get("trend_unit_returns")
    trend = None if trend is None else trend.reindex(idx)
    sleeves = inputs.get("sleeve_returns")
    sleeves = None if sleeves is None else sleeves.reindex(idx)
    invested = inputs.get("invested")
    invested = pd.Series(True, index=idx) if invested is None else invested.reindex(idx).fillna(True)
    out = {}
    for t in rows:
        row = state.update(
            idx[t],
            inputs["portfolio_returns"].iloc[t],
            equity.iloc[t],
            assets.iloc[t],
            None if trend is None else trend.iloc[t],
            None if sleeves is None else sleeves.iloc[t],
            invested=bool(invested.iloc[t]),
        )
        if row is not None:
            out[idx[t]] = row
    return out


def assert_same_rows(got: dict, expected: dict) -> None:
    """Same dates, same features, bit-identical values (NaN == NaN)."""
    assert list(got) == list(expected)
    for date in expected:
        assert list(got[date]) == list(expected[date])
        assert np.array_equal(list(got[date].values()), list(expected[date].values()), equal_nan=True)


def through_json(state: AllocatorStateV1Online) -> AllocatorStateV1Online:
    return AllocatorStateV1Online.from_dict(json.loads(json.dumps(state.to_dict(), allow_nan=False)))


@HYPOTHESIS
@given(random_inputs(), st.floats(0, 1))
def test_online_equals_batch_and_resumes_bit_identically(inputs, cut):
    batch = AllocatorStateV1.compute(**inputs).frame
    assert_same_frame(AllocatorStateV1Online.replay(**inputs), batch)
    n = len(inputs["portfolio_returns"])
    stop = int(cut * n)
    flags = {"trend_breadth": "trend_unit_returns" in inputs, "sleeve_concentration": "sleeve_returns" in inputs}
    straight = AllocatorStateV1Online(**flags)
    expected = feed(straight, inputs, range(n))
    resumed = AllocatorStateV1Online(**flags)
    got = feed(resumed, inputs, range(stop))
    resumed = through_json(resumed)
    got.update(feed(resumed, inputs, range(stop, n)))
    assert list(expected) == list(batch.index)
    assert_same_rows(got, expected)
    assert resumed.to_dict() == straight.to_dict()


def test_online_warm_up_and_days_seen():
    inputs = base_inputs(70)
    state = AllocatorStateV1Online()
    outputs = []
    for t in range(70):
        assert state.days_seen == t and state.warming_up == (t < 60)
        outputs.append(feed(state, inputs, range(t, t + 1)))
    assert state.days_seen == 70 and not state.warming_up
    # Inputs without gaps: the 60th day (row 59) is the first complete one.
    assert all(not o for o in outputs[:59]) and all(len(o) == 1 for o in outputs[59:])
    assert list(next(iter(outputs[-1].values()))) == list(REQUIRED_FEATURES)


def test_online_state_stays_bounded_with_a_rotating_universe():
    """400 days, each asset trades for 90 days: the carried state only holds recent names."""
    n, life = 400, 90
    rng = np.random.default_rng(4)
    a = np.full((n, n), np.nan)
    for j in range(n):
        a[j : j + life, j] = rng.normal(0, 0.02, min(life, n - j))
    assets = pd.DataFrame(a, index=dates(n), columns=[f"S{j}" for j in range(n)])
    port = assets.mean(axis=1)
    inputs = {"portfolio_returns": port, "equity_curve": 100 * (1 + port).cumprod(), "asset_returns": assets}
    state = AllocatorStateV1Online()
    feed(state, inputs, range(n))
    saved = state.to_dict()
    live = [name for name in saved["assets"]["names"] if name is not None]
    assert len(live) <= 60 + life  # names with a valid value in the last 60 rows
    assert len(saved["assets"]["names"]) <= 2 * (60 + life)
    assert "S0" not in live and f"S{n - 1}" in live
    assert_same_frame(AllocatorStateV1Online.replay(**inputs), AllocatorStateV1.compute(**inputs).frame)


@pytest.mark.parametrize("start", range(126, 133))
def test_a_recycled_slot_carries_nothing_over(start):
    """Sleeve OLD's last value is on row 69: its slot may be reused only once that row has left
    the 60-row window (from row 129). A NEW sleeve appearing around then must not inherit it."""
    n = 200
    idx = dates(n)
    rows = np.arange(n)
    sleeves = pd.DataFrame(
        {
            "OLD": np.where(rows < 70, 0.05, np.nan),
            "STEADY": np.full(n, 0.001),
            "NEW": np.where(rows >= start, -0.002, np.nan),
        },
        index=idx,
    )
    inputs = {**base_inputs(n), "sleeve_returns": sleeves}
    batch = AllocatorStateV1.compute(**inputs).frame
    assert_same_frame(AllocatorStateV1Online.replay(**inputs), batch)


# --------------------------------------------------------------------------- realistic data
@pytest.fixture(scope="module")
def sp500_inputs() -> dict:
    from skfolio.datasets import load_sp500_dataset

    prices = load_sp500_dataset()
    returns = prices.pct_change()
    port = returns.mean(axis=1)
    equity = (1 + port.fillna(0)).cumprod()
    groups = np.arange(returns.shape[1]) % 4
    sleeves = pd.DataFrame({f"sleeve{g}": returns.loc[:, groups == g].mean(axis=1) / 4 for g in range(4)})
    return {"portfolio_returns": port, "equity_curve": equity, "asset_returns": returns, "trend_unit_returns": returns, "sleeve_returns": sleeves}


def test_online_equals_batch_on_sp500(sp500_inputs):
    result = AllocatorStateV1.compute(**sp500_inputs)
    assert result.meta["rows_dropped"] == 60 and result.meta["effective_end"] == "2022-12-28"
    assert result.frame.notna().all().all()
    assert_same_frame(AllocatorStateV1Online.replay(**sp500_inputs), result.frame)
    # Spot check corr_60d against np.corrcoef on a stressed day (COVID crash).
    t = sp500_inputs["asset_returns"].index.get_loc(pd.Timestamp("2020-03-20"))
    window = sp500_inputs["asset_returns"].to_numpy()[t - 59 : t + 1]
    assert result.frame.loc["2020-03-20", "corr_60d"] == pytest.approx(reference_correlation(window), abs=1e-12)
    assert result.frame.loc["2020-03-20", "corr_60d"] > result.frame["corr_60d"].median()


def test_online_resumes_on_sp500(sp500_inputs):
    inputs = {k: v.loc["2015-01-01":] for k, v in sp500_inputs.items()}
    n = len(inputs["portfolio_returns"])
    straight = AllocatorStateV1Online(trend_breadth=True, sleeve_concentration=True)
    expected = feed(straight, inputs, range(n))
    first = AllocatorStateV1Online(trend_breadth=True, sleeve_concentration=True)
    got = feed(first, inputs, range(n // 2))
    second = through_json(first)
    got.update(feed(second, inputs, range(n // 2, n)))
    assert_same_rows(got, expected)
    batch = AllocatorStateV1.compute(**inputs).frame
    np.testing.assert_allclose(pd.DataFrame.from_dict(got, orient="index").to_numpy(), batch.to_numpy(), **TOL)
