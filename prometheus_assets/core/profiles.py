"""ProfileSnapshot: what each issuer looks like at each month end, point in time.

What a profile is
-----------------
One row per (issuer, month end) for every issuer with a trading symbol that day, with:

* **identifiers** - ``issuer_id, symbol, as_of_date, name, sector, industry``. When an issuer
  has several trading symbols (share classes) the one with the most prices in the trailing
  window represents it (ties: alphabetical).
* **structured fields from fundamentals** - ``market_cap, size (= log10 market cap), leverage,
  profitability, book_to_market`` from the issuer's **latest report whose ``available_date`` is
  on or before the as-of date** ("latest" = greatest ``period_end``, then greatest
  ``available_date``, so a restatement replaces the original once it is public). A report
  published one day after a month end is therefore *not* used at that month end.
  ``fundamentals_period_end`` / ``fundamentals_available_date`` say which report was used.
  Without a fundamentals frame, ``size`` falls back to log10 of the average daily dollar volume
  (``size_source = "dollar_volume"``) when volumes exist, else NaN. With a fundamentals frame,
  an issuer with no public report yet gets NaN (proxies are not mixed with market caps).
  ``quality = z(profitability) - z(leverage)`` with cross-sectional z-scores of that date.
* **price-derived traits**, always (NaN until ``structured_window // 2`` observations exist):
  ``beta`` to the market and annualised ``volatility`` over the trailing ``structured_window``
  sessions, ``max_drawdown`` (deepest fall below a running peak inside that window, a positive
  fraction), ``liquidity`` (log10 average dollar volume; NaN without volumes) and
  ``momentum_12_1`` (price 21 sessions ago / price 252 sessions ago - 1).
* **text** - ``text_ref`` is the issuer's description, or (without one) a sentence generated
  from name / sector / industry; ``text_source`` says which (``"source"`` / ``"generated"``).
* ``profile_embedding`` - a list of floats of fixed length
  ``len(STRUCTURED_FIELDS) + text_components``: the structured fields z-scored across the
  issuers of that date (clipped to +/- Z_CLIP, NaN -> 0), then a TF-IDF + TruncatedSVD embedding
  of ``text_ref`` **fit only on the texts of that date's issuers** (zero-padded when fewer
  components are possible). No downloaded models; deterministic (``random_state=0``).
* **regime traits** - for each label L in :data:`REGIME_LABELS`: ``avg_return_L`` (mean daily
  return on days labelled L, x 252) and ``beta_L`` (beta to the market on those days), over all
  history up to the as-of date; NaN with fewer than :data:`MIN_REGIME_DAYS` such days or without
  regime labels.
* ``risk_flags`` - a list of strings; thresholds are the module constants below.

Point in time
-------------
A snapshot at date d reads returns / prices / volumes / labels dated <= d, fundamentals with
``available_date <= d`` and the texts of issuers trading at d. Cross-sectional statistics
(z-scores, the text model) use only that date's issuers. Computing on history cut at t gives
bit-identical rows for every as-of date <= t (tested).

Pure numpy + pandas + scikit-learn; no Dagster, no I/O.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from prometheus_assets.core.regime import REGIME_LABELS

__all__ = [
    "PROFILE_COLUMNS",
    "REGIME_LABELS",
    "STRUCTURED_FIELDS",
    "generated_description",
    "month_end_dates",
    "profile_snapshots",
    "text_embeddings",
]

#: Regime labels with their own traits.
#: Numeric fields z-scored into the first part of ``profile_embedding``, in this order.
STRUCTURED_FIELDS: Final[tuple[str, ...]] = (
    "size",
    "leverage",
    "profitability",
    "book_to_market",
    "quality",
    "beta",
    "volatility",
    "max_drawdown",
    "liquidity",
    "momentum_12_1",
)

TRADING_DAYS_PER_YEAR: Final[int] = 252
#: Momentum 12-1: price ``MOMENTUM_SKIP`` sessions ago over price ``MOMENTUM_LOOKBACK`` sessions ago.
MOMENTUM_LOOKBACK: Final[int] = 252
MOMENTUM_SKIP: Final[int] = 21
#: Fewest labelled days for a regime trait (else NaN).
MIN_REGIME_DAYS: Final[int] = 20
#: Embedding z-scores are clipped to +/- this.
Z_CLIP: Final[float] = 5.0
#: Floor of the average dollar volume before log10 (a window without trades -> 0).
MIN_DOLLAR_VOLUME: Final[float] = 1.0

# ---- risk-flag thresholds -------------------------------------------------------------------
#: "high_leverage": leverage (debt / assets) at or above this.
HIGH_LEVERAGE: Final[float] = 0.70
#: "deep_drawdown": max drawdown in the window at or above this (0.40 = a 40 % fall).
DEEP_DRAWDOWN: Final[float] = 0.40
#: "high_beta": beta at or above this.
HIGH_BETA: Final[float] = 1.50
#: "high_volatility": annualised volatility at or above this.
HIGH_VOLATILITY: Final[float] = 0.60
#: "illiquid": log10 average dollar volume below this (6.0 = $1M a day).
ILLIQUID_LOG10_DOLLAR_VOLUME: Final[float] = 6.0
#: "unprofitable": profitability below this.
UNPROFITABLE: Final[float] = 0.0
#: "stale_fundamentals": the report used ends more than this many calendar days before the
#: as-of date; "missing_fundamentals": a fundamentals frame was given but no report is public.
STALE_FUNDAMENTALS_DAYS: Final[int] = 200

FUNDAMENTAL_FIELDS: Final[tuple[str, ...]] = ("market_cap", "leverage", "profitability", "book_to_market")

#: Output columns, in order.
PROFILE_COLUMNS: Final[list[str]] = [
    "issuer_id",
    "symbol",
    "as_of_date",
    "name",
    "sector",
    "industry",
    "fundamentals_period_end",
    "fundamentals_available_date",
    "market_cap",
    "size",
    "size_source",
    "leverage",
    "profitability",
    "book_to_market",
    "quality",
    "beta",
    "volatility",
    "max_drawdown",
    "liquidity",
    "momentum_12_1",
    "text_ref",
    "text_source",
    "profile_embedding",
    *(f"avg_return_{label}" for label in REGIME_LABELS),
    *(f"beta_{label}" for label in REGIME_LABELS),
    "risk_flags",
]


# --------------------------------------------------------------------------- month ends
def month_end_dates(sessions: pd.DatetimeIndex, complete_through: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """The last session of each calendar month, known to be final by ``complete_through``.

    A session m is a month end when it is the last session of its month in ``sessions``. Whether
    that is *final* is decided point in time:

    * if ``sessions`` continues past m into a later month, m is final (pass a full exchange
      calendar, including future sessions, to use this: calendars are known in advance);
    * if ``sessions`` stops at m, m counts only if no weekday of its month follows it (the rest
      of the month is a weekend). This is conservative: a month whose last days are holidays
      is dropped until a later session is known (e.g. data ending on the Thursday before a
      month-end Good Friday).

    Args:
        sessions: trading sessions (any order / resolution; timezones and times dropped).
        complete_through: the as-of date; month ends after it are not returned, and sessions
            after it are used only to know the calendar. ``None`` = the last session.

    Returns:
        Sorted ``DatetimeIndex`` (datetime64[ns]) of month-end sessions.
    """
    idx = pd.DatetimeIndex(sessions)
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    idx = pd.DatetimeIndex(np.unique(idx.normalize().values.astype("datetime64[ns]")))
    if len(idx) == 0:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    months = idx.to_period("M")
    is_last = np.append(months[1:] != months[:-1], True)
    ends = idx[is_last]
    last = idx[-1]
    remaining = pd.bdate_range(last + pd.Timedelta(days=1), last + pd.offsets.MonthEnd(0))
    if len(remaining) > 0:  # a weekday of the last month may still have a session
        ends = ends[:-1]
    if complete_through is not None:
        ends = ends[ends <= pd.Timestamp(complete_through).normalize()]
    return pd.DatetimeIndex(ends, dtype="datetime64[ns]")


# --------------------------------------------------------------------------- text
def generated_description(name: object, symbol: str, sector: object, industry: object) -> str:
    """A plain sentence for an issuer without a description, from its registry fields."""

    def ok(value: object) -> bool:
        return isinstance(value, str) and value.strip() != ""

    who = f"{name} ({symbol})" if ok(name) and name != symbol else str(symbol)
    if ok(sector) and ok(industry):
        return f"{who} is a company in the {industry} industry of the {sector} sector."
    if ok(sector):
        return f"{who} is a company in the {sector} sector."
    if ok(industry):
        return f"{who} is a company in the {industry} industry."
    return f"{who} is a listed company."


def text_embeddings(texts: list[str], n_components: int) -> np.ndarray:
    """TF-IDF + TruncatedSVD embedding of ``texts``, fit on exactly these texts.

    Returns an array (len(texts), n_components); columns beyond what the texts support
    (``min(n_docs, n_terms) - 1`` components) are zero. Deterministic (``random_state=0``).
    """
    out = np.zeros((len(texts), n_components))
    if len(texts) < 2 or n_components < 1:
        return out
    try:
        tfidf = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(texts)
    except ValueError:  # empty vocabulary (e.g. only stop words)
        return out
    k = min(n_components, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
    if k < 1:
        return out
    out[:, :k] = TruncatedSVD(n_components=k, random_state=0).fit_transform(tfidf)
    return out


# --------------------------------------------------------------------------- helpers
def _zscore(values: np.ndarray) -> np.ndarray:
    """Cross-sectional z-score (population sd) of finite values; NaN stays NaN; sd 0 -> 0."""
    finite = np.isfinite(values)
    out = np.full(values.shape, np.nan)
    if finite.sum() == 0:
        return out
    mean = values[finite].mean()
    sd = values[finite].std()
    out[finite] = (values[finite] - mean) / sd if sd > 0 else 0.0
    return out


def _aligned(frame: pd.DataFrame | None, index: pd.DatetimeIndex, symbols: pd.Index) -> np.ndarray | None:
    if frame is None:
        return None
    f = frame.copy()
    f.index = pd.DatetimeIndex(f.index).astype("datetime64[ns]")
    f.columns = f.columns.map(str)
    values = f.reindex(index=index, columns=symbols).to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isfinite(values), values, np.nan)


def _text_or_none(value: object) -> object:
    return value if isinstance(value, str) else None


def _regime_sums(
    r: np.ndarray, m: np.ndarray, labels: np.ndarray, positions: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Per label, cumulative sums up to each as-of position (rows) for every symbol (columns).

    ``n_a, s_a``: count and sum of the symbol's returns on labelled days; ``n_b, s_r, s_m, s_rm,
    s_mm``: the same on labelled days where the market return exists too (for the beta).
    Cumulative sums run forward in time, so values at a position never depend on later rows.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    has_r = np.isfinite(r)
    pair = has_r & np.isfinite(m)[:, None]
    r0 = np.where(has_r, r, 0.0)
    m0 = np.where(np.isfinite(m), m, 0.0)[:, None]
    for label in REGIME_LABELS:
        on = (labels == label)[:, None]
        a = has_r & on
        b = pair & on
        rb = np.where(b, r0, 0.0)
        mb = np.where(b, m0, 0.0)
        sums = {}
        for key, values in (
            ("n_a", a.astype(np.int64)),
            ("s_a", np.where(a, r0, 0.0)),
            ("n_b", b.astype(np.int64)),
            ("s_r", rb),
            ("s_m", mb),
            ("s_rm", rb * mb),
            ("s_mm", mb * mb),
        ):
            sums[key] = np.cumsum(values, axis=0)[positions]
        out[label] = sums
    return out


def _regime_traits(sums: dict[str, dict[str, np.ndarray]], row: int, cols: np.ndarray) -> dict[str, np.ndarray]:
    """``avg_return_L`` and ``beta_L`` for the symbols ``cols`` at as-of row ``row``."""
    out: dict[str, np.ndarray] = {}
    for label in REGIME_LABELS:
        s = {k: v[row, cols] for k, v in sums[label].items()}
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = s["s_a"] / s["n_a"] * TRADING_DAYS_PER_YEAR
            n = s["n_b"]
            cov = s["s_rm"] - s["s_r"] * s["s_m"] / n
            var = s["s_mm"] - s["s_m"] * s["s_m"] / n
            beta = np.where(var > 0, cov / var, np.nan)
        out[f"avg_return_{label}"] = np.where(s["n_a"] >= MIN_REGIME_DAYS, avg, np.nan)
        out[f"beta_{label}"] = np.where(n >= MIN_REGIME_DAYS, beta, np.nan)
    return out


def _price_traits(
    rw: np.ndarray, mw: np.ndarray, pw: np.ndarray, dvw: np.ndarray | None, window: int
) -> dict[str, np.ndarray]:
    """Trailing-window traits from the window's rows (sessions x symbols) of returns, market
    returns, prices and dollar volumes; ``window`` is the nominal length (sets the minimum count)."""
    min_obs = max(2, window // 2)
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        # beta on days where both the symbol and the market have a return
        both = np.isfinite(rw) & np.isfinite(mw)[:, None]
        n = both.sum(axis=0)
        r0 = np.where(both, rw, 0.0)
        m0 = np.where(both, mw[:, None], 0.0)
        mean_r = r0.sum(axis=0) / n
        mean_m = m0.sum(axis=0) / n
        dr = np.where(both, r0 - mean_r, 0.0)
        dm = np.where(both, m0 - mean_m, 0.0)
        var_m = (dm * dm).sum(axis=0)
        beta = np.where(var_m > 0, (dr * dm).sum(axis=0) / var_m, np.nan)
        out["beta"] = np.where(n >= min_obs, beta, np.nan)
        # volatility of the symbol's own returns
        has_r = np.isfinite(rw)
        n_r = has_r.sum(axis=0)
        mean = np.where(has_r, rw, 0.0).sum(axis=0) / n_r
        ss = (np.where(has_r, rw - mean, 0.0) ** 2).sum(axis=0)
        vol = np.sqrt(ss / (n_r - 1)) * math.sqrt(TRADING_DAYS_PER_YEAR)
        out["volatility"] = np.where(n_r >= min_obs, vol, np.nan)
        # deepest fall below a running peak inside the window
        has_p = np.isfinite(pw)
        peak = np.fmax.accumulate(pw, axis=0)
        depth = np.where(has_p, 1.0 - pw / peak, -np.inf).max(axis=0) if len(pw) else np.full(pw.shape[1], np.nan)
        out["max_drawdown"] = np.where(has_p.sum(axis=0) >= min_obs, np.maximum(depth, 0.0), np.nan)
        # log10 average dollar volume
        if dvw is not None:
            dv = dvw
            has_dv = np.isfinite(dv)
            n_dv = has_dv.sum(axis=0)
            adv = np.where(has_dv, dv, 0.0).sum(axis=0) / n_dv
            out["liquidity"] = np.where(n_dv >= min_obs, np.log10(np.maximum(adv, MIN_DOLLAR_VOLUME)), np.nan)
        else:
            out["liquidity"] = np.full(pw.shape[1], np.nan)
    return out


def _risk_flags(frame: pd.DataFrame, has_fundamentals: bool) -> list[list[str]]:
    """The list of risk-flag names per row (thresholds: module constants)."""
    with np.errstate(invalid="ignore"):
        age = (frame["as_of_date"] - frame["fundamentals_period_end"]).dt.days.to_numpy(dtype=float, na_value=np.nan)
        checks = [
            ("high_leverage", frame["leverage"].to_numpy(dtype=float) >= HIGH_LEVERAGE),
            ("unprofitable", frame["profitability"].to_numpy(dtype=float) < UNPROFITABLE),
            ("deep_drawdown", frame["max_drawdown"].to_numpy(dtype=float) >= DEEP_DRAWDOWN),
            ("high_beta", frame["beta"].to_numpy(dtype=float) >= HIGH_BETA),
            ("high_volatility", frame["volatility"].to_numpy(dtype=float) >= HIGH_VOLATILITY),
            ("illiquid", frame["liquidity"].to_numpy(dtype=float) < ILLIQUID_LOG10_DOLLAR_VOLUME),
            ("stale_fundamentals", has_fundamentals & (age > STALE_FUNDAMENTALS_DAYS)),
            ("missing_fundamentals", has_fundamentals & np.isnan(age)),
        ]
    names = [name for name, _ in checks]
    matrix = np.column_stack([np.asarray(flag, dtype=bool) for _, flag in checks]) if len(frame) else np.zeros((0, len(checks)), dtype=bool)
    return [[names[j] for j in np.flatnonzero(row)] for row in matrix]


# --------------------------------------------------------------------------- snapshots
def profile_snapshots(
    as_of_dates: pd.DatetimeIndex | list,
    instruments: pd.DataFrame,
    returns: pd.DataFrame,
    market_returns: pd.Series,
    prices: pd.DataFrame,
    volumes: pd.DataFrame | None = None,
    fundamentals: pd.DataFrame | None = None,
    texts: pd.DataFrame | None = None,
    regime_labels: pd.Series | None = None,
    text_components: int = 8,
    structured_window: int = 252,
    closes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """ProfileSnapshots for every issuer trading on each of ``as_of_dates``.

    Args:
        as_of_dates: snapshot dates (e.g. :func:`month_end_dates`); each must be a date of
            ``returns.index``.
        instruments: registry with ``symbol, issuer_id`` and optionally ``name, sector,
            industry``. Only its symbols are profiled; a missing issuer_id is the symbol.
        returns: wide daily simple returns (dates x symbols; NaN where not trading).
        market_returns: the market's daily returns (index = dates).
        prices: wide (adjusted) prices like ``returns``. A symbol trades at d when its price is
            finite at d.
        volumes: wide share volumes, or ``None`` (liquidity NaN).
        fundamentals: ``issuer_id, symbol, period_end, available_date, market_cap, leverage,
            profitability, book_to_market``, or ``None``.
        texts: ``issuer_id, symbol, description``, or ``None`` (descriptions are generated).
        regime_labels: Series (index = dates) of labels in :data:`REGIME_LABELS`, or ``None``.
        text_components: width of the text part of ``profile_embedding``.
        structured_window: trailing sessions of the beta / volatility / drawdown / liquidity
            traits.
        closes: wide unadjusted closes like ``prices`` (default ``prices``): the dollar volume
            (liquidity, and the ``illiquid`` flag) is close × volume as traded that day; a
            back-adjusted price divides by every later split, which would leak it into earlier days.

    Returns:
        :data:`PROFILE_COLUMNS`, one row per (issuer_id, as_of_date), sorted by both.

    Raises:
        ValueError: an as-of date that is not a session of ``returns``, or bad sizes.
    """
    if text_components < 0 or structured_window < 2:
        raise ValueError("text_components must be >= 0 and structured_window >= 2")
    index = pd.DatetimeIndex(returns.index).astype("datetime64[ns]")
    if not index.is_monotonic_increasing or not index.is_unique:
        raise ValueError("returns.index must be sorted, unique dates")
    dates = pd.DatetimeIndex(np.unique(pd.DatetimeIndex(as_of_dates).values.astype("datetime64[ns]")))
    missing = dates.difference(index)
    if len(missing):
        raise ValueError(f"as_of_dates must be sessions of returns.index; not found: {list(missing[:5].date)}")

    registry = _registry(instruments)
    available = set(map(str, returns.columns)) | set(map(str, prices.columns))
    registry = registry[registry["symbol"].isin(available)].reset_index(drop=True)
    symbols = pd.Index(registry["symbol"], dtype=object)
    r = _aligned(returns, index, symbols)
    p = _aligned(prices, index, symbols)
    v = _aligned(volumes, index, symbols)
    dollar = None if v is None else v * (p if closes is None else _aligned(closes, index, symbols))
    m_series = market_returns.copy()
    m_series.index = pd.DatetimeIndex(m_series.index).astype("datetime64[ns]")
    m = m_series.reindex(index).to_numpy(dtype=float, na_value=np.nan)
    m = np.where(np.isfinite(m), m, np.nan)

    positions = index.get_indexer(dates)
    labels = np.full(len(index), None, dtype=object)
    if regime_labels is not None:
        lab = regime_labels.copy()
        lab.index = pd.DatetimeIndex(lab.index).astype("datetime64[ns]")
        lab = lab[~lab.index.duplicated(keep="last")]
        labels = lab.reindex(index).to_numpy(dtype=object)
    sums = _regime_sums(r, m, labels, positions)

    issuers, issuer_code = _issuer_codes(registry["issuer_id"])
    fund = _prepared_fundamentals(fundamentals, issuers)
    descriptions = _descriptions(texts)
    reg_text = {c: registry[c].to_numpy(dtype=object) for c in ("symbol", "name", "sector", "industry")}
    columns: dict[str, list[np.ndarray]] = {}
    cache: dict[tuple[str, ...], np.ndarray] = {}

    def add(name: str, values: np.ndarray) -> None:
        columns.setdefault(name, []).append(values)

    for i, (date, pos) in enumerate(zip(dates, positions)):
        trading = np.flatnonzero(np.isfinite(p[pos]))
        if len(trading) == 0:
            continue
        lo = max(0, pos - structured_window + 1)
        rows = slice(lo, pos + 1)
        # One symbol per issuer: most prices in the window, then alphabetical (= column order).
        counts = np.isfinite(p[rows][:, trading]).sum(axis=0)
        order = np.lexsort((trading, -counts, issuer_code[trading]))
        ranked = trading[order]
        first = np.append(True, issuer_code[ranked][1:] != issuer_code[ranked][:-1])
        cols = ranked[first]  # sorted by issuer_id
        n = len(cols)

        add("issuer_id", issuers[issuer_code[cols]])
        for c in ("symbol", "name", "sector", "industry"):
            add(c, reg_text[c][cols])
        add("as_of_date", np.full(n, date.to_datetime64()))

        traits = _price_traits(r[rows][:, cols], m[rows], p[rows][:, cols], None if dollar is None else dollar[rows][:, cols], structured_window)
        if pos >= MOMENTUM_LOOKBACK:  # momentum 12-1
            with np.errstate(invalid="ignore", divide="ignore"):
                traits["momentum_12_1"] = p[pos - MOMENTUM_SKIP, cols] / p[pos - MOMENTUM_LOOKBACK, cols] - 1.0
        else:
            traits["momentum_12_1"] = np.full(n, np.nan)
        fields = _latest_fundamentals(fund, date, issuer_code[cols], traits["liquidity"])
        fields.update(traits)
        fields["quality"] = _zscore(fields["profitability"]) - _zscore(fields["leverage"])
        for name, values in fields.items():
            add(name, values)

        refs = [descriptions.get(iss) for iss in issuers[issuer_code[cols]]]
        add("text_source", np.array(["source" if t is not None else "generated" for t in refs], dtype=object))
        text_ref = [
            t if t is not None else generated_description(nm, sym, sec, ind)
            for t, nm, sym, sec, ind in zip(refs, reg_text["name"][cols], reg_text["symbol"][cols], reg_text["sector"][cols], reg_text["industry"][cols])
        ]
        add("text_ref", np.array(text_ref, dtype=object))
        key = tuple(text_ref)
        if key not in cache:
            cache.clear()  # keep only the latest universe: consecutive months usually repeat it
            cache[key] = text_embeddings(text_ref, text_components)
        structured = np.column_stack([_zscore(fields[f]) for f in STRUCTURED_FIELDS])
        structured = np.nan_to_num(np.clip(structured, -Z_CLIP, Z_CLIP), nan=0.0)
        embedding = np.empty(n, dtype=object)
        embedding[:] = np.hstack([structured, cache[key]]).tolist()
        add("profile_embedding", embedding)

        for name, values in _regime_traits(sums, i, cols).items():
            add(name, values)

    if not columns:
        return _empty_profiles()
    data = {name: np.concatenate(parts) for name, parts in columns.items()}
    out = pd.DataFrame(
        {
            c: pd.Series(data[c], dtype=object) if data[c].dtype == object else pd.Series(data[c])
            for c in PROFILE_COLUMNS
            if c != "risk_flags"
        }
    )
    for c in ("as_of_date", "fundamentals_period_end", "fundamentals_available_date"):
        out[c] = out[c].astype("datetime64[ns]")
    out["risk_flags"] = pd.Series(_risk_flags(out, fundamentals is not None), dtype=object)
    return out


def _issuer_codes(issuer_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique issuer ids (object array) and each registry row's code into them."""
    codes, uniques = pd.factorize(issuer_ids.to_numpy(dtype=object), sort=True)
    return np.asarray(uniques, dtype=object), codes.astype(np.intp)


def _registry(instruments: pd.DataFrame) -> pd.DataFrame:
    """symbol / issuer_id / name / sector / industry as object columns, sorted by symbol."""
    reg = pd.DataFrame({"symbol": instruments["symbol"].map(str).astype(object)})
    for col in ("issuer_id", "name", "sector", "industry"):
        reg[col] = instruments[col].map(_text_or_none).astype(object) if col in instruments else None
    reg["issuer_id"] = [iss if iss is not None else sym for iss, sym in zip(reg["issuer_id"], reg["symbol"])]
    reg["issuer_id"] = reg["issuer_id"].astype(object)
    reg = reg.drop_duplicates("symbol", keep="last").sort_values("symbol", kind="stable").reset_index(drop=True)
    return reg[["symbol", "issuer_id", "name", "sector", "industry"]]


def _prepared_fundamentals(fundamentals: pd.DataFrame | None, issuers: np.ndarray) -> dict[str, np.ndarray] | None:
    """Fundamentals as arrays sorted by (issuer code, period_end, available_date); issuers not in
    the registry are dropped, and so are rows without a period end or an availability date (they
    cannot be placed in time: a missing period end sorted last and won as the "latest" report)."""
    if fundamentals is None:
        return None
    f = fundamentals[["issuer_id", "period_end", "available_date", *FUNDAMENTAL_FIELDS]].copy()
    f["code"] = pd.Index(issuers).get_indexer(f["issuer_id"].map(str).to_numpy(dtype=object))
    f = f[f["code"] >= 0]
    for col in ("period_end", "available_date"):
        f[col] = pd.to_datetime(f[col]).astype("datetime64[ns]")
    f = f.dropna(subset=["period_end", "available_date"])
    f = f.sort_values(["code", "period_end", "available_date"], kind="stable")
    out = {col: f[col].to_numpy(dtype=float) for col in FUNDAMENTAL_FIELDS}
    out["code"] = f["code"].to_numpy(dtype=np.intp)
    for col in ("period_end", "available_date"):
        out[col] = f[col].to_numpy(dtype="datetime64[ns]")
    return out


def _latest_fundamentals(fund: dict[str, np.ndarray] | None, date: pd.Timestamp, codes: np.ndarray, liquidity: np.ndarray) -> dict[str, np.ndarray]:
    """The latest public report (available_date <= date) for each issuer code, plus size."""
    n = len(codes)
    out: dict[str, np.ndarray] = {}
    if fund is None:
        out["fundamentals_period_end"] = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        out["fundamentals_available_date"] = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        for col in FUNDAMENTAL_FIELDS:
            out[col] = np.full(n, np.nan)
        out["size"] = liquidity.copy()  # log10 average dollar volume (NaN without volumes)
        out["size_source"] = np.where(np.isfinite(liquidity), "dollar_volume", None).astype(object)
        return out
    public = np.flatnonzero(fund["available_date"] <= date.to_datetime64())
    code = fund["code"][public]
    last = public[np.append(code[1:] != code[:-1], True)] if len(public) else public  # last row per issuer
    row_of = np.full(max(int(codes.max(initial=-1)), int(fund["code"].max(initial=-1))) + 1, -1, dtype=np.intp)
    row_of[fund["code"][last]] = last
    rows = row_of[codes]
    has = rows >= 0
    take = np.where(has, rows, 0)
    for col in ("period_end", "available_date"):
        values = fund[col][take] if len(fund[col]) else np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        out[f"fundamentals_{col}"] = np.where(has, values, np.datetime64("NaT"))
    for col in FUNDAMENTAL_FIELDS:
        values = fund[col][take] if len(fund[col]) else np.full(n, np.nan)
        out[col] = np.where(has, values, np.nan)
    cap = out["market_cap"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["size"] = np.where(cap > 0, np.log10(cap), np.nan)
    out["size_source"] = np.where(cap > 0, "market_cap", None).astype(object)
    return out


def _descriptions(texts: pd.DataFrame | None) -> dict[str, str]:
    """issuer_id -> description (the first non-empty one by symbol)."""
    if texts is None or len(texts) == 0:
        return {}
    t = texts[["issuer_id", "symbol", "description"]].copy()
    t["issuer_id"] = t["issuer_id"].map(str)
    t = t[t["description"].map(lambda x: isinstance(x, str) and x.strip() != "")]
    t = t.sort_values(["issuer_id", "symbol"], kind="stable").drop_duplicates("issuer_id")
    return dict(zip(t["issuer_id"], t["description"]))


def empty_profiles() -> pd.DataFrame:
    """The (typed) frame :func:`profile_snapshots` returns when no snapshot date has a trading issuer."""
    return _empty_profiles()


def _empty_profiles() -> pd.DataFrame:
    dtypes = {
        "as_of_date": "datetime64[ns]",
        "fundamentals_period_end": "datetime64[ns]",
        "fundamentals_available_date": "datetime64[ns]",
    }
    text_cols = {"issuer_id", "symbol", "name", "sector", "industry", "size_source", "text_ref", "text_source", "profile_embedding", "risk_flags"}
    return pd.DataFrame(
        {c: pd.Series(dtype=dtypes.get(c, object if c in text_cols else float)) for c in PROFILE_COLUMNS}
    )
