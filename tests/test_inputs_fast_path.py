"""parse_command's fast path (the models' validators called directly) agrees with pydantic on every input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import BadInput
from ledger.inputs import FAST_PATHS, INPUTS, parse_command

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 3000), st.integers(), st.floats(allow_nan=False),
    st.sampled_from(["", " ", "F0001", " F0001 ", "F 1", "CEA", "CCER", "ccer", "2024", " 2024", "2024-06-03",
                     "2024-6-3", "88.5", "88.50", "88.505", "0", "-1", "1e3", "100000", "listed", "block",
                     "auction", "voluntary", "expiry", "auction ", "x" * 70, "1.10", "7", "+7"]),
    st.text(max_size=8), st.just(Decimal("88.5")), st.lists(st.integers(), max_size=2),
)
GOOD = {  # valid variants per field name, so that most drawn inputs pass and exercise normalization
    "account_id": ["F0001", "T.1:a-b_c"], "from_account": ["F0001"], "to_account": ["F0002"], "buyer": ["F0001"],
    "seller": ["F0002"], "firm_id": ["F0001"], "unit": ["CEA", "CCER"], "vintage": [2024, "2024", " 2030 "],
    "year": [2024, "2025"], "quantity": [1, "12", " 7 ", 5.0, "+3"], "price": ["88.5", "88.50", 60, " 1 "],
    "mode": ["listed", "block"], "date": ["2024-06-03", " 2024-06-03"], "basis": ["auction", "offset"],
    "reason": ["voluntary", "expiry"], "kind": ["trading", "government"], "holder": ["Ms X ", "A"],
    "fine_multiple": ["5", "7.5", "10.00", 6],
}
FAST = sorted(name for name, model in INPUTS.items() if FAST_PATHS[model] is not None)


def _pydantic(name: str, raw: dict[str, Any]) -> Any:
    model = INPUTS[name]
    try:
        return ("ok", list(model.model_validate(raw).args().items()))
    except Exception as e:  # noqa: BLE001
        return ("error", type(e).__name__)


@settings(max_examples=300)
@given(st.sampled_from(FAST), st.data())
def test_fast_path_returns_what_pydantic_returns_or_defers_to_it(name: str, data: st.DataObject) -> None:
    fields = list(INPUTS[name].model_fields)
    keys = data.draw(st.lists(st.sampled_from([*fields, "extra"]), unique=True))
    raw = {k: data.draw(st.sampled_from(GOOD.get(k, [None])) | VALUES if k in GOOD else VALUES) for k in keys}
    fast = FAST_PATHS[INPUTS[name]](dict(raw))
    expected = _pydantic(name, dict(raw))
    if fast is not None:
        assert expected == ("ok", list(fast.items()))
    else:
        assert expected[0] == "error" or FAST_PATHS[INPUTS[name]] is None, (raw, expected)


def test_fast_path_covers_the_hot_commands_and_errors_stay_pydantics() -> None:
    assert {"transfer", "trade", "issue", "surrender", "cancel"} <= set(FAST)
    good = {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": "2024", "quantity": " 5 "}
    assert list(parse_command("transfer", good).items()) == [
        ("from_account", "F1"), ("to_account", "F2"), ("unit", "CEA"), ("vintage", 2024), ("quantity", 5)]
    for raw, message in [({**good, "quantity": 0}, "quantity must be positive, got 0"),
                         ({**good, "colour": "red"}, "unknown argument 'colour' for transfer"),
                         ({k: v for k, v in good.items() if k != "unit"}, "transfer needs 'unit'")]:
        try:
            parse_command("transfer", raw)
        except BadInput as e:
            assert e.message == message
        else:
            raise AssertionError(f"{raw} was accepted")


def test_remembered_values_are_kept_per_field_and_type_and_refusals_are_not_remembered() -> None:
    """The fast path remembers validated values (a bulk import repeats them); a remembered 1 must not let
    True through (equal and hashing alike in Python), nor a value of one field pass for another."""
    good = {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": 2024, "quantity": 1}
    for _ in range(2):  # the second time from memory
        assert parse_command("transfer", dict(good))["quantity"] == 1
    for bad, field in [(True, "quantity"), (1.0, "quantity"), (2024, "unit"), ("F1 ", "to_account"), (0, "quantity")]:
        for _ in range(2):
            try:
                parse_command("transfer", {**good, field: bad})
            except BadInput:
                continue
            raise AssertionError(f"{field}={bad!r} passed")
