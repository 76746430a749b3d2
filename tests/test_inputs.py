"""One validation layer: each field's rule is declared once, as a type in ledger/inputs.py whose allowed
values come from ledger/units.py; the CLI's help and the import schema read them from there."""

from __future__ import annotations

import json

import pytest
from ledgerkit import run_main

from ledger import inputs, rules, units


def branch(schema: dict, command: str) -> dict:
    (b,) = [b for b in schema["oneOf"] if b["properties"]["command"] == {"const": command}]
    return b


def enum(prop: dict) -> list[str]:
    return prop["enum"] if "enum" in prop else next(a["enum"] for a in prop["anyOf"] if "enum" in a)


def test_the_import_schema_names_every_command_and_the_allowed_values_of_units(tmp_path) -> None:
    r = run_main(str(tmp_path / "s.db"), "import", "--schema")
    assert r.code == 0, r.err
    schema = json.loads(r.out)
    assert [b["title"] for b in schema["oneOf"]] == list(inputs.INPUTS)
    trade = branch(schema, "trade")
    assert enum(trade["properties"]["unit"]) == list(units.UNIT_KINDS)
    assert enum(trade["properties"]["mode"]) == list(units.TRADE_MODES)
    assert set(trade["required"]) == {"command", "command_id", "buyer", "seller", "unit", "vintage", "quantity",
                                      "price", "mode", "date"}
    assert enum(branch(schema, "firm register")["properties"]["unit_type"]) == list(rules.UNIT_TYPES)
    assert enum(branch(schema, "cancel")["properties"]["reason"]) == list(units.CANCEL_REASONS)
    assert branch(schema, "transfer")["additionalProperties"] is False
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("command, option, values", [
    (["trade"], "--mode", units.TRADE_MODES), (["issue"], "--basis", units.ISSUE_BASES),
    (["cancel"], "--reason", units.CANCEL_REASONS), (["firm", "register"], "--sector", units.SECTORS),
    (["emissions", "verify"], "--output-unit", units.OUTPUT_UNITS), (["transfer"], "--unit", units.UNIT_KINDS),
])
def test_the_cli_help_lists_the_values_the_input_model_allows(tmp_path, command, option, values) -> None:
    r = run_main(str(tmp_path / "s.db"), *command, "--help")
    text = " ".join(r.out.split())
    assert option in text
    for v in values:
        assert v in text, (option, v)
    field = option.removeprefix("--").replace("-", "_")
    model = inputs.INPUTS[" ".join(command)]
    assert inputs.choices(model, field) == tuple(values)


def _declared_rules(info) -> list:
    """The "before" validators a field's type declares (on the field, or on the type inside `| None`)."""
    import typing

    from pydantic import BeforeValidator

    found = [m for m in info.metadata if isinstance(m, BeforeValidator)]
    for arg in typing.get_args(info.annotation):
        found += [m for m in typing.get_args(arg)[1:] if isinstance(m, BeforeValidator)]
    return found


def test_every_field_of_every_command_has_one_declared_rule_or_is_a_plain_flag() -> None:
    for model in inputs.INPUTS.values():
        for name, info in model.model_fields.items():
            if info.annotation is bool:
                continue
            assert len(_declared_rules(info)) == 1, (model.__name__, name)


def test_the_fast_path_covers_the_plain_commands() -> None:
    """Fields of plain str or int rules go through their rules without pydantic (bulk imports)."""
    for name in ("transfer", "trade", "issue", "surrender", "cancel", "account open"):
        assert inputs.FAST_PATHS[inputs.INPUTS[name]] is not None, name
    assert inputs._field_rule(inputs.Allocate.model_fields["factors"]) is None  # a dict: pydantic's path
