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


class FacilityRegistered(EventData):
    """A firm's facility: a generating unit (coal with its rated power, unconventional coal, gas) or a new
    sector's steelmaking entity, clinker line or electrolysis process. Allocation is computed per facility."""

    facility_id: Id
    firm_id: Id
    kind: Literal["coal", "coal-unconventional", "gas", "steel", "clinker", "aluminium"]
    rated_mw: str | None = None


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
    """Units created into an account. Allocations carry every input so an auditor can recompute them: for a
    firm with facilities, `facilities` lists each unit's inputs (category, activity data, benchmarks, factors,
    formula version) and its floored allocation. The exemptions are their own issuance: `gas-unit exemption`
    (a gas unit topped up to its verified emissions) and `gap-cap exemption` (a firm topped up to 80%)."""

    account_id: Id
    unit: Unit
    vintage: int
    quantity: Tonnes
    basis: Literal["pre-allocation", "true-up", "auction", "offset", "reserve", "gas-unit exemption",
                   "gap-cap exemption"]
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
    firm_id: Id | None = None  # an allocation issued to the province's account for this firm (--to-authority)
    facilities: list[dict[str, Any]] | None = None
    project_registered: str | None = None  # CCER: the project's registration date (YYYY-MM-DD), when known


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
    """A firm's verified emissions for a year (the latest verification of a year counts); with facility_id,
    one facility's emissions and activity data, and the firm's emissions are the sum over its facilities."""

    firm_id: Id
    year: int
    tonnes: Annotated[int, Field(ge=0)]
    output: int | None = None
    output_unit: str | None = None
    facility_id: Id | None = None
    generated_mwh: int | None = None
    supplied_mwh: int | None = None
    heat_gj: int | None = None
    load_factor: str | None = None
    intensity: str | None = None


class AllowancesSurrendered(EventData):
    """Units given up against a firm's obligation for a compliance period; with `from_account`, by forced
    compliance: the regulator surrenders them from that account (the province's) on the firm's behalf."""

    firm_id: Id
    year: int
    unit: Unit
    vintage: int
    quantity: Tonnes
    from_account: Id | None = None
    eligible: Annotated[int, Field(gt=0)] | None = None  # CCER: how many are of projects registered from 22 Jan 2024


class AllowancesCarriedOver(EventData):
    """`carry-over apply` (P23 annex 5): `quantity` CEA of `from_vintage` (2019-2024) in the firm's compliance
    account become vintage `to_vintage` (2025), checked against the firm's limit T = 10,000 + 1.5 x `net_sales`
    (at most its holding of those vintages), `limit`, of which `converted` were carried over before."""

    firm_id: Id
    unit: Literal["CEA"]
    from_vintage: int
    to_vintage: int
    quantity: Tonnes
    limit: Annotated[int, Field(ge=0)]
    net_sales: Annotated[int, Field(ge=0)]
    converted: Annotated[int, Field(ge=0)]


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
    reason: Literal["true-up clawback", "penalty deduction", "correction", "allocation cut"]
    year: int | None = None
    firm_id: Id | None = None
    outstanding: int | None = None
    computed: int | None = None
    previously_allocated: int | None = None
    benchmark: str | None = None
    output: int | None = None
    factors: dict[str, str] | None = None
    penalty_year: int | None = None
    basis: str | None = None  # a true-up clawback of an exemption names it


class ComplianceYearClosed(EventData):
    """The period is closed: statuses are fixed. A firm short at close may still surrender for it (late, status
    marked `*`) until `correct_by`, the time limit it was ordered to correct by (IR art. 24)."""

    year: int
    correct_by: str | None = None


class DeductionOrdered(EventData):
    """After the time limit to correct (`year enforce`): a firm still short has the shortfall deducted from its
    next allocation (IR art. 24)."""

    firm_id: Id
    year: int
    shortfall: Tonnes
    deduction: Tonnes
    correct_by: str
    article: str = "IR art. 24"


class ComplianceYearEnforced(EventData):
    """The time limit to correct has passed and the deductions are ordered: no more surrenders for the period."""

    year: int
    correct_by: str


class PenaltyRecorded(EventData):
    """A penalty the regulator decided outside the surrender cycle: IR art. 21 (reporting, 50,000-500,000 yuan)
    or art. 22 (data fraud: 5-10 x the illegal gains, or 500,000-2,000,000 yuan without gains)."""

    firm_id: Id
    article: Literal["21", "22"]
    fine: Money
    year: int | None = None
    illegal_gains: Money | None = None
    reason: str | None = None


class AllocationCutOrdered(EventData):
    """IR art. 22: a firm that refuses to correct falsified data has its allocation of `year` cut by `share`
    (50-100%) of what was allocated for it; withdrawn from the firm's holding of that vintage (an AllowancesWithdrawn
    with reason `allocation cut` follows), and what it does not hold (`outstanding`) from its later allocations."""

    firm_id: Id
    year: int
    share: str
    allocated: Tonnes
    cut: Tonnes
    outstanding: Annotated[int, Field(ge=0)] = 0


class PenaltyAssessed(EventData):
    """A shortfall at close: the fine (multiple x shortfall x the month-before-deadline price) and the order to
    correct by `correct_by`. `deduction` is 0 (the deduction is a DeductionOrdered after the time limit); stores
    recorded before the enforcement lifecycle carry the deduction here."""

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
    correct_by: str | None = None

    @field_validator("fine")
    @classmethod
    def _fine_not_negative(cls, v: str) -> str:
        if Decimal(v) < 0:
            raise ValueError("fine is negative")
        return v


class AccountFrozen(EventData):
    """The regulator froze an account: it can receive units (and be surrendered from by forced compliance)
    but not send them; with `until`, the freeze lapses after that day."""

    account_id: Id
    reason: Literal["judicial", "investigation", "default"]
    until: str | None = None


class AccountUnfrozen(EventData):
    """The regulator lifted an account's freeze."""

    account_id: Id


class AccountClosed(EventData):
    """An account closed for good: it held nothing (its units swept to `swept_to` by the transfers just
    before this event, if any) and had no pending transfer."""

    account_id: Id
    swept_to: Id | None = None


class AccountPolicySet(EventData):
    """How many people an outgoing transfer from the account needs (2: a second actor of the firm approves)."""

    account_id: Id
    approvals: Annotated[int, Field(ge=1, le=2)]


class TransferPending(EventData):
    """A transfer from a four-eyes account, waiting for a second person: its units are reserved until it is
    approved, cancelled or expires (at `expires_at`, the registry's time)."""

    transfer_id: Id
    from_account: Id
    to_account: Id
    unit: Unit
    vintage: int
    quantity: Tonnes
    initiator: Id
    expires_at: str


class TransferApproved(EventData):
    """A second actor approved a pending transfer: the AllowancesTransferred that follows moves its units."""

    transfer_id: Id
    approver: Id


class TransferCancelled(EventData):
    """A pending transfer withdrawn (by its firm or the regulator): its reserved units are free again."""

    transfer_id: Id
    by: Id


class EntryReversed(EventData):
    """The regulator undid the issuance, transfer, surrender or verification at `reversed_position` (which stays
    in the log). An issuance's units leave `account_id`; a transfer's go back (`from_account` is the original's
    receiver); a surrender's return to `account_id`; a verification gives way to the one it replaced
    (`tonnes`, `output`, `output_unit` of `restores_position`), or to none."""

    reversed_position: Annotated[int, Field(gt=0)]
    reversed_type: Literal["AllowancesIssued", "AllowancesTransferred", "AllowancesSurrendered", "EmissionsVerified"]
    reason: str
    account_id: Id | None = None
    from_account: Id | None = None
    to_account: Id | None = None
    firm_id: Id | None = None
    unit: Unit | None = None
    vintage: int | None = None
    quantity: Tonnes | None = None
    basis: str | None = None
    year: int | None = None
    tonnes: Annotated[int, Field(ge=0)] | None = None
    output: int | None = None
    output_unit: str | None = None
    restores_position: int | None = None
    facility_id: Id | None = None  # a facility's verification: the one it replaced is restored, or none
    eligible: Annotated[int, Field(ge=0)] | None = None  # a CCER surrender's eligible units, given back as such


class PlanPublished(EventData):
    """A regulator's allocation plan for years the code does not ship (or figures it lacks, such as the new
    sectors' balance values): laid over the shipped plan of each year and used from then on."""

    version: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    years: list[int]
    source: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    power: dict[str, Any] | None = None
    new_sectors: dict[str, Any] | None = None


CATALOGUE: dict[str, type[EventData]] = {
    cls.__name__: cls
    for cls in (
        LedgerInitialized,
        ActorAdded,
        ActorKeyRegistered,
        FirmRegistered,
        FacilityRegistered,
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
        AccountFrozen,
        AccountUnfrozen,
        AccountClosed,
        AccountPolicySet,
        TransferPending,
        TransferApproved,
        TransferCancelled,
        EntryReversed,
        PlanPublished,
        DeductionOrdered,
        ComplianceYearEnforced,
        PenaltyRecorded,
        AllocationCutOrdered,
        AllowancesCarriedOver,
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
