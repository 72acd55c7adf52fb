"""The Meta-Orchestrator: which book configurations to run, with how much risk, and the result.

Vocabulary
----------
A *book* (sleeve) is a portfolio; a *config* is one variant of a book, named
``<book>.<combination_method>`` (its ``config_id``). Every config earns a daily simple-returns
series (``sleeve_returns``: dates × config_id). Each config also has a *complexity* (a number,
lower = simpler: fewer moving parts, fewer fitted choices).

How configs are chosen (:func:`assess_configs`)
-----------------------------------------------
From each config's metrics (Sharpe, volatility, max drawdown, turnover, ...) and its Sharpe in
each market regime (CRISIS / RISK_OFF / NEUTRAL / CARRY), a config is **selected** when all of:

1. it is **Pareto-efficient** on :data:`OBJECTIVES` (no other config is at least as good on every
   objective and strictly better on one: :func:`pareto_efficient`);
2. it has **no simpler alternative**: no config with a strictly lower complexity has a Sharpe
   within ``similar_sharpe`` of it (Occam's razor: if a simpler config does almost as well,
   prefer to trust the simpler one). This is literal: the simpler alternative need not be
   selected itself (e.g. when it is dominated), in which case neither is selected;
3. it is **not a narrow slice**: it is not "great in one regime, catastrophic in another"
   (best regime Sharpe ≥ ``narrow_strong`` and worst ≤ ``narrow_catastrophic``);
4. its Sharpe is above ``min_sharpe``.

If nothing passes, nothing is selected: the orchestrator holds **cash** (all budgets 0). Holding
cash is a legitimate answer when no config earns its risk.

How much risk (:func:`risk_budgets`, :func:`regime_budgets`)
------------------------------------------------------------
Selected configs share a risk budget by inverse volatility (a calmer sleeve gets more capital),
summing to 1, with no config above ``max_budget``. Per regime, a config whose Sharpe in that
regime is negative has its budget multiplied by ``penalty`` (not renormalised: the freed
budget goes to cash, the book de-risks).

Walk-forward and the combined book
----------------------------------
:func:`walk_forward_selection` repeats the assessment at every month end using only the
trailing ``lookback`` sessions, so each selection is point-in-time. A selection made at the
close of ``as_of_date`` applies from the next session (``effective_from``).
:func:`combine_portfolio` turns the selections into the combined book's daily returns and
:func:`contributions` into each config's contribution to them.

Pure numpy / pandas: no Dagster, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from prometheus_assets.core import metrics as m
from prometheus_assets.core.frames import labels_in_force, row_sums

__all__ = [
    "BUDGET_REGIME_LABELS",
    "FREQUENCIES",
    "MIN_REGIME_DAYS",
    "OBJECTIVES",
    "PORTFOLIO_COLUMNS",
    "PortfolioCarry",
    "SelectionAnchor",
    "SELECTION_COLUMNS",
    "assess_configs",
    "combine_portfolio",
    "contributions",
    "pareto_efficient",
    "portfolio_carry",
    "regime_budgets",
    "reselection_dates",
    "risk_budgets",
    "selection_anchors",
    "walk_forward_selection",
]

#: Default Pareto objectives: column -> "max" (higher is better) or "min" (lower is better).
#: Drawdowns are <= 0, so "max" means "closest to 0".
OBJECTIVES: Final[dict[str, str]] = {
    "sharpe_ratio": "max",
    "max_drawdown": "max",
    "annual_volatility": "min",
    "turnover": "min",
}

#: Regime labels that get a ``budget_<LABEL>`` column (the labels of :mod:`core.regime`).
BUDGET_REGIME_LABELS: Final[tuple[str, ...]] = ("CRISIS", "RISK_OFF", "NEUTRAL", "CARRY")

#: A regime needs at least this many sessions in the lookback window, on which the config was invested, for its Sharpe to count.
MIN_REGIME_DAYS: Final[int] = 20

#: Re-selection frequencies of :func:`walk_forward_selection` -> pandas period alias.
FREQUENCIES: Final[dict[str, str]] = {"weekly": "W", "monthly": "M", "quarterly": "Q", "annual": "Y"}

#: Columns of :func:`walk_forward_selection`, in order.
SELECTION_COLUMNS: Final[tuple[str, ...]] = (
    "as_of_date",
    "effective_from",
    "config_id",
    "complexity",
    "sharpe_ratio",
    "cagr",
    "annual_volatility",
    "max_drawdown",
    "turnover",
    "best_regime_sharpe",
    "worst_regime_sharpe",
    "pareto_efficient",
    "simpler_alternative",
    "narrow_slice",
    "selected",
    "risk_budget",
    *(f"budget_{label}" for label in BUDGET_REGIME_LABELS),
)

#: Columns of :func:`combine_portfolio`, in order.
PORTFOLIO_COLUMNS: Final[tuple[str, ...]] = ("date", "return", "equity", "drawdown", "selection_as_of", "live_sleeves", "gross_budget")


# --------------------------------------------------------------------------------------------
# Assessment
# --------------------------------------------------------------------------------------------


def pareto_efficient(metrics: pd.DataFrame, objectives: Mapping[str, str]) -> pd.Series:
    """Which rows are Pareto-efficient (not dominated) on the given objectives.

    ``objectives`` maps a column of ``metrics`` to ``"max"`` or ``"min"``. Row A *dominates* row B
    when A is at least as good as B on every objective and strictly better on at least one. A row
    is efficient when no row dominates it (two identical rows are both efficient). A row with a
    NaN in any objective is never efficient and dominates nothing. Returns a bool Series with
    ``metrics``' index, named ``pareto_efficient``.
    """
    if not objectives:
        raise ValueError("at least one objective is needed")
    columns = []
    for column, direction in objectives.items():
        if direction not in ("max", "min"):
            raise ValueError(f"objective {column!r}: direction must be 'max' or 'min', got {direction!r}")
        if column not in metrics.columns:
            raise KeyError(f"objective column {column!r} is missing from the metrics")
        values = metrics[column].to_numpy(dtype="float64")
        columns.append(values if direction == "max" else -values)  # larger is better from here on
    x = np.column_stack(columns) if len(metrics) else np.empty((0, len(columns)))
    complete = ~np.isnan(x).any(axis=1)
    xc = x[complete]
    at_least_as_good = (xc[:, None, :] >= xc[None, :, :]).all(axis=2)  # [i, j]: i >= j everywhere
    strictly_better = (xc[:, None, :] > xc[None, :, :]).any(axis=2)
    dominated = (at_least_as_good & strictly_better).any(axis=0)
    efficient = np.zeros(len(metrics), dtype=bool)
    efficient[complete] = ~dominated
    return pd.Series(efficient, index=metrics.index, name="pareto_efficient")


def _simpler_alternatives(sharpe: np.ndarray, complexity: np.ndarray, ids: np.ndarray, similar_sharpe: float) -> np.ndarray:
    """For each config, the simplest strictly simpler config with Sharpe >= its Sharpe - similar_sharpe."""
    # candidate[i, j]: j is strictly simpler than i and nearly as good (NaN compares False)
    candidate = (complexity[None, :] < complexity[:, None]) & (sharpe[None, :] >= sharpe[:, None] - similar_sharpe)
    # preference among candidates: lowest complexity, then highest Sharpe, then config_id
    order = np.lexsort((ids.astype(str), -sharpe, complexity))
    ranked = candidate[:, order]
    has = ranked.any(axis=1)
    first = order[ranked.argmax(axis=1)]
    return np.where(has, ids[first], None)


def assess_configs(
    metrics: pd.DataFrame,
    regime_sharpe: pd.DataFrame,
    complexity: pd.Series,
    similar_sharpe: float = 0.1,
    narrow_strong: float = 1.0,
    narrow_catastrophic: float = -1.0,
    min_sharpe: float = 0.0,
    objectives: Mapping[str, str] = OBJECTIVES,
) -> pd.DataFrame:
    """Decide which configs to run (see the module docstring for the rules).

    Args:
        metrics: one row per config (index = config_id) with at least ``sharpe_ratio`` and the
            ``objectives`` columns.
        regime_sharpe: config × regime label Sharpe ratios (NaN = not enough data: ignored).
        complexity: config_id -> complexity (lower = simpler; NaN = unknown, never simpler).
        similar_sharpe: how much Sharpe a simpler config may give up and still be preferred.
        narrow_strong / narrow_catastrophic: a config whose best regime Sharpe is >=
            ``narrow_strong`` while its worst is <= ``narrow_catastrophic`` is a narrow slice.
        min_sharpe: a selected config needs a Sharpe strictly above this.
        objectives: Pareto objectives (default :data:`OBJECTIVES`).

    Returns:
        ``metrics`` (index named ``config_id``) plus ``complexity``, ``best_regime_sharpe``,
        ``worst_regime_sharpe``, ``pareto_efficient`` (bool), ``simpler_alternative`` (the
        config_id of the simplest strictly simpler config with Sharpe >= this Sharpe −
        ``similar_sharpe`` — ties: higher Sharpe, then config_id — else missing),
        ``narrow_slice`` (bool) and ``selected`` (bool): efficient configs without a simpler
        alternative, plus the simpler alternatives that replace efficient configs, minus narrow
        slices and configs with Sharpe ≤ ``min_sharpe``. Nothing selected means cash.
    """
    out = metrics.copy()
    out.index.name = "config_id"
    out["complexity"] = pd.to_numeric(complexity.reindex(out.index), errors="coerce").astype("float64")
    per_regime = regime_sharpe.reindex(index=out.index).astype("float64")
    if per_regime.shape[1]:
        out["best_regime_sharpe"] = per_regime.max(axis=1, skipna=True)
        out["worst_regime_sharpe"] = per_regime.min(axis=1, skipna=True)
    else:
        out["best_regime_sharpe"] = np.nan
        out["worst_regime_sharpe"] = np.nan
    out["pareto_efficient"] = pareto_efficient(out, objectives)

    sharpe = out["sharpe_ratio"].to_numpy(dtype="float64")
    alternatives = _simpler_alternatives(sharpe, out["complexity"].to_numpy(dtype="float64"), np.asarray(out.index, dtype=object), similar_sharpe)
    out["simpler_alternative"] = pd.Series(alternatives, index=out.index, dtype="str")
    out["narrow_slice"] = ((out["best_regime_sharpe"] >= narrow_strong) & (out["worst_regime_sharpe"] <= narrow_catastrophic)).astype(bool)
    # Prefer simpler: an efficient config with a simpler alternative of similar Sharpe is replaced
    # by that alternative (which may itself be dominated on some objective — that is the point).
    efficient = out["pareto_efficient"].astype(bool)
    replacements = set(out.loc[efficient & out["simpler_alternative"].notna(), "simpler_alternative"])
    candidate = (efficient & out["simpler_alternative"].isna()) | out.index.isin(list(replacements))
    out["selected"] = (candidate & ~out["narrow_slice"] & (out["sharpe_ratio"] > min_sharpe)).astype(bool)
    return out


# --------------------------------------------------------------------------------------------
# Budgets
# --------------------------------------------------------------------------------------------


def risk_budgets(volatility: pd.Series, selected: pd.Series, max_budget: float = 0.6) -> pd.Series:
    """Inverse-volatility risk budgets over the selected configs, capped at ``max_budget`` each.

    Budgets are proportional to ``1 / volatility`` among selected configs with a finite,
    positive volatility (a selected config without one gets 0) and sum to 1. A budget above
    ``max_budget`` is cut to the cap and the excess is *water-filled* to the others, again in
    proportion to their inverse volatility, until no budget exceeds the cap. When the cap makes 1
    unreachable (fewer than ``1 / max_budget`` eligible configs) every eligible config gets
    ``max_budget`` and the rest stays in cash (the sum is below 1). Unselected configs get 0.
    Returns a Series with ``selected``' index, named ``risk_budget``.
    """
    if not max_budget > 0:
        raise ValueError("max_budget must be > 0")
    chosen = selected.fillna(False).astype(bool).to_numpy()
    vol = volatility.reindex(selected.index).to_numpy(dtype="float64")
    eligible = chosen & np.isfinite(vol) & (vol > 0)
    budgets = np.zeros(len(selected))
    if eligible.any():
        inverse = 1.0 / vol[eligible]
        weights = np.zeros(len(inverse))
        capped = np.zeros(len(inverse), dtype=bool)
        while True:  # at most one round per eligible config
            free = ~capped
            remaining = 1.0 - max_budget * capped.sum()
            weights[free] = remaining * inverse[free] / inverse[free].sum()
            over = free & (weights > max_budget)
            if not over.any():
                break
            capped |= over
            weights[capped] = max_budget
            if capped.all():
                break
        budgets[eligible] = np.minimum(weights, max_budget)
    return pd.Series(budgets, index=selected.index, name="risk_budget")


def regime_budgets(budgets: pd.Series, regime_sharpe: pd.DataFrame, penalty: float = 0.5) -> pd.DataFrame:
    """Per-regime budgets: the risk budget, times ``penalty`` where the config lost money in that regime.

    For config k and regime label L: ``budget_k × (1 if Sharpe_k,L >= 0 else penalty)``. A NaN
    regime Sharpe (too little data in that regime) is ignored: factor 1. Not renormalised: the
    cut goes to cash, so the combined book de-risks in regimes where its sleeves struggle.
    Returns a config × regime label frame (``budgets``' index, ``regime_sharpe``' columns).
    """
    per_regime = regime_sharpe.reindex(index=budgets.index).to_numpy(dtype="float64")
    factor = np.where(per_regime < 0, penalty, 1.0)  # NaN < 0 is False: factor 1
    values = budgets.to_numpy(dtype="float64")[:, None] * factor
    return pd.DataFrame(values, index=budgets.index, columns=regime_sharpe.columns)


# --------------------------------------------------------------------------------------------
# Walk-forward selection
# --------------------------------------------------------------------------------------------


def _reselection_positions(index: pd.DatetimeIndex, frequency: str) -> np.ndarray:
    """Positions of the last session of each period (month, ...) present in ``index``."""
    if frequency not in FREQUENCIES:
        raise ValueError(f"frequency must be one of {sorted(FREQUENCIES)}, got {frequency!r}")
    periods = index.to_period(FREQUENCIES[frequency]).asi8
    is_last = np.ones(len(index), dtype=bool)
    is_last[:-1] = periods[1:] != periods[:-1]
    return np.flatnonzero(is_last)


def reselection_dates(index: pd.DatetimeIndex, frequency: str = "monthly") -> pd.DatetimeIndex:
    """The last session of each period present in ``index`` (the candidate as-of dates of :func:`walk_forward_selection`)."""
    index = pd.DatetimeIndex(index)
    return index[_reselection_positions(index, frequency)]


def _empty_selection(date_dtype: object) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype="float64") for c in SELECTION_COLUMNS})
    for c in ("as_of_date", "effective_from"):
        out[c] = pd.Series(dtype=date_dtype)
    for c in ("config_id", "simpler_alternative"):
        out[c] = pd.Series(dtype="str")
    for c in ("pareto_efficient", "narrow_slice", "selected"):
        out[c] = pd.Series(dtype="bool")
    return out


@dataclass(frozen=True)
class SelectionAnchor:
    """Where a walk-forward run can continue: a re-selection date, the sessions of the index up to and including it
    and each config's count of non-NaN returns up to and including it (from the first day of history)."""

    as_of_date: pd.Timestamp
    sessions: int
    counts: Mapping[str, int]


def _anchor_offsets(index: pd.DatetimeIndex, values: np.ndarray, configs: list[str], anchor: SelectionAnchor | None, lookback: int) -> tuple[int, np.ndarray]:
    """Sessions before ``index``' first row and each config's non-NaN count before it (0 and 0 without an anchor)."""
    if anchor is None:
        return 0, np.zeros(len(configs), dtype=np.int64)
    at = index.get_indexer([anchor.as_of_date])[0]
    if at < 0:
        raise ValueError(f"the anchor {anchor.as_of_date} is not a row of sleeve_returns")
    offset = anchor.sessions - (at + 1)
    if offset < 0:
        raise ValueError("the anchor counts fewer sessions than sleeve_returns has up to it")
    if offset > 0 and at + 1 < lookback - 1:
        raise ValueError(f"continuing after {anchor.as_of_date} needs {lookback - 1} sessions up to it, got {at + 1}")
    counted = np.array([int(anchor.counts.get(c, 0)) for c in configs], dtype=np.int64)
    before = counted - np.sum(~np.isnan(values[: at + 1]), axis=0)
    if (before < 0).any():
        raise ValueError("the anchor counts fewer returns than sleeve_returns has up to it")
    return offset, before


def selection_anchors(sleeve_returns: pd.DataFrame, as_of_dates: Sequence[pd.Timestamp], anchor: SelectionAnchor | None = None) -> list[SelectionAnchor]:
    """The :class:`SelectionAnchor` at each of ``as_of_dates`` (rows of ``sleeve_returns``, which starts at the first
    day of history or contains ``anchor``'s date, whose counts it continues). One per date, over every column."""
    index = pd.DatetimeIndex(sleeve_returns.index)
    configs = [str(c) for c in sleeve_returns.columns]
    values = sleeve_returns.to_numpy(dtype="float64")
    offset, before = _anchor_offsets(index, values, configs, anchor, 1)
    counts = before + np.cumsum(~np.isnan(values), axis=0)
    out = []
    for d in as_of_dates:
        at = index.get_loc(pd.Timestamp(d))
        out.append(SelectionAnchor(pd.Timestamp(d), int(offset + at + 1), {c: int(v) for c, v in zip(configs, counts[at], strict=True)}))
    return out


def walk_forward_selection(
    sleeve_returns: pd.DataFrame,
    complexity: pd.Series,
    regimes: pd.Series | None,
    turnover: pd.DataFrame | None = None,
    lookback: int = 756,
    min_history: int = 252,
    frequency: str = "monthly",
    anchor: SelectionAnchor | None = None,
) -> pd.DataFrame:
    """Point-in-time config selection and budgets at every re-selection date.

    Args:
        sleeve_returns: daily simple returns, sorted dates × config_id (NaN = not running).
        complexity: config_id -> complexity (lower = simpler).
        regimes: regime label per date (the label published at that date's close), or None.
        turnover: optional daily turnover, dates × config_id; without it turnover is 0 for all.
        lookback: metrics use the trailing ``lookback`` sessions ending on the as-of date.
        min_history: no selection before the index has this many sessions up to the as-of
            date; a config with fewer non-NaN returns than this up to the as-of date gets NaN
            metrics (so it is never efficient nor selected).
        frequency: ``"monthly"`` (default), ``"weekly"``, ``"quarterly"`` or ``"annual"``.
        anchor: continue after an earlier re-selection date (:func:`selection_anchors` of a
            previous run): ``sleeve_returns`` then starts later than the first day of history,
            contains the anchor's date and at least ``lookback - 1`` sessions before it (else
            ValueError), and only the re-selection dates after the anchor are returned. Their
            rows are those of a run over the whole history (the same window, the same counts).

    Re-selection dates are the last session of each calendar period present in the index. At
    each of them (``as_of_date``), per config over the trailing window: ``sharpe_ratio``,
    ``cagr``, ``annual_volatility``, ``max_drawdown`` (:mod:`core.metrics`), ``turnover``
    (mean daily turnover × 252, NaN if the config has no turnover in the window), and the Sharpe
    per regime label over the window's sessions whose label in force (the previous session's,
    :func:`~prometheus_assets.core.frames.labels_in_force`) is that label; it needs
    :data:`MIN_REGIME_DAYS` of them on which the config was invested (a return other than exactly
    0), else NaN and ignored: a book that sits in cash in a regime has only its exit costs there,
    whose Sharpe (ALPHA_COMBO's in CRISIS: 13 days of -0.035% among 693 of 0, about -2.2) says
    nothing about how it trades that regime and flagged it a narrow slice. Then :func:`assess_configs`,
    :func:`risk_budgets` and :func:`regime_budgets` (default parameters).

    ``effective_from`` is the next session after ``as_of_date`` (the budgets decided at that
    close earn the next session's returns). On the last session of the data it is NaT: when the
    data ends mid-period that row is *provisional* (a later run replaces it by the true period
    end) and :func:`combine_portfolio` never applies it. Everything in a row depends only on
    data up to its ``as_of_date``.

    Returns long rows per (as_of_date, config_id), ordered by as_of_date then config_id, with
    columns :data:`SELECTION_COLUMNS`.
    """
    if lookback < 1 or min_history < 1:
        raise ValueError("lookback and min_history must be >= 1")
    index = pd.DatetimeIndex(sleeve_returns.index)
    if not index.is_monotonic_increasing or not index.is_unique:
        raise ValueError("sleeve_returns must be indexed by sorted, unique dates")
    configs = sorted(str(c) for c in sleeve_returns.columns)
    if not configs:
        return _empty_selection(index.dtype)
    frame = sleeve_returns.set_axis([str(c) for c in sleeve_returns.columns], axis=1)[configs]
    values = frame.to_numpy(dtype="float64")
    offset, before = _anchor_offsets(index, values, configs, anchor, lookback)
    history = before + np.cumsum(~np.isnan(values), axis=0)  # non-NaN returns up to each date, per config
    if turnover is not None:
        turnover_values = turnover.set_axis([str(c) for c in turnover.columns], axis=1).reindex(index=index, columns=configs).to_numpy(dtype="float64")
    else:
        turnover_values = np.zeros_like(values)
    if regimes is not None:
        aligned = labels_in_force(regimes, index)  # a return by the label in force when its positions were set
        labels = np.where(aligned.notna().to_numpy(), aligned.astype("str").to_numpy(dtype=object), None)
    else:
        labels = np.full(len(index), None, dtype=object)
    complexity_by_id = complexity.set_axis([str(c) for c in complexity.index])

    blocks = []
    for p in _reselection_positions(index, frequency):
        if offset + p + 1 < min_history or (anchor is not None and index[p] <= anchor.as_of_date):
            continue
        lo = max(0, p + 1 - lookback)
        window = values[lo : p + 1]
        window_turnover = turnover_values[lo : p + 1]
        window_labels = labels[lo : p + 1]
        extra = sorted({str(x) for x in window_labels if x is not None} - set(BUDGET_REGIME_LABELS))
        regime_names = [*BUDGET_REGIME_LABELS, *extra]
        regime_masks = {label: window_labels == label for label in regime_names}
        counted = {label: mask for label, mask in regime_masks.items() if mask.sum() >= MIN_REGIME_DAYS}

        rows = {}
        regime_rows = {}
        for j, config in enumerate(configs):
            r = window[:, j]
            enough = history[p, j] >= min_history
            t = window_turnover[:, j]
            rows[config] = {
                "sharpe_ratio": m.sharpe_ratio(r) if enough else np.nan,
                "cagr": m.cagr(r) if enough else np.nan,
                "annual_volatility": m.annual_volatility(r) if enough else np.nan,
                "max_drawdown": m.max_drawdown(r) if enough else np.nan,
                "turnover": float(np.nanmean(t) * m.PERIODS_PER_YEAR) if np.isfinite(t).any() else np.nan,
            }
            invested = np.isfinite(r) & (r != 0.0)
            regime_rows[config] = {label: m.sharpe_ratio(r[mask]) if enough and int((mask & invested).sum()) >= MIN_REGIME_DAYS else np.nan
                                   for label, mask in counted.items()}
        metrics_frame = pd.DataFrame.from_dict(rows, orient="index")
        regime_sharpe = pd.DataFrame.from_dict(regime_rows, orient="index").reindex(index=configs, columns=regime_names).astype("float64")

        assessed = assess_configs(metrics_frame, regime_sharpe, complexity_by_id)
        budgets = risk_budgets(assessed["annual_volatility"], assessed["selected"])
        per_regime_budgets = regime_budgets(budgets, regime_sharpe[list(BUDGET_REGIME_LABELS)])

        block = assessed.reset_index()
        block.insert(0, "as_of_date", index[p])
        block.insert(1, "effective_from", index[p + 1] if p + 1 < len(index) else pd.NaT)
        block["risk_budget"] = budgets.to_numpy()
        for label in BUDGET_REGIME_LABELS:
            block[f"budget_{label}"] = per_regime_budgets[label].to_numpy()
        blocks.append(block[list(SELECTION_COLUMNS)])

    if not blocks:
        return _empty_selection(index.dtype)
    out = pd.concat(blocks, ignore_index=True)
    out["effective_from"] = pd.to_datetime(out["effective_from"]).astype(out["as_of_date"].dtype)
    out["config_id"] = out["config_id"].astype("str")
    out["simpler_alternative"] = out["simpler_alternative"].astype("str")
    return out


# --------------------------------------------------------------------------------------------
# The combined book
# --------------------------------------------------------------------------------------------


def _daily_budgets(
    sleeve_returns: pd.DataFrame,
    selection: pd.DataFrame,
    default_configs: Sequence[str],
    regimes: pd.Series | None,
    regime_dependent: bool,
) -> tuple[pd.DataFrame, pd.Series]:
    """Budget held by each config over each session (dates × config_id) and the selection used.

    Session t uses the latest selection with ``effective_from <= t`` (budgets decided at an
    earlier close); before any, equal budgets over ``default_configs``. With
    ``regime_dependent`` the ``budget_<LABEL>`` column of the regime label of the *previous*
    session is used (the label known when the book was set at that close); no previous session,
    a missing label or a label without a budget column falls back to ``risk_budget``.
    """
    index = pd.DatetimeIndex(sleeve_returns.index)
    if not index.is_monotonic_increasing:
        raise ValueError("sleeve_returns must be indexed by sorted dates")
    configs = [str(c) for c in sleeve_returns.columns]
    position = {c: k for k, c in enumerate(configs)}
    unknown = sorted({str(c) for c in default_configs} - set(position))
    if unknown:
        raise ValueError(f"default configs without returns: {unknown}")
    if regime_dependent and regimes is None:
        raise ValueError("regime_dependent budgets need the regimes")

    default = np.zeros(len(configs))
    defaults = sorted({str(c) for c in default_configs})
    for c in defaults:
        default[position[c]] = 1.0 / len(defaults)

    live = selection[selection["effective_from"].notna()]
    unknown = sorted(set(live["config_id"].astype("str")) - set(position))
    if unknown:
        raise ValueError(f"selected configs without returns: {unknown}")
    variants = ["risk_budget"] + [f"budget_{label}" for label in BUDGET_REGIME_LABELS if f"budget_{label}" in live.columns]

    # one budget matrix per selection (as_of) and variant: tensor[selection, variant, config]
    events = live.groupby("as_of_date")["effective_from"].max().reset_index().sort_values(["effective_from", "as_of_date"], kind="stable")
    as_of_order = pd.DatetimeIndex(events["as_of_date"])
    tensor = np.zeros((len(events), len(variants), len(configs)))
    if len(events):
        keyed = live.assign(config_id=live["config_id"].astype("str"))
        for v, column in enumerate(variants):
            pivot = keyed.pivot_table(index="as_of_date", columns="config_id", values=column, aggfunc="last")
            tensor[:, v, :] = pivot.reindex(index=as_of_order, columns=configs).fillna(0.0).to_numpy(dtype="float64")

    effective = pd.DatetimeIndex(events["effective_from"]).as_unit("ns").asi8
    which = np.searchsorted(effective, index.as_unit("ns").asi8, side="right") - 1  # -1: before the first

    variant_of_day = np.zeros(len(index), dtype=int)
    if regime_dependent:
        previous_label = labels_in_force(regimes, index)  # type: ignore[arg-type]
        lookup = {column.removeprefix("budget_"): v for v, column in enumerate(variants) if v > 0}
        variant_of_day = np.array([lookup.get(str(x), 0) if pd.notna(x) else 0 for x in previous_label], dtype=int)

    budgets = np.where((which >= 0)[:, None], tensor[np.maximum(which, 0), variant_of_day] if len(events) else 0.0, default[None, :])
    used = pd.Series(as_of_order[np.maximum(which, 0)] if len(events) else pd.NaT, index=index, dtype=index.dtype).where(which >= 0)
    frame = pd.DataFrame(budgets, index=index, columns=configs)
    frame.columns.name = "config_id"
    return frame, used


def _weighted(budgets: pd.DataFrame, sleeve_returns: pd.DataFrame) -> pd.DataFrame:
    """budget × return per config and session (a NaN sleeve return counts as 0)."""
    returns = sleeve_returns.set_axis(budgets.columns, axis=1).fillna(0.0)
    return budgets * returns


def contributions(
    sleeve_returns: pd.DataFrame,
    selection: pd.DataFrame,
    default_configs: Sequence[str],
    regimes: pd.Series | None = None,
    regime_dependent: bool = False,
) -> pd.DataFrame:
    """Each config's contribution to the combined book's daily return (dates × config_id).

    ``budget_k,t × r_k,t`` with the budgets of :func:`combine_portfolio` (same arguments, same
    conventions); the row sums are the combined book's returns.
    """
    budgets, _ = _daily_budgets(sleeve_returns, selection, default_configs, regimes, regime_dependent)
    return _weighted(budgets, sleeve_returns)


@dataclass(frozen=True)
class PortfolioCarry:
    """The combined book at one close: its equity and its running peak (the starting capital 1 counts as a peak)."""

    date: pd.Timestamp
    equity: float
    peak: float


def combine_portfolio(
    sleeve_returns: pd.DataFrame,
    selection: pd.DataFrame,
    default_configs: list[str],
    regimes: pd.Series | None = None,
    regime_dependent: bool = False,
    carry: PortfolioCarry | None = None,
) -> pd.DataFrame:
    """The combined book's daily returns from walk-forward selections.

    Args:
        sleeve_returns: daily simple returns, sorted dates × config_id.
        selection: output of :func:`walk_forward_selection` (rows with NaT ``effective_from``
            are never applied).
        default_configs: the configured books, held with equal budgets ``1 / len`` before the
            first selection takes effect (an empty list means cash).
        regimes: regime label per date; needed when ``regime_dependent``.
        regime_dependent: use the ``budget_<LABEL>`` budgets of the regime label of the
            *previous* session (known when the book was set at that close) instead of
            ``risk_budget``; a missing or unknown label uses ``risk_budget``.
        carry: continue from the book at this close (a row of ``sleeve_returns``, which then
            only provides the previous session's regime label): only the sessions after it are
            returned, their equity and peak continuing from the carried ones.

    On session t the budgets are those of the latest selection with ``effective_from <= t``;
    ``return_t = Σ_k budget_k · r_k,t`` (NaN sleeve return counts 0; unbudgeted money is cash at
    0%; the sum adds the configs in column order). Columns :data:`PORTFOLIO_COLUMNS`: ``equity``
    = cumulative product of ``1 + return`` starting from 1 (``equity_t = equity_t-1 · (1 +
    return_t)``, so a run carrying ``equity_t-1`` gives the same bits), ``drawdown`` = equity /
    running peak − 1 where the starting capital 1 counts as a peak (so its minimum equals
    :func:`metrics.max_drawdown` of the returns), ``selection_as_of`` (the as-of date of the
    selection used, NaT before the first), ``live_sleeves`` (configs with a budget > 0) and
    ``gross_budget`` (sum of budgets, in column order).
    """
    budgets, used = _daily_budgets(sleeve_returns, selection, default_configs, regimes, regime_dependent)
    daily = row_sums(_weighted(budgets, sleeve_returns).to_numpy(dtype="float64"))
    budget_values = budgets.to_numpy(dtype="float64")
    dates = budgets.index
    if carry is not None:
        after = np.asarray(dates > carry.date)
        if not (dates == carry.date).any():
            raise ValueError(f"the carried close {carry.date} is not a row of sleeve_returns")
        dates, daily, budget_values, used = dates[after], daily[after], budget_values[after], used[after]
        equity = np.multiply.accumulate(np.concatenate([[carry.equity], 1.0 + daily]))[1:]
        peak = np.maximum(np.maximum.accumulate(np.concatenate([[carry.peak], equity]))[1:], 1.0)
    else:
        equity = np.cumprod(1.0 + daily)
        peak = np.maximum(np.maximum.accumulate(equity), 1.0) if len(equity) else equity
    return pd.DataFrame(
        {
            "date": dates,
            "return": daily,
            "equity": equity,
            "drawdown": (equity - peak) / peak,
            "selection_as_of": used.to_numpy(),
            "live_sleeves": (budget_values > 0).sum(axis=1).astype("int64"),
            "gross_budget": row_sums(budget_values),
        },
        columns=list(PORTFOLIO_COLUMNS),
    )


def portfolio_carry(combined: pd.DataFrame, carried: PortfolioCarry | None = None) -> PortfolioCarry | None:
    """The carry at the last row of a :func:`combine_portfolio` result (continued from ``carried``, if it was)."""
    if not len(combined):
        return carried
    equity = combined["equity"].to_numpy(dtype="float64")
    peak = max(float(np.max(equity)), 1.0 if carried is None else carried.peak, 1.0)
    return PortfolioCarry(pd.Timestamp(combined["date"].iloc[-1]), float(equity[-1]), peak)
