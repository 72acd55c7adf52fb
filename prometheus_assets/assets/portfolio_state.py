"""``portfolio_returns``' carried state: the combined book's equity and running peak at the last close.

The equity is a cumulative product from the first day and the drawdown needs the running peak, so
a run over ``[A, B]`` continues both from the close before ``A`` (``state/portfolio_returns/<day>.json``,
exact float reprs) with the same recursion (:func:`prometheus_assets.core.meta.combine_portfolio`,
``carry``), and reads the sleeve returns of a trailing window only (the previous session's regime
label and the contribution plot). The state also keeps the configs and configured books seen so far,
so the panel's columns (and the order the budgets are summed in) are those of a full-history read.
Without a usable state (first run, a range not right after the stored close, the other
``regime_dependent_budgets`` setting) the run replays from the first day, with the same rows.
"""

import json
from dataclasses import dataclass

import pandas as pd

from prometheus_assets.assets import carried_state
from prometheus_assets.core.meta import PortfolioCarry
from prometheus_assets.resources import StorageResource

ASSET = "portfolio_returns"
#: Bump when the combined book's arithmetic changes: older stored states are then ignored.
STATE_VERSION = 1
#: Sessions of sleeve returns a resumed run reads before its range (the contribution plot's window).
PLOT_SESSIONS = 252


@dataclass(frozen=True)
class PortfolioState:
    carry: PortfolioCarry
    configs: list[str]
    defaults: list[str]
    regime_dependent: bool

    def to_json(self) -> bytes:
        return json.dumps({"version": STATE_VERSION, "date": f"{self.carry.date:%Y-%m-%d}", "equity": float(self.carry.equity), "peak": float(self.carry.peak),
                           "configs": list(self.configs), "defaults": list(self.defaults), "regime_dependent": bool(self.regime_dependent)},
                          sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "PortfolioState":
        raw = json.loads(data)
        if raw.get("version") != STATE_VERSION:
            raise ValueError(f"portfolio state version {raw.get('version')!r} is not {STATE_VERSION}")
        carry = PortfolioCarry(pd.Timestamp(raw["date"]), float(raw["equity"]), float(raw["peak"]))
        return cls(carry, [str(c) for c in raw["configs"]], [str(c) for c in raw["defaults"]], bool(raw["regime_dependent"]))


def stored(storage: StorageResource, first_day: pd.Timestamp, regime_dependent: bool) -> PortfolioState | None:
    """The state stored at the latest close before ``first_day`` for the same budget setting (else None: replay)."""
    state = carried_state.load_latest_before(storage, ASSET, first_day, PortfolioState.from_json)
    return state if state is not None and state.regime_dependent == regime_dependent else None


def save(storage: StorageResource, dates: list[pd.Timestamp], state: PortfolioState | None) -> None:
    if state is not None and state.carry is not None:
        carried_state.save(storage, ASSET, dates, state.carry.date, state.to_json())
