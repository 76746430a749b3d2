"""Decisions about who and what exists: the store's initialisation, actors and keys, firms, accounts, cancellation."""

from __future__ import annotations

from typing import Any

from ledger import rules, units
from ledger.authority import OPEN_STORE_ACTOR
from ledger.decisions.base import Decided
from ledger.errors import Refused
from ledger.model import LedgerState


def init(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    return [("LedgerInitialized", {"regulator": a["regulator"], "require_signatures": a["require_signatures"],
                                   "public_key": a.get("public_key")})], {}


def actor_add(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    if a["actor_id"] in st.actors or a["actor_id"] == OPEN_STORE_ACTOR:
        raise Refused(f"actor {a['actor_id']} exists already", code="duplicate_actor")
    if a["role"] == "firm":  # the input model ties --firm to role firm and checks the key
        st.check_firm(a["firm"])
    return [("ActorAdded", {"actor_id": a["actor_id"], "role": a["role"], "firm_id": a.get("firm"),
                            "public_key": a.get("public_key")})], {}


def actor_key(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    if a["actor_id"] not in st.actors:
        raise Refused(f"actor {a['actor_id']} is not registered", code="unknown_actor")
    return [("ActorKeyRegistered", {"actor_id": a["actor_id"], "public_key": a["public_key"]})], {}


def firm_register(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    fid = a["firm_id"]
    if fid in st.firms:
        raise Refused(f"firm {fid} is already registered", code="duplicate_firm")
    if fid in st.accounts:
        raise Refused(f"account {fid} exists already; a firm's compliance account takes the firm's id",
                      code="duplicate_account")
    unit_type = a.get("unit_type")  # the input model allows one for the power sector only
    if a["sector"] == "power":
        unit_type = unit_type or rules.DEFAULT_UNIT_TYPE["power"]
    return [
        ("FirmRegistered", {"firm_id": fid, "name": a["name"], "sector": a["sector"], "region": a["region"],
                            "unit_type": unit_type}),
        ("AccountOpened", {"account_id": fid, "holder": fid, "kind": "compliance"}),
    ], {"firm_id": fid}


def facility_register(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    fac, fid, kind = a["facility_id"], a["firm"], a["kind"]
    firm = st.check_firm(fid)
    if fac in st.facilities:
        raise Refused(f"facility {fac} is already registered (to {st.facilities[fac].firm_id})",
                      code="duplicate_facility")
    sector = rules.FACILITY_SECTOR[kind]
    if firm.sector != sector:
        raise Refused(f"a {kind} facility belongs to the {sector} sector; firm {fid} is in {firm.sector}",
                      code="kind_sector")
    if fid not in st.firm_facilities and any((fid, y) in st.verified  # every verified year is a valid year
                                             for y in range(units.MIN_VINTAGE, units.MAX_VINTAGE + 1)):
        raise Refused(f"firm {fid} has firm-level verified emissions; its facilities cannot be added after them",
                      code="firm_level_verified")
    data: dict[str, Any] = {"facility_id": fac, "firm_id": fid, "kind": kind}
    if a.get("rated_mw") is not None:
        data["rated_mw"] = a["rated_mw"]
    return [("FacilityRegistered", data)], {"facility_id": fac}


def account_open(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    if a["account_id"] in st.accounts:
        raise Refused(f"account {a['account_id']} exists already", code="duplicate_account")
    if a["kind"] == "compliance":
        raise Refused("a compliance account is opened by `firm register`", code="compliance_account")
    return [("AccountOpened", {"account_id": a["account_id"], "holder": a["holder"], "kind": a["kind"]})], {}


def cancel(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    st.check_can_send(a["account_id"], now)
    st.check_holding_covers(a["account_id"], a["unit"], a["vintage"], a["quantity"], now)
    return [("AllowancesCancelled", dict(a))], {}
