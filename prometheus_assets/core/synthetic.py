"""A seeded, self-contained synthetic equity market.

Why this exists
---------------
Prometheus needs a market it can build, test and demo end to end without licences, network
access or gigabytes of vendor files. :func:`generate_market` makes one from three inputs: the
trading ``sessions`` (normally NYSE sessions from ``exchange_calendars``), the number of assets
and a ``seed``. The same inputs always give the same frames, bit for bit.

The model in plain words
------------------------
Every stock's daily return is the sum of four pieces::

    r[t, i] = alpha[i]                              a small per-stock drift
            + beta[i]     * market[t]               the whole market moving
            + loading[i]  * sector[t, sector(i)]    its sector moving (e.g. Energy on an oil shock)
            + idio_vol[i] * noise[t, i]             news about this company only

* **The market** follows a *regime-switching* model. A hidden 3-state Markov chain
  (``calm`` / ``volatile`` / ``crash``) decides each day which distribution the market return
  is drawn from: calm days drift up quietly, volatile days swing more, crash days fall hard.
  Calm spells last months, crash spells a week or two and are rare, so a 20-year history shows
  a handful of visible drawdowns. The chain and the market return are returned as ground truth
  in :attr:`SyntheticMarket.market_states`.
* **Sectors**: 11 GICS sectors with real names, each with 2-4 real-sounding industries.
  Each sector has its own daily factor; sector and company noise get louder in bad regimes.
* **Stocks**: a market beta around 0.5-1.6 (defensive sectors lower), a size (initial market
  cap), and fat-tailed company noise (Student-t, 4 degrees of freedom) whose volatility is
  higher for small companies.
* **Prices**: ``close`` is a start price (10-200) compounded by ``(1 + r)``; there are no
  splits or dividends so ``adj_close == close``. ``open`` sits near the previous close,
  ``high`` / ``low`` bracket the day's open and close; ``volume`` grows with size and with the
  size of the day's move.
* **Listings**: most stocks trade from the first session; about 15 % list later and about
  10 % delist. A stock has bars only while it is listed.
* **Fundamentals**: each quarter-end a listed issuer reports market cap (price x shares),
  leverage, profitability and book-to-market, which drift slowly; the report becomes public
  30-60 calendar days later (``available_date``), which is what point-in-time code must use.
* **Descriptions**: a short English blurb per issuer built from its sector, industry, size
  and style (growth / value / blend), for text-embedding demos.

Prefix stability (no look-ahead by construction)
------------------------------------------------
Generating on ``sessions[:k]`` gives *exactly* the rows of the full generation up to
``sessions[k - 1]``. Three rules make this true:

1. every random component has its own child stream ``np.random.default_rng([seed, id])``;
2. everything that varies over time is drawn *time-major* (one row per day, in date order), so
   a shorter history consumes a prefix of the very same stream; the regime chain is simulated
   day by day from uniforms of shape ``(T,)``;
3. listing and delisting days are drawn as session *offsets* on a fixed horizon that does not
   depend on ``len(sessions)``; an event beyond the given sessions simply has not happened yet.

Consequences worth knowing:

* ``n_assets`` is the size of the *potential* universe. A stock whose listing offset lies
  beyond the given sessions does not exist yet and is absent from every frame, so a short
  span can have fewer instruments than ``n_assets``. Each sector keeps at least one
  incumbent listed from the first session to the end, so all 11 sectors are present whenever
  ``n_assets >= 11``.
* ``delisting_date`` is the first session on which the stock **no longer trades** (its last bar
  is the session before), ``NaT`` while it still trades on the last given session. Knowing
  a stock delists therefore never requires seeing a day beyond the cut.
* A quarter's ``period_end`` is its last session. When the given sessions stop inside a
  quarter, the last session closes the quarter only if every later weekday of that calendar
  quarter is a regular US exchange holiday; this is exact for NYSE sessions. (For plain
  business-day sessions it can differ only when the cut falls on the day before a Good Friday
  that ends a quarter.)
* ``available_date`` is ``period_end`` + lag, moved off weekends and regular US exchange
  holidays, then rolled to the next given session when it falls inside the span. Dates beyond
  the span are kept as computed, so they agree with longer generations on NYSE and on
  business-day sessions (barring unscheduled closures).

Pure numpy + pandas: no Dagster, no I/O, no network. 3,000 assets x 5,000 sessions generate in
a few seconds; the time-major work is done in chunks of days so memory stays near the size of
the output frames.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)

from prometheus_assets.core.schema import BAR_COLUMNS, FUNDAMENTAL_COLUMNS, INSTRUMENT_COLUMNS

__all__ = [
    "MARKET_STATES",
    "SECTORS",
    "SyntheticMarket",
    "SyntheticMarketParams",
    "generate_market",
]

#: Names of the market regimes, indexed by the integer state of the Markov chain.
MARKET_STATES: tuple[str, str, str] = ("calm", "volatile", "crash")
_CALM, _VOLATILE, _CRASH = 0, 1, 2

INSTRUMENT_OUTPUT_COLUMNS: list[str] = INSTRUMENT_COLUMNS + ["listing_date", "delisting_date"]
DESCRIPTION_COLUMNS: list[str] = ["issuer_id", "symbol", "description"]
MARKET_STATE_COLUMNS: list[str] = ["date", "state", "market_return"]


# --------------------------------------------------------------------------- sectors
@dataclass(frozen=True)
class _Sector:
    name: str
    weight: float  # share of the universe (after one incumbent per sector)
    beta: float  # typical market beta of the sector
    leverage: float  # typical debt / assets of the sector
    industries: tuple[tuple[str, str], ...]  # (industry, word used in company names)


#: The 11 GICS sectors with their industries. Weights sum to 1.
SECTORS: tuple[_Sector, ...] = (
    _Sector("Information Technology", 0.14, 1.20, 0.25, (
        ("Software", "Software"), ("Semiconductors", "Semiconductor"),
        ("Technology Hardware", "Devices"), ("IT Services", "Digital"))),
    _Sector("Health Care", 0.12, 0.85, 0.35, (
        ("Pharmaceuticals", "Pharma"), ("Biotechnology", "Biosciences"),
        ("Health Care Equipment", "Medical"), ("Health Care Providers", "Health"))),
    _Sector("Financials", 0.13, 1.10, 0.85, (
        ("Banks", "Bancorp"), ("Insurance", "Insurance"),
        ("Capital Markets", "Capital"), ("Consumer Finance", "Financial"))),
    _Sector("Consumer Discretionary", 0.10, 1.15, 0.45, (
        ("Specialty Retail", "Retail"), ("Automobiles", "Motors"),
        ("Hotels, Restaurants & Leisure", "Hospitality"), ("Textiles & Apparel", "Apparel"))),
    _Sector("Communication Services", 0.05, 1.00, 0.45, (
        ("Interactive Media", "Media"), ("Telecommunication Services", "Telecom"),
        ("Entertainment", "Entertainment"))),
    _Sector("Industrials", 0.14, 1.05, 0.45, (
        ("Aerospace & Defense", "Aerospace"), ("Machinery", "Machinery"),
        ("Transportation", "Logistics"), ("Building Products", "Building Systems"))),
    _Sector("Consumer Staples", 0.06, 0.70, 0.45, (
        ("Food Products", "Foods"), ("Beverages", "Beverage"), ("Household Products", "Household"))),
    _Sector("Energy", 0.06, 1.10, 0.45, (
        ("Oil, Gas & Consumable Fuels", "Petroleum"), ("Energy Equipment & Services", "Energy Services"))),
    _Sector("Utilities", 0.04, 0.55, 0.60, (
        ("Electric Utilities", "Power"), ("Gas Utilities", "Gas"), ("Water Utilities", "Water"))),
    _Sector("Real Estate", 0.07, 0.90, 0.55, (
        ("Equity REITs", "Realty"), ("Real Estate Management & Development", "Properties"))),
    _Sector("Materials", 0.09, 1.05, 0.45, (
        ("Chemicals", "Chemical"), ("Metals & Mining", "Mining"),
        ("Construction Materials", "Materials"), ("Containers & Packaging", "Packaging"))),
)

_NAME_WORDS: tuple[str, ...] = (
    "Amberline", "Arbor", "Ashford", "Beacon", "Birchwood", "Bluewater", "Boulder", "Brightfield",
    "Cardinal", "Cascade", "Cedar", "Copperleaf", "Crescent", "Eastbrook", "Ember", "Fairhaven",
    "Falconer", "Foxglove", "Granite", "Greyhawk", "Harborview", "Highmark", "Ironwood", "Juniper",
    "Keystone", "Lakeshore", "Larkspur", "Meridian", "Northgate", "Oakridge", "Orchard", "Pinecrest",
    "Prairie", "Quarry", "Redwood", "Riverbend", "Sagebrush", "Silverline", "Stonebridge", "Summitview",
    "Tidewater", "Timberline", "Westbury", "Willowmere",
)
_NAME_SUFFIXES: tuple[str, ...] = ("Inc.", "Corp.", "Holdings", "Group", "Co.")
_ROMAN: tuple[str, ...] = ("", " II", " III", " IV", " V", " VI", " VII", " VIII", " IX", " X")

#: Size buckets by initial market cap (USD), largest first.
_SIZE_BUCKETS: tuple[tuple[float, str], ...] = ((2e11, "mega"), (1e10, "large"), (2e9, "mid"), (3e8, "small"), (0.0, "micro"))


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class SyntheticMarketParams:
    """Every numeric knob of the model. Daily figures are fractions (0.01 = 1 %).

    The defaults give a plausible US equity market: roughly 16 % annual market volatility,
    4-6 % annual drift, and around ten short crash episodes per 20 years.
    """

    # --- market regimes (order: calm, volatile, crash) ---------------------------------------
    #: Daily transition probabilities ``P[from][to]``; rows sum to 1.
    #: Expected spell lengths: calm ~150 days, volatile ~30 days, crash ~8 days.
    transition: tuple[tuple[float, float, float], ...] = (
        (0.9935, 0.0060, 0.0005),
        (0.0250, 0.9650, 0.0100),
        (0.0200, 0.1050, 0.8750),
    )
    #: Daily mean of the market return in each state.
    state_mean: tuple[float, float, float] = (0.0006, -0.0002, -0.0075)
    #: Daily volatility of the market return in each state.
    state_vol: tuple[float, float, float] = (0.007, 0.016, 0.035)
    #: Multiplier on sector-factor volatility in each state.
    sector_vol_multiplier: tuple[float, float, float] = (1.0, 1.5, 2.2)
    #: Multiplier on idiosyncratic volatility in each state.
    idio_vol_multiplier: tuple[float, float, float] = (1.0, 1.3, 1.8)

    # --- sectors and stocks --------------------------------------------------------------------
    #: Daily volatility of each sector factor in the calm state.
    sector_vol: float = 0.006
    #: Stocks' loadings on their sector factor are uniform on this range.
    sector_loading_range: tuple[float, float] = (0.7, 1.3)
    #: Per-stock beta = sector beta + N(0, beta_noise), clipped to beta_range.
    beta_noise: float = 0.15
    beta_range: tuple[float, float] = (0.5, 1.6)
    #: Spread (daily) of the per-stock drift alpha; each alpha also gets + idio_vol^2 / 2 so
    #: that a typical stock's price does not decay just because it is volatile.
    alpha_noise: float = 0.0002
    #: Degrees of freedom of the Student-t company noise (fat tails; must be > 2).
    idio_df: float = 4.0
    #: Daily idiosyncratic volatility of the largest and of the smallest companies; in between
    #: it falls linearly with log10(market cap).
    idio_vol_large: float = 0.010
    idio_vol_small: float = 0.028
    #: log10 of initial market cap (USD) ~ N(mean, sd), clipped to range.
    log10_cap_mean: float = 9.7
    log10_cap_sd: float = 0.75
    log10_cap_range: tuple[float, float] = (8.0, 12.4)
    #: Start prices are log-uniform on this range.
    start_price_range: tuple[float, float] = (10.0, 200.0)
    #: Daily simple returns are clipped to this range (keeps prices positive).
    return_clip: tuple[float, float] = (-0.6, 1.5)

    # --- bar shape -----------------------------------------------------------------------------
    #: Overnight gap = gap_share * r + gap_noise * idio_vol * N(0, 1), clipped to +/- 50 %.
    gap_share: float = 0.3
    gap_noise: float = 0.3
    #: high / low extend beyond max/min(open, close) by range_scale * idio_vol * |N(0, 1)|.
    range_scale: float = 0.5
    #: Daily turnover (fraction of shares outstanding) is log-uniform on this range.
    turnover_range: tuple[float, float] = (0.002, 0.012)
    #: Volume scales with (1 + volume_move_sensitivity * |r| / idio_vol).
    volume_move_sensitivity: float = 0.8
    #: Shape of the mean-one Gamma noise on volume (larger = less noisy).
    volume_noise_shape: float = 6.0

    # --- listings ------------------------------------------------------------------------------
    #: Fixed horizon (sessions) on which listing / delisting offsets are drawn. It does not
    #: depend on the sessions passed in; that is what keeps prefixes stable.
    listing_horizon: int = 5000
    #: Probability that a stock lists after the first session.
    late_listing_prob: float = 0.15
    #: Probability that a stock delists within the horizon after its listing.
    delisting_prob: float = 0.10
    #: Minimum number of sessions a stock trades before it can delist.
    min_listed_sessions: int = 21

    # --- fundamentals (quarterly) --------------------------------------------------------------
    #: Calendar days between period end and public availability (inclusive range).
    reporting_lag_days: tuple[int, int] = (30, 60)
    #: Profitability (annualised return on assets): per-issuer mean ~ N(mean, sd), AR(1) around it.
    profitability_mean: float = 0.06
    profitability_sd: float = 0.05
    profitability_persistence: float = 0.85
    profitability_noise: float = 0.015
    #: Leverage (debt / assets): per-issuer mean = sector level + N(0, sd), AR(1), clipped.
    leverage_sd: float = 0.10
    leverage_persistence: float = 0.95
    leverage_noise: float = 0.02
    leverage_range: tuple[float, float] = (0.0, 0.95)
    #: Initial book-to-market ~ lognormal(log(median), sd); book grows with retained profits.
    book_to_market_median: float = 0.5
    book_to_market_log_sd: float = 0.6
    earnings_retention: float = 0.6
    book_noise: float = 0.01

    def __post_init__(self) -> None:
        matrix = np.asarray(self.transition, dtype=float)
        if matrix.shape != (3, 3) or np.any(matrix < 0) or not np.allclose(matrix.sum(axis=1), 1.0):
            raise ValueError("transition must be a 3x3 matrix of probabilities whose rows sum to 1")
        if self.idio_df <= 2:
            raise ValueError(f"idio_df must be > 2 for a finite variance, got {self.idio_df}")
        if self.listing_horizon < 2 or self.min_listed_sessions < 1:
            raise ValueError("listing_horizon must be >= 2 and min_listed_sessions >= 1")
        lo, hi = self.reporting_lag_days
        if not 1 <= lo <= hi:
            raise ValueError(f"reporting_lag_days must satisfy 1 <= low <= high, got {self.reporting_lag_days}")


# --------------------------------------------------------------------------- output
@dataclass(frozen=True)
class SyntheticMarket:
    """The generated market. All frames are sorted and have a fresh ``RangeIndex``.

    Attributes:
        bars: long daily bars in :data:`~prometheus_assets.core.schema.BAR_COLUMNS` order, sorted
            by (date, symbol); rows only while the stock is listed.
        instruments: the registry (:data:`INSTRUMENT_COLUMNS` + ``listing_date``,
            ``delisting_date``), one row per stock that has listed within the sessions.
        fundamentals: quarterly rows in :data:`FUNDAMENTAL_COLUMNS` order, sorted by
            (period_end, symbol).
        descriptions: ``issuer_id``, ``symbol``, ``description`` (2-3 English sentences).
        market_states: ``date``, ``state`` (``calm`` / ``volatile`` / ``crash``) and
            ``market_return`` (the market factor's daily return), one row per session.
    """

    bars: pd.DataFrame
    instruments: pd.DataFrame
    fundamentals: pd.DataFrame
    descriptions: pd.DataFrame
    market_states: pd.DataFrame
    params: SyntheticMarketParams = field(default_factory=SyntheticMarketParams, repr=False, compare=False)


# --------------------------------------------------------------------------- random streams
# One child stream per random component. Never renumber: that would change every dataset.
_STREAM_ASSETS = 0  # per-stock static attributes, shape (N,)
_STREAM_LISTING = 1  # listing / delisting offsets, shape (N,)
_STREAM_REGIME = 2  # uniforms driving the Markov chain, shape (T,)
_STREAM_MARKET = 3  # market return shocks, shape (T,)
_STREAM_SECTOR = 4  # sector factor shocks, shape (T, 11)
_STREAM_IDIO = 5  # Student-t company shocks, shape (T, N)
_STREAM_GAP = 6  # overnight gap noise, shape (T, N)
_STREAM_HIGH = 7  # high extension, shape (T, N)
_STREAM_LOW = 8  # low extension, shape (T, N)
_STREAM_VOLUME = 9  # volume noise, shape (T, N)
_STREAM_PROFITABILITY = 10  # shape (Q, N)
_STREAM_LEVERAGE = 11  # shape (Q, N)
_STREAM_BOOK = 12  # shape (Q, N)
_STREAM_REPORT_LAG = 13  # shape (Q, N)
_STREAM_NAMES = 14  # company names, shape (N,)

#: Target number of (day, stock) cells processed per chunk of days.
_CHUNK_CELLS = 1 << 20


def _stream(seed: int, component: int) -> np.random.Generator:
    return np.random.default_rng([seed, component])


# --------------------------------------------------------------------------- calendar helpers
class _USExchangeHolidays(AbstractHolidayCalendar):
    """Regular NYSE full-day holidays (approximate: rules as of today, applied to all years)."""

    rules = [
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-01-01", observance=nearest_workday),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas Day", month=12, day=25, observance=nearest_workday),
    ]


def _holiday_days(start: np.datetime64, end: np.datetime64) -> np.ndarray:
    """Regular exchange holidays between two days (inclusive), as sorted ``datetime64[D]``."""
    if end < start:
        return np.empty(0, dtype="datetime64[D]")
    hol = _USExchangeHolidays().holidays(pd.Timestamp(start), pd.Timestamp(end))
    return np.asarray(hol.values.astype("datetime64[D]"))


def _normalise_sessions(sessions: pd.DatetimeIndex) -> np.ndarray:
    """Validated sessions as a sorted, unique ``datetime64[ns]`` array at midnight."""
    if sessions is None:
        raise ValueError("sessions must be a non-empty DatetimeIndex of trading days, got None")
    idx = pd.DatetimeIndex(sessions)
    if len(idx) == 0:
        raise ValueError("sessions is empty: pass at least one trading session")
    if idx.hasnans:
        raise ValueError("sessions contains NaT")
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    idx = idx.normalize()
    if not idx.is_monotonic_increasing or not idx.is_unique:
        raise ValueError("sessions must be strictly increasing (sorted, no duplicate days)")
    return np.asarray(idx.values.astype("datetime64[ns]"))


# --------------------------------------------------------------------------- generator
def generate_market(
    sessions: pd.DatetimeIndex,
    n_assets: int,
    seed: int,
    params: SyntheticMarketParams | None = None,
) -> SyntheticMarket:
    """Generate a synthetic equity market on ``sessions``.

    Args:
        sessions: trading days, increasing and unique (e.g. NYSE sessions from
            ``exchange_calendars``). Timezones and times of day are dropped.
        n_assets: size of the potential universe (>= 1). Stocks that would list after the last
            session are not in the output, so there may be fewer instruments than this.
        seed: non-negative integer; same (sessions, n_assets, seed, params) -> identical frames.
        params: model parameters; :class:`SyntheticMarketParams` defaults when omitted.

    Returns:
        A :class:`SyntheticMarket`. Generating on ``sessions[:k]`` returns exactly the rows of the
        full generation up to ``sessions[k - 1]`` (see the module docstring).

    Raises:
        ValueError: ``n_assets < 1``, a negative or non-integer seed, or empty / unsorted sessions.
    """
    if isinstance(n_assets, bool) or not isinstance(n_assets, (int, np.integer)):
        raise ValueError(f"n_assets must be an integer >= 1, got {n_assets!r}")
    if n_assets < 1:
        raise ValueError(f"n_assets must be >= 1, got {n_assets}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    days = _normalise_sessions(sessions)
    p = params if params is not None else SyntheticMarketParams()
    n, seed = int(n_assets), int(seed)

    assets = _draw_assets(n, seed, p)
    list_off, delist_off = _draw_listings(n, seed, p, assets.sector)
    states, market_ret = _simulate_market(len(days), seed, p)
    quarter_key, quarter_end_rows = _quarters(days)
    bars, asset_of_row, close_at_quarter_end = _simulate_bars(
        days, seed, p, assets, list_off, delist_off, states, market_ret, quarter_end_rows
    )

    width = max(4, len(str(n)))
    symbols = np.array([f"SYN{i + 1:0{width}d}" for i in range(n)], dtype=object)
    issuers = np.array([f"ISS{i + 1:0{width}d}" for i in range(n)], dtype=object)
    names = _company_names(n, seed, assets.sector, assets.industry)
    present = np.flatnonzero(list_off < len(days))  # stocks that have listed within the sessions

    bars.insert(1, "symbol", pd.Series(symbols[asset_of_row], dtype=object))
    assert list(bars.columns) == BAR_COLUMNS
    instruments = _instruments(days, present, symbols, issuers, names, assets, list_off, delist_off)
    fundamentals = _fundamentals(
        days, seed, p, assets, list_off, delist_off, quarter_key, quarter_end_rows, close_at_quarter_end, symbols, issuers
    )
    descriptions = _descriptions(present, symbols, issuers, names, assets)
    market_states = pd.DataFrame(
        {
            "date": pd.Series(days, dtype="datetime64[ns]"),
            "state": pd.Series(np.asarray(MARKET_STATES, dtype=object)[states], dtype=object),
            "market_return": market_ret,
        }
    )
    return SyntheticMarket(
        bars=bars,
        instruments=instruments,
        fundamentals=fundamentals,
        descriptions=descriptions,
        market_states=market_states,
        params=p,
    )


# --------------------------------------------------------------------------- static draws
@dataclass(frozen=True)
class _Assets:
    """Per-stock static attributes (arrays of length N)."""

    sector: np.ndarray  # int index into SECTORS
    industry: np.ndarray  # int index into SECTORS[sector].industries
    beta: np.ndarray
    sector_loading: np.ndarray
    alpha: np.ndarray
    idio_vol: np.ndarray  # daily, calm state
    start_price: np.ndarray
    shares: np.ndarray  # shares outstanding (constant: no corporate actions)
    initial_cap: np.ndarray
    turnover: np.ndarray  # daily fraction of shares traded
    initial_book_to_market: np.ndarray
    profitability_mean: np.ndarray
    leverage_mean: np.ndarray


def _draw_assets(n: int, seed: int, p: SyntheticMarketParams) -> _Assets:
    rng = _stream(seed, _STREAM_ASSETS)
    n_sectors = len(SECTORS)
    weights = np.array([s.weight for s in SECTORS])
    # One incumbent per sector first (so small universes still cover all sectors), the rest by weight.
    incumbents = np.arange(min(n, n_sectors))
    others = rng.choice(n_sectors, size=max(0, n - n_sectors), p=weights / weights.sum())
    sector = np.concatenate([incumbents, others])
    sector = sector[rng.permutation(n)]
    n_industries = np.array([len(SECTORS[s].industries) for s in range(n_sectors)])
    industry = np.floor(rng.random(n) * n_industries[sector]).astype(np.int64)

    sector_beta = np.array([s.beta for s in SECTORS])[sector]
    beta = np.clip(sector_beta + p.beta_noise * rng.standard_normal(n), *p.beta_range)
    loading = rng.uniform(*p.sector_loading_range, size=n)

    log_cap = np.clip(rng.normal(p.log10_cap_mean, p.log10_cap_sd, size=n), *p.log10_cap_range)
    lo_cap, hi_cap = p.log10_cap_range
    smallness = (hi_cap - log_cap) / (hi_cap - lo_cap)  # 0 for the largest, 1 for the smallest
    idio_vol = p.idio_vol_large + (p.idio_vol_small - p.idio_vol_large) * smallness
    alpha = p.alpha_noise * rng.standard_normal(n) + 0.5 * idio_vol**2

    lo_px, hi_px = p.start_price_range
    start_price = np.round(np.exp(rng.uniform(math.log(lo_px), math.log(hi_px), size=n)), 2)
    initial_cap = 10.0**log_cap
    shares = np.round(initial_cap / start_price)
    lo_to, hi_to = p.turnover_range
    turnover = np.exp(rng.uniform(math.log(lo_to), math.log(hi_to), size=n))

    book_to_market = np.exp(math.log(p.book_to_market_median) + p.book_to_market_log_sd * rng.standard_normal(n))
    profitability_mean = p.profitability_mean + p.profitability_sd * rng.standard_normal(n)
    sector_leverage = np.array([s.leverage for s in SECTORS])[sector]
    leverage_mean = np.clip(sector_leverage + p.leverage_sd * rng.standard_normal(n), *p.leverage_range)
    return _Assets(
        sector=sector,
        industry=industry,
        beta=beta,
        sector_loading=loading,
        alpha=alpha,
        idio_vol=idio_vol,
        start_price=start_price,
        shares=shares,
        initial_cap=initial_cap,
        turnover=turnover,
        initial_book_to_market=book_to_market,
        profitability_mean=profitability_mean,
        leverage_mean=leverage_mean,
    )


def _draw_listings(n: int, seed: int, p: SyntheticMarketParams, sector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Listing offset and delisting offset (first session without a bar) per stock.

    Offsets are session indices on the fixed ``listing_horizon``; ``delist_off`` is a sentinel
    beyond any realistic session count for stocks that never delist.
    """
    rng = _stream(seed, _STREAM_LISTING)
    horizon = p.listing_horizon
    late = rng.random(n) < p.late_listing_prob
    late_offset = 1 + np.floor(rng.random(n) * (horizon - 1)).astype(np.int64)
    list_off = np.where(late, late_offset, 0)

    delists = rng.random(n) < p.delisting_prob
    life = p.min_listed_sessions + np.floor(rng.random(n) * max(1, horizon - p.min_listed_sessions)).astype(np.int64)
    never = np.iinfo(np.int64).max // 4
    delist_off = np.where(delists, list_off + life, never)

    # The first stock of each sector is an incumbent: listed from day one, never delisted.
    _, incumbents = np.unique(sector, return_index=True)
    list_off[incumbents] = 0
    delist_off[incumbents] = never
    return list_off, delist_off


def _simulate_market(t: int, seed: int, p: SyntheticMarketParams) -> tuple[np.ndarray, np.ndarray]:
    """Regime path (int states) and market factor returns, one per session, simulated day by day."""
    uniforms = _stream(seed, _STREAM_REGIME).random(t)
    cumulative = np.cumsum(np.asarray(p.transition, dtype=float), axis=1)
    cumulative[:, -1] = 1.0  # guard against rounding: every uniform maps to some state
    states = np.empty(t, dtype=np.int64)
    state = _CALM  # the day before the first session
    for day in range(t):
        state = int(np.searchsorted(cumulative[state], uniforms[day], side="right"))
        states[day] = state
    shocks = _stream(seed, _STREAM_MARKET).standard_normal(t)
    market_ret = np.asarray(p.state_mean)[states] + np.asarray(p.state_vol)[states] * shocks
    return states, market_ret


def _quarters(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quarter key per session (counted from the first session's quarter) and, per quarter
    key, the row of its last session (``-1`` if the quarter is not known to be complete)."""
    idx = pd.DatetimeIndex(days)
    absolute = idx.year.to_numpy() * 4 + (idx.month.to_numpy() - 1) // 3
    key = (absolute - absolute[0]).astype(np.int64)
    n_quarters = int(key[-1]) + 1
    end_rows = np.full(n_quarters, -1, dtype=np.int64)
    boundary = np.flatnonzero(key[1:] != key[:-1])  # last row of every quarter followed by another
    end_rows[key[boundary]] = boundary
    # The final session closes its quarter iff no later weekday of the quarter can be a session.
    last = pd.Timestamp(days[-1])
    quarter_last_day = (last + pd.offsets.QuarterEnd(0)).to_datetime64().astype("datetime64[D]")
    day_after = (last + pd.Timedelta(days=1)).to_datetime64().astype("datetime64[D]")
    holidays = _holiday_days(day_after, quarter_last_day)
    if np.busday_count(day_after, quarter_last_day + 1, holidays=holidays) == 0:
        end_rows[key[-1]] = len(days) - 1
    return key, end_rows


def _simulate_bars(
    days: np.ndarray,
    seed: int,
    p: SyntheticMarketParams,
    a: _Assets,
    list_off: np.ndarray,
    delist_off: np.ndarray,
    states: np.ndarray,
    market_ret: np.ndarray,
    quarter_end_rows: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Daily bars of listed stocks (without ``symbol``), the stock index of each bar, and the
    close of every stock at each quarter-end row.

    Works through the sessions in chunks of days; every time-major stream is consumed in date
    order, so results do not depend on the chunking and a shorter history is a prefix.
    """
    t_total, n = len(days), len(a.beta)
    chunk = max(1, _CHUNK_CELLS // n)
    rng_sector, rng_idio = _stream(seed, _STREAM_SECTOR), _stream(seed, _STREAM_IDIO)
    rng_gap, rng_high, rng_low = _stream(seed, _STREAM_GAP), _stream(seed, _STREAM_HIGH), _stream(seed, _STREAM_LOW)
    rng_volume = _stream(seed, _STREAM_VOLUME)

    idio_scale = a.idio_vol / math.sqrt(p.idio_df / (p.idio_df - 2.0))  # unit-variance Student-t
    sector_mult = np.asarray(p.sector_vol_multiplier)
    idio_mult = np.asarray(p.idio_vol_multiplier)
    base_volume = a.shares * a.turnover
    lo_r, hi_r = p.return_clip

    # Exact output size, so the float block can be filled in place without copies.
    rows_per_asset = np.clip(np.minimum(delist_off, t_total) - list_off, 0, None)
    n_rows = int(rows_per_asset.sum())
    values = np.empty((6, n_rows), dtype=np.float64)  # open, high, low, close, adj_close, volume
    day_of_row = np.empty(n_rows, dtype=np.int32)
    asset_of_row = np.empty(n_rows, dtype=np.int32)
    close_at_qe = np.full((len(quarter_end_rows), n), np.nan)
    qe_rows = quarter_end_rows[quarter_end_rows >= 0]
    qe_keys = np.flatnonzero(quarter_end_rows >= 0)

    prev_close = a.start_price.astype(np.float64).copy()
    filled = 0
    for start in range(0, t_total, chunk):
        stop = min(start + chunk, t_total)
        rows = stop - start
        t = np.arange(start, stop)[:, None]
        st = states[start:stop]

        sector_shock = rng_sector.standard_normal((rows, len(SECTORS))) * (p.sector_vol * sector_mult[st])[:, None]
        r = rng_idio.standard_t(p.idio_df, size=(rows, n))
        r *= idio_scale[None, :] * idio_mult[st][:, None]
        r += a.alpha[None, :]
        r += a.beta[None, :] * market_ret[start:stop, None]
        r += a.sector_loading[None, :] * sector_shock[:, a.sector]
        np.clip(r, lo_r, hi_r, out=r)

        listed = (t >= list_off[None, :]) & (t < delist_off[None, :])
        trading_after_listing_day = listed & (t > list_off[None, :])  # listing day closes at start price
        growth = np.where(trading_after_listing_day, 1.0 + r, 1.0)
        close = np.cumprod(np.vstack([prev_close[None, :], growth]), axis=0)  # exact day-by-day compounding
        opens_from = close[:-1]
        close = close[1:]
        prev_close = close[-1].copy()

        gap = p.gap_share * r + (p.gap_noise * a.idio_vol)[None, :] * rng_gap.standard_normal((rows, n))
        open_ = opens_from * (1.0 + np.clip(gap, -0.5, 0.5))
        range_vol = (p.range_scale * a.idio_vol)[None, :] * idio_mult[st][:, None]
        high = np.maximum(open_, close) * (1.0 + range_vol * np.abs(rng_high.standard_normal((rows, n))))
        low = np.minimum(open_, close) * np.maximum(1.0 - range_vol * np.abs(rng_low.standard_normal((rows, n))), 0.2)
        noise = rng_volume.gamma(p.volume_noise_shape, 1.0 / p.volume_noise_shape, size=(rows, n))
        volume = base_volume[None, :] * (1.0 + p.volume_move_sensitivity * np.abs(r) / a.idio_vol[None, :]) * noise
        volume = np.maximum(np.rint(volume), 1.0)

        in_chunk = (qe_rows >= start) & (qe_rows < stop)
        close_at_qe[qe_keys[in_chunk]] = close[qe_rows[in_chunk] - start]

        flat = np.flatnonzero(listed)  # row-major: by day, then by stock
        end = filled + len(flat)
        for target, source in enumerate((open_, high, low, close, close, volume)):
            values[target, filled:end] = source.ravel()[flat]
        day_of_row[filled:end] = start + flat // n
        asset_of_row[filled:end] = flat % n
        filled = end
    assert filled == n_rows

    frame = pd.DataFrame(values.T, columns=["open", "high", "low", "close", "adj_close", "volume"], copy=False)
    frame.insert(0, "date", pd.Series(days[day_of_row], dtype="datetime64[ns]"))
    return frame, asset_of_row, close_at_qe


# --------------------------------------------------------------------------- registry & text
def _company_names(n: int, seed: int, sector: np.ndarray, industry: np.ndarray) -> list[str]:
    rng = _stream(seed, _STREAM_NAMES)
    word = rng.integers(0, len(_NAME_WORDS), size=n)
    suffix = rng.integers(0, len(_NAME_SUFFIXES), size=n)
    seen: Counter[str] = Counter()
    names = []
    for i in range(n):
        base = f"{_NAME_WORDS[word[i]]} {SECTORS[sector[i]].industries[industry[i]][1]} {_NAME_SUFFIXES[suffix[i]]}"
        seen[base] += 1
        k = seen[base]
        names.append(base + (_ROMAN[k - 1] if k <= len(_ROMAN) else f" {k}"))
    return names


def _size_word(cap: float) -> str:
    return next(word for floor, word in _SIZE_BUCKETS if cap >= floor)


def _style_word(book_to_market: float) -> str:
    if book_to_market >= 0.8:
        return "value"
    if book_to_market <= 0.3:
        return "growth"
    return "blend"


def _instruments(
    days: np.ndarray,
    present: np.ndarray,
    symbols: np.ndarray,
    issuers: np.ndarray,
    names: list[str],
    a: _Assets,
    list_off: np.ndarray,
    delist_off: np.ndarray,
) -> pd.DataFrame:
    t_total = len(days)
    delist = delist_off[present]
    delisting = np.full(len(present), np.datetime64("NaT"), dtype="datetime64[ns]")
    inside = delist < t_total
    delisting[inside] = days[delist[inside]]

    def text(values) -> pd.Series:
        return pd.Series(list(values), dtype=object)

    frame = pd.DataFrame(
        {
            "symbol": text(symbols[present]),
            "issuer_id": text(issuers[present]),
            "name": text(names[i] for i in present),
            "sector": text(SECTORS[a.sector[i]].name for i in present),
            "industry": text(SECTORS[a.sector[i]].industries[a.industry[i]][0] for i in present),
            "currency": text(["USD"] * len(present)),
            "exchange": text(["XNYS"] * len(present)),
            "asset_class": text(["equity"] * len(present)),
            "listing_date": pd.Series(days[list_off[present]], dtype="datetime64[ns]"),
            "delisting_date": pd.Series(delisting, dtype="datetime64[ns]"),
        }
    )
    return frame[INSTRUMENT_OUTPUT_COLUMNS]


def _descriptions(present: np.ndarray, symbols: np.ndarray, issuers: np.ndarray, names: list[str], a: _Assets) -> pd.DataFrame:
    style_sentence = {
        "growth": "Investors treat it as a growth stock: the market values it well above its book value.",
        "value": "Investors treat it as a value stock: it trades at a modest multiple of its book value.",
        "blend": "Its valuation sits between growth and value peers.",
    }
    texts = []
    for i in present:
        sector = SECTORS[a.sector[i]]
        industry = sector.industries[a.industry[i]][0]
        size = _size_word(a.initial_cap[i])
        if a.beta[i] >= 1.15:
            risk = "Its shares tend to move more than the broad market."
        elif a.beta[i] <= 0.85:
            risk = "Its shares tend to move less than the broad market."
        else:
            risk = "Its shares tend to move roughly in line with the broad market."
        texts.append(
            f"{names[i]} ({symbols[i]}) is a {size}-cap {sector.name} company in the {industry} industry. "
            f"{style_sentence[_style_word(a.initial_book_to_market[i])]} {risk}"
        )
    return pd.DataFrame(
        {
            "issuer_id": pd.Series(issuers[present], dtype=object),
            "symbol": pd.Series(symbols[present], dtype=object),
            "description": pd.Series(texts, dtype=object),
        }
    )


# --------------------------------------------------------------------------- fundamentals
def _fundamentals(
    days: np.ndarray,
    seed: int,
    p: SyntheticMarketParams,
    a: _Assets,
    list_off: np.ndarray,
    delist_off: np.ndarray,
    quarter_key: np.ndarray,
    quarter_end_rows: np.ndarray,
    close_at_qe: np.ndarray,
    symbols: np.ndarray,
    issuers: np.ndarray,
) -> pd.DataFrame:
    """Quarterly point-in-time fundamentals, simulated for every stock and every quarter key.

    State is simulated for all stocks in all quarters (listed or not) so each quarter consumes
    one row of every stream; rows are emitted only for complete quarters in which the stock is
    listed on the quarter's last session.
    """
    n_quarters, n = close_at_qe.shape
    prof_shocks = _stream(seed, _STREAM_PROFITABILITY).standard_normal((n_quarters, n))
    lev_shocks = _stream(seed, _STREAM_LEVERAGE).standard_normal((n_quarters, n))
    book_shocks = _stream(seed, _STREAM_BOOK).standard_normal((n_quarters, n))
    lag_lo, lag_hi = p.reporting_lag_days
    lags = _stream(seed, _STREAM_REPORT_LAG).integers(lag_lo, lag_hi + 1, size=(n_quarters, n))

    # Last session row up to and including each quarter key (for "listed yet?" tests).
    last_row_of_key = np.full(n_quarters, -1, dtype=np.int64)
    last_row_of_key[quarter_key] = np.arange(len(quarter_key))  # repeated keys: the last row wins
    last_row_of_key = np.maximum.accumulate(last_row_of_key)

    prof_sd = p.profitability_noise / math.sqrt(1.0 - p.profitability_persistence**2)
    lev_sd = p.leverage_noise / math.sqrt(1.0 - p.leverage_persistence**2)
    profitability = np.empty((n_quarters, n))
    leverage = np.empty((n_quarters, n))
    book = np.empty((n_quarters, n))
    initial_book = a.initial_book_to_market * a.start_price * a.shares
    for q in range(n_quarters):
        if q == 0:
            prof = a.profitability_mean + prof_sd * prof_shocks[0]
            lev = a.leverage_mean + lev_sd * lev_shocks[0]
            bk = initial_book.copy()
        else:
            prof = a.profitability_mean + p.profitability_persistence * (profitability[q - 1] - a.profitability_mean)
            prof = prof + p.profitability_noise * prof_shocks[q]
            lev = a.leverage_mean + p.leverage_persistence * (leverage[q - 1] - a.leverage_mean)
            lev = lev + p.leverage_noise * lev_shocks[q]
            growth = 1.0 + p.earnings_retention * profitability[q - 1] / 4.0 + p.book_noise * book_shocks[q]
            bk = book[q - 1] * np.maximum(growth, 0.5)
        not_listed_yet = list_off > last_row_of_key[q]
        bk = np.where(not_listed_yet, initial_book, bk)  # book starts at listing
        profitability[q] = prof
        leverage[q] = np.clip(lev, *p.leverage_range)
        book[q] = bk

    keys = np.flatnonzero(quarter_end_rows >= 0)
    rows_qe = quarter_end_rows[keys]
    listed = (rows_qe[:, None] >= list_off[None, :]) & (rows_qe[:, None] < delist_off[None, :])
    q_idx, asset = np.nonzero(listed)  # sorted by quarter, then stock
    q_key = keys[q_idx]
    row = rows_qe[q_idx]
    market_cap = close_at_qe[q_key, asset] * a.shares[asset]
    period_end = days[row]
    available = _available_dates(days, period_end, lags[q_key, asset])
    return pd.DataFrame(
        {
            "issuer_id": pd.Series(issuers[asset], dtype=object),
            "symbol": pd.Series(symbols[asset], dtype=object),
            "period_end": pd.Series(period_end, dtype="datetime64[ns]"),
            "available_date": pd.Series(available, dtype="datetime64[ns]"),
            "market_cap": market_cap,
            "leverage": leverage[q_key, asset],
            "profitability": profitability[q_key, asset],
            "book_to_market": book[q_key, asset] / market_cap,
        }
    )[FUNDAMENTAL_COLUMNS]


def _available_dates(days: np.ndarray, period_end: np.ndarray, lag_days: np.ndarray) -> np.ndarray:
    """``period_end + lag`` moved to the next publication day (weekday, not a regular exchange
    holiday), then rolled to the next session when inside the span; kept as is beyond it."""
    if len(period_end) == 0:
        return np.empty(0, dtype="datetime64[ns]")
    raw = period_end.astype("datetime64[D]") + lag_days.astype("timedelta64[D]")
    first, last = raw.min(), raw.max() + 14
    holidays = _holiday_days(first, last)
    published = np.busday_offset(raw, 0, roll="forward", holidays=holidays).astype("datetime64[ns]")
    pos = np.searchsorted(days, published, side="left")
    inside = pos < len(days)
    return np.where(inside, days[np.minimum(pos, len(days) - 1)], published)
