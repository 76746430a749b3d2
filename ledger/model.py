"""The domain model: the ledger's write-side state and the checks every command runs.

The hash chain orders every event of the ledger in one global sequence, so the
whole ledger is one consistency boundary: `LedgerState` is the aggregate root
(version == position), holding Firm, Account, ComplianceYear (period) and Market
entities. Commands (ledger.registry) check against it, then record events;
`apply` is the only place state changes (each event type's fold is in ledger.fold), and it runs both live
and on replay.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledger import formulas, plans, rules
from ledger.errors import IntegrityFailure, Refused
from ledger.events import GENESIS_HASH, chain_hash
from ledger.units import money, period_label

HoldingKey = tuple[str, str, int]  # (account_id, unit, vintage)
Product = tuple[str, int]  # (unit, vintage): each vintage of a unit is its own exchange product
SNAPSHOT_VERSION = 10  # bump when the snapshot's shape changes: an older snapshot is ignored, the log refolded
# 3: the chain hash at the snapshot's position, the store id and the count of recorded commands
# 4: markets per product (unit, vintage), closes from listed trades only; the last trade date per unit
# 5: account states (frozen, until, approvals) and pending transfers
# 6: the reversible entries of open compliance years, and the position of each firm-year's verification
# 7: facilities and their verified data, the exemptions issued, the plans published
EXEMPTION_BASES, ALLOCATION_BASES = formulas.EXEMPTION_BASES, formulas.ALLOCATION_BASES
# 8: a period's time limit to correct (correct_by) and whether it was enforced
# 9: reversals and the verifications of open years instead of every reversible entry (memory flat in the log)
# 10: CCER of projects registered from 22 January 2024 per holding; carry-over: converted and net sales per firm


@dataclass
class Firm:
    firm_id: str
    name: str
    sector: str
    region: str
    unit_type: str | None


@dataclass
class Facility:
    facility_id: str
    firm_id: str
    kind: str
    rated_mw: str | None = None


@dataclass
class Account:
    account_id: str
    holder: str
    kind: str
    open: bool = True
    frozen: str | None = None  # the freeze's reason while frozen (judicial, investigation, default)
    frozen_until: str | None = None  # YYYY-MM-DD: the freeze lapses after this day (None: until unfrozen)
    approvals: int = 1  # people needed for an outgoing transfer (2: four eyes)

    def frozen_at(self, now: str) -> bool:
        """Frozen at the registry's time `now` (a freeze with --until lapses after that day)."""
        return self.frozen is not None and (self.frozen_until is None or now[:10] <= self.frozen_until)

    def state_at(self, now: str) -> str:
        """The account's state as a refusal names it: open, closed or frozen (reason[, until DATE])."""
        if not self.open:
            return "closed"
        if self.frozen_at(now):
            return f"frozen ({self.frozen}{f', until {self.frozen_until}' if self.frozen_until else ''})"
        return "open"


@dataclass
class Pending:
    """A transfer from a four-eyes account that waits for a second person; it reserves its units."""

    transfer_id: str
    from_account: str
    to_account: str
    unit: str
    vintage: int
    quantity: int
    initiator: str
    expires_at: str  # YYYY-MM-DDTHH:MM:SSZ: after it, the transfer can no longer be approved


@dataclass
class Period:
    """A compliance period: one year, or a multi-year cycle with one pooled obligation."""

    first: int
    last: int
    deadline: str | None
    closed: bool = False
    correct_by: str | None = None  # set at close: late surrenders until then (IR art. 24)
    enforced: bool = False  # `year enforce` ran: deductions ordered, no more surrenders

    @property
    def final(self) -> bool:
        """Closed for good: enforced, or closed without a time limit to correct (a store from before them)."""
        return self.closed and (self.correct_by is None or self.enforced)

    @property
    def label(self) -> str:
        return period_label(self.first, self.last)

    def years(self) -> range:
        return range(self.first, self.last + 1)


@dataclass
class Actor:
    actor_id: str
    role: str
    firm_id: str | None = None
    public_key: str | None = None


@dataclass
class Market:
    """Per product (unit and vintage): its last trading day, that day's listed-agreement totals, and the close
    before that day. The close of a day is the VWAP of its listed trades; a day without one keeps the previous
    close (block and auction trades never set it)."""

    last_date: str | None = None
    day_qty: int = 0  # listed trades of last_date only
    day_value: Decimal = Decimal(0)
    prev_close: Decimal | None = None
    trades: int = 0  # every trade of the product, all modes

    def close_of_last_day(self) -> Decimal | None:
        if not self.day_qty:
            return self.prev_close
        return money(self.day_value / self.day_qty)

    def reference_close(self, trade_date: str) -> Decimal | None:
        """The previous trading day's close for a trade on `trade_date`."""
        if self.last_date is None:
            return None
        if trade_date > self.last_date:
            return self.close_of_last_day()
        return self.prev_close


class NegativeHolding(Exception):
    """An event that would take a holding below zero: never recorded by the registry, so a forged history."""


@dataclass
class LedgerState:
    position: int = 0
    hash: str = GENESIS_HASH  # the chain hash at `position` (kept by `advance`)
    store_id: str = ""  # the chain hash of position 1: what signatures are bound to ("" before it exists)
    commands: int = 0  # commands recorded so far (each has one row of command id)
    last_command_id: str | None = None
    enforced: bool = False
    require_signatures: bool = False
    actors: dict[str, Actor] = field(default_factory=dict)
    firms: dict[str, Firm] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    holdings: dict[HoldingKey, int] = field(default_factory=dict)
    periods: dict[str, Period] = field(default_factory=dict)
    year_period: dict[int, str] = field(default_factory=dict)
    verified: dict[tuple[str, int], tuple[int, int | None, str | None]] = field(default_factory=dict)
    facilities: dict[str, Facility] = field(default_factory=dict)
    firm_facilities: dict[str, list[str]] = field(default_factory=dict)  # firm -> its facility ids, in order
    # (facility, year) -> the verified data of EmissionsVerified (tonnes and activity data)
    facility_verified: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    surrendered: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (firm, period, unit)
    allocated: dict[tuple[str, int], int] = field(default_factory=dict)  # net free allocation by firm-year
    pre_allocated: dict[tuple[str, int], int] = field(default_factory=dict)
    exempted: dict[tuple[str, int, str], int] = field(default_factory=dict)  # (firm, year, exemption basis)
    plans: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # published, by (part, year)
    deductions: dict[str, tuple[int, int]] = field(default_factory=dict)  # firm -> (qty, from penalty year)
    markets: dict[Product, Market] = field(default_factory=dict)
    last_trade_date: dict[str, str] = field(default_factory=dict)  # unit -> latest trade date of any of its products
    months: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # CEA "YYYY-MM" -> (qty, value)
    # T+1: per (account, unit), the last trade date it bought on and what it bought then, by vintage.
    # Trade dates never go back within a unit's market, so older dates can never matter again.
    bought: dict[tuple[str, str], tuple[str, dict[int, int]]] = field(default_factory=dict)
    penalized: set[tuple[str, str]] = field(default_factory=set)
    pending: dict[str, Pending] = field(default_factory=dict)  # four-eyes transfers awaiting approval, by id
    # Reversals: the position reversed -> the position of its reversal. The reversible events themselves stay in
    # the log (a reversal decision reads the one it undoes through `event_source`), so that memory does not grow
    # with the log; only verifications are kept (few: firms x years), with the one each replaced, while their
    # compliance year is not final.
    reversed: dict[int, int] = field(default_factory=dict)
    verifications: dict[int, tuple[dict[str, Any], int | None]] = field(default_factory=dict)
    # Reads one recorded event (its envelope) by position: set by whoever holds the log (the registry, the audit).
    event_source: Any = field(default=None, repr=False, compare=False)
    verified_at: dict[tuple[str, int], int] = field(default_factory=dict)  # the position of the verification in force
    # CCER eligibility per lot (docs/domain.md): of each (account, CCER vintage) holding, how many units are of
    # projects registered from 22 January 2024 (the only ones that count from compliance year 2024). Units leave
    # a holding ineligible first, except a surrender for 2024 or later, which takes eligible ones.
    ccer_eligible: dict[tuple[str, int], int] = field(default_factory=dict)
    carried: dict[str, int] = field(default_factory=dict)  # firm -> CEA carried over into 2025 (P23 annex 5)
    carry_sales: dict[str, int] = field(default_factory=dict)  # firm -> sales minus purchases of 2019-2024 CEA, 2024-25

    # --- queries --------------------------------------------------------------
    def holding(self, account_id: str, unit: str, vintage: int) -> int:
        return self.holdings.get((account_id, unit, vintage), 0)

    def period_of(self, year: int) -> Period | None:
        label = self.year_period.get(year)
        return self.periods[label] if label else None

    def verified_in(self, firm_id: str, period: Period) -> int | None:
        """Verified emissions over the period's years; None when no year of it is verified."""
        values = [self.verified[(firm_id, y)][0] for y in period.years() if (firm_id, y) in self.verified]
        return sum(values) if values else None

    def free_allocation(self, firm_id: str, period: Period) -> int:
        """Everything allocated for the period's years: the benchmark allocation and the exemptions."""
        return sum(self.allocated.get((firm_id, y), 0) + sum(self.exempted.get((firm_id, y, b), 0)
                                                             for b in EXEMPTION_BASES) for y in period.years())

    def allocated_in(self, firm_id: str, year: int) -> int:
        """A firm-year's free allocation so far: benchmark allocation and exemptions."""
        return self.allocated.get((firm_id, year), 0) + sum(self.exempted.get((firm_id, year, b), 0)
                                                            for b in EXEMPTION_BASES)

    def plan(self, part: str, year: int) -> dict[str, Any] | None:
        """The plan in force for `part` ("power", "new_sectors") in `year`: shipped, with those published."""
        return plans.plan_for(part, year, self.plans)

    def facility_dict(self, facility_id: str) -> dict[str, Any]:
        f = self.facilities[facility_id]
        return {"facility_id": f.facility_id, "kind": f.kind, "rated_mw": f.rated_mw}

    def surrendered_in(self, firm_id: str, period: Period, unit: str | None = None) -> int:
        units = (unit,) if unit else ("CEA", "CCER")
        return sum(self.surrendered.get((firm_id, period.label, u), 0) for u in units)

    def obligation(self, firm_id: str, period: Period) -> int | None:
        """All of the period's verified emissions (ledger.formulas.obligation); None when none is verified."""
        return formulas.obligation(self.verified_in(firm_id, period))

    def has_obligation(self, firm_id: str, period: Period) -> bool:
        firm = self.firms[firm_id]
        return (
            any(rules.is_covered(firm.sector, y) for y in period.years())
            or self.verified_in(firm_id, period) is not None
            or self.free_allocation(firm_id, period) > 0
        )

    def reserved(self, account_id: str, unit: str, vintage: int, now: str | None = None) -> int:
        """Units of a holding that pending transfers reserve (at `now`: the ones not expired; None: all)."""
        return sum(p.quantity for p in self.pending.values()
                   if p.from_account == account_id and p.unit == unit and p.vintage == vintage
                   and (now is None or now <= p.expires_at))

    def available(self, account_id: str, unit: str, vintage: int, now: str | None = None) -> int:
        """What an account can spend: its holding less what pending transfers reserve."""
        held = self.holding(account_id, unit, vintage)
        return held - self.reserved(account_id, unit, vintage, now) if self.pending else held

    def sellable(self, account_id: str, unit: str, vintage: int, trade_date: str) -> int:
        """Holding less what was bought on the same trade date (T+1)."""
        held = self.holding(account_id, unit, vintage)
        day = self.bought.get((account_id, unit))
        if day and day[0] == trade_date:
            held -= day[1].get(vintage, 0)
        return held

    def market(self, unit: str, vintage: int) -> Market:
        m = self.markets.get((unit, vintage))
        if m is None:
            m = self.markets[(unit, vintage)] = Market()
        return m

    def month_price(self, month: str) -> Decimal | None:
        entry = self.months.get(month)
        if not entry or not entry[0]:
            return None
        return money(entry[1] / entry[0])

    # --- checks (raise Refused with a precise reason) ---------------------------
    def check_account_open(self, account_id: str) -> Account:
        acc = self.accounts.get(account_id)
        if acc is None:
            raise Refused(f"account {account_id} does not exist", code="unknown_account")
        if not acc.open:
            raise Refused(f"account {account_id} is closed", code="account_closed")
        return acc

    def check_can_send(self, account_id: str, now: str) -> Account:
        """The account exists, is open and not frozen at `now`: units may leave it."""
        acc = self.check_account_open(account_id)
        if acc.frozen_at(now):
            raise Refused(f"account {account_id} is {acc.state_at(now)}: it can receive units but not send them",
                          code="account_frozen")
        return acc

    def check_firm(self, firm_id: str) -> Firm:
        firm = self.firms.get(firm_id)
        if firm is None:
            raise Refused(f"firm {firm_id} is not registered", code="unknown_firm")
        return firm

    def check_holding_covers(self, account_id: str, unit: str, vintage: int, quantity: int,
                             now: str | None = None) -> None:
        held = self.holding(account_id, unit, vintage)
        if held < quantity:
            raise Refused(
                f"account {account_id} holds {held} t of {unit} {vintage}, fewer than {quantity} t",
                code="insufficient_holding",
            )
        free = self.available(account_id, unit, vintage, now)
        if free < quantity:
            raise Refused(f"account {account_id} holds {held} t of {unit} {vintage}, of which {held - free} t are"
                          f" reserved by pending transfers: {free} t are free, fewer than {quantity} t",
                          code="units_reserved")

    def check_open_period(self, year: int) -> Period:
        period = self.period_of(year)
        if period is None:
            raise Refused(f"compliance year {year} is not open", code="year_not_open")
        if period.closed:
            raise Refused(f"compliance year {period.label} is closed", code="year_closed")
        return period

    # --- the only place state changes ---------------------------------------------
    def apply(self, event: dict[str, Any]) -> None:
        """Fold one event. An event the registry could not have recorded (a forged or damaged history) is an
        IntegrityFailure naming its position, never an internal error."""
        try:
            APPLY[event["type"]](self, event["data"])
        except NegativeHolding as e:
            raise IntegrityFailure(f"integrity failure at position {event.get('position')}: the event takes"
                                   f" {e} below zero (the log holds a command its state refuses)",
                                   position=event.get("position")) from None
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
            raise IntegrityFailure(f"integrity failure at position {event.get('position')}: the event does not"
                                   f" fit the ledger ({type(e).__name__}: {e})", position=event.get("position")) from None
        if event["type"] == "EmissionsVerified":
            self._entry(event)
        command_id = event.get("command_id")
        if command_id != self.last_command_id:
            self.commands += 1
            self.last_command_id = command_id
        self.position = event["position"]

    def advance(self, event: dict[str, Any], blob: bytes) -> None:
        """Fold one event whose canonical bytes are `blob`, and extend the chain hash by it."""
        self.apply(event)
        self.hash = chain_hash(self.hash, blob)
        if self.position == 1:
            self.store_id = self.hash

    def _entry(self, event: dict[str, Any]) -> None:
        """A verification is kept, with the one it replaced, while its compliance year is not final (a reversal
        restores that one); the other reversible events are read from the log when one is reversed."""
        t, d = event["type"], event["data"]
        if t != "EmissionsVerified" or self.is_final(d["year"]):
            return
        key = verification_key(d)
        self.verifications[event["position"]] = (d, self.verified_at.get(key))
        self.verified_at[key] = event["position"]

    def is_final(self, year: int) -> bool:
        """Whether the compliance year is closed for good (enforced): nothing of it can be reversed."""
        label = self.year_period.get(year)
        return label is not None and self.periods[label].final

    def recorded_event(self, position: int) -> dict[str, Any] | None:
        """The event recorded at `position` (1 to the head), from the log."""
        if not 1 <= position <= self.position or self.event_source is None:
            return None
        return self.event_source(position)

    def _add(self, key: HoldingKey, delta: int) -> None:
        new = self.holdings.get(key, 0) + delta
        if new < 0:
            raise NegativeHolding(f"the holding of {key[0]} in {key[1]} {key[2]}")
        if new:
            self.holdings[key] = new
        else:
            self.holdings.pop(key, None)

    # --- snapshot (a cache of the fold; the log stays the truth) -------------------
    def to_snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "position": self.position,
            "hash": self.hash,
            "store_id": self.store_id,
            "commands": self.commands,
            "last_command_id": self.last_command_id,
            "enforced": self.enforced,
            "require_signatures": self.require_signatures,
            "actors": [[a.actor_id, a.role, a.firm_id, a.public_key] for a in self.actors.values()],
            "firms": [[f.firm_id, f.name, f.sector, f.region, f.unit_type] for f in self.firms.values()],
            "accounts": [[a.account_id, a.holder, a.kind, a.open, a.frozen, a.frozen_until, a.approvals]
                         for a in self.accounts.values()],
            "holdings": [[*k, v] for k, v in self.holdings.items()],
            "periods": [[p.first, p.last, p.deadline, p.closed, p.correct_by, p.enforced]
                        for p in self.periods.values()],
            "verified": [[*k, *v] for k, v in self.verified.items()],
            "facilities": [[f.facility_id, f.firm_id, f.kind, f.rated_mw] for f in self.facilities.values()],
            "facility_verified": [[*k, v] for k, v in self.facility_verified.items()],
            "surrendered": [[*k, v] for k, v in self.surrendered.items()],
            "allocated": [[*k, v] for k, v in self.allocated.items()],
            "pre_allocated": [[*k, v] for k, v in self.pre_allocated.items()],
            "exempted": [[*k, v] for k, v in self.exempted.items()],
            "plans": [[*k, v] for k, v in self.plans.items()],
            "deductions": [[k, *v] for k, v in self.deductions.items()],
            "markets": [[u, v, m.last_date, m.day_qty, str(m.day_value), None if m.prev_close is None
                         else str(m.prev_close), m.trades] for (u, v), m in self.markets.items()],
            "last_trade_date": self.last_trade_date,
            "months": [[k, q, str(v)] for k, (q, v) in self.months.items()],
            "bought": [[a, u, d, [[v, q] for v, q in b.items()]] for (a, u), (d, b) in self.bought.items()],
            "penalized": [list(k) for k in self.penalized],
            "pending": [[p.transfer_id, p.from_account, p.to_account, p.unit, p.vintage, p.quantity, p.initiator,
                         p.expires_at] for p in self.pending.values()],
            "reversed": [[k, v] for k, v in self.reversed.items()],
            "verifications": [[k, d, prev] for k, (d, prev) in self.verifications.items()],
            "verified_at": [[*k, v] for k, v in self.verified_at.items()],
            "ccer_eligible": [[*k, v] for k, v in self.ccer_eligible.items()],
            "carried": [[k, v] for k, v in self.carried.items()],
            "carry_sales": [[k, v] for k, v in self.carry_sales.items()],
        }

    @classmethod
    def from_snapshot(cls, s: dict[str, Any]) -> LedgerState:
        st = cls(position=s["position"], hash=s["hash"], store_id=s["store_id"], commands=s["commands"],
                 last_command_id=s["last_command_id"], enforced=s["enforced"],
                 require_signatures=s["require_signatures"])
        st.actors = {a[0]: Actor(*a) for a in s["actors"]}
        st.firms = {f[0]: Firm(*f) for f in s["firms"]}
        st.accounts = {a[0]: Account(*a) for a in s["accounts"]}
        st.holdings = {(a, u, v): q for a, u, v, q in s["holdings"]}
        for first, last, deadline, closed, correct_by, enforced in s["periods"]:
            p = Period(first, last, deadline, closed, correct_by, enforced)
            st.periods[p.label] = p
            for y in p.years():
                st.year_period[y] = p.label
        st.verified = {(f, y): (t, o, ou) for f, y, t, o, ou in s["verified"]}
        for row in s["facilities"]:
            _add_facility(st, Facility(*row))
        st.facility_verified = {(f, y): v for f, y, v in s["facility_verified"]}
        st.surrendered = {(f, p, u): q for f, p, u, q in s["surrendered"]}
        st.allocated = {(f, y): q for f, y, q in s["allocated"]}
        st.pre_allocated = {(f, y): q for f, y, q in s["pre_allocated"]}
        st.exempted = {(f, y, b): q for f, y, b, q in s["exempted"]}
        st.plans = {(p, y): v for p, y, v in s["plans"]}
        st.deductions = {f: (q, y) for f, q, y in s["deductions"]}
        st.markets = {
            (u, vi): Market(d, q, Decimal(v), None if pc is None else Decimal(pc), n)
            for u, vi, d, q, v, pc, n in s["markets"]
        }
        st.last_trade_date = dict(s["last_trade_date"])
        st.months = {k: (q, Decimal(v)) for k, q, v in s["months"]}
        st.bought = {(a, u): (d, {v: q for v, q in b}) for a, u, d, b in s["bought"]}
        st.penalized = {tuple(k) for k in s["penalized"]}  # type: ignore[misc]
        st.pending = {p[0]: Pending(*p) for p in s["pending"]}
        st.reversed = {k: v for k, v in s["reversed"]}
        st.verifications = {k: (d, prev) for k, d, prev in s["verifications"]}
        st.verified_at = {(f, y): p for f, y, p in s["verified_at"]}
        st.ccer_eligible = {(a, v): n for a, v, n in s["ccer_eligible"]}
        st.carried = dict(s["carried"])
        st.carry_sales = dict(s["carry_sales"])
        return st


# --- apply handlers, one per event type ---------------------------------------------


def default_deadline(last_year: int) -> str:
    return dt.date(last_year + 1, 12, 31).isoformat()


# The fold (one function per event type) lives in ledger.fold, which needs the classes above.
from ledger.fold import (
    APPLY,
    REVERSIBLE,
    _add_facility,
    ccer_counts_from_2024,
    ccer_taken,
    entry_year,
    verification_key,
)

__all__ = ["APPLY", "REVERSIBLE", "ccer_counts_from_2024", "ccer_taken", "entry_year", "verification_key"]
