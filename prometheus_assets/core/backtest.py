"""Holdings-based portfolio simulation: target weights on rebalance dates, shares drift in between.

Conventions (all of them are tested against an independent day-by-day loop):

- **Trading.** On a rebalance date the book trades at that day's close. Between rebalances it
  holds a fixed number of shares per symbol (weights drift with prices) and a cash balance
  earning 0%.
- **Target rows.** A row of ``target_weights`` that is all NaN means "no trade that day". In any
  other row a NaN weight means 0. Weights need not sum to 1 (the rest is cash) and may be
  negative (shorts; short proceeds go to cash). Gross leverage is ``sum(|w|)``.
- **Costs.** ``cost_bps`` is charged on traded notional, deducted from cash, and solved *exactly*
  so that after costs every tradeable symbol's weight equals its target weight of post-cost
  equity::

      equity_after = equity_before - cost
      cost         = cost_bps / 10_000 * sum_i |w_i * equity_after - value_i|

  (``value_i`` = current holding value at the close; the sum runs over tradeable symbols). The
  right-hand side is piecewise linear in ``equity_after``; it has a unique root while
  ``cost_bps / 10_000 * sum|w| < 1`` and is solved with Newton's method, which on a convex
  piecewise-linear function ends on the exact root in a few steps.
- **Untradeable symbols.** A symbol whose price is NaN on a rebalance date cannot be traded: its
  holding is kept unchanged and its target weight is ignored (that money stays in cash).
- **Missing prices / delistings.** A held symbol whose price becomes NaN is valued at its last
  known price (the price is forward-filled for valuation) until it trades again; it is never
  liquidated automatically. A symbol that has never had a price is valued at 0 (it can be held
  only as 0 shares).
- **Output.** One row per price date from the first trade date (the first target row with a
  non-zero weight; all-zero rows before it, a book with nothing to hold yet, are not a start)
  onward; none (and no state) while the book has not traded. ``equity`` is post-trade, post-cost equity at each close; the book starts the first
  trade date with ``initial_equity`` in cash *before* costs, so the first ``returns`` value is
  ``equity_0 / initial_equity - 1`` (minus the first trade's cost). ``turnover`` is traded
  notional / post-cost equity on rebalance days (0 otherwise), ``costs`` is the cost paid in
  currency, ``gross_exposure`` is ``sum|shares * price| / equity`` and ``cash`` is the cash balance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SIMULATION_COLUMNS: list[str] = ["equity", "returns", "turnover", "costs", "gross_exposure", "cash"]


@dataclass(frozen=True)
class SimulationState:
    """A running simulation at one close, enough to continue it the next session bit for bit.

    ``shares`` and ``valuation_prices`` (the last known price of each held symbol, which values a
    holding whose price is missing) are indexed by symbol; ``cash`` and ``equity`` are the
    post-trade values at that close. :func:`simulate_with_state` returns it; :func:`simulate`
    (``state``) continues from it.
    """

    shares: pd.Series
    valuation_prices: pd.Series
    cash: float
    equity: float


def _post_cost_equity(equity_before: float, w: np.ndarray, value: np.ndarray, rate: float) -> float:
    """Root of ``x + rate * sum|w x - value| = equity_before`` (see module docstring)."""
    if rate == 0.0:
        return equity_before
    if rate * np.abs(w).sum() >= 1.0:
        raise ValueError("cost_bps / 10_000 * gross leverage must be < 1 for costs to be payable")
    x = equity_before
    for _ in range(200):
        gap = w * x - value
        g = x + rate * np.abs(gap).sum() - equity_before
        slope = 1.0 + rate * (w * np.sign(gap)).sum()
        step = g / slope
        x_new = x - step
        if x_new == x or abs(step) <= 1e-15 * max(abs(x), abs(equity_before)):
            return x_new
        x = x_new
    return x


def valuation_prices(prices: pd.DataFrame, state: SimulationState | None = None) -> pd.DataFrame:
    """``prices`` forward-filled for valuation: a missing price is the symbol's last known one,
    from before ``prices``' first date when ``state`` carries it (NaN if it never had one)."""
    if state is None:
        return prices.ffill()
    seed = state.valuation_prices.reindex(prices.columns).to_numpy(dtype=float)
    filled = pd.DataFrame(np.vstack([seed, prices.to_numpy(dtype=float)]), columns=prices.columns).ffill().to_numpy(dtype=float)[1:]
    return pd.DataFrame(filled, index=prices.index, columns=prices.columns)


def simulate(
    prices: pd.DataFrame,
    target_weights: pd.DataFrame,
    cost_bps: float = 0.0,
    initial_equity: float = 1.0,
    state: SimulationState | None = None,
) -> pd.DataFrame:
    """Simulate a book that trades to ``target_weights`` at the close of each rebalance date.

    ``prices`` is wide (dates x symbols) adjusted closes, NaN where a symbol does not trade.
    ``target_weights`` is wide, indexed by trade dates that must be dates of ``prices``, with
    columns a subset of ``prices``' columns. See the module docstring for every convention.
    Returns a frame indexed by ``prices``' dates from the first trade date with columns
    :data:`SIMULATION_COLUMNS`.

    ``state`` continues a simulation that ran up to the session before ``prices``' first date
    (the state :func:`simulate_with_state` returned for it): the output then starts at
    ``prices``' first date, and is bit-for-bit the tail of one simulation over the whole
    history (tested).
    """
    return simulate_with_state(prices, target_weights, cost_bps, initial_equity, state)[0]


def simulate_with_state(
    prices: pd.DataFrame,
    target_weights: pd.DataFrame,
    cost_bps: float = 0.0,
    initial_equity: float = 1.0,
    state: SimulationState | None = None,
) -> tuple[pd.DataFrame, SimulationState | None]:
    """:func:`simulate`, and the :class:`SimulationState` at its last close (None before the first trade)."""
    if cost_bps < 0:
        raise ValueError("cost_bps must be >= 0")
    unknown = target_weights.columns.difference(prices.columns)
    if len(unknown):
        raise ValueError(f"target_weights has symbols not in prices: {list(unknown)[:5]}")
    if not prices.index.is_monotonic_increasing or prices.index.has_duplicates:
        raise ValueError("prices index must be strictly increasing")
    tw = target_weights.loc[~target_weights.isna().all(axis=1)]
    if tw.index.has_duplicates:
        raise ValueError("target_weights has duplicate dates")
    missing = tw.index.difference(prices.index)
    if len(missing):
        raise ValueError(f"trade dates not in prices: {list(missing)[:5]}")
    if state is None:
        # A book starts on its first trade: the first target row with a weight. Leading all-zero
        # rows (a book on its rebalance dates before it has any candidate) hold only cash; output
        # from them gave every book a year of 0.0 returns that counted as track record (the meta
        # orchestrator's minimum history, its volatilities and every metric "overall").
        invested = (tw.fillna(0.0).to_numpy() != 0).any(axis=1)
        tw = tw.iloc[int(np.argmax(invested)):] if invested.any() else tw.iloc[:0]
    if tw.empty and (state is None or len(prices.index) == 0):
        return pd.DataFrame({c: pd.Series(dtype=float) for c in SIMULATION_COLUMNS}, index=prices.index[:0]), state
    tw = tw.sort_index()

    raw = prices.to_numpy(dtype=float)
    if state is not None:
        unknown = state.shares[state.shares != 0].index.difference(prices.columns)
        if len(unknown):
            raise ValueError(f"simulation state holds symbols not in prices: {list(unknown)[:5]}")
    if state is not None or np.isnan(raw).any():
        # the last known prices (carried in by ``state`` from before the first date) value a holding that does not trade
        valued = valuation_prices(prices, state).fillna(0.0).to_numpy(dtype=float)
    else:
        valued = raw
    weights = tw.reindex(columns=prices.columns).fillna(0.0).to_numpy(dtype=float)
    reb_rows = prices.index.get_indexer(tw.index)
    start = 0 if state is not None else int(reb_rows[0])
    n_days, n_sym = len(prices.index) - start, raw.shape[1]
    rate = float(cost_bps) / 10_000.0

    equity = np.empty(n_days)
    gross = np.empty(n_days)
    cash_out = np.empty(n_days)
    turnover = np.zeros(n_days)
    costs = np.zeros(n_days)

    def hold(a: int, b: int, shares: np.ndarray, cash: float) -> None:
        """Value sessions a..b-1 (price rows) with fixed holdings.

        Each day is a 1-D sum of its own row. Not a matrix product or a 2-D reduction: both group
        the arithmetic by the period's length, so a day's value changed in the last bit when
        history was cut (caught by the split-backfill test); a 1-D sum of the same row is the same
        sum however long the period. And only over the symbols held: NumPy sums pairwise, by
        position, so the price columns of names never held (delisted before the range or listed
        after it, present in a longer read only) shifted the others and changed the last bit too.
        """
        held = np.flatnonzero(shares)
        held_shares = shares[held]
        abs_shares = np.abs(held_shares)
        rows = valued[a:b][:, held]
        for day in range(a, b):
            row = rows[day - a]
            equity[day - start] = cash + (row * held_shares).sum()
            gross[day - start] = (row * abs_shares).sum()
        cash_out[a - start : b - start] = cash

    shares = np.zeros(n_sym)
    cash = float(initial_equity)
    if state is not None:
        shares = state.shares.reindex(prices.columns).fillna(0.0).to_numpy(dtype=float, copy=True)
        cash = float(state.cash)
        # the holdings carried in are held, untraded, up to the first rebalance
        hold(0, int(reb_rows[0]) if len(reb_rows) else len(prices.index), shares, cash)
    ends = np.append(reb_rows[1:], len(prices.index))
    for k, (a, b) in enumerate(zip(reb_rows, ends)):
        px = raw[a]
        tradeable = ~np.isnan(px)
        value = shares * valued[a]
        held = shares != 0  # (sums over held or tradeable names only: see hold())
        equity_before = cash + value[held].sum()
        w_t = weights[k][tradeable]
        v_t = value[tradeable]
        x = _post_cost_equity(equity_before, w_t, v_t, rate)
        traded = np.abs(w_t * x - v_t).sum()
        shares[tradeable] = w_t * x / px[tradeable]
        cash = x - w_t.sum() * x - value[~tradeable & held].sum()
        i = a - start
        costs[i] = equity_before - x
        turnover[i] = traded / x if x != 0 else np.nan
        hold(a, b, shares, cash)
        # The rebalance day's equity is x exactly (it equals cash + shares . price up to rounding).
        equity[i] = x

    prev = np.concatenate([[float(initial_equity) if state is None else float(state.equity)], equity[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = equity / prev - 1.0
        gross_exposure = gross / equity
    final = SimulationState(
        shares=pd.Series(shares.copy(), index=prices.columns),
        valuation_prices=pd.Series(valued[-1].copy(), index=prices.columns),
        cash=float(cash),
        equity=float(equity[-1]),
    )
    return pd.DataFrame(
        {
            "equity": equity,
            "returns": returns,
            "turnover": turnover,
            "costs": costs,
            "gross_exposure": gross_exposure,
            "cash": cash_out,
        },
        index=prices.index[start:],
    ), final

