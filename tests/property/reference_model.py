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

from ledger import rules as reference_data

# ---- rules from docs/domain.md -------------------------------------------------------------
LISTED_BELOW_T = 100_000  # listed agreement: under 100,000 t an order
BLOCK_FROM_T = 100_000  # block agreement: at least 100,000 t
BAND = {"listed": Fraction(10, 100), "block": Fraction(30, 100), "auction": None}
CCER_SHARE = Fraction(5, 100)  # CCER may cover at most 5% of verified emissions
GAP_CAP_SHARE = Fraction(20, 100)  # power: obligation <= free allocation + 20% of verified
PRE_ALLOCATION_SHARE = Fraction(70, 100)
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


REQUIRED, OPTIONAL = True, False
FIELDS: dict[str, dict[str, tuple[bool, Any]]] = {
    "firm register": {
        "firm_id": (REQUIRED, _id),
        "name": (REQUIRED, _text),
        "sector": (REQUIRED, _choice(SECTORS)),
        "region": (REQUIRED, _text),
        "unit_type": (OPTIONAL, _choice(UNIT_TYPES)),
    },
    "account open": {
        "account_id": (REQUIRED, _id),
        "holder": (REQUIRED, _text),
        "kind": (OPTIONAL, _choice(ACCOUNT_KINDS)),
    },
    "year open": {"year": (REQUIRED, _period), "deadline": (OPTIONAL, _date)},
    "year close": {"year": (REQUIRED, _year), "fine_multiple": (OPTIONAL, _multiple)},
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
}
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
    surrendered: Counter = field(default_factory=Counter)  # (firm, period first year, unit) -> t
    allocated: Counter = field(default_factory=Counter)  # (firm, year) -> net free allocation
    pre_allocated: set[tuple[str, int]] = field(default_factory=set)
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
        return sum(self.allocated[(fid, y)] for y in range(p["first"], p["last"] + 1))

    def surrendered_in(self, fid: str, p: dict[str, Any], unit: str | None = None) -> int:
        return sum(self.surrendered[(fid, p["first"], u)] for u in UNITS if unit in (None, u))

    def obligation(self, fid: str, p: dict[str, Any]) -> int | None:
        v = self.verified_in(fid, p)
        if v is None:
            return None
        sector, unit_type = self.firms[fid]
        if sector != "power":
            return v
        free = self.free_allocation(fid, p)
        if unit_type == "gas":
            return min(v, free)
        return min(v, free + floor(GAP_CAP_SHARE * v))

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
                        "deduction": shortfall,
                    },
                )
            )
        return events + [("ComplianceYearClosed", {"year": p["first"]})]

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

    def _emissions_verify(self, a: dict[str, Any]) -> list:
        self._need_firm(a["firm_id"])
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
        p = self._need_open_period(a["year"])
        if vintage > p["last"]:
            raise ModelRefused("vintage later than the compliance year")
        self._need_sender(fid)
        self._need_holding(fid, unit, vintage, q)
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

    def _benchmark(self, unit_type: str | None, output_unit: str | None, year: int) -> Fraction:
        table = reference_data.benchmarks_for(year)  # reference data (tCO2 per MWh / per GJ)
        if output_unit == "MWh":
            return Fraction(table.electricity[unit_type or DEFAULT_UNIT_TYPE])
        if output_unit == "GJ":
            return Fraction(table.heat[unit_type or DEFAULT_UNIT_TYPE])
        raise ModelRefused("power output must be in MWh or GJ")

    def _allocate(self, a: dict[str, Any]) -> list:
        fid, year, step = a["firm_id"], a["year"], a["step"]
        sector, unit_type = self._need_firm(fid)
        self._need_open_period(year)
        if sector not in COVERED_FROM or year < COVERED_FROM[sector]:
            raise ModelRefused("sector not covered")
        self._need_account(fid)  # its compliance account, unless closed
        factor = Fraction(1)
        for _k, f in a.get("factors") or ():
            factor *= Fraction(f)
        new_sector = sector in NEW_SECTORS
        events: list[tuple[str, dict[str, Any]]]
        if step == "pre":
            if (fid, year) in self.pre_allocated:
                raise ModelRefused("already pre-allocated")
            base = self.verified.get((fid, year - 1))
            if new_sector:
                if year <= COVERED_FROM[sector]:
                    raise ModelRefused("no pre-allocation in a new sector's first year")
                if base is None:
                    raise ModelRefused("no base year")
                computed = floor(PRE_ALLOCATION_SHARE * base[0])
            else:
                if base is None or base[1] is None:
                    raise ModelRefused("no base-year output")
                computed = floor(PRE_ALLOCATION_SHARE * base[1] * self._benchmark(unit_type, base[2], year))
            if computed <= 0:
                raise ModelRefused("nothing to allocate")
            events = [
                (
                    "AllowancesIssued",
                    {
                        "account_id": fid,
                        "unit": "CEA",
                        "vintage": year,
                        "quantity": computed,
                        "basis": "pre-allocation",
                    },
                )
            ]
        else:
            actual = self.verified.get((fid, year))
            if new_sector:
                if actual is None:
                    raise ModelRefused("not verified")
                share = Fraction(reference_data.new_sector_share(year))  # 2024: 1 (docs/domain.md); later: data
                computed = floor(share * actual[0] * factor)
            else:
                if actual is None or actual[1] is None:
                    raise ModelRefused("no verified output")
                computed = floor(actual[1] * self._benchmark(unit_type, actual[2], year) * factor)
            delta = computed - self.allocated[(fid, year)]
            if delta == 0:
                raise ModelRefused("allocation already right")
            if delta > 0:
                events = [
                    (
                        "AllowancesIssued",
                        {
                            "account_id": fid,
                            "unit": "CEA",
                            "vintage": year,
                            "quantity": delta,
                            "basis": "true-up",
                        },
                    )
                ]
            else:
                if self.is_frozen(fid):
                    raise ModelRefused("a clawback from a frozen account")
                take = min(self.held(fid, "CEA", year), -delta)
                if take == 0:
                    raise ModelRefused("nothing to claw back")
                events = [
                    (
                        "AllowancesWithdrawn",
                        {
                            "account_id": fid,
                            "unit": "CEA",
                            "vintage": year,
                            "quantity": take,
                            "reason": "true-up clawback",
                            "outstanding": (-delta - take) or None,
                        },
                    )
                ]
        issued = sum(d["quantity"] for t, d in events if t == "AllowancesIssued")
        owed = self.deductions.get(fid)
        if owed and issued and year > owed[1]:
            take = min(owed[0], issued)
            events.append(
                (
                    "AllowancesWithdrawn",
                    {
                        "account_id": fid,
                        "unit": "CEA",
                        "vintage": year,
                        "quantity": take,
                        "reason": "penalty deduction",
                        "outstanding": (owed[0] - take) or None,
                    },
                )
            )
        for _t, d in events:
            d["_year"] = year
        return events

    # ---- the model's own fold ------------------------------------------------------------
    def apply(self, etype: str, d: dict[str, Any]) -> None:
        self.position += 1
        if etype == "FirmRegistered":
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
            for fid in self.firms:
                self.status_at_close[(fid, p["first"])] = self.status(fid, p)
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
            if d["reason"] == "true-up clawback":
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
            owed, after = self.deductions.get(d["firm_id"], (0, p["last"]))
            self.deductions[d["firm_id"]] = (owed + d["deduction"], max(after, p["last"]))
        else:  # pragma: no cover
            raise AssertionError(etype)

    def _move(self, account: str, unit: str, vintage: int, delta: int) -> None:
        key = (account, unit, vintage)
        self.holdings[key] += delta
        assert self.holdings[key] >= 0, f"model: negative holding {key}"
        if not self.holdings[key]:
            del self.holdings[key]
