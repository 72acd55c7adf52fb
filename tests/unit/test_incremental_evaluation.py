"""Incremental assessment state: per-date rows computed on windows equal the whole-history computation, bit for bit."""

import numpy as np
import pandas as pd
import pytest

from prometheus_assets.core import assessment as A
from prometheus_assets.core import strategies as S
from prometheus_assets.core import strategy_ic_dates as D
from prometheus_assets.core.synthetic import generate_market

H = 20


@pytest.fixture(scope="module")
def market():
    """Three years of a synthetic market with listings / delistings (the symbol set changes over time)."""
    sessions = pd.bdate_range("2015-01-02", "2017-12-29").astype("datetime64[ns]")
    m = generate_market(sessions, 25, 4)
    px = m.bars.pivot(index="date", columns="symbol", values="adj_close").sort_index()
    px.index = pd.DatetimeIndex(px.index).astype("datetime64[ns]")
    returns = px.pct_change(fill_method=None)
    return px, returns


def _years(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    return frame[(frame.index.year >= first) & (frame.index.year <= last)]


def test_compensated_group_mean_is_pandas_kahan_and_depends_on_its_own_date_only():
    rng = np.random.default_rng(0)
    dates = np.repeat(pd.bdate_range("2020-01-01", periods=300).to_numpy(), 17)
    values = pd.Series(rng.standard_normal(len(dates)) * 10.0 ** rng.integers(-6, 3, len(dates)))
    keys = pd.Series(dates)
    with_nan = values.copy()
    with_nan.iloc[-5:] = np.nan  # pandas then takes its Kahan kernel for every group
    expected = with_nan.groupby(keys).transform("mean").to_numpy()
    got = A.compensated_group_mean(with_nan, keys).to_numpy()
    np.testing.assert_array_equal(got, expected)
    # a date's mean does not depend on other dates: dropping the NaN rows (pandas would switch to
    # np.add.reduceat for the NaN-free sorted column) or the first half of the dates changes nothing
    head = slice(0, len(values) - 17)
    np.testing.assert_array_equal(A.compensated_group_mean(values.iloc[head], keys.iloc[head]).to_numpy(), got[head])
    tail = slice(150 * 17, len(values) - 17)
    np.testing.assert_array_equal(A.compensated_group_mean(values.iloc[tail], keys.iloc[tail]).to_numpy(), got[tail])


def test_targets_of_a_window_of_years_equal_the_whole_history_targets(market):
    _, returns = market
    stacked = returns.rename_axis(index="as_of_date", columns="symbol").stack().reset_index()[["as_of_date", "symbol"]].assign(horizon=H)
    whole = A.attach_targets(stacked, returns, H)
    window = stacked[stacked["as_of_date"].dt.year == 2015].reset_index(drop=True)
    part = A.attach_targets(window, _years(returns, 2015, 2016), H)
    pd.testing.assert_frame_equal(part, whole[whole["as_of_date"].dt.year == 2015].reset_index(drop=True), check_exact=True)


def test_strategy_ics_kept_per_year_summarise_to_the_whole_history_tables(market):
    px, returns = market
    signals = S.all_signals(px)
    years = sorted(set(returns.index.year))
    blocks = []
    for y in years:
        sig = signals[pd.DatetimeIndex(signals["date"]).year == y]
        blocks.append(D.strategy_ic_by_date(sig, _years(returns, y, y + 1), pd.Timestamp(f"{y}-01-01"), pd.Timestamp(f"{y}-12-31")))
    by_date = pd.concat(blocks, ignore_index=True)
    assert by_date["date"].dt.year.nunique() == len(years) and by_date[D.horizon_column(60)].notna().sum() > 100
    table, decay = D.strategy_tables(by_date)
    pd.testing.assert_frame_equal(table, S.strategy_ic(signals, returns), check_exact=True)
    pd.testing.assert_frame_equal(decay, S.alpha_decay(signals, returns), check_exact=True)


def test_assessment_rows_kept_per_year_summarise_to_the_whole_history_evaluation(market):
    _, returns = market
    rng = np.random.default_rng(1)
    stacked = returns.rename_axis(index="as_of_date", columns="symbol").stack().reset_index()[["as_of_date", "symbol"]].assign(horizon=H)
    scores = pd.concat([stacked.assign(kind=kind, model_id=kind, score=rng.standard_normal(len(stacked))) for kind in ("hgb", "ridge")], ignore_index=True)
    scores = scores[scores["as_of_date"] >= "2015-03-02"].sort_values(["horizon", "kind", "as_of_date", "symbol"], kind="stable").reset_index(drop=True)
    labels = np.array(["CRISIS", "RISK_OFF", "CARRY", "NEUTRAL"], dtype=object)
    sessions = returns.index[returns.index >= "2015-01-20"]
    regimes = pd.DataFrame({"as_of_date": sessions, "regime_label": labels[(np.arange(len(sessions)) // 40) % 4]})

    whole = A.evaluate(scores, A.attach_targets(stacked, returns, H), regimes)

    rows = []
    for y in (2015, 2016, 2017):
        # the block's inputs: scores and regimes from the previous year on, dataset rows of the
        # year, returns of the year and the next (the forward windows)
        sc = scores[(scores["as_of_date"].dt.year >= y - 1) & (scores["as_of_date"].dt.year <= y)]
        rg = regimes[(regimes["as_of_date"].dt.year >= y - 1) & (regimes["as_of_date"].dt.year <= y)]
        data = A.attach_targets(stacked[stacked["as_of_date"].dt.year == y].reset_index(drop=True), _years(returns, y, y + 1), H)
        daily = A.evaluate_daily(sc, data, rg)
        rows.append(daily[daily["as_of_date"].dt.year == y])
    kept = pd.concat(rows, ignore_index=True).sort_values(["horizon", "kind", "as_of_date"], kind="stable").reset_index(drop=True)
    incremental = A.summarise_daily(kept)
    for name in ("overall", "by_regime", "by_period", "daily"):
        pd.testing.assert_frame_equal(incremental[name], whole[name], check_exact=True, obj=name)
    assert whole["daily"]["top_turnover"].notna().sum() > 500  # turnover across the year boundaries is covered


def test_training_inputs_are_the_files_before_the_fit_date_and_bind_the_fingerprint():
    fit = pd.Timestamp("2016-01-04")
    dataset = [(2014, ("d", "2014.parquet", "a")), (2015, ("d", "2015.parquet", "b")), (2016, ("d", "2016.parquet", "c")), (None, ("d", "empty.parquet", "e"))]
    returns = [(2015, pd.Timestamp("2015-01-02"), ("r", "2015.parquet", "f")),
               (2016, pd.Timestamp("2016-01-04"), ("r", "2016.parquet", "g"))]
    used = A.inputs_before_fit(fit, dataset, returns)
    assert sorted(used) == sorted([("d", "2014.parquet", "a"), ("d", "2015.parquet", "b"), ("d", "empty.parquet", "e"), ("r", "2015.parquet", "f")])
    # a returns session of the fit's year before the fit date makes that file an input
    early = [(2016, pd.Timestamp("2016-01-01"), ("r", "2016.parquet", "g"))]
    assert ("r", "2016.parquet", "g") in A.inputs_before_fit(fit, dataset, early)
    header = A.walk_forward_header("hgb", 5, ["px_ret_5"])
    digest = A.training_inputs_digest("f" * 64, header, used)
    assert digest == A.training_inputs_digest("f" * 64, header, list(reversed(used)))
    assert digest != A.training_inputs_digest("0" * 64, header, used)  # an edited fingerprint is noticed
    assert digest != A.training_inputs_digest("f" * 64, header, [*used[:-1], ("r", "2015.parquet", "changed")])
    assert digest != A.training_inputs_digest("f" * 64, A.walk_forward_header("hgb", 5, ["px_ret_5", "px_ret_21"]), used)


# ---- block tails (evaluation_state.Tail): a block extended by new days equals the block recomputed whole ----
TAIL_SESSIONS = 3


def _tail_frames(days: pd.DatetimeIndex, groups=("a", "b"), seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    returns = pd.DataFrame({"date": np.repeat(days, 2), "symbol": np.tile(["X", "Y"], len(days)), "return": rng.normal(0, 0.01, 2 * len(days))})
    signals = pd.DataFrame({"date": np.repeat(days, len(groups)), "group": np.tile(list(groups), len(days)), "score": rng.normal(0, 1, len(groups) * len(days))})
    return returns, signals


class _TailBlocks:
    """A block per year of per-(group, date) rows reading the signal of the date and the returns of the next
    TAIL_SESSIONS sessions (a forward window, like the assessment and strategy blocks), through refresh_blocks."""

    def __init__(self, store, state_dir: str):
        from prometheus_assets.assets import evaluation_state as E

        self.E, self.store = E, store
        self.blocks = E.BlockStore(store, state_dir, 1, {"s": ("date",)})
        self.calls: list[dict] = []

    def rows(self, year: int, since: pd.Timestamp | None) -> pd.DataFrame:
        returns = self.store.read("returns_daily")
        signals = self.store.read("signals")
        market = returns.groupby("date")["return"].mean()
        values = market.to_numpy()  # each date's sum of the next sessions on its own (a rolling sum's rounding depends on the history)
        forward = pd.Series([values[i + 1:i + 1 + TAIL_SESSIONS].sum() if i + 1 < len(values) else np.nan for i in range(len(values))],
                            index=market.index)
        rows = signals[signals["date"].dt.year == year].copy()
        if since is not None:
            rows = rows[rows["date"] >= since]
        rows["value"] = rows["score"] * rows["date"].map(forward).to_numpy()
        rows = rows.sort_values(["group", "date"], kind="stable")
        return rows[["group", "date", "value"]].reset_index(drop=True)

    def refresh(self):
        from prometheus_assets.assets.upstream_files import file_digests

        E = self.E
        listing = {t: file_digests(self.store, t) for t in ("returns_daily", "signals")}
        years = sorted({f.year for f in listing["returns_daily"] if f.year is not None})

        def inputs(section, year):
            return [[f.table, f.name, f.sha256] for t in ("returns_daily", "signals") for f in listing[t] if f.year == year]

        def compute(section, todo, reach, since):
            self.calls.append(dict(since))
            return {y: self.rows(y, since.get(y)) for y in todo}

        tail = E.Tail(listing, {"returns_daily": "date", "signals": "date"}, {"s": "date"}, {"s": ["group"]}, sessions=TAIL_SESSIONS, margin=1)
        out, recomputed = E.refresh_blocks(self.blocks, years, ("s",), listing["returns_daily"], inputs, compute, sessions=TAIL_SESSIONS, tail=tail)
        return out["s"], recomputed

    def block_bytes(self, year: int) -> bytes:
        return self.store.read_bytes(self.blocks.path("s", year))


def _scratch(store) -> dict[int, bytes]:
    """The blocks a state without any stored block computes, whole."""
    import uuid

    fresh = _TailBlocks(store, f"state/scratch-{uuid.uuid4().hex}")
    fresh.refresh()
    assert all(not call for call in fresh.calls)
    return {y: fresh.block_bytes(y) for y in (2019, 2020)}


def _write(store, returns, signals):
    store.write_dated("returns_daily", returns, pd.DatetimeIndex(returns["date"].unique()))
    store.write_dated("signals", signals, pd.DatetimeIndex(signals["date"].unique()))


def test_a_block_extended_by_new_days_is_the_block_recomputed_whole(tmp_path):
    from prometheus_assets.resources.storage import ParquetStore

    store = ParquetStore(str(tmp_path))
    days = pd.bdate_range("2019-11-01", "2020-07-15").astype("datetime64[ns]")
    returns, signals = _tail_frames(days)
    _write(store, *[f[f["date"] <= "2020-06-30"] for f in (returns, signals)])
    state = _TailBlocks(store, "state/tail")
    state.refresh()
    assert state.calls == [{}]  # no state: every block whole
    for day in days[days > "2020-06-30"]:  # day by day, as the EOD runs
        _write(store, *[f[f["date"] == day] for f in (returns, signals)])
        state.calls.clear()
        rows, recomputed = state.refresh()
        assert recomputed == 1 and len(state.calls) == 1
        since = state.calls[0][2020]  # extended: only the rows from 1 + 3 sessions before the new day
        assert since == days[days < day][-(TAIL_SESSIONS + 1)]
        assert {y: state.block_bytes(y) for y in (2019, 2020)} == _scratch(store)
    assert rows["date"].max() == days[-1] and len(rows) == 2 * len(days)


def test_a_block_is_recomputed_whole_when_an_older_row_changed_or_a_group_is_new(tmp_path):
    from prometheus_assets.resources.storage import ParquetStore

    store = ParquetStore(str(tmp_path))
    days = pd.bdate_range("2020-01-02", "2020-06-30").astype("datetime64[ns]")
    returns, signals = _tail_frames(days)
    _write(store, *[f[f["date"] < days[-3]] for f in (returns, signals)])
    state = _TailBlocks(store, "state/tail")
    state.refresh()
    # a new day, and an older signal re-materialized with another value: the old rows are not the recorded ones
    changed = signals[signals["date"] == days[40]].assign(score=7.0)
    _write(store, returns[returns["date"] == days[-3]], signals[signals["date"] == days[-3]])
    _write(store, returns[returns["date"] == days[40]], changed)
    state.calls.clear()
    state.refresh()
    assert state.calls == [{}] and state.block_bytes(2020) == _scratch(store)[2020]
    # a group that appears on the new day only: the old rows cannot be merged with it
    new_returns, new_signals = _tail_frames(days[-2:-1], groups=("a", "b", "c"), seed=5)
    _write(store, new_returns, new_signals)
    state.calls.clear()
    state.refresh()
    assert len(state.calls) == 2 and state.calls[0] and state.calls[1] == {}  # tried, refused, recomputed whole
    assert state.block_bytes(2020) == _scratch(store)[2020]
    # a day appended with nothing else changed extends again
    _write(store, *_tail_frames(days[-1:], groups=("a", "b", "c"), seed=6))
    state.calls.clear()
    state.refresh()
    assert len(state.calls) == 1 and state.calls[0] and state.block_bytes(2020) == _scratch(store)[2020]


def test_a_file_rewritten_since_the_listing_gets_no_prefix_mark(tmp_path):
    """The marks describe the bytes the listing (and the block's recorded inputs) name: a file another run rewrote
    in between gets none, so the next run recomputes the block whole instead of trusting rows it cannot vouch for."""
    import dataclasses

    from prometheus_assets.assets import evaluation_state as E
    from prometheus_assets.assets.upstream_files import file_digests
    from prometheus_assets.resources.storage import ParquetStore

    store = ParquetStore(str(tmp_path))
    _write(store, *_tail_frames(pd.bdate_range("2020-01-02", "2020-03-31").astype("datetime64[ns]")))
    listing = {t: file_digests(store, t) for t in ("returns_daily", "signals")}
    inputs = [[f.table, f.name, f.sha256] for t in listing for f in listing[t]]
    tail = E.Tail(listing, {"returns_daily": "date", "signals": "date"}, {"s": "date"}, {"s": ["group"]})
    assert set(tail.prefix(store, 2020, inputs)) == {"returns_daily/2020.parquet", "signals/2020.parquet"}
    stale = {**listing, "signals": [dataclasses.replace(f, sha256="0" * 64) for f in listing["signals"]]}
    assert set(E.Tail(stale, tail.date_columns, tail.block_dates, tail.groups).prefix(store, 2020, inputs)) == {"returns_daily/2020.parquet"}


def test_prefix_marks_cover_only_the_columns_the_blocks_read(tmp_path):
    """With ``columns``, an older row that changed only in a column no block reads (the signals' metadata text)
    keeps the block extendable; a change in a column it reads does not."""
    from prometheus_assets.assets import evaluation_state as E
    from prometheus_assets.assets.upstream_files import file_digests
    from prometheus_assets.resources.storage import ParquetStore

    store = ParquetStore(str(tmp_path))
    days = pd.bdate_range("2020-01-02", "2020-06-30").astype("datetime64[ns]")
    returns, signals = _tail_frames(days)
    signals = signals.assign(note="first")
    _write(store, returns[returns["date"] < days[-1]], signals[signals["date"] < days[-1]])

    def tail():
        listing = {t: file_digests(store, t) for t in ("returns_daily", "signals")}
        inputs = [[f.table, f.name, f.sha256] for t in listing for f in listing[t]]
        return E.Tail(listing, {"returns_daily": "date", "signals": "date"}, {"s": "date"}, {"s": ["group"]},
                      columns={"signals": ["group", "score"]}), inputs

    before, inputs = tail()
    old = {"inputs": inputs, "prefix": before.prefix(store, 2020, inputs)}
    _write(store, returns[returns["date"] == days[-1]], signals[signals["date"] == days[-1]])
    _write(store, returns[returns["date"] == days[10]], signals[signals["date"] == days[10]].assign(note="rewritten"))
    now, inputs = tail()
    assert now.since(store, 2020, old, inputs, now.listing["returns_daily"]) == days[-1 - 62]
    _write(store, returns[returns["date"] == days[10]], signals[signals["date"] == days[10]].assign(score=9.0))
    now, inputs = tail()
    assert now.since(store, 2020, old, inputs, now.listing["returns_daily"]) is None
