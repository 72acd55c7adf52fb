"""Benchmark core.backtest.simulate: 3,000 assets x 5,040 days, month-end rebalances.

Figures are printed, never asserted. References (DESIGN.md "What costs time"): a popular
vectorised backtesting library took ~23 s for the same job; a plain numpy holdings loop ~0.12 s.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from prometheus_assets.core.backtest import simulate

N_ASSETS, N_DAYS = 3_000, 5_040
VECTORISED_LIBRARY_S = 23.0
NUMPY_LOOP_S = 0.12


def make_inputs(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2000-01-03", periods=N_DAYS)
    symbols = [f"S{i:04d}" for i in range(N_ASSETS)]
    log_ret = rng.normal(0.0003, 0.02, size=(N_DAYS, N_ASSETS))
    prices = pd.DataFrame(100.0 * np.exp(np.cumsum(log_ret, axis=0)), index=dates, columns=symbols)
    month_ends = pd.Series(dates, index=dates).groupby(dates.to_period("M")).max().to_numpy()
    w = rng.random((len(month_ends), N_ASSETS))
    w /= w.sum(axis=1, keepdims=True)
    return prices, pd.DataFrame(w, index=pd.DatetimeIndex(month_ends), columns=symbols)


def main() -> None:
    prices, weights = make_inputs()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = simulate(prices, weights, cost_bps=5.0)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"simulate: {N_ASSETS} assets x {N_DAYS} days, {len(weights)} rebalances, 5 bps costs")
    print(f"  best of 3: {best:.3f} s   (final equity {out['equity'].iloc[-1]:.4f})")
    print(f"  vs vectorised library ({VECTORISED_LIBRARY_S} s): {VECTORISED_LIBRARY_S / best:.0f}x faster")
    print(f"  vs plain numpy holdings loop ({NUMPY_LOOP_S} s): {best / NUMPY_LOOP_S:.2f}x its time")


if __name__ == "__main__":
    main()
