"""core.edge.sizing: the pm_strength ladder, exposure_skew, max_alloc and the EdgeSizer hook.

Hand examples pin the formulas on a three-mask ladder (sector, intent, sector+intent) with a
dict-backed lookup; hypothesis checks bounds and monotonicity; the EdgeSizer runs through
core.portfolio.construct_book on a four-name book to show it is point in time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from prometheus_assets.core import portfolio as P
from prometheus_assets.core.books import BookConfig, Constraints
from prometheus_assets.core.edge import sizing as S
from prometheus_assets.core.edge.config import EdgeConfig
from prometheus_assets.core.edge.scope import DEFAULT_MASKS, DIMENSION_NAMES, mask_of, mask_weight, scope_key

SECTOR = mask_of(["sector"])
INTENT = mask_of(["intent"])
BOTH = mask_of(["sector", "intent"])
LADDER = (SECTOR, INTENT, BOTH)
N_DIMS = len(DIMENSION_NAMES)  # 17: every dimension weighs 1 by default
PK, CAT = "bookA:strategy:momentum", "entry"
TECH_LONG = {"sector": "tech", "intent": "long"}


@dataclass(frozen=True)
class Stats:
    n: int
    edge_raw: float
    decay_mult: float = 1.0


def dict_lookup(table: dict[tuple[int, str], Stats], pattern_key: str = PK, action_category: str = CAT):
    """A lookup over ``{(mask, key): stats}`` for one pattern and action category."""

    def lookup(pk: str, cat: str, mask: int, key: str):
        if pk != pattern_key or cat != action_category:
            return None
        return table.get((mask, key))

    return lookup


def ladder_config(**kw) -> EdgeConfig:
    return EdgeConfig(masks=LADDER, **kw)


# ----------------------------------------------------------------------------- pm_strength


def test_pm_strength_hand_example():
    table = {
        (SECTOR, "sector=tech"): Stats(n=20, edge_raw=0.4, decay_mult=0.5),  # edge 0.2
        (INTENT, "intent=long"): Stats(n=5, edge_raw=5.0),  # 5 < n_min = 10: ignored
        (BOTH, "sector=tech|intent=long"): Stats(n=12, edge_raw=0.3, decay_mult=1.2),  # edge 0.36
        (SECTOR, "sector=energy"): Stats(n=99, edge_raw=-9.0),  # another key: never read
    }
    result = S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(table), ladder_config())
    # w(sector) = (1/17) ** 0.5, w(sector+intent) = (2/17) ** 0.5: the ratio of the weights is √2
    blended = (0.2 + math.sqrt(2) * 0.36) / (1 + math.sqrt(2))
    assert blended == pytest.approx(0.2937258, abs=1e-7)  # 0.70911688 / 2.41421356
    assert result.blended_edge == pytest.approx(blended, rel=1e-14)
    assert result.pm_strength == pytest.approx(math.exp(blended), rel=1e-14)
    assert not result.fallback
    assert [(u.scope_mask, u.scope_key, u.n) for u in result.used] == [(SECTOR, "sector=tech", 20), (BOTH, "sector=tech|intent=long", 12)]
    assert [u.weight for u in result.used] == pytest.approx([math.sqrt(1 / N_DIMS), math.sqrt(2 / N_DIMS)], rel=1e-15)
    assert [u.edge for u in result.used] == pytest.approx([0.2, 0.36], rel=1e-15)
    # decay is applied before blending: blending edge_raw and scaling by the mean decay differs
    assert result.blended_edge != pytest.approx((0.4 + math.sqrt(2) * 0.3) / (1 + math.sqrt(2)) * 0.85, rel=1e-3)
    # the gain scales the exponent
    doubled = S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(table), ladder_config(strength_gain=2.0))
    assert doubled.pm_strength == pytest.approx(math.exp(2 * blended), rel=1e-14)
    # lowering n_min lets the intent mask in: (w1·0.2 + w1·5 + w2·0.36) / (2 w1 + w2)
    loose = S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(table), ladder_config(n_min=5))
    assert loose.pm_strength == pytest.approx(min(3.0, math.exp((5.2 + math.sqrt(2) * 0.36) / (2 + math.sqrt(2)))), rel=1e-14)
    assert len(loose.used) == 3


def test_pm_strength_clamps_at_both_ends():
    config = ladder_config()
    for edge, expected in [(50.0, 3.0), (1e308, 3.0), (-50.0, 0.3), (-1e308, 0.3)]:
        table = {(SECTOR, "sector=tech"): Stats(n=10, edge_raw=edge)}
        result = S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(table), config)
        assert result.pm_strength == expected and not result.fallback
    # the bounds come from the config
    wide = ladder_config(pm_strength_bounds=(0.1, 5.0))
    assert S.pm_strength(PK, CAT, TECH_LONG, dict_lookup({(SECTOR, "sector=tech"): Stats(10, 50.0)}), wide).pm_strength == 5.0


def test_pm_strength_falls_back_to_one_without_enough_trades():
    config = ladder_config()
    thin = {(SECTOR, "sector=tech"): Stats(n=9, edge_raw=2.0), (BOTH, "sector=tech|intent=long"): Stats(n=1, edge_raw=-2.0)}
    for table in (thin, {}):
        result = S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(table), config)
        assert result.pm_strength == 1.0 and result.fallback and result.used == () and math.isnan(result.blended_edge)
    # the pattern key and action category are part of the lookup
    table = {(SECTOR, "sector=tech"): Stats(n=30, edge_raw=2.0)}
    assert S.pm_strength("other", CAT, TECH_LONG, dict_lookup(table), config).fallback
    assert S.pm_strength(PK, "exit", TECH_LONG, dict_lookup(table), config).fallback
    # a non-finite edge is left out like a thin mask
    nan_table = {(SECTOR, "sector=tech"): Stats(n=30, edge_raw=math.nan), (INTENT, "intent=long"): Stats(n=30, edge_raw=0.1)}
    used = S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(nan_table), config)
    assert [u.scope_mask for u in used.used] == [INTENT] and used.pm_strength == pytest.approx(math.exp(0.1), rel=1e-15)


def test_dimension_weights_and_alpha_change_the_mask_weights():
    table = {(SECTOR, "sector=tech"): Stats(n=20, edge_raw=0.2), (BOTH, "sector=tech|intent=long"): Stats(n=20, edge_raw=0.36)}
    # sector weighs 3, the other 16 dimensions 1: Σ all = 19; with α = 1 the weights are linear
    config = ladder_config(dimension_weights={"sector": 3.0}, mask_weight_alpha=1.0)
    result = S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(table), config)
    assert [u.weight for u in result.used] == pytest.approx([3 / 19, 4 / 19], rel=1e-15)
    assert result.blended_edge == pytest.approx((3 * 0.2 + 4 * 0.36) / 7, rel=1e-14)
    # the same weights with α = 0.5: √(3/19) and √(4/19)
    root = S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(table), ladder_config(dimension_weights={"sector": 3.0}))
    w1, w2 = math.sqrt(3 / 19), math.sqrt(4 / 19)
    assert [u.weight for u in root.used] == pytest.approx([w1, w2], rel=1e-15)
    assert root.blended_edge == pytest.approx((w1 * 0.2 + w2 * 0.36) / (w1 + w2), rel=1e-14)
    # the exposure maps use the same weights
    maps = S.exposure_maps([S.HeldPosition(PK, TECH_LONG, 0.5)], config)
    assert maps.scope_exposure == pytest.approx({(SECTOR, "sector=tech"): 0.5 * 3 / 19, (INTENT, "intent=long"): 0.5 / 19, (BOTH, "sector=tech|intent=long"): 0.5 * 4 / 19})
    # a mask whose dimensions all weigh 0 has weight 0 and cannot take part
    zero = ladder_config(dimension_weights={"sector": 0.0})
    only_sector = {(SECTOR, "sector=tech"): Stats(n=20, edge_raw=0.5)}
    assert S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(only_sector), zero).fallback


@settings(max_examples=200, deadline=None)
@given(
    edges=st.lists(st.floats(-20, 20), min_size=3, max_size=3),
    decays=st.lists(st.floats(0.33, 1.33), min_size=3, max_size=3),
    ns=st.lists(st.integers(0, 40), min_size=3, max_size=3),
    bump=st.floats(0.0, 5.0),
)
def test_pm_strength_is_bounded_and_monotone_in_edge(edges, decays, ns, bump):
    config = ladder_config()
    keys = [scope_key(TECH_LONG, m) for m in LADDER]
    table = {(m, k): Stats(n, e, d) for m, k, n, e, d in zip(LADDER, keys, ns, edges, decays)}
    result = S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(table), config)
    assert 0.3 <= result.pm_strength <= 3.0
    assert result.fallback == all(n < config.n_min for n in ns)
    # a better edge on one mask never lowers the strength
    better = dict(table)
    better[(LADDER[0], keys[0])] = Stats(ns[0], edges[0] + bump, decays[0])
    assert S.pm_strength(PK, CAT, TECH_LONG, dict_lookup(better), config).pm_strength >= result.pm_strength - 1e-12


@settings(max_examples=200, deadline=None)
@given(edge=st.floats(-20, 20), decay=st.floats(0.33, 1.33), n=st.integers(10, 40))
def test_decay_always_moves_the_size_its_own_way_whatever_the_sign_of_the_edge(edge, decay, n):
    """Regression: the ladder multiplied the signed edge by decay_mult, so a decaying negative edge (one growing
    more negative, mult < 1) was pulled towards 0 and sized a position *up*, an improving one sized it down."""
    config = ladder_config()

    def strength(d: float) -> float:
        return S.pm_strength(PK, CAT, TECH_LONG, dict_lookup({(SECTOR, "sector=tech"): Stats(n, edge, d)}), config).pm_strength

    plain = strength(1.0)
    if decay <= 1.0:
        assert strength(decay) <= plain + 1e-12  # decaying: never larger
    else:
        assert strength(decay) >= plain - 1e-12  # improving: never smaller
    # by hand: -0.5 decaying at 0.5 counts as -1.0, improving at 1.25 as -0.4
    assert S.decayed_edge(-0.5, 0.5) == -1.0 and S.decayed_edge(-0.5, 1.25) == -0.4 and S.decayed_edge(0.5, 0.5) == 0.25


# ----------------------------------------------------------------------------- exposure_skew


def test_exposure_skew_extremes():
    config = ladder_config()
    # every position on exactly the candidate's keys and pattern: conc_norm 1, skew 0.33
    same = [S.HeldPosition(PK, TECH_LONG, e) for e in (0.1, 0.25, -0.05)]
    crowded = S.exposure_skew(PK, TECH_LONG, S.exposure_maps(same, config), config)
    assert crowded.conc_norm == pytest.approx(1.0, abs=1e-15)
    assert crowded.exposure_skew == pytest.approx(0.33, abs=1e-15)
    # ... also over the full default ladder, with a full scope
    full = {name: f"v_{name}" for name in DIMENSION_NAMES}
    default = EdgeConfig()
    maps = S.exposure_maps([S.HeldPosition(PK, full, 0.4), S.HeldPosition(PK, dict(full), 0.1)], default)
    assert S.exposure_skew(PK, full, maps, default).exposure_skew == pytest.approx(0.33, abs=1e-15)
    # nothing shared (other sector, other intent, other pattern): conc_norm 0, skew 1.33
    apart = [S.HeldPosition("other", {"sector": "energy", "intent": "short"}, 0.6)]
    empty = S.exposure_skew(PK, TECH_LONG, S.exposure_maps(apart, config), config)
    assert (empty.conc_total, empty.conc_norm, empty.exposure_skew) == (0.0, 0.0, 1.33)
    # no positions at all: N = 0 -> conc_norm 0
    assert S.exposure_skew(PK, TECH_LONG, S.ExposureMaps(), config).exposure_skew == 1.33
    # the bounds come from the config (the upper bound plays the role of the 1.33)
    other_bounds = ladder_config(exposure_skew_bounds=(0.5, 1.2))
    assert S.exposure_skew(PK, TECH_LONG, S.ExposureMaps(), other_bounds).exposure_skew == 1.2
    assert S.exposure_skew(PK, TECH_LONG, S.exposure_maps(same, other_bounds), other_bounds).exposure_skew == 0.5


def test_exposure_skew_hand_example():
    # α = 1 for the mask weights: w(sector) = w(intent) = 1/17, w(sector+intent) = 2/17, Σ w = 4/17
    config = ladder_config(mask_weight_alpha=1.0)
    held = [
        S.HeldPosition("other", {"sector": "tech", "intent": "long"}, 0.2),  # shares every key, not the pattern
        S.HeldPosition(PK, {"sector": "energy", "intent": "long"}, -0.3),  # shares intent and the pattern
    ]
    maps = S.exposure_maps(held, config)
    assert maps.total_exposure == pytest.approx(0.5, abs=1e-16)
    result = S.exposure_skew(PK, TECH_LONG, maps, config)
    # scope:   tech 0.2/17 + long 0.5/17 + tech|long 2·0.2/17 = 1.1/17
    # pattern: tech 0     + long 0.3/17 + tech|long 0         = 0.3/17
    # conc_total = 1·1.1/17 + 0.5·0.3/17 = 1.25/17; normaliser (1 + 0.5)·(4/17)·0.5 = 3/17
    assert result.conc_total == pytest.approx(1.25 / 17, rel=1e-14)
    assert result.conc_norm == pytest.approx(1.25 / 3, rel=1e-14)
    assert result.exposure_skew == pytest.approx(1.33 - 1.25 / 3, rel=1e-14)
    # normalised by a fixed exposure cap of 1.0 instead of the total 0.5
    capped = S.exposure_skew(PK, TECH_LONG, maps, ladder_config(mask_weight_alpha=1.0, exposure_cap=1.0))
    assert capped.conc_norm == pytest.approx(1.25 / 6, rel=1e-14)
    # β weighs the same-pattern crowding: β = 0 leaves 1.1/17 over 1·(4/17)·0.5
    no_beta = S.exposure_skew(PK, TECH_LONG, maps, ladder_config(mask_weight_alpha=1.0, exposure_beta=0.0))
    assert no_beta.conc_norm == pytest.approx(1.1 / 2, rel=1e-14)


def test_exposure_maps_are_additive_and_validate():
    config = ladder_config()
    positions = [S.HeldPosition(PK, TECH_LONG, 0.1), S.HeldPosition("x", {"sector": "energy", "intent": "long"}, -0.2), S.HeldPosition(PK, {}, 0.0)]
    built = S.exposure_maps(positions, config)
    stepwise = S.ExposureMaps()
    for p in positions:
        S.add_position(stepwise, p, config)
    assert built == stepwise
    assert built.total_exposure == pytest.approx(0.3, abs=1e-16)  # |-0.2| counts; exposure 0 adds nothing
    assert built.pattern_scope_exposure[("x", INTENT, "intent=long")] == pytest.approx(0.2 * mask_weight(INTENT), rel=1e-15)
    assert (SECTOR, "sector=unknown") not in built.scope_exposure
    with pytest.raises(ValueError, match="finite"):
        S.add_position(built, S.HeldPosition(PK, TECH_LONG, math.nan), config)


position_st = st.builds(
    S.HeldPosition,
    pattern_key=st.sampled_from([PK, "other"]),
    scope=st.fixed_dictionaries({"sector": st.sampled_from(["tech", "energy"]), "intent": st.sampled_from(["long", "short"])}),
    exposure_pct=st.floats(-0.5, 0.5),
)


@settings(max_examples=200, deadline=None)
@given(positions=st.lists(position_st, max_size=8), extra=st.floats(0.001, 1.0), cap=st.one_of(st.none(), st.floats(0.1, 3.0)))
def test_exposure_skew_bounds_and_direction(positions, extra, cap):
    config = ladder_config(exposure_cap=cap)
    maps = S.exposure_maps(positions, config)
    base = S.exposure_skew(PK, TECH_LONG, maps, config)
    assert 0.33 <= base.exposure_skew <= 1.33 and 0.0 <= base.conc_norm <= 1.0
    # more exposure exactly on the candidate never makes it less crowded ...
    S.add_position(more := S.exposure_maps(positions, config), S.HeldPosition(PK, TECH_LONG, extra), config)
    assert S.exposure_skew(PK, TECH_LONG, more, config).exposure_skew <= base.exposure_skew + 1e-12
    # ... and exposure that shares nothing with it never makes it more crowded
    S.add_position(apart := S.exposure_maps(positions, config), S.HeldPosition("third", {"sector": "utilities", "intent": "short"}, extra), config)
    assert S.exposure_skew(PK, TECH_LONG, apart, config).exposure_skew >= base.exposure_skew - 1e-12


def test_max_alloc():
    assert S.max_alloc(0.10, 2.0, 0.5) == pytest.approx(0.10, rel=1e-15)
    assert S.max_alloc(0.10, 3.0, 1.33) == pytest.approx(0.399, rel=1e-15)
    assert S.max_alloc(0.10, 0.3, 0.33) == pytest.approx(0.0099, rel=1e-15)
    with pytest.raises(ValueError):
        S.max_alloc(-0.1, 1.0, 1.0)
    with pytest.raises(ValueError):
        S.max_alloc(0.1, math.nan, 1.0)


# ----------------------------------------------------------------------------- EdgeSizer in construct_book

SYMBOLS = ["A", "B", "C", "D"]
SECTORS = {"A": "tech", "B": "tech", "C": "energy", "D": "energy"}
DATES = pd.bdate_range("2024-03-04", periods=6)


def _small_book():
    """Four names, six sessions, daily rebalance, alpha 1:2:3:4, generous limits."""
    rng = np.random.default_rng(5)
    returns = pd.DataFrame(rng.normal(0.0, 0.01, (len(DATES), 4)), index=DATES, columns=SYMBOLS)
    alpha = pd.DataFrame(np.tile([1.0, 2.0, 3.0, 4.0], (len(DATES), 1)), index=DATES, columns=SYMBOLS)
    universe = pd.DataFrame(1.0, index=DATES, columns=SYMBOLS)
    config = BookConfig(
        name="small",
        horizon_days=5,
        alpha_sources=[{"name": "strategy:momentum_rank"}],
        rebalance="daily",
        constraints=Constraints(max_position=0.6, max_sector=2.0, min_positions=1, max_positions=4, max_turnover=10.0, gross_leverage=1.0),
    )
    return config, alpha, universe, returns, pd.Series(SECTORS), pd.Series(1.0, index=DATES)


class Timeline:
    """Stats entries dated by the day their trade closed; ``before(date)`` only shows earlier ones."""

    def __init__(self, entries: list[tuple[pd.Timestamp, int, str, Stats]]):
        self.entries = entries
        self.asked: list[pd.Timestamp] = []

    def before(self, date: pd.Timestamp):
        self.asked.append(date)
        table = {(m, k): s for known, m, k, s in self.entries if known < date}
        return dict_lookup(table)


def _scope(j: int, sign: float) -> dict[str, object]:
    return {"sector": SECTORS[SYMBOLS[j]], "intent": "long" if sign > 0 else "short"}


def _sizer(timeline: Timeline, config: EdgeConfig, others=()) -> S.EdgeSizer:
    return S.EdgeSizer(
        book="small",
        pattern_key=PK,
        action_category=CAT,
        base_alloc=0.3,
        config=config,
        edge_before=timeline.before,
        candidate_scope=lambda i, date, j, raw, current: _scope(j, raw),
        other_exposure=lambda i, date: list(others),
        own_scope=lambda i, date, j, weight: _scope(j, weight),
        symbols=SYMBOLS,
    )


def test_edge_sizer_is_point_in_time():
    config = ladder_config()
    early = pd.Timestamp("2024-01-02")
    tech = (early, SECTOR, "sector=tech", Stats(n=30, edge_raw=0.5))
    energy = (DATES[3], SECTOR, "sector=energy", Stats(n=30, edge_raw=-0.7, decay_mult=0.9))  # closes on day 3
    book = _small_book()
    with_late = Timeline([tech, energy])
    without = Timeline([tech])
    sizer_late, sizer_plain = _sizer(with_late, config), _sizer(without, config)
    plan_late = P.construct_book(*book, sizer=sizer_late)
    plan_plain = P.construct_book(*book, sizer=sizer_plain)
    assert with_late.asked == list(DATES)  # one lookup per rebalance, dated that day
    late, plain = sizer_late.decisions_frame(), sizer_plain.decisions_frame()
    assert list(late.columns) == S.DECISION_COLUMNS and len(late) == 4 * len(DATES)

    # up to and including day 3 the entry closing on day 3 changes nothing ...
    upto = late["date"] <= DATES[3]
    pd.testing.assert_frame_equal(late[upto], plain[upto], check_exact=True)
    pd.testing.assert_frame_equal(plan_late.targets.loc[: DATES[3]], plan_plain.targets.loc[: DATES[3]], check_exact=True)
    day3 = late[late["date"] == DATES[3]].set_index("symbol")
    assert day3.loc[["C", "D"], "fallback"].all() and (day3.loc[["C", "D"], "pm_strength_applied"] == 1.0).all()
    # ... from day 4 on it is used: energy names get exp(-0.7 / 0.9) (a negative edge that decays sizes down)
    day4 = late[late["date"] == DATES[4]].set_index("symbol")
    np.testing.assert_allclose(day4.loc[["C", "D"], "pm_strength_applied"], math.exp(-0.7 / 0.9), rtol=1e-14)
    assert (day4.loc[["C", "D"], "decay_mults"] == json.dumps({str(SECTOR): 0.9})).all()
    assert not plan_late.targets.loc[DATES[4]].equals(plan_plain.targets.loc[DATES[4]])
    # the tech entry (known before the first day) is used on every day
    np.testing.assert_allclose(late.loc[late["symbol"].isin(["A", "B"]), "pm_strength_applied"], math.exp(0.5), rtol=1e-14)

    # every decision is consistent with the formula and with the plan
    np.testing.assert_allclose(late["sized_weight"], late["raw_weight"] * late["pm_strength_applied"] * late["exposure_skew_applied"], rtol=1e-15)
    np.testing.assert_allclose(late["max_alloc"], 0.3 * late["pm_strength_applied"] * late["exposure_skew_applied"], rtol=1e-15)
    final = plan_late.targets.stack().rename("target").rename_axis(["date", "symbol"]).reset_index()
    merged = late.merge(final, on=["date", "symbol"])
    np.testing.assert_array_equal(merged["final_weight"], merged["target"])
    assert (late["final_weight"] <= late["max_alloc"] + 1e-12).all()
    first = late[late["date"] == DATES[0]]
    assert (first["exposure_skew_applied"] == 1.33).all()  # nothing held yet, no other books
    assert (late.loc[late["date"] > DATES[0], "exposure_skew_applied"] < 1.33).all()  # then the own book crowds


def test_edge_sizer_hand_example_on_one_day():
    # day 0: nothing held; another book holds 0.5 of tech/long (another pattern)
    config = ladder_config(mask_weight_alpha=1.0)
    others = [S.HeldPosition("other", {"sector": "tech", "intent": "long"}, 0.5)]
    timeline = Timeline([(pd.Timestamp("2024-01-02"), BOTH, "sector=energy|intent=long", Stats(n=10, edge_raw=0.2))])
    sizer = _sizer(timeline, config, others)
    current = np.zeros(4)
    multipliers, caps = sizer(0, DATES[0], np.array([0, 2]), np.array([1.0, 3.0]), current)
    # A (tech/long): every key held by the other book; pattern term 0 -> conc_norm = 1/1.5
    skew_a = 1.33 - 1 / 1.5
    # C (energy/long): intent shared only -> conc_total = 0.5/17, normaliser 1.5 · 4/17 · 0.5
    skew_c = 1.33 - (0.5 / 17) / (1.5 * 4 / 17 * 0.5)
    pm_c = math.exp(0.2)
    np.testing.assert_allclose(multipliers, [skew_a, pm_c * skew_c], rtol=1e-14)
    np.testing.assert_allclose(caps, [0.3 * skew_a, 0.3 * pm_c * skew_c], rtol=1e-14)
    sizer.record(0, DATES[0], np.array([0, 2]), np.array([0.25, 0.75]))
    frame = sizer.decisions_frame()
    assert list(frame["symbol"]) == ["A", "C"] and list(frame["final_weight"]) == [0.25, 0.75]
    assert list(frame["masks_used"]) == [0, 1] and list(frame["fallback"]) == [True, False]
    assert frame.loc[1, "scope"] == scope_key({"sector": "energy", "intent": "long"}, S.FULL_SCOPE_MASK)
    assert frame.loc[1, "scope"].startswith("book=unknown|sector=energy|")
    # record must follow the call it belongs to
    with pytest.raises(ValueError, match="record"):
        sizer.record(0, DATES[0], np.array([0, 2]), np.array([0.25, 0.75]))
    # the book's own holdings crowd like other positions (scaled by capital)
    sizer2 = S.EdgeSizer(
        book="small", pattern_key=PK, action_category=CAT, base_alloc=0.3, config=config, edge_before=timeline.before,
        candidate_scope=lambda i, d, j, r, c: _scope(j, r), other_exposure=lambda i, d: [],
        own_scope=lambda i, d, j, w: _scope(j, w), symbols=SYMBOLS, capital=0.5,
    )
    held = np.array([0.4, 0.0, 0.0, 0.0])  # A held; candidate B shares all of A's keys and pattern
    m, _ = sizer2(1, DATES[1], np.array([1]), np.array([1.0]), held)
    assert m[0] == pytest.approx(0.33, abs=1e-14)
    assert S.EdgeSizer.__init__.__kwdefaults__["capital"] == 1.0
    assert sizer2(2, DATES[2], np.array([], dtype=np.intp), np.array([]), held)[0].shape == (0,)
    assert len(sizer2.decisions_frame()) == 1
    assert list(S.EdgeSizer(
        book="b", pattern_key=PK, action_category=CAT, base_alloc=0.1, config=config, edge_before=timeline.before,
        candidate_scope=lambda *a: {}, other_exposure=lambda *a: [], own_scope=lambda *a: {}, symbols=SYMBOLS,
    ).decisions_frame().columns) == S.DECISION_COLUMNS


def test_default_masks_are_a_valid_ladder():
    # the full ladder runs end to end on a full scope
    scope = {name: "x" for name in DIMENSION_NAMES}
    table = {(m, scope_key(scope, m)): Stats(n=50, edge_raw=0.1) for m in DEFAULT_MASKS}
    result = S.pm_strength(PK, CAT, scope, dict_lookup(table), EdgeConfig())
    assert len(result.used) == len(DEFAULT_MASKS)
    assert result.pm_strength == pytest.approx(math.exp(0.1), rel=1e-13)
