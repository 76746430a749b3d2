"""The event catalogue: the ledger's public contract, read top to bottom by an auditor.

Every recorded event is an envelope
    {position, type, recorded_at, actor, command_id, data[, signature]}
whose canonical bytes (orjson, sorted keys) are what is stored and what the hash
chain covers: hash_n = sha256(hash_{n-1} || canonical bytes of event n).

`data` of each type is described by one frozen pydantic model below. Quantities
are whole tonnes (JSON integers); prices and money are strings of exact decimals
with two places; dates are ISO 8601. The registry builds `data` as plain dicts on
its hot path; `validate_event` checks any event against its model, and the test
suite checks every event the registry emits.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

GENESIS_HASH = hashlib.sha256(b"carbon-ledger genesis").hexdigest()

Tonnes = Annotated[int, Field(gt=0)]
Money = Annotated[str, StringConstraints(pattern=r"^-?\d+\.\d{2}$")]
Unit = Literal["CEA", "CCER"]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class EventData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # built on first validation: the CLI starts faster


class LedgerInitialized(EventData):
    """A store created by `init --regulator`: roles are enforced from here on, for ever."""

    regulator: Id
    require_signatures: bool
    public_key: str | None = None


class ActorAdded(EventData):
    """An actor and its role; a firm's actor acts only for that firm's accounts."""

    actor_id: Id
    role: Literal["regulator", "exchange", "verifier", "firm"]
    firm_id: Id | None = None
    public_key: str | None = None


class ActorKeyRegistered(EventData):
    """An actor's Ed25519 public key (hex of the raw 32 bytes); signatures are checked against it."""

    actor_id: Id
    public_key: str


class FirmRegistered(EventData):
    """A covered (or voluntary) firm; registering also opens its compliance account, id = firm id."""

    firm_id: Id
    name: str
    sector: str
    region: str
    unit_type: str | None = None


class AccountOpened(EventData):
    """A holding account: a firm's compliance account, a trading account, or a government account."""

    account_id: Id
    holder: str
    kind: Literal["compliance", "trading", "government"]


class ComplianceYearOpened(EventData):
    """A compliance period (one year, or a cycle such as 2021-2022) and its surrender deadline."""

    year: int
    surrender_deadline: str | None = None
    last_year: int | None = None
    period: str | None = None


class AllowancesIssued(EventData):
    """Units created into an account. Allocations carry every input so an auditor can recompute them."""

    account_id: Id
    unit: Unit
    vintage: int
    quantity: Tonnes
    basis: Literal["pre-allocation", "true-up", "auction", "offset", "reserve"]
    year: int | None = None
    step: str | None = None
    rule_version: str | None = None
    unit_type: str | None = None
    benchmark: str | None = None
    benchmark_unit: str | None = None
    output: int | None = None
    output_unit: str | None = None
    base_year: int | None = None
    share: str | None = None
    factors: dict[str, str] | None = None
    computed: int | None = None
    previously_allocated: int | None = None
    verified_emissions: int | None = None


class AllowancesTransferred(EventData):
    """Units moved between two accounts outside the exchange."""

    from_account: Id
    to_account: Id
    unit: Unit
    vintage: int
    quantity: Tonnes


class TradeExecuted(EventData):
    """A trade matched by the exchange and settled by the registry."""

    trade_id: Id
    buyer: Id
    seller: Id
    unit: Unit
    vintage: int
    quantity: Tonnes
    price: Money
    mode: Literal["listed", "block", "auction"]
    trade_date: str
    reference_price: Money | None = None


class EmissionsVerified(EventData):
    """A firm's verified emissions for a year (the latest verification of a year counts)."""

    firm_id: Id
    year: int
    tonnes: Annotated[int, Field(ge=0)]
    output: int | None = None
    output_unit: str | None = None


class AllowancesSurrendered(EventData):
    """Units given up against a firm's obligation for a compliance period."""

    firm_id: Id
    year: int
    unit: Unit
    vintage: int
    quantity: Tonnes


class AllowancesCancelled(EventData):
    """Units retired from an account without counting toward an obligation."""

    account_id: Id
    unit: Unit
    vintage: int
    quantity: Tonnes
    reason: str


class AllowancesWithdrawn(EventData):
    """Units taken back by the regulator: a true-up clawback, a penalty deduction or a correction."""

    account_id: Id
    unit: Unit
    vintage: int
    quantity: Tonnes
    reason: Literal["true-up clawback", "penalty deduction", "correction"]
    year: int | None = None
    firm_id: Id | None = None
    outstanding: int | None = None
    computed: int | None = None
    previously_allocated: int | None = None
    benchmark: str | None = None
    output: int | None = None
    factors: dict[str, str] | None = None
    penalty_year: int | None = None


class ComplianceYearClosed(EventData):
    """The period is closed: statuses are fixed, no more surrenders for it."""

    year: int


class PenaltyAssessed(EventData):
    """A shortfall at close: the fine (multiple x shortfall x the month-before-deadline price) and the deduction."""

    firm_id: Id
    year: int
    shortfall: Tonnes
    fine: Money
    deduction: Annotated[int, Field(ge=0)]
    price: Money | None = None
    price_month: str | None = None
    multiple: str | None = None
    regime: str | None = None
    obligation: int | None = None
    surrendered: int | None = None

    @field_validator("fine")
    @classmethod
    def _fine_not_negative(cls, v: str) -> str:
        if Decimal(v) < 0:
            raise ValueError("fine is negative")
        return v


CATALOGUE: dict[str, type[EventData]] = {
    cls.__name__: cls
    for cls in (
        LedgerInitialized,
        ActorAdded,
        ActorKeyRegistered,
        FirmRegistered,
        AccountOpened,
        ComplianceYearOpened,
        AllowancesIssued,
        AllowancesTransferred,
        TradeExecuted,
        EmissionsVerified,
        AllowancesSurrendered,
        AllowancesCancelled,
        AllowancesWithdrawn,
        ComplianceYearClosed,
        PenaltyAssessed,
    )
}

ENVELOPE_KEYS = ("position", "type", "recorded_at", "actor", "command_id", "data")
TOPIC_PREFIX = "carbon_ledger:"


def validate_event(envelope: dict[str, Any]) -> EventData:
    """Check one event envelope against the catalogue; raises ValueError if it does not fit."""
    for key in ENVELOPE_KEYS:
        if key not in envelope:
            raise ValueError(f"event lacks {key!r}")
    model = CATALOGUE.get(envelope["type"])
    if model is None:
        raise ValueError(f"unknown event type {envelope['type']!r}")
    return model.model_validate(envelope["data"])


def canonical_bytes(envelope: dict[str, Any]) -> bytes:
    """The bytes that are stored and hashed: compact JSON with sorted keys, independent of dict order."""
    return orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)


def decode(state: bytes) -> dict[str, Any]:
    return orjson.loads(state)


def chain_hash(prev_hash: str, state: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + state).hexdigest()


def sorted_form(x: Any) -> Any:
    """A canonical form of a dumped state (a projection's, the write-side snapshot's), for comparing two: dict
    keys and list rows in sorted order (a set's order, and a dict's insertion order, are not the state)."""
    if isinstance(x, dict):
        return sorted((str(k), sorted_form(v)) for k, v in x.items())
    if isinstance(x, list):
        items = [sorted_form(v) for v in x]
        if items and all(isinstance(v, list) for v in items):
            return sorted(items, key=repr)
        return items
    return x
