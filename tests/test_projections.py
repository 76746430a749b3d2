"""The read side (issue 3): each fold on hand-written events (no database); live read models equal a full
replay; as-of equals a store holding only the first N events; market arithmetic against an independent
exact sum; history running balances; CSV; --as-of-date."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from ledgerkit import Clock, copy_store, invoke, invoke_json, is_postgres, raw_db, run_main, truncate_after

from ledger.errors import LedgerError
from ledger.registry import Registry
from projections import runner
from projections.balances import Balances, History, balance_rows, history_row, total_rows
from projections.compliance import Compliance, coverage
from projections.compliance import rows as compliance_rows
from projections.market import Market, report

# ---- hand-written events ----------------------------------------------------------------------------


class Log:
    """Builds catalogue envelopes with consecutive positions."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, etype: str, **data: Any) -> Log:
        n = len(self.events) + 1
        self.events.append(
            {
                "position": n,
                "type": etype,
                "recorded_at": f"2024-06-03T09:{n:02d}:00Z",
                "actor": "operator",
                "command_id": f"c{n}",
                "data": data,
            }
        )
        return self


def moves_log() -> Log:
    e = Log()
    e("FirmRegistered", firm_id="F1", name="U1", sector="power", region="Hubei")
    e("AccountOpened", account_id="F1", holder="F1", kind="compliance")
    e(
        "AllowancesIssued", account_id="F1", unit="CEA", vintage=2024, quantity=1000, basis="pre-allocation"
    )  # 3
    e("AllowancesIssued", account_id="F1", unit="CCER", vintage=2023, quantity=50, basis="offset")  # 4
    e(
        "AllowancesTransferred", from_account="F1", to_account="F2", unit="CEA", vintage=2024, quantity=300
    )  # 5
    e(
        "TradeExecuted",
        trade_id="T-000006",
        buyer="F3",
        seller="F2",
        unit="CEA",
        vintage=2024,
        quantity=100,
        price="80.00",
        mode="listed",
        trade_date="2024-06-03",
    )  # 6
    e("AllowancesSurrendered", firm_id="F1", year=2024, unit="CEA", vintage=2024, quantity=200)  # 7
    e("AllowancesCancelled", account_id="F3", unit="CEA", vintage=2024, quantity=100, reason="voluntary")  # 8
    e(
        "AllowancesWithdrawn",
        account_id="F1",
        unit="CEA",
        vintage=2024,
        quantity=50,
        reason="true-up clawback",
        firm_id="F1",
        year=2024,
    )  # 9
    return e


def test_balances_fold_moves_units_and_keeps_totals() -> None:
    st = runner.fold(moves_log().events, ["balances"])["balances"]
    assert balance_rows(st) == [
        {"account_id": "F1", "unit": "CCER", "vintage": 2023, "quantity": 50},
        {"account_id": "F1", "unit": "CEA", "vintage": 2024, "quantity": 450},  # 1000 - 300 - 200 - 50
        {"account_id": "F2", "unit": "CEA", "vintage": 2024, "quantity": 200},  # 300 - 100; F3 is back to 0
    ]
    assert balance_rows(st, "F2") == [{"account_id": "F2", "unit": "CEA", "vintage": 2024, "quantity": 200}]
    assert total_rows(st) == [
        {
            "unit": "CCER",
            "vintage": 2023,
            "issued": 50,
            "held": 50,
            "surrendered": 0,
            "cancelled": 0,
            "withdrawn": 0,
            "carried_in": 0,
            "carried_out": 0,
        },
        {
            "unit": "CEA",
            "vintage": 2024,
            "issued": 1000,
            "held": 650,
            "surrendered": 200,
            "cancelled": 100,
            "withdrawn": 50,
            "carried_in": 0,
            "carried_out": 0,
        },
    ]


def test_balances_fold_ignores_events_that_move_nothing() -> None:
    e = Log()
    e("FirmRegistered", firm_id="F1", name="U1", sector="power", region="Hubei")
    e("ComplianceYearOpened", year=2024, surrender_deadline="2025-12-31")
    e("EmissionsVerified", firm_id="F1", year=2024, tonnes=5)
    st = runner.fold(e.events, ["balances"])["balances"]
    assert st == Balances().initial()


def test_balances_dump_and_load_round_trip() -> None:
    st = runner.fold(moves_log().events, ["balances"])["balances"]
    p = Balances()
    assert p.load(p.dump(st)) == st


def test_history_fold_emits_each_movement_with_a_running_balance() -> None:
    rows: list = []
    st = History().initial()
    events = moves_log().events
    for env in events:
        st = History().apply(st, env, rows)
    by_position = {e["position"]: e for e in events}
    shown = [(acc, history_row(by_position[pos], seq, bal)) for acc, pos, seq, _q, bal in rows]
    # the stored quantity is the shown movement's
    assert [q for *_, q, _b in rows] == [r["quantity"] for _a, r in shown]
    f1 = [
        (r["position"], r["type"], r["unit"], r["quantity"], r["balance"], r["counterparty"])
        for acc, r in shown
        if acc == "F1"
    ]
    assert f1 == [
        (3, "AllowancesIssued", "CEA", 1000, 1000, None),
        (4, "AllowancesIssued", "CCER", 50, 50, None),
        (5, "AllowancesTransferred", "CEA", -300, 700, "F2"),
        (7, "AllowancesSurrendered", "CEA", -200, 500, None),
        (9, "AllowancesWithdrawn", "CEA", -50, 450, None),
    ]
    f2 = [(r["position"], r["quantity"], r["balance"], r["counterparty"]) for acc, r in shown if acc == "F2"]
    assert f2 == [(5, 300, 300, "F1"), (6, -100, 200, "F3")]
    trade_row = next(r for acc, r in shown if acc == "F3" and r["position"] == 6)
    assert (trade_row["trade_id"], trade_row["price"], trade_row["trade_date"]) == (
        "T-000006",
        "80.00",
        "2024-06-03",
    )
    assert next(r for _a, r in shown if r["position"] == 9)["reason"] == "true-up clawback"
    assert next(r for _a, r in shown if r["position"] == 3)["basis"] == "pre-allocation"
    assert next(r for _a, r in shown if r["position"] == 7)["year"] == 2024


def market_log() -> Log:
    e = Log()
    t = "TradeExecuted"
    common = {"buyer": "F2", "seller": "F1", "vintage": 2024}
    e(
        t,
        trade_id="T1",
        unit="CEA",
        quantity=100,
        price="80.00",
        mode="listed",
        trade_date="2024-06-03",
        **common,
    )
    e(
        t,
        trade_id="T2",
        unit="CEA",
        quantity=300,
        price="84.00",
        mode="listed",
        trade_date="2024-06-03",
        **common,
    )
    e(
        t,
        trade_id="T3",
        unit="CEA",
        quantity=200_000,
        price="85.50",
        mode="block",
        trade_date="2024-06-04",
        **common,
    )
    e(
        t,
        trade_id="T4",
        unit="CCER",
        quantity=7,
        price="30.00",
        mode="listed",
        trade_date="2024-06-04",
        **common,
    )
    e(
        t,
        trade_id="T5",
        unit="CEA",
        quantity=10,
        price="90.01",
        mode="auction",
        trade_date="2025-01-02",
        **common,
    )
    e("AllowancesTransferred", from_account="F1", to_account="F2", unit="CEA", vintage=2024, quantity=5)
    return e


def test_market_fold_per_day_and_product_open_high_low_close_from_listed_trades() -> None:
    rep = report(runner.fold(market_log().events, ["market"])["market"], "CEA")
    row = {"unit": "CEA", "vintage": 2024}
    assert rep["days"] == [
        # 100 x 80.00 + 300 x 84.00 = 33,200.00 over 400 t: close (VWAP of listed trades) 83.00, not the last 84.00
        {"date": "2024-06-03", **row, "open": "80.00", "high": "84.00", "low": "80.00", "close": "83.00",
         "volume": 400, "value": "33200.00", "trades": 2},
        # a block trade alone: no open, and the previous close (83.00) stands; its volume still counts
        {"date": "2024-06-04", **row, "open": None, "high": None, "low": None, "close": "83.00",
         "volume": 200_000, "value": "17100000.00", "trades": 1},
        # an auction does not set the close either
        {"date": "2025-01-02", **row, "open": None, "high": None, "low": None, "close": "83.00",
         "volume": 10, "value": "900.10", "trades": 1},
    ]


def test_market_fold_cumulative_years_and_modes() -> None:
    rep = report(runner.fold(market_log().events, ["market"])["market"], "CEA")
    assert rep["cumulative"] == {"volume": 200_410, "value": "17134100.10", "trades": 4}
    assert rep["years"] == [
        # 17,133,200.00 / 200,400 = 85.49501...; the year's close is its product's close (listed trades only)
        {"year": 2024, "volume": 200_400, "value": "17133200.00", "trades": 3, "average_price": "85.50",
         "close": "83.00"},
        {"year": 2025, "volume": 10, "value": "900.10", "trades": 1, "average_price": "90.01", "close": "83.00"},
    ]
    assert {m["mode"]: (m["volume"], m["value"], m["trades"]) for m in rep["modes"]} == {
        "auction": (10, "900.10", 1),
        "block": (200_000, "17100000.00", 1),
        "listed": (400, "33200.00", 2),
    }


def test_market_fold_keeps_each_unit_apart() -> None:
    rep = report(runner.fold(market_log().events, ["market"])["market"], "CCER")
    assert rep["cumulative"] == {"volume": 7, "value": "210.00", "trades": 1}
    assert report({}, "CEA")["cumulative"] == {"volume": 0, "value": "0.00", "trades": 0}


def test_market_dump_and_load_round_trip_exactly() -> None:
    st = runner.fold(market_log().events, ["market"])["market"]
    p = Market()
    back = p.load(p.dump(st))
    assert back == st
    assert isinstance(back["CEA"]["cumulative"][1], Decimal)


def compliance_log() -> Log:
    e = Log()
    e(
        "FirmRegistered",
        firm_id="P1",
        name="Coal",
        sector="power",
        region="Shanxi",
        unit_type="coal-above-300mw",
    )
    e("FirmRegistered", firm_id="G1", name="Gas", sector="power", region="Jiangsu", unit_type="gas")
    e("FirmRegistered", firm_id="S1", name="Steel", sector="steel", region="Hebei")
    e("FirmRegistered", firm_id="V1", name="Voluntary", sector="other", region="Hubei")
    e("ComplianceYearOpened", year=2024, surrender_deadline="2025-12-31")
    e(
        "AllowancesIssued",
        account_id="P1",
        unit="CEA",
        vintage=2024,
        quantity=700,
        basis="pre-allocation",
        year=2024,
    )
    e(
        "AllowancesIssued",
        account_id="G1",
        unit="CEA",
        vintage=2024,
        quantity=300,
        basis="pre-allocation",
        year=2024,
    )
    e("EmissionsVerified", firm_id="P1", year=2024, tonnes=1000)  # obligation: all of it, 1000
    e("EmissionsVerified", firm_id="G1", year=2024, tonnes=400)  # gas too: 400
    # the exemptions are issued, and count as free allocation: P1 topped up to 80% of 1000, G1 to its 400
    e("AllowancesIssued", account_id="P1", unit="CEA", vintage=2024, quantity=100, basis="gap-cap exemption",
      year=2024)
    e("AllowancesIssued", account_id="G1", unit="CEA", vintage=2024, quantity=100, basis="gas-unit exemption",
      year=2024)
    e("AllowancesSurrendered", firm_id="P1", year=2024, unit="CEA", vintage=2024, quantity=950)
    e("AllowancesSurrendered", firm_id="P1", year=2024, unit="CCER", vintage=2024, quantity=50)
    e("AllowancesSurrendered", firm_id="G1", year=2024, unit="CEA", vintage=2024, quantity=200)
    e("PenaltyAssessed", firm_id="G1", year=2024, shortfall=200, fine="71500.00", deduction=200)
    e("ComplianceYearClosed", year=2024)
    return e


def _by_firm(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["firm_id"]: r for r in rows}


def test_compliance_fold_obligations_statuses_fines_and_deductions() -> None:
    st = runner.fold(compliance_log().events, ["compliance"])["compliance"]
    rows = _by_firm(compliance_rows(st, 2024))
    pick = (
        "verified",
        "free_allocation",
        "surrendered_cea",
        "surrendered_ccer",
        "obligation",
        "shortfall",
        "status",
        "fine",
        "deduction",
        "closed",
    )
    assert {f: tuple(r[k] for k in pick) for f, r in rows.items()} == {
        "P1": (1000, 800, 950, 50, 1000, 0, "A", None, 0, True),
        "G1": (400, 400, 200, 0, 400, 200, "B", "71500.00", 200, True),
        "S1": (None, 0, 0, 0, None, None, "C", None, 0, True),
        "V1": (None, 0, 0, 0, None, None, "-", None, 0, True),
    }


def test_compliance_status_changed_after_close_is_starred() -> None:
    log = compliance_log()
    log("EmissionsVerified", firm_id="S1", year=2024, tonnes=500)  # late: C becomes B
    log(
        "AllowancesSurrendered", firm_id="G1", year=2024, unit="CEA", vintage=2024, quantity=200
    )  # B becomes A
    st = runner.fold(log.events, ["compliance"])["compliance"]
    rows = _by_firm(compliance_rows(st, 2024))
    assert (rows["S1"]["status"], rows["G1"]["status"], rows["P1"]["status"]) == ("B*", "A*", "A")


def test_compliance_status_before_close_is_never_starred() -> None:
    events = [e for e in compliance_log().events if e["type"] != "ComplianceYearClosed"]
    rows = _by_firm(compliance_rows(runner.fold(events, ["compliance"])["compliance"]))
    assert {f: (r["status"], r["closed"]) for f, r in rows.items()} == {
        "P1": ("A", False),
        "G1": ("B", False),
        "S1": ("C", False),
        "V1": ("-", False),
    }


def test_compliance_multi_year_cycle_is_one_row_with_one_obligation() -> None:
    e = Log()
    e("FirmRegistered", firm_id="S1", name="Steel", sector="steel", region="Hebei")
    e("ComplianceYearOpened", year=2021, last_year=2022, period="2021-2022", surrender_deadline="2023-12-31")
    e("EmissionsVerified", firm_id="S1", year=2021, tonnes=100)
    e("EmissionsVerified", firm_id="S1", year=2022, tonnes=150)
    e("AllowancesSurrendered", firm_id="S1", year=2021, unit="CEA", vintage=2021, quantity=100)
    e("AllowancesSurrendered", firm_id="S1", year=2022, unit="CEA", vintage=2022, quantity=120)
    st = runner.fold(e.events, ["compliance"])["compliance"]
    rows = compliance_rows(st)
    assert [
        (r["period"], r["verified"], r["obligation"], r["surrendered_cea"], r["shortfall"], r["status"])
        for r in rows
    ] == [("2021-2022", 250, 250, 220, 30, "B")]
    assert compliance_rows(st, 2022) == rows and compliance_rows(st, 2023) == []


def test_compliance_withdrawals_change_free_allocation_and_record_deductions() -> None:
    e = Log()
    e(
        "FirmRegistered",
        firm_id="P1",
        name="Coal",
        sector="power",
        region="Shanxi",
        unit_type="coal-above-300mw",
    )
    e("ComplianceYearOpened", year=2025, surrender_deadline="2026-12-31")
    e(
        "AllowancesIssued",
        account_id="P1",
        unit="CEA",
        vintage=2025,
        quantity=1000,
        basis="pre-allocation",
        year=2025,
    )
    e(
        "AllowancesWithdrawn",
        account_id="P1",
        unit="CEA",
        vintage=2025,
        quantity=100,
        reason="penalty deduction",
        firm_id="P1",
        year=2025,
        penalty_year=2024,
    )
    e(
        "AllowancesWithdrawn",
        account_id="P1",
        unit="CEA",
        vintage=2025,
        quantity=200,
        reason="true-up clawback",
        firm_id="P1",
        year=2025,
    )
    e("EmissionsVerified", firm_id="P1", year=2025, tonnes=1000)
    (row,) = compliance_rows(runner.fold(e.events, ["compliance"])["compliance"])
    # a penalty deduction does not lower the free allocation (it pays a debt); a clawback does
    assert row["free_allocation"] == 800
    assert row["obligation"] == 1000  # min(1000, 800 + 200)


def test_compliance_dump_and_load_round_trip() -> None:
    st = runner.fold(compliance_log().events, ["compliance"])["compliance"]
    p = Compliance()
    assert compliance_rows(p.load(p.dump(st))) == compliance_rows(st)


def test_coverage_per_sector_and_covered_share() -> None:
    log = compliance_log()
    log("EmissionsVerified", firm_id="S1", year=2024, tonnes=500)
    st = runner.fold(log.events, ["compliance"])["compliance"]
    cov = coverage(st, 2024, national_total=10_000)
    assert cov["sectors"] == [
        {"sector": "other", "firms": 1, "verified_firms": 0, "verified": 0, "share": "0.00"},
        {"sector": "power", "firms": 2, "verified_firms": 2, "verified": 1400, "share": "73.68"},
        {"sector": "steel", "firms": 1, "verified_firms": 1, "verified": 500, "share": "26.32"},
    ]  # share: of the year's verified emissions, percent
    assert (cov["total_firms"], cov["total_verified_firms"], cov["total_verified"]) == (4, 3, 1900)
    assert cov["covered_share"] == "19.00"  # percent
    assert "covered_share" not in coverage(st, 2024)
    assert coverage(st, 2023)["total_verified"] == 0
    assert {e["share"] for e in coverage(st, 2023)["sectors"]} == {None}


def test_fold_is_deterministic_and_incremental() -> None:
    log = Log()
    for e in compliance_log().events + moves_log().events + market_log().events:
        log(e["type"], **e["data"])
    events = log.events
    whole = runner.fold(events)
    half = runner.fold(events[:7])
    resumed = runner.fold(events[7:], states=half)
    for p in runner.PROJECTIONS:
        assert p.dump(resumed[p.name]) == p.dump(whole[p.name]) == p.dump(runner.fold(events)[p.name])


# ---- the live read models equal a full replay ---------------------------------------------------------

FIRMS = ["F0", "F1", "F2", "F3", "F4"]
SECTORS = ["power", "power", "steel", "cement", "power"]


def random_market(reg: Registry, seed: int, steps: int, read_every: Any = None) -> list[dict[str, Any]]:
    """A random command sequence (refusals ignored); returns the data of every trade that was recorded."""
    rnd = random.Random(seed)
    for f, sec in zip(FIRMS, SECTORS, strict=False):
        reg.register_firm(f, f"Firm {f}", sec, "Hubei")
    reg.open_year(2024, "2025-12-31")
    for f in FIRMS:
        reg.issue(f, "CEA", 2024, rnd.randrange(1000, 5000), "pre-allocation")
    reg.issue("F0", "CCER", 2024, 500, "offset", project_registered="2024-03-01")
    trades = []
    day = 1
    for i in range(steps):
        a, b = rnd.sample(FIRMS, 2)
        kind = rnd.random()
        try:
            if kind < 0.45:
                if rnd.random() < 0.3:
                    day += rnd.choice((1, 1, 3))
                out = reg.trade(
                    b,
                    a,
                    "CEA",
                    2024,
                    rnd.randrange(1, 400),
                    f"{rnd.uniform(76, 84):.2f}",
                    rnd.choice(("listed", "listed", "auction")),
                    f"2024-07-{day:02d}",
                )
                trades.append(out.events[0]["data"])
            elif kind < 0.7:
                reg.transfer(a, b, rnd.choice(("CEA", "CCER")), 2024, rnd.randrange(1, 300))
            elif kind < 0.8:
                reg.cancel(a, "CEA", 2024, rnd.randrange(1, 50))
            elif kind < 0.9:
                reg.verify_emissions(a, 2024, rnd.randrange(500, 3000))
            else:
                reg.surrender(a, 2024, rnd.choice(("CEA", "CCER")), 2024, rnd.randrange(1, 200))
        except LedgerError:
            pass
        if read_every and i % read_every == read_every - 1:
            runner.catch_up(reg.recorder)
    return trades


def _same_states(a: dict[str, Any], b: dict[str, Any]) -> None:
    from projections.audit import _norm

    for p in runner.PROJECTIONS:
        assert _norm(p.dump(a[p.name])) == _norm(p.dump(b[p.name])), p.name


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_live_read_models_equal_a_full_replay_after_a_random_command_sequence(
    registry: Registry, store_url: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "FLUSH_EVERY", 7)  # flush mid-catch-up, as on a long log
    monkeypatch.setattr(runner, "CHECKPOINT_EVERY", 10)
    random_market(registry, seed, 150, read_every=13)  # the read models catch up in many small steps
    live, pos = runner.catch_up(registry.recorder)
    rebuilt, pos2 = runner.rebuild(registry.recorder)
    assert pos == pos2 == registry.head()[0]
    _same_states(live, rebuilt)
    r = run_main(store_url, "audit", "replay")
    assert r.code == 0, r.err
    # two replays are identical
    _same_states(runner.rebuild(registry.recorder)[0], rebuilt)


def test_catching_up_twice_applies_nothing_twice(registry: Registry, store_url: str) -> None:
    random_market(registry, 5, 40)
    runner.catch_up(registry.recorder)
    with raw_db(store_url) as conn:
        n_rows = conn.execute("SELECT COUNT(*) FROM rm_history").fetchone()[0]
    positions = registry.recorder.readmodel_positions()
    runner.catch_up(registry.recorder)
    with raw_db(store_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM rm_history").fetchone()[0] == n_rows
    assert (
        registry.recorder.readmodel_positions() == positions == dict.fromkeys(positions, registry.head()[0])
    )
    registry.transfer("F0", "F1", "CEA", 2024, 1)  # two history rows more, and only two
    runner.catch_up(registry.recorder)
    with raw_db(store_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM rm_history").fetchone()[0] == n_rows + 2


def test_a_read_model_behind_the_others_catches_up_alone(registry: Registry, store_url: str) -> None:
    random_market(registry, 6, 30)
    runner.catch_up(registry.recorder)
    with raw_db(store_url) as conn:  # as if the market read model had been lost
        conn.execute("DELETE FROM rm_state WHERE name = 'market'")
    live, _ = runner.catch_up(registry.recorder)
    _same_states(live, runner.rebuild(registry.recorder)[0])
    assert run_main(store_url, "audit", "replay").code == 0


# ---- market arithmetic against an independent sum ------------------------------------------------------


def test_market_volume_and_value_equal_the_exact_sum_of_the_trades(
    registry: Registry, store_url: str
) -> None:
    trades = random_market(registry, 11, 200)
    assert len(trades) > 30
    volume = sum(t["quantity"] for t in trades)
    value = sum(t["quantity"] * Decimal(t["price"]) for t in trades)
    m = invoke_json(store_url, "market", "--by", "day")
    assert m["cumulative"] == {"volume": volume, "value": f"{value:.2f}", "trades": len(trades)}
    by_day: dict[str, list] = defaultdict(list)
    for t in trades:
        by_day[t["trade_date"]].append(t)
    assert [d["date"] for d in m["days"]] == sorted(by_day)
    close = None
    for d in m["days"]:
        ts = by_day[d["date"]]
        q = sum(t["quantity"] for t in ts)
        v = sum(t["quantity"] * Decimal(t["price"]) for t in ts)
        assert (d["unit"], d["vintage"]) == ("CEA", 2024)
        assert (d["volume"], Decimal(d["value"]), d["trades"]) == (q, v, len(ts))
        listed = [t for t in ts if t["mode"] == "listed"]
        prices = [Decimal(t["price"]) for t in listed]
        if listed:  # open, high, low and close from the listed trades; auctions count only in volume
            lq = sum(t["quantity"] for t in listed)
            lv = sum(t["quantity"] * Decimal(t["price"]) for t in listed)
            close = (lv / lq).quantize(Decimal("0.01"))
            assert (Decimal(d["open"]), Decimal(d["high"]), Decimal(d["low"])) == (prices[0], max(prices), min(prices))
        else:
            assert (d["open"], d["high"], d["low"]) == (None, None, None)
        assert d["close"] == (None if close is None else str(close))  # no listed trade: the previous close stands
    assert sum(Decimal(y["value"]) for y in m["years"]) == value
    modes = {x["mode"]: x for x in m["modes"]}
    for mode in ("listed", "auction"):
        ts = [t for t in trades if t["mode"] == mode]
        assert modes[mode]["volume"] == sum(t["quantity"] for t in ts)
        assert Decimal(modes[mode]["value"]) == sum(t["quantity"] * Decimal(t["price"]) for t in ts)


def test_market_value_has_no_float_drift_over_many_cent_trades(registry: Registry, store_url: str) -> None:
    registry.register_firm("F1", "U1", "power", "Hubei")
    registry.register_firm("F2", "U2", "power", "Hubei")
    registry.issue("F1", "CEA", 2024, 10_000, "auction")
    for _ in range(30):
        registry.trade("F2", "F1", "CEA", 2024, 1, "0.10", "auction", "2024-06-03")
    m = invoke_json(store_url, "market")
    assert m["cumulative"]["value"] == "3.00"  # 30 x 0.1 as floats is 3.0000000000000013


# ---- as of a position equals a store holding only those events --------------------------------------

COMMANDS: list[tuple[str, tuple, dict]] = [
    ("register_firm", ("P1", "Coal", "power", "Shanxi"), {}),
    ("register_firm", ("S1", "Steel", "steel", "Hebei"), {}),
    ("open_year", (2024, "2025-12-31"), {}),
    ("issue", ("P1", "CEA", 2024, 5000, "pre-allocation"), {}),
    ("issue", ("S1", "CEA", 2024, 3000, "pre-allocation"), {}),
    ("trade", ("S1", "P1", "CEA", 2024, 100, "80.00", "listed", "2024-06-03"), {}),
    ("trade", ("S1", "P1", "CEA", 2024, 300, "84.00", "listed", "2024-06-03"), {}),
    ("transfer", ("P1", "S1", "CEA", 2024, 250), {}),
    ("trade", ("P1", "S1", "CEA", 2024, 50, "85.00", "listed", "2024-06-04"), {}),
    ("verify_emissions", ("P1", 2024, 4000), {}),
    ("verify_emissions", ("S1", 2024, 3500), {}),
    ("surrender", ("P1", 2024, "CEA", 2024, 4000), {}),
    ("trade", ("P1", "S1", "CEA", 2024, 70, "86.00", "listed", "2024-06-05"), {}),
    ("surrender", ("S1", 2024, "CEA", 2024, 3000), {}),
    ("close_year", (2024,), {}),
    ("cancel", ("S1", "CEA", 2024, 5), {}),
]


def build(path: str, n_commands: int) -> list[int]:
    """Run the first n commands with fixed ids and a fixed clock; return the head after each."""
    clock = Clock("2024-06-03T09:30:00")
    reg = Registry(path, clock=clock)
    heads = []
    try:
        for i, (method, args, kw) in enumerate(COMMANDS[:n_commands]):
            clock.set(f"2024-06-{3 + i // 4:02d}T10:{i:02d}:00")
            getattr(reg, method)(*args, command_id=f"cmd-{i}", **kw)
            heads.append(reg.head()[0])
    finally:
        reg.close()
    return heads


READS = [
    ["balances"],
    ["balances", "--totals"],
    ["market", "--by", "day"],
    ["compliance"],
    ["coverage", "--year", "2024"],
    ["history", "S1"],
]


def _read(store: str, args: list[str], *extra: str) -> dict[str, Any]:
    """A read's JSON without its position; or, for an account that does not exist (yet), the refusal."""
    r = invoke(store, *args, *extra, "--json")
    if r.exception is not None and "does not exist" in str(r.exception):
        return {"refused": str(r.exception).split(" (at position")[0]}
    assert r.exit_code == 0, f"{args}: exit {r.exit_code}: {r.exception!r}"
    out = json.loads(r.stdout)
    out.pop("position")
    return out


@pytest.fixture
def full_store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[int]]:
    monkeypatch.setattr(runner, "CHECKPOINT_EVERY", 4)  # as-of starts from checkpoints, then folds the rest
    path = store_url
    heads = build(path, len(COMMANDS))
    invoke_json(path, "balances")  # the read models catch up, writing checkpoints
    return path, heads


@pytest.mark.parametrize("k", [1, 4, 6, 9, 12, 15])
def test_reads_as_of_a_position_equal_a_store_rebuilt_from_the_first_commands(
    full_store: tuple[str, list[int]], new_store: Callable[[str], str], k: int
) -> None:
    path, heads = full_store
    n = heads[k - 1]
    short = new_store(f"first-{k}")
    assert build(short, k)[-1] == n
    for args in READS:
        assert _read(path, args, "--as-of", str(n)) == _read(short, args), args
        if "refused" not in _read(short, args):
            assert invoke_json(path, *args, "--as-of", str(n))["position"] == n


@pytest.mark.parametrize("n", [3, 8, 13, 17])
def test_reads_as_of_a_position_equal_a_truncated_copy_of_the_store(
    full_store: tuple[str, list[int]], new_store: Callable[[str], str], n: int
) -> None:
    path, heads = full_store
    assert n < heads[-1]
    copy = new_store(f"cut-{n}")
    if is_postgres(path):  # a copy made the way it was made: the same commands on the same clock
        build(copy, len(COMMANDS))
        assert invoke_json(copy, "audit", "head") == invoke_json(path, "audit", "head")
    else:
        copy_store(path, copy)
    with raw_db(copy) as conn:
        truncate_after(conn, n)
    verified = run_main(copy, "audit", "verify")
    if n in heads:  # cut between two commands: a shorter history that re-executes
        assert verified.code == 0, verified.err
    else:  # cut inside a command: its last events are missing, and re-execution says so
        assert verified.code == 3 and "ends inside a command" in verified.err
    for args in READS:
        assert _read(path, args, "--as-of", str(n)) == _read(copy, args), args


def test_as_of_the_head_equals_the_live_answer_and_beyond_it_is_bad_input(
    full_store: tuple[str, list[int]],
) -> None:
    path, heads = full_store
    for args in READS:
        assert _read(path, args, "--as-of", str(heads[-1])) == _read(path, args)
    r = run_main(path, "balances", "--as-of", str(heads[-1] + 1))
    assert r.code == 2 and "beyond" in r.err


def test_as_of_zero_is_the_empty_ledger(full_store: tuple[str, list[int]]) -> None:
    path, _ = full_store
    assert invoke_json(path, "balances", "--as-of", "0")["balances"] == []
    assert invoke_json(path, "market", "--as-of", "0")["cumulative"] == {
        "volume": 0,
        "value": "0.00",
        "trades": 0,
    }


def test_as_of_date_answers_as_the_ledger_stood_at_the_end_of_that_day(
    full_store: tuple[str, list[int]],
) -> None:
    path, heads = full_store
    # commands 0-3 were recorded on 2024-06-03, 4-7 on 06-04, 8-11 on 06-05, 12-15 on 06-06
    for date, n in (("2024-06-03", heads[3]), ("2024-06-04", heads[7]), ("2024-06-06", heads[15])):
        for args in (["balances"], ["market"], ["compliance"]):
            got = invoke_json(path, *args, "--as-of-date", date)
            assert got["position"] == n
            assert got == invoke_json(path, *args, "--as-of", str(n))
    assert invoke_json(path, "balances", "--as-of-date", "2024-06-02")["position"] == 0
    assert invoke_json(path, "balances", "--as-of-date", "2030-01-01")["position"] == heads[-1]
    assert run_main(path, "balances", "--as-of-date", "June 3rd").code == 2


def test_reads_as_of_a_position_equal_what_was_read_at_that_position(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read while the ledger stands at N, append more; later, `--as-of N` gives back what was read then."""
    monkeypatch.setattr(runner, "CHECKPOINT_EVERY", 4)
    reads = [["balances"], ["market", "--by", "day"], ["compliance"]]
    seen: dict[int, list[dict[str, Any]]] = {}
    clock = Clock("2024-06-03T09:30:00")
    reg = Registry(store_url, clock=clock)
    try:
        for i, (method, args, kw) in enumerate(COMMANDS):
            clock.set(f"2024-06-{3 + i // 4:02d}T10:{i:02d}:00")
            getattr(reg, method)(*args, command_id=f"cmd-{i}", **kw)
            if i % 3 == 1 or i == len(COMMANDS) - 1:
                answers = [invoke_json(store_url, *args) for args in reads]
                n = reg.head()[0]
                assert {a["position"] for a in answers} == {n}
                seen[n] = answers
    finally:
        reg.close()
    assert len(seen) >= 5
    for n, answers in seen.items():
        assert [invoke_json(store_url, *args, "--as-of", str(n)) for args in reads] == answers, n


# ---- history and CSV -----------------------------------------------------------------------------------


def test_history_running_balance_adds_up_to_the_balance(registry: Registry, store_url: str) -> None:
    random_market(registry, 21, 120)
    bal = {
        (r["account_id"], r["unit"], r["vintage"]): r["quantity"]
        for r in invoke_json(store_url, "balances")["balances"]
    }
    for acc in FIRMS:
        rows = invoke_json(store_url, "history", acc)["rows"]
        running: dict[tuple[str, int], int] = defaultdict(int)
        last_pos = 0
        for r in rows:
            assert r["position"] >= last_pos
            last_pos = r["position"]
            running[(r["unit"], r["vintage"])] += r["quantity"]
            assert r["balance"] == running[(r["unit"], r["vintage"])] >= 0
        assert {k: v for k, v in running.items() if v} == {
            (u, v): q for (a, u, v), q in bal.items() if a == acc
        }


def test_history_as_of_a_position_ends_there(full_store: tuple[str, list[int]]) -> None:
    path, heads = full_store
    rows = invoke_json(path, "history", "P1", "--as-of", str(heads[7]))["rows"]
    assert rows and all(r["position"] <= heads[7] for r in rows)
    assert rows[-1]["balance"] == 5000 - 100 - 300 - 250


def _csv(store: str, *args: str) -> list[dict[str, str]]:
    r = invoke(store, *args, "--csv")
    assert r.exit_code == 0, r.exception
    return list(csv.DictReader(io.StringIO(r.stdout)))


def test_csv_output_has_the_same_rows_as_json(full_store: tuple[str, list[int]]) -> None:
    path, _ = full_store
    js = invoke_json(path, "balances")["balances"]
    assert _csv(path, "balances") == [{k: str(v) for k, v in r.items()} for r in js]
    days = invoke_json(path, "market", "--by", "day")["days"]
    assert _csv(path, "market", "--by", "day") == [{k: str(v) for k, v in d.items()} for d in days]
    rows = _csv(path, "compliance", "--year", "2024")
    assert [(r["firm_id"], r["status"], r["obligation"]) for r in rows] == [
        ("P1", "A", "4000"),
        ("S1", "B", "3500"),
    ]
    hist = _csv(path, "history", "S1")
    assert [int(h["balance"]) for h in hist] == [
        r["balance"] for r in invoke_json(path, "history", "S1")["rows"]
    ]


def test_the_table_output_shows_the_position(full_store: tuple[str, list[int]]) -> None:
    path, heads = full_store
    r = invoke(path, "balances")
    assert r.exit_code == 0 and f"Balances at position {heads[-1]}" in r.stdout and "P1" in r.stdout
    r = invoke(path, "market", "--by", "year")
    assert "CEA cumulative at position" in r.stdout and "520 t" in r.stdout


def test_totals_conserve_every_unit_and_vintage_at_every_position(registry: Registry, store_url: str) -> None:
    random_market(registry, 31, 120)
    head = registry.head()[0]
    for n in range(0, head + 1, 9):
        for t in invoke_json(store_url, "balances", "--as-of", str(n))["totals"]:
            assert t["issued"] == t["held"] + t["surrendered"] + t["cancelled"] + t["withdrawn"], (n, t)
            assert t["held"] >= 0
    held = defaultdict(int)
    for r in invoke_json(store_url, "balances")["balances"]:
        held[(r["unit"], r["vintage"])] += r["quantity"]
    totals = invoke_json(store_url, "balances")["totals"]
    assert {(t["unit"], t["vintage"]): t["held"] for t in totals} == dict(held)


def test_coverage_cli_gives_the_covered_share_of_a_national_total(registry: Registry, store_url: str) -> None:
    registry.register_firm("P1", "Coal", "power", "Shanxi")
    registry.register_firm("S1", "Steel", "steel", "Hebei")
    registry.verify_emissions("P1", 2024, 5_000_000_000)
    registry.verify_emissions("S1", 2024, 3_000_000_000)
    out = invoke_json(store_url, "coverage", "--year", "2024", "--national-total", "12600000000")
    assert out["total_verified"] == 8_000_000_000
    assert out["covered_share"] == "63.49"  # 8 / 12.6 = 63.492%
    assert [(s["sector"], s["firms"], s["verified"]) for s in out["sectors"]] == [
        ("power", 1, 5_000_000_000),
        ("steel", 1, 3_000_000_000),
    ]
