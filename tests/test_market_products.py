"""Market by product (issue 15): each unit and vintage is its own product. Per product the open is the first
listed trade of the day, the close the VWAP of the day's listed trades (a day without one keeps the previous
close), block trades never set it, and both modes' bands come from the product's previous close. Through the
CLI, on SQLite and PostgreSQL; every store built here passes the re-execution audit."""

from __future__ import annotations

import pytest
from ledgerkit import export_lines, invoke_json, run_main


def ok(store: str, *args: str) -> None:
    r = run_main(store, *args)
    assert r.code == 0, f"{args}: exit {r.code}: {r.err}"


def trade(store: str, vintage: int, q: int, price: str, mode: str, date: str, buyer: str = "F2",
          seller: str = "F1") -> object:
    return run_main(store, "trade", "--buyer", buyer, "--seller", seller, "--unit", "CEA", "--vintage", str(vintage),
                    "--quantity", str(q), "--price", price, "--mode", mode, "--date", date)


@pytest.fixture
def market(store_url: str) -> str:
    for f in ("F1", "F2"):
        ok(store_url, "firm", "register", f, "--name", f"Firm {f}", "--sector", "power", "--region", "Hubei")
    for v in (2023, 2024):
        ok(store_url, "issue", "F1", "--unit", "CEA", "--vintage", str(v), "--quantity", "1000000",
           "--basis", "auction")
    return store_url


def audit_ok(store: str) -> None:
    r = run_main(store, "audit", "verify")
    assert r.code == 0, r.err


def test_each_vintage_is_its_own_product_with_its_own_close_and_band(market: str) -> None:
    assert trade(market, 2023, 100, "50.00", "listed", "2024-06-03").code == 0
    assert trade(market, 2024, 100, "100.00", "listed", "2024-06-03").code == 0
    # pooled, the close would be 75.00 and 95.00 out of band; per product 2024's band is 90.00-110.00
    assert trade(market, 2024, 10, "95.00", "listed", "2024-06-04").code == 0
    before = len(export_lines(market))
    r = trade(market, 2023, 10, "95.00", "listed", "2024-06-04")
    assert (r.code, r.err.strip()) == (1, "error: price 95.00 is outside the listed band 45.00-55.00"
                                          " (previous close of CEA 2023: 50.00)")
    assert len(export_lines(market)) == before  # nothing appended
    last = export_lines(market)[-1]["data"]
    assert (last["vintage"], last["reference_price"]) == (2024, "100.00")  # the product's previous close
    days = invoke_json(market, "market", "--by", "day")["days"]
    assert [(d["date"], d["unit"], d["vintage"], d["close"]) for d in days] == [
        ("2024-06-03", "CEA", 2023, "50.00"), ("2024-06-03", "CEA", 2024, "100.00"),
        ("2024-06-04", "CEA", 2024, "95.00")]
    only_2024 = invoke_json(market, "market", "--by", "day", "--vintage", "2024")["days"]
    assert [d["vintage"] for d in only_2024] == [2024, 2024]
    years = invoke_json(market, "market", "--by", "year")
    assert years["cumulative"] == {"volume": 210, "value": "15950.00", "trades": 3}  # every vintage
    assert years["years"][0]["close"] == "95.00"  # the close of the year's most traded product, CEA 2024
    audit_ok(market)


def test_block_trades_do_not_set_the_close_and_the_previous_close_stands(market: str) -> None:
    assert trade(market, 2024, 100, "80.00", "listed", "2024-06-03").code == 0
    assert trade(market, 2024, 300, "84.00", "listed", "2024-06-03").code == 0  # close 83.00 (VWAP), open 80.00
    assert trade(market, 2024, 100_000, "100.00", "block", "2024-06-04").code == 0  # within 30% of 83.00
    # the block day had no listed trade: the close stays 83.00, so listed is 74.70-91.30 (not 90.00-110.00)
    assert trade(market, 2024, 10, "91.31", "listed", "2024-06-05").code == 1
    assert trade(market, 2024, 10, "91.30", "listed", "2024-06-05").code == 0
    # a block trade is banded from the same close: 58.10-107.90
    assert trade(market, 2024, 100_000, "107.91", "block", "2024-06-05").code == 1
    assert trade(market, 2024, 100_000, "58.10", "block", "2024-06-05").code == 0
    days = invoke_json(market, "market", "--by", "day")["days"]
    assert [(d["date"], d["open"], d["high"], d["low"], d["close"], d["volume"], d["trades"]) for d in days] == [
        ("2024-06-03", "80.00", "84.00", "80.00", "83.00", 400, 2),
        ("2024-06-04", None, None, None, "83.00", 100_000, 1),
        ("2024-06-05", "91.30", "91.30", "91.30", "91.30", 100_010, 2),  # the block's 58.10 sets none of them
    ]
    ex = [e["data"] for e in export_lines(market) if e["type"] == "TradeExecuted"]
    assert [t.get("reference_price") for t in ex] == [None, None, "83.00", "83.00", "83.00"]
    audit_ok(market)


def test_an_auction_alone_keeps_the_previous_close(market: str) -> None:
    assert trade(market, 2024, 100, "80.00", "listed", "2024-06-03").code == 0
    assert trade(market, 2024, 100, "200.00", "auction", "2024-06-04").code == 0  # auctions have no band
    assert trade(market, 2024, 10, "88.01", "listed", "2024-06-05").code == 1  # 72.00-88.00 from 80.00
    assert trade(market, 2024, 10, "88.00", "listed", "2024-06-05").code == 0
    audit_ok(market)


def test_trade_dates_never_go_back_within_a_unit_across_its_products(market: str) -> None:
    assert trade(market, 2024, 100, "80.00", "listed", "2024-06-04").code == 0
    r = trade(market, 2023, 100, "80.00", "listed", "2024-06-03")
    assert r.code == 1 and "before the last trading day 2024-06-04" in r.err
