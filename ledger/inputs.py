"""Command inputs: one pydantic model per command, shared by the CLI, `import` and the simulator.

Each model turns raw input (CLI strings or JSON values) into normalized JSON-able
arguments, or raises BadInput with one line naming the field. Normalized
arguments are what a command's signature covers and what its digest hashes.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ledger import rules, units
from ledger.errors import BadInput


class CommandInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # built on first use: CLI start

    def args(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _v(parser, *a):  # wrap a ledger.units parser as a pydantic "before" validator
    def check(cls, value):
        if value is None:
            return None
        try:
            return parser(value, *a)
        except BadInput as e:
            raise ValueError(str(e)) from None

    return classmethod(check)


class Init(CommandInput):
    regulator: str
    require_signatures: bool = False
    public_key: str | None = None
    _r = field_validator("regulator", mode="before")(_v(units.parse_id, "actor id"))
    _k = field_validator("public_key", mode="before")(_v(units.parse_public_key, "the regulator's public key"))

    @model_validator(mode="after")
    def _signatures_need_the_regulators_key(self) -> Init:
        if self.require_signatures and self.public_key is None:
            raise ValueError("--require-signatures needs the regulator's key: pass --key FILE or --public-key HEX")
        return self


class ActorAdd(CommandInput):
    actor_id: str
    role: str
    firm: str | None = None
    public_key: str | None = None
    _a = field_validator("actor_id", mode="before")(_v(units.parse_id, "actor id"))
    _r = field_validator("role", mode="before")(_v(units.parse_choice, units.ROLES, "role"))
    _f = field_validator("firm", mode="before")(_v(units.parse_id, "firm id"))
    _k = field_validator("public_key", mode="before")(_v(units.parse_public_key))

    @model_validator(mode="after")
    def _firm_goes_with_role_firm(self) -> ActorAdd:
        if self.role == "firm" and not self.firm:
            raise ValueError("a firm actor needs --firm FIRM_ID")
        if self.role != "firm" and self.firm:
            raise ValueError("--firm applies only to actors with role firm")
        return self


class ActorKey(CommandInput):
    actor_id: str
    public_key: str
    _a = field_validator("actor_id", mode="before")(_v(units.parse_id, "actor id"))
    _k = field_validator("public_key", mode="before")(_v(units.parse_public_key))


class FirmRegister(CommandInput):
    firm_id: str
    name: str
    sector: str
    region: str
    unit_type: str | None = None
    _i = field_validator("firm_id", mode="before")(_v(units.parse_id, "firm id"))
    _n = field_validator("name", mode="before")(_v(units.parse_text, "name"))
    _s = field_validator("sector", mode="before")(_v(units.parse_choice, units.SECTORS, "sector"))
    _g = field_validator("region", mode="before")(_v(units.parse_text, "region"))
    _u = field_validator("unit_type", mode="before")(_v(units.parse_choice, rules.UNIT_TYPES, "unit type"))

    @model_validator(mode="after")
    def _unit_type_only_for_power(self) -> FirmRegister:
        if self.unit_type and self.sector != "power":
            raise ValueError("--unit-type applies only to the power sector")
        return self


class AccountOpen(CommandInput):
    account_id: str
    holder: str
    kind: str = "trading"
    _i = field_validator("account_id", mode="before")(_v(units.parse_id, "account id"))
    _h = field_validator("holder", mode="before")(_v(units.parse_text, "holder"))
    _k = field_validator("kind", mode="before")(_v(units.parse_choice, units.ACCOUNT_KINDS, "kind"))


class YearOpen(CommandInput):
    year: str
    deadline: str | None = None

    @field_validator("year", mode="before")
    @classmethod
    def _year(cls, value: Any) -> str:
        try:
            return units.period_label(*units.parse_period(value))
        except BadInput as e:
            raise ValueError(str(e)) from None

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, value: Any) -> str | None:
        if value is None:
            return None
        try:
            return units.parse_date(value, "deadline").isoformat()
        except BadInput as e:
            raise ValueError(str(e)) from None

    @model_validator(mode="after")
    def _deadline_not_before_the_period(self) -> YearOpen:
        last = units.parse_period(self.year)[1]
        if self.deadline is not None and self.deadline < f"{last}-01-01":
            raise ValueError(f"deadline {self.deadline} is before the compliance year {self.year}")
        return self


def _iso_date(what: str):
    def check(cls, value: Any) -> str | None:
        if value is None:
            return None
        try:
            return units.parse_date(value, what).isoformat()
        except BadInput as e:
            raise ValueError(str(e)) from None

    return classmethod(check)


def _money_text(value: Any, what: str) -> str:
    """Yuan: a positive decimal string with at most 2 places, written with 2."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, (str, int)) or isinstance(text, bool) or not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,2})?",
                                                                                      str(text)):
        raise ValueError(f"{what} {value!r} must be a positive amount of yuan with at most 2 decimal places")
    amount = units.Decimal(str(text))
    if amount <= 0:
        raise ValueError(f"{what} {value!r} must be positive")
    return f"{amount:.2f}"


class YearClose(CommandInput):
    year: int
    fine_multiple: str | None = None
    correct_by: str | None = None
    _y = field_validator("year", mode="before")(_v(units.parse_year))
    _c = field_validator("correct_by", mode="before")(_iso_date("--correct-by"))

    @field_validator("fine_multiple", mode="before")
    @classmethod
    def _multiple(cls, value: Any) -> str | None:
        if value is None:
            return None
        lo, hi = rules.PENALTY_MULTIPLE_RANGE
        try:
            m = units.parse_price(value, "fine multiple")
        except BadInput as e:
            raise ValueError(str(e)) from None
        if not lo <= m <= hi:
            raise ValueError(f"fine multiple {m} must be from {lo} to {hi}")
        return format(m.normalize(), "f")  # "10", never "1E+1"


class YearEnforce(CommandInput):
    year: int
    _y = field_validator("year", mode="before")(_v(units.parse_year))


class PenaltyRecord(CommandInput):
    """IR art. 21 (fine 50,000-500,000 yuan) or art. 22 (5-10 x the illegal gains, or 500,000-2,000,000)."""

    firm_id: str
    article: str
    fine: str
    year: int | None = None
    illegal_gains: str | None = None
    reason: str | None = None
    _i = field_validator("firm_id", mode="before")(_v(units.parse_id, "firm id"))
    _a = field_validator("article", mode="before")(_v(units.parse_choice, ("21", "22"), "article"))
    _y = field_validator("year", mode="before")(_v(units.parse_year))
    _r = field_validator("reason", mode="before")(_v(units.parse_text, "reason"))

    @field_validator("fine", "illegal_gains", mode="before")
    @classmethod
    def _money(cls, value: Any) -> str | None:
        return None if value is None else _money_text(value, "amount")

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

    firm_id: str
    year: int
    share: str
    _i = field_validator("firm_id", mode="before")(_v(units.parse_id, "firm id"))
    _y = field_validator("year", mode="before")(_v(units.parse_year))

    @field_validator("share", mode="before")
    @classmethod
    def _share(cls, value: Any) -> str:
        lo, hi = rules.ART22_CUT_SHARE_RANGE
        try:
            share = units.Decimal(str(value).strip())
        except ArithmeticError:
            raise ValueError(f"share {value!r} is not a number") from None
        if not share.is_finite() or not lo <= share <= hi:
            raise ValueError(f"share must be from {lo} to {hi} (50-100%), not {value}")
        return format(share.quantize(units.Decimal("0.01")), "f")


class Issue(CommandInput):
    account_id: str
    unit: str
    vintage: int
    quantity: int
    basis: str
    _i = field_validator("account_id", mode="before")(_v(units.parse_id, "account id"))
    _u = field_validator("unit", mode="before")(_v(units.parse_choice, units.UNIT_KINDS, "unit"))
    _vi = field_validator("vintage", mode="before")(_v(units.parse_vintage))
    _q = field_validator("quantity", mode="before")(_v(units.parse_quantity))
    _b = field_validator("basis", mode="before")(_v(units.parse_choice, units.ISSUE_BASES, "basis"))


class Allocate(CommandInput):
    firm_id: str
    year: int
    step: str
    factors: dict[str, str] | None = None
    _i = field_validator("firm_id", mode="before")(_v(units.parse_id, "firm id"))
    _y = field_validator("year", mode="before")(_v(units.parse_year))
    _s = field_validator("step", mode="before")(_v(units.parse_choice, ("pre", "true-up"), "step"))

    @field_validator("factors", mode="before")
    @classmethod
    def _factors(cls, value: Any) -> dict[str, str] | None:
        if not value:
            return None
        out = {}
        for name, raw in dict(value).items():
            if name not in rules.FACTOR_BOUNDS:
                raise ValueError(f"factor {name!r} must be one of: {', '.join(rules.FACTOR_BOUNDS)}")
            lo, hi = rules.FACTOR_BOUNDS[name]
            try:
                f = units.Decimal(str(raw))
            except ArithmeticError:
                raise ValueError(f"factor {name}={raw!r} is not a number") from None
            if not f.is_finite():
                raise ValueError(f"factor {name}={raw!r} is not a number")
            if not lo <= f <= hi:
                raise ValueError(f"factor {name}={raw} must be from {lo} to {hi}")
            out[name] = str(f)
        return out


class Transfer(CommandInput):
    from_account: str
    to_account: str
    unit: str
    vintage: int
    quantity: int
    _f = field_validator("from_account", mode="before")(_v(units.parse_id, "account id"))
    _t = field_validator("to_account", mode="before")(_v(units.parse_id, "account id"))
    _u = field_validator("unit", mode="before")(_v(units.parse_choice, units.UNIT_KINDS, "unit"))
    _vi = field_validator("vintage", mode="before")(_v(units.parse_vintage))
    _q = field_validator("quantity", mode="before")(_v(units.parse_quantity))


class Trade(CommandInput):
    buyer: str
    seller: str
    unit: str
    vintage: int
    quantity: int
    price: str
    mode: str
    date: str
    _b = field_validator("buyer", mode="before")(_v(units.parse_id, "buyer"))
    _s = field_validator("seller", mode="before")(_v(units.parse_id, "seller"))
    _u = field_validator("unit", mode="before")(_v(units.parse_choice, units.UNIT_KINDS, "unit"))
    _vi = field_validator("vintage", mode="before")(_v(units.parse_vintage))
    _q = field_validator("quantity", mode="before")(_v(units.parse_quantity))
    _m = field_validator("mode", mode="before")(_v(units.parse_choice, units.TRADE_MODES, "mode"))

    @field_validator("price", mode="before")
    @classmethod
    def _price(cls, value: Any) -> str:
        try:
            return str(units.parse_price(value))
        except BadInput as e:
            raise ValueError(str(e)) from None

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: Any) -> str:
        try:
            return units.parse_date(value, "trade date").isoformat()
        except BadInput as e:
            raise ValueError(str(e)) from None


class EmissionsVerify(CommandInput):
    firm_id: str
    year: int
    tonnes: int
    output: int | None = None
    output_unit: str | None = None
    _i = field_validator("firm_id", mode="before")(_v(units.parse_id, "firm id"))
    _y = field_validator("year", mode="before")(_v(units.parse_year))
    _t = field_validator("tonnes", mode="before")(_v(units.parse_tonnes_nonnegative, "tonnes"))
    _o = field_validator("output", mode="before")(_v(units.parse_tonnes_nonnegative, "output"))
    _ou = field_validator("output_unit", mode="before")(_v(units.parse_choice, ("MWh", "GJ", "t"), "output unit"))

    @model_validator(mode="after")
    def _output_with_its_unit(self) -> EmissionsVerify:
        if (self.output is None) != (self.output_unit is None):
            raise ValueError("--output and --output-unit go together")
        return self


class Surrender(CommandInput):
    firm_id: str
    year: int
    unit: str
    vintage: int
    quantity: int
    _i = field_validator("firm_id", mode="before")(_v(units.parse_id, "firm id"))
    _y = field_validator("year", mode="before")(_v(units.parse_year))
    _u = field_validator("unit", mode="before")(_v(units.parse_choice, units.UNIT_KINDS, "unit"))
    _vi = field_validator("vintage", mode="before")(_v(units.parse_vintage))
    _q = field_validator("quantity", mode="before")(_v(units.parse_quantity))


class Cancel(CommandInput):
    account_id: str
    unit: str
    vintage: int
    quantity: int
    reason: str = "voluntary"
    _i = field_validator("account_id", mode="before")(_v(units.parse_id, "account id"))
    _u = field_validator("unit", mode="before")(_v(units.parse_choice, units.UNIT_KINDS, "unit"))
    _vi = field_validator("vintage", mode="before")(_v(units.parse_vintage))
    _q = field_validator("quantity", mode="before")(_v(units.parse_quantity))
    _r = field_validator("reason", mode="before")(_v(units.parse_choice, units.CANCEL_REASONS, "reason"))


INPUTS: dict[str, type[CommandInput]] = {
    "init": Init,
    "actor add": ActorAdd,
    "actor key": ActorKey,
    "firm register": FirmRegister,
    "account open": AccountOpen,
    "year open": YearOpen,
    "year close": YearClose,
    "year enforce": YearEnforce,
    "penalty record": PenaltyRecord,
    "penalty cut": PenaltyCut,
    "issue": Issue,
    "allocate": Allocate,
    "transfer": Transfer,
    "trade": Trade,
    "emissions verify": EmissionsVerify,
    "surrender": Surrender,
    "cancel": Cancel,
}


MEMO_SIZE = 100_000  # validated field values remembered per command model
_UNSEEN = object()


def _fast_path(model: type[CommandInput]) -> Any:
    """The model's own field validators, called directly (pydantic's machinery costs more than they do).

    Only for models whose every field has one "before" validator and a plain type (str, int, or
    either | None) and that have no model validators. It returns the normalized arguments when every
    field passes and comes out of its validator with exactly its type; otherwise None, and the caller
    asks pydantic, which then reports the error: so results and error messages are pydantic's own.
    """
    decorators = model.__pydantic_decorators__
    if decorators.model_validators:
        return None
    check: dict[str, Any] = {}
    for dec in decorators.field_validators.values():
        if dec.info.mode != "before" or len(inspect.signature(dec.func).parameters) != 1:
            return None
        for name in dec.info.fields:
            if name in check:
                return None
            check[name] = dec.func
    spec = []
    for name, info in model.model_fields.items():
        kinds = {int: (int, False), str: (str, False), int | None: (int, True), str | None: (str, True)}
        if name not in check or info.annotation not in kinds:
            return None
        kind, optional = kinds[info.annotation]
        default = None if info.is_required() else info.default
        spec.append((name, check[name], kind, optional, info.is_required(), default))
    names = frozenset(model.model_fields)
    # A field validator's result depends only on the field and the raw value, and a bulk import repeats
    # values (accounts, units, vintages, dates, prices): remember results for plain str and int values
    # (keyed by type too, so True never passes for 1), up to MEMO_SIZE of them. Failures are not kept.
    memo: dict[tuple[str, type, Any], Any] = {}

    def parse(raw: dict[str, Any]) -> dict[str, Any] | None:
        if not names.issuperset(raw):
            return None
        out = {}
        try:
            for name, validate, kind, optional, required, default in spec:
                if name in raw:
                    r = raw[name]
                    t = type(r)
                    if t is str or t is int:
                        key = (name, t, r)
                        value = memo.get(key, _UNSEEN)
                        if value is _UNSEEN:
                            value = validate(r)
                            if len(memo) < MEMO_SIZE:
                                memo[key] = value
                    else:
                        value = validate(r)
                elif required:
                    return None
                else:
                    value = default  # pydantic does not validate defaults either
                if value is None:
                    if not optional:
                        return None
                    continue
                if type(value) is not kind:
                    return None
                out[name] = value
        except Exception:  # noqa: BLE001 - pydantic, asked next, reports it (or raises it) its own way
            return None
        return out

    return parse


FAST_PATHS = {model: _fast_path(model) for model in INPUTS.values()}


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
