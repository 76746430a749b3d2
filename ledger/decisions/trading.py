"""Decisions that move units between holders: transfers and exchange trades (lot sizes, price bands, T+1)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ledger import rules
from ledger.decisions.base import Decided
from ledger.errors import Refused
from ledger.model import LedgerState, Market
from ledger.units import fmt_money, money


def transfer(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    if a["from_account"] == a["to_account"]:
        raise Refused("a transfer needs two different accounts", code="same_account")
    st.check_account_open(a["from_account"])
    st.check_account_open(a["to_account"])
    st.check_holding_covers(a["from_account"], a["unit"], a["vintage"], a["quantity"])
    return [("AllowancesTransferred", dict(a))], {}


def trade(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    buyer, seller, q, mode, date = a["buyer"], a["seller"], a["quantity"], a["mode"], a["date"]
    if buyer == seller:
        raise Refused("buyer and seller must differ", code="self_trade")
    st.check_account_open(buyer)
    st.check_account_open(seller)
    if mode == "listed" and q > rules.LISTED_MAX_QUANTITY_T:
        raise Refused(f"a listed trade must be under {rules.BLOCK_MIN_QUANTITY_T} t; use mode block", code="lot_size")
    if mode == "block" and q < rules.BLOCK_MIN_QUANTITY_T:
        raise Refused(f"a block trade must be at least {rules.BLOCK_MIN_QUANTITY_T} t", code="lot_size")
    if date > _latest_trade_date(now[:10]):  # UTC + 1 day: today somewhere on Earth
        raise Refused(f"trade date {date} is later than the registry's clock ({now[:10]} UTC)",
                      code="trade_date_in_future")
    last = st.last_trade_date.get(a["unit"])
    if last is not None and date < last:
        raise Refused(f"trade date {date} is before the last trading day {last}", code="trade_date")
    market = st.markets.get((a["unit"], a["vintage"])) or Market()  # deciding never changes the state
    price = Decimal(a["price"])
    close = market.reference_close(date)
    limits = price_limits(close, mode)
    if limits is not None:
        lo, hi = limits
        if not lo <= price <= hi:
            raise Refused(f"price {price} is outside the {mode} band {lo}-{hi}"
                          f" (previous close of {a['unit']} {a['vintage']}: {close})", code="price_band")
    sellable = st.sellable(seller, a["unit"], a["vintage"], date)
    if sellable < q:
        held = st.holding(seller, a["unit"], a["vintage"])
        why = f" ({held - sellable} t bought on {date} are not sellable until the next day)" if held > sellable else ""
        raise Refused(f"seller {seller} can sell {sellable} t of {a['unit']} {a['vintage']}, fewer than {q} t{why}",
                      code="insufficient_holding")
    trade_id = f"T-{st.position + 1:06d}"
    data = {"trade_id": trade_id, "buyer": buyer, "seller": seller, "unit": a["unit"], "vintage": a["vintage"],
            "quantity": q, "price": a["price"], "mode": mode, "trade_date": date}
    if close is not None:
        data["reference_price"] = _fmt_close(close)
    return [("TradeExecuted", data)], {"trade_id": trade_id}


@lru_cache(maxsize=64)
def _latest_trade_date(today: str) -> str:
    """The latest business date a trade recorded on `today` (UTC) may carry."""
    return (dt.date.fromisoformat(today) + dt.timedelta(days=1)).isoformat()


@lru_cache(maxsize=64)
def _band(close: Decimal, band: Decimal) -> tuple[Decimal, Decimal]:
    """The allowed price range around a previous close (a day's trades all ask for the same one)."""
    return money(close * (1 - band)), money(close * (1 + band))


def price_limits(close: Decimal | None, mode: str) -> tuple[Decimal, Decimal] | None:
    """The prices a trade of `mode` may have after a day that closed at `close` (None: no limit)."""
    band = rules.PRICE_BAND[mode]
    if close is None or band is None:
        return None
    return _band(close, band)


@lru_cache(maxsize=64)
def _fmt_close(close: Decimal) -> str:
    return fmt_money(close)
