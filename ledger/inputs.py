"""Command inputs: one pydantic model per command, shared by the CLI, `import` and the simulator.

Each model turns raw input (CLI strings or JSON values) into normalized JSON-able
arguments, or raises BadInput with one line naming the field. Normalized
arguments are what a command's signature covers and what its digest hashes.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from ledger import plans, rules, units
from ledger.errors import BadInput
from ledger.fastpath import _fast_path, _field_rule  # noqa: F401 - _field_rule: read by the tests


class CommandInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # built on first use: CLI start

    def args(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


# ---- the field rules: each declared once, as a type; the allowed values come from ledger.units --------------
class Choices:
    """Marks a field type with its allowed values: the CLI's help and the import schema's enum read them."""

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        out = handler(schema)
        out["enum"] = list(self.values)
        return out


def _rule(parser: Callable[..., Any], *a: Any) -> BeforeValidator:
    """A ledger.units parser as a pydantic "before" validator: its BadInput becomes pydantic's ValueError."""
    def check(value: Any) -> Any:
        try:
            return parser(value, *a)
        except BadInput as e:
            raise ValueError(str(e)) from None

    return BeforeValidator(check)


def _choice(values: tuple[str, ...], what: str) -> Any:
    return Annotated[str, _rule(units.parse_choice, values, what), Choices(values)]


def _iso_date(value: Any, what: str) -> str:
    return units.parse_date(value, what).isoformat()


def _period(value: Any) -> str:
    return units.period_label(*units.parse_period(value))


def _price(value: Any) -> str:
    return str(units.parse_price(value))


def _fine_multiple(value: Any) -> str:
    lo, hi = rules.PENALTY_MULTIPLE_RANGE
    m = units.parse_price(value, "fine multiple")
    if not lo <= m <= hi:
        raise BadInput(f"fine multiple {m} must be from {lo} to {hi}")
    return format(m.normalize(), "f")  # "10", never "1E+1"


def _factors(value: Any) -> dict[str, str] | None:
    if not value:
        return None
    out = {}
    for name, raw in dict(value).items():
        if name not in rules.FACTOR_BOUNDS:
            raise BadInput(f"factor {name!r} must be one of: {', '.join(rules.FACTOR_BOUNDS)}")
        lo, hi = rules.FACTOR_BOUNDS[name]
        try:
            f = units.Decimal(str(raw))
        except ArithmeticError:
            raise BadInput(f"factor {name}={raw!r} is not a number") from None
        if not f.is_finite():
            raise BadInput(f"factor {name}={raw!r} is not a number")
        if not lo <= f <= hi:
            raise BadInput(f"factor {name}={raw} must be from {lo} to {hi}")
        out[name] = str(f)
    return out


def _to_authority(value: Any) -> bool | None:
    if value in (None, False, "false"):
        return None  # one normal form: absent
    if value in (True, "true"):
        return True
    raise BadInput(f"to_authority {value!r} must be true or false")


def _approvals(value: Any) -> int:
    if isinstance(value, bool) or str(value).strip() not in ("1", "2"):
        raise BadInput(f"--approvals {value!r} must be 1 or 2")
    return int(str(value).strip())


ActorId = Annotated[str, _rule(units.parse_id, "actor id")]
FirmId = Annotated[str, _rule(units.parse_id, "firm id")]
AccountId = Annotated[str, _rule(units.parse_id, "account id")]
Buyer = Annotated[str, _rule(units.parse_id, "buyer")]
Seller = Annotated[str, _rule(units.parse_id, "seller")]
Name = Annotated[str, _rule(units.parse_text, "name")]
Region = Annotated[str, _rule(units.parse_text, "region")]
Holder = Annotated[str, _rule(units.parse_text, "holder")]
PublicKey = Annotated[str, _rule(units.parse_public_key)]
RegulatorKey = Annotated[str, _rule(units.parse_public_key, "the regulator's public key")]
Role = _choice(units.ROLES, "role")
Sector = _choice(units.SECTORS, "sector")
UnitType = _choice(rules.UNIT_TYPES, "unit type")
AccountKind = _choice(units.ACCOUNT_KINDS, "kind")
Unit = _choice(units.UNIT_KINDS, "unit")
IssueBasis = _choice(units.ISSUE_BASES, "basis")
TradeMode = _choice(units.TRADE_MODES, "mode")
CancelReason = _choice(units.CANCEL_REASONS, "reason")
Step = _choice(units.ALLOCATION_STEPS, "step")
OutputUnit = _choice(units.OUTPUT_UNITS, "output unit")
Vintage = Annotated[int, _rule(units.parse_vintage)]
Year = Annotated[int, _rule(units.parse_year)]
Quantity = Annotated[int, _rule(units.parse_quantity)]
Tonnes = Annotated[int, _rule(units.parse_tonnes_nonnegative, "tonnes")]
Output = Annotated[int, _rule(units.parse_tonnes_nonnegative, "output")]
Period = Annotated[str, _rule(_period)]
Deadline = Annotated[str, _rule(_iso_date, "deadline")]
TradeDate = Annotated[str, _rule(_iso_date, "trade date")]
Price = Annotated[str, _rule(_price)]
FineMultiple = Annotated[str, _rule(_fine_multiple)]
Factors = Annotated[dict[str, str], _rule(_factors)]
ToAuthority = Annotated[bool | None, _rule(_to_authority)]  # false is absent: one normal form
ExpiresAfter = Annotated[str, _rule(units.parse_duration, "--expires-after")]
FromAccount = Annotated[str, _rule(units.parse_id, "--from account id")]
SweepTo = Annotated[str, _rule(units.parse_id, "--sweep-to account id")]
FreezeReason = _choice(units.FREEZE_REASONS, "reason")
Until = Annotated[str, _rule(_iso_date, "--until")]
Approvals = Annotated[int, _rule(_approvals)]
PendingTransferId = Annotated[str, _rule(units.parse_id, "pending transfer id")]
Position = Annotated[int, _rule(units.parse_quantity, "position")]
Reason = Annotated[str, _rule(units.parse_text, "reason")]
FacilityId = Annotated[str, _rule(units.parse_id, "facility id")]
FacilityKind = _choice(rules.FACILITY_KINDS, "kind")
RatedMW = Annotated[str, _rule(units.parse_positive_decimal, "rated MW")]
GeneratedMWh = Annotated[int, _rule(units.parse_tonnes_nonnegative, "generated MWh")]
SuppliedMWh = Annotated[int, _rule(units.parse_tonnes_nonnegative, "supplied MWh")]
HeatGJ = Annotated[int, _rule(units.parse_tonnes_nonnegative, "heat GJ")]
LoadFactor = Annotated[str, _rule(units.parse_load_factor)]
Intensity = Annotated[str, _rule(units.parse_positive_decimal, "intensity")]


# ---- one model per command: its fields, and the rules that tie fields together --------------------------------
class Init(CommandInput):
    regulator: ActorId
    require_signatures: bool = False
    public_key: RegulatorKey | None = None

    @model_validator(mode="after")
    def _signatures_need_the_regulators_key(self) -> Init:
        if self.require_signatures and self.public_key is None:
            raise ValueError("--require-signatures needs the regulator's key: pass --key FILE or --public-key HEX")
        return self


class ActorAdd(CommandInput):
    actor_id: ActorId
    role: Role
    firm: FirmId | None = None
    public_key: PublicKey | None = None

    @model_validator(mode="after")
    def _firm_goes_with_role_firm(self) -> ActorAdd:
        if self.role == "firm" and not self.firm:
            raise ValueError("a firm actor needs --firm FIRM_ID")
        if self.role != "firm" and self.firm:
            raise ValueError("--firm applies only to actors with role firm")
        return self


class ActorKey(CommandInput):
    actor_id: ActorId
    public_key: PublicKey


class FirmRegister(CommandInput):
    firm_id: FirmId
    name: Name
    sector: Sector
    region: Region
    unit_type: UnitType | None = None

    @model_validator(mode="after")
    def _unit_type_only_for_power(self) -> FirmRegister:
        if self.unit_type and self.sector != "power":
            raise ValueError("--unit-type applies only to the power sector")
        return self


class AccountOpen(CommandInput):
    account_id: AccountId
    holder: Holder
    kind: AccountKind = "trading"


class YearOpen(CommandInput):
    year: Period
    deadline: Deadline | None = None

    @model_validator(mode="after")
    def _deadline_not_before_the_period(self) -> YearOpen:
        last = units.parse_period(self.year)[1]
        if self.deadline is not None and self.deadline < f"{last}-01-01":
            raise ValueError(f"deadline {self.deadline} is before the compliance year {self.year}")
        return self


def _money_text(value: Any, what: str = "amount") -> str:
    """Yuan: a positive decimal string with at most 2 places, written with 2."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, (str, int)) or isinstance(text, bool) or not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,2})?",
                                                                                      str(text)):
        raise BadInput(f"{what} {value!r} must be a positive amount of yuan with at most 2 decimal places")
    amount = units.Decimal(str(text))
    if amount <= 0:
        raise BadInput(f"{what} {value!r} must be positive")
    return f"{amount:.2f}"


def _cut_share(value: Any) -> str:
    lo, hi = rules.ART22_CUT_SHARE_RANGE
    try:
        share = units.Decimal(str(value).strip())
    except ArithmeticError:
        raise BadInput(f"share {value!r} is not a number") from None
    if not share.is_finite() or not lo <= share <= hi:
        raise BadInput(f"share must be from {lo} to {hi} (50-100%), not {value}")
    return format(share.quantize(units.Decimal("0.01")), "f")


Article = _choice(("21", "22"), "article")
Yuan = Annotated[str, _rule(_money_text)]
CutShare = Annotated[str, _rule(_cut_share)]
CorrectBy = Annotated[str, _rule(_iso_date, "--correct-by")]


class YearClose(CommandInput):
    year: Year
    fine_multiple: FineMultiple | None = None
    correct_by: CorrectBy | None = None


class YearEnforce(CommandInput):
    year: Year


class PenaltyRecord(CommandInput):
    """IR art. 21 (fine 50,000-500,000 yuan) or art. 22 (5-10 x the illegal gains, or 500,000-2,000,000)."""

    firm_id: FirmId
    article: Article
    fine: Yuan
    year: Year | None = None
    illegal_gains: Yuan | None = None
    reason: Reason | None = None

    @model_validator(mode="after")
    def _fine_within_the_article(self) -> PenaltyRecord:
        fine = units.Decimal(self.fine)
        if self.article == "21":
            if self.illegal_gains is not None:
                raise ValueError("--illegal-gains applies only to article 22")
            lo, hi = rules.ART21_FINE_RANGE
        elif self.illegal_gains is not None:
            gains = units.Decimal(self.illegal_gains)
            lo, hi = (m * gains for m in rules.ART22_GAINS_MULTIPLE_RANGE)
        else:
            lo, hi = rules.ART22_FINE_RANGE
        if not lo <= fine <= hi:
            raise ValueError(f"an article {self.article} fine must be from {lo:.2f} to {hi:.2f} yuan, not {fine}")
        return self


class PenaltyCut(CommandInput):
    """IR art. 22: a firm refusing to correct falsified data has an allocation cut by 50-100%."""

    firm_id: FirmId
    year: Year
    share: CutShare


ProjectRegistered = Annotated[str, _rule(_iso_date, "--project-registered")]


class Issue(CommandInput):
    account_id: AccountId
    unit: Unit
    vintage: Vintage
    quantity: Quantity
    basis: IssueBasis
    # CCER: the project's registration date (CCER 2023); the decision refuses it for CEA (basis_unit), so that
    # this model keeps the fast path of bulk imports (no model validator)
    project_registered: ProjectRegistered | None = None


class CarryOverApply(CommandInput):
    """P23 annex 5: convert CEA of a 2019-2024 vintage into 2025 allowances, within the firm's limit."""

    firm_id: FirmId
    vintage: Vintage
    quantity: Quantity


class Allocate(CommandInput):
    firm_id: FirmId
    year: Year
    step: Step
    factors: Factors | None = None
    to_authority: ToAuthority = None  # issue into the province's government account (forced compliance)


PlanVersion = Annotated[str, _rule(units.parse_id, "plan version")]
PlanSource = Annotated[str, _rule(units.parse_text, "plan source")]
PlanYears = Annotated[list[int], _rule(plans.parse_plan_years)]
PowerPlan = Annotated[dict[str, Any], _rule(plans.parse_power_plan)]
NewSectorPlan = Annotated[dict[str, Any], _rule(plans.parse_new_sector_plan)]


class PlanPublish(CommandInput):
    """A plan file: {"version", "years", "source", "power"?: {...}, "new_sectors"?: {...}} (docs/domain.md)."""

    version: PlanVersion
    years: PlanYears
    source: PlanSource
    power: PowerPlan | None = None
    new_sectors: NewSectorPlan | None = None

    @model_validator(mode="after")
    def _something(self) -> PlanPublish:
        if self.power is None and self.new_sectors is None:
            raise ValueError("a plan gives power or new_sectors (or both)")
        return self


class Transfer(CommandInput):
    from_account: AccountId
    to_account: AccountId
    unit: Unit
    vintage: Vintage
    quantity: Quantity
    expires_after: ExpiresAfter | None = None  # a four-eyes account's pending transfer: how long it waits


class Trade(CommandInput):
    buyer: Buyer
    seller: Seller
    unit: Unit
    vintage: Vintage
    quantity: Quantity
    price: Price
    mode: TradeMode
    date: TradeDate


class FacilityRegister(CommandInput):
    facility_id: FacilityId
    firm: FirmId
    kind: FacilityKind
    rated_mw: RatedMW | None = None

    @model_validator(mode="after")
    def _rated_power_for_coal(self) -> FacilityRegister:
        if self.kind == "coal" and self.rated_mw is None:
            raise ValueError("a coal unit needs --rated-mw (its category follows from it)")
        if self.rated_mw is not None and self.kind not in rules.POWER_KINDS:
            raise ValueError("--rated-mw applies only to generating units (coal, coal-unconventional, gas)")
        return self


FACILITY_DATA = ("generated_mwh", "supplied_mwh", "heat_gj", "load_factor", "intensity")


class EmissionsVerify(CommandInput):
    firm_id: FirmId
    year: Year
    tonnes: Tonnes
    output: Output | None = None
    output_unit: OutputUnit | None = None
    facility: FacilityId | None = None
    generated_mwh: GeneratedMWh | None = None
    supplied_mwh: SuppliedMWh | None = None
    heat_gj: HeatGJ | None = None
    load_factor: LoadFactor | None = None
    intensity: Intensity | None = None

    @model_validator(mode="after")
    def _output_with_its_unit(self) -> EmissionsVerify:
        if (self.output is None) != (self.output_unit is None):
            raise ValueError("--output and --output-unit go together")
        if self.facility is None:
            given = [k for k in FACILITY_DATA if getattr(self, k) is not None]
            if given:
                raise ValueError(f"--{given[0].replace('_', '-')} is a facility's data: name it with --facility")
        elif self.output is not None:
            raise ValueError("--output is a firm-level figure; a facility's output is --generated-mwh,"
                             " --supplied-mwh or --heat-gj")
        return self


class Surrender(CommandInput):
    firm_id: FirmId
    year: Year
    unit: Unit
    vintage: Vintage
    quantity: Quantity
    from_account: FromAccount | None = None  # forced compliance: a government account (or the frozen firm's own)


class Cancel(CommandInput):
    account_id: AccountId
    unit: Unit
    vintage: Vintage
    quantity: Quantity
    reason: CancelReason = "voluntary"


class AccountFreeze(CommandInput):
    account_id: AccountId
    reason: FreezeReason
    until: Until | None = None


class AccountUnfreeze(CommandInput):
    account_id: AccountId


class AccountClose(CommandInput):
    account_id: AccountId
    sweep_to: SweepTo | None = None


class AccountPolicy(CommandInput):
    account_id: AccountId
    approvals: Approvals


class PendingTransfer(CommandInput):
    transfer_id: PendingTransferId


class Reverse(CommandInput):
    position: Position
    reason: Reason


INPUTS: dict[str, type[CommandInput]] = {
    "init": Init,
    "actor add": ActorAdd,
    "actor key": ActorKey,
    "firm register": FirmRegister,
    "facility register": FacilityRegister,
    "account open": AccountOpen,
    "year open": YearOpen,
    "year close": YearClose,
    "year enforce": YearEnforce,
    "penalty record": PenaltyRecord,
    "penalty cut": PenaltyCut,
    "issue": Issue,
    "allocate": Allocate,
    "rules publish": PlanPublish,
    "transfer": Transfer,
    "trade": Trade,
    "emissions verify": EmissionsVerify,
    "surrender": Surrender,
    "cancel": Cancel,
    "account freeze": AccountFreeze,
    "account unfreeze": AccountUnfreeze,
    "account close": AccountClose,
    "account policy": AccountPolicy,
    "transfer approve": PendingTransfer,
    "transfer cancel": PendingTransfer,
    "reverse": Reverse,
    "carry-over apply": CarryOverApply,
}


# The measured fast path (ledger.fastpath): each plain model's field rules called directly, without pydantic.
FAST_PATHS = {model: _fast_path(model) for model in INPUTS.values()}


def choices(model: type[CommandInput], field: str) -> tuple[str, ...] | None:
    """The allowed values of a field, when its type names them (the CLI's help lists them)."""
    info = model.model_fields[field]
    found = [m for m in info.metadata if isinstance(m, Choices)]
    for arg in typing.get_args(info.annotation):
        found += [m for m in typing.get_args(arg)[1:] if isinstance(m, Choices)]
    return found[0].values if found else None


def import_schema() -> dict[str, Any]:
    """The JSON Schema of an import line, one branch per command, derived from the input models."""
    branches = []
    for name, model in INPUTS.items():
        schema = model.model_json_schema()
        schema["properties"] = {"command": {"const": name}, "command_id": {"type": "string", "maxLength":
                                units.MAX_COMMAND_ID_LENGTH}, "actor": {"type": "string"},
                                "signature": {"type": "string"}, **schema["properties"]}
        schema["required"] = ["command", "command_id", *schema.get("required", [])]
        schema["title"] = name
        branches.append(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "carbon-ledger import line",
            "oneOf": branches}


def parse_command(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate raw arguments of command `name`; return normalized arguments or raise BadInput."""
    model = INPUTS.get(name)
    if model is None:
        raise BadInput(f"unknown command {name!r}; one of: {', '.join(INPUTS)}")
    fast = FAST_PATHS[model]
    if fast is not None and type(raw) is dict:
        args = fast(raw)
        if args is not None:
            return args
    try:
        return model.model_validate(raw).args()
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "input"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown argument {field!r} for {name}"
        elif err["type"] == "missing":
            msg = f"{name} needs {field!r}"
        raise BadInput(msg) from None
