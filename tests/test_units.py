"""Value types (ledger.units): whole tonnes, exact 2-place prices, vintages, periods, ids.

Each bad value is BadInput, with one line naming what was wrong."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ledger import units
from ledger.errors import BadInput


@pytest.mark.parametrize(
    "raw, expected",
    [(1, 1), ("1000", 1000), (" 42 ", 42), (units.MAX_QUANTITY_T, units.MAX_QUANTITY_T)],
)
def test_whole_positive_tonnes_are_accepted(raw: object, expected: int) -> None:
    assert units.parse_quantity(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        0,
        "0",
        -5,
        "-5",
        1.5,
        "1.5",
        "1e3",
        "abc",
        "",
        None,
        True,
        units.MAX_QUANTITY_T + 1,
        str(units.MAX_QUANTITY_T + 1),
    ],
)
def test_quantity_that_is_not_a_positive_whole_tonnage_within_bounds_is_bad_input(raw: object) -> None:
    with pytest.raises(BadInput):
        units.parse_quantity(raw)


def test_zero_tonnes_is_allowed_only_where_emissions_may_be_zero() -> None:
    assert units.parse_tonnes_nonnegative(0) == 0
    assert units.parse_tonnes_nonnegative("0") == 0
    with pytest.raises(BadInput):
        units.parse_tonnes_nonnegative(-1)
    with pytest.raises(BadInput):
        units.parse_quantity(0)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("88.50", "88.50"),
        ("88.5", "88.50"),
        ("88", "88.00"),
        (88, "88.00"),
        (Decimal("0.01"), "0.01"),
        ("100000.00", "100000.00"),
    ],
)
def test_price_is_an_exact_two_place_decimal(raw: object, expected: str) -> None:
    p = units.parse_price(raw)
    assert isinstance(p, Decimal)
    assert str(p) == expected


@pytest.mark.parametrize(
    "raw", ["0", "0.00", "-1.00", "88.505", "88.", ".5", "1e2", "abc", 88.5, True, "100000.01"]
)
def test_price_not_positive_or_with_more_than_two_places_or_a_float_is_bad_input(raw: object) -> None:
    with pytest.raises(BadInput):
        units.parse_price(raw)


def test_money_rounds_half_up_to_fen() -> None:
    assert units.money(Decimal("1.005")) == Decimal("1.01")
    assert units.money(Decimal("1.004")) == Decimal("1.00")
    assert units.fmt_money(Decimal(3575000)) == "3575000.00"


@pytest.mark.parametrize("raw", [units.MIN_VINTAGE - 1, units.MAX_VINTAGE + 1, "20x4", "", True, 2024.5])
def test_vintage_outside_the_range_or_not_a_year_is_bad_input(raw: object) -> None:
    with pytest.raises(BadInput):
        units.parse_vintage(raw)


def test_vintage_accepts_a_year_as_int_or_text() -> None:
    assert units.parse_vintage(2024) == 2024
    assert units.parse_vintage("2021") == 2021


def test_period_is_one_year_or_a_forward_cycle_of_at_most_five_years() -> None:
    assert units.parse_period("2024") == (2024, 2024)
    assert units.parse_period("2021-2022") == (2021, 2022)
    assert units.period_label(2021, 2022) == "2021-2022"
    assert units.period_label(2024, 2024) == "2024"
    for bad in ("2022-2021", "2019-2025", "24", "2024-", "2024/2025"):
        with pytest.raises(BadInput):
            units.parse_period(bad)


@pytest.mark.parametrize(
    "raw", ["", "has space", "semi;colon", "x" * (units.MAX_ID_LENGTH + 1), "-lead", 5, None]
)
def test_bad_identifiers_are_refused(raw: object) -> None:
    with pytest.raises(BadInput):
        units.parse_id(raw)


def test_identifiers_may_hold_letters_digits_and_separators() -> None:
    assert units.parse_id("exchange:SEEE") == "exchange:SEEE"
    assert units.parse_id("F0001_a.b-c") == "F0001_a.b-c"


def test_choices_and_dates_are_checked() -> None:
    assert units.parse_choice("CEA", units.UNIT_KINDS, "unit") == "CEA"
    with pytest.raises(BadInput, match="unit 'XYZ' must be one of: CEA, CCER"):
        units.parse_choice("XYZ", units.UNIT_KINDS, "unit")
    assert units.parse_date("2024-06-03") == dt.date(2024, 6, 3)
    with pytest.raises(BadInput):
        units.parse_date("2024-13-01")


@pytest.mark.parametrize("raw", [3.0, 12.5, "١٢", "１２"])
def test_floats_and_non_ascii_digits_are_not_tonnes(raw: object) -> None:
    with pytest.raises(BadInput):
        units.parse_quantity(raw)


@pytest.mark.parametrize("raw", ["١٢.٥٠", "８８.５０"])
def test_non_ascii_digits_are_not_a_price(raw: str) -> None:
    with pytest.raises(BadInput):
        units.parse_price(raw)
