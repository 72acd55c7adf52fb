"""Benchmark core.allocator.state: 3,000 assets x 5,040 days (20 years), some returns missing.

Figures are printed, never asserted. The reference is the naive way to get an average pairwise
correlation -- one ``DataFrame.corr()`` (the full N x N matrix) per day and window -- timed on a
few sample days and extrapolated to every day; its values are checked against ours on the way.
Also timed: the whole batch ``AllocatorStateV1.compute`` and one online update, compared per day.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from prometheus_assets.core.allocator.state import (
    CORRELATION_WINDOWS,
    AllocatorStateV1,
    AllocatorStateV1Online,
    rolling_average_correlation,
)

N_ASSETS, N_DAYS = 3_000, 5_040
NAIVE_SAMPLE_DAYS = 5
ONLINE_UPDATES = 50


def make_inputs(seed: int = 0) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Returns with a common factor, 1 % missing at random, a third of the assets listed up to 5
    years late and / or delisted up to 5 years early; the portfolio is their equal-weight mean."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2000-01-03", periods=N_DAYS)
    market = rng.normal(0.0003, 0.01, (N_DAYS, 1))
    r = market * rng.uniform(0.5, 1.5, N_ASSETS) + rng.normal(0.0, 0.015, (N_DAYS, N_ASSETS))
    r[rng.random((N_DAYS, N_ASSETS)) < 0.01] = np.nan
    for j in rng.choice(N_ASSETS, N_ASSETS // 3, replace=False):
        lo, hi = rng.integers(0, N_DAYS // 4), N_DAYS - rng.integers(0, N_DAYS // 4)
        r[:lo, j] = np.nan
        r[hi:, j] = np.nan
    assets = pd.DataFrame(r, index=dates, columns=[f"S{i:04d}" for i in range(N_ASSETS)])
    port = assets.mean(axis=1)
    return port, 100.0 * (1.0 + port).cumprod(), assets


def naive_average_correlation(assets: pd.DataFrame, end: int, window: int) -> float:
    """The textbook way: the full correlation matrix of the window's complete, non-constant columns."""
    frame = assets.iloc[end - window + 1 : end + 1]
    frame = frame.loc[:, frame.notna().all() & (frame.max() > frame.min())]
    corr = frame.corr().to_numpy()
    n = corr.shape[0]
    return float((corr.sum() - n) / (n * (n - 1)))


def main() -> None:
    port, equity, assets = make_inputs()
    print(f"allocator state: {N_ASSETS} assets x {N_DAYS} days, {assets.isna().to_numpy().mean():.1%} of returns missing")

    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fast = rolling_average_correlation(assets, CORRELATION_WINDOWS)
        times.append(time.perf_counter() - t0)
    fast_s = min(times)

    sample = np.linspace(max(CORRELATION_WINDOWS) - 1, N_DAYS - 1, NAIVE_SAMPLE_DAYS).astype(int)
    naive_s, worst = 0.0, 0.0
    for window in CORRELATION_WINDOWS:
        for end in sample:
            t0 = time.perf_counter()
            value = naive_average_correlation(assets, int(end), window)
            naive_s += time.perf_counter() - t0
            worst = max(worst, abs(value - fast[window][end]))
    naive_full_s = naive_s / NAIVE_SAMPLE_DAYS * N_DAYS  # naive_s covers both windows
    print(f"corr_20d + corr_60d, O(N*W) identity, best of 3: {fast_s:.2f} s")
    print(
        f"  vs naive DataFrame.corr() per day ({naive_s / NAIVE_SAMPLE_DAYS:.2f} s a day for both windows on "
        f"{NAIVE_SAMPLE_DAYS} sample days, extrapolated to {N_DAYS}): {naive_full_s:,.0f} s -> {naive_full_s / fast_s:,.0f}x faster"
    )
    print(f"  largest difference to the naive values on the sample days: {worst:.1e}")

    t0 = time.perf_counter()
    result = AllocatorStateV1.compute(port, equity, assets)
    batch_s = time.perf_counter() - t0
    batch_day_ms = 1000 * batch_s / N_DAYS
    print(f"batch AllocatorStateV1.compute: {batch_s:.2f} s ({batch_day_ms:.2f} ms a day, {len(result.frame)} rows kept)")

    # The online state is fed the whole history (as a daily run would have), the last days timed.
    state = AllocatorStateV1Online()
    values, dates = assets.to_numpy(), assets.index
    rows = [pd.Series(values[t], index=assets.columns) for t in range(N_DAYS)]
    first_timed = N_DAYS - ONLINE_UPDATES
    for t in range(first_timed):
        state.update(dates[t], port.iloc[t], equity.iloc[t], rows[t])
    t0 = time.perf_counter()
    for t in range(first_timed, N_DAYS):
        out = state.update(dates[t], port.iloc[t], equity.iloc[t], rows[t])
    online_ms = 1000 * (time.perf_counter() - t0) / ONLINE_UPDATES
    last = result.frame.iloc[-1]
    gap = max(abs(out[name] - last[name]) for name in result.frame.columns) if out is not None else float("nan")
    print(f"online update (mean of {ONLINE_UPDATES}): {online_ms:.2f} ms -> {online_ms / batch_day_ms:.1f}x the batch's per-day cost")
    print(f"  last online row vs batch: largest difference {gap:.1e}")


if __name__ == "__main__":
    main()
