"""Market statistics: cumulative volume and value; per trading day open/high/low/close (VWAP)/volume/value;
per calendar year; per trade mode. Values are exact decimals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.units import fmt_money


def _bucket() -> list[Any]:
    return [0, Decimal(0), 0]  # volume, value, trades


class Market:
    name = "market"

    def initial(self) -> dict[str, Any]:
        return {}

    def apply(self, state: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        if event["type"] != "TradeExecuted":
            return state
        d = event["data"]
        q, price, date = d["quantity"], Decimal(d["price"]), d["trade_date"]
        m = state.get(d["unit"])
        if m is None:
            m = state[d["unit"]] = {"cumulative": _bucket(), "days": {}, "years": {}, "modes": {}}
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
        day = m["days"].get(date)
        if day is None:
            m["days"][date] = [price, price, price, q, value, 1]  # open, high, low, volume, value, trades
        else:
            day[1] = max(day[1], price)
            day[2] = min(day[2], price)
            day[3] += q
            day[4] += value
            day[5] += 1
        return state

    def dump(self, state: dict[str, Any]) -> Any:
        def b(x: list[Any]) -> list[Any]:
            return [x[0], str(x[1]), x[2]]

        return {u: {"cumulative": b(m["cumulative"]),
                    "days": {k: [str(v[0]), str(v[1]), str(v[2]), v[3], str(v[4]), v[5]] for k, v in m["days"].items()},
                    "years": {k: b(v) for k, v in m["years"].items()},
                    "modes": {k: b(v) for k, v in m["modes"].items()}} for u, m in state.items()}

    def load(self, data: Any) -> dict[str, Any]:
        def b(x: list[Any]) -> list[Any]:
            return [x[0], Decimal(x[1]), x[2]]

        return {u: {"cumulative": b(m["cumulative"]),
                    "days": {k: [Decimal(v[0]), Decimal(v[1]), Decimal(v[2]), v[3], Decimal(v[4]), v[5]]
                             for k, v in m["days"].items()},
                    "years": {k: b(v) for k, v in m["years"].items()},
                    "modes": {k: b(v) for k, v in m["modes"].items()}} for u, m in data.items()}


def _vwap(volume: int, value: Decimal) -> str | None:
    return fmt_money(value / volume) if volume else None


def report(state: dict[str, Any], unit: str = "CEA") -> dict[str, Any]:
    """The market as JSON-ready data: quantities as integers, prices and money as 2-place strings."""
    m = state.get(unit) or {"cumulative": _bucket(), "days": {}, "years": {}, "modes": {}}
    c = m["cumulative"]
    days = [
        {"date": k, "open": fmt_money(v[0]), "high": fmt_money(v[1]), "low": fmt_money(v[2]),
         "close": _vwap(v[3], v[4]), "volume": v[3], "value": fmt_money(v[4]), "trades": v[5]}
        for k, v in sorted(m["days"].items())
    ]

    def rows(table: dict[str, list[Any]], key: str) -> list[dict[str, Any]]:
        return [{key: int(k) if key == "year" else k, "volume": v[0], "value": fmt_money(v[1]), "trades": v[2],
                 "average_price": _vwap(v[0], v[1])} for k, v in sorted(table.items())]

    years = rows(m["years"], "year")
    closes = {d["date"][:4]: d["close"] for d in days}
    for y in years:
        y["close"] = closes.get(str(y["year"]))
    return {"unit": unit, "cumulative": {"volume": c[0], "value": fmt_money(c[1]), "trades": c[2]},
            "days": days, "years": years, "modes": rows(m["modes"], "mode")}
