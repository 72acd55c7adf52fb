"""Regenerate the bad-input corpus in this directory (``python tests/data/bad/make_corpus.py``).

The files are committed; this script only documents (and can reproduce) how they were made. The
clean base history is four symbols of the project's synthetic generator (seed 5), renamed
AAA…DDD, over the 31 NYSE sessions 2023-11-15 → 2023-12-29. Every defect file is a delivery of
the *next* sessions (2024-01-02, the first session after the New Year holiday, and for the
multi-day cases up to 2024-01-08) with exactly one kind of defect injected into otherwise good
bars. See README.md for the file → defect → outcome table.
"""

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prometheus_assets.core import calendar
from prometheus_assets.core.synthetic import generate_market

HERE = Path(__file__).resolve().parent
SYMBOLS = {"SYN0001": "AAA", "SYN0002": "BBB", "SYN0003": "CCC", "SYN0004": "DDD"}
BASE_START, BASE_END = "2023-11-15", "2023-12-29"
DAY = "2024-01-02"  # the new session every defect file delivers
DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]
COLUMNS = ["date", "symbol", "open", "high", "low", "close", "volume"]


def bars() -> pd.DataFrame:
    sessions = calendar.trading_sessions(BASE_START, DAYS[-1])
    raw = generate_market(sessions, n_assets=6, seed=5).bars
    out = raw[raw["symbol"].isin(list(SYMBOLS))].copy()
    out["symbol"] = out["symbol"].map(SYMBOLS)
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    for col in ("open", "high", "low", "close"):
        out[col] = out[col].round(2)
    out["volume"] = out["volume"].round().astype("int64")
    return out[COLUMNS].sort_values(["date", "symbol"]).reset_index(drop=True)


def text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def write(name: str, content: str | bytes) -> None:
    path = HERE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)


def main() -> None:
    all_bars = bars()
    base = all_bars[all_bars["date"] <= BASE_END]
    write("base/bars.csv", text(base))
    registry = pd.DataFrame(
        {
            "symbol": ["AAA", "BBB", "CCC", "DDD"],
            "name": ["Alpha Corp", "Beta Corp", "Gamma Corp", "Delta Corp"],
            "sector": ["Health Care", "Industrials", "Financials", "Energy"],
            "industry": ["Pharmaceuticals", "Machinery", "Banks", "Oil & Gas"],
            "currency": "USD",
        }
    )
    write("base/instruments.csv", text(registry))
    day = all_bars[all_bars["date"] == DAY].reset_index(drop=True)  # AAA, BBB, CCC, DDD
    last_close = base[base["date"] == BASE_END].set_index("symbol")["close"]
    # The day as text, so single cells can hold what a broken export writes.
    cells = day.astype(object)

    d = cells.copy()
    d.loc[0, "close"] = ""  # AAA: empty close
    d.loc[1, "close"] = "NaN"  # BBB: the text NaN
    write("nan_prices.csv", text(d))

    # AAA twice identical, BBB twice with different closes (the second still within the day's range: an impossible
    # bar would be quarantined as inconsistent before the duplicates are judged)
    d = pd.concat([cells, cells.iloc[[0]], cells.iloc[[1]].assign(close=round((float(day.loc[1, "low"]) + float(day.loc[1, "high"])) / 2, 2))])
    write("duplicate_bars.csv", text(d))

    multi = all_bars[all_bars["date"].isin(DAYS[:4])]
    write("unsorted_rows.csv", text(multi.sample(frac=1.0, random_state=3)))

    d = cells.copy()
    d.loc[0, "close"] = 0.0  # AAA
    d.loc[1, "close"] = -float(day.loc[1, "close"])  # BBB
    d.loc[2, "low"] = -1.0  # CCC: a negative low, close fine
    write("non_positive_prices.csv", text(d))

    d = cells.copy()
    d.loc[0, ["high", "low"]] = [float(day.loc[0, "low"]), float(day.loc[0, "high"])]  # AAA: high and low swapped
    d.loc[1, "close"] = float(day.loc[1, "high"]) * 1.5  # BBB: close above the high
    d.loc[2, "volume"] = -500  # CCC: negative volume
    write("inconsistent_bars.csv", text(d))

    write("missing_close_column.csv", text(day.drop(columns=["close"])))

    d = cells.copy()
    d.loc[0, "close"] = "n/a"  # AAA
    d.loc[1, "close"] = "1,234.50"  # BBB: thousands separator
    d.loc[2, "volume"] = "12k"  # CCC: text in volume
    write("text_in_price.csv", text(d))

    write("empty.csv", b"")
    write("header_only.csv", ",".join(COLUMNS) + "\n")

    d = cells.copy()
    d.loc[0, "date"] = "2204-01-02"  # AAA: a typo for 2024-01-02, nearly two centuries ahead
    write("future_dates.csv", text(d))

    hol = cells.copy()
    hol["date"] = "2024-01-01"  # New Year's Day: NYSE closed; a vendor repeated the last close
    for col in ("open", "high", "low", "close"):
        hol[col] = [last_close[s] for s in hol["symbol"]]
    sat = hol.iloc[[0]].assign(date="2023-12-30")  # and a Saturday bar for AAA
    write("holiday_rows.csv", text(pd.concat([sat, hol, cells])))

    d = pd.concat([cells, pd.DataFrame([{**cells.iloc[3].to_dict(), "symbol": "ZZZ"}])])
    write("unknown_symbol.csv", text(d))

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(day, preserve_index=False), sink)
    whole = sink.getvalue()
    write("truncated.parquet", whole[: len(whole) // 2])

    d = cells.copy()
    # +1000% on the day, the whole bar (a close alone above the day's high would be an impossible bar)
    d.loc[0, ["open", "high", "low", "close"]] = [round(float(day.loc[0, c]) * float(last_close["AAA"]) / float(day.loc[0, "close"]) * 11.0, 2)
                                                  for c in ("open", "high", "low", "close")]
    write("jump_1000pct.csv", text(d))

    stale = all_bars[all_bars["date"].isin(DAYS)].copy()
    stale.loc[stale["symbol"] == "BBB", ["open", "high", "low", "close"]] = float(last_close["BBB"])
    write("stale_run.csv", text(stale))  # BBB's close frozen at its 2023-12-29 value for 5 sessions

    d = cells.copy()
    d["date"] = ["2024-01-02T21:00:00Z", "2024-01-02T16:00:00-05:00", "2024-01-02T00:00:00Z", "2024-01-02T00:00:00Z"]
    write("timezone_shifted.csv", text(d))  # AAA/BBB: 16:00 New York, fine; CCC/DDD: UTC midnight

    d = cells.copy()
    d.insert(2, "name", ["Alpha Corp", "Beta Corp", "Société Gamma", "Delta Corp"])
    write("latin1.csv", text(d).encode("latin-1"))

    d = cells.copy()
    d.loc[3, "symbol"] = "DDX"  # DDD renamed DDX from this day on
    write("symbol_renamed.csv", text(d))


if __name__ == "__main__":
    main()
