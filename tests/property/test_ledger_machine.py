"""Stateful property test: random command sequences against a fresh registry and a reference model.

Each step sends one command (or an atomic batch) to a Registry on a SQLite file
and to the reference model (reference_model.py, written from docs/events.md, docs/cli.md and
docs/domain.md). The registry's answer (accepted, replayed, refused by a rule, bad
input) and the events it records must be what the model predicts; after every
step the invariants of docs/invariants.md are checked against the stored log.
A failure prints the shrunk command sequence.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import orjson
from eventsourcing.persistence import StoredEvent
from hypothesis import note
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from reference_model import UNITS, Cmd, Model, Prediction

from ledger import registry as registry_module
from ledger.errors import BadInput, LedgerError, Refused
from ledger.events import GENESIS_HASH, TOPIC_PREFIX, canonical_bytes, chain_hash, decode, validate_event
from ledger.model import LedgerState
from ledger.registry import LEDGER_ID, Command, Registry
from ledger.verify import verify_log
from projections import audit, runner
from projections import compliance as compliance_rm

FIRM_IDS = ("F1", "F2", "F3", "F4")
TRADING_IDS = ("T1", "T2")
GHOST_ACCOUNT = "X9"  # never opened
FACILITY_IDS = ("U1", "U2", "U3")
ACCOUNT_IDS = FIRM_IDS + TRADING_IDS + (GHOST_ACCOUNT,)
FIRM_KINDS = (
    ("power", None),
    ("power", "gas"),
    ("power", "coal-300mw-or-less"),
    ("steel", None),
    ("cement", None),
    ("chemicals", None),
)
YEARS = (2022, 2023, 2024, 2025)
YEAR_LABELS = ("2022", "2023", "2024", "2025", "2022-2023", "2024-2025")
VINTAGES = YEARS
FIRST_TRADE_DAY = dt.date(2024, 6, 3)
SNAPSHOT_EVERY = 25  # small, so that reopening the store exercises the write-side snapshot
CHECKPOINT_EVERY = 7  # small, so that as-of queries start from read-model checkpoints
AS_OF_NAMES = ("balances", "market", "compliance")
STATS: Counter = Counter()  # steps, commands and outcomes over the whole run (printed at the end)
ACTOR = "operator"  # the actor of an open (not `init`-ed) store

METHODS = {
    "firm register": "register_firm",
    "facility register": "register_facility",
    "rules publish": "publish_plan",
    "account open": "open_account",
    "year open": "open_year",
    "year close": "close_year",
    "year enforce": "year_enforce",
    "issue": "issue",
    "allocate": "allocate",
    "transfer": "transfer",
    "trade": "trade",
    "emissions verify": "verify_emissions",
    "surrender": "surrender",
    "cancel": "cancel",
    "account freeze": "freeze_account",
    "account unfreeze": "unfreeze_account",
    "account close": "close_account",
    "reverse": "reverse",
}

# Field corruptions that make a command bad input (exit 2), by argument name.
CORRUPTIONS: dict[str, tuple[Any, ...]] = {
    "quantity": (0, -5, "12.5", True, 10_000_000_001),
    "price": ("88.505", "0", "0.00", "-1.00", "1e3", 88.5, "100000.01", ""),
    "vintage": (2012, "20x4"),
    "year": (1999, "nope"),
    "unit": ("EUA", "cea"),
    "date": ("2024-02-30", "03/06/2024"),
    "mode": ("dark",),
    "reason": ("whim",),
    "basis": ("gift",),
    "tonnes": (-1, "1.5"),
    "kind": ("savings",),
    "sector": ("shipping",),
    "account_id": ("bad id!",),
    "firm_id": ("", "x" * 65),
    "output_unit": ("kWh",),
    "step": ("post",),
    "fine_multiple": ("4", "10.01", "5.555"),
    "factors": ({"load": "2"}, {"wind": "1.00"}),
    "deadline": ("2024-13-01",),
    "rated_mw": ("0", "-600", "big", "1.0000001"),
    "load_factor": ("1.5", "-0.1", "50%", "0.12345"),
    "heat_gj": (-3, "2.5"),
}


def fixed_clock() -> dt.datetime:
    return dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def price_text(cents: int) -> str:
    return str(Decimal(cents).scaleb(-2))


def day_after(date: str, days: int) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=days)).isoformat()


def call(reg: Registry, cmd: Cmd) -> Any:
    """Send one command through its public registry method."""
    args = {k: v for k, v in cmd.args.items() if v is not None}
    if cmd.name == "rules publish":
        return reg.publish_plan(**args, command_id=cmd.cid)
    return getattr(reg, METHODS[cmd.name])(**args, command_id=cmd.cid)


def comparable(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A write-side snapshot with its one unordered part (a set) put in order."""
    out = dict(snapshot)
    out["penalized"] = sorted(map(tuple, snapshot["penalized"]))
    return out


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="ledger-prop-")
        self.path = os.path.join(self.tmp, "ledger.db")
        self.reg = Registry(self.path, clock=fixed_clock)
        self.model = Model()
        self.counter = 0
        self.history: list[Cmd] = []  # every command sent, with its id
        self.first_results: dict[str, dict[str, Any]] = {}  # command id -> result of its first run
        self.validated = 0  # events checked against the catalogue so far
        self.stores = 0  # truncated stores made for as-of checks
        STATS["examples"] += 1

    def teardown(self) -> None:
        self.reg.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- sending commands -------------------------------------------------------------
    def new_id(self) -> str:
        self.counter += 1
        return f"c-{self.counter}"

    def check_events(self, cmd: Cmd, pred: Prediction, events: list[dict[str, Any]], first: int) -> None:
        got = [e["type"] for e in events]
        want = [t for t, _ in pred.events]
        assert got == want, f"{cmd}: recorded {got}, model expects {want}"
        for i, (env, (_t, data)) in enumerate(zip(events, pred.events, strict=True)):
            assert env["position"] == first + i
            assert env["command_id"] == cmd.cid and env["actor"] == ACTOR
            for k, v in data.items():
                if not k.startswith("_"):
                    assert env["data"].get(k) == v, (
                        f"{cmd}: {env['type']}.{k} = {env['data'].get(k)!r}, not {v!r}"
                    )

    def run(self, cmd: Cmd) -> None:
        self.history.append(cmd)
        before = self.reg.head()
        pred = self.model.run(cmd)
        try:
            out = call(self.reg, cmd)
            got, err = ("replay" if out.replayed else "ok"), None
        except BadInput as e:
            got, err = "bad", e
        except Refused as e:
            got, err = "refused", e
        note(f"{cmd} -> registry {got}{f' ({err.code}: {err})' if err else ''}; model {pred.kind} {pred.why}")
        STATS[f"{cmd.name}: {got}"] += 1
        if err is not None:
            STATS[f"{cmd.name}: {got} {err.code}"] += 1
        assert got == pred.kind, f"{cmd}: registry says {got} ({err}), model says {pred.kind} ({pred.why})"
        after = self.reg.head()
        if got == "ok":
            assert after[0] == before[0] + len(pred.events)
            assert (out.first_position, out.position) == (before[0] + 1, after[0])
            self.check_events(cmd, pred, out.events, before[0] + 1)
            self.first_results[cmd.cid] = out.result
        else:
            assert after == before, f"{cmd} ({got}) moved the head from {before} to {after}"
            if got == "replay":
                assert out.result == self.first_results[cmd.cid], (
                    "a repeated command must report the first result"
                )

    def run_batch(self, cmds: list[Cmd], on_refusal: str) -> None:
        self.history.extend(cmds)
        before = self.reg.head()
        results = self.reg.execute_batch(
            [Command(c.name, {k: v for k, v in c.args.items() if v is not None}, c.cid) for c in cmds],
            on_refusal=on_refusal,
        )
        preds: list[Prediction] = []
        for c in cmds:
            preds.append(self.model.run(c))
            if preds[-1].kind in ("refused", "bad") and on_refusal == "stop":
                break
        note(
            f"batch {on_refusal} {cmds} -> {[type(r).__name__ for r in results]}; model {[p.kind for p in preds]}"
        )
        assert len(results) == len(preds), f"batch ran {len(results)} commands, model expects {len(preds)}"
        position = before[0]
        for c, r, p in zip(cmds, results, preds, strict=False):
            if isinstance(r, LedgerError):
                got = "bad" if isinstance(r, BadInput) else "refused" if isinstance(r, Refused) else "error"
            else:
                got = "replay" if r.replayed else "ok"
            assert got == p.kind, f"batch {c}: registry says {got} ({r}), model says {p.kind} ({p.why})"
            STATS[f"{c.name}: {got}"] += 1
            if got == "ok":
                self.check_events(c, p, r.events, position + 1)
                position += len(p.events)
                self.first_results[c.cid] = r.result
            elif got == "replay":
                assert r.result == self.first_results[c.cid]
        assert self.reg.head()[0] == position, "a batch appends exactly the events of its accepted commands"
        if position == before[0]:
            assert self.reg.head() == before

    # ---- drawing commands (shaped by the model, so that many are valid) -------------------
    def pick(self, data: st.DataObject, known: list, anything: tuple) -> Any:
        if known and data.draw(st.integers(0, 9), label="known?") > 0:
            return data.draw(st.sampled_from(sorted(known)))
        return data.draw(st.sampled_from(anything))

    def quantity_near(self, data: st.DataObject, n: int) -> int:
        if n <= 0:
            return data.draw(st.integers(1, 1000))
        return data.draw(st.one_of(st.integers(1, n), st.just(n), st.just(n + 1)))

    def pick_holding(self, data: st.DataObject, accounts: tuple = ACCOUNT_IDS) -> tuple[str, str, int]:
        held = sorted(k for k in self.model.holdings if k[0] in accounts)
        if held and data.draw(st.integers(0, 9), label="held?") > 0:
            return data.draw(st.sampled_from(held))
        return (
            data.draw(st.sampled_from(accounts)),
            data.draw(st.sampled_from(UNITS)),
            data.draw(st.sampled_from(VINTAGES)),
        )

    def register_cmd(self, fid: str, sector: str, unit_type: str | None) -> Cmd:
        return Cmd(
            "firm register",
            {"firm_id": fid, "name": f"Firm {fid}", "sector": sector, "region": "Hubei", "unit_type": unit_type},
            self.new_id(),
        )

    def gen_register(self, data: st.DataObject) -> Cmd:
        fid = data.draw(st.sampled_from(FIRM_IDS + TRADING_IDS[:1]))
        sector, unit_type = data.draw(st.sampled_from(FIRM_KINDS + (("steel", "gas"),)))
        return self.register_cmd(fid, sector, unit_type)

    def gen_facility(self, data: st.DataObject) -> Cmd:
        fac = data.draw(st.sampled_from(FACILITY_IDS))
        firm = self.pick(data, list(self.model.firms), FIRM_IDS)
        kind = data.draw(st.sampled_from(("coal", "coal", "coal-unconventional", "gas", "steel", "clinker",
                                          "aluminium")))
        rated = data.draw(st.sampled_from(("600", "350", "400", None))) if kind in ("coal", "gas") else None
        return Cmd("facility register", {"facility_id": fac, "firm": firm, "kind": kind, "rated_mw": rated},
                   self.new_id())

    PLANS = (
        {"version": "bp-2025", "years": [2025], "source": "balance values, as a regulator would publish them",
         "new_sectors": {"balance_values": {"steel": "1.5", "clinker": "0.85", "aluminium": "1.6"}}},
        {"version": "p-2024-gap10", "years": [2024], "source": "a stricter gap cap",
         "power": {"gap_cap_share": "0.10", "electricity_t_per_mwh": {"I": "0.7800"}}},
        {"version": "p-2027", "years": [2027, 2028], "source": "a later plan", "power": {"draft": False}},
        {"version": "empty", "years": [2024], "source": "nothing in it"},
        {"version": "bad", "years": [2024], "source": "s", "power": {"electricity_t_per_mwh": {"V": "1"}}},
    )

    def gen_publish(self, data: st.DataObject) -> Cmd:
        return Cmd("rules publish", dict(data.draw(st.sampled_from(self.PLANS))), self.new_id())

    def gen_verify_facility(self, data: st.DataObject) -> Cmd:
        m = self.model
        if m.facilities and data.draw(st.integers(0, 9), label="known facility?") > 0:
            fac = data.draw(st.sampled_from(sorted(m.facilities)))
            fid = m.facilities[fac]["firm_id"]
        else:
            fac = data.draw(st.sampled_from(FACILITY_IDS))
            fid = self.pick(data, list(m.firms), FIRM_IDS)
        year = self.pick(data, self.open_years(), YEARS)
        args: dict[str, Any] = {"firm_id": fid, "year": year, "facility": fac,
                                "tonnes": data.draw(st.integers(0, 300_000))}
        for k, s_ in (("generated_mwh", st.integers(0, 400_000)), ("supplied_mwh", st.integers(0, 400_000)),
                      ("heat_gj", st.integers(0, 900_000)), ("load_factor", st.sampled_from(("0.5", "0.70", "1"))),
                      ("intensity", st.sampled_from(("1.53", "0.85")))):
            if data.draw(st.booleans(), label=k):
                args[k] = data.draw(s_)
        return Cmd("emissions verify", args, self.new_id())

    def gen_open_account(self, data: st.DataObject) -> Cmd:
        aid = data.draw(st.sampled_from(TRADING_IDS + FIRM_IDS[:1]))
        kind = data.draw(st.sampled_from(("trading", "trading", "government", "compliance", None)))
        return Cmd("account open", {"account_id": aid, "holder": "Broker Co", "kind": kind}, self.new_id())

    def gen_open_year(self, data: st.DataObject) -> Cmd:
        label = data.draw(st.sampled_from(YEAR_LABELS))
        deadline = data.draw(st.sampled_from((None, None, None, "2024-03-31", "2026-06-30", "2021-12-31")))
        return Cmd("year open", {"year": label, "deadline": deadline}, self.new_id())

    def gen_close_year(self, data: st.DataObject) -> Cmd:
        year = self.pick(data, list(self.model.year_period), YEARS + (2021,))
        multiple = data.draw(st.sampled_from((None, None, "5", "10", "7.5")))
        correct_by = data.draw(st.sampled_from((None, None, "2025-01-02", "2025-03-31", "2024-12-31")))
        return Cmd("year close", {"year": year, "fine_multiple": multiple, "correct_by": correct_by}, self.new_id())

    def gen_enforce_year(self, data: st.DataObject) -> Cmd:
        year = self.pick(data, list(self.model.year_period), YEARS + (2021,))
        return Cmd("year enforce", {"year": year}, self.new_id())

    def gen_issue(self, data: st.DataObject) -> Cmd:
        account = self.pick(data, list(self.model.accounts), ACCOUNT_IDS)
        unit = data.draw(st.sampled_from(("CEA", "CEA", "CCER")))
        if data.draw(st.integers(0, 9), label="odd basis?") == 0:
            basis = data.draw(st.sampled_from(("pre-allocation", "true-up", "auction", "offset", "reserve")))
        else:
            basis = (
                "offset"
                if unit == "CCER"
                else data.draw(st.sampled_from(("pre-allocation", "true-up", "auction", "reserve")))
            )
        quantity = data.draw(st.one_of(st.integers(1, 20_000), st.sampled_from((99_999, 100_000, 250_000))))
        return Cmd(
            "issue",
            {
                "account_id": account,
                "unit": unit,
                "vintage": data.draw(st.sampled_from(VINTAGES)),
                "quantity": quantity,
                "basis": basis,
            },
            self.new_id(),
        )

    def gen_transfer(self, data: st.DataObject) -> Cmd:
        src, unit, vintage = self.pick_holding(data)
        dst = self.pick(data, list(self.model.accounts), ACCOUNT_IDS)
        q = self.quantity_near(data, self.model.held(src, unit, vintage))
        return Cmd(
            "transfer",
            {"from_account": src, "to_account": dst, "unit": unit, "vintage": vintage, "quantity": q},
            self.new_id(),
        )

    def gen_cancel(self, data: st.DataObject) -> Cmd:
        account, unit, vintage = self.pick_holding(data)
        q = self.quantity_near(data, self.model.held(account, unit, vintage))
        reason = data.draw(st.sampled_from(("voluntary", "correction", "expiry", None)))
        return Cmd(
            "cancel",
            {"account_id": account, "unit": unit, "vintage": vintage, "quantity": q, "reason": reason},
            self.new_id(),
        )

    def trade_date(self, data: st.DataObject, unit: str) -> str:
        last = self.model.last_trade_day(unit)
        if last is None:
            return day_after(FIRST_TRADE_DAY.isoformat(), data.draw(st.sampled_from((0, 0, 1, 40))))
        return day_after(last, data.draw(st.sampled_from((0, 0, 0, 1, 1, 2, 33, -1))))

    def trade_price(self, data: st.DataObject, product: tuple[str, int], date: str, mode: str) -> str:
        close = self.model.previous_close(product, date)
        if close is None:
            return price_text(data.draw(st.integers(3000, 12_000)))
        band = self.model.band(product, date, "listed" if mode == "auction" else mode)
        assert band is not None
        lo, hi = (int(x * 100) for x in band)
        c = int(close * 100)
        cents = data.draw(
            st.one_of(st.sampled_from((c, lo, hi, lo - 1, hi + 1)), st.integers(c // 2, c * 3 // 2))
        )
        if cents <= 0:
            return "0.00"  # bad input
        if data.draw(st.integers(0, 19), label="short form?") == 0 and cents % 10 == 0:
            return str(Decimal(cents // 10).scaleb(-1))  # "88.5" means 88.50
        return price_text(cents)

    def gen_trade(self, data: st.DataObject, resale: bool = False) -> Cmd:
        m = self.model
        seller = unit = vintage = date = None
        if resale:  # sell what was bought today (T+1), or part of it
            today = sorted(k for k, q in m.bought.items() if q and k[3] == m.last_trade_day(k[1]))
            if today:
                seller, unit, vintage, date = data.draw(st.sampled_from(today))
        if seller is None:
            seller, unit, vintage = self.pick_holding(data)
            date = self.trade_date(data, unit)
        buyer = self.pick(data, [a for a in m.accounts if a != seller] or list(m.accounts), ACCOUNT_IDS)
        mode = data.draw(st.sampled_from(("listed", "listed", "listed", "block", "auction")))
        sellable = max(m.sellable(seller, unit, vintage, date), 0)
        if resale:
            sellable = m.held(seller, unit, vintage)
        if mode == "listed":
            q = data.draw(
                st.one_of(
                    st.integers(1, max(1, min(sellable, 99_999))),
                    st.just(99_999),
                    st.just(100_000),
                    st.just(sellable + 1),
                )
            )
        elif mode == "block":
            q = data.draw(
                st.one_of(st.just(100_000), st.just(99_999), st.integers(100_000, max(100_000, sellable + 1)))
            )
        else:
            q = self.quantity_near(data, sellable)
        return Cmd(
            "trade",
            {
                "buyer": buyer,
                "seller": seller,
                "unit": unit,
                "vintage": vintage,
                "quantity": q,
                "price": self.trade_price(data, (unit, vintage), date, mode),
                "mode": mode,
                "date": date,
            },
            self.new_id(),
        )

    def open_years(self) -> list[int]:
        m = self.model
        return [y for y, first in m.year_period.items() if not m.periods[first]["closed"]]

    def gen_verify(self, data: st.DataObject) -> Cmd:
        fid = self.pick(data, list(self.model.firms), FIRM_IDS)
        year = self.pick(data, self.open_years(), YEARS)
        tonnes = data.draw(st.one_of(st.integers(0, 5000), st.integers(0, 300_000)))
        shape = data.draw(st.sampled_from(("none", "none", "MWh", "MWh", "GJ", "t", "no unit", "no output")))
        output = data.draw(st.integers(0, 400_000)) if shape != "no output" else None
        unit = {"none": None, "no unit": None, "no output": "MWh"}.get(shape, shape)
        if shape == "none":
            output = None
        return Cmd(
            "emissions verify",
            {"firm_id": fid, "year": year, "tonnes": tonnes, "output": output, "output_unit": unit},
            self.new_id(),
        )

    def gen_surrender(self, data: st.DataObject) -> Cmd:
        m = self.model
        due = sorted((fid, y) for (fid, y) in m.verified if y in self.open_years())
        if due and data.draw(st.integers(0, 9), label="verified firm?") > 0:
            fid, year = data.draw(st.sampled_from(due))
            last = m.period_of(year)["last"]
            usable = sorted(k for k in m.holdings if k[0] == fid and k[2] <= last)
            if usable and data.draw(st.integers(0, 9), label="usable holding?") > 0:
                _f, unit, vintage = data.draw(st.sampled_from(usable))
            else:
                unit, vintage = data.draw(st.sampled_from(UNITS)), data.draw(st.sampled_from(VINTAGES))
        else:
            fid, unit, vintage = self.pick_holding(data, FIRM_IDS)
            year = self.pick(data, self.open_years(), YEARS)
        room = m.held(fid, unit, vintage)
        period = m.period_of(year)
        if fid in m.firms and period is not None:
            obligation = m.obligation(fid, period)
            if obligation is not None:
                room = min(room, obligation - m.surrendered_in(fid, period))
                if unit == "CCER":
                    room = min(
                        room, m.verified_in(fid, period) * 5 // 100 - m.surrendered_in(fid, period, "CCER")
                    )
        return Cmd(
            "surrender",
            {
                "firm_id": fid,
                "year": year,
                "unit": unit,
                "vintage": vintage,
                "quantity": self.quantity_near(data, room),
            },
            self.new_id(),
        )

    def gen_allocate(self, data: st.DataObject) -> Cmd:
        m = self.model
        candidates = sorted(
            {(fid, y) for (fid, y) in m.verified if y in self.open_years()}
            | {(fid, y + 1) for (fid, y) in m.verified if y + 1 in self.open_years()}
        )
        if candidates and data.draw(st.integers(0, 9), label="verified firm?") > 0:
            fid, year = data.draw(st.sampled_from(candidates))
        else:
            fid = self.pick(data, list(m.firms), FIRM_IDS)
            year = data.draw(st.sampled_from(YEARS))
        factors = data.draw(
            st.sampled_from((None, None, {"load": "1.10"}, {"cooling": "1.05", "heat_supply": "0.90"}))
        )
        return Cmd(
            "allocate",
            {
                "firm_id": fid,
                "year": year,
                "step": data.draw(st.sampled_from(("pre", "true-up"))),
                "factors": factors,
            },
            self.new_id(),
        )

    def gen_freeze(self, data: st.DataObject) -> Cmd:
        aid = self.pick(data, sorted(self.model.accounts), ACCOUNT_IDS)
        until = data.draw(st.sampled_from((None, None, "2025-01-01", "2025-01-02", "2026-06-30")), label="until")
        reason = data.draw(st.sampled_from(("judicial", "investigation", "default")))
        return Cmd("account freeze", {"account_id": aid, "reason": reason, "until": until}, self.new_id())

    def gen_unfreeze(self, data: st.DataObject) -> Cmd:
        aid = self.pick(data, sorted(self.model.frozen) or sorted(self.model.accounts), ACCOUNT_IDS)
        return Cmd("account unfreeze", {"account_id": aid}, self.new_id())

    def gen_close(self, data: st.DataObject) -> Cmd:
        aid = self.pick(data, sorted(self.model.accounts), ACCOUNT_IDS)
        sweep = data.draw(st.sampled_from((None, None, "T1", "T2", "F1")), label="sweep_to")
        return Cmd("account close", {"account_id": aid, "sweep_to": sweep}, self.new_id())

    def gen_reverse(self, data: st.DataObject) -> Cmd:
        """Mostly a position the model still keeps as reversible (reversed or not); sometimes any position."""
        m = self.model
        pos = self.pick(data, sorted(m.entries), tuple(range(1, m.position + 2)))
        return Cmd("reverse", {"position": pos, "reason": "a registry error"}, self.new_id())

    GENERATORS = (
        "gen_reverse",
        "gen_freeze",
        "gen_unfreeze",
        "gen_close",
        "gen_register",
        "gen_open_account",
        "gen_open_year",
        "gen_close_year",
        "gen_enforce_year",
        "gen_issue",
        "gen_issue",
        "gen_transfer",
        "gen_cancel",
        "gen_trade",
        "gen_trade",
        "gen_verify",
        "gen_surrender",
        "gen_surrender",
        "gen_allocate",
        "gen_facility",
        "gen_verify_facility",
        "gen_publish",
    )

    def any_command(self, data: st.DataObject) -> Cmd:
        return getattr(self, data.draw(st.sampled_from(self.GENERATORS), label="command"))(data)

    # ---- rules ------------------------------------------------------------------------
    @initialize(data=st.data())
    def bootstrap(self, data: st.DataObject) -> None:
        """Some firms with allowances and an open year, so that sequences reach the interesting rules soon."""
        for fid in data.draw(st.lists(st.sampled_from(FIRM_IDS), min_size=1, max_size=3, unique=True)):
            sector, unit_type = data.draw(st.sampled_from(FIRM_KINDS))
            self.run(self.register_cmd(fid, sector, unit_type))
            self.run(
                Cmd(
                    "issue",
                    {
                        "account_id": fid,
                        "unit": "CEA",
                        "vintage": data.draw(st.sampled_from(VINTAGES)),
                        "quantity": data.draw(st.sampled_from((5_000, 150_000))),
                        "basis": "pre-allocation",
                    },
                    self.new_id(),
                )
            )
        self.run(
            Cmd("account open", {"account_id": "T1", "holder": "Broker Co", "kind": "trading"}, self.new_id())
        )
        self.run(
            Cmd(
                "year open",
                {"year": data.draw(st.sampled_from(("2024", "2024-2025"))), "deadline": None},
                self.new_id(),
            )
        )
        for fid in sorted(self.model.firms):
            if data.draw(st.booleans(), label=f"verify {fid}?"):
                self.run(
                    Cmd(
                        "emissions verify",
                        {
                            "firm_id": fid,
                            "year": 2024,
                            "tonnes": data.draw(st.sampled_from((4_000, 160_000))),
                            "output": 180_000,
                            "output_unit": "MWh",
                        },
                        self.new_id(),
                    )
                )

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        """A linked reversal undoes one issuance, transfer, surrender or verification of a year not enforced."""
        self.run(self.gen_reverse(data))

    @rule(data=st.data())
    def freeze_or_close(self, data: st.DataObject) -> None:
        """Account states: a frozen account sends nothing; a closed one does nothing (the model says which)."""
        self.run(getattr(self, data.draw(st.sampled_from(("gen_freeze", "gen_unfreeze", "gen_close"))))(data))

    @rule(data=st.data())
    def register_firm(self, data: st.DataObject) -> None:
        self.run(self.gen_register(data))

    @rule(data=st.data())
    def open_account(self, data: st.DataObject) -> None:
        self.run(self.gen_open_account(data))

    @rule(data=st.data())
    def open_year(self, data: st.DataObject) -> None:
        self.run(self.gen_open_year(data))

    @rule(data=st.data())
    def close_year(self, data: st.DataObject) -> None:
        self.run(self.gen_close_year(data))

    @rule(data=st.data())
    def enforce_year(self, data: st.DataObject) -> None:
        self.run(self.gen_enforce_year(data))

    @rule(data=st.data())
    def issue(self, data: st.DataObject) -> None:
        self.run(self.gen_issue(data))

    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        self.run(self.gen_transfer(data))

    @rule(data=st.data())
    def trade(self, data: st.DataObject) -> None:
        self.run(self.gen_trade(data))

    @rule(data=st.data())
    def trade_again(self, data: st.DataObject) -> None:
        self.run(self.gen_trade(data))

    @rule(data=st.data())
    def same_day_resale(self, data: st.DataObject) -> None:
        self.run(self.gen_trade(data, resale=True))

    @rule(data=st.data())
    def verify_emissions(self, data: st.DataObject) -> None:
        self.run(self.gen_verify(data))

    @rule(data=st.data())
    def register_facility(self, data: st.DataObject) -> None:
        self.run(self.gen_facility(data))

    @rule(data=st.data())
    def verify_facility(self, data: st.DataObject) -> None:
        self.run(self.gen_verify_facility(data))

    @rule(data=st.data())
    def publish_plan(self, data: st.DataObject) -> None:
        self.run(self.gen_publish(data))

    @rule(data=st.data())
    def surrender(self, data: st.DataObject) -> None:
        self.run(self.gen_surrender(data))

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.run(self.gen_cancel(data))

    @rule(data=st.data())
    def allocate(self, data: st.DataObject) -> None:
        self.run(self.gen_allocate(data))

    @rule(data=st.data())
    def bad_input(self, data: st.DataObject) -> None:
        cmd = self.any_command(data)
        fields = sorted(k for k in cmd.args if k in CORRUPTIONS) + ["command id"]
        key = data.draw(st.sampled_from(fields), label="corrupt")
        if key == "command id":
            cmd.cid = "c" * 129
        else:
            cmd.args[key] = data.draw(st.sampled_from(CORRUPTIONS[key]))
        self.run(cmd)

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def repeat_same_command(self, data: st.DataObject) -> None:
        old = data.draw(st.sampled_from(self.history))
        args = dict(old.args)
        price = args.get("price")
        if isinstance(price, str) and price.endswith("0") and "." in price and data.draw(st.booleans()):
            args["price"] = price[:-1]  # the same price written differently
        self.run(Cmd(old.name, args, old.cid))

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def repeat_id_other_command(self, data: st.DataObject) -> None:
        old = data.draw(st.sampled_from(self.history))
        if data.draw(st.booleans(), label="another kind of command?"):
            cmd = self.any_command(data)
            cmd.cid = old.cid
        else:
            args = dict(old.args)
            for key, change in (
                ("quantity", 1),
                ("tonnes", 1),
                ("region", "Guangdong"),
                ("holder", "Other Co"),
                ("deadline", "2030-12-31"),
                ("fine_multiple", "6"),
                ("step", None),
            ):
                if key not in args:
                    continue
                if key == "step":
                    args[key] = "pre" if args[key] == "true-up" else "true-up"
                elif isinstance(change, int):
                    if isinstance(args[key], int) and not isinstance(args[key], bool):
                        args[key] += change
                else:
                    args[key] = change
                break
            cmd = Cmd(old.name, args, old.cid)
        self.run(cmd)

    @rule(data=st.data(), on_refusal=st.sampled_from(("stop", "continue")))
    def batch(self, data: st.DataObject, on_refusal: str) -> None:
        cmds = [self.any_command(data) for _ in range(data.draw(st.integers(1, 5), label="batch size"))]
        if data.draw(st.integers(0, 3), label="repeat inside?") == 0:
            again = data.draw(st.sampled_from(cmds))
            cmds.append(Cmd(again.name, dict(again.args), again.cid))
        self.run_batch(cmds, on_refusal)

    @rule()
    def reopen_store(self) -> None:
        """A new Registry on the same file (snapshot + catch-up) must hold the same write-side state."""
        live = comparable(self.reg.state.to_snapshot())
        self.reg.close()
        self.reg = Registry(self.path, clock=fixed_clock)
        assert comparable(self.reg.state.to_snapshot()) == live

    @rule(data=st.data())
    def as_of_equals_truncated_store(self, data: st.DataObject) -> None:
        """Read models as of position N equal those of a store holding only the first N events."""
        head = self.reg.head()[0]
        n = data.draw(st.integers(0, head), label="as of")
        runner.catch_up(self.reg.recorder)  # writes the checkpoints that as-of starts from
        rows = list(self.reg.recorder.read_events(upto=n))
        self.stores += 1
        short = Registry(os.path.join(self.tmp, f"as-of-{self.stores}.db"), clock=fixed_clock)
        try:
            if rows:
                whole = [r for r in self.command_rows() if r[3] <= n]  # the commands that ended by n
                short.recorder.insert_events(
                    [
                        StoredEvent(
                            originator_id=LEDGER_ID,
                            originator_version=pos,
                            topic=TOPIC_PREFIX + decode(state)["type"],
                            state=state,
                        )
                        for pos, _h, state in rows
                    ],
                    commands=whole,
                )
            assert short.head() == (n, self.reg.recorder.hash_at(n))
            then = runner.as_of(self.reg.recorder, n, AS_OF_NAMES)
            truncated, _pos = runner.catch_up(short.recorder)
            for name in AS_OF_NAMES:
                p = runner.BY_NAME[name]
                assert audit._norm(p.dump(then[name])) == audit._norm(p.dump(truncated[name])), (
                    f"{name} as of {n}"
                )
            for account in sorted(self.model.accounts):
                assert self.reg.recorder.history_rows(account, upto=n) == short.recorder.history_rows(account)
            if n == 0 or decode(rows[-1][2])["command_id"] != self.command_at(n + 1):
                assert comparable(short.state.to_snapshot()) == comparable(self.write_side_at(n))
            else:  # cut inside a command: a writer sees the command end early and refuses
                try:
                    _ = short.state
                except LedgerError as e:
                    assert e.exit_code == 3 and "ends inside a command" in e.message
                else:
                    raise AssertionError(f"a store cut inside a command at {n} was accepted by a writer")
        finally:
            short.close()
        STATS["as-of checks"] += 1

    def command_rows(self) -> list[tuple]:
        with sqlite3.connect(self.path) as conn:
            return [tuple(r) for r in conn.execute("SELECT * FROM ledger_commands ORDER BY first_position")]

    def command_at(self, position: int) -> str | None:
        found = list(self.reg.recorder.read_events(after=position - 1, upto=position))
        return decode(found[0][2])["command_id"] if found else None

    @rule(data=st.data())
    def audit_verify_catches_a_single_change(self, data: st.DataObject) -> None:
        """The re-execution audit passes on the untouched store and catches any one stored change to an
        event's data (the chain rehashed after it), to a command-id row, or to the write-side snapshot."""
        verified = verify_log(self.reg.recorder)
        assert verified["ok"], verified
        head = self.reg.head()
        assert (verified["position"], verified["hash"]) == head
        if head[0] == 0:
            return
        self.stores += 1
        copy = os.path.join(self.tmp, f"tampered-{self.stores}.db")
        with sqlite3.connect(self.path) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
        what = data.draw(st.sampled_from(("event", "command row", "snapshot")), label="tamper with")
        with sqlite3.connect(copy) as conn:
            if what == "event":
                pos = data.draw(st.integers(1, head[0]), label="event at")
                nid, blob = conn.execute("SELECT c.notification_id, e.state FROM ledger_chain c JOIN stored_events e"
                                         " ON e.rowid = c.notification_id WHERE c.position = ?", (pos,)).fetchone()
                env = decode(bytes(blob))
                keys = sorted(k for k, v in env["data"].items() if isinstance(v, (int, str)) and not isinstance(v, bool))
                key = data.draw(st.sampled_from(keys), label="field")
                v = env["data"][key]
                env["data"][key] = v + 1 if isinstance(v, int) else v + "x"
                conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (canonical_bytes(env), nid))
                h = GENESIS_HASH
                for p_, b_ in conn.execute("SELECT c.position, e.state FROM ledger_chain c JOIN stored_events e"
                                           " ON e.rowid = c.notification_id ORDER BY c.position").fetchall():
                    h = chain_hash(h, bytes(b_))
                    conn.execute("UPDATE ledger_chain SET hash = ? WHERE position = ?", (h, p_))
            elif what == "command row":
                rows = conn.execute("SELECT command_id FROM ledger_commands ORDER BY first_position").fetchall()
                (cid,) = data.draw(st.sampled_from(rows), label="command row")
                how = data.draw(st.sampled_from(("delete", "digest", "result", "positions")), label="row change")
                if how == "delete":
                    conn.execute("DELETE FROM ledger_commands WHERE command_id = ?", (cid,))
                elif how == "digest":
                    conn.execute("UPDATE ledger_commands SET digest = digest || 'x' WHERE command_id = ?", (cid,))
                elif how == "result":
                    conn.execute("UPDATE ledger_commands SET result = CAST('{}' AS BLOB) WHERE command_id = ?", (cid,))
                else:
                    conn.execute("UPDATE ledger_commands SET last_position = last_position + 1 WHERE command_id = ?",
                                 (cid,))
            else:
                snap = conn.execute("SELECT position, state FROM ledger_snapshot").fetchone()
                if snap is None:  # write the true one first, so that there is one to forge
                    snap = (head[0], orjson.dumps(self.reg.state.to_snapshot()))
                    conn.execute("INSERT INTO ledger_snapshot VALUES ('ledger', ?, ?)", snap)
                state = orjson.loads(bytes(snap[1]))
                state["holdings"].append(["F1", "CEA", 2099, 10_000_000])
                conn.execute("UPDATE ledger_snapshot SET state = ?", (orjson.dumps(state),))
        tampered = Registry(copy, clock=fixed_clock)
        try:
            caught = verify_log(tampered.recorder)
        finally:
            tampered.close()
        assert not caught["ok"], f"a changed {what} passed the re-execution audit"
        STATS[f"tamper caught: {what}"] += 1

    def write_side_at(self, n: int) -> dict[str, Any]:
        st_ = LedgerState()
        for _pos, _h, state in self.reg.recorder.read_events(upto=n):
            st_.advance(decode(state), state)
        return st_.to_snapshot()

    # ---- invariants, after every step ----------------------------------------------------
    @invariant()
    def ledger_invariants(self) -> None:
        STATS["steps"] += 1
        # the export contract (docs/events.md): one JSON line per event, positions from 1 without gaps, chained
        lines = [decode(line) for line in audit.export(self.reg.recorder)]
        rows = list(self.reg.recorder.read_events())
        assert len(lines) == len(rows)
        chain = GENESIS_HASH
        events = []
        held: Counter = Counter()
        issued: Counter = Counter()
        retired: Counter = Counter()  # surrendered + cancelled + withdrawn, by (unit, vintage)
        volume: Counter = Counter()
        value: dict[str, Decimal] = {}
        trades: Counter = Counter()
        for expected, (line, (position, stored_hash, state)) in enumerate(
            zip(lines, rows, strict=True), start=1
        ):
            # tamper evidence: positions 1..n without gaps, each hash chained on the previous one
            assert line["position"] == position == expected, f"position {position} where {expected} was due"
            assert line["prev_hash"] == chain
            chain = chain_hash(chain, state)
            assert chain == stored_hash == line["hash"], f"hash chain breaks at position {position}"
            env = decode(state)
            assert env["position"] == position and env["data"] == line["data"] and env["type"] == line["type"]
            if position > self.validated:
                validate_event(env)  # every recorded event fits the catalogue
            events.append(env)
            d, t = line["data"], line["type"]
            moves: list[tuple[str, int]] = []
            if t == "AllowancesIssued":
                moves = [(d["account_id"], d["quantity"])]
                issued[(d["unit"], d["vintage"])] += d["quantity"]
            elif t == "AllowancesTransferred":
                moves = [(d["from_account"], -d["quantity"]), (d["to_account"], d["quantity"])]
            elif t == "TradeExecuted":
                moves = [(d["seller"], -d["quantity"]), (d["buyer"], d["quantity"])]
                volume[d["unit"]] += d["quantity"]
                value[d["unit"]] = value.get(d["unit"], Decimal(0)) + Decimal(d["price"]) * d["quantity"]
                trades[d["unit"]] += 1
            elif t in ("AllowancesSurrendered", "AllowancesCancelled", "AllowancesWithdrawn"):
                moves = [(d.get("account_id") or d["firm_id"], -d["quantity"])]
                retired[(d["unit"], d["vintage"])] += d["quantity"]
            elif t == "EntryReversed" and d["reversed_type"] != "EmissionsVerified":
                # the original stays in the log; the reversal moves its units back (docs/events.md)
                rt, q = d["reversed_type"], d["quantity"]
                if rt == "AllowancesIssued":
                    moves = [(d["account_id"], -q)]
                    issued[(d["unit"], d["vintage"])] -= q
                elif rt == "AllowancesTransferred":
                    moves = [(d["from_account"], -q), (d["to_account"], q)]
                else:
                    moves = [(d["account_id"], q)]
                    retired[(d["unit"], d["vintage"])] -= q
            for account, delta in moves:
                key = (account, d["unit"], d["vintage"])
                held[key] += delta
                assert held[key] >= 0, f"negative holding {key} at position {position}"
            # conservation at every position: what the events moved stays balanced per unit and vintage
            for key in {(d.get("unit"), d.get("vintage"))} if moves else ():
                in_accounts = sum(q for (_a, u, v), q in held.items() if (u, v) == key)
                assert issued[key] == in_accounts + retired[key], (
                    f"{key} not conserved at position {position}"
                )
        self.validated = len(rows)
        assert self.reg.head() == (len(rows), chain), "head must be the last position and its hash"
        assert len(rows) == self.model.position, "the store holds exactly the events the model expects"

        live = self.reg.state
        held = Counter({k: q for k, q in held.items() if q})
        assert dict(live.holdings) == dict(held), "live holdings differ from the holdings the events imply"
        assert dict(self.model.holdings) == dict(held), "holdings differ from the reference model's"
        # conservation per unit and vintage: issued = held + surrendered + cancelled + withdrawn
        held_by_unit: Counter = Counter()
        for (_a, unit, vintage), q in live.holdings.items():
            assert q > 0
            held_by_unit[(unit, vintage)] += q
        for key in set(issued) | set(held_by_unit) | set(retired):
            assert issued[key] == held_by_unit[key] + retired[key], f"{key} is not conserved"

        # market arithmetic, exact
        for unit in UNITS:
            assert volume[unit] == self.model.volume[unit]
            assert value.get(unit, Decimal(0)) == self.model.value.get(unit, Decimal(0))
            assert trades[unit] == sum(m.trades for (u, _v), m in live.markets.items() if u == unit)
        assert sum(q for q, _v in live.months.values()) == volume["CEA"]
        assert sum((v for _q, v in live.months.values()), Decimal(0)) == value.get("CEA", Decimal(0))

        # determinism: the write side rebuilt from zero equals the live one
        rebuilt = LedgerState()
        for env in events:
            rebuilt.advance(env, canonical_bytes(env))
        assert comparable(rebuilt.to_snapshot()) == comparable(live.to_snapshot()), (
            "replay differs from live state"
        )

        self.read_side_invariants(held, issued, retired, volume, value, trades)

    def read_side_invariants(
        self,
        held: Counter,
        issued: Counter,
        retired: Counter,
        volume: Counter,
        value: dict[str, Decimal],
        trades: Counter,
    ) -> None:
        """The read models (projections/), kept up to date step by step, against replay, events and model."""
        states, position = runner.catch_up(self.reg.recorder)
        assert position == self.reg.head()[0]
        compared = audit.replay_compare(self.reg.recorder)
        assert compared["ok"], f"live read models differ from a replay: {compared['differences']}"
        rebuilt, _pos = runner.rebuild(self.reg.recorder)
        for p in runner.PROJECTIONS:
            assert audit._norm(p.dump(states[p.name])) == audit._norm(p.dump(rebuilt[p.name])), p.name

        balances = states["balances"]
        assert {k: q for k, q in balances["holdings"].items() if q} == dict(held)
        for (unit, vintage), t in balances["totals"].items():
            assert t["issued"] == issued[(unit, vintage)]
            assert t["surrendered"] + t["cancelled"] + t["withdrawn"] == retired[(unit, vintage)]
            assert t["issued"] == t["held"] + t["surrendered"] + t["cancelled"] + t["withdrawn"]
            assert t["held"] == sum(q for (_a, u, v), q in held.items() if (u, v) == (unit, vintage))

        market = states["market"]
        for unit in UNITS:
            m = market.get(unit)
            cumulative = m["cumulative"] if m else [0, Decimal(0), 0]
            assert cumulative == [volume[unit], value.get(unit, Decimal(0)), trades[unit]]
            listed = {(date, v): (r[6], r[7]) for (date, v), r in (m["days"] if m else {}).items() if r[6]}
            assert listed == {(date, v): qv for (u, v), days in self.model.trade_days.items() if u == unit
                              for date, qv in days.items()}

        for row in compliance_rm.rows(states["compliance"]):
            p = self.model.periods[row["year"]]
            fid = row["firm_id"]
            want = self.model.status(fid, p)
            closed_status = self.model.status_at_close.get((fid, p["first"]))
            if closed_status is not None and closed_status != want:
                want += "*"
            fine, deduction = self.model.penalties.get((fid, p["first"]), (None, 0))
            assert (
                row["verified"],
                row["free_allocation"],
                row["obligation"],
                row["status"],
                row["fine"],
                row["deduction"],
                row["surrendered_cea"],
                row["surrendered_ccer"],
            ) == (
                self.model.verified_in(fid, p),
                self.model.free_allocation(fid, p),
                self.model.obligation(fid, p),
                want,
                fine,
                deduction,
                self.model.surrendered_in(fid, p, "CEA"),
                self.model.surrendered_in(fid, p, "CCER"),
            ), f"compliance row {row}"


def test_ledger_state_machine(monkeypatch) -> None:
    monkeypatch.setattr(registry_module, "SNAPSHOT_EVERY", SNAPSHOT_EVERY)
    monkeypatch.setattr(runner, "CHECKPOINT_EVERY", CHECKPOINT_EVERY)
    STATS.clear()
    try:
        run_state_machine_as_test(LedgerMachine)
    finally:
        print("\nledger state machine:", ", ".join(f"{k} {v}" for k, v in sorted(STATS.items())))
