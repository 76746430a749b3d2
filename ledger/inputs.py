"""Command inputs: one pydantic model per command, shared by the CLI, `import` and the simulator.

Each model turns raw input (CLI strings or JSON values) into normalized JSON-able
arguments, or raises BadInput with one line naming the field. Normalized
arguments are what a command's signature covers and what its digest hashes.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ledger import plans, rules, units
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


class YearClose(CommandInput):
    year: int
    fine_multiple: str | None = None
    _y = field_validator("year", mode="before")(_v(units.parse_year))

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


def _dec(v: Any, what: str, upper: str | None = None) -> str:
    out = units.parse_positive_decimal(v, what)
    if upper is not None and units.Decimal(out) > units.Decimal(upper):
        raise BadInput(f"{what} must be at most {upper}, not {v!r}")
    return out


def _keys(d: Any, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise BadInput(f"{what} must be an object")
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise BadInput(f"{what} has an unknown key {extra[0]!r}; known: {', '.join(allowed)}")
    return d


def _sources(v: Any, what: str) -> dict[str, str]:
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str) and x.strip()
                                          for k, x in v.items()):
        raise BadInput(f"{what}.sources must map names to texts")
    return {k: x.strip() for k, x in v.items()}


POWER_PLAN_KEYS = ("draft", "output_basis", "category_i_min_mw", "electricity_t_per_mwh", "heat_t_per_gj",
                   "peak_load_formula", "peak_load_scope", "heat_share_factor", "pre_allocation",
                   "gas_unit_exemption", "gap_cap_share", "sources")
NEW_SECTOR_PLAN_KEYS = ("draft", "formula", "slope", "bound_x", "cap", "balance_values", "pre_allocation",
                        "sources")


def _pre(v: Any, what: str) -> dict[str, str] | None:
    if v is None:
        return None
    d = _keys(v, ("basis", "share"), f"{what}.pre_allocation")
    if d.get("basis") not in ("verified", "output"):
        raise BadInput(f"{what}.pre_allocation.basis must be verified or output")
    return {"basis": d["basis"], "share": _dec(d.get("share"), f"{what}.pre_allocation.share", "1")}


def parse_power_plan(v: Any) -> dict[str, Any]:
    d = _keys(v, POWER_PLAN_KEYS, "power")
    out: dict[str, Any] = {}
    for k, x in d.items():
        if k in ("draft", "gas_unit_exemption"):
            if not isinstance(x, bool):
                raise BadInput(f"power.{k} must be true or false")
            out[k] = x
        elif k == "output_basis":
            out[k] = units.parse_choice(x, ("supplied", "generated"), "power.output_basis")
        elif k == "category_i_min_mw":
            out[k] = _dec(x, "power.category_i_min_mw")
        elif k == "electricity_t_per_mwh":
            out[k] = {c: _dec(b, f"power.electricity_t_per_mwh.{c}", "10")
                      for c, b in _keys(x, ("I", "II", "III", "IV"), "power.electricity_t_per_mwh").items()}
        elif k in ("heat_t_per_gj", "heat_share_factor"):
            if x is None and k == "heat_share_factor":
                out[k] = None
                continue
            out[k] = {c: _dec(b, f"power.{k}.{c}", "10") for c, b in _keys(x, ("coal", "gas"), f"power.{k}").items()}
        elif k == "peak_load_formula":
            out[k] = None if x is None else units.parse_choice(x, plans.PEAK_LOAD_FORMULAS, "power.peak_load_formula")
        elif k == "peak_load_scope":
            out[k] = units.parse_choice(x, ("coal", "coal-condensing"), "power.peak_load_scope")
        elif k == "pre_allocation":
            out[k] = _pre(x, "power")
        elif k == "gap_cap_share":
            out[k] = None if x is None else _dec(x, "power.gap_cap_share", "1")
        else:
            out[k] = _sources(x, "power")
    return out


def parse_new_sector_plan(v: Any) -> dict[str, Any]:
    d = _keys(v, NEW_SECTOR_PLAN_KEYS, "new_sectors")
    out: dict[str, Any] = {}
    for k, x in d.items():
        if k == "draft":
            if not isinstance(x, bool):
                raise BadInput("new_sectors.draft must be true or false")
            out[k] = x
        elif k == "formula":
            out[k] = units.parse_choice(x, ("verified", "balance"), "new_sectors.formula")
        elif k in ("slope", "bound_x", "cap"):
            out[k] = _dec(x, f"new_sectors.{k}", "1")
        elif k == "balance_values":
            out[k] = {c: None if b is None else _dec(b, f"new_sectors.balance_values.{c}", "1000")
                      for c, b in _keys(x, ("steel", "clinker", "aluminium"), "new_sectors.balance_values").items()}
        elif k == "pre_allocation":
            out[k] = _pre(x, "new_sectors")
        else:
            out[k] = _sources(x, "new_sectors")
    return out


class PlanPublish(CommandInput):
    """A plan file: {"version", "years", "source", "power"?: {...}, "new_sectors"?: {...}} (docs/domain.md)."""

    version: str
    years: list[int]
    source: str
    power: dict[str, Any] | None = None
    new_sectors: dict[str, Any] | None = None
    _ve = field_validator("version", mode="before")(_v(units.parse_id, "plan version"))
    _s = field_validator("source", mode="before")(_v(units.parse_text, "plan source"))
    _p = field_validator("power", mode="before")(_v(parse_power_plan))
    _n = field_validator("new_sectors", mode="before")(_v(parse_new_sector_plan))

    @field_validator("years", mode="before")
    @classmethod
    def _years(cls, value: Any) -> list[int]:
        if not isinstance(value, list) or not value:
            raise ValueError("years must be a non-empty list of years")
        try:
            ys = sorted({units.parse_year(y) for y in value})
        except BadInput as e:
            raise ValueError(str(e)) from None
        return ys

    @model_validator(mode="after")
    def _something(self) -> PlanPublish:
        if self.power is None and self.new_sectors is None:
            raise ValueError("a plan gives power or new_sectors (or both)")
        return self


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


class FacilityRegister(CommandInput):
    facility_id: str
    firm: str
    kind: str
    rated_mw: str | None = None
    _i = field_validator("facility_id", mode="before")(_v(units.parse_id, "facility id"))
    _f = field_validator("firm", mode="before")(_v(units.parse_id, "firm id"))
    _k = field_validator("kind", mode="before")(_v(units.parse_choice, rules.FACILITY_KINDS, "kind"))
    _r = field_validator("rated_mw", mode="before")(_v(units.parse_positive_decimal, "rated MW"))

    @model_validator(mode="after")
    def _rated_power_for_coal(self) -> FacilityRegister:
        if self.kind == "coal" and self.rated_mw is None:
            raise ValueError("a coal unit needs --rated-mw (its category follows from it)")
        if self.rated_mw is not None and self.kind not in rules.POWER_KINDS:
            raise ValueError("--rated-mw applies only to generating units (coal, coal-unconventional, gas)")
        return self


FACILITY_DATA = ("generated_mwh", "supplied_mwh", "heat_gj", "load_factor", "intensity")


class EmissionsVerify(CommandInput):
    firm_id: str
    year: int
    tonnes: int
    output: int | None = None
    output_unit: str | None = None
    facility: str | None = None
    generated_mwh: int | None = None
    supplied_mwh: int | None = None
    heat_gj: int | None = None
    load_factor: str | None = None
    intensity: str | None = None
    _i = field_validator("firm_id", mode="before")(_v(units.parse_id, "firm id"))
    _y = field_validator("year", mode="before")(_v(units.parse_year))
    _t = field_validator("tonnes", mode="before")(_v(units.parse_tonnes_nonnegative, "tonnes"))
    _o = field_validator("output", mode="before")(_v(units.parse_tonnes_nonnegative, "output"))
    _ou = field_validator("output_unit", mode="before")(_v(units.parse_choice, ("MWh", "GJ", "t"), "output unit"))
    _fa = field_validator("facility", mode="before")(_v(units.parse_id, "facility id"))
    _ge = field_validator("generated_mwh", mode="before")(_v(units.parse_tonnes_nonnegative, "generated MWh"))
    _su = field_validator("supplied_mwh", mode="before")(_v(units.parse_tonnes_nonnegative, "supplied MWh"))
    _he = field_validator("heat_gj", mode="before")(_v(units.parse_tonnes_nonnegative, "heat GJ"))
    _lf = field_validator("load_factor", mode="before")(_v(units.parse_load_factor))
    _in = field_validator("intensity", mode="before")(_v(units.parse_positive_decimal, "intensity"))

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
    "facility register": FacilityRegister,
    "account open": AccountOpen,
    "year open": YearOpen,
    "year close": YearClose,
    "issue": Issue,
    "allocate": Allocate,
    "rules publish": PlanPublish,
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
