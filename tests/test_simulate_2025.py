"""The scenario china-2021-2025: 2021-2024 as before, the 2025 trading year as published (docs/domain.md), the 2025
compliance year by the 2025-2026 draft plan, and carry-over of the 2019-2024 vintages into 2025 by net sellers."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
from ledgerkit import events as events_of
from ledgerkit import invoke

from commands.scenario import SCENARIO_NAMES
from commands.simulate import ANCHOR_CLOSES, SCENARIOS, YEARS, simulate
from commands.simulate.figures import trading_days
from ledger import rules
from ledger.registry import Registry
from ledger.units import money

SCALE = 0.05  # about 170 firms


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, dict, list[dict]]:
    registry = Registry(str(tmp_path_factory.mktemp("sim2025") / "china.db"))
    summary = simulate(registry, "china-2021-2025", scale=SCALE, seed=0)
    return registry, summary, events_of(registry)


def _trades(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e["type"] == "TradeExecuted"]


def test_every_yearly_figure_to_2025_is_within_one_percent(run) -> None:
    _, summary, events = run
    volume: dict[int, int] = defaultdict(int)
    value: dict[int, Decimal] = defaultdict(Decimal)
    for t in _trades(events):
        year = int(t["trade_date"][:4])
        volume[year] += t["quantity"]
        value[year] += Decimal(t["price"]) * t["quantity"]
    assert sorted(volume) == [2021, 2022, 2023, 2024, 2025]
    scale = Decimal(str(SCALE))
    assert YEARS[2025].volume_t == 235_000_000 and YEARS[2025].value_yuan == Decimal("14630000000")
    for year, fig in YEARS.items():
        assert abs(volume[year] - fig.volume_t * scale) <= fig.volume_t * scale / 100, year
        assert abs(value[year] - fig.value_yuan * scale) <= fig.value_yuan * scale / 100, year
        assert summary["years"][str(year)]["volume_t"] == volume[year]
    assert abs(sum(volume.values()) - 865_000_000 * scale) <= 865_000_000 * scale / 100  # to the end of 2025
    assert abs(sum(value.values()) - Decimal("57.663e9") * scale) <= Decimal("57.663e9") * scale / 100


def test_2025_closes_at_its_anchor_on_its_243_trading_days(run) -> None:
    _, _, events = run
    day_qty: dict[str, int] = defaultdict(int)
    day_value: dict[str, Decimal] = defaultdict(Decimal)
    for t in _trades(events):
        day_qty[t["trade_date"]] += t["quantity"]
        day_value[t["trade_date"]] += Decimal(t["price"]) * t["quantity"]
    closes = {d: money(day_value[d] / day_qty[d]) for d in day_qty}
    for day, anchor in ANCHOR_CLOSES.items():
        assert closes[day.isoformat()] == anchor
    assert closes["2025-12-31"] == Decimal("74.63")
    days_2025 = sorted(d for d in closes if d.startswith("2025"))
    assert len(trading_days(dt.date(2025, 1, 1), dt.date(2025, 12, 31))) == 243
    assert len(days_2025) >= 240  # (a day may see no trade at this scale)
    average = sum(day_value[d] for d in days_2025) / sum(day_qty[d] for d in days_2025)
    assert abs(average - Decimal("62.26")) < Decimal("0.7")  # 14.630 bn / 235 Mt (published average 62.36)


def test_net_sellers_carry_over_within_their_limit_in_the_window(run) -> None:
    registry, summary, events = run
    start, end = rules.CARRY_OVER_NET_SALES_DATES
    net: dict[str, int] = defaultdict(int)
    for t in _trades(events):
        if start <= t["trade_date"] <= end and t["unit"] == "CEA" and t["vintage"] in rules.CARRY_OVER_VINTAGES:
            net[t["seller"]] += t["quantity"]
            net[t["buyer"]] -= t["quantity"]
    carried = [e for e in events if e["type"] == "AllowancesCarriedOver"]
    assert len({e["data"]["firm_id"] for e in carried}) >= 10
    opens, closes = rules.CARRY_OVER_WINDOW
    by_firm: dict[str, int] = defaultdict(int)
    for e in carried:
        d = e["data"]
        assert opens <= e["recorded_at"][:10] <= closes
        assert d["from_vintage"] in rules.CARRY_OVER_VINTAGES and d["to_vintage"] == 2025
        assert net[d["firm_id"]] > 0 and d["net_sales"] == net[d["firm_id"]]
        by_firm[d["firm_id"]] += d["quantity"]
    for fid, q in by_firm.items():
        assert q <= rules.CARRY_OVER_BASE_T + rules.CARRY_OVER_RATIO * net[fid]
    assert summary["carried_over"] == {"firms": len(by_firm), "tonnes": sum(by_firm.values())}
    penalised = {(e["data"]["firm_id"], e["data"]["year"]) for e in events if e["type"] == "PenaltyAssessed"}
    assert not {f for f, y in penalised if y in (2023, 2024)} & set(by_firm)  # they may not apply
    st = registry.state
    for fid, q in by_firm.items():  # the 2025 allowances they now hold count their conversion
        assert st.holding(fid, "CEA", 2025) >= q


def test_the_2025_year_follows_the_draft_plan_facility_by_facility(run) -> None:
    registry, _, events = run
    issued = [e["data"] for e in events if e["type"] == "AllowancesIssued" and e["data"].get("year") == 2025]
    pre = [d for d in issued if d["basis"] == "pre-allocation"]
    assert pre and all(d["rule_version"] == "power-2025-p25d-draft" for d in pre)
    verified_2024 = {(e["data"]["facility_id"]): e["data"]["tonnes"] for e in events
                     if e["type"] == "EmissionsVerified" and e["data"]["year"] == 2024}
    for d in pre:  # P25d: 50% of each unit's 2024 verified emissions, floored per unit
        assert d["quantity"] == sum(int(Decimal("0.5") * verified_2024[u["facility_id"]]) for u in d["facilities"])
    trued = [d for d in issued if d["basis"] == "true-up"]
    units = [u for d in trued for u in d["facilities"]]
    assert units and all(u["formula"].startswith("power-2025-p25d-draft") for u in units)
    assert any(u.get("factors", {}).get("peak_load", "1") != "1" for u in units)  # the new curve, F under 50%
    deducted = [e["data"] for e in events if e["type"] == "AllowancesWithdrawn"
                and e["data"]["reason"] == "penalty deduction" and e["data"]["penalty_year"] == 2024]
    assert deducted and all(d["vintage"] == 2025 for d in deducted)  # 2024 shortfalls, from 2025's allocation
    st = registry.state
    new = [f for f, firm in st.firms.items() if firm.sector in rules.NEW_SECTORS]
    assert new and all((f, 2025) in st.verified for f in new)  # verified; allocated once BP are published


def test_the_cli_offers_both_scenarios(tmp_path) -> None:
    assert SCENARIO_NAMES == list(SCENARIOS)
    r = invoke(str(tmp_path / "c.db"), "simulate", "china-2021-2025", "--scale", "0.002", "--seed", "3")
    assert r.exit_code == 0, r.output
    assert "china-2021-2025" in r.stdout
    r = invoke(str(tmp_path / "d.db"), "simulate", "china-2026")
    assert r.exit_code == 2
