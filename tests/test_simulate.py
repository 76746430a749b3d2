"""The scenario engine: a deterministic China ETS whose exported events reproduce the published figures (docs/domain.md)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from decimal import Decimal

import pytest
from ledgerkit import events as events_of
from ledgerkit import invoke

from commands.simulate import ANCHOR_CLOSES, DEMO_SCALE, OPEN_PRICE, PEAK_DATE, YEARS, demo, simulate
from ledger import rules
from ledger.errors import BadInput, Refused
from ledger.registry import Registry
from ledger.units import money

SMALL = 0.005  # about 20 firms; each run takes a second or two


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, dict, list[dict]]:
    registry = Registry(str(tmp_path_factory.mktemp("demo") / "demo.db"))
    calls: list[tuple[int, int]] = []
    summary = demo(registry, progress=lambda done, total: calls.append((done, total)))
    summary["_progress"] = calls
    return registry, summary, events_of(registry)


def _trades(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e["type"] == "TradeExecuted"]


def test_same_seed_gives_the_same_head_hash_and_another_seed_does_not(tmp_path) -> None:
    heads = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        registry = Registry(str(tmp_path / f"{name}.db"))
        summary = simulate(registry, scale=SMALL, seed=seed)
        assert registry.head() == (summary["position"], summary["head_hash"])
        heads.append(registry.head())
    assert heads[0] == heads[1]
    assert heads[2] != heads[0]


def test_yearly_volume_and_value_match_the_domain_figures_within_one_percent(demo_run) -> None:
    _, summary, events = demo_run
    volume: dict[int, int] = defaultdict(int)
    value: dict[int, Decimal] = defaultdict(Decimal)
    for t in _trades(events):
        year = int(t["trade_date"][:4])
        volume[year] += t["quantity"]
        value[year] += Decimal(t["price"]) * t["quantity"]
    assert sorted(volume) == [2021, 2022, 2023, 2024]
    scale = Decimal(str(DEMO_SCALE))
    for year, fig in YEARS.items():
        if year > 2024:
            continue  # china-2021-2025's (tests/test_simulate_2025.py)
        assert abs(volume[year] - fig.volume_t * scale) <= fig.volume_t * scale / 100, year
        assert abs(value[year] - fig.value_yuan * scale) <= fig.value_yuan * scale / 100, year
        assert summary["years"][str(year)]["volume_t"] == volume[year]
    assert abs(sum(value.values()) - Decimal("43.033e9") * scale) <= Decimal("43.033e9") * scale / 100


def test_price_path_passes_through_the_anchors_within_the_bands(demo_run) -> None:
    _, _, events = demo_run
    trades = _trades(events)
    assert trades[0]["trade_date"] == "2021-07-16" and Decimal(trades[0]["price"]) == OPEN_PRICE
    day_qty: dict[str, int] = defaultdict(int)
    day_value: dict[str, Decimal] = defaultdict(Decimal)
    for t in trades:
        q, price = t["quantity"], Decimal(t["price"])
        assert (t["mode"] == "block") == (q >= rules.BLOCK_MIN_QUANTITY_T)
        if "reference_price" in t:  # every day but the first
            ref, band = Decimal(t["reference_price"]), rules.PRICE_BAND[t["mode"]]
            assert money(ref * (1 - band)) <= price <= money(ref * (1 + band))
        day_qty[t["trade_date"]] += q
        day_value[t["trade_date"]] += price * q
    closes = {d: money(day_value[d] / day_qty[d]) for d in day_qty}
    for day, anchor in ANCHOR_CLOSES.items():
        if day.year <= 2024:
            assert closes[day.isoformat()] == anchor
    assert max(closes, key=lambda d: closes[d]) == PEAK_DATE.isoformat()
    assert min(closes) == "2021-07-16" and max(closes) == "2024-12-31"


def test_units_are_conserved_and_no_holding_goes_negative(demo_run) -> None:
    registry, _, events = demo_run
    held: dict[tuple[str, str, int], int] = defaultdict(int)
    issued: dict[tuple[str, int], int] = defaultdict(int)
    gone: dict[tuple[str, int], int] = defaultdict(int)  # surrendered, cancelled, withdrawn
    for e in events:
        d = e["data"]
        if e["type"] == "AllowancesIssued":
            held[(d["account_id"], d["unit"], d["vintage"])] += d["quantity"]
            issued[(d["unit"], d["vintage"])] += d["quantity"]
        elif e["type"] == "TradeExecuted":
            held[(d["seller"], d["unit"], d["vintage"])] -= d["quantity"]
            held[(d["buyer"], d["unit"], d["vintage"])] += d["quantity"]
            assert held[(d["seller"], d["unit"], d["vintage"])] >= 0
        elif e["type"] in ("AllowancesSurrendered", "AllowancesCancelled", "AllowancesWithdrawn"):
            account = d.get("account_id") or d["firm_id"]
            held[(account, d["unit"], d["vintage"])] -= d["quantity"]
            gone[(d["unit"], d["vintage"])] += d["quantity"]
            assert held[(account, d["unit"], d["vintage"])] >= 0
    for key, total in issued.items():
        assert total == gone[key] + sum(q for (_, u, v), q in held.items() if (u, v) == key)
    live = registry.state.holdings
    assert {k: q for k, q in held.items() if q} == dict(live)


def test_no_firm_resells_on_the_day_it_bought(demo_run) -> None:
    _, _, events = demo_run
    bought: set[tuple[str, str, int]] = set()
    day = None
    for t in _trades(events):
        if t["trade_date"] != day:
            day, bought = t["trade_date"], set()
        assert (t["seller"], t["unit"], t["vintage"]) not in bought
        bought.add((t["buyer"], t["unit"], t["vintage"]))


def test_a_few_firms_fall_short_and_are_penalised_with_a_deduction(demo_run) -> None:
    _, summary, events = demo_run
    penalties = [e["data"] for e in events if e["type"] == "PenaltyAssessed"]
    by_year = defaultdict(list)
    for p in penalties:
        by_year[p["year"]].append(p)
        assert 0 < p["shortfall"] == p["obligation"] - p["surrendered"]  # status B: surrendered less
    assert sorted(by_year) == [2019, 2021, 2023, 2024]
    power = sum(1 for e in events if e["type"] == "FirmRegistered" and e["data"]["sector"] == "power")
    for year, rows in by_year.items():
        assert len(rows) <= max(2, power // 10), year  # a small share
    assert all(p["regime"] == "fixed" and p["fine"] == "20000.00" for p in by_year[2019] + by_year[2021])
    assert all(p["regime"] == "market-multiple" for p in by_year[2023] + by_year[2024])
    deducted = {
        (e["data"]["firm_id"], e["data"]["penalty_year"])
        for e in events
        if e["type"] == "AllowancesWithdrawn" and e["data"]["reason"] == "penalty deduction"
    }
    for p in by_year[2019] + by_year[2021] + by_year[2023]:  # the 2024 shortfalls await 2025's allocation
        assert any(firm == p["firm_id"] for firm, _ in deducted)
    assert summary["unplanned_short"] == {}


def test_new_sectors_are_allocated_their_verified_2024_emissions(demo_run) -> None:
    _, _, events = demo_run
    sectors = {e["data"]["firm_id"]: e["data"]["sector"] for e in events if e["type"] == "FirmRegistered"}
    verified: dict[tuple[str, int], int] = defaultdict(int)  # a firm's verified emissions: its facilities' sum
    for e in events:
        if e["type"] == "EmissionsVerified":
            assert e["data"].get("facility_id"), e["data"]  # every firm verifies facility by facility
            verified[(e["data"]["firm_id"], e["data"]["year"])] += e["data"]["tonnes"]
    new = [f for f, s in sectors.items() if s in rules.NEW_SECTORS]
    assert {sectors[f] for f in new} == set(rules.NEW_SECTORS)
    for f in new:
        issued = [
            e["data"] for e in events if e["type"] == "AllowancesIssued" and e["data"]["account_id"] == f
        ]
        assert [d["basis"] for d in issued] == ["true-up"]
        assert issued[0]["quantity"] == verified[(f, 2024)]
    power_2024 = sum(t for (f, y), t in verified.items() if y == 2024 and sectors[f] == "power")
    new_2024 = sum(t for (f, y), t in verified.items() if y == 2024 and sectors[f] != "power")
    assert 4.5e9 * DEMO_SCALE < power_2024 < 5.5e9 * DEMO_SCALE  # about 5 Gt
    assert 2.7e9 * DEMO_SCALE < new_2024 < 3.3e9 * DEMO_SCALE  # about 3 Gt


def test_events_are_recorded_on_the_simulated_calendar(demo_run) -> None:
    registry, _, events = demo_run
    stamps = [e["recorded_at"] for e in events]
    assert stamps == sorted(stamps)
    assert stamps[0].startswith("2020-12-30") and stamps[-1].startswith("2026-02-06")  # 2024 enforced after its time limit
    assert all(
        e["recorded_at"][:10] == e["data"]["trade_date"] for e in events if e["type"] == "TradeExecuted"
    )
    assert registry.clock().year >= dt.date.today().year  # the caller's clock is given back


def test_demo_is_small_and_reports_progress(demo_run) -> None:
    _, summary, _ = demo_run
    assert summary["events"] == summary["position"] > 1000
    assert summary["regulator"] is None  # an open store: no actor needed to read it
    assert summary["seconds"] < 30
    assert 30 <= sum(summary["firms"].values()) <= 50
    calls = summary["_progress"]
    assert calls and calls[-1][0] == summary["commands"]
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))
    assert all(done <= total for done, total in calls)


@pytest.mark.postgres
def test_the_same_scenario_gives_the_same_ledger_on_sqlite_and_on_postgresql(tmp_path, pg_schema_url) -> None:
    """The two stores hold the same bytes: same chain, same export, same read models (skipped without a server)."""
    stores = [str(tmp_path / "same.db"), pg_schema_url]
    heads = []
    for url in stores:
        registry = Registry(url)
        try:
            simulate(registry, scale=0.002, seed=2)
            heads.append(registry.head())
        finally:
            registry.close()
    assert heads[0] == heads[1]
    for args in (["audit", "export"], ["balances", "--json"], ["market", "--by", "day", "--json"],
                 ["compliance", "--json"], ["history", "P00001", "--json"]):
        sqlite, pg = (invoke(url, *args) for url in stores)
        assert sqlite.exit_code == pg.exit_code == 0, (args, sqlite.exception, pg.exception)
        assert sqlite.stdout == pg.stdout, args
        assert len(sqlite.stdout) > 1000, args  # (a real answer: P00001 has a history)


def test_enforced_run_records_the_entitled_actor_for_each_command(tmp_path) -> None:
    registry = Registry(str(tmp_path / "enforced.db"))
    summary = simulate(registry, scale=0.002, seed=1, enforce=True)
    assert summary["regulator"] == "MEE"
    events = events_of(registry)
    assert events[0]["type"] == "LedgerInitialized" and registry.state.enforced
    actors = defaultdict(set)
    for e in events:
        actors[e["type"]].add(e["actor"])
    assert actors["TradeExecuted"] == {"SEEE"}
    assert actors["EmissionsVerified"] == {"MRV"}
    assert actors["AllowancesIssued"] == {"MEE"}
    assert all(
        a == f"desk-{e['data']['firm_id']}"
        for e in events
        if e["type"] == "AllowancesSurrendered"
        for a in (e["actor"],)
    )


def test_simulate_refuses_a_store_that_holds_events(tmp_path) -> None:
    registry = Registry(str(tmp_path / "used.db"))
    registry.register_firm("F1", "Firm 1", "power", "Hubei")
    with pytest.raises(Refused) as e:
        simulate(registry, scale=SMALL)
    assert e.value.code == "store_not_empty"
    assert registry.head()[0] == 2


@pytest.mark.parametrize("kwargs", [{"scenario": "eu-2005"}, {"scale": 0}, {"scale": 50.0}])
def test_unknown_scenario_or_scale_out_of_range_is_bad_input(tmp_path, kwargs) -> None:
    registry = Registry(str(tmp_path / "bad.db"))
    with pytest.raises(BadInput):
        simulate(registry, **kwargs)
    assert registry.head()[0] == 0


def test_firms_own_facilities_and_are_allocated_per_facility_by_the_registry(demo_run) -> None:
    """Power firms run coal units of every category and size, some with heat, and gas units; the new sectors a
    steel, clinker or aluminium facility each; allocation and exemptions are the registry's, unit by unit."""
    registry, _, events = demo_run
    sectors = {e["data"]["firm_id"]: e["data"]["sector"] for e in events if e["type"] == "FirmRegistered"}
    facilities = {e["data"]["facility_id"]: e["data"] for e in events if e["type"] == "FacilityRegistered"}
    assert {f["firm_id"] for f in facilities.values()} == set(sectors)  # every firm owns facilities
    kinds = {f["kind"] for f in facilities.values()}
    assert kinds == set(rules.FACILITY_KINDS)
    assert any(len([f for f in facilities.values() if f["firm_id"] == firm]) > 1 for firm in sectors)
    issued = [e["data"] for e in events if e["type"] == "AllowancesIssued" and e["data"].get("facilities")]
    units = [u for d in issued if d["basis"] == "true-up" for u in d["facilities"] if "category" in u]
    assert {u["category"] for u in units} == {"I", "II", "III", "IV"}
    assert any(u["heat_gj"] > 0 for u in units)  # CHP units
    assert any("peak_load" in u.get("factors", {}) and u["factors"]["peak_load"] != "1" for u in units)
    assert {u["formula"].split(":")[0] for u in units} >= {"power-2019-2020", "power-2023-p23", "power-2024-p23"}
    bases = {e["data"]["basis"] for e in events if e["type"] == "AllowancesIssued"}
    assert {"gas-unit exemption", "gap-cap exemption", "pre-allocation", "true-up"} <= bases
    coal = [Decimal(f["rated_mw"]) for f in facilities.values() if f["kind"] == "coal"]
    assert min(coal) < 400 <= max(coal)  # both sides of category I's threshold
    st = registry.state
    for (firm, year), total in st.verified.items():  # a firm's verified emissions are its facilities' sum
        assert total[0] == sum(v["tonnes"] for (fac, y), v in st.facility_verified.items()
                               if y == year and facilities[fac]["firm_id"] == firm)


def test_the_desks_expectation_is_what_the_registry_allocated(tmp_path) -> None:
    """firms.py works out each firm's allocation with ledger.formulas to plan its trades; the registry's own
    allocation, from its state, must agree for every firm and year (else desks buy or sell the wrong amounts)."""
    from commands.simulate.china import ChinaScenario

    registry = Registry(str(tmp_path / "expect.db"))
    import random

    sim = ChinaScenario(registry, random.Random(5), SMALL, False, None)
    registry.clock = sim.runner.clock
    sim.run()
    st = registry.state
    checked = 0
    for f in sim.firms:
        for y in range(f.first_year, 2025):
            if f.has_data(y):
                assert st.allocated_in(f.fid, y) == f.allocation(y), (f.fid, y)
                checked += 1
    assert checked > 50
