"""The rules every append obeys (issue 2), run in-process on the Registry.

Each refusal is checked for its stable code, and for appending nothing: the head
position and the holdings are what they were before.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from ledgerkit import Clock, events, head, refusal

from ledger import rules
from ledger.errors import BadInput, LedgerError, Refused
from ledger.events import CATALOGUE, canonical_bytes, validate_event
from ledger.model import LedgerState
from ledger.registry import Command, Registry

V = 2024


@pytest.fixture
def reg(registry: Registry) -> Registry:
    """Two power firms, an open 2024, and 1,000 t of CEA 2024 in F1's account."""
    registry.register_firm("F1", "Huaneng Unit 1", "power", "Hubei")
    registry.register_firm("F2", "Datang Unit 7", "power", "Hebei")
    registry.open_year(V, "2025-12-31")
    registry.issue("F1", "CEA", V, 1000, "pre-allocation")
    return registry


def refused_whole(
    reg: Registry, fn: Any, *args: Any, code: str | None = None, exc: type = Refused, **kwargs: Any
) -> LedgerError:
    """The command is refused with `exc` (and `code`), and nothing at all is appended."""
    before = reg.head()
    holdings = dict(reg.state.holdings)
    e = refusal(fn, *args, **kwargs)
    assert isinstance(e, exc), f"{type(e).__name__}: {e}"
    if code is not None:
        assert e.code == code, f"code {e.code!r}: {e}"
    assert reg.head() == before
    assert reg.state.holdings == holdings
    return e


def holding(reg: Registry, account: str, unit: str = "CEA", vintage: int = V) -> int:
    return reg.state.holding(account, unit, vintage)


# ---- accounts and firms exist, and are open -------------------------------------------------------


def test_transfer_to_an_unknown_account_is_refused(reg: Registry) -> None:
    e = refused_whole(reg, reg.transfer, "F1", "NOPE", "CEA", V, 1, code="unknown_account")
    assert "NOPE" in str(e)


def test_transfer_from_an_unknown_account_is_refused(reg: Registry) -> None:
    refused_whole(reg, reg.transfer, "NOPE", "F1", "CEA", V, 1, code="unknown_account")


def test_issue_into_an_unknown_account_is_refused(reg: Registry) -> None:
    refused_whole(reg, reg.issue, "NOPE", "CEA", V, 1, "pre-allocation", code="unknown_account")


def test_trade_with_an_unknown_buyer_is_refused(reg: Registry) -> None:
    refused_whole(
        reg, reg.trade, "NOPE", "F1", "CEA", V, 1, "80.00", "listed", "2024-06-03", code="unknown_account"
    )


def test_cancel_from_an_unknown_account_is_refused(reg: Registry) -> None:
    refused_whole(reg, reg.cancel, "NOPE", "CEA", V, 1, code="unknown_account")


def test_surrender_and_verification_for_an_unregistered_firm_are_refused(reg: Registry) -> None:
    refused_whole(reg, reg.surrender, "F9", V, "CEA", V, 1, code="unknown_firm")
    refused_whole(reg, reg.verify_emissions, "F9", V, 100, code="unknown_firm")


def test_a_closed_account_is_refused_by_the_open_account_check() -> None:
    st = LedgerState()
    st.apply(
        {
            "position": 1,
            "type": "AccountOpened",
            "data": {"account_id": "T1", "holder": "X", "kind": "trading"},
        }
    )
    assert st.check_account_open("T1").account_id == "T1"
    st.accounts["T1"].open = False
    with pytest.raises(Refused) as e:
        st.check_account_open("T1")
    assert e.value.code == "account_closed"


def test_a_trading_account_is_opened_once(reg: Registry) -> None:
    reg.open_account("T1", "F1", "trading")
    refused_whole(reg, reg.open_account, "T1", "F2", "trading", code="duplicate_account")
    refused_whole(reg, reg.open_account, "F1", "F1", "trading", code="duplicate_account")


def test_a_compliance_account_is_opened_only_by_registering_a_firm(reg: Registry) -> None:
    refused_whole(reg, reg.open_account, "C9", "F1", "compliance", code="compliance_account")


def test_registering_a_firm_opens_its_compliance_account_with_the_firm_id(registry: Registry) -> None:
    out = registry.register_firm("F7", "Unit 7", "power", "Hubei")
    assert [e["type"] for e in out.events] == ["FirmRegistered", "AccountOpened"]
    assert out.events[1]["data"] == {"account_id": "F7", "holder": "F7", "kind": "compliance"}


def test_a_firm_id_registers_once(reg: Registry) -> None:
    e = refused_whole(reg, reg.register_firm, "F1", "again", "power", "Hubei", code="duplicate_firm")
    assert "F1" in str(e)
    assert reg.state.firms["F1"].name == "Huaneng Unit 1"


def test_a_firm_id_that_is_already_an_account_is_refused(reg: Registry) -> None:
    reg.open_account("T1", "F1", "trading")
    refused_whole(reg, reg.register_firm, "T1", "Unit", "power", "Hubei", code="duplicate_account")


def test_unknown_sector_is_bad_input(reg: Registry) -> None:
    refused_whole(reg, reg.register_firm, "F3", "Unit", "tourism", "Hubei", exc=BadInput)


# ---- quantities: positive whole tonnes within bounds ------------------------------------------------


@pytest.mark.parametrize("quantity", [0, -5, "1.5", 1.5, "ten", 10_000_000_001])
def test_issue_of_a_quantity_that_is_not_positive_whole_tonnes_within_bounds_is_bad_input(
    reg: Registry, quantity: Any
) -> None:
    e = refused_whole(reg, reg.issue, "F1", "CEA", V, quantity, "pre-allocation", exc=BadInput)
    assert "quantity" in str(e)


@pytest.mark.parametrize("quantity", [0, -1, "2.5"])
def test_transfer_of_a_non_positive_or_fractional_quantity_is_bad_input(reg: Registry, quantity: Any) -> None:
    refused_whole(reg, reg.transfer, "F1", "F2", "CEA", V, quantity, exc=BadInput)


def test_unknown_unit_kind_is_bad_input(reg: Registry) -> None:
    refused_whole(reg, reg.issue, "F1", "XYZ", V, 1, "pre-allocation", exc=BadInput)


def test_ccer_is_issued_only_as_an_offset_and_cea_never_is(reg: Registry) -> None:
    refused_whole(reg, reg.issue, "F1", "CCER", V, 10, "pre-allocation", code="basis_unit")
    refused_whole(reg, reg.issue, "F1", "CEA", V, 10, "offset", code="basis_unit")
    reg.issue("F1", "CCER", V, 10, "offset")
    assert holding(reg, "F1", "CCER") == 10


# ---- holdings cover every debit: no negative holding, ever -------------------------------------------


def test_transfer_beyond_holdings_is_refused(reg: Registry) -> None:
    e = refused_whole(reg, reg.transfer, "F1", "F2", "CEA", V, 1001, code="insufficient_holding")
    assert "1000" in str(e) and "1001" in str(e)
    assert holding(reg, "F1") == 1000 and holding(reg, "F2") == 0


def test_transfer_of_exactly_the_holding_empties_the_account(reg: Registry) -> None:
    reg.transfer("F1", "F2", "CEA", V, 1000)
    assert holding(reg, "F1") == 0 and holding(reg, "F2") == 1000


def test_transfer_of_another_vintage_than_held_is_refused(reg: Registry) -> None:
    refused_whole(reg, reg.transfer, "F1", "F2", "CEA", V - 1, 1, code="insufficient_holding")
    refused_whole(reg, reg.transfer, "F1", "F2", "CCER", V, 1, code="insufficient_holding")


def test_transfer_to_the_same_account_is_refused(reg: Registry) -> None:
    refused_whole(reg, reg.transfer, "F1", "F1", "CEA", V, 1, code="same_account")


def test_cancel_beyond_holdings_is_refused(reg: Registry) -> None:
    refused_whole(reg, reg.cancel, "F1", "CEA", V, 1001, code="insufficient_holding")
    reg.cancel("F1", "CEA", V, 10)
    assert holding(reg, "F1") == 990


def test_trade_beyond_the_sellers_holdings_is_refused(reg: Registry) -> None:
    refused_whole(
        reg,
        reg.trade,
        "F2",
        "F1",
        "CEA",
        V,
        1001,
        "80.00",
        "listed",
        "2024-06-03",
        code="insufficient_holding",
    )


def test_surrender_beyond_holdings_is_refused(reg: Registry) -> None:
    reg.verify_emissions("F1", V, 5000)
    refused_whole(reg, reg.surrender, "F1", V, "CEA", V, 1001, code="insufficient_holding")


# ---- prices -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("price", ["0", "0.00", "-88.50", "88.505", "abc", 88.5])
def test_trade_price_not_positive_or_with_more_than_two_places_is_bad_input(
    reg: Registry, price: Any
) -> None:
    refused_whole(reg, reg.trade, "F2", "F1", "CEA", V, 1, price, "listed", "2024-06-03", exc=BadInput)


def test_trade_price_is_recorded_with_exactly_two_places(reg: Registry) -> None:
    out = reg.trade("F2", "F1", "CEA", V, 1, "88.5", "listed", "2024-06-03")
    assert out.events[0]["data"]["price"] == "88.50"


# ---- trades: parties, lot sizes, price bands -------------------------------------------------------


def test_a_trade_between_an_account_and_itself_is_refused(reg: Registry) -> None:
    refused_whole(reg, reg.trade, "F1", "F1", "CEA", V, 1, "80.00", "listed", "2024-06-03", code="self_trade")


@pytest.fixture
def big(reg: Registry) -> Registry:
    """F1 holds 1,001,000 t, enough for block trades."""
    reg.issue("F1", "CEA", V, 1_000_000, "auction")
    return reg


def test_listed_trade_of_100000_t_or_more_is_refused(big: Registry) -> None:
    refused_whole(
        big,
        big.trade,
        "F2",
        "F1",
        "CEA",
        V,
        rules.BLOCK_MIN_QUANTITY_T,
        "80.00",
        "listed",
        "2024-06-03",
        code="lot_size",
    )
    big.trade("F2", "F1", "CEA", V, 99_999, "80.00", "listed", "2024-06-03")
    assert holding(big, "F2") == 99_999


def test_block_trade_under_100000_t_is_refused(big: Registry) -> None:
    refused_whole(
        big, big.trade, "F2", "F1", "CEA", V, 99_999, "80.00", "block", "2024-06-03", code="lot_size"
    )
    big.trade("F2", "F1", "CEA", V, 100_000, "80.00", "block", "2024-06-03")
    assert holding(big, "F2") == 100_000


def test_the_first_trading_day_has_no_price_band(big: Registry) -> None:
    big.trade("F2", "F1", "CEA", V, 10, "80.00", "listed", "2024-06-03")
    big.trade("F2", "F1", "CEA", V, 10, "200.00", "listed", "2024-06-03")  # +150% on the same first day
    big.trade("F2", "F1", "CEA", V, 10, "20.00", "listed", "2024-06-03")
    assert holding(big, "F2") == 30


def test_listed_price_band_is_ten_percent_of_the_previous_days_vwap_close(big: Registry) -> None:
    # day one: 100 t at 70.00 and 100 t at 90.00: VWAP 80.00 (the last price, 90.00, is not the close)
    big.trade("F2", "F1", "CEA", V, 100, "70.00", "listed", "2024-06-03")
    big.trade("F2", "F1", "CEA", V, 100, "90.00", "listed", "2024-06-03")
    for price in ("88.01", "71.99", "98.00"):
        e = refused_whole(
            big, big.trade, "F2", "F1", "CEA", V, 1, price, "listed", "2024-06-04", code="price_band"
        )
        assert "72.00-88.00" in str(e)
    big.trade("F2", "F1", "CEA", V, 1, "88.00", "listed", "2024-06-04")
    big.trade("F2", "F1", "CEA", V, 1, "72.00", "listed", "2024-06-04")
    # later trades of the same day are still held to the previous day's close, not today's prices
    refused_whole(big, big.trade, "F2", "F1", "CEA", V, 1, "88.01", "listed", "2024-06-04", code="price_band")


def test_block_price_band_is_thirty_percent_of_the_previous_close(big: Registry) -> None:
    big.trade("F2", "F1", "CEA", V, 100, "80.00", "listed", "2024-06-03")
    refused_whole(
        big, big.trade, "F2", "F1", "CEA", V, 100_000, "104.01", "block", "2024-06-04", code="price_band"
    )
    refused_whole(
        big, big.trade, "F2", "F1", "CEA", V, 100_000, "55.99", "block", "2024-06-04", code="price_band"
    )
    big.trade("F2", "F1", "CEA", V, 100_000, "104.00", "block", "2024-06-04")
    big.trade("F2", "F1", "CEA", V, 100_000, "56.00", "block", "2024-06-04")
    assert holding(big, "F2") == 200_100


def test_the_band_follows_the_close_of_the_latest_previous_trading_day(big: Registry) -> None:
    big.trade("F2", "F1", "CEA", V, 100, "80.00", "listed", "2024-06-03")
    big.trade("F2", "F1", "CEA", V, 100, "88.00", "listed", "2024-06-05")  # close of 06-05: 88.00
    refused_whole(big, big.trade, "F2", "F1", "CEA", V, 1, "97.00", "listed", "2024-06-10", code="price_band")
    out = big.trade("F2", "F1", "CEA", V, 1, "96.80", "listed", "2024-06-10")  # 88.00 x 1.10
    assert out.events[0]["data"]["reference_price"] == "88.00"


def test_auction_trades_have_no_price_band(big: Registry) -> None:
    big.trade("F2", "F1", "CEA", V, 100, "80.00", "listed", "2024-06-03")
    big.trade("F2", "F1", "CEA", V, 100, "150.00", "auction", "2024-06-04")
    assert holding(big, "F2") == 200


def test_each_unit_has_its_own_previous_close(big: Registry) -> None:
    big.issue("F1", "CCER", V, 1000, "offset")
    big.trade("F2", "F1", "CEA", V, 100, "80.00", "listed", "2024-06-03")
    # the first CCER trading day has no band, whatever CEA closed at
    big.trade("F2", "F1", "CCER", V, 100, "30.00", "listed", "2024-06-04")
    refused_whole(
        big, big.trade, "F2", "F1", "CCER", V, 1, "33.01", "listed", "2024-06-05", code="price_band"
    )


def test_a_trade_dated_before_the_last_trading_day_is_refused(big: Registry) -> None:
    big.trade("F2", "F1", "CEA", V, 100, "80.00", "listed", "2024-06-04")
    refused_whole(big, big.trade, "F2", "F1", "CEA", V, 1, "80.00", "listed", "2024-06-03", code="trade_date")


# ---- surrender ----------------------------------------------------------------------------------------


def test_surrender_for_a_year_that_is_not_open_is_refused(reg: Registry) -> None:
    reg.verify_emissions("F1", 2023, 500)
    refused_whole(reg, reg.surrender, "F1", 2023, "CEA", 2023, 1, code="year_not_open")


def test_surrender_for_a_closed_year_is_refused(reg: Registry) -> None:
    reg.verify_emissions("F1", V, 500)
    reg.surrender("F1", V, "CEA", V, 100)
    reg.clock = Clock("2026-01-05T09:00:00")
    reg.close_year(V, correct_by="2026-01-20")
    reg.surrender("F1", V, "CEA", V, 100)  # late, within the time limit to correct
    reg.clock.set("2026-01-21T00:00:00")
    e = refused_whole(reg, reg.surrender, "F1", V, "CEA", V, 100, code="year_closed")
    assert "closed (the time limit to correct ran until 2026-01-20)" in str(e)


def test_surrender_of_a_vintage_later_than_the_year_is_refused(reg: Registry) -> None:
    reg.issue("F1", "CEA", V + 1, 500, "pre-allocation")
    reg.verify_emissions("F1", V, 500)
    refused_whole(reg, reg.surrender, "F1", V, "CEA", V + 1, 100, code="vintage_too_late")


def test_surrender_of_an_earlier_vintage_is_allowed(reg: Registry) -> None:
    reg.issue("F1", "CEA", V - 1, 500, "pre-allocation")
    reg.verify_emissions("F1", V, 500)
    reg.surrender("F1", V, "CEA", V - 1, 200)
    assert holding(reg, "F1", vintage=V - 1) == 300


def test_surrender_before_verification_is_refused(reg: Registry) -> None:
    refused_whole(reg, reg.surrender, "F1", V, "CEA", V, 1, code="not_verified")


def test_surrender_beyond_the_obligation_is_refused(reg: Registry) -> None:
    reg.verify_emissions("F1", V, 300)
    reg.surrender("F1", V, "CEA", V, 200)
    refused_whole(reg, reg.surrender, "F1", V, "CEA", V, 101, code="beyond_obligation")
    reg.surrender("F1", V, "CEA", V, 100)


def test_ccer_surrendered_for_a_year_is_at_most_five_percent_of_verified_emissions(reg: Registry) -> None:
    reg.issue("F1", "CCER", V, 1000, "offset", project_registered="2024-03-01")
    reg.verify_emissions("F1", V, 900)  # 5% of 900 t = 45 t
    e = refused_whole(reg, reg.surrender, "F1", V, "CCER", V, 46, code="ccer_limit")
    assert "45" in str(e)
    reg.surrender("F1", V, "CCER", V, 40)
    refused_whole(reg, reg.surrender, "F1", V, "CCER", V, 6, code="ccer_limit")  # 40 + 6 > 45
    reg.surrender("F1", V, "CCER", V, 5)
    assert holding(reg, "F1", "CCER") == 955


# ---- command ids ------------------------------------------------------------------------------------


def test_a_repeated_command_id_appends_nothing_and_returns_the_first_result(reg: Registry) -> None:
    first = reg.transfer("F1", "F2", "CEA", V, 100, command_id="t-1")
    before = reg.head()
    again = reg.transfer("F1", "F2", "CEA", V, 100, command_id="t-1")
    assert again.replayed and not first.replayed
    assert again.result == first.result
    assert (again.first_position, again.position) == (first.first_position, first.position)
    assert reg.head() == before
    assert holding(reg, "F2") == 100


def test_a_command_id_reused_with_different_arguments_is_refused(reg: Registry) -> None:
    reg.transfer("F1", "F2", "CEA", V, 100, command_id="t-1")
    refused_whole(reg, reg.transfer, "F1", "F2", "CEA", V, 101, command_id="t-1", code="command_id_reused")
    refused_whole(reg, reg.cancel, "F1", "CEA", V, 100, command_id="t-1", code="command_id_reused")


def test_the_id_of_a_refused_command_stays_free(reg: Registry) -> None:
    refusal(reg.transfer, "F1", "F2", "CEA", V, 5000, command_id="t-9")
    out = reg.transfer("F1", "F2", "CEA", V, 50, command_id="t-9")
    assert not out.replayed and holding(reg, "F2") == 50


def test_command_ids_survive_reopening_the_store(reg: Registry, store_url: str) -> None:
    first = reg.transfer("F1", "F2", "CEA", V, 100, command_id="t-1")
    other = Registry(store_url)
    try:
        again = other.transfer("F1", "F2", "CEA", V, 100, command_id="t-1")
        assert again.replayed and again.result == first.result
        assert other.head() == reg.head()
    finally:
        other.close()


# ---- batches ----------------------------------------------------------------------------------------


def test_a_batch_stopped_by_a_refusal_records_the_commands_before_it_only(reg: Registry) -> None:
    p0 = head(reg)
    results = reg.execute_batch(
        [
            Command(
                "transfer",
                {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": V, "quantity": 10},
            ),
            Command(
                "transfer",
                {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": V, "quantity": 9999},
            ),
            Command(
                "transfer",
                {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": V, "quantity": 20},
            ),
        ]
    )
    assert len(results) == 2 and isinstance(results[1], Refused)
    assert head(reg) == p0 + 1 and holding(reg, "F2") == 10


def test_a_batch_sees_the_effect_of_its_earlier_commands(reg: Registry) -> None:
    results = reg.execute_batch(
        [
            Command(
                "transfer",
                {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": V, "quantity": 600},
            ),
            Command(
                "transfer",
                {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": V, "quantity": 600},
            ),
            Command(
                "transfer",
                {"from_account": "F2", "to_account": "F1", "unit": "CEA", "vintage": V, "quantity": 600},
            ),
        ],
        on_refusal="continue",
    )
    assert [isinstance(r, Refused) for r in results] == [False, True, False]
    assert holding(reg, "F1") == 1000 and holding(reg, "F2") == 0


# ---- every emitted event fits the catalogue -------------------------------------------------------------


def _every_kind_of_event(reg: Registry) -> None:
    reg.register_firm("P1", "Coal 600MW", "power", "Shanxi")
    reg.register_firm("S1", "Steel", "steel", "Hebei")
    reg.open_account("T1", "S1", "trading")
    reg.open_year(2023, "2024-12-31")
    reg.verify_emissions("P1", 2023, 850_000, 1_000_000, "MWh")
    reg.open_year(2024, "2025-12-31")
    reg.open_year("2021-2022", "2023-12-31")
    reg.allocate("P1", 2024, "pre")
    reg.verify_emissions("S1", 2024, 50_000, 40_000, "t")
    reg.allocate("S1", 2024, "true-up")
    reg.issue("S1", "CCER", 2024, 1000, "offset", project_registered="2024-03-01")
    reg.transfer("S1", "T1", "CEA", 2024, 100)
    reg.trade("S1", "P1", "CEA", 2024, 1000, "70.00", "listed", "2025-11-10")
    reg.cancel("T1", "CEA", 2024, 10)
    reg.verify_emissions("P1", 2024, 700_000, 600_000, "MWh")
    reg.allocate("P1", 2024, "true-up")  # 600,000 x 0.7910 < 70% of 850,000: a clawback; and a gap-cap exemption
    reg.register_firm("P2", "Gas", "power", "Jiangsu")
    reg.register_facility("P2-G1", "P2", "gas")
    reg.verify_emissions("P2", 2024, 40_000, facility="P2-G1", generated_mwh=100_000)
    reg.allocate("P2", 2024, "true-up")  # 32,880 by the benchmark, topped up to 40,000 (gas-unit exemption)
    reg.publish_plan("bp-2025", [2025], "a test plan", new_sectors={"balance_values": {"steel": "1.5"}})
    reg.surrender("S1", 2024, "CCER", 2024, 100)
    reg.surrender("P1", 2024, "CEA", 2024, 100_000)
    reg.clock = Clock("2026-01-05T09:00:00")
    reg.close_year(2024, correct_by="2026-01-31")
    reg.clock.set("2026-02-01T09:00:00")
    reg.year_enforce(2024)  # P1 did not correct: its shortfall is deducted
    reg.open_year(2025, "2026-12-31")
    reg.allocate("P1", 2025, "pre")  # with the penalty deduction
    reg.freeze_account("T1", "investigation")
    reg.unfreeze_account("T1")
    reg.open_account("GOV-HUBEI", "Hubei", "government")
    reg.close_account("T1", sweep_to="GOV-HUBEI")
    reg.reverse(reg.issue("GOV-HUBEI", "CEA", 2025, 5, "auction").position, "issued by mistake")
    reg.penalty_record("P1", "22", "600000", 2024, reason="falsified coal samples")
    reg.penalty_cut("P1", 2025, "0.5")  # it refused to correct them
    reg.register_firm("P3", "Coal 300MW", "power", "Hubei")  # after 2024 closed: nothing owed, may carry over
    reg.issue("P3", "CEA", 2023, 1000, "auction")
    reg.carry_over("P3", 2023, 400)  # in the window (the clock is 2026-02-01)


def test_every_emitted_event_validates_against_the_catalogue(registry: Registry) -> None:
    _every_kind_of_event(registry)
    envs = events(registry)
    seen = set()
    for env in envs:
        validate_event(env)  # raises if the event does not fit
        seen.add(env["type"])
        assert isinstance(env["data"].get("quantity", 1), int)
        for key in ("price", "fine", "reference_price"):
            if env["data"].get(key) is not None:
                assert Decimal(env["data"][key]).as_tuple().exponent == -2
    assert [e["position"] for e in envs] == list(range(1, len(envs) + 1))
    # everything except the authority events (tested in test_authority.py) and the four-eyes ones, which need
    # an enforced store (tests/test_operations.py validates them), occurs here
    assert seen == set(CATALOGUE) - {"LedgerInitialized", "ActorAdded", "ActorKeyRegistered", "AccountPolicySet",
                                     "TransferPending", "TransferApproved", "TransferCancelled"}


def test_validate_event_rejects_events_that_do_not_fit_the_catalogue() -> None:
    good = {
        "position": 1,
        "type": "AllowancesTransferred",
        "recorded_at": "2024-06-03T09:30:00Z",
        "actor": "operator",
        "command_id": "c",
        "data": {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": 2024, "quantity": 5},
    }
    validate_event(good)
    for bad in (
        {**good, "type": "Nonsense"},
        {**good, "data": {**good["data"], "quantity": 0}},
        {**good, "data": {**good["data"], "unit": "XYZ"}},
        {**good, "data": {**good["data"], "extra": 1}},
        {k: v for k, v in good.items() if k != "actor"},
    ):
        with pytest.raises(ValueError):
            validate_event(bad)


# ---- the write side's snapshot is a cache of the fold, never a second truth ------------------------------


def test_state_from_a_snapshot_equals_the_fold_of_every_event(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ledger.registry as registry_module

    monkeypatch.setattr(registry_module, "SNAPSHOT_EVERY", 7)
    reg = Registry(store_url)
    try:
        _every_kind_of_event(reg)
        reg.trade(
            "P1", "S1", "CEA", 2024, 10, "70.00", "listed", "2025-11-11"
        )  # T+1 and market state live on
        snapshot = reg.recorder.load_snapshot()
        assert snapshot is not None and 0 < snapshot[0] < reg.head()[0]
    finally:
        reg.close()
    reopened = Registry(store_url)  # loads the snapshot, then catches up
    try:
        folded = LedgerState()
        for env in events(reopened):
            folded.advance(env, canonical_bytes(env))
        assert reopened.state == folded  # every field, as a dataclass
        # and it decides as the fold would: the 10 t P1 bought on 2025-11-11 are not sellable that day
        st = reopened.state
        assert st.sellable("P1", "CEA", 2024, "2025-11-11") == st.holding("P1", "CEA", 2024) - 10
    finally:
        reopened.close()


def test_a_trade_dated_after_the_registry_clock_is_refused_and_later_trades_still_go_through(
        reg: Registry) -> None:
    clock = Clock("2024-06-03T09:30:00")
    reg.clock = clock
    refused_whole(reg, reg.trade, "F2", "F1", "CEA", V, 10, "80.00", "listed", "9999-12-31",
                  code="trade_date_in_future")
    refused_whole(reg, reg.trade, "F2", "F1", "CEA", V, 10, "80.00", "listed", "2024-06-05",
                  code="trade_date_in_future")
    reg.trade("F2", "F1", "CEA", V, 10, "80.00", "listed", "2024-06-04")  # the next day: zones ahead of UTC
    clock.set("2024-06-05T02:00:00")
    reg.trade("F2", "F1", "CEA", V, 10, "80.00", "listed", "2024-06-05")
    assert holding(reg, "F2") == 20
