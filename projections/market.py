"""Market statistics: cumulative volume and value; per trading day and product (unit and vintage) the open, high,
low and close of its listed trades with volume and value of all its trades; per calendar year; per trade mode.

Each vintage of a unit is its own product (CEA 2023, CEA 2024, ...). Per product and day: the open is the first
listed-agreement trade, the close the volume-weighted average of the day's listed trades; a day with no listed
trade (only block or auction trades) keeps the product's previous close. Values are exact decimals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.units import fmt_money, money


def _bucket() -> list[Any]:
    return [0, Decimal(0), 0]  # volume, value, trades


def _new_unit() -> dict[str, Any]:
    return {"cumulative": _bucket(), "days": {}, "years": {}, "modes": {}, "last": {}, "product_years": {}}


# A day row of one product: open, high, low (listed trades; None without one), volume, value, trades (all modes),
# listed volume, listed value, the product's close before that day (None on its first day).
OPEN, HIGH, LOW, VOLUME, VALUE, TRADES, LQ, LV, PREV = range(9)


def _close(row: list[Any]) -> Decimal | None:
    return money(row[LV] / row[LQ]) if row[LQ] else row[PREV]


class Market:
    name = "market"

    def initial(self) -> dict[str, Any]:
        return {}

    def apply(self, state: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        if event["type"] != "TradeExecuted":
            return state
        d = event["data"]
        q, price, date, vintage = d["quantity"], Decimal(d["price"]), d["trade_date"], d["vintage"]
        m = state.get(d["unit"])
        if m is None:
            m = state[d["unit"]] = _new_unit()
        value = price * q
        year, mode = m["years"].get(date[:4]), m["modes"].get(d["mode"])
        if year is None:
            year = m["years"][date[:4]] = _bucket()
        if mode is None:
            mode = m["modes"][d["mode"]] = _bucket()
        for b in (m["cumulative"], year, mode):
            b[0] += q
            b[1] += value
            b[2] += 1
        py = (date[:4], vintage)
        m["product_years"][py] = m["product_years"].get(py, 0) + q
        key = (date, vintage)
        day = m["days"].get(key)
        if day is None:
            last = m["last"].get(vintage)
            prev = _close(m["days"][(last, vintage)]) if last is not None else None
            day = m["days"][key] = [None, None, None, 0, Decimal(0), 0, 0, Decimal(0), prev]
            m["last"][vintage] = date
        day[VOLUME] += q
        day[VALUE] += value
        day[TRADES] += 1
        if d["mode"] == "listed":
            if day[OPEN] is None:
                day[OPEN] = day[HIGH] = day[LOW] = price
            else:
                day[HIGH] = max(day[HIGH], price)
                day[LOW] = min(day[LOW], price)
            day[LQ] += q
            day[LV] += value
        return state

    def dump(self, state: dict[str, Any]) -> Any:
        def b(x: list[Any]) -> list[Any]:
            return [x[0], str(x[1]), x[2]]

        def s(x: Decimal | None) -> str | None:
            return None if x is None else str(x)

        return {u: {"cumulative": b(m["cumulative"]),
                    "days": [[date, v, s(r[OPEN]), s(r[HIGH]), s(r[LOW]), r[VOLUME], str(r[VALUE]), r[TRADES], r[LQ],
                              str(r[LV]), s(r[PREV])] for (date, v), r in m["days"].items()],
                    "years": {k: b(v) for k, v in m["years"].items()},
                    "modes": {k: b(v) for k, v in m["modes"].items()},
                    "last": [[v, date] for v, date in m["last"].items()],
                    "product_years": [[y, v, q] for (y, v), q in m["product_years"].items()]}
                for u, m in state.items()}

    def load(self, data: Any) -> dict[str, Any]:
        def b(x: list[Any]) -> list[Any]:
            return [x[0], Decimal(x[1]), x[2]]

        def dec(x: str | None) -> Decimal | None:
            return None if x is None else Decimal(x)

        out = {}
        for u, m in data.items():
            days = {}
            for date, v, o, h, lo, vol, val, n, lq, lv, prev in m["days"]:
                days[(date, v)] = [dec(o), dec(h), dec(lo), vol, Decimal(val), n, lq, Decimal(lv), dec(prev)]
            out[u] = {"cumulative": b(m["cumulative"]), "days": days,
                      "years": {k: b(v) for k, v in m["years"].items()},
                      "modes": {k: b(v) for k, v in m["modes"].items()},
                      "last": {v: date for v, date in m["last"]},
                      "product_years": {(y, v): q for y, v, q in m["product_years"]}}
        return out


def _vwap(volume: int, value: Decimal) -> str | None:
    return fmt_money(value / volume) if volume else None


def _fmt(x: Decimal | None) -> str | None:
    return None if x is None else fmt_money(x)


def report(state: dict[str, Any], unit: str = "CEA", vintage: int | None = None) -> dict[str, Any]:
    """The market as JSON-ready data: quantities as integers, prices and money as 2-place strings.

    `days` has one row per trading day and product (with `vintage`, that product's rows only); cumulative,
    yearly and per-mode totals cover every vintage of the unit. A year's close is the close, on its last
    trading day, of the product traded most in that year."""
    m = state.get(unit) or _new_unit()
    c = m["cumulative"]
    days = [
        {"date": date, "unit": unit, "vintage": v, "open": _fmt(r[OPEN]), "high": _fmt(r[HIGH]), "low": _fmt(r[LOW]),
         "close": _fmt(_close(r)), "volume": r[VOLUME], "value": fmt_money(r[VALUE]), "trades": r[TRADES]}
        for (date, v), r in sorted(m["days"].items())
        if vintage is None or v == vintage
    ]

    def rows(table: dict[str, list[Any]], key: str) -> list[dict[str, Any]]:
        return [{key: int(k) if key == "year" else k, "volume": v[0], "value": fmt_money(v[1]), "trades": v[2],
                 "average_price": _vwap(v[0], v[1])} for k, v in sorted(table.items())]

    years = rows(m["years"], "year")
    for y in years:
        ys = str(y["year"])
        volumes = {v: q for (yy, v), q in m["product_years"].items() if yy == ys}
        main = max(volumes, key=lambda v: (volumes[v], v)) if volumes else None
        closes = [(date, _close(r)) for (date, v), r in m["days"].items() if v == main and date[:4] == ys]
        y["close"] = _fmt(max(closes)[1]) if closes else None
    return {"unit": unit, "cumulative": {"volume": c[0], "value": fmt_money(c[1]), "trades": c[2]},
            "days": days, "years": years, "modes": rows(m["modes"], "mode")}
