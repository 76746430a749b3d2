"""An independent reference model of the registry, for the stateful property test.

Written from docs/events.md, docs/cli.md and docs/domain.md (plain dicts and Counters, exact Fractions),
not from ledger/: it predicts, for each command, whether the registry accepts it
(and which events it records), refuses it by a rule (Refused) or rejects its input
(BadInput), and keeps the holdings that follow.

Where the spec leaves a choice open, the model follows the registry's documented
choice and says so in a comment ("as implemented"). Numbers that are reference
data rather than rules (power benchmarks after 2020, the new-sector share from
2025) are read from ledger.rules, which docs/domain.md names as their home.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ledger import formulas as reference_formulas
from ledger import rules as reference_data
from ledger.errors import BadInput, Refused
from ledger.plans import parse_new_sector_plan, parse_power_plan

# ---- rules from docs/domain.md -------------------------------------------------------------
LISTED_BELOW_T = 100_000  # listed agreement: under 100,000 t an order
BLOCK_FROM_T = 100_000  # block agreement: at least 100,000 t
BAND = {"listed": Fraction(10, 100), "block": Fraction(30, 100), "auction": None}
CCER_SHARE = Fraction(5, 100)  # CCER may cover at most 5% of verified emissions
GAP_CAP_SHARE = Fraction(20, 100)  # power: obligation <= free allocation + 20% of verified
PRE_ALLOCATION_SHARE = Fraction(70, 100)
EXEMPTIONS = ("gas-unit exemption", "gap-cap exemption")  # P23 5(3), in this order
GAP_TARGET = Fraction(80, 100)  # a power firm is topped up to 80% of its verified emissions
NEW_SECTORS = ("steel", "cement", "aluminium")
COVERED_FROM = {"power": 2019, "steel": 2024, "cement": 2024, "aluminium": 2024}
MARKET_MULTIPLE_FROM = "2024-05-01"  # Interim Regulations: fine 5-10 x market value of the shortfall
FINE_MULTIPLE_RANGE = (Decimal(5), Decimal(10))
DEFAULT_FINE_MULTIPLE = Decimal(5)  # as implemented: the lower end of 5-10
FIXED_FINE = Decimal("20000.00")  # before 2024: 20,000-30,000 yuan; as implemented: 20,000

# ---- input vocabulary (docs/events.md catalogue and docs/cli.md) --------------------------------------
UNITS = ("CEA", "CCER")
SECTORS = ("power", "steel", "cement", "aluminium", "chemicals", "paper", "aviation", "other")
UNIT_TYPES = ("coal-above-300mw", "coal-300mw-or-less", "coal-unconventional", "gas")
DEFAULT_UNIT_TYPE = "coal-above-300mw"
ACCOUNT_KINDS = ("compliance", "trading", "government")
BASES = ("pre-allocation", "true-up", "auction", "offset", "reserve")
MODES = ("listed", "block", "auction")
CANCEL_REASONS = ("voluntary", "correction", "expiry")
FREEZE_REASONS = ("judicial", "investigation", "default")
TODAY = "2025-01-02"  # the registry's date as the property test's fixed clock has it (`now`, never the wall clock)
OUTPUT_UNITS = ("MWh", "GJ", "t")
FACILITY_KINDS = {"coal": "power", "coal-unconventional": "power", "gas": "power", "steel": "steel",
                  "clinker": "cement", "aluminium": "aluminium"}  # kind -> the sector it belongs to
FACILITY_DATA = ("generated_mwh", "supplied_mwh", "heat_gj", "load_factor", "intensity")
FACTOR_BOUNDS = {
    "cooling": (Decimal("1.00"), Decimal("1.05")),
    "heat_supply": (Decimal("0.90"), Decimal("1.00")),
    "load": (Decimal("1.00"), Decimal("1.15")),
}
MIN_YEAR, MAX_YEAR = 2013, 2100
MAX_QUANTITY_T = 10_000_000_000
MAX_PRICE = Decimal("100000.00")
MAX_COMMAND_ID = 128
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
PRICE_RE = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")


class ModelBadInput(Exception):
    pass


class ModelRefused(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class Cmd:
    """A command as the test sends it: CLI name, raw arguments, command id."""

    name: str
    args: dict[str, Any]
    cid: str

    def __repr__(self) -> str:
        return f"Cmd({self.name!r}, {self.args!r}, {self.cid!r})"


@dataclass
class Prediction:
    kind: str  # "ok" | "replay" | "refused" | "bad"
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    why: str = ""


def cents(x: Fraction | Decimal | int) -> Decimal:
    """Round a non-negative exact amount to 0.01, half up (the tick)."""
    f = Fraction(x) * 100
    n, rem = divmod(f.numerator, f.denominator)
    if 2 * rem >= f.denominator:
        n += 1
    return Decimal(n).scaleb(-2)


def floor(x: Fraction) -> int:
    return x.numerator // x.denominator


TODAY = "2025-01-02"  # the machine's fixed clock (tests/property/test_ledger_machine.py fixed_clock)
CORRECTION_DAYS = 30  # the time limit to correct when `year close` names none: days after the deadline


def day_after(date: str, days: int) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=days)).isoformat()


def previous_month(date: str) -> str:
    first = dt.date.fromisoformat(date).replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


# ---- input checks ----------------------------------------------------------------------------
def _id(v: Any) -> str:
    if not isinstance(v, str) or not ID_RE.match(v):
        raise ModelBadInput
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or len(v) > 200:
        raise ModelBadInput
    return v.strip()


def _choice(choices: tuple[str, ...]):
    def check(v: Any) -> str:
        if v not in choices or not isinstance(v, str):
            raise ModelBadInput
        return v

    return check


def _year(v: Any) -> int:
    if isinstance(v, bool):
        raise ModelBadInput
    try:
        y = int(str(v).strip()) if isinstance(v, (int, str)) else None
    except ValueError:
        y = None
    if y is None or not MIN_YEAR <= y <= MAX_YEAR:
        raise ModelBadInput
    return y


def _tonnes(v: Any, allow_zero: bool = False) -> int:
    if isinstance(v, bool):
        raise ModelBadInput
    if isinstance(v, int):
        q = v
    elif isinstance(v, str) and re.fullmatch(r"[+-]?[0-9]+", v.strip()):
        q = int(v)
    else:
        raise ModelBadInput
    if q < 0 or (q == 0 and not allow_zero) or q > MAX_QUANTITY_T:
        raise ModelBadInput
    return q


def _price(v: Any) -> Decimal:
    if isinstance(v, (bool, float)) or not isinstance(v, (str, int, Decimal)):
        raise ModelBadInput
    text = format(v, "f") if isinstance(v, Decimal) else str(v).strip()
    if not PRICE_RE.match(text):
        raise ModelBadInput
    p = Decimal(text)
    if p <= 0 or p > MAX_PRICE:
        raise ModelBadInput
    return p.quantize(Decimal("0.01"))


def _date(v: Any) -> str:
    try:
        return dt.date.fromisoformat(str(v).strip()).isoformat()
    except ValueError:
        raise ModelBadInput from None


def _period(v: Any) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{4})(?:-(\d{4}))?", str(v).strip())
    if not m:
        raise ModelBadInput
    first = _year(m.group(1))
    last = _year(m.group(2)) if m.group(2) else first
    if last < first or last - first > 4:
        raise ModelBadInput
    return first, last


def _multiple(v: Any) -> Decimal:
    m = _price(v)
    if not FINE_MULTIPLE_RANGE[0] <= m <= FINE_MULTIPLE_RANGE[1]:
        raise ModelBadInput
    return m.normalize()


def _factors(v: Any) -> tuple[tuple[str, Decimal], ...] | None:
    if not v:
        return None
    out = []
    for k, raw in dict(v).items():
        if k not in FACTOR_BOUNDS:
            raise ModelBadInput
        try:
            f = Decimal(str(raw))
        except ArithmeticError:
            raise ModelBadInput from None
        lo, hi = FACTOR_BOUNDS[k]
        if not lo <= f <= hi:
            raise ModelBadInput
        out.append((k, f))
    return tuple(sorted(out))


def _positive_decimal(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ModelBadInput
    try:
        d = Decimal(str(v).strip())
    except ArithmeticError:
        raise ModelBadInput from None
    if not d.is_finite() or d <= 0 or d > 1_000_000 or d.as_tuple().exponent < -6:
        raise ModelBadInput
    return format(d.normalize(), "f")


def _load_factor(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ModelBadInput
    try:
        d = Decimal(str(v).strip())
    except ArithmeticError:
        raise ModelBadInput from None
    if not d.is_finite() or not 0 <= d <= 1 or d.as_tuple().exponent < -4:
        raise ModelBadInput
    return format(d.normalize(), "f") if d else "0"


def _years(v: Any) -> list[int]:
    if not isinstance(v, list) or not v:
        raise ModelBadInput
    return sorted({_year(y) for y in v})


def _as_implemented(parse: Any, v: Any) -> dict[str, Any]:
    """A plan's figures are checked key by key as ledger.inputs does (as implemented: the shape is data)."""
    try:
        return parse(v)
    except BadInput:
        raise ModelBadInput from None


REQUIRED, OPTIONAL = True, False
FIELDS: dict[str, dict[str, tuple[bool, Any]]] = {
    "firm register": {
        "firm_id": (REQUIRED, _id),
        "name": (REQUIRED, _text),
        "sector": (REQUIRED, _choice(SECTORS)),
        "region": (REQUIRED, _text),
        "unit_type": (OPTIONAL, _choice(UNIT_TYPES)),
    },
    "facility register": {
        "facility_id": (REQUIRED, _id),
        "firm": (REQUIRED, _id),
        "kind": (REQUIRED, _choice(tuple(FACILITY_KINDS))),
        "rated_mw": (OPTIONAL, _positive_decimal),
    },
    "rules publish": {
        "version": (REQUIRED, _id),
        "years": (REQUIRED, lambda v: _years(v)),
        "source": (REQUIRED, _text),
        "power": (OPTIONAL, lambda v: _as_implemented(parse_power_plan, v)),
        "new_sectors": (OPTIONAL, lambda v: _as_implemented(parse_new_sector_plan, v)),
    },
    "account open": {
        "account_id": (REQUIRED, _id),
        "holder": (REQUIRED, _text),
        "kind": (OPTIONAL, _choice(ACCOUNT_KINDS)),
    },
    "year open": {"year": (REQUIRED, _period), "deadline": (OPTIONAL, _date)},
    "year close": {"year": (REQUIRED, _year), "fine_multiple": (OPTIONAL, _multiple), "correct_by": (OPTIONAL, _date)},
    "year enforce": {"year": (REQUIRED, _year)},
    "issue": {
        "account_id": (REQUIRED, _id),
        "unit": (REQUIRED, _choice(UNITS)),
        "vintage": (REQUIRED, _year),
        "quantity": (REQUIRED, _tonnes),
        "basis": (REQUIRED, _choice(BASES)),
    },
    "allocate": {
        "firm_id": (REQUIRED, _id),
        "year": (REQUIRED, _year),
        "step": (REQUIRED, _choice(("pre", "true-up"))),
        "factors": (OPTIONAL, _factors),
    },
    "transfer": {
        "from_account": (REQUIRED, _id),
        "to_account": (REQUIRED, _id),
        "unit": (REQUIRED, _choice(UNITS)),
        "vintage": (REQUIRED, _year),
        "quantity": (REQUIRED, _tonnes),
    },
    "trade": {
        "buyer": (REQUIRED, _id),
        "seller": (REQUIRED, _id),
        "unit": (REQUIRED, _choice(UNITS)),
        "vintage": (REQUIRED, _year),
        "quantity": (REQUIRED, _tonnes),
        "price": (REQUIRED, _price),
        "mode": (REQUIRED, _choice(MODES)),
        "date": (REQUIRED, _date),
    },
    "emissions verify": {
        "firm_id": (REQUIRED, _id),
        "year": (REQUIRED, _year),
        "tonnes": (REQUIRED, lambda v: _tonnes(v, allow_zero=True)),
        "output": (OPTIONAL, lambda v: _tonnes(v, allow_zero=True)),
        "output_unit": (OPTIONAL, _choice(OUTPUT_UNITS)),
        "facility": (OPTIONAL, _id),
        "generated_mwh": (OPTIONAL, lambda v: _tonnes(v, allow_zero=True)),
        "supplied_mwh": (OPTIONAL, lambda v: _tonnes(v, allow_zero=True)),
        "heat_gj": (OPTIONAL, lambda v: _tonnes(v, allow_zero=True)),
        "load_factor": (OPTIONAL, _load_factor),
        "intensity": (OPTIONAL, _positive_decimal),
    },
    "surrender": {
        "firm_id": (REQUIRED, _id),
        "year": (REQUIRED, _year),
        "unit": (REQUIRED, _choice(UNITS)),
        "vintage": (REQUIRED, _year),
        "quantity": (REQUIRED, _tonnes),
    },
    "cancel": {
        "account_id": (REQUIRED, _id),
        "unit": (REQUIRED, _choice(UNITS)),
        "vintage": (REQUIRED, _year),
        "quantity": (REQUIRED, _tonnes),
        "reason": (OPTIONAL, _choice(CANCEL_REASONS)),
    },
    "account freeze": {
        "account_id": (REQUIRED, _id),
        "reason": (REQUIRED, _choice(FREEZE_REASONS)),
        "until": (OPTIONAL, _date),
    },
    "account unfreeze": {"account_id": (REQUIRED, _id)},
    "account close": {"account_id": (REQUIRED, _id), "sweep_to": (OPTIONAL, _id)},
    "reverse": {"position": (REQUIRED, _tonnes), "reason": (REQUIRED, _text)},
}
REVERSIBLE = ("AllowancesIssued", "AllowancesTransferred", "AllowancesSurrendered", "EmissionsVerified")
DEFAULTS = {("account open", "kind"): "trading", ("cancel", "reason"): "voluntary"}


def normalize(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The command's arguments in one canonical form, or ModelBadInput."""
    spec = FIELDS[name]
    if set(raw) - set(spec):
        raise ModelBadInput
    out: dict[str, Any] = {}
    for key, (required, check) in spec.items():
        v = raw.get(key)
        if v is None:
            if required:
                raise ModelBadInput
            v = DEFAULTS.get((name, key))
            if v is None:
                continue
        out[key] = check(v)
    # arguments that contradict each other are bad input too, found before any rule is checked
    if name == "firm register" and out.get("unit_type") and out["sector"] != "power":
        raise ModelBadInput  # a unit type only for power
    if name == "year open" and out.get("deadline") and out["deadline"] < f"{out['year'][1]}-01-01":
        raise ModelBadInput  # a deadline before the period
    if name == "emissions verify" and (out.get("output") is None) != (out.get("output_unit") is None):
        raise ModelBadInput  # output goes with its unit
    if name == "emissions verify" and out.get("facility") is None and any(k in out for k in FACILITY_DATA):
        raise ModelBadInput  # activity data are a facility's
    if name == "emissions verify" and out.get("facility") is not None and "output" in out:
        raise ModelBadInput  # a facility's output is its activity data
    if name == "rules publish" and "power" not in out and "new_sectors" not in out:
        raise ModelBadInput  # a plan gives one part or both
    if name == "facility register" and out["kind"] == "coal" and "rated_mw" not in out:
        raise ModelBadInput  # a coal unit's category follows from its rated power
    if name == "facility register" and "rated_mw" in out and FACILITY_KINDS[out["kind"]] != "power":
        raise ModelBadInput  # rated power only for generating units
    return out


# ---- the model -----------------------------------------------------------------------------
@dataclass
class Model:
    firms: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # id -> (sector, unit type)
    accounts: set[str] = field(default_factory=set)
    kinds: dict[str, str] = field(default_factory=dict)  # account -> compliance, trading or government
    frozen: dict[str, str | None] = field(default_factory=dict)  # account -> the day its freeze ends (None: never)
    closed: set[str] = field(default_factory=set)
    holdings: Counter = field(default_factory=Counter)  # (account, unit, vintage) -> t
    periods: dict[int, dict[str, Any]] = field(default_factory=dict)  # first year -> period
    year_period: dict[int, int] = field(default_factory=dict)  # year -> first year of its period
    verified: dict[tuple[str, int], tuple[int, int | None, str | None]] = field(default_factory=dict)
    facilities: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> FacilityRegistered data
    facility_verified: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # (facility, year)
    surrendered: Counter = field(default_factory=Counter)  # (firm, period first year, unit) -> t
    allocated: Counter = field(default_factory=Counter)  # (firm, year) -> net free allocation
    pre_allocated: set[tuple[str, int]] = field(default_factory=set)
    exempted: Counter = field(default_factory=Counter)  # (firm, year, exemption basis) -> t issued
    plans: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # published plans
    deductions: dict[str, tuple[int, int]] = field(default_factory=dict)  # firm -> (t still owed, after year)
    trade_days: dict[tuple[str, int], dict[str, tuple[int, Decimal]]] = field(
        default_factory=dict
    )  # product (unit, vintage) -> day -> (t, value) of its listed trades
    last_day: dict[str, str] = field(default_factory=dict)  # unit -> latest trade date, any product or mode
    bought: Counter = field(default_factory=Counter)  # (account, unit, vintage, day) -> t bought that day
    cea_months: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    commands: dict[str, tuple] = field(default_factory=dict)  # command id -> canonical command
    registered_after: dict[str, set[int]] = field(
        default_factory=dict
    )  # firm -> periods closed before it came
    status_at_close: dict[tuple[str, int], str] = field(default_factory=dict)  # (firm, period) -> A/B/C/-
    penalties: dict[tuple[str, int], tuple[str, int]] = field(
        default_factory=dict
    )  # (firm, period) -> fine, t
    entries: dict[int, list] = field(default_factory=dict)  # position -> [type, data, reversed at] (open years)
    verified_at: dict[tuple[str, int], int] = field(default_factory=dict)  # verification key -> its position
    position: int = 0
    volume: Counter = field(default_factory=Counter)  # unit -> t traded
    value: dict[str, Decimal] = field(default_factory=dict)  # unit -> yuan traded

    # ---- queries ----------------------------------------------------------------------
    def held(self, account: str, unit: str, vintage: int) -> int:
        return self.holdings[(account, unit, vintage)]

    def period_of(self, year: int) -> dict[str, Any] | None:
        first = self.year_period.get(year)
        return None if first is None else self.periods[first]

    def verified_in(self, fid: str, p: dict[str, Any]) -> int | None:
        found = [
            self.verified[(fid, y)][0] for y in range(p["first"], p["last"] + 1) if (fid, y) in self.verified
        ]
        return sum(found) if found else None

    def free_allocation(self, fid: str, p: dict[str, Any]) -> int:
        """The benchmark allocation and the exemptions issued, over the period's years."""
        years = range(p["first"], p["last"] + 1)
        return sum(self.allocated[(fid, y)] + sum(self.exempted[(fid, y, b)] for b in EXEMPTIONS) for y in years)

    def surrendered_in(self, fid: str, p: dict[str, Any], unit: str | None = None) -> int:
        return sum(self.surrendered[(fid, p["first"], u)] for u in UNITS if unit in (None, u))

    def obligation(self, fid: str, p: dict[str, Any]) -> int | None:
        """All of the period's verified emissions (docs/domain.md: the exemptions are issued, not deducted)."""
        return self.verified_in(fid, p)

    def status(self, fid: str, p: dict[str, Any]) -> str:
        """Status codes (docs/domain.md): A met the obligation, B short, C not verified, - no obligation."""
        sector = self.firms[fid][0]
        if p["first"] in self.registered_after.get(fid, ()):
            return "-"  # as implemented: a firm registered after a period closed owes nothing for it
        years = range(p["first"], p["last"] + 1)
        covered = any(sector in COVERED_FROM and y >= COVERED_FROM[sector] for y in years)
        if not (covered or self.verified_in(fid, p) is not None or self.free_allocation(fid, p) > 0):
            return "-"
        obligation = self.obligation(fid, p)
        if obligation is None:
            return "C"
        return "A" if self.surrendered_in(fid, p) >= obligation else "B"

    def last_trade_day(self, unit: str) -> str | None:
        return self.last_day.get(unit)

    def previous_close(self, product: tuple[str, int], date: str) -> Decimal | None:
        """The product's close before `date`: the VWAP of its last day with listed trades, to the cent (None
        before it had one). Block and auction trades never set it."""
        earlier = [d for d in self.trade_days.get(product, {}) if d < date]
        if not earlier:
            return None
        q, v = self.trade_days[product][max(earlier)]
        return cents(Fraction(v) / q)

    def band(self, product: tuple[str, int], date: str, mode: str) -> tuple[Decimal, Decimal] | None:
        close = self.previous_close(product, date)
        if close is None or BAND[mode] is None:
            return None
        return cents(Fraction(close) * (1 - BAND[mode])), cents(Fraction(close) * (1 + BAND[mode]))

    def sellable(self, account: str, unit: str, vintage: int, date: str) -> int:
        """T+1: units bought on `date` cannot be sold on `date`."""
        return self.held(account, unit, vintage) - self.bought[(account, unit, vintage, date)]

    def penalty_price(self, deadline: str) -> Decimal | None:
        """CEA VWAP of the month before the deadline; as implemented, else the latest earlier month traded."""
        target = previous_month(deadline)
        months = [m for m in self.cea_months if m <= target]
        if not months:
            return None
        q, v = self.cea_months[max(months)]
        return cents(Fraction(v) / q)

    # ---- running a command ------------------------------------------------------------
    def run(self, cmd: Cmd) -> Prediction:
        """Predict the registry's answer to `cmd`; on acceptance, apply its events to the model."""
        try:
            args = normalize(cmd.name, cmd.args)
            if len(cmd.cid) > MAX_COMMAND_ID:
                raise ModelBadInput
            canon = (cmd.name, tuple(sorted(args.items())))
            if cmd.cid in self.commands:
                if self.commands[cmd.cid] != canon:
                    raise ModelRefused("command id reused for a different command")
                return Prediction("replay")
            events = getattr(self, "_" + cmd.name.replace(" ", "_"))(args)
        except ModelBadInput:
            return Prediction("bad")
        except ModelRefused as e:
            return Prediction("refused", why=e.why)
        for etype, data in events:
            self.apply(etype, data)
        self.commands[cmd.cid] = canon
        return Prediction("ok", events)

    def _need_account(self, account: str) -> None:
        if account not in self.accounts:
            raise ModelRefused(f"no account {account}")
        if account in self.closed:
            raise ModelRefused(f"account {account} closed")

    def is_frozen(self, account: str) -> bool:
        return account in self.frozen and (self.frozen[account] is None or TODAY <= self.frozen[account])

    def _need_sender(self, account: str) -> None:
        """Units may leave the account: it is open and not frozen."""
        self._need_account(account)
        if self.is_frozen(account):
            raise ModelRefused(f"account {account} frozen")

    def _need_firm(self, fid: str) -> tuple[str, str | None]:
        if fid not in self.firms:
            raise ModelRefused(f"no firm {fid}")
        return self.firms[fid]

    def _need_open_period(self, year: int) -> dict[str, Any]:
        p = self.period_of(year)
        if p is None:
            raise ModelRefused(f"year {year} not open")
        if p["closed"]:
            raise ModelRefused(f"year {year} closed")
        return p

    def _need_holding(self, account: str, unit: str, vintage: int, q: int) -> None:
        if self.held(account, unit, vintage) < q:
            raise ModelRefused("holding too small")

    # ---- decisions (one per command) ----------------------------------------------------
    def _firm_register(self, a: dict[str, Any]) -> list:
        fid = a["firm_id"]
        if fid in self.firms or fid in self.accounts:
            raise ModelRefused("firm or account exists")
        unit_type = a.get("unit_type")
        if a["sector"] == "power":
            unit_type = unit_type or DEFAULT_UNIT_TYPE
        return [
            (
                "FirmRegistered",
                {
                    "firm_id": fid,
                    "name": a["name"],
                    "sector": a["sector"],
                    "region": a["region"],
                    "unit_type": unit_type,
                },
            ),
            ("AccountOpened", {"account_id": fid, "holder": fid, "kind": "compliance"}),
        ]

    def _account_open(self, a: dict[str, Any]) -> list:
        if a["account_id"] in self.accounts:
            raise ModelRefused("account exists")
        if a["kind"] == "compliance":
            raise ModelRefused("compliance accounts come with firm register")
        return [("AccountOpened", dict(a))]

    def _year_open(self, a: dict[str, Any]) -> list:
        first, last = a["year"]
        if any(y in self.year_period for y in range(first, last + 1)):
            raise ModelRefused("year already open")
        deadline = a.get("deadline") or f"{last + 1}-12-31"
        return [
            (
                "ComplianceYearOpened",
                {
                    "year": first,
                    "surrender_deadline": deadline,
                    **({"last_year": last} if last != first else {}),
                },
            )
        ]

    def _year_close(self, a: dict[str, Any]) -> list:
        p = self._need_open_period(a["year"])
        correct_by = a.get("correct_by")
        if correct_by is None:
            correct_by = day_after(p["deadline"], CORRECTION_DAYS)
        elif correct_by < TODAY:
            raise ModelRefused("time limit to correct before today")
        deadline = p["deadline"]
        fixed = deadline < MARKET_MULTIPLE_FROM
        multiple = a.get("fine_multiple") or DEFAULT_FINE_MULTIPLE
        price = self.penalty_price(deadline)
        events = []
        for fid in sorted(self.firms):
            obligation = self.obligation(fid, p)
            if obligation is None:
                continue
            shortfall = obligation - self.surrendered_in(fid, p)
            if shortfall <= 0:
                continue
            if fixed:
                fine = FIXED_FINE
            else:
                fine = (
                    cents(Fraction(multiple) * shortfall * Fraction(price)) if price is not None else cents(0)
                )
            events.append(
                (
                    "PenaltyAssessed",
                    {
                        "firm_id": fid,
                        "year": p["first"],
                        "shortfall": shortfall,
                        "fine": str(fine),
                        "deduction": 0,  # IR art. 24: deducted only if not corrected by the time limit
                        "correct_by": correct_by,
                    },
                )
            )
        return events + [("ComplianceYearClosed", {"year": p["first"], "correct_by": correct_by})]

    def _year_enforce(self, a: dict[str, Any]) -> list:
        p = self.period_of(a["year"])
        if p is None or not p["closed"] or p.get("enforced"):
            raise ModelRefused("year not open, not closed, or enforced already")
        if TODAY <= p["correct_by"]:
            raise ModelRefused("the time limit to correct has not passed")
        events = []
        for fid in sorted(self.firms):
            if (fid, p["first"]) not in self.penalties:
                continue
            short = self.obligation(fid, p) - self.surrendered_in(fid, p)
            if short > 0:
                events.append(("DeductionOrdered", {"firm_id": fid, "year": p["first"], "shortfall": short,
                                                    "deduction": short, "correct_by": p["correct_by"]}))
        return events + [("ComplianceYearEnforced", {"year": p["first"], "correct_by": p["correct_by"]})]

    def _issue(self, a: dict[str, Any]) -> list:
        self._need_account(a["account_id"])
        if (a["unit"] == "CCER") != (a["basis"] == "offset"):
            raise ModelRefused("CCER only with basis offset")
        return [("AllowancesIssued", dict(a))]

    def _transfer(self, a: dict[str, Any]) -> list:
        if a["from_account"] == a["to_account"]:
            raise ModelRefused("same account")
        self._need_sender(a["from_account"])
        self._need_account(a["to_account"])
        self._need_holding(a["from_account"], a["unit"], a["vintage"], a["quantity"])
        return [("AllowancesTransferred", dict(a))]

    def _trade(self, a: dict[str, Any]) -> list:
        buyer, seller, unit, vintage, q, mode, date = (
            a[k] for k in ("buyer", "seller", "unit", "vintage", "quantity", "mode", "date")
        )
        if buyer == seller:
            raise ModelRefused("self trade")
        self._need_account(buyer)
        self._need_sender(seller)
        if mode == "listed" and q >= LISTED_BELOW_T:
            raise ModelRefused("listed lot too large")
        if mode == "block" and q < BLOCK_FROM_T:
            raise ModelRefused("block lot too small")
        last = self.last_trade_day(unit)
        if last is not None and date < last:
            raise ModelRefused("trade date goes backwards")
        band = self.band((unit, vintage), date, mode)
        if band is not None and not band[0] <= a["price"] <= band[1]:
            raise ModelRefused(f"price outside band {band}")
        if self.sellable(seller, unit, vintage, date) < q:
            raise ModelRefused("seller cannot sell that many today")
        return [
            (
                "TradeExecuted",
                {
                    "buyer": buyer,
                    "seller": seller,
                    "unit": unit,
                    "vintage": vintage,
                    "quantity": q,
                    "price": str(a["price"]),
                    "mode": mode,
                    "trade_date": date,
                },
            )
        ]

    def _facility_register(self, a: dict[str, Any]) -> list:
        sector, _ut = self._need_firm(a["firm"])
        if a["facility_id"] in self.facilities:
            raise ModelRefused("facility exists")
        if FACILITY_KINDS[a["kind"]] != sector:
            raise ModelRefused("facility kind of another sector")
        has = any(f["firm_id"] == a["firm"] for f in self.facilities.values())
        if not has and any(fid == a["firm"] for fid, _y in self.verified):
            raise ModelRefused("firm-level verification came first")
        return [("FacilityRegistered", {"facility_id": a["facility_id"], "firm_id": a["firm"], "kind": a["kind"],
                                        **({"rated_mw": a["rated_mw"]} if "rated_mw" in a else {})})]

    def firm_facilities(self, fid: str) -> list[str]:
        return [k for k, f in self.facilities.items() if f["firm_id"] == fid]

    def _emissions_verify(self, a: dict[str, Any]) -> list:
        self._need_firm(a["firm_id"])
        fac = a.get("facility")
        if fac is not None:
            if fac not in self.facilities:
                raise ModelRefused("no such facility")
            if self.facilities[fac]["firm_id"] != a["firm_id"]:
                raise ModelRefused("another firm's facility")
            data = {"firm_id": a["firm_id"], "year": a["year"], "facility_id": fac, "tonnes": a["tonnes"]}
            data.update({k: a[k] for k in FACILITY_DATA if k in a})
            return [("EmissionsVerified", data)]
        if self.firm_facilities(a["firm_id"]):
            raise ModelRefused("a firm with facilities verifies them one by one")
        return [
            (
                "EmissionsVerified",
                {
                    "firm_id": a["firm_id"],
                    "year": a["year"],
                    "tonnes": a["tonnes"],
                    "output": a.get("output"),
                    "output_unit": a.get("output_unit"),
                },
            )
        ]

    def _surrender(self, a: dict[str, Any]) -> list:
        fid, unit, vintage, q = a["firm_id"], a["unit"], a["vintage"], a["quantity"]
        self._need_firm(fid)
        p = self.period_of(a["year"])
        if p is not None and p["closed"]:  # late: until the time limit to correct, not after enforcement
            if p.get("enforced") or TODAY > p["correct_by"]:
                raise ModelRefused("year closed and the time limit to correct passed")
        else:
            p = self._need_open_period(a["year"])
        if vintage > p["last"]:
            raise ModelRefused("vintage later than the compliance year")
        if unit == "CEA" and vintage <= 2024 and p["first"] >= 2025:
            raise ModelRefused("a vintage up to 2024 not carried over into 2025")
        self._need_sender(fid)
        self._need_holding(fid, unit, vintage, q)
        if unit == "CCER" and p["first"] >= 2024:  # the machine issues CCER without a registration date
            raise ModelRefused("from 2024 only CCER of projects registered from 22 January 2024 count")
        verified = self.verified_in(fid, p)
        if verified is None:
            raise ModelRefused("not verified")
        if unit == "CCER" and self.surrendered_in(fid, p, "CCER") + q > floor(CCER_SHARE * verified):
            raise ModelRefused("CCER beyond 5% of verified")
        if self.surrendered_in(fid, p) + q > self.obligation(fid, p):
            raise ModelRefused("beyond obligation")
        return [
            (
                "AllowancesSurrendered",
                {"firm_id": fid, "year": p["first"], "unit": unit, "vintage": vintage, "quantity": q},
            )
        ]

    def _cancel(self, a: dict[str, Any]) -> list:
        self._need_sender(a["account_id"])
        self._need_holding(a["account_id"], a["unit"], a["vintage"], a["quantity"])
        return [("AllowancesCancelled", dict(a))]

    def _account_freeze(self, a: dict[str, Any]) -> list:
        self._need_account(a["account_id"])
        if self.is_frozen(a["account_id"]):
            raise ModelRefused("frozen already")
        if a.get("until") is not None and a["until"] < TODAY:
            raise ModelRefused("a freeze that ended before today")
        return [("AccountFrozen", {"account_id": a["account_id"], "reason": a["reason"], "until": a.get("until")})]

    def _account_unfreeze(self, a: dict[str, Any]) -> list:
        self._need_account(a["account_id"])
        if not self.is_frozen(a["account_id"]):
            raise ModelRefused("not frozen")
        return [("AccountUnfrozen", dict(a))]

    def _account_close(self, a: dict[str, Any]) -> list:
        aid, sweep = a["account_id"], a.get("sweep_to")
        self._need_account(aid)
        if self.is_frozen(aid):
            raise ModelRefused("closing a frozen account")
        mine = sorted((k, q) for k, q in self.holdings.items() if k[0] == aid and q)
        events: list[tuple[str, dict[str, Any]]] = []
        if sweep is not None:
            if sweep == aid:
                raise ModelRefused("a sweep into itself")
            self._need_account(sweep)
            if self.kinds[sweep] != "government":
                raise ModelRefused("a sweep to an account that is not a government account")
            events = [("AllowancesTransferred", {"from_account": aid, "to_account": sweep, "unit": u, "vintage": v,
                                                 "quantity": q}) for (_, u, v), q in mine]
        elif mine:
            raise ModelRefused("closing an account that holds units")
        return [*events, ("AccountClosed", {"account_id": aid, "swept_to": sweep})]

    # ---- reversals (docs/events.md EntryReversed; README "Operating a registry") ------------------------
    @staticmethod
    def entry_year(etype: str, d: dict[str, Any]) -> int:
        if etype in ("AllowancesSurrendered", "EmissionsVerified"):
            return d["year"]
        return d.get("year") or d.get("_year") or d["vintage"]

    @staticmethod
    def verification_key(d: dict[str, Any]) -> tuple[str, int]:
        fac = d.get("facility_id")
        return (d["firm_id"] if fac is None else f"{d['firm_id']}/{fac}", d["year"])

    def is_final(self, year: int) -> bool:
        """A compliance year enforced (or closed without a time limit to correct): nothing of it is reversed."""
        p = self.period_of(year)
        return p is not None and p["closed"] and (p.get("correct_by") is None or bool(p.get("enforced")))

    def _take_back(self, account: str, e: dict[str, Any]) -> None:
        self._need_sender(account)  # open and not frozen
        if self.held(account, e["unit"], e["vintage"]) < e["quantity"]:
            raise ModelRefused("the units are no longer there")

    def _reverse(self, a: dict[str, Any]) -> list:
        pos = a["position"]
        if pos not in self.entries:
            raise ModelRefused("not reversible")
        t, e, by = self.entries[pos]
        if by is not None:
            raise ModelRefused("reversed already")
        data: dict[str, Any] = {"reversed_position": pos, "reversed_type": t, "reason": a["reason"]}
        if t == "AllowancesIssued":
            self._take_back(e["account_id"], e)
            data.update(account_id=e["account_id"], unit=e["unit"], vintage=e["vintage"], quantity=e["quantity"],
                        basis=e["basis"])
        elif t == "AllowancesTransferred":
            self._need_account(e["from_account"])
            self._take_back(e["to_account"], e)
            data.update(from_account=e["to_account"], to_account=e["from_account"], unit=e["unit"],
                        vintage=e["vintage"], quantity=e["quantity"])
        elif t == "AllowancesSurrendered":
            self._need_account(e["firm_id"])
            self._need_open_period(e["year"])
            data.update(firm_id=e["firm_id"], account_id=e["firm_id"], year=e["year"], unit=e["unit"],
                        vintage=e["vintage"], quantity=e["quantity"])
        else:
            if self.verified_at.get(self.verification_key(e)) != pos:
                raise ModelRefused("a later verification replaced it")
            data.update(firm_id=e["firm_id"], year=e["year"])
            if e.get("facility_id") is not None:
                data["facility_id"] = e["facility_id"]
            prev = e["_previous"]
            if prev is not None and prev in self.entries:
                p = self.entries[prev][1]
                data.update(tonnes=p["tonnes"], restores_position=prev)
                if p.get("output") is not None:
                    data.update(output=p["output"], output_unit=p["output_unit"])
        return [("EntryReversed", data)]

    def _undo(self, d: dict[str, Any]) -> None:
        t, e, _ = entry = self.entries[d["reversed_position"]]
        entry[2] = self.position
        if t == "AllowancesIssued":
            self._move(e["account_id"], e["unit"], e["vintage"], -e["quantity"])
            year = self.entry_year(t, e)
            if e["basis"] in EXEMPTIONS:
                self.exempted[(e["account_id"], year, e["basis"])] -= e["quantity"]
            elif e["basis"] in ("pre-allocation", "true-up") and e["account_id"] in self.firms:
                self.allocated[(e["account_id"], year)] -= e["quantity"]
                if e["basis"] == "pre-allocation":
                    self.pre_allocated.discard((e["account_id"], year))
        elif t == "AllowancesTransferred":
            self._move(e["to_account"], e["unit"], e["vintage"], -e["quantity"])
            self._move(e["from_account"], e["unit"], e["vintage"], e["quantity"])
        elif t == "AllowancesSurrendered":
            self._move(e["firm_id"], e["unit"], e["vintage"], e["quantity"])
            self.surrendered[(e["firm_id"], self.year_period[e["year"]], e["unit"])] -= e["quantity"]
        else:
            key, prev = self.verification_key(e), d.get("restores_position")
            fid, year = e["firm_id"], e["year"]
            if prev is None:
                self.verified_at.pop(key, None)
            else:
                self.verified_at[key] = prev
            if e.get("facility_id") is not None:
                if prev is None:
                    self.facility_verified.pop((e["facility_id"], year), None)
                else:
                    self.facility_verified[(e["facility_id"], year)] = dict(self.entries[prev][1])
                held = [self.facility_verified[(f, year)]["tonnes"] for f in self.firm_facilities(fid)
                        if (f, year) in self.facility_verified]
                if held:
                    self.verified[(fid, year)] = (sum(held), None, None)
                else:
                    self.verified.pop((fid, year), None)
            elif prev is None:
                self.verified.pop((fid, year), None)
            else:
                p = self.entries[prev][1]
                self.verified[(fid, year)] = (p["tonnes"], p.get("output"), p.get("output_unit"))

    def _keep_entry(self, etype: str, d: dict[str, Any]) -> None:
        """A reversible event is kept while its compliance year is not final (`self.position` is its own)."""
        if etype not in REVERSIBLE or self.is_final(self.entry_year(etype, d)):
            return
        d = dict(d)
        if etype == "EmissionsVerified":
            key = self.verification_key(d)
            d["_previous"] = self.verified_at.get(key)
            self.verified_at[key] = self.position
        self.entries[self.position] = [etype, d, None]

    def _drop_entries(self, p: dict[str, Any]) -> None:
        years = set(range(p["first"], p["last"] + 1))
        for pos in [q for q, (t, e, _) in self.entries.items() if self.entry_year(t, e) in years]:
            del self.entries[pos]

    def _benchmark(self, unit_type: str | None, output_unit: str | None, year: int) -> Fraction:
        table = reference_data.benchmarks_for(year, self._plan)  # reference data, with the plans published
        if output_unit == "MWh":
            return Fraction(table.electricity[unit_type or DEFAULT_UNIT_TYPE])
        if output_unit == "GJ":
            return Fraction(table.heat[unit_type or DEFAULT_UNIT_TYPE])
        raise ModelRefused("power output must be in MWh or GJ")

    def _plan(self, part: str, year: int) -> dict[str, Any] | None:
        return reference_data.plans.plan_for(part, year, self.plans)  # reference data, with those published

    def _settle(self, fid: str, year: int, targets: list[tuple[str, int]], moved: int = 0) -> list:
        """Issue or claw back, per basis, the difference between its target and what it issued so far."""
        events = []
        held = self.held(fid, "CEA", year) + moved
        for basis, target in targets:
            already = self.exempted[(fid, year, basis)] if basis in EXEMPTIONS else self.allocated[(fid, year)]
            delta = target - already
            if delta > 0:
                events.append(("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year,
                                                    "quantity": delta, "basis": basis}))
                held += delta
            elif delta < 0:
                if self.is_frozen(fid):
                    raise ModelRefused("a clawback from a frozen account")
                take = min(held, -delta)
                if take == 0:
                    raise ModelRefused("nothing to claw back")
                held -= take
                events.append(("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year,
                                                       "quantity": take, "reason": "true-up clawback",
                                                       "outstanding": (-delta - take) or None,
                                                       **({"basis": basis} if basis in EXEMPTIONS else {})}))
        return events

    @staticmethod
    def _exemption_targets(plan: dict[str, Any], gas_gaps: list[int], verified: int, computed: int) -> list:
        """P23 5(3): gas units topped up to their verified emissions, then the firm to 80% of its own."""
        gas = sum(gas_gaps) if plan.get("gas_unit_exemption") else 0
        out = [("gas-unit exemption", gas)]
        if plan.get("gap_cap_share") is not None:
            target = floor((1 - Fraction(plan["gap_cap_share"])) * verified)
            out.append(("gap-cap exemption", max(target - computed - gas, 0)))
        return out

    def _unit(self, plan: dict[str, Any], year: int, fac: dict[str, Any], data: dict[str, Any]) -> int:
        """One generating unit's allocation. P23 (2023-2024) worked here from annexes 3 and 4; the other plans'
        formulas (P19, P21, P25d) are read from ledger.formulas, as reference data."""
        if plan.get("peak_load_formula") != "p23" or plan.get("heat_share_factor"):
            try:
                return reference_formulas.power_unit(plan, year, fac, data)["allocation"]
            except Refused as e:
                raise ModelRefused(str(e)) from None
        kind = fac["kind"]
        if kind == "coal":
            cat = "I" if Decimal(fac["rated_mw"]) >= Decimal(plan["category_i_min_mw"]) else "II"
        else:
            cat = {"coal-unconventional": "III", "gas": "IV"}[kind]
        qe = data.get(plan["output_basis"] + "_mwh")
        if qe is None:
            raise ModelRefused("no electricity output verified")
        qh = data.get("heat_gj") or 0
        ff = Decimal(1)
        if kind == "coal":
            if data.get("load_factor") is None:
                raise ModelRefused("no load factor verified")
            lf = Decimal(data["load_factor"])
            if lf < Decimal("0.65"):
                ff = (Decimal("1.015") ** (16 - 20 * lf)).quantize(Decimal("0.000001"), rounding="ROUND_HALF_UP")
        be = Fraction(plan["electricity_t_per_mwh"][cat])
        bh = Fraction(plan["heat_t_per_gj"]["gas" if kind == "gas" else "coal"])
        return floor(qe * be * Fraction(ff) + qh * bh)

    def _new_sector_unit(self, plan: dict[str, Any], fac: dict[str, Any], data: dict[str, Any]) -> int:
        """A = E (the first year), or A = E x (1 + a), X = (BP - I) / BP (P25d)."""
        e = data["tonnes"]
        if plan["formula"] == "verified":
            return e
        bp = (plan.get("balance_values") or {}).get(fac["kind"])
        if bp is None:
            raise ModelRefused("balance value not public")
        if data.get("intensity") is None:
            raise ModelRefused("no intensity verified")
        q = Decimal("0.000001")
        x = ((Decimal(str(bp)) - Decimal(data["intensity"])) / Decimal(str(bp))).quantize(q, rounding="ROUND_HALF_UP")
        bound, cap = Decimal(plan["bound_x"]), Decimal(plan["cap"])
        a = cap if x >= bound else -cap if x <= -bound else (Decimal(plan["slope"]) * x).quantize(
            q, rounding="ROUND_HALF_UP")
        return floor(Fraction(e) * (1 + Fraction(a)))

    def _allocate_facilities(self, fid: str, sector: str, year: int, step: str) -> list:
        plan = self._plan("power" if sector == "power" else "new_sectors", year)
        if plan is None:
            raise ModelRefused("no plan")
        facs = [self.facilities[f] for f in self.firm_facilities(fid)]
        if step == "pre":
            if (fid, year) in self.pre_allocated:
                raise ModelRefused("already pre-allocated")
            if sector != "power" and plan.get("formula") == "verified":
                raise ModelRefused("no pre-allocation in a new sector's first year")
            based = [(f, self.facility_verified[(f["facility_id"], year - 1)]) for f in facs
                     if (f["facility_id"], year - 1) in self.facility_verified]
            pre = plan.get("pre_allocation")
            if based and not pre:
                raise ModelRefused("the plan has no pre-allocation")
            if not based:
                raise ModelRefused("no base year")
            share = Fraction(pre["share"])
            if pre["basis"] == "verified":
                computed = sum(floor(share * d["tonnes"]) for _f, d in based)
            else:
                computed = sum(floor(share * self._unit(plan, year, f, d)) for f, d in based)
            if computed <= 0:
                raise ModelRefused("nothing to allocate")
            return [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": computed,
                                          "basis": "pre-allocation"})]
        done = [(f, self.facility_verified[(f["facility_id"], year)]) for f in facs
                if (f["facility_id"], year) in self.facility_verified]
        if not done:
            raise ModelRefused("not verified")
        if sector == "power":
            units = [(f, d, self._unit(plan, year, f, d)) for f, d in done]
        else:
            units = [(f, d, self._new_sector_unit(plan, f, d)) for f, d in done]
        computed = sum(u for _f, _d, u in units)
        targets = [("true-up", computed)]
        if sector == "power":
            gaps = [max(d["tonnes"] - u, 0) for f, d, u in units if f["kind"] == "gas"]
            targets += self._exemption_targets(plan, gaps, self.verified[(fid, year)][0], computed)
        events = self._settle(fid, year, targets)
        if not events:
            raise ModelRefused("allocation already right")
        return events

    def _allocate(self, a: dict[str, Any]) -> list:
        fid, year, step = a["firm_id"], a["year"], a["step"]
        sector, unit_type = self._need_firm(fid)
        self._need_open_period(year)
        if sector not in COVERED_FROM or year < COVERED_FROM[sector]:
            raise ModelRefused("sector not covered")
        self._need_account(fid)  # its compliance account, unless closed
        new_sector = sector in NEW_SECTORS
        events: list[tuple[str, dict[str, Any]]]
        if self.firm_facilities(fid):
            if a.get("factors"):
                raise ModelRefused("a firm with facilities takes its factors from the plan")
            events = self._allocate_facilities(fid, sector, year, step)
        else:
            factor = Fraction(1)
            for _k, f in a.get("factors") or ():
                factor *= Fraction(f)
            if step == "pre":
                if (fid, year) in self.pre_allocated:
                    raise ModelRefused("already pre-allocated")
                base = self.verified.get((fid, year - 1))
                plan = self._plan("power" if sector == "power" else "new_sectors", year) or {}
                pre = plan.get("pre_allocation")
                share = Fraction(pre["share"]) if pre else PRE_ALLOCATION_SHARE
                by_emissions = (not pre or pre["basis"] == "verified") if sector == "power" else True
                if sector == "power" and not pre:
                    by_emissions = False
                if new_sector and year <= COVERED_FROM[sector]:
                    raise ModelRefused("no pre-allocation in a new sector's first year")
                if by_emissions:
                    if base is None:
                        raise ModelRefused("no base year")
                    computed = floor(share * base[0])
                else:
                    if base is None or base[1] is None:
                        raise ModelRefused("no base-year output")
                    computed = floor(share * base[1] * self._benchmark(unit_type, base[2], year))
                if computed <= 0:
                    raise ModelRefused("nothing to allocate")
                events = [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year,
                                                "quantity": computed, "basis": "pre-allocation"})]
            else:
                actual = self.verified.get((fid, year))
                if new_sector:
                    if actual is None:
                        raise ModelRefused("not verified")
                    share = reference_data.new_sector_share(year)  # 2024: 1 (docs/domain.md); later: per facility
                    if share is None:
                        raise ModelRefused("a new sector is allocated per facility from 2025")
                    computed = floor(Fraction(share) * actual[0] * factor)
                else:
                    if actual is None or actual[1] is None:
                        raise ModelRefused("no verified output")
                    computed = floor(actual[1] * self._benchmark(unit_type, actual[2], year) * factor)
                events = []
                delta = computed - self.allocated[(fid, year)]
                if delta > 0:
                    events = [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year,
                                                    "quantity": delta, "basis": "true-up"})]
                elif delta < 0:
                    if self.is_frozen(fid):
                        raise ModelRefused("a clawback from a frozen account")
                    take = min(self.held(fid, "CEA", year), -delta)
                    if take == 0:
                        raise ModelRefused("nothing to claw back")
                    events = [("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year,
                                                       "quantity": take, "reason": "true-up clawback",
                                                       "outstanding": (-delta - take) or None})]
                plan = self._plan("power", year)
                if not new_sector and plan is not None:
                    gaps = [max(actual[0] - computed, 0)] if unit_type == "gas" else []
                    moved = sum(d["quantity"] if t == "AllowancesIssued" else -d["quantity"] for t, d in events)
                    events += self._settle(fid, year, self._exemption_targets(plan, gaps, actual[0], computed),
                                           moved)
                if not events:
                    raise ModelRefused("allocation already right")
        issued = sum(d["quantity"] for t, d in events if t == "AllowancesIssued")
        owed = self.deductions.get(fid)
        if owed and issued and year > owed[1]:
            take = min(owed[0], issued)
            events.append(("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year,
                                                   "quantity": take, "reason": "penalty deduction",
                                                   "outstanding": (owed[0] - take) or None}))
        for _t, d in events:
            d["_year"] = year
        return events

    def _rules_publish(self, a: dict[str, Any]) -> list:
        for y in a["years"]:
            p = self.period_of(y)
            if p is not None and p["closed"]:
                raise ModelRefused("the year is closed")
        trial = {k: list(v) for k, v in self.plans.items()}
        for part in ("power", "new_sectors"):
            if a.get(part) is None:
                continue
            for y in a["years"]:
                trial.setdefault((part, y), []).append({**a[part], "version": a["version"], "source": a["source"]})
                merged = reference_data.plans.plan_for(part, y, trial) or {}
                if part == "power":
                    ok = all(k in merged for k in ("output_basis", "category_i_min_mw")) and set(
                        merged.get("electricity_t_per_mwh", {})) >= {"I", "II", "III", "IV"} and set(
                        merged.get("heat_t_per_gj", {})) >= {"coal", "gas"}
                else:
                    f = merged.get("formula")
                    ok = f == "verified" or (f == "balance" and all(
                        k in merged for k in ("slope", "bound_x", "cap", "balance_values")))
                if not ok:
                    raise ModelRefused("the plan would be incomplete")
        return [("PlanPublished", {k: a[k] for k in ("version", "years", "source", "power", "new_sectors")
                                   if a.get(k) is not None})]

    # ---- the model's own fold ------------------------------------------------------------
    def apply(self, etype: str, d: dict[str, Any]) -> None:
        self.position += 1
        self._apply(etype, d)
        self._keep_entry(etype, d)

    def _apply(self, etype: str, d: dict[str, Any]) -> None:
        if etype == "EntryReversed":
            self._undo(d)
        elif etype == "FirmRegistered":
            self.firms[d["firm_id"]] = (d["sector"], d["unit_type"])
            self.registered_after[d["firm_id"]] = {first for first, p in self.periods.items() if p["closed"]}
        elif etype == "AccountOpened":
            self.accounts.add(d["account_id"])
            self.kinds[d["account_id"]] = d["kind"]
        elif etype == "AccountFrozen":
            self.frozen[d["account_id"]] = d["until"]
        elif etype == "AccountUnfrozen":
            del self.frozen[d["account_id"]]
        elif etype == "AccountClosed":
            self.closed.add(d["account_id"])
        elif etype == "ComplianceYearOpened":
            first, last = d["year"], d.get("last_year") or d["year"]
            self.periods[first] = {
                "first": first,
                "last": last,
                "deadline": d["surrender_deadline"],
                "closed": False,
            }
            for y in range(first, last + 1):
                self.year_period[y] = first
        elif etype == "ComplianceYearClosed":
            p = self.periods[d["year"]]
            p["closed"] = True
            p["correct_by"] = d["correct_by"]
            if self.is_final(p["first"]):
                self._drop_entries(p)
            for fid in self.firms:
                self.status_at_close[(fid, p["first"])] = self.status(fid, p)
        elif etype == "PlanPublished":
            for part in ("power", "new_sectors"):
                if d.get(part) is not None:
                    for y in d["years"]:
                        self.plans.setdefault((part, y), []).append(
                            {**d[part], "version": d["version"], "source": d["source"]})
        elif etype == "AllowancesIssued" and d["basis"] in EXEMPTIONS:
            self._move(d["account_id"], d["unit"], d["vintage"], d["quantity"])
            self.exempted[(d["account_id"], d["_year"], d["basis"])] += d["quantity"]
        elif etype == "AllowancesIssued":
            self._move(d["account_id"], d["unit"], d["vintage"], d["quantity"])
            if d["basis"] in ("pre-allocation", "true-up") and d["account_id"] in self.firms:
                key = (d["account_id"], d.get("_year") or d["vintage"])
                self.allocated[key] += d["quantity"]
                if d["basis"] == "pre-allocation":
                    self.pre_allocated.add(key)
        elif etype == "AllowancesTransferred":
            self._move(d["from_account"], d["unit"], d["vintage"], -d["quantity"])
            self._move(d["to_account"], d["unit"], d["vintage"], d["quantity"])
        elif etype == "TradeExecuted":
            unit, day, q, price = d["unit"], d["trade_date"], d["quantity"], Decimal(d["price"])
            self._move(d["seller"], unit, d["vintage"], -q)
            self._move(d["buyer"], unit, d["vintage"], q)
            if d["mode"] == "listed":
                days = self.trade_days.setdefault((unit, d["vintage"]), {})
                dq, dv = days.get(day, (0, Decimal(0)))
                days[day] = (dq + q, dv + price * q)
            self.last_day[unit] = max(self.last_day.get(unit, day), day)
            self.bought[(d["buyer"], unit, d["vintage"], day)] += q
            self.volume[unit] += q
            self.value[unit] = self.value.get(unit, Decimal(0)) + price * q
            if unit == "CEA":
                mq, mv = self.cea_months.get(day[:7], (0, Decimal(0)))
                self.cea_months[day[:7]] = (mq + q, mv + price * q)
        elif etype == "FacilityRegistered":
            self.facilities[d["facility_id"]] = dict(d)
        elif etype == "EmissionsVerified" and "facility_id" in d:
            fid, year = d["firm_id"], d["year"]
            self.facility_verified[(d["facility_id"], year)] = dict(d)
            total = sum(self.facility_verified[(f, year)]["tonnes"] for f in self.firm_facilities(fid)
                        if (f, year) in self.facility_verified)
            self.verified[(fid, year)] = (total, None, None)
        elif etype == "EmissionsVerified":
            self.verified[(d["firm_id"], d["year"])] = (d["tonnes"], d["output"], d["output_unit"])
        elif etype == "AllowancesSurrendered":
            self._move(d["firm_id"], d["unit"], d["vintage"], -d["quantity"])
            self.surrendered[(d["firm_id"], d["year"], d["unit"])] += d["quantity"]
        elif etype == "AllowancesCancelled":
            self._move(d["account_id"], d["unit"], d["vintage"], -d["quantity"])
        elif etype == "AllowancesWithdrawn":
            fid, year = d["account_id"], d["_year"]
            self._move(fid, d["unit"], d["vintage"], -d["quantity"])
            outstanding = d.get("outstanding") or 0
            if d["reason"] == "true-up clawback" and d.get("basis") in EXEMPTIONS:
                self.exempted[(fid, year, d["basis"])] -= d["quantity"]
                if outstanding:
                    owed, after = self.deductions.get(fid, (0, year))
                    self.deductions[fid] = (owed + outstanding, after)
            elif d["reason"] == "true-up clawback":
                self.allocated[(fid, year)] -= d["quantity"]
                if outstanding:
                    owed, after = self.deductions.get(fid, (0, year))
                    self.deductions[fid] = (owed + outstanding, after)
            elif outstanding:
                self.deductions[fid] = (outstanding, self.deductions[fid][1])
            else:
                self.deductions.pop(fid, None)
        elif etype == "PenaltyAssessed":
            p = self.periods[d["year"]]
            self.penalties[(d["firm_id"], p["first"])] = (d["fine"], d["deduction"])
        elif etype == "DeductionOrdered":
            p = self.periods[d["year"]]
            fid = d["firm_id"]
            self.penalties[(fid, p["first"])] = (self.penalties[(fid, p["first"])][0], d["deduction"])
            owed, after = self.deductions.get(fid, (0, p["last"]))
            self.deductions[fid] = (owed + d["deduction"], max(after, p["last"]))
        elif etype == "ComplianceYearEnforced":
            self.periods[d["year"]]["enforced"] = True
            self._drop_entries(self.periods[d["year"]])
        else:  # pragma: no cover
            raise AssertionError(etype)

    def _move(self, account: str, unit: str, vintage: int, delta: int) -> None:
        key = (account, unit, vintage)
        self.holdings[key] += delta
        assert self.holdings[key] >= 0, f"model: negative holding {key}"
        if not self.holdings[key]:
            del self.holdings[key]
