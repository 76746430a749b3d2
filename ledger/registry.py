"""The registry: an eventsourcing Application with one method per command.

Each command is checked against the ledger's state (ledger.model), then recorded
as catalogue events, hash-chained, in one transaction together with its command
id. Commands can be run one at a time (the CLI) or in atomic batches (`import`,
the simulator): the same checks, the same events. A write that loses a race to
another writer (IntegrityError on the next position) is retried on the new state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Any

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent

from ledger import rules
from ledger.errors import BadInput, Conflict, LedgerError, Refused, StoreError
from ledger.events import TOPIC_PREFIX, canonical_bytes, decode
from ledger.inputs import parse_command
from ledger.model import SNAPSHOT_VERSION, LedgerState, Market, Period, default_deadline
from ledger.store import StoreConfig, parse_store
from ledger.units import fmt_money, money, parse_command_id, parse_period

LEDGER_ID = uuid.uuid5(uuid.NAMESPACE_URL, "https://carbon-ledger.invalid/ledger")
SNAPSHOT_EVERY = 1000  # events between write-side snapshots: a command starting up folds at most this many (~15 ms)
MAX_ATTEMPTS = 20  # retries of a command that lost a race to another writer
OPEN_STORE_ACTOR = "operator"

# Who may run what on an enforced store (docs/invariants.md, invariant 10).
RIGHTS: dict[str, tuple[str, ...]] = {
    "actor add": ("regulator",),
    "actor key": ("regulator",),
    "firm register": ("regulator",),
    "account open": ("regulator",),
    "year open": ("regulator",),
    "year close": ("regulator",),
    "issue": ("regulator",),
    "allocate": ("regulator",),
    "emissions verify": ("regulator", "verifier"),
    "trade": ("exchange",),
    "transfer": ("firm", "regulator"),
    "surrender": ("firm",),
    "cancel": ("firm", "regulator"),
}
OWN_ACCOUNT_ONLY = {"transfer": "from_account", "surrender": "firm_id", "cancel": "account_id"}


@dataclass
class Command:
    name: str
    args: dict[str, Any]
    command_id: str | None = None
    actor: str | None = None
    signature: str | None = None
    checked: bool = False  # args are already parse_command's output (import validates the whole file first)


@dataclass
class Outcome:
    """What a command did: its events' positions and a result for the user (replayed=True if repeated)."""

    command_id: str
    first_position: int
    position: int
    result: dict[str, Any]
    replayed: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _digest(name: str, args: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps({"c": name, "a": args}, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _floor(x: Decimal) -> int:
    return int(x.to_integral_value(rounding=ROUND_FLOOR))


class Registry(Application):
    """carbon-ledger's write side. `Registry(store_url)`; then one method per command."""

    name = "CarbonLedger"

    def __init__(self, store: str | StoreConfig | None = None, *, clock: Callable[[], dt.datetime] | None = None):
        self.config = store if isinstance(store, StoreConfig) else parse_store(store)
        try:
            super().__init__(env=self.config.env())
        except (PersistenceError, OSError) as e:
            raise StoreError(f"cannot open store {self.config.url}: {e}") from None
        self.clock = clock or _utc_now
        self._state: LedgerState | None = None

    # ---- state ----------------------------------------------------------------------
    @property
    def state(self) -> LedgerState:
        if self._state is None:
            self._state = self._load_state()
            self._catch_up(self._state)
            if self._state.position - self._snapshot_position >= SNAPSHOT_EVERY:
                # A missing, old-shaped or far-behind snapshot is replaced now, not at the next commit:
                # a run of refused commands would otherwise each refold the log.
                self.recorder.save_snapshot("ledger", self._state.position, orjson.dumps(self._state.to_snapshot()))
                self._snapshot_position = self._state.position
            return self._state
        self._catch_up(self._state)
        return self._state

    def _load_state(self) -> LedgerState:
        snap = self.recorder.load_snapshot()
        if snap:
            data = orjson.loads(snap[1])
            if data.get("version") == SNAPSHOT_VERSION:
                self._snapshot_position = snap[0]
                return LedgerState.from_snapshot(data)
        # No snapshot, or one of an older shape: fold the log from the start (`state` then writes one).
        self._snapshot_position = 0
        return LedgerState()

    def _catch_up(self, st: LedgerState) -> None:
        for _pos, _h, state in self.recorder.read_events(after=st.position):
            st.apply(decode(state))

    def head(self) -> tuple[int, str]:
        return self.recorder.head()

    # ---- running commands -------------------------------------------------------------
    def execute(self, cmd: Command) -> Outcome:
        """Run one command; raises the LedgerError that refused it."""
        (result,) = self.execute_batch([cmd])
        if isinstance(result, LedgerError):
            raise result
        return result

    def execute_batch(self, cmds: Sequence[Command], on_refusal: str = "stop") -> list[Outcome | LedgerError]:
        """Run commands in order and commit what they recorded in one transaction.

        A refused command records nothing; with on_refusal="stop" the commands after it
        are not run (and get no entry in the returned list).
        """
        with self.recorder.writer_lock():
            return self._execute_batch(cmds, on_refusal)

    def _execute_batch(self, cmds: Sequence[Command], on_refusal: str) -> list[Outcome | LedgerError]:
        last_error: Exception | None = None
        for _attempt in range(MAX_ATTEMPTS):
            st = self.state
            seen = self.recorder.lookup_commands([c.command_id for c in cmds if c.command_id])
            events: list[dict[str, Any]] = []
            rows: list[tuple] = []
            results: list[Outcome | LedgerError] = []
            try:
                for cmd in cmds:
                    try:
                        results.append(self._run_one(st, cmd, seen, events, rows))
                    except LedgerError as e:
                        results.append(e)
                        if on_refusal == "stop":
                            break
                if events:
                    self._commit(st, events, rows)
                return results
            except IntegrityError as e:  # another writer took the next position: retry on the new state
                last_error = e
                self._state = None
            except PersistenceError as e:
                self._state = None
                raise StoreError(f"store write failed: {e}") from None
            except BaseException:
                self._state = None  # the in-memory fold may hold uncommitted events
                raise
        raise Conflict(f"gave up after {MAX_ATTEMPTS} conflicting writes: {last_error}")

    def _commit(self, st: LedgerState, events: list[dict[str, Any]], rows: list[tuple]) -> None:
        stored = [
            StoredEvent(originator_id=LEDGER_ID, originator_version=e["position"], topic=TOPIC_PREFIX + e["type"],
                        state=canonical_bytes(e))
            for e in events
        ]
        snapshot = None
        snap = getattr(self, "_snapshot_position", None)
        if snap is None:
            prev = self.recorder.load_snapshot()
            snap = prev[0] if prev else 0
        if st.position - snap >= SNAPSHOT_EVERY:
            snapshot = ("ledger", st.position, orjson.dumps(st.to_snapshot()))
        self.recorder.insert_events(stored, commands=rows, snapshot=snapshot)
        if snapshot is not None:
            snap = st.position
        self._snapshot_position = snap

    def _recorded_at(self) -> str:
        """The clock's time as stored, to the second (formatted once per second: a bulk import asks often)."""
        now = self.clock()
        second = now.timestamp() // 1
        if second != getattr(self, "_recorded_second", None):
            self._recorded_text = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._recorded_second = second
        return self._recorded_text

    def _run_one(self, st: LedgerState, cmd: Command, seen: dict[str, tuple], events: list, rows: list) -> Outcome:
        args = cmd.args if cmd.checked else parse_command(cmd.name, cmd.args)
        command_id = parse_command_id(cmd.command_id) if cmd.command_id else uuid.uuid4().hex
        digest = _digest(cmd.name, args)
        actor = self._authorize(st, cmd.name, args, cmd.actor)  # a repeat reveals its result only to the allowed
        if command_id in seen:
            d, first, last, result = seen[command_id]
            if d != digest:
                raise Refused(f"command id {command_id} was already used for a different command",
                              code="command_id_reused")
            return Outcome(command_id, first, last, orjson.loads(result), replayed=True)
        signed = self._check_signature(st, cmd, command_id, args, actor)
        decided, extra = DECIDE[cmd.name](self, st, args, actor)
        if not decided:
            raise Refused(f"{cmd.name}: nothing to record", code="nothing_to_record")
        recorded_at = self._recorded_at()
        first = st.position + 1
        new = []
        for i, (etype, data) in enumerate(decided):
            env = {"position": st.position + 1, "type": etype, "recorded_at": recorded_at, "actor": actor,
                   "command_id": command_id, "data": data}
            if i == 0 and signed is not None:
                env["signature"] = signed
            st.apply(env)
            new.append(env)
        events.extend(new)
        result = {"command": cmd.name, "command_id": command_id, "first_position": first,
                  "position": st.position, "events": [e["type"] for e in new], **extra}
        row = (command_id, digest, first, st.position, orjson.dumps(result))
        rows.append(row)
        seen[command_id] = row[1:]
        return Outcome(command_id, first, st.position, result, events=new)

    # ---- authority and signatures ---------------------------------------------------------
    def _authorize(self, st: LedgerState, name: str, args: dict[str, Any], actor_id: str | None) -> str:
        if name == "init":
            if st.position:
                raise Refused("init creates a new store; this store already holds events", code="store_not_empty")
            return args["regulator"]
        if not st.enforced:
            return OPEN_STORE_ACTOR  # an open store authenticates nobody: a name given with --as is not recorded
        if not actor_id:
            raise Refused(f"{name}: this store enforces roles; name the actor with --as or CARBON_LEDGER_ACTOR",
                          code="no_actor")
        actor = st.actors.get(actor_id)
        if actor is None:
            raise Refused(f"actor {actor_id} is not registered in this store", code="unknown_actor")
        allowed = RIGHTS.get(name, ())
        if actor.role not in allowed:
            raise Refused(f"actor {actor_id} ({actor.role}) lacks the right to {name}"
                          f" (needs {' or '.join(allowed)})", code="not_permitted")
        if actor.role == "regulator" and name in OWN_ACCOUNT_ONLY:
            acc = st.accounts.get(args[OWN_ACCOUNT_ONLY[name]])
            if acc is not None and acc.kind != "government":
                raise Refused(f"actor {actor_id} (regulator) lacks the right to {name} from {acc.kind} account"
                              f" {acc.account_id}: only its holder moves it", code="not_own_account")
        if actor.role == "firm" and name in OWN_ACCOUNT_ONLY:
            account_id = args[OWN_ACCOUNT_ONLY[name]]
            acc = st.accounts.get(account_id)
            owns = account_id == actor.firm_id or (acc is not None and acc.holder == actor.firm_id)
            if not owns:
                raise Refused(f"actor {actor_id} (firm {actor.firm_id}) lacks the right to {name}"
                              f" from account {account_id}", code="not_own_account")
        return actor_id

    def _check_signature(self, st: LedgerState, cmd: Command, command_id: str, args: dict[str, Any],
                         actor: str) -> dict[str, Any] | None:
        if cmd.signature is None:
            if st.require_signatures and cmd.name != "init":
                raise Refused(f"{cmd.name}: this store requires signed commands; sign with --key", code="unsigned")
            return None
        key = None
        if cmd.name == "init":
            key = args.get("public_key")
        elif actor in st.actors:
            key = st.actors[actor].public_key
        if key is None:
            raise Refused(f"actor {actor} has no registered public key to check the signature against",
                          code="no_public_key")
        from ledger import signing  # cryptography loads only when a command is signed

        payload = signing.command_payload(cmd.name, command_id, args)
        if not signing.verify(key, cmd.signature, payload):
            raise Refused(f"the signature on {cmd.name} does not verify for actor {actor}", code="bad_signature")
        return {"actor": actor, "command": cmd.name, "args": args, "sig": cmd.signature}

    # ---- one method per command (the public command API) ------------------------------------
    def _cmd(self, name: str, args: dict[str, Any], command_id: str | None, actor: str | None,
             signature: str | None) -> Outcome:
        return self.execute(Command(name, {k: v for k, v in args.items() if v is not None}, command_id, actor,
                                    signature))

    def init(self, regulator: str, require_signatures: bool = False, public_key: str | None = None,
             *, command_id: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("init", {"regulator": regulator, "require_signatures": require_signatures,
                                  "public_key": public_key}, command_id, regulator, signature)

    def add_actor(self, actor_id: str, role: str, firm: str | None = None, public_key: str | None = None, *,
                  command_id: str | None = None, actor: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("actor add", {"actor_id": actor_id, "role": role, "firm": firm, "public_key": public_key},
                         command_id, actor, signature)

    def register_firm(self, firm_id: str, name: str, sector: str, region: str, unit_type: str | None = None, *,
                      command_id: str | None = None, actor: str | None = None,
                      signature: str | None = None) -> Outcome:
        return self._cmd("firm register", {"firm_id": firm_id, "name": name, "sector": sector, "region": region,
                                           "unit_type": unit_type}, command_id, actor, signature)

    def open_account(self, account_id: str, holder: str, kind: str = "trading", *, command_id: str | None = None,
                     actor: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("account open", {"account_id": account_id, "holder": holder, "kind": kind},
                         command_id, actor, signature)

    def open_year(self, year: int | str, deadline: str | None = None, *, command_id: str | None = None,
                  actor: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("year open", {"year": str(year), "deadline": deadline}, command_id, actor, signature)

    def close_year(self, year: int, fine_multiple: str | None = None, *, command_id: str | None = None,
                   actor: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("year close", {"year": year, "fine_multiple": fine_multiple}, command_id, actor, signature)

    def issue(self, account_id: str, unit: str, vintage: int, quantity: int, basis: str, *,
              command_id: str | None = None, actor: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("issue", {"account_id": account_id, "unit": unit, "vintage": vintage, "quantity": quantity,
                                   "basis": basis}, command_id, actor, signature)

    def allocate(self, firm_id: str, year: int, step: str, factors: dict[str, str] | None = None, *,
                 command_id: str | None = None, actor: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("allocate", {"firm_id": firm_id, "year": year, "step": step, "factors": factors},
                         command_id, actor, signature)

    def transfer(self, from_account: str, to_account: str, unit: str, vintage: int, quantity: int, *,
                 command_id: str | None = None, actor: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("transfer", {"from_account": from_account, "to_account": to_account, "unit": unit,
                                      "vintage": vintage, "quantity": quantity}, command_id, actor, signature)

    def trade(self, buyer: str, seller: str, unit: str, vintage: int, quantity: int, price: str, mode: str,
              date: str, *, command_id: str | None = None, actor: str | None = None,
              signature: str | None = None) -> Outcome:
        return self._cmd("trade", {"buyer": buyer, "seller": seller, "unit": unit, "vintage": vintage,
                                   "quantity": quantity, "price": price, "mode": mode, "date": date},
                         command_id, actor, signature)

    def verify_emissions(self, firm_id: str, year: int, tonnes: int, output: int | None = None,
                         output_unit: str | None = None, *, command_id: str | None = None, actor: str | None = None,
                         signature: str | None = None) -> Outcome:
        return self._cmd("emissions verify", {"firm_id": firm_id, "year": year, "tonnes": tonnes, "output": output,
                                              "output_unit": output_unit}, command_id, actor, signature)

    def surrender(self, firm_id: str, year: int, unit: str, vintage: int, quantity: int, *,
                  command_id: str | None = None, actor: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("surrender", {"firm_id": firm_id, "year": year, "unit": unit, "vintage": vintage,
                                       "quantity": quantity}, command_id, actor, signature)

    def cancel(self, account_id: str, unit: str, vintage: int, quantity: int, reason: str = "voluntary", *,
               command_id: str | None = None, actor: str | None = None, signature: str | None = None) -> Outcome:
        return self._cmd("cancel", {"account_id": account_id, "unit": unit, "vintage": vintage,
                                    "quantity": quantity, "reason": reason}, command_id, actor, signature)


# ---- decisions: check against state, return the events to record -------------------------------
Decided = tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]


def _init(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    return [("LedgerInitialized", {"regulator": a["regulator"], "require_signatures": a["require_signatures"],
                                   "public_key": a.get("public_key")})], {}


def _actor_add(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    if a["actor_id"] in st.actors or a["actor_id"] == OPEN_STORE_ACTOR:
        raise Refused(f"actor {a['actor_id']} exists already", code="duplicate_actor")
    if a["role"] == "firm":
        if not a.get("firm"):
            raise BadInput("a firm actor needs --firm FIRM_ID")
        st.check_firm(a["firm"])
    elif a.get("firm"):
        raise BadInput("--firm applies only to actors with role firm")
    from ledger import signing

    pk = signing.parse_public(a["public_key"]) if a.get("public_key") else None
    return [("ActorAdded", {"actor_id": a["actor_id"], "role": a["role"], "firm_id": a.get("firm"),
                            "public_key": pk})], {}


def _actor_key(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    if a["actor_id"] not in st.actors:
        raise Refused(f"actor {a['actor_id']} is not registered", code="unknown_actor")
    from ledger import signing

    return [("ActorKeyRegistered", {"actor_id": a["actor_id"], "public_key": signing.parse_public(a["public_key"])})], {}


def _firm_register(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    fid = a["firm_id"]
    if fid in st.firms:
        raise Refused(f"firm {fid} is already registered", code="duplicate_firm")
    if fid in st.accounts:
        raise Refused(f"account {fid} exists already; a firm's compliance account takes the firm's id",
                      code="duplicate_account")
    unit_type = a.get("unit_type")
    if a["sector"] == "power":
        unit_type = unit_type or rules.DEFAULT_UNIT_TYPE["power"]
    elif unit_type:
        raise BadInput("--unit-type applies only to the power sector")
    return [
        ("FirmRegistered", {"firm_id": fid, "name": a["name"], "sector": a["sector"], "region": a["region"],
                            "unit_type": unit_type}),
        ("AccountOpened", {"account_id": fid, "holder": fid, "kind": "compliance"}),
    ], {"firm_id": fid}


def _account_open(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    if a["account_id"] in st.accounts:
        raise Refused(f"account {a['account_id']} exists already", code="duplicate_account")
    if a["kind"] == "compliance":
        raise Refused("a compliance account is opened by `firm register`", code="compliance_account")
    return [("AccountOpened", {"account_id": a["account_id"], "holder": a["holder"], "kind": a["kind"]})], {}


def _year_open(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    first, last = parse_period(a["year"])
    for y in range(first, last + 1):
        if y in st.year_period:
            raise Refused(f"compliance year {y} is already open (as {st.year_period[y]})", code="year_exists")
    deadline = a.get("deadline") or default_deadline(last)
    if deadline < f"{last}-01-01":
        raise BadInput(f"deadline {deadline} is before the compliance year {a['year']}")
    data: dict[str, Any] = {"year": first, "surrender_deadline": deadline}
    if last != first:
        data.update(last_year=last, period=a["year"])
    return [("ComplianceYearOpened", data)], {"year": a["year"], "deadline": deadline}


def _issue(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    st.check_account_open(a["account_id"])
    if (a["unit"] == "CCER") != (a["basis"] == "offset"):
        raise Refused("CCER are issued with basis offset, and only CCER are", code="basis_unit")
    return [("AllowancesIssued", {"account_id": a["account_id"], "unit": a["unit"], "vintage": a["vintage"],
                                  "quantity": a["quantity"], "basis": a["basis"]})], {}


def _transfer(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    if a["from_account"] == a["to_account"]:
        raise Refused("a transfer needs two different accounts", code="same_account")
    st.check_account_open(a["from_account"])
    st.check_account_open(a["to_account"])
    st.check_holding_covers(a["from_account"], a["unit"], a["vintage"], a["quantity"])
    return [("AllowancesTransferred", dict(a))], {}


_A_DAY = dt.timedelta(days=1)


def _trade(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    buyer, seller, q, mode, date = a["buyer"], a["seller"], a["quantity"], a["mode"], a["date"]
    if buyer == seller:
        raise Refused("buyer and seller must differ", code="self_trade")
    st.check_account_open(buyer)
    st.check_account_open(seller)
    if mode == "listed" and q > rules.LISTED_MAX_QUANTITY_T:
        raise Refused(f"a listed trade must be under {rules.BLOCK_MIN_QUANTITY_T} t; use mode block", code="lot_size")
    if mode == "block" and q < rules.BLOCK_MIN_QUANTITY_T:
        raise Refused(f"a block trade must be at least {rules.BLOCK_MIN_QUANTITY_T} t", code="lot_size")
    if date > (reg.clock() + _A_DAY).date().isoformat():  # UTC + 1 day: today somewhere on Earth
        raise Refused(f"trade date {date} is later than the registry's clock ({reg.clock():%Y-%m-%d} UTC)",
                      code="trade_date_in_future")
    market = st.markets.get(a["unit"]) or Market()  # deciding never changes the state
    if market.last_date is not None and date < market.last_date:
        raise Refused(f"trade date {date} is before the last trading day {market.last_date}", code="trade_date")
    price = Decimal(a["price"])
    close = market.reference_close(date)
    band = rules.PRICE_BAND[mode]
    if close is not None and band is not None:
        lo, hi = _band(close, band)
        if not lo <= price <= hi:
            raise Refused(f"price {price} is outside the {mode} band {lo}-{hi} (previous close {close})",
                          code="price_band")
    sellable = st.sellable(seller, a["unit"], a["vintage"], date)
    if sellable < q:
        held = st.holding(seller, a["unit"], a["vintage"])
        why = f" ({held - sellable} t bought on {date} are not sellable until the next day)" if held > sellable else ""
        raise Refused(f"seller {seller} can sell {sellable} t of {a['unit']} {a['vintage']}, fewer than {q} t{why}",
                      code="insufficient_holding")
    trade_id = f"T-{st.position + 1:06d}"
    data = {"trade_id": trade_id, "buyer": buyer, "seller": seller, "unit": a["unit"], "vintage": a["vintage"],
            "quantity": q, "price": a["price"], "mode": mode, "trade_date": date}
    if close is not None:
        data["reference_price"] = _fmt_close(close)
    return [("TradeExecuted", data)], {"trade_id": trade_id}


@lru_cache(maxsize=64)
def _band(close: Decimal, band: Decimal) -> tuple[Decimal, Decimal]:
    """The allowed price range around a previous close (a day's trades all ask for the same one)."""
    return money(close * (1 - band)), money(close * (1 + band))


@lru_cache(maxsize=64)
def _fmt_close(close: Decimal) -> str:
    return fmt_money(close)


def _verify(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    st.check_firm(a["firm_id"])
    if (a.get("output") is None) != (a.get("output_unit") is None):
        raise BadInput("--output and --output-unit go together")
    return [("EmissionsVerified", {"firm_id": a["firm_id"], "year": a["year"], "tonnes": a["tonnes"],
                                   "output": a.get("output"), "output_unit": a.get("output_unit")})], {}


def _surrender(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    fid, unit, vintage, q = a["firm_id"], a["unit"], a["vintage"], a["quantity"]
    st.check_firm(fid)
    period = st.check_open_period(a["year"])
    if vintage > period.last:
        raise Refused(f"vintage {vintage} is later than compliance year {period.label}", code="vintage_too_late")
    st.check_holding_covers(fid, unit, vintage, q)
    verified = st.verified_in(fid, period)
    if verified is None:
        raise Refused(f"firm {fid} has no verified emissions for {period.label}; verify before surrender",
                      code="not_verified")
    if unit == "CCER":
        limit = _floor(rules.CCER_LIMIT_SHARE * verified)
        used = st.surrendered_in(fid, period, "CCER")
        if used + q > limit:
            raise Refused(f"CCER may cover at most {limit} t (5% of {verified} t verified) for {fid} in "
                          f"{period.label}; {used} t already surrendered", code="ccer_limit")
    obligation = st.obligation(fid, period) or 0
    done = st.surrendered_in(fid, period)
    if done + q > obligation:
        raise Refused(f"surrendering {q} t would exceed {fid}'s obligation of {obligation} t for {period.label}"
                      f" ({done} t already surrendered)", code="beyond_obligation")
    return [("AllowancesSurrendered", {"firm_id": fid, "year": period.first, "unit": unit, "vintage": vintage,
                                       "quantity": q})], {}


def _cancel(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    st.check_account_open(a["account_id"])
    st.check_holding_covers(a["account_id"], a["unit"], a["vintage"], a["quantity"])
    return [("AllowancesCancelled", dict(a))], {}


def _year_close(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    period = st.check_open_period(a["year"])
    deadline = dt.date.fromisoformat(period.deadline) if period.deadline else None
    regime = rules.penalty_regime(deadline)
    multiple = Decimal(a.get("fine_multiple") or rules.PENALTY_MULTIPLE_DEFAULT)
    price, month = _penalty_price(st, deadline)
    events: list[tuple[str, dict[str, Any]]] = []
    fines = Decimal(0)
    for fid in sorted(st.firms):
        if not st.has_obligation(fid, period):
            continue
        obligation = st.obligation(fid, period)
        if obligation is None:
            continue  # status C: no verified emissions; the shortfall cannot be valued
        done = st.surrendered_in(fid, period)
        shortfall = obligation - done
        if shortfall <= 0:
            continue
        if regime == "fixed":
            fine = rules.PENALTY_FIXED_FINE_BEFORE
        else:
            fine = money(multiple * shortfall * price) if price is not None else Decimal("0.00")
        fines += fine
        events.append(("PenaltyAssessed", {
            "firm_id": fid, "year": period.first, "shortfall": shortfall, "fine": fmt_money(fine),
            "deduction": shortfall, "price": fmt_money(price) if price is not None else None,
            "price_month": month, "multiple": str(multiple) if regime != "fixed" else None, "regime": regime,
            "obligation": obligation, "surrendered": done}))
    events.append(("ComplianceYearClosed", {"year": period.first}))
    return events, {"year": period.label, "penalties": len(events) - 1, "fines": fmt_money(fines)}


def _penalty_price(st: LedgerState, deadline: dt.date | None) -> tuple[Decimal | None, str | None]:
    """VWAP of CEA trades in the calendar month before the deadline; else the latest earlier month traded."""
    if deadline is None:
        return None, None
    first_of_month = deadline.replace(day=1)
    target = (first_of_month - dt.timedelta(days=1)).strftime("%Y-%m")
    if st.month_price(target) is not None:
        return st.month_price(target), target
    earlier = sorted(m for m in st.months if m < target and st.month_price(m) is not None)
    if earlier:
        return st.month_price(earlier[-1]), earlier[-1]
    return None, None


def _allocate(reg: Registry, st: LedgerState, a: dict[str, Any], actor: str) -> Decided:
    fid, year, step = a["firm_id"], a["year"], a["step"]
    firm = st.check_firm(fid)
    st.check_open_period(year)
    if not rules.is_covered(firm.sector, year):
        raise Refused(f"sector {firm.sector} is not covered in {year}; nothing to allocate", code="not_covered")
    st.check_account_open(fid)
    key = (fid, year)
    factors = {k: Decimal(v) for k, v in (a.get("factors") or {}).items()}
    factor = Decimal(1)
    for v in factors.values():
        factor *= v
    inputs: dict[str, Any] = {"year": year, "step": step, "factors": {k: str(v) for k, v in factors.items()} or None}
    new_sector = firm.sector in rules.NEW_SECTORS
    if step == "pre":
        if key in st.pre_allocated:
            raise Refused(f"{fid} was already pre-allocated for {year}", code="already_allocated")
        base_year = year - 1
        base = st.verified.get((fid, base_year))
        if new_sector:
            if year <= rules.COVERAGE_START[firm.sector]:
                raise Refused(f"{firm.sector} has no pre-allocation in its first year {year}; use --step true-up",
                              code="no_pre_allocation")
            if base is None:
                raise Refused(f"{fid} has no verified emissions for base year {base_year}", code="no_base_year")
            computed = _floor(rules.PRE_ALLOCATION_SHARE * base[0])
            inputs.update(base_year=base_year, share=str(rules.PRE_ALLOCATION_SHARE), verified_emissions=base[0],
                          rule_version=f"{firm.sector}-{year}")
        else:
            if base is None or base[1] is None:
                raise Refused(f"{fid} has no verified output for base year {base_year}", code="no_base_year")
            bm, bm_unit, version = _benchmark(firm.unit_type, base[2], year)
            computed = _floor(rules.PRE_ALLOCATION_SHARE * base[1] * bm)
            inputs.update(base_year=base_year, share=str(rules.PRE_ALLOCATION_SHARE), output=base[1],
                          output_unit=base[2], benchmark=str(bm), benchmark_unit=bm_unit, rule_version=version,
                          unit_type=firm.unit_type)
        inputs["computed"] = computed
        if computed <= 0:
            raise Refused(f"pre-allocation for {fid} in {year} computes to {computed} t", code="nothing_to_allocate")
        events = [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": computed,
                                        "basis": "pre-allocation", **_clean(inputs)})]
    else:
        actual = st.verified.get(key)
        if new_sector:
            if actual is None:
                raise Refused(f"{fid} has no verified emissions for {year}", code="not_verified")
            share = rules.new_sector_share(year)
            computed = _floor(share * actual[0] * factor)
            inputs.update(share=str(share), verified_emissions=actual[0], rule_version=f"{firm.sector}-{year}")
        else:
            if actual is None or actual[1] is None:
                raise Refused(f"{fid} has no verified output for {year}", code="not_verified")
            bm, bm_unit, version = _benchmark(firm.unit_type, actual[2], year)
            computed = _floor(actual[1] * bm * factor)
            inputs.update(output=actual[1], output_unit=actual[2], benchmark=str(bm), benchmark_unit=bm_unit,
                          rule_version=version, unit_type=firm.unit_type)
        already = st.allocated.get(key, 0)
        delta = computed - already
        inputs.update(computed=computed, previously_allocated=already)
        if delta == 0:
            raise Refused(f"{fid}'s allocation for {year} already equals the computed {computed} t",
                          code="nothing_to_allocate")
        if delta > 0:
            events = [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": delta,
                                            "basis": "true-up", **_clean(inputs)})]
        else:
            held = st.holding(fid, "CEA", year)
            take = min(held, -delta)
            if take == 0:
                raise Refused(f"{fid} must return {-delta} t of CEA {year} but holds none", code="insufficient_holding")
            claw = {k: v for k, v in _clean(inputs).items()
                    if k in ("year", "computed", "previously_allocated", "benchmark", "output", "factors")}
            events = [("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": take,
                                               "reason": "true-up clawback", "firm_id": fid,
                                               "outstanding": (-delta - take) or None, **claw})]
    events += _deduction(st, fid, year, events)
    issued = sum(d["quantity"] for t, d in events if t == "AllowancesIssued")
    return events, {"firm_id": fid, "year": year, "step": step, "issued": issued}


def _deduction(st: LedgerState, fid: str, year: int, events: list) -> list[tuple[str, dict[str, Any]]]:
    """A penalty (or unrecovered clawback) is taken from the firm's next allocation, as its own event."""
    pending = st.deductions.get(fid)
    issued = sum(d["quantity"] for t, d in events if t == "AllowancesIssued")
    if not pending or not issued or year <= pending[1]:
        return []
    take = min(pending[0], issued)
    return [("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": take,
                                     "reason": "penalty deduction", "firm_id": fid, "year": year,
                                     "penalty_year": pending[1], "outstanding": (pending[0] - take) or None})]


def _benchmark(unit_type: str | None, output_unit: str | None, year: int) -> tuple[Decimal, str, str]:
    table = rules.benchmarks_for(year)
    ut = unit_type or rules.DEFAULT_UNIT_TYPE["power"]
    if output_unit == "MWh":
        return table.electricity[ut], "tCO2/MWh", table.version
    if output_unit == "GJ":
        return table.heat[ut], "tCO2/GJ", table.version
    raise Refused(f"power output must be verified in MWh or GJ, not {output_unit}", code="output_unit")


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


DECIDE: dict[str, Callable[[Registry, LedgerState, dict[str, Any], str], Decided]] = {
    "init": _init,
    "actor add": _actor_add,
    "actor key": _actor_key,
    "firm register": _firm_register,
    "account open": _account_open,
    "year open": _year_open,
    "year close": _year_close,
    "issue": _issue,
    "allocate": _allocate,
    "transfer": _transfer,
    "trade": _trade,
    "emissions verify": _verify,
    "surrender": _surrender,
    "cancel": _cancel,
}

__all__ = ["DECIDE", "RIGHTS", "Command", "Outcome", "Period", "Registry"]
