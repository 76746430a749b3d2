"""Properties of the value types and of the canonical event encoding (docs/events.md: prices are exact decimals
with two places, never floats; quantities whole tonnes; the hash chain covers canonical bytes)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from ledger.errors import BadInput
from ledger.events import CATALOGUE, GENESIS_HASH, canonical_bytes, chain_hash, decode, validate_event
from ledger.units import MAX_PRICE_YUAN, MAX_QUANTITY_T, fmt_money, money, parse_price, parse_quantity

CENT = Decimal("0.01")
prices_in_range = st.integers(1, int(MAX_PRICE_YUAN * 100)).map(lambda c: Decimal(c).scaleb(-2))


# ---- prices ----------------------------------------------------------------------------------------
@given(prices_in_range, st.sampled_from(("{:f}", "{:.2f}")))
def test_a_positive_price_with_at_most_two_places_parses_to_itself(price: Decimal, form: str) -> None:
    text = form.format(price.normalize() if form == "{:f}" else price)
    parsed = parse_price(text)
    assert parsed == price
    assert isinstance(parsed, Decimal) and parsed.as_tuple().exponent == -2
    assert parse_price(parsed) == parsed and parse_price(fmt_money(parsed)) == parsed


@given(st.integers(1, int(MAX_PRICE_YUAN)))
def test_a_whole_number_price_parses_to_two_places(price: int) -> None:
    assert str(parse_price(price)) == f"{price}.00"
    assert str(parse_price(str(price))) == f"{price}.00"


@given(prices_in_range, st.integers(1, 9), st.integers(1, 6))
def test_a_price_with_more_than_two_places_is_bad_input(price: Decimal, digit: int, extra: int) -> None:
    text = f"{price:.2f}" + "0" * (extra - 1) + str(digit)
    with pytest.raises(BadInput):
        parse_price(text)
    with pytest.raises(BadInput):
        parse_price(Decimal(text))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_float_price_is_always_bad_input(price: float) -> None:
    with pytest.raises(BadInput):
        parse_price(price)


@given(st.integers(-(10**6), 0).map(lambda c: Decimal(c).scaleb(-2)))
def test_a_price_of_zero_or_less_is_bad_input(price: Decimal) -> None:
    with pytest.raises(BadInput):
        parse_price(f"{price:.2f}")


@given(st.integers(int(MAX_PRICE_YUAN * 100) + 1, 10**12).map(lambda c: Decimal(c).scaleb(-2)))
def test_a_price_above_the_limit_is_bad_input(price: Decimal) -> None:
    with pytest.raises(BadInput):
        parse_price(f"{price:.2f}")


@given(st.text(max_size=12))
def test_parse_price_on_any_text_returns_a_two_place_decimal_or_bad_input(text: str) -> None:
    try:
        p = parse_price(text)
    except BadInput:
        return
    assert isinstance(p, Decimal) and p.as_tuple().exponent == -2 and CENT <= p <= MAX_PRICE_YUAN
    assert p == Decimal(text.strip())  # never rounded: a price the parser accepts is exactly what was written


@given(st.decimals(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=6))
def test_money_rounds_half_up_to_two_places(value: Decimal) -> None:
    m = money(value)
    assert m.as_tuple().exponent == -2
    assert abs(m - value) <= Decimal("0.005")
    assert (m - value == Decimal("0.005")) or abs(m - value) < Decimal("0.005")  # halves go up


# ---- quantities -------------------------------------------------------------------------------------
@given(st.integers(1, MAX_QUANTITY_T))
def test_a_quantity_in_bounds_parses_to_the_same_int(q: int) -> None:
    assert parse_quantity(q) == q and type(parse_quantity(q)) is int
    assert parse_quantity(str(q)) == q


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=MAX_QUANTITY_T + 1)))
def test_a_quantity_out_of_bounds_is_bad_input(q: int) -> None:
    with pytest.raises(BadInput):
        parse_quantity(q)
    with pytest.raises(BadInput):
        parse_quantity(str(q))


@given(
    st.one_of(
        st.booleans(),
        st.sampled_from((float("nan"), float("inf"), -float("inf"))),
        st.integers(-(10**9), 10**9).map(lambda i: i + 0.5),
        st.integers(-(10**9), 10**9).map(lambda i: Decimal(i) + Decimal("0.25")),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )
)
def test_a_fraction_or_non_number_quantity_is_bad_input(q: Any) -> None:
    with pytest.raises(BadInput):
        parse_quantity(q)


@given(st.text(max_size=14))
def test_parse_quantity_on_any_text_returns_a_whole_positive_number_or_bad_input(text: str) -> None:
    try:
        q = parse_quantity(text)
    except BadInput:
        return
    assert type(q) is int and 1 <= q <= MAX_QUANTITY_T


# ---- canonical encoding ---------------------------------------------------------------------------------
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))


def json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=5))


json_values = st.recursive(
    json_scalars,
    json_containers,
    max_leaves=20,
)
envelopes = st.fixed_dictionaries(
    {
        "position": st.integers(1, 10**9),
        "type": st.sampled_from(sorted(CATALOGUE)),
        "recorded_at": st.just("2024-06-03T09:31:02Z"),
        "actor": st.text(min_size=1, max_size=16),
        "command_id": st.text(min_size=1, max_size=32),
        "data": st.dictionaries(st.text(max_size=12), json_values, max_size=8),
    }
)


def reordered(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every dict's insertion order shuffled."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: reordered(v, rng) for k, v in items}
    if isinstance(value, list):
        return [reordered(v, rng) for v in value]
    return value


@given(envelopes)
def test_decode_inverts_canonical_bytes(envelope: dict[str, Any]) -> None:
    assert decode(canonical_bytes(envelope)) == envelope


@given(
    envelopes,
    st.randoms(use_true_random=False),
    st.text(min_size=64, max_size=64, alphabet="0123456789abcdef"),
)
def test_canonical_bytes_and_the_chain_hash_do_not_depend_on_dict_order(
    envelope: dict[str, Any], rng: random.Random, prev: str
) -> None:
    shuffled = reordered(envelope, rng)
    assert canonical_bytes(shuffled) == canonical_bytes(envelope)
    for p in (GENESIS_HASH, prev):
        assert chain_hash(p, canonical_bytes(shuffled)) == chain_hash(p, canonical_bytes(envelope))


@given(envelopes, envelopes)
def test_different_events_have_different_canonical_bytes(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert (canonical_bytes(a) == canonical_bytes(b)) == (a == b)


trades = st.fixed_dictionaries(
    {
        "trade_id": st.from_regex(r"T-[0-9]{6}", fullmatch=True),
        "buyer": st.sampled_from(("F0001", "F0002")),
        "seller": st.sampled_from(("F0003", "T1")),
        "unit": st.sampled_from(("CEA", "CCER")),
        "vintage": st.integers(2019, 2030),
        "quantity": st.integers(1, MAX_QUANTITY_T),
        "price": prices_in_range.map(str),
        "mode": st.sampled_from(("listed", "block", "auction")),
        "trade_date": st.dates().map(lambda d: d.isoformat()),
    }
)


@given(trades, st.integers(1, 10**6), st.randoms(use_true_random=False))
def test_a_catalogue_event_survives_encoding_and_still_validates(
    data: dict[str, Any], position: int, rng: random.Random
) -> None:
    env = {
        "position": position,
        "type": "TradeExecuted",
        "recorded_at": "2024-06-03T09:31:02Z",
        "actor": "exchange:SEEE",
        "command_id": "c-1",
        "data": data,
    }
    validate_event(env)
    back = decode(canonical_bytes(reordered(env, rng)))
    assert back == env
    validate_event(back)
    assert isinstance(back["data"]["price"], str) and isinstance(back["data"]["quantity"], int)
